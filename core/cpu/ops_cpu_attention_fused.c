/* CPU backend: fused ("flash-style") multi-head attention. No (n, Hh, T, T) matrix: the
 * forward keeps per query row a running max, a running sum and an accumulator over tiles of
 * keys, and saves only lse = log Σ_j exp(scale·q_i·k_j); the backward recomputes the
 * probabilities from lse. Semantics: clpdd/ops.h (attention_fused, attention_fused_backward).
 * Forward writes out and lse (=); backward writes dqkv (=) and uses delta as scratch. There
 * are no parameters.
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width (≤ ATT_HD_MAX), D = Hh·hd;
 * bq queries of a block, nk keys of a tile. qkv (n, T, 3D) rows [q | k | v], head h at column
 * h·hd of each part; out (n, T, D); lse, delta (n, Hh, T).
 *
 * Register-blocked (docs/design.md §5, "attention"): a block of ATTF_BQ query rows meets a tile
 * of ATTF_BK keys as small products on the stack — S = scale·q·kᵀ (bq × nk) by the
 * materialised path's micro-kernels (core/cpu/attention_kernels.h, mr × 16 floats of S in
 * vector registers), the online softmax 8 lanes at a time, then out += P·v the same blocked
 * way. The forward's accumulator is the out rows themselves. Backward per (query block, key
 * tile): S and dP = dO·vᵀ, P = exp(S − lse), dS = P ⊙ (dP − delta); dv += Pᵀ·dO,
 * dk += scale·dSᵀ·q, dq += scale·dS·k, each added into dqkv in ascending block order.
 *
 * The maths is core/numerics/attention_tile.h's (the CUDA kernels' per-row reference), with
 * the sums in another fixed order: the two backends agree to fp32 rounding (tests/
 * test_ops_cuda.c), and tests/test_ops_cpu.c checks this file against that header's rows.
 * The n·Hh (image, head) pairs are handed out in contiguous chunks by cpu_parallel_for; one
 * thread computes a pair start to finish in a fixed order, so results do not depend on the
 * thread count. S is the same ascending-k sum in both passes, so both see the same s_ij. */
#include "cpu/ops_cpu.h"

#include <math.h>
#include <string.h>

#include "numerics/attention_tile.h"
#include "cpu/attention_kernels.h"
#include "cpu/threadpool.h"

enum {
    ATTF_BQ = 64, /* query rows per block */
    ATTF_BK = 64, /* keys per tile: the row stride of the S / dS scratch, a multiple of 8 */
};

typedef struct attf_job {
    float *out, *lse, *dqkv, *delta;
    const float *qkv, *dout, *outc, *lsec;
    int T, Hh, hd;
    float scale;
    int mr; /* micro-tile rows: att_tile_rows() */
} attf_job;

