/* What decides the CPU's rounding: the BLAS build and the library of gemm's small products
 * (core/cpu/ops_cpu_blas.c), and the convolution algorithm (core/cpu/ops_cpu_conv.c). Results computed with one are not bit-equal to another's, so whatever
 * keeps computed numbers (the feature cache's key, core/features/feature_cache.c) names it. */
#ifndef CLPDD_CPU_ARITHMETIC_H
#define CLPDD_CPU_ARITHMETIC_H
#include <stddef.h>

/* e.g. "blas=OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64 small=libxsmm 1.17 cpx"
   ("small=blas" without libxsmm or with $CLPDD_SMALL_GEMM = blas) */
__attribute__((visibility("hidden"))) void cpu_blas_arithmetic(char *out, size_t n);
/* $CLPDD_CONV_ALGO as the conv ops resolved it: "gemm", "winograd", "winograd4" or "auto-f43" (auto:
   F(4,3) up to 32 channels, ops_cpu_conv.c) */
__attribute__((visibility("hidden"))) const char *cpu_conv_algo_name(void);

#endif
