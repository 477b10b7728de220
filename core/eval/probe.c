/* The converged linear probe: see probe.h for the objective, the preconditioned coordinates
 * and the convergence rule. Dimensions as in probe.h (m, d, C; θ' = (W' (d, C), b' (C)) is the
 * solver's vector of n = (d + 1)·C float64 values). Gradients are written (=), never accumulated. */
#include "eval/probe.h"

#include <cblas.h>
#include <lbfgs.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"

enum { LR_CORRECTIONS = 10, LR_MAX_RESTARTS = 3, LR_SLAB = 4096 };

/* the problem in the solver's coordinates */
typedef struct lr_problem {
    int m, d, C;
    const double *Xs;  /* (m, d) centred, scaled training features */
    const int32_t *y;  /* (m) hard labels, used when Y is NULL */
    const float *Y;    /* (m, C) target rows or NULL */
    const double *lam; /* (d) per-row penalty wd / s_j² */
    double *Z;         /* (m, C) scratch: logits, then ∂f/∂Z */
    double tol;
    int evals, iters;
} lr_problem;

/* f(θ') and g' = ∂f/∂θ' (=) */
static double lr_eval(lr_problem *P, const double *th, double *g) {
    int m = P->m, d = P->d, C = P->C;
    const double *W = th, *b = th + (size_t)d * C;
    double *Z = P->Z, *gb = g + (size_t)d * C;
    P->evals++;
    for (int i = 0; i < m; i++) memcpy(Z + (size_t)i * C, b, (size_t)C * sizeof *Z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, C, d, 1.0, P->Xs, d, W, C, 1.0, Z, C); /* (m, C) */
    double loss = 0, inv_m = 1.0 / m;
    memset(gb, 0, (size_t)C * sizeof *gb);
    for (int i = 0; i < m; i++) {
        double *z = Z + (size_t)i * C;
        double mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp(z[c] - mx);
        double lse = mx + log(sum);
        if (P->Y) { /* −Σ_c t_c log p_c = s·lse − Σ_c t_c z_c, ∂/∂z_c = s·p_c − t_c, s = Σ_c t_c */
            const float *t = P->Y + (size_t)i * C;
            double s = 0, tz = 0;
            for (int c = 0; c < C; c++) s += t[c], tz += (double)t[c] * z[c];
            loss += s * lse - tz;
            for (int c = 0; c < C; c++) z[c] = (s * exp(z[c] - lse) - t[c]) * inv_m;
        } else { /* the same arithmetic as a one-hot row (s = 1), so that both give the same fit bit for bit */
            int yi = P->y[i];
            loss += lse - z[yi];
            for (int c = 0; c < C; c++) z[c] = (exp(z[c] - lse) - (c == yi)) * inv_m;
        }
        for (int c = 0; c < C; c++) gb[c] += z[c];
    }
    loss *= inv_m;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, C, m, 1.0, P->Xs, d, Z, C, 0.0, g, C); /* Xsᵀ (d, m) · R (m, C) */
    double pen = 0;
    for (int j = 0; j < d; j++)
        for (int c = 0; c < C; c++) {
            double w = W[(size_t)j * C + c];
            g[(size_t)j * C + c] += P->lam[j] * w;
            pen += 0.5 * P->lam[j] * w * w;
        }
    return loss + pen;
}

static lbfgsfloatval_t lr_evaluate(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int n,
                                   const lbfgsfloatval_t step) {
    return lr_eval(inst, x, g);
}

static double inf_norm(const double *v, int n) {
    double a = 0;
    for (int i = 0; i < n; i++) a = fabs(v[i]) > a ? fabs(v[i]) : a;
    return a;
}

static int lr_converged(const double *th, const double *g, int n, double tol) {
    double xn = inf_norm(th, n);
    return inf_norm(g, n) <= tol * (xn > 1 ? xn : 1);
}

/* called by liblbfgs after every iteration k = 1, 2, …; a non-zero return stops it (LBFGS_STOP) */
static int lr_progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g, const lbfgsfloatval_t fx,
                       const lbfgsfloatval_t xnorm, const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n,
                       int k, int ls) {
    lr_problem *P = inst;
    P->iters = k;
    return lr_converged(x, g, n, P->tol) ? LBFGS_STOP : 0;
}

