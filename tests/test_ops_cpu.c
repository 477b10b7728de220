/* CPU reference backend (core/cpu) against naive float64 references written here.
 *
 * Forward ops: normalised error ‖op − ref‖₂/‖ref‖₂ against a float64 transcription of the
 * ops.h comment, computed from the same (float-rounded) inputs, so the error measures only
 * the op's float32 arithmetic. Backward ops: float64 central finite differences of the float64
 * reference forward (h = 1e-5: truncation O(h²·f''') ≈ 1e-10 and round-off O(1e-16/h) ≈ 1e-11,
 * so the FD gradient is exact to far below float32 precision), or, for linear ops, the adjoint
 * identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩. Outputs are poisoned with NaN before each call so an
 * unwritten element fails the comparison (test_rel_err returns +Inf on NaN).
 *
 * Threshold rationale (float32 unit roundoff u ≈ 6e-8):
 *   TOL_EXACT 0      data movement (copies, patchify, gather): bit-exact.
 *   TOL_ELEM  1e-6   one or two float ops per element (+ libm's ≤ 2 ulp).
 *   TOL_RED   1e-5   dot products / row reductions of ≤ a few hundred terms: error grows
 *                    like √K·u ≈ 1e-6 in practice, K·u ≈ 1e-5 worst case.
 *   TOL_GRAD  1e-5   backward passes: a chain of 2-4 reductions, plus cancellation in
 *                    (dy − Σ dy⊙y) and (g − mean g − x̂·mean(g x̂)) amplifying relative error;
 *                    observed ≤ 2e-7 at these sizes, so 50× headroom for other BLAS/libm
 *                    kernels, while any wrong or missing term (≥ 1e-3 relative) fails.
 *   TOL_ADJ   1e-5   adjoint identity, normalised by Σ|Ax|·|y| (no cancellation in the scale).
 * Dimension legend: n batch, C channels, H/W height/width, T tokens, Hh heads, hd head dim. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "cpu/ops_cpu_conv_direct.h"
#include "cpu/ops_cpu_winograd.h"
#include "numerics/attention_tile.h"
#include "numerics/philox.h"
#include "support.h"

#define TOL_ELEM 1e-6
#define TOL_RED 1e-5
#define TOL_GRAD 1e-5
#define TOL_ADJ 1e-5
#define FD_H 1e-5

static const clpdd_ops *O;
static void setup(void) { O = clpdd_ops_cpu(); }
TestSuite(ops_cpu, .init = setup);

/* ---- helpers ---- */
static float *fa(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *da(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static void poison(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = NAN; }
static float *frand(size_t n, float std, uint64_t seed) { float *x = fa(n); test_fill_normal(x, n, std, seed); return x; }
static double *f2d(const float *x, size_t n) { double *d = da(n); for (size_t i = 0; i < n; i++) d[i] = x[i]; return d; }
static double ddot(const float *a, const float *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i]; return s; }
static double dabsdot(const float *a, const float *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += fabs((double)a[i] * b[i]); return s; }
static double ddotd(const double *a, const double *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s; }

/* relative error of a float result against a float64 reference, asserting ≤ tol */
#define CHECK_ERR(a, ref, n, tol, what)                                                        \
    do {                                                                                       \
        double e_ = test_rel_err_fd((a), (ref), (n));                                          \
        cr_assert(e_ <= (tol), "%s: normalised error %.3g > %.3g", (what), e_, (double)(tol)); \
    } while (0)

/* adjoint identity |⟨fwd, y⟩ − ⟨x, bwd⟩| / Σ|fwd·y| ≤ TOL_ADJ */
#define CHECK_ADJ(fwd, y, ny, x, bwd, nx, what)                                                 \
    do {                                                                                       \
        double l_ = ddot((fwd), (y), (ny)), r_ = ddot((x), (bwd), (nx));                        \
        double s_ = dabsdot((fwd), (y), (ny));                                                 \
        cr_assert(isfinite(r_) && fabs(l_ - r_) <= TOL_ADJ * s_, "%s: <Ax,y> = %.9g, <x,A'y> = %.9g", \
                  (what), l_, r_);                                                             \
    } while (0)

/* ---- table and memory ---- */
Test(ops_cpu, table_is_complete) {
    cr_assert_str_eq(O->name, "cpu");
    cr_assert_eq(O->is_device, 0);
    /* every member after name/is_device is a function pointer */
    const char *p = (const char *)&O->malloc, *end = (const char *)(O + 1);
    for (int i = 0; p < end; p += sizeof(void (*)(void)), i++) {
        void (*fn)(void);
        memcpy(&fn, p, sizeof fn);
        cr_assert(fn != NULL, "op slot %d is NULL", i);
    }
    cr_assert_eq(clpdd_ops_cpu(), O);
}

Test(ops_cpu, malloc_peak_and_copies) {
    size_t p0 = O->peak_bytes();
    cr_assert_eq(p0, 0, "fresh process should start with peak 0, got %zu", p0);
    float *a = O->malloc(1000 * sizeof(float));
    cr_assert(a && ((uintptr_t)a % 64) == 0);
    cr_assert_eq(O->peak_bytes(), 4000);
    O->free(a);
    char *b = O->malloc(500);
    cr_assert_eq(O->peak_bytes(), 4000); /* high-water mark stays */
    char *c = O->malloc(3700);
    cr_assert_eq(O->peak_bytes(), 4200); /* 500 + 3700 in use */
    void *z = O->malloc(0);
    cr_assert(z != NULL);
    O->free(z);
    O->free(NULL);
    float src[5] = {1, 2, 3, 4, 5}, dst[5] = {0};
    float *dev = O->malloc(sizeof src);
    O->to_device(dev, src, sizeof src);
    O->copy(dev + 1, dev, 2 * sizeof(float)); /* overlapping device→device copy */
    O->to_host(dst, dev, sizeof dst);
    O->synchronize();
    float want[5] = {1, 1, 2, 4, 5};
    cr_assert_arr_eq(dst, want, sizeof dst);
    O->free(dev);
    O->free(b);
    O->free(c);
    cr_assert_eq(O->peak_bytes(), 4220); /* dev's 20 bytes came on top of 4200 */
}

/* ---- elementwise ---- */
Test(ops_cpu, elementwise) {
    enum { N = 1003 };
    float *x = frand(N, 2, 1), *y = frand(N, 2, 2), *o = fa(N);
    double *r = da(N);
    O->fill(o, 3.5f, N);
    for (int i = 0; i < N; i++) r[i] = 3.5;
    CHECK_ERR(o, r, N, 0, "fill");
    memcpy(o, x, sizeof(float) * N);
    O->scale(o, -0.3f, N);
    for (int i = 0; i < N; i++) r[i] = -0.3 * x[i];
    CHECK_ERR(o, r, N, TOL_ELEM, "scale");
    memcpy(o, y, sizeof(float) * N);
    O->axpy(o, 0.7f, x, N);
    for (int i = 0; i < N; i++) r[i] = y[i] + 0.7 * x[i];
    CHECK_ERR(o, r, N, TOL_ELEM, "axpy");
    poison(o, N);
    O->axpby(o, 0.7f, x, -1.5f, y, N);
    for (int i = 0; i < N; i++) r[i] = 0.7 * x[i] - 1.5 * y[i];
    CHECK_ERR(o, r, N, TOL_ELEM, "axpby");
    float *xa = fa(N), *ya = fa(N);
    memcpy(xa, x, sizeof(float) * N);
    memcpy(ya, y, sizeof(float) * N);
    O->axpby(xa, 0.7f, xa, -1.5f, y, N); /* out aliases x */
    O->axpby(ya, 0.7f, x, -1.5f, ya, N); /* out aliases y */
    CHECK_ERR(xa, r, N, TOL_ELEM, "axpby out=x");
    CHECK_ERR(ya, r, N, TOL_ELEM, "axpby out=y");
    poison(o, N);
    O->mul(o, x, y, N);
    for (int i = 0; i < N; i++) r[i] = (double)x[i] * y[i];
    CHECK_ERR(o, r, N, TOL_ELEM, "mul");
    memcpy(o, x, sizeof(float) * N);
    O->clamp(o, -1.0f, 0.5f, N);
    for (int i = 0; i < N; i++) r[i] = fmin(fmax(x[i], -1.0), 0.5);
    CHECK_ERR(o, r, N, 0, "clamp");
    poison(o, N);
    O->sigmoid(o, x, N);
    for (int i = 0; i < N; i++) r[i] = 1 / (1 + exp(-(double)x[i]));
    CHECK_ERR(o, r, N, TOL_ELEM, "sigmoid");
    free(x), free(y), free(o), free(r), free(xa), free(ya);
}

/* ---- 2-D layout ---- */
Test(ops_cpu, copy2d_add2d_broadcast) {
    enum { R = 7, Cc = 5, LDD = 9, LDS = 6 };
    float *src = frand(R * LDS, 1, 3), *dst = fa(R * LDD);
    double *r = da(R * LDD);
    for (int lds = 0; lds <= LDS; lds += LDS) { /* 0 broadcasts row 0 */
        for (int i = 0; i < R * LDD; i++) dst[i] = r[i] = 1000 + i; /* sentinels in the gaps */
        O->copy2d(dst, LDD, src, lds, R, Cc);
        for (int i = 0; i < R; i++)
            for (int c = 0; c < Cc; c++) r[i * LDD + c] = src[i * lds + c];
        CHECK_ERR(dst, r, R * LDD, 0, lds ? "copy2d" : "copy2d lds=0");
        O->add2d(dst, LDD, src, lds, R, Cc);
        for (int i = 0; i < R; i++)
            for (int c = 0; c < Cc; c++) r[i * LDD + c] += src[i * lds + c];
        CHECK_ERR(dst, r, R * LDD, 0, lds ? "add2d" : "add2d lds=0");
    }
    free(src), free(dst), free(r);
}

Test(ops_cpu, sum_rows_gather) {
    enum { R = 37, Cc = 300 }; /* more than one 256-column block */
    float *x = frand(R * Cc, 1, 4), *o = fa(Cc), *o0 = frand(Cc, 1, 5);
    double *r = da(Cc);
    poison(o, Cc);
    O->sum_rows(o, x, R, Cc, 0.0f); /* beta = 0 must not read the NaNs */
    for (int c = 0; c < Cc; c++) { r[c] = 0; for (int i = 0; i < R; i++) r[c] += x[i * Cc + c]; }
    CHECK_ERR(o, r, Cc, TOL_RED, "sum_rows beta=0");
    memcpy(o, o0, sizeof(float) * Cc);
    O->sum_rows(o, x, R, Cc, 0.5f);
    for (int c = 0; c < Cc; c++) r[c] += 0.5 * o0[c];
    CHECK_ERR(o, r, Cc, TOL_RED, "sum_rows beta=0.5");

    int32_t idx[4] = {5, 0, 36, 5};
    float *g = fa(4 * Cc);
    double *gr = da(4 * Cc);
    poison(g, 4 * Cc);
    O->gather_rows(g, x, idx, 4, Cc);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < Cc; c++) gr[i * Cc + c] = x[idx[i] * Cc + c];
    CHECK_ERR(g, gr, 4 * Cc, 0, "gather_rows");
    free(x), free(o), free(o0), free(r), free(g), free(gr);
}

Test(ops_cpu, channel_affine) {
    enum { n = 3, C = 4, HW = 10, N = n * C * HW };
    float *x = frand(N, 1, 6), *sc = frand(C, 1, 7), *sh = frand(C, 1, 8), *y = fa(N), *dy = frand(N, 1, 9),
          *dx = fa(N);
    double *r = da(N);
    for (int i = 0; i < N; i++) r[i] = (double)x[i] * sc[(i / HW) % C] + sh[(i / HW) % C];
    poison(y, N);
    O->channel_affine(y, x, sc, sh, n, C, HW);
    CHECK_ERR(y, r, N, TOL_ELEM, "channel_affine");
    memcpy(y, x, sizeof(float) * N);
    O->channel_affine(y, y, sc, sh, n, C, HW); /* y aliases x */
    CHECK_ERR(y, r, N, TOL_ELEM, "channel_affine in place");
    /* backward: adjoint of the linear part x ↦ x·scale[c] */
    float *zero = fa(C);
    O->channel_affine(y, x, sc, zero, n, C, HW);
    poison(dx, N);
    O->channel_affine_backward(dx, dy, sc, n, C, HW);
    CHECK_ADJ(y, dy, N, x, dx, N, "channel_affine_backward");
    free(x), free(sc), free(sh), free(y), free(dy), free(dx), free(r), free(zero);
}

/* ---- reductions ---- */
Test(ops_cpu, reductions) {
    enum { N = 100001 };
    float *x = frand(N, 1, 10), *y = frand(N, 1, 11);
    double d = 0, s = 0;
    for (int i = 0; i < N; i++) d += (double)x[i] * y[i], s += x[i];
    cr_assert(fabs(O->dot(x, y, N) - d) <= 1e-9 * dabsdot(x, y, N), "dot");
    double sa = 0;
    for (int i = 0; i < N; i++) sa += fabs(x[i]);
    cr_assert(fabs(O->sum(x, N) - s) <= 1e-9 * sa, "sum");
    cr_assert_eq(O->all_finite(x, N), 1);
    x[N / 2] = NAN;
    cr_assert_eq(O->all_finite(x, N), 0);
    x[N / 2] = -INFINITY;
    cr_assert_eq(O->all_finite(x, N), 0);
    cr_assert_eq(O->all_finite(x, 0), 1);
    cr_assert_eq(O->dot(x, y, 0), 0.0);
    free(x), free(y);
}

/* ---- BLAS / LAPACK ---- */
/* C (M, N) = alpha·op(A)·op(B) + beta·C in float64 */
static void ref_gemm(double *C, int tA, int tB, int M, int N, int K, double alpha, const float *A, int lda,
                     const float *B, int ldb, double beta, const float *C0, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(tA ? A[k * lda + i] : A[i * lda + k]) * (tB ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C0[i * ldc + j]);
        }
}

Test(ops_cpu, gemm_all_transposes) {
    enum { M = 13, N = 17, K = 29 };
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++)
            for (int bz = 0; bz < 2; bz++) {
                int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 2, ldc = N + 5;
                int ar = tA ? K : M, br = tB ? N : K;
                float *A = frand(ar * lda, 1, 20 + tA), *B = frand(br * ldb, 1, 22 + tB);
                float *C = frand(M * ldc, 1, 24);
                double *R = da(M * ldc);
                float beta = bz ? 0.0f : -0.5f;
                for (int i = 0; i < M * ldc; i++) R[i] = C[i]; /* the gaps must stay */
                if (bz)
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) C[i * ldc + j] = R[i * ldc + j] = NAN;
                float *C0 = fa(M * ldc);
                memcpy(C0, C, sizeof(float) * M * ldc);
                ref_gemm(R, tA, tB, M, N, K, 1.3, A, lda, B, ldb, beta, C0, ldc);
                O->gemm(tA, tB, M, N, K, 1.3f, A, lda, B, ldb, beta, C, ldc);
                char what[64];
                snprintf(what, sizeof what, "gemm tA=%d tB=%d beta=%g", tA, tB, beta);
                CHECK_ERR(C, R, M * ldc, TOL_RED, what);
                free(A), free(B), free(C), free(C0), free(R);
            }
}

/* the products libxsmm takes when clpdd is built with it (the default; $CLPDD_SMALL_GEMM = blas turns it off) (alpha 1, beta 0
   or 1, tA = 0, N and K ≤ 1024; core/cpu/ops_cpu_blas.c; OpenBLAS's otherwise): the mini ViT's layer
   shapes, row counts that leave a partial 64-row block or none, a K beyond the ViT's, a transposed B
   (copied before the kernel), beta = 0 never reading C. Criterion runs each test in its own process,
   so the variable is set before the first product reads it. */
