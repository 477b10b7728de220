/* CPU backend: the forward of the 3×3, pad-1 convolutions that Winograd does not take (resnet's
 * 3-channel stem, its stride-2 downsampling convolutions) as a direct kernel on AVX-512, in place
 * of im2col + GEMM (ops_cpu_conv.c).
 *
 * One item is 16 output pixels of one image (a vector lane each: half or all of an output row, or
 * two rows of 8) for every output channel, 16 at a time in 16 accumulators:
 *   t[o][p] = Σ over (c, ky, kx) in that order of w[o][c][ky][kx] · x[c][s·oy + ky − 1][s·ox + kx − 1]
 * one FMA per term from zero: the order of im2col's rows (k = 9c + 3ky + kx), in which OpenBLAS
 * 0.3.21 sums each product of the GEMM path (K ≤ 288 here, one K block), so the outputs are the
 * GEMM path's floats bit for bit (tests/test_ops_cpu.c conv2d_direct). The input vectors come
 * straight from the image rows: for stride 2 the even and odd columns by a permute, x[2·ox − 1]
 * by shifting the odd ones a lane; for stride 1 by (masked) unaligned loads. The epilogue is
 * epilogue_range's, (t + bias), ReLU; a shortcut (never on these convolutions in resnet) goes the
 * GEMM path. The weights are packed per call into work, [o / 16][c][tap][o % 16]. */
#include "cpu/ops_cpu_conv_direct.h"
#include "cpu/threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define DIRECT_TARGET __attribute__((target("avx512f")))
#define DIRECT_BUILT 1
#else
#define DIRECT_BUILT 0
#endif

static long g_direct_runs;
long clpdd_cpu_conv_direct_runs(void) { return __atomic_load_n(&g_direct_runs, __ATOMIC_RELAXED); }

/* 16 output pixels per block: R = 1 (16 of one row, OW a multiple of 16) or 2 (two rows of 8) */
static int direct_rows(const clpdd_conv2d_desc *d) { return d->OW % 16 == 0 ? 1 : d->OW == 8 ? 2 : 0; }

int cpu_conv_direct_applies(const clpdd_conv2d_desc *d, const float *res, size_t work_floats) {
    if (!DIRECT_BUILT || res || d->k != 3 || d->pad != 1 || d->cout % 16) return 0;
    if ((size_t)d->cout * d->cin * 9 > work_floats) return 0;
    const int R = direct_rows(d);
    if (d->stride == 1 && !(d->OH == d->H && d->OW == d->W && R == 1)) return 0;
    if (d->stride == 2 && !(d->H == 2 * d->OH && d->W == 2 * d->OW && R && (d->OH * d->OW) % 16 == 0)) return 0;
    return (d->stride == 1 || d->stride == 2) && cpu_avx512_kernels("CLPDD_CONV_DIRECT");
}

int cpu_conv_direct_backward_applies(const clpdd_conv2d_desc *d) {
    if (!DIRECT_BUILT || d->k != 3 || d->pad != 1 || d->stride != 1) return 0;
    if (d->cin > 4 || d->OH != d->H || d->OW != d->W || (d->W != 16 && d->W != 32) || d->H % 2) return 0;
    return cpu_avx512_kernels("CLPDD_CONV_DIRECT");
}

#if DIRECT_BUILT
typedef struct direct_job {
    const clpdd_conv2d_desc *d;
    float *y;
    const float *x, *wp, *bias;
    int R, blocks; /* blocks per image */
} direct_job;

/* the three input vectors (kx = 0, 1, 2) of input row dy = ky − 1 below the block's output rows */
DIRECT_TARGET static inline void direct_taps(const direct_job *J, const float *xc, int oy0, int ox0, int ky,
                                             __m512 v[3]) {
    const clpdd_conv2d_desc *d = J->d;
    const __m512 z = _mm512_setzero_ps();
    const int W = d->W;
    if (d->stride == 1) { /* x[oy + ky − 1][ox + kx − 1], zero outside */
        const int iy = oy0 + ky - 1;
        if (iy < 0 || iy >= d->H) {
            v[0] = v[1] = v[2] = z;
            return;
        }
        const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
        const __m512i up = _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
        const float *row = xc + (size_t)iy * W + ox0;
        v[1] = _mm512_loadu_ps(row); /* at the row's ends the neighbours come by a lane shift: no read outside */
        v[0] = ox0 == 0 ? _mm512_maskz_permutexvar_ps(0xFFFE, down, v[1]) : _mm512_loadu_ps(row - 1);
        v[2] = ox0 + 16 == W ? _mm512_maskz_permutexvar_ps(0x7FFF, up, v[1]) : _mm512_loadu_ps(row + 1);
        return;
    }
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    __m512 a = z, b = z;
    float left = 0.0f; /* x[iy][2·ox0 − 1] (R = 1) */
    if (J->R == 1) {   /* 32 columns from 2·ox0 of row 2·oy0 + ky − 1 */
        const int iy = 2 * oy0 + ky - 1;
        if (iy >= 0 && iy < d->H) {
            const float *row = xc + (size_t)iy * W + 2 * ox0;
            a = _mm512_loadu_ps(row), b = _mm512_loadu_ps(row + 16);
            if (ox0 > 0) left = row[-1];
        }
    } else { /* rows 2·oy0 + ky − 1 and 2·(oy0 + 1) + ky − 1, 16 columns each */
        const int iy = 2 * oy0 + ky - 1;
        if (iy >= 0 && iy < d->H) a = _mm512_loadu_ps(xc + (size_t)iy * W);
        if (iy + 2 >= 0 && iy + 2 < d->H) b = _mm512_loadu_ps(xc + (size_t)(iy + 2) * W);
    }
    const __m512 e = _mm512_permutex2var_ps(a, even, b), o = _mm512_permutex2var_ps(a, odd, b);
    v[1] = e, v[2] = o;
    v[0] = J->R == 1 ? _mm512_mask_permutexvar_ps(_mm512_set1_ps(left), 0xFFFE, down, o)
                     : _mm512_maskz_permutexvar_ps((__mmask16)0xFEFE, down, o);
}

