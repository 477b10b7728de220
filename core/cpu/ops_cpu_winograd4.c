/* CPU backend: the transforms of Winograd F(4×4, 3×3) (Lavin & Gray), run by the driver in
 * ops_cpu_winograd.c (groups, the 36 products, the schedule: as F(2,3)'s, with 36 for 16).
 *
 * Each tile is 4 × 4 outputs read from a 6 × 6 input patch at stride 4; the interpolation points
 * are 0, ±1, ±2 and ∞ (wincnn's):
 *   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
 *   G  = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1]
 *   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
 * 36 products per 16 outputs where F(2,3) has 64 (× 0.56 the GEMM work and the V / M bytes).
 * Rounding: the transforms weigh terms by up to 8 (Aᵀ) and 5 (Bᵀ), so the error grows over
 * F(2,3)'s; measured against a float64 direct convolution at the resnet20 layer shapes in
 * tests/test_ops_cpu.c conv2d_winograd4 (docs/design.md §4, "CPU, the reference", has the
 * numbers). Multiplications by 2, 4, 8 are exact and every product feeding a sum is such a scaling
 * (5·d is written 4·d + d), so an FMA contraction (the v3 / v4 clones under gnu11's
 * -ffp-contract=fast) rounds as the separate multiply and add: the AVX-512 / AVX2 / baseline
 * clones agree bit for bit.
 *
 * Layout as F(2,3)'s (ops_cpu_winograd.c): image j's tile (ty, tx) in column j·NT + ty·TW + tx
 * of V[ξ] (ci, g·NT) and M[ξ] (co, g·NT), ξ = 6·r + c < 36; columns TH·TW … NT − 1 zero. */
#include "cpu/ops_cpu_winograd_int.h"

#include <string.h>

/* ---- U = G g Gᵀ: one row a of the 36 (co, ci) matrices, kernels g[b] = wk + b·bs, taps at tap[] ---- */
/* G on three values (g0, g1, g2), the order of the sums used below ("G(·)"):
     u0 = g0/4, u1 = −((g0 + g2) + g1)/6, u2 = −((g0 + g2) − g1)/6,
     u3 = ((g0/4 + g2) + g1/2)/6, u4 = ((g0/4 + g2) − g1/2)/6, u5 = g2 */

/* G(·) on the columns of g (q = G g), then on the rows of q (U = q Gᵀ), written out per value so
   that the loop over b vectorises (U is recomputed every call: at m = 10 it is a visible share) */
