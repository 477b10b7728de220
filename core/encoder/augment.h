/* Differentiable augmentation (DSA) as LGM uses it (Cazenavette et al. 2025), applied to
 * images (n, c, H, W) in the dataset's [0, 1] pixel space, before the adapter normalises them.
 * Per image, in this order:
 *   1. random-resized-crop: torchvision RandomResizedCrop's box (scale ∈ [scale_lo, scale_hi] of
 *      the area, aspect ratio log-uniform in [ratio_lo, ratio_hi], up to 10 tries, then the
 *      centre-crop fallback), resized back to H×W with bilinear sampling (antialias = False);
 *   2. horizontal flip with probability flip_p (of the crop's result; the same distribution as
 *      flipping first, since the box's horizontal position is uniform);
 *   3. additive Gaussian noise N(noise_mean, noise_std²) on every pixel with probability noise_p
 *      (no clamping afterwards).
 * The crop and flip are one op (ops->crop_resize_bilinear); the noise is a tensor drawn at
 * sample time, so forward is linear in the images plus a constant and backward (the adjoint
 * of the crop/flip; the noise has no gradient) is exact.
 *
 * Randomness: the parameters of image i of a sample(n, seed, counter) call depend only on
 * (seed, counter + i), on the host (Philox uniform stream, element (counter + i)·64 + k) and
 * the device (noise = Philox normal stream, elements (counter + i)·px …, px = c·H·W), so the
 * same call gives the same draws on every device, and draws never overlap across calls when
 * counter advances by n (e.g. counter = step · max_n).
 *
 * Tiling (LGM's augs_per_batch = k): sample k·n draws and call forward_tiled on the n images:
 * output image j·n + i is draw j·n + i applied to image i; backward_tiled sums the k copies'
 * gradients into each image.
 *
 * Legend: n images, c channels, H×W image size, px = c·H·W, k copies. */
#ifndef CLPDD_AUGMENT_H
#define CLPDD_AUGMENT_H
#include <stdint.h>

#include "clpdd/plugin.h"
#include "util/util.h"

typedef struct clpdd_augment_cfg {
    float flip_p;               /* probability of a horizontal flip (0.5) */
    int crop;                   /* 1: random-resized-crop; 0: the full image (1) */
    float scale_lo, scale_hi;   /* crop area fraction range (0.08, 1) */
    float ratio_lo, ratio_hi;   /* crop aspect ratio w/h range (3/4, 4/3) */
    float noise_p;              /* probability of additive noise (0.5) */
    float noise_mean, noise_std; /* N(mean, std²) per pixel (defaults 0.5, 0.2) */
} clpdd_augment_cfg;

/* the defaults above */
void clpdd_augment_cfg_default(clpdd_augment_cfg *cfg);

/* one image's draw: box (y0, x0, h, w) in input pixels, flip and noise flags */
typedef struct clpdd_augment_draw {
    float y0, x0, h, w;
    int flip, noise;
} clpdd_augment_draw;

typedef struct clpdd_augment clpdd_augment;

/* an augmenter for images (c, H, W), up to max_n draws at a time. The cfg is validated
   (probabilities in [0, 1], 0 < scale_lo ≤ scale_hi ≤ 1, 0 < ratio_lo ≤ ratio_hi, std ≥ 0);
   a bad value is an error naming it. */
int clpdd_augment_create(clpdd_augment **a, const clpdd_host *h, const clpdd_augment_cfg *cfg, int c, int H,
                         int W, int max_n, clpdd_err *e);
void clpdd_augment_destroy(clpdd_augment *a); /* NULL is a no-op */

/* draws n ≤ max_n parameter sets from (seed, counter), replacing the previous ones */
void clpdd_augment_sample(clpdd_augment *a, int n, uint64_t seed, uint64_t counter);
/* explicit parameters d (host, n ≤ max_n); the noise of image i with d[i].noise is drawn from
   (seed, counter + i) as in sample */
void clpdd_augment_set(clpdd_augment *a, int n, const clpdd_augment_draw *d, uint64_t seed, uint64_t counter);
/* the current draws (host memory, valid until the next sample/set) and their count */
const clpdd_augment_draw *clpdd_augment_draws(const clpdd_augment *a, int *n);
/* the torchvision RandomResizedCrop box for uniforms u[0..39] ∈ [0, 1) (try t uses
   u[4t..4t+3]: area, log-ratio, top, left) — exposed for tests */
void clpdd_augment_crop_box(const clpdd_augment_cfg *cfg, int H, int W, const double *u, float box[4]);

/* out (n, c, H, W) = aug_i(in_i) for i < n ≤ the sampled count; out must not alias in */
void clpdd_augment_forward(clpdd_augment *a, float *out, const float *in, int n);
/* din (n, c, H, W) = (∂aug)ᵀ dout (=) */
void clpdd_augment_backward(clpdd_augment *a, float *din, const float *dout, int n);
/* out (k·n, c, H, W): image j·n + i = aug_{j·n+i}(in_i); k·n ≤ the sampled count */
void clpdd_augment_forward_tiled(clpdd_augment *a, float *out, const float *in, int n, int k);
/* din (n, c, H, W) = Σ_j (∂aug_{j·n+i})ᵀ dout_{j·n+i} (=) */
void clpdd_augment_backward_tiled(clpdd_augment *a, float *din, const float *dout, int n, int k);

#endif
