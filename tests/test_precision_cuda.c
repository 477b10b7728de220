/* set_precision on the GPU: tf32 and bf16 products against the CPU's fp32 ones,
 * within the tolerances measured by exact emulation in test_precision.c (TOL_GEMM_*, support.h),
 * and fp32 again, to fp32's tolerance, after the setting is restored (no tf32 leaking into the
 * ridge maths). Skipped without a GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "numerics/precision.h"
#include "support.h"

#define TOL_RED 1e-5
#include "cuda_harness.h"

static float *frand(size_t n, uint64_t seed) {
    float *x = calloc(n ? n : 1, sizeof(float));
    test_fill_normal(x, n, 1.0f, seed);
    return x;
}
static double tol_of(clpdd_precision p) {
    return p == CLPDD_PRECISION_BF16 ? TOL_GEMM_BF16 : p == CLPDD_PRECISION_TF32 ? TOL_GEMM_TF32 : TOL_RED;
}

TestSuite(precision_cuda);

Test(precision_cuda, set_and_restore) {
    NEED_GPU();
    cr_assert(dev->set_precision);
    if (dev == cpu) cr_skip_test("self-check mode: the CPU table computes fp32 only");
    clpdd_precision was = dev->set_precision(CLPDD_PRECISION_BF16);
    cr_expect_eq(was, CLPDD_PRECISION_FP32, "the default is fp32");
    cr_expect_eq(dev->set_precision(CLPDD_PRECISION_TF32), CLPDD_PRECISION_BF16);
    cr_expect_eq(dev->set_precision(CLPDD_PRECISION_FP32), CLPDD_PRECISION_TF32);
    done();
}

/* ViT-B's shapes: the qkv projection of 197 tokens (K = 768) and the MLP's second product (K = 3072) */
Test(precision_cuda, gemm_each_precision) {
    NEED_GPU();
    const int shapes[2][3] = {{197, 96, 768}, {64, 80, 3072}};
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < CLPDD_PRECISION_COUNT; p++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = frand((size_t)M * K, 10 + s), *B = frand((size_t)K * N, 20 + s), *R = calloc((size_t)M * N, sizeof(float));
                cpu->gemm(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, R, N);
                float *d = dpoison((size_t)M * N);
                clpdd_precision was = dev->set_precision((clpdd_precision)p);
                dev->gemm(0, tb, M, N, K, 1.0f, dput(A, (size_t)M * K), K, dput(B, (size_t)K * N), tb ? K : N, 0.0f, d, N);
                dev->set_precision(was);
                double e = dev_err(d, R, (size_t)M * N);
                cr_log_info("gemm %dx%dx%d transB %d %s: normalised error %.3g (tolerance %.3g)", M, N, K, tb,
                            clpdd_precision_name((clpdd_precision)p), e, tol_of((clpdd_precision)p));
                cr_expect(e <= tol_of((clpdd_precision)p), "gemm %s: %.3g > %.3g", clpdd_precision_name((clpdd_precision)p), e,
                          tol_of((clpdd_precision)p));
                free(A), free(B), free(R);
            }
    done();
}

Test(precision_cuda, gemm_batched_and_restore) {
    NEED_GPU();
    const int M = 50, N = 64, K = 64, batch = 6; /* attention's q·kᵀ per head at T = 50, hd = 64 */
    float *A = frand((size_t)M * K * batch, 30), *B = frand((size_t)N * K * batch, 31), *R = calloc((size_t)M * N * batch, sizeof(float));
    cpu->gemm_batched(0, 1, M, N, K, 0.125f, A, K, (long long)M * K, B, K, (long long)N * K, 0.0f, R, N, (long long)M * N, batch);
    float *dA = dput(A, (size_t)M * K * batch), *dB = dput(B, (size_t)N * K * batch);
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++) {
        float *d = dpoison((size_t)M * N * batch);
        clpdd_precision was = dev->set_precision((clpdd_precision)p);
        dev->gemm_batched(0, 1, M, N, K, 0.125f, dA, K, (long long)M * K, dB, K, (long long)N * K, 0.0f, d, N, (long long)M * N, batch);
        dev->set_precision(was);
        double e = dev_err(d, R, (size_t)M * N * batch);
        cr_expect(e <= tol_of((clpdd_precision)p), "gemm_batched %s: %.3g", clpdd_precision_name((clpdd_precision)p), e);
    }
    /* restored: fp32 to fp32's tolerance */
    float *d = dpoison((size_t)M * N * batch);
    dev->gemm_batched(0, 1, M, N, K, 0.125f, dA, K, (long long)M * K, dB, K, (long long)N * K, 0.0f, d, N, (long long)M * N, batch);
    cr_expect(dev_err(d, R, (size_t)M * N * batch) <= TOL_RED, "fp32 after restoring");
    free(A), free(B), free(R);
    done();
}

/* the batched convolution goes through the same GEMM: resnet20's stage-2 layer */
Test(precision_cuda, conv2d_each_precision) {
    NEED_GPU();
    clpdd_conv2d_desc c = {.n = 4, .cin = 32, .H = 16, .W = 16, .cout = 32, .k = 3, .stride = 1, .pad = 1, .OH = 16, .OW = 16};
    size_t nx = (size_t)c.n * c.cin * 256, nw = (size_t)c.cout * c.cin * 9, ny = (size_t)c.n * c.cout * 256;
    size_t work = CLPDD_CONV2D_WORK(&c, c.n);
    float *x = frand(nx, 40), *w = frand(nw, 41), *R = calloc(ny, sizeof(float)), *cw = calloc(work, sizeof(float));
    cpu->conv2d(R, cw, work, x, w, NULL, NULL, &c);
    float *dx = dput(x, nx), *dw = dput(w, nw), *dwork = dalloc(work * sizeof(float));
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++) {
        float *d = dpoison(ny);
        clpdd_precision was = dev->set_precision((clpdd_precision)p);
        dev->conv2d(d, dwork, work, dx, dw, NULL, NULL, &c);
        dev->set_precision(was);
        double e = dev_err(d, R, ny);
        cr_log_info("conv2d %s: %.3g", clpdd_precision_name((clpdd_precision)p), e);
        cr_expect(e <= tol_of((clpdd_precision)p), "conv2d %s: %.3g", clpdd_precision_name((clpdd_precision)p), e);
    }
    free(x), free(w), free(R), free(cw);
    done();
}

Test(precision_cuda, gather_rows_f16) {
    NEED_GPU();
    const size_t rows = 300, cols = 77, nidx = 129;
    float *x = frand(rows * cols, 50);
    uint16_t *h16 = malloc(rows * cols * sizeof(uint16_t));
    for (size_t i = 0; i < rows * cols; i++) h16[i] = clpdd_f32_to_f16(x[i]);
    int32_t *idx = malloc(nidx * sizeof(int32_t));
    for (size_t i = 0; i < nidx; i++) idx[i] = (int32_t)((i * 37) % rows);
    float *R = malloc(nidx * cols * sizeof(float));
    cpu->gather_rows_f16(R, h16, idx, nidx, cols);
    uint16_t *d16 = dalloc(rows * cols * sizeof(uint16_t));
    dev->to_device(d16, h16, rows * cols * sizeof(uint16_t));
    float *d = dpoison(nidx * cols);
    dev->gather_rows_f16(d, d16, dput_i(idx, nidx), nidx, cols);
    cr_expect(dev_err(d, R, nidx * cols) == 0.0, "binary16 widening is exact on both devices");
    free(x), free(h16), free(idx), free(R);
    done();
}
