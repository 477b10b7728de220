/* The per-element arithmetic of GELU (forward and derivative) and of the Adam step, written once
 * for both backends: core/cpu (ops_cpu_nn.c, ops_cpu.c) and core/cuda (ops_cuda_nn.cu) include
 * this header and call these functions, so the CPU tests exercise the arithmetic the GPU runs.
 * Semantics: clpdd/ops.h (gelu, gelu_backward, adam).
 *
 * Arithmetic: float throughout (erff, tanhf, expf, sqrtf), each expression in one fixed order,
 * so the CPU results are those of a plain loop bit for bit; the GPU agrees to a few ulp (CUDA's
 * math library and fused multiply-adds). Only the bias corrections of Adam are computed in
 * float64, once per step, on the host of either backend. No allocation, no I/O. */
#ifndef CLPDD_POINTWISE_H
#define CLPDD_POINTWISE_H
#include <math.h>

#include "clpdd/ops.h"

#ifdef __CUDACC__
#define CLPDD_POINTWISE_FN static inline __host__ __device__
#else
#define CLPDD_POINTWISE_FN static inline
#endif

#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_INV_SQRT_2 0.7071067811865476f
#define GELU_INV_SQRT_2PI 0.3989422804014327f
#define GELU_TANH_C 0.044715f
#define GELU_QUICK_A 1.702f

/* gelu(x) of the given kind (a clpdd_gelu_kind the caller has checked) */
CLPDD_POINTWISE_FN float clpdd_gelu1(float x, int kind) {
    switch (kind) {
    case CLPDD_GELU_ERF: return 0.5f * x * (1.0f + erff(x * GELU_INV_SQRT_2));
    case CLPDD_GELU_TANH: return 0.5f * x * (1.0f + tanhf(GELU_SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)));
    default: return x / (1.0f + expf(-GELU_QUICK_A * x)); /* CLPDD_GELU_QUICK */
    }
}

/* d gelu / dx of the given kind (checked by the caller) */
CLPDD_POINTWISE_FN float clpdd_gelu1_grad(float x, int kind) {
    switch (kind) {
    case CLPDD_GELU_ERF: /* Φ(x) + x·φ(x) */
        return 0.5f * (1.0f + erff(x * GELU_INV_SQRT_2)) + x * GELU_INV_SQRT_2PI * expf(-0.5f * x * x);
    case CLPDD_GELU_TANH: {
        float u = GELU_SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
        float t = tanhf(u);
        float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * x * x);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
    default: { /* CLPDD_GELU_QUICK: σ(ax) + a·x·σ(ax)(1 − σ(ax)) */
        float s = 1.0f / (1.0f + expf(-GELU_QUICK_A * x));
        return s + GELU_QUICK_A * x * s * (1.0f - s);
    }
    }
}

/* Adam's bias correction 1 − βᵗ for step t ≥ 1, in float64 rounded once to float
   (m̂ = m / bc1 with β = b1, v̂ = v / bc2 with β = b2) */
CLPDD_POINTWISE_FN float clpdd_adam_bias_correction(float beta, int t) {
    return (float)(1.0 - pow((double)beta, t));
}

/* one parameter's Adam step with decoupled weight decay, from its gradient g:
   m = b1·m + (1 − b1)·g;  v = b2·v + (1 − b2)·g²;  p −= lr·(m̂ / (√v̂ + eps) + wd·p) */
CLPDD_POINTWISE_FN void clpdd_adam1(float *p, float *m, float *v, float g, float lr, float b1, float b2, float eps,
                                    float wd, float bc1, float bc2) {
    float mi = b1 * *m + (1.0f - b1) * g;
    float vi = b2 * *v + (1.0f - b2) * g * g;
    *m = mi;
    *v = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    *p -= lr * (mhat / (sqrtf(vhat) + eps) + wd * *p);
}

#endif
