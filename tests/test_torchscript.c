/* torchscript backbone plugin: TorchScript encoders through libtorch.
 *
 * (a) features and input gradients against PyTorch's float64 reference (golden files of
 *     tools/export_torchscript.py: the module in float64, its float32 weights promoted exactly);
 * (b) the same weights through torchscript and the native vit plugin: mnist-vit (lucid) and one
 *     tiny timm model per vit variant (tests/fixtures/vit_<variant>.safetensors → vit_<variant>.pt);
 * (c) inference in pieces, tapes, "=" semantics, a second backward;
 * (d) every bad input of the issue: an error naming the file.
 *
 * Without libtorch the plugin is not built: the executable says so and exits 77 (ctest: Skipped).
 *
 * Legend: n images, c channels, S side, d feature dim.
 *
 * Tolerances: 1e-5 normwise relative error. The float32 forward of these small encoders (width
 * ≤ 64, ≤ 6 blocks) rounds to ~1e-6 of the float64 reference; two float32 implementations of the
 * same maths (libtorch's kernels, the vit plugin's ops) differ by the same order. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clpdd/plugin.h"
#include "encoder/encode.h"
#include "io/ini.h"
#include "io/safetensors.h"
#include "plugin/host.h"
#include "support.h"

#define TOL 1e-5

/* loaded once here, before Criterion forks its workers: each then finds libtorch in place rather
   than spending a second loading it (the handle stays open for the executable's lifetime) */
__attribute__((constructor)) static void torchscript_gate(void) {
    if (access(CLPDD_PLUGIN_BUILD_DIR "/torchscript.so", R_OK) == 0) {
        if (!dlopen(CLPDD_PLUGIN_BUILD_DIR "/torchscript.so", RTLD_NOW | RTLD_LOCAL))
            fprintf(stderr, "test_torchscript: %s\n", dlerror());
        return;
    }
    printf("SKIPPED: the torchscript plugin is not built (libtorch not found: install libtorch-dev or set Torch_DIR)\n");
    fflush(stdout);
    _exit(77);
}

static const char *ts_fixture(const char *file) {
    static char buf[4][4096];
    static int slot;
    char *out = buf[slot];
    slot = (slot + 1) % 4;
    snprintf(out, sizeof buf[0], "%s/tests/fixtures/torchscript/%s", CLPDD_SOURCE_DIR, file);
    return out;
}

typedef struct bb {
    const clpdd_backbone_vt *vt;
    void *self;
    clpdd_backbone_info info;
} bb;

/* a backbone plugin from "k = v; ..."; returns create's status (the message on h) */
static int bb_open(clpdd_host *h, const char *plugin, const char *keys, bb *out) {
    const clpdd_plugin *p = test_plugin(plugin);
    cr_assert_not_null(p, "no plugin %s", plugin);
    memset(out, 0, sizeof *out);
    out->vt = p->vtable;
    clpdd_section *s = test_section(p, "backbone", keys);
    int rc = out->vt->create(h, s, &out->self);
    clpdd_section_destroy(s);
    if (!rc) cr_assert_eq(out->vt->describe(out->self, &out->info), 0);
    return rc;
}

static void bb_close(bb *b) {
    if (b->self) b->vt->destroy(b->self);
    b->self = NULL;
}

/* the features (n, d) and input gradient (n, c, S, S) of a taped forward + backward */
static void bb_run(bb *b, const float *x, const float *df, int n, float *f, float *dx) {
    void *tape = NULL;
    cr_assert_eq(b->vt->tape_create(b->self, n, &tape), 0);
    cr_assert_eq(b->vt->forward(b->self, f, x, n, tape), 0);
    cr_assert_eq(b->vt->backward(b->self, dx, df, n, tape), 0);
    b->vt->tape_destroy(b->self, tape);
}

/* a golden file: images, dfeatures (float32), features, input_grad (float64), the INI keys */
typedef struct golden {
    int n, c, S, d;
    float *x, *df;
    double *f, *dx;
    char keys[1024];
} golden;

static double *read_f64(clpdd_st_file *st, const char *name, size_t count) {
    const clpdd_st_tensor *t = clpdd_st_find(st, name);
    cr_assert_not_null(t, "%s: no %s", clpdd_st_path(st), name);
    cr_assert_eq(t->dtype, CLPDD_DT_F64);
    cr_assert_eq((size_t)clpdd_st_numel(t), count);
    double *out = malloc(count * sizeof *out);
    clpdd_err e;
    cr_assert_eq(clpdd_st_read_raw(st, t, out, &e), 0, "%s", e.msg);
    return out;
}

