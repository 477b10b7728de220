/* clpdd CUDA backend: fused ("flash-style") multi-head attention, put into the table by
 * ops_cuda.cu. Semantics: clpdd/ops.h (attention_fused, attention_fused_backward); the CPU
 * reference is core/cpu/ops_cpu_attention_fused.c, and both run the per-row arithmetic of
 * core/numerics/attention_tile.h, so the CPU tests exercise these kernels' maths; tests/test_ops_cuda.c
 * compares the two. No (n, Hh, T, T) matrix is ever formed, and there are no atomics: every
 * output element is written by one thread after a fixed-order sum (reproducible run to run).
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width (≤ ATT_HD_MAX), D = Hh·hd.
 * qkv (n, T, 3D) rows [q | k | v], head h at column h·hd of each part; out, dout (n, T, D);
 * lse, delta (n, Hh, T).
 *
 * Kernels (one block per (image, head, tile of ATTF_ROWS rows), one thread per row; the
 * flattened grid index is tile + tiles·(h + Hh·b), so n is not limited by gridDim.y/z):
 *   forward  a query row per thread: q and the accumulator in registers (local arrays), the
 *            K and V tiles (ATTF_TILE rows) loaded by the whole block into shared memory
 *   delta    delta_i = dout_i·out_i, one thread per (b, h, i)
 *   dq       a query row per thread (q, dout, dq in registers), looping over K/V tiles
 *   dk, dv   a key row per thread (k, v, dk, dv in registers), looping over tiles of q, dout,
 *            lse, delta in shared memory
 * The common head widths (16, 32, 64) get kernels compiled for that width, so the per-thread
 * arrays live in registers; any other hd ≤ 128 uses the generic instance (local memory). */
#include "cuda_common.h"

#include "numerics/attention_tile.h"

enum {
    ATTF_ROWS = 64, /* rows (threads) per block */
    ATTF_TILE = 32, /* rows per shared-memory tile: 2·32·128·4 = 32 KiB at hd = 128 */
};
static_assert(ATTF_TILE <= ATT_TILE_MAX, "the s scratch of att_fwd_row_tile holds ATT_TILE_MAX");

/* this block's (b, h) and first row from the flattened grid index */
struct attf_where {
    int b, h, r0;
};
__device__ __forceinline__ attf_where attf_locate(int Hh, int tiles) {
    attf_where w;
    const int pair = blockIdx.x / tiles;
    w.r0 = (blockIdx.x - pair * tiles) * ATTF_ROWS;
    w.b = pair / Hh;
    w.h = pair - w.b * Hh;
    return w;
}

/* rows [r0, r0 + nr) of two hd-wide column blocks of a strided matrix (rows ld apart) into packed
   shared tiles a, c (nr, hd); the whole block takes part */
__device__ __forceinline__ void attf_load2(float *a, float *c, const float *src_a, const float *src_c, long ld, int nr,
                                           int hd) {
    for (int idx = threadIdx.x; idx < nr * hd; idx += blockDim.x) {
        const int r = idx / hd, e = idx - r * hd;
        a[idx] = src_a[r * ld + e];
        c[idx] = src_c[r * ld + e];
    }
}

/* out, lse (=) from qkv; shared: K and V tiles (ATTF_TILE, hd) */
template <int HD>
__global__ void attf_forward_kernel(float *out, float *lse, const float *qkv, int T, int Hh, int hd_rt, int tiles,
                                    float scale) {
    const int hd = HD ? HD : hd_rt, D = Hh * hd;
    const long ld = 3L * D;
    extern __shared__ float attf_sh[];
    float *Ks = attf_sh, *Vs = attf_sh + ATTF_TILE * hd;
    const attf_where w = attf_locate(Hh, tiles);
    const float *base = qkv + (long)w.b * T * ld + (long)w.h * hd;
    const int i = w.r0 + threadIdx.x;
    const bool live = i < T;
    float q[HD ? HD : ATT_HD_MAX], acc[HD ? HD : ATT_HD_MAX], s[ATTF_TILE];
    float m, l;
    if (live)
        for (int e = 0; e < hd; e++) q[e] = base[i * ld + e];
    att_fwd_row_init(&m, &l, acc, hd);
    for (int t0 = 0; t0 < T; t0 += ATTF_TILE) {
        const int nk = T - t0 < ATTF_TILE ? T - t0 : ATTF_TILE;
        __syncthreads(); /* the previous tile is used up */
        attf_load2(Ks, Vs, base + t0 * ld + D, base + t0 * ld + 2 * D, ld, nk, hd);
        __syncthreads();
        if (live) att_fwd_row_tile(&m, &l, acc, s, q, Ks, hd, Vs, hd, nk, hd, scale);
    }
    if (live)
        lse[((long)w.b * Hh + w.h) * T + i] = att_fwd_row_final(out + ((long)w.b * T + i) * D + (long)w.h * hd, acc,
                                                                m, l, hd);
}

