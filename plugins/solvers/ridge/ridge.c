/* ridge: CLP-DD's inner solver, closed-form kernel ridge regression on frozen features.
 *
 * Legend: m synthetic images, d feature dim, d' = d + bias (the bias is an extra constant
 * feature β, so K = Φ̃Φ̃ᵀ = ΦΦᵀ + β²𝟙𝟙ᵀ), C classes, n real batch.
 *
 *   λ_eff = λ·tr(K)/m (relative, as KIP/FRePo/RFAD scale it) or λ (absolute); tr(K) = ‖Φ̃‖²
 *   dual   (m ≤ d'):  A = (K + λ_eff I)⁻¹ Y   (m×m Cholesky),   W̃ = Φ̃ᵀ A
 *   primal (m > d'):  W̃ = (Φ̃ᵀΦ̃ + λ_eff I)⁻¹ Φ̃ᵀ Y   (d'×d' Cholesky) — the same W̃ (push-through)
 *   Z = Φ̃_b W̃ = Φ_b W + β·w_bias
 *
 * Backward from dZ: dW̃ = Φ̃_bᵀ dZ, then
 *   dual:   dA = Φ̃ dW̃; G = (K + λ_eff I)⁻¹ dA; dΦ̃ = A dW̃ᵀ − (G Aᵀ + A Gᵀ) Φ̃; dλ_eff = −⟨G, A⟩; dY = G
 *   primal: H = (M + λ_eff I)⁻¹ dW̃; dΦ̃ = Y Hᵀ − Φ̃ (H W̃ᵀ + W̃ Hᵀ); dλ_eff = −⟨H, W̃⟩; dY = Φ̃ H
 *   relative: dΦ̃ += dλ_eff · (2λ/m) · Φ̃
 *   lambda = learn (ABI 1.5): ∂L/∂log λ = λ_eff·dλ_eff (relative and absolute alike)
 * and dΦ_s is dΦ̃ without its bias column. The jitter added after a failed factorisation is a
 * constant (not differentiated).
 *
 * Gradients: "=" for every output. Inputs of forward are read again by backward (the core
 * leaves them untouched in between). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/linalg.h"
#include "clpdd/plugin.h"

typedef struct ridge {
    const clpdd_host *h;
    const clpdd_ops *ops;
    int m, d, dp, C, n_max;
    int bias, relative, primal;
    float lambda, beta;
    int warned_jitter;
    /* state of the last forward */
    const float *phi_b, *Y; /* (n, d), (m, C): the caller's */
    int n;
    float lambda_eff;
    int learn;       /* lambda = learn (ABI 1.5) */
    double lambda_learned; /* learn: the value in double (lambda is its float) */
    double grad_log; /* ∂L/∂log λ of the last backward: λ_eff·∂L/∂λ_eff in both modes */
    /* buffers */
    float *phit;  /* (m, d')   Φ̃ */
    float *sys;   /* (s, s)    K + λI or M + λI, factored in place; s = m (dual) or d' (primal) */
    float *sys0;  /* (s, s)    the unregularised matrix, kept to retry with jitter */
    float *A;     /* (m, C)    dual coefficients */
    float *W;     /* (d', C)   W̃ */
    float *G;     /* (s, C)    solve of the backward right-hand side */
    float *dW;    /* (d', C) */
    float *dA;    /* (m, C)    dual only */
    float *S;     /* (s, s)    symmetric outer-product term */
    float *dphit; /* (m, d') */
    float *scal;  /* (2)       device scalars: [0] λ or jitter for the diagonal, [1] β */
    float *bw;    /* (C)       β·w_bias */
} ridge;

/* the ENUM keys' values as h->cfg_enum gives them: their choices' order */
enum { RIDGE_LAMBDA_RELATIVE = 0, RIDGE_LAMBDA_ABSOLUTE };
enum { RIDGE_FORM_AUTO = 0, RIDGE_FORM_DUAL, RIDGE_FORM_PRIMAL };

