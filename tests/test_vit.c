/* vit backbone plugin: golden logits on the real mnist-vit checkpoint, forward against an
 * independent float64 transcription of the lucid ViT, backward against float64 central
 * finite differences, tapes vs inference, chunking, and the error paths.
 *
 * The plugin is loaded as the driver loads it (dlopen of the built vit.so, the descriptor
 * from clpdd_plugin_entry) and driven through the test host over the CPU ops.
 *
 * Legend: n images, c channels, S side, p patch, G = S/p grid side, P = G² patches,
 * T = P + 1 tokens, K = c·p·p, D width, L depth, Hh heads, hd head width, I = Hh·hd, F MLP. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/ini.h"
#include "plugin/host.h"
#include "io/safetensors.h"
#include "support.h"

#define dev_alloc test_dev_alloc
#define dev_upload test_dev_upload
#define dev_download test_dev_download /* shared helpers (support.h) */

/* ---- the plugin ---- */

static void *g_dl;
static const clpdd_plugin *g_desc;
static const clpdd_backbone_vt *g_vt;

static void load_plugin(void) {
    const char *path = CLPDD_PLUGIN_BUILD_DIR "/vit.so";
    g_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert(g_dl, "cannot open %s: %s", path, dlerror());
    clpdd_plugin_entry_fn entry = (clpdd_plugin_entry_fn)dlsym(g_dl, CLPDD_PLUGIN_ENTRY_SYMBOL);
    cr_assert(entry, "%s: no %s", path, CLPDD_PLUGIN_ENTRY_SYMBOL);
    g_desc = entry();
    cr_assert_eq(g_desc->abi_major, CLPDD_ABI_MAJOR);
    cr_assert_eq(g_desc->kind, CLPDD_KIND_BACKBONE);
    cr_assert_str_eq(g_desc->name, "vit");
    g_vt = g_desc->vtable;
}

static void unload_plugin(void) {
    if (g_dl) dlclose(g_dl);
    g_dl = NULL;
}

TestSuite(vit, .init = load_plugin, .fini = unload_plugin);

/* create from "k = v; ..." (the section is validated against the plugin's keys) */
static int bb_create(clpdd_host *h, const char *text, void **bb) {
    clpdd_err e = {{0}};
    clpdd_section *s = clpdd_section_from_string("backbone", text, g_desc->keys, g_desc->n_keys, &e);
    cr_assert(s, "config '%s': %s", text, e.msg);
    int rc = g_vt->create(h, s, bb);
    clpdd_section_destroy(s);
    return rc;
}


/* ---- a tiny lucid ViT with random weights, and its float64 transcription ---- */

#define TMAXL 4
typedef struct tcfg {
    int c, S, p, D, L, Hh, hd, F;
} tcfg;

typedef struct tmodel {
    tcfg k;
    int G, P, T, K, I;
    /* lucid layout (patch weight columns in (py, px, c) order, as the Rearrange makes them) */
    float *pw, *pb, *cls, *pos, *nw, *nb;
    float *ln1w[TMAXL], *ln1b[TMAXL], *qkv[TMAXL], *ow[TMAXL], *ob[TMAXL];
    float *ln2w[TMAXL], *ln2b[TMAXL], *f1w[TMAXL], *f1b[TMAXL], *f2w[TMAXL], *f2b[TMAXL];
} tmodel;

static float *rnd(size_t count, double mean, double std, uint64_t *seed) {
    float *x = malloc(count * sizeof(float));
    test_fill_normal(x, count, (float)std, (*seed)++);
    for (size_t i = 0; i < count; i++) x[i] += (float)mean;
    return x;
}

static void tmodel_init(tmodel *m, tcfg k, uint64_t seed) {
    memset(m, 0, sizeof *m);
    cr_assert(k.L <= TMAXL);
    m->k = k;
    m->G = k.S / k.p;
    m->P = m->G * m->G;
    m->T = m->P + 1;
    m->K = k.c * k.p * k.p;
    m->I = k.Hh * k.hd;
    const int D = k.D, I = m->I, F = k.F;
    /* scales chosen so that every part matters: attention far from uniform, LayerNorm
       affine far from identity, ReLU units both on and off */
    m->pw = rnd((size_t)D * m->K, 0, 0.4, &seed);
    m->pb = rnd(D, 0, 0.2, &seed);
    m->cls = rnd(D, 0, 1.0, &seed);
    m->pos = rnd((size_t)m->T * D, 0, 0.5, &seed);
    m->nw = rnd(D, 1, 0.3, &seed);
    m->nb = rnd(D, 0, 0.2, &seed);
    for (int l = 0; l < k.L; l++) {
        m->ln1w[l] = rnd(D, 1, 0.3, &seed);
        m->ln1b[l] = rnd(D, 0, 0.2, &seed);
        m->qkv[l] = rnd((size_t)3 * I * D, 0, 0.6, &seed);
        m->ow[l] = rnd((size_t)D * I, 0, 0.4, &seed);
        m->ob[l] = rnd(D, 0, 0.2, &seed);
        m->ln2w[l] = rnd(D, 1, 0.3, &seed);
        m->ln2b[l] = rnd(D, 0, 0.2, &seed);
        m->f1w[l] = rnd((size_t)F * D, 0, 0.4, &seed);
        m->f1b[l] = rnd(F, 0, 0.2, &seed);
        m->f2w[l] = rnd((size_t)D * F, 0, 0.3, &seed);
        m->f2b[l] = rnd(D, 0, 0.2, &seed);
    }
}

