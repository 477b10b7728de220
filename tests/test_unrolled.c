/* unrolled solver: forward against a float64 transcription of docs/design.md §5 (T steps of full-batch
 * GD on a linear probe), backward (dΦ_s, dY_s) against float64 central finite differences of that
 * transcription, checkpointed == stored, the seeded initialisation (fixed and resampled),
 * poisoned outputs, and error paths.
 * Legend: m synthetic, n real batch, d feature dim, C classes, T steps. */
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

#define UNROLLED_SALT 0x756e726f6c6c6564ULL /* as in plugins/solvers/unrolled/unrolled.c */
#define SEED 7

typedef struct cfg {
    int m, d, C, n;
    int steps;
    double lr, wd;
    int normal; /* init = normal */
    double init_std;
    int every, resample;
} cfg;

/* W₀ (d, C) the plugin draws at its `call`-th forward (float64 copy of the fp32 stream) */
static void draw_w0(double *W0, const cfg *c, int call) {
    size_t dC = (size_t)c->d * c->C;
    if (!c->normal) {
        memset(W0, 0, dC * sizeof *W0);
        return;
    }
    float *w = malloc(dC * sizeof *w);
    clpdd_ops_cpu()->rand_normal(w, dC, 0.0f, (float)c->init_std, (uint64_t)SEED ^ UNROLLED_SALT,
                                 c->resample ? (uint64_t)call * dC : 0);
    for (size_t i = 0; i < dC; i++) W0[i] = w[i];
    free(w);
}

/* ---- float64 reference ---- */
static void ref_unrolled(double *Z, const double *phi, const double *Y, const double *phib, const double *W0, const cfg *c) {
    int m = c->m, d = c->d, C = c->C, n = c->n;
    double *W = malloc(sizeof(double) * d * C), *b = calloc((size_t)C, sizeof(double));
    double *R = malloc(sizeof(double) * m * C), *gW = malloc(sizeof(double) * d * C);
    memcpy(W, W0, sizeof(double) * d * C);
    for (int t = 0; t < c->steps; t++) {
        for (int i = 0; i < m; i++) {
            double z[64], mx = -INFINITY, s = 0;
            for (int k = 0; k < C; k++) {
                z[k] = b[k];
                for (int j = 0; j < d; j++) z[k] += phi[i * d + j] * W[j * C + k];
                mx = fmax(mx, z[k]);
            }
            for (int k = 0; k < C; k++) s += exp(z[k] - mx);
            for (int k = 0; k < C; k++) R[i * C + k] = (exp(z[k] - mx) / s - Y[i * C + k]) / m;
        }
        for (int j = 0; j < d; j++)
            for (int k = 0; k < C; k++) {
                double g = c->wd * W[j * C + k];
                for (int i = 0; i < m; i++) g += phi[i * d + j] * R[i * C + k];
                gW[j * C + k] = g;
            }
        for (int k = 0; k < C; k++) {
            double g = 0;
            for (int i = 0; i < m; i++) g += R[i * C + k];
            b[k] -= c->lr * g;
        }
        for (int i = 0; i < d * C; i++) W[i] -= c->lr * gW[i];
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < C; k++) {
            double z = b[k];
            for (int j = 0; j < d; j++) z += phib[i * d + j] * W[j * C + k];
            Z[i * C + k] = z;
        }
    free(W);
    free(b);
    free(R);
    free(gW);
}

typedef struct ref_ctx {
    const cfg *c;
    const double *W0;
} ref_ctx;

static void ref_fn(double *Z, const double *phi, const double *Y, const double *phib, void *p) {
    ref_ctx *r = p;
    ref_unrolled(Z, phi, Y, phib, r->W0, r->c);
}

/* ---- running the plugin (the shared solver harness, tests/support.h) ---- */
typedef test_solver_data data;
typedef test_solver_result result;
#define make_data(c, seed) test_solver_data_make((c)->m, (c)->d, (c)->C, (c)->n, (seed))
#define free_data test_solver_data_free
#define free_result test_solver_result_free

static void keys_of(const cfg *c, char *text, size_t n) {
    snprintf(text, n,
             "steps = %d; lr = %.17g; weight_decay = %.17g; init = %s; init_std = %.17g; checkpoint_every = %d; resample = %s",
             c->steps, c->lr, c->wd, c->normal ? "normal" : "zero", c->init_std, c->every, c->resample ? "true" : "false");
}

static clpdd_section *section(const cfg *c) {
    char text[512];
    keys_of(c, text, sizeof text);
    return test_section(test_plugin("unrolled"), "solver", text);
}

/* `calls` forwards (each with its backward) on one plugin instance; the last one's outputs */
static result run_plugin_calls(const cfg *c, const double *phi, const double *Y, const double *phib, const double *R,
                               int calls) {
    char text[512];
    keys_of(c, text, sizeof text);
    return test_solver_run("unrolled", text, SEED, c->m, c->d, c->C, c->n, phi, Y, phib, R, calls);
}

static result run_plugin(const cfg *c, const double *phi, const double *Y, const double *phib, const double *R) {
    return run_plugin_calls(c, phi, Y, phib, R, 1);
}