Test(ops_cpu, gemm_small_products) {
    setenv("CLPDD_SMALL_GEMM", "xsmm", 1);
    static const int shapes[][3] = {{13, 17, 29}, {200, 64, 64}, {130, 192, 64}, {71, 64, 768}, {64, 16, 64}};
    for (int s = 0; s < 5; s++)
        for (int tB = 0; tB < 2; tB++)
            for (int bz = 0; bz < 2; bz++) {
                const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                const int lda = K + 3, ldb = (tB ? K : N) + 2, ldc = N + 5;
                float *A = frand(M * lda, 1, 40 + s), *B = frand((tB ? N : K) * ldb, 1, 50 + s);
                float *C = frand(M * ldc, 1, 60 + s), *C0 = fa(M * ldc);
                double *R = da(M * ldc);
                const float beta = bz ? 0.0f : 1.0f;
                for (int i = 0; i < M * ldc; i++) R[i] = C[i]; /* the gaps must stay */
                if (bz)
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) C[i * ldc + j] = R[i * ldc + j] = NAN;
                memcpy(C0, C, sizeof(float) * M * ldc);
                ref_gemm(R, 0, tB, M, N, K, 1.0, A, lda, B, ldb, beta, C0, ldc);
                O->gemm(0, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
                char what[80];
                snprintf(what, sizeof what, "gemm %dx%dx%d tB=%d beta=%g", M, N, K, tB, beta);
                CHECK_ERR(C, R, M * ldc, TOL_RED, what);
                free(A), free(B), free(C), free(C0), free(R);
            }
}

/* the libxsmm path runs its partial last block of rows as one more item of the pool's job (core/cpu/
   ops_cpu_blas.c): every row must come out as when the full blocks and the partial one are separate
   calls (the mini ViT's m = 10: 500 rows, 7 full blocks of 64 and 52 rows), for both transposes and
   both betas, above the pool's threshold */
Test(ops_cpu, gemm_small_partial_block_on_the_pool) {
    setenv("CLPDD_SMALL_GEMM", "xsmm", 1);
    static const int shapes[][3] = {{500, 768, 64}, {500, 64, 256}, {130, 128, 64}};
    for (int s = 0; s < 3; s++)
        for (int tB = 0; tB < 2; tB++)
            for (int bz = 0; bz < 2; bz++) {
                const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], Mf = M / 64 * 64;
                const int ldb = tB ? K : N;
                const float beta = bz ? 0.0f : 1.0f;
                float *A = frand(M * K, 1, 70 + s), *B = frand((tB ? N : K) * ldb, 1, 75 + s);
                float *C = frand(M * N, 1, 80 + s), *C1 = fa(M * N);
                memcpy(C1, C, sizeof(float) * M * N);
                O->gemm(0, tB, M, N, K, 1.0f, A, K, B, ldb, beta, C, N);
                O->gemm(0, tB, Mf, N, K, 1.0f, A, K, B, ldb, beta, C1, N);
                O->gemm(0, tB, M - Mf, N, K, 1.0f, A + Mf * K, K, B, ldb, beta, C1 + Mf * N, N);
                cr_assert_arr_eq(C, C1, sizeof(float) * M * N, "gemm %dx%dx%d tB=%d beta=%g: one call against blocks",
                                 M, N, K, tB, beta);
                free(A), free(B), free(C), free(C1);
            }
}

Test(ops_cpu, gemm_degenerate) {
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {NAN}, B[1] = {NAN};
    O->gemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C, 3); /* K = 0: C = beta·C */
    float want[6] = {2, 4, 6, 8, 10, 12};
    cr_assert_arr_eq(C, want, sizeof C);
    O->gemm(0, 0, 0, 3, 4, 1.0f, A, 4, B, 3, 2.0f, C, 3); /* M = 0: nothing */
    O->gemm(1, 1, 2, 0, 4, 1.0f, A, 2, B, 4, 2.0f, C, 3);
    cr_assert_arr_eq(C, want, sizeof C);
}

Test(ops_cpu, gemm_batched) {
    enum { M = 5, N = 6, K = 7, BATCH = 3 };
    int lda = M + 1, ldb = N, ldc = N + 2; /* tA = 1, tB = 0 */
    long long sA = K * lda + 4, sB = K * ldb + 1, sC = M * ldc + 3;
    float *A = frand(BATCH * sA, 1, 30), *B = frand(BATCH * sB, 1, 31), *C = fa(BATCH * sC);
    double *R = da(BATCH * sC);
    for (int i = 0; i < BATCH * sC; i++) C[i] = R[i] = 7; /* gaps keep 7 */
    for (int b = 0; b < BATCH; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[b * sC + i * ldc + j] = NAN;
    for (int b = 0; b < BATCH; b++)
        ref_gemm(R + b * sC, 1, 0, M, N, K, 0.5, A + b * sA, lda, B + b * sB, ldb, 0, NULL, ldc);
    O->gemm_batched(1, 0, M, N, K, 0.5f, A, lda, sA, B, ldb, sB, 0.0f, C, ldc, sC, BATCH);
    CHECK_ERR(C, R, BATCH * sC, TOL_RED, "gemm_batched");
    free(A), free(B), free(C), free(R);
}

Test(ops_cpu, syrk_both_trans) {
    enum { N = 11, K = 19 };
    for (int tr = 0; tr < 2; tr++) {
        int lda = (tr ? N : K) + 2, ldc = N + 3;
        float *A = frand((tr ? K : N) * lda, 1, 40 + tr), *C = fa(N * ldc), *C0 = fa(N * ldc);
        double *R = da(N * ldc);
        /* symmetric start for beta ≠ 0, sentinels in the gaps */
        for (int i = 0; i < N * ldc; i++) C0[i] = 9;
        float *s = frand(N * N, 1, 42);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) C0[i * ldc + j] = s[i * N + j] + s[j * N + i];
        memcpy(C, C0, sizeof(float) * N * ldc);
        /* C = alpha·A·Aᵀ (tr 0) or alpha·Aᵀ·A (tr 1) + beta·C, via ref_gemm with B = A */
        ref_gemm(R, tr, !tr, N, N, K, 0.8, A, lda, A, lda, 0.25, C0, ldc);
        for (int i = 0; i < N; i++)
            for (int j = N; j < ldc; j++) R[i * ldc + j] = 9;
        O->syrk(tr, N, K, 0.8f, A, lda, 0.25f, C, ldc);
        CHECK_ERR(C, R, N * ldc, TOL_RED, tr ? "syrk trans=1" : "syrk trans=0");
        free(A), free(C), free(C0), free(R), free(s);
    }
}

Test(ops_cpu, potrf_potrs) {
    enum { N = 24, LDA = 27, NRHS = 3, LDB = 5 };
    float *M = frand(N * N, 1, 50), *A = fa(N * LDA), *L = fa(N * LDA), *B = frand(N * LDB, 1, 51), *X = fa(N * LDB);
    double *Ad = da(N * N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = i == j ? N : 0;
            for (int k = 0; k < N; k++) s += (double)M[i * N + k] * M[j * N + k];
            A[i * LDA + j] = (float)s;
            Ad[i * N + j] = A[i * LDA + j];
        }
    memcpy(L, A, sizeof(float) * N * LDA);
    cr_assert_eq(O->potrf(L, N, LDA), 0);
    /* L·Lᵀ = A on the lower triangle */
    double num = 0, den = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = 0; k <= j; k++) s += (double)L[i * LDA + k] * L[j * LDA + k];
            num += (s - Ad[i * N + j]) * (s - Ad[i * N + j]);
            den += Ad[i * N + j] * Ad[i * N + j];
        }
    cr_assert(sqrt(num / den) < TOL_RED, "L·Lᵀ − A: %.3g", sqrt(num / den));
    memcpy(X, B, sizeof(float) * N * LDB);
    O->potrs(L, N, LDA, X, NRHS, LDB);
    /* residual ‖A·X − B‖/(‖A‖‖X‖): backward-stable solve ⇒ O(N·u) */
    double rn = 0, an = 0, xn = 0;
    for (int i = 0; i < N * N; i++) an += Ad[i] * Ad[i];
    for (int i = 0; i < N; i++)
        for (int r = 0; r < NRHS; r++) {
            double s = 0;
            for (int k = 0; k < N; k++) s += Ad[i * N + k] * X[k * LDB + r];
            rn += (s - B[i * LDB + r]) * (s - B[i * LDB + r]);
            xn += (double)X[i * LDB + r] * X[i * LDB + r];
        }
    cr_assert(sqrt(rn) / sqrt(an * xn) < TOL_RED, "potrs residual %.3g", sqrt(rn) / sqrt(an * xn));
    for (int i = 0; i < N; i++) /* the column beyond nrhs is untouched */
        for (int r = NRHS; r < LDB; r++) cr_assert_eq(X[i * LDB + r], B[i * LDB + r]);

    /* not positive definite: diag(1, 2, −1, 4) fails at the leading minor of order 3 */
    float D[16] = {1, 0, 0, 0, 0, 2, 0, 0, 0, 0, -1, 0, 0, 0, 0, 4};
    cr_assert_eq(O->potrf(D, 4, 4), 3);
    /* non-finite input is a failure at the first non-finite pivot, not an abort */
    float Nn[9] = {4, 0, 0, 1, 4, 0, 0, NAN, 4};
    cr_assert_eq(O->potrf(Nn, 3, 3), 3);
    float In[4] = {INFINITY, 0, 0, 1};
    cr_assert_eq(O->potrf(In, 2, 2), 1);
    cr_assert_eq(O->potrf(D, 0, 1), 0);
    free(M), free(A), free(L), free(B), free(X), free(Ad);
}

/* ---- activations ---- */
static double ref_gelu(double x, int kind) {
    switch (kind) {
    case CLPDD_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case CLPDD_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return x / (1 + exp(-1.702 * x));
    }
}
typedef struct { size_t n; int kind; const double *G; } act_ctx;
static double f_gelu(const double *x, void *vc) {
    act_ctx *c = vc;
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += c->G[i] * ref_gelu(x[i], c->kind);
    return s;
}
static double f_relu(const double *x, void *vc) {
    act_ctx *c = vc;
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += c->G[i] * (x[i] > 0 ? x[i] : 0);
    return s;
}

Test(ops_cpu, relu_forward_backward) {
    enum { N = 501 };
    float *x = frand(N, 1, 60), *dy = frand(N, 1, 61), *y = fa(N), *dx = fa(N);
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f; /* keep FD away from the kink */
    double *r = da(N), *xd = f2d(x, N), *G = f2d(dy, N), *g = da(N);
    for (int i = 0; i < N; i++) r[i] = x[i] > 0 ? x[i] : 0;
    poison(y, N);
    O->relu(y, x, N);
    CHECK_ERR(y, r, N, 0, "relu");
    act_ctx c = {N, 0, G};
    test_fd_grad(g, f_relu, xd, N, FD_H, &c);
    poison(dx, N);
    O->relu_backward(dx, dy, x, N);
    CHECK_ERR(dx, g, N, TOL_ELEM, "relu_backward");
    O->relu_backward(dy, dy, x, N); /* dx aliases dy */
    CHECK_ERR(dy, g, N, TOL_ELEM, "relu_backward in place");
    free(x), free(dy), free(y), free(dx), free(r), free(xd), free(G), free(g);
}

Test(ops_cpu, gelu_three_kinds) {
    enum { N = 400 };
    float *x = frand(N, 2, 62), *dy = frand(N, 1, 63), *y = fa(N), *dx = fa(N);
    double *r = da(N), *xd = f2d(x, N), *G = f2d(dy, N), *g = da(N);
    for (int kind = 0; kind < CLPDD_GELU_COUNT; kind++) {
        char what[32];
        for (int i = 0; i < N; i++) r[i] = ref_gelu(x[i], kind);
        poison(y, N);
        O->gelu(y, x, N, kind);
        snprintf(what, sizeof what, "gelu kind %d", kind);
        CHECK_ERR(y, r, N, TOL_ELEM * 4, what); /* erff/tanhf/expf: a few ulp */
        act_ctx c = {N, kind, G};
        test_fd_grad(g, f_gelu, xd, N, FD_H, &c);
        poison(dx, N);
        O->gelu_backward(dx, dy, x, N, kind);
        snprintf(what, sizeof what, "gelu_backward kind %d", kind);
        CHECK_ERR(dx, g, N, TOL_RED, what); /* per element, a handful of float ops */
    }
    free(x), free(dy), free(y), free(dx), free(r), free(xd), free(G), free(g);
}

/* ---- rows ---- */
static void ref_softmax(double *y, const double *x, int cols, double scale) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < cols; c++) m = fmax(m, scale * x[c]);
    for (int c = 0; c < cols; c++) s += (y[c] = exp(scale * x[c] - m));
    for (int c = 0; c < cols; c++) y[c] /= s;
}
typedef struct { int rows, cols; double scale; const double *G; } rows_ctx;
static double f_softmax(const double *x, void *vc) {
    rows_ctx *c = vc;
    double s = 0, *y = da(c->cols);
    for (int r = 0; r < c->rows; r++) {
        ref_softmax(y, x + r * c->cols, c->cols, c->scale);
        for (int j = 0; j < c->cols; j++) s += c->G[r * c->cols + j] * y[j];
    }
    free(y);
    return s;
}

Test(ops_cpu, softmax_rows) {
    enum { R = 9, Cc = 33, N = R * Cc };
    float *x = frand(N, 3, 70), *y = fa(N), *dy = frand(N, 1, 71), *dx = fa(N);
    double *r = da(N), *xd = f2d(x, N), *G = f2d(dy, N), *g = da(N);
    for (int i = 0; i < R; i++) ref_softmax(r + i * Cc, xd + i * Cc, Cc, 0.7);
    poison(y, N);
    O->softmax_rows(y, x, R, Cc, 0.7f);
    CHECK_ERR(y, r, N, TOL_RED, "softmax_rows");
    float *ya = fa(N);
    memcpy(ya, x, sizeof(float) * N);
    O->softmax_rows(ya, ya, R, Cc, 0.7f);
    CHECK_ERR(ya, r, N, TOL_RED, "softmax_rows in place");
    rows_ctx c = {R, Cc, 0.7, G};
    test_fd_grad(g, f_softmax, xd, N, FD_H, &c);
    poison(dx, N);
    O->softmax_rows_backward(dx, dy, y, R, Cc, 0.7f);
    CHECK_ERR(dx, g, N, TOL_GRAD, "softmax_rows_backward");
    free(x), free(y), free(dy), free(dx), free(r), free(xd), free(G), free(g), free(ya);
}

typedef struct { int rows, cols; double inv_tau, gs; const int32_t *lab; } ce_ctx;
static double ref_ce_row(const double *z, int cols, double inv_tau, int y) {
    double m = -INFINITY, s = 0;
    for (int c = 0; c < cols; c++) m = fmax(m, inv_tau * z[c]);
    for (int c = 0; c < cols; c++) s += exp(inv_tau * z[c] - m);
    return m + log(s) - inv_tau * z[y];
}
static double f_ce(const double *z, void *vc) {
    ce_ctx *c = vc;
    double s = 0;
    for (int r = 0; r < c->rows; r++) s += ref_ce_row(z + r * c->cols, c->cols, c->inv_tau, c->lab[r]);
    return c->gs * s;
}

