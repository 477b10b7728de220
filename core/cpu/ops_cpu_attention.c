/* CPU backend: multi-head attention, the reference of core/cuda/ops_cuda_nn.cu's attention.
 * Forward writes out and att (=); backward writes dqkv (=) and uses datt as scratch. There are
 * no parameters.
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width, D = Hh·hd.
 * qkv (n, T, 3D) rows [q | k | v], head h at column h·hd of each part; att (n, Hh, T, T)
 * the softmax probabilities; out (n, T, D).
 *
 * The n·Hh (image, head) pairs are independent: cpu_parallel_for (threadpool.h) hands out
 * contiguous chunks of them to the pool's threads, and each pair is computed start to finish
 * by one thread with the fixed-order kernels below, so the results do not depend on the thread
 * count or the scheduling. The products are small (T×T×hd, T ≈ 50–200, hd 64), where
 * OpenBLAS's per-call threading and packing cost more than the arithmetic (bench/bench_cpu.c
 * measures the per-pair sgemm alternative); they are done by a register-blocked kernel (GCC
 * vector extensions, cloned for x86-64-v4/v3 at run time) straight on the strided qkv, out and
 * att rows: nothing is copied except a K×16 transposed panel on the stack for the q·kᵀ-type
 * products. Sums run over k in ascending order; the softmax row sums accumulate in float64. */
#include "cpu/ops_cpu.h"

#include <math.h>
#include <string.h>

#include "cpu/threadpool.h"

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

/* C (mr, NR) = alpha·Σ_k A[r·ars + k·acs]·B[k·ldb + c]; mr ≤ ATT_MR a constant after inlining */
ATT_INLINE void att_tile(int mr, int K, float alpha, const float *A, long ars, long acs, const float *B,
                         long ldb, float *C, long ldc) {
    att_v8 acc[ATT_MR][ATT_NV];
    for (int r = 0; r < ATT_MR; r++)
        for (int v = 0; v < ATT_NV; v++) acc[r][v] = (att_v8){0};
    for (int k = 0; k < K; k++) {
        att_v8 b[ATT_NV];
        for (int v = 0; v < ATT_NV; v++) b[v] = att_ld(B + (long)k * ldb + 8 * v);
        for (int r = 0; r < ATT_MR; r++)
            if (r < mr) {
                float a = A[r * ars + (long)k * acs];
                for (int v = 0; v < ATT_NV; v++) acc[r][v] += a * b[v];
            }
    }
    for (int r = 0; r < ATT_MR; r++)
        if (r < mr)
            for (int v = 0; v < ATT_NV; v++) {
                att_v8 c = acc[r][v] * alpha;
                att_st(C + r * ldc + 8 * v, &c);
            }
}

