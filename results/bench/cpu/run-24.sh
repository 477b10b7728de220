#!/bin/sh
# Issue 24, parts 2–3: the small products per call site (small-gemm.md) and the CLP-DD step with
# the small products on OpenBLAS and on libxsmm, interleaved, one thread, CPU time per step
# (step-24-cpu-time.md: the measure the shared machine's load disturbs least).
# Run from the repository root after building with libxsmm found (cmake prints "libxsmm 1.17.0").
#   sh results/bench/cpu/run-24.sh            # BUILD=..., REPEATS (default 2)
# On a quiet machine also run the PyTorch table both ways (2 threads, wall time):
#   build/bench/clpdd-bench-step --backbones resnet20,mnist-vit --m 10,100 --steps 10 --rounds 2
#   CLPDD_SMALL_GEMM=xsmm build/bench/clpdd-bench-step --backbones resnet20,mnist-vit --m 10,100 --steps 10 --rounds 2
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
} > $D/small-gemm.md
r=1
while [ $r -le "${REPEATS:-2}" ]; do
  for lib in blas xsmm; do
    echo "== repeat $r lib $lib; load $(cat /proc/loadavg)"
    CLPDD_SMALL_GEMM=$lib CLPDD_CPU_THREADS=1 OPENBLAS_NUM_THREADS=1 "$BUILD"/bench/clpdd-bench-step \
      --backbones resnet20,mnist-vit --m 10,100 --steps 10 --rounds 2 --torch none 2>&1 | grep '^round'
  done
  r=$((r + 1))
done > $D/step-24-cpu-time.log
# medians of the per-round CPU times (each the median of 10 steps) per (backbone, m, library), as listed in step-24-cpu-time.md
awk '/^== /{lib=$5; sub(";","",lib)} /^round/{k=$3" "$4" "lib; v[k]=v[k]" "$10} END{for(k in v)print k":"v[k]}' \
  $D/step-24-cpu-time.log | sort
