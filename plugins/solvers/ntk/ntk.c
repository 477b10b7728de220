/* ntk: closed-form kernel ridge with the infinite-width NTK of a ReLU MLP on the features
 * (the KIP route), recursion as in neural-tangents (NTK parameterisation).
 *
 * Legend: m synthetic images, n real batch, d feature dim, C classes, L = depth (hidden layers),
 * σ_w² = w_var, σ_b² = b_var. For a pair of points (x, x′), with a = Σ(x,x), b = Σ(x′,x′), c = Σ(x,x′):
 *
 *   Σ⁰ = x·x′/d
 *   first dense:  Σ ← σ_w² Σ⁰ + σ_b²,  Θ ← Σ
 *   L times:      ReLU on (a, b, c): r = √(ab), u = c/r clamped to [−1, 1], θ = arccos u,
 *                   K = r(sin θ + (π − θ) cos θ)/(2π),  K̇ = (π − θ)/(2π),  on the diagonal K = a/2, K̇ = 1/2
 *                 dense: Σ ← σ_w² K + σ_b²,  Θ ← Σ + σ_w² K̇ Θ
 *   Z = Θ_bs (Θ_ss + λ_eff I)⁻¹ Y_s,   λ_eff = λ·tr(Θ_ss)/m (relative) or λ (absolute)
 *
 * Backward from dZ: A = (Θ_ss + λ_eff I)⁻¹ Y, dΘ_bs = dZ Aᵀ, G = (Θ_ss + λ_eff I)⁻¹ Θ_bsᵀ dZ,
 * dΘ_ss = −G Aᵀ, dλ_eff = −⟨G, A⟩ (relative: dΘ_ii += dλ_eff·λ/m), dY = G. Each kernel entry is
 * then differentiated through its own recursion back to (Σ⁰_xx′, Σ⁰_xx, Σ⁰_x′x′):
 *   ∂K/∂c = K̇,  ∂K/∂a = r sin θ/(4π a),  ∂K̇/∂u = 1/(2π sin θ),  ∂u/∂c = 1/r,  ∂u/∂a = −u/(2a).
 * P (pairwise, into Σ⁰_ij) and D (per synthetic point, into Σ⁰_ii) give
 *   dΦ_s = S Φ_s/d + P_bsᵀ Φ_b/d,  S = P_ss (symmetric, off-diagonal) + diag(2D).
 *
 * θ → 0 (duplicate or parallel rows, x_b = x_s) and θ → π: K and its derivatives through c, a, b
 * stay finite (∂K/∂a ∝ sin θ → 0), but K̇ has a cone in θ there: the derivative of arccos, 1/sin θ,
 * multiplied by ∂u/∂x (whose norm is sin θ/|x|) has a bounded but direction-dependent value, and
 * at θ = 0 exactly K̇ is not differentiable. Where 1 − |u| < NTK_COS_EPS we snap u to ±1 (so
 * a real row equal to a synthetic one, as at step 1 of a real-image init, gets the exact
 * duplicate value rather than fp32 noise through arccos) and take the symmetric subgradient, 0
 * (what a central finite difference gives), i.e. drop the K̇-through-θ term.
 * NTK_COS_EPS = 1e-6 (θ < 1.4e-3) sits above the fp32 noise in u from the device's Gram matrices
 * (≈1e-7·few), where θ itself is not resolved, and keeps the 1/sin θ amplification of fp32 rounding
 * in the final GEMMs below ~1e3·2⁻²⁴; the snap moves K̇ by at most θ/2π ≈ 2.3e-4 (K by ~1e-6·r),
 * the size of that fp32 noise. The diagonal Θ_ii is not a pair at all: it is the affine
 * function α·Σ⁰_ii + β of the point's own variance (θ ≡ 0 there), differentiated as such.
 *
 * Where it runs: the Gram GEMMs (Φ_sΦ_sᵀ, Φ_bΦ_sᵀ, row norms of Φ_b), the Cholesky, the solves
 * and the final GEMMs run on the device through clpdd_ops; the elementwise NTK recursion (arccos,
 * sin, per-pair reverse mode) runs on the HOST in float64: the m×m and n×m Gram matrices are
 * downloaded, Θ uploaded (forward); dΘ downloaded, S and P_bs uploaded (backward). That keeps one
 * plugin source for CPU and GPU without new elementwise ops, at a cost of 2·(m² + nm) floats over
 * the bus per direction per step and O((m²/2 + nm)·L) scalar host work (an acos, a sqrt per pair
 * and layer; the backward re-runs each pair's forward). Measured forward + backward on one core
 * of the 2-core dev machine (OpenBLAS, 1 thread): m = 100, n = 256, d = 768, C = 10 (IPC 10 on
 * 10 classes): 2.6 ms at depth 1, 7.8 ms at depth 3; m = 1000, n = 1024, C = 100: 0.15 s at
 * depth 1 and 0.40 s at depth 3 (ridge: 0.036 s), nearly all of it the host recursion, which a
 * GPU does not shorten: past m ≈ 1000 new elementwise ops would pay. Host scratch:
 * 2·(m² + n_max·m) floats + m doubles, malloc'd once in create
 * (host->alloc is device memory on CUDA); nothing allocates in forward/backward.
 *
 * Gradients: "=" for every output. Inputs of forward are read again by backward (the core leaves
 * them untouched in between). The jitter added after a failed factorisation is a constant. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/linalg.h"
#include "clpdd/plugin.h"

#define NTK_MAX_DEPTH 32
#define NTK_COS_EPS 1e-6
#define NTK_PI 3.14159265358979323846

typedef struct ntk_kernel {
    double w, b; /* σ_w², σ_b² */
    int L;       /* hidden ReLU layers */
    double alpha, beta; /* diagonal: Θ(x, x) = α·Σ⁰(x, x) + β */
} ntk_kernel;

