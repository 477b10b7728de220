/* Augmentation (core/encoder/augment.c) and its op (crop_resize_bilinear, CPU reference backend).
 *
 * The op against a float64 reference written independently of it: for integer boxes, crop
 * the image into an array, resize it with PyTorch's bilinear rule (src = (o + 0.5)·in/out − 0.5
 * clamped at 0, i1 = min(i0 + 1, in − 1): upsample_bilinear2d, align_corners = False), mirror;
 * for fractional boxes, the ops.h formula in float64. Hand-computed PyTorch values for a
 * crop-upsample. Backward: the adjoint identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ (the op is linear).
 * Outputs are NaN-poisoned before each call.
 *
 * The module: the same (seed, counter) gives the same draws; identity draws copy exactly;
 * forward minus its noise is linear and backward is its adjoint (also tiled: k copies);
 * torchvision's box rule (rounding half to even, the fallback); the draws' statistics.
 *
 * Golden values from torchvision itself (tests/fixtures/augment_torchvision.safetensors, written by
 * tools/make_augment_fixture.py): F.resized_crop(…, BILINEAR, antialias=False) + hflip outputs,
 * and RandomResizedCrop.get_params boxes for given uniforms (its own code, its RNG fed from the
 * file) — the boxes must match exactly.
 *
 * Tolerances (float32 u ≈ 6e-8): TOL_ELEM·4 = 4e-6 for the resampling (float source
 * coordinates: λ carries ≈ 1e-7 relative error, times pixel differences of O(1)); TOL_ADJ 1e-5
 * normalised by Σ|Ax·y| as in test_ops_cpu.c.
 * Legend: n images, C channels, H/W input, OH/OW output, px = C·H·W. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/augment.h"
#include "clpdd/ops.h"
#include "plugin/host.h"
#include "io/safetensors.h"
#include "support.h"

#define TOL_ELEM 1e-6
#define TOL_ADJ 1e-5

static const clpdd_ops *O;
static void setup(void) { O = clpdd_ops_cpu(); }
TestSuite(augment, .init = setup);

static float *fa(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static void poison(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = NAN; }
static float *frand(size_t n, float std, uint64_t seed) { float *x = fa(n); test_fill_normal(x, n, std, seed); return x; }
static double ddot(const float *a, const float *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i]; return s; }
static double dabsdot(const float *a, const float *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]); return s; }

#define CHECK_ERR(a, ref, n, tol, what)                                                        \
    do {                                                                                       \
        double e_ = test_rel_err_fd((a), (ref), (n));                                          \
        cr_assert(e_ <= (tol), "%s: normalised error %.3g > %.3g", (what), e_, (double)(tol)); \
    } while (0)

#define CHECK_ADJ(fwd, y, ny, x, bwd, nx, what)                                                 \
    do {                                                                                       \
        double l_ = ddot((fwd), (y), (ny)), r_ = ddot((x), (bwd), (nx));                        \
        double s_ = dabsdot((fwd), (y), (ny));                                                 \
        cr_assert(isfinite(r_) && fabs(l_ - r_) <= TOL_ADJ * s_, "%s: <Ax,y> = %.9g, <x,A'y> = %.9g", \
                  (what), l_, r_);                                                             \
    } while (0)

/* ---- float64 references ---- */

/* PyTorch upsample_bilinear2d (align_corners = False) of one plane p (h, w) → out (OH, OW) */
static void ref_resize(double *out, const double *p, int h, int w, int OH, int OW) {
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            double sy = fmax(((double)oy + 0.5) * h / OH - 0.5, 0), sx = fmax(((double)ox + 0.5) * w / OW - 0.5, 0);
            int y0 = (int)sy, x0 = (int)sx;
            if (y0 > h - 1) y0 = h - 1;
            if (x0 > w - 1) x0 = w - 1;
            int y1 = y0 < h - 1 ? y0 + 1 : y0, x1 = x0 < w - 1 ? x0 + 1 : x0;
            double ly = sy - y0, lx = sx - x0;
            out[oy * OW + ox] = (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
                                ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
        }
}

