/* CPU backend: Winograd F(2×2, 3×3) fused per block of 16 tiles, on AVX-512 (the driver and the
 * maths are ops_cpu_winograd.c's; this is the same arithmetic in another order).
 *
 * The unfused driver writes V = Bᵀ d B for a group of images to memory (16·ci floats per tile),
 * multiplies it by OpenBLAS, writes M (16·co per tile) and reads it back for Aᵀ M A: at resnet20's
 * 16–64 channels the transforms and their traffic cost as much as the products (a third of the
 * step each, results/bench/cpu/resnet-24.md). Here one item is 16 tiles of one image, one tile per
 * vector lane:
 *   1. each input channel's 16 patches are read straight from the image rows (even and odd
 *      columns split by a permute; the ReLU mask of the backward folded in) and transformed in
 *      registers into Vb[ξ][c] (16·ci vectors, L1 / L2);
 *   2. per 16 output channels and ξ, M = U[ξ] · Vb[ξ] in 16 accumulators, one FMA per (c, o)
 *      in the order c = 0, 1, … from zero: the order OpenBLAS 0.3.21's kernels sum in (tested bit
 *      for bit against the unfused path, tests/test_ops_cpu.c conv2d_winograd_fused);
 *   3. Aᵀ M A, the epilogue (bias, shortcut, ReLU) and the stores, from those 16·16 vectors.
 * The transforms are the unfused path's formulas term for term, so a tile's outputs are the same
 * floats whichever path ran, on this machine: results and the feature cache do not change.
 *
 * Applies (cpu_wino_fused_applies) to F(2,3) with even sides whose tile rows pack into 16 lanes
 * (TW = 4, 8 or a multiple of 16, whole blocks per image: CIFAR's 32², 16², 8² maps), cout a
 * multiple of 16, on a CPU with AVX-512F; $CLPDD_WINO_FUSED = 0 turns it off (for A/B runs). */
#include "cpu/ops_cpu_winograd_int.h"
#include "cpu/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define FUSED_TARGET __attribute__((target("avx512f")))
#define FUSED_BUILT 1
#else
#define FUSED_BUILT 0
#endif

static long g_fused_runs;
long clpdd_cpu_conv_winograd_fused_runs(void) { return __atomic_load_n(&g_fused_runs, __ATOMIC_RELAXED); }

int cpu_wino_fused_applies(const wino_call *C) {
    if (!FUSED_BUILT || C->co % 16 || !cpu_avx512_kernels("CLPDD_WINO_FUSED")) return 0;
    if (C->tile == 4) return cpu_wino4_fused_applies(C);
    const int TW = C->W / 2, TH = C->H / 2;
    if (C->tile != 2 || C->W % 2 || C->H % 2 || (TH * TW) % 16) return 0;
    return TW == 4 || TW == 8 || TW % 16 == 0;
}

void cpu_wino_fused_pack(float *packed, const float *U, int nxi, int co, int ci) {
    for (int xi = 0; xi < nxi; xi++)
        for (int o = 0; o < co; o++) {
            const float *src = U + ((size_t)xi * co + o) * ci;
            float *dst = packed + ((size_t)xi * co + (o & ~15)) * ci + (o & 15);
            for (int c = 0; c < ci; c++) dst[(size_t)c * 16] = src[c];
        }
}

/* floats of scratch one thread needs: Vb (nxi ξ × ci × 16 lanes, padded) and Mb (nxi × 16 o × 16) */
size_t cpu_wino_fused_slot(const wino_call *C) {
    const size_t nxi = C->tile == 4 ? 36 : 16;
    return nxi * cpu_wino_vb_stride(C->ci) + nxi * 256;
}

#if FUSED_BUILT
/* the 16 tiles of one block: R tile rows of L = 32 / R input columns each (R = 1: tiles tx0 …
   tx0 + 15 of row ty0; R = 2, 4: whole rows ty0 … ty0 + R − 1). A row of 32 floats of a plane
   (input, mask, output, shortcut) is R segments, segment g of tile row g at plane + off[g]:
   lanes 0–15 in one vector, 16–31 in another */
