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

/* a fixture file by path (golden files: tools/check_encoder.py) */
static void fixture_load_path(fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "%s", path);
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

static void fixture_load(fixture *fx, const char *variant) {
    char file[128];
    snprintf(file, sizeof file, "vit_%s.safetensors", variant);
    fixture_load_path(fx, test_fixture(file));
}

static void fixture_free(fixture *fx) { free(fx->images), free(fx->dfeat), free(fx->feat), free(fx->grad); }

/* create from the fixture's keys + extra "k = v; ..." (NULL: none); returns the status. The
   weights are the fixture file itself unless its keys name them (a golden file). */
static int bb_create(clpdd_host *h, const fixture *fx, const char *extra, void **bb) {
    char text[8192], weights[4200] = "";
    if (!strstr(fx->cfg, "weights")) snprintf(weights, sizeof weights, "; weights = %s", fx->path);
    snprintf(text, sizeof text, "%s%s%s%s", fx->cfg, weights, extra ? "; " : "", extra ? extra : "");
    clpdd_err e = {{0}};
    clpdd_section *s = clpdd_section_from_string("backbone", text, g_desc->keys, g_desc->n_keys, &e);
    cr_assert(s, "config '%s': %s", text, e.msg);
    int rc = g_vt->create(h, s, bb);
    clpdd_section_destroy(s);
    return rc;
}


/* what a fixture is held to: features and input gradients (relative, ‖·‖₂) */
typedef struct tolerance {
    double feat, grad;
} tolerance;
static const tolerance tol_default = {1e-4, 1e-3};

/* features and input gradients of the fixture's images vs the reference's float64; extra keys
   (NULL: none) change the configuration; tol NULL: only measure. Returns the features' error;
   *eg_out the gradients'. */
static double run_fixture(const fixture *cfx, const char *variant, const char *extra, double *eg_out,
                          const tolerance *tol) {
    fixture fx = *cfx;
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

    if (tol) {
        cr_log_info("vit %s vs its reference: features rel err %.3g, input gradients %.3g (taped vs chunked %.2g)",
                    variant, ef, eg, et);
        cr_expect(ef <= tol->feat, "%s: features rel err %.3g > %g vs the reference", variant, ef, tol->feat);
        cr_expect(eg <= tol->grad, "%s: input gradients rel err %.3g > %g vs the reference", variant, eg, tol->grad);
        cr_expect(et <= 1e-6, "%s: taped forward differs from chunked inference (rel %.3g)", variant, et);
    }
    if (eg_out) *eg_out = eg;

    g_vt->tape_destroy(bb, tape);
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
    free(hf), free(hf2), free(hg);
    return ef;
}

static double run_variant(const char *variant, const char *extra, double *eg_out, const tolerance *tol) {
    fixture fx;
    fixture_load(&fx, variant);
    double ef = run_fixture(&fx, variant, extra, eg_out, tol);
    fixture_free(&fx);
    return ef;
}

static void check_variant(const char *variant) { run_variant(variant, NULL, NULL, &tol_default); }

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
        {"pos_hub", "pos_resample = plain"},  /* the table resampled as timm without antialias, not as the hub */
        {"pos_timm", "pos_resample = plain"}, /* without timm's antialias */
        {"pos_plain", "pos_resample = hub"},  /* the hub's (G + 0.1) step where plain's G0/G is meant */
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
        double ef = run_variant(cases[i].variant, cases[i].extra, NULL, NULL);
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
    const char *want[] = {"variant",    "weights",  "act",      "qkv_bias",     "layer_scale", "norm_pre",
                          "registers",  "pos_grid", "pool",     "proj",         "rope",        "rope_ref",
                          "mlp_ratio",  "pos_prefix", "layout", "key_prefix", "pos_resample"};
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
    /* the choices' order is the C enums' (h->cfg_enum) */
    for (int j = 0; j < g_desc->n_keys; j++) {
        if (!strcmp(g_desc->keys[j].name, "pos_resample")) cr_expect_str_eq(g_desc->keys[j].choices, "plain|timm|hub");
        if (!strcmp(g_desc->keys[j].name, "layout")) cr_expect_str_eq(g_desc->keys[j].choices, "auto|timm|open_clip");
    }
}

/* ---- position tables resampled as each reference runs the encoder ----
 * vit_pos_{plain,timm,hub}.safetensors: a dinov2-style model (2 blocks, width 32) whose 37×37
 * table is brought to the 16×16 grid of 32-px images as timm's resample_abs_pos_embed without
 * antialias (plain), timm's pretrained loading with it (timm), and the DINOv2 repository's
 * interpolate_pos_encoding (hub: the config leaves pos_resample to dinov2's default). Each
 * holds the reference's resampled table (float32, PyTorch's kernels) besides its features. */

#include "../plugins/backbones/vit/vit_pos.c" /* test seam: the resampling routine itself */