/* integer boxes: crop, resize, mirror */
static void ref_crop_int(double *y, const float *x, const float *boxes, const int32_t *flips, int n, int C, int H, int W,
                         int OH, int OW) {
    for (int b = 0; b < n; b++) {
        int y0 = (int)boxes[4 * b], x0 = (int)boxes[4 * b + 1], h = (int)boxes[4 * b + 2], w = (int)boxes[4 * b + 3];
        cr_assert(y0 >= 0 && x0 >= 0 && y0 + h <= H && x0 + w <= W, "test box outside the image");
        double *crop = malloc(sizeof(double) * h * w), *r = malloc(sizeof(double) * OH * OW);
        for (int c = 0; c < C; c++) {
            const float *xq = x + ((size_t)b * C + c) * H * W;
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) crop[i * w + j] = xq[(y0 + i) * W + x0 + j];
            ref_resize(r, crop, h, w, OH, OW);
            double *yq = y + ((size_t)b * C + c) * OH * OW;
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) yq[i * OW + j] = r[i * OW + (flips && flips[b] ? OW - 1 - j : j)];
        }
        free(crop), free(r);
    }
}

/* any boxes: the ops.h formula in float64 */
static void ref_tap(int o, int out, double b0, double bl, int in, int *i0, int *i1, double *l1) {
    double s = (o + 0.5) * bl / out - 0.5;
    if (s > bl - 1) s = bl - 1;
    if (s < 0) s = 0;
    double t = b0 + s, f = floor(t);
    *l1 = t - f;
    *i0 = (int)f;
    *i1 = *i0 + 1;
    if (*i0 > in - 1) *i0 = in - 1;
    if (*i1 > in - 1) *i1 = in - 1;
}
static void ref_crop_any(double *y, const float *x, const float *boxes, const int32_t *flips, int n, int C, int H, int W,
                         int OH, int OW) {
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            const float *xq = x + ((size_t)b * C + c) * H * W;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int y0, y1, x0, x1;
                    double ly, lx;
                    ref_tap(oy, OH, boxes[4 * b], boxes[4 * b + 2], H, &y0, &y1, &ly);
                    ref_tap(flips[b] ? OW - 1 - ox : ox, OW, boxes[4 * b + 1], boxes[4 * b + 3], W, &x0, &x1, &lx);
                    y[(((size_t)b * C + c) * OH + oy) * OW + ox] =
                        (1 - ly) * ((1 - lx) * xq[y0 * W + x0] + lx * xq[y0 * W + x1]) +
                        ly * ((1 - lx) * xq[y1 * W + x0] + lx * xq[y1 * W + x1]);
                }
        }
}

/* ---- the op ---- */

Test(augment, crop_resize_pytorch_values) {
    /* torchvision.transforms.functional.resized_crop(torch.arange(16.).view(1, 1, 4, 4), 1, 1, 2, 2,
       [4, 4], InterpolationMode.BILINEAR, antialias=False): the crop [[5, 6], [9, 10]] upsampled,
       src = (o + 0.5)/2 − 0.5 = (−¼ → 0, ¼, ¾, 1¼ → the last pixel); bilinear of 5 + 4y + x is exact */
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    float box[4] = {1, 1, 2, 2};
    int32_t flip[1] = {0};
    double want[16] = {5, 5.25, 5.75, 6, 6, 6.25, 6.75, 7, 8, 8.25, 8.75, 9, 9, 9.25, 9.75, 10};
    poison(y, 16);
    O->crop_resize_bilinear(y, x, box, flip, 1, 1, 4, 4, 4, 4);
    CHECK_ERR(y, want, 16, TOL_ELEM, "crop (1,1,2,2) of 4x4 -> 4x4");
    /* flipped: each row reversed */
    flip[0] = 1;
    poison(y, 16);
    O->crop_resize_bilinear(y, x, box, flip, 1, 1, 4, 4, 4, 4);
    double wantf[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) wantf[i * 4 + j] = want[i * 4 + 3 - j];
    CHECK_ERR(y, wantf, 16, TOL_ELEM, "flipped crop");
    /* the full box downsampled 4x4 → 2x2 is resize_bilinear: the means of the 2x2 blocks */
    float full[4] = {0, 0, 4, 4}, y2[4];
    double want2[4] = {2.5, 4.5, 10.5, 12.5};
    poison(y2, 4);
    O->crop_resize_bilinear(y2, x, full, NULL, 1, 1, 4, 4, 2, 2);
    CHECK_ERR(y2, want2, 4, TOL_ELEM, "full box 4x4 -> 2x2");
}

