/* [experiment] precision on the CPU side: the tf32 / bf16 rounding helpers against
 * hand-worked bit patterns, the error a reduced-precision product makes (measured here by exact
 * emulation: it justifies the GPU agreement tolerances of test_precision_cuda.c), the CPU's
 * answer to set_precision and to the precision query, the FLOP-counting op view, random
 * weights, and the experiment key. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "config/experiment.h"
#include "bench/flop_count.h"
#include "plugin/host.h"
#include "io/safetensors.h"
#include "numerics/precision.h"
#include "support.h"

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

Test(precision, names) {
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++)
        cr_expect_eq(clpdd_precision_parse(clpdd_precision_name((clpdd_precision)p)), p);
    cr_expect_eq(clpdd_precision_parse("fp16"), -1);
    cr_expect_eq(clpdd_precision_parse(NULL), -1);
    cr_expect_eq(clpdd_precision_unit(CLPDD_PRECISION_BF16), ldexp(1.0, -8));
    cr_expect_eq(clpdd_precision_unit(CLPDD_PRECISION_TF32), ldexp(1.0, -11));
}

Test(precision, bf16_rounding) {
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to even → 1 */
    cr_expect_eq(clpdd_bf16_round(1.0f + 0x1p-8f), 1.0f);
    /* 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) → 1 + 2^-6 */
    cr_expect_eq(clpdd_bf16_round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
    /* just above the halfway point rounds up */
    cr_expect_eq(clpdd_bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
    cr_expect_eq(clpdd_bf16_round(-(1.0f + 0x1p-8f + 0x1p-20f)), -(1.0f + 0x1p-7f));
    /* representable values are kept; the low 16 bits are always cleared */
    cr_expect_eq(clpdd_bf16_round(0.15625f), 0.15625f);
    for (uint32_t u = 0x3f800000u; u < 0x3f800000u + 100000u; u += 7) {
        float x = bits_f(u), y = clpdd_bf16_round(x);
        cr_assert_eq(f_bits(y) & 0xffffu, 0u, "bf16(%a) = %a has low bits", (double)x, (double)y);
        cr_assert(fabsf(y - x) <= 0x1p-8f * fabsf(x), "bf16(%a) = %a: error above the unit roundoff", (double)x, (double)y);
    }
    /* the largest finite float rounds past bf16's largest finite value: +Inf, as IEEE */
    cr_expect(isinf(clpdd_bf16_round(3.4028235e38f)) && clpdd_bf16_round(3.4028235e38f) > 0);
    cr_expect(isinf(clpdd_bf16_round(INFINITY)) && isinf(clpdd_bf16_round(-INFINITY)));
    cr_expect(isnan(clpdd_bf16_round(NAN)));
    cr_expect_eq(clpdd_bf16_round(0.0f), 0.0f);
    cr_expect(signbit(clpdd_bf16_round(-0.0f)));
    /* subnormals round in the same grid */
    cr_expect_eq(clpdd_bf16_round(bits_f(0x00008000u)), bits_f(0x00000000u)); /* tie, even → 0 */
    cr_expect_eq(clpdd_bf16_round(bits_f(0x00018000u)), bits_f(0x00020000u)); /* tie, odd → up */
}

Test(precision, tf32_rounding) {
    cr_expect_eq(clpdd_tf32_round(1.0f + 0x1p-11f), 1.0f);                 /* tie → even */
    cr_expect_eq(clpdd_tf32_round(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);   /* tie → even (up) */
    cr_expect_eq(clpdd_tf32_round(1.0f + 0x1p-10f), 1.0f + 0x1p-10f);      /* representable */
    cr_expect_eq(f_bits(clpdd_tf32_round(3.14159265f)) & 0x1fffu, 0u);
    cr_expect(isnan(clpdd_tf32_round(NAN)));
    float x[3] = {1.0f + 0x1p-9f, 2.0f, -0.3f}, y[3];
    memcpy(y, x, sizeof x);
    clpdd_precision_round(y, 3, CLPDD_PRECISION_FP32);
    cr_expect(memcmp(x, y, sizeof x) == 0, "fp32 leaves values alone");
    clpdd_precision_round(y, 3, CLPDD_PRECISION_BF16);
    cr_expect_eq(y[0], 1.0f, "1 + 2^-9 in bf16");
}

/* ‖C_p − C‖ / ‖C‖ for C = A·B (M×K by K×N, N(0,1) entries) with the inputs rounded to p,
   accumulated in double: the error of a tensor-core product with exact accumulation */
static double product_error(clpdd_precision p, int M, int N, int K, uint64_t seed) {
    float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
    test_fill_normal(A, (size_t)M * K, 1.0f, seed);
    test_fill_normal(B, (size_t)K * N, 1.0f, seed + 1);
    float *Ar = malloc((size_t)M * K * sizeof(float)), *Br = malloc((size_t)K * N * sizeof(float));
    memcpy(Ar, A, (size_t)M * K * sizeof(float));
    memcpy(Br, B, (size_t)K * N * sizeof(float));
    clpdd_precision_round(Ar, (size_t)M * K, p);
    clpdd_precision_round(Br, (size_t)K * N, p);
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double c = 0, cr = 0;
            for (int k = 0; k < K; k++) {
                c += (double)A[(size_t)i * K + k] * B[(size_t)k * N + j];
                cr += (double)Ar[(size_t)i * K + k] * Br[(size_t)k * N + j];
            }
            num += (cr - c) * (cr - c), den += c * c;
        }
    free(A), free(B), free(Ar), free(Br);
    return sqrt(num / den);
}

/* The tolerances of test_precision_cuda.c come from here: for random products the normalised
   error is ≈ 0.6·u (u the unit roundoff; each input off by up to u relative, uniformly
   spread), whatever K, because the K terms' errors add like a random walk, as the terms
   themselves do. Measured below: bf16 ≈ 2.5e-3, tf32 ≈ 3e-4 for K from 64 to 3072. The GPU
   tests allow 4x the largest (TOL_GEMM_BF16, TOL_GEMM_TF32 in support.h) for fp32
   accumulation in another order and the device's own conversion. */
Test(precision, product_error_measured) {
    const int Ks[] = {64, 768, 3072};
    double ub = clpdd_precision_unit(CLPDD_PRECISION_BF16), ut = clpdd_precision_unit(CLPDD_PRECISION_TF32);
    for (int i = 0; i < 3; i++) {
        double eb = product_error(CLPDD_PRECISION_BF16, 24, 20, Ks[i], 10 + i);
        double et = product_error(CLPDD_PRECISION_TF32, 24, 20, Ks[i], 20 + i);
        cr_log_info("K = %d: bf16 %.3g (%.2f u), tf32 %.3g (%.2f u)", Ks[i], eb, eb / ub, et, et / ut);
        cr_expect(eb > 0.3 * ub && eb < ub, "bf16 product error %.3g at K = %d: not ≈ 0.6 u = %.3g", eb, Ks[i], 0.6 * ub);
        cr_expect(et > 0.3 * ut && et < ut, "tf32 product error %.3g at K = %d: not ≈ 0.6 u = %.3g", et, Ks[i], 0.6 * ut);
        cr_expect(4 * eb <= TOL_GEMM_BF16 && 4 * et <= TOL_GEMM_TF32, "the GPU tolerances cover 4x the measured error");
    }
}

Test(precision, cpu_stays_fp32) {
    const clpdd_ops *o = clpdd_ops_cpu();
    cr_assert(o->set_precision);
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++) {
        cr_expect_eq(o->set_precision((clpdd_precision)p), CLPDD_PRECISION_FP32);
        cr_expect_eq(o->set_precision(CLPDD_PRECISION_FP32), CLPDD_PRECISION_FP32, "the CPU reports fp32 after %d", p);
    }
}

