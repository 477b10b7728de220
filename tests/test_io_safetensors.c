/* safetensors reading and writing (core/io/safetensors.c): round trips of every dtype,
 * half-precision conversions, the real mnist-vit checkpoint, every corruption class, all
 * truncation lengths, a byte-flip mutation loop, the writer's errors (no file left behind).
 *
 * Fixture (tests/fixtures): st_small.safetensors was written by clpdd_st_write (every dtype, a
 * 0-d and an empty tensor, metadata); it also seeds the fuzzers (tests/fuzz/README.md). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "io_support.h"
#include "support.h"

/* ---- safetensors ---- */

TestSuite(safetensors, .init = make_tmpdir, .fini = remove_tmpdir);

/* known half / bfloat16 bit patterns and their exact float values */
static const uint16_t F16_BITS[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x3555, 0x7e00};
static const float F16_VALS[] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, 6.097555160522461e-5f,
                                 6.103515625e-5f, INFINITY, -INFINITY, -0.0f, 0.333251953125f, NAN};
static const uint16_t BF16_BITS[] = {0x3f80, 0xc040, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x4049, 0x8000};
static const float BF16_VALS[] = {1.0f, -3.0f, INFINITY, -INFINITY, NAN, 9.183549615799121e-41f, 3.140625f, -0.0f};

static void assert_same_float(float got, float want, const char *what, int i) {
    if (isnan(want))
        cr_assert(isnan(got), "%s[%d]: want NaN, got %g", what, i, (double)got);
    else
        cr_assert_eq(f2u(got), f2u(want), "%s[%d]: want %.9g (0x%08x), got %.9g (0x%08x)", what, i, (double)want,
                     f2u(want), (double)got, f2u(got));
}

/* all dtypes, an empty tensor, a 0-d scalar, metadata with escapes */
static void write_all_dtypes(const char *path) {
    static float f32[6] = {1.5f, -2.25f, 0.0f, 3.0e38f, -1e-40f, 42.0f};
    static double f64[3] = {1.0 / 3.0, -1e300, 2.5};
    static int32_t i32[4] = {0, -1, 2147483647, -2147483647 - 1};
    static int64_t i64[3] = {0, -5, 1LL << 40};
    static uint8_t u8[5] = {0, 1, 127, 128, 255};
    static float scalar = 7.0f;
    clpdd_st_entry en[] = {
        {"f32", CLPDD_DT_F32, 2, {2, 3}, f32},
        {"f16", CLPDD_DT_F16, 1, {sizeof F16_BITS / 2}, F16_BITS},
        {"bf16", CLPDD_DT_BF16, 1, {sizeof BF16_BITS / 2}, BF16_BITS},
        {"f64", CLPDD_DT_F64, 1, {3}, f64},
        {"i32", CLPDD_DT_I32, 2, {2, 2}, i32},
        {"i64", CLPDD_DT_I64, 1, {3}, i64},
        {"u8", CLPDD_DT_U8, 3, {1, 5, 1}, u8},
        {"empty", CLPDD_DT_F32, 2, {0, 3}, NULL},
        {"scalar", CLPDD_DT_F32, 0, {0}, &scalar},
        {"weird \"name\"\\\n\xc3\xa9", CLPDD_DT_U8, 1, {2}, u8},
    };
    const char *mk[] = {"source", "quote\"back\\slash\nnl\ttab", "unicode"};
    const char *mv[] = {"clpdd test", "v\x01\x1f", "\xe2\x82\xac \xf0\x9f\x98\x80"};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(path, en, (int)(sizeof en / sizeof en[0]), mk, mv, 3, &e), 0, "%s", e.msg);
}

