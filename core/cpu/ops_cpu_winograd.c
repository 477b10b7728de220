/* CPU backend: Winograd F(2×2, 3×3) (Lavin & Gray) for the stride-1, pad-1, 3×3 convolutions of
 * conv2d and conv2d_backward (semantics in core/include/clpdd/ops.h, clpdd_conv2d_desc), and the
 * driver (groups, products, schedule) that F(4×4, 3×3) shares: its transforms are in
 * ops_cpu_winograd4.c, the same layout with 36 products for 16 and 4 × 4 tiles (cpu_wino_tile).
 *
 * The convolution computed is y (co, H, W) = w ∗ x (ci, H, W), pad 1: the forward itself, or the
 * stride-1 input gradient dx (cin, H, W) = w' ∗ (dy ⊙ [mask > 0]) with w' the flipped, channel-
 * transposed weights (ops_cpu_conv.c, "backward of a stride-1 convolution"). Per image the output
 * is cut into TH × TW tiles of 2 × 2 (the last row / column partial for odd H / W: the input
 * beyond the image reads as zero and the outputs beyond it are dropped), each read from a 4 × 4
 * input patch at stride 2:
 *
 *   U[ξ] (co, ci)  = (G g Gᵀ)[ξ] per (o, c) kernel, ξ = 4·i + j < 16       (once per call, ~3 % of it)
 *   V[ξ] (ci, g·NT) = (Bᵀ d B)[ξ] per (c, tile), dy ⊙ mask folded in        (one pass, per image plane)
 *   M[ξ] (co, g·NT) = U[ξ] · V[ξ]                                           (16 sgemms)
 *   y = epilogue(Aᵀ M A)  (bias, shortcut, ReLU as conv2d's, per output row) (one pass, per image plane)
 *
 * g images per group, each column of V / M one tile of one image: the tile's output is the same
 * float computation whatever g (the sgemm splits no K sum and its column blocks are independent,
 * as the GEMM path relies on too), so features do not depend on how a batch is split into calls.
 * Groups run as the GEMM path's: whole groups per pool thread with a single-threaded sgemm, or one
 * group at a time with the passes on the pool when there is one group or one thread.
 * U lives at the end of work when the groups leave room for it, else in a buffer of its own (the
 * group size never changes the results). Used when one image's V and M fit in CLPDD_CONV2D_WORK(d, 1)
 * (cpu_wino_applies: even sides need 3·cout ≤ 5·cin), a rule on the shape alone, so whether an
 * image goes through Winograd never depends on n or on the work given.
 * Rounding: the transforms add ≤ 16 terms of mixed sign (and halve, exactly); measured against a
 * float64 direct convolution at the resnet20 layer shapes: 1.3–2.7e-7 normalised (the GEMM path:
 * 1.5–3.0e-7), tests/test_ops_cpu.c conv2d_winograd. The passes only add, subtract and halve, so
 * the AVX-512 / AVX2 / baseline clones agree bit for bit. */
#include "cpu/ops_cpu_winograd.h"
#include "cpu/ops_cpu_winograd_int.h"
#include "cpu/threadpool.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINO_MAX_P 2048 /* a plane's eight input planes and four output planes live on the stack: (TH + 1)·TW ≤ this */

/* ---- U = G g Gᵀ, items: output channel a of the computed convolution ----
 * one row a of the 16 (co, ci) matrices, from the kernels g[b] = wk + b·bs (taps t at tap[t]) */
