/* clpdd CUDA backend, part 1: initialisation and the op table, the one checking macro's
 * failure path, memory, elementwise and 2-D layout ops, reductions to the host, and
 * BLAS/LAPACK through cuBLAS/cuSOLVER. Part 2 (ops_cuda_nn.cu) has the network ops.
 *
 * Every op follows clpdd/ops.h exactly ("=" overwrites, "+=" accumulates). Where a
 * "beta" coefficient is 0 the output is not read (BLAS convention), so an uninitialised
 * or NaN output buffer is simply overwritten.
 *
 * Dimension legend: rows/cols of a matrix; M, N, K as in GEMM (op(A) M×K, op(B) K×N). */
#include "cuda_common.h"
#include "clpdd/plugin.h" /* CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR: the module's ABI stamp */

#include <cuda_fp16.h>

#include <math.h>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unordered_map>

/* ------------------------------------------------------------------------------------ */
/* the one checking macro's failure path                                                 */

void clpdd_cuda_fail(const char *what, int code, const char *stmt, const char *func,
                     const char *file, int line) {
    int dev = -1;
    char name[256] = "?";
    /* best effort: after a sticky error these may fail too; never recurse into the macro */
    if (cudaGetDevice(&dev) == cudaSuccess) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) snprintf(name, sizeof name, "%s", prop.name);
    }
    fprintf(stderr, "clpdd cuda: %s (status %d)\n  in `%s` at %s (%s:%d), device %d (%s)\n", what,
            code, stmt, func, file, line, dev, name);
    fflush(stderr);
    abort();
}

void clpdd_cuda_assert_fail(const char *cond, const char *func, const char *file, int line) {
    fprintf(stderr, "clpdd cuda: internal error: %s in %s (%s:%d)\n", cond, func, file, line);
    fflush(stderr);
    abort();
}

const char *clpdd_cusolver_status_string(cusolverStatus_t s) {
    switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    default: return "unknown cuSOLVER status";
    }
}

/* ------------------------------------------------------------------------------------ */
/* state                                                                                 */

cublasHandle_t clpdd_cuda_blas = nullptr;
cusolverDnHandle_t clpdd_cuda_solver = nullptr;
int clpdd_cuda_sm_count = 0;

void *clpdd_cuda_scratch_get(clpdd_cuda_scratch *s, size_t bytes) {
    if (bytes <= s->bytes && s->p) return s->p;
    if (s->p) CUDA_CHECK(cudaFree(s->p));
    s->p = nullptr;
    s->bytes = 0;
    size_t want = bytes < 256 ? 256 : bytes;
    want += want / 4; /* some headroom so slowly growing requests do not realloc every time */
    CUDA_CHECK(cudaMalloc(&s->p, want));
    s->bytes = want;
    return s->p;
}

static clpdd_cuda_scratch g_reduce;     /* partial sums of dot/sum/all_finite */
static clpdd_cuda_scratch g_solver_ws;  /* cusolverDnSpotrf workspace + devInfo */
static clpdd_cuda_scratch g_colsum;     /* partial column sums of sum_rows */

/* ------------------------------------------------------------------------------------ */
/* memory: cudaMalloc with bytes-in-use and high-water tracking                          */

static std::mutex g_mem_mutex;
static std::unordered_map<void *, size_t> *g_live; /* device pointer → requested bytes */
static size_t g_in_use, g_peak;

static void *cuda_malloc(size_t bytes) {
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError(); /* out of memory is not sticky: clear it, report NULL */
        return nullptr;
    }
    CUDA_CHECK(e); /* anything else is a device fault */
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    (*g_live)[p] = bytes;
    g_in_use += bytes;
    if (g_in_use > g_peak) g_peak = g_in_use;
    return p;
}

static void cuda_free(void *p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> lock(g_mem_mutex);
        auto it = g_live->find(p);
        CLPDD_CUDA_ASSERT(it != g_live->end() && "free of a pointer not from ops->malloc");
        g_in_use -= it->second;
        g_live->erase(it);
    }
    CUDA_CHECK(cudaFree(p));
}

static void cuda_to_device(void *dst, const void *src_host, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}
static void cuda_to_host(void *dst_host, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}
static void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}
static void cuda_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }
static size_t cuda_peak_bytes(void) {
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    return g_peak;
}

/* ------------------------------------------------------------------------------------ */
/* elementwise over n floats (grid-stride loops; every output element is written by the
   same thread that reads its inputs, so in-place use is safe)                           */

