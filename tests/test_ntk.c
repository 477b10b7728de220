/* ntk solver: the kernel of an independent float64 transcription (whole kernel matrices, layer
 * by layer, as neural-tangents organises it; diagonal through the general formula with clamping)
 * and the plugin's own kernel values checked against a neural-tangents fixture, the plugin's
 * forward against that transcription, its
 * backward (dΦ_s, dY_s) against float64 central finite differences, the duplicate / identical /
 * antipodal-row cases (θ → 0 and θ → π), poisoned outputs, and error paths.
 * Legend: m synthetic, n real batch, d feature dim, C classes, N = m + n, L depth. */
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

#define chol test_chol
#define chol_solve test_chol_solve

typedef struct cfg {
    int m, d, C, n;
    int depth;
    double w_var, b_var, lambda;
    int relative;
} cfg;

/* lambda = learn:<lambda> (ABI 1.5) in run_plugin: the plugin then reports ∂L/∂log λ */
static int g_learn;

/* ---- float64 reference ---- */

/* Θ (N, N) over the rows of X (N, d): Σ⁰ = XXᵀ/d, then dense / ReLU on whole matrices */
static void ref_ntk_matrix(double *Th, const double *X, int N, int d, int depth, double w, double b) {
    size_t NN = (size_t)N * N;
    double *S = malloc(NN * sizeof *S), *S2 = malloc(NN * sizeof *S2);
    for (int p = 0; p < N; p++)
        for (int q = 0; q < N; q++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += X[p * d + k] * X[q * d + k];
            S[p * N + q] = w * s / d + b; /* first dense */
            Th[p * N + q] = S[p * N + q];
        }
    for (int l = 0; l < depth; l++) {
        for (int p = 0; p < N; p++)
            for (int q = 0; q < N; q++) {
                double nrm = sqrt(S[p * N + p] * S[q * N + q]);
                double cs = S[p * N + q] / nrm;
                cs = fmin(1.0, fmax(-1.0, cs));
                double th = acos(cs);
                double K = nrm * (sin(th) + (M_PI - th) * cos(th)) / (2 * M_PI);
                double Kd = (M_PI - th) / (2 * M_PI);
                S2[p * N + q] = w * K + b;
                Th[p * N + q] = S2[p * N + q] + w * Kd * Th[p * N + q];
            }
        memcpy(S, S2, NN * sizeof *S);
    }
    free(S);
    free(S2);
}

/* Z (n, C) = Θ_bs (Θ_ss + λ_eff I)⁻¹ Y */
static void ref_ntk(double *Z, const double *phi, const double *Y, const double *phib, const cfg *c) {
    int m = c->m, d = c->d, C = c->C, n = c->n, N = m + n;
    double *X = malloc(sizeof(double) * N * d), *Th = malloc(sizeof(double) * N * N);
    double *K = malloc(sizeof(double) * m * m), *A = malloc(sizeof(double) * m * C);
    memcpy(X, phi, sizeof(double) * m * d);
    memcpy(X + (size_t)m * d, phib, sizeof(double) * n * d);
    ref_ntk_matrix(Th, X, N, d, c->depth, c->w_var, c->b_var);
    double tr = 0;
    for (int i = 0; i < m; i++) tr += Th[i * N + i];
    double lam = c->relative ? c->lambda * tr / m : c->lambda;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) K[i * m + j] = Th[i * N + j] + (i == j ? lam : 0);
    cr_assert_eq(chol(K, m), 0, "reference Cholesky failed");
    memcpy(A, Y, sizeof(double) * m * C);
    chol_solve(K, m, A, C);
    for (int i = 0; i < n; i++)
        for (int cc = 0; cc < C; cc++) {
            double s = 0;
            for (int j = 0; j < m; j++) s += Th[(m + i) * N + j] * A[j * C + cc];
            Z[i * C + cc] = s;
        }
    free(X);
    free(Th);
    free(K);
    free(A);
}

static void ref_fn(double *Z, const double *phi, const double *Y, const double *phib, void *c) {
    ref_ntk(Z, phi, Y, phib, c);
}

/* ---- running the plugin (the shared solver harness, tests/support.h) ---- */
typedef test_solver_data data;
typedef test_solver_result result;
#define make_data(c, seed) test_solver_data_make((c)->m, (c)->d, (c)->C, (c)->n, (seed))
#define free_data test_solver_data_free
#define free_result test_solver_result_free

