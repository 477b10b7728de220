/* Synthetic photo-like RGB images for the data benchmarks (bench_decode.c, bench_stream.c):
 * smooth colour fields + fine detail + noise, so JPEG files come out near ImageNet's sizes. */
#ifndef CLPDD_BENCH_PHOTO_H
#define CLPDD_BENCH_PHOTO_H
#include <math.h>
#include <stdint.h>

#include "data/dataset.h"

/* px (h, w, 3) */
static inline void photo(uint8_t *px, int h, int w, uint64_t seed) {
    clpdd_rng r = {seed};
    double a[3][4];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 4; k++) a[c][k] = clpdd_rng_uniform(&r);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 60 * sin(0.013 * x * (1 + a[c][0]) + 0.021 * y * a[c][1] + 6 * a[c][2]) +
                           30 * sin(0.31 * x + 0.17 * y * (1 + a[c][3])) * sin(0.05 * y) + 12 * clpdd_rng_normal(&r);
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

#endif
