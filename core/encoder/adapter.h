/* The adapter: dataset images (n, c_in, H_in, W_in) in [0, 1] → backbone input
 * (n, c_out, H_out, W_out), normalised with the backbone's mean/std. Applied to real and
 * synthetic images alike, and differentiable, so both are compared on equal terms.
 *   forward:  size (when sizes differ, by `mode`) → grey→RGB replication (1 → 3 channels)
 *             → (x − mean_c)/std_c
 *   backward: the adjoint of each step in reverse.
 * Size modes ([data] adapt):
 *   resize  bilinear resampling (PyTorch align_corners = False, no antialiasing)
 *   pad     zero padding of the [0, 1] image, centred: (H_out − H_in)/2 rows above (the odd
 *           one below), likewise columns; Fashion-MNIST 28×28 → 32×32 is 2 pixels on every
 *           side, as CIFAR-trained models are usually fed MNIST-like digits. The padding is
 *           0 (black) before normalisation. Backward = crop. Needs H_out ≥ H_in, W_out ≥ W_in.
 *   crop    the centred H_out × W_out window (torchvision CenterCrop's rounding), as LGM feeds
 *           256-pixel images to a 224 backbone; backward = zero padding. Needs H_out ≤ H_in. */
#ifndef CLPDD_ADAPTER_H
#define CLPDD_ADAPTER_H
#include "clpdd/plugin.h"
#include "config/kinds.h" /* clpdd_adapt_mode, its names and clpdd_adapter_mode_parse */
#include "util/util.h"

typedef struct clpdd_adapter {
    const clpdd_host *h;
    int c_in, H_in, W_in, c_out, H_out, W_out, max_n;
    clpdd_adapt_mode mode;
    int pad_top, pad_left; /* pad: where the image sits in the output; crop: where the window sits in the image */
    float *scale, *shift;  /* (c_out) 1/std, −mean/std */
    float *resized;        /* (max_n, c_in, H_out, W_out), resized or padded; NULL when sizes agree */
    float *grad;           /* (max_n, c_out, H_out, W_out) scratch for backward */
} clpdd_adapter;

int clpdd_adapter_init_mode(clpdd_adapter *a, const clpdd_host *h, int c_in, int H_in, int W_in,
                            const clpdd_backbone_info *info, int max_n, clpdd_adapt_mode mode, clpdd_err *e);
/* = clpdd_adapter_init_mode(..., CLPDD_ADAPT_RESIZE, e) */
int clpdd_adapter_init(clpdd_adapter *a, const clpdd_host *h, int c_in, int H_in, int W_in,
                       const clpdd_backbone_info *info, int max_n, clpdd_err *e);
void clpdd_adapter_free(clpdd_adapter *a);
/* out (n, c_out, H_out, W_out) = adapt(in (n, c_in, H_in, W_in)), n ≤ max_n */
void clpdd_adapter_forward(clpdd_adapter *a, float *out, const float *in, int n);
/* din (n, c_in, H_in, W_in) = (∂adapt)ᵀ dout */
void clpdd_adapter_backward(clpdd_adapter *a, float *din, const float *dout, int n);

#endif