static const char *const pos_fixtures[VIT_RESAMPLE_COUNT] = {"pos_plain", "pos_timm", "pos_hub"};

/* fp32 through 2 blocks of width 32 from float64: features and input gradients ~1e-6. The
   table itself agrees to ~1e-7 (plain, timm) and ~7e-7 (hub, whose step 37/16.1 is no short
   binary fraction: PyTorch rounds each source coordinate, ~36, to float (ulp 4e-6), the plugin
   keeps it in double). A mode's arithmetic off anywhere (a = −0.75 for −0.5, the +0.1 offset, a
   tap, the border) moves the table by ≥ 1e-3 (fixtures_detect_a_wrong_architecture). */
static const tolerance tol_pos = {1e-5, 1e-5};

Test(vit_variants, pos_tables_match_pytorch) {
    for (int m = 0; m < VIT_RESAMPLE_COUNT; m++) {
        char file[64];
        snprintf(file, sizeof file, "vit_%s.safetensors", pos_fixtures[m]);
        clpdd_st_file *f;
        clpdd_err e;
        cr_assert_eq(clpdd_st_open(test_fixture(file), &f, &e), 0, "%s", e.msg);
        size_t npos, nref;
        const clpdd_st_tensor *tp, *tr;
        float *pos = read_f32(f, "pos_embed", &npos, &tp), *ref = read_f32(f, "fixture.pos_table", &nref, &tr);
        const int D = (int)tp->shape[2], G0 = 37, G = 16;
        cr_assert_eq(tp->shape[1], 1 + G0 * G0, "%s: pos_embed rows", file);
        cr_assert_eq(nref, (size_t)G * G * D, "%s: fixture.pos_table size", file);
        float *out = malloc(nref * sizeof(float));
        cr_assert_eq(vit_pos_resample(out, pos + D, G0, G, D, (vit_resample)m), 0);
        double err = test_rel_err(out, ref, nref);
        cr_log_info("vit pos_resample = %s: table rel err %.3g vs PyTorch", pos_fixtures[m] + 4, err);
        cr_expect(err <= 2e-6, "%s: resampled table rel err %.3g > 2e-6", file, err);
        free(pos), free(ref), free(out);
        clpdd_st_close(f);
    }
}

/* vit_pos_tables.safetensors: random (G0, G0, 3) tables and PyTorch's results at smaller and
   larger grids (clpdd.cases "G0xG;..."), each mode: the antialiased filter's widened support
   (downscale) and plain support with renormalised border taps (upscale), hub's step either way */
Test(vit_variants, pos_tables_smaller_and_larger_grids) {
    clpdd_st_file *f;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(test_fixture("vit_pos_tables.safetensors"), &f, &e), 0, "%s", e.msg);
    const char *cases = clpdd_st_metadata(f, "clpdd.cases");
    cr_assert(cases, "vit_pos_tables.safetensors: no clpdd.cases (tools/export_timm.py --variant pos_tables)");
    int i = 0, G0, G, used;
    double worst = 0;
    for (const char *c = cases; sscanf(c, "%dx%d%n", &G0, &G, &used) == 2; c += used + (c[used] == ';'), i++) {
        char name[64];
        snprintf(name, sizeof name, "case%d.src", i);
        size_t ns, nr;
        const clpdd_st_tensor *ts;
        float *src = read_f32(f, name, &ns, &ts);
        const int D = (int)ts->shape[2];
        for (int m = 0; m < VIT_RESAMPLE_COUNT; m++) {
            snprintf(name, sizeof name, "case%d.%s", i, pos_fixtures[m] + 4);
            float *ref = read_f32(f, name, &nr, NULL), *out = malloc(nr * sizeof(float));
            cr_assert_eq(nr, (size_t)G * G * D);
            cr_assert_eq(vit_pos_resample(out, src, G0, G, D, (vit_resample)m), 0, "%s", name);
            double err = test_rel_err(out, ref, nr);
            worst = err > worst ? err : worst;
            cr_expect(err <= 2e-6, "pos_resample = %s, %d -> %d: table rel err %.3g > 2e-6", pos_fixtures[m] + 4, G0,
                      G, err);
            free(ref), free(out);
        }
        free(src);
    }
    cr_expect_eq(i, 7, "cases read: %d ('%s')", i, cases);
    cr_log_info("vit pos_resample, every mode at %s: worst table rel err %.3g vs PyTorch", cases, worst);
    clpdd_st_close(f);
}

Test(vit_variants, pos_resample_plain) { run_variant("pos_plain", NULL, NULL, &tol_pos); }
Test(vit_variants, pos_resample_timm) { run_variant("pos_timm", NULL, NULL, &tol_pos); }
Test(vit_variants, pos_resample_hub_is_dinov2s_default) { run_variant("pos_hub", NULL, NULL, &tol_pos); }