static const clpdd_key ridge_keys[] = {
    {"lambda", CLPDD_KEY_LEARNABLE, "0.3",
     "ridge regulariser; relative mode multiplies it by tr(K)/m (0.3 transferred best to a probe in results/lambda-sweep); learn or learn:<init> optimises log lambda with the pixels (a learned lambda that needs jitter is an error)",
     0, 1e12, NULL},
    {"lambda_mode", CLPDD_KEY_ENUM, "relative", "relative: lambda*tr(K)/m (KIP/FRePo/RFAD); absolute: lambda", 1, 0,
     "relative|absolute"},
    {"bias", CLPDD_KEY_BOOL, "false", "fit an intercept: an extra constant feature beta (K += beta^2 11^T)", 1, 0, NULL},
    {"bias_scale", CLPDD_KEY_FLOAT, "1", "beta, the value of the constant bias feature", 0, 1e6, NULL},
    {"form", CLPDD_KEY_ENUM, "auto",
     "auto: the smaller system (dual m x m when m <= d+bias, else primal d x d); dual; primal", 1, 0,
     "auto|dual|primal"},
};

static void *alloc_f(ridge *r, size_t count, int *fail) {
    void *p = r->h->alloc(r->h, count * sizeof(float));
    if (!p) *fail = 1;
    return p;
}

static void ridge_destroy(void *p) {
    ridge *r = p;
    if (!r) return;
    float *bufs[] = {r->phit, r->sys, r->sys0, r->A, r->W, r->G, r->dW, r->dA, r->S, r->dphit, r->scal, r->bw};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) r->h->free(r->h, bufs[i]);
    free(r);
}

static int ridge_create(const clpdd_host *h, const clpdd_section *cfg, const clpdd_solver_dims *dims, void **out) {
    ridge *r = calloc(1, sizeof *r);
    if (!r) return h->error(h, "ridge: out of memory"), -1;
    r->h = h;
    r->ops = h->ops;
    r->m = dims->m;
    r->d = dims->d;
    r->C = dims->C;
    r->n_max = dims->n_max;
    r->bias = h->cfg_bool(h, cfg, "bias");
    r->dp = r->d + r->bias;
    r->relative = h->cfg_enum(h, cfg, "lambda_mode") == RIDGE_LAMBDA_RELATIVE;
    r->lambda = (float)h->cfg_float(h, cfg, "lambda");
    r->learn = h->abi_minor >= 5 && h->cfg_learn(h, cfg, "lambda");
    r->lambda_learned = h->cfg_float(h, cfg, "lambda");
    r->beta = (float)h->cfg_float(h, cfg, "bias_scale");
    const int form = h->cfg_enum(h, cfg, "form");
    r->primal = form == RIDGE_FORM_PRIMAL || (form == RIDGE_FORM_AUTO && r->m > r->dp);
    if (r->lambda == 0 && ((r->primal && r->m < r->dp) || (!r->primal && r->m > r->dp)))
        h->warn(h, "ridge: lambda = 0 with a rank-deficient %s system (m = %d, d' = %d): expect jitter",
                r->primal ? "primal" : "dual", r->m, r->dp);
    size_t s = (size_t)(r->primal ? r->dp : r->m);
    size_t m = (size_t)r->m, dp = (size_t)r->dp, C = (size_t)r->C;
    int fail = 0;
    r->phit = alloc_f(r, m * dp, &fail);
    r->sys = alloc_f(r, s * s, &fail);
    r->sys0 = alloc_f(r, s * s, &fail);
    r->A = alloc_f(r, m * C, &fail);
    r->W = alloc_f(r, dp * C, &fail);
    r->G = alloc_f(r, s * C, &fail);
    r->dW = alloc_f(r, dp * C, &fail);
    r->dA = alloc_f(r, m * C, &fail);
    r->S = alloc_f(r, s * s, &fail);
    r->dphit = alloc_f(r, m * dp, &fail);
    r->scal = alloc_f(r, 2, &fail);
    r->bw = alloc_f(r, C, &fail);
    if (fail) {
        ridge_destroy(r);
        return -1;
    }
    float b = r->beta;
    r->ops->to_device(r->scal + 1, &b, sizeof b);
    *out = r;
    return 0;
}

