/* meanproj: a tiny backbone plugin, the worked example of the clpdd plugin SDK
 * (docs/plugins.md). Built out of tree against the installed headers only.
 *
 *   features = tanh(R · avgpool2×2(x))     x (n, c, S, S) normalised, R (d, K) fixed random
 *
 * Legend: n images, c channels, S side (even), G = (S/2)² pooling cells, K = c·G pooled
 * values per image, d feature dim.
 *
 * Every tensor lives in host->ops memory (device memory when the run is on CUDA) and is only
 * touched through ops: the same source runs on CPU and GPU. Memory comes from host->alloc;
 * errors go through host->error with a non-zero return, never printed, never exit(). */
#include <math.h>
#include <stdlib.h>

#include "clpdd/plugin.h"

typedef struct meanproj {
    const clpdd_host *h;
    const clpdd_ops *ops;
    int c, S, G, K, d, batch;
    float mean[3], std[3];
    float *R;       /* (d, K) ~ N(0, 1/K), from the key `seed` */
    float *quarter; /* (4) = 0.25: averages a 2×2 cell with one GEMM */
    float *ones;    /* (batch·d) = 1 */
    float *cells;   /* (batch, G, c·4) scratch: patchify(x, 2) */
    float *pooled;  /* (batch, K) */
} meanproj;

/* what backward needs: the features (tanh' = 1 − tanh²) of the last taped forward */
typedef struct mp_tape {
    int max_n, last_n;
    float *f;       /* (max_n, d) */
    float *cells;   /* (max_n, G, c·4) */
    float *pooled;  /* (max_n, K) */
    float *ones;    /* (max_n·d) */
    float *dz;      /* (max_n, d) backward scratch */
} mp_tape;

static const clpdd_key mp_keys[] = {
    /* name, type, default (as written in the INI), help, min, max (min > max: unbounded), choices */
    {"image_size", CLPDD_KEY_INT, "28", "input side S (square, even)", 2, 4096, NULL},
    {"channels", CLPDD_KEY_INT, "1", "input channels c", 1, 3, NULL},
    {"dim", CLPDD_KEY_INT, "128", "feature dimension d", 1, 65536, NULL},
    {"seed", CLPDD_KEY_INT, "1", "seed of the random projection R (fixed: part of the encoder)", 0, 4294967295.0, NULL},
    {"mean", CLPDD_KEY_FLOATS, "0.5", "per-channel mean of [0,1] pixels (one value: every channel)", 1, 0, NULL},
    {"std", CLPDD_KEY_FLOATS, "0.25", "per-channel std of [0,1] pixels (one value: every channel)", 1, 0, NULL},
    {"batch", CLPDD_KEY_INT, "256", "images per piece in inference", 1, 1 << 20, NULL},
};

static void mp_destroy(void *self) {
    meanproj *m = self;
    if (!m) return;
    m->h->free(m->h, m->R); /* NULL is fine */
    m->h->free(m->h, m->quarter);
    m->h->free(m->h, m->ones);
    m->h->free(m->h, m->cells);
    m->h->free(m->h, m->pooled);
    free(m);
}

