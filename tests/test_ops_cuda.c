/* CUDA backend (core/cuda) against the CPU reference (core/cpu), op by op (docs/design.md §4).
 *
 * For every op in clpdd_ops: random host inputs (sizes deliberately not multiples of the
 * 32-thread warp or of the 256-thread block), the CPU op on host copies, the CUDA op on
 * device copies, then ‖gpu − cpu‖₂ / ‖cpu‖₂ ≤ a per-op threshold. Every device buffer sits
 * between two guard zones of sentinel floats, checked when the test ends (catches
 * overruns), and every "=" output is poisoned with NaN (ops->fill) before the call, so an
 * element left unwritten makes the error +Inf (test_rel_err returns +Inf on NaN).
 * Integer outputs (argmax) are compared exactly.
 *
 * Thresholds (float32 unit roundoff u ≈ 6e-8). The two backends do the same maths in a
 * different order (tree reductions vs sequential, cuBLAS vs OpenBLAS blocking, FMA
 * contraction on the GPU vs none on the x86-64 baseline, CUDA vs glibc libm):
 *   TOL_EXACT 0      data movement (copies, gather, patchify, im2col, one-hot, maxpool): the
 *                    same floats are moved, so bit-exact.
 *   TOL_ELEM  1e-6   one or two roundings per element; an FMA differs by ≤ 1 ulp.
 *   TOL_TRANS 1e-5   transcendental ops (exp, erf, tanh, log, cos): CUDA's and glibc's float
 *                    functions differ by a few ulp, and σ/GELU/Box–Muller chain two or three.
 *   TOL_RED   1e-5   fp32 reductions (GEMM, column sums, row sums) of ≤ a few hundred terms in a
 *                    different order: ≈ √K·u ≈ 1e-6 typical, 10× headroom.
 *   TOL_GRAD  3e-5   backward passes and composites (attention, Cholesky solves, layernorm
 *                    backward): chains of 2–4 reductions plus cancellation in
 *                    (dy − Σ dy⊙y) or (g − mean g − x̂·mean(g x̂)).
 * Any real bug (a wrong index, a missing term, a wrong transpose) gives errors ≥ 1e-3.
 *
 * No GPU: every test skips with the reason clpdd_ops_cuda() gives, so CI without a GPU
 * passes. CLPDD_TEST_OPS_SELF=1 runs the whole file with the CPU table standing in for the
 * device (all errors must then be 0): a check of this harness on a machine without a GPU.
 *
 * Only the op table is used (ops->malloc/to_device/to_host), so this file is plain C.
 * Dimension legend: n batch, C channels, H/W height/width (OH/OW output), T tokens, Hh heads,
 * hd head dim, D = Hh·hd, M/N/K GEMM sizes, rows/cols of a matrix. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "support.h"

#define TOL_EXACT 0.0
#define TOL_ELEM 1e-6
#define TOL_TRANS 1e-5
#define TOL_RED 1e-5
#define TOL_GRAD 3e-5

#include "cuda_harness.h"

/* ---- host helpers ---- */
static float *fa(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *frand(size_t n, float std, uint64_t seed) { float *x = fa(n); test_fill_normal(x, n, std, seed); return x; }
static float *funi(size_t n, float lo, float hi, uint64_t seed) { float *x = fa(n); test_fill_uniform(x, n, lo, hi, seed); return x; }
static float *fcopy(const float *x, size_t n) { float *y = fa(n); memcpy(y, x, n * sizeof(float)); return y; }
static float *fnan(size_t n) { float *x = fa(n); for (size_t i = 0; i < n; i++) x[i] = NAN; return x; }
static int32_t *labels_rand(size_t n, int cols, uint64_t seed) {
    int32_t *l = calloc(n ? n : 1, sizeof(int32_t));
    test_rng r = {seed};
    for (size_t i = 0; i < n; i++) l[i] = (int32_t)(test_uniform(&r) * cols) % cols;
    return l;
}

/* device result vs CPU result: normalised error ≤ tol */
static void expect_close_(const char *what, const float *d, const float *ref, size_t n, double tol, int line) {
    float *h = fa(n);
    dev->to_host(h, d, n * sizeof(float));
    double e = test_rel_err(h, ref, n);
    cr_expect(e <= tol, "%s (line %d): normalised error %.3g > %.3g (n = %zu)", what, line, e, tol, n);
    free(h);
}
#define EXPECT_CLOSE(what, d, ref, n, tol) expect_close_((what), (d), (ref), (n), (tol), __LINE__)

static void expect_equal_i_(const char *what, const int32_t *d, const int32_t *ref, size_t n, int line) {
    int32_t *h = calloc(n ? n : 1, sizeof(int32_t));
    dev->to_host(h, d, n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++)
        if (h[i] != ref[i]) {
            cr_expect(0, "%s (line %d): element %zu is %d, cpu %d", what, line, i, (int)h[i], (int)ref[i]);
            break;
        }
    free(h);
}
#define EXPECT_EQUAL_I(what, d, ref, n) expect_equal_i_((what), (d), (ref), (n), __LINE__)

TestSuite(ops_cuda);

/* ------------------------------------------------------------------------------------ */

Test(ops_cuda, identity_and_memory) {
    NEED_GPU();
    if (dev != cpu) {
        cr_expect(dev->is_device == 1, "is_device = %d", dev->is_device);
        cr_expect(strncmp(dev->name, "cuda:", 5) == 0 && strlen(dev->name) > 5, "name '%s'", dev->name);
    }
    size_t n = 100003;
    float *x = frand(n, 1.0f, 1);
    float *a = dev->malloc(n * sizeof(float)), *b = dev->malloc(n * sizeof(float));
    cr_assert(a && b);
    cr_expect(dev->peak_bytes() >= 2 * n * sizeof(float), "peak_bytes %zu < the %zu bytes in use",
              dev->peak_bytes(), 2 * n * sizeof(float));
    dev->to_device(a, x, n * sizeof(float));
    dev->copy(b, a, n * sizeof(float));
    dev->synchronize();
    EXPECT_CLOSE("to_device/copy/to_host", b, x, n, TOL_EXACT);
    dev->free(a);
    dev->free(b);
    dev->free(NULL);
    /* zero-sized transfers and ops with no elements are no-ops */
    dev->to_device(NULL, NULL, 0);
    dev->to_host(NULL, NULL, 0);
    dev->copy(NULL, NULL, 0);
    dev->fill(NULL, 1.0f, 0);
    dev->synchronize();
    free(x);
    done();
}

Test(ops_cuda, elementwise) {
    NEED_GPU();
    const size_t sizes[] = {1, 31, 100003};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si];
        float *x = frand(n, 2.0f, 10 + si), *y = frand(n, 1.0f, 20 + si);
        float *dx = dput(x, n), *dy = dput(y, n);
        float *r = fa(n), *d;

        d = dpoison(n); /* fill */
        cpu->fill(r, -0.75f, n);
        dev->fill(d, -0.75f, n);
        EXPECT_CLOSE("fill", d, r, n, TOL_EXACT);

        memcpy(r, x, n * sizeof(float)); /* scale */
        cpu->scale(r, 1.7f, n);
        d = dput(x, n);
        dev->scale(d, 1.7f, n);
        EXPECT_CLOSE("scale", d, r, n, TOL_EXACT);

        memcpy(r, y, n * sizeof(float)); /* axpy */
        cpu->axpy(r, -0.3f, x, n);
        d = dput(y, n);
        dev->axpy(d, -0.3f, dx, n);
        EXPECT_CLOSE("axpy", d, r, n, TOL_ELEM);

        cpu->axpby(r, 0.6f, x, -1.3f, y, n); /* axpby, out separate and out = x */
        d = dpoison(n);
        dev->axpby(d, 0.6f, dx, -1.3f, dy, n);
        EXPECT_CLOSE("axpby", d, r, n, TOL_ELEM);
        d = dput(x, n);
        dev->axpby(d, 0.6f, d, -1.3f, dy, n);
        EXPECT_CLOSE("axpby out = x", d, r, n, TOL_ELEM);

        cpu->mul(r, x, y, n); /* mul */
        d = dpoison(n);
        dev->mul(d, dx, dy, n);
        EXPECT_CLOSE("mul", d, r, n, TOL_EXACT);

        memcpy(r, x, n * sizeof(float)); /* clamp */
        cpu->clamp(r, -1.1f, 0.9f, n);
        d = dput(x, n);
        dev->clamp(d, -1.1f, 0.9f, n);
        EXPECT_CLOSE("clamp", d, r, n, TOL_EXACT);

        cpu->sigmoid(r, x, n); /* sigmoid */
        d = dpoison(n);
        dev->sigmoid(d, dx, n);
        EXPECT_CLOSE("sigmoid", d, r, n, TOL_TRANS);

        free(x), free(y), free(r);
    }
    done();
}

