/* Frozen-encoder features of a dataset, computed once and cached.
 *
 * The cache key hashes everything that determines the features: the backbone plugin (name,
 * version, every resolved key of its section but the inference `batch`), the weights file's bytes, the adapter (input
 * size, mean/std), and the dataset (its files' names, sizes and mtimes, the split and the
 * subset). The file, <cache_dir>/<hash>.safetensors with tensors "features" (N, d) F32 and
 * "labels" (N) I32 and the key's description as metadata, is written atomically, so an
 * interrupted extraction never leaves a half-written cache; a changed input changes the hash,
 * and the features are rebuilt. The device is not part of the key (CPU and CUDA agree to
 * ~1e-6). */
#ifndef CLPDD_FEATURE_CACHE_H
#define CLPDD_FEATURE_CACHE_H
#include "adapter.h"
#include "config.h"
#include "dataset.h"

/* a backbone plugin instance and how dataset images reach it (the adapter's size mode) */
typedef struct clpdd_backbone {
    const clpdd_host *h;
    const clpdd_plugin *desc;
    const clpdd_backbone_vt *vt;
    void *self;
    clpdd_backbone_info info;
    const clpdd_section *cfg;
    clpdd_adapt_mode adapt; /* [data] adapt */
} clpdd_backbone;

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
/* features of host images (n, c, H, W) in [0, 1], no cache */
int clpdd_features_of_images(float *out, clpdd_backbone *bb, const float *images, int n, int c, int H, int W,
                             int batch, clpdd_err *e);
void clpdd_features_free(clpdd_features *f);

#endif
