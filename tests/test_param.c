/* Parameterisations of the synthetic images (core/distill/param.c): pixels and LGM's pyramid.
 *
 * render against a float64 reference written here (each level upsampled with PyTorch's
 * bilinear rule, summed, Lucid's decorrelation, σ(2u)); backward against float64 central
 * finite differences of ⟨y, render_ref(v)⟩ (h = 1e-5: truncation ≈ 1e-10, round-off ≈ 1e-11, so
 * the FD gradient is exact far below float32 precision). Tolerances: TOL_FWD 1e-5 — float
 * source coordinates put ≈ 1e-6 relative error on the bilinear weights; TOL_GRAD 1e-5 — the same
 * plus a chain of σ′, a 3×3 product and the adjoint resampling, observed ≈ 1e-7.
 * Also: the level sizes and schedule, determinism, init images, per-level Adam.
 * Legend: m images, c channels, H×W, L levels. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "plugin/host.h"
#include "distill/param.h"
#include "support.h"

#define TOL_FWD 1e-5
#define TOL_GRAD 1e-5
#define FD_H 1e-5

static float *fa(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static void poison(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = NAN; }

/* ---- float64 reference ---- */
typedef struct {
    int m, c, H, W, L, active, decor;
    int hl[32], wl[32];
    size_t off[33];
    const double *y; /* (m, c, H, W) weights of the scalar ⟨y, render⟩ */
} ref_ctx;

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

/* Lucid's color_correlation_svd_sqrt / its largest column norm, written out independently */
static void ref_decor(double D[3][3]) {
    const double M[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};
    double n0 = sqrt(0.26 * 0.26 + 0.27 * 0.27 + 0.27 * 0.27); /* column 0 is the largest */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) D[i][j] = M[i][j] / n0;
}

static ref_ctx ref_setup(int m, int c, int H, int W) {
    ref_ctx r = {0};
    r.m = m, r.c = c, r.H = H, r.W = W;
    int mx = H > W ? H : W;
    r.L = 1;
    while ((1 << (r.L - 1)) < mx) r.L++;
    for (int l = 0; l < r.L; l++) {
        int s = 1 << l;
        r.hl[l] = l == r.L - 1 ? H : (s < H ? s : H);
        r.wl[l] = l == r.L - 1 ? W : (s < W ? s : W);
        r.off[l + 1] = r.off[l] + (size_t)m * c * r.hl[l] * r.wl[l];
    }
    r.active = r.L;
    r.decor = c == 3;
    return r;
}

static void ref_render(double *img, const double *v, const ref_ctx *r) {
    size_t HW = (size_t)r->H * r->W, N = (size_t)r->m * r->c * HW;
    double *z = calloc(N, sizeof(double)), *t = malloc(HW * sizeof(double));
    for (int l = 0; l < r->L; l++)
        for (int q = 0; q < r->m * r->c; q++) {
            ref_resize(t, v + r->off[l] + (size_t)q * r->hl[l] * r->wl[l], r->hl[l], r->wl[l], r->H, r->W);
            for (size_t i = 0; i < HW; i++) z[q * HW + i] += t[i];
        }
    double D[3][3];
    ref_decor(D);
    for (int b = 0; b < r->m; b++)
        for (size_t i = 0; i < HW; i++)
            for (int ch = 0; ch < r->c; ch++) {
                double u = 0;
                if (r->decor)
                    for (int k = 0; k < 3; k++) u += D[ch][k] * z[((size_t)b * 3 + k) * HW + i];
                else
                    u = z[((size_t)b * r->c + ch) * HW + i];
                img[((size_t)b * r->c + ch) * HW + i] = 1 / (1 + exp(-2 * u));
            }
    free(z), free(t);
}

static double ref_scalar(const double *v, void *ctx) {
    const ref_ctx *r = ctx;
    size_t N = (size_t)r->m * r->c * r->H * r->W;
    double *img = malloc(N * sizeof(double)), s = 0;
    ref_render(img, v, r);
    for (size_t i = 0; i < N; i++) s += r->y[i] * img[i];
    free(img);
    return s;
}

