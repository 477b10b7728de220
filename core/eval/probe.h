/* The converged linear probe (protocol `probe`): multinomial logistic regression on
 * frozen features, L2 on the weights (not the bias), solved to convergence by full-batch L-BFGS
 * in float64; the L2 strength chosen on a validation split; and the host helpers the evaluator
 * needs (a stratified validation split, class centroids).
 *
 * Dimensions: m probe training points (the distilled set, or real images for a baseline),
 * nv validation points, nt test points, n any scored set, N a labelled pool, d feature width,
 * C classes.
 *
 * Objective (what is minimised, for W (d, C), b (C)):
 *     f(W, b) = (1/m) Σ_i −Σ_c T_ic log softmax(x_i W + b)_c  +  (wd/2) ‖W‖²_F
 * with T the target rows: one-hot of hard labels y, or a label matrix Y (m, C) as stored (every
 * row must be a probability row: entries ≥ 0 summing to 1 ± 1e-3; one-hot today). This is
 * sklearn's LogisticRegression(penalty="l2", C=1/(wd·m), fit_intercept=True), whose loss is the
 * sum (not the mean) of the cross-entropies plus ‖W‖²/(2C). The model is NOT standardised (the
 * probe sees the features as they are, as the linear-probe papers' sklearn probes do).
 *
 * Solver. liblbfgs (Debian liblbfgs-dev) rather than a home-made L-BFGS: its More–Thuente line
 * search (satisfying the strong Wolfe conditions, from MINPACK) is the well-tested piece that a
 * home-made line search gets wrong at the edges (tiny steps, rounding near the optimum). To make
 * the solve robust to feature scales, L-BFGS runs in preconditioned coordinates:
 *     x'_j = (x_j − μ_j) / s_j,   s_j = sqrt(var_j + wd)     (μ, var: the m training points')
 *     W'_j = s_j W_j,   b' = b + Σ_j μ_j W_j,   penalty (wd / (2 s_j²)) ‖W'_j‖²
 * which is an exact reparametrisation of the SAME problem (the bias is unpenalised, so centring is
 * free; the penalty is rescaled per row), not a change of model: the returned W, b and the loss
 * are the original problem's. Centring decouples the bias from the weights (post-ReLU features
 * have large means) and s_j makes every row's curvature O(1).
 *
 * Convergence: ‖g'‖∞ ≤ tol · max(1, ‖θ'‖∞), with g' the gradient in the solver's coordinates
 * (unit-variance features, so tol means the same for every backbone), θ' = (W', b'); checked
 * after every L-BFGS iteration and again on the returned point (the converged flag is that
 * check, never liblbfgs's status alone). A line-search failure (rounding near the optimum)
 * restarts L-BFGS from the last accepted point, up to 3 times while the loss still decreases.
 * The floor: a tol below ~1e-8 is not reachable in float64 (near the optimum the decrease a step
 * buys, ~‖g‖²/curvature, falls under the loss's rounding, ~1e-16·f, and the line search stops with
 * a rounding error); such a fit reports converged = 0 and the gradient norm it reached. The
 * default 1e-6 is reached on every problem measured (synthetic; mnist-vit features of
 * fashion-mnist at every grid wd).
 * Init W = 0, b = 0 (or a warm start); deterministic. For wd > 0 the problem is strictly convex
 * in W (and in b up to the softmax's shift, fixed by Σ_c b_c = 0 which every iterate keeps). */
#ifndef CLPDD_PROBE_H
#define CLPDD_PROBE_H
#include <stdint.h>

#include "util/util.h"

typedef struct clpdd_logreg_cfg {
    double wd;    /* L2 strength on W (≥ 0; 0 is unregularised and may not converge on separable data) */
    int max_iter; /* L-BFGS iteration cap over all restarts (≥ 1); CLPDD_LOGREG_MAX_ITER is the default */
    double tol;   /* gradient tolerance (> 0), see above; CLPDD_LOGREG_TOL is the default */
} clpdd_logreg_cfg;
#define CLPDD_LOGREG_MAX_ITER 2000
#define CLPDD_LOGREG_TOL 1e-6

