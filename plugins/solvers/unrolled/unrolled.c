/* unrolled: the trajectory baseline. T steps of full-batch gradient descent on a linear probe
 * trained on the synthetic set, then predictions on the real batch; backward is reverse mode
 * through all T steps.
 *
 * Legend: m synthetic images, n real batch, d feature dim, C classes, T steps, η lr, ω weight
 * decay, k checkpoint interval, Ŵ = [W; bᵀ] (d+1, C) (the bias is the last row).
 *
 *   W₀ = 0, or N(0, init_std²) drawn by ops->rand_normal(seed = host->seed ^ UNROLLED_SALT,
 *   offset = 0; with resample = true offset = call·d·C, call = 0, 1, … counting forwards); b₀ = 0
 *   t = 0 … T−1:  Z_t = Φ_s W_t + 𝟙b_tᵀ,  P_t = softmax(Z_t),  R_t = (P_t − Y_s)/m     (m, C)
 *                 W_{t+1} = (1 − ηω) W_t − η Φ_sᵀ R_t,   b_{t+1} = b_t − η 𝟙ᵀR_t      (no decay on b)
 *   Z = Φ_b W_T + 𝟙b_Tᵀ                                                               (n, C)
 *
 * Reverse mode, from dW_T = Φ_bᵀ dZ, db_T = 𝟙ᵀdZ, for t = T−1 … 0 (given dW_{t+1}, db_{t+1}):
 *   dR_t  = −η (Φ_s dW_{t+1} + 𝟙 db_{t+1}ᵀ)                         (m, C)
 *   dΦ_s += −η R_t dW_{t+1}ᵀ                                        (Φ_s in the update)
 *   dY_s += −dR_t/m
 *   dZ_t  = softmax′(P_t)ᵀ (dR_t/m) = P_t ⊙ (dR_t − ⟨dR_t, P_t⟩_row)/m   (ops->softmax_rows_backward)
 *   dW_t  = (1 − ηω) dW_{t+1} + Φ_sᵀ dZ_t,   db_t = db_{t+1} + 𝟙ᵀdZ_t
 *   dΦ_s += dZ_t W_tᵀ                                               (Φ_s in the logits)
 * It needs W_t, b_t for every t: Ŵ_t is stored at t = 0, k, 2k, … (checkpoint_every = k; 0 stores
 * every iterate, k = 1) and each segment of k steps is recomputed from its checkpoint during
 * backward (the same ops on the same inputs: the same gradients as storing everything, bit for
 * bit on one device). Memory ⌈T/k⌉ + k iterates of (d+1)·C floats; time T forward steps + T
 * backward steps (+ T − ⌈T/k⌉ recomputed ones when k > 1), each O(mdC).
 *
 * Gradients: "=" for every output (dΦ_s and dY_s are zeroed, then accumulate over the steps).
 * Inputs of forward are read again by backward (the core leaves them untouched in between). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"

#define UNROLLED_SALT 0x756e726f6c6c6564ULL /* "unrolled" */

typedef struct unrolled {
    const clpdd_host *h;
    const clpdd_ops *ops;
    int m, d, C, n_max;
    int T, k, nck; /* steps, checkpoint interval, checkpoints */
    int init_normal, resample;
    float lr, wd, init_std;
    uint64_t calls;
    /* state of the last forward */
    const float *phi_s, *Y, *phi_b; /* (m, d), (m, C), (n, d): the caller's */
    int n;
    /* buffers; Ŵ = (d+1, C) */
    float *ck;    /* (nck, d+1, C)   Ŵ_t at t = 0, k, 2k, … */
    float *seg;   /* (max(k,2), d+1, C) the iterates of one segment (backward), ping-pong (forward) */
    float *wT;    /* (d+1, C)        Ŵ_T */
    float *Zt;    /* (m, C)          logits of a step */
    float *P;     /* (m, C)          softmax */
    float *R;     /* (m, C)          (P − Y)/m */
    float *dR;    /* (m, C) */
    float *dZt;   /* (m, C) */
    float *dw;    /* (d+1, C)        dŴ_{t+1} */
    float *dw2;   /* (d+1, C)        dŴ_t */
    float *vC;    /* (C)             a row of C: Σ_r R, −η db */
} unrolled;

/* init's values as h->cfg_enum gives them: its choices' order */
enum { UNROLLED_INIT_ZERO = 0, UNROLLED_INIT_NORMAL };

