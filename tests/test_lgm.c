/* lgm solver: the objective against a float64 transcription of docs/design.md §5 (random head, CE
 * gradients of the real batch and the synthetic set, 1 − cos), its backward (dΦ_s, dY_s) against
 * float64 central finite differences of that transcription, the head stream (seed + call counter),
 * the vtable shape of an objective solver, poisoned outputs, and error paths.
 * Legend: m synthetic, n real batch, d feature dim, C classes, H heads. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "plugin/host.h"
#include "support.h"

#define cuda_or_skip test_cuda_or_skip /* shared helpers (support.h) */

#define to_f test_to_float /* shared helpers (support.h) */

#define LGM_SALT 0x6c676d5f68656164ULL /* as in plugins/solvers/lgm/lgm.c */
#define SEED 11

typedef struct cfg {
    int m, d, C, n;
    double head_std;
    int heads, bias;
} cfg;

/* head k of the plugin's `call`-th objective, as float64 */
static void draw_head(double *W, const cfg *c, int call, int k) {
    size_t dC = (size_t)c->d * c->C;
    float *w = malloc(dC * sizeof *w);
    clpdd_ops_cpu()->rand_normal(w, dC, 0.0f, (float)c->head_std, (uint64_t)SEED ^ LGM_SALT,
                                 ((uint64_t)call * c->heads + k) * dC);
    for (size_t i = 0; i < dC; i++) W[i] = w[i];
    free(w);
}

/* ---- float64 reference ---- */

/* g ((d+1)·C, bias last) = ∇_{W,b} mean CE(X W, T) for rows X (r, d) and target rows T (r, C) */
static void ref_head_grad(double *g, const double *X, const double *T, const double *W, int r, int d, int C) {
    memset(g, 0, sizeof(double) * (size_t)(d + 1) * C);
    for (int i = 0; i < r; i++) {
        double z[64], mx = -INFINITY, s = 0;
        for (int k = 0; k < C; k++) {
            z[k] = 0;
            for (int j = 0; j < d; j++) z[k] += X[i * d + j] * W[j * C + k];
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < C; k++) s += exp(z[k] - mx);
        for (int k = 0; k < C; k++) {
            double e = (exp(z[k] - mx) / s - T[i * C + k]) / r;
            for (int j = 0; j < d; j++) g[j * C + k] += X[i * d + j] * e;
            g[d * C + k] += e;
        }
    }
}

static double ref_lgm(const double *phi, const double *Y, const double *phib, const int *yb, const cfg *c, int call) {
    int m = c->m, d = c->d, C = c->C, n = c->n, len = (d + c->bias) * C;
    double *W = malloc(sizeof(double) * d * C), *T = calloc((size_t)n * C, sizeof(double));
    double *gr = malloc(sizeof(double) * (d + 1) * C), *gs = malloc(sizeof(double) * (d + 1) * C);
    for (int i = 0; i < n; i++) T[i * C + yb[i]] = 1;
    double L = 0;
    for (int k = 0; k < c->heads; k++) {
        draw_head(W, c, call, k);
        ref_head_grad(gr, phib, T, W, n, d, C);
        ref_head_grad(gs, phi, Y, W, m, d, C);
        double rr = 0, ss = 0, rs = 0;
        for (int i = 0; i < len; i++) rr += gr[i] * gr[i], ss += gs[i] * gs[i], rs += gr[i] * gs[i];
        L += 1 - rs / sqrt(rr * ss);
    }
    free(W);
    free(T);
    free(gr);
    free(gs);
    return L / c->heads;
}

typedef struct fdctx {
    const cfg *c;
    const double *phib;
    const int *yb;
    int call;
} fdctx;

static double objective(const double *phi, const double *Y, void *p) {
    fdctx *f = p;
    return ref_lgm(phi, Y, f->phib, f->yb, f->c, f->call);
}

/* ---- running the plugin ---- */
/* ---- running the plugin (the shared solver harness, tests/support.h) ---- */
typedef test_solver_result result;
#define free_result test_solver_result_free

static void keys_of(const cfg *c, char *text, size_t n) {
    snprintf(text, n, "head_std = %.17g; heads = %d; bias = %s", c->head_std, c->heads, c->bias ? "true" : "false");
}