Test(augment, crop_resize_identity_box_is_exact) {
    int n = 2, C = 3, H = 7, W = 9;
    size_t N = (size_t)n * C * H * W;
    float *x = frand(N, 1, 3), *y = fa(N);
    float boxes[8] = {0, 0, 7, 9, 0, 0, 7, 9};
    int32_t flips[2] = {0, 0};
    poison(y, N);
    O->crop_resize_bilinear(y, x, boxes, flips, n, C, H, W, H, W);
    cr_assert_arr_eq(y, x, N * sizeof(float), "identity box must copy bit for bit");
    /* and the flip of the identity box mirrors exactly */
    flips[1] = 1;
    O->crop_resize_bilinear(y, x, boxes, flips, n, C, H, W, H, W);
    for (int q = C; q < n * C; q++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                cr_assert_eq(y[((size_t)q * H + i) * W + j], x[((size_t)q * H + i) * W + W - 1 - j]);
    free(x), free(y);
}

Test(augment, crop_resize_general_and_adjoint) {
    /* H W OH OW: up- and downsampling, odd sizes, non-square */
    const int cfg[][4] = {{9, 11, 9, 11}, {8, 8, 13, 5}, {13, 6, 4, 9}, {28, 28, 28, 28}};
    int n = 5, C = 2;
    for (int t = 0; t < 4; t++) {
        int H = cfg[t][0], W = cfg[t][1], OH = cfg[t][2], OW = cfg[t][3];
        size_t Nx = (size_t)n * C * H * W, Ny = (size_t)n * C * OH * OW;
        float *x = frand(Nx, 1, 10 + t), *y = fa(Ny), *dy = frand(Ny, 1, 20 + t), *dx = fa(Nx);
        double *r = calloc(Ny, sizeof(double));
        float boxes[5 * 4];
        int32_t flips[5];
        test_rng rng = {30 + (uint64_t)t};
        for (int b = 0; b < n; b++) { /* integer boxes inside the image; b = 0 the full image */
            int h = b ? 1 + (int)(test_uniform(&rng) * H) : H, w = b ? 1 + (int)(test_uniform(&rng) * W) : W;
            if (h > H) h = H;
            if (w > W) w = W;
            boxes[4 * b] = (float)(int)(test_uniform(&rng) * (H - h + 1));
            boxes[4 * b + 1] = (float)(int)(test_uniform(&rng) * (W - w + 1));
            boxes[4 * b + 2] = (float)h, boxes[4 * b + 3] = (float)w;
            flips[b] = b % 2;
        }
        ref_crop_int(r, x, boxes, flips, n, C, H, W, OH, OW);
        poison(y, Ny);
        O->crop_resize_bilinear(y, x, boxes, flips, n, C, H, W, OH, OW);
        CHECK_ERR(y, r, Ny, TOL_ELEM * 4, "crop_resize_bilinear (integer boxes) vs PyTorch rule");
        poison(dx, Nx);
        O->crop_resize_bilinear_backward(dx, dy, boxes, flips, n, C, H, W, OH, OW);
        CHECK_ADJ(y, dy, Ny, x, dx, Nx, "crop_resize_bilinear_backward (integer boxes)");
        /* fractional boxes (sub-pixel starts and lengths, some below one pixel) */
        for (int b = 0; b < n; b++) {
            float h = 0.3f + (float)test_uniform(&rng) * (H - 0.3f), w = 0.3f + (float)test_uniform(&rng) * (W - 0.3f);
            boxes[4 * b] = (float)test_uniform(&rng) * (H - h), boxes[4 * b + 1] = (float)test_uniform(&rng) * (W - w);
            boxes[4 * b + 2] = h, boxes[4 * b + 3] = w;
        }
        ref_crop_any(r, x, boxes, flips, n, C, H, W, OH, OW);
        poison(y, Ny);
        O->crop_resize_bilinear(y, x, boxes, flips, n, C, H, W, OH, OW);
        CHECK_ERR(y, r, Ny, TOL_ELEM * 4, "crop_resize_bilinear (fractional boxes)");
        poison(dx, Nx);
        O->crop_resize_bilinear_backward(dx, dy, boxes, flips, n, C, H, W, OH, OW);
        CHECK_ADJ(y, dy, Ny, x, dx, Nx, "crop_resize_bilinear_backward (fractional boxes)");
        free(x), free(y), free(dy), free(dx), free(r);
    }
}

Test(augment, crop_resize_size_zero) {
    float z[1] = {0}, b[4] = {0, 0, 1, 1};
    O->crop_resize_bilinear(z, z, b, NULL, 0, 3, 4, 4, 4, 4);
    O->crop_resize_bilinear_backward(z, z, b, NULL, 0, 3, 4, 4, 4, 4);
}

/* ---- torchvision's box rule ---- */

Test(augment, crop_box_rounding_and_fallback) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    double u[40];
    float box[4];
    for (int k = 0; k < 40; k++) u[k] = 0.0;
    /* area 1, ratio 1 (log-ratio midpoint 0.5 of the symmetric range): the whole image */
    u[0] = 1.0, u[1] = 0.5;
    clpdd_augment_crop_box(&cfg, 10, 10, u, box);
    cr_expect(box[0] == 0 && box[1] == 0 && box[2] == 10 && box[3] == 10, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
    /* Python's round is half to even: √6.25 = 2.5 → 2, and the top/left = ⌊u·(10 − 2 + 1)⌋ */
    cfg.scale_lo = cfg.scale_hi = 0.0625f;
    cfg.ratio_lo = cfg.ratio_hi = 1.0f;
    u[2] = 0.999, u[3] = 0.5;
    clpdd_augment_crop_box(&cfg, 10, 10, u, box);
    cr_expect(box[0] == 8 && box[1] == 4 && box[2] == 2 && box[3] == 2, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
    /* √12.25 = 3.5 → 4 */
    cfg.scale_lo = cfg.scale_hi = 0.1225f;
    clpdd_augment_crop_box(&cfg, 10, 10, u, box);
    cr_expect(box[2] == 4 && box[3] == 4, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
    /* ratios that never fit a square image: the fallback central crop */
    cfg.scale_lo = cfg.scale_hi = 1.0f;
    cfg.ratio_lo = 2.0f, cfg.ratio_hi = 3.0f;
    clpdd_augment_crop_box(&cfg, 10, 10, u, box);
    cr_expect(box[0] == 2 && box[1] == 0 && box[2] == 5 && box[3] == 10, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
    cfg.ratio_lo = 0.2f, cfg.ratio_hi = 0.5f;
    clpdd_augment_crop_box(&cfg, 10, 10, u, box);
    cr_expect(box[0] == 0 && box[1] == 2 && box[2] == 10 && box[3] == 5, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
    /* ratio 1 on a 10x20 image fits neither try (the full area is 200 > 10·10): width wins */
    cfg.ratio_lo = cfg.ratio_hi = 1.0f;
    clpdd_augment_crop_box(&cfg, 10, 20, u, box);
    cr_expect(box[0] == 0 && box[1] == 5 && box[2] == 10 && box[3] == 10, "(%g %g %g %g)", box[0], box[1], box[2], box[3]);
}

/* ---- the module ---- */

typedef struct {
    clpdd_host *h;
    clpdd_augment *a;
} fixture;

static fixture make(const clpdd_augment_cfg *cfg, int c, int H, int W, int max_n) {
    fixture f;
    clpdd_err e;
    f.h = clpdd_host_create(clpdd_ops_cpu(), 0);
    cr_assert_eq(clpdd_augment_create(&f.a, f.h, cfg, c, H, W, max_n, &e), 0, "%s", e.msg);
    return f;
}
static void unmake(fixture *f) {
    clpdd_augment_destroy(f->a);
    clpdd_host_destroy(f->h);
}

Test(augment, same_seed_same_draws) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int c = 3, H = 12, W = 10, n = 40;
    size_t px = (size_t)c * H * W;
    fixture f = make(&cfg, c, H, W, n), g = make(&cfg, c, H, W, n);
    float *x = frand(n * px, 1, 5), *y1 = fa(n * px), *y2 = fa(n * px);
    clpdd_augment_sample(f.a, n, 77, 1000);
    clpdd_augment_sample(g.a, n, 77, 1000);
    int n1, n2;
    const clpdd_augment_draw *d1 = clpdd_augment_draws(f.a, &n1), *d2 = clpdd_augment_draws(g.a, &n2);
    cr_assert_eq(n1, n);
    cr_assert_eq(n2, n);
    cr_assert_arr_eq(d1, d2, n * sizeof *d1);
    clpdd_augment_forward(f.a, y1, x, n);
    clpdd_augment_forward(g.a, y2, x, n);
    cr_assert_arr_eq(y1, y2, n * px * sizeof(float), "same seed and counter: same images");
    /* a draw depends on (seed, counter + i) only: shifting the counter shifts the draws */
    clpdd_augment_sample(g.a, n - 5, 77, 1005);
    d2 = clpdd_augment_draws(g.a, NULL);
    cr_assert_arr_eq(d1 + 5, d2, (n - 5) * sizeof *d1);
    /* another seed: other draws */
    clpdd_augment_sample(g.a, n, 78, 1000);
    d2 = clpdd_augment_draws(g.a, NULL);
    int same = 0;
    for (int i = 0; i < n; i++) same += memcmp(&d1[i], &d2[i], sizeof *d1) == 0;
    cr_expect(same < n / 4, "%d of %d draws equal under another seed", same, n);
    free(x), free(y1), free(y2);
    unmake(&f), unmake(&g);
}

Test(augment, draw_statistics) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int H = 28, W = 28, n = 4000;
    fixture f = make(&cfg, 1, H, W, n);
    clpdd_augment_sample(f.a, n, 3, 0);
    const clpdd_augment_draw *d = clpdd_augment_draws(f.a, NULL);
    int flips = 0, noises = 0, full = 0;
    double area = 0;
    for (int i = 0; i < n; i++) {
        cr_assert(d[i].h >= 1 && d[i].w >= 1 && d[i].y0 >= 0 && d[i].x0 >= 0 && d[i].y0 + d[i].h <= H &&
                      d[i].x0 + d[i].w <= W,
                  "draw %d box (%g %g %g %g) outside the image", i, d[i].y0, d[i].x0, d[i].h, d[i].w);
        cr_assert(d[i].y0 == floorf(d[i].y0) && d[i].h == floorf(d[i].h), "boxes are integers");
        double r = (double)d[i].w / d[i].h;
        cr_assert(r > 0.75 * 0.8 && r < 4.0 / 3 * 1.25, "aspect ratio %g far outside [3/4, 4/3] (rounding aside)", r);
        flips += d[i].flip, noises += d[i].noise;
        full += d[i].h == H && d[i].w == W;
        area += d[i].h * d[i].w / (double)(H * W);
    }
    /* binomial(4000, ½): std 32 */
    cr_expect(abs(flips - n / 2) < 160 && abs(noises - n / 2) < 160, "flips %d, noise %d of %d", flips, noises, n);
    /* E[area fraction] = (0.08 + 1)/2 = 0.54 for accepted tries; rejections favour small areas */
    cr_expect(area / n > 0.35 && area / n < 0.6, "mean area fraction %g", area / n);
    cr_expect(full < n / 10, "%d full-image boxes", full);
    unmake(&f);
}

Test(augment, identity_draws_are_identity) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int c = 3, H = 9, W = 13, n = 4;
    size_t N = (size_t)n * c * H * W;
    fixture f = make(&cfg, c, H, W, n);
    clpdd_augment_draw d[4];
    for (int i = 0; i < n; i++) d[i] = (clpdd_augment_draw){0, 0, (float)H, (float)W, 0, 0};
    clpdd_augment_set(f.a, n, d, 1, 0);
    float *x = frand(N, 1, 9), *y = fa(N), *g = fa(N);
    poison(y, N);
    clpdd_augment_forward(f.a, y, x, n);
    cr_assert_arr_eq(y, x, N * sizeof(float), "identity draws must copy");
    poison(g, N);
    clpdd_augment_backward(f.a, g, x, n);
    cr_assert_arr_eq(g, x, N * sizeof(float), "identity draws: backward copies");
    /* every probability 0 and crop off: sample gives identity draws */
    cfg.flip_p = 0, cfg.noise_p = 0, cfg.crop = 0;
    fixture z = make(&cfg, c, H, W, n);
    clpdd_augment_sample(z.a, n, 5, 0);
    poison(y, N);
    clpdd_augment_forward(z.a, y, x, n);
    cr_assert_arr_eq(y, x, N * sizeof(float), "p = 0, crop off: identity");
    free(x), free(y), free(g);
    unmake(&f), unmake(&z);
}

/* ⟨F(x) − F(0), y⟩ = ⟨x, Fᵀ y⟩ at sampled draws (F is linear plus the noise), plus the noise
   itself: F(0) holds the noise of exactly the images drawn with it */
Test(augment, forward_backward_adjoint_and_noise) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int c = 3, H = 16, W = 12, n = 24;
    size_t px = (size_t)c * H * W, N = n * px;
    fixture f = make(&cfg, c, H, W, n);
    clpdd_augment_sample(f.a, n, 11, 5);
    const clpdd_augment_draw *d = clpdd_augment_draws(f.a, NULL);
    float *x = fa(N), *zero = fa(N), *fx = fa(N), *f0 = fa(N), *y = frand(N, 1, 2), *g = fa(N);
    test_fill_uniform(x, N, 0, 1, 1);
    poison(fx, N), poison(f0, N), poison(g, N);
    clpdd_augment_forward(f.a, fx, x, n);
    clpdd_augment_forward(f.a, f0, zero, n);
    clpdd_augment_backward(f.a, g, y, n);
    for (size_t i = 0; i < N; i++) fx[i] -= f0[i];
    CHECK_ADJ(fx, y, N, x, g, N, "augment forward/backward");
    /* the same crop as the op alone */
    float *boxes = fa(4 * n), *opy = fa(N);
    int32_t *flips = calloc(n, sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        boxes[4 * i] = d[i].y0, boxes[4 * i + 1] = d[i].x0, boxes[4 * i + 2] = d[i].h, boxes[4 * i + 3] = d[i].w;
        flips[i] = d[i].flip;
    }
    O->crop_resize_bilinear(opy, x, boxes, flips, n, c, H, W, H, W);
    cr_assert(test_max_abs_diff(fx, opy, N) < 1e-6, "forward minus noise = the op, max diff %g", test_max_abs_diff(fx, opy, N));
    /* noise: N(0.5, 0.2²) on images drawn with it, zero elsewhere */
    double s = 0, s2 = 0;
    size_t cnt = 0;
    int with = 0;
    for (int i = 0; i < n; i++) {
        const float *q = f0 + i * px;
        with += d[i].noise;
        for (size_t k = 0; k < px; k++) {
            if (!d[i].noise) cr_assert_eq(q[k], 0.0f, "image %d has no noise", i);
            else s += q[k], s2 += (double)q[k] * q[k], cnt++;
        }
    }
    cr_assert(with > 0 && with < n, "%d of %d images with noise: pick another seed", with, n);
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    cr_expect(fabs(mean - 0.5) < 0.02 && fabs(sd - 0.2) < 0.02, "noise mean %g std %g over %zu pixels", mean, sd, cnt);
    free(x), free(zero), free(fx), free(f0), free(y), free(g), free(boxes), free(opy), free(flips);
    unmake(&f);
}

/* k copies: forward_tiled = forward on the tiled batch; backward_tiled = the sum of the copies' gradients */
Test(augment, tiled_copies) {
    clpdd_augment_cfg cfg;
    clpdd_augment_cfg_default(&cfg);
    int c = 1, H = 10, W = 10, n = 3, k = 4;
    size_t px = (size_t)c * H * W, N = n * px, NK = N * k;
    fixture f = make(&cfg, c, H, W, n * k);
    clpdd_augment_sample(f.a, n * k, 21, 0);
    float *x = frand(N, 1, 1), *tiled = fa(NK), *y1 = fa(NK), *y2 = fa(NK), *dy = frand(NK, 1, 2), *g1 = fa(N), *g2 = fa(NK);
    for (int j = 0; j < k; j++) memcpy(tiled + j * N, x, N * sizeof(float));
    poison(y1, NK), poison(y2, NK);
    clpdd_augment_forward_tiled(f.a, y1, x, n, k);
    clpdd_augment_forward(f.a, y2, tiled, n * k);
    cr_assert_arr_eq(y1, y2, NK * sizeof(float));
    poison(g1, N), poison(g2, NK);
    clpdd_augment_backward_tiled(f.a, g1, dy, n, k);
    clpdd_augment_backward(f.a, g2, dy, n * k);
    for (size_t i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < k; j++) s += g2[j * N + i];
        cr_assert(fabs(g1[i] - s) <= 1e-5 * (1 + fabs(s)), "element %zu: %g vs %g", i, g1[i], s);
    }
    free(x), free(tiled), free(y1), free(y2), free(dy), free(g1), free(g2);
    unmake(&f);
}

