/* Decode + preprocess throughput for ImageNet-like JPEGs (results/data/README.md).
 *
 *   clpdd-bench-decode [N=200] [workers=2] [W=500 H=375]
 *
 * Writes N synthetic W × H JPEGs (quality 90, 4:2:0, photo-like texture: smooth colour
 * fields + fine detail + noise, ~ImageNet's file sizes) as an image folder under $TMPDIR, then
 * times, on one thread: decode only; decode + Resize(256) + CenterCrop(224) (LGM's test
 * preprocessing); the same with JPEG DCT scaling (decode at ≥ 256 shorter side); and the whole
 * loader (clpdd_dataset_load_source: listing, reading, decoding, preprocessing, packing) with 1 and
 * `workers` threads. Also the pixel difference DCT scaling makes against the exact path. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_source.h"
#include "data/imgproc.h"
#include "io/image.h"
#include "util/util.h"
#include "bench_photo.h"


int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 200, workers = argc > 2 ? atoi(argv[2]) : 2;
    const int W = argc > 4 ? atoi(argv[3]) : 500, H = argc > 4 ? atoi(argv[4]) : 375;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/clpdd_bench_decode_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    char cls[600];
    snprintf(cls, sizeof cls, "%s/train/c0", dir);
    clpdd_err e;
    if (clpdd_mkdirs(cls, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    uint8_t *px = clpdd_xmalloc((size_t)H * W * 3);
    uint8_t **files = clpdd_xmalloc((size_t)N * sizeof *files);
    size_t *lens = clpdd_xmalloc((size_t)N * sizeof *lens), total = 0;
    for (int i = 0; i < N; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%05d.JPEG", cls, i);
        photo(px, H, W, (uint64_t)i + 1);
        if (clpdd_image_write_jpeg(p, px, W, H, 3, 90, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        if (clpdd_read_file(p, &files[i], &lens[i], &e)) return fprintf(stderr, "%s\n", e.msg), 1;
        total += lens[i];
    }
    printf("%d JPEGs %dx%d q90 4:2:0, mean %.1f KB\n", N, W, H, total / 1024.0 / N);
    clpdd_image_decoder *dec = clpdd_image_decoder_new();
    const char *label[3] = {"decode only (full size)", "decode + Resize(256) + CenterCrop(224)",
                            "  same, DCT scaling (decode at >= 256)"};
    double maxd = 0, sumd = 0;
    long nd = 0;
    for (int mode = 0; mode < 3; mode++) {
        clpdd_decode_opt o = {.min_side = mode == 2 ? 256 : 0};
        double t0 = clpdd_now();
        for (int i = 0; i < N; i++) {
            clpdd_image im;
            if (clpdd_image_decode(dec, files[i], lens[i], "bench", &o, &im, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
            if (mode > 0) clpdd_image_preprocess(&im, 256, 224);
            clpdd_image_free(&im);
        }
        double dt = clpdd_now() - t0;
        printf("1 thread  %-42s %7.1f images/s  (%.2f ms/image)\n", label[mode], N / dt, 1e3 * dt / N);
    }
    /* the pixel cost of DCT scaling, against the exact (Pillow-equal) path */
    for (int i = 0; i < N; i++) {
        clpdd_image a, b;
        clpdd_decode_opt o = {.min_side = 256};
        clpdd_image_decode(dec, files[i], lens[i], "bench", NULL, &a, &e);
        clpdd_image_decode(dec, files[i], lens[i], "bench", &o, &b, &e);
        clpdd_image_preprocess(&a, 256, 224);
        clpdd_image_preprocess(&b, 256, 224);
        for (size_t k = 0; k < (size_t)224 * 224 * 3; k++) {
            int d = abs((int)a.px[k] - (int)b.px[k]);
            if (d > maxd) maxd = d;
            sumd += d;
            nd++;
        }
        clpdd_image_free(&a);
        clpdd_image_free(&b);
    }
    printf("DCT scaling vs exact after Resize(256)+CenterCrop(224): max |diff| %.0f/255, mean |diff| %.3f/255\n", maxd,
           sumd / nd);
    clpdd_image_decoder_free(dec);
    /* the loader end to end (reads the files again: page cache) */
    int ws[2] = {1, workers};
    for (int k = 0; k < 2; k++)
        for (int dct = 0; dct < 2; dct++) {
            clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = dir, .split = "train", .resize = 256, .crop = 224,
                                  .workers = ws[k], .dct_scaling = dct};
            clpdd_dataset ds;
            double t0 = clpdd_now();
            if (clpdd_dataset_load_source(&ds, NULL, &cfg, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
            double dt = clpdd_now() - t0;
            printf("loader, %d worker%s%-22s %7.1f images/s  (%s)\n", ws[k], ws[k] > 1 ? "s" : " ",
                   dct ? ", DCT scaling" : "", ds.n / dt, ds.desc);
            clpdd_dataset_free(&ds);
        }
    for (int i = 0; i < N; i++) free(files[i]);
    free(files), free(lens), free(px);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