typedef struct fused_block {
    int R, ty0, tx0;
    long in[4][4];      /* patch row r, tile row g: offset of x[2·(ty0 + g) + r − 1][2·tx0], −1 outside */
    long out[2][4];     /* output row parity i, tile row g: offset of y[2·(ty0 + g) + i][2·tx0] */
    int left[4], right[4]; /* R = 1, patch row r: x[·][2·tx0 − 1] and x[·][2·tx0 + 32] inside */
    __mmask16 first, last; /* lanes of a tile row's first / last tile (R > 1): no neighbour there */
} fused_block;

FUSED_TARGET static inline void fused_load(int R, const float *plane, const long off[4], __m512 *a, __m512 *b) {
    const __m512 z = _mm512_setzero_ps();
    if (R == 1) {
        *a = off[0] < 0 ? z : _mm512_loadu_ps(plane + off[0]);
        *b = off[0] < 0 ? z : _mm512_loadu_ps(plane + off[0] + 16);
    } else if (R == 2) {
        *a = off[0] < 0 ? z : _mm512_loadu_ps(plane + off[0]);
        *b = off[1] < 0 ? z : _mm512_loadu_ps(plane + off[1]);
    } else { /* R = 4: 8 floats per tile row; a masked-off lane reads nothing */
        __m512 x = off[0] < 0 ? z : _mm512_maskz_loadu_ps(0x00FF, plane + off[0]);
        __m512 y = off[2] < 0 ? z : _mm512_maskz_loadu_ps(0x00FF, plane + off[2]);
        if (off[1] >= 0) x = _mm512_mask_loadu_ps(x, 0xFF00, plane + off[1] - 8);
        if (off[3] >= 0) y = _mm512_mask_loadu_ps(y, 0xFF00, plane + off[3] - 8);
        *a = x, *b = y;
    }
}

FUSED_TARGET static inline void fused_store(int R, float *plane, const long off[4], __m512 a, __m512 b) {
    if (R == 1) {
        _mm512_storeu_ps(plane + off[0], a), _mm512_storeu_ps(plane + off[0] + 16, b);
    } else if (R == 2) {
        _mm512_storeu_ps(plane + off[0], a), _mm512_storeu_ps(plane + off[1], b);
    } else {
        _mm512_mask_storeu_ps(plane + off[0], 0x00FF, a), _mm512_mask_storeu_ps(plane + off[1] - 8, 0xFF00, a);
        _mm512_mask_storeu_ps(plane + off[2], 0x00FF, b), _mm512_mask_storeu_ps(plane + off[3] - 8, 0xFF00, b);
    }
}

/* one patch row r of the 16 tiles: d[c] = x[iy][2·tx + c − 1], c = 0 … 3, mask > 0 applied */
FUSED_TARGET static inline void fused_patch_row(const fused_block *B, const float *src, const float *msk, int r,
                                                __m512 d[4]) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0); /* lane k ← k − 1 */
    const __m512i up = _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);  /* lane k ← k + 1 */
    __m512 a, b;
    fused_load(B->R, src, B->in[r], &a, &b);
    if (msk) { /* x = mask > 0 ? dy : 0, as the unfused path (NaN masks give 0) */
        __m512 ma, mb;
        fused_load(B->R, msk, B->in[r], &ma, &mb);
        a = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(ma, _mm512_setzero_ps(), _CMP_GT_OQ), a);
        b = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mb, _mm512_setzero_ps(), _CMP_GT_OQ), b);
    }
    const __m512 e = _mm512_permutex2var_ps(a, even, b), o = _mm512_permutex2var_ps(a, odd, b);
    d[1] = e, d[2] = o;
    if (B->R == 1) { /* the neighbours across the block's edges: x[iy][2·tx0 − 1], x[iy][2·tx0 + 32] */
        const long p = B->in[r][0];
        float left = 0.0f, right = 0.0f;
        if (B->left[r]) left = msk && !(msk[p - 1] > 0.0f) ? 0.0f : src[p - 1];
        if (B->right[r]) right = msk && !(msk[p + 32] > 0.0f) ? 0.0f : src[p + 32];
        d[0] = _mm512_mask_permutexvar_ps(_mm512_set1_ps(left), (__mmask16)0xFFFE, down, o);
        d[3] = _mm512_mask_permutexvar_ps(_mm512_set1_ps(right), (__mmask16)0x7FFF, up, e);
    } else {
        d[0] = _mm512_maskz_permutexvar_ps((__mmask16)~B->first, down, o);
        d[3] = _mm512_maskz_permutexvar_ps((__mmask16)~B->last, up, e);
    }
}