Test(vit_variants, pos_resample_default_per_variant) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    const char *want[][2] = {{"dinov2", "hub"}, {"deit", "plain"}, {"eva02", "plain"}, {"lucid", "plain"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char text[128], buf[64];
        snprintf(text, sizeof text, "variant = %s", want[i][0]);
        clpdd_section *s = test_section(g_desc, "backbone", text);
        const char *got = g_desc->key_default(h, s, "pos_resample", buf, sizeof buf);
        cr_expect(got && !strcmp(got, want[i][1]), "%s: pos_resample default '%s', want '%s'", want[i][0],
                  got ? got : "(declared)", want[i][1]);
        clpdd_section_destroy(s);
    }
    clpdd_host_destroy(h);
}

/* ---- checkpoint layouts ----
 * vit_openclip.safetensors: open_clip's VisionTransformer (QuickGELU, OpenAI's layout under
 * visual.: conv1 without bias, class_embedding (D), positional_embedding (T, D), fused in_proj,
 * c_fc / c_proj, ln_post, proj (D, E)) and its own float64 output. vit_mocov3 ships its
 * weights under module.base_encoder., as MoCo v3's checkpoint does. */

Test(vit_variants, open_clip_layout_found_from_the_file) { check_variant("openclip"); }
Test(vit_variants, open_clip_layout_named) { run_variant("openclip", "layout = open_clip", NULL, &tol_default); }
Test(vit_variants, key_prefix_found_from_the_file) { check_variant("mocov3"); }
Test(vit_variants, key_prefix_named) {
    run_variant("mocov3", "key_prefix = module.base_encoder.", NULL, &tol_default);
    run_variant("mocov3", "layout = timm; key_prefix = module.base_encoder.", NULL, &tol_default);
}

Test(vit_variants, layout_errors_name_the_file_and_keys) {
    expect_create_error("openclip", "layout = timm", "no tensor 'patch_embed.proj.weight'");
    expect_create_error("mocov3", "layout = timm", "no tensor 'patch_embed.proj.weight'");
    expect_create_error("mocov3", "key_prefix = base.", "no patch embedding of a known layout ('base.patch_embed.proj");
    expect_create_error("mocov3", "key_prefix = base.", "set layout and key_prefix");
    expect_create_error("vit", "layout = open_clip", "no tensor 'visual.conv1.weight'");
    /* open_clip has no SwiGLU MLP: the variant's flags name what is missing */
    expect_create_error("openclip", "layout = open_clip; act = swiglu", "has no tensor names for a SwiGLU MLP");
}

/* a file with both layouts' patch embeddings: layout = auto refuses to guess */
Test(vit_variants, ambiguous_layout_is_an_error) {
    char dir[4096], path[4200];
    test_tmpdir_make(dir, sizeof dir, "vit_layout");
    snprintf(path, sizeof path, "%s/both.safetensors", dir);
    static const float w[16 * 3 * 4 * 4];
    clpdd_st_entry ent[2] = {
        {"patch_embed.proj.weight", CLPDD_DT_F32, 4, {16, 3, 4, 4}, w},
        {"visual.conv1.weight", CLPDD_DT_F32, 4, {16, 3, 4, 4}, w},
    };
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(path, ent, 2, NULL, NULL, 0, &e), 0, "%s", e.msg);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    char text[4400];
    snprintf(text, sizeof text, "variant = vit; image_size = 16; patch = 4; dim = 16; depth = 1; heads = 2; weights = %s",
             path);
    clpdd_section *s = test_section(g_desc, "backbone", text);
    void *bb = NULL;
    cr_expect_neq(g_vt->create(h, s, &bb), 0);
    const char *want = "more than one layout fits ('patch_embed.proj.weight', 'visual.conv1.weight')";
    cr_expect(strstr(clpdd_host_error(h), want), "message: %s", clpdd_host_error(h));
    cr_expect(strstr(clpdd_host_error(h), "both.safetensors"), "message names the file: %s", clpdd_host_error(h));
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
    test_tmpdir_remove(dir);
}

/* ---- a golden file on real weights (tools/check_encoder.py sets CLPDD_VIT_GOLDEN) ----
 * Its clpdd.config names the weights; the reference's float64 features and input gradient of
 * 2+ images. Skipped unless the variable is set. */
Test(vit_golden, file_from_environment) {
    const char *path = getenv("CLPDD_VIT_GOLDEN");
    if (!path || !*path) cr_skip_test("CLPDD_VIT_GOLDEN not set (tools/check_encoder.py sets it)");
    load_plugin();
    fixture fx;
    fixture_load_path(&fx, path);
    double eg = 0, ef = run_fixture(&fx, "golden", NULL, &eg, NULL);
    /* the line tools/check_encoder.py reads */
    printf("clpdd-golden: features %.6e input_grad %.6e\n", ef, eg);
    fflush(stdout);
    fixture_free(&fx);
}
