#!/bin/bash
# resnet20's CLP-DD step, one thread, CPU time: main's binary (F(2,3)) against this branch with the
# default (auto: F(2,3)) and with CLPDD_CONV_ALGO=winograd4 (F(4,3) at 32² and 16²), interleaved,
# three repetitions of two rounds each. Raw lines to resnet-24.log. Usage (repository root):
#   bash results/bench/cpu/run-resnet-24.sh /work/main/build/bench/clpdd-bench-step
set -u
MAIN=${1:?the path of the main checkout clpdd-bench-step}
LOG=results/bench/cpu/resnet-24.log
: > "$LOG"
run() { # label, binary, CLPDD_CONV_ALGO
    echo "== $1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
    CLPDD_CONV_ALGO=$3 OPENBLAS_NUM_THREADS=1 CLPDD_CPU_THREADS=1 CLPDD_MODEL_PATH=$PWD/models "$2" \
        --backbones resnet20 --m 10,100 --torch none --steps 10 --rounds 2 2>&1 | grep '^round' >> "$LOG"
}
for rep in 1 2 3; do
    run main "$MAIN" auto
    run branch-auto build/bench/clpdd-bench-step auto
    run branch-winograd4 build/bench/clpdd-bench-step winograd4
done
# CPU ms per step, per label and m, in the order run
awk '/^==/ {l = $2} /^round/ {m = $4; for (i = 1; i <= NF; i++) if ($i == "time") t = $(i + 1); v[l " " m] = v[l " " m] " " t}
     END {for (k in v) print k ":" v[k]}' "$LOG" | sort
