/* The adapter: dataset images (n, c_in, H_in, W_in) in [0, 1] → backbone input
 * (n, c_out, H_out, W_out), normalised with the backbone's mean/std. Applied to real and
 * synthetic images alike, and differentiable, so both are compared on equal terms.
 *   forward:  bilinear resize (when sizes differ) → grey→RGB replication (1 → 3 channels)
 *             → (x − mean_c)/std_c
 *   backward: the adjoint of each step in reverse. */
#ifndef CLPDD_ADAPTER_H
#define CLPDD_ADAPTER_H
#include "clpdd/plugin.h"
#include "util.h"

typedef struct clpdd_adapter {
    const clpdd_host *h;
    int c_in, H_in, W_in, c_out, H_out, W_out, max_n;
    float *scale, *shift; /* (c_out) 1/std, −mean/std */
    float *resized;       /* (max_n, c_in, H_out, W_out) or NULL */
    float *grad;          /* (max_n, c_out, H_out, W_out) scratch for backward */
} clpdd_adapter;

int clpdd_adapter_init(clpdd_adapter *a, const clpdd_host *h, int c_in, int H_in, int W_in,
                       const clpdd_backbone_info *info, int max_n, clpdd_err *e);
void clpdd_adapter_free(clpdd_adapter *a);
/* out (n, c_out, H_out, W_out) = adapt(in (n, c_in, H_in, W_in)), n ≤ max_n */
void clpdd_adapter_forward(clpdd_adapter *a, float *out, const float *in, int n);
/* din (n, c_in, H_in, W_in) = (∂adapt)ᵀ dout */
void clpdd_adapter_backward(clpdd_adapter *a, float *din, const float *dout, int n);

#endif
