/* Frozen-encoder features of a dataset, computed once and cached.
 *
 * The cache key hashes everything that determines the features: the backbone plugin (name,
 * version, every resolved key of its section but the inference `batch`), the weights file's bytes
 * (XXH3, remembered by file_id.h), the adapter (input size, mean/std), the dataset (ds->id: its
 * content or file list, the split and the subset), the stored dtype and the shard size.
 *
 * Layout (sharded, so a split of ImageNet-1K is written as it is extracted and a killed
 * extraction resumes at the first missing shard): <cache_dir>/<hash>-<s>.safetensors, one per
 * `shard_images` images (the last one shorter), s = 00000, 00001, ...; each with tensors
 * "features" (rows, d) F32 or F16 and "labels" (rows) I32 and as metadata its key (the key's
 * description + its row range) and an XXH3 checksum of its payload; written atomically, so never
 * half-written. <cache_dir>/<hash>.index, written last (once every shard is there), lists the
 * shards and their checksums. A shard's content depends only on its rows (extraction restarts
 * its batches at every shard), so shards written by separate processes (clpdd features --shard
 * i/N) and joined (--merge) give the same bytes as one extraction.
 * On load nothing is trusted (clpdd_features_read_shard, memory-mapped, read-only): a corrupt,
 * foreign or unreadable shard is reported as a warning and that shard is extracted again. The
 * device is not part of the key (CPU and CUDA agree to ~1e-6). F16: features are rounded to half
 * precision before use whether extracted now or read back, so both paths give the same numbers. */
#ifndef CLPDD_FEATURE_CACHE_H
#define CLPDD_FEATURE_CACHE_H
#include "encoder/adapter.h"
#include "encoder/backbone.h"
#include "io/ini.h"
#include "data/dataset.h"

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

#define CLPDD_CACHE_SHARD_IMAGES 50000
typedef struct clpdd_features_opt {
    int batch;        /* inference batch (≤ 0: 256) */
    int verbose;
    int shard_images; /* images per cache shard; 0: $CLPDD_CACHE_SHARD_IMAGES, else CLPDD_CACHE_SHARD_IMAGES */
    int f16;          /* [data] feature_dtype = f16: stored (and used) in half precision */
    int part, parts;  /* parts > 0: only the shards of part `part` (0..parts-1, contiguous ranges) are
                         read or extracted and written; f gets no features (clpdd features --shard) */
} clpdd_features_opt;

/* clpdd_features_get with the options above (cache_dir non-NULL for parts > 0) */
int clpdd_features_get_opt(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                           const char *cache_dir, const clpdd_features_opt *o, clpdd_err *e);
/* the sharded cache of ds complete? every shard read and verified (nothing extracted), then the
   index written: 0; -1 naming the missing or bad shards (clpdd features --merge) */
int clpdd_features_merge(clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir,
                         const clpdd_features_opt *o, clpdd_err *e);

#define CLPDD_FEATURE_CACHE_FORMAT "clpdd feature cache v2"
/* the payload checksum stored in a cache file's metadata: XXH3-64 over x's bytes then y's */
uint64_t clpdd_features_checksum(const float *x, const int32_t *y, int n, int d);
/* one cache file (core/features/cache_file.c), never trusted: 0 = read and valid (f->x, f->y set); 1 = no such file; -1 = present
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
