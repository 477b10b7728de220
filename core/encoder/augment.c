/* Differentiable augmentation (DSA, LGM's flip + random-resized-crop + noise): see augment.h.
 * Gradients are written (=): din is the adjoint of the crop/flip; the noise is a constant.
 * Legend: n images, c channels, H×W, px = c·H·W, k copies. */
#include "encoder/augment.h"

#include <math.h>
#include <string.h>

#include "numerics/philox.h"

#define AUG_SLOTS 64 /* uniform draws reserved per image: flip, noise, 10 crop tries × 4 */
enum { SLOT_FLIP = 0, SLOT_NOISE = 1, SLOT_CROP = 2, CROP_TRIES = 10 };

struct clpdd_augment {
    const clpdd_host *h;
    clpdd_augment_cfg cfg;
    int c, H, W, max_n;
    size_t px;
    int n;                    /* draws held */
    int any_noise;            /* some draw has noise: forward adds `noise` */
    clpdd_augment_draw *draw; /* (max_n) host */
    float *box_host;          /* (max_n, 4) host staging */
    int32_t *flip_host;       /* (max_n) host staging */
    float *mask_host;         /* (max_n) host staging: 1 with noise, else 0 */
    float *boxes;             /* (max_n, 4) op memory */
    int32_t *flips;           /* (max_n) op memory */
    float *mask, *zero;       /* (max_n) op memory */
    float *noise;             /* (max_n, px) op memory: the additive noise of each draw (0 when off) */
    float *scratch;           /* (max_n/2, px) op memory: one copy's gradient in backward_tiled (k ≥ 2) */
};

void clpdd_augment_cfg_default(clpdd_augment_cfg *cfg) {
    cfg->flip_p = 0.5f;
    cfg->crop = 1;
    cfg->scale_lo = 0.08f;
    cfg->scale_hi = 1.0f;
    cfg->ratio_lo = 3.0f / 4.0f;
    cfg->ratio_hi = 4.0f / 3.0f;
    cfg->noise_p = 0.5f;
    cfg->noise_mean = 0.5f;
    cfg->noise_std = 0.2f;
}

static int prob_ok(float p) { return p >= 0.0f && p <= 1.0f; }

int clpdd_augment_create(clpdd_augment **out, const clpdd_host *h, const clpdd_augment_cfg *cfg, int c, int H,
                         int W, int max_n, clpdd_err *e) {
    *out = NULL;
    if (c <= 0 || H <= 0 || W <= 0 || max_n <= 0)
        return clpdd_err_set(e, "augment: bad image shape (%d, %d, %d) or max_n %d", c, H, W, max_n);
    if (!prob_ok(cfg->flip_p)) return clpdd_err_set(e, "augment: flip probability %g is not in [0, 1]", cfg->flip_p);
    if (!prob_ok(cfg->noise_p)) return clpdd_err_set(e, "augment: noise probability %g is not in [0, 1]", cfg->noise_p);
    if (!(cfg->scale_lo > 0.0f && cfg->scale_lo <= cfg->scale_hi && cfg->scale_hi <= 1.0f))
        return clpdd_err_set(e, "augment: crop scale range [%g, %g] must satisfy 0 < lo <= hi <= 1", cfg->scale_lo,
                             cfg->scale_hi);
    if (!(cfg->ratio_lo > 0.0f && cfg->ratio_lo <= cfg->ratio_hi && isfinite(cfg->ratio_hi)))
        return clpdd_err_set(e, "augment: crop ratio range [%g, %g] must satisfy 0 < lo <= hi", cfg->ratio_lo,
                             cfg->ratio_hi);
    if (!(cfg->noise_std >= 0.0f) || !isfinite(cfg->noise_std) || !isfinite(cfg->noise_mean))
        return clpdd_err_set(e, "augment: noise N(%g, %g^2) must have a finite mean and a finite std >= 0",
                             cfg->noise_mean, cfg->noise_std);
    clpdd_augment *a = clpdd_xcalloc(1, sizeof *a);
    a->h = h;
    a->cfg = *cfg;
    a->c = c;
    a->H = H;
    a->W = W;
    a->max_n = max_n;
    a->px = (size_t)c * H * W;
    a->draw = clpdd_xcalloc((size_t)max_n, sizeof *a->draw);
    a->box_host = clpdd_xcalloc((size_t)max_n * 4, sizeof(float));
    a->flip_host = clpdd_xcalloc((size_t)max_n, sizeof(int32_t));
    a->mask_host = clpdd_xcalloc((size_t)max_n, sizeof(float));
    a->boxes = h->alloc(h, (size_t)max_n * 4 * sizeof(float));
    a->flips = h->alloc(h, (size_t)max_n * sizeof(int32_t));
    a->mask = h->alloc(h, (size_t)max_n * sizeof(float));
    a->zero = h->alloc(h, (size_t)max_n * sizeof(float));
    a->noise = h->alloc(h, (size_t)max_n * a->px * sizeof(float));
    if (max_n >= 2) a->scratch = h->alloc(h, (size_t)(max_n / 2) * a->px * sizeof(float));
    if (!a->boxes || !a->flips || !a->mask || !a->zero || !a->noise || (max_n >= 2 && !a->scratch)) {
        clpdd_augment_destroy(a);
        return clpdd_err_set(e, "augment: out of memory for %d images of %dx%dx%d", max_n, c, H, W);
    }
    h->ops->fill(a->zero, 0.0f, (size_t)max_n);
    *out = a;
    return 0;
}