Test(ops_cuda, layout_2d) {
    NEED_GPU();
    const size_t rows = 37, cols = 45, lds = 53, ldd = 61;
    float *src = frand(rows * lds, 1.0f, 30), *dst0 = frand(rows * ldd, 1.0f, 31);
    float *dsrc = dput(src, rows * lds);
    for (int bc = 0; bc < 2; bc++) { /* bc = 1: lds = 0 broadcasts one row */
        size_t s = bc ? 0 : lds;
        float *r = fcopy(dst0, rows * ldd);
        cpu->copy2d(r, ldd, src, s, rows, cols);
        float *d = dput(dst0, rows * ldd);
        dev->copy2d(d, ldd, dsrc, s, rows, cols);
        EXPECT_CLOSE(bc ? "copy2d broadcast" : "copy2d", d, r, rows * ldd, TOL_EXACT);

        memcpy(r, dst0, rows * ldd * sizeof(float));
        cpu->add2d(r, ldd, src, s, rows, cols);
        d = dput(dst0, rows * ldd);
        dev->add2d(d, ldd, dsrc, s, rows, cols);
        EXPECT_CLOSE(bc ? "add2d broadcast" : "add2d", d, r, rows * ldd, TOL_EXACT);
        free(r);
    }
    free(src), free(dst0);
    done();
}

Test(ops_cuda, sum_rows) {
    NEED_GPU();
    /* tall-thin (many row chunks), square-ish, one row */
    const size_t shapes[][2] = {{5003, 3}, {1000, 77}, {67, 300}, {1, 33}};
    for (int k = 0; k < 4; k++) {
        size_t rows = shapes[k][0], cols = shapes[k][1];
        float *x = frand(rows * cols, 1.0f, 40 + k), *o0 = frand(cols, 1.0f, 50 + k);
        float *dx = dput(x, rows * cols);
        float *r = fnan(cols); /* beta = 0 must not read out (NaN there) */
        cpu->sum_rows(r, x, rows, cols, 0.0f);
        float *d = dpoison(cols);
        dev->sum_rows(d, dx, rows, cols, 0.0f);
        EXPECT_CLOSE("sum_rows beta 0", d, r, cols, TOL_RED);
        memcpy(r, o0, cols * sizeof(float));
        cpu->sum_rows(r, x, rows, cols, 0.5f);
        d = dput(o0, cols);
        dev->sum_rows(d, dx, rows, cols, 0.5f);
        EXPECT_CLOSE("sum_rows beta 0.5", d, r, cols, TOL_RED);
        free(x), free(o0), free(r);
    }
    done();
}

Test(ops_cuda, gather_and_channel_affine) {
    NEED_GPU();
    size_t nsrc = 101, cols = 37, nidx = 59;
    float *src = frand(nsrc * cols, 1.0f, 60);
    int32_t *idx = labels_rand(nidx, (int)nsrc, 61);
    float *r = fa(nidx * cols);
    cpu->gather_rows(r, src, idx, nidx, cols);
    float *d = dpoison(nidx * cols);
    dev->gather_rows(d, dput(src, nsrc * cols), dput_i(idx, nidx), nidx, cols);
    EXPECT_CLOSE("gather_rows", d, r, nidx * cols, TOL_EXACT);
    free(src), free(idx), free(r);

    int n = 3, C = 5, HW = 47;
    size_t N = (size_t)n * C * HW;
    float *x = frand(N, 1.0f, 62), *sc = frand(C, 1.0f, 63), *sh = frand(C, 1.0f, 64);
    float *dsc = dput(sc, C), *dsh = dput(sh, C), *dx = dput(x, N);
    r = fa(N);
    cpu->channel_affine(r, x, sc, sh, n, C, HW);
    d = dpoison(N);
    dev->channel_affine(d, dx, dsc, dsh, n, C, HW);
    EXPECT_CLOSE("channel_affine", d, r, N, TOL_ELEM);
    d = dput(x, N);
    dev->channel_affine(d, d, dsc, dsh, n, C, HW);
    EXPECT_CLOSE("channel_affine in place", d, r, N, TOL_ELEM);
    cpu->channel_affine_backward(r, x, sc, n, C, HW);
    d = dpoison(N);
    dev->channel_affine_backward(d, dx, dsc, n, C, HW);
    EXPECT_CLOSE("channel_affine_backward", d, r, N, TOL_EXACT);
    free(x), free(sc), free(sh), free(r);
    done();
}