static void check_all_dtypes(clpdd_st_file *f) {
    clpdd_err e;
    cr_assert_eq(clpdd_st_count(f), 10);
    const char *names[] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u8", "empty", "scalar", "weird \"name\"\\\n\xc3\xa9"};
    for (int i = 0; i < 10; i++) {
        cr_assert_str_eq(clpdd_st_at(f, i)->name, names[i]);
        cr_assert_eq(clpdd_st_find(f, names[i]), clpdd_st_at(f, i));
    }
    cr_assert_null(clpdd_st_find(f, "nope"));
    cr_assert_null(clpdd_st_at(f, 10));
    cr_assert_str_eq(clpdd_st_metadata(f, "source"), "clpdd test");
    cr_assert_str_eq(clpdd_st_metadata(f, "quote\"back\\slash\nnl\ttab"), "v\x01\x1f");
    cr_assert_str_eq(clpdd_st_metadata(f, "unicode"), "\xe2\x82\xac \xf0\x9f\x98\x80");
    cr_assert_null(clpdd_st_metadata(f, "absent"));

    float buf[16];
    const clpdd_st_tensor *t = clpdd_st_find(f, "f32");
    cr_assert_eq(t->dtype, CLPDD_DT_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    cr_assert_eq(t->nbytes, 24);
    cr_assert_eq(clpdd_st_numel(t), 6);
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    const float f32[6] = {1.5f, -2.25f, 0.0f, 3.0e38f, -1e-40f, 42.0f};
    for (int i = 0; i < 6; i++) assert_same_float(buf[i], f32[i], "f32", i);

    t = clpdd_st_find(f, "f16");
    cr_assert_eq(t->dtype, CLPDD_DT_F16);
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < sizeof F16_BITS / 2; i++) assert_same_float(buf[i], F16_VALS[i], "f16", (int)i);
    uint16_t raw16[16];
    cr_assert_eq(clpdd_st_read_raw(f, t, raw16, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(raw16, F16_BITS, sizeof F16_BITS), 0);

    t = clpdd_st_find(f, "bf16");
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < sizeof BF16_BITS / 2; i++) assert_same_float(buf[i], BF16_VALS[i], "bf16", (int)i);

    t = clpdd_st_find(f, "f64");
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    assert_same_float(buf[0], (float)(1.0 / 3.0), "f64", 0);
    assert_same_float(buf[1], -INFINITY, "f64", 1); /* -1e300 overflows float */
    assert_same_float(buf[2], 2.5f, "f64", 2);

    t = clpdd_st_find(f, "i32");
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    assert_same_float(buf[1], -1.0f, "i32", 1);
    assert_same_float(buf[2], 2147483648.0f, "i32", 2);
    assert_same_float(buf[3], -2147483648.0f, "i32", 3);

    t = clpdd_st_find(f, "i64");
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    assert_same_float(buf[1], -5.0f, "i64", 1);
    assert_same_float(buf[2], 1099511627776.0f, "i64", 2);

    t = clpdd_st_find(f, "u8");
    cr_assert_eq(t->ndim, 3);
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    const float u8[5] = {0, 1, 127, 128, 255};
    for (int i = 0; i < 5; i++) assert_same_float(buf[i], u8[i], "u8", i);

    t = clpdd_st_find(f, "empty");
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(clpdd_st_numel(t), 0);
    buf[0] = 123.0f;
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    cr_assert_eq(buf[0], 123.0f, "an empty read must not write");

    t = clpdd_st_find(f, "scalar");
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(clpdd_st_numel(t), 1);
    cr_assert_eq(t->nbytes, 4);
    cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
    cr_assert_eq(buf[0], 7.0f);
}

Test(safetensors, round_trip_all_dtypes) {
    const char *p = tpath("all.safetensors");
    write_all_dtypes(p);
    cr_assert_eq(n_files_in(g_dir), 1, "no temporary file may be left behind");
    clpdd_err e;
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(p, &f, &e), 0, "%s", e.msg);
    cr_assert_str_eq(clpdd_st_path(f), p);
    check_all_dtypes(f);
    clpdd_st_close(f);

    size_t len;
    uint8_t *d = slurp(p, &len);
    cr_assert_eq(clpdd_st_open_memory(d, len, "mem", &f, &e), 0, "%s", e.msg);
    cr_assert_str_eq(clpdd_st_path(f), "mem");
    check_all_dtypes(f);
    clpdd_st_close(f);
    free(d);
}