static int mp_create(const clpdd_host *h, const clpdd_section *cfg, void **out) {
    *out = NULL;
    meanproj *m = calloc(1, sizeof *m);
    if (!m) return h->error(h, "meanproj: out of host memory"), -1;
    m->h = h;
    m->ops = h->ops;
    m->S = (int)h->cfg_int(h, cfg, "image_size");
    m->c = (int)h->cfg_int(h, cfg, "channels");
    m->d = (int)h->cfg_int(h, cfg, "dim");
    m->batch = (int)h->cfg_int(h, cfg, "batch");
    if (m->S % 2) {
        h->error(h, "meanproj: image_size %d is odd (2x2 pooling needs an even side)", m->S);
        goto fail;
    }
    double v[16];
    for (int q = 0; q < 2; q++) {
        const char *key = q ? "std" : "mean";
        int k = h->cfg_floats(h, cfg, key, v, 16);
        if (k != 1 && k != m->c) {
            h->error(h, "meanproj: %s has %d values; give 1 or %d", key, k, m->c);
            goto fail;
        }
        for (int i = 0; i < 3; i++) (q ? m->std : m->mean)[i] = (float)v[k == 1 || i >= k ? 0 : i];
    }
    m->G = (m->S / 2) * (m->S / 2);
    m->K = m->c * m->G;
    const size_t b = (size_t)m->batch;
    m->R = h->alloc(h, (size_t)m->d * m->K * sizeof(float));
    m->quarter = h->alloc(h, 4 * sizeof(float));
    m->ones = h->alloc(h, b * m->d * sizeof(float));
    m->cells = h->alloc(h, b * m->K * 4 * sizeof(float));
    m->pooled = h->alloc(h, b * m->K * sizeof(float));
    if (!m->R || !m->quarter || !m->ones || !m->cells || !m->pooled) goto fail; /* host set the message */
    m->ops->rand_normal(m->R, (size_t)m->d * m->K, 0.0f, 1.0f / sqrtf((float)m->K),
                        (uint64_t)h->cfg_int(h, cfg, "seed"), 0);
    m->ops->fill(m->quarter, 0.25f, 4);
    m->ops->fill(m->ones, 1.0f, b * m->d);
    *out = m;
    return 0;
fail:
    mp_destroy(m);
    return -1;
}

static int mp_describe(void *self, clpdd_backbone_info *info) {
    meanproj *m = self;
    info->channels = m->c;
    info->height = info->width = m->S;
    info->feature_dim = m->d;
    for (int i = 0; i < 3; i++) info->mean[i] = m->mean[i], info->std[i] = m->std[i];
    info->weights_id = NULL; /* no weights file: the projection comes from the `seed` key */
    return 0;
}

static int mp_tape_create(void *self, int max_n, void **tape) {
    meanproj *m = self;
    const clpdd_host *h = m->h;
    *tape = NULL;
    if (max_n < 1) return h->error(h, "meanproj: tape for %d images", max_n), -1;
    mp_tape *t = calloc(1, sizeof *t);
    if (!t) return h->error(h, "meanproj: out of host memory"), -1;
    t->max_n = max_n;
    t->f = h->alloc(h, (size_t)max_n * m->d * sizeof(float));
    t->cells = h->alloc(h, (size_t)max_n * m->K * 4 * sizeof(float));
    t->pooled = h->alloc(h, (size_t)max_n * m->K * sizeof(float));
    t->ones = h->alloc(h, (size_t)max_n * m->d * sizeof(float));
    t->dz = h->alloc(h, (size_t)max_n * m->d * sizeof(float));
    if (!t->f || !t->cells || !t->pooled || !t->ones || !t->dz) {
        h->free(h, t->f), h->free(h, t->cells), h->free(h, t->pooled), h->free(h, t->ones), h->free(h, t->dz);
        free(t);
        return -1;
    }
    m->ops->fill(t->ones, 1.0f, (size_t)max_n * m->d);
    *tape = t;
    return 0;
}

static void mp_tape_destroy(void *self, void *tape) {
    meanproj *m = self;
    mp_tape *t = tape;
    if (!t) return;
    m->h->free(m->h, t->f), m->h->free(m->h, t->cells), m->h->free(m->h, t->pooled), m->h->free(m->h, t->ones);
    m->h->free(m->h, t->dz);
    free(t);
}

