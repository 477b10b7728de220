/* ridge solver: forward against a float64 transcription of docs/design.md §5, backward (dΦ_s, dY_s)
 * against float64 central finite differences of that transcription, dual = primal (values and
 * gradients), the jitter fallback, and non-finite input errors.
 * Legend: m synthetic, d feature dim, C classes, n real batch. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "plugin/host.h"
#include "support.h"

#define chol test_chol
#define chol_solve test_chol_solve

typedef struct cfg {
    int m, d, C, n;
    double lambda;
    int relative, bias;
    double beta;
    const char *form;
} cfg;

/* lambda = learn:<lambda> (ABI 1.5) in run_plugin: the plugin then reports ∂L/∂log λ */
static int g_learn;

/* ---- float64 reference: dual kernel ridge with the bias as a constant feature β ---- */
/* Z (n, C) from phi (m, d), Y (m, C), phib (n, d) */
static void ref_ridge(double *Z, const double *phi, const double *Y, const double *phib, const cfg *c) {
    int m = c->m, d = c->d, C = c->C, n = c->n, dp = d + c->bias;
    double *pt = calloc((size_t)m * dp, sizeof *pt), *K = calloc((size_t)m * m, sizeof *K);
    double *A = malloc((size_t)m * C * sizeof *A), *W = calloc((size_t)dp * C, sizeof *W);
    double tr = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < d; j++) pt[i * dp + j] = phi[i * d + j];
        if (c->bias) pt[i * dp + d] = c->beta;
    }
    for (int i = 0; i < m * dp; i++) tr += pt[i] * pt[i];
    double lam = c->relative ? c->lambda * tr / m : c->lambda;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double s = 0;
            for (int k = 0; k < dp; k++) s += pt[i * dp + k] * pt[j * dp + k];
            K[i * m + j] = s + (i == j ? lam : 0);
        }
    cr_assert_eq(chol(K, m), 0, "reference Cholesky failed");
    memcpy(A, Y, (size_t)m * C * sizeof *A);
    chol_solve(K, m, A, C);
    for (int k = 0; k < dp; k++)
        for (int cc = 0; cc < C; cc++)
            for (int i = 0; i < m; i++) W[k * C + cc] += pt[i * dp + k] * A[i * C + cc];
    for (int i = 0; i < n; i++)
        for (int cc = 0; cc < C; cc++) {
            double s = c->bias ? c->beta * W[d * C + cc] : 0;
            for (int k = 0; k < d; k++) s += phib[i * d + k] * W[k * C + cc];
            Z[i * C + cc] = s;
        }
    free(pt);
    free(K);
    free(A);
    free(W);
}

static void ref_fn(double *Z, const double *phi, const double *Y, const double *phib, void *c) {
    ref_ridge(Z, phi, Y, phib, c);
}

/* ---- running the plugin (the shared solver harness, tests/support.h) ---- */
typedef test_solver_data data;
typedef test_solver_result result;
#define make_data(c, seed) test_solver_data_make((c)->m, (c)->d, (c)->C, (c)->n, (seed))
#define free_data test_solver_data_free
#define free_result test_solver_result_free

static result run_plugin(const cfg *c, const double *phi, const double *Y, const double *phib, const double *R) {
    char keys[512];
    snprintf(keys, sizeof keys, "lambda = %s%.17g; lambda_mode = %s; bias = %s; bias_scale = %g; form = %s", g_learn ? "learn:" : "",
             c->lambda, c->relative ? "relative" : "absolute", c->bias ? "true" : "false", c->beta, c->form);
    return test_solver_run("ridge", keys, 1, c->m, c->d, c->C, c->n, phi, Y, phib, R, 1);
}

