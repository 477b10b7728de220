/* CPU backend: Winograd F(4×4, 3×3) fused per block of 16 tiles on AVX-512: the arithmetic of
 * ops_cpu_winograd4.c (its Bᵀ(·), G, Aᵀ(·) and their order of sums, term for term) in the order
 * of ops_cpu_winograd_fused.c (one tile per lane; the patches read straight from the image rows
 * and transformed in registers, M = U · V by FMA in OpenBLAS's order, Aᵀ M A and the epilogue from
 * the 36·16 vectors of 16 output channels). So a tile's outputs are the unfused F(4,3)'s floats,
 * bit for bit (tests/test_ops_cpu.c conv2d_winograd_fused).
 *
 * A block is 16 tiles of one image: R = 16 / TW whole tile rows, TW = W / 4 = 8 (R = 2, 32²
 * maps) or 4 (R = 4, 16² maps). Patch row r of tile row g reads input row 4·(ty0 + g) + r − 1;
 * its four column phases x[4·tx + p] come from the rows' vectors by a permute per pair of rows
 * and a blend, the fifth and sixth (x[4·tx − 1], x[4·tx + 4]) by shifting a phase one lane
 * within each tile row (zero at the image's edge). */
#include "cpu/ops_cpu_winograd_int.h"
#include "cpu/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define F4_TARGET __attribute__((target("avx512f")))
#define F4_BUILT 1
#else
#define F4_BUILT 0
#endif

/* the caller (cpu_wino_fused_applies) has checked the CPU and cout */
int cpu_wino4_fused_applies(const wino_call *C) {
    const int TW = C->W / 4, TH = C->H / 4;
    return F4_BUILT && C->W % 4 == 0 && C->H % 4 == 0 && (TW == 4 || TW == 8) && (TH * TW) % 16 == 0;
}

#if F4_BUILT
typedef struct f4_block {
    int R, ty0;
    long in[6][4];  /* patch row r, tile row g: offset of input row 4·(ty0 + g) + r − 1; −1 outside */
    long out[4][4]; /* output row i of tile row g */
    __mmask16 first, last; /* the lanes of each tile row's first and last tile */
    __m512i phase[4];      /* permute indices of column phase p from a pair of row vectors */
} f4_block;

static void f4_geometry(f4_block *B, const wino_call *C, int ty0) {
    B->ty0 = ty0;
    for (int g = 0; g < 4; g++) {
        for (int r = 0; r < 6; r++) {
            const int iy = 4 * (ty0 + g) + r - 1;
            B->in[r][g] = g < B->R && iy >= 0 && iy < C->H ? (long)iy * C->W : -1;
        }
        for (int i = 0; i < 4; i++) B->out[i][g] = g < B->R ? (long)(4 * (ty0 + g) + i) * C->W : 0;
    }
}

/* a row of the block as 4 vectors: R = 2, rows g = 0, 1 of 32 floats (two vectors each); R = 4,
   rows g = 0 … 3 of 16 floats; rows outside the image read zero */
F4_TARGET static inline void f4_load(int R, const float *plane, const long off[4], __m512 L[4]) {
    const __m512 z = _mm512_setzero_ps();
    if (R == 2) {
        L[0] = off[0] < 0 ? z : _mm512_loadu_ps(plane + off[0]);
        L[1] = off[0] < 0 ? z : _mm512_loadu_ps(plane + off[0] + 16);
        L[2] = off[1] < 0 ? z : _mm512_loadu_ps(plane + off[1]);
        L[3] = off[1] < 0 ? z : _mm512_loadu_ps(plane + off[1] + 16);
    } else {
        for (int g = 0; g < 4; g++) L[g] = off[g] < 0 ? z : _mm512_loadu_ps(plane + off[g]);
    }
}

F4_TARGET static inline void f4_store(int R, float *plane, const long off[4], const __m512 Z[4]) {
    if (R == 2) {
        _mm512_storeu_ps(plane + off[0], Z[0]), _mm512_storeu_ps(plane + off[0] + 16, Z[1]);
        _mm512_storeu_ps(plane + off[1], Z[2]), _mm512_storeu_ps(plane + off[1] + 16, Z[3]);
    } else {
        for (int g = 0; g < 4; g++) _mm512_storeu_ps(plane + off[g], Z[g]);
    }
}