static void tmodel_free(tmodel *m) {
    free(m->pw), free(m->pb), free(m->cls), free(m->pos), free(m->nw), free(m->nb);
    for (int l = 0; l < m->k.L; l++) {
        free(m->ln1w[l]), free(m->ln1b[l]), free(m->qkv[l]), free(m->ow[l]), free(m->ob[l]);
        free(m->ln2w[l]), free(m->ln2b[l]), free(m->f1w[l]), free(m->f1b[l]), free(m->f2w[l]), free(m->f2b[l]);
    }
}

/* Writes the model under lucid's tensor names. bad_name (may be NULL): that tensor is written
   with its two dimensions swapped (same byte count, wrong shape). */
static void tmodel_write(const tmodel *m, const char *path, const char *bad_name) {
    clpdd_st_entry e[6 + 11 * TMAXL];
    char names[6 + 11 * TMAXL][96];
    int n = 0;
    const int64_t D = m->k.D, T = m->T, I = m->I, F = m->k.F;
#define ADD(nm, data_, nd, s0, s1, s2)                                   \
    do {                                                                 \
        snprintf(names[n], sizeof names[n], "%s", nm);                   \
        e[n] = (clpdd_st_entry){names[n], CLPDD_DT_F32, nd, {s0, s1, s2}, data_}; \
        n++;                                                             \
    } while (0)
    char nm[96];
    ADD("pos_embedding", m->pos, 3, 1, T, D);
    ADD("cls_token", m->cls, 3, 1, 1, D);
    ADD("to_patch_embedding.1.weight", m->pw, 2, D, m->K, 0);
    ADD("to_patch_embedding.1.bias", m->pb, 1, D, 0, 0);
    for (int l = 0; l < m->k.L; l++) {
#define ADDL(fmt, data_, nd, s0, s1)          \
    snprintf(nm, sizeof nm, fmt, l);          \
    ADD(nm, data_, nd, s0, s1, 0)
        ADDL("transformer.layers.%d.0.norm.weight", m->ln1w[l], 1, D, 0);
        ADDL("transformer.layers.%d.0.norm.bias", m->ln1b[l], 1, D, 0);
        ADDL("transformer.layers.%d.0.fn.to_qkv.weight", m->qkv[l], 2, 3 * I, D);
        ADDL("transformer.layers.%d.0.fn.to_out.0.weight", m->ow[l], 2, D, I);
        ADDL("transformer.layers.%d.0.fn.to_out.0.bias", m->ob[l], 1, D, 0);
        ADDL("transformer.layers.%d.1.norm.weight", m->ln2w[l], 1, D, 0);
        ADDL("transformer.layers.%d.1.norm.bias", m->ln2b[l], 1, D, 0);
        ADDL("transformer.layers.%d.1.fn.net.0.weight", m->f1w[l], 2, F, D);
        ADDL("transformer.layers.%d.1.fn.net.0.bias", m->f1b[l], 1, F, 0);
        ADDL("transformer.layers.%d.1.fn.net.3.weight", m->f2w[l], 2, D, F);
        ADDL("transformer.layers.%d.1.fn.net.3.bias", m->f2b[l], 1, D, 0);
#undef ADDL
    }
    ADD("mlp_head.0.weight", m->nw, 1, D, 0, 0);
    ADD("mlp_head.0.bias", m->nb, 1, D, 0, 0);
#undef ADD
    for (int i = 0; bad_name && i < n; i++)
        if (!strcmp(e[i].name, bad_name)) {
            cr_assert_eq(e[i].ndim, 2);
            int64_t t = e[i].shape[0];
            e[i].shape[0] = e[i].shape[1];
            e[i].shape[1] = t;
        }
    clpdd_err err = {{0}};
    cr_assert_eq(clpdd_st_write(path, e, n, NULL, NULL, 0, &err), 0, "%s", err.msg);
}

/* the attention key of the tiny models' configs ("auto" unless a test sets it) */
static const char *g_tiny_attention = "auto";

/* the plugin's config text for the model and weights file */
static void tmodel_cfg(const tmodel *m, const char *path, int batch, char *out, size_t len) {
    const tcfg *k = &m->k;
    snprintf(out, len,
             "variant = lucid; weights = %s; image_size = %d; channels = %d; patch = %d; dim = %d; depth = %d; "
             "heads = %d; dim_head = %d; mlp_dim = %d; batch = %d; mean = 0.5; std = 0.25; attention = %s",
             path, k->S, k->c, k->p, k->D, k->L, k->Hh, k->hd, k->F, batch, g_tiny_attention);
}

/* ---- float64 reference (transcribed from lucidrains' vit.py, no ops involved) ---- */

static void ref_layernorm(double *y, const double *x, const float *g, const float *b, int D, double eps) {
    double mu = 0, var = 0;
    for (int i = 0; i < D; i++) mu += x[i];
    mu /= D;
    for (int i = 0; i < D; i++) var += (x[i] - mu) * (x[i] - mu);
    var /= D;
    double rs = 1.0 / sqrt(var + eps);
    for (int i = 0; i < D; i++) y[i] = (x[i] - mu) * rs * g[i] + b[i];
}

/* y (out) += W (out, in) · x (in) + b */
static void ref_linear_acc(double *y, const float *W, const float *b, const double *x, int out, int in) {
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[i];
        y[o] += s;
    }
}