/* a file written by an earlier build stays readable, value for value */
Test(safetensors, fixture_file) {
    clpdd_err e;
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(test_fixture("st_small.safetensors"), &f, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_count(f), 9);
    cr_assert_str_eq(clpdd_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(clpdd_st_metadata(f, "note"), "caf\xc3\xa9 \"quoted\"");
    const char *names[] = {"w", "h\\u", "b", "d", "i", "l", "u", "e", "s"};
    const float want[][6] = {{1, 2, 3, 4, 5, 6}, {1, 5.9604644775390625e-8f, INFINITY}, {1, NAN}, {1.5f, -2},
                             {-1, 7}, {1099511627776.0f}, {0, 128, 255}, {0}, {3}};
    const int64_t numel[] = {6, 3, 2, 2, 2, 1, 3, 0, 1};
    float buf[8];
    for (int i = 0; i < 9; i++) {
        const clpdd_st_tensor *t = clpdd_st_at(f, i);
        cr_assert_str_eq(t->name, names[i]);
        cr_assert_eq(clpdd_st_numel(t), numel[i], "%s", names[i]);
        cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
        for (int k = 0; k < numel[i]; k++) assert_same_float(buf[k], want[i][k], names[i], k);
    }
    cr_assert_eq(clpdd_st_at(f, 5)->ndim, 0);
    cr_assert_eq(clpdd_st_at(f, 7)->shape[1], 4);
    clpdd_st_close(f);
}

Test(safetensors, header_is_aligned_and_space_padded) {
    const char *p = tpath("a.safetensors");
    write_all_dtypes(p);
    size_t len;
    uint8_t *d = slurp(p, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | d[i];
    cr_assert_eq(n % 8, 0, "header length %llu not a multiple of 8", (unsigned long long)n);
    cr_assert_eq(d[8], '{');
    size_t last = 8 + n - 1;
    while (d[last] == ' ') last--;
    cr_assert_eq(d[last], '}', "header must be JSON then spaces");
    cr_assert(8 + n - 1 - last < 8);
    cr_assert(memmem(d + 8, n, "\"__metadata__\":{", 16) == d + 9, "metadata comes first");
    free(d);
}

Test(safetensors, half_conversions) {
    /* every half bit pattern survives f16 → f32 → f16 (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = clpdd_f16_to_f32((uint16_t)h);
        uint16_t back = clpdd_f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            cr_assert(isnan(f));
            cr_assert((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "NaN 0x%04x → 0x%04x", h, back);
        } else {
            cr_assert_eq(back, h, "0x%04x → %g → 0x%04x", h, (double)f, back);
        }
    }
    for (size_t i = 0; i < sizeof F16_BITS / 2; i++) assert_same_float(clpdd_f16_to_f32(F16_BITS[i]), F16_VALS[i], "f16", (int)i);
    /* round to nearest even, overflow, underflow */
    cr_assert_eq(clpdd_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);               /* tie → even */
    cr_assert_eq(clpdd_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);           /* tie → even (up) */
    cr_assert_eq(clpdd_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);    /* above the tie */
    cr_assert_eq(clpdd_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(clpdd_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(clpdd_f32_to_f16(1e10f), 0x7c00);
    cr_assert_eq(clpdd_f32_to_f16(-1e10f), 0xfc00);
    cr_assert_eq(clpdd_f32_to_f16(0x1p-25f), 0x0000);                      /* tie with 0 → even */
    cr_assert_eq(clpdd_f32_to_f16(0x1p-25f * 1.5f), 0x0001);
    cr_assert_eq(clpdd_f32_to_f16(-0x1p-24f), 0x8001);
    cr_assert_eq(clpdd_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);           /* rounds up into the normals */
    cr_assert_eq(clpdd_f32_to_f16(1e-30f), 0x0000);
    cr_assert_eq(clpdd_f32_to_f16(NAN) & 0x7e00, 0x7e00);
    /* bfloat16 */
    for (size_t i = 0; i < sizeof BF16_BITS / 2; i++) assert_same_float(clpdd_bf16_to_f32(BF16_BITS[i]), BF16_VALS[i], "bf16", (int)i);
    cr_assert_eq(clpdd_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(clpdd_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie → even */
    cr_assert_eq(clpdd_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    cr_assert_eq(clpdd_f32_to_bf16(3.4e38f), 0x7f80);        /* rounds up to inf */
    cr_assert(isnan(clpdd_bf16_to_f32(clpdd_f32_to_bf16(NAN))));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = clpdd_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) cr_assert_eq(clpdd_f32_to_bf16(f), h);
    }
}

Test(safetensors, real_checkpoint) {
    const char *p = test_model_file("mnist-vit.safetensors");
    clpdd_err e;
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(p, &f, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_count(f), 74);
    cr_assert_str_eq(clpdd_st_metadata(f, "license"), "MIT");
    cr_assert_not_null(clpdd_st_metadata(f, "source"));
    const clpdd_st_tensor *t = clpdd_st_find(f, "pos_embedding");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, CLPDD_DT_F32);
    cr_assert_eq(t->ndim, 3);
    cr_assert(t->shape[0] == 1 && t->shape[1] == 50 && t->shape[2] == 64);
    t = clpdd_st_find(f, "transformer.layers.0.0.fn.to_qkv.weight");
    cr_assert_not_null(t);
    cr_assert(t->ndim == 2 && t->shape[0] == 768 && t->shape[1] == 64);
    t = clpdd_st_find(f, "mlp_head.1.weight");
    cr_assert_not_null(t);
    cr_assert(t->ndim == 2 && t->shape[0] == 10 && t->shape[1] == 64);
    /* every tensor reads, values finite and not all zero */
    size_t total = 0;
    for (int i = 0; i < clpdd_st_count(f); i++) {
        const clpdd_st_tensor *ti = clpdd_st_at(f, i);
        size_t n = (size_t)clpdd_st_numel(ti);
        float *buf = malloc(n * sizeof *buf);
        cr_assert_eq(clpdd_st_read_f32(f, ti, buf, &e), 0, "%s", e.msg);
        double s = 0;
        for (size_t k = 0; k < n; k++) {
            cr_assert(isfinite(buf[k]), "%s[%zu] = %g", ti->name, k, (double)buf[k]);
            s += fabs(buf[k]);
        }
        cr_assert(s > 0, "%s is all zeros", ti->name);
        total += ti->nbytes;
        free(buf);
    }
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert(total < (size_t)st.st_size && (size_t)st.st_size - total < 16384);
    clpdd_st_close(f);
}

/* a small valid file in memory: three tensors and metadata, the last tensor ends the file */
static uint8_t *small_file(size_t *len) {
    const char *p = tpath("small.safetensors");
    float a[4] = {1, 2, 3, 4};
    uint16_t b[3] = {0x3c00, 0x4000, 0x4200};
    uint8_t c[5] = {9, 8, 7, 6, 5};
    clpdd_st_entry en[] = {
        {"a", CLPDD_DT_F32, 2, {2, 2}, a},
        {"b", CLPDD_DT_F16, 1, {3}, b},
        {"c", CLPDD_DT_U8, 1, {5}, c},
    };
    const char *mk[] = {"k"}, *mv[] = {"v"};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(p, en, 3, mk, mv, 1, &e), 0, "%s", e.msg);
    return slurp(p, len);
}

/* every successfully opened file must be fully readable without crashing */
static void read_everything(clpdd_st_file *f) {
    clpdd_err e;
    for (int i = 0; i < clpdd_st_count(f); i++) {
        const clpdd_st_tensor *t = clpdd_st_at(f, i);
        cr_assert_eq(clpdd_st_find(f, t->name), t);
        size_t n = (size_t)clpdd_st_numel(t);
        cr_assert_eq(n * clpdd_dtype_size(t->dtype), t->nbytes);
        float *buf = malloc(n * sizeof(float) + 1);
        void *raw = malloc(t->nbytes + 1);
        cr_assert_eq(clpdd_st_read_f32(f, t, buf, &e), 0, "%s", e.msg);
        cr_assert_eq(clpdd_st_read_raw(f, t, raw, &e), 0, "%s", e.msg);
        free(buf);
        free(raw);
    }
}

Test(safetensors, every_truncation_fails_cleanly) {
    size_t len;
    uint8_t *d = small_file(&len);
    clpdd_err e;
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open_memory(d, len, "small", &f, &e), 0, "%s", e.msg);
    clpdd_st_close(f);
    const char *p = tpath("cut.safetensors");
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size so ASan sees any over-read */
        memcpy(cut, d, n);
        e.msg[0] = 0;
        cr_assert_eq(clpdd_st_open_memory(cut, n, "small", &f, &e), -1, "prefix of %zu bytes accepted", n);
        assert_err_names(e, "small", "truncated");
        if (n < 8) assert_msg_has(e, "too short");
        else if (n < 8 + 8 + 80) assert_msg_has(e, "past the end of the file");
        /* and through the file path */
        spit(p, cut, n);
        cr_assert_eq(clpdd_st_open(p, &f, &e), -1, "file prefix of %zu bytes accepted", n);
        assert_err_names(e, p, "truncated file");
        free(cut);
    }
    /* cut inside the data section: the message says which tensor and that the file is truncated */
    cr_assert_eq(clpdd_st_open_memory(d, len - 1, "model.safetensors", &f, &e), -1);
    assert_msg_has(e, "model.safetensors: tensor 'c': data_offsets [");
    assert_msg_has(e, "end past the data section");
    assert_msg_has(e, "truncated?");
    free(d);
}

/* file = u64 length + header + `data` zero bytes */
static uint8_t *with_header(const char *hdr, size_t hlen, size_t data, size_t *len) {
    *len = 8 + hlen + data;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    return b;
}

static void expect_bad(const char *hdr, size_t data, const char *needle) {
    size_t len;
    uint8_t *b = with_header(hdr, strlen(hdr), data, &len);
    clpdd_err e = {{0}};
    clpdd_st_file *f = NULL;
    int rc = clpdd_st_open_memory(b, len, "bad.safetensors", &f, &e);
    cr_assert_eq(rc, -1, "accepted: %s", hdr);
    cr_assert_null(f);
    assert_err_names(e, "bad.safetensors", hdr);
    cr_assert(strstr(e.msg, needle), "header %s\n  expected '%s' in: %s", hdr, needle, e.msg);
    free(b);
}

static void expect_good(const char *hdr, size_t data) {
    size_t len;
    uint8_t *b = with_header(hdr, strlen(hdr), data, &len);
    clpdd_err e = {{0}};
    clpdd_st_file *f = NULL;
    cr_assert_eq(clpdd_st_open_memory(b, len, "good", &f, &e), 0, "header %s: %s", hdr, e.msg);
    read_everything(f);
    clpdd_st_close(f);
    free(b);
}

#define T(name, rest) "\"" name "\":{" rest "}"
Test(safetensors, header_validation) {
    /* accepted: whitespace, field order, unknown fields, empty header object, gaps */
    expect_good("{}", 0);
    expect_good(" {\n \"x\" : { \"shape\" : [ 2 ] , \"data_offsets\":[0,8],\"dtype\":\"F32\"}}   ", 8);
    expect_good("{" T("x", "\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[1,4],\"extra\":{\"a\":[1,null,true]}") "}", 5);
    expect_good("{\"__metadata__\":{},\"t\\u00e9\\ud83d\\ude00\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8);
    expect_good("{" T("z", "\"dtype\":\"F16\",\"shape\":[0,1000000000000],\"data_offsets\":[0,0]") "}", 0);

    /* header JSON */
    expect_bad("[]", 0, "must be a JSON object");
    expect_bad("  ", 0, "must be a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "unterminated object");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") ",}", 4, "trailing ','");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]") "}", 4, "trailing ','");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") "} x", 4, "after the end of the JSON");
    expect_bad("{\"a\" {}}", 0, "expected ':'");
    expect_bad("{a:1}", 0, "expected a string key");
    expect_bad("{\"a\\x\":{}}", 0, "invalid escape");
    expect_bad("{\"a\\u12\":{}}", 0, "bad \\u escape");
    expect_bad("{\"a\\udc00\":{}}", 0, "lone low surrogate");
    expect_bad("{\"a\\ud800x\":{}}", 0, "not followed by a low surrogate");
    expect_bad("{\"a\xff\":{}}", 0, "invalid UTF-8");
    expect_bad("{\"a\xc0\x80\":{}}", 0, "invalid UTF-8"); /* overlong NUL */
    expect_bad("{\"a\tb\":{}}", 0, "raw control character");
    expect_bad("{\"a\\u0000b\":{}}", 0, "NUL character");
    expect_bad("{\"abc", 0, "unterminated string");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]") "}", 4, "leading zero");
    expect_bad("{" T("a", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":tru") "}", 1, "invalid literal");
    expect_bad("{" T("a", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1.") "}", 1, "malformed number");
    {
        char deep[400] = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":";
        size_t k = strlen(deep);
        for (int i = 0; i < 100; i++) deep[k++] = '[';
        deep[k] = 0;
        expect_bad(deep, 1, "nested deeper than");
    }

    /* tensors */
    expect_bad("{" T("a", "\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]") "}", 1, "unsupported dtype 'F8_E4M3'");
    expect_bad("{" T("a", "\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "unsupported dtype");
    expect_bad("{" T("a", "\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "\"dtype\" must be a string");
    expect_bad("{" T("a", "\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "missing \"dtype\"");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"data_offsets\":[0,4]") "}", 4, "missing \"shape\"");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1]") "}", 4, "missing \"data_offsets\"");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, "duplicate field");
    expect_bad("{\"a\":[1]}", 0, "expected an object");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]") "}", 4, "is negative (-1)");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]") "}", 4, "expected an integer");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1e2],\"data_offsets\":[0,400]") "}", 400, "expected an integer");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]") "}", 4, "must be an integer");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]") "}", 4, "must be an array");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]") "}", 4, "out of range");
    expect_bad("{" T("a", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]") "}", 1, "more than 8 entries");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]") "}", 4, "overflow");
    expect_bad("{" T("a", "\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]") "}", 4, "overflow");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]") "}", 8, "more than 2 entries");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]") "}", 8, "must be [begin, end]");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]") "}", 8, "end before begin");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]") "}", 8, "span 4 bytes but F32 shape [2] needs 8");
    expect_bad("{" T("blocks.0.attn.qkv.weight", "\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]") "}", 3000,
               "bad.safetensors: tensor 'blocks.0.attn.qkv.weight': data_offsets [0, 4096] end past the data section "
               "(3000 bytes); the file is truncated?");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,0]") "}", 8, "out of range");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") "," T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]") "}", 8,
               "duplicate tensor name 'a'");
    expect_bad("{" T("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]") "," T("b", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]") "}", 8,
               "overlaps tensor");

    /* metadata */
    expect_bad("{\"__metadata__\":{\"a\":1}}", 0, "value of 'a' must be a string");
    expect_bad("{\"__metadata__\":[]}", 0, "must be an object of strings");
    expect_bad("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "duplicate \"__metadata__\" key 'a'");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\"");
}