static golden golden_read(const char *path) {
    golden g;
    clpdd_st_file *st = NULL;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(path, &st, &e), 0, "%s", e.msg);
    const clpdd_st_tensor *xi = clpdd_st_find(st, "fixture.images"), *dfi = clpdd_st_find(st, "fixture.dfeatures");
    cr_assert(xi && dfi && xi->ndim == 4 && dfi->ndim == 2, "%s: not a golden file", path);
    g.n = (int)xi->shape[0];
    g.c = (int)xi->shape[1];
    g.S = (int)xi->shape[2];
    g.d = (int)dfi->shape[1];
    const size_t nx = (size_t)g.n * g.c * g.S * g.S, nf = (size_t)g.n * g.d;
    g.x = malloc(nx * sizeof(float));
    g.df = malloc(nf * sizeof(float));
    cr_assert_eq(clpdd_st_read_f32(st, xi, g.x, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_f32(st, dfi, g.df, &e), 0, "%s", e.msg);
    g.f = read_f64(st, "fixture.features", nf);
    g.dx = read_f64(st, "fixture.input_grad", nx);
    const char *keys = clpdd_st_metadata(st, "clpdd.config");
    cr_assert_not_null(keys);
    snprintf(g.keys, sizeof g.keys, "%s", keys);
    clpdd_st_close(st);
    return g;
}

static void golden_free(golden *g) {
    free(g->x);
    free(g->df);
    free(g->f);
    free(g->dx);
}

/* the golden file's keys with `file` made absolute */
static void ts_keys(const golden *g, const char *pt, char *out, size_t n) {
    const char *rest = strchr(g->keys, ';');
    snprintf(out, n, "file = %s%s", pt, rest ? rest : "");
}

/* (a) against the float64 reference; returns the golden file for (b) */
static void check_golden(clpdd_host *h, const char *pt, const char *gold, golden *g, bb *b) {
    *g = golden_read(gold);
    char keys[2048];
    ts_keys(g, pt, keys, sizeof keys);
    cr_assert_eq(bb_open(h, "torchscript", keys, b), 0, "%s: %s", pt, clpdd_host_error(h));
    cr_assert_eq(b->info.feature_dim, g->d);
    cr_assert_eq(b->info.channels, g->c);
    cr_assert_eq(b->info.height, g->S);
    cr_assert_str_eq(b->info.weights_id, pt);
    const size_t nx = (size_t)g->n * g->c * g->S * g->S, nf = (size_t)g->n * g->d;
    float *f = malloc(nf * sizeof(float)), *dx = malloc(nx * sizeof(float));
    bb_run(b, g->x, g->df, g->n, f, dx);
    double ef = test_rel_err_fd(f, g->f, nf), eg = test_rel_err_fd(dx, g->dx, nx);
    cr_log_info("%s: features %.2e, input gradient %.2e", pt, ef, eg);
    cr_expect_leq(ef, TOL, "%s: features %.3e from the float64 reference", pt, ef);
    cr_expect_leq(eg, TOL, "%s: input gradient %.3e from the float64 reference", pt, eg);
    free(f);
    free(dx);
}

/* (b) torchscript and vit on the same images: features and input gradients */
static void check_same_as_vit(clpdd_host *h, bb *ts, const golden *g, const char *vit_keys, const char *label) {
    bb v;
    cr_assert_eq(bb_open(h, "vit", vit_keys, &v), 0, "%s: vit: %s", label, clpdd_host_error(h));
    cr_assert_eq(v.info.feature_dim, g->d, "%s: vit d %d, torchscript %d", label, v.info.feature_dim, g->d);
    const size_t nx = (size_t)g->n * g->c * g->S * g->S, nf = (size_t)g->n * g->d;
    float *f1 = malloc(nf * sizeof(float)), *f2 = malloc(nf * sizeof(float));
    float *d1 = malloc(nx * sizeof(float)), *d2 = malloc(nx * sizeof(float));
    bb_run(ts, g->x, g->df, g->n, f1, d1);
    bb_run(&v, g->x, g->df, g->n, f2, d2);
    double ef = test_rel_err(f1, f2, nf), eg = test_rel_err(d1, d2, nx);
    cr_log_info("%s: torchscript vs vit: features %.2e, input gradient %.2e", label, ef, eg);
    cr_expect_leq(ef, TOL, "%s: torchscript vs vit features %.3e", label, ef);
    cr_expect_leq(eg, TOL, "%s: torchscript vs vit input gradient %.3e", label, eg);
    free(f1);
    free(f2);
    free(d1);
    free(d2);
    bb_close(&v);
}

