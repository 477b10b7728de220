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
 * by one thread with fixed-order kernels, so the results do not depend on the thread
 * count or the scheduling. The products are small (T×T×hd, T ≈ 50–200, hd 64), where
 * OpenBLAS's per-call threading and packing cost more than the arithmetic (bench/bench_cpu.c
 * measures the per-pair sgemm alternative); they are done by the register-blocked kernels of
 * core/cpu/attention_kernels.h (GCC vector extensions, shared with the fused path, cloned for
 * x86-64-v4/v3 at run time by ATT_CLONES below) straight on the strided qkv, out and
 * att rows: nothing is copied except a K×16 transposed panel on the stack for the q·kᵀ-type
 * products. Sums run over k in ascending order; the softmax row sums accumulate in float64. */
#include "cpu/ops_cpu.h"

#include <math.h>
#include <string.h>

#include "cpu/attention_kernels.h"
#include "cpu/threadpool.h"

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
        att_gemm_nn(j->mr, 0, j->out + (long)b * T * D + (long)h * hd, D, P, T, 1, v, ld, T, hd, T, 1.0f); /* P·v */
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
        att_gemm_nn(j->mr, 0, dv, ld, P, 1, T, dO, D, T, hd, T, 1.0f);       /* dv = Pᵀ·dO (T, hd) */
        for (int i = 0; i < T; i++) att_softmax_row_backward(dS + (long)i * T, P + (long)i * T, T); /* dS */
        att_gemm_nn(j->mr, 0, dq, ld, dS, T, 1, k, ld, T, hd, T, scale);     /* dq = scale·dS·k */
        att_gemm_nn(j->mr, 0, dk, ld, dS, 1, T, q, ld, T, hd, T, scale);     /* dk = scale·dSᵀ·q */
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