const char *clpdd_logreg_status_str(int status) {
    switch (status) {
    case LBFGS_SUCCESS: return "converged (liblbfgs epsilon)";
    case LBFGS_STOP: return "stopped: gradient tolerance";
    case LBFGS_ALREADY_MINIMIZED: return "already minimised (start point within tolerance)";
    case LBFGSERR_MAXIMUMITERATION: return "max iterations";
    case LBFGSERR_ROUNDING_ERROR: return "line search: rounding error";
    case LBFGSERR_MINIMUMSTEP: return "line search: step below min_step";
    case LBFGSERR_MAXIMUMSTEP: return "line search: step above max_step";
    case LBFGSERR_MAXIMUMLINESEARCH: return "line search: max evaluations";
    case LBFGSERR_WIDTHTOOSMALL: return "line search: interval too small";
    case LBFGSERR_INCREASEGRADIENT: return "not a descent direction";
    case LBFGSERR_OUTOFMEMORY: return "out of memory";
    default: return "liblbfgs error";
    }
}

/* shared input checks of fit and objective; row/column named in the message */
static int check_inputs(const float *X, const int32_t *y, const float *Y, int m, int d, int C, clpdd_err *e) {
    if (m < 1 || d < 1 || C < 2)
        return clpdd_err_set(e, "probe: need m ≥ 1 training points, d ≥ 1 features, C ≥ 2 classes (got m = %d, d = %d, C = %d)",
                             m, d, C);
    if (!X || (!y && !Y)) return clpdd_err_set(e, "probe: no training features or no targets (labels y or rows Y)");
    for (size_t k = 0; k < (size_t)m * d; k++)
        if (!isfinite(X[k]))
            return clpdd_err_set(e, "probe: training feature [%zu, %zu] is %g (expected finite features)", k / d, k % d,
                                 (double)X[k]);
    for (int i = 0; i < m; i++) {
        if (Y) {
            double s = 0;
            for (int c = 0; c < C; c++) {
                float t = Y[(size_t)i * C + c];
                if (!isfinite(t) || t < 0)
                    return clpdd_err_set(e, "probe: target row %d, class %d is %g (expected a probability row: entries ≥ 0 summing to 1)",
                                         i, c, (double)t);
                s += t;
            }
            if (fabs(s - 1) > 1e-3)
                return clpdd_err_set(e, "probe: target row %d sums to %g (expected a probability row: entries ≥ 0 summing to 1, e.g. one-hot)",
                                     i, s);
        } else if (y[i] < 0 || y[i] >= C) {
            return clpdd_err_set(e, "probe: label %d of training point %d is outside [0, %d)", (int)y[i], i, C);
        }
    }
    return 0;
}

void clpdd_logreg_free(clpdd_logreg *p) {
    if (!p) return;
    free(p->W);
    p->W = NULL;
}

/* the preconditioning statistics of X (m, d): mu (d) the means, sd (d) s_j = sqrt(var_j + wd)
   (1 for a constant feature with wd = 0) and lam (d) the rescaled penalties wd / s_j² */
static void lr_precondition(double *mu, double *sd, double *lam, const float *X, int m, int d, double wd) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++) mu[j] += X[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= m;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++) {
            double t = X[(size_t)i * d + j] - mu[j];
            sd[j] += t * t;
        }
    for (int j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / m + wd);
        if (!(sd[j] > 0) || !isfinite(sd[j])) sd[j] = 1; /* a constant feature with wd = 0 */
        lam[j] = wd / (sd[j] * sd[j]);
    }
}

/* W ((d + 1), C) in the original coordinates from the solver's θ' = (W', b'): W_j = W'_j / s_j,
   b = b' − Σ_j μ_j W_j; returns ‖∂f/∂(W, b)‖∞ in those coordinates, from the solver's gradient g */