Test(ops_cpu, cross_entropy) {
    enum { R = 12, Cc = 10, N = R * Cc };
    float *z = frand(N, 3, 80), *loss = fa(R), *dz = fa(N);
    int32_t lab[R];
    for (int i = 0; i < R; i++) lab[i] = (i * 7) % Cc;
    double *zd = f2d(z, N), *lr = da(R), *g = da(N);
    const double inv_tau = 2.0, gs = 1.0 / R;
    for (int i = 0; i < R; i++) lr[i] = ref_ce_row(zd + i * Cc, Cc, inv_tau, lab[i]);
    ce_ctx c = {R, Cc, inv_tau, gs, lab};
    test_fd_grad(g, f_ce, zd, N, FD_H, &c);
    poison(loss, R), poison(dz, N);
    O->cross_entropy(loss, dz, z, lab, R, Cc, (float)inv_tau, (float)gs);
    CHECK_ERR(loss, lr, R, TOL_RED, "cross_entropy loss");
    CHECK_ERR(dz, g, N, TOL_GRAD, "cross_entropy dz");
    poison(loss, R);
    O->cross_entropy(loss, NULL, z, lab, R, Cc, (float)inv_tau, (float)gs);
    CHECK_ERR(loss, lr, R, TOL_RED, "cross_entropy loss only");
    poison(dz, N);
    O->cross_entropy(NULL, dz, z, lab, R, Cc, (float)inv_tau, (float)gs);
    CHECK_ERR(dz, g, N, TOL_GRAD, "cross_entropy dz only");
    free(z), free(loss), free(dz), free(zd), free(lr), free(g);
}

/* cross_entropy hands blocks of rows to the pool (core/cpu/ops_cpu_nn.c): above its threshold, with a
   partial block, every row's loss and dz must be bit-equal to a call on that row alone, dz in place too */
Test(ops_cpu, cross_entropy_pool_rows_match_single_rows) {
    enum { R = 2050, Cc = 10, N = R * Cc };
    float *z = frand(N, 3, 280), *loss = fa(R), *dz = fa(N), *loss1 = fa(R), *dz1 = fa(N);
    int32_t *lab = malloc(sizeof(int32_t) * R);
    for (int i = 0; i < R; i++) lab[i] = (i * 7) % Cc;
    O->cross_entropy(loss, dz, z, lab, R, Cc, 10.0f, 1.0f / R);
    for (int r = 0; r < R; r++) O->cross_entropy(loss1 + r, dz1 + r * Cc, z + r * Cc, lab + r, 1, Cc, 10.0f, 1.0f / R);
    cr_assert_arr_eq(loss, loss1, sizeof(float) * R, "cross_entropy loss on the pool");
    cr_assert_arr_eq(dz, dz1, sizeof(float) * N, "cross_entropy dz on the pool");
    O->cross_entropy(NULL, z, z, lab, R, Cc, 10.0f, 1.0f / R); /* dz = z in place */
    cr_assert_arr_eq(z, dz1, sizeof(float) * N, "cross_entropy dz in place");
    free(z), free(loss), free(dz), free(loss1), free(dz1), free(lab);
}

Test(ops_cpu, onehot_argmax) {
    int32_t lab[3] = {2, 0, 3};
    float Y[12];
    poison(Y, 12);
    O->onehot(Y, lab, 3, 4, 0.9f, -0.1f);
    float want[12] = {-0.1f, -0.1f, 0.9f, -0.1f, 0.9f, -0.1f, -0.1f, -0.1f, -0.1f, -0.1f, -0.1f, 0.9f};
    cr_assert_arr_eq(Y, want, sizeof Y);
    float x[12] = {1, 5, 5, 2, /* tie: first */ -3, -1, -2, -1, 0, 0, 0, 7};
    int32_t am[3] = {-9, -9, -9}, wam[3] = {1, 1, 3};
    O->argmax_rows(am, x, 3, 4);
    cr_assert_arr_eq(am, wam, sizeof am);
}

/* layernorm: x, gamma, beta packed into one vector for FD */
typedef struct { int rows, cols; double eps; const double *G; } ln_ctx;
static void ref_layernorm(double *y, double *mu, double *rs, const double *x, const double *ga, const double *be,
                          int rows, int cols, double eps) {
    for (int r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int c = 0; c < cols; c++) m += x[r * cols + c];
        m /= cols;
        for (int c = 0; c < cols; c++) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
        v /= cols;
        double s = 1 / sqrt(v + eps);
        for (int c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - m) * s * ga[c] + be[c];
        if (mu) mu[r] = m;
        if (rs) rs[r] = s;
    }
}
static double f_layernorm(const double *p, void *vc) {
    ln_ctx *c = vc;
    size_t N = (size_t)c->rows * c->cols;
    double *y = da(N);
    ref_layernorm(y, NULL, NULL, p, p + N, p + N + c->cols, c->rows, c->cols, c->eps);
    double s = ddotd(y, c->G, N);
    free(y);
    return s;
}

Test(ops_cpu, layernorm) {
    enum { R = 6, Cc = 150, N = R * Cc }; /* 150 > one 128-column block of dgamma */
    const float eps = 1e-5f;
    float *x = frand(N, 2, 90), *ga = frand(Cc, 1, 91), *be = frand(Cc, 1, 92), *y = fa(N), *mu = fa(R),
          *rs = fa(R), *dy = frand(N, 1, 93), *dx = fa(N);
    for (int i = 0; i < N; i++) x[i] += 0.5f * (i / Cc); /* row offsets */
    double *p = da(N + 2 * Cc), *yr = da(N), *mr = da(R), *sr = da(R), *G = f2d(dy, N), *g = da(N + 2 * Cc);
    for (int i = 0; i < N; i++) p[i] = x[i];
    for (int c = 0; c < Cc; c++) p[N + c] = ga[c], p[N + Cc + c] = be[c];
    ref_layernorm(yr, mr, sr, p, p + N, p + N + Cc, R, Cc, eps);
    poison(y, N), poison(mu, R), poison(rs, R);
    O->layernorm(y, mu, rs, x, ga, be, R, Cc, eps);
    CHECK_ERR(y, yr, N, TOL_RED, "layernorm y");
    CHECK_ERR(mu, mr, R, TOL_RED, "layernorm mean");
    CHECK_ERR(rs, sr, R, TOL_RED, "layernorm rstd");
    ln_ctx c = {R, Cc, eps, G};
    test_fd_grad(g, f_layernorm, p, N + 2 * Cc, FD_H, &c);
    float *dg = frand(Cc, 1, 94), *db = frand(Cc, 1, 95);
    double *dgr = da(Cc), *dbr = da(Cc);
    for (int k = 0; k < Cc; k++) dgr[k] = dg[k] + g[N + k], dbr[k] = db[k] + g[N + Cc + k]; /* += */
    poison(dx, N);
    O->layernorm_backward(dx, dg, db, dy, x, mu, rs, ga, R, Cc);
    CHECK_ERR(dx, g, N, TOL_GRAD, "layernorm_backward dx");
    CHECK_ERR(dg, dgr, Cc, TOL_GRAD, "layernorm_backward dgamma (+=)");
    CHECK_ERR(db, dbr, Cc, TOL_GRAD, "layernorm_backward dbeta (+=)");
    poison(dx, N);
    O->layernorm_backward(dx, NULL, NULL, dy, x, mu, rs, ga, R, Cc);
    CHECK_ERR(dx, g, N, TOL_GRAD, "layernorm_backward dx only");
    free(x), free(ga), free(be), free(y), free(mu), free(rs), free(dy), free(dx), free(p), free(yr), free(mr),
        free(sr), free(G), free(g), free(dg), free(db), free(dgr), free(dbr);
}

/* layernorm runs rows side by side (LN_GROUP in C, or 8 on AVX-512 when cols is a multiple of 8)
   and blocks of rows on the pool (core/cpu/ops_cpu_layernorm.c): every row's y, mean, rstd and dx
   must be bit-equal to a call on that row alone (which takes the portable one-row path), for a row
   count that leaves a partial group and a partial block, above the pool's threshold, and in place */
static void layernorm_rows_vs_single(int R, int Cc) {
    const int N = R * Cc;
    float *x = frand(N, 3, 180), *dy = frand(N, 1, 181), *ga = frand(Cc, 1, 182), *be = frand(Cc, 1, 183);
    float *y = fa(N), *y1 = fa(N), *mu = fa(R), *rs = fa(R), *mu1 = fa(R), *rs1 = fa(R), *dx = fa(N), *dx1 = fa(N);
    for (int i = 0; i < N; i++) x[i] += 0.25f * (float)(i / Cc % 7); /* row offsets */
    O->layernorm(y, mu, rs, x, ga, be, R, Cc, 1e-5f);
    for (int r = 0; r < R; r++) O->layernorm(y1 + r * Cc, mu1 + r, rs1 + r, x + r * Cc, ga, be, 1, Cc, 1e-5f);
    cr_assert_arr_eq(y, y1, sizeof(float) * N, "layernorm y grouped");
    cr_assert_arr_eq(mu, mu1, sizeof(float) * R, "layernorm mean grouped");
    cr_assert_arr_eq(rs, rs1, sizeof(float) * R, "layernorm rstd grouped");
    O->layernorm_backward(dx, NULL, NULL, dy, x, mu, rs, ga, R, Cc);
    for (int r = 0; r < R; r++)
        O->layernorm_backward(dx1 + r * Cc, NULL, NULL, dy + r * Cc, x + r * Cc, mu + r, rs + r, ga, 1, Cc);
    cr_assert_arr_eq(dx, dx1, sizeof(float) * N, "layernorm_backward dx grouped");
    memcpy(y1, x, sizeof(float) * N); /* y = x in place */
    O->layernorm(y1, NULL, NULL, y1, ga, be, R, Cc, 1e-5f);
    cr_assert_arr_eq(y, y1, sizeof(float) * N, "layernorm in place");
    memcpy(dx1, dy, sizeof(float) * N); /* dx = dy in place */
    O->layernorm_backward(dx1, NULL, NULL, dx1, x, mu, rs, ga, R, Cc);
    cr_assert_arr_eq(dx, dx1, sizeof(float) * N, "layernorm_backward in place");
    free(x), free(dy), free(ga), free(be), free(y), free(y1), free(mu), free(rs), free(mu1), free(rs1), free(dx),
        free(dx1);
}

Test(ops_cpu, layernorm_grouped_rows_match_single_rows) { layernorm_rows_vs_single(1003, 37); }
/* the AVX-512 kernels' widths: the mini ViT's 64, the MLP LayerNorm of a SwiGLU's 128·k, ViT-B's
   768, and 8 (one transposed block) */
Test(ops_cpu, layernorm_avx512_rows_match_single_rows) {
    const int widths[4] = {64, 8, 768, 136};
    for (int k = 0; k < 4; k++) layernorm_rows_vs_single(k == 2 ? 203 : 1003, widths[k]);
}

/* pieces_run (ABI 1.6, core/cpu/ops_cpu.c): every index in exactly one piece, pieces of at most
   `most` whose sizes differ by at most one, as many as a multiple of the slots where n allows; no two pieces running at once share a slot; and an op called inside a piece (the pool
   busy: it runs serially on that thread) gives what it gives alone */
typedef struct pieces_probe {
    int n, most, slots;
    atomic_int hits[1024], size_at[1024], busy[64], pieces, bad_slot;
    const float *x, *ga, *be;
    float *y;
    int cols;
} pieces_probe;

static void pieces_probe_fn(void *ctx, int first, int count, int slot) {
    pieces_probe *P = ctx;
    if (slot < 0 || slot >= P->slots || atomic_exchange(&P->busy[slot], 1)) atomic_store(&P->bad_slot, 1);
    atomic_fetch_add(&P->pieces, 1);
    atomic_store(&P->size_at[first], count);
    for (int i = first; i < first + count; i++) atomic_fetch_add(&P->hits[i], 1);
    if (P->x) /* rows first … first + count − 1 of a layernorm big enough for the pool */
        O->layernorm(P->y + (size_t)first * P->cols, NULL, NULL, P->x + (size_t)first * P->cols, P->ga, P->be, count,
                     P->cols, 1e-5f);
    if (slot >= 0 && slot < P->slots) atomic_store(&P->busy[slot], 0);
}

Test(ops_cpu, pieces_run_covers_each_index_once) {
    cr_assert(O->pieces_run && O->pieces_slots, "the CPU ops have pieces_run (ABI 1.6)");
    const int T = O->pieces_slots();
    cr_assert(T >= 1 && T <= 64);
    const int ns[7] = {0, 1, 2, 3, 10, 37, 100}, mosts[5] = {0, 1, 5, 16, 200};
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 5; b++) {
            pieces_probe *P = calloc(1, sizeof *P);
            P->n = ns[a], P->most = mosts[b], P->slots = T;
            O->pieces_run(P->n, P->most, pieces_probe_fn, P);
            const int n = P->n, cap = P->most > 0 && P->most < n ? P->most : n, pieces = atomic_load(&P->pieces);
            for (int i = 0; i < n; i++)
                cr_expect_eq(atomic_load(&P->hits[i]), 1, "n %d most %d: index %d in %d pieces", n, P->most, i,
                             atomic_load(&P->hits[i]));
            cr_expect_eq(atomic_load(&P->bad_slot), 0, "n %d most %d: a slot out of range or shared", n, P->most);
            int walked = 0, lo = n, hi = 0;
            for (int at = 0; at < n && walked <= pieces; walked++) { /* the pieces in order */
                const int c = atomic_load(&P->size_at[at]);
                cr_assert(c >= 1 && c <= cap, "n %d most %d: a piece of %d at %d", n, P->most, c, at);
                lo = c < lo ? c : lo, hi = c > hi ? c : hi;
                at += c;
            }
            cr_expect_eq(walked, pieces, "n %d most %d: %d pieces in order, %d run", n, P->most, walked, pieces);
            cr_expect(hi - lo <= 1 || n == 0, "n %d most %d: pieces of %d to %d", n, P->most, lo, hi);
            if (n > 0) {
                const int rounds = ((n + cap - 1) / cap + T - 1) / T * T; /* whole rounds of the slots */
                cr_expect_eq(pieces, rounds < n ? rounds : n, "n %d most %d: %d pieces on %d slots", n, P->most, pieces, T);
            } else {
                cr_expect_eq(pieces, 0, "n 0: %d pieces", pieces);
            }
            free(P);
        }
    /* an op inside a piece: layernorm rows on the busy pool against one call on all rows */
    enum { R = 600, Cc = 64, N = R * Cc };
    pieces_probe *P = calloc(1, sizeof *P);
    float *x = frand(N, 2, 200), *ga = frand(Cc, 1, 201), *be = frand(Cc, 1, 202), *y = fa(N), *y1 = fa(N);
    P->n = R, P->most = 100, P->slots = T, P->x = x, P->ga = ga, P->be = be, P->y = y, P->cols = Cc;
    poison(y, N);
    O->pieces_run(R, 100, pieces_probe_fn, P);
    O->layernorm(y1, NULL, NULL, x, ga, be, R, Cc, 1e-5f);
    cr_expect_arr_eq(y, y1, sizeof(float) * N, "layernorm inside pieces differs from one call");
    free(P), free(x), free(ga), free(be), free(y), free(y1);
}

/* the pool with its optional spin ($CLPDD_CPU_SPIN_US, core/cpu/threadpool.c; read when the pool
   starts, which in this test's own process is here): many back-to-back jobs, each of whose rows
   must come out as a one-row call gives them, so a lost or doubled chunk, or a caller that
   returned before a worker finished, shows as a difference */