static clpdd_section *section(const cfg *c) {
    char text[256];
    keys_of(c, text, sizeof text);
    return test_section(test_plugin("lgm"), "solver", text);
}

/* `calls` objective + backward rounds on one instance on `ops`, from float32 inputs; the last
   one's outputs (Ls[i] per call if not NULL) */
static result run_on(const clpdd_ops *ops, const cfg *c, const float *phi, const float *Y, const float *phib,
                     const int32_t *yb, int calls, float *Ls) {
    char keys[256];
    keys_of(c, keys, sizeof keys);
    test_solver_inputs in = {phi, Y, phib, NULL, yb};
    return test_solver_run_on(ops, "lgm", keys, SEED, c->m, c->d, c->C, c->n, &in, calls, Ls);
}

/* the same on the CPU from float64 inputs (rounded to float32, as the plugin sees them) */
static result run_plugin_calls(const cfg *c, const double *phi, const double *Y, const double *phib, const int *yb, int calls,
                               float *Ls) {
    int m = c->m, d = c->d, C = c->C, n = c->n;
    float *fphi = malloc(sizeof(float) * m * d), *fY = malloc(sizeof(float) * m * C), *fb = malloc(sizeof(float) * n * d);
    int32_t *y = malloc(sizeof(int32_t) * n);
    to_f(fphi, phi, (size_t)m * d);
    to_f(fY, Y, (size_t)m * C);
    to_f(fb, phib, (size_t)n * d);
    for (int i = 0; i < n; i++) y[i] = yb[i];
    result r = run_on(clpdd_ops_cpu(), c, fphi, fY, fb, y, calls, Ls);
    free(fphi);
    free(fY);
    free(fb);
    free(y);
    return r;
}

typedef struct data {
    double *phi, *Y, *phib;
    int *yb;
} data;

static data make_data(const cfg *c, uint64_t seed) {
    data x;
    int m = c->m, d = c->d, C = c->C, n = c->n;
    x.phi = malloc(sizeof(double) * m * d);
    x.Y = calloc((size_t)m * C, sizeof(double));
    x.phib = malloc(sizeof(double) * n * d);
    x.yb = malloc(sizeof(int) * n);
    test_fill_normal_d(x.phi, (size_t)m * d, 1.0, seed);
    test_fill_normal_d(x.phib, (size_t)n * d, 1.0, seed + 1);
    for (int i = 0; i < m; i++) x.Y[i * C + i % C] = 1.0;
    test_rng rng = {seed + 2};
    for (int i = 0; i < n; i++) x.yb[i] = (int)(test_uniform(&rng) * C);
    for (int i = 0; i < m * d; i++) x.phi[i] = (float)x.phi[i];
    for (int i = 0; i < n * d; i++) x.phib[i] = (float)x.phib[i];
    return x;
}

static void free_data(data *x) {
    free(x->phi);
    free(x->Y);
    free(x->phib);
    free(x->yb);
}

static void check_against_reference(const cfg *c, uint64_t seed, int calls, const char *what) {
    int m = c->m, d = c->d, C = c->C;
    data x = make_data(c, seed);
    result r = run_plugin_calls(c, x.phi, x.Y, x.phib, x.yb, calls, NULL);
    cr_assert_eq(r.status, 0, "%s: plugin failed: %s", what, r.error);
    double Lref = ref_lgm(x.phi, x.Y, x.phib, x.yb, c, calls - 1);
    /* L = 1 − cos ∈ [0, 2]: fp32 dots of O(1e-2) gradients, ~1e-6 absolute */
    double el = fabs(r.L - Lref);
    cr_expect_lt(el, 1e-5, "%s: L %.9g vs %.9g", what, r.L, Lref);
    fdctx f = {c, x.phib, x.yb, calls - 1};
    double *g = malloc(sizeof(double) * m * d), *gy = malloc(sizeof(double) * m * C);
    test_fd_grad_pair(g, gy, objective, x.phi, (size_t)m * d, x.Y, (size_t)m * C, 1e-6, 1e-6, &f);
    double eg = test_rel_err_fd(r.dphi, g, (size_t)m * d);
    /* fp32 vs fp64 central differences (truncation ~h² = 1e-12): ~1e-6 */
    cr_expect_lt(eg, 1e-4, "%s: dphi rel err %g", what, eg);
    double ey = test_rel_err_fd(r.dY, gy, (size_t)m * C);
    cr_expect_lt(ey, 1e-4, "%s: dY rel err %g", what, ey);
    if (getenv("CLPDD_TEST_VERBOSE"))
        fprintf(stderr, "lgm %s: L %.6f |dL| %.1e dphi %.2e dY %.2e\n", what, r.L, el, eg, ey);
    free(g);
    free(gy);
    free_result(&r);
    free_data(&x);
}