WINO_CLONES static void wino_u_row(float *u, size_t xs, int ci, const float *wk, size_t bs, const int *tap) {
    const int T0 = tap[0], T1 = tap[1], T2 = tap[2], T3 = tap[3], T4 = tap[4], T5 = tap[5], T6 = tap[6],
              T7 = tap[7], T8 = tap[8];
    float *restrict u0 = u, *restrict u1 = u + xs, *restrict u2 = u + 2 * xs, *restrict u3 = u + 3 * xs;
    float *restrict u4 = u + 4 * xs, *restrict u5 = u + 5 * xs, *restrict u6 = u + 6 * xs, *restrict u7 = u + 7 * xs;
    float *restrict u8 = u + 8 * xs, *restrict u9 = u + 9 * xs, *restrict u10 = u + 10 * xs, *restrict u11 = u + 11 * xs;
    float *restrict u12 = u + 12 * xs, *restrict u13 = u + 13 * xs, *restrict u14 = u + 14 * xs,
                  *restrict u15 = u + 15 * xs;
    const float *restrict w = wk;
#pragma GCC ivdep
    for (int b = 0; b < ci; b++) {
        const float *g = w + (size_t)b * bs;
        const float g00 = g[T0], g01 = g[T1], g02 = g[T2], g10 = g[T3], g11 = g[T4], g12 = g[T5], g20 = g[T6],
                    g21 = g[T7], g22 = g[T8];
        /* G g (rows i of q, columns k) */
        const float q00 = g00, q01 = g01, q02 = g02;
        const float q10 = 0.5f * (g00 + g10 + g20), q11 = 0.5f * (g01 + g11 + g21), q12 = 0.5f * (g02 + g12 + g22);
        const float q20 = 0.5f * (g00 - g10 + g20), q21 = 0.5f * (g01 - g11 + g21), q22 = 0.5f * (g02 - g12 + g22);
        const float q30 = g20, q31 = g21, q32 = g22;
        /* (G g) Gᵀ */
        u0[b] = q00, u1[b] = 0.5f * (q00 + q01 + q02), u2[b] = 0.5f * (q00 - q01 + q02), u3[b] = q02;
        u4[b] = q10, u5[b] = 0.5f * (q10 + q11 + q12), u6[b] = 0.5f * (q10 - q11 + q12), u7[b] = q12;
        u8[b] = q20, u9[b] = 0.5f * (q20 + q21 + q22), u10[b] = 0.5f * (q20 - q21 + q22), u11[b] = q22;
        u12[b] = q30, u13[b] = 0.5f * (q30 + q31 + q32), u14[b] = 0.5f * (q30 - q31 + q32), u15[b] = q32;
    }
}