Test(safetensors, header_length_checks) {
    size_t len;
    uint8_t *d = small_file(&len);
    clpdd_err e;
    clpdd_st_file *f;
    uint64_t bad[] = {1ull << 40, 100000001ull, (uint64_t)len - 7, UINT64_MAX, 0, 1};
    const char *needle[] = {"exceeds the 100 MB limit", "exceeds the 100 MB limit", "past the end of the file",
                            "exceeds the 100 MB limit", "too short for a JSON object", "too short for a JSON object"};
    const char *p = tpath("hl.safetensors");
    for (int k = 0; k < 6; k++) {
        uint8_t *c = malloc(len);
        memcpy(c, d, len);
        for (int i = 0; i < 8; i++) c[i] = (uint8_t)(bad[k] >> (8 * i));
        cr_assert_eq(clpdd_st_open_memory(c, len, "hl", &f, &e), -1);
        assert_err_names(e, "hl", "header length");
        assert_msg_has(e, needle[k]);
        spit(p, c, len);
        cr_assert_eq(clpdd_st_open(p, &f, &e), -1);
        assert_msg_has(e, needle[k]);
        free(c);
    }
    cr_assert_eq(clpdd_st_open(tpath("missing.safetensors"), &f, &e), -1);
    assert_msg_has(e, "missing.safetensors: cannot open");
    cr_assert_eq(clpdd_st_open(g_dir, &f, &e), -1);
    assert_msg_has(e, "not a regular file");
    free(d);
}

