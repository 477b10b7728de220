/* The register-blocked kernels of the CPU attention ops, shared by the materialised
 * (core/cpu/ops_cpu_attention.c) and the fused (core/cpu/ops_cpu_attention_fused.c) paths:
 * small products straight on strided rows (att_gemm_nn, att_gemm_nt: an mr × 16 micro-tile of
 * C in vector registers, GCC vector extensions), and the 8-lane exp / max of the softmax.
 * Everything is static inline and always inlined, so each including file's target_clones
 * (ATT_CLONES) compiles it for x86-64-v4 / v3 / baseline; there is no state.
 *
 * Sums: every element of C is Σ_k in ascending k, whatever the micro-tile it falls in, so the
 * tiling (mr, panel, the caller's blocking) never changes a result; accumulate = 1 adds that
 * sum (times alpha) to C's old value. */
#ifndef CLPDD_CPU_ATTENTION_KERNELS_H
#define CLPDD_CPU_ATTENTION_KERNELS_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ATT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATT_CLONES
#endif
#define ATT_INLINE static inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi" /* 32-byte vectors in the "default" clone: all inlined */

typedef float att_v8 __attribute__((vector_size(32)));
typedef double att_d4 __attribute__((vector_size(32)));
typedef int32_t att_i8 __attribute__((vector_size(32)));

