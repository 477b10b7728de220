/* The converged linear probe (core/eval/probe.c): against an independent float64 Newton solver and
 * an independently computed gradient on tiny problems with a known optimum; convergence on
 * separable and non-separable data; one-hot Y = hard y; warm starts; wd selection on a
 * validation split (a constructed winner, the ties rule); the stratified split; class centroids.
 * The `probe_timing` test reports (does not assert) the cost of full-data and small-m fits.
 *
 * Dimensions: m training points, d features, C classes; θ = (W (d, C), b (C)) as (d + 1, C). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <lbfgs.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/probe.h"
#include "support.h"
#include "util/util.h"

/* ---- an independent float64 reference: objective, gradient, Newton ---- */

/* f(θ) and g = ∂f/∂θ (=) of the probe's objective, transcribed directly (x̃ = [x, 1]) */
static double ref_fg(const double *th, const float *X, const int32_t *y, int m, int d, int C, double wd, double *g) {
    double f = 0, p[16];
    cr_assert(C <= 16);
    if (g) memset(g, 0, sizeof(double) * (d + 1) * C);
    for (int i = 0; i < m; i++) {
        double z[16], mx = -INFINITY, s = 0;
        for (int c = 0; c < C; c++) {
            z[c] = th[d * C + c];
            for (int j = 0; j < d; j++) z[c] += (double)X[i * d + j] * th[j * C + c];
            mx = fmax(mx, z[c]);
        }
        for (int c = 0; c < C; c++) s += exp(z[c] - mx);
        f += mx + log(s) - z[y[i]];
        for (int c = 0; c < C; c++) p[c] = exp(z[c] - mx) / s - (c == y[i]);
        if (g)
            for (int c = 0; c < C; c++) {
                for (int j = 0; j < d; j++) g[j * C + c] += X[i * d + j] * p[c] / m;
                g[d * C + c] += p[c] / m;
            }
    }
    f /= m;
    for (int k = 0; k < d * C; k++) {
        f += 0.5 * wd * th[k] * th[k];
        if (g) g[k] += wd * th[k];
    }
    return f;
}

static double max_abs(const double *v, int n) {
    double a = 0;
    for (int i = 0; i < n; i++) a = fmax(a, fabs(v[i]));
    return a;
}

/* Newton's method from θ = 0 with step halving. The Hessian is singular along "add a constant to
   every bias" (softmax's shift); adding 1·uuᵀ on the bias block (u = ones) makes it definite
   without moving the iterates off Σ_c b_c = 0 (the gradient is orthogonal to u). Stops at
   ‖g‖∞ < 1e-14. */
static void ref_newton(double *th, const float *X, const int32_t *y, int m, int d, int C, double wd) {
    int n = (d + 1) * C;
    double *g = calloc(n, sizeof *g), *H = calloc((size_t)n * n, sizeof *H), *t = calloc(n, sizeof *t);
    memset(th, 0, sizeof(double) * n);
    for (int it = 0; it < 200; it++) {
        double f = ref_fg(th, X, y, m, d, C, wd, g);
        if (max_abs(g, n) < 1e-14) break;
        memset(H, 0, sizeof(double) * n * n);
        for (int i = 0; i < m; i++) {
            double z[16], p[16], mx = -INFINITY, s = 0, xt[16];
            for (int j = 0; j < d; j++) xt[j] = X[i * d + j];
            xt[d] = 1;
            for (int c = 0; c < C; c++) {
                z[c] = 0;
                for (int j = 0; j <= d; j++) z[c] += xt[j] * th[j * C + c];
                mx = fmax(mx, z[c]);
            }
            for (int c = 0; c < C; c++) s += (p[c] = exp(z[c] - mx));
            for (int c = 0; c < C; c++) p[c] /= s;
            for (int j = 0; j <= d; j++)
                for (int c = 0; c < C; c++)
                    for (int k = 0; k <= d; k++)
                        for (int c2 = 0; c2 < C; c2++)
                            H[(j * C + c) * n + k * C + c2] += xt[j] * xt[k] * (p[c] * (c == c2) - p[c] * p[c2]) / m;
        }
        for (int k = 0; k < d * C; k++) H[k * n + k] += wd;
        for (int c = 0; c < C; c++)
            for (int c2 = 0; c2 < C; c2++) H[(d * C + c) * n + d * C + c2] += 1;
        cr_assert_eq(test_chol(H, n), 0, "reference Hessian is positive definite");
        memcpy(t, g, sizeof(double) * n);
        test_chol_solve(H, n, t, 1);
        double step = 1, *cand = calloc(n, sizeof *cand);
        for (int h = 0; h < 60; h++, step *= 0.5) {
            for (int k = 0; k < n; k++) cand[k] = th[k] - step * t[k];
            if (ref_fg(cand, X, y, m, d, C, wd, NULL) <= f) break;
        }
        memcpy(th, cand, sizeof(double) * n);
        free(cand);
    }
    free(g), free(H), free(t);
}