/* forward vs float64 and both gradients vs float64 central differences; the plugin's `calls`-th
   forward (its W₀ differs per call with resample) */
static void check_against_reference(const cfg *c, uint64_t seed, int calls, const char *what) {
    data x = make_data(c, seed);
    result r = run_plugin_calls(c, x.phi, x.Y, x.phib, x.R, calls);
    cr_assert_eq(r.status, 0, "%s: plugin failed: %s", what, r.error);
    double *W0 = malloc(sizeof(double) * c->d * c->C);
    draw_w0(W0, c, calls - 1);
    ref_ctx rc = {c, W0};
    test_solver_errors er = test_solver_errors_of(&r, &x, c->m, c->d, c->C, c->n, ref_fn, &rc, 1e-6, 1e-6);
    /* fp32 GD over T ≤ 20 contracting steps: rounding ~1e-7 per step */
    cr_expect_lt(er.z, 1e-5, "%s: forward rel err %g", what, er.z);
    /* fp32 reverse mode vs fp64 central differences (truncation ~h² = 1e-12): ~1e-6 */
    cr_expect_lt(er.dphi, 1e-4, "%s: dphi rel err %g", what, er.dphi);
    cr_expect_lt(er.dY, 1e-4, "%s: dY rel err %g", what, er.dY);
    if (getenv("CLPDD_TEST_VERBOSE"))
        fprintf(stderr, "unrolled %s: Z %.2e dphi %.2e dY %.2e\n", what, er.z, er.dphi, er.dY);
    free(W0);
    free_result(&r);
    free_data(&x);
}

Test(unrolled, matches_float64_and_finite_differences) {
    cfg c = {6, 5, 3, 4, 8, 0.5, 0.0, 0, 0.01, 0, 0};
    check_against_reference(&c, 100, 1, "zero init");
    cfg c2 = {6, 5, 3, 4, 12, 0.4, 0.1, 1, 0.3, 0, 0};
    check_against_reference(&c2, 110, 1, "normal init + weight decay");
    cfg c3 = {9, 4, 4, 5, 20, 0.3, 0.05, 1, 0.2, 7, 0};
    check_against_reference(&c3, 120, 1, "m > d, checkpoints every 7");
    cfg c4 = {5, 6, 2, 3, 1, 1.0, 0.0, 0, 0.01, 0, 0};
    check_against_reference(&c4, 130, 1, "one step");
}

Test(unrolled, resampled_init_matches_the_call_counter) {
    /* third forward on one instance: W₀ from offset 2·d·C of the run seed's stream */
    cfg c = {6, 5, 3, 4, 6, 0.5, 0.0, 1, 0.5, 0, 1};
    check_against_reference(&c, 200, 3, "resample, call 3");
    cfg f = c;
    f.resample = 0;
    check_against_reference(&f, 200, 3, "fixed, call 3");
}

Test(unrolled, checkpointed_equals_stored) {
    cfg base = {7, 5, 3, 4, 10, 0.4, 0.05, 1, 0.2, 0, 0};
    data x = make_data(&base, 300);
    result ref = run_plugin(&base, x.phi, x.Y, x.phib, x.R);
    cr_assert_eq(ref.status, 0, "%s", ref.error);
    static const int every[] = {1, 2, 3, 4, 9, 10, 25};
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++) {
        cfg c = base;
        c.every = every[i];
        result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
        cr_assert_eq(r.status, 0, "%s", r.error);
        /* the same ops on the same inputs: identical on one device */
        cr_expect_eq(test_max_abs_diff(r.Z, ref.Z, (size_t)c.n * c.C), 0.0, "every %d: Z differs", c.every);
        cr_expect_eq(test_max_abs_diff(r.dphi, ref.dphi, (size_t)c.m * c.d), 0.0, "every %d: dphi differs by %g", c.every,
                     test_max_abs_diff(r.dphi, ref.dphi, (size_t)c.m * c.d));
        cr_expect_eq(test_max_abs_diff(r.dY, ref.dY, (size_t)c.m * c.C), 0.0, "every %d: dY differs", c.every);
        free_result(&r);
    }
    free_result(&ref);
    free_data(&x);
}

Test(unrolled, backward_may_skip_dY) {
    cfg c = {5, 4, 3, 3, 5, 0.5, 0.0, 0, 0.01, 2, 0};
    data x = make_data(&c, 400);
    const clpdd_plugin *p = test_plugin("unrolled");
    const clpdd_solver_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), SEED);
    clpdd_host_set_quiet(h, 1);
    clpdd_section *s = section(&c);
    clpdd_solver_dims dims = {c.m, c.d, c.C, c.n};
    void *self;
    cr_assert_eq(vt->create(h, s, &dims, &self), 0, "%s", clpdd_host_error(h));
    float phi[20], Y[15], phib[12], R[9], Z[9], dphi[20];
    to_f(phi, x.phi, 20);
    to_f(Y, x.Y, 15);
    to_f(phib, x.phib, 12);
    to_f(R, x.R, 9);
    cr_assert_eq(vt->forward(self, Z, phi, Y, phib, c.n), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->backward(self, dphi, NULL, R), 0, "%s", clpdd_host_error(h));
    result full = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_expect_eq(test_max_abs_diff(dphi, full.dphi, 20), 0.0);
    free_result(&full);
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
    free_data(&x);
}