/* a device that takes tf32 but not bf16, and counts the calls that change its setting */
static int mock_set_calls;
static clpdd_precision mock_setting = CLPDD_PRECISION_FP32;
static clpdd_precision mock_supported(clpdd_precision p) { return p == CLPDD_PRECISION_BF16 ? CLPDD_PRECISION_FP32 : p; }
static clpdd_precision mock_set(clpdd_precision p) {
    clpdd_precision was = mock_setting;
    mock_set_calls++;
    mock_setting = mock_supported(p);
    return was;
}

/* clpdd_precision_effective asks precision_supported and never touches the setting */
Test(precision, effective_is_a_pure_query) {
    const clpdd_ops *cpu = clpdd_ops_cpu();
    cr_assert(cpu->precision_supported);
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++) {
        cr_expect_eq(cpu->precision_supported((clpdd_precision)p), CLPDD_PRECISION_FP32);
        cr_expect_eq(clpdd_precision_effective(cpu, (clpdd_precision)p), CLPDD_PRECISION_FP32);
    }
    clpdd_ops dev = *cpu;
    dev.set_precision = mock_set;
    dev.precision_supported = mock_supported;
    mock_set_calls = 0;
    mock_setting = CLPDD_PRECISION_TF32;
    cr_expect_eq(clpdd_precision_effective(&dev, CLPDD_PRECISION_FP32), CLPDD_PRECISION_FP32);
    cr_expect_eq(clpdd_precision_effective(&dev, CLPDD_PRECISION_TF32), CLPDD_PRECISION_TF32);
    cr_expect_eq(clpdd_precision_effective(&dev, CLPDD_PRECISION_BF16), CLPDD_PRECISION_FP32);
    cr_expect_eq(mock_set_calls, 0, "the query called set_precision %d times", mock_set_calls);
    cr_expect_eq(mock_setting, CLPDD_PRECISION_TF32, "the setting is left as it was");
    const clpdd_ops *counted = clpdd_ops_counting(&dev);
    cr_expect(counted->precision_supported == mock_supported, "the FLOP-counting view passes the query through");
    cr_expect_eq(clpdd_precision_effective(counted, CLPDD_PRECISION_BF16), CLPDD_PRECISION_FP32);
    dev.precision_supported = NULL;
    for (int p = 0; p < CLPDD_PRECISION_COUNT; p++)
        cr_expect_eq(clpdd_precision_effective(&dev, (clpdd_precision)p), CLPDD_PRECISION_FP32, "no query: fp32 only");
    cr_expect_eq(mock_set_calls, 0);
}

