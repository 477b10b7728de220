#!/bin/bash
# The measurements of results/bench/cpu/vit-24.md (issue 24, part 3), from the repository root of the
# h-vit worktree after building it; main's bench is /work/main/build/bench/clpdd-bench-step (not rebuilt).
#   bash results/bench/cpu/vit-24.sh cpu    > results/bench/cpu/vit-24-cpu.log     # one thread, CPU time
#   bash results/bench/cpu/vit-24.sh wall   > results/bench/cpu/vit-24-wall.log    # two threads, wall
#   bash results/bench/cpu/vit-24.sh spin PATCHED_LIB_DIR > results/bench/cpu/vit-24-spin.log
#   bash results/bench/cpu/vit-24.sh openblas > results/bench/cpu/vit-24-openblas.log
#   bash results/bench/cpu/vit-24.sh wallspin > results/bench/cpu/vit-24-wallspin.log  # h-vit, spin 0 / 100
# PATCHED_LIB_DIR: a libclpdd.so.0 built with cpu_gemm's cblas_sgemm under cpu_blas_serial_begin/end when
# M·N·K < 4·2^20 (the experiment of vit-24.md; ops_cpu_blas.c is not changed on this branch).
set -u
MAIN=/work/main/build/bench/clpdd-bench-step
WT=build/bench/clpdd-bench-step
export CLPDD_MODEL_PATH=$PWD/models
# CPU ms per timed step: perf stat's task-clock, enabled by the bench around the timed steps only
cpu_ms() { # BIN M
    local F; F=$(mktemp -u); mkfifo "$F"
    OPENBLAS_NUM_THREADS=1 CLPDD_CPU_THREADS=1 CLPDD_PERF_CTL=$F perf stat -e task-clock -D -1 --control fifo:$F -x, \
        -o "$F.stat" "$1" --backbones mnist-vit --m "$2" --torch none --steps 10 --rounds 1 >/dev/null 2>&1
    awk -F, '/task-clock/{printf "%.2f", $1/10}' "$F.stat"; rm -f "$F" "$F.stat"
}
case "$1" in
cpu)
    for M in 10 100; do for r in 1 2 3 4 5; do
        echo "m=$M round $r  main $(cpu_ms $MAIN $M)  h-vit $(cpu_ms $WT $M)"
    done; done ;;
wall)
    for r in 1 2 3 4 5; do
        for b in main h-vit; do
            B=$WT; [ $b = main ] && B=$MAIN
            $B --backbones mnist-vit --m 10,100 --torch none --steps 10 --rounds 2 2>&1 | grep "^| mnist" |
                awk -F'|' -v b=$b '{printf "round '$r' %-6s m=%s ms/step %s\n", b, $3, $4}' | tr -s ' '
        done
        echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    done ;;
spin)
    for r in 1 2 3 4 5; do
        for cfg in "spin=0 blas=as-is:CLPDD_CPU_SPIN_US=0" "spin=100 blas=as-is:CLPDD_CPU_SPIN_US=100" \
                   "spin=0 blas=serial:CLPDD_CPU_SPIN_US=0 LD_LIBRARY_PATH=$2" \
                   "spin=100 blas=serial:CLPDD_CPU_SPIN_US=100 LD_LIBRARY_PATH=$2"; do
            env ${cfg#*:} $WT --backbones mnist-vit --m 10 --torch none --steps 10 --rounds 3 2>&1 | grep "^| mnist" |
                awk -F'|' -v c="${cfg%%:*}" '{printf "round '$r' %-22s m=10 ms/step %s\n", c, $4}' | tr -s ' '
        done
        echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    done ;;
wallspin)
    for r in 1 2 3 4; do
        for s in 0 100; do
            CLPDD_CPU_SPIN_US=$s $WT --backbones mnist-vit --m 10,100 --torch none --steps 10 --rounds 2 2>&1 | grep "^| mnist" |
                awk -F'|' -v s=$s '{printf "round '$r' h-vit spin=%-4s m=%s ms/step %s\n", s, $3, $4}' | tr -s ' '
        done
        echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    done ;;
openblas)
    gcc -O2 results/bench/cpu/vit-24-openblas-spin.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas \
        -o /tmp/vit-24-openblas-spin && /tmp/vit-24-openblas-spin 0 && /tmp/vit-24-openblas-spin 1 ;;
esac