/* f (n, d) = tanh(avgpool(x) · Rᵀ), tanh(z) = 2σ(2z) − 1 */
static void pass(const meanproj *m, float *f, const float *x, int n, float *cells, float *pooled, const float *ones) {
    const clpdd_ops *ops = m->ops;
    const size_t nd = (size_t)n * m->d;
    ops->patchify(cells, x, n, m->c, m->S, m->S, 2);                                     /* (n, G, c·4) */
    ops->gemm(0, 0, n * m->G * m->c, 1, 4, 1.0f, cells, 4, m->quarter, 1, 0.0f, pooled, 1); /* (n, K) */
    ops->gemm(0, 1, n, m->d, m->K, 2.0f, pooled, m->K, m->R, m->K, 0.0f, f, m->d);         /* 2z (n, d) */
    ops->sigmoid(f, f, nd);
    ops->axpby(f, 2.0f, f, -1.0f, ones, nd);
}

static int mp_forward(void *self, float *features, const float *images, int n, void *tape) {
    meanproj *m = self;
    if (n < 0) return m->h->error(m->h, "meanproj: forward of %d images", n), -1;
    const size_t img = (size_t)m->c * m->S * m->S;
    if (!tape) { /* inference: any n, in pieces of `batch` */
        for (int i = 0; i < n; i += m->batch) {
            int b = n - i < m->batch ? n - i : m->batch;
            pass(m, features + (size_t)i * m->d, images + (size_t)i * img, b, m->cells, m->pooled, m->ones);
        }
        return 0;
    }
    mp_tape *t = tape;
    if (n > t->max_n) return m->h->error(m->h, "meanproj: forward of %d images on a tape for %d", n, t->max_n), -1;
    pass(m, t->f, images, n, t->cells, t->pooled, t->ones);
    m->ops->copy(features, t->f, (size_t)n * m->d * sizeof(float));
    t->last_n = n;
    return 0;
}

/* dimages = avgpoolᵀ(((1 − f²) ⊙ dfeatures) · R) */
static int mp_backward(void *self, float *dimages, const float *dfeatures, int n, void *tape) {
    meanproj *m = self;
    mp_tape *t = tape;
    const clpdd_ops *ops = m->ops;
    if (!t) return m->h->error(m->h, "meanproj: backward needs the tape of a forward"), -1;
    if (n != t->last_n)
        return m->h->error(m->h, "meanproj: backward of %d images after a taped forward of %d", n, t->last_n), -1;
    const size_t nd = (size_t)n * m->d;
    float *dz = t->dz;
    ops->mul(dz, t->f, t->f, nd);                                                       /* f² */
    ops->axpby(dz, -1.0f, dz, 1.0f, t->ones, nd);                                       /* 1 − f² */
    ops->mul(dz, dz, dfeatures, nd);                                                    /* dz (n, d) */
    ops->gemm(0, 0, n, m->K, m->d, 1.0f, dz, m->d, m->R, m->K, 0.0f, t->pooled, m->K); /* (n, K) */
    ops->gemm(0, 0, n * m->G * m->c, 4, 1, 1.0f, t->pooled, 1, m->quarter, 4, 0.0f, t->cells, 4);
    ops->unpatchify(dimages, t->cells, n, m->c, m->S, m->S, 2);
    return 0;
}

static const clpdd_backbone_vt mp_vt = {
    /* .create = */ mp_create,
    /* .destroy = */ mp_destroy,
    /* .describe = */ mp_describe,
    /* .tape_create = */ mp_tape_create,
    /* .tape_destroy = */ mp_tape_destroy,
    /* .forward = */ mp_forward,
    /* .backward = */ mp_backward,
};

static const clpdd_plugin mp_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 0, /* the ops it uses are all in ABI 1.0 */
    /* .kind = */ CLPDD_KIND_BACKBONE,
    /* .name = */ "meanproj",
    /* .version = */ "1.0.0",
    /* .summary = */ "example: tanh of a fixed random projection of 2x2-average-pooled pixels",
    /* .keys = */ mp_keys,
    /* .n_keys = */ (int)(sizeof mp_keys / sizeof mp_keys[0]),
    /* .vtable = */ &mp_vt,
};

CLPDD_DEFINE_PLUGIN(mp_plugin)
