/* Parameterisation of the synthetic images: the vector Adam optimises → images (m, c, H, W).
 *
 *   pixels   the images themselves (values = images, render = copy; clamping to [0, 1] after
 *            each step is left to the caller).
 *   pyramid  LGM's (Cazenavette et al. 2025): levels l = 0 … L−1 of sizes 1×1, 2×2, 4×4, …
 *            (min(2^l, H) × min(2^l, W)), the last one H×W, L = 1 + ⌈log2 max(H, W)⌉; each level
 *            bilinearly upsampled to H×W (align_corners = False) and summed,
 *              z = Σ_l up(P_l),   u = D z (per pixel, across channels),   images = σ(2u),
 *            D = Lucid's colour decorrelation for 3 channels ("color_correlation_svd_sqrt",
 *            ImageNet, divided by its largest column norm: lucid/optvis/param/color.py, also
 *            lucent/optvis/param/color.py), identity for other channel counts or when
 *            decorrelate = 0.
 *
 * Schedule (pyramid): level 0 is optimised from the start and one more level every
 * `pyramid_every` steps: at step t ≥ 1, levels [0, min(L, 1 + ⌊(t − 1)/every⌋)) are active
 * (every = 0: all levels from the start). The vector is laid out level by level, coarsest
 * first, so the active parameters are always a prefix of length clpdd_param_count(); the
 * render sums every level (levels not yet active stay fixed: zero, or the init images in the
 * finest level). Init: init images (host) go into the finest level as D⁻¹·logit(x)/2 (x clamped
 * to [1e-3, 1 − 1e-3]; other levels zero); without them the initially active levels are
 * N(0, init_std²) (Lucid's image init uses sd 0.01) and later levels start at zero, so adding
 * a level does not change the images.
 *
 * Gradients are written (=). Legend: m images, c channels, H×W, px = c·H·W, L levels. */
#ifndef CLPDD_PARAM_H
#define CLPDD_PARAM_H
#include <stddef.h>
#include <stdint.h>

#include "clpdd/plugin.h"
#include "config/kinds.h" /* clpdd_param_kind, its names and clpdd_param_kind_parse */
#include "util/util.h"

typedef struct clpdd_param_cfg {
    clpdd_param_kind kind; /* pixels */
    int pyramid_every;     /* steps between added levels; 0: all at once (200) */
    float init_std;        /* pyramid noise init std (0.01) */
    int decorrelate;       /* pyramid: Lucid's colour decorrelation for 3 channels (1) */
} clpdd_param_cfg;

void clpdd_param_cfg_default(clpdd_param_cfg *cfg);
typedef struct clpdd_param clpdd_param;

/* m images (c, H, W). init_host (m, c, H, W) in [0, 1], host memory, or NULL: pixels then
   start U(0, 1) from (seed, offset 0) — the loop's noise init (core/distill/loop.c) — and pyramids from N(0, init_std²)
   (seed, offset = the level's offset in the vector). */
int clpdd_param_create(clpdd_param **p, const clpdd_host *h, const clpdd_param_cfg *cfg, int m, int c, int H, int W,
                       const float *init_host, uint64_t seed, clpdd_err *e);
void clpdd_param_destroy(clpdd_param *p); /* NULL is a no-op */

/* the parameter vector (op memory, capacity floats); the active part is its prefix of count */
float *clpdd_param_values(clpdd_param *p);
size_t clpdd_param_count(const clpdd_param *p);    /* active (optimised) parameters */
size_t clpdd_param_capacity(const clpdd_param *p); /* all levels */
int clpdd_param_levels(const clpdd_param *p);       /* L (1 for pixels) */
int clpdd_param_active_levels(const clpdd_param *p);
/* level l: offset in the vector, height, width (host ints; any may be NULL) */
void clpdd_param_level(const clpdd_param *p, int l, size_t *offset, int *h, int *w);

/* call once per step t = 1, 2, … before render: advances the schedule. Returns 1 when levels
   were added at this step (count grew: the new parameters are [old count, new count) and are
   zero), else 0. Levels only grow, so a resumed run may jump straight to a later step. */
int clpdd_param_on_step(clpdd_param *p, int step);

/* images (m, c, H, W) in [0, 1] for pyramids (pixels: a copy of the values); images must not
   alias the values */
void clpdd_param_render(clpdd_param *p, float *images);
/* dvalues (capacity) = (∂render)ᵀ dimages at the last render; 0 on inactive levels */
void clpdd_param_backward(clpdd_param *p, float *dvalues, const float *dimages);

/* Adam (ops->adam) on the active prefix, with moment buffers adam_m, adam_v of capacity floats
   that the caller zeroes once at creation, and a per-level step count as torch.optim.Adam keeps
   per parameter: level l, added at step s_l, uses t = step − s_l + 1, so a new level's first
   update is bias-corrected like any first step. pixels: plain Adam at t = step. */
void clpdd_param_adam(clpdd_param *p, float *adam_m, float *adam_v, const float *grad, float lr, float b1, float b2,
                      float eps, float wd);

#endif
