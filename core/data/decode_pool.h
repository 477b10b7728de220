/* A parallel for over items 0..n-1 on `workers` threads (pthreads), for decoding image files:
 * items are claimed in increasing order from an atomic counter, each worker has its own index
 * (0..workers-1, e.g. for a per-thread clpdd_image_decoder), and every item writes only its own
 * output slot, so results do not depend on the number of workers or on timing.
 * When fn returns non-zero and stop_on_error is set, no further items are claimed; the items
 * already claimed finish. Returns the smallest failing index (deterministic: every item below it
 * was claimed and ran), or -1 when none failed. */
#ifndef CLPDD_DECODE_POOL_H
#define CLPDD_DECODE_POOL_H

typedef int (*clpdd_pool_fn)(void *ctx, int worker, long i);

/* workers ≤ 0: the number of online cores */
int clpdd_pool_default_workers(void);
long clpdd_pool_run(int workers, long n, int stop_on_error, clpdd_pool_fn fn, void *ctx);

#endif
