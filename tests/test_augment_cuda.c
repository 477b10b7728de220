/* CUDA backend against the CPU reference for the augmentation ops (ABI 1.1) and for the two
 * modules built on the op table (core/encoder/augment.c, core/distill/param.c), in the style of
 * test_ops_cuda.c: random host inputs at sizes that are not multiples of the warp or block,
 * the CPU op on host copies, the CUDA op on device copies, ‖gpu − cpu‖₂/‖cpu‖₂ ≤ a threshold;
 * device buffers between sentinel guard zones (checked at the end); "=" outputs poisoned
 * with NaN first.
 *
 * Thresholds (float32 u ≈ 6e-8):
 *   TOL_ELEM 1e-6   crop_resize_bilinear: the source coordinates are computed without FMA on
 *                   both sides (identical taps); the 4-tap sum may contract to FMA on the GPU
 *                   (≤ 1 ulp per term). The backward's atomicAdd order adds ≈ 1 ulp per term.
 *   TOL_TRANS 1e-5  the augment module (its noise is Box–Muller: CUDA vs glibc logf/cosf) and
 *                   the pyramid render/backward (σ, cuBLAS vs OpenBLAS 3×3 products, resampling).
 *
 * No GPU: every test skips with the reason clpdd_ops_cuda() gives. CLPDD_TEST_OPS_SELF=1 runs
 * the file with the CPU table standing in for the device (a check of this harness).
 * Legend: n images, C channels, H/W input, OH/OW output, px = C·H·W, m synthetic images. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/augment.h"
#include "clpdd/ops.h"
#include "plugin/host.h"
#include "distill/param.h"
#include "support.h"

#define TOL_ELEM 1e-6
#define TOL_TRANS 1e-5

#include "cuda_harness.h"

static float *fa(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *frand(size_t n, float std, uint64_t seed) { float *x = fa(n); test_fill_normal(x, n, std, seed); return x; }

static void expect_close_(const char *what, const float *d, const float *ref, size_t n, double tol, int line) {
    float *h = fa(n);
    dev->to_host(h, d, n * sizeof(float));
    double e = test_rel_err(h, ref, n);
    cr_expect(e <= tol, "%s (line %d): normalised error %.3g > %.3g (n = %zu)", what, line, e, tol, n);
    free(h);
}
#define EXPECT_CLOSE(what, d, ref, n, tol) expect_close_((what), (d), (ref), (n), (tol), __LINE__)

TestSuite(augment_cuda);

/* random boxes inside (H, W): integer ones for even b, fractional for odd b */
static void random_boxes(float *boxes, int32_t *flips, int n, int H, int W, uint64_t seed) {
    test_rng r = {seed};
    for (int b = 0; b < n; b++) {
        float h, w;
        if (b % 2 == 0) {
            h = (float)(1 + (int)(test_uniform(&r) * H)), w = (float)(1 + (int)(test_uniform(&r) * W));
            if (h > H) h = (float)H;
            if (w > W) w = (float)W;
            boxes[4 * b] = (float)(int)(test_uniform(&r) * (H - h + 1));
            boxes[4 * b + 1] = (float)(int)(test_uniform(&r) * (W - w + 1));
        } else {
            h = 0.5f + (float)test_uniform(&r) * (H - 0.5f), w = 0.5f + (float)test_uniform(&r) * (W - 0.5f);
            boxes[4 * b] = (float)test_uniform(&r) * (H - h);
            boxes[4 * b + 1] = (float)test_uniform(&r) * (W - w);
        }
        boxes[4 * b + 2] = h, boxes[4 * b + 3] = w;
        flips[b] = test_uniform(&r) < 0.5;
    }
}

Test(augment_cuda, crop_resize_bilinear) {
    NEED_GPU();
    const int cfg[][4] = {{15, 13, 15, 13}, {32, 27, 41, 19}, {7, 9, 3, 5}, {224, 224, 224, 224}}; /* H W OH OW */
    int n = 5, C = 3;
    for (int t = 0; t < 4; t++) {
        int H = cfg[t][0], W = cfg[t][1], OH = cfg[t][2], OW = cfg[t][3];
        size_t nx = (size_t)n * C * H * W, ny = (size_t)n * C * OH * OW;
        float *x = frand(nx, 1.0f, 500 + t), *y = fa(ny), *g = frand(ny, 1.0f, 510 + t), *dx = fa(nx);
        float boxes[5 * 4];
        int32_t flips[5];
        random_boxes(boxes, flips, n, H, W, 520 + t);
        float *dbox = dput(boxes, 4 * (size_t)n);
        int32_t *dflip = dput_i(flips, n);
        char what[96];
        for (int useflips = 0; useflips < 2; useflips++) {
            const int32_t *hf = useflips ? flips : NULL, *df = useflips ? dflip : NULL;
            cpu->crop_resize_bilinear(y, x, boxes, hf, n, C, H, W, OH, OW);
            float *d = dpoison(ny);
            dev->crop_resize_bilinear(d, dput(x, nx), dbox, df, n, C, H, W, OH, OW);
            snprintf(what, sizeof what, "crop_resize_bilinear %dx%d → %dx%d%s", H, W, OH, OW, useflips ? " flips" : "");
            EXPECT_CLOSE(what, d, y, ny, TOL_ELEM);
            cpu->crop_resize_bilinear_backward(dx, g, boxes, hf, n, C, H, W, OH, OW);
            d = dpoison(nx);
            dev->crop_resize_bilinear_backward(d, dput(g, ny), dbox, df, n, C, H, W, OH, OW);
            snprintf(what, sizeof what, "crop_resize_bilinear_backward %dx%d → %dx%d%s", H, W, OH, OW,
                     useflips ? " flips" : "");
            EXPECT_CLOSE(what, d, dx, nx, TOL_ELEM);
        }
        free(x), free(y), free(g), free(dx);
    }
    /* no work: no launch, no fault */
    dev->crop_resize_bilinear(NULL, NULL, NULL, NULL, 0, 3, 4, 4, 4, 4);
    dev->crop_resize_bilinear_backward(NULL, NULL, NULL, NULL, 0, 3, 4, 4, 4, 4);
    dev->synchronize();
    done();
}

