/* The feature cache's file format, reading side (core/features/cache_file.c): the features a
 * cache holds, the payload checksums and the checked readers of a cache file and of one shard.
 * Apart from the extraction code (feature_cache.h) so that the fuzz target links it alone. The
 * layout and what is checked: feature_cache.h.
 *
 * Dimensions: n images, d feature width; a shard holds rows [first, first+count) of a dataset. */
#ifndef CLPDD_CACHE_FILE_H
#define CLPDD_CACHE_FILE_H
#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "util/util.h"

typedef struct clpdd_features {
    int n, d;
    float *x;      /* (n, d) host */
    int32_t *y;    /* (n) host */
    int from_cache;
    char path[4096];
    double seconds; /* extraction time (0 when read from the cache) */
} clpdd_features;

#define CLPDD_FEATURE_CACHE_FORMAT "clpdd feature cache v2"
/* the payload checksum stored in a cache file's metadata: XXH3-64 over x's bytes then y's */
uint64_t clpdd_features_checksum(const float *x, const int32_t *y, int n, int d);
/* one cache file, never trusted: 0 = read and valid (f->x, f->y set); 1 = no such file; -1 = present
   but unusable, why in e (not clpdd format, another key, shapes other than (ds->n, d), payload
   checksum mismatch, a label not the dataset's, a non-finite feature): the caller rebuilds.
   clpdd_features_get does this and warns. */
int clpdd_features_read_cache(clpdd_features *f, const char *path, const char *desc, const clpdd_dataset *ds, int d,
                              clpdd_err *e);
/* one shard: rows [first, first+count) of ds, features F32 (f16 = 0) or F16, memory-mapped and
   verified as above, converted into dst (count, d) floats; labels into y_out and the payload
   checksum into sum_out when non-NULL. 0 / 1 (no file) / -1 (why in e) as above. */
int clpdd_features_read_shard(const char *path, const char *key, const clpdd_dataset *ds, int first, int count, int d,
                              int f16, float *dst, int32_t *y_out, uint64_t *sum_out, clpdd_err *e);
/* XXH3-64 over a payload as stored: features (xbytes), then labels */
uint64_t clpdd_features_checksum_raw(const void *x, size_t xbytes, const int32_t *y, int n);

#endif