/* feat (n, D) = f(x (n, c, S, S)) */
static void ref_forward(const tmodel *m, const double *x, int n, double *feat) {
    const int c = m->k.c, S = m->k.S, p = m->k.p, G = m->G, T = m->T, K = m->K, D = m->k.D;
    const int Hh = m->k.Hh, hd = m->k.hd, I = m->I, F = m->k.F;
    const double eps = 1e-5, scale = 1.0 / sqrt((double)hd);
    double *X = malloc(sizeof(double) * T * D), *H = malloc(sizeof(double) * T * D);
    double *Q = malloc(sizeof(double) * T * 3 * I), *O = malloc(sizeof(double) * T * I);
    double *U = malloc(sizeof(double) * F), *A = malloc(sizeof(double) * T), *v = malloc(sizeof(double) * K);
    for (int img = 0; img < n; img++) {
        const double *xi = x + (size_t)img * c * S * S;
        /* tokens: cls, then patches in row-major grid order, rearranged '(p1 p2 c)' */
        for (int d = 0; d < D; d++) X[d] = (double)m->cls[d] + m->pos[d];
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                int t = 1 + gy * G + gx;
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++)
                        for (int ch = 0; ch < c; ch++)
                            v[(py * p + px) * c + ch] = xi[((size_t)ch * S + gy * p + py) * S + gx * p + px];
                for (int d = 0; d < D; d++) X[t * D + d] = m->pos[t * D + d];
                ref_linear_acc(X + t * D, m->pw, m->pb, v, D, K);
            }
        for (int l = 0; l < m->k.L; l++) {
            /* x = attn(LN(x)) + x */
            for (int t = 0; t < T; t++) ref_layernorm(H + t * D, X + t * D, m->ln1w[l], m->ln1b[l], D, eps);
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < 3 * I; j++) Q[t * 3 * I + j] = 0;
                ref_linear_acc(Q + t * 3 * I, m->qkv[l], NULL, H + t * D, 3 * I, D);
            }
            for (int hh = 0; hh < Hh; hh++)
                for (int t = 0; t < T; t++) {
                    const double *q = Q + t * 3 * I + hh * hd;
                    double mx = -INFINITY, z = 0;
                    for (int s = 0; s < T; s++) {
                        const double *kk = Q + s * 3 * I + I + hh * hd;
                        double dot = 0;
                        for (int e = 0; e < hd; e++) dot += q[e] * kk[e];
                        A[s] = dot * scale;
                        if (A[s] > mx) mx = A[s];
                    }
                    for (int s = 0; s < T; s++) z += (A[s] = exp(A[s] - mx));
                    for (int e = 0; e < hd; e++) {
                        double o = 0;
                        for (int s = 0; s < T; s++) o += A[s] / z * Q[s * 3 * I + 2 * I + hh * hd + e];
                        O[t * I + hh * hd + e] = o;
                    }
                }
            for (int t = 0; t < T; t++) ref_linear_acc(X + t * D, m->ow[l], m->ob[l], O + t * I, D, I);
            /* x = ff(LN(x)) + x, ff = Linear, ReLU, Linear */
            for (int t = 0; t < T; t++) {
                ref_layernorm(H + t * D, X + t * D, m->ln2w[l], m->ln2b[l], D, eps);
                for (int j = 0; j < F; j++) U[j] = 0;
                ref_linear_acc(U, m->f1w[l], m->f1b[l], H + t * D, F, D);
                for (int j = 0; j < F; j++) U[j] = U[j] > 0 ? U[j] : 0;
                ref_linear_acc(X + t * D, m->f2w[l], m->f2b[l], U, D, F);
            }
        }
        ref_layernorm(feat + (size_t)img * D, X, m->nw, m->nb, D, eps); /* mlp_head.0 on CLS */
    }
    free(X), free(H), free(Q), free(O), free(U), free(A), free(v);
}

typedef struct fd_ctx {
    const tmodel *m;
    int n;
    const double *r; /* (n, D) */
    double *feat;    /* (n, D) scratch */
} fd_ctx;

static double ref_objective(const double *x, void *p) {
    fd_ctx *c = p;
    ref_forward(c->m, x, c->n, c->feat);
    double s = 0;
    for (int i = 0; i < c->n * c->m->k.D; i++) s += c->r[i] * c->feat[i];
    return s;
}

/* ---- the tiny-model checks ---- */

static char g_tmpdir[256];

static const char *tmp_path(const char *file) {
    static char buf[512];
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/clpdd_test_vit_XXXXXX");
        cr_assert(mkdtemp(g_tmpdir), "mkdtemp");
    }
    snprintf(buf, sizeof buf, "%s/%s", g_tmpdir, file);
    return buf;
}

/* (a) forward vs float64, (b) backward vs float64 central differences of ⟨r, f(x)⟩,
   (c) taped forward = inference forward, (d) n < max_n on a tape, chunked inference */