/* delta (n, Hh, T) = Σ_c dout⊙out per query row */
__global__ void attf_delta_kernel(float *delta, const float *dout, const float *out, int n, int T, int Hh, int hd) {
    const size_t rows = (size_t)n * Hh * T;
    CLPDD_GRID_STRIDE(r, rows) {
        const int i = (int)(r % T), p = (int)(r / T), b = p / Hh, h = p - b * Hh;
        const long o = ((long)b * T + i) * Hh * hd + (long)h * hd;
        delta[r] = att_delta_row(dout + o, out + o, hd);
    }
}

/* dq (=, the q block of dqkv); shared: K and V tiles (ATTF_TILE, hd) */
template <int HD>
__global__ void attf_dq_kernel(float *dqkv, const float *dout, const float *lse, const float *delta, const float *qkv,
                               int T, int Hh, int hd_rt, int tiles, float scale) {
    const int hd = HD ? HD : hd_rt, D = Hh * hd;
    const long ld = 3L * D;
    extern __shared__ float attf_sh[];
    float *Ks = attf_sh, *Vs = attf_sh + ATTF_TILE * hd;
    const attf_where w = attf_locate(Hh, tiles);
    const long qo = (long)w.b * T * ld + (long)w.h * hd;
    const float *base = qkv + qo;
    const int i = w.r0 + threadIdx.x;
    const bool live = i < T;
    float q[HD ? HD : ATT_HD_MAX], o[HD ? HD : ATT_HD_MAX], g[HD ? HD : ATT_HD_MAX];
    float lse_i = 0.0f, delta_i = 0.0f;
    if (live) {
        const float *dO = dout + ((long)w.b * T + i) * D + (long)w.h * hd;
        for (int e = 0; e < hd; e++) q[e] = base[i * ld + e], o[e] = dO[e], g[e] = 0.0f;
        lse_i = lse[((long)w.b * Hh + w.h) * T + i];
        delta_i = delta[((long)w.b * Hh + w.h) * T + i];
    }
    for (int t0 = 0; t0 < T; t0 += ATTF_TILE) {
        const int nk = T - t0 < ATTF_TILE ? T - t0 : ATTF_TILE;
        __syncthreads();
        attf_load2(Ks, Vs, base + t0 * ld + D, base + t0 * ld + 2 * D, ld, nk, hd);
        __syncthreads();
        if (live) att_bwd_dq_tile(g, q, o, lse_i, delta_i, Ks, hd, Vs, hd, nk, hd, scale);
    }
    if (live) {
        float *dq = dqkv + qo + i * ld;
        for (int e = 0; e < hd; e++) dq[e] = scale * g[e];
    }
}

/* dk, dv (=, the k and v blocks of dqkv); shared: q and dout tiles (ATTF_TILE, hd), their lse
   and delta (ATTF_TILE) */