__global__ void k_fill(float *x, float v, size_t n) { CLPDD_GRID_STRIDE(i, n) x[i] = v; }
__global__ void k_scale(float *x, float a, size_t n) { CLPDD_GRID_STRIDE(i, n) x[i] *= a; }
__global__ void k_axpy(float *y, float a, const float *x, size_t n) {
    CLPDD_GRID_STRIDE(i, n) y[i] += a * x[i];
}
__global__ void k_axpby(float *out, float a, const float *x, float b, const float *y, size_t n) {
    CLPDD_GRID_STRIDE(i, n) out[i] = a * x[i] + b * y[i];
}
__global__ void k_mul(float *out, const float *x, const float *y, size_t n) {
    CLPDD_GRID_STRIDE(i, n) out[i] = x[i] * y[i];
}
__global__ void k_clamp(float *x, float lo, float hi, size_t n) {
    CLPDD_GRID_STRIDE(i, n) x[i] = fminf(fmaxf(x[i], lo), hi);
}
__global__ void k_sigmoid(float *y, const float *x, size_t n) {
    CLPDD_GRID_STRIDE(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void cuda_fill(float *x, float v, size_t n) {
    if (n) CLPDD_LAUNCH(k_fill, clpdd_grid_1d(n), CLPDD_THREADS, 0, x, v, n);
}
static void cuda_scale(float *x, float a, size_t n) {
    if (n) CLPDD_LAUNCH(k_scale, clpdd_grid_1d(n), CLPDD_THREADS, 0, x, a, n);
}
static void cuda_axpy(float *y, float a, const float *x, size_t n) {
    if (n) CLPDD_LAUNCH(k_axpy, clpdd_grid_1d(n), CLPDD_THREADS, 0, y, a, x, n);
}
static void cuda_axpby(float *out, float a, const float *x, float b, const float *y, size_t n) {
    if (n) CLPDD_LAUNCH(k_axpby, clpdd_grid_1d(n), CLPDD_THREADS, 0, out, a, x, b, y, n);
}
static void cuda_mul(float *out, const float *x, const float *y, size_t n) {
    if (n) CLPDD_LAUNCH(k_mul, clpdd_grid_1d(n), CLPDD_THREADS, 0, out, x, y, n);
}
static void cuda_clamp(float *x, float lo, float hi, size_t n) {
    if (n) CLPDD_LAUNCH(k_clamp, clpdd_grid_1d(n), CLPDD_THREADS, 0, x, lo, hi, n);
}
static void cuda_sigmoid(float *y, const float *x, size_t n) {
    if (n) CLPDD_LAUNCH(k_sigmoid, clpdd_grid_1d(n), CLPDD_THREADS, 0, y, x, n);
}

/* ------------------------------------------------------------------------------------ */
/* 2-D layout                                                                            */

/* dst (rows, ldd), src (rows, lds) or one row when lds = 0 */
__global__ void k_copy2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                         size_t cols) {
    CLPDD_GRID_STRIDE(i, rows * cols) {
        size_t r = i / cols, c = i % cols;
        dst[r * ldd + c] = src[r * lds + c];
    }
}
__global__ void k_add2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                        size_t cols) {
    CLPDD_GRID_STRIDE(i, rows * cols) {
        size_t r = i / cols, c = i % cols;
        dst[r * ldd + c] += src[r * lds + c];
    }
}
static void cuda_copy2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                        size_t cols) {
    if (rows && cols) CLPDD_LAUNCH(k_copy2d, clpdd_grid_1d(rows * cols), CLPDD_THREADS, 0, dst, ldd, src, lds, rows, cols);
}
static void cuda_add2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                       size_t cols) {
    if (rows && cols) CLPDD_LAUNCH(k_add2d, clpdd_grid_1d(rows * cols), CLPDD_THREADS, 0, dst, ldd, src, lds, rows, cols);
}

/* Column sums, deterministic two-pass: block (32, 8) owns 32 columns × one chunk of rows
   (blockIdx.y); its partial goes to part[blockIdx.y·cols + c]; k_colsum_finish adds the
   chunks in order. No atomics, so results are bitwise reproducible. */
