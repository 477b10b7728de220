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
 * condition variable between jobs (no spinning next to OpenBLAS's threads) and live until the
 * process exits. A call made while the pool is busy (another application thread, or a call from
 * inside fn) runs serially in the caller instead of waiting. Never call BLAS inside fn: the
 * pthread OpenBLAS would start its own threads from every worker. */
#ifndef CLPDD_CPU_THREADPOOL_H
#define CLPDD_CPU_THREADPOOL_H

typedef void (*cpu_range_fn)(void *ctx, int begin, int end);

__attribute__((visibility("hidden"))) void cpu_parallel_for(int n, cpu_range_fn fn, void *ctx);
/* threads cpu_parallel_for uses (≥ 1); starts the pool */
__attribute__((visibility("hidden"))) int cpu_pool_threads(void);

#endif
