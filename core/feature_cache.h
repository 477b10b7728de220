/* Frozen-encoder features of a dataset, computed once and cached.
 *
 * The cache key hashes everything that determines the features: the backbone plugin (name,
 * version, every resolved key of its section but the inference `batch`), the weights file's bytes
 * (XXH3, remembered by file_id.h), the adapter (input size, mean/std), and the dataset (ds->id: its
 * content, the split and the subset). The file, <cache_dir>/<hash>.safetensors with tensors
 * "features" (N, d) F32 and "labels" (N) I32 and as metadata the key's description and an XXH3
 * checksum of the payload, is written atomically, so an interrupted extraction never leaves a
 * half-written cache; a changed input changes the hash, and the features are rebuilt. On load
 * nothing is trusted (clpdd_features_read_cache): a corrupt, foreign or unreadable file is
 * reported as a warning and the features are extracted again. The device is not part of the key
 * (CPU and CUDA agree to ~1e-6). */
#ifndef CLPDD_FEATURE_CACHE_H
#define CLPDD_FEATURE_CACHE_H
#include "adapter.h"
#include "backbone.h"
#include "config.h"
#include "dataset.h"

typedef struct clpdd_features {
    int n, d;
    float *x;      /* (n, d) host */
    int32_t *y;    /* (n) host */
    int from_cache;
    char path[4096];
    double seconds; /* extraction time (0 when read from the cache) */
} clpdd_features;

/* the cache directory: explicit, else $CLPDD_CACHE_DIR, $XDG_CACHE_HOME/clpdd, ~/.cache/clpdd */
void clpdd_cache_dir(const char *configured, char *out, size_t n);

/* features of every image of ds through adapter + backbone, in batches of `batch`
   (uses the cache when cache_dir is non-NULL) */
int clpdd_features_get(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                       const char *cache_dir, int batch, int verbose, clpdd_err *e);
void clpdd_features_free(clpdd_features *f);

#define CLPDD_FEATURE_CACHE_FORMAT "clpdd feature cache v2"
/* the payload checksum stored in a cache file's metadata: XXH3-64 over x's bytes then y's */
uint64_t clpdd_features_checksum(const float *x, const int32_t *y, int n, int d);
/* one cache file (core/cache_file.c), never trusted: 0 = read and valid (f->x, f->y set); 1 = no such file; -1 = present
   but unusable, why in e (not clpdd format, another key, shapes other than (ds->n, d), payload
   checksum mismatch, a label not the dataset's, a non-finite feature): the caller rebuilds.
   clpdd_features_get does this and warns. */
int clpdd_features_read_cache(clpdd_features *f, const char *path, const char *desc, const clpdd_dataset *ds, int d,
                              clpdd_err *e);

#endif