static void wino_u_range(void *ctx, int begin, int end) {
    const wino_call *C = ctx;
    const int ci = C->ci, co = C->co;
    static const int fwd[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, flip[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    for (int a = begin; a < end; a++) {
        if (!C->bwd) /* w (co, ci, 3, 3): g[a, b] = w[a, b] */
            wino_u_row(C->U + (size_t)a * ci, (size_t)co * ci, ci, C->w + (size_t)a * ci * 9, 9, fwd);
        else /* w (ci, co, 3, 3): g[a, b] = w[b, a] flipped */
            wino_u_row(C->U + (size_t)a * ci, (size_t)co * ci, ci, C->w + (size_t)a * 9, (size_t)co * 9, flip);
    }
}

/* Layout of one image's columns in V and M: tile (ty, tx) at column q = ty·TW + tx, then zero
 * columns up to NT = ⌈TH·TW / 16⌉·16 (the resnet20 maps' 256 / 64 / 16 tiles need none): every
 * image's columns start on a 16-column boundary and every GEMM column block is full, so a tile's
 * product is computed by the same kernel code whatever the group size (OpenBLAS's edge blocks
 * may round differently). The input transform is a flat loop over q: with the padded input
 * D[py][px] = x[py − 1][px − 1], d[r][c] of tile q is X[r%2][c][q + (r/2)·TW] where the eight
 * (TH + 1) × TW planes X[a][c][u][v] = D[2u + a][2v + c] are built first. */

/* V[ξ][q] for the NQ tiles of one plane from its eight X planes; 16 output rows xs apart */
WINO_CLONES static void wino_in_tiles(int NQ, int TW, float (*X)[WINO_MAX_P], float *v, size_t xs) {
    const float *restrict A0 = X[0], *restrict A1 = X[2], *restrict A2 = X[4], *restrict A3 = X[6]; /* a = 0 */
    const float *restrict B0 = X[1], *restrict B1 = X[3], *restrict B2 = X[5], *restrict B3 = X[7]; /* a = 1 */
    const float *restrict C0 = A0 + TW, *restrict C1 = A1 + TW, *restrict C2 = A2 + TW, *restrict C3 = A3 + TW;
    const float *restrict D0 = B0 + TW, *restrict D1 = B1 + TW, *restrict D2 = B2 + TW, *restrict D3 = B3 + TW;
    float *restrict v0 = v, *restrict v1 = v + xs, *restrict v2 = v + 2 * xs, *restrict v3 = v + 3 * xs;
    float *restrict v4 = v + 4 * xs, *restrict v5 = v + 5 * xs, *restrict v6 = v + 6 * xs, *restrict v7 = v + 7 * xs;
    float *restrict v8 = v + 8 * xs, *restrict v9 = v + 9 * xs, *restrict v10 = v + 10 * xs, *restrict v11 = v + 11 * xs;
    float *restrict v12 = v + 12 * xs, *restrict v13 = v + 13 * xs, *restrict v14 = v + 14 * xs,
                  *restrict v15 = v + 15 * xs;
#pragma GCC ivdep
    for (int q = 0; q < NQ; q++) {
        /* d rows 0..3 = A, B, C, D (columns 0..3); Bᵀ d: the rows */
        const float t00 = A0[q] - C0[q], t01 = A1[q] - C1[q], t02 = A2[q] - C2[q], t03 = A3[q] - C3[q];
        const float t10 = B0[q] + C0[q], t11 = B1[q] + C1[q], t12 = B2[q] + C2[q], t13 = B3[q] + C3[q];
        const float t20 = C0[q] - B0[q], t21 = C1[q] - B1[q], t22 = C2[q] - B2[q], t23 = C3[q] - B3[q];
        const float t30 = B0[q] - D0[q], t31 = B1[q] - D1[q], t32 = B2[q] - D2[q], t33 = B3[q] - D3[q];
        /* (Bᵀ d) B: the columns */
        v0[q] = t00 - t02, v1[q] = t01 + t02, v2[q] = t02 - t01, v3[q] = t01 - t03;
        v4[q] = t10 - t12, v5[q] = t11 + t12, v6[q] = t12 - t11, v7[q] = t11 - t13;
        v8[q] = t20 - t22, v9[q] = t21 + t22, v10[q] = t22 - t21, v11[q] = t21 - t23;
        v12[q] = t30 - t32, v13[q] = t31 + t32, v14[q] = t32 - t31, v15[q] = t31 - t33;
    }
}

/* ---- V = Bᵀ d B, items: input planes (image j, channel c) of the group ---- */
WINO_CLONES static void wino_in_range(void *ctx, int begin, int end) {
    const wino_job *J = ctx;
    const wino_call *C = J->C;
    const int H = C->H, W = C->W, TH = C->TH, TW = C->TW, NQ = TH * TW, NT = C->NT;
    const size_t N = (size_t)J->g * NT, xs = (size_t)C->ci * N, HW = (size_t)H * W;
    float X[8][WINO_MAX_P]; /* X[2cc + a] */
    for (int it = begin; it < end; it++) {
        const int j = it / C->ci, c = it % C->ci;
        const size_t plane = ((size_t)(J->i0 + j) * C->ci + c) * HW;
        const float *src = C->in + plane, *msk = C->mask ? C->mask + plane : NULL;
        /* X[2cc + a][u][v] = D[2u + a][2v + cc] = x[iy = 2u + a − 1][2v + cc − 1] */
        for (int u = 0; u <= TH; u++)
            for (int a = 0; a < 2; a++) {
                const int iy = 2 * u + a - 1;
                float *restrict x0 = X[a] + (size_t)u * TW, *restrict x1 = X[2 + a] + (size_t)u * TW;
                float *restrict x2 = X[4 + a] + (size_t)u * TW, *restrict x3 = X[6 + a] + (size_t)u * TW;
                if (iy < 0 || iy >= H) {
                    for (int v = 0; v < TW; v++) x0[v] = 0.0f, x1[v] = 0.0f, x2[v] = 0.0f, x3[v] = 0.0f;
                    continue;
                }
                /* x1[v] = x[2v], x3[v] = x[2v + 2], x2[v] = x[2v + 1], x0[v] = x[2v − 1]: the even and
                   odd columns (masked) once each, then shifted by one */
                const float *restrict s = src + (size_t)iy * W;
                const int ne = TW, no = W / 2; /* even columns 2v < W, odd 2v + 1 < W */
                if (msk) {
                    const float *restrict m = msk + (size_t)iy * W;
                    for (int v = 0; v < ne; v++) { /* both loads unconditional: if-converted, vectorised */
                        const float sv = s[2 * v], mv = m[2 * v];
                        x1[v] = mv > 0.0f ? sv : 0.0f;
                    }
                    for (int v = 0; v < no; v++) {
                        const float sv = s[2 * v + 1], mv = m[2 * v + 1];
                        x2[v] = mv > 0.0f ? sv : 0.0f;
                    }
                } else {
                    for (int v = 0; v < ne; v++) x1[v] = s[2 * v];
                    for (int v = 0; v < no; v++) x2[v] = s[2 * v + 1];
                }
                for (int v = no; v < TW; v++) x2[v] = 0.0f;
                for (int v = 0; v < TW - 1; v++) x3[v] = x1[v + 1];
                x3[TW - 1] = 0.0f; /* 2·TW ≥ W */
                x0[0] = 0.0f;
                for (int v = 1; v < TW; v++) x0[v] = x2[v - 1];
            }
        float *v = J->V + (size_t)c * N + (size_t)j * NT;
        wino_in_tiles(NQ, TW, X, v, xs);
        for (int xi = 0; xi < 16; xi++)
            for (int q = NQ; q < NT; q++) v[(size_t)xi * xs + q] = 0.0f;
    }
}

/* the four outputs of each of NQ tiles from M's 16 rows (xs apart) at m: Ob[2i + k][q] */
WINO_CLONES static void wino_out_tiles(int NQ, const float *m, size_t xs, float (*Ob)[WINO_MAX_P]) {
    const float *restrict m0 = m, *restrict m1 = m + xs, *restrict m2 = m + 2 * xs, *restrict m3 = m + 3 * xs;
    const float *restrict m4 = m + 4 * xs, *restrict m5 = m + 5 * xs, *restrict m6 = m + 6 * xs, *restrict m7 = m + 7 * xs;
    const float *restrict m8 = m + 8 * xs, *restrict m9 = m + 9 * xs, *restrict m10 = m + 10 * xs,
                *restrict m11 = m + 11 * xs;
    const float *restrict m12 = m + 12 * xs, *restrict m13 = m + 13 * xs, *restrict m14 = m + 14 * xs,
                *restrict m15 = m + 15 * xs;
    float *restrict O0 = Ob[0], *restrict O1 = Ob[1], *restrict O2 = Ob[2], *restrict O3 = Ob[3];
#pragma GCC ivdep
    for (int q = 0; q < NQ; q++) {
        /* Aᵀ M: the rows (M row i = m[4i .. 4i + 3]) */
        const float s00 = m0[q] + m4[q] + m8[q], s01 = m1[q] + m5[q] + m9[q], s02 = m2[q] + m6[q] + m10[q],
                    s03 = m3[q] + m7[q] + m11[q];
        const float s10 = m4[q] - m8[q] - m12[q], s11 = m5[q] - m9[q] - m13[q], s12 = m6[q] - m10[q] - m14[q],
                    s13 = m7[q] - m11[q] - m15[q];
        /* (Aᵀ M) A: the columns */
        O0[q] = s00 + s01 + s02;
        O1[q] = s01 - s02 - s03;
        O2[q] = s10 + s11 + s12;
        O3[q] = s11 - s12 - s13;
    }
}

/* ---- y = epilogue(Aᵀ M A), items: output planes (image j, channel o) of the group ---- */
WINO_CLONES static void wino_out_range(void *ctx, int begin, int end) {
    const wino_job *J = ctx;
    const wino_call *C = J->C;
    const clpdd_conv2d_desc *d = C->d;
    const int H = C->H, W = C->W, TW = C->TW, NQ = C->TH * TW, NT = C->NT;
    const size_t N = (size_t)J->g * NT, xs = (size_t)C->co * N, HW = (size_t)H * W;
    float Ob[4][WINO_MAX_P]; /* output (2ty + i, 2tx + k) of tile q in Ob[2i + k][q] */
    for (int it = begin; it < end; it++) {
        const int j = it / C->co, o = it % C->co;
        const float *restrict m = J->M + (size_t)o * N + (size_t)j * NT;
        float *yo = C->out + ((size_t)(J->i0 + j) * C->co + o) * HW;
        wino_out_tiles(NQ, m, xs, Ob);
        const float b = C->bias ? C->bias[o] : 0.0f;
        const float *rc = wino_shortcut(C, J->i0 + j, o);
        const int relu = d->relu && !C->bwd, rs = d->res_stride;
        for (int oy = 0; oy < H; oy++) { /* the epilogue, as conv2d's: (t + bias) + shortcut, then ReLU */
            const int ty = oy / 2, i = oy % 2;
            const float *restrict e = Ob[2 * i] + (size_t)ty * TW, *restrict f = Ob[2 * i + 1] + (size_t)ty * TW;
            float *restrict yr = yo + (size_t)oy * W;
            const float *restrict rr = rc ? rc + (size_t)oy * rs * d->res_W : NULL;
            if (rr && rs == 1) {
                for (int tx = 0; tx < W / 2; tx++) {
                    float y0 = e[tx] + b, y1 = f[tx] + b;
                    y0 += rr[2 * tx], y1 += rr[2 * tx + 1];
                    if (relu) y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f;
                    yr[2 * tx] = y0, yr[2 * tx + 1] = y1;
                }
            } else if (rr) {
                for (int tx = 0; tx < W / 2; tx++) {
                    float y0 = e[tx] + b, y1 = f[tx] + b;
                    y0 += rr[(size_t)2 * tx * rs], y1 += rr[(size_t)(2 * tx + 1) * rs];
                    if (relu) y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f;
                    yr[2 * tx] = y0, yr[2 * tx + 1] = y1;
                }
            } else {
                for (int tx = 0; tx < W / 2; tx++) {
                    float y0 = e[tx] + b, y1 = f[tx] + b;
                    if (relu) y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f;
                    yr[2 * tx] = y0, yr[2 * tx + 1] = y1;
                }
            }
            if (W % 2) { /* the last column: the left half of the last tile */
                float y0 = e[W / 2] + b;
                if (rr) y0 += rr[(size_t)(W - 1) * rs];
                if (relu) y0 = y0 > 0.0f ? y0 : 0.0f;
                yr[W - 1] = y0;
            }
        }
    }
}

/* as ops_cpu_conv.c's conv_gemm: row-major C = A · B through the column-major interface (OpenBLAS
   0.3.21's row-major small-product shortcut, sgemm_direct, rounds differently by size) */
static void wino_gemm(int M, int N, int K, const float *A, const float *B, float *Cm) {
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, N, M, K, 1.0f, B, N, A, K, 0.0f, Cm, N);
}

static void wino_for(int items, size_t floats, cpu_range_fn fn, void *ctx) {
    if (floats > CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(items, fn, ctx);
    else if (items > 0)
        fn(ctx, 0, items);
}

static void wino_group(const wino_call *C, int gi, float *scr, int par) {
    const int i0 = gi * C->G, g = C->d->n - i0 < C->G ? C->d->n - i0 : C->G;
    const size_t N = (size_t)g * C->NT;
    wino_job J = {C, i0, g, scr, scr + (size_t)C->nxi * C->ci * N};
    const size_t fin = (size_t)g * C->ci * C->H * C->W, fout = (size_t)g * C->co * C->H * C->W;
    cpu_range_fn in = C->tile == 4 ? wino4_in_range : wino_in_range, out = C->tile == 4 ? wino4_out_range : wino_out_range;
    if (par)
        wino_for(g * C->ci, 4 * fin, in, &J);
    else
        in(&J, 0, g * C->ci);
    for (int xi = 0; xi < C->nxi; xi++)
        wino_gemm(C->co, (int)N, C->ci, C->U + (size_t)xi * C->co * C->ci, J.V + (size_t)xi * C->ci * N,
                  J.M + (size_t)xi * C->co * N);
    if (par)
        wino_for(g * C->co, 4 * fout, out, &J);
    else
        out(&J, 0, g * C->co);
}

static void wino_groups(void *ctx, int begin, int end, int tid) {
    const wino_call *C = ctx;
    for (int gi = begin; gi < end; gi++) wino_group(C, gi, C->work + (size_t)tid * C->slice, 0);
}

static size_t g_wino_budget; /* per-thread group budget, floats */
static pthread_once_t g_wino_once = PTHREAD_ONCE_INIT;
static void wino_env(void) {
    const char *e = getenv("CLPDD_WINO_GROUP_KB");
    int kb = e && *e ? atoi(e) : 1024;
    g_wino_budget = (size_t)(kb > 0 ? kb : 1024) << 8;
}

/* columns per image: TH·TW tiles of tile × tile outputs, rounded up to a multiple of 16 */
static size_t wino_cols(int tile, int H, int W) {
    return ((size_t)((H + tile - 1) / tile) * ((W + tile - 1) / tile) + 15) / 16 * 16;
}

/* per image: V and M of its tiles, (tile + 2)² products */
static size_t wino_one(int tile, int ci, int co, int H, int W) {
    return (size_t)(tile + 2) * (tile + 2) * (ci + co) * wino_cols(tile, H, W);
}

/* Winograd is used exactly when one image's tiles fit in the ABI's minimum work,
   CLPDD_CONV2D_WORK(d, 1) (even sides: 3·cout ≤ 5·cin): a function of the shape alone, never of
   n or of the work given, so an image's result does not depend on how a batch is split */
int cpu_wino_applies(const clpdd_conv2d_desc *d) {
    return d->k == 3 && d->stride == 1 && d->pad == 1 && d->OH == d->H && d->OW == d->W &&
           (size_t)((d->H + 1) / 2 + 1) * ((d->W + 1) / 2) <= WINO_MAX_P &&
           wino_one(2, d->cin, d->cout, d->H, d->W) <= CLPDD_CONV2D_WORK(d, 1);
}

/* F(4,3) where it applies: its tiles on the stack and one image's tiles within
   CLPDD_CONV2D_WORK(d, 1), like F(2,3)'s. First measured unfused: its products are 0.56× F(2,3)'s at 32² and 16² (and 2.25× at 8², where 2 × 2 tiles pad to 16
   columns), but its transforms cost about what that saves: the resnet20 step is no faster (one
   thread, m = 10 and 100: equal within the noise; results/bench/cpu/resnet-24.md) and it rounds
   ~4× worse. That was the unfused kernel: fused (ops_cpu_winograd4_fused.c) it is 0.8× F(2,3)'s
   step, and auto takes it up to 32 channels (ops_cpu_conv.c, wino_tile_for). Tile 4 gives F(4,3)
   where it applies, else F(2,3); 0 and 2 give F(2,3). A rule on the shape alone, as
   cpu_wino_applies. */
int cpu_wino_tile(const clpdd_conv2d_desc *d, int tile) {
    const size_t q4 = (size_t)((d->H + 3) / 4) * ((d->W + 3) / 4);
    const int fits4 = q4 <= WINO4_MAX_Q && wino_one(4, d->cin, d->cout, d->H, d->W) <= CLPDD_CONV2D_WORK(d, 1);
    return tile == 4 && fits4 ? 4 : 2;
}

/* the group schedule in `avail` floats of work; 0 when not even one image fits */
static int wino_schedule(wino_call *C, size_t avail) {
    const int n = C->d->n;
    const size_t one = wino_one(C->tile, C->ci, C->co, C->H, C->W);
    if (avail < one) return 0;
    size_t cap = g_wino_budget / one;
    if (cap < 1) cap = 1;
    int T = cpu_pool_threads();
    if ((size_t)T > avail / one) T = (int)(avail / one);
    if (T > n) T = n;
    C->slots = 1;
    if (T >= 2) { /* per-thread groups: the shortest makespan ⌈groups / T⌉·g (ties: larger g) */
        size_t gmax = avail / ((size_t)T * one);
        if (gmax > cap) gmax = cap;
        if (gmax > (size_t)n) gmax = (size_t)n;
        int best = cpu_pool_best_group(n, T, (int)gmax);
        C->G = best, C->groups = (n + best - 1) / best;
        if (C->groups >= 2) C->slots = T < C->groups ? T : C->groups, C->slice = one * best;
    }
    if (C->slots == 1) {
        size_t g = avail / one;
        if (g > cap) g = cap;
        if (g > (size_t)n) g = (size_t)n;
        C->G = (int)g, C->groups = (n + C->G - 1) / C->G, C->slice = avail;
    }
    return 1;
}

/* The fused kernel's packed U per weight tensor, kept: a CLP-DD step calls each frozen
   convolution ~2·⌈m / 16⌉ times (forward and backward, resnet's pieces of 16 images) and U and its
   packing were ~4 % of the step. An entry is used only while the weights still equal the copy
   taken with it (memcmp: ~5 µs at 64 × 64 channels, against ~30 µs to recompute), so weights
   changed in place, or new weights at a freed address, are never served a stale U. Entries live
   until the process exits; past WINO_CACHE_FLOATS (or WINO_CACHE_ENTRIES) new weights are
   transformed per call as before. */
#define WINO_CACHE_ENTRIES 128
#define WINO_CACHE_FLOATS ((size_t)16 << 20)
typedef struct wino_u_entry {
    const float *w;
    int ci, co, bwd, tile;
    float *wcopy, *U;
} wino_u_entry;
static wino_u_entry g_ucache[WINO_CACHE_ENTRIES];
static int g_ucount;
static size_t g_ufloats;
static pthread_mutex_t g_umutex = PTHREAD_MUTEX_INITIALIZER;

/* U for C packed (cpu_wino_fused_pack) into packed, through plain (ufl floats each) */
static void wino_u_packed(wino_call *C, float *packed, float *plain, size_t ufl) {
    C->U = plain;
    wino_for(C->co, 2 * ufl, C->tile == 4 ? wino4_u_range : wino_u_range, C);
    cpu_wino_fused_pack(packed, plain, C->nxi, C->co, C->ci);
}

/* the cached packed U of C's weights, made now if there is room; NULL: compute it per call */
static const float *wino_u_cached(wino_call *C, size_t ufl) {
    const size_t nw = (size_t)9 * C->ci * C->co;
    const float *found = NULL;
    pthread_mutex_lock(&g_umutex);
    for (int i = 0; i < g_ucount && !found; i++) {
        const wino_u_entry *e = &g_ucache[i];
        if (e->w == C->w && e->ci == C->ci && e->co == C->co && e->bwd == C->bwd && e->tile == C->tile &&
            !memcmp(e->wcopy, C->w, nw * sizeof(float)))
            found = e->U;
    }
    if (!found && g_ucount < WINO_CACHE_ENTRIES && g_ufloats + nw + ufl <= WINO_CACHE_FLOATS) {
        wino_u_entry e = {C->w, C->ci, C->co, C->bwd, C->tile, malloc(nw * sizeof(float)), malloc(ufl * sizeof(float))};
        float *plain = malloc(ufl * sizeof(float));
        if (e.wcopy && e.U && plain) {
            memcpy(e.wcopy, C->w, nw * sizeof(float));
            wino_u_packed(C, e.U, plain, ufl);
            g_ucache[g_ucount++] = e, g_ufloats += nw + ufl, found = e.U;
        } else {
            free(e.wcopy), free(e.U);
        }
        free(plain);
    }
    pthread_mutex_unlock(&g_umutex);
    return found;
}

/* the fused kernel (ops_cpu_winograd_fused.c): U cached, else packed at the end of work (computed
   first in the space the threads' scratch takes next) when they fit, else allocated; a slot per
   pool thread when they fit, else serial */
static int wino_run_fused(wino_call *C, float *work, size_t work_floats, size_t ufl) {
    const size_t slot = cpu_wino_fused_slot(C);
    const int T = cpu_pool_threads();
    if (work_floats < slot) return 0;
    float *Ubuf = NULL;
    size_t room = work_floats;
    const float *cached = wino_u_cached(C, ufl);
    if (cached) {
        C->U = (float *)cached;
    } else if (work_floats >= ufl + slot && work_floats - ufl >= ufl) {
        room = work_floats - ufl;
        wino_u_packed(C, work + room, work, ufl);
        C->U = work + room;
    } else {
        Ubuf = malloc(2 * ufl * sizeof(float));
        CLPDD_ASSERT(Ubuf && "conv2d (winograd): out of memory");
        wino_u_packed(C, Ubuf, Ubuf + ufl, ufl);
        C->U = Ubuf;
    }
    const size_t floats = (size_t)C->d->n * (C->ci + C->co) * C->H * C->W;
    const int slots = T > 1 && room >= (size_t)T * slot && floats > CLPDD_CPU_PAR_MIN ? T : 1;
    cpu_wino_fused_run(C, work, slots);
    free(Ubuf);
    return C->tile;
}

/* schedule, U (at the end of work when it fits beside one image's tiles, else allocated), run */
static int wino_run(wino_call *C, float *work, size_t work_floats) {
    pthread_once(&g_wino_once, wino_env);
    const int t = C->tile;
    C->nxi = (t + 2) * (t + 2);
    C->TH = (C->H + t - 1) / t, C->TW = (C->W + t - 1) / t, C->NT = (int)wino_cols(t, C->H, C->W);
    const size_t ufl = (size_t)C->nxi * C->ci * C->co;
    if (cpu_wino_fused_applies(C)) return wino_run_fused(C, work, work_floats, ufl);
    float *Ubuf = NULL;
    C->work = work;
    if (work_floats > ufl && wino_schedule(C, work_floats - ufl)) {
        C->U = work + (work_floats - ufl);
    } else {
        if (!wino_schedule(C, work_floats)) return 0;
        Ubuf = malloc(ufl * sizeof(float));
        CLPDD_ASSERT(Ubuf && "conv2d (winograd): out of memory");
        C->U = Ubuf;
    }
    wino_for(C->co, 2 * ufl, t == 4 ? wino4_u_range : wino_u_range, C);
    if (C->slots > 1) {
        cpu_blas_serial_begin();
        cpu_parallel_for_tid(C->groups, 1, wino_groups, C);
        cpu_blas_serial_end();
    } else {
        for (int gi = 0; gi < C->groups; gi++) wino_group(C, gi, work, 1);
    }
    free(Ubuf);
    return C->tile;
}

int cpu_wino_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w, const float *bias,
                    const float *res, const clpdd_conv2d_desc *d, int tile) {
    if (!cpu_wino_applies(d) || d->n == 0) return 0;
    wino_call C = {.d = d, .bwd = 0, .tile = cpu_wino_tile(d, tile), .ci = d->cin, .co = d->cout, .H = d->H, .W = d->W,
                   .w = w, .in = x, .mask = NULL, .bias = bias, .res = res, .out = y};
    return wino_run(&C, work, work_floats);
}

int cpu_wino_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy, const float *mask,
                             const float *w, const clpdd_conv2d_desc *d, int tile) {
    if (!cpu_wino_applies(d) || d->n == 0) return 0;
    wino_call C = {.d = d, .bwd = 1, .tile = cpu_wino_tile(d, tile), .ci = d->cout, .co = d->cin, .H = d->H, .W = d->W,
                   .w = w, .in = dy, .mask = mask, .bias = NULL, .res = NULL, .out = dx};
    return wino_run(&C, work, work_floats);
}