Test(ops_cpu, pool_spinning_jobs_complete) {
    setenv("CLPDD_CPU_SPIN_US", "200", 1);
    enum { R = 2000, Cc = 24, N = R * Cc, JOBS = 300 };
    float *x = frand(N, 1, 190), *ga = frand(Cc, 1, 191), *be = frand(Cc, 1, 192), *y = fa(N), *y1 = fa(N);
    for (int r = 0; r < R; r++) O->layernorm(y1 + r * Cc, NULL, NULL, x + r * Cc, ga, be, 1, Cc, 1e-5f);
    for (int t = 0; t < JOBS; t++) {
        poison(y, N);
        O->layernorm(y, NULL, NULL, x, ga, be, R, Cc, 1e-5f);
        cr_assert_arr_eq(y, y1, sizeof(float) * N, "layernorm on the spinning pool, job %d", t);
    }
    free(x), free(ga), free(be), free(y), free(y1);
}

/* ---- attention ---- */
typedef struct { int n, T, Hh, hd; double scale; const double *G; } att_ctx;
/* out (n, T, D), att (n, Hh, T, T) or NULL from qkv (n, T, 3D) */
static void ref_attention(double *out, double *att, const double *qkv, int n, int T, int Hh, int hd, double scale) {
    int D = Hh * hd;
    double *s = da(T);
    for (int b = 0; b < n; b++)
        for (int h = 0; h < Hh; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * D + h * hd;
                for (int u = 0; u < T; u++) {
                    const double *k = qkv + ((size_t)b * T + u) * 3 * D + D + h * hd;
                    s[u] = 0;
                    for (int e = 0; e < hd; e++) s[u] += q[e] * k[e];
                }
                ref_softmax(s, s, T, scale);
                if (att)
                    for (int u = 0; u < T; u++) att[(((size_t)b * Hh + h) * T + t) * T + u] = s[u];
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int u = 0; u < T; u++) o += s[u] * qkv[((size_t)b * T + u) * 3 * D + 2 * D + h * hd + e];
                    out[((size_t)b * T + t) * D + h * hd + e] = o;
                }
            }
    free(s);
}
static double f_attention(const double *qkv, void *vc) {
    att_ctx *c = vc;
    size_t No = (size_t)c->n * c->T * c->Hh * c->hd;
    double *o = da(No);
    ref_attention(o, NULL, qkv, c->n, c->T, c->Hh, c->hd, c->scale);
    double s = ddotd(o, c->G, No);
    free(o);
    return s;
}

Test(ops_cpu, attention) {
    enum { n = 2, T = 7, Hh = 3, hd = 4, D = Hh * hd, NQ = n * T * 3 * D, NO = n * T * D, NA = n * Hh * T * T };
    const double scale = 1 / sqrt((double)hd);
    float *qkv = frand(NQ, 1, 100), *out = fa(NO), *att = fa(NA), *dout = frand(NO, 1, 101), *dqkv = fa(NQ),
          *datt = fa(NA);
    double *qd = f2d(qkv, NQ), *outr = da(NO), *attr = da(NA), *G = f2d(dout, NO), *g = da(NQ);
    ref_attention(outr, attr, qd, n, T, Hh, hd, scale);
    poison(out, NO), poison(att, NA);
    O->attention(out, att, qkv, n, T, Hh, hd, (float)scale);
    CHECK_ERR(out, outr, NO, TOL_RED, "attention out");
    CHECK_ERR(att, attr, NA, TOL_RED, "attention att");
    att_ctx c = {n, T, Hh, hd, scale, G};
    test_fd_grad(g, f_attention, qd, NQ, FD_H, &c);
    poison(dqkv, NQ), poison(datt, NA);
    O->attention_backward(dqkv, datt, dout, qkv, att, n, T, Hh, hd, (float)scale);
    CHECK_ERR(dqkv, g, NQ, TOL_GRAD, "attention_backward dqkv");
    free(qkv), free(out), free(att), free(dout), free(dqkv), free(datt), free(qd), free(outr), free(attr), free(G),
        free(g);
}

/* ---- fused attention (ABI 1.3) ----
   Shapes cover T below, at and across the CPU key tile (64) and the CUDA tile (32), hd of 4
   (narrower than the 8-lane dot), 16, 37 (a lane tail) and 64 (ViT-B), T = 197 (ViT-B at 224 px).
   Forward: out against the float64 reference and against the materialised op, lse against a
   float64 log-sum-exp; TOL_RED (sums of ≤ T·hd terms; lse is a log of such a sum, its absolute
   error is the sum's relative error). Backward: against the float64 analytic gradient and the
   materialised op at every shape (TOL_GRAD), and against float64 finite differences of the
   reference forward at the shapes small enough for O(NQ·n·Hh·T²·hd) FD work. */
static const int attf_shapes[][4] = {{2, 7, 3, 4}, {2, 50, 4, 64}, {2, 197, 2, 64}, {2, 50, 3, 16},
                                     {1, 70, 2, 16}, {2, 129, 2, 37}, {1, 1, 2, 8}};
#define ATTF_NSHAPES ((int)(sizeof attf_shapes / sizeof attf_shapes[0]))

/* lse (n, Hh, T) = log Σ_u exp(scale·q_t·k_u) in float64 */
static void ref_attention_lse(double *lse, const double *qkv, int n, int T, int Hh, int hd, double scale) {
    int D = Hh * hd;
    double *s = da(T);
    for (int b = 0; b < n; b++)
        for (int h = 0; h < Hh; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * D + h * hd;
                double m = -INFINITY, z = 0;
                for (int u = 0; u < T; u++) {
                    const double *k = qkv + ((size_t)b * T + u) * 3 * D + D + h * hd;
                    s[u] = 0;
                    for (int e = 0; e < hd; e++) s[u] += q[e] * k[e];
                    s[u] *= scale;
                    m = fmax(m, s[u]);
                }
                for (int u = 0; u < T; u++) z += exp(s[u] - m);
                lse[((size_t)b * Hh + h) * T + t] = m + log(z);
            }
    free(s);
}

/* dqkv (n, T, 3D) from G = dout (n, T, D) in float64, the analytic gradient:
   dv = Pᵀ·G, dS = P ⊙ (G·vᵀ − rowsum(P ⊙ G·vᵀ)), dq = scale·dS·k, dk = scale·dSᵀ·q */
static void ref_attention_backward(double *dqkv, const double *G, const double *qkv, int n, int T, int Hh, int hd,
                                   double scale) {
    int D = Hh * hd;
    double *P = da((size_t)T * T), *dS = da((size_t)T * T);
    memset(dqkv, 0, sizeof(double) * (size_t)n * T * 3 * D);
#define Q_(t, e) qkv[((size_t)b * T + (t)) * 3 * D + h * hd + (e)]
#define K_(t, e) qkv[((size_t)b * T + (t)) * 3 * D + D + h * hd + (e)]
#define V_(t, e) qkv[((size_t)b * T + (t)) * 3 * D + 2 * D + h * hd + (e)]
#define G_(t, e) G[((size_t)b * T + (t)) * D + h * hd + (e)]
#define DQKV_(t, part, e) dqkv[((size_t)b * T + (t)) * 3 * D + (part) * D + h * hd + (e)]
    for (int b = 0; b < n; b++)
        for (int h = 0; h < Hh; h++) {
            for (int t = 0; t < T; t++) {
                for (int u = 0; u < T; u++) {
                    double s = 0;
                    for (int e = 0; e < hd; e++) s += Q_(t, e) * K_(u, e);
                    P[t * T + u] = s;
                }
                ref_softmax(P + t * T, P + t * T, T, scale);
                double dl = 0;
                for (int u = 0; u < T; u++) {
                    double dp = 0;
                    for (int e = 0; e < hd; e++) dp += G_(t, e) * V_(u, e);
                    dS[t * T + u] = dp;
                    dl += dp * P[t * T + u];
                }
                for (int u = 0; u < T; u++) dS[t * T + u] = P[t * T + u] * (dS[t * T + u] - dl);
            }
            for (int t = 0; t < T; t++)
                for (int u = 0; u < T; u++)
                    for (int e = 0; e < hd; e++) {
                        DQKV_(t, 0, e) += scale * dS[t * T + u] * K_(u, e);
                        DQKV_(u, 1, e) += scale * dS[t * T + u] * Q_(t, e);
                        DQKV_(u, 2, e) += P[t * T + u] * G_(t, e);
                    }
        }
#undef Q_
#undef K_
#undef V_
#undef G_
#undef DQKV_
    free(P), free(dS);
}

/* CHECK_ERR that also logs the error (the report quotes these) */
#define CHECK_ERR_LOG(e, tol, what)                                                               \
    do {                                                                                          \
        double e2_ = (e);                                                                         \
        cr_log_info("%s: normalised error %.3g", (what), e2_);                                    \
        cr_assert(e2_ <= (tol), "%s: normalised error %.3g > %.3g", (what), e2_, (double)(tol)); \
    } while (0)