static double lr_to_original(double *W, const double *th, const double *g, const double *mu, const double *sd, int d,
                             int C) {
    double *b = W + (size_t)d * C;
    for (int c = 0; c < C; c++) b[c] = th[(size_t)d * C + c];
    double graw = 0;
    for (int j = 0; j < d; j++)
        for (int c = 0; c < C; c++) {
            double w = th[(size_t)j * C + c] / sd[j];
            W[(size_t)j * C + c] = w;
            b[c] -= mu[j] * w;
            double gj = sd[j] * g[(size_t)j * C + c] + mu[j] * g[(size_t)d * C + c]; /* ∂f/∂W_jc */
            graw = fabs(gj) > graw ? fabs(gj) : graw;
        }
    for (int c = 0; c < C; c++) graw = fabs(g[(size_t)d * C + c]) > graw ? fabs(g[(size_t)d * C + c]) : graw;
    return graw;
}

int clpdd_logreg_fit(clpdd_logreg *out, const float *X, const int32_t *y, const float *Y, int m, int d, int C,
                     const clpdd_logreg_cfg *cfg, const clpdd_logreg *warm, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    if (check_inputs(X, y, Y, m, d, C, e)) return -1;
    if (!cfg || !(cfg->wd >= 0) || !isfinite(cfg->wd) || cfg->max_iter < 1 || !(cfg->tol > 0))
        return clpdd_err_set(e, "probe: bad solver settings (need wd ≥ 0 finite, max_iter ≥ 1, tol > 0; got wd = %g, max_iter = %d, tol = %g)",
                             cfg ? cfg->wd : NAN, cfg ? cfg->max_iter : 0, cfg ? cfg->tol : NAN);
    if (warm && (warm->d != d || warm->C != C || !warm->W))
        return clpdd_err_set(e, "probe: warm start has d = %d, C = %d, expected d = %d, C = %d", warm->d, warm->C, d, C);
    double wd = cfg->wd;
    int n = (d + 1) * C;

    /* preconditioning statistics of the training features: μ_j, s_j = sqrt(var_j + wd) */
    double *mu = clpdd_xcalloc((size_t)d, sizeof *mu), *sd = clpdd_xcalloc((size_t)d, sizeof *sd);
    double *lam = clpdd_xmalloc((size_t)d * sizeof *lam);
    lr_precondition(mu, sd, lam, X, m, d, wd);
    double *Xs = clpdd_xmalloc((size_t)m * d * sizeof *Xs); /* (m, d) */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++) Xs[(size_t)i * d + j] = (X[(size_t)i * d + j] - mu[j]) / sd[j];
    lr_problem P = {m, d, C, Xs, y, Y, lam, clpdd_xmalloc((size_t)m * C * sizeof(double)), cfg->tol, 0, 0};

    /* θ' from 0 or from the warm start: W'_j = s_j W_j, b' = b + Σ_j μ_j W_j */
    lbfgsfloatval_t *th = lbfgs_malloc(n);
    double *g = clpdd_xmalloc((size_t)n * sizeof *g);
    if (!th) CLPDD_ASSERT(!"lbfgs_malloc");
    memset(th, 0, (size_t)n * sizeof *th);
    if (warm) {
        for (int c = 0; c < C; c++) th[(size_t)d * C + c] = warm->W[(size_t)d * C + c];
        for (int j = 0; j < d; j++)
            for (int c = 0; c < C; c++) {
                double w = warm->W[(size_t)j * C + c];
                th[(size_t)j * C + c] = sd[j] * w;
                th[(size_t)d * C + c] += mu[j] * w;
            }
    }

    double f = lr_eval(&P, th, g);
    int status = LBFGS_ALREADY_MINIMIZED, iters = 0, restarts = 0, rc = 0;
    int conv = lr_converged(th, g, n, cfg->tol);
    while (!conv && iters < cfg->max_iter) {
        lbfgs_parameter_t par;
        lbfgs_parameter_init(&par);
        par.m = LR_CORRECTIONS;
        par.epsilon = 0;  /* our own test, in lr_progress */
        par.max_iterations = cfg->max_iter - iters;
        /* par.linesearch: the default, More–Thuente */
        P.iters = 0;
        double f_start = f;
        lbfgsfloatval_t fx = 0;
        status = lbfgs(n, th, &fx, lr_evaluate, lr_progress, &P, &par);
        iters += P.iters;
        if (status == LBFGSERR_OUTOFMEMORY || (status <= LBFGSERR_INVALID_ORTHANTWISE_END && status >= LBFGSERR_UNKNOWNERROR)) {
            rc = clpdd_err_set(e, "probe: liblbfgs rejected the problem (status %d: %s; n = %d)", status,
                               clpdd_logreg_status_str(status), n);
            break;
        }
        f = lr_eval(&P, th, g); /* liblbfgs returns the last accepted point */
        conv = lr_converged(th, g, n, cfg->tol);
        if (conv || status == LBFGSERR_MAXIMUMITERATION || status >= 0) break;
        /* a line-search failure: restart with a fresh memory while the loss still goes down */
        if (restarts >= LR_MAX_RESTARTS || !(f < f_start)) break;
        restarts++;
    }

    if (rc == 0) {
        out->d = d, out->C = C, out->wd = wd;
        out->W = clpdd_xmalloc((size_t)n * sizeof *out->W);
        double graw = lr_to_original(out->W, th, g, mu, sd, d, C);
        out->iterations = iters;
        out->evaluations = P.evals;
        out->restarts = restarts;
        out->grad_norm = inf_norm(g, n);
        out->grad_norm_raw = graw;
        out->loss = f;
        out->status = status;
        out->converged = conv && isfinite(f);
    }
    lbfgs_free(th);
    free(g), free(P.Z), free(Xs), free(lam), free(sd), free(mu);
    return rc;
}