typedef struct ntk {
    const clpdd_host *h;
    const clpdd_ops *ops;
    int m, d, C, n_max;
    int relative, warned_jitter;
    float lambda;
    ntk_kernel k;
    /* state of the last forward */
    const float *phi_s, *phi_b; /* (m, d), (n, d): the caller's */
    int n;
    float lambda_eff;
    int learn;       /* lambda = learn (ABI 1.5) */
    double lambda_learned; /* learn: the value in double (lambda is its float) */
    double grad_log; /* ∂L/∂log λ of the last backward: λ_eff·∂L/∂λ_eff in both modes */
    /* device buffers */
    float *gss;  /* (m, m)      Φ_sΦ_sᵀ, then Θ_ss (kept to retry with jitter), then dΘ_ss / S in backward */
    float *sys;  /* (m, m)      Θ_ss + λ_eff I, factored in place */
    float *gbs;  /* (n_max, m)  Φ_bΦ_sᵀ, then dΘ_bs / P_bs in backward */
    float *tbs;  /* (n_max, m)  Θ_bs */
    float *sq;   /* (n_max, d)  Φ_b ⊙ Φ_b */
    float *ones; /* (d)         1 */
    float *nb;   /* (n_max)     ‖φ_b‖² */
    float *A;    /* (m, C)      (Θ_ss + λ_eff I)⁻¹ Y */
    float *G;    /* (m, C)      (Θ_ss + λ_eff I)⁻¹ Θ_bsᵀ dZ */
    float *scal; /* (1)         the diagonal shift */
    /* host scratch (float64 recursion reads these) */
    float *hgss; /* (m, m)      Gram, kept for backward */
    float *hgbs; /* (n_max, m)  Gram, kept for backward */
    float *hnb;  /* (n_max)     ‖φ_b‖² */
    float *hss;  /* (m, m)      Θ_ss out / dΘ_ss in / S out */
    float *hbs;  /* (n_max, m)  Θ_bs out / dΘ_bs in / P_bs out */
    double *hD;  /* (m)         per-point gradient into Σ⁰_ii */
} ntk;

/* lambda_mode's values as h->cfg_enum gives them: its choices' order */
enum { NTK_LAMBDA_RELATIVE = 0, NTK_LAMBDA_ABSOLUTE };