/* class c: a Gaussian blob (std `spread`) around `sep`·e_c (c < d), then column scales/offsets */
static void blobs(float *X, int32_t *y, int m, int d, int C, float sep, float spread, uint64_t seed) {
    test_fill_normal(X, (size_t)m * d, spread, seed);
    for (int i = 0; i < m; i++) {
        y[i] = i % C;
        X[i * d + y[i] % d] += sep;
    }
}

static void center_bias(double *th, int d, int C) {
    double s = 0;
    for (int c = 0; c < C; c++) s += th[d * C + c];
    for (int c = 0; c < C; c++) th[d * C + c] -= s / C;
}

/* ---- the probe against the reference ---- */

Test(probe, matches_newton_and_its_gradient_vanishes) {
    enum { M = 45, D = 3, C = 3, N = (D + 1) * C };
    float X[M * D];
    int32_t y[M];
    blobs(X, y, M, D, C, 1.5f, 1.0f, 11); /* overlapping: not separable */
    for (int i = 0; i < M; i++) {         /* badly scaled, offset columns: the preconditioning at work */
        X[i * D + 0] = 30.0f * X[i * D + 0] + 20.0f;
        X[i * D + 2] = 0.1f * X[i * D + 2] - 3.0f;
    }
    double wd = 1e-2, ref[N], g[N];
    ref_newton(ref, X, y, M, D, C, wd);
    double fref = ref_fg(ref, X, y, M, D, C, wd, g);
    cr_assert_lt(max_abs(g, N), 1e-10, "the reference itself converged: ‖g‖∞ = %g", max_abs(g, N));

    clpdd_err e = {{0}};
    clpdd_logreg p;
    clpdd_logreg_cfg cfg = {wd, 5000, 1e-8};
    cr_assert_eq(clpdd_logreg_fit(&p, X, y, NULL, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
    cr_expect(p.converged, "converged (status %d: %s, %d iterations)", p.status, clpdd_logreg_status_str(p.status),
              p.iterations);
    cr_expect_eq(p.d, D);
    cr_expect_eq(p.C, C);
    double th[N];
    memcpy(th, p.W, sizeof th);
    double gi[N];
    double f = ref_fg(th, X, y, M, D, C, wd, gi);
    /* tol bounds the gradient in the solver's coordinates; in the original ones ∂f/∂W_j = s_j g'_j + μ_j g'_b
       is up to (s_j + |μ_j|) ≈ 50 times larger for the scaled, offset column 0 */
    cr_expect_lt(max_abs(gi, N), 1e-6, "independently computed ‖g‖∞ = %g at the fit", max_abs(gi, N));
    cr_expect_leq(p.grad_norm, 1e-8 * fmax(1, max_abs(th, N) * 30), "solver-coordinate ‖g'‖∞ %g", p.grad_norm);
    cr_expect_float_eq(p.grad_norm_raw, max_abs(gi, N), 1e-9, "reported raw gradient norm %g vs %g", p.grad_norm_raw,
                       max_abs(gi, N));
    cr_expect_float_eq(p.loss, f, 1e-12 * fabs(f), "reported loss %.15g vs %.15g", p.loss, f);
    cr_expect_float_eq(clpdd_logreg_objective(&p, X, y, NULL, M, wd), f, 1e-12);
    cr_expect_lt(f - fref, 1e-12, "objective %.15g vs the reference optimum %.15g", f, fref);
    center_bias(th, D, C);
    center_bias(ref, D, C);
    for (int k = 0; k < N; k++)
        cr_expect_float_eq(th[k], ref[k], 1e-6 * fmax(1, fabs(ref[k])), "θ[%d]: %.10g vs Newton %.10g", k, th[k], ref[k]);
    clpdd_logreg_free(&p);

    /* the default tolerance: a small gradient in the original coordinates too */
    clpdd_logreg_cfg def = {wd, CLPDD_LOGREG_MAX_ITER, CLPDD_LOGREG_TOL};
    cr_assert_eq(clpdd_logreg_fit(&p, X, y, NULL, M, D, C, &def, NULL, &e), 0, "%s", e.msg);
    cr_expect(p.converged);
    ref_fg(p.W, X, y, M, D, C, wd, gi);
    cr_expect_lt(max_abs(gi, N), 1e-4, "default tol: ‖g_raw‖∞ = %g", max_abs(gi, N));
    cr_expect_lt(p.loss - fref, 1e-9, "default tol: loss %.12g vs optimum %.12g", p.loss, fref);
    clpdd_logreg_free(&p);
}

Test(probe, separable_data_stays_bounded) {
    enum { M = 60, D = 4, C = 3, N = (D + 1) * C };
    float X[M * D];
    int32_t y[M];
    blobs(X, y, M, D, C, 8.0f, 0.3f, 3); /* far-apart blobs: linearly separable */
    clpdd_err e = {{0}};
    for (int k = 0; k < 3; k++) {
        double wd = (double[]){1e-2, 1e-4, 1e-5}[k];
        clpdd_logreg p;
        clpdd_logreg_cfg cfg = {wd, CLPDD_LOGREG_MAX_ITER, CLPDD_LOGREG_TOL};
        cr_assert_eq(clpdd_logreg_fit(&p, X, y, NULL, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
        cr_expect(p.converged, "wd %g: converged (status %s, %d iterations, ‖g'‖∞ %g)", wd,
                  clpdd_logreg_status_str(p.status), p.iterations, p.grad_norm);
        double w2 = 0;
        for (int i = 0; i < N; i++) {
            cr_expect(isfinite(p.W[i]));
            if (i < D * C) w2 += p.W[i] * p.W[i];
        }
        /* (wd/2)‖W‖² ≤ f(W*) ≤ f(0) = log C */
        cr_expect_leq(w2, 2 * log(C) / wd, "wd %g: ‖W‖² = %g within the bound %g", wd, w2, 2 * log(C) / wd);
        cr_expect_eq(clpdd_logreg_accuracy(&p, X, y, M), 1.0, "separable: every training point right");
        double gi[N];
        ref_fg(p.W, X, y, M, D, C, wd, gi);
        cr_expect_lt(max_abs(gi, N), 1e-4, "wd %g: independent ‖g‖∞ = %g", wd, max_abs(gi, N));
        clpdd_logreg_free(&p);
    }
}

Test(probe, non_separable_random_labels_converge) {
    enum { M = 300, D = 6, C = 4, N = (D + 1) * C };
    float *X = malloc(sizeof(float) * M * D);
    int32_t y[M];
    test_fill_normal(X, M * D, 1.0f, 5);
    test_rng r = {77};
    for (int i = 0; i < M; i++) y[i] = (int32_t)(test_uniform(&r) * C);
    clpdd_err e = {{0}};
    for (int k = 0; k < 2; k++) {
        double wd = k ? 1e-5 : 1e-3;
        clpdd_logreg p;
        clpdd_logreg_cfg cfg = {wd, CLPDD_LOGREG_MAX_ITER, 1e-8};
        cr_assert_eq(clpdd_logreg_fit(&p, X, y, NULL, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
        cr_expect(p.converged, "wd %g: %s after %d iterations", wd, clpdd_logreg_status_str(p.status), p.iterations);
        double gi[N], ref[N];
        double f = ref_fg(p.W, X, y, M, D, C, wd, gi);
        cr_expect_lt(max_abs(gi, N), 1e-8, "wd %g: independent ‖g‖∞ = %g", wd, max_abs(gi, N));
        ref_newton(ref, X, y, M, D, C, wd);
        double fref = ref_fg(ref, X, y, M, D, C, wd, NULL);
        cr_expect_lt(f - fref, 1e-12, "wd %g: f %.15g vs Newton %.15g", wd, f, fref);
        cr_expect_gt(f, 0.5, "random labels are not fitted away");
        clpdd_logreg_free(&p);
    }
    free(X);
}

Test(probe, one_hot_rows_equal_hard_labels_and_bad_input_is_named) {
    enum { M = 40, D = 5, C = 4, N = (D + 1) * C };
    float X[M * D], Y[M * C] = {0};
    int32_t y[M];
    blobs(X, y, M, D, C, 2.0f, 1.0f, 9);
    for (int i = 0; i < M; i++) Y[i * C + y[i]] = 1;
    clpdd_err e = {{0}};
    clpdd_logreg a, b;
    clpdd_logreg_cfg cfg = {1e-3, CLPDD_LOGREG_MAX_ITER, 1e-8};
    cr_assert_eq(clpdd_logreg_fit(&a, X, y, NULL, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_logreg_fit(&b, X, NULL, Y, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
    cr_expect(a.converged && b.converged);
    cr_expect_eq(a.iterations, b.iterations);
    for (int k = 0; k < N; k++) cr_expect_float_eq(a.W[k], b.W[k], 1e-12, "θ[%d] %.17g vs %.17g", k, a.W[k], b.W[k]);
    cr_expect_float_eq(a.loss, b.loss, 1e-14);
    cr_expect_float_eq(clpdd_logreg_objective(&b, X, NULL, Y, M, 1e-3), a.loss, 1e-12);
    clpdd_logreg_free(&a), clpdd_logreg_free(&b);

    /* a label-smoothed row is accepted (and gives a different fit); a row that is not a distribution is not */
    for (int c = 0; c < C; c++) Y[3 * C + c] = c == y[3] ? 0.7f : 0.1f;
    cr_expect_eq(clpdd_logreg_fit(&b, X, NULL, Y, M, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
    cr_expect(b.converged);
    clpdd_logreg_free(&b);
    Y[3 * C + y[3]] = 0.2f;
    cr_expect_eq(clpdd_logreg_fit(&b, X, NULL, Y, M, D, C, &cfg, NULL, &e), -1);
    cr_expect(strstr(e.msg, "target row 3 sums to"), "%s", e.msg);
    Y[3 * C + y[3]] = -0.1f;
    cr_expect_eq(clpdd_logreg_fit(&b, X, NULL, Y, M, D, C, &cfg, NULL, &e), -1);
    cr_expect(strstr(e.msg, "target row 3, class"), "%s", e.msg);

    int32_t yb[M];
    memcpy(yb, y, sizeof yb);
    yb[7] = C;
    cr_expect_eq(clpdd_logreg_fit(&b, X, yb, NULL, M, D, C, &cfg, NULL, &e), -1);
    cr_expect(strstr(e.msg, "label 4 of training point 7"), "%s", e.msg);
    float Xb[M * D];
    memcpy(Xb, X, sizeof Xb);
    Xb[2 * D + 1] = NAN;
    cr_expect_eq(clpdd_logreg_fit(&b, Xb, y, NULL, M, D, C, &cfg, NULL, &e), -1);
    cr_expect(strstr(e.msg, "training feature [2, 1]"), "%s", e.msg);
    clpdd_logreg_cfg bad = {-1, 10, 1e-6};
    cr_expect_eq(clpdd_logreg_fit(&b, X, y, NULL, M, D, C, &bad, NULL, &e), -1);
    cr_expect(strstr(e.msg, "wd"), "%s", e.msg);
    cr_expect_eq(clpdd_logreg_fit(&b, X, y, NULL, M, D, 1, &cfg, NULL, &e), -1);
    cr_expect(strstr(e.msg, "C ≥ 2"), "%s", e.msg);

    /* an iteration cap that is hit is reported, not an error */
    clpdd_logreg_cfg tiny = {1e-6, 2, 1e-12};
    cr_expect_eq(clpdd_logreg_fit(&b, X, y, NULL, M, D, C, &tiny, NULL, &e), 0, "%s", e.msg);
    cr_expect_eq(b.converged, 0);
    cr_expect_leq(b.iterations, 2);
    cr_expect_eq(b.status, LBFGSERR_MAXIMUMITERATION, "status %d (%s)", b.status, clpdd_logreg_status_str(b.status));
    clpdd_logreg_free(&b);
}

Test(probe, warm_start_reaches_the_same_optimum) {
    enum { M = 80, D = 4, C = 3, N = (D + 1) * C };
    float X[M * D];
    int32_t y[M];
    blobs(X, y, M, D, C, 1.0f, 1.0f, 21);
    clpdd_err e = {{0}};
    clpdd_logreg big, cold, warm;
    clpdd_logreg_cfg c1 = {1e-1, CLPDD_LOGREG_MAX_ITER, 1e-8}, c2 = {1e-4, CLPDD_LOGREG_MAX_ITER, 1e-8};
    cr_assert_eq(clpdd_logreg_fit(&big, X, y, NULL, M, D, C, &c1, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_logreg_fit(&cold, X, y, NULL, M, D, C, &c2, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_logreg_fit(&warm, X, y, NULL, M, D, C, &c2, &big, &e), 0, "%s", e.msg);
    cr_expect(cold.converged && warm.converged);
    double a[N], b[N];
    memcpy(a, cold.W, sizeof a), memcpy(b, warm.W, sizeof b);
    center_bias(a, D, C), center_bias(b, D, C);
    for (int k = 0; k < N; k++) cr_expect_float_eq(a[k], b[k], 1e-6 * fmax(1, fabs(a[k])), "θ[%d] %g vs %g", k, a[k], b[k]);
    /* a converged start is returned as it is */
    clpdd_logreg again;
    cr_assert_eq(clpdd_logreg_fit(&again, X, y, NULL, M, D, C, &c2, &warm, &e), 0, "%s", e.msg);
    cr_expect_eq(again.iterations, 0);
    cr_expect_eq(again.status, LBFGS_ALREADY_MINIMIZED);
    clpdd_logreg_free(&big), clpdd_logreg_free(&cold), clpdd_logreg_free(&warm), clpdd_logreg_free(&again);
    clpdd_logreg dummy;
    clpdd_logreg bad = {.d = D + 1, .C = C, .W = a};
    cr_expect_eq(clpdd_logreg_fit(&dummy, X, y, NULL, M, D, C, &c2, &bad, &e), -1);
    cr_expect(strstr(e.msg, "warm start"), "%s", e.msg);
}

/* ---- wd selection ---- */

/* 1-D, two classes, imbalanced: 8 points of class 0 around −1, 2 of class 1 around +1. The
   larger wd, the smaller |W| and the more the bias (which favours class 0) decides: the
   decision boundary x*(wd) (class 1 iff x > x*) moves right as wd grows. */
enum { SM = 10, SG = 4 };
static const float sel_x[SM] = {-1.3f, -1.2f, -1.1f, -1.0f, -0.9f, -0.8f, -0.7f, -0.6f, 0.9f, 1.1f};
static const int32_t sel_y[SM] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
static const double sel_grid[SG] = {1e-3, 1e-2, 1e-1, 1}; /* ascending on purpose: the caller's order is kept */

static double boundary(double wd) { /* from the reference solver */
    double th[4];
    ref_newton(th, sel_x, sel_y, SM, 1, 2, wd);
    return -(th[3] - th[2]) / (th[1] - th[0]);
}

Test(probe, wd_selection_picks_the_best_validation_accuracy) {
    double xb[SG];
    for (int k = 0; k < SG; k++) xb[k] = boundary(sel_grid[k]);
    for (int k = 1; k < SG; k++) cr_assert_gt(xb[k], xb[k - 1] + 0.01, "boundaries move right: %g %g", xb[k - 1], xb[k]);
    cr_log_info("boundaries x*(wd): %g %g %g %g", xb[0], xb[1], xb[2], xb[3]);
    clpdd_err e = {{0}};
    clpdd_probe_select_cfg cfg = {sel_grid, SG, 0, 1e-8, 0, NULL, 0};
    float xt[4] = {-2, -1, 1, 2};
    int32_t yt[4] = {0, 0, 1, 1};
    for (int w = 1; w < SG - 1; w++) {
        /* A (class 0) right of x*(wd_{w−1}): needs wd ≥ wd_w; B (class 1) left of x*(wd_{w+1}): needs wd ≤ wd_w */
        float xv[2] = {(float)(0.5 * (xb[w - 1] + xb[w])), (float)(0.5 * (xb[w] + xb[w + 1]))};
        int32_t yv[2] = {0, 1};
        clpdd_probe_result r;
        clpdd_logreg fit;
        cr_assert_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 2, xt, yt, 4, 1, 2, &cfg, &fit, &e), 0,
                     "%s", e.msg);
        cr_expect_eq(r.wd, sel_grid[w], "w = %d: chose %g", w, r.wd);
        cr_expect_eq(r.selected, 1);
        cr_expect_eq(r.n_wd, SG);
        cr_expect_eq(r.val_acc, 1.0);
        for (int k = 0; k < SG; k++) {
            cr_expect_eq(r.wd_grid[k], sel_grid[k]);
            cr_expect_eq(r.val_per_wd[k], k == w ? 1.0 : 0.5, "w = %d, val acc of wd %g: %g", w, sel_grid[k], r.val_per_wd[k]);
            cr_expect(r.converged_per_wd[k]);
        }
        cr_expect(r.converged);
        cr_expect_eq(fit.wd, sel_grid[w]);
        /* the reported fit is the converged fit at the chosen wd (here compared to a cold one) */
        clpdd_logreg cold;
        clpdd_logreg_cfg lc = {sel_grid[w], 2000, 1e-8};
        cr_assert_eq(clpdd_logreg_fit(&cold, sel_x, sel_y, NULL, SM, 1, 2, &lc, NULL, &e), 0);
        for (int k = 0; k < 2; k++) cr_expect_float_eq(fit.W[k], cold.W[k], 1e-6, "%g vs %g", fit.W[k], cold.W[k]);
        cr_expect_eq(r.test_acc, clpdd_logreg_accuracy(&cold, xt, yt, 4));
        cr_expect_float_eq(r.loss, cold.loss, 1e-12);
        clpdd_logreg_free(&cold), clpdd_logreg_free(&fit);
    }
    /* ties → the larger wd: wd_1 and wd_2 both classify A (between x*_0, x*_1) and B (between x*_2, x*_3) right */
    {
        float xv[2] = {(float)(0.5 * (xb[0] + xb[1])), (float)(0.5 * (xb[2] + xb[3]))};
        int32_t yv[2] = {0, 1};
        clpdd_probe_result r;
        cr_assert_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 2, xt, yt, 4, 1, 2, &cfg, NULL, &e), 0);
        cr_expect_eq(r.val_per_wd[1], 1.0);
        cr_expect_eq(r.val_per_wd[2], 1.0);
        cr_expect_eq(r.wd, sel_grid[2], "tie between %g and %g → the larger; chose %g", sel_grid[1], sel_grid[2], r.wd);
        /* everything tied → the largest */
        float xa[1] = {-5};
        int32_t ya[1] = {0};
        cr_assert_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xa, ya, 1, xt, yt, 4, 1, 2, &cfg, NULL, &e), 0);
        cr_expect_eq(r.wd, 1.0);
    }
    /* no validation split: one fit at 1/m (sklearn's C = 1), or the configured wd */
    {
        clpdd_probe_result r;
        cr_assert_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, NULL, NULL, 0, xt, yt, 4, 1, 2, &cfg, NULL, &e), 0);
        cr_expect_eq(r.selected, 0);
        cr_expect_eq(r.n_wd, 0);
        cr_expect_float_eq(r.wd, 1.0 / SM, 1e-15);
        cr_expect(isnan(r.val_acc));
        cr_expect(r.converged);
        clpdd_probe_select_cfg c2 = cfg;
        c2.wd_noval = 0.05;
        cr_assert_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, NULL, NULL, 0, xt, yt, 4, 1, 2, &c2, NULL, &e), 0);
        cr_expect_eq(r.wd, 0.05);
        cr_expect_eq(r.train_acc, 1.0);
    }
    /* bad grids */
    {
        clpdd_probe_result r;
        float xv[1] = {0};
        int32_t yv[1] = {0};
        double dup[2] = {1e-3, 1e-3}, neg[2] = {1e-3, -1};
        clpdd_probe_select_cfg c = {dup, 2, 0, 0, 0, NULL, 0};
        cr_expect_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 1, xt, yt, 4, 1, 2, &c, NULL, &e), -1);
        cr_expect(strstr(e.msg, "twice"), "%s", e.msg);
        c.wd = neg;
        cr_expect_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 1, xt, yt, 4, 1, 2, &c, NULL, &e), -1);
        cr_expect(strstr(e.msg, "wd grid value 2"), "%s", e.msg);
        c.n_wd = 17;
        cr_expect_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 1, xt, yt, 4, 1, 2, &c, NULL, &e), -1);
        yv[0] = 2;
        c.wd = NULL;
        cr_expect_eq(clpdd_probe_select_fit(&r, sel_x, sel_y, NULL, SM, xv, yv, 1, xt, yt, 4, 1, 2, &c, NULL, &e), -1);
        cr_expect(strstr(e.msg, "validation point 0"), "%s", e.msg);
    }
}

