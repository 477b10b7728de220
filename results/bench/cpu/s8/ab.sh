#!/usr/bin/env bash
# Interleaved A/B of the CLP-DD step (resnet20, mnist-vit; m = 10, 100): the build from before
# session 8 (BASE, commit 8796002 built in another tree) against this tree's build with the AVX-512
# layernorm off (pieces side by side + small products on one OpenBLAS thread) and with everything.
# usage: BASE=/path/to/base/tree ROUNDS=3 results/bench/cpu/s8/ab.sh
set -euo pipefail
BASE=${BASE:?the tree of commit 8796002, built in BASE/build}
ROUNDS=${ROUNDS:-3}
here=$(pwd)
for r in $(seq "$ROUNDS"); do
  for v in base noln head; do
    dir=$here ln=1
    [ $v = base ] && dir=$BASE
    [ $v = noln ] && ln=0
    line=$(cd "$dir" && CLPDD_LN_AVX512=$ln CLPDD_MODEL_PATH=${CLPDD_MODEL_PATH:-models} \
      build/bench/clpdd-bench-step --backbones resnet20,mnist-vit --m 10,100 --torch none --steps 10 --rounds 1 2>&1 |
      awk -F'|' '/^\| (resnet20|mnist-vit)/ {printf "%s m=%s %s ms  ", $2, $3+0, $4+0}')
    echo "round $r $v: $line"
  done
done