static const clpdd_key unrolled_keys[] = {
    {"steps", CLPDD_KEY_INT, "100", "T, full-batch gradient-descent steps of the inner linear probe", 1, 100000, NULL},
    {"lr", CLPDD_KEY_FLOAT, "0.01", "eta, inner learning rate (GD is stable below ~4m/||Phi_s||_F^2: scale it with the features)", 0, 1e6,
     NULL},
    {"weight_decay", CLPDD_KEY_FLOAT, "0", "omega, L2 weight decay on W (not on b): W -= eta*(grad + omega*W)", 0, 1e6, NULL},
    {"init", CLPDD_KEY_ENUM, "zero", "W_0: zero, or normal N(0, init_std^2) from the run seed (b_0 = 0 always)", 1, 0,
     "zero|normal"},
    {"init_std", CLPDD_KEY_FLOAT, "0.01", "standard deviation of W_0 when init = normal", 0, 1e3, NULL},
    {"resample", CLPDD_KEY_BOOL, "false",
     "init = normal: draw a fresh W_0 at every forward (run seed + call counter) instead of one per run", 1, 0, NULL},
    {"checkpoint_every", CLPDD_KEY_INT, "0",
     "0 stores all T iterates for backward; k > 0 stores every k-th and recomputes (memory ~T/k + k iterates)", 0, 100000,
     NULL},
};

static void *alloc_f(unrolled *u, size_t count, int *fail) {
    void *p = u->h->alloc(u->h, count * sizeof(float));
    if (!p) *fail = 1;
    return p;
}

static void unrolled_destroy(void *p) {
    unrolled *u = p;
    if (!u) return;
    float *bufs[] = {u->ck, u->seg, u->wT, u->Zt, u->P, u->R, u->dR, u->dZt, u->dw, u->dw2, u->vC};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) u->h->free(u->h, bufs[i]);
    free(u);
}

static int unrolled_create(const clpdd_host *h, const clpdd_section *cfg, const clpdd_solver_dims *dims, void **out) {
    unrolled *u = calloc(1, sizeof *u);
    if (!u) return h->error(h, "unrolled: out of memory"), -1;
    u->h = h;
    u->ops = h->ops;
    u->m = dims->m;
    u->d = dims->d;
    u->C = dims->C;
    u->n_max = dims->n_max;
    u->T = (int)h->cfg_int(h, cfg, "steps");
    int every = (int)h->cfg_int(h, cfg, "checkpoint_every");
    u->k = every == 0 ? 1 : every > u->T ? u->T : every;
    u->nck = (u->T + u->k - 1) / u->k;
    u->lr = (float)h->cfg_float(h, cfg, "lr");
    u->wd = (float)h->cfg_float(h, cfg, "weight_decay");
    u->init_normal = h->cfg_enum(h, cfg, "init") == UNROLLED_INIT_NORMAL;
    u->init_std = (float)h->cfg_float(h, cfg, "init_std");
    u->resample = h->cfg_bool(h, cfg, "resample");
    if (!u->init_normal && (h->cfg_is_set(h, cfg, "init_std") || u->resample))
        h->warn(h, "unrolled: init_std and resample only apply with init = normal");
    size_t m = (size_t)u->m, C = (size_t)u->C, wsz = ((size_t)u->d + 1) * C;
    int fail = 0;
    u->ck = alloc_f(u, (size_t)u->nck * wsz, &fail);
    u->seg = alloc_f(u, (size_t)(u->k > 2 ? u->k : 2) * wsz, &fail);
    u->wT = alloc_f(u, wsz, &fail);
    u->Zt = alloc_f(u, m * C, &fail);
    u->P = alloc_f(u, m * C, &fail);
    u->R = alloc_f(u, m * C, &fail);
    u->dR = alloc_f(u, m * C, &fail);
    u->dZt = alloc_f(u, m * C, &fail);
    u->dw = alloc_f(u, wsz, &fail);
    u->dw2 = alloc_f(u, wsz, &fail);
    u->vC = alloc_f(u, C, &fail);
    if (fail) {
        h->error(h, "unrolled: out of memory for %d stored iterates of (%d+1) x %d (set checkpoint_every?)", u->nck, u->d,
                 u->C);
        unrolled_destroy(u);
        return -1;
    }
    *out = u;
    return 0;
}