Test(ops_cpu, attention_fused) {
    char what[128];
    for (int c = 0; c < ATTF_NSHAPES; c++) {
        const int n = attf_shapes[c][0], T = attf_shapes[c][1], Hh = attf_shapes[c][2], hd = attf_shapes[c][3];
        const size_t D = (size_t)Hh * hd, NQ = n * T * 3 * D, NO = n * T * D, NL = (size_t)n * Hh * T,
                     NA = NL * T;
        const float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(NQ, 1, 700 + c), *out = fa(NO), *lse = fa(NL), *outm = fa(NO), *att = fa(NA);
        double *qd = f2d(qkv, NQ), *outr = da(NO), *lser = da(NL);
        ref_attention(outr, NULL, qd, n, T, Hh, hd, scale);
        ref_attention_lse(lser, qd, n, T, Hh, hd, scale);
        poison(out, NO), poison(lse, NL);
        O->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
        O->attention(outm, att, qkv, n, T, Hh, hd, scale);
        snprintf(what, sizeof what, "attention_fused out vs float64 (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        CHECK_ERR_LOG(test_rel_err_fd(out, outr, NO), TOL_RED, what);
        snprintf(what, sizeof what, "attention_fused out vs attention (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        CHECK_ERR_LOG(test_rel_err(out, outm, NO), TOL_RED, what);
        snprintf(what, sizeof what, "attention_fused lse vs float64 (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        CHECK_ERR_LOG(test_rel_err_fd(lse, lser, NL), TOL_RED, what);
        double worst = 0; /* lse's absolute error, the one the backward's exp(s − lse) sees */
        for (size_t i = 0; i < NL; i++) worst = fmax(worst, fabs(lse[i] - lser[i]));
        cr_log_info("attention_fused lse max abs error %.3g (n %d T %d Hh %d hd %d)", worst, n, T, Hh, hd);
        cr_assert(worst <= TOL_RED, "lse max abs error %.3g", worst);
        free(qkv), free(out), free(lse), free(outm), free(att), free(qd), free(outr), free(lser);
    }
}

Test(ops_cpu, attention_fused_backward) {
    char what[128];
    for (int c = 0; c < ATTF_NSHAPES; c++) {
        const int n = attf_shapes[c][0], T = attf_shapes[c][1], Hh = attf_shapes[c][2], hd = attf_shapes[c][3];
        const size_t D = (size_t)Hh * hd, NQ = n * T * 3 * D, NO = n * T * D, NL = (size_t)n * Hh * T,
                     NA = NL * T;
        const float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(NQ, 1, 720 + c), *dout = frand(NO, 1, 740 + c), *out = fa(NO), *lse = fa(NL),
              *delta = fa(NL), *dqkv = fa(NQ), *att = fa(NA), *datt = fa(NA), *outm = fa(NO), *dqkvm = fa(NQ);
        double *qd = f2d(qkv, NQ), *G = f2d(dout, NO), *g = da(NQ);
        O->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
        poison(dqkv, NQ), poison(delta, NL);
        O->attention_fused_backward(dqkv, delta, dout, out, lse, qkv, n, T, Hh, hd, scale);
        O->attention(outm, att, qkv, n, T, Hh, hd, scale);
        O->attention_backward(dqkvm, datt, dout, qkv, att, n, T, Hh, hd, scale);
        ref_attention_backward(g, G, qd, n, T, Hh, hd, scale);
        snprintf(what, sizeof what, "attention_fused_backward vs float64 (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
        CHECK_ERR_LOG(test_rel_err_fd(dqkv, g, NQ), TOL_GRAD, what);
        snprintf(what, sizeof what, "attention_fused_backward vs attention_backward (n %d T %d Hh %d hd %d)", n, T,
                 Hh, hd);
        CHECK_ERR_LOG(test_rel_err(dqkv, dqkvm, NQ), TOL_GRAD, what);
        if ((double)NQ * n * Hh * T * T * hd <= 2e9) { /* float64 central differences (FD_H) */
            att_ctx ctx = {n, T, Hh, hd, scale, G};
            test_fd_grad(g, f_attention, qd, NQ, FD_H, &ctx);
            snprintf(what, sizeof what, "attention_fused_backward vs FD (n %d T %d Hh %d hd %d)", n, T, Hh, hd);
            CHECK_ERR_LOG(test_rel_err_fd(dqkv, g, NQ), TOL_GRAD, what);
        }
        /* reproducible: a second call gives the same bits */
        O->attention_fused_backward(dqkvm, delta, dout, out, lse, qkv, n, T, Hh, hd, scale);
        cr_assert(!memcmp(dqkvm, dqkv, sizeof(float) * NQ), "attention_fused_backward is not reproducible");
        free(qkv), free(dout), free(out), free(lse), free(delta), free(dqkv), free(att), free(datt), free(outm),
            free(dqkvm), free(qd), free(G), free(g);
    }
}

/* ---- fused attention against the per-row arithmetic of the CUDA kernels ----
   The CPU's fused path is register-blocked (query blocks × key tiles of 64, products in
   mr × 16 micro-tiles); the CUDA kernels run core/numerics/attention_tile.h row by row. Here
   that header drives a serial row-by-row reference (key / query tiles of 32, as the GPU's
   shared-memory tile), and the blocked op must agree with it and with the materialised op to
   fp32 rounding — sums of ≤ T·hd terms in another order, so TOL_TIGHT, a tenth of TOL_RED —
   on shapes where T is not a multiple of the tile (several query blocks and key tiles), at
   hd = 16, 32, 64, with more (image, head) pairs than threads. */
#define TOL_TIGHT 1e-6
static const int attb_shapes[][4] = {{3, 130, 3, 16}, {2, 65, 5, 32}, {3, 200, 3, 64}, {4, 50, 4, 64},
                                     {3, 63, 3, 32}}; /* n, T, Hh, hd */
enum { ATTB_TILE = 32 };

/* out, lse by attention_tile.h's forward rows */
static void rows_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    const int D = Hh * hd;
    const long ld = 3L * D;
    float acc[ATT_HD_MAX], s[ATT_TILE_MAX];
    for (int b = 0; b < n; b++)
        for (int h = 0; h < Hh; h++) {
            const float *q = qkv + (long)b * T * ld + h * hd, *k = q + D, *v = q + 2 * D;
            for (int i = 0; i < T; i++) {
                float m, l;
                att_fwd_row_init(&m, &l, acc, hd);
                for (int t0 = 0; t0 < T; t0 += ATTB_TILE) {
                    const int nk = T - t0 < ATTB_TILE ? T - t0 : ATTB_TILE;
                    att_fwd_row_tile(&m, &l, acc, s, q + i * ld, k + t0 * ld, ld, v + t0 * ld, ld, nk, hd, scale);
                }
                lse[((long)b * Hh + h) * T + i] = att_fwd_row_final(out + ((long)b * T + i) * D + h * hd, acc, m, l, hd);
            }
        }
}

/* dqkv by attention_tile.h's backward rows (dq per query row, dk / dv per key row) */
static void rows_attention_fused_backward(float *dqkv, const float *dout, const float *out, const float *lse,
                                          const float *qkv, int n, int T, int Hh, int hd, float scale) {
    const int D = Hh * hd;
    const long ld = 3L * D;
    float g[ATT_HD_MAX], gv[ATT_HD_MAX], *delta = fa((size_t)T);
    for (int b = 0; b < n; b++)
        for (int h = 0; h < Hh; h++) {
            const long qo = (long)b * T * ld + h * hd, oo = (long)b * T * D + h * hd;
            const float *q = qkv + qo, *k = q + D, *v = q + 2 * D, *dO = dout + oo, *L = lse + ((long)b * Hh + h) * T;
            for (int i = 0; i < T; i++) delta[i] = att_delta_row(dO + (long)i * D, out + oo + (long)i * D, hd);
            for (int i = 0; i < T; i++) {
                memset(g, 0, sizeof g);
                for (int t0 = 0; t0 < T; t0 += ATTB_TILE)
                    att_bwd_dq_tile(g, q + i * ld, dO + (long)i * D, L[i], delta[i], k + t0 * ld, ld, v + t0 * ld, ld,
                                    T - t0 < ATTB_TILE ? T - t0 : ATTB_TILE, hd, scale);
                for (int e = 0; e < hd; e++) dqkv[qo + i * ld + e] = scale * g[e];
            }
            for (int t = 0; t < T; t++) {
                memset(g, 0, sizeof g), memset(gv, 0, sizeof gv);
                for (int i0 = 0; i0 < T; i0 += ATTB_TILE)
                    att_bwd_dkdv_tile(g, gv, k + t * ld, v + t * ld, q + i0 * ld, ld, dO + (long)i0 * D, D, L + i0,
                                      delta + i0, T - i0 < ATTB_TILE ? T - i0 : ATTB_TILE, hd, scale);
                for (int e = 0; e < hd; e++) {
                    dqkv[qo + D + t * ld + e] = scale * g[e];
                    dqkv[qo + 2 * D + t * ld + e] = gv[e];
                }
            }
        }
    free(delta);
}

Test(ops_cpu, attention_fused_blocked) {
    char what[160];
    for (size_t c = 0; c < sizeof attb_shapes / sizeof attb_shapes[0]; c++) {
        const int n = attb_shapes[c][0], T = attb_shapes[c][1], Hh = attb_shapes[c][2], hd = attb_shapes[c][3];
        const size_t D = (size_t)Hh * hd, NQ = n * T * 3 * D, NO = n * T * D, NL = (size_t)n * Hh * T, NA = NL * T;
        const float scale = 1.0f / sqrtf((float)hd);
        float *qkv = frand(NQ, 1.5f, 760 + c), *dout = frand(NO, 1, 780 + c), *out = fa(NO), *lse = fa(NL),
              *delta = fa(NL), *dqkv = fa(NQ), *outr = fa(NO), *lser = fa(NL), *dqkvr = fa(NQ), *att = fa(NA),
              *datt = fa(NA), *outm = fa(NO), *dqkvm = fa(NQ);
        poison(out, NO), poison(lse, NL), poison(dqkv, NQ), poison(delta, NL);
        O->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
        O->attention_fused_backward(dqkv, delta, dout, out, lse, qkv, n, T, Hh, hd, scale);
        rows_attention_fused(outr, lser, qkv, n, T, Hh, hd, scale);
        rows_attention_fused_backward(dqkvr, dout, outr, lser, qkv, n, T, Hh, hd, scale);
        O->attention(outm, att, qkv, n, T, Hh, hd, scale);
        O->attention_backward(dqkvm, datt, dout, qkv, att, n, T, Hh, hd, scale);
        const char *vs[2] = {"attention_tile.h rows", "attention (materialised)"};
        const float *ro[2] = {outr, outm}, *rg[2] = {dqkvr, dqkvm};
        for (int r = 0; r < 2; r++) {
            snprintf(what, sizeof what, "attention_fused out vs %s (n %d T %d Hh %d hd %d)", vs[r], n, T, Hh, hd);
            CHECK_ERR_LOG(test_rel_err(out, ro[r], NO), TOL_TIGHT, what);
            snprintf(what, sizeof what, "attention_fused_backward vs %s (n %d T %d Hh %d hd %d)", vs[r], n, T, Hh, hd);
            CHECK_ERR_LOG(test_rel_err(dqkv, rg[r], NQ), TOL_TIGHT, what);
        }
        double worst = 0; /* per element, relative to max(1, |lse|): a few ulp of m + log l */
        for (size_t i = 0; i < NL; i++) worst = fmax(worst, fabs(lse[i] - lser[i]) / fmax(1.0, fabs(lser[i])));
        cr_log_info("attention_fused lse vs attention_tile.h rows: max relative %.3g (T %d hd %d)", worst, T, hd);
        cr_assert(worst <= TOL_TIGHT, "lse vs attention_tile.h rows (T %d hd %d): max relative %.3g", T, hd, worst);
        free(qkv), free(dout), free(out), free(lse), free(delta), free(dqkv), free(outr), free(lser), free(dqkvr),
            free(att), free(datt), free(outm), free(dqkvm);
    }
}

/* ---- images ---- */
Test(ops_cpu, patchify_unpatchify) {
    enum { n = 2, C = 3, H = 8, W = 12, p = 4, N = n * C * H * W };
    float *x = frand(N, 1, 110), *y = fa(N), *dy = frand(N, 1, 111), *dx = fa(N);
    double *r = da(N);
    int GW = W / p, P = C * p * p;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    int cell = (i / p) * GW + j / p, e = (c * p + i % p) * p + j % p;
                    r[((size_t)b * (H / p) * GW + cell) * P + e] = x[((b * C + c) * H + i) * W + j];
                }
    poison(y, N);
    O->patchify(y, x, n, C, H, W, p);
    CHECK_ERR(y, r, N, 0, "patchify");
    poison(dx, N);
    O->unpatchify(dx, dy, n, C, H, W, p);
    CHECK_ADJ(y, dy, N, x, dx, N, "unpatchify");
    O->unpatchify(dx, y, n, C, H, W, p); /* a permutation: the adjoint inverts it */
    double *xd = f2d(x, N);
    CHECK_ERR(dx, xd, N, 0, "unpatchify ∘ patchify");
    free(x), free(y), free(dy), free(dx), free(r), free(xd);
}

Test(ops_cpu, im2col_col2im) {
    /* 3×3 kernel, stride 2, pad 1 on 7×6 and a 2×3 kernel, stride 1, pad 0 */
    int cfg[2][5] = {{3, 3, 2, 1, 0}, {2, 3, 1, 0, 0}};
    for (int k = 0; k < 2; k++) {
        int C = 3, H = 7, W = 6, kh = cfg[k][0], kw = cfg[k][1], s = cfg[k][2], pad = cfg[k][3];
        int OH = (H + 2 * pad - kh) / s + 1, OW = (W + 2 * pad - kw) / s + 1;
        size_t Nx = (size_t)C * H * W, Nc = (size_t)C * kh * kw * OH * OW;
        float *x = frand(Nx, 1, 120), *col = fa(Nc), *dcol = frand(Nc, 1, 121), *dx = fa(Nx);
        double *r = da(Nc);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OW; ox++) {
                            int iy = oy * s - pad + i, ix = ox * s - pad + j;
                            r[(((size_t)c * kh + i) * kw + j) * OH * OW + oy * OW + ox] =
                                (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(c * H + iy) * W + ix] : 0;
                        }
        poison(col, Nc);
        O->im2col(col, x, C, H, W, kh, kw, s, pad, OH, OW);
        CHECK_ERR(col, r, Nc, 0, "im2col");
        poison(dx, Nx);
        O->col2im(dx, dcol, C, H, W, kh, kw, s, pad, OH, OW);
        CHECK_ADJ(col, dcol, Nc, x, dx, Nx, "col2im");
        free(x), free(col), free(dcol), free(dx), free(r);
    }
}

Test(ops_cpu, global_avgpool) {
    enum { n = 2, C = 5, HW = 49, N = n * C * HW };
    float *x = frand(N, 1, 130), *y = fa(n * C), *dy = frand(n * C, 1, 131), *dx = fa(N);
    double *r = da(n * C);
    for (int q = 0; q < n * C; q++) {
        for (int i = 0; i < HW; i++) r[q] += x[q * HW + i];
        r[q] /= HW;
    }
    poison(y, n * C);
    O->global_avgpool(y, x, n, C, HW);
    CHECK_ERR(y, r, n * C, TOL_RED, "global_avgpool");
    poison(dx, N);
    O->global_avgpool_backward(dx, dy, n, C, HW);
    CHECK_ADJ(y, dy, n * C, x, dx, N, "global_avgpool_backward");
    free(x), free(y), free(dy), free(dx), free(r);
}

typedef struct { int n, C, H, W, k, s, pad, OH, OW; const double *G; } mp_ctx;
static void ref_maxpool(double *y, const double *x, const mp_ctx *c) {
    for (int q = 0; q < c->n * c->C; q++)
        for (int oy = 0; oy < c->OH; oy++)
            for (int ox = 0; ox < c->OW; ox++) {
                double m = -INFINITY;
                for (int i = 0; i < c->k; i++)
                    for (int j = 0; j < c->k; j++) {
                        int iy = oy * c->s - c->pad + i, ix = ox * c->s - c->pad + j;
                        if (iy >= 0 && iy < c->H && ix >= 0 && ix < c->W) m = fmax(m, x[(q * c->H + iy) * c->W + ix]);
                    }
                y[(q * c->OH + oy) * c->OW + ox] = m;
            }
}
static double f_maxpool(const double *x, void *vc) {
    mp_ctx *c = vc;
    size_t No = (size_t)c->n * c->C * c->OH * c->OW;
    double *y = da(No);
    ref_maxpool(y, x, c);
    double s = ddotd(y, c->G, No);
    free(y);
    return s;
}

Test(ops_cpu, maxpool) {
    /* 3×3 stride 2 pad 1 (ResNet stem: overlapping windows) on 2×3×9×8 */
    mp_ctx c = {2, 3, 9, 8, 3, 2, 1, 0, 0, NULL};
    c.OH = (c.H + 2 * c.pad - c.k) / c.s + 1, c.OW = (c.W + 2 * c.pad - c.k) / c.s + 1;
    size_t Nx = (size_t)c.n * c.C * c.H * c.W, No = (size_t)c.n * c.C * c.OH * c.OW;
    float *x = frand(Nx, 1, 140), *y = fa(No), *dy = frand(No, 1, 141), *dx = fa(Nx);
    int32_t *am = calloc(No, sizeof(int32_t));
    double *xd = f2d(x, Nx), *r = da(No), *G = f2d(dy, No), *g = da(Nx);
    c.G = G;
    ref_maxpool(r, xd, &c);
    poison(y, No);
    O->maxpool(y, am, x, c.n, c.C, c.H, c.W, c.k, c.s, c.pad, c.OH, c.OW);
    CHECK_ERR(y, r, No, 0, "maxpool");
    /* random normals: the gap between a window's top two values is ≫ h, so FD is exact */
    test_fd_grad(g, f_maxpool, xd, Nx, 1e-7, &c);
    poison(dx, Nx);
    O->maxpool_backward(dx, dy, am, c.n, c.C, c.H, c.W, c.OH, c.OW);
    CHECK_ERR(dx, g, Nx, TOL_ELEM, "maxpool_backward"); /* sums of ≤ 4 floats */
    free(x), free(y), free(dy), free(dx), free(am), free(xd), free(r), free(G), free(g);
}

/* PyTorch F.interpolate(mode='bilinear', align_corners=False) in float64 */
static void ref_bilinear(double *y, const float *x, int nc, int H, int W, int OH, int OW) {
    for (int q = 0; q < nc; q++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double sy = fmax((oy + 0.5) * H / OH - 0.5, 0), sx = fmax((ox + 0.5) * W / OW - 0.5, 0);
                int y0 = (int)sy, x0 = (int)sx, y1 = y0 < H - 1 ? y0 + 1 : y0, x1 = x0 < W - 1 ? x0 + 1 : x0;
                double ly = sy - y0, lx = sx - x0;
                const float *p = x + (size_t)q * H * W;
                y[((size_t)q * OH + oy) * OW + ox] = (1 - ly) * ((1 - lx) * p[y0 * W + x0] + lx * p[y0 * W + x1]) +
                                                      ly * ((1 - lx) * p[y1 * W + x0] + lx * p[y1 * W + x1]);
            }
}

Test(ops_cpu, resize_bilinear_pytorch_values) {
    /* torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(3, 3),
       mode='bilinear', align_corners=False): src = (d + 0.5)·2/3 − 0.5 = (−1/6 → 0, 0.5, 7/6 → edge) */
    float x[4] = {1, 2, 3, 4}, y[9];
    poison(y, 9);
    O->resize_bilinear(y, x, 1, 1, 2, 2, 3, 3);
    double want[9] = {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4};
    CHECK_ERR(y, want, 9, TOL_ELEM, "bilinear 2x2→3x3");
    /* arange(16).view(4, 4) → 2×2: src = 0.5, 2.5 ⇒ means of the 2×2 blocks */
    float x4[16], y2[4];
    for (int i = 0; i < 16; i++) x4[i] = (float)i;
    poison(y2, 4);
    O->resize_bilinear(y2, x4, 1, 1, 4, 4, 2, 2);
    double want2[4] = {2.5, 4.5, 10.5, 12.5};
    CHECK_ERR(y2, want2, 4, TOL_ELEM, "bilinear 4x4→2x2");
}

Test(ops_cpu, resize_bilinear_general) {
    int cfg[3][4] = {{5, 7, 8, 3}, {6, 6, 13, 11}, {9, 4, 4, 9}};
    for (int k = 0; k < 3; k++) {
        int n = 2, C = 3, H = cfg[k][0], W = cfg[k][1], OH = cfg[k][2], OW = cfg[k][3];
        size_t Nx = (size_t)n * C * H * W, Ny = (size_t)n * C * OH * OW;
        float *x = frand(Nx, 1, 150), *y = fa(Ny), *dy = frand(Ny, 1, 151), *dx = fa(Nx);
        double *r = da(Ny);
        ref_bilinear(r, x, n * C, H, W, OH, OW);
        poison(y, Ny);
        O->resize_bilinear(y, x, n, C, H, W, OH, OW);
        CHECK_ERR(y, r, Ny, TOL_ELEM * 4, "resize_bilinear"); /* float source coordinates */
        poison(dx, Nx);
        O->resize_bilinear_backward(dx, dy, n, C, H, W, OH, OW);
        CHECK_ADJ(y, dy, Ny, x, dx, Nx, "resize_bilinear_backward");
        free(x), free(y), free(dy), free(dx), free(r);
    }
}

/* ---- random ---- */
Test(ops_cpu, philox_known_answers) {
    /* Random123 tests/kat_vectors, the three "philox4x32 10" lines */
    struct { uint32_t c[4], k[2], r[4]; } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        clpdd_philox4 c = {{kat[i].c[0], kat[i].c[1], kat[i].c[2], kat[i].c[3]}};
        clpdd_philox4 r = clpdd_philox4x32_10(c, kat[i].k[0], kat[i].k[1]);
        for (int w = 0; w < 4; w++) cr_assert_eq(r.v[w], kat[i].r[w], "kat %d word %d: %08x", i, w, r.v[w]);
    }
}