Test(precision, flop_counting_view) {
    const clpdd_ops *cpu = clpdd_ops_cpu(), *o = clpdd_ops_counting(cpu);
    cr_expect_eq(o->is_device, cpu->is_device);
    cr_expect(o->relu == cpu->relu, "uncounted ops pass straight through");
    /* B holds the (5, 4) of the gemm and the batch's two (3, 4) at strides of 12 (24 floats) */
    float A[6 * 5], B[6 * 4], C[6 * 4], R[6 * 4];
    test_fill_normal(A, 30, 1.0f, 1);
    test_fill_normal(B, 24, 1.0f, 2);
    clpdd_flops_reset();
    o->gemm(0, 0, 6, 4, 5, 1.0f, A, 5, B, 4, 0.0f, C, 4);
    cr_expect_eq(clpdd_flops(), 2.0 * 6 * 4 * 5);
    cpu->gemm(0, 0, 6, 4, 5, 1.0f, A, 5, B, 4, 0.0f, R, 4);
    cr_expect(memcmp(C, R, sizeof C) == 0, "the view computes what the table does");
    o->gemm_batched(0, 1, 2, 3, 4, 1.0f, A, 4, 8, B, 4, 12, 0.0f, C, 3, 6, 2);
    cr_expect_eq(clpdd_flops(), 240.0 + 2.0 * 2 * 3 * 4 * 2);
    clpdd_flops_reset();
    float S[4 * 4] = {0};
    o->syrk(0, 4, 5, 1.0f, A, 5, 0.0f, S, 4);
    cr_expect_eq(clpdd_flops(), 4.0 * 5 * 5);
    clpdd_conv2d_desc d = {.n = 2, .cin = 3, .H = 8, .W = 8, .cout = 4, .k = 3, .stride = 1, .pad = 1, .OH = 8, .OW = 8};
    float x[2 * 3 * 64], w[4 * 27], y[2 * 4 * 64], work[8 * 8 * (27 + 4) * 2];
    test_fill_normal(x, sizeof x / sizeof x[0], 1.0f, 3);
    test_fill_normal(w, sizeof w / sizeof w[0], 1.0f, 4);
    clpdd_flops_reset();
    o->conv2d(y, work, sizeof work / sizeof work[0], x, w, NULL, NULL, &d);
    cr_expect_eq(clpdd_flops(), 2.0 * 2 * 4 * 64 * 27);
}