Test(lgm, matches_float64_and_finite_differences) {
    cfg c = {6, 5, 3, 8, 0.01, 1, 1};
    check_against_reference(&c, 100, 1, "default head");
    /* a larger head: the softmax is far from uniform, so the second-order terms matter */
    cfg c2 = {6, 5, 3, 8, 0.7, 1, 1};
    check_against_reference(&c2, 110, 1, "head_std 0.7");
    cfg c3 = {9, 4, 4, 5, 0.3, 3, 0};
    check_against_reference(&c3, 120, 1, "3 heads, no bias, m > d");
    cfg c4 = {4, 7, 2, 1, 0.5, 2, 1};
    check_against_reference(&c4, 130, 1, "n = 1");
}

Test(lgm, later_calls_draw_new_heads_from_the_counter) {
    /* the third call's heads are (2H + k)·d·C into the run seed's stream */
    cfg c = {6, 5, 3, 8, 0.5, 2, 1};
    check_against_reference(&c, 200, 3, "call 3");
    data x = make_data(&c, 210);
    float La[4], Lb[4];
    result a = run_plugin_calls(&c, x.phi, x.Y, x.phib, x.yb, 4, La);
    result b = run_plugin_calls(&c, x.phi, x.Y, x.phib, x.yb, 4, Lb);
    cr_assert_eq(a.status, 0, "%s", a.error);
    cr_assert_eq(b.status, 0, "%s", b.error);
    for (int i = 0; i < 4; i++) cr_expect_eq(La[i], Lb[i], "call %d not reproducible", i);
    cr_expect_neq(La[0], La[1], "the head did not change between calls");
    free_result(&a);
    free_result(&b);
    free_data(&x);
}

Test(lgm, soft_targets) {
    /* Y_s need not be one-hot: any probability rows */
    cfg c = {5, 4, 3, 6, 0.4, 1, 1};
    data x = make_data(&c, 300);
    for (int i = 0; i < c.m; i++) {
        double s = 0;
        for (int k = 0; k < c.C; k++) s += (x.Y[i * c.C + k] = 0.2 + (i + k) % 3);
        for (int k = 0; k < c.C; k++) x.Y[i * c.C + k] /= s;
    }
    int m = c.m, d = c.d, C = c.C;
    result r = run_plugin_calls(&c, x.phi, x.Y, x.phib, x.yb, 1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.error);
    cr_expect_lt(fabs(r.L - ref_lgm(x.phi, x.Y, x.phib, x.yb, &c, 0)), 1e-5);
    fdctx f = {&c, x.phib, x.yb, 0};
    double *g = malloc(sizeof(double) * m * d), *gy = malloc(sizeof(double) * m * C);
    test_fd_grad_pair(g, gy, objective, x.phi, (size_t)m * d, x.Y, (size_t)m * C, 1e-6, 1e-6, &f);
    cr_expect_lt(test_rel_err_fd(r.dphi, g, (size_t)m * d), 1e-4);
    cr_expect_lt(test_rel_err_fd(r.dY, gy, (size_t)m * C), 1e-4);
    free(g);
    free(gy);
    free_result(&r);
    free_data(&x);
}

Test(lgm, is_an_objective_solver) {
    const clpdd_plugin *p = test_plugin("lgm");
    cr_assert_not_null(p);
    cr_assert_eq(p->kind, CLPDD_KIND_SOLVER);
    const clpdd_solver_vt *vt = p->vtable;
    cr_expect_null(vt->forward, "an objective solver has no forward (the core then rejects a [loss] section)");
    cr_expect_not_null(vt->objective);
    cr_expect_not_null(vt->backward);
}