static void check_tiny(tcfg k, uint64_t seed, const char *label) {
    tmodel m;
    tmodel_init(&m, k, seed);
    char path[512], cfg[1024];
    snprintf(path, sizeof path, "%s", tmp_path(label));
    tmodel_write(&m, path, NULL);

    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL, *bb3 = NULL;
    tmodel_cfg(&m, path, 256, cfg, sizeof cfg);
    cr_assert_eq(bb_create(h, cfg, &bb), 0, "%s: create: %s", label, clpdd_host_error(h));
    clpdd_backbone_info info;
    cr_assert_eq(g_vt->describe(bb, &info), 0);
    cr_assert_eq(info.channels, k.c);
    cr_assert_eq(info.height, k.S);
    cr_assert_eq(info.width, k.S);
    cr_assert_eq(info.feature_dim, k.D);
    cr_assert_float_eq(info.mean[k.c - 1], 0.5f, 1e-7);
    cr_assert_float_eq(info.std[0], 0.25f, 1e-7);
    cr_assert_str_eq(info.weights_id, path);

    const int n = 7, D = k.D;
    const size_t img = (size_t)k.c * k.S * k.S, nin = n * img;
    float *x = malloc(nin * sizeof(float));
    test_fill_normal(x, nin, 1.0f, seed + 100);
    double *xd = malloc(nin * sizeof(double)), *fref = malloc(sizeof(double) * n * D);
    for (size_t i = 0; i < nin; i++) xd[i] = x[i];
    ref_forward(&m, xd, n, fref);

    float *dx = dev_upload(h, x, nin), *dfeat = dev_alloc(h, (size_t)n * D);
    float *feat_inf = malloc(sizeof(float) * n * D), *feat_tape = malloc(sizeof(float) * n * D);
    float *feat_chunk = malloc(sizeof(float) * n * D);

    /* (a) inference forward vs float64 */
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, n, NULL), 0, "%s", clpdd_host_error(h));
    dev_download(h, feat_inf, dfeat, (size_t)n * D);
    double e_fwd = test_rel_err_fd(feat_inf, fref, (size_t)n * D);
    cr_log_info("vit %s: forward rel err vs float64 %.3g", label, e_fwd);
    cr_expect(e_fwd <= 1e-5, "%s: forward rel err %.3g > 1e-5", label, e_fwd);

    /* (d) chunked inference: batch 3 over n = 7 (pieces 3, 3, 1) = one piece */
    tmodel_cfg(&m, path, 3, cfg, sizeof cfg);
    cr_assert_eq(bb_create(h, cfg, &bb3), 0, "%s", clpdd_host_error(h));
    h->ops->fill(dfeat, NAN, (size_t)n * D);
    cr_assert_eq(g_vt->forward(bb3, dfeat, dx, n, NULL), 0, "%s", clpdd_host_error(h));
    dev_download(h, feat_chunk, dfeat, (size_t)n * D);
    double e_chunk = test_rel_err(feat_chunk, feat_inf, (size_t)n * D);
    cr_expect(e_chunk <= 1e-6, "%s: chunked inference differs from one piece (rel %.3g)", label, e_chunk);

    /* (c) taped forward = inference forward; the tape is for 9 images, used with 7 (d) */
    void *tape = NULL;
    cr_assert_eq(g_vt->tape_create(bb, 9, &tape), 0, "%s", clpdd_host_error(h));
    h->ops->fill(dfeat, NAN, (size_t)n * D);
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, n, tape), 0, "%s", clpdd_host_error(h));
    dev_download(h, feat_tape, dfeat, (size_t)n * D);
    double e_tape = test_rel_err(feat_tape, feat_inf, (size_t)n * D);
    cr_expect(e_tape <= 1e-6, "%s: taped forward differs from inference (rel %.3g)", label, e_tape);

    /* (b) backward of ⟨r, f(x)⟩ vs float64 central differences (h = 1e-5: truncation
       O(h²) ≈ 1e-10, cancellation ≈ 1e-16/h ≈ 1e-11, far below the fp32 plugin's error) */
    double *r = malloc(sizeof(double) * n * D), *g = malloc(sizeof(double) * nin);
    float *rf = malloc(sizeof(float) * n * D), *gimg = malloc(sizeof(float) * nin);
    test_fill_normal_d(r, (size_t)n * D, 1.0, seed + 200);
    for (int i = 0; i < n * D; i++) rf[i] = (float)r[i];
    for (int i = 0; i < n * D; i++) r[i] = rf[i]; /* the same r on both sides */
    float *dr = dev_upload(h, rf, (size_t)n * D), *dimg = dev_alloc(h, nin);
    h->ops->fill(dimg, NAN, nin);
    cr_assert_eq(g_vt->backward(bb, dimg, dr, n, tape), 0, "%s", clpdd_host_error(h));
    dev_download(h, gimg, dimg, nin);
    fd_ctx ctx = {&m, n, r, malloc(sizeof(double) * n * D)};
    test_fd_grad(g, ref_objective, xd, nin, 1e-5, &ctx);
    double e_bwd = test_rel_err_fd(gimg, g, nin);
    cr_log_info("vit %s: backward rel err vs float64 FD %.3g", label, e_bwd);
    cr_expect(e_bwd <= 1e-3, "%s: backward rel err %.3g > 1e-3", label, e_bwd);

    /* (d) a smaller n on the same tape: 2 images, their gradients match the first two above
       (images are independent: no cross-image terms) */
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, 2, tape), 0, "%s", clpdd_host_error(h));
    dev_download(h, feat_tape, dfeat, (size_t)2 * D);
    cr_expect(test_rel_err(feat_tape, feat_inf, (size_t)2 * D) <= 1e-6, "%s: n = 2 on a tape of 9", label);
    h->ops->fill(dimg, NAN, nin);
    cr_assert_eq(g_vt->backward(bb, dimg, dr, 2, tape), 0, "%s", clpdd_host_error(h));
    float *g2 = malloc(sizeof(float) * 2 * img);
    dev_download(h, g2, dimg, 2 * img);
    double e_g2 = test_rel_err_fd(g2, g, 2 * img);
    cr_expect(e_g2 <= 1e-3, "%s: backward with n = 2 rel err %.3g", label, e_g2);

    /* a backward whose n differs from the taped forward's is refused, not misread */
    cr_expect_neq(g_vt->backward(bb, dimg, dr, 3, tape), 0);
    cr_expect(strstr(clpdd_host_error(h), "vit:"), "message: %s", clpdd_host_error(h));
    /* more images than the tape holds */
    float *big = dev_alloc(h, 10 * img), *bigf = dev_alloc(h, (size_t)10 * D);
    h->ops->fill(big, 0.0f, 10 * img);
    cr_expect_neq(g_vt->forward(bb, bigf, big, 10, tape), 0);

    g_vt->tape_destroy(bb, tape);
    g_vt->destroy(bb);
    g_vt->destroy(bb3);
    clpdd_host_destroy(h);
    free(x), free(xd), free(fref), free(feat_inf), free(feat_tape), free(feat_chunk);
    free(r), free(g), free(rf), free(gimg), free(ctx.feat), free(g2);
    unlink(path);
    tmodel_free(&m);
}