void clpdd_logreg_logits(const clpdd_logreg *p, const float *X, int n, double *logits) {
    int d = p->d, C = p->C;
    double *xs = clpdd_xmalloc((size_t)(n < LR_SLAB ? n : LR_SLAB) * d * sizeof *xs + 1);
    for (int i = 0; i < n; i += LR_SLAB) {
        int k = n - i < LR_SLAB ? n - i : LR_SLAB;
        for (size_t t = 0; t < (size_t)k * d; t++) xs[t] = X[(size_t)i * d + t];
        double *z = logits + (size_t)i * C;
        for (int a = 0; a < k; a++) memcpy(z + (size_t)a * C, p->W + (size_t)d * C, (size_t)C * sizeof *z);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, C, d, 1.0, xs, d, p->W, C, 1.0, z, C);
    }
    free(xs);
}

/* the index of the first largest of z[0..C) (argmax ties → the lowest class), written once for
   the float logits of clpdd_top1 and the float64 ones of the probe */
#define DEFINE_ARGMAX(name, T)             \
    static int name(const T *z, int C) {   \
        int best = 0;                      \
        for (int c = 1; c < C; c++)        \
            if (z[c] > z[best]) best = c;  \
        return best;                       \
    }
DEFINE_ARGMAX(argmax_f, float)
DEFINE_ARGMAX(argmax_d, double)

double clpdd_top1(const float *logits, const int32_t *y, int n, int C) {
    if (n <= 0) return 0;
    int correct = 0;
    for (int i = 0; i < n; i++) correct += argmax_f(logits + (size_t)i * C, C) == y[i];
    return (double)correct / n;
}

void clpdd_logreg_predict(const clpdd_logreg *p, const float *X, int n, int32_t *pred) {
    int C = p->C;
    double *z = clpdd_xmalloc((size_t)(n < LR_SLAB ? (n > 0 ? n : 1) : LR_SLAB) * C * sizeof *z);
    for (int i = 0; i < n; i += LR_SLAB) {
        int k = n - i < LR_SLAB ? n - i : LR_SLAB;
        clpdd_logreg_logits(p, X + (size_t)i * p->d, k, z);
        for (int a = 0; a < k; a++) pred[i + a] = argmax_d(z + (size_t)a * C, C);
    }
    free(z);
}

