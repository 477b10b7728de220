/* clpdd CUDA backend: augmentation ops (ABI 1.1), the device twins of core/cpu/ops_cpu_augment.c
 * (the reference; semantics in clpdd/ops.h). One thread per output element; the backward
 * scatters with atomicAdd into a zeroed dx (as resize_bilinear_backward), so its float sums
 * are order-dependent (≈ 1 ulp per term), not bit-reproducible.
 *
 * Dimension legend: n images, C channels, H/W input, OH/OW output. */
#include "cuda_common.h"

/* the CPU's crop_src, operation for operation (see ops_cpu_augment.c) */
struct crop_tap {
    int i0, i1;
    float l0, l1;
};

__device__ __forceinline__ crop_tap crop_src(int o, int out, float b0, float bl, int in) {
    float sc = __fdiv_rn(bl, (float)out);
    float s = __fsub_rn(__fmul_rn((float)o + 0.5f, sc), 0.5f); /* no FMA: as the CPU */
    if (s > bl - 1.0f) s = bl - 1.0f;
    if (s < 0.0f) s = 0.0f;
    float f0 = floorf(b0);
    float t = __fadd_rn(s, __fsub_rn(b0, f0));
    float fi = floorf(t);
    crop_tap k;
    k.l1 = t - fi;
    k.l0 = 1.0f - k.l1;
    k.i0 = (int)f0 + (int)fi;
    k.i1 = k.i0 + 1;
    k.i0 = min(max(k.i0, 0), in - 1);
    k.i1 = min(max(k.i1, 0), in - 1);
    return k;
}

__global__ void k_crop_resize_bilinear(float *y, const float *x, const float *boxes, const int32_t *flips, size_t total,
                                       int C, int H, int W, int OH, int OW) {
    CLPDD_GRID_STRIDE(o, total) {
        int ox = (int)(o % OW), oy = (int)((o / OW) % OH);
        size_t q = o / ((size_t)OW * OH), b = q / C;
        const float *bx = boxes + 4 * b;
        int flip = flips && flips[b];
        crop_tap ty = crop_src(oy, OH, bx[0], bx[2], H), tx = crop_src(flip ? OW - 1 - ox : ox, OW, bx[1], bx[3], W);
        const float *r0 = x + q * H * W + (size_t)ty.i0 * W, *r1 = x + q * H * W + (size_t)ty.i1 * W;
        y[o] = ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) + ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
    }
}

__global__ void k_crop_resize_bilinear_backward(float *dx, const float *dy, const float *boxes, const int32_t *flips,
                                                size_t total, int C, int H, int W, int OH, int OW) {
    CLPDD_GRID_STRIDE(o, total) {
        int ox = (int)(o % OW), oy = (int)((o / OW) % OH);
        size_t q = o / ((size_t)OW * OH), b = q / C;
        const float *bx = boxes + 4 * b;
        int flip = flips && flips[b];
        crop_tap ty = crop_src(oy, OH, bx[0], bx[2], H), tx = crop_src(flip ? OW - 1 - ox : ox, OW, bx[1], bx[3], W);
        float g = dy[o];
        float *r0 = dx + q * H * W + (size_t)ty.i0 * W, *r1 = dx + q * H * W + (size_t)ty.i1 * W;
        atomicAdd(&r0[tx.i0], ty.l0 * tx.l0 * g);
        atomicAdd(&r0[tx.i1], ty.l0 * tx.l1 * g);
        atomicAdd(&r1[tx.i0], ty.l1 * tx.l0 * g);
        atomicAdd(&r1[tx.i1], ty.l1 * tx.l1 * g);
    }
}

void clpdd_cuda_crop_resize_bilinear(float *y, const float *x, const float *boxes, const int32_t *flips, int n, int C,
                                     int H, int W, int OH, int OW) {
    CLPDD_CUDA_ASSERT(n >= 0 && C >= 0 && H > 0 && W > 0 && OH >= 0 && OW >= 0);
    size_t total = (size_t)n * C * OH * OW;
    if (!total) return;
    CLPDD_LAUNCH(k_crop_resize_bilinear, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, x, boxes, flips, total, C, H, W, OH,
                 OW);
}

void clpdd_cuda_crop_resize_bilinear_backward(float *dx, const float *dy, const float *boxes, const int32_t *flips,
                                              int n, int C, int H, int W, int OH, int OW) {
    CLPDD_CUDA_ASSERT(n >= 0 && C >= 0 && H > 0 && W > 0 && OH >= 0 && OW >= 0);
    size_t nx = (size_t)n * C * H * W, total = (size_t)n * C * OH * OW;
    if (!nx) return;
    CUDA_CHECK(cudaMemset(dx, 0, nx * sizeof(float)));
    if (total)
        CLPDD_LAUNCH(k_crop_resize_bilinear_backward, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, boxes, flips,
                     total, C, H, W, OH, OW);
}