/* per-depth configs localise a failure. Depth 0 is the token embedding + final norm only: the
   CLS feature then does not depend on the image, so its gradient must come out exactly 0 (the
   rel-err helper reports 0 for 0 vs 0); depth 1 is the first config where every path counts. */
Test(vit, tiny_depth0) { check_tiny((tcfg){2, 8, 4, 8, 0, 2, 4, 12}, 11, "d0.safetensors"); }
Test(vit, tiny_depth1) { check_tiny((tcfg){2, 8, 4, 8, 1, 2, 4, 12}, 21, "d1.safetensors"); }
Test(vit, tiny_depth2_two_channels) { check_tiny((tcfg){2, 8, 4, 8, 2, 2, 4, 12}, 31, "d2c2.safetensors"); }
Test(vit, tiny_depth2_three_channels) { check_tiny((tcfg){3, 6, 2, 12, 2, 3, 5, 10}, 41, "d2c3.safetensors"); }
Test(vit, tiny_depth2_one_channel) { check_tiny((tcfg){1, 8, 2, 8, 2, 1, 8, 16}, 51, "d2c1.safetensors"); }
/* the same checks (float64 forward and FD backward, tape = inference, chunking) through the fused
   attention ops (hd 4 and 5: narrower than the dot's 8 lanes) and the materialised ones explicitly */
Test(vit, tiny_depth2_fused) {
    g_tiny_attention = "fused";
    check_tiny((tcfg){2, 8, 4, 8, 2, 2, 4, 12}, 31, "d2c2f.safetensors");
    g_tiny_attention = "auto"; /* for --no-fork runs */
}
Test(vit, tiny_depth2_three_channels_fused) {
    g_tiny_attention = "fused";
    check_tiny((tcfg){3, 6, 2, 12, 2, 3, 5, 10}, 41, "d2c3f.safetensors");
    g_tiny_attention = "auto"; /* for --no-fork runs */
}
Test(vit, tiny_depth2_materialized) {
    g_tiny_attention = "materialized";
    check_tiny((tcfg){2, 8, 4, 8, 2, 2, 4, 12}, 31, "d2c2m.safetensors");
    g_tiny_attention = "auto"; /* for --no-fork runs */
}

Test(vit, descriptor_keys) {
    cr_expect_eq(g_desc->abi_minor, 4); /* vit is built for ABI 1.4 (its descriptor says so) */
    const char *want[] = {"variant", "weights", "image_size", "channels", "patch", "dim", "depth", "heads",
                          "dim_head", "mlp_dim", "norm_eps", "mean", "std", "batch"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const clpdd_key *k = NULL;
        for (int j = 0; j < g_desc->n_keys; j++)
            if (!strcmp(g_desc->keys[j].name, want[i])) k = &g_desc->keys[j];
        cr_expect(k, "key %s not declared", want[i]);
        if (k) cr_expect(k->help && *k->help && k->default_value, "key %s: help and default", want[i]);
    }
    const clpdd_backbone_vt *vt = g_desc->vtable;
    cr_expect(vt->create && vt->destroy && vt->describe && vt->tape_create && vt->tape_destroy && vt->forward &&
              vt->backward);
}

/* ---- errors ---- */

Test(vit, wrong_shape_names_the_tensor) {
    tmodel m;
    tmodel_init(&m, (tcfg){1, 8, 4, 8, 2, 2, 4, 12}, 7);
    char path[512], cfg[1024];
    snprintf(path, sizeof path, "%s", tmp_path("bad.safetensors"));
    const char *bad = "transformer.layers.1.0.fn.to_qkv.weight";
    tmodel_write(&m, path, bad);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    size_t before = clpdd_host_bytes_in_use(h);
    tmodel_cfg(&m, path, 4, cfg, sizeof cfg);
    void *bb = (void *)1;
    cr_expect_neq(bb_create(h, cfg, &bb), 0);
    cr_expect_null(bb);
    cr_expect(strstr(clpdd_host_error(h), bad), "message does not name the tensor: %s", clpdd_host_error(h));
    cr_expect_eq(clpdd_host_bytes_in_use(h), before, "a failed create leaks device memory");
    /* a config that disagrees with the file: the first mismatching tensor is named */
    clpdd_host_clear_error(h);
    tmodel_write(&m, path, NULL);
    snprintf(cfg, sizeof cfg, "weights = %s; image_size = 8; patch = 4; dim = 8; depth = 2; heads = 2; dim_head = 4; "
             "mlp_dim = 16", path);
    cr_expect_neq(bb_create(h, cfg, &bb), 0);
    cr_expect(strstr(clpdd_host_error(h), "transformer.layers.0.1.fn.net.0.weight"), "message: %s",
              clpdd_host_error(h));
    clpdd_host_destroy(h);
    unlink(path);
    tmodel_free(&m);
}

