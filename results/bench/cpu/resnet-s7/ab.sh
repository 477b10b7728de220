#!/usr/bin/env bash
# Interleaved A/B of the resnet20 CLP-DD step: the build before this session's work (BASE, a
# build of commit 3edf036 in another tree) against this tree's build, and this tree's F(4,3)
# (CLPDD_CONV_ALGO=winograd4). THREADS=1 pins the pool and OpenBLAS to one thread (CPU time,
# steadier on a shared machine); unset, both use the machine's 2 cores.
# usage: BASE=/path/to/base/tree THREADS=1 ROUNDS=3 results/bench/cpu/resnet-s7/ab.sh
set -euo pipefail
BASE=${BASE:?the tree of commit 3edf036, built in BASE/build}
ROUNDS=${ROUNDS:-3}
envs=()
[ "${THREADS:-}" = 1 ] && envs=(CLPDD_CPU_THREADS=1 OPENBLAS_NUM_THREADS=1)
here=$(pwd)
for r in $(seq "$ROUNDS"); do
  for v in base f23 f43; do
    dir=$here algo=auto
    [ $v = base ] && dir=$BASE
    [ $v = f43 ] && algo=winograd4
    line=$(cd "$dir" && env "${envs[@]}" CLPDD_CONV_ALGO=$algo CLPDD_MODEL_PATH=${CLPDD_MODEL_PATH:-models} \
      build/bench/clpdd-bench-step --backbones resnet20 --m 10,100 --torch none --steps 10 --rounds 1 2>&1 |
      awk -F'|' '/^\| resnet20/ {printf "m=%s %s ms  ", $3+0, $4+0}')
    echo "round $r $v: $line"
  done
done
