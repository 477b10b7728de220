/* clpdd CUDA backend, transformer extras (ABI 1.1): rotary position embedding and the
 * SwiGLU gate, put into the table by ops_cuda.cu. Semantics: clpdd/ops.h; the arithmetic
 * mirrors the CPU reference (core/cpu/ops_cpu_transformer.c) element for element (float32), so
 * the two agree to rounding (tests/test_ops_transformer_cuda.c).
 *
 * Dimension legend: n images, T tokens, t0 first rotated token, ld row stride, nblk head
 * blocks rotated per row, hd head width, rows/F of the SwiGLU (u is rows × 2F). */
#include "cuda_common.h"

#include <math.h>

CLPDD_CUDA_FN void clpdd_cuda_rope(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld,
                                   int nblk, int hd, int inverse);
CLPDD_CUDA_FN void clpdd_cuda_swiglu(float *y, const float *u, int rows, int F);
CLPDD_CUDA_FN void clpdd_cuda_swiglu_backward(float *du, const float *dy, const float *u, int rows, int F);

/* one thread per rotated pair: total = n·(T − t0)·nblk·hd/2 */
__global__ void k_rope(float *x, const float *sn, const float *cs, int T, int t0, int ld, int nblk, int half,
                       float sgn, size_t total) {
    CLPDD_GRID_STRIDE(k, total) {
        const size_t i = k % (size_t)half;
        const size_t rest = k / (size_t)half;
        const size_t b = rest % (size_t)nblk;
        const size_t row = rest / (size_t)nblk; /* over n·(T − t0) */
        const size_t Tr = (size_t)(T - t0);
        const size_t img = row / Tr, t = row % Tr;
        float *blk = x + (img * (size_t)T + (size_t)t0 + t) * (size_t)ld + b * 2 * (size_t)half;
        const float c = cs[t * half + i], s = sgn * sn[t * half + i];
        const float a0 = blk[2 * i], a1 = blk[2 * i + 1];
        blk[2 * i] = a0 * c - a1 * s;
        blk[2 * i + 1] = a1 * c + a0 * s;
    }
}

void clpdd_cuda_rope(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld, int nblk, int hd,
                     int inverse) {
    CLPDD_CUDA_ASSERT(n >= 0 && T >= 0 && t0 >= 0 && hd % 2 == 0 && nblk >= 0 &&
                      (size_t)nblk * hd <= (size_t)ld);
    if (t0 >= T || n == 0 || nblk == 0 || hd == 0) return;
    const int half = hd / 2;
    const size_t total = (size_t)n * (size_t)(T - t0) * (size_t)nblk * (size_t)half;
    CLPDD_LAUNCH(k_rope, clpdd_grid_1d(total), CLPDD_THREADS, 0, x, sin, cos, T, t0, ld, nblk, half,
                 inverse ? -1.0f : 1.0f, total);
}

__global__ void k_swiglu(float *y, const float *u, size_t F, size_t total) {
    CLPDD_GRID_STRIDE(k, total) {
        const size_t r = k / F, j = k % F;
        const float g = u[r * 2 * F + j], v = u[r * 2 * F + F + j];
        const float sg = 1.0f / (1.0f + expf(-g));
        y[k] = g * sg * v;
    }
}

__global__ void k_swiglu_backward(float *du, const float *dy, const float *u, size_t F, size_t total) {
    CLPDD_GRID_STRIDE(k, total) {
        const size_t r = k / F, j = k % F;
        const size_t ig = r * 2 * F + j, iv = ig + F;
        const float g = u[ig], v = u[iv], d = dy[k];
        const float sg = 1.0f / (1.0f + expf(-g));
        du[ig] = d * v * sg * (1.0f + g * (1.0f - sg));
        du[iv] = d * g * sg;
    }
}

void clpdd_cuda_swiglu(float *y, const float *u, int rows, int F) {
    CLPDD_CUDA_ASSERT(rows >= 0 && F >= 0);
    const size_t total = (size_t)rows * (size_t)F;
    if (total) CLPDD_LAUNCH(k_swiglu, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, u, (size_t)F, total);
}

void clpdd_cuda_swiglu_backward(float *du, const float *dy, const float *u, int rows, int F) {
    CLPDD_CUDA_ASSERT(rows >= 0 && F >= 0);
    const size_t total = (size_t)rows * (size_t)F;
    if (total) CLPDD_LAUNCH(k_swiglu_backward, clpdd_grid_1d(total), CLPDD_THREADS, 0, du, dy, u, (size_t)F, total);
}