static const clpdd_key ntk_keys[] = {
    {"depth", CLPDD_KEY_INT, "1", "hidden ReLU layers of the infinite-width MLP (0 = linear kernel w_var*x.x'/d + b_var)", 0,
     NTK_MAX_DEPTH, NULL},
    {"w_var", CLPDD_KEY_FLOAT, "2", "sigma_w^2, weight variance (NTK parameterisation; 2 keeps ReLU variances stable)", 1e-6,
     1e3, NULL},
    {"b_var", CLPDD_KEY_FLOAT, "0.01", "sigma_b^2, bias variance", 0, 1e3, NULL},
    {"lambda", CLPDD_KEY_LEARNABLE, "0.3",
     "ridge regulariser; relative mode multiplies it by tr(Theta_ss)/m; learn or learn:<init> optimises log lambda with the pixels (a learned lambda that needs jitter is an error)", 0, 1e12, NULL},
    {"lambda_mode", CLPDD_KEY_ENUM, "relative", "relative: lambda*tr(Theta_ss)/m (KIP/FRePo/RFAD); absolute: lambda", 1, 0,
     "relative|absolute"},
};

/* ---- the kernel recursion for one pair, float64 ---- */

typedef struct relu_state {
    double r, u, st, th; /* √(ab), cos θ (clamped), sin θ, θ */
    int singular;        /* |u| within NTK_COS_EPS of 1, or r = 0: no derivative through θ */
} relu_state;

static void relu_eval(relu_state *q, double a, double b, double c, double *K, double *Kd) {
    q->r = sqrt(a * b);
    double u = q->r > 0 ? c / q->r : 1.0;
    q->singular = !(q->r > 0) || !(1 - fabs(u) >= NTK_COS_EPS);
    if (q->singular) u = u < 0 ? -1 : 1; /* snap: coincident (or opposite) directions */
    q->u = u;
    q->st = sqrt(fmax(0.0, (1 - u) * (1 + u)));
    q->th = acos(u);
    *K = q->r * (q->st + (NTK_PI - q->th) * u) / (2 * NTK_PI);
    *Kd = (NTK_PI - q->th) / (2 * NTK_PI);
}

/* dc, da, db += from dK, dKd */
static void relu_back(const relu_state *q, double a, double b, double Kd, double dK, double dKd, double *dc,
                      double *da, double *db) {
    *dc += dK * Kd;
    if (q->r > 0) {
        double t = dK * q->r * q->st / (4 * NTK_PI);
        *da += t / a;
        *db += t / b;
    }
    if (!q->singular) {
        double du = dKd / (2 * NTK_PI * q->st); /* dK̇/du = −dK̇/dθ / sin θ·(−1) */
        *dc += du / q->r;
        *da -= du * q->u / (2 * a);
        *db -= du * q->u / (2 * b);
    }
}

/* Θ(x, x′) from a0 = Σ⁰(x,x), b0 = Σ⁰(x′,x′), c0 = Σ⁰(x,x′) */
static double pair_forward(const ntk_kernel *k, double a0, double b0, double c0) {
    double a = k->w * a0 + k->b, b = k->w * b0 + k->b, c = k->w * c0 + k->b, T = c, K, Kd;
    relu_state q;
    for (int l = 0; l < k->L; l++) {
        relu_eval(&q, a, b, c, &K, &Kd);
        c = k->w * K + k->b;
        T = c + k->w * Kd * T;
        a = k->w * a / 2 + k->b;
        b = k->w * b / 2 + k->b;
    }
    return T;
}