ATT_INLINE att_v8 att_ld(const float *p) {
    att_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
ATT_INLINE void att_st(float *p, const att_v8 *v) { memcpy(p, v, sizeof *v); }

/* A micro-tile is mr × 16 floats of C (mr·2 vector accumulators): mr = 8 where the CPU has 32
   vector registers (AVX-512VL), else 4. Every element of C is the same k-ordered sum whatever
   the tile, so the choice never changes a result. */
enum {
    ATT_MR = 8,            /* most rows of C per micro-tile */
    ATT_NV = 2,            /* 8-float vectors per micro-tile row */
    ATT_NR = 8 * ATT_NV,   /* columns of C per micro-tile */
    ATT_KMAX = 512,        /* longest K of the transposed panel (larger: the plain loop) */
};

/* C (mr, 8·nv) = alpha·Σ_k A[r·ars + k·acs]·B[k·ldb + c], or C += that with accum; mr ≤ ATT_MR,
   nv ≤ ATT_NV and accum constants after inlining */
ATT_INLINE void att_tile(int mr, int nv, int accum, int K, float alpha, const float *A, long ars, long acs, const float *B,
                         long ldb, float *C, long ldc) {
    att_v8 acc[ATT_MR][ATT_NV];
    for (int r = 0; r < ATT_MR; r++)
        for (int v = 0; v < ATT_NV; v++) acc[r][v] = (att_v8){0};
    for (int k = 0; k < K; k++) {
        att_v8 b[ATT_NV];
        for (int v = 0; v < nv; v++) b[v] = att_ld(B + (long)k * ldb + 8 * v);
        for (int r = 0; r < ATT_MR; r++)
            if (r < mr) {
                float a = A[r * ars + (long)k * acs];
                for (int v = 0; v < nv; v++) acc[r][v] += a * b[v];
            }
    }
    for (int r = 0; r < ATT_MR; r++)
        if (r < mr)
            for (int v = 0; v < nv; v++) {
                att_v8 c = acc[r][v] * alpha;
                if (accum) c = att_ld(C + r * ldc + 8 * v) + c;
                att_st(C + r * ldc + 8 * v, &c);
            }
}

/* att_tile with a run-time mr (1..ATT_MR): one inlined copy per value (nv, accum constants) */
ATT_INLINE void att_tile_mr(int mr, int nv, int accum, int K, float alpha, const float *A, long ars, long acs,
                            const float *B, long ldb, float *C, long ldc) {
    switch (mr) {
    case 8: att_tile(8, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 7: att_tile(7, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 6: att_tile(6, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 5: att_tile(5, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 4: att_tile(4, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 3: att_tile(3, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 2: att_tile(2, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    default: att_tile(1, nv, accum, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    }
}

/* att_tile_mr at the full width (16 columns) */
ATT_INLINE void att_tile_any(int mr, int accum, int K, float alpha, const float *A, long ars, long acs,
                             const float *B, long ldb, float *C, long ldc) {
    if (accum)
        att_tile_mr(mr, ATT_NV, 1, K, alpha, A, ars, acs, B, ldb, C, ldc);
    else
        att_tile_mr(mr, ATT_NV, 0, K, alpha, A, ars, acs, B, ldb, C, ldc);
}

/* C (M, N) = alpha·op(A)·B (accum: C += alpha·op(A)·B), B (K, N) rows ldb; op(A) (M, K) with
   A[i·ars + k·acs] (ars = lda, acs = 1: A as stored; ars = 1, acs = lda: Aᵀ) */
ATT_INLINE void att_gemm_nn(int mrs, int accum, float *C, long ldc, const float *A, long ars, long acs, const float *B,
                            long ldb, int M, int N, int K, float alpha) {
    const int Nv = N / ATT_NR * ATT_NR;
    for (int i0 = 0; i0 < M; i0 += mrs) {
        int mr = M - i0 < mrs ? M - i0 : mrs;
        const float *Ai = A + i0 * ars;
        for (int j0 = 0; j0 < Nv; j0 += ATT_NR)
            att_tile_any(mr, accum, K, alpha, Ai, ars, acs, B + j0, ldb, C + i0 * ldc + j0, ldc);
        for (int r = 0; r < mr; r++) /* columns past the last full tile */
            for (int j = Nv; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += Ai[r * ars + (long)k * acs] * B[(long)k * ldb + j];
                C[(i0 + r) * ldc + j] = accum ? C[(i0 + r) * ldc + j] + alpha * s : alpha * s;
            }
    }
}

/* bt (K, NR) = the first nr rows of B (nr, K; rows ldb) transposed, zero columns nr..NR−1:
   8×8 blocks transposed in registers, the last K mod 8 rows of bt one by one */
ATT_INLINE void att_panel_t(float *bt, const float *B, long ldb, int nr, int K) {
    enum { w = ATT_NR };
    const int Kv = K / 8 * 8;
    for (int c0 = 0; c0 < w; c0 += 8) {
        for (int k = 0; k < Kv; k += 8) {
            att_v8 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++) r[i] = c0 + i < nr ? att_ld(B + (c0 + i) * ldb + k) : (att_v8){0};
            for (int i = 0; i < 8; i += 2) {
                t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
            }
            for (int i = 0; i < 8; i += 4)
                for (int h = 0; h < 2; h++) {
                    u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                    u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
                }
            for (int i = 0; i < 4; i++) {
                att_v8 lo = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11),
                       hi = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
                att_st(bt + (k + i) * w + c0, &lo);
                att_st(bt + (k + i + 4) * w + c0, &hi);
            }
        }
        for (int k = Kv; k < K; k++)
            for (int c = c0; c < c0 + 8; c++) bt[k * w + c] = c < nr ? B[c * ldb + k] : 0.0f;
    }
}

/* C (M, N) = alpha·A·Bᵀ, A (M, K) rows lda, B (N, K) rows ldb: per panel of NR rows of B, a
   transposed copy bt (K, NR) with zero columns past N, on the stack. A last panel of ≤ 8 rows
   runs 8-column tiles (one vector per row: half the FMAs of a 16-column tile; the sums are the
   same, so the results too). */
ATT_INLINE void att_gemm_nt(int mrs, float *C, long ldc, const float *A, long lda, const float *B, long ldb, int M,
                            int N, int K, float alpha) {
    if (K > ATT_KMAX) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += A[i * lda + k] * B[j * ldb + k];
                C[i * ldc + j] = alpha * s;
            }
        return;
    }
    float bt[ATT_KMAX * ATT_NR] __attribute__((aligned(64)));
    float tmp[ATT_MR * ATT_NR] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < N; j0 += ATT_NR) {
        const int nr = N - j0 < ATT_NR ? N - j0 : ATT_NR;
        att_panel_t(bt, B + j0 * ldb, ldb, nr, K);
        for (int i0 = 0; i0 < M; i0 += mrs) {
            int mr = M - i0 < mrs ? M - i0 : mrs;
            if (nr == ATT_NR) {
                att_tile_any(mr, 0, K, alpha, A + i0 * lda, lda, 1, bt, ATT_NR, C + i0 * ldc + j0, ldc);
            } else {
                /* a last panel of ≤ 8 rows of B: half-width tiles, half the FMAs */
                if (nr <= 8)
                    att_tile_mr(mr, 1, 0, K, alpha, A + i0 * lda, lda, 1, bt, ATT_NR, tmp, ATT_NR);
                else
                    att_tile_mr(mr, ATT_NV, 0, K, alpha, A + i0 * lda, lda, 1, bt, ATT_NR, tmp, ATT_NR);
                for (int r = 0; r < mr; r++) memcpy(C + (i0 + r) * ldc + j0, tmp + r * ATT_NR, sizeof(float) * nr);
            }
        }
    }
}

ATT_INLINE att_v8 att_max(const att_v8 *pa, const att_v8 *pb) { /* a > b ? a : b per lane (NaN in a never wins) */
    att_v8 a = *pa, b = *pb;
    att_i8 g = a > b;
    return (att_v8)((g & (att_i8)a) | (~g & (att_i8)b));
}

/* e^x, 8 lanes: Cephes expf (range reduction by ln 2 in two parts, degree-6 polynomial; ≤ 2 ulp
   on [−87.3, 88.7]); x below −87.3 gives e^−87.3 ≈ 1.2e−38 instead of a denormal or 0,
   NaN stays NaN */
ATT_INLINE att_v8 att_exp(const att_v8 *px) {
    att_v8 x = *px;
    const att_v8 hi = (att_v8){0} + 88.3762626647949f, lo = (att_v8){0} + -87.3365447504f;
    att_i8 m = x > hi;
    x = (att_v8)((m & (att_i8)hi) | (~m & (att_i8)x));
    m = x < lo;
    x = (att_v8)((m & (att_i8)lo) | (~m & (att_i8)x));
    const float magic = 12582912.0f; /* 1.5·2²³: adding it rounds to an integer */
    att_v8 n = (x * 1.44269504088896341f + magic) - magic;
    att_v8 r = x - n * 0.693359375f - n * -2.12194440e-4f;
    att_v8 p = (att_v8){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    att_i8 e = (__builtin_convertvector(n, att_i8) + 127) << 23;
    return p * (att_v8)e;
}

ATT_INLINE float att_hmax(const att_v8 *pm) { /* max of the lanes, a tree of att_max */
    att_v8 m = *pm, t;
    t = __builtin_shufflevector(m, m, 4, 5, 6, 7, 0, 1, 2, 3), m = att_max(&m, &t);
    t = __builtin_shufflevector(m, m, 2, 3, 0, 1, 6, 7, 4, 5), m = att_max(&m, &t);
    t = __builtin_shufflevector(m, m, 1, 0, 3, 2, 5, 4, 7, 6), m = att_max(&m, &t);
    return m[0];
}

ATT_INLINE att_d4 att_widen_sum(const att_v8 *pe) { /* (e0+e4, e1+e5, e2+e6, e3+e7) in float64 */
    att_v8 e = *pe;
    return __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3), att_d4) +
           __builtin_convertvector(__builtin_shufflevector(e, e, 4, 5, 6, 7), att_d4);
}

/* micro-tile rows for this CPU: 8 with 32 vector registers (AVX-512VL), else 4 */
static inline int att_tile_rows(void) {
#if defined(__GNUC__) && defined(__x86_64__)
    static int rows;
    if (!rows) rows = __builtin_cpu_supports("avx512vl") ? 8 : 4; /* a benign race: same value */
    return rows;
#else
    return 4;
#endif
}

#endif