typedef struct clpdd_logreg {
    int d, C;
    double *W;         /* (d + 1, C): W (d, C) then the bias row b (C); original coordinates */
    double wd;         /* the L2 strength it was fitted with */
    int iterations;    /* L-BFGS iterations, all restarts together */
    int evaluations;   /* objective + gradient evaluations (line-search trials included) */
    int restarts;      /* L-BFGS restarts after a line-search failure */
    double grad_norm;  /* ‖g'‖∞ at the returned point, solver coordinates (what tol is checked on) */
    double grad_norm_raw; /* ‖∂f/∂(W, b)‖∞ at the returned point, original coordinates */
    double loss;       /* f(W, b) at the returned point, penalty included */
    int status;        /* liblbfgs's last return code (LBFGS_STOP = 1: stopped by our tolerance) */
    int converged;     /* 1 when the tolerance holds at the returned point */
} clpdd_logreg;

/* Fit on X (m, d) with targets: hard labels y (m) in [0, C), or Y (m, C) as stored when non-NULL
   (y is then ignored and may be NULL). warm (or NULL): a fit with the same d, C to start from
   (e.g. the previous point of a wd grid). out is overwritten (free it with clpdd_logreg_free);
   -1 with a message on bad input (non-finite features, label out of range, bad target row, bad
   cfg) or when liblbfgs rejects the problem; not converging within max_iter is NOT an error
   (converged = 0, check it). */
int clpdd_logreg_fit(clpdd_logreg *out, const float *X, const int32_t *y, const float *Y, int m, int d, int C,
                     const clpdd_logreg_cfg *cfg, const clpdd_logreg *warm, clpdd_err *e);
/* top-1 in [0, 1] of logits (n, C) against y (n); argmax ties → the lowest class; 0 when n ≤ 0.
   The one top-1 rule: every evaluation (the probes, the LGM probe, the run's ridge read-out)
   scores through it or through clpdd_logreg_accuracy, which applies it to float64 logits. */
double clpdd_top1(const float *logits, const int32_t *y, int n, int C);
/* logits (n, C) = X (n, d) W + b, in float64 */
void clpdd_logreg_logits(const clpdd_logreg *p, const float *X, int n, double *logits);
/* top-1 accuracy in [0, 1] on (X (n, d), y (n)), by the rule of clpdd_top1; 0 when n = 0 */
double clpdd_logreg_accuracy(const clpdd_logreg *p, const float *X, const int32_t *y, int n);
/* pred (n) = the argmax of p's logits on X (n, d), by the rule of clpdd_top1 */
void clpdd_logreg_predict(const clpdd_logreg *p, const float *X, int n, int32_t *pred);
/* f(W, b) of p on (X, y | Y) with strength wd: the objective above, in float64 */
double clpdd_logreg_objective(const clpdd_logreg *p, const float *X, const int32_t *y, const float *Y, int m,
                              double wd);
void clpdd_logreg_free(clpdd_logreg *p);
/* a name for a liblbfgs return code ("stopped: gradient tolerance", "max iterations", …) */
const char *clpdd_logreg_status_str(int status);

/* ---- wd selection on a validation split ---- */
#define CLPDD_PROBE_MAX_WD 16
#define CLPDD_PROBE_WD_GRID {1e-5, 1e-4, 1e-3, 1e-2, 1e-1}
#define CLPDD_PROBE_N_WD 5

typedef struct clpdd_probe_select_cfg {
    const double *wd; /* the grid (n_wd values > 0, any order, distinct), NULL → CLPDD_PROBE_WD_GRID */
    int n_wd;         /* 1..CLPDD_PROBE_MAX_WD (ignored when wd is NULL) */
    int max_iter;     /* ≤ 0 → CLPDD_LOGREG_MAX_ITER */
    double tol;       /* ≤ 0 → CLPDD_LOGREG_TOL */
    double wd_noval;  /* wd used when there is no validation split; ≤ 0 → 1/m (sklearn's default C = 1) */
    const int32_t *val_group; /* (nv) or NULL: select on the worst group's validation accuracy
                                 (clpdd_group_accuracy over G groups) instead of the average */
    int G;
} clpdd_probe_select_cfg;