/* reverse mode of pair_forward: (dc0, da0, db0) = ∂Θ/∂(c0, a0, b0)·dT */
static void pair_backward(const ntk_kernel *k, double a0, double b0, double c0, double dT, double *dc0, double *da0,
                          double *db0) {
    double A[NTK_MAX_DEPTH], B[NTK_MAX_DEPTH], T[NTK_MAX_DEPTH], KD[NTK_MAX_DEPTH];
    relu_state Q[NTK_MAX_DEPTH];
    double a = k->w * a0 + k->b, b = k->w * b0 + k->b, c = k->w * c0 + k->b, t = c, K;
    for (int l = 0; l < k->L; l++) {
        A[l] = a, B[l] = b, T[l] = t;
        relu_eval(&Q[l], a, b, c, &K, &KD[l]);
        c = k->w * K + k->b;
        t = c + k->w * KD[l] * t;
        a = k->w * a / 2 + k->b;
        b = k->w * b / 2 + k->b;
    }
    double dc = 0, da = 0, db = 0; /* dT carries the Θ path; dc the Σ path */
    for (int l = k->L - 1; l >= 0; l--) {
        double dcp = dc + dT;            /* Θ′ = Σ′ + σ_w² K̇ Θ, Σ′ = σ_w² K + σ_b² */
        double dK = k->w * dcp, dKd = k->w * T[l] * dT;
        dT = k->w * KD[l] * dT;
        da *= k->w / 2;                  /* a′ = σ_w² a/2 + σ_b² */
        db *= k->w / 2;
        dc = 0;
        relu_back(&Q[l], A[l], B[l], KD[l], dK, dKd, &dc, &da, &db);
    }
    *dc0 = k->w * (dc + dT); /* first dense: Θ = Σ = σ_w² Σ⁰ + σ_b² */
    *da0 = k->w * da;
    *db0 = k->w * db;
}

static void kernel_init(ntk_kernel *k, double w, double b, int L) {
    k->w = w, k->b = b, k->L = L;
    /* the diagonal: a = σ_w² a0 + σ_b², Θ = a; per layer Θ ← (σ_w² a/2 + σ_b²) + σ_w² Θ/2, a ← σ_w² a/2 + σ_b²:
       affine in a0, so carry (slope, intercept) of a and Θ */
    double as = w, ai = b, ts = w, ti = b;
    for (int l = 0; l < L; l++) {
        double ns = w * as / 2, ni = w * ai / 2 + b;
        ts = ns + w * ts / 2;
        ti = ni + w * ti / 2;
        as = ns, ai = ni;
    }
    k->alpha = ts, k->beta = ti;
}

/* ---- plugin ---- */

static void *alloc_f(ntk *s, size_t count, int *fail) {
    void *p = s->h->alloc(s->h, count * sizeof(float));
    if (!p) *fail = 1;
    return p;
}

static void ntk_destroy(void *p) {
    ntk *s = p;
    if (!s) return;
    float *bufs[] = {s->gss, s->sys, s->gbs, s->tbs, s->sq, s->ones, s->nb, s->A, s->G, s->scal};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) s->h->free(s->h, bufs[i]);
    free(s->hgss);
    free(s->hgbs);
    free(s->hnb);
    free(s->hss);
    free(s->hbs);
    free(s->hD);
    free(s);
}

static int ntk_create(const clpdd_host *h, const clpdd_section *cfg, const clpdd_solver_dims *dims, void **out) {
    ntk *s = calloc(1, sizeof *s);
    if (!s) return h->error(h, "ntk: out of memory"), -1;
    s->h = h;
    s->ops = h->ops;
    s->m = dims->m;
    s->d = dims->d;
    s->C = dims->C;
    s->n_max = dims->n_max;
    s->relative = h->cfg_enum(h, cfg, "lambda_mode") == NTK_LAMBDA_RELATIVE;
    s->lambda = (float)h->cfg_float(h, cfg, "lambda");
    s->learn = h->abi_minor >= 5 && h->cfg_learn(h, cfg, "lambda");
    s->lambda_learned = h->cfg_float(h, cfg, "lambda");
    kernel_init(&s->k, h->cfg_float(h, cfg, "w_var"), h->cfg_float(h, cfg, "b_var"), (int)h->cfg_int(h, cfg, "depth"));
    if (s->lambda == 0) h->warn(h, "ntk: lambda = 0: duplicate synthetic points make Theta_ss singular; expect jitter");
    size_t m = (size_t)s->m, d = (size_t)s->d, C = (size_t)s->C, nm = (size_t)s->n_max;
    int fail = 0;
    s->gss = alloc_f(s, m * m, &fail);
    s->sys = alloc_f(s, m * m, &fail);
    s->gbs = alloc_f(s, nm * m, &fail);
    s->tbs = alloc_f(s, nm * m, &fail);
    s->sq = alloc_f(s, nm * d, &fail);
    s->ones = alloc_f(s, d, &fail);
    s->nb = alloc_f(s, nm, &fail);
    s->A = alloc_f(s, m * C, &fail);
    s->G = alloc_f(s, m * C, &fail);
    s->scal = alloc_f(s, 1, &fail);
    if (fail) {
        ntk_destroy(s);
        return -1;
    }
    s->hgss = malloc(m * m * sizeof(float));
    s->hgbs = malloc(nm * m * sizeof(float));
    s->hnb = malloc(nm * sizeof(float));
    s->hss = malloc(m * m * sizeof(float));
    s->hbs = malloc(nm * m * sizeof(float));
    s->hD = malloc(m * sizeof(double));
    if (!s->hgss || !s->hgbs || !s->hnb || !s->hss || !s->hbs || !s->hD) {
        h->error(h, "ntk: out of host memory for the kernel scratch (m = %d, n_max = %d)", s->m, s->n_max);
        ntk_destroy(s);
        return -1;
    }
    s->ops->fill(s->ones, 1.0f, d);
    *out = s;
    return 0;
}

