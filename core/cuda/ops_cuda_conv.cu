/* clpdd CUDA backend: the 2-D convolution ops of ABI 1.2, the device twins of
 * core/cpu/ops_cpu_conv.c (the reference; semantics in clpdd/ops.h, clpdd_conv2d_desc).
 *
 * The same batched scheme as the CPU: per group of g images (g from work_floats),
 *   forward:  col (K, g·P) = im2col (one thread per col element)
 *             T (cout, g·P) = w (cout, K) · col             one cuBLAS sgemm
 *             y = relu(T regrouped to (g, cout, P) + bias + shortcut)   one kernel
 *   backward: T (cout, g·P) = dy ⊙ [mask > 0] regrouped      one kernel
 *             col (K, g·P) = wᵀ · T                          one cuBLAS sgemm
 *             dx = col2im(col) (one thread per dx element, gathering its taps: no atomics,
 *                               so the sum order is fixed and the result reproducible)
 * Legend: K = cin·k·k, P = OH·OW, g images per GEMM. */
#include "cuda_common.h"

struct conv_dims { /* clpdd_conv2d_desc by value, for kernels */
    int cin, H, W, cout, k, s, p, OH, OW;
    int relu, res_c, res_pad, res_H, res_W, res_stride;
};

static conv_dims dims_of(const clpdd_conv2d_desc *d) {
    conv_dims c = {d->cin, d->H, d->W, d->cout, d->k, d->stride, d->pad, d->OH, d->OW,
                   d->relu, d->res_c, d->res_pad, d->res_H, d->res_W, d->res_stride};
    return c;
}

/* col[r, j·P + q] for r = (c, ky, kx), image j < g, pixel q */
__global__ void k_conv_im2col(float *col, const float *x, conv_dims d, int g, size_t total) {
    const int P = d.OH * d.OW;
    const size_t gP = (size_t)g * P;
    CLPDD_GRID_STRIDE(i, total) {
        size_t r = i / gP, rem = i % gP;
        int j = (int)(rem / P), q = (int)(rem % P);
        int c = (int)(r / (d.k * d.k)), ky = (int)(r / d.k) % d.k, kx = (int)(r % d.k);
        int iy = (q / d.OW) * d.s - d.p + ky, ix = (q % d.OW) * d.s - d.p + kx;
        col[i] = (iy >= 0 && iy < d.H && ix >= 0 && ix < d.W)
                     ? x[(((size_t)j * d.cin + c) * d.H + iy) * d.W + ix]
                     : 0.0f;
    }
}

/* y[j, o, q] = relu(T[o, j·P + q] + bias[o] + shortcut) */
__global__ void k_conv_epilogue(float *y, const float *T, const float *bias, const float *res, conv_dims d, int g,
                                size_t total) {
    const int P = d.OH * d.OW;
    const size_t gP = (size_t)g * P;
    CLPDD_GRID_STRIDE(i, total) {
        int q = (int)(i % P);
        size_t jo = i / P;
        int o = (int)(jo % d.cout), j = (int)(jo / d.cout);
        float v = T[(size_t)o * gP + (size_t)j * P + q];
        if (bias) v += bias[o];
        int c = o - d.res_pad;
        if (res && c >= 0 && c < d.res_c)
            v += res[(((size_t)j * d.res_c + c) * d.res_H + (q / d.OW) * d.res_stride) * d.res_W +
                     (q % d.OW) * d.res_stride];
        if (d.relu) v = v > 0.0f ? v : 0.0f;
        y[i] = v;
    }
}

/* T[o, j·P + q] = dy[j, o, q]·[mask > 0] */
__global__ void k_conv_regroup(float *T, const float *dy, const float *mask, conv_dims d, int g, size_t total) {
    const int P = d.OH * d.OW;
    const size_t gP = (size_t)g * P;
    CLPDD_GRID_STRIDE(i, total) {
        int q = (int)(i % P);
        size_t jo = i / P;
        int o = (int)(jo % d.cout), j = (int)(jo / d.cout);
        float v = dy[i];
        if (mask && !(mask[i] > 0.0f)) v = 0.0f;
        T[(size_t)o * gP + (size_t)j * P + q] = v;
    }
}