/* ---- helpers ---- */
static clpdd_param *make(clpdd_host *h, clpdd_param_kind kind, int every, int m, int c, int H, int W, const float *init,
                         uint64_t seed) {
    clpdd_param_cfg cfg;
    clpdd_param_cfg_default(&cfg);
    cfg.kind = kind;
    cfg.pyramid_every = every;
    clpdd_param *p;
    clpdd_err e;
    cr_assert_eq(clpdd_param_create(&p, h, &cfg, m, c, H, W, init, seed, &e), 0, "%s", e.msg);
    return p;
}

/* render vs the reference and backward vs FD at random values (std 0.7: σ away from flat) */
static void check_pyramid(int m, int c, int H, int W, int every, int steps) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_param *p = make(h, CLPDD_PARAM_PYRAMID, every, m, c, H, W, NULL, 1);
    for (int t = 1; t <= steps; t++) clpdd_param_on_step(p, t);
    ref_ctx r = ref_setup(m, c, H, W);
    cr_assert_eq(clpdd_param_levels(p), r.L);
    size_t cap = clpdd_param_capacity(p), N = (size_t)m * c * H * W;
    cr_assert_eq(cap, r.off[r.L]);
    float *v = clpdd_param_values(p), *img = fa(N), *dv = fa(cap), *yf = fa(N);
    test_fill_normal(v, cap, 0.7f, 40 + H);
    test_fill_normal(yf, N, 1, 50 + W);
    double *vd = malloc(cap * sizeof(double)), *yd = malloc(N * sizeof(double)), *ref = malloc(N * sizeof(double));
    double *g = malloc(cap * sizeof(double));
    for (size_t i = 0; i < cap; i++) vd[i] = v[i];
    for (size_t i = 0; i < N; i++) yd[i] = yf[i];
    ref_render(ref, vd, &r);
    poison(img, N);
    clpdd_param_render(p, img);
    double e = test_rel_err_fd(img, ref, N);
    cr_assert(e <= TOL_FWD, "render %dx%dx%d: normalised error %.3g", c, H, W, e);
    poison(dv, cap);
    clpdd_param_backward(p, dv, yf);
    r.y = yd;
    test_fd_grad(g, ref_scalar, vd, cap, FD_H, &r);
    size_t act = clpdd_param_count(p);
    e = test_rel_err_fd(dv, g, act);
    cr_assert(e <= TOL_GRAD, "backward %dx%dx%d (%zu of %zu active): normalised error %.3g vs FD", c, H, W, act, cap, e);
    for (size_t i = act; i < cap; i++) cr_assert_eq(dv[i], 0.0f, "inactive parameter %zu has gradient %g", i, dv[i]);
    free(img), free(dv), free(yf), free(vd), free(yd), free(ref), free(g);
    clpdd_param_destroy(p);
    clpdd_host_destroy(h);
}

Test(param, pyramid_rgb_render_and_gradient) { check_pyramid(2, 3, 8, 8, 0, 1); }
Test(param, pyramid_grey_nonsquare) { check_pyramid(3, 1, 6, 10, 0, 1); }
Test(param, pyramid_rgb_odd_partial_levels) { check_pyramid(2, 3, 7, 5, 2, 3); } /* 2 of 4 levels active */