/* sys = sys0 + λ_eff·I, then Cholesky; on failure retry with growing jitter (warned once) */
static int factor(ridge *r, int s, float trace) {
    double scale = trace > 0 ? (double)trace / r->m : 1.0;
    float jitter = 0;
    int attempt = clpdd_chol_jitter(r->ops, r->sys, r->sys0, s, r->lambda_eff, scale, r->scal, &jitter);
    if (attempt < 0) {
        r->h->error(r->h, "ridge: %s system (%d x %d) not positive definite even with jitter up to %.3g (tr(K) = %g): features degenerate?",
                    r->primal ? "primal" : "dual", s, s, scale * 0.1, trace);
        return -1;
    }
    if (attempt > 0 && r->learn) /* the jitter is not differentiated: the λ gradient would be wrong */
        return r->h->error(r->h, "ridge: learned lambda = %.6g (lambda_eff %.3g) left the %s system not positive definite (jitter %.3g needed), so its gradient would be wrong: raise [distill] learn_prior's pull (a smaller std) or start lambda higher",
                           (double)r->lambda, r->lambda_eff, r->primal ? "primal" : "dual", jitter),
               -1;
    if (attempt > 0 && !r->warned_jitter) {
        r->warned_jitter = 1;
        r->h->warn(r->h, "ridge: %s system not positive definite; added jitter %.3g (lambda_eff %.3g); warned once",
                   r->primal ? "primal" : "dual", jitter, r->lambda_eff);
    }
    return 0;
}

static int ridge_forward(void *p, float *Z, const float *phi_s, const float *Y, const float *phi_b, int n) {
    ridge *r = p;
    const clpdd_ops *ops = r->ops;
    int m = r->m, d = r->d, dp = r->dp, C = r->C;
    if (n > r->n_max) return r->h->error(r->h, "ridge: batch %d exceeds n_max %d", n, r->n_max), -1;
    /* Φ̃ = [Φ_s, β] */
    ops->copy2d(r->phit, (size_t)dp, phi_s, (size_t)d, (size_t)m, (size_t)d);
    if (r->bias) ops->copy2d(r->phit + d, (size_t)dp, r->scal + 1, 0, (size_t)m, 1);
    float trace = (float)ops->dot(r->phit, r->phit, (size_t)m * dp);
    if (!isfinite(trace)) return r->h->error(r->h, "ridge: synthetic features contain NaN or Inf"), -1;
    r->lambda_eff = r->relative ? r->lambda * trace / (float)m : r->lambda;
    if (!r->primal) {
        ops->syrk(0, m, dp, 1.0f, r->phit, dp, 0.0f, r->sys0, m);               /* K = Φ̃Φ̃ᵀ (m, m) */
        if (factor(r, m, trace)) return -1;
        ops->copy(r->A, Y, (size_t)m * C * sizeof(float));
        ops->potrs(r->sys, m, m, r->A, C, C);                                  /* A (m, C) */
        ops->gemm(1, 0, dp, C, m, 1.0f, r->phit, dp, r->A, C, 0.0f, r->W, C);  /* W̃ = Φ̃ᵀA (d', C) */
    } else {
        ops->syrk(1, dp, m, 1.0f, r->phit, dp, 0.0f, r->sys0, dp);             /* M = Φ̃ᵀΦ̃ (d', d') */
        if (factor(r, dp, trace)) return -1;
        ops->gemm(1, 0, dp, C, m, 1.0f, r->phit, dp, Y, C, 0.0f, r->W, C);     /* Φ̃ᵀY (d', C) */
        ops->potrs(r->sys, dp, dp, r->W, C, C);                                /* W̃ (d', C) */
    }
    /* Z = Φ_b W + β·w_bias (n, C) */
    ops->gemm(0, 0, n, C, d, 1.0f, phi_b, d, r->W, C, 0.0f, Z, C);
    if (r->bias) {
        ops->axpby(r->bw, r->beta, r->W + (size_t)d * C, 0.0f, r->W + (size_t)d * C, (size_t)C);
        ops->add2d(Z, (size_t)C, r->bw, 0, (size_t)n, (size_t)C);
    }
    if (!ops->all_finite(Z, (size_t)n * C))
        return r->h->error(r->h, "ridge: predictions are not finite (lambda_eff %g, tr(K) %g)", r->lambda_eff, trace), -1;
    r->phi_b = phi_b;
    r->Y = Y;
    r->n = n;
    return 0;
}

