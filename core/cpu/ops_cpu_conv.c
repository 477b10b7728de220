/* CPU backend: the 2-D convolution ops of ABI 1.2 (conv2d, conv2d_backward; semantics in
 * core/include/clpdd/ops.h, clpdd_conv2d_desc).
 *
 * Built for the ResNets' shapes (3×3, stride 1/2, 16–512 channels, 10–1000 images): instead of
 * one small GEMM per image (cout × P × K with cout = 16 runs OpenBLAS at a fraction of its rate),
 * g images are unfolded side by side into one column matrix and multiplied by one GEMM:
 *
 *   forward:  col (K, g·P) = im2col of images i0 … i0+g−1, image j in columns [j·P, (j+1)·P)
 *             T (cout, g·P) = w (cout, K) · col                       (one sgemm, OpenBLAS threads)
 *             y[i0+j, o, :] = relu(T[o, j·P : (j+1)·P] + bias[o] + shortcut)   (one fused pass)
 *   backward: T (cout, g·P) = (dy ⊙ [mask > 0]) regrouped per channel  (one pass)
 *             col (K, g·P) = wᵀ · T                                     (one sgemm)
 *             dx[i0+j] = col2im(col[:, j·P : (j+1)·P])                  (one pass, "=")
 *
 * The passes around the GEMM run on the CPU backend's pthread pool (threadpool.h), never inside
 * BLAS; every output element is computed by one thread in a fixed order, so the results do not
 * depend on the thread count. Legend: K = cin·k·k, P = OH·OW, g images per GEMM.
 * The readable reference (per-image im2col + GEMM, ops->im2col / gemm_batched) stays in the
 * resnet plugin as `conv = reference` and is what these ops are tested against. */
#include "cpu/ops_cpu.h"
#include "cpu/threadpool.h"

#include <string.h>

/* the passes around the GEMM are plain loops over contiguous rows: let GCC vectorise them for
   AVX-512 / AVX2 at run time, as ops_cpu_attention.c does (only the loop width changes: every
   element is computed by the same float operations, so the clones agree bit for bit) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CONV_CLONES
#endif

/* ---- im2col of g images into one (K, g·P) matrix ---- */

typedef struct conv_job {
    const clpdd_conv2d_desc *d;
    float *col;        /* (K, g·P) */
    float *T;          /* (cout, g·P) */
    float *y;          /* forward: (g, cout, P) of this group; backward: dx (g, cin, H, W) */
    const float *x;    /* forward: (g, cin, H, W); backward: dy (g, cout, P) */
    const float *mask; /* backward: (g, cout, P) or NULL */
    const float *bias;
    const float *res;  /* (g, res_c, res_H, res_W) or NULL */
    int g;
} conv_job;

/* one row (c, ky, kx) of one image: col[r, j·P + oy·OW + ox] = x[j, c, oy·s − p + ky, ox·s − p + kx] */
static void im2col_row(float *dst, const float *xc, int H, int W, int ky, int kx, int s, int p, int OH, int OW) {
    /* ox range whose ix = ox·s − p + kx lies inside [0, W) */
    int ox0 = 0, ox1 = OW;
    while (ox0 < OW && ox0 * s - p + kx < 0) ox0++;
    while (ox1 > ox0 && (ox1 - 1) * s - p + kx >= W) ox1--;
    for (int oy = 0; oy < OH; oy++) {
        float *d = dst + (size_t)oy * OW;
        int iy = oy * s - p + ky;
        if (iy < 0 || iy >= H) {
            memset(d, 0, sizeof(float) * (size_t)OW);
            continue;
        }
        const float *xr = xc + (size_t)iy * W; /* ix = ox·s + kx − p ≥ 0 for ox ≥ ox0 */
        for (int ox = 0; ox < ox0; ox++) d[ox] = 0.0f;
        if (s == 1)
            memcpy(d + ox0, xr + (ox0 + kx - p), sizeof(float) * (size_t)(ox1 - ox0));
        else
            for (int ox = ox0; ox < ox1; ox++) d[ox] = xr[ox * s + kx - p];
        for (int ox = ox1; ox < OW; ox++) d[ox] = 0.0f;
    }
}

/* items: (row r, image j) pairs, r-major */
CONV_CLONES static void im2col_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int k = d->k, P = d->OH * d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int r = it / J->g, j = it % J->g;
        int c = r / (k * k), ky = (r / k) % k, kx = r % k;
        const float *xc = J->x + ((size_t)j * d->cin + c) * d->H * d->W;
        im2col_row(J->col + (size_t)r * gP + (size_t)j * P, xc, d->H, d->W, ky, kx, d->stride, d->pad, d->OH, d->OW);
    }
}

/* items: output planes (image j, channel o) */
CONV_CLONES static void epilogue_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int P = d->OH * d->OW, OW = d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cout, o = it % d->cout;
        const float *restrict t = J->T + (size_t)o * gP + (size_t)j * P;
        float *restrict yo = J->y + ((size_t)j * d->cout + o) * P;
        const float b = J->bias ? J->bias[o] : 0.0f;
        for (int q = 0; q < P; q++) yo[q] = t[q] + b;
        int c = o - d->res_pad;
        if (J->res && c >= 0 && c < d->res_c) {
            const float *rc = J->res + ((size_t)j * d->res_c + c) * d->res_H * d->res_W;
            const int rs = d->res_stride;
            if (rs == 1 && d->res_W == OW) {
                for (int q = 0; q < P; q++) yo[q] += rc[q];
            } else {
                for (int oy = 0; oy < d->OH; oy++) {
                    const float *rr = rc + (size_t)oy * rs * d->res_W;
                    float *yr = yo + (size_t)oy * OW;
                    for (int ox = 0; ox < OW; ox++) yr[ox] += rr[(size_t)ox * rs];
                }
            }
        }
        if (d->relu)
            for (int q = 0; q < P; q++) yo[q] = yo[q] > 0.0f ? yo[q] : 0.0f;
    }
}