Test(param, level_sizes_and_schedule) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    const int want28[6] = {1, 2, 4, 8, 16, 28};
    clpdd_param *p = make(h, CLPDD_PARAM_PYRAMID, 3, 2, 1, 28, 28, NULL, 0);
    cr_assert_eq(clpdd_param_levels(p), 6);
    size_t off = 0;
    for (int l = 0; l < 6; l++) {
        size_t o;
        int lh, lw;
        clpdd_param_level(p, l, &o, &lh, &lw);
        cr_expect(lh == want28[l] && lw == want28[l], "level %d is %dx%d", l, lh, lw);
        cr_expect_eq(o, off);
        off += (size_t)2 * lh * lw;
    }
    cr_expect_eq(clpdd_param_capacity(p), off);
    cr_expect_eq(clpdd_param_count(p), 2u);
    /* one level more at steps 4, 7, 10, 13, 16 */
    for (int t = 1; t <= 30; t++) {
        int grew = clpdd_param_on_step(p, t);
        int expect_grew = t > 1 && t <= 16 && (t - 1) % 3 == 0;
        cr_expect_eq(grew, expect_grew, "step %d: grew %d", t, grew);
        int act = 1 + (t - 1) / 3 > 6 ? 6 : 1 + (t - 1) / 3;
        cr_expect_eq(clpdd_param_active_levels(p), act, "step %d", t);
        size_t o;
        if (act < 6) clpdd_param_level(p, act, &o, NULL, NULL);
        else o = clpdd_param_capacity(p);
        cr_expect_eq(clpdd_param_count(p), o, "step %d: the active parameters are the prefix up to level %d", t, act);
    }
    clpdd_param_destroy(p);
    /* 224: 1 … 128 then 224; 32: 1 … 32; 1×1: one level; non-square 8×32: 1,2,4,8×8,8×16,8×32 */
    p = make(h, CLPDD_PARAM_PYRAMID, 0, 1, 3, 224, 224, NULL, 0);
    int lh;
    clpdd_param_level(p, 7, NULL, &lh, NULL);
    cr_expect(clpdd_param_levels(p) == 9 && lh == 128);
    cr_expect_eq(clpdd_param_active_levels(p), 9, "every = 0: all levels from the start");
    cr_expect_eq(clpdd_param_on_step(p, 1), 0);
    clpdd_param_destroy(p);
    p = make(h, CLPDD_PARAM_PYRAMID, 5, 1, 3, 32, 32, NULL, 0);
    cr_expect_eq(clpdd_param_levels(p), 6);
    clpdd_param_destroy(p);
    p = make(h, CLPDD_PARAM_PYRAMID, 5, 1, 3, 1, 1, NULL, 0);
    cr_expect_eq(clpdd_param_levels(p), 1);
    clpdd_param_destroy(p);
    p = make(h, CLPDD_PARAM_PYRAMID, 5, 1, 1, 8, 32, NULL, 0);
    int lw;
    cr_expect_eq(clpdd_param_levels(p), 6);
    clpdd_param_level(p, 4, NULL, &lh, &lw);
    cr_expect(lh == 8 && lw == 16, "level 4 of 8x32 is %dx%d", lh, lw);
    clpdd_param_destroy(p);
    clpdd_host_destroy(h);
}

Test(param, deterministic_and_growth_keeps_images) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    int m = 3, c = 3, H = 16, W = 16;
    size_t N = (size_t)m * c * H * W;
    clpdd_param *a = make(h, CLPDD_PARAM_PYRAMID, 2, m, c, H, W, NULL, 9), *b = make(h, CLPDD_PARAM_PYRAMID, 2, m, c, H, W, NULL, 9);
    clpdd_param *o = make(h, CLPDD_PARAM_PYRAMID, 2, m, c, H, W, NULL, 10);
    size_t cap = clpdd_param_capacity(a);
    cr_assert_arr_eq(clpdd_param_values(a), clpdd_param_values(b), cap * sizeof(float), "same seed: same init");
    cr_expect(memcmp(clpdd_param_values(a), clpdd_param_values(o), clpdd_param_count(a) * sizeof(float)) != 0,
              "another seed: another init");
    /* small noise init: images ≈ ½; adding a level (zero) leaves them unchanged */
    float *i1 = fa(N), *i2 = fa(N);
    clpdd_param_on_step(a, 1);
    clpdd_param_render(a, i1);
    for (size_t i = 0; i < N; i++) cr_assert(fabsf(i1[i] - 0.5f) < 0.1f, "pixel %zu = %g", i, i1[i]);
    cr_assert_eq(clpdd_param_on_step(a, 3), 1);
    clpdd_param_render(a, i2);
    cr_assert_arr_eq(i1, i2, N * sizeof(float), "a new level starts at zero");
    free(i1), free(i2);
    clpdd_param_destroy(a), clpdd_param_destroy(b), clpdd_param_destroy(o);
    clpdd_host_destroy(h);
}