/* step 1: Vb[ξ][c] (16 lanes) for every input channel c; the formulas of wino_in_tiles */
FUSED_TARGET static void fused_input(const fused_block *B, const wino_call *C, int img, float *Vb) {
    const size_t HW = (size_t)C->H * C->W;
    const int ci = C->ci;
    for (int c = 0; c < ci; c++) {
        const size_t plane = ((size_t)img * ci + c) * HW;
        const float *src = C->in + plane, *msk = C->mask ? C->mask + plane : NULL;
        __m512 A[4], Bq[4], Cq[4], D[4];
        fused_patch_row(B, src, msk, 0, A);
        fused_patch_row(B, src, msk, 1, Bq);
        fused_patch_row(B, src, msk, 2, Cq);
        fused_patch_row(B, src, msk, 3, D);
        __m512 t[4][4];
        for (int j = 0; j < 4; j++) {
            t[0][j] = _mm512_sub_ps(A[j], Cq[j]), t[1][j] = _mm512_add_ps(Bq[j], Cq[j]);
            t[2][j] = _mm512_sub_ps(Cq[j], Bq[j]), t[3][j] = _mm512_sub_ps(Bq[j], D[j]);
        }
        float *v = Vb + (size_t)c * 16;
        const size_t xs = cpu_wino_vb_stride(ci);
        for (int i = 0; i < 4; i++) {
            _mm512_storeu_ps(v + (4 * i + 0) * xs, _mm512_sub_ps(t[i][0], t[i][2]));
            _mm512_storeu_ps(v + (4 * i + 1) * xs, _mm512_add_ps(t[i][1], t[i][2]));
            _mm512_storeu_ps(v + (4 * i + 2) * xs, _mm512_sub_ps(t[i][2], t[i][1]));
            _mm512_storeu_ps(v + (4 * i + 3) * xs, _mm512_sub_ps(t[i][1], t[i][3]));
        }
    }
}

/* step 2: Mb[ξ][k] = Σ_c U[ξ][o0 + k][c] · Vb[ξ][c], k < 16, one FMA per c in order from zero;
   U as cpu_wino_fused_pack lays it out, the 16 broadcasts of one c in one cache line */
FUSED_TARGET void cpu_wino_fused_products(const wino_call *C, int o0, const float *Vb, float *Mb) {
    const int ci = C->ci, co = C->co, nxi = C->tile == 4 ? 36 : 16;
    for (int xi = 0; xi < nxi; xi++) {
        const float *u = C->U + ((size_t)xi * co + o0) * ci, *v = Vb + xi * cpu_wino_vb_stride(ci);
        __m512 acc[16];
        for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
        for (int c = 0; c < ci; c++) {
            const __m512 vc = _mm512_loadu_ps(v + (size_t)c * 16);
            const float *uc = u + (size_t)c * 16;
            for (int k = 0; k < 16; k++) acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(uc[k]), vc, acc[k]);
        }
        for (int k = 0; k < 16; k++) _mm512_storeu_ps(Mb + ((size_t)xi * 16 + k) * 16, acc[k]);
    }
}

/* the shortcut of row parity i's 32 outputs read out at its stride (option A, after a stride-2
   block: 2 of resnet20's 16 forward convolutions), into t as the outputs lie */