/* att_tile with a run-time mr (1..ATT_MR): one inlined copy per value */
ATT_INLINE void att_tile_any(int mr, int K, float alpha, const float *A, long ars, long acs, const float *B,
                             long ldb, float *C, long ldc) {
    switch (mr) {
    case 8: att_tile(8, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 7: att_tile(7, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 6: att_tile(6, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 5: att_tile(5, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 4: att_tile(4, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 3: att_tile(3, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    case 2: att_tile(2, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    default: att_tile(1, K, alpha, A, ars, acs, B, ldb, C, ldc); break;
    }
}

/* C (M, N) = alpha·op(A)·B, B (K, N) rows ldb; op(A) (M, K) with A[i·ars + k·acs]
   (ars = lda, acs = 1: A as stored; ars = 1, acs = lda: Aᵀ) */
ATT_INLINE void att_gemm_nn(int mrs, float *C, long ldc, const float *A, long ars, long acs, const float *B,
                            long ldb, int M, int N, int K, float alpha) {
    const int Nv = N / ATT_NR * ATT_NR;
    for (int i0 = 0; i0 < M; i0 += mrs) {
        int mr = M - i0 < mrs ? M - i0 : mrs;
        const float *Ai = A + i0 * ars;
        for (int j0 = 0; j0 < Nv; j0 += ATT_NR)
            att_tile_any(mr, K, alpha, Ai, ars, acs, B + j0, ldb, C + i0 * ldc + j0, ldc);
        for (int r = 0; r < mr; r++) /* columns past the last full tile */
            for (int j = Nv; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += Ai[r * ars + (long)k * acs] * B[(long)k * ldb + j];
                C[(i0 + r) * ldc + j] = alpha * s;
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
   transposed copy bt (K, NR) with zero columns past N, on the stack. (A narrower last panel
   gains nothing: a tile's cost is its mr broadcasts per k, whatever its width.) */
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
                att_tile_any(mr, K, alpha, A + i0 * lda, lda, 1, bt, ATT_NR, C + i0 * ldc + j0, ldc);
            } else {
                att_tile_any(mr, K, alpha, A + i0 * lda, lda, 1, bt, ATT_NR, tmp, ATT_NR);
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

/* x (T) = softmax(x) in place (the scale is already in x: S was stored as scale·q·kᵀ).
   The last T mod 8 entries are the top lanes of the vector x[T − 8, T), read before the
   main loop overwrites its lower lanes (T < 8: a padded copy). */
ATT_INLINE void att_softmax_row(float *x, int T) {
    const int Tv = T / 8 * 8, tail = T - Tv;
    att_v8 last;
    if (T >= 8) {
        last = att_ld(x + T - 8);
    } else {
        float pad[8];
        for (int l = 0; l < 8; l++) pad[l] = l >= 8 - T ? x[l - (8 - T)] : -INFINITY;
        last = att_ld(pad);
    }
    att_v8 m = last;
    for (int j = 0; j < Tv; j += 8) {
        att_v8 y = att_ld(x + j);
        m = att_max(&y, &m);
    }
    const float mx = att_hmax(&m);
    att_d4 s4 = {0};
    for (int j = 0; j < Tv; j += 8) {
        att_v8 y = att_ld(x + j) - mx, e = att_exp(&y);
        att_st(x + j, &e);
        s4 += att_widen_sum(&e);
    }
    double s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    if (tail) {
        att_v8 y = last - mx, e = att_exp(&y);
        for (int l = 8 - tail; l < 8; l++) {
            x[Tv + l - (8 - tail)] = e[l];
            s += e[l];
        }
    }
    const float inv = (float)(1.0 / s);
    for (int j = 0; j < Tv; j += 8) {
        att_v8 y = att_ld(x + j) * inv;
        att_st(x + j, &y);
    }
    for (int j = Tv; j < T; j++) x[j] *= inv;
}

/* dS (T) = P ⊙ (dP − Σ dP⊙P) in place on dP */
ATT_INLINE void att_softmax_row_backward(float *dp, const float *p, int T) {
    const int Tv = T / 8 * 8;
    att_d4 s4 = {0};
    for (int j = 0; j < Tv; j += 8) {
        att_v8 e = att_ld(dp + j), y = att_ld(p + j);
        s4 += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3), att_d4) *
                  __builtin_convertvector(__builtin_shufflevector(y, y, 0, 1, 2, 3), att_d4) +
              __builtin_convertvector(__builtin_shufflevector(e, e, 4, 5, 6, 7), att_d4) *
                  __builtin_convertvector(__builtin_shufflevector(y, y, 4, 5, 6, 7), att_d4);
    }
    double s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    for (int j = Tv; j < T; j++) s += (double)dp[j] * p[j];
    float sf = (float)s;
    for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - sf);
}

typedef struct att_job {
    float *out, *att, *dqkv;
    const float *qkv, *dout, *attc;
    int T, Hh, hd;
    float scale;
    int mr; /* micro-tile rows: att_tile_rows() */
} att_job;

static int att_tile_rows(void) {
#if defined(__GNUC__) && defined(__x86_64__)
    static int rows;
    if (!rows) rows = __builtin_cpu_supports("avx512vl") ? 8 : 4; /* a benign race: same value */
    return rows;
#else
    return 4;
#endif
}

/* pairs [p0, p1) of (b, h) = (p / Hh, p % Hh) */
ATT_CLONES static void att_forward_range(void *ctx, int p0, int p1) {
    const att_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    for (int p = p0; p < p1; p++) {
        int b = p / Hh, h = p % Hh;
        const float *q = j->qkv + (long)b * T * ld + (long)h * hd, *k = q + D, *v = q + 2 * D;
        float *P = j->att + (long)p * T * T;                  /* (T, T) */
        att_gemm_nt(j->mr, P, T, q, ld, k, ld, T, T, hd, j->scale);     /* scale·S = scale·q·kᵀ */
        for (int i = 0; i < T; i++) att_softmax_row(P + (long)i * T, T); /* P = softmax(scale·S) */
        att_gemm_nn(j->mr, j->out + (long)b * T * D + (long)h * hd, D, P, T, 1, v, ld, T, hd, T, 1.0f); /* P·v */
    }
}

ATT_CLONES static void att_backward_range(void *ctx, int p0, int p1) {
    const att_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    const float scale = j->scale;
    for (int p = p0; p < p1; p++) {
        int b = p / Hh, h = p % Hh;
        long qo = (long)b * T * ld + (long)h * hd;
        const float *q = j->qkv + qo, *k = q + D, *v = q + 2 * D;
        float *dq = j->dqkv + qo, *dk = dq + D, *dv = dq + 2 * D;
        const float *P = j->attc + (long)p * T * T;
        float *dS = j->att + (long)p * T * T; /* datt */
        const float *dO = j->dout + (long)b * T * D + (long)h * hd;
        att_gemm_nt(j->mr, dS, T, dO, D, v, ld, T, T, hd, 1.0f);          /* dP = dO·vᵀ (T, T) */
        att_gemm_nn(j->mr, dv, ld, P, 1, T, dO, D, T, hd, T, 1.0f);       /* dv = Pᵀ·dO (T, hd) */
        for (int i = 0; i < T; i++) att_softmax_row_backward(dS + (long)i * T, P + (long)i * T, T); /* dS */
        att_gemm_nn(j->mr, dq, ld, dS, T, 1, k, ld, T, hd, T, scale);     /* dq = scale·dS·k */
        att_gemm_nn(j->mr, dk, ld, dS, 1, T, q, ld, T, hd, T, scale);     /* dk = scale·dSᵀ·q */
    }
}

void cpu_attention(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0);
    att_job j = {out, att, NULL, qkv, NULL, NULL, T, Hh, hd, scale, att_tile_rows()};
    if (T == 0 || Hh == 0) return;
    if (hd == 0) { /* S = 0: uniform P, out = 0 (as the sgemm version) */
        for (size_t i = 0; i < (size_t)n * Hh * T * T; i++) att[i] = 1.0f / (float)T;
        return;
    }
    cpu_parallel_for(n * Hh, att_forward_range, &j);
}

/* dqkv (n, T, 3D) =; datt (n, Hh, T, T) scratch; dout (n, T, D); att the saved P.
   dP = dout·vᵀ, dv = Pᵀ·dout, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale·dS·k, dk = scale·dSᵀ·q */
void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                            int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0);
    if (T == 0 || Hh == 0 || hd == 0) return;
    att_job j = {NULL, datt, dqkv, qkv, dout, att, T, Hh, hd, scale, att_tile_rows()};
    cpu_parallel_for(n * Hh, att_backward_range, &j);
}