static result run_plugin(const cfg *c, const double *phi, const double *Y, const double *phib, const double *R) {
    char keys[512];
    snprintf(keys, sizeof keys, "depth = %d; w_var = %.17g; b_var = %.17g; lambda = %s%.17g; lambda_mode = %s", c->depth,
             c->w_var, c->b_var, g_learn ? "learn:" : "", c->lambda, c->relative ? "relative" : "absolute");
    return test_solver_run("ntk", keys, 1, c->m, c->d, c->C, c->n, phi, Y, phib, R, 1);
}

/* forward vs float64 and both gradients vs float64 central differences (step h in Φ, 1e-6 in Y) */
static void check_against_reference(const cfg *c, data *x, double h, double tol_z, double tol_g, const char *what) {
    result r = run_plugin(c, x->phi, x->Y, x->phib, x->R);
    cr_assert_eq(r.status, 0, "%s: plugin failed: %s", what, r.error);
    test_solver_errors er = test_solver_errors_of(&r, x, c->m, c->d, c->C, c->n, ref_fn, (void *)c, h, 1e-6);
    cr_expect_lt(er.z, tol_z, "%s: forward rel err %g (depth %d, relative %d)", what, er.z, c->depth, c->relative);
    cr_expect_lt(er.dphi, tol_g, "%s: dphi rel err %g (depth %d, relative %d)", what, er.dphi, c->depth, c->relative);
    cr_expect_lt(er.dY, tol_g, "%s: dY rel err %g (depth %d)", what, er.dY, c->depth);
    if (getenv("CLPDD_TEST_VERBOSE"))
        fprintf(stderr, "ntk %s depth %d rel %d: Z %.2e dphi %.2e dY %.2e\n", what, c->depth, c->relative, er.z,
                er.dphi, er.dY);
    free_result(&r);
}

/* ---- neural-tangents fixture (tests/fixtures/ntk_neural_tangents.txt), written once by:
 *   import numpy as np, jax, neural_tangents as nt; from neural_tangents import stax
 *   jax.config.update("jax_enable_x64", True)
 *   X = np.array([[2,0,0,0],[1,1,0,0],[-1,-1,0,0],[0.3,-1.2,0.7,0.5],[2,0,0,0]])
 *   for w, b, L in [(2,.01,0),(2,.01,1),(2,.01,2),(2,.01,3),(1.5,.2,1),(1.5,.2,2),(1.5,.2,3),(2,0,2),(2,.01,8)]:
 *       layers = [stax.Dense(512, W_std=np.sqrt(w), b_std=np.sqrt(b)), stax.Relu()] * L
 *       K = stax.serial(*layers, stax.Dense(1, W_std=np.sqrt(w), b_std=np.sqrt(b)))[2](X, X, 'ntk')
 *       # written as 'kernel w b L' and the rows of K in %.17g
 * (neural-tangents 0.6.5, jax 0.4.30.) Rows 0 and 4 are duplicates, row 2 is antipodal to row 1. */
#define FIX_N 5
#define FIX_D 4
#define FIX_MAX 16

typedef struct fixture {
    double X[FIX_N * FIX_D];
    int count;
    double w[FIX_MAX], b[FIX_MAX];
    int L[FIX_MAX];
    double K[FIX_MAX][FIX_N * FIX_N];
} fixture;

static void read_fixture(fixture *f) {
    const char *path = test_fixture("ntk_neural_tangents.txt");
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "cannot open %s", path);
    char line[4096];
    int N = 0, D = 0;
    f->count = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#') continue;
        if (sscanf(line, "X %d %d", &N, &D) == 2) {
            cr_assert(N == FIX_N && D == FIX_D, "%s: X is %d x %d, expected %d x %d (regenerate the fixture?)", path, N, D,
                      FIX_N, FIX_D);
            for (int i = 0; i < N * D; i++) cr_assert_eq(fscanf(fp, "%lf", &f->X[i]), 1, "%s: short X", path);
        } else if (strncmp(line, "kernel", 6) == 0) {
            int k = f->count++;
            cr_assert(k < FIX_MAX, "%s: more than %d kernels", path, FIX_MAX);
            cr_assert_eq(sscanf(line, "kernel %lf %lf %d", &f->w[k], &f->b[k], &f->L[k]), 3, "%s: bad line %s", path, line);
            for (int i = 0; i < FIX_N * FIX_N; i++) cr_assert_eq(fscanf(fp, "%lf", &f->K[k][i]), 1, "%s: short kernel", path);
        }
    }
    fclose(fp);
    cr_assert(N == FIX_N && f->count >= 8, "%s: no X or too few kernels (%d)", path, f->count);
}

