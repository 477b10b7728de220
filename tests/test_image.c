#define _GNU_SOURCE
/* Image decoding and preprocessing against Pillow/torchvision (tests/fixtures/image_pillow.safetensors,
 * made by tools/make_resize_fixture.py with Pillow 9.4 + torchvision 0.14): each case's encoded file
 * decoded here must equal PIL's convert("RGB") and convert("L") exactly (the same libjpeg-turbo and
 * the same conversion rules), and Resize + CenterCrop must be within 1/255 of torchvision's output
 * (the tolerance allowed; the implementation transcribes Pillow's fixed-point arithmetic, so
 * the measured error is 0 — printed). Also: round trips through our own JPEG/PNG writers, DCT-scaled
 * decoding, and every decode failure's message. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/imgproc.h"
#include "io/image.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "support.h"

static uint8_t *read_u8(clpdd_st_file *f, const char *name, const clpdd_st_tensor **tp) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    if (tp) *tp = t;
    if (!t) return NULL;
    cr_assert_eq(t->dtype, CLPDD_DT_U8, "%s: expected U8", name);
    uint8_t *b = malloc(t->nbytes ? t->nbytes : 1);
    clpdd_err e;
    cr_assert_eq(clpdd_st_read_raw(f, t, b, &e), 0, "%s", e.msg);
    return b;
}

Test(image, decode_and_preprocess_match_pillow) {
    clpdd_st_file *f;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(test_fixture("image_pillow.safetensors"), &f, &e), 0,
                 "%s (regenerate with /usr/bin/python3 tools/make_resize_fixture.py tests/fixtures/image_pillow.safetensors)",
                 e.msg);
    const char *ncases = clpdd_st_metadata(f, "cases");
    cr_assert(ncases, "fixture has no 'cases' metadata");
    int K = atoi(ncases), worst = 0;
    long total_px = 0, total_diff = 0;
    cr_assert_gt(K, 10);
    clpdd_image_decoder *dec = clpdd_image_decoder_new();
    for (int k = 0; k < K; k++) {
        char name[64], key[32];
        snprintf(key, sizeof key, "case%d", k);
        const char *desc = clpdd_st_metadata(f, key);
        const clpdd_st_tensor *tf, *tr, *tl, *to, *tc;
        snprintf(name, sizeof name, "case%d_file", k);
        uint8_t *file = read_u8(f, name, &tf);
        cr_assert(file, "%s missing", name);
        snprintf(name, sizeof name, "case%d_rgb", k);
        uint8_t *rgb = read_u8(f, name, &tr);
        snprintf(name, sizeof name, "case%d_l", k);
        uint8_t *lum = read_u8(f, name, &tl);
        snprintf(name, sizeof name, "case%d_out", k);
        uint8_t *ref = read_u8(f, name, &to);
        snprintf(name, sizeof name, "case%d_cfg", k);
        tc = clpdd_st_find(f, name);
        cr_assert(ref && tc);
        float cfg[2];
        cr_assert_eq(clpdd_st_read_f32(f, tc, cfg, &e), 0, "%s", e.msg);
        int resize = (int)cfg[0], crop = (int)cfg[1];

        clpdd_image im;
        cr_assert_eq(clpdd_image_decode(dec, file, tf->nbytes, desc, NULL, &im, &e), 0, "%s", e.msg);
        cr_assert_eq(im.c, 3);
        if (rgb) {
            cr_assert(tr->shape[0] == im.h && tr->shape[1] == im.w, "%s: decoded %dx%d, PIL %ldx%ld", desc, im.h, im.w,
                      (long)tr->shape[0], (long)tr->shape[1]);
            size_t nd = 0;
            for (size_t i = 0; i < (size_t)im.h * im.w * 3; i++) nd += im.px[i] != rgb[i];
            cr_expect_eq(nd, 0, "%s: %zu of %d decoded RGB values differ from PIL's convert(\"RGB\")", desc, nd,
                         im.h * im.w * 3);
            clpdd_image g;
            clpdd_decode_opt go = {.grey = 1};
            cr_assert_eq(clpdd_image_decode(dec, file, tf->nbytes, desc, &go, &g, &e), 0, "%s", e.msg);
            cr_assert_eq(g.c, 1);
            size_t ng = 0;
            for (size_t i = 0; i < (size_t)g.h * g.w; i++) ng += g.px[i] != lum[i];
            cr_expect_eq(ng, 0, "%s: %zu of %d grey values differ from PIL's convert(\"L\")", desc, ng, g.h * g.w);
            clpdd_image_free(&g);
        }
        clpdd_image_preprocess(&im, resize, crop);
        cr_assert(to->shape[0] == im.h && to->shape[1] == im.w, "%s: preprocessed to %dx%d, torchvision %ldx%ld", desc,
                  im.h, im.w, (long)to->shape[0], (long)to->shape[1]);
        int maxd = 0;
        long nd = 0;
        for (size_t i = 0; i < (size_t)im.h * im.w * 3; i++) {
            int d = abs((int)im.px[i] - (int)ref[i]);
            if (d > maxd) maxd = d;
            nd += d != 0;
        }
        cr_log_info("%s: max |diff| %d/255, %ld of %d values differ", desc, maxd, nd, im.h * im.w * 3);
        cr_expect_leq(maxd, 1, "%s: max |diff| %d/255 vs torchvision (%ld values differ)", desc, maxd, nd);
        if (maxd > worst) worst = maxd;
        total_px += (long)im.h * im.w * 3;
        total_diff += nd;
        clpdd_image_free(&im);
        free(file), free(rgb), free(lum), free(ref);
    }
    fprintf(stderr, "image: %d Pillow cases: max |diff| %d/255 after Resize+CenterCrop, %ld of %ld values differ\n", K,
            worst, total_diff, total_px);
    clpdd_image_decoder_free(dec);
    clpdd_st_close(f);
}

Test(image, resize_rules_follow_torchvision) {
    int oh, ow;
    clpdd_resize_shorter_size(375, 500, 256, &oh, &ow);
    cr_expect(oh == 256 && ow == 341, "500x375 → %dx%d", ow, oh); /* int(256·500/375) = 341 */
    clpdd_resize_shorter_size(500, 333, 256, &oh, &ow);
    cr_expect(ow == 256 && oh == 384, "333x500 → %dx%d", ow, oh); /* int(384.38) */
    clpdd_resize_shorter_size(100, 100, 7, &oh, &ow);
    cr_expect(oh == 7 && ow == 7);
    /* CenterCrop offsets: round half to even; (5 − 2)/2 = 1.5 → 2, (7 − 4)/2 = 1.5 → 2, (4 − 1)/2 → 2 */
    uint8_t in[7 * 7], out[4 * 4];
    for (int i = 0; i < 49; i++) in[i] = (uint8_t)i;
    clpdd_center_crop_u8(out, 4, 4, in, 7, 7, 1);
    cr_expect_eq(out[0], 2 * 7 + 2, "top-left of a 4-crop of 7 is (2, 2) (round(1.5) = 2)");
    uint8_t in2[6 * 6], out2[3 * 3];
    for (int i = 0; i < 36; i++) in2[i] = (uint8_t)i;
    clpdd_center_crop_u8(out2, 3, 3, in2, 6, 6, 1);
    cr_expect_eq(out2[0], 2 * 6 + 2, "top-left of a 3-crop of 6 is (2, 2) (round(1.5) = 2)");
    uint8_t in3[9 * 9], out3[4 * 4];
    for (int i = 0; i < 81; i++) in3[i] = (uint8_t)i;
    clpdd_center_crop_u8(out3, 4, 4, in3, 9, 9, 1);
    cr_expect_eq(out3[0], 2 * 9 + 2, "top-left of a 4-crop of 9 is (2, 2) (round(2.5) = 2)");
}