Test(unrolled, divergent_lr_is_an_error_not_nan) {
    /* (1 − ηω) = −999 999 per step: |W| overflows fp32 within ~7 steps */
    cfg c = {6, 5, 3, 4, 10, 1e3, 1e3, 1, 1.0, 0, 0};
    data x = make_data(&c, 500);
    result r = run_plugin(&c, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "unrolled:") && strstr(r.error, "not finite"), "message: %s", r.error);
    free_result(&r);
    x.phi[2] = NAN;
    cfg ok = {6, 5, 3, 4, 3, 0.1, 0.0, 0, 0.01, 0, 0};
    r = run_plugin(&ok, x.phi, x.Y, x.phib, x.R);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.error, "not finite"), "message: %s", r.error);
    free_result(&r);
    free_data(&x);
}

Test(unrolled, bad_key_values_are_rejected) {
    const clpdd_plugin *p = test_plugin("unrolled");
    cr_assert_not_null(p);
    static const char *bad[][2] = {
        {"steps = 0", "steps"},
        {"steps = ten", "steps"},
        {"lr = -0.1", "lr"},
        {"weight_decay = -1", "weight_decay"},
        {"init = xavier", "zero|normal"},
        {"init_std = -1", "init_std"},
        {"checkpoint_every = -2", "checkpoint_every"},
        {"resample = maybe", "resample"},
        {"momentum = 0.9", "momentum"},
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
Test(unrolled, cuda_matches_cpu) {
    const clpdd_ops *gpu = cuda_or_skip();
    /* W₀ from the same Philox stream on both devices */
    cfg c = {40, 96, 10, 64, 30, 0.2, 0.01, 1, 0.05, 4, 0};
    int m = 40, d = 96, C = 10, n = 64;
    float *phi = malloc(m * d * sizeof(float)), *Y = calloc(m * C, sizeof(float)), *phib = malloc(n * d * sizeof(float));
    float *R = malloc(n * C * sizeof(float));
    test_fill_normal(phi, m * d, 1.0f, 700);
    test_fill_normal(phib, n * d, 1.0f, 701);
    test_fill_normal(R, n * C, 1.0f, 702);
    for (int i = 0; i < m; i++) Y[i * C + i % C] = 1;
    char keys[512];
    keys_of(&c, keys, sizeof keys);
    test_solver_inputs in = {phi, Y, phib, R, NULL};
    result r[2];
    for (int k = 0; k < 2; k++) {
        const clpdd_ops *ops = k ? gpu : clpdd_ops_cpu();
        r[k] = test_solver_run_on(ops, "unrolled", keys, SEED, m, d, C, n, &in, 1, NULL);
        cr_assert_eq(r[k].status, 0, "%s: %s", ops->name, r[k].error);
    }
    float *Z[2] = {r[0].Z, r[1].Z}, *dphi[2] = {r[0].dphi, r[1].dphi}, *dY[2] = {r[0].dY, r[1].dY};
    /* fp32 on both, different summation orders over 30 contracting steps: ~1e-6 */
    double ez = test_rel_err(Z[1], Z[0], n * C), eg = test_rel_err(dphi[1], dphi[0], m * d),
           ey = test_rel_err(dY[1], dY[0], m * C);
    cr_expect_lt(ez, 1e-4, "Z rel err %g on %s", ez, gpu->name);
    cr_expect_lt(eg, 1e-4, "dphi rel err %g on %s", eg, gpu->name);
    cr_expect_lt(ey, 1e-4, "dY rel err %g on %s", ey, gpu->name);
    if (getenv("CLPDD_TEST_VERBOSE")) fprintf(stderr, "unrolled cuda vs cpu: Z %.2e dphi %.2e dY %.2e\n", ez, eg, ey);
    for (int k = 0; k < 2; k++) free_result(&r[k]);
    free(phi);
    free(Y);
    free(phib);
    free(R);
}

/* learned labels (core/distill/labels.h): ∂L/∂ℓ through softmax, two DSA copies, the unrolled
   solver (zero init) and the cross-entropy against float64 central differences */
Test(unrolled, label_logits_gradient_matches_float64_finite_differences) {
    int m = 3, k = 2;
    cfg c = {k * m, 5, 3, 4, 8, 0.5, 0.0, 0, 0.01, 0, 0};
    char keys[512];
    keys_of(&c, keys, sizeof keys);
    double *W0 = malloc(sizeof(double) * c.d * c.C);
    draw_w0(W0, &c, 0);
    ref_ctx rc = {&c, W0};
    double err = test_labels_fd_error("unrolled", keys, SEED, m, k, c.d, c.C, c.n, ref_fn, &rc, 500);
    cr_expect_lt(err, 1e-4, "d logits rel err %g", err);
    free(W0);
}