Test(ops_cuda, reductions) {
    NEED_GPU();
    const size_t sizes[] = {1, 33, 1000003};
    for (int k = 0; k < 3; k++) {
        size_t n = sizes[k];
        float *x = frand(n, 1.0f, 70 + k), *y = frand(n, 1.0f, 80 + k);
        float *dx = dput(x, n), *dy = dput(y, n);
        /* both accumulate exact float products in float64: differences are float64
           rounding only, ≤ n·2⁻⁵³·Σ|x·y| */
        double scale = 0, scale1 = 0;
        for (size_t i = 0; i < n; i++) scale += fabs((double)x[i] * y[i]), scale1 += fabs((double)x[i]);
        double a = dev->dot(dx, dy, n), b = cpu->dot(x, y, n);
        cr_expect(fabs(a - b) <= 1e-12 * scale + 1e-300, "dot n=%zu: %.17g vs cpu %.17g", n, a, b);
        a = dev->sum(dx, n), b = cpu->sum(x, n);
        cr_expect(fabs(a - b) <= 1e-12 * scale1 + 1e-300, "sum n=%zu: %.17g vs cpu %.17g", n, a, b);
        cr_expect(dev->all_finite(dx, n) == 1, "all_finite n=%zu on finite data", n);
        float bad[2] = {NAN, INFINITY};
        for (int j = 0; j < 2; j++) {
            float keep = x[n - 1];
            dev->to_device(dx + (n - 1), &bad[j], sizeof(float)); /* the last element only */
            cr_expect(dev->all_finite(dx, n) == 0, "all_finite n=%zu missed %g at the end", n, (double)bad[j]);
            dev->to_device(dx + (n - 1), &keep, sizeof(float));
        }
        free(x), free(y);
    }
    cr_expect(dev->dot(NULL, NULL, 0) == 0.0 && dev->sum(NULL, 0) == 0.0 && dev->all_finite(NULL, 0) == 1);
    done();
}

/* ---- BLAS / LAPACK ---- */

Test(ops_cuda, gemm) {
    NEED_GPU();
    const int M = 37, N = 29, K = 45;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 2; bi++) {
                float beta = bi ? 0.5f : 0.0f;
                int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
                size_t nA = (size_t)(ta ? K : M) * lda, nB = (size_t)(tb ? N : K) * ldb, nC = (size_t)M * ldc;
                float *A = frand(nA, 1.0f, 100 + ta), *B = frand(nB, 1.0f, 110 + tb), *C0 = frand(nC, 1.0f, 120);
                if (beta == 0.0f) /* not read: NaN in the M×N block, sentinels in the ldc padding */
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) C0[(size_t)i * ldc + j] = NAN;
                float *r = fcopy(C0, nC);
                cpu->gemm(ta, tb, M, N, K, 0.8f, A, lda, B, ldb, beta, r, ldc);
                float *d = dput(C0, nC);
                dev->gemm(ta, tb, M, N, K, 0.8f, dput(A, nA), lda, dput(B, nB), ldb, beta, d, ldc);
                char what[64];
                snprintf(what, sizeof what, "gemm transA %d transB %d beta %g", ta, tb, (double)beta);
                EXPECT_CLOSE(what, d, r, nC, TOL_RED);
                free(A), free(B), free(C0), free(r);
            }
    /* K = 0: C = beta·C */
    float *C0 = frand(12, 1.0f, 130), *r = fcopy(C0, 12);
    cpu->gemm(0, 0, 3, 4, 0, 1.0f, NULL, 1, NULL, 4, 0.25f, r, 4);
    float *d = dput(C0, 12);
    dev->gemm(0, 0, 3, 4, 0, 1.0f, NULL, 1, NULL, 4, 0.25f, d, 4);
    EXPECT_CLOSE("gemm K = 0", d, r, 12, TOL_EXACT);
    free(C0), free(r);
    done();
}

Test(ops_cuda, gemm_batched) {
    NEED_GPU();
    const int M = 19, N = 23, K = 17, batch = 5;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
            long long sA = (long long)(ta ? K : M) * lda + 7, sB = (long long)(tb ? N : K) * ldb + 5,
                      sC = (long long)M * ldc + 9;
            size_t nA = (size_t)sA * batch, nB = (size_t)sB * batch, nC = (size_t)sC * batch;
            float *A = frand(nA, 1.0f, 140), *B = frand(nB, 1.0f, 141), *C0 = frand(nC, 1.0f, 142);
            float *r = fcopy(C0, nC);
            cpu->gemm_batched(ta, tb, M, N, K, 1.1f, A, lda, sA, B, ldb, sB, 0.3f, r, ldc, sC, batch);
            float *d = dput(C0, nC);
            dev->gemm_batched(ta, tb, M, N, K, 1.1f, dput(A, nA), lda, sA, dput(B, nB), ldb, sB, 0.3f, d, ldc, sC,
                              batch);
            char what[64];
            snprintf(what, sizeof what, "gemm_batched transA %d transB %d", ta, tb);
            EXPECT_CLOSE(what, d, r, nC, TOL_RED);
            free(A), free(B), free(C0), free(r);
        }
    done();
}

Test(ops_cuda, syrk) {
    NEED_GPU();
    const int N = 37, K = 23;
    for (int t = 0; t < 2; t++)
        for (int bi = 0; bi < 2; bi++) {
            float beta = bi ? 0.7f : 0.0f;
            int lda = (t ? N : K) + 3, ldc = N + 2;
            size_t nA = (size_t)(t ? K : N) * lda, nC = (size_t)N * ldc;
            float *A = frand(nA, 1.0f, 150 + t), *C0 = frand(nC, 1.0f, 152);
            for (int i = 0; i < N; i++) /* a symmetric C (NaN when beta = 0: not read) */
                for (int j = 0; j < N; j++)
                    C0[(size_t)i * ldc + j] = beta == 0.0f ? NAN : C0[(size_t)(i < j ? i : j) * ldc + (i < j ? j : i)];
            float *r = fcopy(C0, nC);
            cpu->syrk(t, N, K, 0.9f, A, lda, beta, r, ldc);
            float *d = dput(C0, nC);
            dev->syrk(t, N, K, 0.9f, dput(A, nA), lda, beta, d, ldc);
            char what[64];
            snprintf(what, sizeof what, "syrk trans %d beta %g (both triangles)", t, (double)beta);
            EXPECT_CLOSE(what, d, r, nC, TOL_RED);
            free(A), free(C0), free(r);
        }
    done();
}