Test(augment, bad_config_is_an_error) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_augment_cfg cfg;
    clpdd_augment *a;
    clpdd_err e;
    clpdd_augment_cfg_default(&cfg);
    cfg.flip_p = 1.5f;
    cr_expect_neq(clpdd_augment_create(&a, h, &cfg, 3, 8, 8, 4, &e), 0);
    cr_expect(strstr(e.msg, "flip") != NULL, "%s", e.msg);
    clpdd_augment_cfg_default(&cfg);
    cfg.scale_lo = 0.5f, cfg.scale_hi = 0.2f;
    cr_expect_neq(clpdd_augment_create(&a, h, &cfg, 3, 8, 8, 4, &e), 0);
    cr_expect(strstr(e.msg, "scale") != NULL, "%s", e.msg);
    clpdd_augment_cfg_default(&cfg);
    cfg.noise_std = -1;
    cr_expect_neq(clpdd_augment_create(&a, h, &cfg, 3, 8, 8, 4, &e), 0);
    cr_expect(strstr(e.msg, "noise") != NULL, "%s", e.msg);
    clpdd_host_destroy(h);
}

/* ---- torchvision golden values ---- */

static float *st_get(clpdd_st_file *f, const char *name, int64_t *numel) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    cr_assert(t, "fixture lacks tensor %s (regenerate with tools/make_augment_fixture.py)", name);
    clpdd_err e;
    float *x = fa((size_t)clpdd_st_numel(t));
    if (t->dtype == CLPDD_DT_I32) {
        int32_t *raw = calloc((size_t)clpdd_st_numel(t), sizeof(int32_t));
        cr_assert_eq(clpdd_st_read_raw(f, t, raw, &e), 0, "%s", e.msg);
        for (int64_t i = 0; i < clpdd_st_numel(t); i++) x[i] = (float)raw[i];
        free(raw);
    } else {
        cr_assert_eq(clpdd_st_read_f32(f, t, x, &e), 0, "%s", e.msg);
    }
    if (numel) *numel = clpdd_st_numel(t);
    return x;
}

