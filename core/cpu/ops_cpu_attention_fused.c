/* CPU backend: fused ("flash-style") multi-head attention, the reference of
 * core/cuda/ops_cuda_attention_fused.cu. No (n, Hh, T, T) matrix: the forward keeps per query
 * row a running max, a running sum and an accumulator over tiles of keys, and saves only
 * lse = log Σ_j exp(scale·q_i·k_j); the backward recomputes the probabilities from lse.
 * The arithmetic of one row is core/numerics/attention_tile.h, shared with the CUDA kernels.
 * Forward writes out and lse (=); backward writes dqkv (=) and uses delta as scratch. There
 * are no parameters.
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width (≤ ATT_HD_MAX), D = Hh·hd.
 * qkv (n, T, 3D) rows [q | k | v], head h at column h·hd of each part; out (n, T, D);
 * lse, delta (n, Hh, T).
 *
 * As ops_cpu_attention.c: the n·Hh (image, head) pairs are independent and handed out in
 * contiguous chunks by cpu_parallel_for; one thread computes a pair start to finish in a fixed
 * order (keys / queries in ascending tiles of ATT_CPU_TILE), so results do not depend on the
 * thread count. Backward per pair: delta for every query row, then dq row by row over key
 * tiles, then dk, dv row by row over query tiles (P is recomputed in both passes). */
#include "cpu/ops_cpu.h"

#include <string.h>

#include "numerics/attention_tile.h"
#include "cpu/threadpool.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ATTF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATTF_CLONES
#endif

enum { ATT_CPU_TILE = 64 }; /* keys (queries) per tile; ≤ ATT_TILE_MAX */

typedef struct attf_job {
    float *out, *lse, *dqkv, *delta;
    const float *qkv, *dout, *outc, *lsec;
    int T, Hh, hd;
    float scale;
} attf_job;

/* pairs [p0, p1) of (b, h) = (p / Hh, p % Hh) */
ATTF_CLONES static void attf_forward_range(void *ctx, int p0, int p1) {
    const attf_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    float acc[ATT_HD_MAX], s[ATT_TILE_MAX];
    for (int p = p0; p < p1; p++) {
        const int b = p / Hh, h = p % Hh;
        const float *q = j->qkv + (long)b * T * ld + (long)h * hd, *k = q + D, *v = q + 2 * D;
        float *out = j->out + (long)b * T * D + (long)h * hd, *lse = j->lse + (long)p * T;
        for (int i = 0; i < T; i++) {
            float m, l;
            att_fwd_row_init(&m, &l, acc, hd);
            for (int t0 = 0; t0 < T; t0 += ATT_CPU_TILE) {
                const int nk = T - t0 < ATT_CPU_TILE ? T - t0 : ATT_CPU_TILE;
                att_fwd_row_tile(&m, &l, acc, s, q + i * ld, k + t0 * ld, ld, v + t0 * ld, ld, nk, hd, j->scale);
            }
            lse[i] = att_fwd_row_final(out + (long)i * D, acc, m, l, hd);
        }
    }
}

ATTF_CLONES static void attf_backward_range(void *ctx, int p0, int p1) {
    const attf_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    const float scale = j->scale;
    float g[ATT_HD_MAX], gv[ATT_HD_MAX];
    for (int p = p0; p < p1; p++) {
        const int b = p / Hh, h = p % Hh;
        const long qo = (long)b * T * ld + (long)h * hd, oo = (long)b * T * D + (long)h * hd;
        const float *q = j->qkv + qo, *k = q + D, *v = q + 2 * D;
        float *dq = j->dqkv + qo, *dk = dq + D, *dv = dq + 2 * D;
        const float *dO = j->dout + oo, *O = j->outc + oo, *lse = j->lsec + (long)p * T;
        float *delta = j->delta + (long)p * T;
        for (int i = 0; i < T; i++) delta[i] = att_delta_row(dO + (long)i * D, O + (long)i * D, hd);
        for (int i = 0; i < T; i++) { /* dq_i = scale·Σ_j dS_ij k_j */
            memset(g, 0, sizeof(float) * (size_t)hd);
            for (int t0 = 0; t0 < T; t0 += ATT_CPU_TILE) {
                const int nk = T - t0 < ATT_CPU_TILE ? T - t0 : ATT_CPU_TILE;
                att_bwd_dq_tile(g, q + i * ld, dO + (long)i * D, lse[i], delta[i], k + t0 * ld, ld, v + t0 * ld, ld,
                                nk, hd, scale);
            }
            for (int e = 0; e < hd; e++) dq[i * ld + e] = scale * g[e];
        }
        for (int t = 0; t < T; t++) { /* dk_t = scale·Σ_i dS_it q_i, dv_t = Σ_i P_it dout_i */
            memset(g, 0, sizeof(float) * (size_t)hd);
            memset(gv, 0, sizeof(float) * (size_t)hd);
            for (int i0 = 0; i0 < T; i0 += ATT_CPU_TILE) {
                const int nq = T - i0 < ATT_CPU_TILE ? T - i0 : ATT_CPU_TILE;
                att_bwd_dkdv_tile(g, gv, k + t * ld, v + t * ld, q + i0 * ld, ld, dO + (long)i0 * D, D, lse + i0,
                                  delta + i0, nq, hd, scale);
            }
            for (int e = 0; e < hd; e++) {
                dk[t * ld + e] = scale * g[e];
                dv[t * ld + e] = gv[e];
            }
        }
    }
}

void cpu_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh) return;
    attf_job j = {out, lse, NULL, NULL, qkv, NULL, NULL, NULL, T, Hh, hd, scale};
    cpu_parallel_for(n * Hh, attf_forward_range, &j);
}

/* dqkv (n, T, 3D) =; delta (n, Hh, T) scratch; dout, out (n, T, D); lse (n, Hh, T) */
void cpu_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out, const float *lse,
                                  const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh || !hd) return;
    attf_job j = {NULL, NULL, dqkv, delta, qkv, dout, out, lse, T, Hh, hd, scale};
    cpu_parallel_for(n * Hh, attf_backward_range, &j);
}
