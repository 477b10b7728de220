/* clpdd bench --jpeg: the real images as an image folder of generated JPEG files in a temporary
 * folder, so that LGM + DSA decodes files in its step as it does on ImageNet (and the prefetch,
 * data/prefetch.h, has something to hide). The pictures are smooth colour fields with detail and
 * noise (photo-like, so a file decodes at a photo's cost), one class folder per label. */
#ifndef CLPDD_BENCH_IMAGES_H
#define CLPDD_BENCH_IMAGES_H
#include "data/dataset.h"

typedef struct clpdd_bench_folder {
    char root[4096]; /* the temporary folder ("" when none) */
    int n, classes;
} clpdd_bench_folder;

/* n JPEGs of side × side × c (label i mod classes) under a new folder of $TMPDIR (or /tmp),
   loaded as [data] dataset = imagefolder with `workers` decoders into ds; 0, or -1 with a
   message (what was written is removed) */
int clpdd_bench_folder_make(clpdd_bench_folder *f, clpdd_dataset *ds, int n, int c, int side, int classes, int workers,
                            uint64_t seed, clpdd_err *e);
/* the files and folders removed (after the dataset is freed) */
void clpdd_bench_folder_remove(clpdd_bench_folder *f);

#endif