/* forward vs float64 and both gradients vs float64 finite differences */
static void check_against_reference(const cfg *c, uint64_t seed) {
    data x = make_data(c, seed);
    result r = run_plugin(c, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(r.status, 0, "plugin failed: %s", r.error);
    test_solver_errors er = test_solver_errors_of(&r, &x, c->m, c->d, c->C, c->n, ref_fn, (void *)c, 1e-6, 1e-6);
    /* fp32 Cholesky of a system with condition ~1e2–1e3: ~1e-5 relative */
    cr_expect_lt(er.z, 1e-4, "forward rel err %g (form %s, bias %d, relative %d)", er.z, c->form, c->bias, c->relative);
    /* fp32 backward against fp64 central differences (truncation ~h² = 1e-12): the error is the
       fp32 arithmetic, ~1e-5 per solve; 2e-3 leaves room for ill-conditioned draws */
    cr_expect_lt(er.dphi, 2e-3, "dphi rel err %g (form %s, bias %d, relative %d)", er.dphi, c->form, c->bias,
                 c->relative);
    cr_expect_lt(er.dY, 2e-3, "dY rel err %g (form %s)", er.dY, c->form);
    free_result(&r);
    free_data(&x);
}

Test(ridge, dual_matches_float64_and_finite_differences) {
    for (int bias = 0; bias <= 1; bias++)
        for (int rel = 0; rel <= 1; rel++) {
            cfg c = {5, 8, 3, 7, rel ? 0.05 : 0.5, rel, bias, 1.5, "dual"};
            check_against_reference(&c, 100 + 10 * bias + rel);
        }
}

Test(ridge, primal_matches_float64_and_finite_differences) {
    for (int bias = 0; bias <= 1; bias++)
        for (int rel = 0; rel <= 1; rel++) {
            cfg c = {9, 4, 3, 6, rel ? 0.05 : 0.5, rel, bias, 0.7, "primal"};
            check_against_reference(&c, 200 + 10 * bias + rel);
        }
}

Test(ridge, auto_form_picks_primal_when_m_exceeds_d) {
    cfg c = {12, 3, 4, 5, 0.1, 1, 1, 1.0, "auto"};
    check_against_reference(&c, 300);
}

Test(ridge, dual_and_primal_agree) {
    /* the push-through identity: the same W, so the same Z and the same gradients */
    for (int shape = 0; shape < 2; shape++) {
        cfg c = shape ? (cfg){10, 6, 4, 8, 0.02, 1, 1, 1.0, "dual"} : (cfg){6, 10, 4, 8, 0.02, 1, 0, 1.0, "dual"};
        data x = make_data(&c, 400 + shape);
        result a = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
        c.form = "primal";
        result b = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
        cr_assert_eq(a.status, 0, "%s", a.error);
        cr_assert_eq(b.status, 0, "%s", b.error);
        cr_expect_lt(test_rel_err(b.Z, a.Z, (size_t)c.n * c.C), 1e-4);
        cr_expect_lt(test_rel_err(b.dphi, a.dphi, (size_t)c.m * c.d), 1e-3);
        cr_expect_lt(test_rel_err(b.dY, a.dY, (size_t)c.m * c.C), 1e-3);
        free_result(&a);
        free_result(&b);
        free_data(&x);
    }
}

Test(ridge, duplicate_rows_with_zero_lambda_use_jitter_and_stay_finite) {
    cfg c = {4, 6, 2, 3, 0.0, 0, 0, 1.0, "dual"};
    data x = make_data(&c, 500);
    memcpy(x.phi + c.d, x.phi, sizeof(double) * c.d); /* row 1 = row 0: K is singular */
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(r.status, 0, "%s", r.error);
    for (int i = 0; i < c.n * c.C; i++) cr_assert(isfinite(r.Z[i]));
    for (int i = 0; i < c.m * c.d; i++) cr_assert(isfinite(r.dphi[i]));
    free_result(&r);
    free_data(&x);
}

Test(ridge, non_finite_features_are_an_error) {
    cfg c = {4, 6, 2, 3, 0.1, 1, 0, 1.0, "dual"};
    data x = make_data(&c, 600);
    x.phi[3] = NAN;
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "NaN") != NULL, "message: %s", r.error);
    free_result(&r);
    free_data(&x);
}

Test(ridge, bad_key_value_is_rejected) {
    const clpdd_plugin *p = test_plugin("ridge");
    cr_assert_not_null(p);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("solver", "lambda_mode = sometimes", p->keys, p->n_keys, &e);
    cr_assert_null(s);
    cr_assert(strstr(e.msg, "relative|absolute") != NULL, "message: %s", e.msg);
}