Test(vit, missing_file_names_the_path) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    void *bb = NULL;
    const char *path = "/nonexistent/clpdd/no-such-vit.safetensors";
    char cfg[512];
    snprintf(cfg, sizeof cfg, "weights = %s", path);
    cr_expect_neq(bb_create(h, cfg, &bb), 0);
    cr_expect(strstr(clpdd_host_error(h), path), "message does not name the path: %s", clpdd_host_error(h));
    clpdd_host_destroy(h);
}

Test(vit, bad_geometry_and_norm) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL;
    cr_expect_neq(bb_create(h, "image_size = 30; patch = 4", &bb), 0);
    cr_expect(strstr(clpdd_host_error(h), "vit: image_size 30"), "message: %s", clpdd_host_error(h));
    cr_expect_neq(bb_create(h, "channels = 3; mean = 0.1, 0.2", &bb), 0);
    cr_expect(strstr(clpdd_host_error(h), "vit: mean"), "message: %s", clpdd_host_error(h));
    clpdd_host_destroy(h);
}

/* ---- golden: the real mnist-vit checkpoint ---- */

#define GOLD_N 12
typedef struct golden {
    int label[GOLD_N];
    float pixels[GOLD_N][784];
    double logits[GOLD_N][10];
} golden;

/* parse `count` numbers of the array that follows `key` after *pos */
static int scan_array(const char *text, const char **pos, const char *key, double *out, int count) {
    const char *p = strstr(*pos, key);
    if (!p) return -1;
    p = strchr(p, '[');
    if (!p) return -1;
    p++;
    for (int i = 0; i < count; i++) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p) return -1;
        p = end;
        while (*p == ' ' || *p == ',' || *p == '\n') p++;
    }
    if (*p != ']') return -1;
    *pos = p;
    (void)text;
    return 0;
}

static int load_golden(const char *path, golden *g) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = 0;
    const char *pos = text;
    double px[784];
    int rc = 0;
    for (int i = 0; i < GOLD_N && !rc; i++) {
        const char *lp = strstr(pos, "\"label\":");
        if (!lp) {
            rc = -1;
            break;
        }
        g->label[i] = (int)strtol(lp + 8, NULL, 10);
        pos = lp + 8;
        rc = scan_array(text, &pos, "\"pixels\":", px, 784);
        for (int j = 0; j < 784; j++) g->pixels[i][j] = (float)px[j];
        if (!rc) rc = scan_array(text, &pos, "\"logits\":", g->logits[i], 10);
    }
    free(text);
    return rc;
}