DIRECT_TARGET static void direct_block(const direct_job *J, int img, int oy0, int ox0) {
    const clpdd_conv2d_desc *d = J->d;
    const int ci = d->cin, P = d->OH * d->OW;
    const float *x = J->x + (size_t)img * ci * d->H * d->W;
    for (int o0 = 0; o0 < d->cout; o0 += 16) {
        __m512 acc[16];
        for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();
        const float *wp = J->wp + (size_t)o0 * ci * 9;
        for (int c = 0; c < ci; c++) {
            const float *xc = x + (size_t)c * d->H * d->W;
            for (int ky = 0; ky < 3; ky++) {
                __m512 v[3];
                direct_taps(J, xc, oy0, ox0, ky, v);
                for (int kx = 0; kx < 3; kx++) {
                    const float *wt = wp + ((size_t)c * 9 + 3 * ky + kx) * 16;
                    for (int k = 0; k < 16; k++) acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(wt[k]), v[kx], acc[k]);
                }
            }
        }
        for (int k = 0; k < 16; k++) { /* (t + bias), ReLU: epilogue_range's order */
            const int o = o0 + k;
            __m512 t = _mm512_add_ps(acc[k], _mm512_set1_ps(J->bias ? J->bias[o] : 0.0f));
            if (d->relu) t = _mm512_max_ps(t, _mm512_setzero_ps());
            float *yo = J->y + ((size_t)img * d->cout + o) * P + (size_t)oy0 * d->OW + ox0;
            if (J->R == 1) {
                _mm512_storeu_ps(yo, t);
            } else {
                _mm512_mask_storeu_ps(yo, 0x00FF, t);
                _mm512_mask_storeu_ps(yo + d->OW - 8, 0xFF00, t);
            }
        }
    }
}

static void direct_range(void *ctx, int begin, int end) {
    const direct_job *J = ctx;
    const int per_row = J->d->OW / 16;
    for (int it = begin; it < end; it++) {
        const int img = it / J->blocks, b = it % J->blocks;
        if (J->R == 1)
            direct_block(J, img, b / per_row, (b % per_row) * 16);
        else
            direct_block(J, img, 2 * b, 0);
    }
}

/* ---- the backward of a stride-1 convolution into ≤ 4 channels (resnet's stem: the image gradient) ----
 * ops_cpu_conv.c computes it in its transposed form, dx = conv(dy ⊙ [mask > 0], wt) with
 * wt[c][o][t] = w[o][c][8 − t] and pad 1, by im2col of the masked dy (cout·9 rows) and a GEMM of
 * 3 rows: dx[c][p] = Σ over k = 9·o + t in order of wt[c][k] · col[k][p], zeros at the borders
 * included. Here the same FMAs in the same order, 16 pixels a lane each, 2 rows × W / 16 blocks
 * × cin channels of accumulators; the masked dy read straight from its rows. */
typedef struct direct_bwd_job {
    const clpdd_conv2d_desc *d;
    float *dx;
    const float *dy, *mask, *w;
} direct_bwd_job;