Test(precision, random_weights) {
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_weights *w = h->weights_open(h, CLPDD_RANDOM_WEIGHTS);
    cr_assert(w, "%s", clpdd_host_error(h));
    cr_expect_eq(h->weights_has(h, w, "blocks.0.norm1.weight"), 0, "optional tensors read as absent");
    int64_t s1[1] = {8}, s2[2] = {16, 8};
    float g[8], b[8], v[8], W[128], W2[128];
    cr_assert_eq(h->weights_read(h, w, "blocks.0.norm1.weight", 1, s1, g), 0);
    cr_assert_eq(h->weights_read(h, w, "blocks.0.norm1.bias", 1, s1, b), 0);
    cr_assert_eq(h->weights_read(h, w, "layer1.0.bn1.running_var", 1, s1, v), 0);
    for (int i = 0; i < 8; i++) cr_expect(g[i] == 1.0f && b[i] == 0.0f && v[i] == 1.0f);
    cr_assert_eq(h->weights_read(h, w, "blocks.0.attn.qkv.weight", 2, s2, W), 0);
    cr_assert_eq(h->weights_read(h, w, "blocks.0.attn.qkv.weight", 2, s2, W2), 0);
    cr_expect(memcmp(W, W2, sizeof W) == 0, "the values depend on the name only");
    double ss = 0;
    for (int i = 0; i < 128; i++) ss += (double)W[i] * W[i];
    cr_expect(fabs(sqrt(ss / 128) - 0.02) < 0.006, "std %.4f, expected ≈ 0.02", sqrt(ss / 128));
    h->weights_close(h, w);
    clpdd_host_destroy(h);
}

/* the key reaches the experiment; a wrong value is refused naming the key and the choices */
Test(precision, experiment_key) {
    const char *ini = "[backbone]\nname = vit\nweights = random\n[solver]\nname = ridge\n[loss]\nname = ce\n";
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    const char *sets[] = {"experiment.precision=bf16"};
    cr_assert_eq(clpdd_experiment_load_memory(&x, ini, "<test>", sets, 1, &dirs, &e), 0, "%s", e.msg);
    cr_expect_eq(x.precision, CLPDD_PRECISION_BF16);
    char *text = clpdd_experiment_distill_ini(&x);
    cr_expect(strstr(text, "precision = bf16"), "the precision is part of what --resume compares:\n%s", text);
    free(text);
    clpdd_experiment_free(&x);
    const char *bad[] = {"experiment.precision=fp16"};
    cr_expect_neq(clpdd_experiment_load_memory(&x, ini, "<test>", bad, 1, &dirs, &e), 0);
    cr_expect(strstr(e.msg, "precision") && strstr(e.msg, "fp32|tf32|bf16"), "message: %s", e.msg);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
}

/* the real features in half precision: the gather widens binary16 exactly */
Test(precision, gather_rows_f16) {
    const clpdd_ops *o = clpdd_ops_cpu();
    cr_assert(o->gather_rows_f16);
    const float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 0x1p-24f /* smallest subnormal */, 0x1p-14f, INFINITY, 0.333251953125f};
    enum { R = 3, Cn = 3 };
    uint16_t src[R * Cn];
    for (int i = 0; i < R * Cn; i++) src[i] = clpdd_f32_to_f16(vals[i]);
    int32_t idx[4] = {2, 0, 2, 1};
    float dst[4 * Cn];
    o->gather_rows_f16(dst, src, idx, 4, Cn);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < Cn; c++) {
            float want = vals[idx[i] * Cn + c];
            cr_expect(memcmp(&dst[i * Cn + c], &want, sizeof want) == 0, "row %d col %d: %a, expected %a", i, c,
                      (double)dst[i * Cn + c], (double)want);
        }
}
