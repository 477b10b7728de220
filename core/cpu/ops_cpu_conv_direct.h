/* The direct AVX-512 forward of the 3×3, pad-1 convolutions Winograd does not take
 * (ops_cpu_conv_direct.c): the GEMM path's results, bit for bit, without the im2col columns. */
#ifndef CLPDD_OPS_CPU_CONV_DIRECT_H
#define CLPDD_OPS_CPU_CONV_DIRECT_H
#include "cpu/ops_cpu.h"

/* 1 when the direct kernel computes conv2d(d) on this CPU: k = 3, pad 1, stride 1 (sides a
   multiple of 16) or 2 (output rows of 8 or a multiple of 16), cout a multiple of 16, no shortcut,
   the packed weights within work; $CLPDD_CONV_DIRECT = 0 turns it off (for A/B runs) */
CPU_FN int cpu_conv_direct_applies(const clpdd_conv2d_desc *d, const float *res, size_t work_floats);
/* conv2d's forward (ops.h), bias and ReLU as d says; work holds the packed weights */
CPU_FN void cpu_conv_direct(float *y, float *work, const float *x, const float *w, const float *bias,
                            const clpdd_conv2d_desc *d);
/* 1 when the direct kernel computes conv2d_backward(d) on this CPU in the order of the GEMM
   path's transposed form (ops_cpu_conv.c, used when it fits the work: the caller checks): stride 1,
   k = 3, pad 1, ≤ 4 input channels (resnet's stem), sides 16 or 32 wide, even height */
CPU_FN int cpu_conv_direct_backward_applies(const clpdd_conv2d_desc *d);
CPU_FN void cpu_conv_direct_backward(float *dx, const float *dy, const float *mask, const float *w,
                                     const clpdd_conv2d_desc *d);
/* how many conv2d and conv2d_backward calls of this process the direct kernel computed (exported for the tests) */
long clpdd_cpu_conv_direct_runs(void);

#endif
