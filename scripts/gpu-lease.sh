#!/usr/bin/env bash
# Runs scripts/gpu-check.sh on a lent GPU machine that has CUDA, CMake and a compiler but none
# of the Debian packages clpdd links (xxHash, liblbfgs, libjpeg-turbo, OpenBLAS, LAPACKE, Criterion) and no Fashion-MNIST.
# Prepare on the development machine:  bash scripts/gpu-lease.sh pack   (writes .gpu/bundle.tar.xz)
# Run on the GPU machine:              bash scripts/gpu-lease.sh run    (logs and a tarball in $OUT)
# The bundle holds a CUDA build (sm_90) made here, the shared libraries it needs that are not
# glibc's or CUDA's, and the Fashion-MNIST files. The weights are the repository's models/, which
# travel with the working tree (the build looks there without CLPDD_MODEL_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
root="$PWD"

if [ "$mode" = pack ]; then
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCLPDD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build build-gpu -j "$(nproc)"
  rm -rf .gpu/stage && mkdir -p .gpu/stage/lib .gpu/stage/fashion-mnist
  # non-glibc, non-CUDA shared libraries of every binary
  find build-gpu -type f \( -name '*.so*' -o -perm -u+x \) -print0 | xargs -0 ldd 2>/dev/null |
    awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libcuda|libcudart|libcublas|libcublasLt|libcusolver|libcusparse|libnvJitLink|libstdc\+\+|libgcc_s)\.so' |
    grep -v "$root" | while read -r lib; do cp -L "$lib" .gpu/stage/lib/; done
  cp /usr/share/datasets/fashion-mnist/*.gz .gpu/stage/fashion-mnist/
  tar -C . -cf - build-gpu | tar -C .gpu/stage -xf -
  tar -C .gpu/stage -cJf .gpu/bundle.tar.xz .
  rm -rf .gpu/stage
  ls -la .gpu/bundle.tar.xz
  exit 0
fi

if [ "$mode" = run ]; then
  out="${OUT:-results/gpu}"
  stage=/tmp/clpdd-gpu
  rm -rf "$stage" && mkdir -p "$stage"
  tar -C "$stage" -xJf .gpu/bundle.tar.xz
  mv "$stage/build-gpu" build-gpu
  # the build has absolute paths of the development machine baked in (tests, plugin dir)
  dev_root=$(grep -m1 '^CMAKE_HOME_DIRECTORY' build-gpu/CMakeCache.txt | cut -d= -f2)
  if [ "$dev_root" != "$root" ] && [ ! -e "$dev_root" ]; then mkdir -p "$(dirname "$dev_root")" && ln -s "$root" "$dev_root"; fi
  mkdir -p /usr/share/datasets && rm -rf /usr/share/datasets/fashion-mnist && cp -r "$stage/fashion-mnist" /usr/share/datasets/
  cuda_dirs=$(for l in libcublas.so.13 libcusolver.so.12 libcudart.so.13; do
    find / -xdev -name "$l" -not -path '*/proc/*' 2>/dev/null | head -n 1 | xargs -r dirname; done | sort -u | tr '\n' ':')
  export LD_LIBRARY_PATH="$stage/lib:${cuda_dirs}${LD_LIBRARY_PATH:-}"
  unset CLPDD_MODEL_PATH # the weights: models/ of this tree (through the dev_root link above)
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd build-gpu/clpdd | grep -E 'not found|cublas|cudart|openblas' || true
  set +e
  SKIP_BUILD=1 BUILD_DIR=build-gpu LOG_DIR="$out/gpu-check" bash scripts/gpu-check.sh
  rc=$?
  set -e
  rm -rf "$out/gpu-check/cache"
  cp "$out/gpu-check/summary.txt" "$out/summary.txt" 2>/dev/null || true
  tar -C "$out" -czf "$out/gpu-check.tar.gz" gpu-check && rm -rf "$out/gpu-check"
  exit $rc
fi

echo "usage: bash scripts/gpu-lease.sh pack|run" >&2
exit 2
