#!/usr/bin/env bash
# One-shot check of the CUDA backend on a machine with a GPU (budget: under 8 minutes).
#   bash scripts/gpu-check.sh
# Steps, in priority order (each under its own time limit, cut to what is left of BUDGET_S; a
# failing step is recorded and the script goes on to the summary table):
#   gpus, prereqs, configure, build      a fresh build-gpu with the CUDA backend
#   ops_cuda                             every test with a CUDA part (CUDA vs the CPU reference,
#                                        set_precision, fused attention), [SKIP] lines counted
#   bench_in100                          clpdd bench --preset imagenet100-ipc1, every method, fp32/tf32/bf16
#   bench_in1k                           clpdd bench --preset imagenet1k-ipc1, CLP-DD vs LGM+DSA, fp32/bf16
#   bench_vitb_cuda                      ViT-B/16 fwd + input-backward against the sgemm rate
#   quickstart_cuda                      the quickstart on the GPU
#   precision_accuracy (ACCURACY=1)      experiments/precision/fashion-mnist.ini: 36 runs, fp32/tf32/bf16
# Full logs and the bench tables go to $LOG_DIR (default ${OUT:-results/gpu/<date>}).
# Exit status: 0 when every step passed, 1 otherwise.
#
# Environment (all optional):
#   CUDA_ARCHS   CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200; one arch keeps nvcc fast)
#   BUILD_DIR    build directory (default build-gpu; wiped first)
#   JOBS         parallel build jobs (default 16)
#   LOG_DIR      where logs go (default ${OUT:-results/gpu/<UTC date>})
#   BUDGET_S     total seconds for all steps (default 470)
#   SKIP_BUILD   1: use an existing $BUILD_DIR as it is (e.g. built elsewhere and carried over)
#   BENCH_STEPS  timed steps per bench cell (default 5; the first preset's, the second gets 3)
#   ACCURACY     1: also run the precision-accuracy sweep with what is left of the budget
# The weights are the repository's models/ (found by the build without CLPDD_MODEL_PATH; a set
# CLPDD_MODEL_PATH is searched first); the bench needs none (random weights).
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_ARCHS="${CUDA_ARCHS:-90}"
BUILD_DIR="${BUILD_DIR:-build-gpu}"
JOBS="${JOBS:-16}"
LOG_DIR="${LOG_DIR:-${OUT:-results/gpu/$(date -u +%F)}}"
mkdir -p "$LOG_DIR"
START=$(date +%s)
DEADLINE=$((START + ${BUDGET_S:-470})) # every step's limit is cut to what is left of this

names=()
statuses=()
times=()

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with output tee'd to $LOG_DIR/NAME.log,
# records PASS / FAIL (rc) / TIMEOUT and the wall time; never stops the script
step() {
  local name="$1" limit="$2"
  shift 2
  local log="$LOG_DIR/$name.log" t0 rc left
  t0=$(date +%s)
  left=$((DEADLINE - t0))
  if [ "$left" -lt 5 ]; then
    echo "==== [$name] not run: the ${BUDGET_S:-470}s budget is spent" | tee "$log"
    names+=("$name"); times+=("0s"); statuses+=("NOT RUN (time budget)")
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "==== [$name] $* (limit ${limit}s)" | tee "$log"
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  names+=("$name")
  times+=("$(($(date +%s) - t0))s")
  if [ "$rc" -eq 0 ]; then
    statuses+=("PASS")
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    statuses+=("TIMEOUT")
  else
    statuses+=("FAIL (rc $rc)")
  fi
  echo "==== [$name] rc $rc" | tee -a "$log"
  return 0
}

# ---- the machine ----
step gpus 20 bash -c 'nvidia-smi -L && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv'
[ "${SKIP_BUILD:-0}" = 1 ] || step prereqs 20 bash -c '
  ok=0
  for p in libxxhash liblbfgs libturbojpeg openblas lapacke criterion; do
    pkg-config --exists "$p" || { echo "missing pkg-config package: $p"; ok=1; }
  done
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  if [ -x "$nvcc" ]; then "$nvcc" --version | tail -n 2; else echo "no nvcc found"; ok=1; fi
  cmake --version | head -n 1
  exit $ok'

# ---- configure + build (fresh) ----
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  rm -rf "$BUILD_DIR"
  step configure 60 cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCLPDD_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS"
  step build 200 cmake --build "$BUILD_DIR" -j "$JOBS"
fi