#define COLSUM_TX 32
#define COLSUM_TY 8
__global__ void k_colsum_partial(float *part, const float *x, size_t rows, size_t cols,
                                 size_t rows_per_chunk) {
    __shared__ float sh[COLSUM_TY][COLSUM_TX + 1];
    size_t c = (size_t)blockIdx.x * COLSUM_TX + threadIdx.x;
    size_t r0 = (size_t)blockIdx.y * rows_per_chunk;
    size_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    float acc = 0.0f;
    if (c < cols)
        for (size_t r = r0 + threadIdx.y; r < r1; r += COLSUM_TY) acc += x[r * cols + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int k = 0; k < COLSUM_TY; k++) s += sh[k][threadIdx.x];
        part[(size_t)blockIdx.y * cols + c] = s;
    }
}
/* out[c] = beta·out[c] + Σ_k part[k·cols + c]; beta = 0 does not read out */
__global__ void k_colsum_finish(float *out, const float *part, int nchunks, size_t cols, float beta) {
    CLPDD_GRID_STRIDE(c, cols) {
        float s = 0.0f;
        for (int k = 0; k < nchunks; k++) s += part[(size_t)k * cols + c];
        out[c] = beta == 0.0f ? s : beta * out[c] + s;
    }
}
static void cuda_sum_rows(float *out, const float *x, size_t rows, size_t cols, float beta) {
    if (!cols) return;
    if (!rows) { /* empty sum */
        if (beta == 0.0f) cuda_fill(out, 0.0f, cols);
        else cuda_scale(out, beta, cols);
        return;
    }
    unsigned gx = (unsigned)((cols + COLSUM_TX - 1) / COLSUM_TX);
    /* enough chunks to fill the device (~4 blocks per SM), each at least 64 rows */
    size_t want = (size_t)clpdd_cuda_sm_count * 4 / gx + 1;
    size_t max_chunks = (rows + 63) / 64;
    size_t nchunks = want < max_chunks ? want : max_chunks;
    if (nchunks > 1024) nchunks = 1024;
    size_t rpc = (rows + nchunks - 1) / nchunks;
    nchunks = (rows + rpc - 1) / rpc;
    float *part = (float *)clpdd_cuda_scratch_get(&g_colsum, nchunks * cols * sizeof(float));
    dim3 grid(gx, (unsigned)nchunks), block(COLSUM_TX, COLSUM_TY);
    CLPDD_LAUNCH(k_colsum_partial, grid, block, 0, part, x, rows, cols, rpc);
    CLPDD_LAUNCH(k_colsum_finish, clpdd_grid_1d(cols), CLPDD_THREADS, 0, out, part, (int)nchunks, cols, beta);
}

/* dst[i, :] = src[idx[i], :] */
__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, size_t nidx,
                              size_t cols) {
    CLPDD_GRID_STRIDE(i, nidx * cols) {
        size_t r = i / cols, c = i % cols;
        dst[i] = src[(size_t)idx[r] * cols + c];
    }
}
static void cuda_gather_rows(float *dst, const float *src, const int32_t *idx, size_t nidx, size_t cols) {
    if (nidx && cols) CLPDD_LAUNCH(k_gather_rows, clpdd_grid_1d(nidx * cols), CLPDD_THREADS, 0, dst, src, idx, nidx, cols);
}

/* (n, C, HW): y = x·scale[c] + shift[c] (shift may be NULL in the backward use) */
__global__ void k_channel_affine(float *y, const float *x, const float *scale, const float *shift,
                                 int C, size_t HW, size_t total) {
    CLPDD_GRID_STRIDE(i, total) {
        int c = (int)((i / HW) % (size_t)C);
        y[i] = x[i] * scale[c] + (shift ? shift[c] : 0.0f);
    }
}
static void cuda_channel_affine(float *y, const float *x, const float *scale, const float *shift,
                                int n, int C, int HW) {
    size_t total = (size_t)n * C * HW;
    if (total) CLPDD_LAUNCH(k_channel_affine, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, x, scale, shift, C, (size_t)HW, total);
}
static void cuda_channel_affine_backward(float *dx, const float *dy, const float *scale, int n,
                                         int C, int HW) {
    size_t total = (size_t)n * C * HW;
    if (total) CLPDD_LAUNCH(k_channel_affine, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, scale, (const float *)nullptr, C, (size_t)HW, total);
}

/* ------------------------------------------------------------------------------------ */
/* reductions returned to the host: double accumulation, deterministic two-pass (one
   partial per block, then one block adds the partials in a fixed order)               */

#define REDUCE_MAX_BLOCKS 1024
__global__ void k_dot_partial(double *part, const float *x, const float *y, size_t n) {
    __shared__ double sh[33];
    double acc = 0.0;
    CLPDD_GRID_STRIDE(i, n) acc += (double)x[i] * (double)(y ? y[i] : 1.0f);
    acc = clpdd_block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}
__global__ void k_sum_partials(double *out, const double *part, int nparts) {
    __shared__ double sh[33];
    double acc = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += part[i];
    acc = clpdd_block_sum(acc, sh);
    if (threadIdx.x == 0) *out = acc;
}
static double reduce_dot(const float *x, const float *y, size_t n) {
    if (!n) return 0.0;
    unsigned nb = clpdd_grid_1d(n);
    if (nb > REDUCE_MAX_BLOCKS) nb = REDUCE_MAX_BLOCKS;
    double *part = (double *)clpdd_cuda_scratch_get(&g_reduce, (REDUCE_MAX_BLOCKS + 1) * sizeof(double));
    CLPDD_LAUNCH(k_dot_partial, nb, CLPDD_THREADS, 0, part, x, y, n);
    CLPDD_LAUNCH(k_sum_partials, 1, 1024, 0, part + REDUCE_MAX_BLOCKS, part, (int)nb);
    double r = 0.0;
    CUDA_CHECK(cudaMemcpy(&r, part + REDUCE_MAX_BLOCKS, sizeof r, cudaMemcpyDeviceToHost));
    return r;
}
static double cuda_dot(const float *x, const float *y, size_t n) { return reduce_dot(x, y, n); }
static double cuda_sum(const float *x, size_t n) { return reduce_dot(x, nullptr, n); }