/* ---- helpers ---- */

Test(probe, stratified_split) {
    enum { N = 103, C = 4, V = 20 };
    int32_t lab[N];
    int counts[C] = {50, 30, 20, 3}, k = 0;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < counts[c]; j++) lab[k++] = c;
    test_rng r = {5}; /* interleave the classes */
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(test_uniform(&r) * (i + 1));
        int32_t t = lab[i];
        lab[i] = lab[j], lab[j] = t;
    }
    int tr[N], va[V], ntr = -1, tr2[N], va2[V];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_split_stratified(lab, N, C, V, 42, tr, &ntr, va, &e), 0, "%s", e.msg);
    cr_expect_eq(ntr, N - V);
    int seen[N] = {0}, per[C] = {0};
    for (int i = 0; i < ntr; i++) seen[tr[i]]++;
    for (int i = 0; i < V; i++) seen[va[i]] += 2, per[lab[va[i]]]++;
    for (int i = 0; i < N; i++) cr_expect(seen[i] == 1 || seen[i] == 2, "index %d in exactly one side (%d)", i, seen[i]);
    for (int i = 1; i < ntr; i++) cr_expect_lt(tr[i - 1], tr[i], "train indices ascending");
    for (int i = 1; i < V; i++) cr_expect_lt(va[i - 1], va[i], "val indices ascending");
    /* quotas 20·n_c/103 = 9.71, 5.83, 3.88, 0.58 → largest remainder 10, 6, 4, 0 → class 3 gets one
       from class 0 (furthest above its quota) → 9, 6, 4, 1 */
    int want[C] = {9, 6, 4, 1};
    for (int c = 0; c < C; c++) cr_expect_eq(per[c], want[c], "class %d: %d held out, want %d", c, per[c], want[c]);
    cr_assert_eq(clpdd_split_stratified(lab, N, C, V, 42, tr2, NULL, va2, &e), 0);
    cr_expect_arr_eq(va, va2, sizeof va, "same seed, same split");
    cr_expect_arr_eq(tr, tr2, sizeof tr2[0] * ntr);
    cr_assert_eq(clpdd_split_stratified(lab, N, C, V, 43, tr2, NULL, va2, &e), 0);
    cr_expect(memcmp(va, va2, sizeof va) != 0, "another seed, another split");
    /* balanced: exact proportions */
    int32_t bal[100];
    int trb[100], vab[30], pb[5] = {0};
    for (int i = 0; i < 100; i++) bal[i] = i % 5;
    cr_assert_eq(clpdd_split_stratified(bal, 100, 5, 30, 1, trb, NULL, vab, &e), 0);
    for (int i = 0; i < 30; i++) pb[bal[vab[i]]]++;
    for (int c = 0; c < 5; c++) cr_expect_eq(pb[c], 6);
    /* errors */
    cr_expect_eq(clpdd_split_stratified(lab, N, C, N, 1, tr, NULL, va, &e), -1);
    cr_expect(strstr(e.msg, "val_size = 103"), "%s", e.msg);
    cr_expect_eq(clpdd_split_stratified(lab, N, C, 0, 1, tr, NULL, va, &e), -1);
    int32_t one[6] = {0, 0, 1, 1, 1, 2}; /* class 2 has one image: holding it out empties the class */
    int t6[6], v6[6];
    cr_expect_eq(clpdd_split_stratified(one, 6, 3, 3, 1, t6, NULL, v6, &e), -1);
    cr_expect(strstr(e.msg, "class 2 has 1 image"), "%s", e.msg);
    cr_expect_eq(clpdd_split_stratified(one, 6, 3, 2, 1, t6, NULL, v6, &e), 0, "val_size < C: a class may get none (%s)", e.msg);
    one[1] = 3;
    cr_expect_eq(clpdd_split_stratified(one, 6, 3, 2, 1, t6, NULL, v6, &e), -1);
    cr_expect(strstr(e.msg, "label 3 of image 1"), "%s", e.msg);
}

