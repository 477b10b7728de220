/* Parameterisation of the synthetic images (pixels | LGM's pyramid): see param.h.
 * Gradients are written (=). Legend: m images, c channels, H×W, px = c·H·W, HW = H·W,
 * L levels, level l of size h_l × w_l at offset off_l in the vector. */
#include "distill/param.h"

#include <math.h>
#include <string.h>

#define PARAM_MAX_LEVELS 32
#define PARAM_LOGIT_EPS 1e-3 /* init images are clamped to [eps, 1 − eps] before the logit */

/* Lucid's ImageNet colour correlation, "color_correlation_svd_sqrt" (the square root of the
   RGB covariance via its SVD), lucid/optvis/param/color.py; applied per pixel as
   rgb = (M / max_j ‖M[:, j]‖) · v, as lucid's _linear_decorrelate_color (t · Mᵀ on rows). */
static const double lucid_color_svd_sqrt[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};

struct clpdd_param {
    const clpdd_host *h;
    clpdd_param_cfg cfg;
    int m, c, H, W;
    size_t px;
    int L, active, step;
    int hl[PARAM_MAX_LEVELS], wl[PARAM_MAX_LEVELS];
    size_t off[PARAM_MAX_LEVELS + 1]; /* off[L] = capacity */
    int start[PARAM_MAX_LEVELS];      /* the step at which level l became active */
    int decor;                        /* 3 channels and cfg.decorrelate */
    float *values;                    /* (capacity) op memory */
    float *D;                         /* (3, 3) op memory: the normalised decorrelation */
    float *z, *t, *img;               /* (m, c, H, W) op memory: sum, scratch, saved σ(2u) */
};

void clpdd_param_cfg_default(clpdd_param_cfg *cfg) {
    cfg->kind = CLPDD_PARAM_PIXELS;
    cfg->pyramid_every = 200;
    cfg->init_std = 0.01f;
    cfg->decorrelate = 1;
}

/* D = M / (largest column norm), row-major (3, 3) */
static void decor_matrix(double D[3][3]) {
    double mx = 0;
    for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += lucid_color_svd_sqrt[i][j] * lucid_color_svd_sqrt[i][j];
        if (sqrt(s) > mx) mx = sqrt(s);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) D[i][j] = lucid_color_svd_sqrt[i][j] / mx;
}

static void inverse3(double R[3][3], double A[3][3]) {
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) - A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    CLPDD_ASSERT(fabs(det) > 1e-12);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            /* cofactor of A[j][i] */
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            R[i][j] = (A[r0][c0] * A[r1][c1] - A[r0][c1] * A[r1][c0]) / det;
        }
}