/* md[o][iy][ix0 + t − 1 + lane], t = 0, 1, 2 (zero outside the map), mask > 0 applied */
DIRECT_TARGET static inline void direct_bwd_row(const float *dyo, const float *mo, int iy, int H, int W, int ix0,
                                                __m512 v[3]) {
    const __m512 z = _mm512_setzero_ps();
    if (iy < 0 || iy >= H) {
        v[0] = v[1] = v[2] = z;
        return;
    }
    const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    const __m512i up = _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    const size_t at = (size_t)iy * W + ix0;
    for (int t = 0; t < 3; t++) { /* at the row's ends the neighbours come by a lane shift: no read outside */
        const int edge = (t == 0 && ix0 == 0) || (t == 2 && ix0 + 16 == W);
        const float *p = dyo + at + (edge ? 0 : t - 1), *q = mo ? mo + at + (edge ? 0 : t - 1) : NULL;
        __m512 x = _mm512_loadu_ps(p);
        if (q) x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(q), z, _CMP_GT_OQ), x);
        if (edge) x = t == 0 ? _mm512_maskz_permutexvar_ps(0xFFFE, down, x) : _mm512_maskz_permutexvar_ps(0x7FFF, up, x);
        v[t] = x;
    }
}

/* rows iy0, iy0 + 1 of dx for every channel, image img; W = 32 (two blocks of 16) or 16 */
DIRECT_TARGET static void direct_bwd_rows(const direct_bwd_job *J, int img, int iy0) {
    const clpdd_conv2d_desc *d = J->d;
    const int ci = d->cin, co = d->cout, H = d->H, W = d->W, nb = W / 16;
    __m512 acc[4][2][2]; /* channel, row, block */
    for (int c = 0; c < ci; c++)
        for (int r = 0; r < 2; r++)
            for (int b = 0; b < nb; b++) acc[c][r][b] = _mm512_setzero_ps();
    const size_t HW = (size_t)H * W;
    for (int o = 0; o < co; o++) {
        const float *dyo = J->dy + ((size_t)img * co + o) * HW, *mo = J->mask ? J->mask + ((size_t)img * co + o) * HW : NULL;
        for (int ky = 0; ky < 3; ky++) {
            __m512 v[2][2][3];
            for (int r = 0; r < 2; r++)
                for (int b = 0; b < nb; b++) direct_bwd_row(dyo, mo, iy0 + r + ky - 1, H, W, 16 * b, v[r][b]);
            for (int c = 0; c < ci; c++) {
                const float *wc = J->w + ((size_t)o * ci + c) * 9;
                for (int kx = 0; kx < 3; kx++) {
                    const __m512 wt = _mm512_set1_ps(wc[8 - (3 * ky + kx)]);
                    for (int r = 0; r < 2; r++)
                        for (int b = 0; b < nb; b++) acc[c][r][b] = _mm512_fmadd_ps(wt, v[r][b][kx], acc[c][r][b]);
                }
            }
        }
    }
    for (int c = 0; c < ci; c++)
        for (int r = 0; r < 2; r++)
            for (int b = 0; b < nb; b++)
                _mm512_storeu_ps(J->dx + ((size_t)img * ci + c) * HW + (size_t)(iy0 + r) * W + 16 * b, acc[c][r][b]);
}

static void direct_bwd_range(void *ctx, int begin, int end) {
    const direct_bwd_job *J = ctx;
    const int pairs = J->d->H / 2;
    for (int it = begin; it < end; it++) direct_bwd_rows(J, it / pairs, 2 * (it % pairs));
}

void cpu_conv_direct_backward(float *dx, const float *dy, const float *mask, const float *w,
                              const clpdd_conv2d_desc *d) {
    direct_bwd_job J = {d, dx, dy, mask, w};
    const int items = d->n * (d->H / 2);
    if ((size_t)d->n * (d->cin + 2 * d->cout) * d->H * d->W > CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(items, direct_bwd_range, &J);
    else
        direct_bwd_range(&J, 0, items);
    __atomic_add_fetch(&g_direct_runs, 1, __ATOMIC_RELAXED);
}

void cpu_conv_direct(float *y, float *work, const float *x, const float *w, const float *bias,
                     const clpdd_conv2d_desc *d) {
    const int ci = d->cin;
    for (int o = 0; o < d->cout; o++) /* [o / 16][c][tap][o % 16] */
        for (int c = 0; c < ci; c++)
            for (int t = 0; t < 9; t++)
                work[(((size_t)(o / 16) * ci + c) * 9 + t) * 16 + o % 16] = w[((size_t)o * ci + c) * 9 + t];
    direct_job J = {d, y, x, work, bias, direct_rows(d), d->OH * d->OW / 16};
    const int items = d->n * J.blocks;
    if ((size_t)d->n * (d->cin * d->H * d->W + d->cout * d->OH * d->OW) > CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(items, direct_range, &J);
    else
        direct_range(&J, 0, items);
    __atomic_add_fetch(&g_direct_runs, 1, __ATOMIC_RELAXED);
}
#else
void cpu_conv_direct(float *y, float *work, const float *x, const float *w, const float *bias,
                     const clpdd_conv2d_desc *d) {
    (void)y, (void)work, (void)x, (void)w, (void)bias, (void)d;
}
void cpu_conv_direct_backward(float *dx, const float *dy, const float *mask, const float *w,
                              const clpdd_conv2d_desc *d) {
    (void)dx, (void)dy, (void)mask, (void)w, (void)d;
}
#endif
