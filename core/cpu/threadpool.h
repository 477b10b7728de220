/* A tiny persistent pthread pool for the CPU backend's own loops (not OpenMP: Debian's
 * OpenBLAS is the pthread build, and OpenMP's spinning threads next to OpenBLAS's workers
 * oversubscribed the cores; see CMakeLists.txt on CLPDD_OPENMP).
 *
 * cpu_parallel_for(n, fn, ctx) calls fn(ctx, begin, end) on contiguous chunks covering [0, n)
 * (about 8 per thread), handed out in order to whichever thread asks next, the calling thread
 * included, and returns when all are done. Callers make each index's result a function of that
 * index alone (one thread computes it, in a fixed order), so results are bit-for-bit those of a
 * serial run whatever the thread count or the scheduling.
 *
 * Threads: $CLPDD_CPU_THREADS when set (1 = always serial), else the CPUs this process may run
 * on (sched_getaffinity), at most 64. The workers are created on first use, sleep on a
 * condition variable between jobs after a bounded spin that yields its core to any
 * other runnable thread ($CLPDD_CPU_SPIN_US, default 100 µs: threadpool.c) and live until the process
 * exits. A call made while the pool is busy (another application thread, or a call from
 * inside fn) runs serially in the caller instead of waiting. Never call BLAS inside fn: the
 * pthread OpenBLAS would start its own threads from every worker. */
#ifndef CLPDD_CPU_THREADPOOL_H
#define CLPDD_CPU_THREADPOOL_H

typedef void (*cpu_range_fn)(void *ctx, int begin, int end);

__attribute__((visibility("hidden"))) void cpu_parallel_for(int n, cpu_range_fn fn, void *ctx);

/* the same with the running thread's slot tid in [0, cpu_pool_threads()) passed to fn (the
 * caller is 0; no two threads of one call share a slot, so fn may use per-slot scratch) and
 * chunks of `chunk` indices (≤ 0: the default). For coarse items that each call a
 * single-threaded BLAS (the conv op's image groups): unlike cpu_parallel_for's fn, such an fn
 * may call BLAS, provided OpenBLAS is set to one thread around the call. */
typedef void (*cpu_range_tid_fn)(void *ctx, int begin, int end, int tid);
__attribute__((visibility("hidden"))) void cpu_parallel_for_tid(int n, int chunk, cpu_range_tid_fn fn, void *ctx);
/* the size g in [1, gmax] of the groups n items are cut into, for T threads taking whole groups,
 * with the shortest makespan ⌈⌈n/g⌉ / T⌉·g (ties: the larger g, fewer and larger pieces of work) */
__attribute__((visibility("hidden"))) int cpu_pool_best_group(int n, int T, int gmax);
/* threads cpu_parallel_for uses (≥ 1); starts the pool */
__attribute__((visibility("hidden"))) int cpu_pool_threads(void);

/* OpenBLAS (the pthread build) at one thread between begin and end: for BLAS calls made from the
 * pool's threads (cpu_parallel_for_tid) and for products too small to be worth waking
 * OpenBLAS's workers (which then spin on sched_yield for ~2^28 cycles, next to the pool). Nested
 * and concurrent sections: the first in saves the thread count, the last out restores it; a BLAS
 * call of another application thread in between runs single-threaded (correct, only slower). */
__attribute__((visibility("hidden"))) void cpu_blas_serial_begin(void);
__attribute__((visibility("hidden"))) void cpu_blas_serial_end(void);

#endif