Test(ops_cpu, random_streams) {
    enum { N = 100000 };
    const uint64_t seed = 0x123456789abcdefULL, off = (1ULL << 32) - 5; /* counter crosses 32 bits */
    float *a = fa(N), *b = fa(N);
    /* uniform: reproducible, pieces = whole, range, spec */
    O->rand_uniform(a, N, -2.0f, 3.0f, seed, off);
    O->rand_uniform(b, 1000, -2.0f, 3.0f, seed, off);
    O->rand_uniform(b + 1000, N - 1000, -2.0f, 3.0f, seed, off + 1000);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "uniform drawn in two pieces differs");
    double m = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(a[i] >= -2.0f && a[i] <= 3.0f);
        m += a[i];
    }
    m /= N;
    cr_assert(fabs(m - 0.5) < 5 * 5 / sqrt(12.0 * N), "uniform mean %g", m); /* 5 σ of the mean */
    for (int i = 0; i < N; i += 9973) {
        uint64_t j = off + i;
        clpdd_philox4 c = {{(uint32_t)j, (uint32_t)(j >> 32), 0, 0}};
        uint32_t w = clpdd_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32)).v[0];
        float u = ((float)(w >> 8) + 0.5f) * (1.0f / 16777216.0f);
        cr_assert_eq(a[i], -2.0f + 5.0f * u, "uniform element %d off spec", i);
    }
    O->rand_uniform(b, N, -2.0f, 3.0f, seed + 1, off);
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == b[i];
    cr_assert_lt(same, 100, "another seed gives the same stream");

    /* normal: reproducible, pieces = whole, mean/std */
    O->rand_normal(a, N, 1.5f, 2.0f, seed, 7);
    O->rand_normal(b, 333, 1.5f, 2.0f, seed, 7);
    O->rand_normal(b + 333, N - 333, 1.5f, 2.0f, seed, 7 + 333);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "normal drawn in two pieces differs");
    O->rand_normal(b, N, 1.5f, 2.0f, seed, 7);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "normal not reproducible");
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) s += a[i], s2 += (double)a[i] * a[i];
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    /* σ of the sample mean = 2/√N ≈ 0.0063, of the sample std ≈ 2/√(2N) ≈ 0.0045: 5 σ bounds */
    cr_assert(fabs(mean - 1.5) < 0.032, "normal mean %g", mean);
    cr_assert(fabs(sd - 2.0) < 0.023, "normal std %g", sd);
    cr_assert_float_eq(a[0], clpdd_philox_normal(seed, 7, 1.5f, 2.0f), 0.0f);
    O->rand_normal(a, 0, 0, 1, seed, 0); /* size 0 */
    free(a), free(b);
}

/* ---- optimiser ---- */
Test(ops_cpu, adam) {
    enum { N = 777 };
    /* the float32 values of the hyper-parameters (1 − 0.999 and 1 − 0.999f differ by 1.3e-5) */
    const double lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.05f;
    float *p = frand(N, 1, 160), *m = fa(N), *v = fa(N);
    double *pd = f2d(p, N), *md = da(N), *vd = da(N);
    for (int t = 1; t <= 5; t++) {
        float *g = frand(N, 1, 161 + t);
        O->adam(p, m, v, g, N, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t);
        for (int i = 0; i < N; i++) {
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(b1, t)), vh = vd[i] / (1 - pow(b2, t));
            pd[i] -= lr * (mh / (sqrt(vh) + eps) + wd * pd[i]);
        }
        free(g);
    }
    CHECK_ERR(p, pd, N, TOL_RED, "adam p");
    CHECK_ERR(m, md, N, TOL_RED, "adam m");
    CHECK_ERR(v, vd, N, TOL_RED, "adam v");
    free(p), free(m), free(v), free(pd), free(md), free(vd);
}

/* ---- threaded paths (OpenMP, taken above CLPDD_CPU_PAR_MIN elements) against the same op
   called one row / plane at a time (serial): the per-row arithmetic is identical, so the
   results must be bit-equal (layernorm's dgamma is summed in another order: TOL_RED) ---- */
Test(ops_cpu, threaded_paths_match_rowwise) {
    enum { R = 512, Cc = 96, N = R * Cc };
    float *x = frand(N, 2, 170), *dy = frand(N, 1, 171), *a = fa(N), *b = fa(N), *ga = frand(Cc, 1, 172),
          *be = frand(Cc, 1, 173), *mu = fa(R), *rs = fa(R), *la = fa(R), *lb = fa(R);
    int32_t *lab = calloc(R, sizeof(int32_t));
    for (int i = 0; i < R; i++) lab[i] = (i * 13) % Cc;
    O->softmax_rows(a, x, R, Cc, 0.5f);
    for (int i = 0; i < R; i++) O->softmax_rows(b + i * Cc, x + i * Cc, 1, Cc, 0.5f);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "softmax_rows threaded");
    float *y = fa(N);
    memcpy(y, a, sizeof(float) * N);
    O->softmax_rows_backward(a, dy, y, R, Cc, 0.5f);
    for (int i = 0; i < R; i++) O->softmax_rows_backward(b + i * Cc, dy + i * Cc, y + i * Cc, 1, Cc, 0.5f);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "softmax_rows_backward threaded");
    O->cross_entropy(la, a, x, lab, R, Cc, 1.5f, 0.25f);
    for (int i = 0; i < R; i++) O->cross_entropy(lb + i, b + i * Cc, x + i * Cc, lab + i, 1, Cc, 1.5f, 0.25f);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "cross_entropy dz threaded");
    cr_assert_arr_eq(la, lb, sizeof(float) * R, "cross_entropy loss threaded");
    O->layernorm(a, mu, rs, x, ga, be, R, Cc, 1e-5f);
    for (int i = 0; i < R; i++) O->layernorm(b + i * Cc, la + i, lb + i, x + i * Cc, ga, be, 1, Cc, 1e-5f);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "layernorm threaded");
    float *dg1 = fa(Cc), *dg2 = fa(Cc), *db1 = fa(Cc), *db2 = fa(Cc);
    O->layernorm_backward(a, dg1, db1, dy, x, mu, rs, ga, R, Cc);
    for (int i = 0; i < R; i++)
        O->layernorm_backward(b + i * Cc, dg2, db2, dy + i * Cc, x + i * Cc, mu + i, rs + i, ga, 1, Cc);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "layernorm_backward dx threaded");
    double *d2 = f2d(dg2, Cc), *e2 = f2d(db2, Cc);
    CHECK_ERR(dg1, d2, Cc, TOL_RED, "layernorm_backward dgamma threaded");
    CHECK_ERR(db1, e2, Cc, TOL_RED, "layernorm_backward dbeta threaded");
    O->gelu(a, x, N, CLPDD_GELU_TANH);
    for (int i = 0; i < R; i++) O->gelu(b + i * Cc, x + i * Cc, Cc, CLPDD_GELU_TANH);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "gelu threaded");
    /* images: N = 512·96 floats as (n=8, C=4, 32, 48) */
    int n = 8, C = 4, H = 32, W = 48, P = C * H * W;
    O->patchify(a, x, n, C, H, W, 8);
    for (int i = 0; i < n; i++) O->patchify(b + i * P, x + i * P, 1, C, H, W, 8);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "patchify threaded");
    O->unpatchify(a, x, n, C, H, W, 8);
    for (int i = 0; i < n; i++) O->unpatchify(b + i * P, x + i * P, 1, C, H, W, 8);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "unpatchify threaded");
    int OH = 40, OW = 24, Q = OH * OW;
    float *ya = fa(n * C * Q), *yb = fa(n * C * Q);
    O->resize_bilinear(ya, x, n, C, H, W, OH, OW);
    for (int q = 0; q < n * C; q++) O->resize_bilinear(yb + q * Q, x + q * H * W, 1, 1, H, W, OH, OW);
    cr_assert_arr_eq(ya, yb, sizeof(float) * n * C * Q, "resize_bilinear threaded");
    O->resize_bilinear_backward(a, ya, n, C, H, W, OH, OW);
    for (int q = 0; q < n * C; q++) O->resize_bilinear_backward(b + q * H * W, ya + q * Q, 1, 1, H, W, OH, OW);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "resize_bilinear_backward threaded");
    int32_t *ia = calloc(n * C * 16 * 24, sizeof(int32_t)), *ib = calloc(n * C * 16 * 24, sizeof(int32_t));
    O->maxpool(ya, ia, x, n, C, H, W, 3, 2, 1, 16, 24);
    for (int q = 0; q < n * C; q++)
        O->maxpool(yb + q * 384, ib + q * 384, x + q * H * W, 1, 1, H, W, 3, 2, 1, 16, 24);
    cr_assert_arr_eq(ya, yb, sizeof(float) * n * C * 384, "maxpool threaded");
    cr_assert_arr_eq(ia, ib, sizeof(int32_t) * n * C * 384, "maxpool argmax threaded");
    O->maxpool_backward(a, ya, ia, n, C, H, W, 16, 24);
    for (int q = 0; q < n * C; q++) O->maxpool_backward(b + q * H * W, ya + q * 384, ia + q * 384, 1, 1, H, W, 16, 24);
    cr_assert_arr_eq(a, b, sizeof(float) * N, "maxpool_backward threaded");
    /* im2col of one (32, 32, 48) image, 3×3 pad 1 stride 1, vs channel by channel */
    int Ci = 32, L = H * W;
    float *ca = fa((size_t)Ci * 9 * L), *cb = fa((size_t)Ci * 9 * L);
    O->im2col(ca, x, Ci, H, W, 3, 3, 1, 1, H, W);
    for (int c = 0; c < Ci; c++) O->im2col(cb + (size_t)c * 9 * L, x + c * L, 1, H, W, 3, 3, 1, 1, H, W);
    cr_assert_arr_eq(ca, cb, sizeof(float) * Ci * 9 * L, "im2col threaded");
    O->col2im(a, ca, Ci, H, W, 3, 3, 1, 1, H, W);
    for (int c = 0; c < Ci; c++) O->col2im(b + c * L, ca + (size_t)c * 9 * L, 1, H, W, 3, 3, 1, 1, H, W);
    cr_assert_arr_eq(a, b, sizeof(float) * Ci * L, "col2im threaded");
    free(x), free(dy), free(a), free(b), free(ga), free(be), free(mu), free(rs), free(la), free(lb), free(lab),
        free(y), free(dg1), free(dg2), free(db1), free(db2), free(d2), free(e2), free(ya), free(yb), free(ia),
        free(ib), free(ca), free(cb);
}

/* ---- size 0 everywhere: nothing is read or written (NULL pointers are fine on the CPU) ---- */
Test(ops_cpu, size_zero) {
    float *z = NULL;
    int32_t *zi = NULL;
    O->fill(z, 1, 0), O->scale(z, 1, 0), O->axpy(z, 1, z, 0), O->axpby(z, 1, z, 1, z, 0), O->mul(z, z, z, 0);
    O->clamp(z, 0, 1, 0), O->sigmoid(z, z, 0);
    O->copy2d(z, 0, z, 0, 0, 5), O->add2d(z, 5, z, 0, 3, 0), O->sum_rows(z, z, 3, 0, 0), O->gather_rows(z, z, zi, 0, 4);
    O->channel_affine(z, z, z, z, 0, 3, 4), O->channel_affine_backward(z, z, z, 0, 3, 4);
    cr_assert_eq(O->sum(z, 0), 0.0);
    O->gemm(0, 0, 0, 0, 0, 1, z, 1, z, 1, 0, z, 1);
    O->gemm_batched(0, 0, 2, 2, 2, 1, z, 2, 4, z, 2, 4, 0, z, 2, 4, 0);
    O->syrk(0, 0, 3, 1, z, 3, 0, z, 1), O->potrs(z, 0, 1, z, 0, 1);
    O->relu(z, z, 0), O->relu_backward(z, z, z, 0), O->gelu(z, z, 0, CLPDD_GELU_ERF);
    O->gelu_backward(z, z, z, 0, CLPDD_GELU_TANH);
    O->softmax_rows(z, z, 0, 5, 1), O->softmax_rows_backward(z, z, z, 0, 5, 1);
    O->cross_entropy(z, z, z, zi, 0, 5, 1, 1), O->onehot(z, zi, 0, 5, 1, 0), O->argmax_rows(zi, z, 0, 5);
    O->layernorm(z, z, z, z, z, z, 0, 5, 1e-5f), O->layernorm_backward(z, z, z, z, z, z, z, z, 0, 5);
    O->attention(z, z, z, 0, 4, 2, 8, 1), O->attention_backward(z, z, z, z, z, 0, 4, 2, 8, 1);
    O->attention_fused(z, z, z, 0, 4, 2, 8, 1), O->attention_fused_backward(z, z, z, z, z, z, 0, 4, 2, 8, 1);
    O->attention_fused(z, z, z, 2, 0, 2, 8, 1), O->attention_fused_backward(z, z, z, z, z, z, 2, 0, 2, 8, 1);
    O->patchify(z, z, 0, 3, 4, 4, 2), O->unpatchify(z, z, 0, 3, 4, 4, 2);
    O->im2col(z, z, 0, 4, 4, 3, 3, 1, 1, 4, 4), O->col2im(z, z, 0, 4, 4, 3, 3, 1, 1, 4, 4);
    O->global_avgpool(z, z, 0, 3, 4), O->global_avgpool_backward(z, z, 0, 3, 4);
    O->maxpool(z, zi, z, 0, 3, 4, 4, 2, 2, 0, 2, 2), O->maxpool_backward(z, z, zi, 0, 3, 4, 4, 2, 2);
    O->resize_bilinear(z, z, 0, 3, 4, 4, 2, 2), O->resize_bilinear_backward(z, z, 0, 3, 4, 4, 2, 2);
    O->rand_uniform(z, 0, 0, 1, 1, 0), O->adam(z, z, z, z, 0, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1);
}

/* ---- convolution (ABI 1.2): conv2d forward against a float64 direct convolution, its
   backward by the adjoint identity (with and without the ReLU mask), at every group size ---- */

/* y = relu?(w ∗ x + bias + shortcut(res)) in float64, straight from the ops.h comment */
static void ref_conv2d(double *y, const float *x, const float *w, const float *bias, const float *res,
                       const clpdd_conv2d_desc *d) {
    const int k = d->k, K = d->cin * k * k;
    for (int i = 0; i < d->n; i++)
        for (int o = 0; o < d->cout; o++)
            for (int oy = 0; oy < d->OH; oy++)
                for (int ox = 0; ox < d->OW; ox++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int c = 0; c < d->cin; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= d->H || ix < 0 || ix >= d->W) continue;
                                s += (double)w[(size_t)o * K + (c * k + ky) * k + kx] *
                                     x[(((size_t)i * d->cin + c) * d->H + iy) * d->W + ix];
                            }
                    int c = o - d->res_pad;
                    if (res && c >= 0 && c < d->res_c)
                        s += res[(((size_t)i * d->res_c + c) * d->res_H + oy * d->res_stride) * d->res_W +
                                 ox * d->res_stride];
                    if (d->relu && s < 0) s = 0;
                    y[(((size_t)i * d->cout + o) * d->OH + oy) * d->OW + ox] = s;
                }
}

static clpdd_conv2d_desc conv_case(int n, int cin, int H, int W, int cout, int k, int s, int p) {
    clpdd_conv2d_desc d = {n, cin, H, W, cout, k, s, p, (H + 2 * p - k) / s + 1, (W + 2 * p - k) / s + 1,
                           0, 0, 0, 0, 0, 0};
    return d;
}

