/* Labelled image sets: int32 labels in memory, and the images either in memory (uint8 pixels
 * (n, c, H, W): IDX, CIFAR) or on demand (image folders and manifests: the files are decoded and
 * preprocessed when asked for, see data_source.h), so that ImageNet-1K (~250 GB of pixels at
 * 256 px) needs no more than its file list in memory. Every reader goes through
 * clpdd_dataset_read_float / to_float / gather_float, which work for both kinds. */
#ifndef CLPDD_DATASET_H
#define CLPDD_DATASET_H
#include <stdint.h>
#include "util/util.h"

typedef struct clpdd_dataset {
    int n, c, H, W;
    int classes;     /* 1 + the largest label */
    uint8_t *pixels; /* (n, c, H, W) in memory, or NULL when the images come on demand from src */
    /* on demand: read images (idx[k] when idx, else first + k) into out (count, c, H, W) floats in
       [0, 1]; 0, or -1 with a message naming the file */
    void *src;
    int (*src_read)(void *src, const int *idx, int first, int count, float *out, clpdd_err *e);
    void (*src_free)(void *src);
    int decodes_files; /* on demand from image files (folders, manifests): a read decodes them */
    int32_t *labels; /* (n) */
    int32_t *groups; /* (n) [data] group: the index of each image's group value (data_source.h), or NULL */
    uint64_t id;     /* hash of its content (IDX, CIFAR: the decoded bytes, XXH3; image folders and
                        manifests: the files' identities, data_source.h) and the selection */
    char desc[512];  /* "fashion-mnist train (60000 of 60000)" */
} clpdd_dataset;

/* an IDX dataset ("fashion-mnist" or "mnist") from root: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
   split "train" or "test". limit > 0 keeps a class-stratified random subset of that size
   (train, drawn with subset_seed) or the first `limit` images (test). */
int clpdd_dataset_load_idx(clpdd_dataset *ds, const char *name, const char *root, const char *split, long limit,
                           uint64_t subset_seed, clpdd_err *e);
void clpdd_dataset_free(clpdd_dataset *ds);
/* n random images (c, H, W) uniform in [0, 1) (64 distinct ones, repeated), labels i mod
   classes: data for timing (clpdd bench), no file behind it */
void clpdd_dataset_random(clpdd_dataset *ds, int n, int c, int H, int W, int classes, uint64_t seed);

/* images idx[0..count) (idx non-NULL) or [first, first+count) as floats in [0, 1] (host):
   0, or -1 with the reason (on demand: a file unreadable now, or of another size than the
   dataset's, named with the keys to set) */
int clpdd_dataset_read_float(const clpdd_dataset *ds, const int *idx, int first, int count, float *out, clpdd_err *e);
/* the same without an error path, for callers that have read every image once already (the
   feature extraction does, through clpdd_dataset_read_float): a failure (a file changed or
   removed since) prints the message and exits with status 1 rather than returning wrong pixels */
/* images [first, first+count) as floats in [0, 1] (host) */
void clpdd_dataset_to_float(const clpdd_dataset *ds, int first, int count, float *out);
/* selected images by index as floats in [0, 1] (host) */
void clpdd_dataset_gather_float(const clpdd_dataset *ds, const int *idx, int count, float *out);

/* a small deterministic host generator (splitmix64) for sampling on the host */
typedef struct clpdd_rng {
    uint64_t s;
} clpdd_rng;
uint64_t clpdd_rng_next(clpdd_rng *r);
double clpdd_rng_uniform(clpdd_rng *r); /* [0, 1) */
double clpdd_rng_normal(clpdd_rng *r);
int clpdd_rng_below(clpdd_rng *r, int n); /* [0, n) */
void clpdd_rng_shuffle(clpdd_rng *r, int *a, int n);

/* `per_class` random indices of each class 0..C-1 (class-major: out[c*per_class + j]);
   -1 with a message when a class has too few images */
int clpdd_sample_per_class(const int32_t *labels, int n, int C, int per_class, clpdd_rng *r, int *out, clpdd_err *e);

#endif
