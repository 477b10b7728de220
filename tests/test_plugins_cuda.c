/* The plugins on the CUDA backend against the same plugins on the CPU reference: one plugin
 * source, two device-op tables, the same function (normalised error). Skips without a GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "plugin/host.h"
#include "support.h"

#define cuda_or_skip test_cuda_or_skip
#define up test_dev_upload /* shared helpers (support.h) */

/* device buffer with host contents */
static void down(const clpdd_host *h, float *x, const float *d, size_t n) { h->ops->to_host(x, d, n * sizeof(float)); }

/* vit: features and input gradients of m images, on one device */
static void vit_on(const clpdd_ops *ops, const float *img, const float *dfeat, int m, float *feat, float *dimg, size_t px,
                   int d) {
    const clpdd_plugin *p = test_plugin("vit");
    cr_assert_not_null(p);
    const clpdd_backbone_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(ops, 0);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("backbone", "batch = 5", p->keys, p->n_keys, &e);
    cr_assert_not_null(s, "%s", e.msg);
    void *self, *tape;
    cr_assert_eq(vt->create(h, s, &self), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->tape_create(self, m, &tape), 0, "%s", clpdd_host_error(h));
    float *x = up(h, img, (size_t)m * px), *f = h->alloc(h, (size_t)m * d * sizeof(float));
    float *df = up(h, dfeat, (size_t)m * d), *dx = h->alloc(h, (size_t)m * px * sizeof(float));
    cr_assert_eq(vt->forward(self, f, x, m, tape), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->backward(self, dx, df, m, tape), 0, "%s", clpdd_host_error(h));
    down(h, feat, f, (size_t)m * d);
    down(h, dimg, dx, (size_t)m * px);
    /* inference path (chunks of 5) must give the taped features */
    float *f2 = h->alloc(h, (size_t)m * d * sizeof(float));
    cr_assert_eq(vt->forward(self, f2, x, m, NULL), 0, "%s", clpdd_host_error(h));
    float *feat2 = malloc((size_t)m * d * sizeof(float));
    down(h, feat2, f2, (size_t)m * d);
    cr_expect_lt(test_rel_err(feat2, feat, (size_t)m * d), 1e-6, "inference vs taped forward on %s", ops->name);
    free(feat2);
    vt->tape_destroy(self, tape);
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

Test(plugins_cuda, vit_matches_cpu) {
    const clpdd_ops *cuda = cuda_or_skip();
    test_model_file("mnist-vit.safetensors"); /* asserts the checkpoint is there */
    int m = 12, d = 64;
    size_t px = 28 * 28;
    float *img = malloc(m * px * 4), *df = malloc((size_t)m * d * 4);
    test_fill_normal(img, m * px, 1.0f, 1);
    test_fill_normal(df, (size_t)m * d, 1.0f, 2);
    float *fc = malloc((size_t)m * d * 4), *fg = malloc((size_t)m * d * 4);
    float *gc = malloc(m * px * 4), *gg = malloc(m * px * 4);
    vit_on(clpdd_ops_cpu(), img, df, m, fc, gc, px, d);
    vit_on(cuda, img, df, m, fg, gg, px, d);
    /* fp32 through 6 blocks with different summation orders: ~1e-6; FP32 cuBLAS (no TF32) */
    double ef = test_rel_err(fg, fc, (size_t)m * d), eg = test_rel_err(gg, gc, m * px);
    cr_expect_lt(ef, 1e-5, "features: rel err %g", ef);
    cr_expect_lt(eg, 1e-4, "input gradients: rel err %g", eg);
    cr_log_info("vit cuda vs cpu: features %.2e, input gradients %.2e", ef, eg);
    free(img), free(df), free(fc), free(fg), free(gc), free(gg);
}

static void ridge_ce_on(const clpdd_ops *ops, const char *cfg, const float *phi, const float *Y, const float *phib,
                        const int32_t *yb, int m, int d, int C, int n, float *L, float *dphi) {
    const clpdd_plugin *ps = test_plugin("ridge"), *pl = test_plugin("ce");
    const clpdd_solver_vt *sv = ps->vtable;
    const clpdd_loss_vt *lv = pl->vtable;
    clpdd_host *h = clpdd_host_create(ops, 0);
    clpdd_err e;
    clpdd_section *ss = clpdd_section_from_string("solver", cfg, ps->keys, ps->n_keys, &e);
    clpdd_section *sl = clpdd_section_from_string("loss", "", pl->keys, pl->n_keys, &e);
    cr_assert(ss && sl);
    clpdd_solver_dims dims = {m, d, C, n};
    void *s, *l;
    cr_assert_eq(sv->create(h, ss, &dims, &s), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(lv->create(h, sl, C, n, &l), 0, "%s", clpdd_host_error(h));
    float *dp = up(h, phi, (size_t)m * d), *dY = up(h, Y, (size_t)m * C), *db = up(h, phib, (size_t)n * d);
    int32_t *dy = h->alloc(h, (size_t)n * sizeof(int32_t));
    ops->to_device(dy, yb, (size_t)n * sizeof(int32_t));
    float *Z = h->alloc(h, (size_t)n * C * 4), *dZ = h->alloc(h, (size_t)n * C * 4), *g = h->alloc(h, (size_t)m * d * 4);
    cr_assert_eq(sv->forward(s, Z, dp, dY, db, n), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(lv->forward(l, L, dZ, Z, dy, n), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(sv->backward(s, g, NULL, dZ), 0, "%s", clpdd_host_error(h));
    down(h, dphi, g, (size_t)m * d);
    lv->destroy(l);
    sv->destroy(s);
    clpdd_section_destroy(ss);
    clpdd_section_destroy(sl);
    clpdd_host_destroy(h);
}

Test(plugins_cuda, ridge_and_ce_match_cpu) {
    const clpdd_ops *cuda = cuda_or_skip();
    const char *cfgs[] = {"lambda = 0.1; bias = true; form = dual", "lambda = 0.1; bias = true; form = primal"};
    int m = 30, d = 20, C = 10, n = 257;
    float *phi = malloc((size_t)m * d * 4), *Y = calloc((size_t)m * C, 4), *phib = malloc((size_t)n * d * 4);
    int32_t *yb = malloc((size_t)n * 4);
    test_fill_normal(phi, (size_t)m * d, 1, 3);
    test_fill_normal(phib, (size_t)n * d, 1, 4);
    for (int i = 0; i < m; i++) Y[i * C + i % C] = 1;
    for (int i = 0; i < n; i++) yb[i] = (i * 7) % C;
    for (int k = 0; k < 2; k++) {
        float Lc, Lg, *gc = malloc((size_t)m * d * 4), *gg = malloc((size_t)m * d * 4);
        ridge_ce_on(clpdd_ops_cpu(), cfgs[k], phi, Y, phib, yb, m, d, C, n, &Lc, gc);
        ridge_ce_on(cuda, cfgs[k], phi, Y, phib, yb, m, d, C, n, &Lg, gg);
        cr_expect_lt(fabsf(Lg - Lc) / fabsf(Lc), 1e-5, "%s: loss %g vs %g", cfgs[k], Lg, Lc);
        double eg = test_rel_err(gg, gc, (size_t)m * d);
        cr_expect_lt(eg, 1e-4, "%s: dphi rel err %g", cfgs[k], eg);
        cr_log_info("ridge+ce cuda vs cpu (%s): loss %.2e, dphi %.2e", cfgs[k], fabsf(Lg - Lc) / fabsf(Lc), eg);
        free(gc), free(gg);
    }
    free(phi), free(Y), free(phib), free(yb);
}