/* patch row r: d[c] = x[iy][4·tx + c − 1] per lane, c < 6, mask > 0 applied */
F4_TARGET static inline void f4_patch_row(const f4_block *B, const float *src, const float *msk, int r, __m512 d[6]) {
    const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    const __m512i up = _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    __m512 L[4];
    f4_load(B->R, src, B->in[r], L);
    if (msk) { /* x = mask > 0 ? dy : 0, as the unfused path (NaN masks give 0) */
        __m512 M[4];
        f4_load(B->R, msk, B->in[r], M);
        for (int k = 0; k < 4; k++)
            L[k] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(M[k], _mm512_setzero_ps(), _CMP_GT_OQ), L[k]);
    }
    for (int p = 0; p < 4; p++) /* lanes 0–7 from the first pair of vectors, 8–15 from the second */
        d[p + 1] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(L[0], B->phase[p], L[1]),
                                        _mm512_permutex2var_ps(L[2], B->phase[p], L[3]));
    d[0] = _mm512_maskz_permutexvar_ps((__mmask16)~B->first, down, d[4]);
    d[5] = _mm512_maskz_permutexvar_ps((__mmask16)~B->last, up, d[1]);
}

/* Bᵀ(·) on six vectors, the sums in ops_cpu_winograd4.c's order (4·x is exact) */
F4_TARGET static inline void f4_bt(const __m512 d[6], __m512 t[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), two = _mm512_set1_ps(2.0f);
    const __m512 d42 = _mm512_sub_ps(d[4], d[2]);
    const __m512 a = _mm512_sub_ps(d[4], _mm512_mul_ps(four, d[2])), b = _mm512_sub_ps(d[3], _mm512_mul_ps(four, d[1]));
    const __m512 c = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    t[0] = _mm512_add_ps(_mm512_mul_ps(four, _mm512_sub_ps(d[0], d[2])), d42);
    t[1] = _mm512_add_ps(a, b), t[2] = _mm512_sub_ps(a, b);
    t[3] = _mm512_add_ps(d42, c), t[4] = _mm512_sub_ps(d42, c);
    t[5] = _mm512_add_ps(_mm512_mul_ps(four, _mm512_sub_ps(d[1], d[3])), _mm512_sub_ps(d[5], d[3]));
}

/* Aᵀ(·) on six vectors: o0 = (m0 + (m1 + m2)) + (m3 + m4), o1 = (m1 − m2) + 2(m3 − m4),
   o2 = (m1 + m2) + 4(m3 + m4), o3 = ((m1 − m2) + 8(m3 − m4)) + m5 */
F4_TARGET static inline void f4_at(const __m512 m[6], __m512 o[4]) {
    const __m512 p = _mm512_add_ps(m[1], m[2]), q = _mm512_sub_ps(m[1], m[2]);
    const __m512 s = _mm512_add_ps(m[3], m[4]), t = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], p), s);
    o[1] = _mm512_add_ps(q, _mm512_mul_ps(_mm512_set1_ps(2.0f), t));
    o[2] = _mm512_add_ps(p, _mm512_mul_ps(_mm512_set1_ps(4.0f), s));
    o[3] = _mm512_add_ps(_mm512_add_ps(q, _mm512_mul_ps(_mm512_set1_ps(8.0f), t)), m[5]);
}

/* Vb[ξ = 6i + j][c] for every input channel: Bᵀ(·) down the columns, then along the rows */
F4_TARGET static void f4_input(const f4_block *B, const wino_call *C, int img, float *Vb) {
    const size_t HW = (size_t)C->H * C->W, xs = cpu_wino_vb_stride(C->ci);
    for (int c = 0; c < C->ci; c++) {
        const size_t plane = ((size_t)img * C->ci + c) * HW;
        const float *src = C->in + plane, *msk = C->mask ? C->mask + plane : NULL;
        __m512 d[6][6], t[6][6];
        for (int r = 0; r < 6; r++) f4_patch_row(B, src, msk, r, d[r]);
        for (int j = 0; j < 6; j++) {
            const __m512 col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
            __m512 out[6];
            f4_bt(col, out);
            for (int i = 0; i < 6; i++) t[i][j] = out[i];
        }
        float *v = Vb + (size_t)c * 16;
        for (int i = 0; i < 6; i++) {
            __m512 out[6];
            f4_bt(t[i], out);
            for (int j = 0; j < 6; j++) _mm512_storeu_ps(v + (6 * i + j) * xs, out[j]);
        }
    }
}

/* the shortcut for output row i of the block, laid out as the outputs (f4_store's vectors) */
F4_TARGET static void f4_residual(const f4_block *B, const wino_call *C, const float *rc, int i, __m512 Z[4]) {
    const clpdd_conv2d_desc *d = C->d;
    const int rs = d->res_stride, W = C->W;
    if (rs == 1) {
        f4_load(B->R, rc, B->out[i], Z);
        return;
    }
    float t[64]; /* R = 2: rows g = 0, 1 of 32; R = 4: rows g = 0 … 3 of 16 */
    for (int g = 0; g < B->R; g++) {
        const float *rr = rc + (size_t)(4 * (B->ty0 + g) + i) * rs * d->res_W;
        for (int x = 0; x < W; x++) t[g * W + x] = rr[(size_t)x * rs];
    }
    for (int k = 0; k < 4; k++) Z[k] = _mm512_loadu_ps(t + 16 * k);
}

