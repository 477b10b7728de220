/* vit backbone plugin, every timm-family variant against PyTorch/timm: the fixtures
 * tests/fixtures/vit_<variant>.safetensors (written by tools/export_timm.py) hold a tiny
 * random model under timm's own tensor names, a batch of normalised images, a random
 * feature gradient, and timm's float64 features and input gradients (autograd). The plugin
 * loads the same file as its weights (the fixture.* tensors are ignored), runs on the CPU
 * ops, and must reproduce features to 1e-4 and input gradients to 1e-3 (relative, ‖·‖₂).
 *
 * Why those tolerances: the plugin is fp32 and the reference float64 from the same fp32
 * weights; through 2 blocks of width ≤ 24 the fp32 rounding is ~1e-6 relative, and the
 * input gradient (a longer chain, divided by LayerNorm standard deviations) ~1e-5. A
 * mistake in a name map, a flag, an epsilon, the RoPE layout, the position resampling or
 * the pooling moves the features by ≫ 1e-3.
 *
 * Also: chunked inference = taped forward; the error paths a user can hit with these files
 * (wrong shape, a flag that disagrees with the checkpoint, a missing tensor).
 *
 * Legend: n images, c channels, S side, d feature width. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ini.h"
#include "plugin/host.h"
#include "io/safetensors.h"
#include "support.h"

#define dev_upload test_dev_upload /* shared helpers (support.h) */

static const clpdd_plugin *g_desc;
static const clpdd_backbone_vt *g_vt;

static void load_plugin(void) {
    g_desc = test_plugin("vit");
    cr_assert(g_desc, "cannot load the vit plugin from the build tree");
    g_vt = g_desc->vtable;
}

TestSuite(vit_variants, .init = load_plugin);

/* ---- the fixture ---- */

typedef struct fixture {
    char path[4096];
    char cfg[1024]; /* the plugin's keys from the file's metadata */
    int n, c, S, d;
    float *images, *dfeat;  /* (n, c, S, S), (n, d) */
    double *feat, *grad;    /* (n, d), (n, c, S, S) */
} fixture;

static float *read_f32(clpdd_st_file *f, const char *name, size_t *numel, const clpdd_st_tensor **tt) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    cr_assert(t, "%s: no tensor %s (regenerate with tools/export_timm.py)", clpdd_st_path(f), name);
    *numel = (size_t)clpdd_st_numel(t);
    float *x = malloc(*numel * sizeof(float));
    clpdd_err e;
    cr_assert_eq(clpdd_st_read_f32(f, t, x, &e), 0, "%s", e.msg);
    if (tt) *tt = t;
    return x;
}

/* the float64 reference, read exactly (F64 on disk) */
static double *read_f64(clpdd_st_file *f, const char *name, size_t want) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    cr_assert(t, "%s: no tensor %s", clpdd_st_path(f), name);
    cr_assert_eq(t->dtype, CLPDD_DT_F64, "%s: %s is %s, expected F64", clpdd_st_path(f), name, clpdd_dtype_name(t->dtype));
    cr_assert_eq((size_t)clpdd_st_numel(t), want, "%s: %s has %lld values, expected %zu", clpdd_st_path(f), name,
                 (long long)clpdd_st_numel(t), want);
    double *x = malloc(want * sizeof(double));
    clpdd_err e;
    cr_assert_eq(clpdd_st_read_raw(f, t, x, &e), 0, "%s", e.msg);
    return x;
}

static void fixture_load(fixture *fx, const char *variant) {
    memset(fx, 0, sizeof *fx);
    char file[128];
    snprintf(file, sizeof file, "vit_%s.safetensors", variant);
    snprintf(fx->path, sizeof fx->path, "%s", test_fixture(file));
    clpdd_st_file *f;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(fx->path, &f, &e), 0, "%s", e.msg);
    const char *cfg = clpdd_st_metadata(f, "clpdd.config");
    cr_assert(cfg, "%s: no clpdd.config metadata", fx->path);
    snprintf(fx->cfg, sizeof fx->cfg, "%s", cfg);
    size_t ni, nd;
    const clpdd_st_tensor *ti, *td;
    fx->images = read_f32(f, "fixture.images", &ni, &ti);
    fx->dfeat = read_f32(f, "fixture.dfeatures", &nd, &td);
    cr_assert_eq(ti->ndim, 4);
    cr_assert_eq(td->ndim, 2);
    fx->n = (int)ti->shape[0];
    fx->c = (int)ti->shape[1];
    fx->S = (int)ti->shape[2];
    fx->d = (int)td->shape[1];
    fx->feat = read_f64(f, "fixture.features", nd);
    fx->grad = read_f64(f, "fixture.input_grad", ni);
    clpdd_st_close(f);
}

static void fixture_free(fixture *fx) { free(fx->images), free(fx->dfeat), free(fx->feat), free(fx->grad); }