/* poor man's fuzzer: thousands of deterministic random mutations of a valid file */
Test(safetensors, mutation_loop) {
    size_t len;
    uint8_t *d = small_file(&len);
    uint64_t s = 12345;
    int ok = 0, bad = 0;
    uint8_t *m = malloc(len);
    for (int it = 0; it < 20000; it++) {
        memcpy(m, d, len);
        int flips = 1 + (int)(rng_next(&s) % 4);
        for (int k = 0; k < flips; k++) {
            uint64_t r = rng_next(&s);
            size_t at = (size_t)(r % len);
            switch ((r >> 32) % 4) {
            case 0: m[at] ^= (uint8_t)(1u << ((r >> 40) % 8)); break;          /* bit flip */
            case 1: m[at] = (uint8_t)(r >> 48); break;                          /* random byte */
            case 2: m[at] = "{}[],:\"\\0123456789-.eE \x00\xff"[(r >> 48) % 24]; break; /* JSON-ish */
            default: m[at] = (uint8_t)(m[at] + 1); break;                       /* off by one */
            }
        }
        size_t n = len;
        if (rng_next(&s) % 8 == 0) n = (size_t)(rng_next(&s) % len); /* and some truncations */
        clpdd_err e = {{0}};
        clpdd_st_file *f = NULL;
        if (clpdd_st_open_memory(m, n, "mut", &f, &e) == 0) {
            read_everything(f);
            clpdd_st_close(f);
            ok++;
        } else {
            cr_assert_null(f);
            assert_err_names(e, "mut", "mutation");
            cr_assert(strlen(e.msg) > 5);
            bad++;
        }
    }
    cr_log_info("safetensors mutation loop: %d accepted, %d rejected", ok, bad);
    cr_assert(bad > 10000, "most mutations must be caught (%d rejected)", bad);
    free(m);
    free(d);
}

