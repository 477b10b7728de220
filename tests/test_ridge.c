/* ridge solver: forward against a float64 transcription of DESIGN §5, backward (dΦ_s, dY_s)
 * against float64 central finite differences of that transcription, dual = primal (values and
 * gradients), the jitter fallback, and non-finite input errors.
 * Legend: m synthetic, d feature dim, C classes, n real batch. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "config.h"
#include "host.h"
#include "support.h"

#define chol test_chol
#define chol_solve test_chol_solve
#define to_f test_to_float /* shared helpers (support.h) */

typedef struct cfg {
    int m, d, C, n;
    double lambda;
    int relative, bias;
    double beta;
    const char *form;
} cfg;

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

typedef struct fdctx {
    const cfg *c;
    double *phi, *Y, *phib, *R;
    int wrt; /* 0: phi, 1: Y */
} fdctx;

static double objective(const double *v, void *p) {
    fdctx *f = p;
    int m = f->c->m, d = f->c->d, C = f->c->C, n = f->c->n;
    double *Z = malloc((size_t)n * C * sizeof *Z);
    ref_ridge(Z, f->wrt == 0 ? v : f->phi, f->wrt == 1 ? v : f->Y, f->phib, f->c);
    double s = 0;
    for (int i = 0; i < n * C; i++) s += f->R[i] * Z[i];
    free(Z);
    (void)m;
    (void)d;
    return s;
}

/* ---- running the plugin ---- */
/* the shared solver-test scaffolding (tests/support.h) under this file's short names */
typedef test_solver_data data;
typedef test_solver_result result;
#define make_data(c, seed) test_solver_data_make((c)->m, (c)->d, (c)->C, (c)->n, (seed))
#define free_data test_solver_data_free
#define free_result test_solver_result_free

static result run_plugin(const cfg *c, const double *phi, const double *Y, const double *phib, const double *R) {
    const clpdd_plugin *p = test_plugin("ridge");
    cr_assert_not_null(p);
    const clpdd_solver_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    char text[512];
    snprintf(text, sizeof text, "lambda = %g; lambda_mode = %s; bias = %s; bias_scale = %g; form = %s", c->lambda,
             c->relative ? "relative" : "absolute", c->bias ? "true" : "false", c->beta, c->form);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("solver", text, p->keys, p->n_keys, &e);
    cr_assert_not_null(s, "%s", e.msg);
    clpdd_solver_dims dims = {c->m, c->d, c->C, c->n};
    void *self;
    cr_assert_eq(vt->create(h, s, &dims, &self), 0, "%s", clpdd_host_error(h));
    int m = c->m, d = c->d, C = c->C, n = c->n;
    float *fphi = malloc(sizeof(float) * m * d), *fY = malloc(sizeof(float) * m * C);
    float *fb = malloc(sizeof(float) * n * d), *fR = malloc(sizeof(float) * n * C);
    to_f(fphi, phi, (size_t)m * d);
    to_f(fY, Y, (size_t)m * C);
    to_f(fb, phib, (size_t)n * d);
    to_f(fR, R, (size_t)n * C);
    result r = {malloc(sizeof(float) * n * C), malloc(sizeof(float) * m * d), malloc(sizeof(float) * m * C), 0, ""};
    for (int i = 0; i < m * d; i++) r.dphi[i] = NAN; /* poisoned: backward must write all */
    for (int i = 0; i < m * C; i++) r.dY[i] = NAN;
    r.status = vt->forward(self, r.Z, fphi, fY, fb, n);
    if (r.status == 0) r.status = vt->backward(self, r.dphi, r.dY, fR);
    snprintf(r.error, sizeof r.error, "%s", clpdd_host_error(h));
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
    free(fphi);
    free(fY);
    free(fb);
    free(fR);
    return r;
}

/* forward vs float64 and both gradients vs float64 finite differences */
static void check_against_reference(const cfg *c, uint64_t seed) {
    int m = c->m, d = c->d, C = c->C, n = c->n;
    data x = make_data(c, seed);
    result r = run_plugin(c, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(r.status, 0, "plugin failed: %s", r.error);
    double *Zref = malloc(sizeof(double) * n * C);
    ref_ridge(Zref, x.phi, x.Y, x.phib, c);
    /* fp32 Cholesky of a system with condition ~1e2–1e3: ~1e-5 relative */
    double ez = test_rel_err_fd(r.Z, Zref, (size_t)n * C);
    cr_expect_lt(ez, 1e-4, "forward rel err %g (form %s, bias %d, relative %d)", ez, c->form, c->bias, c->relative);
    fdctx f = {c, x.phi, x.Y, x.phib, x.R, 0};
    double *g = malloc(sizeof(double) * m * d);
    test_fd_grad(g, objective, x.phi, (size_t)m * d, 1e-6, &f);
    /* fp32 backward against fp64 central differences (truncation ~h² = 1e-12): the error is the
       fp32 arithmetic, ~1e-5 per solve; 2e-3 leaves room for ill-conditioned draws */
    double eg = test_rel_err_fd(r.dphi, g, (size_t)m * d);
    cr_expect_lt(eg, 2e-3, "dphi rel err %g (form %s, bias %d, relative %d)", eg, c->form, c->bias, c->relative);
    double *gy = malloc(sizeof(double) * m * C);
    f.wrt = 1;
    test_fd_grad(gy, objective, x.Y, (size_t)m * C, 1e-6, &f);
    double ey = test_rel_err_fd(r.dY, gy, (size_t)m * C);
    cr_expect_lt(ey, 2e-3, "dY rel err %g (form %s)", ey, c->form);
    free(g);
    free(gy);
    free(Zref);
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