/* SPD A = X·Xᵀ/k + I (condition number ≈ 10, so float32 solves keep ~1e-6) */
static float *spd(int n, int lda, uint64_t seed) {
    int k = 2 * n;
    float *X = frand((size_t)n * k, 1.0f, seed), *A = frand((size_t)n * lda, 1.0f, seed + 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < k; t++) s += (double)X[(size_t)i * k + t] * X[(size_t)j * k + t];
            A[(size_t)i * lda + j] = (float)(s / k + (i == j));
        }
    free(X);
    return A;
}

Test(ops_cuda, potrf_potrs) {
    NEED_GPU();
    const int n = 67, lda = 71, nrhs = 5, ldb = 8;
    float *A = spd(n, lda, 160);
    float *L = fcopy(A, (size_t)n * lda);
    cr_assert(cpu->potrf(L, n, lda) == 0);
    float *dL = dput(A, (size_t)n * lda);
    int info = dev->potrf(dL, n, lda);
    cr_expect(info == 0, "potrf of an SPD matrix returned %d", info);
    /* compare the lower triangle (the strict upper one is unspecified) */
    float *h = fa((size_t)n * lda), *lo_d = fa((size_t)n * n), *lo_c = fa((size_t)n * n);
    dev->to_host(h, dL, (size_t)n * lda * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) lo_d[(size_t)i * n + j] = h[(size_t)i * lda + j], lo_c[(size_t)i * n + j] = L[(size_t)i * lda + j];
    double e = test_rel_err(lo_d, lo_c, (size_t)n * n);
    cr_expect(e <= TOL_GRAD, "potrf lower triangle: normalised error %.3g > %.3g", e, TOL_GRAD);

    /* potrs with each backend's own factor; the ldb padding must stay untouched */
    float *B = frand((size_t)n * ldb, 1.0f, 161), *X = fcopy(B, (size_t)n * ldb);
    cpu->potrs(L, n, lda, X, nrhs, ldb);
    float *dB = dput(B, (size_t)n * ldb);
    dev->potrs(dL, n, lda, dB, nrhs, ldb);
    EXPECT_CLOSE("potrs", dB, X, (size_t)n * ldb, TOL_GRAD);

    /* not positive definite: the identity with A[4][4] = −1 fails the leading minor of order 5 */
    float *I = fa((size_t)n * lda);
    for (int i = 0; i < n; i++) I[(size_t)i * lda + i] = 1.0f;
    I[(size_t)4 * lda + 4] = -1.0f;
    float *Ic = fcopy(I, (size_t)n * lda);
    int ci = cpu->potrf(Ic, n, lda), di = dev->potrf(dput(I, (size_t)n * lda), n, lda);
    cr_expect(ci == 5 && di == ci, "non-SPD potrf: device %d, cpu %d, expected 5", di, ci);
    /* a NaN reaches the diagonal: reported as a failed minor on both */
    memcpy(I, A, (size_t)n * lda * sizeof(float));
    I[(size_t)9 * lda + 3] = I[(size_t)3 * lda + 9] = NAN;
    memcpy(Ic, I, (size_t)n * lda * sizeof(float));
    ci = cpu->potrf(Ic, n, lda), di = dev->potrf(dput(I, (size_t)n * lda), n, lda);
    cr_expect(ci > 0 && di == ci, "potrf with a NaN: device %d, cpu %d", di, ci);
    free(A), free(L), free(h), free(lo_d), free(lo_c), free(B), free(X), free(I), free(Ic);
    done();
}

/* ---- activations ---- */

Test(ops_cuda, activations) {
    NEED_GPU();
    size_t n = 100003;
    float *x = frand(n, 2.0f, 170), *g = frand(n, 1.0f, 171);
    float *dx = dput(x, n), *dg = dput(g, n), *r = fa(n), *d;
    cpu->relu(r, x, n);
    d = dpoison(n);
    dev->relu(d, dx, n);
    EXPECT_CLOSE("relu", d, r, n, TOL_EXACT);
    cpu->relu_backward(r, g, x, n);
    d = dput(g, n); /* dx = dy in place */
    dev->relu_backward(d, d, dx, n);
    EXPECT_CLOSE("relu_backward in place", d, r, n, TOL_EXACT);
    for (int k = 0; k < CLPDD_GELU_COUNT; k++) {
        char what[48];
        cpu->gelu(r, x, n, (clpdd_gelu_kind)k);
        d = dpoison(n);
        dev->gelu(d, dx, n, (clpdd_gelu_kind)k);
        snprintf(what, sizeof what, "gelu kind %d", k);
        EXPECT_CLOSE(what, d, r, n, TOL_TRANS);
        cpu->gelu_backward(r, g, x, n, (clpdd_gelu_kind)k);
        d = dpoison(n);
        dev->gelu_backward(d, dg, dx, n, (clpdd_gelu_kind)k);
        snprintf(what, sizeof what, "gelu_backward kind %d", k);
        EXPECT_CLOSE(what, d, r, n, TOL_TRANS);
    }
    free(x), free(g), free(r);
    done();
}

/* ---- rows ---- */

Test(ops_cuda, softmax_rows) {
    NEED_GPU();
    const int shapes[][2] = {{67, 1}, {130, 33}, {37, 1000}, {5, 5003}};
    for (int k = 0; k < 4; k++) {
        int rows = shapes[k][0], cols = shapes[k][1];
        size_t N = (size_t)rows * cols;
        float *x = frand(N, 3.0f, 180 + k), *g = frand(N, 1.0f, 190 + k), *y = fa(N), *r = fa(N);
        cpu->softmax_rows(y, x, rows, cols, 0.7f);
        float *d = dpoison(N);
        dev->softmax_rows(d, dput(x, N), rows, cols, 0.7f);
        EXPECT_CLOSE("softmax_rows", d, y, N, TOL_TRANS);
        d = dput(x, N);
        dev->softmax_rows(d, d, rows, cols, 0.7f);
        EXPECT_CLOSE("softmax_rows in place", d, y, N, TOL_TRANS);
        cpu->softmax_rows_backward(r, g, y, rows, cols, 0.7f);
        float *dy = dput(y, N);
        d = dpoison(N);
        dev->softmax_rows_backward(d, dput(g, N), dy, rows, cols, 0.7f);
        EXPECT_CLOSE("softmax_rows_backward", d, r, N, TOL_GRAD);
        d = dput(g, N);
        dev->softmax_rows_backward(d, d, dy, rows, cols, 0.7f);
        EXPECT_CLOSE("softmax_rows_backward dx = dy", d, r, N, TOL_GRAD);
        free(x), free(g), free(y), free(r);
    }
    done();
}