WINO_CLONES static void wino4_u_row(float *u, size_t xs, int ci, const float *wk, size_t bs, const int *tap) {
    const int T0 = tap[0], T1 = tap[1], T2 = tap[2], T3 = tap[3], T4 = tap[4], T5 = tap[5], T6 = tap[6], T7 = tap[7],
              T8 = tap[8];
    float *restrict u0 = u, *restrict u1 = u + 1 * xs, *restrict u2 = u + 2 * xs, *restrict u3 = u + 3 * xs,
                    *restrict u4 = u + 4 * xs, *restrict u5 = u + 5 * xs, *restrict u6 = u + 6 * xs,
                    *restrict u7 = u + 7 * xs, *restrict u8 = u + 8 * xs, *restrict u9 = u + 9 * xs,
                    *restrict u10 = u + 10 * xs, *restrict u11 = u + 11 * xs, *restrict u12 = u + 12 * xs,
                    *restrict u13 = u + 13 * xs, *restrict u14 = u + 14 * xs, *restrict u15 = u + 15 * xs,
                    *restrict u16 = u + 16 * xs, *restrict u17 = u + 17 * xs, *restrict u18 = u + 18 * xs,
                    *restrict u19 = u + 19 * xs, *restrict u20 = u + 20 * xs, *restrict u21 = u + 21 * xs,
                    *restrict u22 = u + 22 * xs, *restrict u23 = u + 23 * xs, *restrict u24 = u + 24 * xs,
                    *restrict u25 = u + 25 * xs, *restrict u26 = u + 26 * xs, *restrict u27 = u + 27 * xs,
                    *restrict u28 = u + 28 * xs, *restrict u29 = u + 29 * xs, *restrict u30 = u + 30 * xs,
                    *restrict u31 = u + 31 * xs, *restrict u32 = u + 32 * xs, *restrict u33 = u + 33 * xs,
                    *restrict u34 = u + 34 * xs, *restrict u35 = u + 35 * xs;
#pragma GCC ivdep
    for (int b = 0; b < ci; b++) {
        const float *g = wk + (size_t)b * bs;
        const float g00 = g[T0], g01 = g[T1], g02 = g[T2], g10 = g[T3], g11 = g[T4], g12 = g[T5], g20 = g[T6],
                    g21 = g[T7], g22 = g[T8];
        const float q00 = 0.25f * g00;
        const float q10 = -((g00 + g20) + g10) / 6.0f;
        const float q20 = -((g00 + g20) - g10) / 6.0f;
        const float q30 = ((0.25f * g00 + g20) + 0.5f * g10) / 6.0f;
        const float q40 = ((0.25f * g00 + g20) - 0.5f * g10) / 6.0f;
        const float q50 = g20;
        const float q01 = 0.25f * g01;
        const float q11 = -((g01 + g21) + g11) / 6.0f;
        const float q21 = -((g01 + g21) - g11) / 6.0f;
        const float q31 = ((0.25f * g01 + g21) + 0.5f * g11) / 6.0f;
        const float q41 = ((0.25f * g01 + g21) - 0.5f * g11) / 6.0f;
        const float q51 = g21;
        const float q02 = 0.25f * g02;
        const float q12 = -((g02 + g22) + g12) / 6.0f;
        const float q22 = -((g02 + g22) - g12) / 6.0f;
        const float q32 = ((0.25f * g02 + g22) + 0.5f * g12) / 6.0f;
        const float q42 = ((0.25f * g02 + g22) - 0.5f * g12) / 6.0f;
        const float q52 = g22;
        u0[b] = 0.25f * q00;
        u1[b] = -((q00 + q02) + q01) / 6.0f;
        u2[b] = -((q00 + q02) - q01) / 6.0f;
        u3[b] = ((0.25f * q00 + q02) + 0.5f * q01) / 6.0f;
        u4[b] = ((0.25f * q00 + q02) - 0.5f * q01) / 6.0f;
        u5[b] = q02;
        u6[b] = 0.25f * q10;
        u7[b] = -((q10 + q12) + q11) / 6.0f;
        u8[b] = -((q10 + q12) - q11) / 6.0f;
        u9[b] = ((0.25f * q10 + q12) + 0.5f * q11) / 6.0f;
        u10[b] = ((0.25f * q10 + q12) - 0.5f * q11) / 6.0f;
        u11[b] = q12;
        u12[b] = 0.25f * q20;
        u13[b] = -((q20 + q22) + q21) / 6.0f;
        u14[b] = -((q20 + q22) - q21) / 6.0f;
        u15[b] = ((0.25f * q20 + q22) + 0.5f * q21) / 6.0f;
        u16[b] = ((0.25f * q20 + q22) - 0.5f * q21) / 6.0f;
        u17[b] = q22;
        u18[b] = 0.25f * q30;
        u19[b] = -((q30 + q32) + q31) / 6.0f;
        u20[b] = -((q30 + q32) - q31) / 6.0f;
        u21[b] = ((0.25f * q30 + q32) + 0.5f * q31) / 6.0f;
        u22[b] = ((0.25f * q30 + q32) - 0.5f * q31) / 6.0f;
        u23[b] = q32;
        u24[b] = 0.25f * q40;
        u25[b] = -((q40 + q42) + q41) / 6.0f;
        u26[b] = -((q40 + q42) - q41) / 6.0f;
        u27[b] = ((0.25f * q40 + q42) + 0.5f * q41) / 6.0f;
        u28[b] = ((0.25f * q40 + q42) - 0.5f * q41) / 6.0f;
        u29[b] = q42;
        u30[b] = 0.25f * q50;
        u31[b] = -((q50 + q52) + q51) / 6.0f;
        u32[b] = -((q50 + q52) - q51) / 6.0f;
        u33[b] = ((0.25f * q50 + q52) + 0.5f * q51) / 6.0f;
        u34[b] = ((0.25f * q50 + q52) - 0.5f * q51) / 6.0f;
        u35[b] = q52;
    }
}