# ---- CUDA backend vs CPU reference ----
# CRITERION_VERBOSITY_LEVEL=1 makes the tests print [SKIP] lines: a test that skips (no GPU
# visible, e.g. a driver older than the CUDA runtime) must not count as a pass here.
# every test with a CUDA part: the op tables, the plugins (vit variants, ridge, ntk, unrolled,
# lgm) and the augmentation, each against the CPU reference
step ops_cuda 150 env CRITERION_VERBOSITY_LEVEL=1 \
  ctest --test-dir "$BUILD_DIR" -R 'cuda|ntk|unrolled|lgm|resnet' --output-on-failure -V
if grep -q '\[SKIP\]' "$LOG_DIR/ops_cuda.log" 2>/dev/null; then
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = ops_cuda ] && [ "${statuses[$i]}" = PASS ]; then
      statuses[$i]="SKIPPED (see [SKIP] in ops_cuda.log)"
    fi
  done
fi

# ---- clpdd bench at the paper's shapes: the 14x / 1/8 claims, and each precision's rate ----
# imagenet100-ipc1: ViT-B/16, m = 100, n = 1000, every method, fp32 / tf32 / bf16.
# imagenet1k-ipc1: m = 1000, n = 3000: CLP-DD against LGM+DSA (3 augs), the two ends of the claim.
BS="${BENCH_STEPS:-5}"
step bench_in100 150 "$BUILD_DIR/clpdd" bench --preset imagenet100-ipc1 --device cuda --precision fp32,tf32,bf16 \
  --steps "$BS" --warmup 1 --out "$LOG_DIR/bench"
step bench_in1k 120 "$BUILD_DIR/clpdd" bench --preset imagenet1k-ipc1 --device cuda --precision fp32,bf16 \
  --methods clpdd,lgm-dsa --steps 3 --warmup 1 --out "$LOG_DIR/bench"

# ---- ViT-B/16 at 224²: forward + input-backward against the device's own GEMM rate ----
# (the target: bf16 at >= 40 % of the bf16 GEMM rate; fused against materialised attention)
step bench_vitb_cuda 90 bash -c "for a in 'fp32 materialized' 'fp32 fused' 'tf32 fused' 'bf16 fused' 'bf16 materialized'; do
  set -- \$a; '$BUILD_DIR/bench/clpdd-bench-vitb' --device cuda --batch 64 --reps 10 --precision \$1 --attention \$2 \
    --out '$LOG_DIR/bench-vitb.md' || exit 1; done"

# ---- the quickstart on the GPU (extracts and caches the real features, then distils) ----
export CLPDD_CACHE_DIR="${CLPDD_CACHE_DIR:-$LOG_DIR/cache}"
step quickstart_cuda 90 "$BUILD_DIR/clpdd" run experiments/quickstart.ini --device cuda \
  --output "$LOG_DIR/quickstart-cuda"

# ---- precision and final accuracy: fp32 / tf32 / bf16 on Fashion-MNIST, both encoders ----
if [ "${ACCURACY:-0}" = 1 ]; then
  step precision_accuracy 600 "$BUILD_DIR/clpdd" sweep experiments/precision/fashion-mnist.ini --device cuda \
    --output "$LOG_DIR/precision"
fi

# ---- summary ----
{
  echo
  echo "==== gpu-check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - START))s total, logs in $LOG_DIR)"
  printf '%-12s %-8s %s\n' step time status
  for i in "${!names[@]}"; do printf '%-12s %-8s %s\n' "${names[$i]}" "${times[$i]}" "${statuses[$i]}"; done
  grep -h 'Synthesis' "$LOG_DIR/ops_cuda.log" 2>/dev/null || true
  cat "$LOG_DIR/bench-vitb.md" 2>/dev/null || true
  for t in "$LOG_DIR"/bench/*.md; do [ -f "$t" ] && cat "$t"; done
  if [ -f "$LOG_DIR/precision/summary.md" ]; then cat "$LOG_DIR/precision/summary.md"; fi
  m="$LOG_DIR/quickstart-cuda/metrics.json"
  [ ! -f "$m" ] || printf 'quickstart cuda %s\n' "$(tr -d '\n' <"$m" | grep -o '"accuracy": {"mean": [0-9.]*\|"ms_per_step": [0-9.]*\|"peak_device_mb": [0-9.a-z]*\|"device": "[^"]*"' | tr '\n' ' ')"
} | tee "$LOG_DIR/summary.txt"

for s in "${statuses[@]}"; do [ "$s" = PASS ] || exit 1; done
exit 0