Test(ops_cuda, cross_entropy) {
    NEED_GPU();
    const int shapes[][2] = {{67, 10}, {33, 1001}};
    for (int k = 0; k < 2; k++) {
        int rows = shapes[k][0], cols = shapes[k][1];
        size_t N = (size_t)rows * cols;
        float *z = frand(N, 2.0f, 200 + k), *loss = fa(rows), *dz = fa(N);
        int32_t *lab = labels_rand(rows, cols, 210 + k);
        float *dzd = dput(z, N);
        int32_t *dl = dput_i(lab, rows);
        float inv_tau = 2.5f, gs = 1.0f / rows;
        cpu->cross_entropy(loss, dz, z, lab, rows, cols, inv_tau, gs);
        float *dloss = dpoison(rows), *ddz = dpoison(N);
        dev->cross_entropy(dloss, ddz, dzd, dl, rows, cols, inv_tau, gs);
        EXPECT_CLOSE("cross_entropy loss", dloss, loss, rows, TOL_TRANS);
        EXPECT_CLOSE("cross_entropy dz", ddz, dz, N, TOL_TRANS);
        dloss = dpoison(rows);
        dev->cross_entropy(dloss, NULL, dzd, dl, rows, cols, inv_tau, gs);
        EXPECT_CLOSE("cross_entropy loss only", dloss, loss, rows, TOL_TRANS);
        ddz = dput(z, N); /* dz = z in place, no loss */
        dev->cross_entropy(NULL, ddz, ddz, dl, rows, cols, inv_tau, gs);
        EXPECT_CLOSE("cross_entropy dz = z", ddz, dz, N, TOL_TRANS);
        free(z), free(loss), free(dz), free(lab);
    }
    done();
}

Test(ops_cuda, onehot_argmax) {
    NEED_GPU();
    int rows = 70, cols = 37;
    size_t N = (size_t)rows * cols;
    int32_t *lab = labels_rand(rows, cols, 220);
    float *r = fa(N);
    cpu->onehot(r, lab, rows, cols, 0.9f, 0.1f / 36);
    float *d = dpoison(N);
    dev->onehot(d, dput_i(lab, rows), rows, cols, 0.9f, 0.1f / 36);
    EXPECT_CLOSE("onehot", d, r, N, TOL_EXACT);

    /* argmax: values quantised to few levels (many ties: the first maximum must win), a row
       with NaNs (never win), an all-NaN row (0), wide rows (block reduction) */
    const int shapes[][2] = {{70, 37}, {9, 3001}};
    for (int k = 0; k < 2; k++) {
        rows = shapes[k][0], cols = shapes[k][1];
        N = (size_t)rows * cols;
        float *x = funi(N, 0.0f, 4.0f, 230 + k);
        for (size_t i = 0; i < N; i++) x[i] = floorf(x[i]);
        for (int c = 0; c < cols; c += 3) x[(size_t)1 * cols + c] = NAN;
        for (int c = 0; c < cols; c++) x[(size_t)2 * cols + c] = NAN;
        int32_t *ref = calloc(rows, sizeof(int32_t));
        cpu->argmax_rows(ref, x, rows, cols);
        int32_t *di = (int32_t *)dpoison(rows);
        dev->argmax_rows(di, dput(x, N), rows, cols);
        EXPECT_EQUAL_I("argmax_rows", di, ref, rows);
        free(x), free(ref);
    }
    free(lab), free(r);
    done();
}

Test(ops_cuda, layernorm) {
    NEED_GPU();
    const int shapes[][2] = {{67, 33}, {130, 768}, {3, 2001}};
    for (int k = 0; k < 3; k++) {
        int rows = shapes[k][0], cols = shapes[k][1];
        size_t N = (size_t)rows * cols;
        float *x = frand(N, 2.0f, 240 + k), *gm = frand(cols, 1.0f, 250), *bt = frand(cols, 1.0f, 251);
        for (size_t i = 0; i < N; i++) x[i] += 3.0f; /* a non-zero mean */
        float *y = fa(N), *mu = fa(rows), *rs = fa(rows);
        float *dxx = dput(x, N), *dgm = dput(gm, cols), *dbt = dput(bt, cols);
        cpu->layernorm(y, mu, rs, x, gm, bt, rows, cols, 1e-5f);
        float *dy = dpoison(N), *dmu = dpoison(rows), *drs = dpoison(rows);
        dev->layernorm(dy, dmu, drs, dxx, dgm, dbt, rows, cols, 1e-5f);
        EXPECT_CLOSE("layernorm y", dy, y, N, TOL_RED);
        EXPECT_CLOSE("layernorm mean", dmu, mu, rows, TOL_RED);
        EXPECT_CLOSE("layernorm rstd", drs, rs, rows, TOL_RED);
        float *d = dput(x, N);
        dev->layernorm(d, NULL, NULL, d, dgm, dbt, rows, cols, 1e-5f);
        EXPECT_CLOSE("layernorm in place, no saves", d, y, N, TOL_RED);

        /* backward: dgamma/dbeta accumulate onto non-zero values */
        float *g = frand(N, 1.0f, 260 + k), *dg0 = frand(cols, 1.0f, 270), *db0 = frand(cols, 1.0f, 271);
        float *rdx = fa(N), *rdg = fcopy(dg0, cols), *rdb = fcopy(db0, cols);
        cpu->layernorm_backward(rdx, rdg, rdb, g, x, mu, rs, gm, rows, cols);
        float *ddx = dpoison(N), *ddg = dput(dg0, cols), *ddb = dput(db0, cols), *dgr = dput(g, N);
        dev->layernorm_backward(ddx, ddg, ddb, dgr, dxx, dmu, drs, dgm, rows, cols);
        EXPECT_CLOSE("layernorm_backward dx", ddx, rdx, N, TOL_GRAD);
        EXPECT_CLOSE("layernorm_backward dgamma +=", ddg, rdg, cols, TOL_GRAD);
        EXPECT_CLOSE("layernorm_backward dbeta +=", ddb, rdb, cols, TOL_GRAD);
        /* NULL parameter gradients, dx = dy in place */
        d = dput(g, N);
        dev->layernorm_backward(d, NULL, NULL, d, dxx, dmu, drs, dgm, rows, cols);
        EXPECT_CLOSE("layernorm_backward dx = dy, no params", d, rdx, N, TOL_GRAD);
        free(x), free(gm), free(bt), free(y), free(mu), free(rs), free(g), free(dg0), free(db0);
        free(rdx), free(rdg), free(rdb);
    }
    done();
}