__global__ void k_any_nonfinite(int *flag, const float *x, size_t n) {
    int bad = 0;
    CLPDD_GRID_STRIDE(i, n) bad |= !isfinite(x[i]);
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(flag, 1);
}
static int cuda_all_finite(const float *x, size_t n) {
    if (!n) return 1;
    int *flag = (int *)clpdd_cuda_scratch_get(&g_reduce, (REDUCE_MAX_BLOCKS + 1) * sizeof(double));
    CUDA_CHECK(cudaMemset(flag, 0, sizeof(int)));
    CLPDD_LAUNCH(k_any_nonfinite, clpdd_grid_1d(n), CLPDD_THREADS, 0, flag, x, n);
    int bad = 0;
    CUDA_CHECK(cudaMemcpy(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost));
    return !bad;
}

/* ------------------------------------------------------------------------------------ */
/* BLAS / LAPACK                                                                         */

/* Row-major on column-major cuBLAS. A row-major r×c matrix with leading dimension ld is,
   byte for byte, the column-major c×r matrix (its transpose) with the same ld. So
     C = α·op(A)·op(B) + β·C              (row-major, C M×N)
   ⇔ Cᵀ = α·op(B)ᵀ·op(A)ᵀ + β·Cᵀ         (column-major, Cᵀ N×M)
   and op(B)ᵀ is B's memory taken as-is when transB = 0 (CUBLAS_OP_N) and transposed
   when transB = 1 (CUBLAS_OP_T); likewise A. Hence
     cublasSgemm(opB, opA, m = N, n = M, k = K, B, ldb, A, lda, C, ldc).
   Leading-dimension rules carry over: row-major B (K×N, transB = 0) has ldb ≥ N = m. */
/* row-major C (M, N, ldc) = beta·C; beta = 0 writes zeros without reading C */
__global__ void k_scale_matrix(float *C, size_t ldc, size_t M, size_t N, float beta) {
    CLPDD_GRID_STRIDE(i, M * N) {
        size_t r = i / N, c = i % N;
        C[r * ldc + c] = beta == 0.0f ? 0.0f : beta * C[r * ldc + c];
    }
}
static void scale_matrix_rm(float *C, int ldc, int M, int N, float beta) {
    if (M > 0 && N > 0 && beta != 1.0f)
        CLPDD_LAUNCH(k_scale_matrix, clpdd_grid_1d((size_t)M * N), CLPDD_THREADS, 0, C, (size_t)ldc, (size_t)M, (size_t)N, beta);
}

static inline cublasOperation_t op_of(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* set_precision (ABI 1.3): fp32 keeps cublasSgemm (CUBLAS_DEFAULT_MATH, pinned at init: no
   silent tf32); tf32 and bf16 go through cublasGemmEx with fp32 pointers and a "fast" compute
   type, so cuBLAS rounds the inputs to that format for the tensor cores and accumulates in
   fp32: no conversion buffers, and the callers' memory stays fp32. */
static clpdd_precision g_precision = CLPDD_PRECISION_FP32;
static clpdd_precision cuda_set_precision(clpdd_precision p) {
    CLPDD_CUDA_ASSERT((unsigned)p < CLPDD_PRECISION_COUNT);
    clpdd_precision before = g_precision;
    g_precision = p;
    return before;
}
/* set_precision takes every precision, so the answer is p itself */
static clpdd_precision cuda_precision_supported(clpdd_precision p) {
    CLPDD_CUDA_ASSERT((unsigned)p < CLPDD_PRECISION_COUNT);
    return p;
}
static cublasComputeType_t compute_type(void) {
    return g_precision == CLPDD_PRECISION_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
           : g_precision == CLPDD_PRECISION_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                 : CUBLAS_COMPUTE_32F;
}

void clpdd_cuda_gemm_strided(int transA, int transB, int M, int N, int K, float alpha,
                             const float *A, int lda, long long strideA, const float *B, int ldb,
                             long long strideB, float beta, float *C, int ldc, long long strideC,
                             int batch) {
    CLPDD_CUDA_ASSERT(M >= 0 && N >= 0 && K >= 0 && batch >= 0);
    if (M == 0 || N == 0 || batch == 0) return;
    if (K == 0 || alpha == 0.0f) { /* C = beta·C (beta = 0 writes zeros), A and B unread, as the CPU */
        for (int b = 0; b < batch; b++) scale_matrix_rm(C + b * strideC, ldc, M, N, beta);
        return;
    }
    if (g_precision != CLPDD_PRECISION_FP32 && batch == 1)
        CUBLAS_CHECK(cublasGemmEx(clpdd_cuda_blas, op_of(transB), op_of(transA), N, M, K, &alpha, B, CUDA_R_32F,
                                  ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, compute_type(),
                                  CUBLAS_GEMM_DEFAULT));
    else if (g_precision != CLPDD_PRECISION_FP32)
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(clpdd_cuda_blas, op_of(transB), op_of(transA), N, M, K, &alpha, B,
                                                CUDA_R_32F, ldb, strideB, A, CUDA_R_32F, lda, strideA, &beta, C,
                                                CUDA_R_32F, ldc, strideC, batch, compute_type(), CUBLAS_GEMM_DEFAULT));
    else if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(clpdd_cuda_blas, op_of(transB), op_of(transA), N, M, K, &alpha, B,
                                 ldb, A, lda, &beta, C, ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(clpdd_cuda_blas, op_of(transB), op_of(transA), N, M,
                                               K, &alpha, B, ldb, strideB, A, lda, strideA, &beta,
                                               C, ldc, strideC, batch));
}