/* a pass over `floats` elements on the pool, or in the caller when waking the pool costs more
   than the pass (CLPDD_CPU_PAR_MIN, as the other CPU ops) */
static void conv_for(int items, size_t floats, cpu_range_fn fn, void *ctx) {
    if (floats > CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(items, fn, ctx);
    else if (items > 0)
        fn(ctx, 0, items);
}

/* images per GEMM that the scratch allows, at most n */
static int conv_group(const clpdd_conv2d_desc *d, size_t work_floats) {
    size_t one = CLPDD_CONV2D_WORK(d, 1);
    CLPDD_ASSERT(work_floats >= one && "conv2d: work smaller than CLPDD_CONV2D_WORK(d, 1)");
    size_t g = work_floats / one;
    return g > (size_t)d->n ? d->n : (int)g;
}

static void check_desc(const clpdd_conv2d_desc *d) {
    CLPDD_ASSERT(d->n >= 0 && d->cin > 0 && d->cout > 0 && d->k > 0 && d->stride > 0 && d->pad >= 0);
    CLPDD_ASSERT(d->OH == (d->H + 2 * d->pad - d->k) / d->stride + 1 && d->OW == (d->W + 2 * d->pad - d->k) / d->stride + 1);
    CLPDD_ASSERT(d->OH > 0 && d->OW > 0);
}

void cpu_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w, const float *bias,
                const float *res, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    if (res)
        CLPDD_ASSERT(d->res_c > 0 && d->res_pad >= 0 && d->res_pad + d->res_c <= d->cout && d->res_stride > 0 &&
                     (d->OH - 1) * d->res_stride < d->res_H && (d->OW - 1) * d->res_stride < d->res_W);
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, G = conv_group(d, work_floats);
    const size_t xs = (size_t)d->cin * d->H * d->W, ys = (size_t)d->cout * P;
    const size_t rs = res ? (size_t)d->res_c * d->res_H * d->res_W : 0;
    for (int i0 = 0; i0 < d->n; i0 += G) {
        const int g = d->n - i0 < G ? d->n - i0 : G;
        conv_job J = {d, work, work + (size_t)K * g * P, y + (size_t)i0 * ys, x + (size_t)i0 * xs, NULL, bias,
                      res ? res + (size_t)i0 * rs : NULL, g};
        conv_for(K * g, (size_t)K * g * P, im2col_range, &J);
        cpu_gemm(0, 0, d->cout, g * P, K, 1.0f, w, K, J.col, g * P, 0.0f, J.T, g * P);
        conv_for(d->cout * g, (size_t)d->cout * g * P, epilogue_range, &J);
    }
}

/* ---- backward ---- */

/* items: planes (image j, channel o) of dy: T[o, j·P + q] = dy[j, o, q]·[mask > 0] */
CONV_CLONES static void regroup_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int P = d->OH * d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cout, o = it % d->cout;
        const size_t src = ((size_t)j * d->cout + o) * P;
        float *restrict t = J->T + (size_t)o * gP + (size_t)j * P;
        if (J->mask) {
            const float *restrict dy = J->x + src, *restrict m = J->mask + src;
            for (int q = 0; q < P; q++) t[q] = m[q] > 0.0f ? dy[q] : 0.0f;
        } else {
            memcpy(t, J->x + src, sizeof(float) * (size_t)P);
        }
    }
}

/* items: planes (image j, input channel c): dx[j, c] = Σ over (ky, kx) of the col entries reading it */
CONV_CLONES static void col2im_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int k = d->k, s = d->stride, p = d->pad, H = d->H, W = d->W, OH = d->OH, OW = d->OW, P = OH * OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cin, c = it % d->cin;
        float *dx = J->y + ((size_t)j * d->cin + c) * H * W;
        memset(dx, 0, sizeof(float) * (size_t)H * W);
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *cr = J->col + (size_t)((c * k + ky) * k + kx) * gP + (size_t)j * P;
                int ox0 = 0, ox1 = OW;
                while (ox0 < OW && ox0 * s - p + kx < 0) ox0++;
                while (ox1 > ox0 && (ox1 - 1) * s - p + kx >= W) ox1--;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *xr = dx + (size_t)iy * W;
                    const float *cc = cr + (size_t)oy * OW;
                    if (s == 1) {
                        float *restrict xo = xr + (ox0 + kx - p);
                        const float *restrict co = cc + ox0;
                        for (int q = 0; q < ox1 - ox0; q++) xo[q] += co[q];
                    } else {
                        for (int ox = ox0; ox < ox1; ox++) xr[ox * s + kx - p] += cc[ox];
                    }
                }
            }
    }
}

void cpu_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy, const float *mask,
                         const float *w, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, G = conv_group(d, work_floats);
    const size_t xs = (size_t)d->cin * d->H * d->W, ys = (size_t)d->cout * P;
    for (int i0 = 0; i0 < d->n; i0 += G) {
        const int g = d->n - i0 < G ? d->n - i0 : G;
        conv_job J = {d, work, work + (size_t)K * g * P, dx + (size_t)i0 * xs, dy + (size_t)i0 * ys,
                      mask ? mask + (size_t)i0 * ys : NULL, NULL, NULL, g};
        conv_for(d->cout * g, (size_t)d->cout * g * P, regroup_range, &J);
        cpu_gemm(1, 0, K, g * P, d->cout, 1.0f, w, K, J.T, g * P, 0.0f, J.col, g * P);
        conv_for(d->cin * g, (size_t)K * g * P, col2im_range, &J);
    }
}