/* dx[j, c, iy, ix] = Σ over (ky, kx) with (iy + p − ky, ix + p − kx) on the stride grid of col */
__global__ void k_conv_col2im(float *dx, const float *col, conv_dims d, int g, size_t total) {
    const int P = d.OH * d.OW;
    const size_t gP = (size_t)g * P;
    CLPDD_GRID_STRIDE(i, total) {
        int ix = (int)(i % d.W), iy = (int)((i / d.W) % d.H);
        size_t jc = i / ((size_t)d.H * d.W);
        int c = (int)(jc % d.cin), j = (int)(jc / d.cin);
        float s = 0.0f;
        for (int ky = 0; ky < d.k; ky++) {
            int ty = iy + d.p - ky;
            if (ty < 0 || ty % d.s) continue;
            int oy = ty / d.s;
            if (oy >= d.OH) continue;
            for (int kx = 0; kx < d.k; kx++) {
                int tx = ix + d.p - kx;
                if (tx < 0 || tx % d.s) continue;
                int ox = tx / d.s;
                if (ox >= d.OW) continue;
                s += col[((size_t)(c * d.k + ky) * d.k + kx) * gP + (size_t)j * P + oy * d.OW + ox];
            }
        }
        dx[i] = s;
    }
}

static int conv_group(const clpdd_conv2d_desc *d, size_t work_floats) {
    size_t one = CLPDD_CONV2D_WORK(d, 1);
    CLPDD_CUDA_ASSERT(work_floats >= one);
    size_t g = work_floats / one;
    return g > (size_t)d->n ? d->n : (int)g;
}

static void check_desc(const clpdd_conv2d_desc *d) {
    CLPDD_CUDA_ASSERT(d->n >= 0 && d->cin > 0 && d->cout > 0 && d->k > 0 && d->stride > 0 && d->pad >= 0);
    CLPDD_CUDA_ASSERT(d->OH == (d->H + 2 * d->pad - d->k) / d->stride + 1 &&
                      d->OW == (d->W + 2 * d->pad - d->k) / d->stride + 1);
}

CLPDD_CUDA_FN void clpdd_cuda_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w, const float *bias,
                       const float *res, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    const conv_dims cd = dims_of(d);
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, G = conv_group(d, work_floats);
    const size_t xs = (size_t)d->cin * d->H * d->W, ys = (size_t)d->cout * P;
    const size_t rs = res ? (size_t)d->res_c * d->res_H * d->res_W : 0;
    for (int i0 = 0; i0 < d->n; i0 += G) {
        const int g = d->n - i0 < G ? d->n - i0 : G;
        float *col = work, *T = work + (size_t)K * g * P;
        size_t nc = (size_t)K * g * P, ny = (size_t)g * ys;
        CLPDD_LAUNCH(k_conv_im2col, clpdd_grid_1d(nc), CLPDD_THREADS, 0, col, x + (size_t)i0 * xs, cd, g, nc);
        clpdd_cuda_gemm_strided(0, 0, d->cout, g * P, K, 1.0f, w, K, 0, col, g * P, 0, 0.0f, T, g * P, 0, 1);
        CLPDD_LAUNCH(k_conv_epilogue, clpdd_grid_1d(ny), CLPDD_THREADS, 0, y + (size_t)i0 * ys, T, bias,
                     res ? res + (size_t)i0 * rs : (const float *)NULL, cd, g, ny);
    }
}

CLPDD_CUDA_FN void clpdd_cuda_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy, const float *mask,
                                const float *w, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    const conv_dims cd = dims_of(d);
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, G = conv_group(d, work_floats);
    const size_t xs = (size_t)d->cin * d->H * d->W, ys = (size_t)d->cout * P;
    for (int i0 = 0; i0 < d->n; i0 += G) {
        const int g = d->n - i0 < G ? d->n - i0 : G;
        float *col = work, *T = work + (size_t)K * g * P;
        size_t ny = (size_t)g * ys, nx = (size_t)g * xs;
        CLPDD_LAUNCH(k_conv_regroup, clpdd_grid_1d(ny), CLPDD_THREADS, 0, T, dy + (size_t)i0 * ys,
                     mask ? mask + (size_t)i0 * ys : (const float *)NULL, cd, g, ny);
        clpdd_cuda_gemm_strided(1, 0, K, g * P, d->cout, 1.0f, w, K, 0, T, g * P, 0, 0.0f, col, g * P, 0, 1);
        CLPDD_LAUNCH(k_conv_col2im, clpdd_grid_1d(nx), CLPDD_THREADS, 0, dx + (size_t)i0 * xs, col, cd, g, nx);
    }
}
