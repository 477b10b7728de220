/* CPU backend: image layout ops (patchify, im2col) and pooling / resampling. All backward
 * ops are exact adjoints of their forward and write (=). Threads split over images or
 * (image, channel) planes, so scatters in the backward passes never race. */
#include "cpu/ops_cpu.h"

#include <math.h>
#include <string.h>

/* x (n, C, H, W) → y (n, G, C·p·p), G = (H/p)·(W/p) grid cells in row-major order,
   y[b, gy·GW + gx, (c·p + py)·p + px] = x[b, c, gy·p + py, gx·p + px] */
void cpu_patchify(float *y, const float *x, int n, int C, int H, int W, int p) {
    CLPDD_ASSERT(p > 0 && H % p == 0 && W % p == 0);
    int GH = H / p, GW = W / p, P = C * p * p;
    CLPDD_OMP(omp parallel for collapse(2) if ((size_t)n * C * H * W > CLPDD_CPU_PAR_MIN))
    for (int b = 0; b < n; b++)
        for (int gy = 0; gy < GH; gy++)
            for (int gx = 0; gx < GW; gx++) {
                float *yp = y + ((size_t)b * GH * GW + (size_t)gy * GW + gx) * P;
                for (int c = 0; c < C; c++)
                    for (int py = 0; py < p; py++)
                        memcpy(yp + (c * p + py) * p,
                               x + (((size_t)b * C + c) * H + gy * p + py) * W + (size_t)gx * p,
                               (size_t)p * sizeof(float));
            }
}

/* dy (n, G, C·p·p) → dx (n, C, H, W): patchify is a permutation, so its adjoint is its inverse */
void cpu_unpatchify(float *dx, const float *dy, int n, int C, int H, int W, int p) {
    CLPDD_ASSERT(p > 0 && H % p == 0 && W % p == 0);
    int GH = H / p, GW = W / p, P = C * p * p;
    CLPDD_OMP(omp parallel for collapse(2) if ((size_t)n * C * H * W > CLPDD_CPU_PAR_MIN))
    for (int b = 0; b < n; b++)
        for (int gy = 0; gy < GH; gy++)
            for (int gx = 0; gx < GW; gx++) {
                const float *yp = dy + ((size_t)b * GH * GW + (size_t)gy * GW + gx) * P;
                for (int c = 0; c < C; c++)
                    for (int py = 0; py < p; py++)
                        memcpy(dx + (((size_t)b * C + c) * H + gy * p + py) * W + (size_t)gx * p,
                               yp + (c * p + py) * p, (size_t)p * sizeof(float));
            }
}

/* x (C, H, W) → col (C·kh·kw, OH·OW):
   col[(c·kh + i)·kw + j, oy·OW + ox] = x[c, oy·stride − pad + i, ox·stride − pad + j], 0 outside */
void cpu_im2col(float *col, const float *x, int C, int H, int W, int kh, int kw, int stride, int pad, int OH,
                int OW) {
    CLPDD_ASSERT(stride > 0);
    size_t L = (size_t)OH * OW;
    CLPDD_OMP(omp parallel for collapse(2) if ((size_t)C * kh * kw * L > CLPDD_CPU_PAR_MIN))
    for (int c = 0; c < C; c++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                float *cr = col + ((size_t)(c * kh + i) * kw + j) * L;
                const float *xc = x + (size_t)c * H * W;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * stride - pad + i;
                    float *co = cr + (size_t)oy * OW;
                    if (iy < 0 || iy >= H) {
                        for (int ox = 0; ox < OW; ox++) co[ox] = 0.0f;
                        continue;
                    }
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * stride - pad + j;
                        co[ox] = (ix >= 0 && ix < W) ? xc[(size_t)iy * W + ix] : 0.0f;
                    }
                }
            }
}

/* adjoint of im2col: dx (C, H, W) = Σ of the col entries that read each pixel */
void cpu_col2im(float *dx, const float *col, int C, int H, int W, int kh, int kw, int stride, int pad, int OH,
                int OW) {
    CLPDD_ASSERT(stride > 0);
    size_t L = (size_t)OH * OW;
    CLPDD_OMP(omp parallel for if ((size_t)C * kh * kw * L > CLPDD_CPU_PAR_MIN))
    for (int c = 0; c < C; c++) {
        float *xc = dx + (size_t)c * H * W;
        for (size_t i = 0; i < (size_t)H * W; i++) xc[i] = 0.0f;
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                const float *cr = col + ((size_t)(c * kh + i) * kw + j) * L;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * stride - pad + i;
                    if (iy < 0 || iy >= H) continue;
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * stride - pad + j;
                        if (ix >= 0 && ix < W) xc[(size_t)iy * W + ix] += cr[(size_t)oy * OW + ox];
                    }
                }
            }
    }
}

/* x (n, C, HW) → y (n, C) */
void cpu_global_avgpool(float *y, const float *x, int n, int C, int HW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * HW > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += x[q * HW + i];
        y[q] = HW > 0 ? (float)(s / HW) : 0.0f;
    }
}