__attribute__((noinline)) static void fused_residual_strided(const fused_block *B, const float *rc,
                                                             const clpdd_conv2d_desc *d, int i, float *t) {
    const int rs = d->res_stride, L = 32 / B->R;
    for (int g = 0; g < B->R; g++) {
        const float *rr = rc + (size_t)(2 * (B->ty0 + g) + i) * rs * d->res_W;
        for (int x = 0; x < L; x++) t[g * L + x] = rr[(size_t)(2 * B->tx0 + x) * rs];
    }
}

/* step 3: Aᵀ M A per output channel o0 + k (wino_out_tiles' formulas), then wino_out_range's
   epilogue, (t + bias) + shortcut, ReLU, and the stores */
FUSED_TARGET static void fused_output(const fused_block *B, const wino_call *C, int img, int o0, const float *Mb) {
    const clpdd_conv2d_desc *d = C->d;
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const int relu = d->relu && !C->bwd;
    const size_t HW = (size_t)C->H * C->W;
    for (int k = 0; k < 16; k++) {
        const int o = o0 + k;
        __m512 m[16];
        for (int xi = 0; xi < 16; xi++) m[xi] = _mm512_loadu_ps(Mb + ((size_t)xi * 16 + k) * 16);
        __m512 s[2][4];
        for (int j = 0; j < 4; j++) {
            s[0][j] = _mm512_add_ps(_mm512_add_ps(m[j], m[4 + j]), m[8 + j]);
            s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
        }
        const __m512 bias = _mm512_set1_ps(C->bias ? C->bias[o] : 0.0f);
        const float *rc = wino_shortcut(C, img, o);
        float *y = C->out + ((size_t)img * C->co + o) * HW;
        __m512 v[2][2]; /* row parity i: outputs 0–15, 16–31 */
        for (int i = 0; i < 2; i++) {
            const __m512 O0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]);
            const __m512 O1 = _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]);
            v[i][0] = _mm512_add_ps(_mm512_permutex2var_ps(O0, lo, O1), bias);
            v[i][1] = _mm512_add_ps(_mm512_permutex2var_ps(O0, hi, O1), bias);
        }
        for (int i = 0; i < 2; i++) {
            __m512 a = v[i][0], b = v[i][1];
            if (rc && d->res_stride == 1) {
                __m512 ra, rb;
                fused_load(B->R, rc, B->out[i], &ra, &rb);
                a = _mm512_add_ps(a, ra), b = _mm512_add_ps(b, rb);
            } else if (rc) {
                float t[32];
                fused_residual_strided(B, rc, d, i, t);
                a = _mm512_add_ps(a, _mm512_loadu_ps(t)), b = _mm512_add_ps(b, _mm512_loadu_ps(t + 16));
            }
            if (relu) a = _mm512_max_ps(a, _mm512_setzero_ps()), b = _mm512_max_ps(b, _mm512_setzero_ps());
            fused_store(B->R, y, B->out[i], a, b);
        }
    }
}

/* the offsets of block (ty0, tx0)'s rows */
static void fused_geometry(fused_block *B, const wino_call *C, int ty0, int tx0) {
    const int H = C->H, W = C->W;
    B->ty0 = ty0, B->tx0 = tx0;
    for (int g = 0; g < 4; g++) {
        for (int r = 0; r < 4; r++) {
            const int iy = 2 * (ty0 + g) + r - 1;
            B->in[r][g] = g < B->R && iy >= 0 && iy < H ? (long)iy * W + 2 * tx0 : -1;
        }
        for (int i = 0; i < 2; i++) B->out[i][g] = g < B->R ? (long)(2 * (ty0 + g) + i) * W + 2 * tx0 : 0;
    }
    for (int r = 0; r < 4; r++) {
        B->left[r] = B->R == 1 && B->in[r][0] >= 0 && tx0 > 0;
        B->right[r] = B->R == 1 && B->in[r][0] >= 0 && 2 * tx0 + 32 < W;
    }
}