Test(ops_cpu, conv2d_forward) {
    /* 3×3 s1 p1 with an identity shortcut; 3×3 s2 p1 on odd sides with the option-A shortcut;
       1×1 s2 p0 (torchvision downsample); 2×3-sided images with k = 2, s = 1, p = 0 */
    /* the last case is large enough (> CLPDD_CPU_PAR_MIN floats per pass) for the pool's threads */
    struct { clpdd_conv2d_desc d; int res; } cases[5] = {
        {conv_case(3, 5, 6, 7, 5, 3, 1, 1), 1},
        {conv_case(3, 4, 9, 7, 8, 3, 2, 1), 2},
        {conv_case(2, 6, 8, 8, 12, 1, 2, 0), 0},
        {conv_case(4, 3, 2, 3, 4, 2, 1, 0), 0},
        {conv_case(4, 16, 16, 16, 32, 3, 1, 1), 0},
    };
    for (int t = 0; t < 5; t++) {
        clpdd_conv2d_desc d = cases[t].d;
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * d.k * d.k;
        float *x = frand(Nx, 1, 300 + t), *w = frand(Nw, 0.3f, 310 + t), *b = frand(d.cout, 1, 320 + t);
        float *res = NULL;
        if (cases[t].res == 1) { /* identity */
            d.res_c = d.cout, d.res_pad = 0, d.res_stride = 1, d.res_H = d.OH, d.res_W = d.OW;
        } else if (cases[t].res == 2) { /* option A: the block input, subsampled, padded by cout/4 */
            d.res_c = d.cin, d.res_pad = d.cout / 4, d.res_stride = 2, d.res_H = d.H, d.res_W = d.W;
        }
        if (cases[t].res) res = frand((size_t)d.n * d.res_c * d.res_H * d.res_W, 1, 330 + t);
        float *y = fa(Ny);
        double *r = da(Ny);
        for (int relu = 0; relu < 2; relu++) {
            d.relu = relu;
            ref_conv2d(r, x, w, relu ? b : NULL, relu ? res : NULL, &d);
            /* groups of 1, 2 and all n images per GEMM */
            const int gs[3] = {1, 2, d.n};
            for (int q = 0; q < 3; q++) {
                size_t wf = CLPDD_CONV2D_WORK(&d, gs[q]);
                float *work = fa(wf);
                poison(work, wf), poison(y, Ny);
                O->conv2d(y, work, wf, x, w, relu ? b : NULL, relu ? res : NULL, &d);
                char what[96];
                snprintf(what, sizeof what, "conv2d case %d relu %d group %d", t, relu, gs[q]);
                CHECK_ERR(y, r, Ny, TOL_RED, what);
                free(work);
            }
        }
        free(x), free(w), free(b), free(res), free(y), free(r);
    }
}

Test(ops_cpu, conv2d_backward_adjoint) {
    /* the last case (stride 1, cin = cout) takes the stride-1 transposed form whenever the work
       also holds the flipped weights: the work sizes 1 image + w and "ample" below */
    clpdd_conv2d_desc cases[5] = {conv_case(3, 5, 6, 7, 6, 3, 1, 1), conv_case(3, 4, 9, 7, 8, 3, 2, 1),
                                  conv_case(2, 6, 8, 8, 12, 1, 2, 0), conv_case(4, 16, 16, 16, 32, 3, 1, 1),
                                  conv_case(3, 6, 7, 5, 6, 3, 1, 1)};
    for (int t = 0; t < 5; t++) {
        clpdd_conv2d_desc d = cases[t];
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * d.k * d.k;
        float *x = frand(Nx, 1, 400 + t), *w = frand(Nw, 0.3f, 410 + t), *dy = frand(Ny, 1, 420 + t);
        float *mask = frand(Ny, 1, 430 + t), *dym = fa(Ny), *y = fa(Ny), *dx = fa(Nx);
        for (size_t i = 0; i < Ny; i++) dym[i] = mask[i] > 0 ? dy[i] : 0.0f;
        /* groups of 1 and n images; 1 image + the weights; ample (every path fits) */
        const size_t wfs[4] = {CLPDD_CONV2D_WORK(&d, 1), CLPDD_CONV2D_WORK(&d, d.n), CLPDD_CONV2D_WORK(&d, 1) + Nw,
                               4 * CLPDD_CONV2D_WORK(&d, d.n) + Nw};
        for (int q = 0; q < 4; q++) {
            size_t wf = wfs[q];
            float *work = fa(wf);
            poison(work, wf), poison(y, Ny);
            O->conv2d(y, work, wf, x, w, NULL, NULL, &d);
            poison(work, wf), poison(dx, Nx);
            O->conv2d_backward(dx, work, wf, dy, NULL, w, &d);
            CHECK_ADJ(y, dy, Ny, x, dx, Nx, "conv2d_backward");
            /* with the mask: the adjoint applied to dy ⊙ [mask > 0] */
            poison(work, wf), poison(dx, Nx);
            O->conv2d_backward(dx, work, wf, dy, mask, w, &d);
            CHECK_ADJ(y, dym, Ny, x, dx, Nx, "conv2d_backward masked");
            free(work);
        }
        free(x), free(w), free(dy), free(mask), free(dym), free(y), free(dx);
    }
}

/* ---- Winograd F(2×2, 3×3) (core/cpu/ops_cpu_winograd.c) for 3×3 stride-1 pad-1 convolutions,
   selected for the whole test process by $CLPDD_CONV_ALGO (read once, at the first conv call;
   Criterion runs every test in its own process): forward and input gradient against float64 at
   the resnet20 layer shapes, odd sides (partial tiles), cin ≠ cout, bias + identity / option-A
   shortcut + ReLU, the ReLU mask; every work size (hence group size) gives the same bits.
   Tolerance 1e-5 normalised (TOL_RED), as the GEMM path: F(2,3)'s transforms add ≤ 16 terms of
   mixed sign per value, ~1e-6 measured; an indexing or tile-border bug is ≥ 1e-2. ---- */

/* dx = wᵀ ∗ (dy ⊙ [mask > 0]) in float64 (stride 1 or any: the adjoint of ref_conv2d's linear part) */
static void ref_conv2d_bwd(double *dx, const float *dy, const float *mask, const float *w, const clpdd_conv2d_desc *d) {
    const int k = d->k, K = d->cin * k * k;
    memset(dx, 0, sizeof(double) * (size_t)d->n * d->cin * d->H * d->W);
    for (int i = 0; i < d->n; i++)
        for (int o = 0; o < d->cout; o++)
            for (int oy = 0; oy < d->OH; oy++)
                for (int ox = 0; ox < d->OW; ox++) {
                    size_t yi = (((size_t)i * d->cout + o) * d->OH + oy) * d->OW + ox;
                    if (mask && !(mask[yi] > 0)) continue;
                    double g = dy[yi];
                    for (int c = 0; c < d->cin; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= d->H || ix < 0 || ix >= d->W) continue;
                                dx[(((size_t)i * d->cin + c) * d->H + iy) * d->W + ix] +=
                                    g * w[(size_t)o * K + (c * k + ky) * k + kx];
                            }
                }
}

static void conv_algo_cases(const char *algo) {
    setenv("CLPDD_CONV_ALGO", algo, 1);
    const int wino = !strncmp(algo, "winograd", 8); /* winograd, winograd4 */
    /* the last two: one image's tiles (16·(cin + cout)·⌈tiles / 16⌉·16) do not fit in
       CLPDD_CONV2D_WORK(d, 1), so the GEMM path takes them whatever the work (its backward's two
       forms differ in rounding by work size: no bit check there) */
    /* res: 0 none, 1 identity, 2 option A (the stride-1 conv closing a downsampling block) */
    struct { const char *name; clpdd_conv2d_desc d; int res; } cases[] = {
        {"resnet20 stage 1 (16ch 32x32)", conv_case(2, 16, 32, 32, 16, 3, 1, 1), 1},
        {"resnet20 stage 2 (32ch 16x16)", conv_case(3, 32, 16, 16, 32, 3, 1, 1), 2},
        {"resnet20 stage 3 (64ch 8x8)", conv_case(4, 64, 8, 8, 64, 3, 1, 1), 1},
        {"odd 7x15, cin 8 -> cout 6", conv_case(3, 8, 7, 15, 6, 3, 1, 1), 0},
        {"odd 9x9, cin 16 -> cout 8, option A", conv_case(5, 16, 9, 9, 8, 3, 1, 1), 2},
        {"1x1 image, cin 3 -> cout 4", conv_case(2, 3, 1, 1, 4, 3, 1, 1), 0},
        {"2x3 image, cin 8 -> cout 24", conv_case(3, 8, 2, 3, 24, 3, 1, 1), 1},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int t = 0; t < ncases; t++) {
        clpdd_conv2d_desc d = cases[t].d;
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * 9;
        /* He-like weights (std √(2 / 9cin)), as the real checkpoints' scale */
        float *x = frand(Nx, 1, 500 + t), *w = frand(Nw, sqrtf(2.0f / (9.0f * d.cin)), 510 + t);
        float *b = frand(d.cout, 0.5f, 520 + t), *dy = frand(Ny, 1, 530 + t), *mask = frand(Ny, 1, 540 + t);
        float *res = NULL;
        if (cases[t].res == 1) {
            d.res_c = d.cout, d.res_pad = 0, d.res_stride = 1, d.res_H = d.OH, d.res_W = d.OW;
        } else if (cases[t].res == 2) {
            d.res_c = d.cout / 2, d.res_pad = d.cout / 4, d.res_stride = 2, d.res_H = 2 * d.H, d.res_W = 2 * d.W;
        }
        if (cases[t].res) res = frand((size_t)d.n * d.res_c * d.res_H * d.res_W, 1, 550 + t);
        float *y = fa(Ny), *y0 = fa(Ny), *dx = fa(Nx), *dx0 = fa(Nx);
        double *r = da(Ny), *rx = da(Nx);
        /* Winograd's scratch: the transformed weights + 16·(cin + cout)·tiles per image */
        const size_t tiles = (size_t)((d.H + 1) / 2) * ((d.W + 1) / 2);
        const size_t one = 16 * (size_t)(d.cin + d.cout) * tiles, U = 16 * (size_t)d.cin * d.cout;
        /* one image per group (serial), half the images per thread, all; the resnet plugin's size */
        const size_t wfs[4] = {U + one, U + one * (size_t)d.n, U + 4 * one * (size_t)d.n,
                               2 * CLPDD_CONV2D_WORK(&d, 1) + Nw};
        for (int v = 0; v < 4; v++) { /* plain, bias + shortcut + ReLU, masked backward, plain backward */
            d.relu = v == 1;
            const float *bv = v == 1 ? b : NULL, *rv = v == 1 ? res : NULL, *mv = v == 2 ? mask : NULL;
            if (v < 2)
                ref_conv2d(r, x, w, bv, rv, &d);
            else
                ref_conv2d_bwd(rx, dy, mv, w, &d);
            double worst = 0;
            for (int q = 0; q < 4; q++) {
                size_t wf = wfs[q] > CLPDD_CONV2D_WORK(&d, 1) ? wfs[q] : CLPDD_CONV2D_WORK(&d, 1);
                float *work = fa(wf);
                poison(work, wf);
                char what[160];
                double e;
                if (v < 2) {
                    poison(y, Ny);
                    O->conv2d(y, work, wf, x, w, bv, rv, &d);
                    e = test_rel_err_fd(y, r, Ny);
                    if (q == 0) memcpy(y0, y, Ny * sizeof(float));
                    else if (wino && t < ncases - 2) cr_expect_arr_eq(y, y0, Ny * sizeof(float), "%s: forward differs by work size", cases[t].name);
                } else {
                    poison(dx, Nx);
                    O->conv2d_backward(dx, work, wf, dy, mv, w, &d);
                    e = test_rel_err_fd(dx, rx, Nx);
                    if (q == 0) memcpy(dx0, dx, Nx * sizeof(float));
                    else if (wino && t < ncases - 2) cr_expect_arr_eq(dx, dx0, Nx * sizeof(float), "%s: backward differs by work size", cases[t].name);
                }
                snprintf(what, sizeof what, "%s %s %s work %d", algo, cases[t].name,
                         v == 0 ? "forward" : v == 1 ? "forward+bias+res+relu" : v == 2 ? "backward masked" : "backward",
                         q);
                cr_assert(e <= TOL_RED, "%s: normalised error %.3g > %.3g", what, e, TOL_RED);
                if (e > worst) worst = e;
                free(work);
            }
            cr_log_info("%s %s %s: normalised error %.3g", algo, cases[t].name,
                        v == 0 ? "forward" : v == 1 ? "forward+bias+res+relu" : v == 2 ? "backward masked" : "backward",
                        worst);
        }
        free(x), free(w), free(b), free(dy), free(mask), free(res), free(y), free(y0), free(dx), free(dx0);
        free(r), free(rx);
    }
}

/* which path CLPDD_CONV_ALGO = auto (the default) takes: Winograd for resnet20's stride-1 3×3
   convolutions of 16–128 channels, forward and backward; GEMM for the 3-channel stem and the
   stride-2 convolutions; and never with gemm */
static long conv_runs_counted(clpdd_conv2d_desc d, int backward, long (*runs)(void)) {
    const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW, Nw = (size_t)d.cout * d.cin * 9;
    const size_t wf = 4 * CLPDD_CONV2D_WORK(&d, d.n) + 2 * Nw;
    float *x = frand(Nx, 1, 1), *w = frand(Nw, 0.1f, 2), *y = fa(Ny), *work = fa(wf);
    long before = runs();
    if (backward) O->conv2d_backward(x, work, wf, y, NULL, w, &d);
    else O->conv2d(y, work, wf, x, w, NULL, NULL, &d);
    free(x), free(w), free(y), free(work);
    return runs() - before;
}
static long conv_runs_winograd(clpdd_conv2d_desc d, int backward) {
    return conv_runs_counted(d, backward, clpdd_cpu_conv_winograd_runs);
}
static long conv_runs_winograd4(clpdd_conv2d_desc d, int backward) {
    return conv_runs_counted(d, backward, clpdd_cpu_conv_winograd4_runs);
}

Test(ops_cpu, conv2d_auto_dispatch) {
    unsetenv("CLPDD_CONV_ALGO");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 16, 32, 32, 16, 3, 1, 1), 0), 1, "stage 1 forward: Winograd");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 32, 16, 16, 32, 3, 1, 1), 1), 1, "stage 2 backward: Winograd");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 64, 8, 8, 64, 3, 1, 1), 0), 1, "stage 3 forward: Winograd");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 3, 32, 32, 16, 3, 1, 1), 0), 0, "the 3-channel stem: GEMM");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 16, 32, 32, 32, 3, 2, 1), 0), 0, "stride 2: GEMM");
    /* F(4,3) where no side exceeds 32 channels (ops_cpu_conv.c wino_tile_for), F(2,3) wider */
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 16, 32, 32, 16, 3, 1, 1), 0), 1, "auto, 16ch 32²: F(4,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 32, 16, 16, 32, 3, 1, 1), 1), 1, "auto, 32ch 16² backward: F(4,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 64, 8, 8, 64, 3, 1, 1), 0), 0, "auto, 64ch 8²: F(2,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(2, 64, 16, 16, 64, 3, 1, 1), 0), 0, "auto, 64ch 16²: F(2,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(2, 32, 16, 16, 64, 3, 1, 1), 0), 0, "auto, 32 → 64ch: F(2,3)");
}