/* sys = gss + λ_eff·I, then Cholesky; on failure retry with growing jitter (warned once) */
static int factor(ntk *s, double trace) {
    int m = s->m;
    double scale = trace > 0 ? trace / m : 1.0;
    float jitter = 0;
    int attempt = clpdd_chol_jitter(s->ops, s->sys, s->gss, m, s->lambda_eff, scale, s->scal, &jitter);
    if (attempt < 0) {
        s->h->error(s->h, "ntk: Theta_ss (%d x %d) not positive definite even with jitter up to %.3g (tr = %g): features degenerate?",
                    m, m, scale * 0.1, trace);
        return -1;
    }
    if (attempt > 0 && s->learn) /* the jitter is not differentiated: the λ gradient would be wrong */
        return s->h->error(s->h, "ntk: learned lambda = %.6g (lambda_eff %.3g) left Theta_ss not positive definite (jitter %.3g needed), so its gradient would be wrong: raise [distill] learn_prior's pull (a smaller std) or start lambda higher",
                           (double)s->lambda, s->lambda_eff, jitter),
               -1;
    if (attempt > 0 && !s->warned_jitter) {
        s->warned_jitter = 1;
        s->h->warn(s->h, "ntk: Theta_ss not positive definite; added jitter %.3g (lambda_eff %.3g); warned once", jitter,
                   s->lambda_eff);
    }
    return 0;
}

