/* Pillow-exact bilinear resize and torchvision's centre crop on uint8 images; see imgproc.h.
 * Dimension legend: h, w input, oh, ow output, c channels, k taps per output sample. */
#include "data/imgproc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2) /* Pillow's Resample.c */

void clpdd_resize_shorter_size(int h, int w, int size, int *oh, int *ow) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    /* Python: int(size * long / short), a correctly rounded true division then truncation */
    int nl = (int)((double)((long long)size * l) / (double)s);
    if (w <= h) *ow = size, *oh = nl;
    else *oh = size, *ow = nl;
}

/* Pillow's precompute_coeffs (BILINEAR, box = the whole image) + normalize_coeffs_8bpc.
   bounds (out, 2): first input index and tap count; kk (out, k) int32 fixed point. Returns k. */
static int coeffs(int in, int out, int **bounds_out, int32_t **kk_out) {
    double scale = (double)in / out, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * fscale;
    int k = (int)ceil(support) * 2 + 1;
    int *bounds = clpdd_xmalloc((size_t)out * 2 * sizeof *bounds);
    int32_t *kk = clpdd_xmalloc((size_t)out * k * sizeof *kk);
    double *w = clpdd_xmalloc((size_t)k * sizeof *w);
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / fscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double t = fabs((x + xmin - center + 0.5) * ss);
            w[x] = t < 1.0 ? 1.0 - t : 0.0;
            ww += w[x];
        }
        for (int x = 0; x < k; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            kk[(size_t)xx * k + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                           : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *kk_out = kk;
    return k;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's lookup index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* rows [y0, y0 + rh) and columns [x0, x0 + rw) of the (oh, ow) resize of in: out (rh, rw, c).
   Each output sample depends only on its own coefficients, so a region is bit-identical to the
   same part of the full resize (Resize + CenterCrop computes only the crop). */
static void resize_region(uint8_t *out, int oh, int ow, int y0, int x0, int rh, int rw, const uint8_t *in, int h, int w,
                          int c) {
    CLPDD_ASSERT(oh > 0 && ow > 0 && h > 0 && w > 0 && c > 0);
    CLPDD_ASSERT(y0 >= 0 && x0 >= 0 && y0 + rh <= oh && x0 + rw <= ow);
    int need_h = ow != w, need_v = oh != h;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = need_h ? coeffs(w, ow, &bh, &kh) : 0;
    int ksv = need_v ? coeffs(h, oh, &bv, &kv) : 0;
    /* input rows the vertical pass reads for output rows [y0, y0 + rh) */
    int r0 = y0, r1 = y0 + rh;
    if (need_v) r0 = bv[2 * y0], r1 = bv[2 * (y0 + rh - 1)] + bv[2 * (y0 + rh - 1) + 1];
    int rows = r1 - r0, rwc = rw * c;
    /* horizontal pass (or a plain copy of the columns): tmp (rows, rw, c) */
    uint8_t *tmp = clpdd_xmalloc((size_t)rows * rwc);
    for (int y = 0; y < rows; y++) {
        const uint8_t *r = in + (size_t)(y + r0) * w * c;
        uint8_t *o = tmp + (size_t)y * rwc;
        if (!need_h) {
            memcpy(o, r + (size_t)x0 * c, (size_t)rwc);
            continue;
        }
        for (int xx = 0; xx < rw; xx++) {
            int xmin = bh[2 * (xx + x0)], xmax = bh[2 * (xx + x0) + 1];
            const int32_t *k = kh + (size_t)(xx + x0) * ksh;
            const uint8_t *p = r + (size_t)xmin * c;
            if (c == 3) {
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xmax; x++) {
                    s0 += p[3 * x] * k[x];
                    s1 += p[3 * x + 1] * k[x];
                    s2 += p[3 * x + 2] * k[x];
                }
                o[3 * xx] = clip8(s0), o[3 * xx + 1] = clip8(s1), o[3 * xx + 2] = clip8(s2);
            } else {
                for (int ch = 0; ch < c; ch++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++) ss += p[(size_t)x * c + ch] * k[x];
                    o[(size_t)xx * c + ch] = clip8(ss);
                }
            }
        }
    }
    /* vertical pass: a whole row at a time (vectorisable) */
    if (need_v) {
        int32_t *acc = clpdd_xmalloc((size_t)rwc * sizeof *acc);
        for (int yy = 0; yy < rh; yy++) {
            int ymin = bv[2 * (yy + y0)] - r0, ymax = bv[2 * (yy + y0) + 1];
            const int32_t *k = kv + (size_t)(yy + y0) * ksv;
            for (int i = 0; i < rwc; i++) acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *src = tmp + (size_t)(y + ymin) * rwc;
                int32_t kk = k[y];
                for (int i = 0; i < rwc; i++) acc[i] += src[i] * kk;
            }
            uint8_t *o = out + (size_t)yy * rwc;
            for (int i = 0; i < rwc; i++) o[i] = clip8(acc[i]);
        }
        free(acc);
    } else {
        memcpy(out, tmp, (size_t)rh * rwc);
    }
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
}

