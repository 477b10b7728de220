#include "encoder/adapter.h"

#include <math.h>
#include <string.h>

int clpdd_adapter_init(clpdd_adapter *a, const clpdd_host *h, int c_in, int H_in, int W_in,
                       const clpdd_backbone_info *info, int max_n, clpdd_err *e) {
    return clpdd_adapter_init_mode(a, h, c_in, H_in, W_in, info, max_n, CLPDD_ADAPT_RESIZE, e);
}

int clpdd_adapter_init_mode(clpdd_adapter *a, const clpdd_host *h, int c_in, int H_in, int W_in,
                            const clpdd_backbone_info *info, int max_n, clpdd_adapt_mode mode, clpdd_err *e) {
    memset(a, 0, sizeof *a);
    a->h = h;
    a->c_in = c_in;
    a->H_in = H_in;
    a->W_in = W_in;
    a->c_out = info->channels;
    a->H_out = info->height;
    a->W_out = info->width;
    a->max_n = max_n;
    a->mode = mode;
    if ((int)mode < 0 || mode >= CLPDD_ADAPT_COUNT) return clpdd_err_set(e, "adapter: unknown mode %d", (int)mode);
    if (mode == CLPDD_ADAPT_PAD) {
        if (H_in > a->H_out || W_in > a->W_out)
            return clpdd_err_set(e, "adapter: pad cannot fit %dx%d images into the backbone's %dx%d input (use adapt = resize)",
                                 H_in, W_in, a->H_out, a->W_out);
        a->pad_top = (a->H_out - H_in) / 2;
        a->pad_left = (a->W_out - W_in) / 2;
    }
    if (mode == CLPDD_ADAPT_CROP) {
        if (H_in < a->H_out || W_in < a->W_out)
            return clpdd_err_set(e, "adapter: crop cannot cut the backbone's %dx%d input out of %dx%d images (use adapt = resize)",
                                 a->H_out, a->W_out, H_in, W_in);
        /* torchvision CenterCrop: int(round((in - out) / 2.0)), Python's round (half to even) */
        a->pad_top = (int)nearbyint((H_in - a->H_out) / 2.0);
        a->pad_left = (int)nearbyint((W_in - a->W_out) / 2.0);
    }
    if (!(c_in == a->c_out || (c_in == 1 && a->c_out == 3)))
        return clpdd_err_set(e, "adapter: images have %d channels but the backbone wants %d (only equal counts or grey -> RGB are supported)",
                             c_in, a->c_out);
    float scale[3], shift[3];
    for (int c = 0; c < a->c_out; c++) {
        if (!(info->std[c] > 0)) return clpdd_err_set(e, "adapter: backbone std[%d] = %g must be > 0", c, info->std[c]);
        scale[c] = 1.0f / info->std[c];
        shift[c] = -info->mean[c] / info->std[c];
    }
    size_t out_px = (size_t)a->H_out * a->W_out;
    a->scale = h->alloc(h, 3 * sizeof(float));
    a->shift = h->alloc(h, 3 * sizeof(float));
    a->grad = h->alloc(h, (size_t)max_n * a->c_out * out_px * sizeof(float));
    if (H_in != a->H_out || W_in != a->W_out)
        a->resized = h->alloc(h, (size_t)max_n * c_in * out_px * sizeof(float));
    if (!a->scale || !a->shift || !a->grad || ((H_in != a->H_out || W_in != a->W_out) && !a->resized))
        return clpdd_err_set(e, "adapter: %s", "out of memory");
    h->ops->to_device(a->scale, scale, (size_t)a->c_out * sizeof(float));
    h->ops->to_device(a->shift, shift, (size_t)a->c_out * sizeof(float));
    return 0;
}

void clpdd_adapter_free(clpdd_adapter *a) {
    if (!a->h) return;
    a->h->free(a->h, a->scale);
    a->h->free(a->h, a->shift);
    a->h->free(a->h, a->grad);
    a->h->free(a->h, a->resized);
    memset(a, 0, sizeof *a);
}

/* y (n, c_in, H_out, W_out) = x (n, c_in, H_in, W_in) with zero borders. A centred border of
   equal width on all four sides is a 1×1 im2col with that padding over all n·c_in planes at
   once (one op); any other border is a fill and one copy per plane. */
static int pad_uniform(const clpdd_adapter *a) {
    return a->H_out - a->H_in == 2 * a->pad_top && a->W_out - a->W_in == 2 * a->pad_left &&
           a->pad_top == a->pad_left;
}

static void pad_forward(clpdd_adapter *a, float *y, const float *x, int n) {
    const clpdd_ops *ops = a->h->ops;
    const int planes = n * a->c_in;
    if (pad_uniform(a)) {
        ops->im2col(y, x, planes, a->H_in, a->W_in, 1, 1, 1, a->pad_top, a->H_out, a->W_out);
        return;
    }
    const size_t out_px = (size_t)a->H_out * a->W_out, in_px = (size_t)a->H_in * a->W_in;
    ops->fill(y, 0.0f, (size_t)planes * out_px);
    for (int q = 0; q < planes; q++)
        ops->copy2d(y + q * out_px + (size_t)a->pad_top * a->W_out + a->pad_left, (size_t)a->W_out, x + q * in_px,
                    (size_t)a->W_in, (size_t)a->H_in, (size_t)a->W_in);
}