Test(augment, torchvision_golden) {
    clpdd_st_file *f;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(test_fixture("augment_torchvision.safetensors"), &f, &e), 0, "%s", e.msg);
    for (int k = 0; k < 3; k++) {
        char nx[32], nb[32], nf[32], ny[32];
        snprintf(nx, sizeof nx, "crop%d_x", k), snprintf(nb, sizeof nb, "crop%d_boxes", k);
        snprintf(nf, sizeof nf, "crop%d_flips", k), snprintf(ny, sizeof ny, "crop%d_y", k);
        const clpdd_st_tensor *tx = clpdd_st_find(f, nx), *ty = clpdd_st_find(f, ny);
        cr_assert(tx && ty && tx->ndim == 4 && ty->ndim == 4, "fixture case %d", k);
        int n = (int)tx->shape[0], C = (int)tx->shape[1], H = (int)tx->shape[2], W = (int)tx->shape[3];
        int OH = (int)ty->shape[2], OW = (int)ty->shape[3];
        int64_t Ny;
        float *x = st_get(f, nx, NULL), *boxes = st_get(f, nb, NULL), *fl = st_get(f, nf, NULL), *want = st_get(f, ny, &Ny);
        int32_t *flips = calloc(n, sizeof(int32_t));
        for (int b = 0; b < n; b++) flips[b] = (int32_t)fl[b];
        float *y = fa((size_t)Ny);
        poison(y, (size_t)Ny);
        O->crop_resize_bilinear(y, x, boxes, flips, n, C, H, W, OH, OW);
        /* torch computes in float32 too: a few ulp apart at most */
        double err = test_rel_err(y, want, (size_t)Ny);
        cr_expect(err <= TOL_ELEM * 4, "case %d (%dx%d -> %dx%d): normalised error %.3g vs torchvision", k, H, W, OH, OW, err);
        free(x), free(boxes), free(fl), free(want), free(flips), free(y);
    }
    int64_t ncfg;
    float *cfgs = st_get(f, "rrc_cfg", &ncfg), *us = st_get(f, "rrc_u", NULL), *want = st_get(f, "rrc_box", NULL);
    ncfg /= 6;
    for (int i = 0; i < ncfg; i++) {
        const float *c6 = cfgs + 6 * i;
        clpdd_augment_cfg cfg;
        clpdd_augment_cfg_default(&cfg);
        cfg.scale_lo = c6[2], cfg.scale_hi = c6[3], cfg.ratio_lo = c6[4], cfg.ratio_hi = c6[5];
        double u[40];
        for (int k = 0; k < 40; k++) u[k] = us[40 * i + k];
        float box[4];
        clpdd_augment_crop_box(&cfg, (int)c6[0], (int)c6[1], u, box);
        const float *w = want + 4 * i;
        cr_expect(box[0] == w[0] && box[1] == w[1] && box[2] == w[2] && box[3] == w[3],
                  "RandomResizedCrop %d (%gx%g, scale [%g, %g], ratio [%g, %g]): (%g %g %g %g), torchvision (%g %g %g %g)", i,
                  c6[0], c6[1], c6[2], c6[3], c6[4], c6[5], box[0], box[1], box[2], box[3], w[0], w[1], w[2], w[3]);
    }
    free(cfgs), free(us), free(want);
    clpdd_st_close(f);
}