static void cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    clpdd_cuda_gemm_strided(transA, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
static void cuda_gemm_batched(int transA, int transB, int M, int N, int K, float alpha,
                              const float *A, int lda, long long strideA, const float *B, int ldb,
                              long long strideB, float beta, float *C, int ldc, long long strideC,
                              int batch) {
    clpdd_cuda_gemm_strided(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta,
                            C, ldc, strideC, batch);
}

/* column-major C (N×N, ldc) has its upper triangle (row ≤ col) written; copy it into the
   strict lower triangle: C[i + j·ldc] = C[j + i·ldc] for i > j. Only the upper triangle
   is read, only the strict lower one written, so threads do not race. */
__global__ void k_mirror_upper_to_lower(float *C, int N, size_t ldc) {
    CLPDD_GRID_STRIDE(t, (size_t)N * N) {
        size_t i = t % N, j = t / N; /* column-major: i row, j column */
        if (i > j) C[i + j * ldc] = C[j + i * ldc];
    }
}

/* trans = 0: C = α·A·Aᵀ + β·C, A row-major N×K = column-major X = Aᵀ (K×N, lda), so
   A·Aᵀ = Xᵀ·X: cublasSsyrk(OP_T, n = N, k = K).
   trans = 1: C = α·Aᵀ·A + β·C, A row-major K×N = column-major X = Aᵀ (N×K, lda), so
   Aᵀ·A = X·Xᵀ: cublasSsyrk(OP_N, n = N, k = K).
   C is symmetric, so row- and column-major agree. cuBLAS computes the column-major UPPER
   triangle, which is the row-major lower one: the triangle the CPU's cblas_ssyrk(RowMajor,
   Lower) reads for beta ≠ 0 and writes, so a (caller error) non-symmetric C still gives
   the same result on both. A small kernel then mirrors it into the other triangle. */
static void cuda_syrk(int trans, int N, int K, float alpha, const float *A, int lda, float beta,
                      float *C, int ldc) {
    CLPDD_CUDA_ASSERT(N >= 0 && K >= 0);
    if (N == 0) return;
    if (K == 0 || alpha == 0.0f) { /* C = beta·C, A unread, as the CPU */
        scale_matrix_rm(C, ldc, N, N, beta);
        return;
    }
    CUBLAS_CHECK(cublasSsyrk(clpdd_cuda_blas, CUBLAS_FILL_MODE_UPPER, trans ? CUBLAS_OP_N : CUBLAS_OP_T,
                             N, K, &alpha, A, lda, &beta, C, ldc));
    CLPDD_LAUNCH(k_mirror_upper_to_lower, clpdd_grid_1d((size_t)N * N), CLPDD_THREADS, 0, C, N, (size_t)ldc);
}

/* Row-major lower Cholesky A = L·Lᵀ. The row-major n×n matrix is, in memory, the
   column-major Aᵀ = A (A symmetric). cuSOLVER's column-major UPPER factorisation
   A = Uᵀ·U stores U in the column-major upper triangle, element (i, j), i ≤ j, at
   i + j·lda; read row-major, that address is element (j, i) of the lower triangle, i.e.
   L = Uᵀ and A = Uᵀ·U = L·Lᵀ. So FILL_MODE_UPPER on the same memory is exactly the
   row-major lower factorisation. devInfo = k > 0 means the leading minor of order k is
   not positive definite: returned as is. cuSOLVER, like OpenBLAS, lets a NaN pivot through
   (NaN ≤ 0 is false), so as the CPU does, a successful factorisation is then scanned: the
   first non-finite diagonal entry L[k][k] is reported as the failed minor k + 1 (a NaN or
   Inf anywhere in A reaches the diagonal). */
__global__ void k_first_nonfinite_diag(int *first, const float *A, int n, size_t lda) {
    CLPDD_GRID_STRIDE(k, (size_t)n)
        if (!isfinite(A[k * lda + k])) atomicMin(first, (int)k + 1);
}
static int cuda_potrf(float *A, int n, int lda) {
    CLPDD_CUDA_ASSERT(n >= 0 && lda >= (n > 1 ? n : 1));
    if (n == 0) return 0;
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(clpdd_cuda_solver, CUBLAS_FILL_MODE_UPPER, n, A, lda, &lwork));
    /* layout of the cached buffer: [devInfo (padded to 256 B)][workspace] */
    char *buf = (char *)clpdd_cuda_scratch_get(&g_solver_ws, 256 + (size_t)lwork * sizeof(float));
    int *dev_info = (int *)buf;
    float *work = (float *)(buf + 256);
    CUSOLVER_CHECK(cusolverDnSpotrf(clpdd_cuda_solver, CUBLAS_FILL_MODE_UPPER, n, A, lda, work, lwork, dev_info));
    int info = 0;
    CUDA_CHECK(cudaMemcpy(&info, dev_info, sizeof info, cudaMemcpyDeviceToHost));
    CLPDD_CUDA_ASSERT(info >= 0); /* info < 0: an invalid argument, a programming error */
    if (info > 0) return info;
    int *first = dev_info + 1, none = 0x7fffffff;
    CUDA_CHECK(cudaMemcpy(first, &none, sizeof none, cudaMemcpyHostToDevice));
    CLPDD_LAUNCH(k_first_nonfinite_diag, clpdd_grid_1d((size_t)n), CLPDD_THREADS, 0, first, A, n, (size_t)lda);
    CUDA_CHECK(cudaMemcpy(&info, first, sizeof info, cudaMemcpyDeviceToHost));
    return info == none ? 0 : info;
}