/* dx (n, c_in, H_in, W_in) = the crop of dy (n, c_in, H_out, W_out)  (=) */
static void pad_backward(clpdd_adapter *a, float *dx, const float *dy, int n) {
    const clpdd_ops *ops = a->h->ops;
    const int planes = n * a->c_in;
    if (pad_uniform(a)) {
        ops->col2im(dx, dy, planes, a->H_in, a->W_in, 1, 1, 1, a->pad_top, a->H_out, a->W_out);
        return;
    }
    const size_t out_px = (size_t)a->H_out * a->W_out, in_px = (size_t)a->H_in * a->W_in;
    for (int q = 0; q < planes; q++)
        ops->copy2d(dx + q * in_px, (size_t)a->W_in, dy + q * out_px + (size_t)a->pad_top * a->W_out + a->pad_left,
                    (size_t)a->W_out, (size_t)a->H_in, (size_t)a->W_in);
}

/* crop: y (n, c_in, H_out, W_out) = the window at (pad_top, pad_left) of x (n, c_in, H_in, W_in) */
static void crop_forward(clpdd_adapter *a, float *y, const float *x, int n) {
    const size_t out_px = (size_t)a->H_out * a->W_out, in_px = (size_t)a->H_in * a->W_in;
    for (int q = 0; q < n * a->c_in; q++)
        a->h->ops->copy2d(y + q * out_px, (size_t)a->W_out, x + q * in_px + (size_t)a->pad_top * a->W_in + a->pad_left,
                          (size_t)a->W_in, (size_t)a->H_out, (size_t)a->W_out);
}

/* dx (n, c_in, H_in, W_in) = dy in the window, 0 outside  (=) */
static void crop_backward(clpdd_adapter *a, float *dx, const float *dy, int n) {
    const size_t out_px = (size_t)a->H_out * a->W_out, in_px = (size_t)a->H_in * a->W_in;
    a->h->ops->fill(dx, 0.0f, (size_t)n * a->c_in * in_px);
    for (int q = 0; q < n * a->c_in; q++)
        a->h->ops->copy2d(dx + q * in_px + (size_t)a->pad_top * a->W_in + a->pad_left, (size_t)a->W_in, dy + q * out_px,
                          (size_t)a->W_out, (size_t)a->H_out, (size_t)a->W_out);
}

void clpdd_adapter_forward(clpdd_adapter *a, float *out, const float *in, int n) {
    const clpdd_ops *ops = a->h->ops;
    CLPDD_ASSERT(n <= a->max_n);
    size_t px = (size_t)a->H_out * a->W_out;
    const float *x = in;
    if (a->resized && a->mode == CLPDD_ADAPT_PAD) {
        pad_forward(a, a->resized, in, n);
        x = a->resized;
    } else if (a->resized && a->mode == CLPDD_ADAPT_CROP) {
        crop_forward(a, a->resized, in, n);
        x = a->resized;
    } else if (a->resized) {
        ops->resize_bilinear(a->resized, in, n, a->c_in, a->H_in, a->W_in, a->H_out, a->W_out);
        x = a->resized;
    }
    if (a->c_in == a->c_out) {
        ops->channel_affine(out, x, a->scale, a->shift, n, a->c_out, (int)px);
    } else { /* grey → RGB: the one channel in each of the three */
        for (int c = 0; c < a->c_out; c++) ops->copy2d(out + c * px, (size_t)a->c_out * px, x, px, (size_t)n, px);
        ops->channel_affine(out, out, a->scale, a->shift, n, a->c_out, (int)px);
    }
}

void clpdd_adapter_backward(clpdd_adapter *a, float *din, const float *dout, int n) {
    const clpdd_ops *ops = a->h->ops;
    CLPDD_ASSERT(n <= a->max_n);
    size_t px = (size_t)a->H_out * a->W_out;
    ops->channel_affine_backward(a->grad, dout, a->scale, n, a->c_out, (int)px);
    float *g = a->grad; /* (n, c_out, px) */
    float *target = a->resized ? a->resized : din; /* gradient w.r.t. the resized image */
    if (a->c_in == a->c_out) {
        ops->copy(target, g, (size_t)n * a->c_out * px * sizeof(float));
    } else {
        ops->copy2d(target, px, g, (size_t)a->c_out * px, (size_t)n, px);
        for (int c = 1; c < a->c_out; c++) ops->add2d(target, px, g + c * px, (size_t)a->c_out * px, (size_t)n, px);
    }
    if (a->resized && a->mode == CLPDD_ADAPT_PAD)
        pad_backward(a, din, a->resized, n);
    else if (a->resized && a->mode == CLPDD_ADAPT_CROP)
        crop_backward(a, din, a->resized, n);
    else if (a->resized)
        ops->resize_bilinear_backward(din, a->resized, n, a->c_in, a->H_in, a->W_in, a->H_out, a->W_out);
}