int clpdd_param_create(clpdd_param **out, const clpdd_host *h, const clpdd_param_cfg *cfg, int m, int c, int H, int W,
                       const float *init_host, uint64_t seed, clpdd_err *e) {
    *out = NULL;
    if (m <= 0 || c <= 0 || H <= 0 || W <= 0)
        return clpdd_err_set(e, "param: bad shape: %d images of (%d, %d, %d)", m, c, H, W);
    if (cfg->kind != CLPDD_PARAM_PIXELS && cfg->kind != CLPDD_PARAM_PYRAMID)
        return clpdd_err_set(e, "param: unknown kind %d (pixels or pyramid)", (int)cfg->kind);
    if (cfg->pyramid_every < 0) return clpdd_err_set(e, "param: pyramid_every = %d must be >= 0", cfg->pyramid_every);
    if (!(cfg->init_std >= 0.0f) || !isfinite(cfg->init_std))
        return clpdd_err_set(e, "param: init std %g must be finite and >= 0", cfg->init_std);
    const clpdd_ops *ops = h->ops;
    clpdd_param *p = clpdd_xcalloc(1, sizeof *p);
    p->h = h;
    p->cfg = *cfg;
    p->m = m, p->c = c, p->H = H, p->W = W;
    p->px = (size_t)c * H * W;
    size_t per = (size_t)m * c;
    if (cfg->kind == CLPDD_PARAM_PIXELS) {
        p->L = p->active = 1;
        p->hl[0] = H, p->wl[0] = W;
    } else {
        int mx = H > W ? H : W, L = 1;
        while ((1 << (L - 1)) < mx) L++; /* 2^(L−1) ≥ max(H, W): L = 1 + ⌈log2 max⌉ */
        CLPDD_ASSERT(L <= PARAM_MAX_LEVELS);
        p->L = L;
        for (int l = 0; l < L; l++) {
            int s = 1 << l;
            p->hl[l] = l == L - 1 ? H : (s < H ? s : H);
            p->wl[l] = l == L - 1 ? W : (s < W ? s : W);
        }
        p->active = cfg->pyramid_every > 0 ? 1 : L;
        p->decor = c == 3 && cfg->decorrelate;
    }
    p->off[0] = 0;
    for (int l = 0; l < p->L; l++) {
        p->off[l + 1] = p->off[l] + per * p->hl[l] * p->wl[l];
        p->start[l] = 1;
    }
    size_t cap = p->off[p->L], img_bytes = (size_t)m * p->px * sizeof(float);
    p->values = h->alloc(h, cap * sizeof(float));
    int ok = p->values != NULL;
    if (cfg->kind == CLPDD_PARAM_PYRAMID) {
        p->D = h->alloc(h, 9 * sizeof(float));
        p->z = h->alloc(h, img_bytes);
        p->t = h->alloc(h, img_bytes);
        p->img = h->alloc(h, img_bytes);
        ok = ok && p->D && p->z && p->t && p->img;
    }
    if (!ok) {
        clpdd_param_destroy(p);
        return clpdd_err_set(e, "param: out of memory for %zu parameters of %d images", cap, m);
    }

    if (cfg->kind == CLPDD_PARAM_PIXELS) {
        if (init_host) ops->to_device(p->values, init_host, cap * sizeof(float));
        else ops->rand_uniform(p->values, cap, 0.0f, 1.0f, seed, 0);
        *out = p;
        return 0;
    }
    double D[3][3], Di[3][3];
    decor_matrix(D);
    inverse3(Di, D);
    float Df[9];
    for (int i = 0; i < 9; i++) Df[i] = (float)D[i / 3][i % 3];
    ops->to_device(p->D, Df, sizeof Df);
    ops->fill(p->values, 0.0f, cap);
    if (init_host) {
        /* the finest level holds D⁻¹·logit(x)/2, so the render is x (up to the clamp) */
        size_t HW = (size_t)H * W;
        float *v = clpdd_xmalloc(img_bytes);
        for (size_t i = 0; i < (size_t)m * p->px; i++) {
            double x = init_host[i];
            x = x < PARAM_LOGIT_EPS ? PARAM_LOGIT_EPS : x > 1 - PARAM_LOGIT_EPS ? 1 - PARAM_LOGIT_EPS : x;
            v[i] = (float)(0.5 * log(x / (1 - x)));
        }
        if (p->decor)
            for (int b = 0; b < m; b++)
                for (size_t q = 0; q < HW; q++) {
                    float *vb = v + (size_t)b * p->px + q;
                    double r[3];
                    for (int i = 0; i < 3; i++) r[i] = Di[i][0] * vb[0] + Di[i][1] * vb[HW] + Di[i][2] * vb[2 * HW];
                    for (int i = 0; i < 3; i++) vb[i * HW] = (float)r[i];
                }
        ops->to_device(p->values + p->off[p->L - 1], v, img_bytes);
        free(v);
    } else {
        ops->rand_normal(p->values, p->off[p->active], 0.0f, p->cfg.init_std, seed, 0);
    }
    *out = p;
    return 0;
}

void clpdd_param_destroy(clpdd_param *p) {
    if (!p) return;
    const clpdd_host *h = p->h;
    h->free(h, p->values);
    h->free(h, p->D);
    h->free(h, p->z);
    h->free(h, p->t);
    h->free(h, p->img);
    free(p);
}

float *clpdd_param_values(clpdd_param *p) { return p->values; }
size_t clpdd_param_count(const clpdd_param *p) { return p->off[p->active]; }
size_t clpdd_param_capacity(const clpdd_param *p) { return p->off[p->L]; }
int clpdd_param_levels(const clpdd_param *p) { return p->L; }
int clpdd_param_active_levels(const clpdd_param *p) { return p->active; }

void clpdd_param_level(const clpdd_param *p, int l, size_t *offset, int *h, int *w) {
    CLPDD_ASSERT(l >= 0 && l < p->L);
    if (offset) *offset = p->off[l];
    if (h) *h = p->hl[l];
    if (w) *w = p->wl[l];
}

