/* Transformer-extras ops (ABI 1.1) on the CUDA backend against the CPU reference, in the
 * harness style of test_ops_cuda.c: random inputs at sizes that are not multiples of a warp
 * or a block, every device buffer between sentinel guards (checked at the end), "="
 * outputs poisoned with NaN, ‖gpu − cpu‖₂/‖cpu‖₂ ≤ a per-op threshold:
 *   rope            TOL_ELEM 1e-6: two products and a sum per element (an FMA ≤ 1 ulp); the
 *                   prefix rows and columns outside the rotated blocks are compared exactly.
 *   swiglu (+bwd)   TOL_TRANS 1e-5: expf differs by a few ulp between CUDA and glibc.
 * Skips without a GPU; CLPDD_TEST_OPS_SELF=1 runs it with the CPU table as the "device"
 * (every error must then be 0), a check of the harness without a GPU.
 *
 * Legend: n images, T tokens, t0 first rotated token, ld row stride, nblk rotated blocks,
 * hd head width; rows, F of the SwiGLU (u is rows × 2F). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "support.h"

#define TOL_ELEM 1e-6
#define TOL_TRANS 1e-5

#include "cuda_harness.h"

static float *frand(size_t n, float std, uint64_t seed) {
    float *x = calloc(n ? n : 1, sizeof(float));
    test_fill_normal(x, n, std, seed);
    return x;
}

TestSuite(ops_transformer_cuda);

static void rope_case(int n, int T, int t0, int ld, int nblk, int hd, uint64_t seed) {
    const size_t N = (size_t)n * T * ld, tab = (size_t)(T - t0) * (hd / 2);
    float *ang = frand(tab, 3.0f, seed), *sn = calloc(tab + 1, 4), *cs = calloc(tab + 1, 4);
    for (size_t i = 0; i < tab; i++) sn[i] = sinf(ang[i]), cs[i] = cosf(ang[i]);
    float *x = frand(N, 1.0f, seed + 1);
    float *dsn = dput(sn, tab), *dcs = dput(cs, tab);
    for (int inverse = 0; inverse < 2; inverse++) {
        float *ref = malloc(N * sizeof(float)), *h = malloc(N * sizeof(float));
        memcpy(ref, x, N * sizeof(float));
        cpu->rope(ref, sn, cs, n, T, t0, ld, nblk, hd, inverse);
        float *dx = dput(x, N);
        dev->rope(dx, dsn, dcs, n, T, t0, ld, nblk, hd, inverse);
        double e = dev_err(dx, ref, N);
        cr_expect(e <= TOL_ELEM, "rope (n %d T %d t0 %d ld %d nblk %d hd %d inv %d): %.3g", n, T, t0, ld, nblk, hd,
                  inverse, e);
        dev->to_host(h, dx, N * sizeof(float));
        for (size_t i = 0; i < N; i++) {
            size_t t = (i / (size_t)ld) % (size_t)T, col = i % (size_t)ld;
            if (t < (size_t)t0 || col >= (size_t)nblk * hd)
                cr_expect_eq(h[i], x[i], "rope changed an element outside its blocks (%zu)", i);
        }
        free(ref), free(h);
    }
    free(ang), free(sn), free(cs), free(x);
}

Test(ops_transformer_cuda, rope) {
    NEED_GPU();
    rope_case(3, 17, 1, 3 * 3 * 12, 2 * 3, 12, 1); /* EVA-02 layout: q, k of the patch tokens */
    rope_case(2, 37, 5, 101, 4, 20, 2);           /* registers, padded rows */
    rope_case(1, 3, 0, 8, 2, 4, 3);
    rope_case(5, 197, 1, 3 * 768, 24, 64, 4);     /* ViT-B/16 at 224: 196 patches, 12 heads */
    done();
}

Test(ops_transformer_cuda, swiglu_and_backward) {
    NEED_GPU();
    const int shapes[][2] = {{1, 1}, {7, 33}, {129, 257}, {197, 2048}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int rows = shapes[k][0], F = shapes[k][1];
        const size_t nu = (size_t)rows * 2 * F, ny = (size_t)rows * F;
        float *u = frand(nu, 3.0f, 10 + k), *dy = frand(ny, 1.0f, 20 + k);
        float *y = malloc(ny * sizeof(float)), *du = malloc(nu * sizeof(float));
        cpu->swiglu(y, u, rows, F);
        cpu->swiglu_backward(du, dy, u, rows, F);
        float *d_u = dput(u, nu), *d_dy = dput(dy, ny), *d_y = dpoison(ny), *d_du = dpoison(nu);
        dev->swiglu(d_y, d_u, rows, F);
        dev->swiglu_backward(d_du, d_dy, d_u, rows, F);
        double ey = dev_err(d_y, y, ny), eu = dev_err(d_du, du, nu);
        cr_expect(ey <= TOL_TRANS, "swiglu %d × %d: %.3g", rows, F, ey);
        cr_expect(eu <= TOL_TRANS, "swiglu_backward %d × %d: %.3g", rows, F, eu);
        free(u), free(dy), free(y), free(du);
        done();
    }
}

Test(ops_transformer_cuda, empty_calls) {
    NEED_GPU();
    float *x = dput((float[4]){1, 2, 3, 4}, 4), *t = dput((float[2]){0.5f, 0.5f}, 2);
    dev->rope(x, t, t, 0, 3, 1, 4, 2, 2, 0);
    dev->rope(x, t, t, 1, 1, 1, 4, 2, 2, 0);
    dev->swiglu(x, x, 0, 2);
    dev->swiglu_backward(x, x, x, 3, 0);
    dev->synchronize();
    float h[4];
    dev->to_host(h, x, sizeof h);
    cr_expect(h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4, "an empty call wrote");
    done();
}