/* the golden logits through the plugin created with `extra` appended to its config ("; key = value") */
static void check_golden(const char *extra) {
    const char *model = test_model_file("mnist-vit.safetensors");
    char model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", model);
    const char *gold_file = test_model_file("mnist-vit.golden.json");
    static golden g;
    cr_assert_eq(load_golden(gold_file, &g), 0, "cannot parse %s", gold_file);

    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL;
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "weights = %s%s", model_path, extra); /* every other key: the defaults */
    cr_assert_eq(bb_create(h, cfg, &bb), 0, "%s", clpdd_host_error(h));
    clpdd_backbone_info info;
    g_vt->describe(bb, &info);
    cr_assert_eq(info.feature_dim, 64);
    cr_assert_float_eq(info.mean[0], 0.1307f, 1e-7);
    cr_assert_float_eq(info.std[0], 0.3081f, 1e-7);

    /* normalise as the core's adapter does: (x/255 − mean)/std */
    static float x[GOLD_N * 784];
    for (int i = 0; i < GOLD_N; i++)
        for (int j = 0; j < 784; j++) x[i * 784 + j] = (g.pixels[i][j] / 255.0f - info.mean[0]) / info.std[0];
    float *dx = dev_upload(h, x, GOLD_N * 784), *dfeat = dev_alloc(h, GOLD_N * 64);
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, GOLD_N, NULL), 0, "%s", clpdd_host_error(h));
    float feat[GOLD_N * 64];
    dev_download(h, feat, dfeat, GOLD_N * 64);

    /* the classifier mlp_head.1 (10, 64), read through the host like the plugin reads its own */
    clpdd_weights *w = h->weights_open(h, model_path);
    cr_assert(w, "%s", clpdd_host_error(h));
    float *dW = dev_alloc(h, 640), *db = dev_alloc(h, 10), W[640], b[10];
    cr_assert_eq(h->weights_read(h, w, "mlp_head.1.weight", 2, (const int64_t[]){10, 64}, dW), 0);
    cr_assert_eq(h->weights_read(h, w, "mlp_head.1.bias", 1, (const int64_t[]){10}, db), 0);
    h->weights_close(h, w);
    dev_download(h, W, dW, 640);
    dev_download(h, b, db, 10);

    /* Tolerance 1e-4·max(1, |logit|): an fp32 forward through 6 blocks accumulates relative
       rounding of ~1e-6 per layer (dot products of ≤ 256 terms, LayerNorm renormalising each
       block), and the golden values are printed to 6 decimals (±5e-7); 1e-4 leaves ~10× margin
       while still catching any real mistake (a wrong eps, scale or ordering moves logits ≫ 1e-3). */
    double worst = 0, worst_abs = 0;
    for (int i = 0; i < GOLD_N; i++) {
        int arg = 0;
        double z[10];
        for (int c = 0; c < 10; c++) {
            double s = b[c];
            for (int d = 0; d < 64; d++) s += (double)W[c * 64 + d] * feat[i * 64 + d];
            z[c] = s;
            if (z[c] > z[arg]) arg = c;
            double err = fabs(s - g.logits[i][c]);
            double tol = 1e-4 * fmax(1.0, fabs(g.logits[i][c]));
            if (err / tol > worst) worst = err / tol;
            if (err > worst_abs) worst_abs = err;
            cr_expect(err <= tol, "digit %d logit %d: %.6f vs golden %.6f (err %.3g > %.3g)", i, c, s,
                      g.logits[i][c], err, tol);
        }
        cr_expect_eq(arg, g.label[i], "digit %d: argmax %d, label %d", i, arg, g.label[i]);
    }
    cr_log_info("vit golden%s: max abs logit error %.3g (%.3g of the tolerance)", extra, worst_abs, worst);

    /* the taped forward and its backward run on the real weights too (finite gradients) */
    void *tape = NULL;
    cr_assert_eq(g_vt->tape_create(bb, 4, &tape), 0, "%s", clpdd_host_error(h));
    float *dfeat2 = dev_alloc(h, 4 * 64), *dimg = dev_alloc(h, 4 * 784);
    cr_assert_eq(g_vt->forward(bb, dfeat2, dx, 4, tape), 0);
    float feat2[4 * 64];
    dev_download(h, feat2, dfeat2, 4 * 64);
    cr_expect(test_rel_err(feat2, feat, 4 * 64) <= 1e-6);
    cr_assert_eq(g_vt->backward(bb, dimg, dfeat2, 4, tape), 0);
    cr_expect(h->ops->all_finite(dimg, 4 * 784));
    g_vt->tape_destroy(bb, tape);
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
}

Test(vit, golden_mnist) { check_golden(""); } /* attention = auto */
Test(vit, golden_mnist_fused) { check_golden("; attention = fused"); }
Test(vit, golden_mnist_materialized) { check_golden("; attention = materialized"); }

/* Fused vs materialised attention on the real mnist-vit weights: the taped forward's features and
   the backward's input gradient of ⟨r, f(x)⟩ agree. Both compute the same softmax in fp32 (the
   fused one with an online max and lse, summed in another order), so they differ by rounding
   only: ~1e-7 relative per attention, grown through 6 blocks of LayerNorms and residual sums to
   ~1e-6 in the features and a few 1e-6 in the gradient (whose LayerNorm backwards cancel).
   Tolerances 1e-5 (features) and 1e-4 (gradient) keep ≥ 10× margin; a wrong term in either
   backward (a missing delta, a transposed dk/dv) moves the gradient by ≫ 1e-2. */
Test(vit, fused_matches_materialized_mnist) {
    const char *model = test_model_file("mnist-vit.safetensors");
    enum { n = 6, d = 64, img = 784 };
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    float *x = malloc(sizeof(float) * n * img), *r = malloc(sizeof(float) * n * d);
    test_fill_normal(x, (size_t)n * img, 1.0f, 77);
    test_fill_normal(r, (size_t)n * d, 1.0f, 78);
    float *dx = dev_upload(h, x, (size_t)n * img), *dr = dev_upload(h, r, (size_t)n * d);
    float feat[2][n * d], grad[2][n * img];
    const char *mode[2] = {"materialized", "fused"};
    for (int k = 0; k < 2; k++) {
        char cfg[1200];
        snprintf(cfg, sizeof cfg, "weights = %s; attention = %s", model, mode[k]);
        void *bb = NULL, *tape = NULL;
        cr_assert_eq(bb_create(h, cfg, &bb), 0, "%s", clpdd_host_error(h));
        cr_assert_eq(g_vt->tape_create(bb, n, &tape), 0, "%s", clpdd_host_error(h));
        float *df = dev_alloc(h, (size_t)n * d), *dimg = dev_alloc(h, (size_t)n * img);
        h->ops->fill(dimg, NAN, (size_t)n * img);
        cr_assert_eq(g_vt->forward(bb, df, dx, n, tape), 0, "%s", clpdd_host_error(h));
        cr_assert_eq(g_vt->backward(bb, dimg, dr, n, tape), 0, "%s", clpdd_host_error(h));
        dev_download(h, feat[k], df, (size_t)n * d);
        dev_download(h, grad[k], dimg, (size_t)n * img);
        g_vt->tape_destroy(bb, tape);
        g_vt->destroy(bb);
    }
    double ef = test_rel_err(feat[1], feat[0], (size_t)n * d), eg = test_rel_err(grad[1], grad[0], (size_t)n * img);
    cr_log_info("vit mnist fused vs materialized: features rel err %.3g, input gradient rel err %.3g", ef, eg);
    cr_expect(ef <= 1e-5, "features: fused vs materialized rel err %.3g > 1e-5", ef);
    cr_expect(eg <= 1e-4, "input gradient: fused vs materialized rel err %.3g > 1e-4", eg);
    free(x), free(r);
    clpdd_host_destroy(h);
}

