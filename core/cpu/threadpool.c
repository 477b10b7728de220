/* CPU backend thread pool: see threadpool.h.
 *
 * One job at a time: (fn, ctx, n), a generation number the workers wait on, and an atomic
 * cursor that hands out chunks of indices. The caller takes chunks too; when the cursor
 * passes n it closes the job (workers that wake later skip it) and waits only for the workers
 * that joined. A worker that the scheduler is slow to wake (a loaded machine) therefore never
 * delays the caller: its share is taken by whoever is running.
 *
 * Spinning ($CLPDD_CPU_SPIN_US = µs, default 100; 0: off): between jobs a worker first spins for
 * up to that long watching the generation before it sleeps on the condition variable, and the
 * caller spins as long for joined workers before it sleeps on `done`. A small step (the mini ViT
 * or resnet20 at m = 10: ~100 jobs of 10–200 µs) hands out jobs about as fast as a sleeping thread
 * wakes in a VM (futex, IPI, the vCPU's halt exit), so without the spin the caller did most of them
 * alone. Between rounds of pause instructions the spinner calls sched_yield ($CLPDD_CPU_SPIN_YIELD
 * = 0: not), so a thread that wants its core (another process, OpenBLAS's worker) gets it: a bare
 * spin took a core from others when the machine was loaded. Measured, 2 cores, the CLP-DD step at
 * m = 10 (results/bench/cpu/resnet-s7/spin-*.log): quiet, resnet20 8.5–8.8 → 6.9–8.3 ms and the
 * mini ViT 13.8–13.9 → 12.2–13.2 ms; with one busy process beside it, within the noise of no spin
 * (the bare spin: resnet20 at m = 100 1.4× slower). */
#define _GNU_SOURCE
#include "cpu/threadpool.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "util/util.h"

enum { POOL_MAX_THREADS = 64, POOL_SPIN_US_DEFAULT = 100 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;  /* bumped once per job (under mu; read without it by spinning workers) */
    int open;          /* workers may still join the current job (under mu) */
    atomic_int active; /* workers inside the current job (changed under mu; the caller spins on it) */
    cpu_range_fn fn;   /* the job: set under mu before gen is bumped, read-only until closed */
    cpu_range_tid_fn fn_tid; /* or this one (fn NULL) */
    void *ctx;
    int n, chunk;
    atomic_int next;   /* first index not yet handed out */
    int threads;       /* pool size, caller included (set once) */
    long spin_ns;      /* how long a waiting thread spins before it sleeps (set once) */
    int spin_yield;    /* sched_yield between spin rounds (set once) */
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, NULL, NULL, 0, 1, 0, 1, 0, 0};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_busy = PTHREAD_MUTEX_INITIALIZER; /* held by the caller of a running job */

/* take chunks until none are left; tid: the slot of this thread */
static void run_chunks(int tid) {
    const int n = g_pool.n, chunk = g_pool.chunk;
    for (;;) {
        int b = atomic_fetch_add_explicit(&g_pool.next, chunk, memory_order_relaxed);
        if (b >= n) return;
        int e = n - b < chunk ? n : b + chunk;
        if (g_pool.fn)
            g_pool.fn(g_pool.ctx, b, e);
        else
            g_pool.fn_tid(g_pool.ctx, b, e, tid);
    }
}

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* spin until done(arg) or spin_ns have passed; 1 when done(arg) */
static int spin_until(int (*done)(unsigned long), unsigned long arg) {
    if (g_pool.spin_ns <= 0) return done(arg);
    const long t0 = now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(arg)) return 1;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (now_ns() - t0 > g_pool.spin_ns) return done(arg);
        if (g_pool.spin_yield) sched_yield(); /* a runnable thread on this core goes first */
    }
}

static int gen_moved(unsigned long seen) { return atomic_load_explicit(&g_pool.gen, memory_order_acquire) != seen; }
static int none_active(unsigned long unused) {
    (void)unused;
    return atomic_load_explicit(&g_pool.active, memory_order_acquire) == 0;
}

static void *worker(void *arg) {
    const int tid = (int)(intptr_t)arg; /* 1 … threads − 1 */
    unsigned long seen = 0;
    for (;;) {
        spin_until(gen_moved, seen); /* a new job soon after the last: no sleep, no wake-up */
        pthread_mutex_lock(&g_pool.mu);
        while (atomic_load_explicit(&g_pool.gen, memory_order_relaxed) == seen) pthread_cond_wait(&g_pool.go, &g_pool.mu);
        seen = atomic_load_explicit(&g_pool.gen, memory_order_relaxed);
        if (!g_pool.open) { /* woke after the caller finished it */
            pthread_mutex_unlock(&g_pool.mu);
            continue;
        }
        atomic_fetch_add_explicit(&g_pool.active, 1, memory_order_relaxed);
        pthread_mutex_unlock(&g_pool.mu);
        run_chunks(tid);
        pthread_mutex_lock(&g_pool.mu);
        if (atomic_fetch_sub_explicit(&g_pool.active, 1, memory_order_release) == 1 && !g_pool.open)
            pthread_cond_signal(&g_pool.done);
        pthread_mutex_unlock(&g_pool.mu);
    }
    return NULL;
}

