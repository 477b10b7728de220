/* Internal header of the CPU reference backend (core/cpu): the op functions that
 * ops_cpu.c gathers into the clpdd_ops table, and the OpenMP helper macro.
 *
 * Gradient convention (as in ops.h): activation gradients are written (=); parameter
 * gradients (layernorm dgamma/dbeta) accumulate (+=).
 *
 * Dimension legend: n batch, C channels, H/W height/width, T tokens, Hh heads, hd head
 * dim, D = Hh·hd model width, p patch size, rows/cols of a matrix. */
#ifndef CLPDD_OPS_CPU_H
#define CLPDD_OPS_CPU_H
#include "clpdd/ops.h"
#include "util/util.h"
#include <stdlib.h>

/* CLPDD_OMP(omp parallel for ...) expands to the pragma when the build has OpenMP and to
   nothing otherwise (no unknown-pragma warnings). Never call BLAS inside such a loop: the
   pthread OpenBLAS warns about (and can hang in) OpenMP regions. */
#ifdef _OPENMP
#define CLPDD_OMP(x) _Pragma(#x)
#else
#define CLPDD_OMP(x)
#endif

/* below this many floats of work a loop runs serially (thread start-up costs more) */
#define CLPDD_CPU_PAR_MIN 32768

#define CPU_FN __attribute__((visibility("hidden")))

/* the AVX-512 kernels' gate (ops_cpu.c): 1 when this CPU has AVX-512F and the switch `env`
   (CLPDD_WINO_FUSED, CLPDD_CONV_DIRECT) is not "0". The switch is read per call: the tests compare
   both paths in one process */
CPU_FN int cpu_avx512_kernels(const char *env);

/* ops_cpu_blas.c */
CPU_FN void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
CPU_FN void cpu_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                             int lda, long long strideA, const float *B, int ldb, long long strideB,
                             float beta, float *C, int ldc, long long strideC, int batch);
CPU_FN void cpu_syrk(int trans, int N, int K, float alpha, const float *A, int lda, float beta, float *C,
                     int ldc);
CPU_FN int cpu_potrf(float *A, int n, int lda);
CPU_FN void cpu_potrs(const float *L, int n, int lda, float *B, int nrhs, int ldb);

/* ops_cpu_nn.c */
CPU_FN void cpu_relu(float *y, const float *x, size_t n);
CPU_FN void cpu_relu_backward(float *dx, const float *dy, const float *x, size_t n);
CPU_FN void cpu_gelu(float *y, const float *x, size_t n, clpdd_gelu_kind kind);
CPU_FN void cpu_gelu_backward(float *dx, const float *dy, const float *x, size_t n, clpdd_gelu_kind kind);
CPU_FN void cpu_softmax_rows(float *y, const float *x, int rows, int cols, float scale);
CPU_FN void cpu_softmax_rows_backward(float *dx, const float *dy, const float *y, int rows, int cols,
                                      float scale);
CPU_FN void cpu_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels, int rows,
                              int cols, float inv_tau, float grad_scale);
CPU_FN void cpu_onehot(float *Y, const int32_t *labels, int rows, int cols, float on, float off);
CPU_FN void cpu_argmax_rows(int32_t *out, const float *x, int rows, int cols);
CPU_FN void cpu_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int rows, int cols, float eps);
CPU_FN void cpu_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                   const float *mean, const float *rstd, const float *gamma, int rows,
                                   int cols);
CPU_FN void cpu_attention(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd,
                          float scale);
CPU_FN void cpu_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                   const float *att, int n, int T, int Hh, int hd, float scale);

/* ops_cpu_image.c */
CPU_FN void cpu_patchify(float *y, const float *x, int n, int C, int H, int W, int p);
CPU_FN void cpu_unpatchify(float *dx, const float *dy, int n, int C, int H, int W, int p);
CPU_FN void cpu_im2col(float *col, const float *x, int C, int H, int W, int kh, int kw, int stride, int pad,
                       int OH, int OW);
CPU_FN void cpu_col2im(float *dx, const float *col, int C, int H, int W, int kh, int kw, int stride,
                       int pad, int OH, int OW);
CPU_FN void cpu_global_avgpool(float *y, const float *x, int n, int C, int HW);
CPU_FN void cpu_global_avgpool_backward(float *dx, const float *dy, int n, int C, int HW);
CPU_FN void cpu_maxpool(float *y, int32_t *argmax, const float *x, int n, int C, int H, int W, int k, int s,
                        int pad, int OH, int OW);
CPU_FN void cpu_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int n, int C, int H,
                                 int W, int OH, int OW);
CPU_FN void cpu_resize_bilinear(float *y, const float *x, int n, int C, int H, int W, int OH, int OW);
CPU_FN void cpu_resize_bilinear_backward(float *dx, const float *dy, int n, int C, int H, int W, int OH,
                                         int OW);

/* ---- transformer extras (ABI 1.1): ops_cpu_transformer.c ---- */
CPU_FN void cpu_rope(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld, int nblk, int hd,
                     int inverse);
CPU_FN void cpu_swiglu(float *y, const float *u, int rows, int F);
CPU_FN void cpu_swiglu_backward(float *du, const float *dy, const float *u, int rows, int F);

/* ---- convolution (ABI 1.2): ops_cpu_conv.c ---- */
CPU_FN void cpu_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w, const float *bias,
                       const float *res, const clpdd_conv2d_desc *d);
CPU_FN void cpu_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy, const float *mask,
                                const float *w, const clpdd_conv2d_desc *d);

/* ---- fused attention (ABI 1.3): ops_cpu_attention_fused.c ---- */
CPU_FN void cpu_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale);
CPU_FN void cpu_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out,
                                         const float *lse, const float *qkv, int n, int T, int Hh, int hd,
                                         float scale);

/* ops_cpu_random.c */
CPU_FN void cpu_rand_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t offset);
CPU_FN void cpu_rand_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t offset);

/* ---- augmentation (ABI 1.1): ops_cpu_augment.c ---- */
CPU_FN void cpu_crop_resize_bilinear(float *y, const float *x, const float *boxes, const int32_t *flips, int n, int C,
                                     int H, int W, int OH, int OW);
CPU_FN void cpu_crop_resize_bilinear_backward(float *dx, const float *dy, const float *boxes, const int32_t *flips,
                                              int n, int C, int H, int W, int OH, int OW);

#endif