/* Solve (L·Lᵀ)·X = B in place, B row-major n×nrhs (ldb).
   Column-major view: B's memory is Bᵀ (nrhs×n, ldb) and X's is Y = Xᵀ (nrhs×n, ldb).
   Transposing L·Lᵀ·X = B (L·Lᵀ symmetric) gives Y·(L·Lᵀ) = Bᵀ. L's row-major lower
   triangle is, in memory, the column-major upper triangle of U = Lᵀ (see potrf), so
   L·Lᵀ = Uᵀ·U and Y·Uᵀ·U = Bᵀ. Two right-side triangular solves on the same memory:
     1. Z·U  = Bᵀ  → cublasStrsm(RIGHT, UPPER, OP_N): Z = Bᵀ·U⁻¹
     2. Y·Uᵀ = Z   → cublasStrsm(RIGHT, UPPER, OP_T): Y = Z·U⁻ᵀ
   check: Y·Uᵀ·U = Z·U = Bᵀ. m = nrhs, n = n; ldb ≥ nrhs holds for the row-major B.
   Only U's upper triangle (L's lower) is read, so potrf's unspecified strict upper
   triangle does not matter. */
static void cuda_potrs(const float *L, int n, int lda, float *B, int nrhs, int ldb) {
    CLPDD_CUDA_ASSERT(n >= 0 && nrhs >= 0);
    if (n == 0 || nrhs == 0) return;
    const float one = 1.0f;
    CUBLAS_CHECK(cublasStrsm(clpdd_cuda_blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N,
                             CUBLAS_DIAG_NON_UNIT, nrhs, n, &one, L, lda, B, ldb));
    CUBLAS_CHECK(cublasStrsm(clpdd_cuda_blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T,
                             CUBLAS_DIAG_NON_UNIT, nrhs, n, &one, L, lda, B, ldb));
}

/* ------------------------------------------------------------------------------------ */
/* the table and lazy initialisation                                                     */

static clpdd_ops g_ops;
static char g_name[300];
static char g_why[512];
static std::once_flag g_once;
/* dst[i, :] = (float) src[idx[i], :], binary16 → fp32 (exact) */
__global__ void k_gather_rows_f16(float *dst, const uint16_t *src, const int32_t *idx, size_t nidx, size_t cols) {
    CLPDD_GRID_STRIDE(t, nidx * cols) {
        size_t i = t / cols, c = t % cols;
        dst[t] = __half2float(__ushort_as_half(src[(size_t)idx[i] * cols + c]));
    }
}
static void cuda_gather_rows_f16(float *dst, const uint16_t *src, const int32_t *idx, size_t nidx, size_t cols) {
    if (nidx && cols)
        CLPDD_LAUNCH(k_gather_rows_f16, clpdd_grid_1d(nidx * cols), CLPDD_THREADS, 0, dst, src, idx, nidx, cols);
}