Test(probe, class_centroids) {
    /* class 0 (x, y): (0,0) (1,0) (2,0) (10,0): mean (3.25, 0) → (2,0), index 2.
       class 1: (0,5) and (0,7), mean (0,6): both at distance 1 → the lower index, 4.
       class 2: one point, index 6. */
    float X[7 * 2] = {0, 0, 1, 0, 2, 0, 10, 0, 0, 5, 0, 6.5f, 0, 7};
    int32_t y[7] = {0, 0, 0, 0, 1, 2, 1};
    int out[3];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_class_centroids(X, y, 7, 2, 3, 1, out, &e), 0, "%s", e.msg);
    cr_expect_eq(out[0], 2);
    cr_expect_eq(out[1], 4);
    cr_expect_eq(out[2], 5);
    /* two per class, nearest first: class 0 → 2 (1.25 away) then 1 (2.25 away; 0 is 3.25) */
    int32_t y2[7] = {0, 0, 0, 0, 1, 1, 1};
    int out2[4];
    cr_assert_eq(clpdd_class_centroids(X, y2, 7, 2, 2, 2, out2, &e), 0, "%s", e.msg);
    cr_expect(out2[0] == 2 && out2[1] == 1, "class 0: %d %d", out2[0], out2[1]);
    cr_expect(out2[2] == 5, "class 1 (mean (0, 6.17)): 6.5 is nearest, got %d", out2[2]);
    cr_expect_eq(clpdd_class_centroids(X, y2, 7, 2, 2, 4, out2, &e), -1, "3 points can't give 4");
    cr_expect(strstr(e.msg, "fewer than 4"), "%s", e.msg);
    int32_t y4[7] = {0, 0, 0, 0, 1, 1, 1};
    cr_expect_eq(clpdd_class_centroids(X, y4, 7, 2, 3, 1, out, &e), -1);
    cr_expect(strstr(e.msg, "class 2 has no image"), "%s", e.msg);
    y4[0] = -1;
    cr_expect_eq(clpdd_class_centroids(X, y4, 7, 2, 3, 1, out, &e), -1);
    cr_expect(strstr(e.msg, "label -1 of image 0"), "%s", e.msg);
}

