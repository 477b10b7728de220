/* A batch of dataset images read in the background (docs/design.md §1, "the real batch"): while
 * the step that has batch t runs, one thread reads batch t+1 (clpdd_dataset_read_float, which
 * decodes on the [data] workers) into the second of two host buffers. Double buffering: the
 * memory is 2 · count · px floats, whatever the run's length. The thread touches nothing but the
 * dataset (read only) and its own buffer, never a device (ops are not thread-safe on CUDA): the
 * caller copies the buffer it gets back to the device itself.
 *
 * Deterministic: the caller chooses the indices; the pixels are what a synchronous read gives.
 * A read that fails (a corrupt JPEG) keeps its message (naming the file) for the wait that asks
 * for that batch. At most one read is in flight; clpdd_prefetch_free joins it. */
#ifndef CLPDD_PREFETCH_H
#define CLPDD_PREFETCH_H
#include <stddef.h>
#include "data/dataset.h"

typedef struct clpdd_prefetch clpdd_prefetch;

/* batches of `count` images of ds (which must outlive the prefetcher), px floats each */
clpdd_prefetch *clpdd_prefetch_new(const clpdd_dataset *ds, int count, size_t px);
/* start reading images idx[0..count) (copied: the caller may change idx afterwards); the read in
   flight, if any, is waited for first and its batch dropped */
void clpdd_prefetch_start(clpdd_prefetch *p, const int *idx);
/* 1 while a read started and not yet waited for */
int clpdd_prefetch_pending(const clpdd_prefetch *p);
/* wait for the read in flight: *out = its (count, px) floats, valid until the next start; 0, or
   -1 with the read's own message (or "nothing started") */
int clpdd_prefetch_wait(clpdd_prefetch *p, const float **out, clpdd_err *e);
/* joins the read in flight (its result dropped) and frees; NULL is fine */
void clpdd_prefetch_free(clpdd_prefetch *p);

/* 1 when reading ds decodes files (an image folder, a manifest): the datasets worth a prefetch.
   In-memory ones (IDX, CIFAR) and clpdd bench's random images are a copy, nothing to hide. */
int clpdd_dataset_decodes_files(const clpdd_dataset *ds);

#endif