/* the float64 transcription the gradient tests rely on = neural-tangents, to rounding */
Test(ntk, reference_matches_neural_tangents_fixture) {
    fixture f;
    read_fixture(&f);
    double Th[FIX_N * FIX_N];
    for (int k = 0; k < f.count; k++) {
        ref_ntk_matrix(Th, f.X, FIX_N, FIX_D, f.L[k], f.w[k], f.b[k]);
        for (int i = 0; i < FIX_N * FIX_N; i++)
            cr_expect(fabs(Th[i] - f.K[k][i]) <= 1e-12 * (1 + fabs(f.K[k][i])), "w %g b %g L %d entry %d: %.17g vs nt %.17g",
                      f.w[k], f.b[k], f.L[k], i, Th[i], f.K[k][i]);
    }
}

/* the plugin's own kernel values: with one synthetic point x_j, C = 1, Y = 1 and λ = 0 (absolute),
   Z_i = Θ(x_i, x_j)/Θ(x_j, x_j) for real rows x_i: the pair recursion, its snapped θ = 0 / π cases
   (rows 4 and 2) and the analytic diagonal (Z_j = 1) all against neural-tangents. fp32 Gram and
   solve: ~1e-6. */
Test(ntk, plugin_kernel_matches_neural_tangents_fixture) {
    fixture f;
    read_fixture(&f);
    for (int k = 0; k < f.count; k++)
        for (int j = 0; j < FIX_N; j += 1) {
            cfg c = {1, FIX_D, 1, FIX_N, f.L[k], f.w[k], f.b[k], 0.0, 0};
            double Y = 1, R[FIX_N] = {0};
            result r = run_plugin(&c, f.X + j * FIX_D, &Y, f.X, R);
            cr_assert_eq(r.status, 0, "%s", r.error);
            double jj = f.K[k][j * FIX_N + j];
            for (int i = 0; i < FIX_N; i++) {
                double want = f.K[k][i * FIX_N + j] / jj;
                cr_expect(fabs(r.Z[i] - want) < 2e-6 * (1 + fabs(want)), "w %g b %g L %d Theta(%d,%d)/Theta(%d,%d): %.9g vs nt %.9g",
                          f.w[k], f.b[k], f.L[k], i, j, j, j, r.Z[i], want);
            }
            free_result(&r);
        }
}

Test(ntk, matches_float64_and_finite_differences) {
    static const int depths[] = {0, 1, 3};
    for (int k = 0; k < 3; k++)
        for (int rel = 0; rel <= 1; rel++) {
            cfg c = {6, 5, 3, 7, depths[k], 2.0, 0.01, rel ? 0.05 : 0.3, rel};
            data x = make_data(&c, 100 + 10 * k + rel);
            /* fp32 Gram + Cholesky: ~1e-5; fp32 backward vs fp64 central differences (truncation
               ~h² = 1e-12): ~1e-5 per solve, 2e-3 leaves room for ill-conditioned draws */
            check_against_reference(&c, &x, 1e-6, 1e-4, 2e-3, "random");
            free_data(&x);
        }
}

Test(ntk, other_variances_and_shapes) {
    /* m > d (the Gram is rank-deficient, Θ is not), n = 1, non-default variances */
    cfg c = {9, 3, 4, 1, 2, 1.3, 0.4, 0.02, 1};
    data x = make_data(&c, 200);
    check_against_reference(&c, &x, 1e-6, 1e-4, 2e-3, "m>d");
    free_data(&x);
    cfg c2 = {4, 6, 2, 5, 2, 2.5, 0.0, 0.1, 1};
    data x2 = make_data(&c2, 201);
    check_against_reference(&c2, &x2, 1e-6, 1e-4, 2e-3, "b_var=0");
    free_data(&x2);
}

Test(ntk, duplicate_and_antipodal_rows_stay_finite_and_match_central_differences) {
    /* θ = 0 between φ_s0 and φ_s1 (duplicates), between φ_b0 and φ_s2 (a real row equal to a
       synthetic one), between φ_s4 and 3·φ_s0 (parallel); θ = π between φ_s3 and −φ_s0 with
       b_var = 0 (antipodal). The central difference across the cone of K̇ in θ is the symmetric
       subgradient the plugin takes; h = 1e-4 keeps the FD's θ (~h) well above the float64 noise
       of arccos near ±1 (~1e-8). */
    for (int depth = 1; depth <= 2; depth++)
        for (int bzero = 0; bzero <= 1; bzero++) {
            cfg c = {6, 5, 3, 4, depth, 2.0, bzero ? 0.0 : 0.01, 0.05, 1};
            data x = make_data(&c, 300 + depth);
            int d = c.d;
            for (int k = 0; k < d; k++) {
                x.phi[1 * d + k] = x.phi[k];
                x.phib[k] = x.phi[2 * d + k];
                x.phi[3 * d + k] = -x.phi[k];
                x.phi[4 * d + k] = 3 * x.phi[k];
            }
            check_against_reference(&c, &x, 1e-4, 1e-4, 2e-3, bzero ? "duplicates b_var=0" : "duplicates");
            free_data(&x);
        }
}