void clpdd_augment_destroy(clpdd_augment *a) {
    if (!a) return;
    const clpdd_host *h = a->h;
    h->free(h, a->boxes);
    h->free(h, a->flips);
    h->free(h, a->mask);
    h->free(h, a->zero);
    h->free(h, a->noise);
    h->free(h, a->scratch);
    free(a->draw);
    free(a->box_host);
    free(a->flip_host);
    free(a->mask_host);
    free(a);
}

/* torchvision.transforms.RandomResizedCrop.get_params with its uniforms given: Python's round
   is half-to-even, as nearbyint in the default rounding mode; randint(0, r) = ⌊u·r⌋ */
void clpdd_augment_crop_box(const clpdd_augment_cfg *cfg, int H, int W, const double *u, float box[4]) {
    double area = (double)H * W, lr0 = log((double)cfg->ratio_lo), lr1 = log((double)cfg->ratio_hi);
    for (int t = 0; t < CROP_TRIES; t++) {
        const double *ut = u + 4 * t;
        double target = area * (cfg->scale_lo + ((double)cfg->scale_hi - cfg->scale_lo) * ut[0]);
        double ar = exp(lr0 + (lr1 - lr0) * ut[1]);
        int w = (int)nearbyint(sqrt(target * ar)), h = (int)nearbyint(sqrt(target / ar));
        if (0 < w && w <= W && 0 < h && h <= H) {
            int i = (int)(ut[2] * (H - h + 1)), j = (int)(ut[3] * (W - w + 1));
            if (i > H - h) i = H - h;
            if (j > W - w) j = W - w;
            box[0] = (float)i, box[1] = (float)j, box[2] = (float)h, box[3] = (float)w;
            return;
        }
    }
    /* fallback: the central crop of the nearest allowed aspect ratio */
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < cfg->ratio_lo) {
        w = W;
        h = (int)nearbyint(w / (double)cfg->ratio_lo);
    } else if (in_ratio > cfg->ratio_hi) {
        h = H;
        w = (int)nearbyint(h * (double)cfg->ratio_hi);
    } else {
        w = W;
        h = H;
    }
    box[0] = (float)((H - h) / 2), box[1] = (float)((W - w) / 2), box[2] = (float)h, box[3] = (float)w;
}

/* uniform slot k of image g in [0, 1) */
static double aug_u(uint64_t seed, uint64_t g, int k) {
    return 1.0 - (double)clpdd_philox_uniform(seed, g * AUG_SLOTS + (uint64_t)k, 0.0f, 1.0f);
}