/* ⟨R, Z(λ)⟩ of the float64 reference, the scalar whose gradient the plugin reports for λ */
static double ref_inner(const cfg *c, const data *x, double lambda) {
    cfg k = *c;
    k.lambda = lambda;
    double *Z = malloc(sizeof(double) * c->n * c->C), s = 0;
    ref_ridge(Z, x->phi, x->Y, x->phib, &k);
    for (int i = 0; i < c->n * c->C; i++) s += Z[i] * x->R[i];
    free(Z);
    return s;
}

/* lambda = learn: ∂⟨R, Z⟩/∂log λ = λ_eff·dλ_eff against float64 central differences in log λ,
   dual and primal, relative and absolute, with and without the bias */
Test(ridge, learned_lambda_gradient_matches_float64_finite_differences) {
    g_learn = 1;
    const char *forms[] = {"dual", "primal"};
    for (int f = 0; f < 2; f++)
        for (int bias = 0; bias <= 1; bias++)
            for (int rel = 0; rel <= 1; rel++) {
                cfg c = f ? (cfg){9, 4, 3, 6, rel ? 0.05 : 0.5, rel, bias, 0.7, "primal"}
                          : (cfg){5, 8, 3, 7, rel ? 0.05 : 0.5, rel, bias, 1.5, "dual"};
                data x = make_data(&c, 700 + 100 * f + 10 * bias + rel);
                result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
                cr_assert_eq(r.status, 0, "%s", r.error);
                double h = 1e-5;
                double fd = (ref_inner(&c, &x, c.lambda * exp(h)) - ref_inner(&c, &x, c.lambda * exp(-h))) / (2 * h);
                /* fp32 solves against fp64 differences (truncation ~h²): the error is fp32's */
                cr_expect_lt(fabs(r.grad_log - fd), 2e-3 * fabs(fd) + 1e-6, "%s bias %d relative %d: plugin %g, fd %g",
                             forms[f], bias, rel, r.grad_log, fd);
                free_result(&r);
                free_data(&x);
            }
}

Test(ridge, fixed_lambda_reports_nothing_learned) {
    g_learn = 0;
    cfg c = {5, 8, 3, 7, 0.5, 0, 0, 1.0, "dual"};
    data x = make_data(&c, 900);
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(r.status, 0, "%s", r.error);
    cr_expect(isnan(r.grad_log));
    free_result(&r);
    free_data(&x);
}

/* a learned λ whose system needs jitter is an error naming the value: the jitter is not
   differentiated, so its gradient would be wrong */
Test(ridge, learned_lambda_that_needs_jitter_is_an_error) {
    g_learn = 1;
    cfg c = {4, 6, 2, 3, 1e-30, 0, 0, 1.0, "dual"};
    data x = make_data(&c, 910);
    memcpy(x.phi + c.d, x.phi, sizeof(double) * c.d); /* row 1 = row 0: K + λI is singular in fp32 */
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_expect(strstr(r.error, "learned lambda = 1e-30") != NULL, "message: %s", r.error);
    free_result(&r);
    free_data(&x);
    g_learn = 0;
}

/* learned labels (core/distill/labels.h): ∂L/∂ℓ through softmax, two DSA copies, ridge (dual and
   primal) and the cross-entropy against float64 central differences */
Test(ridge, label_logits_gradient_matches_float64_finite_differences) {
    const char *forms[] = {"dual", "primal"};
    for (int f = 0; f < 2; f++) {
        int m = f ? 5 : 3, k = 2; /* dual: k·m ≤ d; primal: k·m > d + 1 */
        cfg c = {k * m, f ? 4 : 8, 3, 7, 0.3, 1, 1, 1.5, forms[f]};
        char keys[512];
        snprintf(keys, sizeof keys, "lambda = %.17g; lambda_mode = relative; bias = true; bias_scale = %g; form = %s", c.lambda,
                 c.beta, c.form);
        double err = test_labels_fd_error("ridge", keys, 1, m, k, c.d, c.C, c.n, ref_fn, &c, 300 + f);
        /* fp32 solve and softmax against fp64 central differences (truncation ~h² = 1e-10) */
        cr_expect_lt(err, 1e-4, "d logits rel err %g (form %s)", err, c.form);
    }
}
