#!/bin/bash
# Interleaved A/B of the mini ViT's step (issue 24 part 3, session 7), from the h-vit worktree root:
#   bash results/bench/cpu/vit-s7/ab.sh wall ROUNDS > LOG   # two threads, wall ms/step
#   bash results/bench/cpu/vit-s7/ab.sh cpu  ROUNDS > LOG   # one thread, CPU ms/step (perf stat task-clock)
#   bash results/bench/cpu/vit-s7/ab.sh fine ROUNDS > LOG   # two threads, wall, one short run per (m, side), pairs
#   python3 results/bench/cpu/vit-s7/summary.py LOG...      # medians, min–max, per-pair new/base
# base = the libclpdd.so.0 + plugins + bench built from 3edf036 (main's h-vit start), copied to
# /tmp/vit-base before any change and run through LD_LIBRARY_PATH / CLPDD_PLUGIN_PATH;
# new = build/ of this worktree.
set -u
export CLPDD_MODEL_PATH=/work/shared/models
run_base() { LD_LIBRARY_PATH=/tmp/vit-base/lib CLPDD_PLUGIN_PATH=/tmp/vit-base/plugins /tmp/vit-base/clpdd-bench-step "$@"; }
run_new() { build/bench/clpdd-bench-step "$@"; }
cpu_ms() { # base|new M
    local F; F=$(mktemp -u); mkfifo "$F"
    OPENBLAS_NUM_THREADS=1 CLPDD_CPU_THREADS=1 CLPDD_PERF_CTL=$F perf stat -e task-clock -D -1 --control fifo:$F -x, \
        -o "$F.stat" bash -c "$(declare -f run_base run_new); run_$1 --backbones mnist-vit --m $2 --torch none --steps 10 --rounds 1" >/dev/null 2>&1
    awk -F, '/task-clock/{printf "%.2f", $1/10}' "$F.stat"; rm -f "$F" "$F.stat"
}
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(git status --porcelain | wc -l) changed files; mode $1"
for r in $(seq 1 "${2:-4}"); do
    case "$1" in
    wall)
        for b in base new; do
            run_$b --backbones mnist-vit --m 10,100 --torch none --steps 20 --rounds 3 2>&1 | grep "^| mnist" |
                awk -F'|' -v b=$b -v r=$r '{printf "round %s %-4s m=%s ms/step %s\n", r, b, $3, $4}' | tr -s ' '
        done ;;
    fine) # a base and a new run back to back per m: the machine's load (other engineers) moves both alike
        for M in 10 100; do
            S=30; [ $M = 100 ] && S=10
            for b in base new; do
                run_$b --backbones mnist-vit --m $M --torch none --steps $S --rounds 1 2>&1 | grep "^| mnist" |
                    awk -F'|' -v b=$b -v r=$r '{printf "round %s %-4s m=%s ms/step %s\n", r, b, $3, $4}' | tr -s ' '
            done
        done ;;
    cpu)
        for M in 10 100; do echo "round $r m=$M cpu ms/step base $(cpu_ms base $M) new $(cpu_ms new $M)"; done ;;
    esac
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
