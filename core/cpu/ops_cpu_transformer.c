/* CPU reference of the transformer extras (ABI 1.1): rotary position embedding and the
 * SwiGLU gate. Semantics: core/include/clpdd/ops.h. Both write their outputs (=); there
 * are no parameter gradients.
 *
 * Dimension legend: n images, T tokens, t0 first rotated token, ld row stride, nblk head
 * blocks rotated per row, hd head width, rows/F of the SwiGLU (u is rows × 2F). */
#include "cpu/ops_cpu.h"

#include <math.h>

/* x (n, T, ld) in place; sin, cos (T − t0, hd/2) */
void cpu_rope(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld, int nblk, int hd,
              int inverse) {
    CLPDD_ASSERT(n >= 0 && T >= 0 && t0 >= 0 && hd % 2 == 0 && nblk >= 0 && (size_t)nblk * hd <= (size_t)ld);
    if (t0 >= T) return;
    const int half = hd / 2, Tr = T - t0;
    const float sgn = inverse ? -1.0f : 1.0f;
    const size_t rows = (size_t)n * (size_t)Tr;
    CLPDD_OMP(omp parallel for if (rows * (size_t)nblk * (size_t)hd > CLPDD_CPU_PAR_MIN))
    for (size_t r = 0; r < rows; r++) {
        const size_t img = r / (size_t)Tr, t = r % (size_t)Tr;
        float *row = x + (img * (size_t)T + (size_t)t0 + t) * (size_t)ld;
        const float *cr = cos + t * (size_t)half, *sr = sin + t * (size_t)half;
        for (int b = 0; b < nblk; b++) {
            float *blk = row + (size_t)b * hd;
            for (int i = 0; i < half; i++) {
                const float c = cr[i], s = sgn * sr[i];
                const float a0 = blk[2 * i], a1 = blk[2 * i + 1];
                blk[2 * i] = a0 * c - a1 * s;
                blk[2 * i + 1] = a1 * c + a0 * s;
            }
        }
    }
}

/* y (rows, F) = silu(g) ⊙ v with u = [g | v] (rows, 2F) */
void cpu_swiglu(float *y, const float *u, int rows, int F) {
    CLPDD_ASSERT(rows >= 0 && F >= 0);
    const size_t total = (size_t)rows * (size_t)F;
    CLPDD_OMP(omp parallel for if (total > CLPDD_CPU_PAR_MIN))
    for (size_t k = 0; k < total; k++) {
        const size_t r = k / (size_t)F, j = k % (size_t)F;
        const float g = u[r * 2 * (size_t)F + j], v = u[r * 2 * (size_t)F + (size_t)F + j];
        const float sg = 1.0f / (1.0f + expf(-g));
        y[k] = g * sg * v;
    }
}

/* du (rows, 2F) = [dy·v·silu'(g) | dy·silu(g)], silu'(g) = σ(g)(1 + g(1 − σ(g))) */
void cpu_swiglu_backward(float *du, const float *dy, const float *u, int rows, int F) {
    CLPDD_ASSERT(rows >= 0 && F >= 0);
    const size_t total = (size_t)rows * (size_t)F;
    CLPDD_OMP(omp parallel for if (total > CLPDD_CPU_PAR_MIN))
    for (size_t k = 0; k < total; k++) {
        const size_t r = k / (size_t)F, j = k % (size_t)F;
        const size_t ig = r * 2 * (size_t)F + j, iv = ig + (size_t)F;
        const float g = u[ig], v = u[iv], d = dy[k];
        const float sg = 1.0f / (1.0f + expf(-g));
        du[ig] = d * v * sg * (1.0f + g * (1.0f - sg));
        du[iv] = d * g * sg;
    }
}
