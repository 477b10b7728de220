#include "support.h"

#include <criterion/criterion.h>

#include "clpdd/plugin.h"
#include "loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t splitmix(test_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double test_uniform(test_rng *r) { return (double)(splitmix(r) >> 11) * (1.0 / 9007199254740992.0); }

double test_normal(test_rng *r) {
    double u1 = test_uniform(r), u2 = test_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    test_rng r = {seed};
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)test_uniform(&r);
}

void test_fill_normal(float *x, size_t n, float std, uint64_t seed) {
    test_rng r = {seed};
    for (size_t i = 0; i < n; i++) x[i] = std * (float)test_normal(&r);
}

void test_fill_normal_d(double *x, size_t n, double std, uint64_t seed) {
    test_rng r = {seed};
    for (size_t i = 0; i < n; i++) x[i] = std * test_normal(&r);
}

double test_rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) return INFINITY;
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double test_rel_err_fd(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double test_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

void test_fd_grad(double *g, test_scalar_fn f, double *x, size_t n, double h, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double fp = f(x, ctx);
        x[i] = x0 - h;
        double fm = f(x, ctx);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    }
}

const char *test_model_file(const char *file) {
    static char buf[8][4096];
    static int slot;
    const char *dirs = getenv("CLPDD_MODEL_PATH");
    if (!dirs || !*dirs) return NULL;
    char *copy = strdup(dirs), *save = NULL;
    const char *found = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *out = buf[slot];
        snprintf(out, sizeof buf[0], "%s/%s", d, file);
        if (access(out, R_OK) == 0) {
            slot = (slot + 1) % 8;
            found = out;
            break;
        }
    }
    free(copy);
    /* set but wrong is a broken setup, not a reason to skip: ctest runs each test in
       build/tests, so a relative CLPDD_MODEL_PATH from the repository root misses */
    if (!found)
        cr_assert_fail("CLPDD_MODEL_PATH=%s has no readable %s (a relative path is taken from the test's working "
                       "directory; give an absolute one, e.g. CLPDD_MODEL_PATH=$PWD/../shared/models)",
                       dirs, file);
    return found;
}

const char *test_fixture(const char *file) {
    static char buf[8][4096];
    static int slot;
    char *out = buf[slot];
    slot = (slot + 1) % 8;
    snprintf(out, sizeof buf[0], "%s/tests/fixtures/%s", CLPDD_SOURCE_DIR, file);
    return out;
}

const struct clpdd_plugin *test_plugin(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", CLPDD_PLUGIN_BUILD_DIR, name);
    clpdd_loaded p;
    clpdd_err e;
    if (clpdd_plugin_open(path, &p, &e)) {
        fprintf(stderr, "test_plugin: %s\n", e.msg);
        return NULL;
    }
    free(p.path); /* the handle stays open for the test's lifetime; only the descriptor is needed */
    return p.desc;
}

test_solver_data test_solver_data_make(int m, int d, int C, int n, uint64_t seed) {
    test_solver_data x;
    x.phi = malloc(sizeof(double) * m * d);
    x.Y = calloc((size_t)m * C, sizeof(double));
    x.phib = malloc(sizeof(double) * n * d);
    x.R = malloc(sizeof(double) * n * C);
    test_fill_normal_d(x.phi, (size_t)m * d, 1.0, seed);
    test_fill_normal_d(x.phib, (size_t)n * d, 1.0, seed + 1);
    test_fill_normal_d(x.R, (size_t)n * C, 1.0, seed + 2);
    for (int i = 0; i < m; i++) x.Y[i * C + i % C] = 1.0;
    for (int i = 0; i < m * d; i++) x.phi[i] = (float)x.phi[i];
    for (int i = 0; i < n * d; i++) x.phib[i] = (float)x.phib[i];
    for (int i = 0; i < n * C; i++) x.R[i] = (float)x.R[i];
    return x;
}

void test_solver_data_free(test_solver_data *x) {
    free(x->phi);
    free(x->Y);
    free(x->phib);
    free(x->R);
}

void test_solver_result_free(test_solver_result *r) {
    free(r->Z);
    free(r->dphi);
    free(r->dY);
}

int test_chol(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (s <= 0) return -1;
        A[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / A[j * n + j];
        }
    }
    return 0;
}

void test_chol_solve(const double *L, int n, double *B, int nrhs) {
    for (int r = 0; r < nrhs; r++) {
        for (int i = 0; i < n; i++) {
            double t = B[i * nrhs + r];
            for (int k = 0; k < i; k++) t -= L[i * n + k] * B[k * nrhs + r];
            B[i * nrhs + r] = t / L[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double t = B[i * nrhs + r];
            for (int k = i + 1; k < n; k++) t -= L[k * n + i] * B[k * nrhs + r];
            B[i * nrhs + r] = t / L[i * n + i];
        }
    }
}

void test_to_float(float *o, const double *i, size_t n) {
    for (size_t k = 0; k < n; k++) o[k] = (float)i[k];
}

const struct clpdd_ops *test_cuda_or_skip(void) {
    const char *why = NULL;
    const clpdd_ops *ops = clpdd_ops_cuda(&why);
    if (!ops) cr_skip_test("no GPU: %s", why ? why : "?");
    return ops;
}

float *test_dev_alloc(const struct clpdd_host *h, size_t count) {
    float *p = h->alloc(h, count * sizeof(float));
    cr_assert_not_null(p, "host->alloc(%zu floats) failed", count);
    return p;
}

float *test_dev_upload(const struct clpdd_host *h, const float *src, size_t count) {
    float *p = test_dev_alloc(h, count);
    h->ops->to_device(p, src, count * sizeof(float));
    return p;
}

void test_dev_download(const struct clpdd_host *h, float *dst, const float *src, size_t count) {
    h->ops->to_host(dst, src, count * sizeof(float));
}
