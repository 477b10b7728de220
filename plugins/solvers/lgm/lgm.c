/* lgm: Linear Gradient Matching (Cazenavette et al. 2025), an objective solver: each call draws
 * a random linear head and matches the gradient it would get from the real batch with the one it
 * would get from the synthetic set; no [loss] section (the core rejects one).
 *
 * Legend: m synthetic images, n real batch, d feature dim, C classes, H heads per call,
 * g = (d+1)·C (bias = true) or d·C, the length of a flattened head gradient.
 *
 *   W ~ N(0, head_std²) (d, C), b = 0: head k of call t is ops->rand_normal(seed = host->seed ^
 *   LGM_SALT, offset = (t·H + k)·d·C), t = step − 1 as the core announces it (set_step, ABI 1.5;
 *   without it t = 0, 1, … counts the objective calls) — reproducible per run, and a resumed run
 *   draws the heads the uninterrupted one drew
 *   g_r = ∇_{W,b} CE(Φ_b W + b, y_b):  E_b = (softmax(Φ_b W) − onehot(y_b))/n,  g_r = [Φ_bᵀE_b; 𝟙ᵀE_b]
 *   g_s = ∇_{W,b} CE(Φ_s W + b, Y_s):  P = softmax(Φ_s W),  E = (P − Y_s)/m,    g_s = [Φ_sᵀE;   𝟙ᵀE]
 *     (Y_s rows are probability vectors, as the core's one-hot labels are)
 *   L = mean over the H heads of 1 − cos(g_r, g_s),  cos = ⟨g_r, g_s⟩/(‖g_r‖‖g_s‖)
 *
 * Backward to Φ_s (and Y_s) through g_s only (g_r does not depend on the synthetic set), with the
 * closed-form softmax Jacobian — the second-order terms of the head's CE, no autograd:
 *   D = ∂L/∂g_s = −(g_r/(‖g_r‖‖g_s‖) − cos·g_s/‖g_s‖²)/H = [D_W; D_b]   (d+1, C)
 *   dE = Φ_s D_W + 𝟙D_bᵀ                      (m, C)
 *   dΦ_s += E D_Wᵀ                             (Φ_s in g_s = Φ_sᵀE)
 *   dZ = softmax′(P)ᵀ(dE/m) = P ⊙ (dE − ⟨dE, P⟩_row)/m   (ops->softmax_rows_backward)
 *   dΦ_s += dZ Wᵀ                              (Φ_s in the logits)
 *   dY_s += −dE/m
 * The objective computes these as it goes (one head's buffers are reused for the next), and
 * backward hands them out. Cost per head O((m + n)·d·C), memory O((m + n + d)·C + m·d).
 *
 * Gradients: "=" for every output. The cosine's scale invariance makes the 1/n and 1/m of the
 * mean CE irrelevant to L; they are kept so g_r and g_s are the heads' true gradients. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"

#define LGM_SALT 0x6c676d5f68656164ULL /* "lgm_head" */

typedef struct lgm {
    const clpdd_host *h;
    const clpdd_ops *ops;
    int m, d, C, n_max;
    int heads, bias;
    float head_std;
    uint64_t calls; /* t of the next objective: step − 1 (set_step), else the calls so far */
    int ready; /* the last objective succeeded */
    /* buffers */
    float *W;    /* (d, C)     the random head */
    float *Zb;   /* (n_max, C) real logits */
    float *Eb;   /* (n_max, C) (softmax − onehot)/n */
    float *Zs;   /* (m, C)     synthetic logits */
    float *P;    /* (m, C)     softmax */
    float *E;    /* (m, C)     (P − Y)/m */
    float *gr;   /* (g)        real gradient [W; b] */
    float *gs;   /* (g)        synthetic gradient */
    float *D;    /* (g)        ∂L/∂g_s */
    float *dE;   /* (m, C) */
    float *dZ;   /* (m, C) */
    float *dphi; /* (m, d)     ∂L/∂Φ_s of the last objective */
    float *dY;   /* (m, C)     ∂L/∂Y_s of the last objective */
} lgm;

static const clpdd_key lgm_keys[] = {
    {"head_std", CLPDD_KEY_FLOAT, "0.01", "standard deviation of the random linear head W ~ N(0, head_std^2) drawn each step", 0,
     1e3, NULL},
    {"heads", CLPDD_KEY_INT, "1", "random heads per step; the loss is the mean of their 1 - cos terms", 1, 1024, NULL},
    {"bias", CLPDD_KEY_BOOL, "true", "the head has a (zero-initialised) bias whose gradient is matched too", 1, 0, NULL},
};

