/* Datasets and the adapter: IDX loading with subsets, clear errors for missing data, and the
 * adapter's backward as the exact adjoint of its forward (resize, grey→RGB, normalisation). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encoder/adapter.h"
#include "data/dataset.h"
#include "plugin/host.h"
#include "support.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

Test(data, fashion_mnist_stratified_subset) {
    if (access(FMNIST "/train-images-idx3-ubyte.gz", R_OK)) cr_skip_test("Fashion-MNIST not installed");
    clpdd_dataset a, b;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_idx(&a, "fashion-mnist", FMNIST, "train", 1000, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(a.n, 1000);
    cr_expect_eq(a.classes, 10);
    cr_expect_eq(a.H, 28);
    int count[10] = {0};
    for (int i = 0; i < a.n; i++) count[a.labels[i]]++;
    for (int c = 0; c < 10; c++) cr_expect_eq(count[c], 100, "class %d has %d", c, count[c]);
    cr_assert_eq(clpdd_dataset_load_idx(&b, "fashion-mnist", FMNIST, "train", 1000, 1, &e), 0, "%s", e.msg);
    cr_expect_neq(a.id, b.id, "another subset seed is another dataset (and another cache key)");
    clpdd_dataset_free(&b);
    cr_assert_eq(clpdd_dataset_load_idx(&b, "fashion-mnist", FMNIST, "test", 0, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(b.n, 10000);
    clpdd_dataset_free(&a);
    clpdd_dataset_free(&b);
}

Test(data, missing_dataset_names_the_files_and_the_package) {
    clpdd_dataset a;
    clpdd_err e;
    cr_assert_neq(clpdd_dataset_load_idx(&a, "fashion-mnist", "/nonexistent", "train", 0, 0, &e), 0);
    cr_expect(strstr(e.msg, "/nonexistent") && strstr(e.msg, "train-images-idx3-ubyte") && strstr(e.msg, "dataset-fashion-mnist"),
              "%s", e.msg);
}

Test(data, sample_per_class) {
    int32_t labels[12] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1};
    int out[12];
    clpdd_rng r = {5};
    clpdd_err e;
    cr_assert_eq(clpdd_sample_per_class(labels, 12, 3, 2, &r, out, &e), 0);
    for (int i = 0; i < 6; i++) cr_expect_eq(labels[out[i]], i / 2);
    cr_expect_neq(out[0], out[1]);
    for (int i = 0; i < 12; i++) out[i] = -7;
    cr_expect_neq(clpdd_sample_per_class(labels, 12, 3, 4, &r, out, &e), 0);
    for (int i = 0; i < 12; i++) cr_expect_eq(out[i], -7, "an error leaves the output untouched");
    cr_expect(strstr(e.msg, "class 2 has 3 images"), "%s", e.msg);
}

/* ⟨A(x) − A(0), y⟩ = ⟨x, Aᵀ y⟩: the affine adapter minus its offset is linear */
static void check_adjoint(int c_in, int H, int W, int c_out, int Ho, int Wo) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_backbone_info info = {c_out, Ho, Wo, 16, {0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}, NULL};
    clpdd_adapter a;
    clpdd_err e;
    int n = 3;
    cr_assert_eq(clpdd_adapter_init(&a, h, c_in, H, W, &info, n, &e), 0, "%s", e.msg);
    size_t nin = (size_t)n * c_in * H * W, nout = (size_t)n * c_out * Ho * Wo;
    float *x = malloc(nin * 4), *zero = calloc(nin, 4), *y = malloc(nout * 4), *ax = malloc(nout * 4), *a0 = malloc(nout * 4);
    float *aty = malloc(nin * 4);
    test_fill_uniform(x, nin, 0, 1, 1);
    test_fill_normal(y, nout, 1, 2);
    clpdd_adapter_forward(&a, ax, x, n);
    clpdd_adapter_forward(&a, a0, zero, n);
    for (size_t i = 0; i < nin; i++) aty[i] = NAN;
    clpdd_adapter_backward(&a, aty, y, n);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < nout; i++) lhs += ((double)ax[i] - a0[i]) * y[i];
    for (size_t i = 0; i < nin; i++) rhs += (double)x[i] * aty[i];
    cr_expect(fabs(lhs - rhs) <= 1e-5 * (fabs(lhs) + 1), "adjoint mismatch %g vs %g (%d->%d ch, %dx%d->%dx%d)", lhs, rhs, c_in,
              c_out, H, W, Ho, Wo);
    if (c_in == c_out && H == Ho)
        for (size_t i = 0; i < nout; i++) {
            int ch = (int)((i / ((size_t)Ho * Wo)) % c_out);
            cr_assert_float_eq(ax[i], (x[i] - info.mean[ch]) / info.std[ch], 1e-5);
        }
    clpdd_adapter_free(&a);
    clpdd_host_destroy(h);
    free(x), free(zero), free(y), free(ax), free(a0), free(aty);
}

Test(data, adapter_normalise_only) { check_adjoint(1, 8, 8, 1, 8, 8); }
Test(data, adapter_grey_to_rgb) { check_adjoint(1, 8, 8, 3, 8, 8); }
Test(data, adapter_resize_and_rgb) { check_adjoint(1, 7, 7, 3, 12, 10); }
Test(data, adapter_rgb_downsize) { check_adjoint(3, 12, 12, 3, 8, 8); }

Test(data, adapter_rejects_incompatible_channels) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_backbone_info info = {3, 8, 8, 16, {0}, {1, 1, 1}, NULL};
    clpdd_adapter a;
    clpdd_err e;
    cr_expect_neq(clpdd_adapter_init(&a, h, 2, 8, 8, &info, 1, &e), 0);
    cr_expect(strstr(e.msg, "2 channels") != NULL, "%s", e.msg);
    clpdd_host_destroy(h);
}