double clpdd_group_accuracy(const int32_t *pred, const int32_t *y, const int32_t *g, int n, int G, double *acc,
                            int *count, double *mean) {
    int *right = clpdd_xcalloc((size_t)(G > 0 ? G : 1), sizeof *right), *all = clpdd_xcalloc((size_t)(G > 0 ? G : 1), sizeof *all);
    for (int i = 0; i < n; i++) {
        CLPDD_ASSERT(g[i] >= 0 && g[i] < G);
        all[g[i]]++, right[g[i]] += pred[i] == y[i];
    }
    double worst = NAN, sum = 0;
    int present = 0;
    for (int k = 0; k < G; k++) {
        double a = all[k] ? (double)right[k] / all[k] : NAN;
        if (acc) acc[k] = a;
        if (count) count[k] = all[k];
        if (!all[k]) continue;
        present++, sum += a;
        if (isnan(worst) || a < worst) worst = a;
    }
    if (mean) *mean = present ? sum / present : NAN;
    free(right), free(all);
    return worst;
}

/* the selection's validation score of p: accuracy, or the worst group's */
static double val_score(const clpdd_logreg *p, const float *X, const int32_t *y, int n, const int32_t *g, int G) {
    if (!g) return clpdd_logreg_accuracy(p, X, y, n);
    int32_t *pred = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof *pred);
    clpdd_logreg_predict(p, X, n, pred);
    double w = clpdd_group_accuracy(pred, y, g, n, G, NULL, NULL, NULL);
    free(pred);
    return w;
}

double clpdd_logreg_accuracy(const clpdd_logreg *p, const float *X, const int32_t *y, int n) {
    if (n <= 0) return 0;
    int C = p->C, correct = 0;
    double *z = clpdd_xmalloc((size_t)(n < LR_SLAB ? n : LR_SLAB) * C * sizeof *z);
    for (int i = 0; i < n; i += LR_SLAB) {
        int k = n - i < LR_SLAB ? n - i : LR_SLAB;
        clpdd_logreg_logits(p, X + (size_t)i * p->d, k, z);
        for (int a = 0; a < k; a++) correct += argmax_d(z + (size_t)a * C, C) == y[i + a];
    }
    free(z);
    return (double)correct / n;
}

double clpdd_logreg_objective(const clpdd_logreg *p, const float *X, const int32_t *y, const float *Y, int m,
                              double wd) {
    int d = p->d, C = p->C;
    double *z = clpdd_xmalloc((size_t)m * C * sizeof *z + 1);
    clpdd_logreg_logits(p, X, m, z);
    double loss = 0;
    for (int i = 0; i < m; i++) {
        double *zi = z + (size_t)i * C, mx = zi[argmax_d(zi, C)], sum = 0;
        for (int c = 0; c < C; c++) sum += exp(zi[c] - mx);
        double lse = mx + log(sum);
        if (Y)
            for (int c = 0; c < C; c++) loss += Y[(size_t)i * C + c] * (lse - zi[c]);
        else
            loss += lse - zi[y[i]];
    }
    free(z);
    double pen = 0;
    for (size_t k = 0; k < (size_t)d * C; k++) pen += p->W[k] * p->W[k];
    return loss / m + 0.5 * wd * pen;
}

/* ---- wd selection ---- */