/* create from the fixture's keys + extra "k = v; ..." (NULL: none); returns the status */
static int bb_create(clpdd_host *h, const fixture *fx, const char *extra, void **bb) {
    char text[8192];
    snprintf(text, sizeof text, "%s; weights = %s%s%s", fx->cfg, fx->path, extra ? "; " : "", extra ? extra : "");
    clpdd_err e = {{0}};
    clpdd_section *s = clpdd_section_from_string("backbone", text, g_desc->keys, g_desc->n_keys, &e);
    cr_assert(s, "config '%s': %s", text, e.msg);
    int rc = g_vt->create(h, s, bb);
    clpdd_section_destroy(s);
    return rc;
}


/* features and input gradients of the fixture's images vs timm's float64; extra keys (NULL:
   none) change the configuration. Returns the features' error; *eg_out the gradients'. */
static double run_variant(const char *variant, const char *extra, double *eg_out, int judge) {
    fixture fx;
    fixture_load(&fx, variant);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL;
    /* batch 2 over n = 3 images: inference runs in pieces 2 + 1 */
    char keys[256];
    snprintf(keys, sizeof keys, "batch = 2%s%s", extra ? "; " : "", extra ? extra : "");
    cr_assert_eq(bb_create(h, &fx, keys, &bb), 0, "%s: create: %s", variant, clpdd_host_error(h));
    clpdd_backbone_info info;
    cr_assert_eq(g_vt->describe(bb, &info), 0);
    cr_assert_eq(info.feature_dim, fx.d, "%s: feature_dim %d, fixture %d", variant, info.feature_dim, fx.d);
    cr_assert_eq(info.channels, fx.c);
    cr_assert_eq(info.height, fx.S);

    const int n = fx.n, d = fx.d;
    const size_t nin = (size_t)n * fx.c * fx.S * fx.S, nf = (size_t)n * d;
    float *x = dev_upload(h, fx.images, nin), *df = dev_upload(h, fx.dfeat, nf);
    float *feat = h->alloc(h, nf * sizeof(float)), *dimg = h->alloc(h, nin * sizeof(float));
    float *hf = malloc(nf * sizeof(float)), *hf2 = malloc(nf * sizeof(float)), *hg = malloc(nin * sizeof(float));

    h->ops->fill(feat, NAN, nf);
    cr_assert_eq(g_vt->forward(bb, feat, x, n, NULL), 0, "%s: %s", variant, clpdd_host_error(h));
    h->ops->to_host(hf, feat, nf * sizeof(float));
    double ef = test_rel_err_fd(hf, fx.feat, nf);

    void *tape = NULL;
    cr_assert_eq(g_vt->tape_create(bb, n, &tape), 0, "%s", clpdd_host_error(h));
    h->ops->fill(feat, NAN, nf);
    cr_assert_eq(g_vt->forward(bb, feat, x, n, tape), 0, "%s", clpdd_host_error(h));
    h->ops->to_host(hf2, feat, nf * sizeof(float));
    double et = test_rel_err(hf2, hf, nf);
    h->ops->fill(dimg, NAN, nin);
    cr_assert_eq(g_vt->backward(bb, dimg, df, n, tape), 0, "%s", clpdd_host_error(h));
    h->ops->to_host(hg, dimg, nin * sizeof(float));
    double eg = test_rel_err_fd(hg, fx.grad, nin);

    if (judge) {
        cr_log_info("vit %s vs timm: features rel err %.3g, input gradients %.3g (taped vs chunked %.2g)", variant, ef,
                    eg, et);
        cr_expect(ef <= 1e-4, "%s: features rel err %.3g > 1e-4 vs timm", variant, ef);
        cr_expect(eg <= 1e-3, "%s: input gradients rel err %.3g > 1e-3 vs timm", variant, eg);
        cr_expect(et <= 1e-6, "%s: taped forward differs from chunked inference (rel %.3g)", variant, et);
    }
    if (eg_out) *eg_out = eg;

    g_vt->tape_destroy(bb, tape);
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
    free(hf), free(hf2), free(hg);
    fixture_free(&fx);
    return ef;
}

static void check_variant(const char *variant) { run_variant(variant, NULL, NULL, 1); }

Test(vit_variants, vit) { check_variant("vit"); }
Test(vit_variants, deit_resampled_positions) { check_variant("deit"); }
Test(vit_variants, dinov2_registers_layer_scale_resampled) { check_variant("dinov2"); }
Test(vit_variants, clip) { check_variant("clip"); }
Test(vit_variants, mocov3) { check_variant("mocov3"); }
Test(vit_variants, eva02) { check_variant("eva02"); }

/* The fixtures discriminate: each feature that sets a variant apart, switched off or
   mis-set, moves the features > 10× beyond the tolerance (so passing above means something). */
