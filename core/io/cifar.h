/* CIFAR-10 / CIFAR-100 binary versions (https://www.cs.toronto.edu/~kriz/cifar.html):
 * records of 1 label byte (CIFAR-10) or 2 (CIFAR-100: coarse, then fine; the fine label is kept)
 * followed by 3072 pixel bytes (3, 32, 32) — R plane, G plane, B plane, rows top to bottom.
 *   CIFAR-10:  data_batch_1.bin … data_batch_5.bin (train, 10000 each), test_batch.bin (test)
 *   CIFAR-100: train.bin (50000), test.bin (10000)
 * looked up in root, then root/cifar-10-batches-bin or root/cifar-100-binary (the archives' folders). */
#ifndef CLPDD_IO_CIFAR_H
#define CLPDD_IO_CIFAR_H
#include <stdint.h>
#include "util/util.h"

#define CLPDD_CIFAR_PIXELS 3072 /* 3 × 32 × 32 */

/* one file: appends its records to *pixels (n, 3, 32, 32) and *labels (n) (both realloc'd; start
   with NULL and *n = 0). Errors name the file: a size that is not a whole number of records
   (with the record size of each variant, to catch cifar10/cifar100 mix-ups), a label ≥ 10 / 100. */
int clpdd_cifar_read(const char *path, int cifar100, uint8_t **pixels, int32_t **labels, int *n, clpdd_err *e);

/* a split ("train" or "test") of root: every file of that split, in order; *hash (when non-NULL)
   chained with the files' names (the caller hashes the records' content) */
int clpdd_cifar_load(const char *root, int cifar100, const char *split, uint8_t **pixels, int32_t **labels, int *n,
                     uint64_t *hash, clpdd_err *e);

#endif
