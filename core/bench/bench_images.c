/* Generated JPEG folders for clpdd bench --jpeg; see bench_images.h. */
#define _GNU_SOURCE
#include "bench/bench_images.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_source.h"
#include "io/image.h"

/* (side, side, c) interleaved: two smooth waves per channel, a finer one, and noise */
static void photo(uint8_t *px, int side, int c, uint64_t seed) {
    clpdd_rng r = {seed};
    double a[4][4];
    for (int k = 0; k < c; k++)
        for (int q = 0; q < 4; q++) a[k][q] = clpdd_rng_uniform(&r);
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            for (int k = 0; k < c; k++) {
                double v = 128 + 60 * sin(0.13 * x * (1 + a[k][0]) + 0.21 * y * a[k][1] + 6 * a[k][2]) +
                           30 * sin(0.9 * x + 0.5 * y * (1 + a[k][3])) + 12 * clpdd_rng_normal(&r);
                px[((size_t)y * side + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static void class_dir(char *buf, size_t n, const clpdd_bench_folder *f, int label) {
    snprintf(buf, n, "%s/train/c%04d", f->root, label);
}

static void file_path(char *buf, size_t n, const clpdd_bench_folder *f, int i) {
    char dir[4200];
    class_dir(dir, sizeof dir, f, i % f->classes);
    snprintf(buf, n, "%s/%06d.jpg", dir, i);
}

int clpdd_bench_folder_make(clpdd_bench_folder *f, clpdd_dataset *ds, int n, int c, int side, int classes, int workers,
                            uint64_t seed, clpdd_err *e) {
    memset(f, 0, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->root, sizeof f->root, "%s/clpdd-bench-jpeg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->root)) {
        clpdd_err_set(e, "bench --jpeg: cannot create a temporary folder %s (set TMPDIR)", f->root);
        f->root[0] = '\0';
        return -1;
    }
    f->classes = classes;
    char path[4300];
    uint8_t *px = clpdd_xmalloc((size_t)side * side * c);
    int rc = 0;
    for (int k = 0; k < classes && rc == 0; k++) {
        class_dir(path, sizeof path, f, k);
        rc = clpdd_mkdirs(path, e);
    }
    for (int i = 0; i < n && rc == 0; i++, f->n = i) {
        photo(px, side, c, seed + (uint64_t)i);
        file_path(path, sizeof path, f, i);
        rc = clpdd_image_write_jpeg(path, px, side, side, c, 90, e);
    }
    free(px);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = f->root, .split = "train", .workers = workers,
                          .grey = c == 1};
    if (rc == 0) rc = clpdd_dataset_load_source(ds, NULL, &cfg, e);
    if (rc) clpdd_bench_folder_remove(f);
    return rc ? -1 : 0;
}

void clpdd_bench_folder_remove(clpdd_bench_folder *f) {
    if (!f->root[0]) return;
    char path[4300];
    for (int i = 0; i < f->n; i++) {
        file_path(path, sizeof path, f, i);
        unlink(path);
    }
    for (int k = 0; k < f->classes; k++) {
        class_dir(path, sizeof path, f, k);
        rmdir(path);
    }
    snprintf(path, sizeof path, "%s/train", f->root);
    rmdir(path);
    rmdir(f->root);
    f->root[0] = '\0';
}