Test(param, init_images) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    int m = 2, H = 12, W = 9;
    for (int c = 1; c <= 3; c += 2) {
        size_t N = (size_t)m * c * H * W;
        float *x = fa(N), *img = fa(N);
        test_fill_uniform(x, N, 0.02f, 0.98f, 3);
        clpdd_param *p = make(h, CLPDD_PARAM_PYRAMID, 100, m, c, H, W, x, 0);
        clpdd_param_on_step(p, 1);
        clpdd_param_render(p, img);
        cr_assert(test_max_abs_diff(img, x, N) < 1e-5, "pyramid from init images, c = %d: max diff %g", c,
                  test_max_abs_diff(img, x, N));
        clpdd_param_destroy(p);
        p = make(h, CLPDD_PARAM_PIXELS, 0, m, c, H, W, x, 0);
        cr_assert_eq(clpdd_param_count(p), N);
        cr_assert_arr_eq(clpdd_param_values(p), x, N * sizeof(float));
        poison(img, N);
        clpdd_param_render(p, img);
        cr_assert_arr_eq(img, x, N * sizeof(float), "pixels render = copy");
        float *g = fa(N);
        poison(g, N);
        clpdd_param_backward(p, g, x);
        cr_assert_arr_eq(g, x, N * sizeof(float), "pixels backward = copy");
        cr_assert_eq(clpdd_param_on_step(p, 1), 0);
        clpdd_param_destroy(p);
        free(x), free(img), free(g);
    }
    /* pixels without init: the loop's U(0, 1) from (seed, 0) */
    size_t N = (size_t)2 * 3 * 4 * 4;
    float *u = fa(N);
    clpdd_ops_cpu()->rand_uniform(u, N, 0.0f, 1.0f, 42, 0);
    clpdd_param *p = make(h, CLPDD_PARAM_PIXELS, 0, 2, 3, 4, 4, NULL, 42);
    cr_assert_arr_eq(clpdd_param_values(p), u, N * sizeof(float));
    clpdd_param_destroy(p);
    free(u);
    clpdd_host_destroy(h);
}

/* a level added at step s is updated with t = step − s + 1: its first update is ±lr */
Test(param, adam_per_level_step) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    int m = 2, c = 1, H = 8, W = 8;
    size_t N = (size_t)m * c * H * W;
    clpdd_param *p = make(h, CLPDD_PARAM_PYRAMID, 2, m, c, H, W, NULL, 1);
    size_t cap = clpdd_param_capacity(p);
    float *am = fa(cap), *av = fa(cap), *g = fa(cap), *y = fa(N), *img = fa(N), *before = fa(cap);
    test_fill_normal(y, N, 1, 7);
    float lr = 0.01f;
    for (int t = 1; t <= 3; t++) {
        size_t old = clpdd_param_count(p);
        int grew = clpdd_param_on_step(p, t);
        clpdd_param_render(p, img);
        clpdd_param_backward(p, g, y);
        memcpy(before, clpdd_param_values(p), cap * sizeof(float));
        clpdd_param_adam(p, am, av, g, lr, 0.9f, 0.999f, 1e-8f, 0.0f);
        const float *v = clpdd_param_values(p);
        size_t act = clpdd_param_count(p);
        for (size_t i = act; i < cap; i++) cr_assert_eq(v[i], before[i], "inactive parameter %zu moved", i);
        if (t == 1 || grew) {
            size_t lo = t == 1 ? 0 : old;
            for (size_t i = lo; i < act; i++)
                if (fabsf(g[i]) > 1e-4f)
                    cr_assert(fabsf(fabsf(v[i] - before[i]) - lr) < 1e-3f * lr, "step %d, parameter %zu: update %g, want ±%g", t,
                              i, v[i] - before[i], lr);
        }
    }
    cr_assert_eq(clpdd_param_active_levels(p), 2);
    free(am), free(av), free(g), free(y), free(img), free(before);
    clpdd_param_destroy(p);
    clpdd_host_destroy(h);
}

Test(param, bad_config_is_an_error) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_param_cfg cfg;
    clpdd_param_cfg_default(&cfg);
    cfg.kind = CLPDD_PARAM_PYRAMID;
    cfg.pyramid_every = -1;
    clpdd_param *p;
    clpdd_err e;
    cr_expect_neq(clpdd_param_create(&p, h, &cfg, 1, 3, 8, 8, NULL, 0, &e), 0);
    cr_expect(strstr(e.msg, "pyramid_every") != NULL, "%s", e.msg);
    cr_expect_eq(clpdd_param_kind_parse("pyramid"), CLPDD_PARAM_PYRAMID);
    cr_expect_eq(clpdd_param_kind_parse("pixels"), CLPDD_PARAM_PIXELS);
    cr_expect_eq(clpdd_param_kind_parse("fourier"), -1);
    clpdd_host_destroy(h);
}
