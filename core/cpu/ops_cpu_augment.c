/* CPU backend: augmentation ops (ABI 1.1). crop_resize_bilinear is torchvision's
 * F.resized_crop(img, top, left, h, w, size, bilinear, antialias=False) per image, with an
 * optional horizontal flip of the result; its backward is the exact adjoint and writes (=).
 * Threads split over (image, channel) planes, so the scatter of the backward never races.
 *
 * Dimension legend: n images, C channels, H/W input height/width, OH/OW output. */
#include "cpu/ops_cpu.h"

#include <math.h>

/* One axis of the resampling (ops.h): output index o of `out` samples the box [b0, b0 + bl)
   of an input axis of length `in` at s = clamp((o + 0.5)·bl/out − 0.5, 0, bl − 1), i.e. the
   crop-relative PyTorch source coordinate (align_corners = False; clamping above at bl − 1
   gives PyTorch's value, whose upper tap is clamped to the crop's last pixel). The box start
   is split into ⌊b0⌋ + frac so that integer boxes add an exact integer (bit-identical to
   resizing the cropped tensor). Taps i0 = ⌊b0⌋ + ⌊s + frac⌋, i1 = i0 + 1, clamped to the image. */
typedef struct {
    int i0, i1;
    float l0, l1;
} crop_tap;

static crop_tap crop_src(int o, int out, float b0, float bl, int in) {
    float sc = bl / (float)out;
    float s = ((float)o + 0.5f) * sc - 0.5f;
    if (s > bl - 1.0f) s = bl - 1.0f;
    if (s < 0.0f) s = 0.0f;
    float f0 = floorf(b0);
    float t = s + (b0 - f0);
    float fi = floorf(t);
    crop_tap k;
    k.l1 = t - fi;
    k.l0 = 1.0f - k.l1;
    k.i0 = (int)f0 + (int)fi;
    k.i1 = k.i0 + 1;
    if (k.i0 < 0) k.i0 = 0;
    if (k.i0 > in - 1) k.i0 = in - 1;
    if (k.i1 < 0) k.i1 = 0;
    if (k.i1 > in - 1) k.i1 = in - 1;
    return k;
}

/* x (n, C, H, W) → y (n, C, OH, OW); boxes (n, 4) = (y0, x0, h, w); flips (n) or NULL */
void cpu_crop_resize_bilinear(float *y, const float *x, const float *boxes, const int32_t *flips, int n, int C,
                              int H, int W, int OH, int OW) {
    CLPDD_ASSERT(n >= 0 && C >= 0 && H > 0 && W > 0 && OH >= 0 && OW >= 0);
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * OH * OW > CLPDD_CPU_PAR_MIN / 4))
    for (size_t q = 0; q < planes; q++) {
        size_t b = q / (size_t)C;
        const float *bx = boxes + 4 * b;
        int flip = flips && flips[b];
        const float *xq = x + q * H * W;
        float *yq = y + q * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            crop_tap ty = crop_src(oy, OH, bx[0], bx[2], H);
            const float *r0 = xq + (size_t)ty.i0 * W, *r1 = xq + (size_t)ty.i1 * W;
            for (int ox = 0; ox < OW; ox++) {
                crop_tap tx = crop_src(flip ? OW - 1 - ox : ox, OW, bx[1], bx[3], W);
                yq[(size_t)oy * OW + ox] = ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) +
                                           ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
            }
        }
    }
}

/* the exact adjoint: dx (n, C, H, W) = Σ over outputs of weight·dy */
void cpu_crop_resize_bilinear_backward(float *dx, const float *dy, const float *boxes, const int32_t *flips, int n,
                                       int C, int H, int W, int OH, int OW) {
    CLPDD_ASSERT(n >= 0 && C >= 0 && H > 0 && W > 0 && OH >= 0 && OW >= 0);
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * OH * OW > CLPDD_CPU_PAR_MIN / 4))
    for (size_t q = 0; q < planes; q++) {
        size_t b = q / (size_t)C;
        const float *bx = boxes + 4 * b;
        int flip = flips && flips[b];
        float *dq = dx + q * H * W;
        const float *gq = dy + q * OH * OW;
        for (size_t i = 0; i < (size_t)H * W; i++) dq[i] = 0.0f;
        for (int oy = 0; oy < OH; oy++) {
            crop_tap ty = crop_src(oy, OH, bx[0], bx[2], H);
            float *r0 = dq + (size_t)ty.i0 * W, *r1 = dq + (size_t)ty.i1 * W;
            for (int ox = 0; ox < OW; ox++) {
                crop_tap tx = crop_src(flip ? OW - 1 - ox : ox, OW, bx[1], bx[3], W);
                float g = gq[(size_t)oy * OW + ox];
                r0[tx.i0] += ty.l0 * tx.l0 * g;
                r0[tx.i1] += ty.l0 * tx.l1 * g;
                r1[tx.i0] += ty.l1 * tx.l0 * g;
                r1[tx.i1] += ty.l1 * tx.l1 * g;
            }
        }
    }
}