typedef struct clpdd_probe_result {
    double wd;        /* the chosen L2 strength */
    int selected;     /* 1: chosen on the validation split; 0: no split, wd = wd_noval (or 1/m) */
    double val_acc;   /* validation score of the chosen fit (NaN without a split): the accuracy, or with
                         cfg->val_group the worst group's */
    double test_acc;  /* test accuracy of the chosen fit (NaN when nt = 0) */
    double train_acc; /* accuracy on the m training points (hard labels: y, or argmax of Y) */
    int n_wd;         /* grid points fitted (0 without a split) */
    double wd_grid[CLPDD_PROBE_MAX_WD];    /* the grid, in the caller's order */
    double val_per_wd[CLPDD_PROBE_MAX_WD]; /* validation accuracy of each grid point's fit */
    int converged_per_wd[CLPDD_PROBE_MAX_WD];
    int iter_per_wd[CLPDD_PROBE_MAX_WD];
    /* the chosen fit's convergence */
    int iterations, status, converged;
    double grad_norm, grad_norm_raw, loss;
    double seconds; /* wall time of all fits */
} clpdd_probe_result;

/* Fit the probe on train (Xtr (m, d), ytr (m) or Ytr (m, C)) for every wd of the grid, pick the
   best validation accuracy on (Xval (nv, d), yval); ties → the LARGER wd (the more regularised
   model among equally good ones: the selection is noisy at small nv and the larger wd is the
   better-conditioned, more stable fit); report the chosen fit's test accuracy on (Xte (nt, d),
   yte). The grid is swept from the largest wd to the smallest, each fit warm-started from the
   previous one, and every fit runs to the tolerance (warm starts change the path, not the
   converged point: the problem is strictly convex), so the chosen fit IS the refit with the
   chosen wd, on the train points only (the validation images are real and never join the
   distilled set). Without a split (Xval NULL or nv = 0) one fit with cfg->wd_noval (≤ 0 → 1/m).
   fit_out (or NULL) receives the chosen fit (free with clpdd_logreg_free). -1 with a message on
   bad input (as clpdd_logreg_fit, or a bad grid). */
int clpdd_probe_select_fit(clpdd_probe_result *r, const float *Xtr, const int32_t *ytr, const float *Ytr, int m,
                           const float *Xval, const int32_t *yval, int nv, const float *Xte, const int32_t *yte,
                           int nt, int d, int C, const clpdd_probe_select_cfg *cfg, clpdd_logreg *fit_out, clpdd_err *e);

/* ---- helpers on host arrays ---- */

/* Groups (spurious-correlation benchmarks): predictions pred (n) against labels y (n), each point
   in group g[i] ∈ [0, G). acc (G) and count (G) (either may be NULL) get each group's accuracy
   (NaN when it has no point) and size; *mean (or NULL) the unweighted mean over the groups that
   have points. Returns the worst (lowest) group accuracy, NaN when no group has a point. */
double clpdd_group_accuracy(const int32_t *pred, const int32_t *y, const int32_t *g, int n, int G, double *acc,
                            int *count, double *mean);

/* Hold out val_size of the N labelled indices, stratified by class: each class c with n_c points
   gets a share proportional to n_c (largest remainder, ties → the lower class), and every present
   class at least 1 when val_size ≥ the number of present classes; within a class the held-out
   points are a seeded random draw. train_idx (N − val_size) and val_idx (val_size) come back
   sorted ascending, disjoint, together 0..N−1; the same (labels, val_size, seed) give the same
   split. -1 with a message when val_size ∉ [1, N), a label ∉ [0, C), or a class would be left
   with no training point. n_train may be NULL. */
int clpdd_split_stratified(const int32_t *labels, int N, int C, int val_size, uint64_t seed, int *train_idx,
                           int *n_train, int *val_idx, clpdd_err *e);

/* For each class c, the per_class points of class c nearest (Euclidean, float64) the mean feature
   of class c, nearest first; ties → the lowest index. X (N, d), y (N), out (C·per_class),
   class-major. per_class = 1 is the class-centroid baseline at IPC 1. -1 with a message when a
   label ∉ [0, C) or a class has fewer than per_class points. */
int clpdd_class_centroids(const float *X, const int32_t *y, int N, int d, int C, int per_class, int *out, clpdd_err *e);

#endif
