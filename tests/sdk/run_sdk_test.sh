#!/usr/bin/env bash
# The plugin SDK, end to end (ctest: sdk_out_of_tree):
#   1. cmake --install the build tree into a fresh prefix (copies only: nothing rebuilds)
#   2. pkg-config --cflags/--libs clpdd through the installed clpdd.pc, and a plugin compiled
#      with those flags alone
#   3. tests/sdk/example_backbone configured with find_package(clpdd) against that prefix,
#      built, and its own finite-difference check (a mock host over the installed runtime)
#   4. the installed driver lists it (`clpdd plugins --plugin-path`) and runs a short
#      distillation with it on Fashion-MNIST (skipped, exit 77, when the dataset is absent)
# usage: run_sdk_test.sh <build dir> <source dir>
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/clpdd_sdk_XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix
step() { echo "== sdk: $*"; }
die() { echo "sdk: FAIL: $*" >&2; exit 1; }

step "install $BUILD -> $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" > "$TMP/install.log" || { cat "$TMP/install.log"; die "cmake --install"; }
for f in bin/clpdd include/clpdd/plugin.h include/clpdd/ops.h; do
  [ -e "$PREFIX/$f" ] || die "$f not installed"
done
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libclpdd.so' -print -quit)")
[ -n "$LIBDIR" ] && [ -d "$LIBDIR" ] || die "libclpdd.so not installed"
[ -e "$LIBDIR/pkgconfig/clpdd.pc" ] || die "clpdd.pc not installed"
[ -e "$LIBDIR/cmake/clpdd/clpddConfig.cmake" ] || die "clpddConfig.cmake not installed"
ls "$LIBDIR"/clpdd/plugins/*.so > /dev/null || die "no plugins in $LIBDIR/clpdd/plugins"
# a CUDA build's backend module goes beside libclpdd.so, where core/cuda/ops_cuda_loader.c looks
if [ -e "$BUILD/core/libclpdd_cuda.so" ]; then
  [ -e "$LIBDIR/libclpdd_cuda.so" ] || die "libclpdd_cuda.so not installed beside libclpdd.so"
fi

step "pkg-config"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
CFLAGS_CLPDD=$(pkg-config --cflags clpdd) || die "pkg-config --cflags clpdd"
pkg-config --libs clpdd > /dev/null || die "pkg-config --libs clpdd"
echo "cflags: $CFLAGS_CLPDD"
[ -e "$(echo "$CFLAGS_CLPDD" | sed 's/^-I//; s/ .*//')/clpdd/plugin.h" ] || die "--cflags does not point at the headers"
# the plugin needs nothing but those flags (no library of ours at link time)
${CC:-cc} -std=c11 -O2 -shared -fPIC -fvisibility=hidden $CFLAGS_CLPDD \
  "$SRC/tests/sdk/example_backbone/meanproj.c" -o "$TMP/meanproj_pc.so" -lm || die "compile with pkg-config flags"

step "configure + build the example plugin with find_package(clpdd)"
# a sanitized clpdd (ctest sets CLPDD_SDK_SANITIZE) needs its runtime first in the example's own
# executable, which links libclpdd: the same flags
SAN=${CLPDD_SDK_SANITIZE:-}
cmake -S "$SRC/tests/sdk/example_backbone" -B "$TMP/build" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_BUILD_TYPE=Release ${SAN:+-DCMAKE_C_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" -DCMAKE_SHARED_LINKER_FLAGS="$SAN"} \
  > "$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; die "configure"; }
# no path into the source tree's core/include may leak into the out-of-tree build
if grep -rq -- "$SRC/core/include" "$TMP/build/CMakeFiles" 2>/dev/null; then die "the build uses the source headers"; fi
cmake --build "$TMP/build" -j2 > "$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; die "build"; }
[ -e "$TMP/build/meanproj.so" ] || die "meanproj.so not built"

step "its own finite-difference check (mock host over the installed CPU ops)"
"$TMP/build/meanproj_check" || die "meanproj_check"

step "clpdd plugins lists it"
CLPDD="$PREFIX/bin/clpdd"
"$CLPDD" plugins --plugin-path "$TMP/build" > "$TMP/plugins.txt" 2>&1 || { cat "$TMP/plugins.txt"; die "clpdd plugins"; }
grep -E "^ +meanproj 1\.0\.0" "$TMP/plugins.txt" || { cat "$TMP/plugins.txt"; die "meanproj not listed"; }
grep -q "$TMP/build/meanproj.so" "$TMP/plugins.txt" || die "listed from the wrong place"

ROOT=${CLPDD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$ROOT/train-images-idx3-ubyte.gz" ] && [ ! -e "$ROOT/train-images-idx3-ubyte" ]; then
  echo "sdk: Fashion-MNIST not found in $ROOT (Debian package dataset-fashion-mnist): distillation skipped"
  exit 77
fi
step "a short distillation with it"
cat > "$TMP/sdk.ini" <<INI
[experiment]
name = sdk-meanproj
seed = 0
device = cpu

[data]
dataset = fashion-mnist
root = $ROOT
train_limit = 1000
test_limit = 500
val_size = 100
cache_dir = $TMP/cache

[backbone]
name = meanproj
dim = 64

[solver]
name = ridge

[loss]
name = ce

[distill]
ipc = 1
steps = 20
real_batch = 256

[eval]
seeds = 1
epochs = 50
INI
# installed plugins first (the ridge solver and ce loss come from the prefix)
CLPDD_PLUGIN_PATH="$LIBDIR/clpdd/plugins" "$CLPDD" run "$TMP/sdk.ini" --plugin-path "$TMP/build" \
  --output "$TMP/run" > "$TMP/run.log" 2>&1 || { cat "$TMP/run.log"; die "clpdd run"; }
tail -n 4 "$TMP/run.log"
[ -s "$TMP/run/metrics.json" ] || die "no metrics.json"
grep -q '"backbone": *"meanproj"' "$TMP/run/metrics.json" || { cat "$TMP/run/metrics.json"; die "metrics.json does not name meanproj"; }
echo "sdk: PASS"
