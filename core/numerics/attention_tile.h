/* The per-row arithmetic of fused ("flash-style") attention, written once for both backends:
 * core/cpu/ops_cpu_attention_fused.c and core/cuda/ops_cuda_attention_fused.cu include this
 * header and call these functions, so the CPU tests exercise the arithmetic the GPU runs.
 * Semantics: clpdd/ops.h (attention_fused, attention_fused_backward).
 *
 * Dimension legend: hd head width (≤ ATT_HD_MAX), nk keys / nq queries in one tile. A "row"
 * is hd contiguous floats; a tile is rows spaced ld floats apart (the strided qkv rows on the
 * CPU, a packed shared-memory tile on the GPU).
 *
 * Forward, one query row q against all keys, a tile at a time (the online softmax):
 *   state  m (running max of s), l (running Σ exp(s − m)), acc (hd) (running Σ exp(s − m)·v)
 *   tile   s_j = scale·q·k_j; m' = max(m, max_j s_j); c = exp(m − m');
 *          l = c·l + Σ_j exp(s_j − m'); acc = c·acc + Σ_j exp(s_j − m')·v_j
 *   final  out = acc / l, lse = m + log l
 * Backward, from lse and delta_i = dout_i·out_i (att_delta_row), with P_ij = exp(s_ij − lse_i):
 *   dq row i  over key tiles:   dq_i += Σ_j P_ij (dout_i·v_j − delta_i) k_j     (·scale at the end)
 *   dk/dv row j over query tiles: dv_j += Σ_i P_ij dout_i;
 *                                 dk_j += Σ_i P_ij (dout_i·v_j − delta_i) q_i  (·scale at the end)
 * Both passes compute s_ij by the same att_dot, so they see the same P_ij.
 *
 * Arithmetic: float throughout (expf/logf; never __expf: the probabilities' relative error
 * goes straight into every gradient). Dot products sum in 8 interleaved partial sums added in
 * a fixed tree (lanes e mod 8), which vectorises on the CPU without reassociation and is the
 * same order on every backend and thread count; every other sum runs in ascending index order.
 * No allocation, no I/O: pure functions of their arguments. */
#ifndef CLPDD_ATTENTION_TILE_H
#define CLPDD_ATTENTION_TILE_H
#include <math.h>

#ifdef __CUDACC__
#define ATT_TILE_FN static inline __host__ __device__
#else
#define ATT_TILE_FN static inline
#endif

/* the widest head the fused kernels take (per-thread arrays on the GPU are this long) */
#define ATT_HD_MAX 128
/* the most keys (queries) in one tile: the length of the caller's s scratch */
#define ATT_TILE_MAX 64

/* Σ_e a[e]·b[e]: 8 partial sums (lane e mod 8), then ((0+4)+(2+6)) + ((1+5)+(3+7)) */
ATT_TILE_FN float att_dot(const float *a, const float *b, int hd) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int hv = hd / 8 * 8;
    for (int e = 0; e < hv; e += 8)
        for (int l = 0; l < 8; l++) p[l] += a[e + l] * b[e + l];
    for (int e = hv; e < hd; e++) p[e - hv] += a[e] * b[e];
    return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
}

/* y (hd) = c·y + a·x */
ATT_TILE_FN void att_scale_axpy(float *y, float c, float a, const float *x, int hd) {
    for (int e = 0; e < hd; e++) y[e] = c * y[e] + a * x[e];
}

/* start of a query row: m = −∞, l = 0, acc = 0 */
ATT_TILE_FN void att_fwd_row_init(float *m, float *l, float *acc, int hd) {
    *m = -INFINITY;
    *l = 0.0f;
    for (int e = 0; e < hd; e++) acc[e] = 0.0f;
}

/* one query row q (hd) against nk keys k_j = k + j·ldk, values v_j = v + j·ldv (1 ≤ nk ≤
   ATT_TILE_MAX): updates the online-softmax state (m, l, acc); s (nk) is scratch */
ATT_TILE_FN void att_fwd_row_tile(float *m, float *l, float *acc, float *s, const float *q, const float *k, long ldk,
                                  const float *v, long ldv, int nk, int hd, float scale) {
    float mx = *m;
    for (int j = 0; j < nk; j++) {
        s[j] = scale * att_dot(q, k + j * ldk, hd);
        mx = s[j] > mx ? s[j] : mx;
    }
    /* m = −∞ on the first tile: c = exp(−∞) = 0 and l, acc are 0 anyway */
    const float c = expf(*m - mx);
    float sum = c * *l;
    for (int j = 0; j < nk; j++) {
        const float p = expf(s[j] - mx);
        sum += p;
        att_scale_axpy(acc, j == 0 ? c : 1.0f, p, v + j * ldv, hd);
    }
    *m = mx;
    *l = sum;
}

/* end of a query row: out (hd) = acc / l, returns lse = m + log l */
ATT_TILE_FN float att_fwd_row_final(float *out, const float *acc, float m, float l, int hd) {
    for (int e = 0; e < hd; e++) out[e] = acc[e] / l;
    return m + logf(l);
}

/* delta_i = Σ_c dout_i[c]·out_i[c] (the softmax backward's row constant) */
ATT_TILE_FN float att_delta_row(const float *dout, const float *out, int hd) { return att_dot(dout, out, hd); }

/* one query row i (q, dout; its lse and delta) against nk keys k_j = k + j·ldk, v_j = v + j·ldv:
   dq (hd) += Σ_j P_ij (dout·v_j − delta) k_j  (the caller multiplies by scale at the end) */
ATT_TILE_FN void att_bwd_dq_tile(float *dq, const float *q, const float *dout, float lse, float delta, const float *k,
                                 long ldk, const float *v, long ldv, int nk, int hd, float scale) {
    for (int j = 0; j < nk; j++) {
        const float p = expf(scale * att_dot(q, k + j * ldk, hd) - lse);
        const float ds = p * (att_dot(dout, v + j * ldv, hd) - delta);
        att_scale_axpy(dq, 1.0f, ds, k + j * ldk, hd);
    }
}

/* one key row j (k, v) against nq queries q_i = q + i·ldq, dout_i = dout + i·ldo with their
   lse[i], delta[i]: dv (hd) += Σ_i P_ij dout_i; dk (hd) += Σ_i P_ij (dout_i·v − delta_i) q_i
   (the caller multiplies dk by scale at the end) */
ATT_TILE_FN void att_bwd_dkdv_tile(float *dk, float *dv, const float *k, const float *v, const float *q, long ldq,
                                   const float *dout, long ldo, const float *lse, const float *delta, int nq, int hd,
                                   float scale) {
    for (int i = 0; i < nq; i++) {
        const float *qi = q + i * ldq, *oi = dout + i * ldo;
        const float p = expf(scale * att_dot(qi, k, hd) - lse[i]);
        const float ds = p * (att_dot(oi, v, hd) - delta[i]);
        att_scale_axpy(dv, 1.0f, p, oi, hd);
        att_scale_axpy(dk, 1.0f, ds, qi, hd);
    }
}

#endif
