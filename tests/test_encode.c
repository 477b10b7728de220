/* The chunked synthetic-set encoder (recompute k images at a time) gives the same features and
 * the same pixel gradients as one tape over all m images. Real mnist-vit weights; the images
 * go through the adapter (28×28 grey, normalised). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "encoder/encode.h"
#include "plugin/host.h"
#include "support.h"

static void encode(int chunk, const char *cfg, const float *X, const float *dphi, int m, float *phi, float *dX) {
    const clpdd_plugin *p = test_plugin("vit");
    cr_assert_not_null(p);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("backbone", cfg, p->keys, p->n_keys, &e);
    cr_assert_not_null(s, "%s", e.msg);
    clpdd_backbone bb = {h, p, p->vtable, NULL, {0}, "backbone=vit (test)", CLPDD_ADAPT_RESIZE, CLPDD_PRECISION_FP32};
    cr_assert_eq(bb.vt->create(h, s, &bb.self), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(bb.vt->describe(bb.self, &bb.info), 0);
    clpdd_encoder en;
    cr_assert_eq(clpdd_encoder_init(&en, &bb, m, chunk, 1, 28, 28, &e), 0, "%s", e.msg);
    size_t px = 28 * 28, d = (size_t)bb.info.feature_dim;
    float *dXs = h->alloc(h, m * px * 4), *dX_in = h->alloc(h, m * px * 4);
    float *dphis = h->alloc(h, m * d * 4), *dphi_in = h->alloc(h, m * d * 4);
    h->ops->to_device(dX_in, X, m * px * 4);
    h->ops->to_device(dphi_in, dphi, m * d * 4);
    cr_assert_eq(clpdd_encoder_forward(&en, dphis, dX_in, &e), 0, "%s", e.msg);
    h->ops->to_host(phi, dphis, m * d * 4);
    cr_assert_eq(clpdd_encoder_backward(&en, dXs, dphi_in, dX_in, &e), 0, "%s", e.msg);
    h->ops->to_host(dX, dXs, m * px * 4);
    clpdd_encoder_free(&en);
    bb.vt->destroy(bb.self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

Test(encode, chunked_equals_one_tape) {
    test_model_file("mnist-vit.safetensors"); /* asserts the checkpoint is there */
    const char *cfgs[] = {"", "batch = 2"}; /* inference in pieces of the plugin's batch, or of 2 */
    int m = 7;
    size_t px = 28 * 28, d = 64;
    float *X = malloc(m * px * 4), *dphi = malloc(m * d * 4);
    test_fill_uniform(X, m * px, 0, 1, 11);
    test_fill_normal(dphi, m * d, 1, 12);
    for (int k = 0; k < 2; k++) {
        float *phi0 = malloc(m * d * 4), *phi3 = malloc(m * d * 4), *dX0 = malloc(m * px * 4), *dX3 = malloc(m * px * 4);
        encode(0, cfgs[k], X, dphi, m, phi0, dX0);
        encode(3, cfgs[k], X, dphi, m, phi3, dX3); /* chunks of 3, 3, 1 */
        /* the same ops on the same images in the same order: equal up to BLAS blocking */
        cr_expect_lt(test_rel_err(phi3, phi0, m * d), 1e-6, "features (%s)", cfgs[k]);
        cr_expect_lt(test_rel_err(dX3, dX0, m * px), 1e-6, "pixel gradients (%s)", cfgs[k]);
        free(phi0), free(phi3), free(dX0), free(dX3);
    }
    free(X), free(dphi);
}
