/* The decode pool; see decode_pool.h. */
#define _GNU_SOURCE
#include "data/decode_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/util.h"

typedef struct pool {
    clpdd_pool_fn fn;
    void *ctx;
    long n;
    int stop_on_error;
    atomic_long next;
    atomic_long first_fail; /* smallest failing index, n when none */
    atomic_int stop;
} pool;

typedef struct worker_arg {
    pool *p;
    int id;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *w = arg;
    pool *p = w->p;
    for (;;) {
        if (atomic_load(&p->stop)) break;
        long i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        if (p->fn(p->ctx, w->id, i) != 0) {
            long cur = atomic_load(&p->first_fail);
            while (i < cur && !atomic_compare_exchange_weak(&p->first_fail, &cur, i)) {
            }
            if (p->stop_on_error) atomic_store(&p->stop, 1);
        }
    }
    return NULL;
}

int clpdd_pool_default_workers(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

long clpdd_pool_run(int workers, long n, int stop_on_error, clpdd_pool_fn fn, void *ctx) {
    if (workers <= 0) workers = clpdd_pool_default_workers();
    if (workers > n) workers = n > 0 ? (int)n : 1;
    pool p = {.fn = fn, .ctx = ctx, .n = n, .stop_on_error = stop_on_error};
    atomic_init(&p.next, 0);
    atomic_init(&p.first_fail, n);
    atomic_init(&p.stop, 0);
    worker_arg *args = clpdd_xmalloc((size_t)workers * sizeof *args);
    pthread_t *th = clpdd_xmalloc((size_t)workers * sizeof *th);
    int started = 0;
    for (int t = 1; t < workers; t++) {
        args[t] = (worker_arg){&p, t};
        if (pthread_create(&th[t], NULL, worker_main, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (worker_arg){&p, 0};
    worker_main(&args[0]); /* the calling thread is worker 0 */
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    free(args);
    free(th);
    long f = atomic_load(&p.first_fail);
    return f < n ? f : -1;
}