Test(torchscript, mnist_vit_golden_and_native) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    golden g;
    bb ts;
    char pt[4096];
    snprintf(pt, sizeof pt, "%s/models/mnist-vit.pt", CLPDD_SOURCE_DIR);
    check_golden(h, pt, ts_fixture("mnist_vit.golden.safetensors"), &g, &ts);
    cr_assert_float_eq(ts.info.mean[0], 0.1307f, 1e-7);
    cr_assert_float_eq(ts.info.std[2], 0.3081f, 1e-7);
    check_same_as_vit(h, &ts, &g, "variant = lucid", "mnist-vit");
    bb_close(&ts);
    golden_free(&g);
    clpdd_host_destroy(h);
}

static void variant(const char *name) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    char pt[64], gold[64], vit_fixture[64], vit_keys[2048];
    snprintf(pt, sizeof pt, "vit_%s.pt", name);
    snprintf(gold, sizeof gold, "vit_%s.golden.safetensors", name);
    snprintf(vit_fixture, sizeof vit_fixture, "vit_%s.safetensors", name);
    golden g;
    bb ts;
    check_golden(h, ts_fixture(pt), ts_fixture(gold), &g, &ts);
    /* the vit plugin reads the weights the .pt was traced with, under its own keys */
    clpdd_st_file *st = NULL;
    clpdd_err e;
    const char *vf = test_fixture(vit_fixture);
    cr_assert_eq(clpdd_st_open(vf, &st, &e), 0, "%s", e.msg);
    snprintf(vit_keys, sizeof vit_keys, "%s; weights = %s", clpdd_st_metadata(st, "clpdd.config"), vf);
    clpdd_st_close(st);
    check_same_as_vit(h, &ts, &g, vit_keys, name);
    bb_close(&ts);
    golden_free(&g);
    clpdd_host_destroy(h);
}

/* one Test for all: each Test is a forked worker, and a worker with libtorch costs ~1 s */
Test(torchscript, vit_variants) {
    const char *names[] = {"vit", "deit", "dinov2", "clip", "mocov3", "eva02"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) variant(names[i]);
}

/* (c) inference in pieces = one taped forward; a tape for more images than used; "=" semantics;
   a second backward of the same forward; backward of another n refused */
Test(torchscript, pieces_tapes_semantics) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    const golden g = golden_read(ts_fixture("vit_vit.golden.safetensors"));
    char keys[2048];
    ts_keys(&g, ts_fixture("vit_vit.pt"), keys, sizeof keys);
    char keys2[2200];
    snprintf(keys2, sizeof keys2, "%s; batch = 2", keys);
    bb one, pieces;
    cr_assert_eq(bb_open(h, "torchscript", keys, &one), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(bb_open(h, "torchscript", keys2, &pieces), 0, "%s", clpdd_host_error(h));
    const int n = g.n, d = g.d;
    const size_t img = (size_t)g.c * g.S * g.S;
    float *fa = malloc(sizeof(float) * n * d), *fb = malloc(sizeof(float) * n * d), *ft = malloc(sizeof(float) * n * d);
    cr_assert_eq(one.vt->forward(one.self, fa, g.x, n, NULL), 0);
    cr_assert_eq(pieces.vt->forward(pieces.self, fb, g.x, n, NULL), 0);
    cr_expect_leq(test_rel_err(fb, fa, (size_t)n * d), 1e-6, "inference in pieces of 2 differs");
    void *tape = NULL;
    cr_assert_eq(one.vt->tape_create(one.self, n + 3, &tape), 0);
    cr_assert_eq(one.vt->forward(one.self, ft, g.x, n, tape), 0);
    cr_expect_leq(test_rel_err(ft, fa, (size_t)n * d), 1e-6, "taped forward differs from inference");
    float *d1 = malloc(sizeof(float) * n * img), *d2 = malloc(sizeof(float) * n * img);
    for (size_t i = 0; i < n * img; i++) d1[i] = d2[i] = 1e30f; /* "=": nothing of this survives */
    cr_assert_eq(one.vt->backward(one.self, d1, g.df, n, tape), 0);
    cr_assert_eq(one.vt->backward(one.self, d2, g.df, n, tape), 0);
    cr_expect_eq(memcmp(d1, d2, sizeof(float) * n * img), 0, "a second backward differs");
    cr_expect_leq(test_rel_err_fd(d1, g.dx, n * img), TOL);
    cr_expect_neq(one.vt->backward(one.self, d1, g.df, n - 1, tape), 0);
    cr_expect(strstr(clpdd_host_error(h), "backward of"), "%s", clpdd_host_error(h));
    /* the first image alone on the same tape: the gradient of a smaller taped forward */
    cr_assert_eq(one.vt->forward(one.self, ft, g.x + img, 1, tape), 0);
    cr_expect_leq(test_rel_err(ft, fa + d, (size_t)d), 1e-6);
    cr_expect_neq(one.vt->forward(one.self, ft, g.x, n + 4, tape), 0, "a forward past the tape's max_n");
    one.vt->tape_destroy(one.self, tape);
    free(fa);
    free(fb);
    free(ft);
    free(d1);
    free(d2);
    bb_close(&one);
    bb_close(&pieces);
    golden_free((golden *)&g);
    clpdd_host_destroy(h);
}

