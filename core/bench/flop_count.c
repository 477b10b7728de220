#include "bench/flop_count.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/util.h"

static clpdd_ops view;
static const clpdd_ops *in;
static _Atomic double flops; /* pieces side by side (ops->pieces_run) add from several threads */

void clpdd_flops_reset(void) { atomic_store(&flops, 0.0); }
double clpdd_flops(void) { return atomic_load(&flops); }

static void add_flops(double f) { /* a CAS loop: `flops += f` on an atomic double needs libatomic */
    double seen = atomic_load_explicit(&flops, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&flops, &seen, seen + f, memory_order_relaxed, memory_order_relaxed)) {
    }
}

static void c_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                   float beta, float *C, int ldc) {
    add_flops(2.0 * M * N * K);
    in->gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static void c_gemm_batched(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, long long sA,
                           const float *B, int ldb, long long sB, float beta, float *C, int ldc, long long sC, int batch) {
    add_flops(2.0 * M * N * K * batch);
    in->gemm_batched(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
static void c_syrk(int trans, int N, int K, float alpha, const float *A, int lda, float beta, float *C, int ldc) {
    add_flops((double)N * (N + 1) * K);
    in->syrk(trans, N, K, alpha, A, lda, beta, C, ldc);
}
static int c_potrf(float *A, int n, int lda) {
    add_flops((double)n * n * n / 3.0);
    return in->potrf(A, n, lda);
}
static void c_potrs(const float *L, int n, int lda, float *B, int nrhs, int ldb) {
    add_flops(2.0 * n * n * nrhs);
    in->potrs(L, n, lda, B, nrhs, ldb);
}
static double conv_flops(const clpdd_conv2d_desc *d) {
    return 2.0 * d->n * d->cout * d->OH * d->OW * d->cin * d->k * d->k;
}
static void c_conv2d(float *y, float *work, size_t wf, const float *x, const float *w, const float *bias, const float *res,
                     const clpdd_conv2d_desc *d) {
    add_flops(conv_flops(d));
    in->conv2d(y, work, wf, x, w, bias, res, d);
}
static void c_conv2d_backward(float *dx, float *work, size_t wf, const float *dy, const float *mask, const float *w,
                              const clpdd_conv2d_desc *d) {
    add_flops(conv_flops(d));
    in->conv2d_backward(dx, work, wf, dy, mask, w, d);
}
static double att_flops(int n, int T, int Hh, int hd) { return 4.0 * n * Hh * (double)T * T * hd; }
static void c_attention(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    add_flops(att_flops(n, T, Hh, hd));
    in->attention(out, att, qkv, n, T, Hh, hd, scale);
}
static void c_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int n, int T,
                                 int Hh, int hd, float scale) {
    add_flops(2.0 * att_flops(n, T, Hh, hd));
    in->attention_backward(dqkv, datt, dout, qkv, att, n, T, Hh, hd, scale);
}
static void c_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    add_flops(att_flops(n, T, Hh, hd));
    in->attention_fused(out, lse, qkv, n, T, Hh, hd, scale);
}
static void c_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out, const float *lse,
                                       const float *qkv, int n, int T, int Hh, int hd, float scale) {
    add_flops(2.0 * att_flops(n, T, Hh, hd));
    in->attention_fused_backward(dqkv, delta, dout, out, lse, qkv, n, T, Hh, hd, scale);
}

const clpdd_ops *clpdd_ops_counting(const clpdd_ops *inner) {
    in = inner;
    view = *inner; /* every other op, set_precision and precision_supported included, passes through */
    view.gemm = c_gemm;
    view.gemm_batched = c_gemm_batched;
    view.syrk = c_syrk;
    view.potrf = c_potrf;
    view.potrs = c_potrs;
    view.attention = c_attention;
    view.attention_backward = c_attention_backward;
    if (inner->conv2d) view.conv2d = c_conv2d;
    if (inner->conv2d_backward) view.conv2d_backward = c_conv2d_backward;
    if (inner->attention_fused) view.attention_fused = c_attention_fused;
    if (inner->attention_fused_backward) view.attention_fused_backward = c_attention_fused_backward;
    return &view;
}

double clpdd_gemm_gflops(const clpdd_ops *ops, int n, int reps) {
    size_t sz = (size_t)n * n * sizeof(float);
    float *A = ops->malloc(sz), *B = ops->malloc(sz), *C = ops->malloc(sz);
    double *t = malloc((size_t)(reps > 0 ? reps : 1) * sizeof(double)), rate = 0.0;
    if (A && B && C && t) {
        ops->rand_normal(A, (size_t)n * n, 0.0f, 1.0f, 1, 0);
        ops->rand_normal(B, (size_t)n * n, 0.0f, 1.0f, 2, 0);
        for (int i = -1; i < reps; i++) {
            ops->synchronize();
            double t0 = clpdd_now();
            ops->gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
            ops->synchronize();
            if (i >= 0) t[i] = clpdd_now() - t0;
        }
        rate = 2.0 * n * n * (double)n / clpdd_median(t, reps) / 1e9;
    }
    ops->free(A), ops->free(B), ops->free(C);
    free(t);
    return rate;
}