/* the rows block B of image img reads and writes, into L2, one block ahead: with a batch the
   planes come from L3 or memory, 16–64 of them at a 4 KiB stride, a pattern the hardware
   prefetchers did not follow (stage 1 ran at half its in-cache rate without this) */
static void fused_prefetch(const fused_block *B, const wino_call *C, int img) {
    const size_t HW = (size_t)C->H * C->W;
    const int lines = B->R == 1 ? 2 : 1; /* 32 floats per row of a tile row when R = 1, else ≤ 16 */
    for (int c = 0; c < C->ci; c++) {
        const size_t plane = ((size_t)img * C->ci + c) * HW;
        for (int r = 0; r < 4; r++)
            for (int g = 0; g < B->R; g++)
                for (int l = 0; l < lines && B->in[r][g] >= 0; l++) {
                    __builtin_prefetch(C->in + plane + B->in[r][g] + 16 * l, 0, 2);
                    if (C->mask) __builtin_prefetch(C->mask + plane + B->in[r][g] + 16 * l, 0, 2);
                }
    }
    for (int o = 0; o < C->co; o++) {
        const size_t plane = ((size_t)img * C->co + o) * HW;
        for (int i = 0; i < 2; i++)
            for (int g = 0; g < B->R; g++)
                for (int l = 0; l < lines; l++) __builtin_prefetch(C->out + plane + B->out[i][g] + 16 * l, 1, 2);
    }
}

FUSED_TARGET static void fused_range(void *ctx, int begin, int end, int tid) {
    const wino_fused_job *J = ctx;
    const wino_call *C = J->C;
    const int TW = C->W / 2, R = TW >= 16 ? 1 : 16 / TW;
    float *Vb = J->scratch + (size_t)tid * J->slot, *Mb = Vb + 16 * cpu_wino_vb_stride(C->ci);
    fused_block B = {.R = R};
    for (int g = 0; R > 1 && g < R; g++)
        B.first |= (__mmask16)(1u << (g * TW)), B.last |= (__mmask16)(1u << (g * TW + TW - 1));
    fused_block Bn = B;
    if (begin < end) fused_geometry(&B, C, (begin % J->blocks) * 16 / TW, R == 1 ? (begin % J->blocks) * 16 % TW : 0);
    for (int it = begin; it < end; it++) {
        const int img = it / J->blocks;
        if (it + 1 < end) { /* the next block's geometry, and its rows on their way to L2 */
            const int q1 = ((it + 1) % J->blocks) * 16;
            fused_geometry(&Bn, C, q1 / TW, R == 1 ? q1 % TW : 0);
            fused_prefetch(&Bn, C, (it + 1) / J->blocks);
        }
        fused_input(&B, C, img, Vb);
        for (int o0 = 0; o0 < C->co; o0 += 16) {
            cpu_wino_fused_products(C, o0, Vb, Mb);
            fused_output(&B, C, img, o0, Mb);
        }
        B = Bn;
    }
}

void cpu_wino_fused_run(const wino_call *C, float *scratch, int slots) {
    if (C->tile == 4) {
        cpu_wino4_fused_run(C, scratch, slots);
    } else {
        wino_fused_job J = {C, scratch, cpu_wino_fused_slot(C), (C->H / 2) * (C->W / 2) / 16};
        const int items = C->d->n * J.blocks;
        if (slots > 1)
            cpu_parallel_for_tid(items, 0, fused_range, &J);
        else
            fused_range(&J, 0, items, 0);
    }
    __atomic_add_fetch(&g_fused_runs, 1, __ATOMIC_RELAXED);
}
#else
void cpu_wino_fused_run(const wino_call *C, float *scratch, int slots) {
    (void)C, (void)scratch, (void)slots;
}
void cpu_wino_fused_products(const wino_call *C, int o0, const float *Vb, float *Mb) {
    (void)C, (void)o0, (void)Vb, (void)Mb;
}
#endif
