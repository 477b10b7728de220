/* Winograd F(2×2, 3×3) and F(4×4, 3×3) for the stride-1, pad-1, 3×3 convolutions of the conv2d
 * ops (ops_cpu_winograd.c, ops_cpu_winograd4.c; selected in ops_cpu_conv.c by $CLPDD_CONV_ALGO). */
#ifndef CLPDD_OPS_CPU_WINOGRAD_H
#define CLPDD_OPS_CPU_WINOGRAD_H
#include "cpu/ops_cpu.h"

/* 1 when d is a convolution Winograd F(2,3) computes (k = 3, stride 1, pad 1) */
CPU_FN int cpu_wino_applies(const clpdd_conv2d_desc *d);
/* the tile side (2: F(2,3), 4: F(4,3)) Winograd uses for d when asked for tile (0: auto, 2, 4):
   F(4,3) only when asked for and where it applies */
CPU_FN int cpu_wino_tile(const clpdd_conv2d_desc *d, int tile);
/* the conv2d / conv2d_backward ops by Winograd; 0 (nothing written) when d does not apply or
   work cannot hold the transformed weights and one image's tiles: the caller falls back; else the
   tile side used (2 or 4); tile as cpu_wino_tile's */
CPU_FN int cpu_wino_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w,
                           const float *bias, const float *res, const clpdd_conv2d_desc *d, int tile);
CPU_FN int cpu_wino_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy,
                                    const float *mask, const float *w, const clpdd_conv2d_desc *d, int tile);

/* how many conv2d / conv2d_backward calls of this process Winograd computed (exported: the tests
   check which path $CLPDD_CONV_ALGO = auto takes) */
long clpdd_cpu_conv_winograd_runs(void);
/* how many of them F(4×4, 3×3) computed ($CLPDD_CONV_ALGO = winograd4) */
long clpdd_cpu_conv_winograd4_runs(void);
/* how many of them the fused AVX-512 F(2,3) kernel computed (ops_cpu_winograd_fused.c) */
long clpdd_cpu_conv_winograd_fused_runs(void);

#endif
