/* clpdd CUDA backend, internal header shared by the .cu files of core/cuda.
 *
 * Error levels: every CUDA runtime, cuBLAS and cuSOLVER call and
 * every kernel launch goes through ONE checking macro, CLPDD_CUDA_CHECK_GEN, which aborts
 * with the statement, the function, file:line and the device. Failures there are hardware
 * or programming errors, never user errors. The only exception is clpdd_ops_cuda()'s own
 * initialisation, which reports "no GPU"-style failures through *why instead.
 *
 * Streams: everything runs on the legacy default stream (cuBLAS/cuSOLVER handles keep
 * stream 0), so ops are ordered with each other and with the synchronous cudaMemcpy of
 * to_device/to_host/copy. The cached scratch buffers below therefore need no extra
 * synchronisation; they are NOT thread-safe (one host thread drives the device).
 *
 * Dimension legend: as in clpdd/ops.h (n batch, C channels, H/W, T tokens, Hh heads,
 * hd head dim, rows/cols, p patch). */
#ifndef CLPDD_CUDA_COMMON_H
#define CLPDD_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <stddef.h>
#include <stdint.h>

#include "clpdd/ops.h"

/* internal symbols stay out of libclpdd's exported interface (as the CPU's CPU_FN) */
#define CLPDD_CUDA_FN __attribute__((visibility("hidden")))

/* ---- the one checking macro ----
   `call` is evaluated once; `ok` is the library's success value; `str` maps the status to
   text. clpdd_cuda_fail prints
     clpdd cuda: <library error text> (status <code>)
       in `<statement>` at <function> (<file>:<line>), device <id> (<name>)
   and aborts. */
[[noreturn]] CLPDD_CUDA_FN void clpdd_cuda_fail(const char *what, int code, const char *stmt, const char *func,
                                  const char *file, int line);
#define CLPDD_CUDA_CHECK_GEN(call, ok, str)                                              \
    do {                                                                                 \
        auto clpdd_status_ = (call);                                                     \
        if (clpdd_status_ != (ok))                                                       \
            clpdd_cuda_fail(str(clpdd_status_), (int)clpdd_status_, #call, __func__,     \
                            __FILE__, __LINE__);                                         \
    } while (0)

CLPDD_CUDA_FN const char *clpdd_cusolver_status_string(cusolverStatus_t s);

#define CUDA_CHECK(call) CLPDD_CUDA_CHECK_GEN(call, cudaSuccess, cudaGetErrorString)
#define CUBLAS_CHECK(call) CLPDD_CUDA_CHECK_GEN(call, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUSOLVER_CHECK(call) \
    CLPDD_CUDA_CHECK_GEN(call, CUSOLVER_STATUS_SUCCESS, clpdd_cusolver_status_string)

/* kernel launch + cudaGetLastError through the same macro; the statement in the message
   names the kernel. A zero-sized grid is a caller bug here (ops return early on empty
   work), so it is left to CUDA to report as an invalid configuration. */
#define CLPDD_LAUNCH(kernel, grid, block, smem, ...)                                      \
    do {                                                                                  \
        kernel<<<(grid), (block), (smem)>>>(__VA_ARGS__);                                 \
        CLPDD_CUDA_CHECK_GEN(cudaGetLastError(), cudaSuccess, cudaGetErrorString);        \
    } while (0)

/* programming errors in arguments (bad dims): abort with file:line like CLPDD_ASSERT */
[[noreturn]] CLPDD_CUDA_FN void clpdd_cuda_assert_fail(const char *cond, const char *func, const char *file,
                                         int line);