/* ---- attention: Hh > n (batched over heads) and Hh ≤ n (batched over images) ---- */

Test(ops_cuda, attention) {
    NEED_GPU();
    const int shapes[][4] = {{3, 17, 4, 8}, {5, 9, 2, 16}, {1, 33, 3, 7}}; /* n, T, Hh, hd */
    for (int k = 0; k < 3; k++) {
        int n = shapes[k][0], T = shapes[k][1], Hh = shapes[k][2], hd = shapes[k][3], D = Hh * hd;
        size_t nq = (size_t)n * T * 3 * D, na = (size_t)n * Hh * T * T, no = (size_t)n * T * D;
        float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(nq, 1.0f, 280 + k), *gout = frand(no, 1.0f, 290 + k);
        float *out = fa(no), *att = fa(na), *dqkv = fa(nq), *datt = fa(na);
        cpu->attention(out, att, qkv, n, T, Hh, hd, scale);
        cpu->attention_backward(dqkv, datt, gout, qkv, att, n, T, Hh, hd, scale);
        float *dq = dput(qkv, nq), *dout = dpoison(no), *datt_d = dpoison(na);
        dev->attention(dout, datt_d, dq, n, T, Hh, hd, scale);
        char what[96];
        snprintf(what, sizeof what, "attention out (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, dout, out, no, TOL_GRAD);
        snprintf(what, sizeof what, "attention att (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, datt_d, att, na, TOL_GRAD);
        /* backward from the CPU's saved att, so only the backward is measured */
        float *ddq = dpoison(nq), *scratch = dpoison(na);
        dev->attention_backward(ddq, scratch, dput(gout, no), dq, dput(att, na), n, T, Hh, hd, scale);
        snprintf(what, sizeof what, "attention_backward dqkv (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, ddq, dqkv, nq, TOL_GRAD);
        free(qkv), free(gout), free(out), free(att), free(dqkv), free(datt);
    }
    done();
}

/* ---- fused attention (ABI 1.3): the shared-memory tile is 32 rows, a block 64 rows; hd 16, 32,
   64 have width-specialised kernels, 7, 8 and 128 the generic one. Both backends run the same
   per-row arithmetic (core/numerics/attention_tile.h); they differ by FMA contraction and libm, so the
   composite tolerance TOL_GRAD applies as for the materialised attention. ---- */
static const int attf_cuda_shapes[][4] = {{3, 17, 4, 8}, {2, 50, 4, 64}, {2, 197, 3, 64}, {1, 33, 3, 7},
                                          {2, 70, 2, 16}, {2, 40, 2, 32}, {1, 20, 2, 128}}; /* n, T, Hh, hd */

Test(ops_cuda, attention_fused) {
    NEED_GPU();
    for (size_t k = 0; k < sizeof attf_cuda_shapes / sizeof attf_cuda_shapes[0]; k++) {
        int n = attf_cuda_shapes[k][0], T = attf_cuda_shapes[k][1], Hh = attf_cuda_shapes[k][2],
            hd = attf_cuda_shapes[k][3], D = Hh * hd;
        size_t nq = (size_t)n * T * 3 * D, no = (size_t)n * T * D, nl = (size_t)n * Hh * T;
        float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(nq, 1.0f, 880 + k), *out = fa(no), *lse = fa(nl);
        cpu->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
        float *dq = dput(qkv, nq), *dout = dpoison(no), *dlse = dpoison(nl);
        dev->attention_fused(dout, dlse, dq, n, T, Hh, hd, scale);
        char what[96];
        snprintf(what, sizeof what, "attention_fused out (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, dout, out, no, TOL_GRAD);
        snprintf(what, sizeof what, "attention_fused lse (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, dlse, lse, nl, TOL_GRAD);
        free(qkv), free(out), free(lse);
    }
    done();
}

Test(ops_cuda, attention_fused_backward) {
    NEED_GPU();
    for (size_t k = 0; k < sizeof attf_cuda_shapes / sizeof attf_cuda_shapes[0]; k++) {
        int n = attf_cuda_shapes[k][0], T = attf_cuda_shapes[k][1], Hh = attf_cuda_shapes[k][2],
            hd = attf_cuda_shapes[k][3], D = Hh * hd;
        size_t nq = (size_t)n * T * 3 * D, no = (size_t)n * T * D, nl = (size_t)n * Hh * T;
        float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(nq, 1.0f, 900 + k), *gout = frand(no, 1.0f, 920 + k), *out = fa(no), *lse = fa(nl);
        float *delta = fa(nl), *dqkv = fa(nq), *again = fa(nq);
        cpu->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
        cpu->attention_fused_backward(dqkv, delta, gout, out, lse, qkv, n, T, Hh, hd, scale);
        /* from the CPU's out and lse, so only the backward is measured */
        float *dq = dput(qkv, nq), *dg = dput(gout, no), *dO = dput(out, no), *dl = dput(lse, nl);
        float *ddq = dpoison(nq), *ddelta = dpoison(nl);
        dev->attention_fused_backward(ddq, ddelta, dg, dO, dl, dq, n, T, Hh, hd, scale);
        char what[96];
        snprintf(what, sizeof what, "attention_fused_backward dqkv (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, ddq, dqkv, nq, TOL_GRAD);
        /* no atomics: a second run gives the same bits */
        dev->to_host(again, ddq, nq * sizeof(float));
        float *ddq2 = dpoison(nq);
        dev->attention_fused_backward(ddq2, ddelta, dg, dO, dl, dq, n, T, Hh, hd, scale);
        snprintf(what, sizeof what, "attention_fused_backward rerun (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        EXPECT_CLOSE(what, ddq2, again, nq, TOL_EXACT);
        free(qkv), free(gout), free(out), free(lse), free(delta), free(dqkv), free(again);
    }
    done();
}

/* ---- images ---- */

Test(ops_cuda, patchify) {
    NEED_GPU();
    int n = 2, C = 3, H = 12, W = 20, p = 4;
    size_t N = (size_t)n * C * H * W;
    float *x = frand(N, 1.0f, 300), *y = fa(N), *dx = fa(N);
    cpu->patchify(y, x, n, C, H, W, p);
    float *d = dpoison(N);
    dev->patchify(d, dput(x, N), n, C, H, W, p);
    EXPECT_CLOSE("patchify", d, y, N, TOL_EXACT);
    cpu->unpatchify(dx, y, n, C, H, W, p);
    d = dpoison(N);
    dev->unpatchify(d, dput(y, N), n, C, H, W, p);
    EXPECT_CLOSE("unpatchify", d, dx, N, TOL_EXACT);
    EXPECT_CLOSE("unpatchify∘patchify = id", d, x, N, TOL_EXACT);
    free(x), free(y), free(dx);
    done();
}

Test(ops_cuda, im2col_col2im) {
    NEED_GPU();
    const int cfg[][4] = {{3, 2, 1, 0}, {5, 1, 2, 0}, {2, 3, 0, 0}}; /* k, stride, pad */
    int C = 3, H = 11, W = 13;
    float *x = frand((size_t)C * H * W, 1.0f, 310);
    float *dxx = dput(x, (size_t)C * H * W);
    for (int t = 0; t < 3; t++) {
        int k = cfg[t][0], s = cfg[t][1], pad = cfg[t][2];
        int OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
        size_t ncol = (size_t)C * k * k * OH * OW, nx = (size_t)C * H * W;
        float *col = fa(ncol), *g = frand(ncol, 1.0f, 320 + t), *dx = fa(nx);
        cpu->im2col(col, x, C, H, W, k, k, s, pad, OH, OW);
        float *d = dpoison(ncol);
        dev->im2col(d, dxx, C, H, W, k, k, s, pad, OH, OW);
        char what[64];
        snprintf(what, sizeof what, "im2col k %d stride %d pad %d", k, s, pad);
        EXPECT_CLOSE(what, d, col, ncol, TOL_EXACT);
        cpu->col2im(dx, g, C, H, W, k, k, s, pad, OH, OW);
        d = dpoison(nx);
        dev->col2im(d, dput(g, ncol), C, H, W, k, k, s, pad, OH, OW);
        snprintf(what, sizeof what, "col2im k %d stride %d pad %d", k, s, pad);
        EXPECT_CLOSE(what, d, dx, nx, TOL_ELEM);
        free(col), free(g), free(dx);
    }
    free(x);
    done();
}

Test(ops_cuda, global_avgpool) {
    NEED_GPU();
    const int cfg[][3] = {{3, 5, 49}, {2, 3, 1001}, {7, 9, 1}}; /* n, C, HW */
    for (int t = 0; t < 3; t++) {
        int n = cfg[t][0], C = cfg[t][1], HW = cfg[t][2];
        size_t N = (size_t)n * C * HW, P = (size_t)n * C;
        float *x = frand(N, 1.0f, 330 + t), *y = fa(P), *g = frand(P, 1.0f, 340 + t), *dx = fa(N);
        cpu->global_avgpool(y, x, n, C, HW);
        float *d = dpoison(P);
        dev->global_avgpool(d, dput(x, N), n, C, HW);
        EXPECT_CLOSE("global_avgpool", d, y, P, TOL_ELEM);
        cpu->global_avgpool_backward(dx, g, n, C, HW);
        d = dpoison(N);
        dev->global_avgpool_backward(d, dput(g, P), n, C, HW);
        EXPECT_CLOSE("global_avgpool_backward", d, dx, N, TOL_EXACT);
        free(x), free(y), free(g), free(dx);
    }
    done();
}

Test(ops_cuda, maxpool) {
    NEED_GPU();
    const int cfg[][3] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}}; /* k, s, pad: overlapping, tiling, dense */
    int n = 2, C = 3, H = 15, W = 13;
    size_t nx = (size_t)n * C * H * W;
    float *x = funi(nx, -2.0f, 2.0f, 350);
    for (size_t i = 0; i < nx; i += 7) x[i] = floorf(x[i]); /* some ties */
    float *dxx = dput(x, nx);
    for (int t = 0; t < 3; t++) {
        int k = cfg[t][0], s = cfg[t][1], pad = cfg[t][2];
        int OH = (H + 2 * pad - k) / s + 1, OW = (W + 2 * pad - k) / s + 1;
        size_t no = (size_t)n * C * OH * OW;
        float *y = fa(no), *g = frand(no, 1.0f, 360 + t), *dx = fa(nx);
        int32_t *am = calloc(no, sizeof(int32_t));
        cpu->maxpool(y, am, x, n, C, H, W, k, s, pad, OH, OW);
        float *d = dpoison(no);
        int32_t *dam = (int32_t *)dpoison(no);
        dev->maxpool(d, dam, dxx, n, C, H, W, k, s, pad, OH, OW);
        char what[64];
        snprintf(what, sizeof what, "maxpool k %d s %d pad %d", k, s, pad);
        EXPECT_CLOSE(what, d, y, no, TOL_EXACT);
        EXPECT_EQUAL_I(what, dam, am, no);
        cpu->maxpool_backward(dx, g, am, n, C, H, W, OH, OW);
        d = dpoison(nx);
        dev->maxpool_backward(d, dput(g, no), dput_i(am, no), n, C, H, W, OH, OW);
        snprintf(what, sizeof what, "maxpool_backward k %d s %d pad %d", k, s, pad);
        EXPECT_CLOSE(what, d, dx, nx, TOL_ELEM);
        free(y), free(g), free(dx), free(am);
    }
    free(x);
    done();
}

Test(ops_cuda, resize_bilinear) {
    NEED_GPU();
    const int cfg[][4] = {{15, 13, 32, 27}, {32, 27, 15, 13}, {7, 9, 7, 9}, {224, 224, 32, 32}}; /* H W OH OW */
    int n = 2, C = 3;
    for (int t = 0; t < 4; t++) {
        int H = cfg[t][0], W = cfg[t][1], OH = cfg[t][2], OW = cfg[t][3];
        size_t nx = (size_t)n * C * H * W, ny = (size_t)n * C * OH * OW;
        float *x = frand(nx, 1.0f, 370 + t), *y = fa(ny), *g = frand(ny, 1.0f, 380 + t), *dx = fa(nx);
        cpu->resize_bilinear(y, x, n, C, H, W, OH, OW);
        float *d = dpoison(ny);
        dev->resize_bilinear(d, dput(x, nx), n, C, H, W, OH, OW);
        char what[80];
        snprintf(what, sizeof what, "resize_bilinear %dx%d → %dx%d", H, W, OH, OW);
        EXPECT_CLOSE(what, d, y, ny, TOL_ELEM);
        cpu->resize_bilinear_backward(dx, g, n, C, H, W, OH, OW);
        d = dpoison(nx);
        dev->resize_bilinear_backward(d, dput(g, ny), n, C, H, W, OH, OW);
        snprintf(what, sizeof what, "resize_bilinear_backward %dx%d → %dx%d", H, W, OH, OW);
        EXPECT_CLOSE(what, d, dx, nx, TOL_ELEM);
        free(x), free(y), free(g), free(dx);
    }
    done();
}

/* ---- random and Adam ---- */

Test(ops_cuda, random_streams) {
    NEED_GPU();
    size_t n = 100003, k = 40001;
    uint64_t seed = 0x123456789abcdefULL, off = (1ULL << 32) - 5; /* the counter's high word moves */
    float *r = fa(n), *h = fa(n);
    for (int normal = 0; normal < 2; normal++) {
        const char *what = normal ? "rand_normal" : "rand_uniform";
        if (normal) cpu->rand_normal(r, n, 0.5f, 2.0f, seed, off);
        else cpu->rand_uniform(r, n, -1.0f, 3.0f, seed, off);
        float *d = dpoison(n);
        if (normal) dev->rand_normal(d, n, 0.5f, 2.0f, seed, off);
        else dev->rand_uniform(d, n, -1.0f, 3.0f, seed, off);
        /* the same Philox stream (core/numerics/philox.h): uniform differs by an FMA at most, normal
           by CUDA vs glibc logf/cosf ulps */
        EXPECT_CLOSE(what, d, r, n, normal ? TOL_TRANS : TOL_ELEM);
        /* drawn in two pieces on the device: bit-identical to one draw */
        dev->to_host(h, d, n * sizeof(float));
        float *d2 = dpoison(n);
        if (normal) {
            dev->rand_normal(d2, k, 0.5f, 2.0f, seed, off);
            dev->rand_normal(d2 + k, n - k, 0.5f, 2.0f, seed, off + k);
        } else {
            dev->rand_uniform(d2, k, -1.0f, 3.0f, seed, off);
            dev->rand_uniform(d2 + k, n - k, -1.0f, 3.0f, seed, off + k);
        }
        EXPECT_CLOSE(what, d2, h, n, TOL_EXACT);
    }
    free(r), free(h);
    done();
}

Test(ops_cuda, adam) {
    NEED_GPU();
    size_t n = 10007;
    float *p = frand(n, 1.0f, 390), *m = fa(n), *v = fa(n);
    float *dp = dput(p, n), *dm = dput(m, n), *dv = dput(v, n);
    for (int t = 1; t <= 3; t++) {
        float *g = frand(n, 1.0f, 400 + t);
        cpu->adam(p, m, v, g, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, t);
        dev->adam(dp, dm, dv, dput(g, n), n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, t);
        free(g);
    }
    /* m, v are FMA-level; p's update divides by √v̂ (amplifies relative error ≲ 10×) */
    EXPECT_CLOSE("adam m", dm, m, n, TOL_ELEM);
    EXPECT_CLOSE("adam v", dv, v, n, TOL_ELEM);
    EXPECT_CLOSE("adam p", dp, p, n, TOL_ELEM);
    free(p), free(m), free(v);
    done();
}

/* ---- convolution (ABI 1.2): conv2d with bias + shortcut + ReLU, conv2d_backward with and
   without the mask, CUDA against the CPU reference (whose own tests are against float64),
   at a group of 1 image and of all n per GEMM ---- */
Test(ops_cuda, conv2d) {
    NEED_GPU();
    /* 3×3 s1 p1 + identity shortcut; 3×3 s2 p1 on odd sides + option-A; 1×1 s2 p0 */
    const int cfg[][9] = {{3, 5, 6, 7, 5, 3, 1, 1, 1}, {3, 4, 9, 7, 8, 3, 2, 1, 2}, {2, 6, 8, 8, 12, 1, 2, 0, 0}};
    for (int t = 0; t < 3; t++) {
        clpdd_conv2d_desc d = {cfg[t][0], cfg[t][1], cfg[t][2], cfg[t][3], cfg[t][4], cfg[t][5], cfg[t][6], cfg[t][7],
                               0, 0, 1, 0, 0, 0, 0, 0};
        d.OH = (d.H + 2 * d.pad - d.k) / d.stride + 1, d.OW = (d.W + 2 * d.pad - d.k) / d.stride + 1;
        if (cfg[t][8] == 1) d.res_c = d.cout, d.res_pad = 0, d.res_stride = 1, d.res_H = d.OH, d.res_W = d.OW;
        if (cfg[t][8] == 2) d.res_c = d.cin, d.res_pad = d.cout / 4, d.res_stride = 2, d.res_H = d.H, d.res_W = d.W;
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * d.k * d.k, Nr = (size_t)d.n * d.res_c * d.res_H * d.res_W;
        float *x = frand(Nx, 1.0f, 700 + t), *w = frand(Nw, 0.3f, 710 + t), *b = frand(d.cout, 1.0f, 720 + t);
        float *res = cfg[t][8] ? frand(Nr, 1.0f, 730 + t) : NULL, *dy = frand(Ny, 1.0f, 740 + t);
        float *mask = frand(Ny, 1.0f, 750 + t), *y = fa(Ny), *dx = fa(Nx), *dxm = fa(Nx);
        size_t wf = CLPDD_CONV2D_WORK(&d, d.n);
        float *work = fa(wf);
        cpu->conv2d(y, work, wf, x, w, b, res, &d);
        cpu->conv2d_backward(dx, work, wf, dy, NULL, w, &d);
        cpu->conv2d_backward(dxm, work, wf, dy, mask, w, &d);
        float *dX = dput(x, Nx), *dW = dput(w, Nw), *dB = dput(b, d.cout), *dR = res ? dput(res, Nr) : NULL;
        float *dDY = dput(dy, Ny), *dM = dput(mask, Ny);
        const int gs[2] = {1, d.n};
        for (int q = 0; q < 2; q++) {
            size_t wq = CLPDD_CONV2D_WORK(&d, gs[q]);
            float *dwork = dpoison(wq), *o = dpoison(Ny);
            char what[96];
            dev->conv2d(o, dwork, wq, dX, dW, dB, dR, &d);
            snprintf(what, sizeof what, "conv2d case %d group %d", t, gs[q]);
            EXPECT_CLOSE(what, o, y, Ny, TOL_RED);
            float *g = dpoison(Nx);
            dev->conv2d_backward(g, dwork, wq, dDY, NULL, dW, &d);
            snprintf(what, sizeof what, "conv2d_backward case %d group %d", t, gs[q]);
            EXPECT_CLOSE(what, g, dx, Nx, TOL_RED);
            g = dpoison(Nx);
            dev->conv2d_backward(g, dwork, wq, dDY, dM, dW, &d);
            snprintf(what, sizeof what, "conv2d_backward masked case %d group %d", t, gs[q]);
            EXPECT_CLOSE(what, g, dxm, Nx, TOL_RED);
        }
        free(x), free(w), free(b), free(res), free(dy), free(mask), free(y), free(dx), free(dxm), free(work);
    }
    done();
}