/* Aᵀ M A for output channels o0 … o0 + 15, the epilogue (t + bias) + shortcut, ReLU, the stores */
F4_TARGET static void f4_output(const f4_block *B, const wino_call *C, int img, int o0, const float *Mb) {
    const clpdd_conv2d_desc *d = C->d;
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    /* four tiles' four columns from the (0, 1) and (2, 3) interleaved pairs: tiles 0–3, 4–7 */
    const __m512i q0 = _mm512_set_epi32(23, 22, 7, 6, 21, 20, 5, 4, 19, 18, 3, 2, 17, 16, 1, 0);
    const __m512i q1 = _mm512_set_epi32(31, 30, 15, 14, 29, 28, 13, 12, 27, 26, 11, 10, 25, 24, 9, 8);
    const int relu = d->relu && !C->bwd;
    const size_t HW = (size_t)C->H * C->W;
    for (int k = 0; k < 16; k++) {
        const int o = o0 + k;
        __m512 s[4][6];
        for (int j = 0; j < 6; j++) {
            __m512 m[6], out[4];
            for (int r = 0; r < 6; r++) m[r] = _mm512_loadu_ps(Mb + ((size_t)(6 * r + j) * 16 + k) * 16);
            f4_at(m, out);
            for (int i = 0; i < 4; i++) s[i][j] = out[i];
        }
        const __m512 bias = _mm512_set1_ps(C->bias ? C->bias[o] : 0.0f);
        const float *rc = wino_shortcut(C, img, o);
        float *y = C->out + ((size_t)img * C->co + o) * HW;
        for (int i = 0; i < 4; i++) {
            __m512 e[4], Z[4];
            f4_at(s[i], e);
            const __m512 p01l = _mm512_permutex2var_ps(e[0], lo, e[1]), p23l = _mm512_permutex2var_ps(e[2], lo, e[3]);
            const __m512 p01h = _mm512_permutex2var_ps(e[0], hi, e[1]), p23h = _mm512_permutex2var_ps(e[2], hi, e[3]);
            Z[0] = _mm512_permutex2var_ps(p01l, q0, p23l), Z[1] = _mm512_permutex2var_ps(p01l, q1, p23l);
            Z[2] = _mm512_permutex2var_ps(p01h, q0, p23h), Z[3] = _mm512_permutex2var_ps(p01h, q1, p23h);
            for (int z = 0; z < 4; z++) Z[z] = _mm512_add_ps(Z[z], bias);
            if (rc) {
                __m512 R[4];
                f4_residual(B, C, rc, i, R);
                for (int z = 0; z < 4; z++) Z[z] = _mm512_add_ps(Z[z], R[z]);
            }
            if (relu)
                for (int z = 0; z < 4; z++) Z[z] = _mm512_max_ps(Z[z], _mm512_setzero_ps());
            f4_store(B->R, y, B->out[i], Z);
        }
    }
}

F4_TARGET static void f4_range(void *ctx, int begin, int end, int tid) {
    const wino_fused_job *J = ctx;
    const wino_call *C = J->C;
    const int TW = C->W / 4, R = 16 / TW;
    float *Vb = J->scratch + (size_t)tid * J->slot, *Mb = Vb + 36 * cpu_wino_vb_stride(C->ci);
    f4_block B = {.R = R};
    for (int g = 0; g < R; g++)
        B.first |= (__mmask16)(1u << (g * TW)), B.last |= (__mmask16)(1u << (g * TW + TW - 1));
    for (int p = 0; p < 4; p++) { /* lane j of tile row g, tile tx: element 4·tx + p of its row */
        int idx[16];
        for (int j = 0; j < 16; j++)
            idx[j] = R == 2 ? 4 * (j % 8) + p : 16 * ((j / 4) % 2) + 4 * (j % 4) + p;
        B.phase[p] = _mm512_loadu_si512(idx);
    }
    for (int it = begin; it < end; it++) {
        const int img = it / J->blocks;
        f4_geometry(&B, C, (it % J->blocks) * R);
        f4_input(&B, C, img, Vb);
        for (int o0 = 0; o0 < C->co; o0 += 16) {
            cpu_wino_fused_products(C, o0, Vb, Mb);
            f4_output(&B, C, img, o0, Mb);
        }
    }
}

void cpu_wino4_fused_run(const wino_call *C, float *scratch, int slots) {
    wino_fused_job J = {C, scratch, cpu_wino_fused_slot(C), (C->H / 4) * (C->W / 4) / 16};
    const int items = C->d->n * J.blocks;
    if (slots > 1)
        cpu_parallel_for_tid(items, 0, f4_range, &J);
    else
        f4_range(&J, 0, items, 0);
}
#else
void cpu_wino4_fused_run(const wino_call *C, float *scratch, int slots) {
    (void)C, (void)scratch, (void)slots;
}
#endif