int clpdd_param_on_step(clpdd_param *p, int step) {
    CLPDD_ASSERT(step >= 1);
    p->step = step;
    if (p->cfg.kind == CLPDD_PARAM_PIXELS || p->cfg.pyramid_every == 0) return 0;
    int want = 1 + (step - 1) / p->cfg.pyramid_every;
    if (want > p->L) want = p->L;
    if (want <= p->active) return 0;
    for (int l = p->active; l < want; l++) p->start[l] = step;
    p->active = want;
    return 1;
}

void clpdd_param_render(clpdd_param *p, float *images) {
    const clpdd_ops *ops = p->h->ops;
    size_t N = (size_t)p->m * p->px;
    if (p->cfg.kind == CLPDD_PARAM_PIXELS) {
        ops->copy(images, p->values, N * sizeof(float));
        return;
    }
    /* z = Σ_l up(P_l) over every level (inactive ones are fixed, not skipped: a vector restored
       from a checkpoint renders the same), the full-size last level first */
    ops->copy(p->z, p->values + p->off[p->L - 1], N * sizeof(float));
    for (int l = 0; l < p->L - 1; l++) {
        ops->resize_bilinear(p->t, p->values + p->off[l], p->m, p->c, p->hl[l], p->wl[l], p->H, p->W);
        ops->axpy(p->z, 1.0f, p->t, N);
    }
    /* t = 2·D z (per pixel across channels), or 2z */
    int HW = p->H * p->W;
    if (p->decor)
        ops->gemm_batched(0, 0, 3, HW, 3, 2.0f, p->D, 3, 0, p->z, HW, 3LL * HW, 0.0f, p->t, HW, 3LL * HW, p->m);
    else
        ops->axpby(p->t, 2.0f, p->z, 0.0f, p->z, N);
    ops->sigmoid(p->img, p->t, N);
    ops->copy(images, p->img, N * sizeof(float));
}

void clpdd_param_backward(clpdd_param *p, float *dvalues, const float *dimages) {
    const clpdd_ops *ops = p->h->ops;
    size_t N = (size_t)p->m * p->px;
    if (p->cfg.kind == CLPDD_PARAM_PIXELS) {
        ops->copy(dvalues, dimages, N * sizeof(float));
        return;
    }
    /* dσ(2u)/du = 2σ(1 − σ): t = (2·img − 2·img²) ⊙ dimages */
    ops->mul(p->t, p->img, p->img, N);
    ops->axpby(p->t, 2.0f, p->img, -2.0f, p->t, N);
    ops->mul(p->t, p->t, dimages, N);
    const float *g = p->t;
    int HW = p->H * p->W;
    if (p->decor) { /* z = Dᵀ t */
        ops->gemm_batched(1, 0, 3, HW, 3, 1.0f, p->D, 3, 0, p->t, HW, 3LL * HW, 0.0f, p->z, HW, 3LL * HW, p->m);
        g = p->z;
    }
    for (int l = 0; l < p->L; l++) {
        float *dP = dvalues + p->off[l];
        if (l >= p->active) ops->fill(dP, 0.0f, p->off[l + 1] - p->off[l]);
        else if (p->hl[l] == p->H && p->wl[l] == p->W) ops->copy(dP, g, N * sizeof(float));
        else ops->resize_bilinear_backward(dP, g, p->m, p->c, p->hl[l], p->wl[l], p->H, p->W);
    }
}

void clpdd_param_adam(clpdd_param *p, float *adam_m, float *adam_v, const float *grad, float lr, float b1, float b2,
                      float eps, float wd) {
    const clpdd_ops *ops = p->h->ops;
    CLPDD_ASSERT(p->step >= 1); /* clpdd_param_on_step first */
    /* one call per run of consecutive levels that share a start step */
    for (int l = 0; l < p->active;) {
        int r = l + 1;
        while (r < p->active && p->start[r] == p->start[l]) r++;
        size_t o = p->off[l], n = p->off[r] - p->off[l];
        ops->adam(p->values + o, adam_m + o, adam_v + o, grad + o, n, lr, b1, b2, eps, wd, p->step - p->start[l] + 1);
        l = r;
    }
}