static int wd_desc(const void *a, const void *b, const double *wd) {
    double x = wd[*(const int *)a], y = wd[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : 0;
}

/* the grid (n_wd distinct finite values > 0, only needed with a validation split) and the
   validation and test labels in [0, C) */
static int check_select_inputs(const double *grid, int n_wd, int has_val, const int32_t *yval, int nv,
                               const int32_t *yte, int nt, int C, clpdd_err *e) {
    if (has_val) {
        if (n_wd < 1 || n_wd > CLPDD_PROBE_MAX_WD)
            return clpdd_err_set(e, "probe: the wd grid has %d values (expected 1 to %d)", n_wd, CLPDD_PROBE_MAX_WD);
        for (int k = 0; k < n_wd; k++) {
            if (!(grid[k] > 0) || !isfinite(grid[k]))
                return clpdd_err_set(e, "probe: wd grid value %d is %g (expected finite values > 0)", k + 1, grid[k]);
            for (int l = 0; l < k; l++)
                if (grid[l] == grid[k]) return clpdd_err_set(e, "probe: wd grid value %g appears twice", grid[k]);
        }
        for (int i = 0; i < nv; i++)
            if (yval[i] < 0 || yval[i] >= C)
                return clpdd_err_set(e, "probe: label %d of validation point %d is outside [0, %d)", (int)yval[i], i, C);
    }
    for (int i = 0; i < nt; i++)
        if (yte[i] < 0 || yte[i] >= C)
            return clpdd_err_set(e, "probe: label %d of test point %d is outside [0, %d)", (int)yte[i], i, C);
    return 0;
}

/* one fit per grid value, largest wd first, each warm-started from the previous one; best gets
   the most accurate on the validation split (on a tie the earlier, larger wd), r the per-wd
   numbers. -1 (best freed) when a fit fails. */
static int select_on_grid(clpdd_logreg *best, clpdd_probe_result *r, const float *Xtr, const int32_t *ytr,
                          const float *Ytr, int m, const float *Xval, const int32_t *yval, int nv, int d, int C,
                          clpdd_logreg_cfg lc, const double *grid, int n_wd, const int32_t *vg, int G, clpdd_err *e) {
    int order[CLPDD_PROBE_MAX_WD];
    for (int k = 0; k < n_wd; k++) order[k] = k;
    for (int a = 1; a < n_wd; a++) /* insertion sort, largest wd first */
        for (int b = a; b > 0 && wd_desc(&order[b], &order[b - 1], grid) < 0; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    clpdd_logreg prev = {0};
    double best_acc = -1;
    for (int k = 0; k < n_wd; k++) {
        int g = order[k];
        clpdd_logreg cur;
        lc.wd = grid[g];
        if (clpdd_logreg_fit(&cur, Xtr, ytr, Ytr, m, d, C, &lc, prev.W ? &prev : NULL, e)) {
            clpdd_logreg_free(&prev), clpdd_logreg_free(best);
            return -1;
        }
        double acc = val_score(&cur, Xval, yval, nv, vg, G);
        r->wd_grid[g] = grid[g];
        r->val_per_wd[g] = acc;
        r->converged_per_wd[g] = cur.converged;
        r->iter_per_wd[g] = cur.iterations;
        if (acc > best_acc) { /* strictly better: on a tie the earlier, larger wd stays */
            best_acc = acc;
            clpdd_logreg_free(best);
            *best = cur;
            best->W = clpdd_xmalloc((size_t)(d + 1) * C * sizeof *best->W);
            memcpy(best->W, cur.W, (size_t)(d + 1) * C * sizeof *best->W);
        }
        clpdd_logreg_free(&prev);
        prev = cur;
    }
    clpdd_logreg_free(&prev);
    r->n_wd = n_wd;
    r->selected = 1;
    r->val_acc = best_acc;
    return 0;
}

/* accuracy of p on its m training points: labels ytr, or the argmax of the target rows Ytr */
static double train_accuracy(const clpdd_logreg *p, const float *Xtr, const int32_t *ytr, const float *Ytr, int m,
                             int C) {
    if (!Ytr) return clpdd_logreg_accuracy(p, Xtr, ytr, m);
    int32_t *yt = clpdd_xmalloc((size_t)m * sizeof *yt);
    for (int i = 0; i < m; i++) yt[i] = argmax_f(Ytr + (size_t)i * C, C);
    double acc = clpdd_logreg_accuracy(p, Xtr, yt, m);
    free(yt);
    return acc;
}

int clpdd_probe_select_fit(clpdd_probe_result *r, const float *Xtr, const int32_t *ytr, const float *Ytr, int m,
                           const float *Xval, const int32_t *yval, int nv, const float *Xte, const int32_t *yte,
                           int nt, int d, int C, const clpdd_probe_select_cfg *cfg, clpdd_logreg *fit_out, clpdd_err *e) {
    static const double grid_default[] = CLPDD_PROBE_WD_GRID;
    memset(r, 0, sizeof *r);
    if (fit_out) memset(fit_out, 0, sizeof *fit_out);
    clpdd_probe_select_cfg def = {0};
    if (!cfg) cfg = &def;
    const double *grid = cfg->wd ? cfg->wd : grid_default;
    int n_wd = cfg->wd ? cfg->n_wd : CLPDD_PROBE_N_WD;
    clpdd_logreg_cfg lc = {0, cfg->max_iter > 0 ? cfg->max_iter : CLPDD_LOGREG_MAX_ITER,
                           cfg->tol > 0 ? cfg->tol : CLPDD_LOGREG_TOL};
    int has_val = Xval && yval && nv > 0;
    if (check_select_inputs(grid, n_wd, has_val, yval, nv, yte, nt, C, e)) return -1;

    double t0 = clpdd_now();
    clpdd_logreg best = {0};
    if (!has_val) {
        lc.wd = cfg->wd_noval > 0 ? cfg->wd_noval : 1.0 / m;
        if (clpdd_logreg_fit(&best, Xtr, ytr, Ytr, m, d, C, &lc, NULL, e)) return -1;
        r->selected = 0;
        r->val_acc = NAN;
    } else if (select_on_grid(&best, r, Xtr, ytr, Ytr, m, Xval, yval, nv, d, C, lc, grid, n_wd, cfg->val_group,
                                     cfg->G, e)) {
        return -1;
    }
    r->wd = best.wd;
    r->test_acc = nt > 0 ? clpdd_logreg_accuracy(&best, Xte, yte, nt) : NAN;
    r->train_acc = train_accuracy(&best, Xtr, ytr, Ytr, m, C);
    r->iterations = best.iterations;
    r->status = best.status;
    r->converged = best.converged;
    r->grad_norm = best.grad_norm;
    r->grad_norm_raw = best.grad_norm_raw;
    r->loss = best.loss;
    r->seconds = clpdd_now() - t0;
    if (fit_out)
        *fit_out = best;
    else
        clpdd_logreg_free(&best);
    return 0;
}

/* ---- helpers ---- */

int clpdd_split_stratified(const int32_t *labels, int N, int C, int val_size, uint64_t seed, int *train_idx,
                           int *n_train, int *val_idx, clpdd_err *e) {
    if (C < 1) return clpdd_err_set(e, "split: C = %d classes (expected ≥ 1)", C);
    if (val_size < 1 || val_size >= N)
        return clpdd_err_set(e, "split: val_size = %d must be in [1, N) with N = %d labelled images (some must stay for training)",
                             val_size, N);
    for (int i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return clpdd_err_set(e, "split: label %d of image %d is outside [0, %d)", (int)labels[i], i, C);
    int *cnt = clpdd_xcalloc((size_t)C, sizeof *cnt), *alloc = clpdd_xcalloc((size_t)C, sizeof *alloc);
    int64_t *rem = clpdd_xcalloc((size_t)C, sizeof *rem);
    for (int i = 0; i < N; i++) cnt[labels[i]]++;
    /* largest remainder on the exact quotas val_size·n_c / N (integer arithmetic) */
    int given = 0, present = 0;
    for (int c = 0; c < C; c++) {
        int64_t q = (int64_t)val_size * cnt[c];
        alloc[c] = (int)(q / N);
        rem[c] = q % N;
        given += alloc[c];
        present += cnt[c] > 0;
    }
    for (; given < val_size; given++) {
        int best = -1;
        for (int c = 0; c < C; c++)
            if (rem[c] >= 0 && (best < 0 || rem[c] > rem[best])) best = c;
        alloc[best]++;
        rem[best] = -1; /* one extra per class at most */
    }
    /* every present class at least one, taken from the class most above its quota */
    if (val_size >= present)
        for (int c = 0; c < C; c++) {
            if (cnt[c] == 0 || alloc[c] > 0) continue;
            int donor = -1;
            int64_t best_sur = 0;
            for (int k = 0; k < C; k++) {
                if (alloc[k] < 2) continue;
                int64_t sur = (int64_t)alloc[k] * N - (int64_t)val_size * cnt[k];
                if (donor < 0 || sur > best_sur) donor = k, best_sur = sur;
            }
            CLPDD_ASSERT(donor >= 0);
            alloc[donor]--;
            alloc[c]++;
        }
    for (int c = 0; c < C; c++)
        if (cnt[c] > 0 && alloc[c] >= cnt[c]) {
            int rc = clpdd_err_set(e, "split: class %d has %d image(s) and a stratified val_size = %d of N = %d would hold out %d, leaving none to train on",
                                   c, cnt[c], val_size, N, alloc[c]);
            free(cnt), free(alloc), free(rem);
            return rc;
        }
    /* seeded draw within each class (classes in order, indices ascending, partial Fisher–Yates) */
    clpdd_rng r = {seed * 0x9E3779B97F4A7C15ULL + 0x5EEDULL};
    char *is_val = clpdd_xcalloc((size_t)N, 1);
    int *idx = clpdd_xmalloc((size_t)N * sizeof *idx);
    for (int c = 0; c < C; c++) {
        int k = 0;
        for (int i = 0; i < N; i++)
            if (labels[i] == c) idx[k++] = i;
        for (int j = 0; j < alloc[c]; j++) {
            int t = j + clpdd_rng_below(&r, k - j), tmp = idx[j];
            idx[j] = idx[t];
            idx[t] = tmp;
            is_val[idx[j]] = 1;
        }
    }
    int nt = 0, nv = 0;
    for (int i = 0; i < N; i++)
        if (is_val[i])
            val_idx[nv++] = i;
        else
            train_idx[nt++] = i;
    CLPDD_ASSERT(nv == val_size && nt == N - val_size);
    if (n_train) *n_train = nt;
    free(is_val), free(idx), free(cnt), free(alloc), free(rem);
    return 0;
}

int clpdd_class_centroids(const float *X, const int32_t *y, int N, int d, int C, int per_class, int *out, clpdd_err *e) {
    for (int i = 0; i < N; i++)
        if (y[i] < 0 || y[i] >= C)
            return clpdd_err_set(e, "centroids: label %d of image %d is outside [0, %d)", (int)y[i], i, C);
    if (per_class < 1) return clpdd_err_set(e, "centroids: %d per class, expected at least 1", per_class);
    int k = per_class;
    double *mean = clpdd_xcalloc((size_t)C * d, sizeof *mean), *best = clpdd_xmalloc((size_t)C * k * sizeof *best);
    int *cnt = clpdd_xcalloc((size_t)C, sizeof *cnt);
    for (int i = 0; i < N; i++) {
        cnt[y[i]]++;
        for (int j = 0; j < d; j++) mean[(size_t)y[i] * d + j] += X[(size_t)i * d + j];
    }
    for (int c = 0; c < C; c++) {
        if (cnt[c] < k) {
            int have = cnt[c];
            free(mean), free(best), free(cnt);
            return have == 0 ? clpdd_err_set(e, "centroids: class %d has no image (expected every class 0..%d present)", c, C - 1)
                             : clpdd_err_set(e, "centroids: class %d has %d images, fewer than %d", c, have, k);
        }
        for (int j = 0; j < d; j++) mean[(size_t)c * d + j] /= cnt[c];
    }
    for (int i = 0; i < C * k; i++) out[i] = -1, best[i] = INFINITY;
    for (int i = 0; i < N; i++) {
        const double *mu = mean + (size_t)y[i] * d;
        double dist = 0;
        for (int j = 0; j < d; j++) {
            double t = X[(size_t)i * d + j] - mu[j];
            dist += t * t;
        }
        /* into class y[i]'s list of k, nearest first (strict <, ascending i: ties keep the lowest) */
        double *bd = best + (size_t)y[i] * k;
        int *bi = out + (size_t)y[i] * k, p = k;
        while (p > 0 && dist < bd[p - 1]) p--;
        if (p == k) continue;
        memmove(bd + p + 1, bd + p, (size_t)(k - p - 1) * sizeof *bd);
        memmove(bi + p + 1, bi + p, (size_t)(k - p - 1) * sizeof *bi);
        bd[p] = dist, bi[p] = i;
    }
    free(mean), free(best), free(cnt);
    return 0;
}