/* the module on both backends with the same (seed, counter): the same draws (host RNG), the
   same noise stream (Philox on both), so the same images and gradients */
Test(augment_cuda, augment_module) {
    NEED_GPU();
    clpdd_host *hc = clpdd_host_create(cpu, 0), *hd = clpdd_host_create(dev, 0);
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int c = 3, H = 30, W = 26, n = 7, k = 3;
    size_t px = (size_t)c * H * W, N = n * px, NK = N * k;
    clpdd_augment *ac, *ad;
    clpdd_err e;
    cr_assert_eq(clpdd_augment_create(&ac, hc, &cfg, c, H, W, n * k, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_augment_create(&ad, hd, &cfg, c, H, W, n * k, &e), 0, "%s", e.msg);
    clpdd_augment_sample(ac, n * k, 1234, 77);
    clpdd_augment_sample(ad, n * k, 1234, 77);
    cr_assert_arr_eq(clpdd_augment_draws(ac, NULL), clpdd_augment_draws(ad, NULL), n * k * sizeof(clpdd_augment_draw));
    float *x = fa(N), *y = fa(NK), *g = frand(NK, 1, 3), *dx = fa(N);
    test_fill_uniform(x, N, 0, 1, 2);
    clpdd_augment_forward_tiled(ac, y, x, n, k);
    float *d = dpoison(NK);
    clpdd_augment_forward_tiled(ad, d, dput(x, N), n, k);
    EXPECT_CLOSE("augment forward_tiled", d, y, NK, TOL_TRANS);
    clpdd_augment_backward_tiled(ac, dx, g, n, k);
    d = dpoison(N);
    clpdd_augment_backward_tiled(ad, d, dput(g, NK), n, k);
    EXPECT_CLOSE("augment backward_tiled", d, dx, N, TOL_TRANS);
    clpdd_augment_destroy(ac);
    clpdd_augment_destroy(ad);
    clpdd_host_destroy(hc);
    clpdd_host_destroy(hd);
    free(x), free(y), free(g), free(dx);
    done();
}

Test(augment_cuda, pyramid_param) {
    NEED_GPU();
    clpdd_host *hc = clpdd_host_create(cpu, 0), *hd = clpdd_host_create(dev, 0);
    int m = 5, c = 3, H = 28, W = 28;
    size_t N = (size_t)m * c * H * W;
    clpdd_param_cfg cfg;
    clpdd_param_cfg_default(&cfg);
    cfg.kind = CLPDD_PARAM_PYRAMID;
    cfg.pyramid_every = 2;
    clpdd_param *pc, *pd;
    clpdd_err e;
    cr_assert_eq(clpdd_param_create(&pc, hc, &cfg, m, c, H, W, NULL, 9, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_param_create(&pd, hd, &cfg, m, c, H, W, NULL, 9, &e), 0, "%s", e.msg);
    size_t cap = clpdd_param_capacity(pc);
    cr_assert_eq(clpdd_param_capacity(pd), cap);
    for (int t = 1; t <= 7; t++) clpdd_param_on_step(pc, t), clpdd_param_on_step(pd, t); /* 4 of 6 levels */
    float *v = frand(cap, 0.5f, 11), *y = frand(N, 1, 12), *img = fa(N), *dv = fa(cap);
    cpu->copy(clpdd_param_values(pc), v, cap * sizeof(float));
    dev->to_device(clpdd_param_values(pd), v, cap * sizeof(float));
    clpdd_param_render(pc, img);
    float *d = dpoison(N);
    clpdd_param_render(pd, d);
    EXPECT_CLOSE("pyramid render", d, img, N, TOL_TRANS);
    clpdd_param_backward(pc, dv, y);
    d = dpoison(cap);
    clpdd_param_backward(pd, d, dput(y, N));
    EXPECT_CLOSE("pyramid backward", d, dv, cap, TOL_TRANS);
    clpdd_param_destroy(pc);
    clpdd_param_destroy(pd);
    clpdd_host_destroy(hc);
    clpdd_host_destroy(hd);
    free(v), free(y), free(img), free(dv);
    done();
}
