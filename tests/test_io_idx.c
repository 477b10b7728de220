/* IDX reading (core/io/idx.c): raw and gzip, real Fashion-MNIST when present, truncation and
 * corruption, a bounded gzip bomb.
 *
 * Fixtures (tests/fixtures): idx_small.idx3.gz is a (4, 5, 6) u8 IDX with byte i = (i/8)·37 mod
 * 256, gzip level 9, mtime 0; idx_two_members.idx3.gz is the same IDX split into two gzip members
 * at byte 68 (Python: gzip.compress(raw[:68], mtime=0) + gzip.compress(raw[68:], mtime=0)). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/idx.h"
#include "io_support.h"
#include "support.h"

/* ---- IDX ---- */

TestSuite(idx, .init = make_tmpdir, .fini = remove_tmpdir);

/* a raw (4, 5, 6) u8 IDX, the same content as the gzip fixtures */
static uint8_t *idx_small(size_t *len) {
    *len = 4 + 12 + 120;
    uint8_t *b = malloc(*len);
    const uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6};
    memcpy(b, hdr, 16);
    for (int i = 0; i < 120; i++) b[16 + i] = (uint8_t)(((i / 8) * 37) % 256);
    return b;
}

static void check_idx_small(const clpdd_idx *x) {
    cr_assert_eq(x->ndim, 3);
    cr_assert(x->dims[0] == 4 && x->dims[1] == 5 && x->dims[2] == 6);
    cr_assert_eq(x->count, 120);
    for (int i = 0; i < 120; i++) cr_assert_eq(x->data[i], (uint8_t)(((i / 8) * 37) % 256), "byte %d", i);
}