template <int HD>
__global__ void attf_dkdv_kernel(float *dqkv, const float *dout, const float *lse, const float *delta,
                                 const float *qkv, int T, int Hh, int hd_rt, int tiles, float scale) {
    const int hd = HD ? HD : hd_rt, D = Hh * hd;
    const long ld = 3L * D;
    extern __shared__ float attf_sh[];
    float *Qs = attf_sh, *Os = attf_sh + ATTF_TILE * hd, *Ls = Os + ATTF_TILE * hd, *Ds = Ls + ATTF_TILE;
    const attf_where w = attf_locate(Hh, tiles);
    const long qo = (long)w.b * T * ld + (long)w.h * hd;
    const float *base = qkv + qo, *obase = dout + (long)w.b * T * D + (long)w.h * hd;
    const float *lrow = lse + ((long)w.b * Hh + w.h) * T, *drow = delta + ((long)w.b * Hh + w.h) * T;
    const int t = w.r0 + threadIdx.x;
    const bool live = t < T;
    float k[HD ? HD : ATT_HD_MAX], v[HD ? HD : ATT_HD_MAX], gk[HD ? HD : ATT_HD_MAX], gv[HD ? HD : ATT_HD_MAX];
    if (live)
        for (int e = 0; e < hd; e++) k[e] = base[t * ld + D + e], v[e] = base[t * ld + 2 * D + e], gk[e] = 0.0f, gv[e] = 0.0f;
    for (int i0 = 0; i0 < T; i0 += ATTF_TILE) {
        const int nq = T - i0 < ATTF_TILE ? T - i0 : ATTF_TILE;
        __syncthreads();
        for (int idx = threadIdx.x; idx < nq * hd; idx += blockDim.x) {
            const int r = idx / hd, e = idx - r * hd;
            Qs[idx] = base[(i0 + r) * ld + e];
            Os[idx] = obase[(long)(i0 + r) * D + e];
        }
        for (int r = threadIdx.x; r < nq; r += blockDim.x) Ls[r] = lrow[i0 + r], Ds[r] = drow[i0 + r];
        __syncthreads();
        if (live) att_bwd_dkdv_tile(gk, gv, k, v, Qs, hd, Os, hd, Ls, Ds, nq, hd, scale);
    }
    if (live) {
        float *dk = dqkv + qo + t * ld + D, *dv = dk + D;
        for (int e = 0; e < hd; e++) dk[e] = scale * gk[e], dv[e] = gv[e];
    }
}

void clpdd_cuda_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_CUDA_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh) return;
    const int tiles = (T + ATTF_ROWS - 1) / ATTF_ROWS;
    const unsigned grid = (unsigned)((long)tiles * n * Hh);
    const size_t sh = sizeof(float) * 2 * ATTF_TILE * (size_t)hd;
    switch (hd) {
    case 16: CLPDD_LAUNCH(attf_forward_kernel<16>, grid, ATTF_ROWS, sh, out, lse, qkv, T, Hh, hd, tiles, scale); break;
    case 32: CLPDD_LAUNCH(attf_forward_kernel<32>, grid, ATTF_ROWS, sh, out, lse, qkv, T, Hh, hd, tiles, scale); break;
    case 64: CLPDD_LAUNCH(attf_forward_kernel<64>, grid, ATTF_ROWS, sh, out, lse, qkv, T, Hh, hd, tiles, scale); break;
    default: CLPDD_LAUNCH(attf_forward_kernel<0>, grid, ATTF_ROWS, sh, out, lse, qkv, T, Hh, hd, tiles, scale); break;
    }
}

/* dqkv (n, T, 3D) =; delta (n, Hh, T) scratch. Every element of dqkv is one thread's dq, dk or
   dv of one head, written once. */
void clpdd_cuda_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out,
                                         const float *lse, const float *qkv, int n, int T, int Hh, int hd,
                                         float scale) {
    CLPDD_CUDA_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0 && hd <= ATT_HD_MAX);
    if (!n || !T || !Hh || !hd) return;
    const size_t rows = (size_t)n * Hh * T;
    CLPDD_LAUNCH(attf_delta_kernel, clpdd_grid_1d(rows), CLPDD_THREADS, 0, delta, dout, out, n, T, Hh, hd);
    const int tiles = (T + ATTF_ROWS - 1) / ATTF_ROWS;
    const unsigned grid = (unsigned)((long)tiles * n * Hh);
    const size_t sh_dq = sizeof(float) * 2 * ATTF_TILE * (size_t)hd;
    const size_t sh_kv = sizeof(float) * (2 * ATTF_TILE * (size_t)hd + 2 * ATTF_TILE);
#define ATTF_BWD(HD)                                                                                                  \
    do {                                                                                                              \
        CLPDD_LAUNCH(attf_dq_kernel<HD>, grid, ATTF_ROWS, sh_dq, dqkv, dout, lse, delta, qkv, T, Hh, hd, tiles, scale); \
        CLPDD_LAUNCH(attf_dkdv_kernel<HD>, grid, ATTF_ROWS, sh_kv, dqkv, dout, lse, delta, qkv, T, Hh, hd, tiles,     \
                     scale);                                                                                          \
    } while (0)
    switch (hd) {
    case 16: ATTF_BWD(16); break;
    case 32: ATTF_BWD(32); break;
    case 64: ATTF_BWD(64); break;
    default: ATTF_BWD(0); break;
    }
#undef ATTF_BWD
}
