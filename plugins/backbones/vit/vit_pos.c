/* vit: a checkpoint's position table brought to the run's grid, the three ways the reference
 * implementations do it (vit_resample in vit.h; docs/encoders.md compares them).
 *
 * Grids are row-major (y, x) of D-wide rows: src (G0, G0, D), dst (G, G, D). Each mode is
 * PyTorch's F.interpolate on the (1, D, G0, G0) tensor, align_corners = False:
 *   plain, hub  upsample_bicubic2d: source coordinate s·(o + ½) − ½ with s the float step,
 *               4 taps of the cubic convolution kernel (a = −0.75) clamped to the border;
 *               plain's step is G0/G (size given), hub's 1/scale_factor (scale_factor given)
 *   timm        upsample_bicubic2d_aa: a separable filter, first along x then along y, with
 *               Keys' cubic (a = −0.5) stretched by the downscale factor, the taps that fall
 *               inside the grid renormalised to sum 1 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vit.h"

/* the cubic convolution kernel's weights for the 4 taps around fractional offset t */
static void cubic_weights(double t, double wt[4]) {
    const double A = -0.75;
#define CC1(x) ((((A + 2.0) * (x)) - (A + 3.0)) * (x) * (x) + 1.0)
#define CC2(x) ((((A * (x)) - 5.0 * A) * (x) + 8.0 * A) * (x) - 4.0 * A)
    wt[0] = CC2(t + 1.0);
    wt[1] = CC1(t);
    wt[2] = CC1(1.0 - t);
    wt[3] = CC2(2.0 - t);
#undef CC1
#undef CC2
}

/* upsample_bicubic2d with step `scale` (input pixels per output pixel, a float in PyTorch;
   the coordinates and the sums here in double, PyTorch's in float: they agree to ~1e-6) */
static void resample_bicubic(float *dst, const float *src, int G0, int G, int D, double scale) {
    for (int oy = 0; oy < G; oy++) {
        double ry = scale * (oy + 0.5) - 0.5, fy = floor(ry), wy[4];
        cubic_weights(ry - fy, wy);
        for (int ox = 0; ox < G; ox++) {
            double rx = scale * (ox + 0.5) - 0.5, fx = floor(rx), wx[4];
            cubic_weights(rx - fx, wx);
            float *o = dst + ((size_t)oy * G + ox) * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int a = 0; a < 4; a++) {
                    int iy = (int)fy - 1 + a;
                    iy = iy < 0 ? 0 : iy >= G0 ? G0 - 1 : iy;
                    double row = 0;
                    for (int b = 0; b < 4; b++) {
                        int ix = (int)fx - 1 + b;
                        ix = ix < 0 ? 0 : ix >= G0 ? G0 - 1 : ix;
                        row += wx[b] * src[((size_t)iy * G0 + ix) * D + d];
                    }
                    acc += wy[a] * row;
                }
                o[d] = (float)acc;
            }
        }
    }
}

/* Keys' cubic kernel with a = −0.5 (PyTorch's antialiasing filter for bicubic) */
static double keys_cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

/* upsample_bicubic2d_aa's 1-D weights (G, G0), dense: output o reads inputs [xmin, xmin + xsize)
   around centre (o + ½)·s, with the kernel's support 2·max(s, 1) and its argument divided by
   max(s, 1); the taps are normalised to sum 1 (computed in float, as PyTorch does for float
   tensors) */
static void aa_weights(float *W, int G0, int G) {
    const float scale = (float)G0 / (float)G;
    const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
    const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    memset(W, 0, (size_t)G * G0 * sizeof(float));
    for (int o = 0; o < G; o++) {
        const float center = scale * ((float)o + 0.5f);
        long xmin = (long)(center - support + 0.5f), xmax = (long)(center + support + 0.5f);
        if (xmin < 0) xmin = 0;
        if (xmax > G0) xmax = G0;
        float total = 0.0f, *w = W + (size_t)o * G0;
        for (long j = xmin; j < xmax; j++) {
            w[j] = (float)keys_cubic(((float)j - center + 0.5f) * invscale);
            total += w[j];
        }
        if (total != 0.0f)
            for (long j = xmin; j < xmax; j++) w[j] /= total;
    }
}

/* upsample_bicubic2d_aa: along x into tmp (G0, G, D) (float, as PyTorch's intermediate), then
   along y */
static int resample_aa(float *dst, const float *src, int G0, int G, int D) {
    float *W = malloc((size_t)G * G0 * sizeof(float)), *tmp = malloc((size_t)G0 * G * D * sizeof(float));
    if (!W || !tmp) {
        free(W), free(tmp);
        return -2;
    }
    aa_weights(W, G0, G);
    for (int y = 0; y < G0; y++)
        for (int ox = 0; ox < G; ox++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int ix = 0; ix < G0; ix++)
                    acc += (double)W[(size_t)ox * G0 + ix] * src[((size_t)y * G0 + ix) * D + d];
                tmp[((size_t)y * G + ox) * D + d] = (float)acc;
            }
    for (int oy = 0; oy < G; oy++)
        for (int ox = 0; ox < G; ox++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int iy = 0; iy < G0; iy++)
                    acc += (double)W[(size_t)oy * G0 + iy] * tmp[((size_t)iy * G + ox) * D + d];
                dst[((size_t)oy * G + ox) * D + d] = (float)acc;
            }
    free(W), free(tmp);
    return 0;
}

int vit_pos_resample(float *dst, const float *src, int G0, int G, int D, vit_resample mode) {
    if (mode == VIT_RESAMPLE_TIMM) return resample_aa(dst, src, G0, G, D);
    if (mode == VIT_RESAMPLE_HUB) {
        /* scale_factor = float(G + 0.1) / G0 in Python's double; the output side is
           floor(G0·scale_factor) and the kernel's step float(1/scale_factor) */
        const double sf = ((double)G + 0.1) / (double)G0;
        if ((int)floor((double)G0 * sf) != G) return -1;
        resample_bicubic(dst, src, G0, G, D, (double)(float)(1.0 / sf));
        return 0;
    }
    resample_bicubic(dst, src, G0, G, D, (double)(float)((float)G0 / (float)G));
    return 0;
}
