/* The streamed extraction's input side, for results/data/README.md ("Streaming").
 *
 *   clpdd-bench-stream DIR [N=3000] [workers=0]
 *
 * Writes (once) an image folder DIR/{train,val}/c0..c9/ of N (train) and N/10 (val) synthetic
 * 500×375 JPEGs (the project's JPEG writer, clpdd_image_write_jpeg: quality 90, 4:2:0, the
 * photo-like texture of bench/bench_decode.c, ~80 KB each, ImageNet's typical size), then times
 * the on-demand read of the train split exactly as the feature extraction does it: listing
 * (clpdd_dataset_load_source) and clpdd_dataset_read_float in slabs of 2048 images, each a
 * decode + Resize(256) + CenterCrop(224) + planar float conversion on the worker pool. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_source.h"
#include "data/decode_pool.h"
#include "io/image.h"
#include "util/util.h"
#include "bench_photo.h"


static int write_split(const char *root, const char *split, int n, uint64_t seed0, size_t *bytes) {
    const int W = 500, H = 375;
    uint8_t *px = clpdd_xmalloc((size_t)H * W * 3);
    clpdd_err e;
    for (int i = 0; i < n; i++) {
        char d[4200], p[4300];
        snprintf(d, sizeof d, "%s/%s/c%d", root, split, i % 10);
        if (clpdd_mkdirs(d, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
        snprintf(p, sizeof p, "%s/%05d.JPEG", d, i);
        photo(px, H, W, seed0 + (uint64_t)i);
        if (clpdd_image_write_jpeg(p, px, W, H, 3, 90, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
        struct stat st;
        if (stat(p, &st) == 0) *bytes += (size_t)st.st_size;
    }
    free(px);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: stream_bench DIR [N=3000] [workers=0]\n"), 2;
    const char *root = argv[1];
    int N = argc > 2 ? atoi(argv[2]) : 3000, workers = argc > 3 ? atoi(argv[3]) : 0;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/train", root);
    struct stat st;
    if (stat(probe, &st) != 0) {
        size_t bytes = 0;
        double t0 = clpdd_now();
        if (write_split(root, "train", N, 1, &bytes) || write_split(root, "val", N / 10, 1000000, &bytes)) return 1;
        printf("wrote %d + %d JPEGs 500x375 (mean %.1f KB) in %.1f s\n", N, N / 10, bytes / 1024.0 / (N + N / 10),
               clpdd_now() - t0);
    }
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = root, .split = "train", .resize = 256, .crop = 224,
                          .workers = workers};
    clpdd_dataset ds;
    clpdd_err e;
    double t0 = clpdd_now();
    if (clpdd_dataset_load_source(&ds, NULL, &cfg, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    double tl = clpdd_now() - t0;
    int slab = 2048;
    size_t per = (size_t)ds.c * ds.H * ds.W;
    float *buf = clpdd_xmalloc((size_t)slab * per * sizeof(float));
    t0 = clpdd_now();
    for (int i = 0; i < ds.n; i += slab) {
        int k = ds.n - i < slab ? ds.n - i : slab;
        if (clpdd_dataset_read_float(&ds, NULL, i, k, buf, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    }
    double tr = clpdd_now() - t0;
    printf("%s: listed (and the first decoded) in %.3f s; read on demand in slabs of %d, %d workers: %.1f s, %.0f images/s\n",
           ds.desc, tl, slab, workers > 0 ? workers : clpdd_pool_default_workers(), tr, ds.n / tr);
    free(buf);
    clpdd_dataset_free(&ds);
    return 0;
}