static const clpdd_ops *g_table; /* NULL when initialisation failed (reason in g_why) */

/* transformer extras (ABI 1.1), defined in ops_cuda_transformer.cu */
CLPDD_CUDA_FN void clpdd_cuda_rope(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld,
                                   int nblk, int hd, int inverse);
CLPDD_CUDA_FN void clpdd_cuda_swiglu(float *y, const float *u, int rows, int F);
CLPDD_CUDA_FN void clpdd_cuda_swiglu_backward(float *du, const float *dy, const float *u, int rows, int F);
/* augmentation (ABI 1.1), defined in ops_cuda_augment.cu */
CLPDD_CUDA_FN void clpdd_cuda_crop_resize_bilinear(float *y, const float *x, const float *boxes, const int32_t *flips,
                                                   int n, int C, int H, int W, int OH, int OW);
CLPDD_CUDA_FN void clpdd_cuda_crop_resize_bilinear_backward(float *dx, const float *dy, const float *boxes,
                                                            const int32_t *flips, int n, int C, int H, int W, int OH,
                                                            int OW);

/* convolution (ABI 1.2), defined in ops_cuda_conv.cu */
CLPDD_CUDA_FN void clpdd_cuda_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w,
                                     const float *bias, const float *res, const clpdd_conv2d_desc *d);
CLPDD_CUDA_FN void clpdd_cuda_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy,
                                              const float *mask, const float *w, const clpdd_conv2d_desc *d);

/* fused attention (ABI 1.3), defined in ops_cuda_attention_fused.cu */
CLPDD_CUDA_FN void clpdd_cuda_attention_fused(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd,
                                              float scale);
CLPDD_CUDA_FN void clpdd_cuda_attention_fused_backward(float *dqkv, float *delta, const float *dout, const float *out,
                                                       const float *lse, const float *qkv, int n, int T, int Hh,
                                                       int hd, float scale);