/* CLPDD_CONV_ALGO = winograd4: F(4×4, 3×3) for resnet20's 32² and 16² convolutions, F(2,3) at 8²
   (2 × 2 tiles would pad to 16 columns: one image's tiles do not fit CLPDD_CONV2D_WORK(d, 1)) */
Test(ops_cpu, conv2d_winograd4_dispatch) {
    setenv("CLPDD_CONV_ALGO", "winograd4", 1);
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 16, 32, 32, 16, 3, 1, 1), 0), 1, "stage 1 forward: F(4,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 32, 16, 16, 32, 3, 1, 1), 1), 1, "stage 2 backward: F(4,3)");
    cr_expect_eq(conv_runs_winograd4(conv_case(4, 64, 8, 8, 64, 3, 1, 1), 0), 0, "stage 3 (8x8): not F(4,3)");
    cr_expect_eq(conv_runs_winograd(conv_case(4, 64, 8, 8, 64, 3, 1, 1), 0), 1, "stage 3 (8x8): F(2,3)");
}

Test(ops_cpu, conv2d_gemm_forced) {
    setenv("CLPDD_CONV_ALGO", "gemm", 1);
    cr_expect_eq(conv_runs_winograd(conv_case(4, 16, 32, 32, 16, 3, 1, 1), 0), 0, "CLPDD_CONV_ALGO=gemm: never Winograd");
}

Test(ops_cpu, conv2d_winograd) { conv_algo_cases("winograd"); }
/* F(4×4, 3×3) on the same cases (ops_cpu_winograd4.c; the odd sides give partial 4 × 4 tiles, the
   1×1 image a single one): measured 0.8–1.3e-6 normalised at the resnet20 shapes, ~4× F(2,3)'s */
Test(ops_cpu, conv2d_winograd4) { conv_algo_cases("winograd4"); }
/* one conv2d (v < 2: forward, v = 1 with bias + shortcut + ReLU) or conv2d_backward (v = 2 masked) */
static void conv_variant(float *out, const float *x, const float *w, const float *b, const float *res,
                         const float *dy, const float *mask, clpdd_conv2d_desc d, int v, size_t wf) {
    float *work = fa(wf);
    poison(work, wf);
    d.relu = v == 1;
    if (v < 2) O->conv2d(out, work, wf, x, w, v == 1 ? b : NULL, v == 1 ? res : NULL, &d);
    else O->conv2d_backward(out, work, wf, dy, v == 2 ? mask : NULL, w, &d);
    free(work);
}

/* the fused AVX-512 F(2,3) and F(4,3) kernels (ops_cpu_winograd_fused.c, _winograd4_fused.c)
   against the unfused paths
   ($CLPDD_WINO_FUSED = 0) bit for bit: the same transforms, and OpenBLAS sums each product in
   the order the fused FMAs do. The resnet20 maps (16 tiles per block as 1, 2 and 4 tile rows), a
   64² map (two blocks per tile row: the neighbours across a block edge), the option-A shortcut,
   NaN and zero masks, serial and on the pool. On a CPU without AVX-512 only the counts differ. */
static void fused_against_unfused(const char *algo) {
    setenv("CLPDD_CONV_ALGO", algo, 1);
    const int f4 = !strcmp(algo, "winograd4");
    struct { clpdd_conv2d_desc d; int res; } cases[] = {
        {conv_case(3, 16, 32, 32, 16, 3, 1, 1), 1}, {conv_case(2, 32, 16, 16, 32, 3, 1, 1), 2},
        {conv_case(3, 64, 8, 8, 64, 3, 1, 1), 1},   {conv_case(2, 16, 64, 64, 16, 3, 1, 1), 1},
        {conv_case(1, 32, 8, 8, 32, 3, 1, 1), 0},
    };
    __builtin_cpu_init();
    const int avx512 = !!__builtin_cpu_supports("avx512f");
    for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
        clpdd_conv2d_desc d = cases[t].d;
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * 9;
        if (cases[t].res == 1)
            d.res_c = d.cout, d.res_pad = 0, d.res_stride = 1, d.res_H = d.OH, d.res_W = d.OW;
        else if (cases[t].res == 2)
            d.res_c = d.cout / 2, d.res_pad = d.cout / 4, d.res_stride = 2, d.res_H = 2 * d.H, d.res_W = 2 * d.W;
        float *x = frand(Nx, 1, 700 + t), *w = frand(Nw, sqrtf(2.0f / (9.0f * d.cin)), 710 + t);
        float *b = frand(d.cout, 0.5f, 720 + t), *dy = frand(Ny, 1, 730 + t), *mask = frand(Ny, 1, 740 + t);
        float *res = cases[t].res ? frand((size_t)d.n * d.res_c * d.res_H * d.res_W, 1, 750 + t) : NULL;
        mask[3] = NAN, mask[Ny - 1] = 0.0f, x[5] = -0.0f;
        const size_t N = Nx > Ny ? Nx : Ny;
        float *fused = fa(N), *plain = fa(N);
        const size_t minw = CLPDD_CONV2D_WORK(&d, 1);
        const size_t wfs[2] = {minw, 4 * CLPDD_CONV2D_WORK(&d, d.n) + Nw}; /* serial (U allocated); pool */
        for (int v = 0; v < 4; v++)
            for (int q = 0; q < 2; q++) {
                const size_t n = v < 2 ? Ny : Nx;
                unsetenv("CLPDD_WINO_FUSED");
                const long before = clpdd_cpu_conv_winograd_fused_runs();
                conv_variant(fused, x, w, b, res, dy, mask, d, v, wfs[q]);
                /* F(4,3) fused: 32² and 16² maps (8² is F(2,3)'s; 64² the unfused F(4,3)'s) */
                const int fused_here = avx512 && !(f4 && d.H == 64);
                cr_expect_eq(clpdd_cpu_conv_winograd_fused_runs() - before, fused_here, "%s case %d: the fused kernel ran", algo, t);
                setenv("CLPDD_WINO_FUSED", "0", 1);
                conv_variant(plain, x, w, b, res, dy, mask, d, v, wfs[q]);
                cr_expect_eq(clpdd_cpu_conv_winograd_fused_runs() - before, fused_here, "%s case %d: $CLPDD_WINO_FUSED = 0", algo, t);
                cr_expect_arr_eq(fused, plain, n * sizeof(float), "%s case %d variant %d work %d: fused differs", algo, t, v, q);
            }
        unsetenv("CLPDD_WINO_FUSED");
        free(x), free(w), free(b), free(dy), free(mask), free(res), free(fused), free(plain);
    }
}
Test(ops_cpu, conv2d_winograd_fused) { fused_against_unfused("winograd"); }
Test(ops_cpu, conv2d_winograd4_fused) { fused_against_unfused("winograd4"); }

/* the fused kernel keeps each weight tensor's transformed U (ops_cpu_winograd.c, wino_u_cached):
   weights changed in place at the same address must give the new weights' result, not the
   cached one's; the same weights again, the same bits */
Test(ops_cpu, conv2d_winograd_weights_changed_in_place) {
    setenv("CLPDD_CONV_ALGO", "winograd", 1);
    clpdd_conv2d_desc d = conv_case(2, 32, 16, 16, 32, 3, 1, 1);
    const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Nw = (size_t)d.cout * d.cin * 9;
    const size_t wf = 4 * CLPDD_CONV2D_WORK(&d, d.n) + Nw;
    float *x = frand(Nx, 1, 801), *w = frand(Nw, 0.1f, 802), *w2 = frand(Nw, 0.1f, 803);
    float *y1 = fa(Nx), *y2 = fa(Nx), *y3 = fa(Nx), *ref = fa(Nx), *work = fa(wf);
    for (int bwd = 0; bwd < 2; bwd++) {
        float *keep = fa(Nw);
        memcpy(keep, w, Nw * sizeof(float));
        if (bwd) O->conv2d_backward(y1, work, wf, x, NULL, w, &d);
        else O->conv2d(y1, work, wf, x, w, NULL, NULL, &d);
        memcpy(w, w2, Nw * sizeof(float)); /* in place: the same pointer, other weights */
        if (bwd) O->conv2d_backward(y2, work, wf, x, NULL, w, &d);
        else O->conv2d(y2, work, wf, x, w, NULL, NULL, &d);
        setenv("CLPDD_WINO_FUSED", "0", 1); /* the unfused path transforms the weights every call */
        if (bwd) O->conv2d_backward(ref, work, wf, x, NULL, w, &d);
        else O->conv2d(ref, work, wf, x, w, NULL, NULL, &d);
        unsetenv("CLPDD_WINO_FUSED");
        cr_expect_arr_eq(y2, ref, Nx * sizeof(float), "%s: weights changed in place, a stale U served", bwd ? "backward" : "forward");
        cr_expect(memcmp(y1, y2, Nx * sizeof(float)) != 0, "the two weight sets give different outputs");
        memcpy(w, keep, Nw * sizeof(float));
        if (bwd) O->conv2d_backward(y3, work, wf, x, NULL, w, &d);
        else O->conv2d(y3, work, wf, x, w, NULL, NULL, &d);
        cr_expect_arr_eq(y3, y1, Nx * sizeof(float), "%s: the first weights again", bwd ? "backward" : "forward");
        free(keep);
    }
    free(x), free(w), free(w2), free(y1), free(y2), free(y3), free(ref), free(work);
}

/* the direct AVX-512 forward (ops_cpu_conv_direct.c) against the GEMM path ($CLPDD_CONV_DIRECT =
   0) bit for bit: resnet20's stem (3 → 16, 32², two blocks per row) and its two stride-2
   convolutions (32² → 16²: a row per block; 16² → 8²: two rows), a stride-2 map of 64² → 32²
   (the neighbour across a block edge), plain and with bias + ReLU, serial and on the pool */
Test(ops_cpu, conv2d_direct) {
    unsetenv("CLPDD_CONV_ALGO");
    const clpdd_conv2d_desc cases[] = {conv_case(3, 3, 32, 32, 16, 3, 1, 1), conv_case(3, 16, 32, 32, 32, 3, 2, 1),
                                       conv_case(5, 32, 16, 16, 64, 3, 2, 1), conv_case(2, 8, 64, 64, 16, 3, 2, 1),
                                       conv_case(40, 3, 32, 32, 16, 3, 1, 1)};
    __builtin_cpu_init();
    const int avx512 = !!__builtin_cpu_supports("avx512f");
    for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
        clpdd_conv2d_desc d = cases[t];
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * 9, wf = 2 * CLPDD_CONV2D_WORK(&d, d.n) + Nw;
        float *x = frand(Nx, 1, 900 + t), *w = frand(Nw, sqrtf(2.0f / (9.0f * d.cin)), 910 + t);
        float *b = frand(d.cout, 0.5f, 920 + t), *direct = fa(Ny), *gemm = fa(Ny), *work = fa(wf);
        x[7] = -0.0f;
        for (int v = 0; v < 2; v++) {
            d.relu = v;
            const float *bv = v ? b : NULL;
            unsetenv("CLPDD_CONV_DIRECT");
            const long before = clpdd_cpu_conv_direct_runs();
            poison(work, wf);
            O->conv2d(direct, work, wf, x, w, bv, NULL, &d);
            cr_expect_eq(clpdd_cpu_conv_direct_runs() - before, avx512, "case %d: the direct kernel ran", t);
            setenv("CLPDD_CONV_DIRECT", "0", 1);
            O->conv2d(gemm, work, wf, x, w, bv, NULL, &d);
            cr_expect_eq(clpdd_cpu_conv_direct_runs() - before, avx512, "case %d: $CLPDD_CONV_DIRECT = 0", t);
            cr_expect_arr_eq(direct, gemm, Ny * sizeof(float), "case %d variant %d: direct differs from GEMM", t, v);
        }
        unsetenv("CLPDD_CONV_DIRECT");
        free(x), free(w), free(b), free(direct), free(gemm), free(work);
    }
}

/* the stem's backward (the image gradient: 16 → 3 channels, stride 1) by the direct kernel against
   the GEMM path's transposed form it follows, bit for bit: masked and not, 32² and 16², on the pool.
   The last case's work cannot hold the transposed form: the GEMM path takes its col2im form, and
   so must the direct kernel (it does not run) */
Test(ops_cpu, conv2d_direct_backward) {
    unsetenv("CLPDD_CONV_ALGO");
    const clpdd_conv2d_desc cases[] = {conv_case(3, 3, 32, 32, 16, 3, 1, 1), conv_case(2, 3, 16, 16, 16, 3, 1, 1),
                                       conv_case(24, 3, 32, 32, 16, 3, 1, 1), conv_case(2, 1, 32, 32, 8, 3, 1, 1)};
    __builtin_cpu_init();
    const int avx512 = !!__builtin_cpu_supports("avx512f");
    for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
        const clpdd_conv2d_desc d = cases[t];
        const size_t Nx = (size_t)d.n * d.cin * d.H * d.W, Ny = (size_t)d.n * d.cout * d.OH * d.OW;
        const size_t Nw = (size_t)d.cout * d.cin * 9, wf = 4 * CLPDD_CONV2D_WORK(&d, d.n) + 2 * Nw;
        float *dy = frand(Ny, 1, 930 + t), *mask = frand(Ny, 1, 940 + t), *w = frand(Nw, 0.3f, 950 + t);
        float *direct = fa(Nx), *gemm = fa(Nx), *work = fa(wf);
        mask[2] = NAN, dy[9] = -0.0f;
        for (int v = 0; v < 2; v++) {
            const float *mv = v ? mask : NULL;
            unsetenv("CLPDD_CONV_DIRECT");
            const long before = clpdd_cpu_conv_direct_runs();
            O->conv2d_backward(direct, work, wf, dy, mv, w, &d);
            cr_expect_eq(clpdd_cpu_conv_direct_runs() - before, t < 3 ? avx512 : 0, "case %d: the direct kernel ran", t);
            setenv("CLPDD_CONV_DIRECT", "0", 1);
            O->conv2d_backward(gemm, work, wf, dy, mv, w, &d);
            cr_expect_arr_eq(direct, gemm, Nx * sizeof(float), "case %d %s: direct differs from the transposed form", t,
                             v ? "masked" : "plain");
        }
        unsetenv("CLPDD_CONV_DIRECT");
        free(dy), free(mask), free(w), free(direct), free(gemm), free(work);
    }
}

/* the same cases on the GEMM path: its errors, for comparison */
Test(ops_cpu, conv2d_winograd_baseline_gemm) { conv_algo_cases("gemm"); }

/* the ReLUs above CLPDD_CPU_PAR_MIN run on the pool, in blocks: the same values as element by
   element, including a partial last block and NaN inputs (NaN > 0 is false: 0 out) */
Test(ops_cpu, relu_large_on_the_pool) {
    const clpdd_ops *o = clpdd_ops_cpu();
    const size_t n = 100003;
    float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)),
          *dx = malloc(n * sizeof(float));
    test_fill_normal(x, n, 1.0f, 91);
    test_fill_normal(dy, n, 1.0f, 92);
    x[5] = NAN, x[n - 1] = -0.0f;
    o->relu(y, x, n);
    o->relu_backward(dx, dy, x, n);
    for (size_t i = 0; i < n; i++) {
        float want = x[i] > 0.0f ? x[i] : 0.0f, wantd = x[i] > 0.0f ? dy[i] : 0.0f;
        cr_assert(memcmp(&y[i], &want, 4) == 0 && memcmp(&dx[i], &wantd, 4) == 0, "element %zu", i);
    }
    o->relu(x, x, n); /* in place */
    cr_expect(memcmp(x, y, n * sizeof(float)) == 0);
    free(x), free(dy), free(y), free(dx);
}