/* stage the host draws into op memory and draw the noise tensor */
static void aug_upload(clpdd_augment *a, int n, uint64_t seed, uint64_t counter) {
    const clpdd_ops *ops = a->h->ops;
    a->n = n;
    a->any_noise = 0;
    for (int i = 0; i < n; i++) {
        const clpdd_augment_draw *d = &a->draw[i];
        a->box_host[4 * i + 0] = d->y0;
        a->box_host[4 * i + 1] = d->x0;
        a->box_host[4 * i + 2] = d->h;
        a->box_host[4 * i + 3] = d->w;
        a->flip_host[i] = d->flip ? 1 : 0;
        a->mask_host[i] = d->noise ? 1.0f : 0.0f;
        a->any_noise |= d->noise != 0;
    }
    if (n == 0) return;
    ops->to_device(a->boxes, a->box_host, (size_t)n * 4 * sizeof(float));
    ops->to_device(a->flips, a->flip_host, (size_t)n * sizeof(int32_t));
    if (a->any_noise) {
        /* one draw of the whole block (image i at elements (counter + i)·px …), then the
           images without noise zeroed: noise (1, n, px) ·= mask (per "channel" = image) */
        ops->to_device(a->mask, a->mask_host, (size_t)n * sizeof(float));
        ops->rand_normal(a->noise, (size_t)n * a->px, a->cfg.noise_mean, a->cfg.noise_std, seed, counter * a->px);
        ops->channel_affine(a->noise, a->noise, a->mask, a->zero, 1, n, (int)a->px);
    }
}

void clpdd_augment_sample(clpdd_augment *a, int n, uint64_t seed, uint64_t counter) {
    CLPDD_ASSERT(n >= 0 && n <= a->max_n);
    const clpdd_augment_cfg *cfg = &a->cfg;
    for (int i = 0; i < n; i++) {
        uint64_t g = counter + (uint64_t)i;
        clpdd_augment_draw *d = &a->draw[i];
        d->flip = aug_u(seed, g, SLOT_FLIP) < cfg->flip_p;
        d->noise = aug_u(seed, g, SLOT_NOISE) < cfg->noise_p;
        float box[4] = {0.0f, 0.0f, (float)a->H, (float)a->W};
        if (cfg->crop) {
            double u[4 * CROP_TRIES];
            for (int k = 0; k < 4 * CROP_TRIES; k++) u[k] = aug_u(seed, g, SLOT_CROP + k);
            clpdd_augment_crop_box(cfg, a->H, a->W, u, box);
        }
        d->y0 = box[0], d->x0 = box[1], d->h = box[2], d->w = box[3];
    }
    aug_upload(a, n, seed, counter);
}

void clpdd_augment_set(clpdd_augment *a, int n, const clpdd_augment_draw *d, uint64_t seed, uint64_t counter) {
    CLPDD_ASSERT(n >= 0 && n <= a->max_n);
    if (n) memcpy(a->draw, d, (size_t)n * sizeof *d);
    aug_upload(a, n, seed, counter);
}

const clpdd_augment_draw *clpdd_augment_draws(const clpdd_augment *a, int *n) {
    if (n) *n = a->n;
    return a->draw;
}

void clpdd_augment_forward_tiled(clpdd_augment *a, float *out, const float *in, int n, int k) {
    const clpdd_ops *ops = a->h->ops;
    CLPDD_ASSERT(n >= 0 && k >= 1 && (long long)n * k <= a->n);
    for (int j = 0; j < k; j++)
        ops->crop_resize_bilinear(out + (size_t)j * n * a->px, in, a->boxes + (size_t)4 * j * n, a->flips + (size_t)j * n,
                                  n, a->c, a->H, a->W, a->H, a->W);
    if (a->any_noise) ops->axpy(out, 1.0f, a->noise, (size_t)n * k * a->px);
}

void clpdd_augment_backward_tiled(clpdd_augment *a, float *din, const float *dout, int n, int k) {
    const clpdd_ops *ops = a->h->ops;
    CLPDD_ASSERT(n >= 0 && k >= 1 && (long long)n * k <= a->n);
    ops->crop_resize_bilinear_backward(din, dout, a->boxes, a->flips, n, a->c, a->H, a->W, a->H, a->W);
    for (int j = 1; j < k; j++) {
        ops->crop_resize_bilinear_backward(a->scratch, dout + (size_t)j * n * a->px, a->boxes + (size_t)4 * j * n,
                                           a->flips + (size_t)j * n, n, a->c, a->H, a->W, a->H, a->W);
        ops->axpy(din, 1.0f, a->scratch, (size_t)n * a->px);
    }
}

void clpdd_augment_forward(clpdd_augment *a, float *out, const float *in, int n) {
    clpdd_augment_forward_tiled(a, out, in, n, 1);
}

void clpdd_augment_backward(clpdd_augment *a, float *din, const float *dout, int n) {
    clpdd_augment_backward_tiled(a, din, dout, n, 1);
}