#define CLPDD_CUDA_ASSERT(cond) \
    do { if (!(cond)) clpdd_cuda_assert_fail(#cond, __func__, __FILE__, __LINE__); } while (0)

/* ---- backend state (ops_cuda.cu) ---- */
extern CLPDD_CUDA_FN cublasHandle_t clpdd_cuda_blas;
extern CLPDD_CUDA_FN cusolverDnHandle_t clpdd_cuda_solver;
extern CLPDD_CUDA_FN int clpdd_cuda_sm_count; /* multiprocessors of the device, for grid sizing */

/* Cached device scratch that grows on demand (cudaFree + cudaMalloc; both implicitly
   synchronise, so earlier work still using the old buffer has finished). Not counted in
   peak_bytes, which reports memory taken through ops->malloc only. */
typedef struct {
    void *p;
    size_t bytes;
} clpdd_cuda_scratch;
CLPDD_CUDA_FN void *clpdd_cuda_scratch_get(clpdd_cuda_scratch *s, size_t bytes);

/* ---- launch geometry ---- */
#define CLPDD_THREADS 256
/* blocks for a grid-stride loop over n elements (n > 0) */
static inline unsigned clpdd_grid_1d(size_t n) {
    size_t b = (n + CLPDD_THREADS - 1) / CLPDD_THREADS;
    size_t cap = (size_t)(clpdd_cuda_sm_count > 0 ? clpdd_cuda_sm_count : 132) * 32;
    return (unsigned)(b < cap ? b : cap);
}
/* threads per block for one-block-per-row kernels */
static inline unsigned clpdd_row_threads(int cols) {
    return cols <= 32 ? 32u : cols <= 128 ? 128u : cols <= 512 ? 256u : 512u;
}

#define CLPDD_GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---- block reductions (blockDim.x a multiple of 32, at most 1024). `sh` is shared
   storage of 33 elements; safe to call repeatedly with the same `sh`. Every thread gets
   the result. ---- */
template <class T>
__device__ __forceinline__ T clpdd_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float clpdd_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <class T>
__device__ __forceinline__ T clpdd_block_sum(T v, T *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = clpdd_warp_sum(v);
    __syncthreads(); /* previous users of sh are done */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        T t = lane < nw ? sh[lane] : (T)0;
        t = clpdd_warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    return sh[32];
}
__device__ __forceinline__ float clpdd_block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = clpdd_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        float t = lane < nw ? sh[lane] : -INFINITY;
        t = clpdd_warp_max(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    return sh[32];
}

/* ---- row-major (cuBLAS is column-major) GEMM used by gemm, gemm_batched and attention;
   defined in ops_cuda.cu ---- */
CLPDD_CUDA_FN void clpdd_cuda_gemm_strided(int transA, int transB, int M, int N, int K, float alpha,
                             const float *A, int lda, long long strideA, const float *B, int ldb,
                             long long strideB, float beta, float *C, int ldc, long long strideC,
                             int batch);
/* softmax kernels shared with attention (ops_cuda_nn.cu) */
CLPDD_CUDA_FN void clpdd_cuda_softmax_rows(float *y, const float *x, int rows, int cols, float scale);
CLPDD_CUDA_FN void clpdd_cuda_softmax_rows_backward(float *dx, const float *dy, const float *y, int rows,
                                      int cols, float scale);

/* ---- op implementations in ops_cuda_nn.cu, put into the table by ops_cuda.cu ---- */
CLPDD_CUDA_FN void clpdd_cuda_relu(float *y, const float *x, size_t n);
CLPDD_CUDA_FN void clpdd_cuda_relu_backward(float *dx, const float *dy, const float *x, size_t n);
CLPDD_CUDA_FN void clpdd_cuda_gelu(float *y, const float *x, size_t n, clpdd_gelu_kind kind);
CLPDD_CUDA_FN void clpdd_cuda_gelu_backward(float *dx, const float *dy, const float *x, size_t n,
                              clpdd_gelu_kind kind);
CLPDD_CUDA_FN void clpdd_cuda_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels,
                              int rows, int cols, float inv_tau, float grad_scale);
CLPDD_CUDA_FN void clpdd_cuda_onehot(float *Y, const int32_t *labels, int rows, int cols, float on, float off);
CLPDD_CUDA_FN void clpdd_cuda_argmax_rows(int32_t *out, const float *x, int rows, int cols);
CLPDD_CUDA_FN void clpdd_cuda_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int rows, int cols, float eps);
CLPDD_CUDA_FN void clpdd_cuda_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                                   const float *x, const float *mean, const float *rstd,
                                   const float *gamma, int rows, int cols);
CLPDD_CUDA_FN void clpdd_cuda_attention(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd,
                          float scale);
CLPDD_CUDA_FN void clpdd_cuda_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                   const float *att, int n, int T, int Hh, int hd, float scale);
CLPDD_CUDA_FN void clpdd_cuda_patchify(float *y, const float *x, int n, int C, int H, int W, int p);
CLPDD_CUDA_FN void clpdd_cuda_unpatchify(float *dx, const float *dy, int n, int C, int H, int W, int p);
CLPDD_CUDA_FN void clpdd_cuda_im2col(float *col, const float *x, int C, int H, int W, int kh, int kw, int stride,
                       int pad, int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_col2im(float *dx, const float *col, int C, int H, int W, int kh, int kw, int stride,
                       int pad, int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_global_avgpool(float *y, const float *x, int n, int C, int HW);
CLPDD_CUDA_FN void clpdd_cuda_global_avgpool_backward(float *dx, const float *dy, int n, int C, int HW);
CLPDD_CUDA_FN void clpdd_cuda_maxpool(float *y, int32_t *argmax, const float *x, int n, int C, int H, int W,
                        int k, int s, int pad, int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int n, int C,
                                 int H, int W, int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_resize_bilinear(float *y, const float *x, int n, int C, int H, int W, int OH,
                                int OW);
CLPDD_CUDA_FN void clpdd_cuda_resize_bilinear_backward(float *dx, const float *dy, int n, int C, int H, int W,
                                         int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_rand_uniform(float *x, size_t n, float lo, float hi, uint64_t seed,
                             uint64_t offset);
CLPDD_CUDA_FN void clpdd_cuda_rand_normal(float *x, size_t n, float mean, float std, uint64_t seed,
                            uint64_t offset);
CLPDD_CUDA_FN void clpdd_cuda_adam(float *p, float *m, float *v, const float *g, size_t n, float lr, float b1,
                     float b2, float eps, float wd, int t);

#endif