Test(lgm, backward_without_objective_is_an_error) {
    cfg c = {3, 2, 2, 2, 0.01, 1, 1};
    const clpdd_plugin *p = test_plugin("lgm");
    const clpdd_solver_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), SEED);
    clpdd_host_set_quiet(h, 1);
    clpdd_section *s = section(&c);
    clpdd_solver_dims dims = {c.m, c.d, c.C, c.n};
    void *self;
    cr_assert_eq(vt->create(h, s, &dims, &self), 0, "%s", clpdd_host_error(h));
    float dphi[6];
    cr_assert_neq(vt->backward(self, dphi, NULL, NULL), 0);
    cr_assert(strstr(clpdd_host_error(h), "lgm:"), "%s", clpdd_host_error(h));
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

Test(lgm, non_finite_features_are_an_error_not_nan) {
    cfg c = {5, 4, 3, 6, 0.01, 1, 1};
    data x = make_data(&c, 400);
    x.phi[3] = NAN;
    result r = run_plugin_calls(&c, x.phi, x.Y, x.phib, x.yb, 1, NULL);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "lgm:") && strstr(r.error, "not finite"), "message: %s", r.error);
    free_result(&r);
    x.phi[3] = 0;
    x.phib[0] = INFINITY;
    r = run_plugin_calls(&c, x.phi, x.Y, x.phib, x.yb, 1, NULL);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "not finite"), "message: %s", r.error);
    free_result(&r);
    free_data(&x);
}

Test(lgm, bad_key_values_are_rejected) {
    const clpdd_plugin *p = test_plugin("lgm");
    cr_assert_not_null(p);
    static const char *bad[][2] = {
        {"head_std = -0.01", "head_std"},
        {"head_std = lots", "head_std"},
        {"heads = 0", "heads"},
        {"bias = perhaps", "bias"},
        {"temperature = 2", "temperature"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clpdd_err e;
        clpdd_section *s = clpdd_section_from_string("solver", bad[i][0], p->keys, p->n_keys, &e);
        cr_expect_null(s, "accepted '%s'", bad[i][0]);
        if (s) clpdd_section_destroy(s);
        else cr_expect(strstr(e.msg, bad[i][1]) != NULL, "'%s': message %s", bad[i][0], e.msg);
    }
}

/* ---- the same plugin on the CUDA ops (skips without a GPU) ---- */
Test(lgm, cuda_matches_cpu) {
    const clpdd_ops *gpu = cuda_or_skip();
    /* the heads from the same Philox stream on both devices */
    cfg c = {40, 96, 10, 64, 0.01, 2, 1};
    int m = 40, d = 96, C = 10, n = 64;
    float *phi = malloc(m * d * sizeof(float)), *Y = calloc(m * C, sizeof(float)), *phib = malloc(n * d * sizeof(float));
    int32_t *yb = malloc(n * sizeof(int32_t));
    test_fill_normal(phi, m * d, 1.0f, 700);
    test_fill_normal(phib, n * d, 1.0f, 701);
    for (int i = 0; i < m; i++) Y[i * C + i % C] = 1;
    for (int i = 0; i < n; i++) yb[i] = (int32_t)((i * 7) % C);
    result r[2];
    for (int k = 0; k < 2; k++) {
        const clpdd_ops *ops = k ? gpu : clpdd_ops_cpu();
        r[k] = run_on(ops, &c, phi, Y, phib, yb, 1, NULL);
        cr_assert_eq(r[k].status, 0, "%s: %s", ops->name, r[k].error);
    }
    float L[2] = {r[0].L, r[1].L}, *dphi[2] = {r[0].dphi, r[1].dphi}, *dY[2] = {r[0].dY, r[1].dY};
    double eg = test_rel_err(dphi[1], dphi[0], m * d), ey = test_rel_err(dY[1], dY[0], m * C);
    cr_expect_lt(fabs(L[1] - L[0]), 1e-5, "L %.9g vs cpu %.9g on %s", L[1], L[0], gpu->name);
    cr_expect_lt(eg, 1e-4, "dphi rel err %g on %s", eg, gpu->name);
    cr_expect_lt(ey, 1e-4, "dY rel err %g on %s", ey, gpu->name);
    if (getenv("CLPDD_TEST_VERBOSE"))
        fprintf(stderr, "lgm cuda vs cpu: |dL| %.2e dphi %.2e dY %.2e\n", fabs(L[1] - L[0]), eg, ey);
    for (int k = 0; k < 2; k++) free_result(&r[k]);
    free(phi);
    free(Y);
    free(phib);
    free(yb);
}
