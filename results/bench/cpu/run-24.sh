#!/bin/sh
# Issue 24, parts 2–3: the small products per call site (small-gemm.md) and the CPU step against
# PyTorch with the small products on OpenBLAS and on libxsmm, one after the other (step-24-*.md).
# Run from the repository root after building with libxsmm found (cmake prints "libxsmm 1.17.0").
#   sh results/bench/cpu/run-24.sh          # BUILD=..., REPEATS (default 1)
set -eu
BUILD=${BUILD:-build}
export CLPDD_MODEL_PATH=${CLPDD_MODEL_PATH:-$( [ -d /work/shared/models ] && echo /work/shared/models || echo "$PWD/models")}
D=results/bench/cpu
cmake --build "$BUILD" --target clpdd_bench_step clpdd_bench_small_gemm >/dev/null
{
  printf '# Small products per call site: OpenBLAS against libxsmm (issue 24, part 2)\n\nCommand:\n\n```\n'
  printf '%s/bench/clpdd-bench-small-gemm --rounds 7\n```\n\nLoad average before: %s\n\n' "$BUILD" "$(cat /proc/loadavg)"
  "$BUILD"/bench/clpdd-bench-small-gemm --rounds 7
  printf '\nLoad average after: %s\n' "$(cat /proc/loadavg)"
} > $D/small-gemm-run.md
r=1
while [ $r -le "${REPEATS:-1}" ]; do
  for lib in blas xsmm; do
    if [ $lib = blas ]; then export CLPDD_SMALL_GEMM=blas; else unset CLPDD_SMALL_GEMM; fi
    "$BUILD"/bench/clpdd-bench-step --backbones resnet20,mnist-vit --m 10,100 --steps 10 --rounds 2 \
      --out $D/step-24-$lib-$r.md
  done
  r=$((r + 1))
done