/* ---- cost (reported, not asserted): the full-data probe and small-m probes ---- */

static void gauss_classes(float *X, int32_t *y, int n, int d, int C, const float *means, uint64_t seed) {
    test_fill_normal(X, (size_t)n * d, 1.0f, seed);
    test_rng r = {seed + 1};
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)(test_uniform(&r) * C);
        for (int j = 0; j < d; j++) {
            float v = X[(size_t)i * d + j] + means[y[i] * d + j];
            X[(size_t)i * d + j] = v > 0 ? v : 0.1f * v; /* post-ReLU-like: skewed, non-zero mean */
        }
    }
}

Test(probe, probe_timing, .timeout = 300) {
    enum { D = 64, C = 10, NTR = 60000, NV = 5000, NT = 10000 };
    float *means = malloc(sizeof(float) * C * D);
    test_fill_normal(means, C * D, 0.4f, 99);
    float *Xtr = malloc(sizeof(float) * NTR * D), *Xv = malloc(sizeof(float) * NV * D), *Xt = malloc(sizeof(float) * NT * D);
    int32_t *ytr = malloc(sizeof(int32_t) * NTR), *yv = malloc(sizeof(int32_t) * NV), *yt = malloc(sizeof(int32_t) * NT);
    gauss_classes(Xtr, ytr, NTR, D, C, means, 1);
    gauss_classes(Xv, yv, NV, D, C, means, 2);
    gauss_classes(Xt, yt, NT, D, C, means, 3);
    clpdd_err e = {{0}};
    const char *all = getenv("CLPDD_PROBE_TIMING"); /* =1: also wd 1e-5 and the full-data grid (several seconds) */
    for (int k = 0; k < (all && atoi(all) ? 2 : 1); k++) {
        double wd = k ? 1e-5 : 1e-3;
        clpdd_logreg p;
        clpdd_logreg_cfg cfg = {wd, CLPDD_LOGREG_MAX_ITER, CLPDD_LOGREG_TOL};
        double t0 = clpdd_now();
        cr_assert_eq(clpdd_logreg_fit(&p, Xtr, ytr, NULL, NTR, D, C, &cfg, NULL, &e), 0, "%s", e.msg);
        double t = clpdd_now() - t0;
        fprintf(stderr, "probe timing: one fit m = %d, d = %d, C = %d, wd = %g: %.2f s, %d iterations, %d evaluations, "
                "‖g'‖∞ %.2g, converged %d (%s), test acc %.4f\n", NTR, D, C, wd, t, p.iterations, p.evaluations,
                p.grad_norm, p.converged, clpdd_logreg_status_str(p.status), clpdd_logreg_accuracy(&p, Xt, yt, NT));
        cr_expect(p.converged);
        clpdd_logreg_free(&p);
    }
    clpdd_probe_result r;
    if (all && atoi(all)) {
        cr_assert_eq(clpdd_probe_select_fit(&r, Xtr, ytr, NULL, NTR, Xv, yv, NV, Xt, yt, NT, D, C, NULL, NULL, &e), 0, "%s", e.msg);
        fprintf(stderr, "probe timing: full-data select over the default grid (m = %d, nv = %d, nt = %d): %.2f s, iterations",
                NTR, NV, NT, r.seconds);
        for (int k = 0; k < r.n_wd; k++) fprintf(stderr, " %d", r.iter_per_wd[k]);
        fprintf(stderr, "; chose wd %g, val %.4f, test %.4f\n", r.wd, r.val_acc, r.test_acc);
        cr_expect(r.converged);
    }
    for (int k = 0; k < 2; k++) {
        int m = k ? 100 : 10;
        cr_assert_eq(clpdd_probe_select_fit(&r, Xtr, ytr, NULL, m, Xv, yv, NV, Xt, yt, NT, D, C, NULL, NULL, &e), 0, "%s", e.msg);
        fprintf(stderr, "probe timing: m = %d select over the default grid (nv = %d, nt = %d): %.3f s, iterations", m, NV,
                NT, r.seconds);
        for (int g = 0; g < r.n_wd; g++) fprintf(stderr, " %d%s", r.iter_per_wd[g], r.converged_per_wd[g] ? "" : "(!)");
        fprintf(stderr, "; chose wd %g, val %.4f, test %.4f\n", r.wd, r.val_acc, r.test_acc);
        cr_expect(r.converged);
    }
    free(means), free(Xtr), free(Xv), free(Xt), free(ytr), free(yv), free(yt);
}