Test(ntk, identical_rows_everywhere_stay_finite) {
    /* every synthetic and real row the same: Θ_ss is rank one, λ keeps it definite */
    cfg c = {4, 5, 2, 3, 2, 2.0, 0.01, 0.1, 1};
    data x = make_data(&c, 400);
    for (int i = 1; i < c.m; i++) memcpy(x.phi + i * c.d, x.phi, sizeof(double) * c.d);
    for (int i = 0; i < c.n; i++) memcpy(x.phib + i * c.d, x.phi, sizeof(double) * c.d);
    check_against_reference(&c, &x, 1e-4, 1e-4, 2e-3, "identical");
    free_data(&x);
}

Test(ntk, zero_lambda_with_duplicates_uses_jitter_and_stays_finite) {
    cfg c = {4, 6, 2, 3, 1, 2.0, 0.01, 0.0, 0};
    data x = make_data(&c, 500);
    memcpy(x.phi + c.d, x.phi, sizeof(double) * c.d); /* Θ_ss singular */
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(r.status, 0, "%s", r.error);
    for (int i = 0; i < c.n * c.C; i++) cr_assert(isfinite(r.Z[i]));
    for (int i = 0; i < c.m * c.d; i++) cr_assert(isfinite(r.dphi[i]));
    for (int i = 0; i < c.m * c.C; i++) cr_assert(isfinite(r.dY[i]));
    free_result(&r);
    free_data(&x);
}

Test(ntk, non_finite_features_are_an_error) {
    cfg c = {4, 6, 2, 3, 1, 2.0, 0.01, 0.1, 1};
    data x = make_data(&c, 600);
    x.phi[3] = NAN;
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "ntk:") && strstr(r.error, "NaN"), "message: %s", r.error);
    free_result(&r);
    x.phi[3] = 0;
    x.phib[5] = INFINITY;
    r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "real-batch"), "message: %s", r.error);
    free_result(&r);
    free_data(&x);
}