void cpu_global_avgpool_backward(float *dx, const float *dy, int n, int C, int HW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * HW > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        float g = dy[q] / (float)HW;
        for (int i = 0; i < HW; i++) dx[q * HW + i] = g;
    }
}

/* x (n, C, H, W) → y, argmax (n, C, OH, OW). argmax holds iy·W + ix, the position inside the
   (H, W) plane (PyTorch's convention); the first maximum in row-major window order wins and a
   NaN propagates (as in PyTorch). A window lying wholly in the padding gives −∞ and argmax −1. */
void cpu_maxpool(float *y, int32_t *argmax, const float *x, int n, int C, int H, int W, int k, int s, int pad,
                 int OH, int OW) {
    CLPDD_ASSERT(k > 0 && s > 0);
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * OH * OW * k * k > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        const float *xq = x + q * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = -INFINITY;
                int32_t bi = -1;
                for (int i = 0; i < k; i++) {
                    int iy = oy * s - pad + i;
                    if (iy < 0 || iy >= H) continue;
                    for (int j = 0; j < k; j++) {
                        int ix = ox * s - pad + j;
                        if (ix < 0 || ix >= W) continue;
                        float v = xq[(size_t)iy * W + ix];
                        if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                            best = v;
                            bi = iy * W + ix;
                        }
                    }
                }
                size_t o = q * OH * OW + (size_t)oy * OW + ox;
                y[o] = best;
                argmax[o] = bi;
            }
    }
}

/* dx (n, C, H, W) = scatter of dy (n, C, OH, OW) to the saved argmax positions */
void cpu_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int n, int C, int H, int W, int OH,
                          int OW) {
    size_t planes = (size_t)n * C, HWs = (size_t)H * W, L = (size_t)OH * OW;
    CLPDD_OMP(omp parallel for if (planes * (HWs + L) > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        float *dq = dx + q * HWs;
        for (size_t i = 0; i < HWs; i++) dq[i] = 0.0f;
        for (size_t o = 0; o < L; o++) {
            int32_t a = argmax[q * L + o];
            if (a >= 0) dq[a] += dy[q * L + o];
        }
    }
}

/* PyTorch bilinear source coordinate (align_corners = False): src = (dst + 0.5)·in/out − 0.5,
   clamped at 0 below; i0 = ⌊src⌋, i1 = min(i0 + 1, in − 1), weights (1 − λ, λ), λ = src − i0 */
typedef struct {
    int i0, i1;
    float l0, l1;
} bilin_tap;

static bilin_tap bilin_src(int dst, int in, int out) {
    float sc = (float)in / (float)out;
    float src = ((float)dst + 0.5f) * sc - 0.5f;
    if (src < 0.0f) src = 0.0f;
    bilin_tap t;
    t.i0 = (int)src;
    if (t.i0 > in - 1) t.i0 = in - 1;
    t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
    t.l1 = src - (float)t.i0;
    t.l0 = 1.0f - t.l1;
    return t;
}

/* x (n, C, H, W) → y (n, C, OH, OW) */
void cpu_resize_bilinear(float *y, const float *x, int n, int C, int H, int W, int OH, int OW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * OH * OW > CLPDD_CPU_PAR_MIN / 4))
    for (size_t q = 0; q < planes; q++) {
        const float *xq = x + q * H * W;
        float *yq = y + q * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            bilin_tap ty = bilin_src(oy, H, OH);
            const float *r0 = xq + (size_t)ty.i0 * W, *r1 = xq + (size_t)ty.i1 * W;
            for (int ox = 0; ox < OW; ox++) {
                bilin_tap tx = bilin_src(ox, W, OW);
                yq[(size_t)oy * OW + ox] = ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) +
                                           ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
            }
        }
    }
}

/* the exact adjoint: dx (n, C, H, W) = Σ over outputs of weight·dy */
void cpu_resize_bilinear_backward(float *dx, const float *dy, int n, int C, int H, int W, int OH, int OW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * OH * OW > CLPDD_CPU_PAR_MIN / 4))
    for (size_t q = 0; q < planes; q++) {
        float *dq = dx + q * H * W;
        const float *gq = dy + q * OH * OW;
        for (size_t i = 0; i < (size_t)H * W; i++) dq[i] = 0.0f;
        for (int oy = 0; oy < OH; oy++) {
            bilin_tap ty = bilin_src(oy, H, OH);
            float *r0 = dq + (size_t)ty.i0 * W, *r1 = dq + (size_t)ty.i1 * W;
            for (int ox = 0; ox < OW; ox++) {
                bilin_tap tx = bilin_src(ox, W, OW);
                float g = gq[(size_t)oy * OW + ox];
                r0[tx.i0] += ty.l0 * tx.l0 * g;
                r0[tx.i1] += ty.l0 * tx.l1 * g;
                r1[tx.i0] += ty.l1 * tx.l0 * g;
                r1[tx.i1] += ty.l1 * tx.l1 * g;
            }
        }
    }
}