/* the current device, its properties and a context; -1 with the reason in g_why */
static int cuda_open_device(int *dev, cudaDeviceProp *prop) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "no CUDA device visible (cudaGetDeviceCount: %s: %s)",
                 cudaGetErrorName(e), cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }
    if (count == 0) {
        snprintf(g_why, sizeof g_why, "no CUDA device visible (cudaGetDeviceCount: 0 devices)");
        return -1;
    }
    if ((e = cudaGetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(prop, *dev)) != cudaSuccess ||
        (e = cudaFree(nullptr)) != cudaSuccess /* creates the context */) {
        snprintf(g_why, sizeof g_why, "CUDA device %d unusable (%s: %s)", *dev, cudaGetErrorName(e),
                 cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}

/* cuBLAS (plain fp32 math, host scalars) and cuSOLVER on that device; -1 with the reason in g_why */
static int cuda_open_libraries(int dev, const cudaDeviceProp *prop) {
    cublasStatus_t be = cublasCreate(&clpdd_cuda_blas);
    if (be != CUBLAS_STATUS_SUCCESS) {
        snprintf(g_why, sizeof g_why, "cublasCreate failed on device %d (%s): %s", dev, prop->name,
                 cublasGetStatusString(be));
        clpdd_cuda_blas = nullptr;
        return -1;
    }
    /* plain FP32: no TF32 tensor-core math, so results agree with the CPU to ~1e-6 */
    CUBLAS_CHECK(cublasSetMathMode(clpdd_cuda_blas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(clpdd_cuda_blas, CUBLAS_POINTER_MODE_HOST));
    cusolverStatus_t se = cusolverDnCreate(&clpdd_cuda_solver);
    if (se != CUSOLVER_STATUS_SUCCESS) {
        snprintf(g_why, sizeof g_why, "cusolverDnCreate failed on device %d (%s): %s", dev,
                 prop->name, clpdd_cusolver_status_string(se));
        CUBLAS_CHECK(cublasDestroy(clpdd_cuda_blas));
        clpdd_cuda_blas = nullptr;
        clpdd_cuda_solver = nullptr;
        return -1;
    }
    return 0;
}

/* the op table: every member this backend implements */
static void cuda_fill_table(clpdd_ops *o) {
    o->name = g_name;
    o->is_device = 1;
    o->malloc = cuda_malloc;
    o->free = cuda_free;
    o->to_device = cuda_to_device;
    o->to_host = cuda_to_host;
    o->copy = cuda_copy;
    o->synchronize = cuda_synchronize;
    o->peak_bytes = cuda_peak_bytes;
    o->fill = cuda_fill;
    o->scale = cuda_scale;
    o->axpy = cuda_axpy;
    o->axpby = cuda_axpby;
    o->mul = cuda_mul;
    o->clamp = cuda_clamp;
    o->sigmoid = cuda_sigmoid;
    o->copy2d = cuda_copy2d;
    o->add2d = cuda_add2d;
    o->sum_rows = cuda_sum_rows;
    o->gather_rows = cuda_gather_rows;
    o->channel_affine = cuda_channel_affine;
    o->channel_affine_backward = cuda_channel_affine_backward;
    o->dot = cuda_dot;
    o->sum = cuda_sum;
    o->all_finite = cuda_all_finite;
    o->gemm = cuda_gemm;
    o->gemm_batched = cuda_gemm_batched;
    o->syrk = cuda_syrk;
    o->potrf = cuda_potrf;
    o->potrs = cuda_potrs;
    o->relu = clpdd_cuda_relu;
    o->relu_backward = clpdd_cuda_relu_backward;
    o->gelu = clpdd_cuda_gelu;
    o->gelu_backward = clpdd_cuda_gelu_backward;
    o->softmax_rows = clpdd_cuda_softmax_rows;
    o->softmax_rows_backward = clpdd_cuda_softmax_rows_backward;
    o->cross_entropy = clpdd_cuda_cross_entropy;
    o->onehot = clpdd_cuda_onehot;
    o->argmax_rows = clpdd_cuda_argmax_rows;
    o->layernorm = clpdd_cuda_layernorm;
    o->layernorm_backward = clpdd_cuda_layernorm_backward;
    o->attention = clpdd_cuda_attention;
    o->attention_backward = clpdd_cuda_attention_backward;
    o->patchify = clpdd_cuda_patchify;
    o->unpatchify = clpdd_cuda_unpatchify;
    o->im2col = clpdd_cuda_im2col;
    o->col2im = clpdd_cuda_col2im;
    o->global_avgpool = clpdd_cuda_global_avgpool;
    o->global_avgpool_backward = clpdd_cuda_global_avgpool_backward;
    o->maxpool = clpdd_cuda_maxpool;
    o->maxpool_backward = clpdd_cuda_maxpool_backward;
    o->resize_bilinear = clpdd_cuda_resize_bilinear;
    o->resize_bilinear_backward = clpdd_cuda_resize_bilinear_backward;
    o->rand_uniform = clpdd_cuda_rand_uniform;
    o->rand_normal = clpdd_cuda_rand_normal;
    o->adam = clpdd_cuda_adam;
    /* transformer extras (ABI 1.1): ops_cuda_transformer.cu */
    o->rope = clpdd_cuda_rope;
    o->swiglu = clpdd_cuda_swiglu;
    o->swiglu_backward = clpdd_cuda_swiglu_backward;
    /* augmentation (ABI 1.1): ops_cuda_augment.cu */
    o->crop_resize_bilinear = clpdd_cuda_crop_resize_bilinear;
    o->crop_resize_bilinear_backward = clpdd_cuda_crop_resize_bilinear_backward;
    /* convolution (ABI 1.2): ops_cuda_conv.cu */
    o->conv2d = clpdd_cuda_conv2d;
    o->conv2d_backward = clpdd_cuda_conv2d_backward;
    /* fused attention (ABI 1.3): ops_cuda_attention_fused.cu */
    o->attention_fused = clpdd_cuda_attention_fused;
    o->attention_fused_backward = clpdd_cuda_attention_fused_backward;
    /* precision (ABI 1.3): the gemm path above */
    o->set_precision = cuda_set_precision;
    o->gather_rows_f16 = cuda_gather_rows_f16;
    /* the precision query: every precision set_precision takes */
    o->precision_supported = cuda_precision_supported;
    /* pieces (ABI 1.6) stay NULL: one device runs a whole batch per op, a piece at a time */
}

static void cuda_init(void) {
    int dev = 0;
    cudaDeviceProp prop;
    if (cuda_open_device(&dev, &prop) || cuda_open_libraries(dev, &prop)) return;
    clpdd_cuda_sm_count = prop.multiProcessorCount;
    g_live = new std::unordered_map<void *, size_t>();

    snprintf(g_name, sizeof g_name, "cuda:%s", prop.name);
    cuda_fill_table(&g_ops);
    g_table = &g_ops;
}

/* the module's two exports, looked up by core/cuda/ops_cuda_loader.c after dlopen: the ABI it
   was built against, and the table (NULL with the reason in *why when no GPU is usable) */
extern "C" __attribute__((visibility("default"))) const uint32_t clpdd_cuda_module_abi =
    (uint32_t)CLPDD_ABI_MAJOR << 16 | CLPDD_ABI_MINOR;
extern "C" __attribute__((visibility("default"))) const clpdd_ops *clpdd_cuda_module_ops(const char **why) {
    std::call_once(g_once, cuda_init);
    if (!g_table && why) *why = g_why;
    return g_table;
}
