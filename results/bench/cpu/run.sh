#!/bin/sh
# The CPU step table (results/bench/cpu/step.md): clpdd against PyTorch, alternating, one command.
# Run from the repository root on a quiet machine, after building (any build directory: BUILD=...).
#   sh results/bench/cpu/run.sh            # 20 steps × 3 rounds per (backbone, m): ~10 min on 2 cores
# Needs: CLPDD_MODEL_PATH (default /work/shared/models, else models/), /usr/bin/python3 with
# python3-torch (apt-get install -y python3-torch), dataset-fashion-mnist.
set -eu
BUILD=${BUILD:-build}
export CLPDD_MODEL_PATH=${CLPDD_MODEL_PATH:-$( [ -d /work/shared/models ] && echo /work/shared/models || echo "$PWD/models")}
cmake --build "$BUILD" --target clpdd_bench_step >/dev/null
uptime
"$BUILD"/bench/clpdd-bench-step --backbones mnist-vit,resnet20 --m 10,100 --steps "${STEPS:-20}" \
  --rounds "${ROUNDS:-3}" --out results/bench/cpu/step.md
# resnet20 conv = fast against conv = reference on the real weights (bit-identical here)
"$BUILD"/bench/clpdd-bench-step --check
uptime
