/* libFuzzer target: the feature-cache and checkpoint readers (core/features/cache_file.c,
 * core/distill/checkpoint.c) over arbitrary files. A file is either refused with a message naming it or
 * read into state that passed every check; never a crash. Build and run: README.md. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "features/feature_cache.h"

static char path[64];

static void put(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/tmp/clpdd-fuzz-cache-%ld.safetensors", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    put(data, size);
    /* the feature cache: a dataset of 8 images, 4 classes, d = 3 (the seeds are written so) */
    int32_t labels[8] = {0, 1, 2, 3, 0, 1, 2, 3};
    clpdd_dataset ds = {.n = 8, .classes = 4, .labels = labels};
    clpdd_features f;
    memset(&f, 0, sizeof f);
    clpdd_err e;
    int rc = clpdd_features_read_cache(&f, path, "fuzz-key", &ds, 3, &e);
    if (rc < 0 && !strstr(e.msg, path)) abort();
    if (rc == 0) {
        for (int i = 0; i < 8; i++)
            if (f.y[i] != labels[i]) abort();
        for (int i = 0; i < 24; i++)
            if (!isfinite(f.x[i])) abort();
        free(f.x), free(f.y); /* (clpdd_features_free lives with the extraction code) */
    }
    /* the checkpoint: capacity 16, N 8, up to 4 log rows, 10 steps */
    float p[16], m[16], v[16];
    int perm[8];
    clpdd_log_row log[4];
    clpdd_checkpoint c = {.config_hash = 0xabc, .params = p, .adam_m = m, .adam_v = v, .cap = 16, .perm = perm,
                          .N = 8, .log = log, .caplog = 4, .steps = 10};
    rc = clpdd_checkpoint_read(path, &c, &e);
    if (rc < 0 && !strstr(e.msg, path)) abort();
    if (rc == 0 && (c.step < 1 || c.step >= 10 || c.nlog < 0 || c.nlog > 4)) abort();
    return 0;
}