/* Taped passes in pieces side by side (vit_pieces.c) against one pass ($CLPDD_VIT_PIECE = 0) on the
   real mnist-vit: the default (≤ 16 a piece: n = 10 → 2 × 5, n = 37 → 4 of 9–10), 3 and 7 (pieces of
   two sizes), both attention kernels; features and input gradient bit for bit. With one pool
   thread every variant is one pass and this checks nothing new. */
static void taped_run(const char *piece, const char *cfg, int n, const float *x, const float *r, float *feat, float *grad) {
    enum { d = 64, img = 784 };
    if (piece) setenv("CLPDD_VIT_PIECE", piece, 1);
    else unsetenv("CLPDD_VIT_PIECE");
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL, *tape = NULL;
    cr_assert_eq(bb_create(h, cfg, &bb), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(g_vt->tape_create(bb, n, &tape), 0, "%s", clpdd_host_error(h));
    float *dx = dev_upload(h, x, (size_t)n * img), *dr = dev_upload(h, r, (size_t)n * d);
    float *df = dev_alloc(h, (size_t)n * d), *dimg = dev_alloc(h, (size_t)n * img);
    cr_assert_eq(g_vt->forward(bb, df, dx, n, tape), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(g_vt->backward(bb, dimg, dr, n, tape), 0, "%s", clpdd_host_error(h));
    dev_download(h, feat, df, (size_t)n * d);
    dev_download(h, grad, dimg, (size_t)n * img);
    g_vt->tape_destroy(bb, tape);
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
    unsetenv("CLPDD_VIT_PIECE");
}

Test(vit, taped_pieces_match_one_pass_mnist) {
    const char *model = test_model_file("mnist-vit.safetensors");
    enum { d = 64, img = 784 };
    const int ns[2] = {10, 37};
    const char *pieces[4] = {"0", NULL, "3", "7"}, *mode[2] = {"materialized", "fused"};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            const int n = ns[t];
            char cfg[1200];
            snprintf(cfg, sizeof cfg, "weights = %s; attention = %s", model, mode[k]);
            float *x = malloc(sizeof(float) * n * img), *r = malloc(sizeof(float) * n * d);
            test_fill_normal(x, (size_t)n * img, 1.0f, 91);
            test_fill_normal(r, (size_t)n * d, 1.0f, 92);
            float *feat[4], *grad[4];
            for (int v = 0; v < 4; v++) {
                feat[v] = malloc(sizeof(float) * n * d), grad[v] = malloc(sizeof(float) * n * img);
                taped_run(pieces[v], cfg, n, x, r, feat[v], grad[v]);
            }
            for (int v = 1; v < 4; v++) {
                const char *p = pieces[v] ? pieces[v] : "16";
                cr_expect_arr_eq(feat[v], feat[0], sizeof(float) * n * d, "%s, n = %d, pieces %s: features differ",
                                 mode[k], n, p);
                cr_expect_arr_eq(grad[v], grad[0], sizeof(float) * n * img,
                                 "%s, n = %d, pieces %s: input gradient differs", mode[k], n, p);
            }
            for (int v = 0; v < 4; v++) free(feat[v]), free(grad[v]);
            free(x), free(r);
        }
}

/* attention = fused is refused with a message naming the key when dim_head exceeds the fused ops'
   128 (auto then falls back to materialised) */
Test(vit, fused_attention_limits) {
    const char *model = test_model_file("mnist-vit.safetensors");
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    char cfg[1200];
    void *bb = NULL;
    snprintf(cfg, sizeof cfg, "weights = %s; dim_head = 160; attention = fused", model);
    cr_expect_neq(bb_create(h, cfg, &bb), 0);
    cr_expect(strstr(clpdd_host_error(h), "attention = fused"), "message: %s", clpdd_host_error(h));
    clpdd_host_destroy(h);
}

/* feature-extraction throughput of the real model (inference, batch 256); logged, not judged */
Test(vit, throughput_mnist) {
    const char *model = test_model_file("mnist-vit.safetensors");
    char cfg[1200];
    snprintf(cfg, sizeof cfg, "weights = %s; batch = 256", model);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    void *bb = NULL;
    cr_assert_eq(bb_create(h, cfg, &bb), 0, "%s", clpdd_host_error(h));
    const int n = 1024;
    float *x = malloc(sizeof(float) * n * 784);
    test_fill_uniform(x, (size_t)n * 784, -0.5f, 2.5f, 3);
    float *dx = dev_upload(h, x, (size_t)n * 784), *dfeat = dev_alloc(h, (size_t)n * 64);
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, 256, NULL), 0); /* warm-up */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(g_vt->forward(bb, dfeat, dx, n, NULL), 0);
    h->ops->synchronize();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_log_info("vit mnist inference: %d images in %.3f s = %.0f images/s (batch 256, ops %s)", n, s, n / s,
                h->ops->name);
    cr_expect(h->ops->all_finite(dfeat, (size_t)n * 64));
    free(x);
    g_vt->destroy(bb);
    clpdd_host_destroy(h);
}