Test(safetensors, writer_errors) {
    float x[2] = {1, 2};
    clpdd_err e;
    clpdd_st_entry dup[] = {{"a", CLPDD_DT_F32, 1, {1}, x}, {"a", CLPDD_DT_F32, 1, {1}, x}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), dup, 2, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "duplicate tensor name 'a'");
    clpdd_st_entry neg[] = {{"a", CLPDD_DT_F32, 2, {1, -2}, x}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), neg, 1, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "negative dim");
    clpdd_st_entry dt[] = {{"a", CLPDD_DT_COUNT, 1, {1}, x}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), dt, 1, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "bad dtype");
    clpdd_st_entry res[] = {{"__metadata__", CLPDD_DT_F32, 1, {1}, x}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), res, 1, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "reserved");
    clpdd_st_entry nodata[] = {{"a", CLPDD_DT_F32, 1, {2}, NULL}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), nodata, 1, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "no data");
    const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
    clpdd_st_entry one[] = {{"a", CLPDD_DT_F32, 1, {2}, x}};
    cr_assert_eq(clpdd_st_write(tpath("w.safetensors"), one, 1, mk, mv, 2, &e), -1);
    assert_msg_has(e, "duplicate metadata key 'k'");
    cr_assert_eq(n_files_in(g_dir), 0);
    cr_assert_eq(clpdd_st_write(tpath("no/such/dir/w.safetensors"), one, 1, NULL, NULL, 0, &e), -1);
    assert_msg_has(e, "cannot create");
    /* zero tensors, no metadata: "{}" padded */
    cr_assert_eq(clpdd_st_write(tpath("empty.safetensors"), NULL, 0, NULL, NULL, 0, &e), 0, "%s", e.msg);
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(tpath("empty.safetensors"), &f, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_count(f), 0);
    clpdd_st_close(f);
    /* overwriting an existing file replaces it */
    cr_assert_eq(clpdd_st_write(tpath("empty.safetensors"), one, 1, NULL, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_open(tpath("empty.safetensors"), &f, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_count(f), 1);
    clpdd_st_close(f);
    cr_assert_eq(n_files_in(g_dir), 1);
}

Test(safetensors, large_tensor_streams) {
    /* big enough to cross the reader's conversion chunks (64 Ki elements) */
    size_t n = 200000;
    uint16_t *h = malloc(n * 2);
    float *want = malloc(n * 4), *got = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        want[i] = (float)((double)i * 0.001 - 50);
        h[i] = clpdd_f32_to_bf16(want[i]);
        want[i] = clpdd_bf16_to_f32(h[i]);
    }
    clpdd_st_entry en[] = {{"big", CLPDD_DT_BF16, 2, {400, 500}, h}, {"f", CLPDD_DT_F32, 1, {(int64_t)n}, want}};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(tpath("big.safetensors"), en, 2, NULL, NULL, 0, &e), 0, "%s", e.msg);
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(tpath("big.safetensors"), &f, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_f32(f, clpdd_st_find(f, "big"), got, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(got, want, n * 4), 0);
    memset(got, 0, n * 4);
    cr_assert_eq(clpdd_st_read_f32(f, clpdd_st_find(f, "f"), got, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(got, want, n * 4), 0);
    clpdd_st_close(f);
    free(h);
    free(want);
    free(got);
}