Test(vit_variants, fixtures_detect_a_wrong_architecture) {
    struct {
        const char *variant, *extra;
    } cases[] = {
        {"eva02", "rope = false"},        /* no RoPE */
        {"eva02", "rope_ref = 0"},        /* RoPE without EVA's rescaling to the reference grid */
        {"clip", "act = gelu"},           /* GELU instead of QuickGELU */
        {"dinov2", "pos_prefix = true"},  /* timm's no_embed_class ignored: wrong table shape */
        {"deit", "norm_eps = 1e-1"},      /* a grossly wrong epsilon */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture fx;
        fixture_load(&fx, cases[i].variant);
        clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
        clpdd_host_set_quiet(h, 1);
        void *bb = NULL;
        int rc = bb_create(h, &fx, cases[i].extra, &bb);
        if (bb) g_vt->destroy(bb);
        clpdd_host_destroy(h);
        fixture_free(&fx);
        if (rc) continue; /* refused at load (a shape that no longer fits): also a detection */
        double ef = run_variant(cases[i].variant, cases[i].extra, NULL, 0);
        cr_expect(ef > 1e-3, "%s with '%s': features still within %.3g of timm", cases[i].variant, cases[i].extra, ef);
    }
}

/* ---- what a user can get wrong with these files ---- */

static void expect_create_error(const char *variant, const char *extra, const char *needle) {
    fixture fx;
    fixture_load(&fx, variant);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    size_t before = clpdd_host_bytes_in_use(h);
    void *bb = (void *)1;
    cr_expect_neq(bb_create(h, &fx, extra, &bb), 0, "%s + '%s' was accepted", variant, extra);
    cr_expect_null(bb);
    cr_expect(strstr(clpdd_host_error(h), needle), "%s + '%s': message '%s' lacks '%s'", variant, extra,
              clpdd_host_error(h), needle);
    cr_expect_eq(clpdd_host_bytes_in_use(h), before, "a failed create leaks device memory");
    clpdd_host_destroy(h);
    fixture_free(&fx);
}

Test(vit_variants, wrong_shape_names_the_tensor_and_shapes) {
    /* 3 registers configured, 2 in the file: names reg_token, its shape and the expected one */
    expect_create_error("dinov2", "registers = 3", "'reg_token' has shape [1, 2, 16], expected [1, 3, 16]");
    /* a width that disagrees */
    expect_create_error("vit", "mlp_dim = 50", "blocks.0.mlp.fc1.weight");
    /* the run's grid without pos_grid: the file's 4×4 position table is not 5×5 */
    expect_create_error("dinov2", "pos_grid = 0", "'pos_embed' has shape [1, 16, 16], expected [1, 25, 16]");
}

Test(vit_variants, flags_that_disagree_with_the_checkpoint) {
    expect_create_error("dinov2", "layer_scale = false", "has 'blocks.0.ls1.gamma' but layer_scale = false");
    expect_create_error("vit", "qkv_bias = false", "has 'blocks.0.attn.qkv.bias' but qkv_bias = false");
    expect_create_error("clip", "norm_pre = false", "has 'norm_pre.weight' but norm_pre = false");
    expect_create_error("eva02", "pool = cls", "no tensor 'norm.weight'");
    expect_create_error("vit", "act = swiglu", "blocks.0.mlp.fc1_g.weight");
    expect_create_error("eva02", "dim_head = 6; heads = 2", "dim_head 6 must be a multiple of 4");
}

Test(vit_variants, unknown_variant_is_a_config_error) {
    clpdd_err e = {{0}};
    clpdd_section *s = clpdd_section_from_string("backbone", "variant = swin", g_desc->keys, g_desc->n_keys, &e);
    cr_expect_null(s);
    cr_expect(strstr(e.msg, "variant"), "message: %s", e.msg);
    if (s) clpdd_section_destroy(s);
}

/* the same checkpoint at a 2× larger grid: the position table is resampled, not rejected,
   and the features stay finite and distinct from the native grid's */
Test(vit_variants, resampling_to_a_larger_grid) {
    fixture fx;
    fixture_load(&fx, "deit");
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL;
    cr_assert_eq(bb_create(h, &fx, "image_size = 32", &bb), 0, "%s", clpdd_host_error(h));
    const int n = 2, S = 32;
    const size_t nin = (size_t)n * 3 * S * S, nf = (size_t)n * fx.d;
    float *img = malloc(nin * sizeof(float));
    test_fill_normal(img, nin, 1.0f, 5);
    float *x = dev_upload(h, img, nin), *feat = h->alloc(h, nf * sizeof(float));
    cr_assert_eq(g_vt->forward(bb, feat, x, n, NULL), 0, "%s", clpdd_host_error(h));
    cr_expect(h->ops->all_finite(feat, nf));
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
    free(img);
    fixture_free(&fx);
}

Test(vit_variants, descriptor_keys) {
    const char *want[] = {"variant",  "weights", "act",  "qkv_bias", "layer_scale", "norm_pre", "registers",
                          "pos_grid", "pool",    "proj", "rope",     "rope_ref",    "mlp_ratio", "pos_prefix"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const clpdd_key *k = NULL;
        for (int j = 0; j < g_desc->n_keys; j++)
            if (!strcmp(g_desc->keys[j].name, want[i])) k = &g_desc->keys[j];
        cr_expect(k, "key %s not declared", want[i]);
        if (k) cr_expect(k->help && *k->help && k->default_value, "key %s: help and default", want[i]);
    }
    const clpdd_key *var = &g_desc->keys[0];
    cr_assert_str_eq(var->name, "variant");
    cr_expect_str_eq(var->choices, "lucid|vit|deit|dinov2|clip|mocov3|eva02");
}