void clpdd_resize_bilinear_u8(uint8_t *out, int oh, int ow, const uint8_t *in, int h, int w, int c) {
    resize_region(out, oh, ow, 0, 0, oh, ow, in, h, w, c);
}

/* torchvision's centre offset along one axis: int(round((n − crop) / 2.0)) (half to even), or
   minus the left padding (crop − n) // 2 when the crop is larger */
static int center_offset(int n, int crop) {
    if (crop > n) return -((crop - n) / 2);
    int d = n - crop, q = d / 2;
    if ((d & 1) && (q & 1)) q++;
    return q;
}

void clpdd_center_crop_u8(uint8_t *out, int ch, int cw, const uint8_t *in, int h, int w, int c) {
    int top = center_offset(h, ch), left = center_offset(w, cw);
    for (int y = 0; y < ch; y++) {
        int sy = y + top;
        uint8_t *o = out + (size_t)y * cw * c;
        if (sy < 0 || sy >= h) {
            memset(o, 0, (size_t)cw * c);
            continue;
        }
        for (int x = 0; x < cw; x++) {
            int sx = x + left;
            if (sx < 0 || sx >= w) memset(o + (size_t)x * c, 0, (size_t)c);
            else memcpy(o + (size_t)x * c, in + ((size_t)sy * w + sx) * c, (size_t)c);
        }
    }
}

void clpdd_preprocess_size(int h, int w, int resize, int crop, int *oh, int *ow) {
    *oh = h, *ow = w;
    if (resize > 0) clpdd_resize_shorter_size(h, w, resize, oh, ow);
    if (crop > 0) *oh = crop, *ow = crop;
}

void clpdd_image_preprocess(clpdd_image *im, int resize, int crop) {
    if (resize > 0 && crop > 0) {
        int oh, ow;
        clpdd_resize_shorter_size(im->h, im->w, resize, &oh, &ow);
        if (crop <= oh && crop <= ow && (oh != im->h || ow != im->w)) {
            /* only the crop of the resize: the same pixels, less work */
            uint8_t *o = clpdd_xmalloc((size_t)crop * crop * im->c);
            resize_region(o, oh, ow, center_offset(oh, crop), center_offset(ow, crop), crop, crop, im->px, im->h, im->w,
                          im->c);
            free(im->px);
            im->px = o, im->h = crop, im->w = crop;
            return;
        }
    }
    if (resize > 0) {
        int oh, ow;
        clpdd_resize_shorter_size(im->h, im->w, resize, &oh, &ow);
        if (oh != im->h || ow != im->w) {
            uint8_t *o = clpdd_xmalloc((size_t)oh * ow * im->c);
            clpdd_resize_bilinear_u8(o, oh, ow, im->px, im->h, im->w, im->c);
            free(im->px);
            im->px = o, im->h = oh, im->w = ow;
        }
    }
    if (crop > 0 && (crop != im->h || crop != im->w)) {
        uint8_t *o = clpdd_xmalloc((size_t)crop * crop * im->c);
        clpdd_center_crop_u8(o, crop, crop, im->px, im->h, im->w, im->c);
        free(im->px);
        im->px = o, im->h = crop, im->w = crop;
    }
}