static int all_finite_host(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static int ntk_forward(void *p, float *Z, const float *phi_s, const float *Y, const float *phi_b, int n) {
    ntk *s = p;
    const clpdd_ops *ops = s->ops;
    int m = s->m, d = s->d, C = s->C;
    s->phi_s = NULL; /* backward refuses to run after a failed forward */
    if (n > s->n_max) return s->h->error(s->h, "ntk: batch %d exceeds n_max %d", n, s->n_max), -1;
    /* Gram matrices on the device */
    ops->syrk(0, m, d, 1.0f, phi_s, d, 0.0f, s->gss, m);                   /* Φ_sΦ_sᵀ (m, m) */
    ops->gemm(0, 1, n, m, d, 1.0f, phi_b, d, phi_s, d, 0.0f, s->gbs, m);   /* Φ_bΦ_sᵀ (n, m) */
    ops->mul(s->sq, phi_b, phi_b, (size_t)n * d);
    ops->gemm(0, 0, n, 1, d, 1.0f, s->sq, d, s->ones, 1, 0.0f, s->nb, 1); /* ‖φ_b‖² (n) */
    ops->to_host(s->hgss, s->gss, (size_t)m * m * sizeof(float));
    ops->to_host(s->hgbs, s->gbs, (size_t)n * m * sizeof(float));
    ops->to_host(s->hnb, s->nb, (size_t)n * sizeof(float));
    if (!all_finite_host(s->hgss, (size_t)m * m))
        return s->h->error(s->h, "ntk: synthetic features contain NaN or Inf (or overflow in Phi_s Phi_s^T)"), -1;
    if (!all_finite_host(s->hgbs, (size_t)n * m) || !all_finite_host(s->hnb, (size_t)n))
        return s->h->error(s->h, "ntk: real-batch features contain NaN or Inf (or overflow in Phi_b Phi_s^T)"), -1;
    /* the recursion on the host, float64 */
    const ntk_kernel *k = &s->k;
    double inv_d = 1.0 / d, trace = 0;
    for (int i = 0; i < m; i++) {
        double ai = s->hgss[(size_t)i * m + i] * inv_d;
        double tii = k->alpha * ai + k->beta;
        s->hss[(size_t)i * m + i] = (float)tii;
        trace += tii;
        for (int j = i + 1; j < m; j++) {
            double t = pair_forward(k, ai, s->hgss[(size_t)j * m + j] * inv_d, s->hgss[(size_t)i * m + j] * inv_d);
            s->hss[(size_t)i * m + j] = s->hss[(size_t)j * m + i] = (float)t;
        }
    }
    for (int i = 0; i < n; i++) {
        double ai = s->hnb[i] * inv_d;
        for (int j = 0; j < m; j++)
            s->hbs[(size_t)i * m + j] =
                (float)pair_forward(k, ai, s->hgss[(size_t)j * m + j] * inv_d, s->hgbs[(size_t)i * m + j] * inv_d);
    }
    if (!isfinite(trace) || !all_finite_host(s->hss, (size_t)m * m) || !all_finite_host(s->hbs, (size_t)n * m))
        return s->h->error(s->h, "ntk: kernel values overflow (tr(Theta_ss) = %g): features too large for depth %d?", trace,
                           k->L), -1;
    s->lambda_eff = s->relative ? (float)(s->lambda * trace / m) : s->lambda;
    ops->to_device(s->gss, s->hss, (size_t)m * m * sizeof(float));  /* Θ_ss (m, m) */
    ops->to_device(s->tbs, s->hbs, (size_t)n * m * sizeof(float));  /* Θ_bs (n, m) */
    if (factor(s, trace)) return -1;
    ops->copy(s->A, Y, (size_t)m * C * sizeof(float));
    ops->potrs(s->sys, m, m, s->A, C, C);                                  /* A (m, C) */
    ops->gemm(0, 0, n, C, m, 1.0f, s->tbs, m, s->A, C, 0.0f, Z, C);        /* Z = Θ_bs A (n, C) */
    if (!ops->all_finite(Z, (size_t)n * C))
        return s->h->error(s->h, "ntk: predictions are not finite (lambda_eff %g, tr(Theta_ss) %g)", s->lambda_eff, trace), -1;
    s->phi_s = phi_s;
    s->phi_b = phi_b;
    s->n = n;
    return 0;
}

static int ntk_backward(void *p, float *dphi_s, float *dY, const float *dZ) {
    ntk *s = p;
    const clpdd_ops *ops = s->ops;
    int m = s->m, d = s->d, C = s->C, n = s->n;
    if (!s->phi_s) return s->h->error(s->h, "ntk: backward without a successful forward"), -1;
    /* device: G, dΘ_bs, dΘ_ss */
    ops->gemm(1, 0, m, C, n, 1.0f, s->tbs, m, dZ, C, 0.0f, s->G, C);        /* Θ_bsᵀ dZ (m, C) */
    ops->potrs(s->sys, m, m, s->G, C, C);                                  /* G (m, C) */
    double dlam = -ops->dot(s->G, s->A, (size_t)m * C);
    s->grad_log = (double)s->lambda_eff * dlam; /* λ_eff ∝ λ in both modes: ∂λ_eff/∂log λ = λ_eff */
    if (dY) ops->copy(dY, s->G, (size_t)m * C * sizeof(float));
    ops->gemm(0, 1, n, m, C, 1.0f, dZ, C, s->A, C, 0.0f, s->gbs, m);        /* dΘ_bs = dZ Aᵀ (n, m) */
    ops->gemm(0, 1, m, m, C, -1.0f, s->G, C, s->A, C, 0.0f, s->gss, m);     /* dΘ_ss = −G Aᵀ (m, m) */
    ops->to_host(s->hbs, s->gbs, (size_t)n * m * sizeof(float));
    ops->to_host(s->hss, s->gss, (size_t)m * m * sizeof(float));
    /* host: reverse mode of each entry's recursion */
    const ntk_kernel *k = &s->k;
    double inv_d = 1.0 / d, ddiag = s->relative ? dlam * s->lambda / m : 0.0;
    for (int i = 0; i < m; i++) s->hD[i] = 0;
    for (int i = 0; i < m; i++) {
        double ai = s->hgss[(size_t)i * m + i] * inv_d;
        for (int j = i + 1; j < m; j++) {
            /* Θ_ij and Θ_ji are one function of (x_i, x_j): their gradients add */
            double dT = (double)s->hss[(size_t)i * m + j] + s->hss[(size_t)j * m + i], dc, da, db;
            pair_backward(k, ai, s->hgss[(size_t)j * m + j] * inv_d, s->hgss[(size_t)i * m + j] * inv_d, dT, &dc, &da, &db);
            s->hss[(size_t)i * m + j] = s->hss[(size_t)j * m + i] = (float)dc;
            s->hD[i] += da;
            s->hD[j] += db;
        }
        s->hD[i] += k->alpha * ((double)s->hss[(size_t)i * m + i] + ddiag);
    }
    for (int i = 0; i < n; i++) {
        double ai = s->hnb[i] * inv_d;
        for (int j = 0; j < m; j++) {
            double dc, da, db;
            pair_backward(k, ai, s->hgss[(size_t)j * m + j] * inv_d, s->hgbs[(size_t)i * m + j] * inv_d,
                          s->hbs[(size_t)i * m + j], &dc, &da, &db);
            s->hbs[(size_t)i * m + j] = (float)dc;
            s->hD[j] += db;
        }
    }
    for (int i = 0; i < m; i++) s->hss[(size_t)i * m + i] = (float)(2 * s->hD[i]);
    if (!all_finite_host(s->hss, (size_t)m * m) || !all_finite_host(s->hbs, (size_t)n * m))
        return s->h->error(s->h, "ntk: kernel gradient is not finite (lambda_eff %g): increase lambda?", s->lambda_eff), -1;
    ops->to_device(s->gss, s->hss, (size_t)m * m * sizeof(float));
    ops->to_device(s->gbs, s->hbs, (size_t)n * m * sizeof(float));
    /* dΦ_s = S Φ_s/d + P_bsᵀ Φ_b/d (m, d) */
    ops->gemm(0, 0, m, d, m, (float)inv_d, s->gss, m, s->phi_s, d, 0.0f, dphi_s, d);
    ops->gemm(1, 0, m, d, n, (float)inv_d, s->gbs, m, s->phi_b, d, 1.0f, dphi_s, d);
    if (!ops->all_finite(dphi_s, (size_t)m * d))
        return s->h->error(s->h, "ntk: gradient is not finite (lambda_eff %g): increase lambda?", s->lambda_eff), -1;
    return 0;
}

static int ntk_learned(void *p, clpdd_learned *out, int max) {
    const ntk *s = p;
    if (!s->learn) return 0;
    if (max > 0) out[0] = (clpdd_learned){"lambda", s->lambda_learned, s->grad_log};
    return 1;
}

static void ntk_set_learned(void *p, int i, double value) {
    ntk *s = p;
    if (i != 0) return;
    s->lambda_learned = value;
    s->lambda = (float)value;
}

static const clpdd_solver_vt ntk_vt = {
    /* .create = */ ntk_create,
    /* .destroy = */ ntk_destroy,
    /* .forward = */ ntk_forward,
    /* .objective = */ NULL,
    /* .backward = */ ntk_backward,
    /* .learned = */ ntk_learned,
    /* .set_learned = */ ntk_set_learned,
    /* .set_step = */ NULL,
};

static const clpdd_plugin ntk_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 5, /* host cfg_enum (1.4), a LEARNABLE key and learned/set_learned (1.5); only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_SOLVER,
    /* .name = */ "ntk",
    /* .version = */ "1.0.0",
    /* .summary = */ "closed-form kernel ridge with the infinite-width ReLU MLP NTK on the features (KIP route)",
    /* .keys = */ ntk_keys,
    /* .n_keys = */ (int)(sizeof ntk_keys / sizeof ntk_keys[0]),
    /* .vtable = */ &ntk_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(ntk_plugin)