void wino4_u_range(void *ctx, int begin, int end) {
    const wino_call *C = ctx;
    const int ci = C->ci, co = C->co;
    static const int fwd[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, flip[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    for (int a = begin; a < end; a++) {
        if (!C->bwd) /* w (co, ci, 3, 3): g[a, b] = w[a, b] */
            wino4_u_row(C->U + (size_t)a * ci, (size_t)co * ci, ci, C->w + (size_t)a * ci * 9, 9, fwd);
        else /* w (ci, co, 3, 3): g[a, b] = w[b, a] flipped */
            wino4_u_row(C->U + (size_t)a * ci, (size_t)co * ci, ci, C->w + (size_t)a * 9, (size_t)co * 9, flip);
    }
}

/* ---- V = Bᵀ d B ---- */
/* Bᵀ on six values d0..d5 (a column or a row of a patch), the order of the sums used below ("Bᵀ(·)"):
     t0 = 4(d0 − d2) + (d4 − d2), t1,2 = (d4 − 4d2) ± (d3 − 4d1), t3,4 = (d4 − d2) ± 2(d3 − d1),
     t5 = 4(d1 − d3) + (d5 − d3) */

/* V[ξ][q] for NQ tiles from the 24 planes X[6a + c][u·TW + v] = D[4u + a][4v + c] (d[r][c] of tile q
   = X[6(r % 4) + c][q + (r / 4)·TW]); 36 output rows xs apart.
   Bᵀ(·) on the columns (t = Bᵀ d), then on the rows of t (V = t B), written out per value so
   that the loop over q vectorises */
WINO_CLONES static void wino4_in_tiles(int NQ, int TW, float (*restrict X)[WINO4_MAX_X], float *v, size_t xs) {
    float *restrict v0 = v, *restrict v1 = v + 1 * xs, *restrict v2 = v + 2 * xs, *restrict v3 = v + 3 * xs,
                    *restrict v4 = v + 4 * xs, *restrict v5 = v + 5 * xs, *restrict v6 = v + 6 * xs,
                    *restrict v7 = v + 7 * xs, *restrict v8 = v + 8 * xs, *restrict v9 = v + 9 * xs,
                    *restrict v10 = v + 10 * xs, *restrict v11 = v + 11 * xs, *restrict v12 = v + 12 * xs,
                    *restrict v13 = v + 13 * xs, *restrict v14 = v + 14 * xs, *restrict v15 = v + 15 * xs,
                    *restrict v16 = v + 16 * xs, *restrict v17 = v + 17 * xs, *restrict v18 = v + 18 * xs,
                    *restrict v19 = v + 19 * xs, *restrict v20 = v + 20 * xs, *restrict v21 = v + 21 * xs,
                    *restrict v22 = v + 22 * xs, *restrict v23 = v + 23 * xs, *restrict v24 = v + 24 * xs,
                    *restrict v25 = v + 25 * xs, *restrict v26 = v + 26 * xs, *restrict v27 = v + 27 * xs,
                    *restrict v28 = v + 28 * xs, *restrict v29 = v + 29 * xs, *restrict v30 = v + 30 * xs,
                    *restrict v31 = v + 31 * xs, *restrict v32 = v + 32 * xs, *restrict v33 = v + 33 * xs,
                    *restrict v34 = v + 34 * xs, *restrict v35 = v + 35 * xs;
#pragma GCC ivdep
    for (int q = 0; q < NQ; q++) {
        const float d00 = X[0][q], d01 = X[1][q], d02 = X[2][q], d03 = X[3][q], d04 = X[4][q], d05 = X[5][q];
        const float d10 = X[6][q], d11 = X[7][q], d12 = X[8][q], d13 = X[9][q], d14 = X[10][q], d15 = X[11][q];
        const float d20 = X[12][q], d21 = X[13][q], d22 = X[14][q], d23 = X[15][q], d24 = X[16][q], d25 = X[17][q];
        const float d30 = X[18][q], d31 = X[19][q], d32 = X[20][q], d33 = X[21][q], d34 = X[22][q], d35 = X[23][q];
        const float d40 = X[0][q + TW], d41 = X[1][q + TW], d42 = X[2][q + TW], d43 = X[3][q + TW], d44 = X[4][q + TW],
                    d45 = X[5][q + TW];
        const float d50 = X[6][q + TW], d51 = X[7][q + TW], d52 = X[8][q + TW], d53 = X[9][q + TW], d54 = X[10][q + TW],
                    d55 = X[11][q + TW];
        const float t00 = 4.0f * (d00 - d20) + (d40 - d20);
        const float t10 = (d40 - 4.0f * d20) + (d30 - 4.0f * d10);
        const float t20 = (d40 - 4.0f * d20) - (d30 - 4.0f * d10);
        const float t30 = (d40 - d20) + 2.0f * (d30 - d10);
        const float t40 = (d40 - d20) - 2.0f * (d30 - d10);
        const float t50 = 4.0f * (d10 - d30) + (d50 - d30);
        const float t01 = 4.0f * (d01 - d21) + (d41 - d21);
        const float t11 = (d41 - 4.0f * d21) + (d31 - 4.0f * d11);
        const float t21 = (d41 - 4.0f * d21) - (d31 - 4.0f * d11);
        const float t31 = (d41 - d21) + 2.0f * (d31 - d11);
        const float t41 = (d41 - d21) - 2.0f * (d31 - d11);
        const float t51 = 4.0f * (d11 - d31) + (d51 - d31);
        const float t02 = 4.0f * (d02 - d22) + (d42 - d22);
        const float t12 = (d42 - 4.0f * d22) + (d32 - 4.0f * d12);
        const float t22 = (d42 - 4.0f * d22) - (d32 - 4.0f * d12);
        const float t32 = (d42 - d22) + 2.0f * (d32 - d12);
        const float t42 = (d42 - d22) - 2.0f * (d32 - d12);
        const float t52 = 4.0f * (d12 - d32) + (d52 - d32);
        const float t03 = 4.0f * (d03 - d23) + (d43 - d23);
        const float t13 = (d43 - 4.0f * d23) + (d33 - 4.0f * d13);
        const float t23 = (d43 - 4.0f * d23) - (d33 - 4.0f * d13);
        const float t33 = (d43 - d23) + 2.0f * (d33 - d13);
        const float t43 = (d43 - d23) - 2.0f * (d33 - d13);
        const float t53 = 4.0f * (d13 - d33) + (d53 - d33);
        const float t04 = 4.0f * (d04 - d24) + (d44 - d24);
        const float t14 = (d44 - 4.0f * d24) + (d34 - 4.0f * d14);
        const float t24 = (d44 - 4.0f * d24) - (d34 - 4.0f * d14);
        const float t34 = (d44 - d24) + 2.0f * (d34 - d14);
        const float t44 = (d44 - d24) - 2.0f * (d34 - d14);
        const float t54 = 4.0f * (d14 - d34) + (d54 - d34);
        const float t05 = 4.0f * (d05 - d25) + (d45 - d25);
        const float t15 = (d45 - 4.0f * d25) + (d35 - 4.0f * d15);
        const float t25 = (d45 - 4.0f * d25) - (d35 - 4.0f * d15);
        const float t35 = (d45 - d25) + 2.0f * (d35 - d15);
        const float t45 = (d45 - d25) - 2.0f * (d35 - d15);
        const float t55 = 4.0f * (d15 - d35) + (d55 - d35);
        v0[q] = 4.0f * (t00 - t02) + (t04 - t02);
        v1[q] = (t04 - 4.0f * t02) + (t03 - 4.0f * t01);
        v2[q] = (t04 - 4.0f * t02) - (t03 - 4.0f * t01);
        v3[q] = (t04 - t02) + 2.0f * (t03 - t01);
        v4[q] = (t04 - t02) - 2.0f * (t03 - t01);
        v5[q] = 4.0f * (t01 - t03) + (t05 - t03);
        v6[q] = 4.0f * (t10 - t12) + (t14 - t12);
        v7[q] = (t14 - 4.0f * t12) + (t13 - 4.0f * t11);
        v8[q] = (t14 - 4.0f * t12) - (t13 - 4.0f * t11);
        v9[q] = (t14 - t12) + 2.0f * (t13 - t11);
        v10[q] = (t14 - t12) - 2.0f * (t13 - t11);
        v11[q] = 4.0f * (t11 - t13) + (t15 - t13);
        v12[q] = 4.0f * (t20 - t22) + (t24 - t22);
        v13[q] = (t24 - 4.0f * t22) + (t23 - 4.0f * t21);
        v14[q] = (t24 - 4.0f * t22) - (t23 - 4.0f * t21);
        v15[q] = (t24 - t22) + 2.0f * (t23 - t21);
        v16[q] = (t24 - t22) - 2.0f * (t23 - t21);
        v17[q] = 4.0f * (t21 - t23) + (t25 - t23);
        v18[q] = 4.0f * (t30 - t32) + (t34 - t32);
        v19[q] = (t34 - 4.0f * t32) + (t33 - 4.0f * t31);
        v20[q] = (t34 - 4.0f * t32) - (t33 - 4.0f * t31);
        v21[q] = (t34 - t32) + 2.0f * (t33 - t31);
        v22[q] = (t34 - t32) - 2.0f * (t33 - t31);
        v23[q] = 4.0f * (t31 - t33) + (t35 - t33);
        v24[q] = 4.0f * (t40 - t42) + (t44 - t42);
        v25[q] = (t44 - 4.0f * t42) + (t43 - 4.0f * t41);
        v26[q] = (t44 - 4.0f * t42) - (t43 - 4.0f * t41);
        v27[q] = (t44 - t42) + 2.0f * (t43 - t41);
        v28[q] = (t44 - t42) - 2.0f * (t43 - t41);
        v29[q] = 4.0f * (t41 - t43) + (t45 - t43);
        v30[q] = 4.0f * (t50 - t52) + (t54 - t52);
        v31[q] = (t54 - 4.0f * t52) + (t53 - 4.0f * t51);
        v32[q] = (t54 - 4.0f * t52) - (t53 - 4.0f * t51);
        v33[q] = (t54 - t52) + 2.0f * (t53 - t51);
        v34[q] = (t54 - t52) - 2.0f * (t53 - t51);
        v35[q] = 4.0f * (t51 - t53) + (t55 - t53);
    }
}

/* one image row s (masked by m unless NULL) cut into the phases of its tile columns: x[c][v] =
   D[4v + c] = s[4v + c − 1] ⊙ [m > 0], zero outside the row. Each phase in a loop of its own over
   the columns where it is inside the row (phases 1–4: the full groups of four, 0 and 5 shifted by
   one), which the compiler vectorises; the few border values one by one. */
static inline __attribute__((always_inline)) void wino4_cut_row(float *restrict const *x, const float *restrict s,
                                                                const float *restrict m, int W, int TW) {
    float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3], *restrict x4 = x[4],
                    *restrict x5 = x[5];
    const int vfull = W / 4 < TW ? W / 4 : TW, vin = W >= 5 ? (W - 5) / 4 + 1 : 0; /* 4v + 3 < W; 4v + 4 < W */
    if (m) { /* both loads unconditional: if-converted, vectorised */
        for (int v = 0; v < vfull; v++) {
            const float *restrict sv = s + 4 * v, *restrict mv = m + 4 * v;
            x1[v] = mv[0] > 0.0f ? sv[0] : 0.0f, x2[v] = mv[1] > 0.0f ? sv[1] : 0.0f;
            x3[v] = mv[2] > 0.0f ? sv[2] : 0.0f, x4[v] = mv[3] > 0.0f ? sv[3] : 0.0f;
        }
        for (int v = 1; v <= vfull && v < TW; v++) x0[v] = m[4 * v - 1] > 0.0f ? s[4 * v - 1] : 0.0f;
        for (int v = 0; v < vin && v < TW; v++) x5[v] = m[4 * v + 4] > 0.0f ? s[4 * v + 4] : 0.0f;
    } else {
        for (int v = 0; v < vfull; v++)
            x1[v] = s[4 * v], x2[v] = s[4 * v + 1], x3[v] = s[4 * v + 2], x4[v] = s[4 * v + 3];
        for (int v = 1; v <= vfull && v < TW; v++) x0[v] = s[4 * v - 1];
        for (int v = 0; v < vin && v < TW; v++) x5[v] = s[4 * v + 4];
    }
    x0[0] = 0.0f;
    for (int v = vin; v < TW; v++) { /* phase 5 past the row; the last, partial group */
        const int ix = 4 * v + 4;
        x5[v] = ix < W && (!m || m[ix] > 0.0f) ? s[ix] : 0.0f;
    }
    for (int v = vfull; v < TW; v++)
        for (int c = 0; c < 5; c++) {
            const int ix = 4 * v + c - 1;
            if (c > 0 || v > 0) x[c][v] = ix < W && (!m || m[ix] > 0.0f) ? s[ix] : 0.0f;
        }
}

/* the six column phases of each padded input row py = 4u + a of a plane: X[6a + c][u·TW + v] =
   D[py][4v + c], D[py][px] = x[py − 1][px − 1] ⊙ [mask > 0] (zero outside the image), read
   straight from the image (a padded copy cut up afterwards cost a memcpy per row and, cut up at
   once, store-to-load forwarding stalls) */
WINO_CLONES static void wino4_in_cut(float (*X)[WINO4_MAX_X], const float *src, const float *msk, int H, int W, int TH,
                                     int TW) {
    for (int py = 0; py < 4 * TH + 2; py++) {
        const size_t at = (size_t)(py / 4) * TW;
        const int a = py % 4, iy = py - 1;
        float *x[6];
        for (int c = 0; c < 6; c++) x[c] = X[6 * a + c] + at;
        if (iy < 0 || iy >= H) {
            for (int c = 0; c < 6; c++) memset(x[c], 0, sizeof(float) * (size_t)TW);
            continue;
        }
        wino4_cut_row(x, src + (size_t)iy * W, msk ? msk + (size_t)iy * W : NULL, W, TW);
    }
}

void wino4_in_range(void *ctx, int begin, int end) {
    const wino_job *J = ctx;
    const wino_call *C = J->C;
    const int H = C->H, W = C->W, TH = C->TH, TW = C->TW, NQ = TH * TW, NT = C->NT;
    const size_t N = (size_t)J->g * NT, xs = (size_t)C->ci * N, HW = (size_t)H * W;
    float X[24][WINO4_MAX_X];
    for (int it = begin; it < end; it++) {
        const int j = it / C->ci, c = it % C->ci;
        const size_t plane = ((size_t)(J->i0 + j) * C->ci + c) * HW;
        const float *src = C->in + plane, *msk = C->mask ? C->mask + plane : NULL;
        wino4_in_cut(X, src, msk, H, W, TH, TW);
        float *v = J->V + (size_t)c * N + (size_t)j * NT;
        wino4_in_tiles(NQ, TW, X, v, xs);
        for (int xi = 0; xi < 36; xi++)
            for (int q = NQ; q < NT; q++) v[(size_t)xi * xs + q] = 0.0f;
    }
}

/* ---- y = epilogue(Aᵀ M A) ---- */
/* Aᵀ on six values m0..m5, the order of the sums used below ("Aᵀ(·)"):
     o0 = (m0 + (m1 + m2)) + (m3 + m4), o1 = (m1 − m2) + 2(m3 − m4), o2 = (m1 + m2) + 4(m3 + m4),
     o3 = ((m1 − m2) + 8(m3 − m4)) + m5 */

/* the 16 outputs of each of NQ tiles from M's 36 rows (xs apart) at m: Ob[4i + k][q]. Aᵀ(·) on
   the columns (s = Aᵀ M), then on the rows of s (s A), written out per value (vectorised over q) */
WINO_CLONES static void wino4_out_tiles(int NQ, const float *m, size_t xs, float (*Ob)[WINO4_MAX_O]) {
    const float *restrict p0 = m, *restrict p1 = m + 1 * xs, *restrict p2 = m + 2 * xs, *restrict p3 = m + 3 * xs,
                          *restrict p4 = m + 4 * xs, *restrict p5 = m + 5 * xs, *restrict p6 = m + 6 * xs,
                          *restrict p7 = m + 7 * xs, *restrict p8 = m + 8 * xs, *restrict p9 = m + 9 * xs,
                          *restrict p10 = m + 10 * xs, *restrict p11 = m + 11 * xs, *restrict p12 = m + 12 * xs,
                          *restrict p13 = m + 13 * xs, *restrict p14 = m + 14 * xs, *restrict p15 = m + 15 * xs,
                          *restrict p16 = m + 16 * xs, *restrict p17 = m + 17 * xs, *restrict p18 = m + 18 * xs,
                          *restrict p19 = m + 19 * xs, *restrict p20 = m + 20 * xs, *restrict p21 = m + 21 * xs,
                          *restrict p22 = m + 22 * xs, *restrict p23 = m + 23 * xs, *restrict p24 = m + 24 * xs,
                          *restrict p25 = m + 25 * xs, *restrict p26 = m + 26 * xs, *restrict p27 = m + 27 * xs,
                          *restrict p28 = m + 28 * xs, *restrict p29 = m + 29 * xs, *restrict p30 = m + 30 * xs,
                          *restrict p31 = m + 31 * xs, *restrict p32 = m + 32 * xs, *restrict p33 = m + 33 * xs,
                          *restrict p34 = m + 34 * xs, *restrict p35 = m + 35 * xs;
    float *restrict O0 = Ob[0], *restrict O1 = Ob[1], *restrict O2 = Ob[2], *restrict O3 = Ob[3], *restrict O4 = Ob[4],
                    *restrict O5 = Ob[5], *restrict O6 = Ob[6], *restrict O7 = Ob[7], *restrict O8 = Ob[8],
                    *restrict O9 = Ob[9], *restrict O10 = Ob[10], *restrict O11 = Ob[11], *restrict O12 = Ob[12],
                    *restrict O13 = Ob[13], *restrict O14 = Ob[14], *restrict O15 = Ob[15];
#pragma GCC ivdep
    for (int q = 0; q < NQ; q++) {
        const float m00 = p0[q], m01 = p1[q], m02 = p2[q], m03 = p3[q], m04 = p4[q], m05 = p5[q];
        const float m10 = p6[q], m11 = p7[q], m12 = p8[q], m13 = p9[q], m14 = p10[q], m15 = p11[q];
        const float m20 = p12[q], m21 = p13[q], m22 = p14[q], m23 = p15[q], m24 = p16[q], m25 = p17[q];
        const float m30 = p18[q], m31 = p19[q], m32 = p20[q], m33 = p21[q], m34 = p22[q], m35 = p23[q];
        const float m40 = p24[q], m41 = p25[q], m42 = p26[q], m43 = p27[q], m44 = p28[q], m45 = p29[q];
        const float m50 = p30[q], m51 = p31[q], m52 = p32[q], m53 = p33[q], m54 = p34[q], m55 = p35[q];
        const float s00 = (m00 + (m10 + m20)) + (m30 + m40);
        const float s10 = (m10 - m20) + 2.0f * (m30 - m40);
        const float s20 = (m10 + m20) + 4.0f * (m30 + m40);
        const float s30 = ((m10 - m20) + 8.0f * (m30 - m40)) + m50;
        const float s01 = (m01 + (m11 + m21)) + (m31 + m41);
        const float s11 = (m11 - m21) + 2.0f * (m31 - m41);
        const float s21 = (m11 + m21) + 4.0f * (m31 + m41);
        const float s31 = ((m11 - m21) + 8.0f * (m31 - m41)) + m51;
        const float s02 = (m02 + (m12 + m22)) + (m32 + m42);
        const float s12 = (m12 - m22) + 2.0f * (m32 - m42);
        const float s22 = (m12 + m22) + 4.0f * (m32 + m42);
        const float s32 = ((m12 - m22) + 8.0f * (m32 - m42)) + m52;
        const float s03 = (m03 + (m13 + m23)) + (m33 + m43);
        const float s13 = (m13 - m23) + 2.0f * (m33 - m43);
        const float s23 = (m13 + m23) + 4.0f * (m33 + m43);
        const float s33 = ((m13 - m23) + 8.0f * (m33 - m43)) + m53;
        const float s04 = (m04 + (m14 + m24)) + (m34 + m44);
        const float s14 = (m14 - m24) + 2.0f * (m34 - m44);
        const float s24 = (m14 + m24) + 4.0f * (m34 + m44);
        const float s34 = ((m14 - m24) + 8.0f * (m34 - m44)) + m54;
        const float s05 = (m05 + (m15 + m25)) + (m35 + m45);
        const float s15 = (m15 - m25) + 2.0f * (m35 - m45);
        const float s25 = (m15 + m25) + 4.0f * (m35 + m45);
        const float s35 = ((m15 - m25) + 8.0f * (m35 - m45)) + m55;
        O0[q] = (s00 + (s01 + s02)) + (s03 + s04);
        O1[q] = (s01 - s02) + 2.0f * (s03 - s04);
        O2[q] = (s01 + s02) + 4.0f * (s03 + s04);
        O3[q] = ((s01 - s02) + 8.0f * (s03 - s04)) + s05;
        O4[q] = (s10 + (s11 + s12)) + (s13 + s14);
        O5[q] = (s11 - s12) + 2.0f * (s13 - s14);
        O6[q] = (s11 + s12) + 4.0f * (s13 + s14);
        O7[q] = ((s11 - s12) + 8.0f * (s13 - s14)) + s15;
        O8[q] = (s20 + (s21 + s22)) + (s23 + s24);
        O9[q] = (s21 - s22) + 2.0f * (s23 - s24);
        O10[q] = (s21 + s22) + 4.0f * (s23 + s24);
        O11[q] = ((s21 - s22) + 8.0f * (s23 - s24)) + s25;
        O12[q] = (s30 + (s31 + s32)) + (s33 + s34);
        O13[q] = (s31 - s32) + 2.0f * (s33 - s34);
        O14[q] = (s31 + s32) + 4.0f * (s33 + s34);
        O15[q] = ((s31 - s32) + 8.0f * (s33 - s34)) + s35;
    }
}

/* one output row oy: yr[x] = relu?((t + b) + shortcut), as conv2d's epilogue; rr the shortcut
   row (NULL: none) read at stride rs. Four columns per tile, interleaved from Ob's four rows. */
static inline __attribute__((always_inline)) void wino4_out_row(float *restrict yr, float (*Ob)[WINO4_MAX_O], int oy,
                                                                int W, int TW, float b, const float *restrict rr,
                                                                int rs, int relu) {
    const size_t at = (size_t)(oy / 4) * TW;
    const float *restrict e0 = Ob[4 * (oy % 4)] + at, *restrict e1 = Ob[4 * (oy % 4) + 1] + at;
    const float *restrict e2 = Ob[4 * (oy % 4) + 2] + at, *restrict e3 = Ob[4 * (oy % 4) + 3] + at;
    const int full = W / 4;
    if (rr) {
        for (int tx = 0; tx < full; tx++) {
            const float *r = rr + (size_t)4 * tx * rs;
            float y0 = e0[tx] + b, y1 = e1[tx] + b, y2 = e2[tx] + b, y3 = e3[tx] + b;
            y0 += r[0], y1 += r[rs], y2 += r[2 * rs], y3 += r[3 * rs];
            if (relu)
                y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f, y2 = y2 > 0.0f ? y2 : 0.0f,
                y3 = y3 > 0.0f ? y3 : 0.0f;
            yr[4 * tx] = y0, yr[4 * tx + 1] = y1, yr[4 * tx + 2] = y2, yr[4 * tx + 3] = y3;
        }
    } else if (!rr) {
        for (int tx = 0; tx < full; tx++) {
            float y0 = e0[tx] + b, y1 = e1[tx] + b, y2 = e2[tx] + b, y3 = e3[tx] + b;
            if (relu)
                y0 = y0 > 0.0f ? y0 : 0.0f, y1 = y1 > 0.0f ? y1 : 0.0f, y2 = y2 > 0.0f ? y2 : 0.0f,
                y3 = y3 > 0.0f ? y3 : 0.0f;
            yr[4 * tx] = y0, yr[4 * tx + 1] = y1, yr[4 * tx + 2] = y2, yr[4 * tx + 3] = y3;
        }
    }
    const float *e[4] = {e0, e1, e2, e3};
    for (int x = 4 * full; x < W; x++) { /* the last partial tile */
        float y = e[x % 4][x / 4] + b;
        if (rr) y += rr[(size_t)x * rs];
        if (relu) y = y > 0.0f ? y : 0.0f;
        yr[x] = y;
    }
}

/* the epilogue of one output plane (rc: its shortcut plane or NULL), row by row */
WINO_CLONES static void wino4_out_plane(float *yo, float (*Ob)[WINO4_MAX_O], int H, int W, int TW, float b,
                                        const float *rc, int rs, int res_W, int relu) {
    for (int oy = 0; oy < H; oy++)
        wino4_out_row(yo + (size_t)oy * W, Ob, oy, W, TW, b, rc ? rc + (size_t)oy * rs * res_W : NULL, rs, relu);
}

void wino4_out_range(void *ctx, int begin, int end) {
    const wino_job *J = ctx;
    const wino_call *C = J->C;
    const clpdd_conv2d_desc *d = C->d;
    const int H = C->H, W = C->W, TW = C->TW, NQ = C->TH * TW, NT = C->NT;
    const size_t N = (size_t)J->g * NT, xs = (size_t)C->co * N, HW = (size_t)H * W;
    float Ob[16][WINO4_MAX_O];
    for (int it = begin; it < end; it++) {
        const int j = it / C->co, o = it % C->co;
        float *yo = C->out + ((size_t)(J->i0 + j) * C->co + o) * HW;
        wino4_out_tiles(NQ, J->M + (size_t)o * N + (size_t)j * NT, xs, Ob);
        const float b = C->bias ? C->bias[o] : 0.0f;
        const float *rc = wino_shortcut(C, J->i0 + j, o);
        wino4_out_plane(yo, Ob, H, W, TW, b, rc, d->res_stride, d->res_W, d->relu && !C->bwd);
    }
}