/* P, R of Ŵ (the logits of the synthetic set) */
static void probe_residual(unrolled *u, const float *w) {
    const clpdd_ops *ops = u->ops;
    int m = u->m, d = u->d, C = u->C;
    ops->gemm(0, 0, m, C, d, 1.0f, u->phi_s, d, w, C, 0.0f, u->Zt, C);           /* Φ_s W (m, C) */
    ops->add2d(u->Zt, (size_t)C, w + (size_t)d * C, 0, (size_t)m, (size_t)C);   /* + 𝟙bᵀ */
    ops->softmax_rows(u->P, u->Zt, m, C, 1.0f);
    ops->axpby(u->R, 1.0f / m, u->P, -1.0f / m, u->Y, (size_t)m * C);          /* R = (P − Y)/m */
}

/* Ŵ_{t+1} = one gradient step from Ŵ_t */
static void gd_step(unrolled *u, float *next, const float *cur) {
    const clpdd_ops *ops = u->ops;
    int m = u->m, d = u->d, C = u->C;
    size_t dC = (size_t)d * C;
    probe_residual(u, cur);
    ops->axpby(next, 1.0f - u->lr * u->wd, cur, 0.0f, cur, dC);                  /* (1 − ηω) W */
    ops->gemm(1, 0, d, C, m, -u->lr, u->phi_s, d, u->R, C, 1.0f, next, C);      /*  − η Φ_sᵀR */
    ops->sum_rows(u->vC, u->R, (size_t)m, (size_t)C, 0.0f);                    /* 𝟙ᵀR (C) */
    ops->axpby(next + dC, 1.0f, cur + dC, -u->lr, u->vC, (size_t)C);           /* b − η 𝟙ᵀR */
}

static int unrolled_forward(void *p, float *Z, const float *phi_s, const float *Y, const float *phi_b, int n) {
    unrolled *u = p;
    const clpdd_ops *ops = u->ops;
    int d = u->d, C = u->C, k = u->k, T = u->T;
    size_t dC = (size_t)d * C, wsz = dC + C;
    u->phi_s = u->phi_b = NULL; /* backward refuses to run after a failed forward */
    if (n > u->n_max) return u->h->error(u->h, "unrolled: batch %d exceeds n_max %d", n, u->n_max), -1;
    u->phi_s = phi_s;
    u->Y = Y;
    /* Ŵ₀ */
    if (u->init_normal) {
        uint64_t offset = u->resample ? u->calls * (uint64_t)dC : 0;
        ops->rand_normal(u->ck, dC, 0.0f, u->init_std, u->h->seed ^ UNROLLED_SALT, offset);
    } else {
        ops->fill(u->ck, 0.0f, dC);
    }
    ops->fill(u->ck + dC, 0.0f, (size_t)C);
    u->calls++;
    const float *cur = u->ck;
    for (int t = 0; t < T; t++) {
        float *next;
        if (t + 1 == T) next = u->wT;
        else if ((t + 1) % k == 0) next = u->ck + (size_t)((t + 1) / k) * wsz;
        else next = cur == u->seg ? u->seg + wsz : u->seg;
        gd_step(u, next, cur);
        cur = next;
    }
    ops->gemm(0, 0, n, C, d, 1.0f, phi_b, d, u->wT, C, 0.0f, Z, C);            /* Φ_b W_T (n, C) */
    ops->add2d(Z, (size_t)C, u->wT + dC, 0, (size_t)n, (size_t)C);              /* + 𝟙b_Tᵀ */
    if (!ops->all_finite(Z, (size_t)n * C)) {
        u->phi_s = NULL;
        return u->h->error(u->h, "unrolled: predictions are not finite after %d steps (lr %g): lower lr?", T, u->lr), -1;
    }
    u->phi_b = phi_b;
    u->n = n;
    return 0;
}