/* [distill] chunk: the core's chunked encoder (inference forward, then taped recompute and backward
   k images at a time) gives what one tape over all m images gives; the images go through the
   adapter (28×28 grey, normalised), as in tests/test_encode.c for vit */
static void encode(int chunk, const float *X, const float *dphi, int m, float *phi, float *dX) {
    const clpdd_plugin *p = test_plugin("torchscript");
    cr_assert_not_null(p);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_err e;
    clpdd_section *s = test_section(p, "backbone", "file = mnist-vit.pt; channels = 1; image_size = 28; "
                                                   "mean = 0.1307; std = 0.3081; batch = 2");
    clpdd_backbone bb = {h, p, p->vtable, NULL, {0}, "backbone=torchscript (test)", CLPDD_ADAPT_RESIZE,
                         CLPDD_PRECISION_FP32};
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

Test(torchscript, chunked_equals_one_tape) {
    const int m = 7;
    const size_t px = 28 * 28, d = 64;
    float *X = malloc(m * px * 4), *dphi = malloc(m * d * 4);
    test_fill_uniform(X, m * px, 0, 1, 11);
    test_fill_normal(dphi, m * d, 1, 12);
    float *phi0 = malloc(m * d * 4), *phi3 = malloc(m * d * 4), *dX0 = malloc(m * px * 4), *dX3 = malloc(m * px * 4);
    encode(0, X, dphi, m, phi0, dX0);
    encode(3, X, dphi, m, phi3, dX3); /* chunks of 3, 3, 1 */
    cr_expect_lt(test_rel_err(phi3, phi0, m * d), 1e-6, "features");
    cr_expect_lt(test_rel_err(dX3, dX0, m * px), 1e-6, "pixel gradients");
    free(phi0), free(phi3), free(dX0), free(dX3);
    free(X), free(dphi);
}

/* (d) bad input: create fails with a message naming the file and saying what is wrong */
static void refused(const char *file, const char *extra, const char *needle) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    char keys[4200];
    snprintf(keys, sizeof keys, "file = %s; image_size = 8%s", file, extra);
    bb b;
    cr_assert_neq(bb_open(h, "torchscript", keys, &b), 0, "%s was accepted", file);
    const char *msg = clpdd_host_error(h);
    cr_log_info("%s", msg);
    cr_expect(strncmp(msg, "torchscript: ", 13) == 0, "%s", msg);
    cr_expect(strstr(msg, file), "the message does not name %s: %s", file, msg);
    cr_expect(strstr(msg, needle), "the message does not say '%s': %s", needle, msg);
    clpdd_host_destroy(h);
}

Test(torchscript, refuses_bad_input) {
    refused(test_fixture("st_small.safetensors"), "", "is not a TorchScript archive");
    refused("no-such-encoder.pt", "", "cannot read file");
    refused(ts_fixture("bad_tuple.pt"), "", "not one tensor");
    refused(ts_fixture("bad_tokens.pt"), "", "returns shape (2, 3, 4)");
    refused(ts_fixture("bad_constant.pt"), "", "does not depend on the input");
    refused(ts_fixture("vit_vit.pt"), "", "probe forward on images (2, 3, 8, 8)"); /* traced at 16 px */
    refused(ts_fixture("bad_tuple.pt"), "; channels = 1", "probe forward on images (2, 1, 8, 8)");
    refused(ts_fixture("bad_cuda.pt"), "", "holds CUDA tensors but the run's ops are on the CPU");
    refused(ts_fixture("vit_vit.pt"), "; mean = 0.1, 0.2", "mean has 2 values");
}