static void pool_start(void) {
    int want = 0;
    const char *env = getenv("CLPDD_CPU_THREADS");
    if (env && *env) want = atoi(env);
    if (want <= 0) {
        cpu_set_t set;
        want = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    if (want < 1) want = 1;
    if (want > POOL_MAX_THREADS) want = POOL_MAX_THREADS;
    const char *spin = getenv("CLPDD_CPU_SPIN_US");
    long spin_us = spin && *spin ? atol(spin) : POOL_SPIN_US_DEFAULT;
    g_pool.spin_ns = spin_us > 0 ? (spin_us < 100000 ? spin_us : 100000) * 1000L : 0;
    const char *sy = getenv("CLPDD_CPU_SPIN_YIELD");
    g_pool.spin_yield = sy && *sy ? atoi(sy) : 1;
    int started = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int w = 1; w < want; w++) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker, (void *)(intptr_t)w)) break; /* fewer threads: still correct */
        started++;
    }
    pthread_attr_destroy(&attr);
    g_pool.threads = started;
}

int cpu_pool_threads(void) {
    pthread_once(&g_once, pool_start);
    return g_pool.threads;
}

/* run the job (fn or fn_tid) on the pool; the caller holds g_busy, nt > 1 */
static void pool_run(int n, int chunk, cpu_range_fn fn, cpu_range_tid_fn fn_tid, void *ctx) {
    pthread_mutex_lock(&g_pool.mu);
    g_pool.fn = fn, g_pool.fn_tid = fn_tid, g_pool.ctx = ctx, g_pool.n = n, g_pool.chunk = chunk > 0 ? chunk : 1;
    atomic_store_explicit(&g_pool.next, 0, memory_order_relaxed);
    g_pool.open = 1;
    atomic_fetch_add_explicit(&g_pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&g_pool.go); /* no system call when every worker is spinning */
    pthread_mutex_unlock(&g_pool.mu);
    run_chunks(0);
    pthread_mutex_lock(&g_pool.mu);
    g_pool.open = 0; /* from here on no worker joins: active only falls */
    pthread_mutex_unlock(&g_pool.mu);
    if (!spin_until(none_active, 0)) {
        pthread_mutex_lock(&g_pool.mu);
        while (atomic_load_explicit(&g_pool.active, memory_order_acquire) > 0) pthread_cond_wait(&g_pool.done, &g_pool.mu);
        pthread_mutex_unlock(&g_pool.mu);
    }
    pthread_mutex_unlock(&g_busy);
}

void cpu_parallel_for(int n, cpu_range_fn fn, void *ctx) {
    CLPDD_ASSERT(n >= 0 && fn);
    if (n == 0) return;
    const int nt = cpu_pool_threads();
    if (nt <= 1 || n == 1 || pthread_mutex_trylock(&g_busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    /* ~8 chunks per thread: small enough to even out a slow thread, large enough that the
       cursor is touched rarely */
    pool_run(n, n / (8 * nt), fn, NULL, ctx);
}

void cpu_parallel_for_tid(int n, int chunk, cpu_range_tid_fn fn, void *ctx) {
    CLPDD_ASSERT(n >= 0 && fn);
    if (n == 0) return;
    const int nt = cpu_pool_threads();
    if (chunk <= 0) chunk = n / (8 * nt);
    if (nt <= 1 || n == 1 || pthread_mutex_trylock(&g_busy) != 0) {
        fn(ctx, 0, n, 0);
        return;
    }
    pool_run(n, chunk, NULL, fn, ctx);
}

static pthread_mutex_t g_blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_blas_depth, g_blas_saved;

void cpu_blas_serial_begin(void) {
    pthread_mutex_lock(&g_blas_mu);
    if (g_blas_depth++ == 0) {
        g_blas_saved = openblas_get_num_threads();
        if (g_blas_saved != 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&g_blas_mu);
}

void cpu_blas_serial_end(void) {
    pthread_mutex_lock(&g_blas_mu);
    CLPDD_ASSERT(g_blas_depth > 0);
    if (--g_blas_depth == 0 && g_blas_saved != 1) openblas_set_num_threads(g_blas_saved);
    pthread_mutex_unlock(&g_blas_mu);
}

int cpu_pool_best_group(int n, int T, int gmax) {
    int best = 1;
    long best_span = -1;
    for (int g = 1; g <= gmax; g++) {
        long span = (long)((n + g - 1) / g + T - 1) / T * g;
        if (best_span < 0 || span <= best_span) best = g, best_span = span;
    }
    return best;
}