/* one reverse step through Ŵ_{t+1} = step(Ŵ_t): u->dw holds dŴ_{t+1} on entry, dŴ_t on exit */
static void reverse_step(unrolled *u, float *dphi, float *dY, const float *w) {
    const clpdd_ops *ops = u->ops;
    int m = u->m, d = u->d, C = u->C;
    size_t dC = (size_t)d * C, mC = (size_t)m * C;
    float lr = u->lr;
    probe_residual(u, w);                                                        /* P_t, R_t */
    ops->axpby(u->vC, -lr, u->dw + dC, 0.0f, u->dw + dC, (size_t)C);             /* −η db */
    ops->gemm(0, 0, m, C, d, -lr, u->phi_s, d, u->dw, C, 0.0f, u->dR, C);       /* dR = −η Φ_s dW */
    ops->add2d(u->dR, (size_t)C, u->vC, 0, (size_t)m, (size_t)C);               /*      − η 𝟙dbᵀ */
    ops->gemm(0, 1, m, d, C, -lr, u->R, C, u->dw, C, 1.0f, dphi, d);            /* dΦ_s += −η R dWᵀ */
    if (dY) ops->axpy(dY, -1.0f / m, u->dR, mC);                                 /* dY += −dR/m */
    ops->softmax_rows_backward(u->dZt, u->dR, u->P, m, C, 1.0f / m);            /* dZ_t (m, C) */
    ops->axpby(u->dw2, 1.0f - lr * u->wd, u->dw, 0.0f, u->dw, dC);               /* (1 − ηω) dW */
    ops->gemm(1, 0, d, C, m, 1.0f, u->phi_s, d, u->dZt, C, 1.0f, u->dw2, C);    /*   + Φ_sᵀ dZ_t */
    ops->copy(u->dw2 + dC, u->dw + dC, (size_t)C * sizeof(float));
    ops->sum_rows(u->dw2 + dC, u->dZt, (size_t)m, (size_t)C, 1.0f);             /* db + 𝟙ᵀdZ_t */
    ops->gemm(0, 1, m, d, C, 1.0f, u->dZt, C, w, C, 1.0f, dphi, d);             /* dΦ_s += dZ_t W_tᵀ */
    float *t = u->dw;
    u->dw = u->dw2;
    u->dw2 = t;
}

static int unrolled_backward(void *p, float *dphi_s, float *dY, const float *dZ) {
    unrolled *u = p;
    const clpdd_ops *ops = u->ops;
    int m = u->m, d = u->d, C = u->C, n = u->n, k = u->k, T = u->T;
    size_t dC = (size_t)d * C, wsz = dC + C;
    if (!u->phi_s || !u->phi_b) return u->h->error(u->h, "unrolled: backward without a successful forward"), -1;
    ops->gemm(1, 0, d, C, n, 1.0f, u->phi_b, d, dZ, C, 0.0f, u->dw, C);         /* dW_T = Φ_bᵀ dZ */
    ops->sum_rows(u->dw + dC, dZ, (size_t)n, (size_t)C, 0.0f);                 /* db_T = 𝟙ᵀdZ */
    ops->fill(dphi_s, 0.0f, (size_t)m * d);
    if (dY) ops->fill(dY, 0.0f, (size_t)m * C);
    for (int s = u->nck - 1; s >= 0; s--) {
        int t0 = s * k, t1 = t0 + k < T ? t0 + k : T;
        const float *ck = u->ck + (size_t)s * wsz;
        /* iterate t of this segment: the checkpoint for t0, else seg[t − t0] (recomputed) */
        for (int t = t0 + 1; t < t1; t++)
            gd_step(u, u->seg + (size_t)(t - t0) * wsz, t == t0 + 1 ? ck : u->seg + (size_t)(t - 1 - t0) * wsz);
        for (int t = t1 - 1; t >= t0; t--) reverse_step(u, dphi_s, dY, t == t0 ? ck : u->seg + (size_t)(t - t0) * wsz);
    }
    if (!ops->all_finite(dphi_s, (size_t)m * d) || (dY && !ops->all_finite(dY, (size_t)m * C)))
        return u->h->error(u->h, "unrolled: gradient is not finite after reverse mode through %d steps (lr %g): lower lr?", T,
                           u->lr), -1;
    return 0;
}

static const clpdd_solver_vt unrolled_vt = {
    /* .create = */ unrolled_create,
    /* .destroy = */ unrolled_destroy,
    /* .forward = */ unrolled_forward,
    /* .objective = */ NULL,
    /* .backward = */ unrolled_backward,
    /* .learned = */ NULL, /* learns nothing (ABI 1.5 members; the core reads them from minor >= 5 only) */
    /* .set_learned = */ NULL,
    /* .set_step = */ NULL,
};

static const clpdd_plugin unrolled_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 4, /* host cfg_enum (ABI 1.4); only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_SOLVER,
    /* .name = */ "unrolled",
    /* .version = */ "1.0.0",
    /* .summary = */ "T steps of full-batch gradient descent on a linear probe, reverse mode through the trajectory",
    /* .keys = */ unrolled_keys,
    /* .n_keys = */ (int)(sizeof unrolled_keys / sizeof unrolled_keys[0]),
    /* .vtable = */ &unrolled_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(unrolled_plugin)