static int ridge_backward(void *p, float *dphi_s, float *dY, const float *dZ) {
    ridge *r = p;
    const clpdd_ops *ops = r->ops;
    int m = r->m, d = r->d, dp = r->dp, C = r->C, n = r->n;
    /* dW̃ = Φ̃_bᵀ dZ (d', C) */
    ops->gemm(1, 0, d, C, n, 1.0f, r->phi_b, d, dZ, C, 0.0f, r->dW, C);
    if (r->bias) {
        ops->sum_rows(r->dW + (size_t)d * C, dZ, (size_t)n, (size_t)C, 0.0f);
        ops->scale(r->dW + (size_t)d * C, r->beta, (size_t)C);
    }
    double dlam;
    if (!r->primal) {
        ops->gemm(0, 0, m, C, dp, 1.0f, r->phit, dp, r->dW, C, 0.0f, r->dA, C);  /* dA = Φ̃ dW̃ (m, C) */
        ops->copy(r->G, r->dA, (size_t)m * C * sizeof(float));
        ops->potrs(r->sys, m, m, r->G, C, C);                                    /* G (m, C) */
        ops->gemm(0, 1, m, dp, C, 1.0f, r->A, C, r->dW, C, 0.0f, r->dphit, dp);  /* A dW̃ᵀ */
        ops->gemm(0, 1, m, m, C, 1.0f, r->G, C, r->A, C, 0.0f, r->S, m);         /* S = G Aᵀ */
        ops->gemm(0, 1, m, m, C, 1.0f, r->A, C, r->G, C, 1.0f, r->S, m);         /*   + A Gᵀ */
        ops->gemm(0, 0, m, dp, m, -1.0f, r->S, m, r->phit, dp, 1.0f, r->dphit, dp);
        dlam = -ops->dot(r->G, r->A, (size_t)m * C);
        if (dY) ops->copy(dY, r->G, (size_t)m * C * sizeof(float));
    } else {
        ops->copy(r->G, r->dW, (size_t)dp * C * sizeof(float));
        ops->potrs(r->sys, dp, dp, r->G, C, C);                                   /* H (d', C) */
        ops->gemm(0, 1, m, dp, C, 1.0f, r->Y, C, r->G, C, 0.0f, r->dphit, dp);    /* Y Hᵀ */
        ops->gemm(0, 1, dp, dp, C, 1.0f, r->G, C, r->W, C, 0.0f, r->S, dp);       /* S = H W̃ᵀ */
        ops->gemm(0, 1, dp, dp, C, 1.0f, r->W, C, r->G, C, 1.0f, r->S, dp);       /*   + W̃ Hᵀ */
        ops->gemm(0, 0, m, dp, dp, -1.0f, r->phit, dp, r->S, dp, 1.0f, r->dphit, dp);
        dlam = -ops->dot(r->G, r->W, (size_t)dp * C);
        if (dY) ops->gemm(0, 0, m, C, dp, 1.0f, r->phit, dp, r->G, C, 0.0f, dY, C);
    }
    r->grad_log = (double)r->lambda_eff * dlam; /* λ_eff ∝ λ in both modes: ∂λ_eff/∂log λ = λ_eff */
    if (r->relative) ops->axpy(r->dphit, (float)(dlam * 2.0 * r->lambda / m), r->phit, (size_t)m * dp);
    ops->copy2d(dphi_s, (size_t)d, r->dphit, (size_t)dp, (size_t)m, (size_t)d);
    if (!ops->all_finite(dphi_s, (size_t)m * d))
        return r->h->error(r->h, "ridge: gradient is not finite (lambda_eff %g): increase lambda?", r->lambda_eff), -1;
    return 0;
}

static int ridge_learned(void *p, clpdd_learned *out, int max) {
    const ridge *r = p;
    if (!r->learn) return 0;
    if (max > 0) out[0] = (clpdd_learned){"lambda", r->lambda_learned, r->grad_log};
    return 1;
}

static void ridge_set_learned(void *p, int i, double value) {
    ridge *r = p;
    if (i != 0) return;
    r->lambda_learned = value;
    r->lambda = (float)value;
}

static const clpdd_solver_vt ridge_vt = {
    /* .create = */ ridge_create,
    /* .destroy = */ ridge_destroy,
    /* .forward = */ ridge_forward,
    /* .objective = */ NULL,
    /* .backward = */ ridge_backward,
    /* .learned = */ ridge_learned,
    /* .set_learned = */ ridge_set_learned,
    /* .set_step = */ NULL,
};

static const clpdd_plugin ridge_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 5, /* host cfg_enum (1.4), a LEARNABLE key and learned/set_learned (1.5); only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_SOLVER,
    /* .name = */ "ridge",
    /* .version = */ "1.0.0",
    /* .summary = */ "closed-form kernel ridge on the features, dual or primal by size (CLP-DD)",
    /* .keys = */ ridge_keys,
    /* .n_keys = */ (int)(sizeof ridge_keys / sizeof ridge_keys[0]),
    /* .vtable = */ &ridge_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(ridge_plugin)