Test(idx, raw_and_gzip) {
    size_t len;
    uint8_t *b = idx_small(&len);
    clpdd_idx x;
    clpdd_err e;
    cr_assert_eq(clpdd_idx_parse(b, len, "small", &x, &e), 0, "%s", e.msg);
    check_idx_small(&x);
    clpdd_idx_free(&x);
    cr_assert_null(x.data);
    spit(tpath("small.idx3"), b, len);
    cr_assert_eq(clpdd_idx_read(tpath("small.idx3"), &x, &e), 0, "%s", e.msg);
    check_idx_small(&x);
    clpdd_idx_free(&x);
    cr_assert_eq(clpdd_idx_read(test_fixture("idx_small.idx3.gz"), &x, &e), 0, "%s", e.msg);
    check_idx_small(&x);
    clpdd_idx_free(&x);
    cr_assert_eq(clpdd_idx_read(test_fixture("idx_two_members.idx3.gz"), &x, &e), 0, "%s", e.msg);
    check_idx_small(&x);
    clpdd_idx_free(&x);
    /* 1-d labels, and an empty dimension */
    const uint8_t lab[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    cr_assert_eq(clpdd_idx_parse(lab, sizeof lab, "lab", &x, &e), 0, "%s", e.msg);
    cr_assert(x.ndim == 1 && x.dims[0] == 3 && x.count == 3 && x.data[2] == 9);
    clpdd_idx_free(&x);
    const uint8_t empty[] = {0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 9};
    cr_assert_eq(clpdd_idx_parse(empty, sizeof empty, "empty", &x, &e), 0, "%s", e.msg);
    cr_assert_eq(x.count, 0);
    clpdd_idx_free(&x);
    free(b);
}

Test(idx, header_errors) {
    size_t len;
    uint8_t *b = idx_small(&len);
    clpdd_idx x;
    clpdd_err e;
    struct {
        int at;
        uint8_t val;
        const char *needle;
    } cases[] = {
        {0, 0x01, "bad IDX magic 01 00 08 03"},
        {1, 0x08, "bad IDX magic"},
        {2, 0x0d, "0x0d (float32) is not supported"},
        {2, 0x0b, "0x0b (int16) is not supported"},
        {2, 0x42, "0x42 (unknown)"},
        {3, 0, "0 dimensions"},
        {3, 5, "5 dimensions"},
        {7, 5, "need 150 bytes after the 16-byte header, got 120"},
        {4, 0x80, "too large"},
        {4, 0x7f, "more than"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t *c = malloc(len);
        memcpy(c, b, len);
        c[cases[k].at] = cases[k].val;
        cr_assert_eq(clpdd_idx_parse(c, len, "hdr.idx", &x, &e), -1, "case %zu accepted", k);
        cr_assert_null(x.data);
        assert_err_names(e, "hdr.idx", cases[k].needle);
        assert_msg_has(e, cases[k].needle);
        free(c);
    }
    /* trailing garbage */
    uint8_t *c = malloc(len + 3);
    memcpy(c, b, len);
    memset(c + len, 0xaa, 3);
    cr_assert_eq(clpdd_idx_parse(c, len + 3, "tail.idx", &x, &e), -1);
    assert_msg_has(e, "tail.idx: 3 bytes of trailing data after the IDX payload (120 bytes expected, got 123)");
    free(c);
    cr_assert_eq(clpdd_idx_read(tpath("nope.idx"), &x, &e), -1);
    assert_msg_has(e, "cannot open");
    free(b);
}

Test(idx, every_truncation_fails_cleanly) {
    size_t len;
    uint8_t *b = idx_small(&len);
    clpdd_idx x;
    clpdd_err e;
    for (size_t n = 0; n < len; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, b, n);
        cr_assert_eq(clpdd_idx_parse(c, n, "cut.idx", &x, &e), -1, "prefix %zu accepted", n);
        assert_err_names(e, "cut.idx", "raw truncation");
        if (n >= 16) {
            char want[128];
            snprintf(want, sizeof want, "truncated: the dimensions need 120 bytes after the 16-byte header, got %zu", n - 16);
            assert_msg_has(e, want);
        } else {
            assert_msg_has(e, "too short for an IDX header");
        }
        free(c);
    }
    /* gzip truncated at every length, through the file reader */
    size_t glen;
    uint8_t *g = slurp(test_fixture("idx_small.idx3.gz"), &glen);
    const char *p = tpath("cut.idx3.gz");
    for (size_t n = 0; n < glen; n++) {
        spit(p, g, n);
        cr_assert_eq(clpdd_idx_read(p, &x, &e), -1, "gzip prefix %zu accepted", n);
        assert_err_names(e, p, "gzip truncation");
        if (n >= 11) cr_assert(strstr(e.msg, "truncated") || strstr(e.msg, "corrupt gzip"), "%zu: %s", n, e.msg);
    }
    /* the deflate data complete but the CRC/size trailer missing */
    spit(p, g, glen - 8);
    cr_assert_eq(clpdd_idx_read(p, &x, &e), -1);
    assert_msg_has(e, "gzip stream truncated");
    free(g);
    free(b);
}

Test(idx, gzip_corruption) {
    size_t glen;
    uint8_t *g = slurp(test_fixture("idx_small.idx3.gz"), &glen);
    clpdd_idx x;
    clpdd_err e;
    /* CRC mismatch */
    uint8_t *c = malloc(glen + 4);
    memcpy(c, g, glen);
    c[glen - 6] ^= 0x55;
    cr_assert_eq(clpdd_idx_decode(c, glen, 0, "crc.gz", &x, &e), -1);
    assert_msg_has(e, "crc.gz: corrupt gzip data");
    /* trailing garbage after the gzip member */
    memcpy(c, g, glen);
    memcpy(c + glen, "junk", 4);
    cr_assert_eq(clpdd_idx_decode(c, glen + 4, 0, "junk.gz", &x, &e), -1);
    assert_msg_has(e, "4 bytes of trailing garbage after the gzip stream");
    free(c);
    /* deterministic mutations of the gzip file and of the raw file */
    uint64_t s = 777;
    int rejected = 0, total = 0;
    size_t rlen;
    uint8_t *raw = idx_small(&rlen);
    for (int which = 0; which < 2; which++) {
        const uint8_t *src = which ? raw : g;
        size_t n0 = which ? rlen : glen;
        uint8_t *m = malloc(n0);
        for (int it = 0; it < 3000; it++) {
            memcpy(m, src, n0);
            int flips = 1 + (int)(rng_next(&s) % 3);
            for (int k = 0; k < flips; k++) {
                uint64_t r = rng_next(&s);
                m[r % n0] ^= (uint8_t)(1u << ((r >> 32) % 8));
            }
            size_t n = n0;
            if (rng_next(&s) % 8 == 0) n = (size_t)(rng_next(&s) % n0);
            e.msg[0] = 0;
            total++;
            if (clpdd_idx_decode(m, n, 1 << 20, "mut", &x, &e) == 0) {
                size_t prod = 1;
                for (int d = 0; d < x.ndim; d++) prod *= (size_t)x.dims[d];
                cr_assert_eq(prod, x.count);
                volatile uint8_t sink = 0;
                for (size_t i = 0; i < x.count; i++) sink ^= x.data[i];
                (void)sink;
                clpdd_idx_free(&x);
            } else {
                assert_err_names(e, "mut", "idx mutation");
                rejected++;
            }
        }
        free(m);
    }
    cr_log_info("idx mutation loop: %d of %d rejected", rejected, total);
    cr_assert(rejected > total / 2);
    free(raw);
    free(g);
}

Test(idx, gzip_bomb_is_bounded) {
    /* an IDX header declaring 10 bytes followed by 64 MiB of zeros, gzip'd as stored blocks
       would be large; instead check the cap with a header that declares too much */
    const uint8_t big[] = {0, 0, 8, 4, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0, 0, 2};
    clpdd_idx x;
    clpdd_err e;
    cr_assert_eq(clpdd_idx_parse(big, sizeof big, "big", &x, &e), -1);
    assert_msg_has(e, "more than 1073741824 bytes");
    /* a gzip stream longer than the header declares stops at header + payload + 1 bytes */
    size_t glen;
    uint8_t *g = slurp(test_fixture("idx_two_members.idx3.gz"), &glen);
    cr_assert_eq(clpdd_idx_decode(g, glen, 100, "cap.gz", &x, &e), -1);
    assert_msg_has(e, "more than the 100-byte limit");
    free(g);
}

Test(idx, fashion_mnist) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(p, R_OK) != 0) cr_skip_test("Fashion-MNIST not present at %s", dir);
    clpdd_idx x, y;
    clpdd_err e;
    double t0 = clpdd_now();
    cr_assert_eq(clpdd_idx_read(p, &x, &e), 0, "%s", e.msg);
    cr_log_info("train images read in %.2f s", clpdd_now() - t0);
    cr_assert(x.ndim == 3 && x.dims[0] == 60000 && x.dims[1] == 28 && x.dims[2] == 28);
    cr_assert_eq(x.count, (size_t)60000 * 784);
    double mean = 0;
    for (size_t i = 0; i < x.count; i++) mean += x.data[i];
    mean /= (double)x.count * 255.0;
    cr_assert(mean > 0.25 && mean < 0.35, "train mean %g (Fashion-MNIST: 0.286)", mean);
    clpdd_idx_free(&x);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    cr_assert_eq(clpdd_idx_read(p, &y, &e), 0, "%s", e.msg);
    cr_assert(y.ndim == 1 && y.dims[0] == 60000);
    int hist[10] = {0};
    for (size_t i = 0; i < y.count; i++) {
        cr_assert(y.data[i] < 10);
        hist[y.data[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(hist[c], 6000, "class %d has %d", c, hist[c]);
    clpdd_idx_free(&y);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    cr_assert_eq(clpdd_idx_read(p, &x, &e), 0, "%s", e.msg);
    cr_assert(x.ndim == 3 && x.dims[0] == 10000 && x.dims[1] == 28 && x.dims[2] == 28);
    clpdd_idx_free(&x);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    cr_assert_eq(clpdd_idx_read(p, &y, &e), 0, "%s", e.msg);
    cr_assert(y.ndim == 1 && y.dims[0] == 10000);
    clpdd_idx_free(&y);
}