Test(ntk, bad_key_values_are_rejected) {
    const clpdd_plugin *p = test_plugin("ntk");
    cr_assert_not_null(p);
    static const char *bad[][2] = {
        {"lambda_mode = sometimes", "relative|absolute"},
        {"depth = -1", "depth"},
        {"depth = 1000", "depth"},
        {"w_var = 0", "w_var"},
        {"b_var = -0.5", "b_var"},
        {"lambda = -1", "lambda"},
        {"width = 3", "width"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clpdd_err e;
        clpdd_section *s = clpdd_section_from_string("solver", bad[i][0], p->keys, p->n_keys, &e);
        cr_expect_null(s, "accepted '%s'", bad[i][0]);
        if (s) clpdd_section_destroy(s);
        else cr_expect(strstr(e.msg, bad[i][1]) != NULL, "'%s': message %s", bad[i][0], e.msg);
    }
}

Test(ntk, batch_larger_than_n_max_is_an_error) {
    const clpdd_plugin *p = test_plugin("ntk");
    const clpdd_solver_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(h, 1);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("solver", "", p->keys, p->n_keys, &e);
    cr_assert_not_null(s, "%s", e.msg);
    clpdd_solver_dims dims = {2, 3, 2, 2};
    void *self;
    cr_assert_eq(vt->create(h, s, &dims, &self), 0, "%s", clpdd_host_error(h));
    float phi[6] = {1, 0, 0, 0, 1, 0}, Y[4] = {1, 0, 0, 1}, phib[9] = {0}, Z[6];
    cr_assert_neq(vt->forward(self, Z, phi, Y, phib, 3), 0);
    cr_assert(strstr(clpdd_host_error(h), "n_max"), "%s", clpdd_host_error(h));
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

/* ---- the same plugin on the CUDA ops (skips without a GPU) ---- */
Test(ntk, cuda_matches_cpu) {
    const clpdd_ops *gpu = cuda_or_skip();
    int m = 40, d = 96, C = 10, n = 64;
    float *phi = malloc(m * d * sizeof(float)), *Y = calloc(m * C, sizeof(float)), *phib = malloc(n * d * sizeof(float));
    float *R = malloc(n * C * sizeof(float));
    test_fill_normal(phi, m * d, 1.0f, 700);
    test_fill_normal(phib, n * d, 1.0f, 701);
    test_fill_normal(R, n * C, 1.0f, 702);
    for (int i = 0; i < m; i++) Y[i * C + i % C] = 1;
    memcpy(phi + d, phi, d * sizeof(float));  /* a duplicate synthetic row */
    memcpy(phib, phi + 2 * d, d * sizeof(float)); /* a real row equal to a synthetic one */
    test_solver_inputs in = {phi, Y, phib, R, NULL};
    result r[2];
    for (int k = 0; k < 2; k++) {
        const clpdd_ops *ops = k ? gpu : clpdd_ops_cpu();
        r[k] = test_solver_run_on(ops, "ntk", "depth = 2; lambda = 0.05", 1, m, d, C, n, &in, 1, NULL);
        cr_assert_eq(r[k].status, 0, "%s: %s", ops->name, r[k].error);
    }
    float *Z[2] = {r[0].Z, r[1].Z}, *dphi[2] = {r[0].dphi, r[1].dphi}, *dY[2] = {r[0].dY, r[1].dY};
    /* fp32 on both, different summation orders: the Cholesky of a λ-regularised system ~1e-5 */
    double ez = test_rel_err(Z[1], Z[0], n * C), eg = test_rel_err(dphi[1], dphi[0], m * d),
           ey = test_rel_err(dY[1], dY[0], m * C);
    cr_expect_lt(ez, 1e-4, "Z rel err %g on %s", ez, gpu->name);
    cr_expect_lt(eg, 1e-3, "dphi rel err %g on %s", eg, gpu->name);
    cr_expect_lt(ey, 1e-3, "dY rel err %g on %s", ey, gpu->name);
    if (getenv("CLPDD_TEST_VERBOSE")) fprintf(stderr, "ntk cuda vs cpu: Z %.2e dphi %.2e dY %.2e\n", ez, eg, ey);
    for (int k = 0; k < 2; k++) free_result(&r[k]);
    free(phi);
    free(Y);
    free(phib);
    free(R);
}

static double ref_inner(const cfg *c, const data *x, double lambda) {
    cfg k = *c;
    k.lambda = lambda;
    double *Z = malloc(sizeof(double) * c->n * c->C), s = 0;
    ref_ntk(Z, x->phi, x->Y, x->phib, &k);
    for (int i = 0; i < c->n * c->C; i++) s += Z[i] * x->R[i];
    free(Z);
    return s;
}

/* lambda = learn: ∂⟨R, Z⟩/∂log λ against float64 central differences in log λ, both modes */
Test(ntk, learned_lambda_gradient_matches_float64_finite_differences) {
    g_learn = 1;
    for (int depth = 0; depth <= 2; depth += 2)
        for (int rel = 0; rel <= 1; rel++) {
            cfg c = {6, 5, 3, 7, depth, 2.0, 0.01, rel ? 0.05 : 0.3, rel};
            data x = make_data(&c, 800 + 10 * depth + rel);
            result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
            cr_assert_eq(r.status, 0, "%s", r.error);
            double h = 1e-5;
            double fd = (ref_inner(&c, &x, c.lambda * exp(h)) - ref_inner(&c, &x, c.lambda * exp(-h))) / (2 * h);
            cr_expect_lt(fabs(r.grad_log - fd), 2e-3 * fabs(fd) + 1e-6, "depth %d relative %d: plugin %g, fd %g", depth, rel,
                         r.grad_log, fd);
            free_result(&r);
            free_data(&x);
        }
    g_learn = 0;
}

/* learned labels (core/distill/labels.h): ∂L/∂ℓ through softmax, two DSA copies, the NTK and the
   cross-entropy against float64 central differences */
Test(ntk, label_logits_gradient_matches_float64_finite_differences) {
    int m = 3, k = 2;
    cfg c = {k * m, 5, 3, 7, 1, 2.0, 0.01, 0.05, 1};
    char keys[512];
    snprintf(keys, sizeof keys, "depth = %d; w_var = %.17g; b_var = %.17g; lambda = %.17g; lambda_mode = relative", c.depth,
             c.w_var, c.b_var, c.lambda);
    double err = test_labels_fd_error("ntk", keys, 1, m, k, c.d, c.C, c.n, ref_fn, &c, 400);
    cr_expect_lt(err, 1e-4, "d logits rel err %g", err);
}