static char tmpdir[256];

static void mk_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clpdd_test_image_XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* a smooth image with a little noise (JPEG-friendly) */
static void photo(uint8_t *px, int h, int w, int c, uint64_t seed) {
    test_rng r = {seed};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                double v = 128 + 90 * __builtin_sin(0.05 * x + 0.07 * y + k) + 3 * test_normal(&r);
                px[((size_t)y * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

Test(image, jpeg_and_png_round_trips, .init = mk_tmp, .fini = rm_tmp) {
    clpdd_err e;
    int h = 61, w = 83;
    uint8_t *px = malloc((size_t)h * w * 3);
    photo(px, h, w, 3, 5);
    char path[512];
    snprintf(path, sizeof path, "%s/a.png", tmpdir);
    cr_assert_eq(clpdd_png_write(path, px, w, h, 3, &e), 0, "%s", e.msg);
    clpdd_image im;
    cr_assert_eq(clpdd_image_read(NULL, path, NULL, &im, &e), 0, "%s", e.msg);
    cr_assert(im.w == w && im.h == h && im.c == 3);
    cr_expect_eq(memcmp(im.px, px, (size_t)h * w * 3), 0, "PNG round trip is lossless");
    clpdd_image_free(&im);
    snprintf(path, sizeof path, "%s/a.jpg", tmpdir);
    cr_assert_eq(clpdd_image_write_jpeg(path, px, w, h, 3, 95, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_image_read(NULL, path, NULL, &im, &e), 0, "%s", e.msg);
    cr_assert(im.w == w && im.h == h && im.c == 3);
    double mae = 0;
    for (size_t i = 0; i < (size_t)h * w * 3; i++) mae += abs((int)im.px[i] - (int)px[i]);
    mae /= (double)h * w * 3;
    cr_expect_lt(mae, 6.0, "JPEG q95 round trip: mean |diff| %.2f", mae);
    clpdd_image_free(&im);
    /* grey JPEG → RGB replicated; grey mode keeps one channel */
    uint8_t *g = malloc((size_t)h * w);
    photo(g, h, w, 1, 6);
    snprintf(path, sizeof path, "%s/g.jpg", tmpdir);
    cr_assert_eq(clpdd_image_write_jpeg(path, g, w, h, 1, 90, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_image_read(NULL, path, NULL, &im, &e), 0, "%s", e.msg);
    cr_assert_eq(im.c, 3);
    for (size_t i = 0; i < (size_t)h * w; i++)
        cr_assert(im.px[3 * i] == im.px[3 * i + 1] && im.px[3 * i] == im.px[3 * i + 2], "grey replicated at %zu", i);
    clpdd_image g1;
    clpdd_decode_opt go = {.grey = 1};
    cr_assert_eq(clpdd_image_read(NULL, path, &go, &g1, &e), 0, "%s", e.msg);
    cr_assert_eq(g1.c, 1);
    for (size_t i = 0; i < (size_t)h * w; i++) cr_assert_eq(g1.px[i], im.px[3 * i]);
    clpdd_image_free(&g1);
    clpdd_image_free(&im);
    free(g);
    free(px);
}

Test(image, dct_scaling_keeps_the_shorter_side, .init = mk_tmp, .fini = rm_tmp) {
    clpdd_err e;
    int h = 375, w = 500;
    uint8_t *px = malloc((size_t)h * w * 3);
    photo(px, h, w, 3, 7);
    char path[512];
    snprintf(path, sizeof path, "%s/big.jpg", tmpdir);
    cr_assert_eq(clpdd_image_write_jpeg(path, px, w, h, 3, 90, &e), 0, "%s", e.msg);
    struct {
        int min_side, eh, ew;
    } c[] = {{376, 375, 500} /* none fits: full size */, {256, 375, 500} /* 1/2 too small: full size */,
             {180, 188, 250} /* 1/2 */, {100, 188, 250} /* 1/4 too small: 1/2 */, {40, 47, 63} /* 1/8 */};
    for (int i = 0; i < 5; i++) {
        clpdd_image im;
        clpdd_decode_opt o = {.min_side = c[i].min_side};
        cr_assert_eq(clpdd_image_read(NULL, path, &o, &im, &e), 0, "%s", e.msg);
        cr_expect(im.h == c[i].eh && im.w == c[i].ew, "min_side %d: %dx%d, expected %dx%d", c[i].min_side, im.w, im.h,
                  c[i].ew, c[i].eh);
        if (i > 0) cr_expect_geq(im.h < im.w ? im.h : im.w, c[i].min_side);
        clpdd_image_free(&im);
    }
    free(px);
}

static void expect_fail(const uint8_t *buf, size_t len, const char *name, const char *want1, const char *want2) {
    clpdd_err e = {{0}};
    clpdd_image im;
    cr_expect_neq(clpdd_image_decode(NULL, buf, len, name, NULL, &im, &e), 0, "%s decoded", name);
    cr_expect(strstr(e.msg, name) && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)),
              "message for %s: '%s' (wanted '%s', '%s')", name, e.msg, want1, want2 ? want2 : "");
    cr_expect_null(im.px);
}

Test(image, bad_files_get_messages_naming_them, .init = mk_tmp, .fini = rm_tmp) {
    clpdd_err e;
    int h = 40, w = 50;
    uint8_t *px = malloc((size_t)h * w * 3);
    photo(px, h, w, 3, 9);
    char path[512];
    snprintf(path, sizeof path, "%s/x.jpg", tmpdir);
    cr_assert_eq(clpdd_image_write_jpeg(path, px, w, h, 3, 90, &e), 0, "%s", e.msg);
    uint8_t *jpg;
    size_t jlen;
    cr_assert_eq(clpdd_read_file(path, &jpg, &jlen, &e), 0);
    expect_fail(jpg, jlen - 40, "cut.jpg", "truncated JPEG", "Premature end");
    expect_fail(jpg, 300, "cut-in-header.jpg", "truncated or corrupt JPEG", NULL);
    expect_fail(jpg, 20, "header-only.jpg", "truncated JPEG", NULL);
    snprintf(path, sizeof path, "%s/x.png", tmpdir);
    cr_assert_eq(clpdd_png_write(path, px, w, h, 3, &e), 0, "%s", e.msg);
    uint8_t *png;
    size_t plen;
    cr_assert_eq(clpdd_read_file(path, &png, &plen, &e), 0);
    expect_fail(png, plen / 2, "half.png", "truncated PNG", NULL);
    png[40] ^= 0xff; /* inside IHDR/IDAT: a CRC or data error */
    expect_fail(png, plen, "flipped.png", "corrupt PNG", NULL);
    const char *txt = "class,label\nthis is not an image\n";
    expect_fail((const uint8_t *)txt, strlen(txt), "notes.txt", "not a JPEG or PNG", NULL);
    expect_fail((const uint8_t *)"", 0, "empty.jpg", "not a JPEG or PNG", "0 bytes");
    clpdd_image im;
    cr_expect_neq(clpdd_image_read(NULL, "/nonexistent/a.jpg", NULL, &im, &e), 0);
    cr_expect(strstr(e.msg, "/nonexistent/a.jpg"), "%s", e.msg);
    free(jpg);
    free(png);
    free(px);
}
