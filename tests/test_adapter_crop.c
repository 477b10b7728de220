/* The adapter's crop mode ([data] adapt = crop): the forward is exactly torchvision's CenterCrop
 * window (offsets int(round((in - out) / 2.0)), half to even) followed by the normalisation, and
 * the backward is its exact adjoint (zero outside the window). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/adapter.h"
#include "plugin/host.h"
#include "support.h"

static void check_crop(int c, int H, int W, int Ho, int Wo, int top, int left) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_backbone_info info = {c, Ho, Wo, 16, {0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}, NULL};
    clpdd_adapter a;
    clpdd_err e;
    int n = 2;
    cr_assert_eq(clpdd_adapter_init_mode(&a, h, c, H, W, &info, n, CLPDD_ADAPT_CROP, &e), 0, "%s", e.msg);
    cr_expect(a.pad_top == top && a.pad_left == left, "window at (%d, %d), expected (%d, %d)", a.pad_top, a.pad_left, top, left);
    size_t nin = (size_t)n * c * H * W, nout = (size_t)n * c * Ho * Wo;
    float *x = malloc(nin * 4), *y = malloc(nout * 4), *ax = malloc(nout * 4), *aty = malloc(nin * 4);
    test_fill_uniform(x, nin, 0, 1, 1);
    test_fill_normal(y, nout, 1, 2);
    clpdd_adapter_forward(&a, ax, x, n);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int r = 0; r < Ho; r++)
                for (int q = 0; q < Wo; q++) {
                    float want = (x[(((size_t)i * c + ch) * H + r + top) * W + q + left] - info.mean[ch]) / info.std[ch];
                    cr_assert_float_eq(ax[(((size_t)i * c + ch) * Ho + r) * Wo + q], want, 1e-6);
                }
    /* the normalisation's offset out, the crop is linear: <A(x) - A(0), y> = <x, A^T y> */
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < nout; i++) {
        int ch = (int)((i / ((size_t)Ho * Wo)) % c);
        lhs += ((double)ax[i] + info.mean[ch] / info.std[ch]) * y[i];
    }
    for (size_t i = 0; i < nin; i++) aty[i] = NAN;
    clpdd_adapter_backward(&a, aty, y, n);
    for (size_t i = 0; i < nin; i++) rhs += (double)x[i] * aty[i];
    cr_expect(fabs(lhs - rhs) <= 1e-5 * (fabs(lhs) + 1), "adjoint %g vs %g", lhs, rhs);
    clpdd_adapter_free(&a);
    clpdd_host_destroy(h);
    free(x), free(y), free(ax), free(aty);
}

Test(adapter, crop_256_to_224_like_lgm) { check_crop(3, 32, 32, 28, 28, 2, 2); }
Test(adapter, crop_odd_margins_round_half_to_even) {
    check_crop(1, 11, 12, 8, 7, 2, 2); /* (11-8)/2 = 1.5 -> 2; (12-7)/2 = 2.5 -> 2 */
}

Test(adapter, crop_cannot_enlarge) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_backbone_info info = {3, 16, 16, 16, {0}, {1, 1, 1}, NULL};
    clpdd_adapter a;
    clpdd_err e;
    cr_expect_neq(clpdd_adapter_init_mode(&a, h, 3, 8, 8, &info, 1, CLPDD_ADAPT_CROP, &e), 0);
    cr_expect(strstr(e.msg, "crop cannot cut") != NULL, "%s", e.msg);
    clpdd_adapter_free(&a);
    clpdd_host_destroy(h);
}