/* max(m, x[0..n)): 8 lanes, the last n mod 8 one by one */
ATT_INLINE float attf_row_max(const float *x, int n, float m) {
    const int nv = n / 8 * 8;
    att_v8 mv = (att_v8){0} + m;
    for (int j = 0; j < nv; j += 8) {
        att_v8 y = att_ld(x + j);
        mv = att_max(&y, &mv);
    }
    float mx = att_hmax(&mv);
    for (int j = nv; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* x[j] = exp(x[j] − sub) for j < n, returns Σ_j x[j] in float64. The row has room up to a
   multiple of 8 (lanes past n are computed from whatever is there and not summed). */
ATT_INLINE double attf_exp_row(float *x, int n, float sub) {
    att_d4 s4 = {0};
    double s = 0.0;
    for (int j = 0; j < n; j += 8) {
        att_v8 y = att_ld(x + j) - sub, e = att_exp(&y);
        att_st(x + j, &e);
        if (j + 8 <= n)
            s4 += att_widen_sum(&e);
        else
            for (int l = 0; l < n - j; l++) s += e[l];
    }
    return ((s4[0] + s4[1]) + (s4[2] + s4[3])) + s;
}

/* rows [r0, r1) of the out block: row r *= c[r] */
static void attf_scale_rows(float *o, long ld, const float *c, int bq, int hd) {
    for (int r = 0; r < bq; r++)
        for (int e = 0; e < hd; e++) o[r * ld + e] *= c[r];
}

/* one block of bq query rows (q rows ld apart, out rows D apart) against all T keys */
ATT_INLINE void attf_forward_block(const attf_job *j, float *S, float *out, float *lse, const float *q,
                                   const float *k, const float *v, int bq) {
    const int T = j->T, hd = j->hd, D = j->Hh * hd;
    const long ld = 3L * D;
    float m[ATTF_BQ], c[ATTF_BQ];
    double l[ATTF_BQ];
    for (int r = 0; r < bq; r++) m[r] = -INFINITY, l[r] = 0.0;
    for (int t0 = 0; t0 < T; t0 += ATTF_BK) {
        const int nk = T - t0 < ATTF_BK ? T - t0 : ATTF_BK;
        att_gemm_nt(j->mr, S, ATTF_BK, q, ld, k + t0 * ld, ld, bq, nk, hd, j->scale); /* S = scale·q·kᵀ */
        for (int r = 0; r < bq; r++) { /* online softmax: P = exp(S − m'), l = c·l + Σ P */
            float *s = S + r * ATTF_BK;
            const float mx = attf_row_max(s, nk, m[r]);
            c[r] = expf(m[r] - mx); /* first tile: exp(−∞) = 0 */
            l[r] = c[r] * l[r] + attf_exp_row(s, nk, mx);
            m[r] = mx;
        }
        if (t0) attf_scale_rows(out, D, c, bq, hd);
        att_gemm_nn(j->mr, t0 > 0, out, D, S, ATTF_BK, 1, v + t0 * ld, ld, bq, hd, nk, 1.0f); /* out (+)= P·v */
    }
    for (int r = 0; r < bq; r++) {
        c[r] = (float)(1.0 / l[r]);
        lse[r] = m[r] + (float)log(l[r]);
    }
    attf_scale_rows(out, D, c, bq, hd); /* out = acc / l */
}

/* pairs [p0, p1) of (b, h) = (p / Hh, p % Hh) */
ATT_CLONES static void attf_forward_range(void *ctx, int p0, int p1) {
    const attf_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    float S[ATTF_BQ * ATTF_BK] __attribute__((aligned(64)));
    memset(S, 0, sizeof S); /* the lanes past nk are read (not used) by attf_exp_row */
    for (int p = p0; p < p1; p++) {
        const int b = p / Hh, h = p % Hh;
        const float *q = j->qkv + (long)b * T * ld + (long)h * hd, *k = q + D, *v = q + 2 * D;
        float *out = j->out + (long)b * T * D + (long)h * hd, *lse = j->lse + (long)p * T;
        for (int i0 = 0; i0 < T; i0 += ATTF_BQ)
            attf_forward_block(j, S, out + (long)i0 * D, lse + i0, q + i0 * ld, k, v, T - i0 < ATTF_BQ ? T - i0 : ATTF_BQ);
    }
}

/* dS (bq, nk; rows ATTF_BK) = P ⊙ (dP − delta_r) in place on dP, after P = exp(S − lse_r) in place on S */
ATT_INLINE void attf_dsoftmax(float *P, float *dS, const float *lse, const float *delta, int bq, int nk) {
    for (int r = 0; r < bq; r++) {
        float *p = P + r * ATTF_BK, *g = dS + r * ATTF_BK;
        attf_exp_row(p, nk, lse[r]);
        const float dr = delta[r];
        for (int c = 0; c < nk; c++) g[c] = p[c] * (g[c] - dr);
    }
}

/* one (image, head) pair: q, k, v, dq, dk, dv rows ld apart; dO rows D apart */
ATT_INLINE void attf_backward_pair(const attf_job *j, float *P, float *dS, float *dq, const float *q, const float *k,
                                   const float *v, const float *dO, const float *lse, const float *delta) {
    const int T = j->T, hd = j->hd, D = j->Hh * hd, mr = j->mr;
    const long ld = 3L * D;
    const float scale = j->scale;
    float *dk = dq + D, *dv = dq + 2 * D;
    for (int i0 = 0; i0 < T; i0 += ATTF_BQ) {
        const int bq = T - i0 < ATTF_BQ ? T - i0 : ATTF_BQ;
        const float *qi = q + i0 * ld, *oi = dO + (long)i0 * D;
        for (int t0 = 0; t0 < T; t0 += ATTF_BK) {
            const int nk = T - t0 < ATTF_BK ? T - t0 : ATTF_BK;
            att_gemm_nt(mr, P, ATTF_BK, qi, ld, k + t0 * ld, ld, bq, nk, hd, scale); /* S = scale·q·kᵀ */
            att_gemm_nt(mr, dS, ATTF_BK, oi, D, v + t0 * ld, ld, bq, nk, hd, 1.0f);  /* dP = dO·vᵀ */
            attf_dsoftmax(P, dS, lse + i0, delta + i0, bq, nk);
            att_gemm_nn(mr, i0 > 0, dv + t0 * ld, ld, P, 1, ATTF_BK, oi, D, nk, hd, bq, 1.0f);   /* dv += Pᵀ·dO */
            att_gemm_nn(mr, i0 > 0, dk + t0 * ld, ld, dS, 1, ATTF_BK, qi, ld, nk, hd, bq, scale); /* dk += dSᵀ·q */
            att_gemm_nn(mr, t0 > 0, dq + i0 * ld, ld, dS, ATTF_BK, 1, k + t0 * ld, ld, bq, hd, nk, scale); /* dS·k */
        }
    }
}

ATT_CLONES static void attf_backward_range(void *ctx, int p0, int p1) {
    const attf_job *j = ctx;
    const int T = j->T, Hh = j->Hh, hd = j->hd, D = Hh * hd;
    const long ld = 3L * D;
    float P[ATTF_BQ * ATTF_BK] __attribute__((aligned(64))), dS[ATTF_BQ * ATTF_BK] __attribute__((aligned(64)));
    memset(P, 0, sizeof P); /* the lanes past nk are read (not used) by attf_exp_row */
    for (int p = p0; p < p1; p++) {
        const int b = p / Hh, h = p % Hh;
        const long qo = (long)b * T * ld + (long)h * hd, oo = (long)b * T * D + (long)h * hd;
        const float *q = j->qkv + qo, *dO = j->dout + oo, *O = j->outc + oo, *lse = j->lsec + (long)p * T;
        float *delta = j->delta + (long)p * T;
        for (int i = 0; i < T; i++) delta[i] = att_delta_row(dO + (long)i * D, O + (long)i * D, hd);
        attf_backward_pair(j, P, dS, j->dqkv + qo, q, q + D, q + 2 * D, dO, lse, delta);
    }
}

void cpu_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh) return;
    attf_job j = {out, lse, NULL, NULL, qkv, NULL, NULL, NULL, T, Hh, hd, scale, att_tile_rows()};
    cpu_parallel_for(n * Hh, attf_forward_range, &j);
}

/* dqkv (n, T, 3D) =; delta (n, Hh, T) scratch; dout, out (n, T, D); lse (n, Hh, T) */
void cpu_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out, const float *lse,
                                  const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh || !hd) return;
    attf_job j = {NULL, NULL, dqkv, delta, qkv, dout, out, lse, T, Hh, hd, scale, att_tile_rows()};
    cpu_parallel_for(n * Hh, attf_backward_range, &j);
}