static void *alloc_f(lgm *s, size_t count, int *fail) {
    void *p = s->h->alloc(s->h, count * sizeof(float));
    if (!p) *fail = 1;
    return p;
}

static void lgm_destroy(void *p) {
    lgm *s = p;
    if (!s) return;
    float *bufs[] = {s->W, s->Zb, s->Eb, s->Zs, s->P, s->E, s->gr, s->gs, s->D, s->dE, s->dZ, s->dphi, s->dY};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) s->h->free(s->h, bufs[i]);
    free(s);
}

static int lgm_create(const clpdd_host *h, const clpdd_section *cfg, const clpdd_solver_dims *dims, void **out) {
    lgm *s = calloc(1, sizeof *s);
    if (!s) return h->error(h, "lgm: out of memory"), -1;
    s->h = h;
    s->ops = h->ops;
    s->m = dims->m;
    s->d = dims->d;
    s->C = dims->C;
    s->n_max = dims->n_max;
    s->head_std = (float)h->cfg_float(h, cfg, "head_std");
    s->heads = (int)h->cfg_int(h, cfg, "heads");
    s->bias = h->cfg_bool(h, cfg, "bias");
    size_t m = (size_t)s->m, d = (size_t)s->d, C = (size_t)s->C, nm = (size_t)s->n_max, g = (d + 1) * C;
    int fail = 0;
    s->W = alloc_f(s, d * C, &fail);
    s->Zb = alloc_f(s, nm * C, &fail);
    s->Eb = alloc_f(s, nm * C, &fail);
    s->Zs = alloc_f(s, m * C, &fail);
    s->P = alloc_f(s, m * C, &fail);
    s->E = alloc_f(s, m * C, &fail);
    s->gr = alloc_f(s, g, &fail);
    s->gs = alloc_f(s, g, &fail);
    s->D = alloc_f(s, g, &fail);
    s->dE = alloc_f(s, m * C, &fail);
    s->dZ = alloc_f(s, m * C, &fail);
    s->dphi = alloc_f(s, m * d, &fail);
    s->dY = alloc_f(s, m * C, &fail);
    if (fail) {
        lgm_destroy(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int lgm_objective(void *p, float *L, const float *phi_s, const float *Y, const float *phi_b, const int32_t *y_b,
                         int n) {
    lgm *s = p;
    const clpdd_ops *ops = s->ops;
    int m = s->m, d = s->d, C = s->C, H = s->heads;
    size_t dC = (size_t)d * C, mC = (size_t)m * C, g = dC + (s->bias ? (size_t)C : 0);
    s->ready = 0;
    if (n > s->n_max) return s->h->error(s->h, "lgm: batch %d exceeds n_max %d", n, s->n_max), -1;
    if (n < 1) return s->h->error(s->h, "lgm: empty real batch"), -1;
    ops->fill(s->dphi, 0.0f, (size_t)m * d);
    ops->fill(s->dY, 0.0f, mC);
    double total = 0;
    for (int k = 0; k < H; k++) {
        uint64_t offset = (s->calls * (uint64_t)H + (uint64_t)k) * (uint64_t)dC;
        ops->rand_normal(s->W, dC, 0.0f, s->head_std, s->h->seed ^ LGM_SALT, offset);  /* W (d, C) */
        /* g_r */
        ops->gemm(0, 0, n, C, d, 1.0f, phi_b, d, s->W, C, 0.0f, s->Zb, C);          /* Φ_b W (n, C) */
        ops->cross_entropy(NULL, s->Eb, s->Zb, y_b, n, C, 1.0f, 1.0f / n);           /* E_b (n, C) */
        ops->gemm(1, 0, d, C, n, 1.0f, phi_b, d, s->Eb, C, 0.0f, s->gr, C);         /* Φ_bᵀE_b (d, C) */
        if (s->bias) ops->sum_rows(s->gr + dC, s->Eb, (size_t)n, (size_t)C, 0.0f); /* 𝟙ᵀE_b (C) */
        /* g_s */
        ops->gemm(0, 0, m, C, d, 1.0f, phi_s, d, s->W, C, 0.0f, s->Zs, C);          /* Φ_s W (m, C) */
        ops->softmax_rows(s->P, s->Zs, m, C, 1.0f);
        ops->axpby(s->E, 1.0f / m, s->P, -1.0f / m, Y, mC);                        /* E = (P − Y)/m */
        ops->gemm(1, 0, d, C, m, 1.0f, phi_s, d, s->E, C, 0.0f, s->gs, C);          /* Φ_sᵀE (d, C) */
        if (s->bias) ops->sum_rows(s->gs + dC, s->E, (size_t)m, (size_t)C, 0.0f);   /* 𝟙ᵀE (C) */
        /* the cosine */
        double rr = ops->dot(s->gr, s->gr, g), ss = ops->dot(s->gs, s->gs, g), rs = ops->dot(s->gr, s->gs, g);
        if (!isfinite(rr) || !isfinite(ss) || !isfinite(rs))
            return s->h->error(s->h, "lgm: head gradients are not finite (NaN or Inf in the features?)"), -1;
        if (!(rr > 0) || !(ss > 0))
            return s->h->error(s->h, "lgm: a head gradient is exactly zero (|g_real|^2 = %g, |g_syn|^2 = %g): cosine undefined",
                               rr, ss), -1;
        double nr = sqrt(rr), ns = sqrt(ss), cs = rs / (nr * ns);
        total += 1.0 - cs;
        /* D = ∂L/∂g_s, averaged over heads */
        float a = (float)(-1.0 / (nr * ns) / H), b = (float)(cs / ss / H);
        ops->axpby(s->D, a, s->gr, b, s->gs, g);
        ops->gemm(0, 0, m, C, d, 1.0f, phi_s, d, s->D, C, 0.0f, s->dE, C);          /* dE = Φ_s D_W */
        if (s->bias) ops->add2d(s->dE, (size_t)C, s->D + dC, 0, (size_t)m, (size_t)C); /*  + 𝟙D_bᵀ */
        ops->gemm(0, 1, m, d, C, 1.0f, s->E, C, s->D, C, 1.0f, s->dphi, d);         /* dΦ_s += E D_Wᵀ */
        ops->softmax_rows_backward(s->dZ, s->dE, s->P, m, C, 1.0f / m);            /* dZ (m, C) */
        ops->gemm(0, 1, m, d, C, 1.0f, s->dZ, C, s->W, C, 1.0f, s->dphi, d);        /* dΦ_s += dZ Wᵀ */
        ops->axpy(s->dY, -1.0f / m, s->dE, mC);                                      /* dY += −dE/m */
    }
    s->calls++;
    if (!ops->all_finite(s->dphi, (size_t)m * d))
        return s->h->error(s->h, "lgm: gradient is not finite (|g_syn| too small for fp32?)"), -1;
    *L = (float)(total / H);
    s->ready = 1;
    return 0;
}

static void lgm_set_step(void *p, uint64_t step) {
    lgm *s = p;
    s->calls = step > 0 ? step - 1 : 0;
}

static int lgm_backward(void *p, float *dphi_s, float *dY, const float *dZ) {
    lgm *s = p;
    (void)dZ; /* objective solver: NULL */
    if (!s->ready) return s->h->error(s->h, "lgm: backward without a successful objective"), -1;
    s->ops->copy(dphi_s, s->dphi, (size_t)s->m * s->d * sizeof(float));
    if (dY) s->ops->copy(dY, s->dY, (size_t)s->m * s->C * sizeof(float));
    return 0;
}

static const clpdd_solver_vt lgm_vt = {
    /* .create = */ lgm_create,
    /* .destroy = */ lgm_destroy,
    /* .forward = */ NULL,
    /* .objective = */ lgm_objective,
    /* .backward = */ lgm_backward,
    /* .learned = */ NULL, /* learns nothing (ABI 1.5 members; the core reads them from minor >= 5 only) */
    /* .set_learned = */ NULL,
    /* .set_step = */ lgm_set_step,
};

static const clpdd_plugin lgm_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 5, /* set_step (ABI 1.5); only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_SOLVER,
    /* .name = */ "lgm",
    /* .version = */ "1.0.0",
    /* .summary = */ "linear gradient matching: 1 - cos between random-head gradients on real and synthetic features",
    /* .keys = */ lgm_keys,
    /* .n_keys = */ (int)(sizeof lgm_keys / sizeof lgm_keys[0]),
    /* .vtable = */ &lgm_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(lgm_plugin)
