/* PNG writing and reading (core/io/png.c): grids and plots written and read back, bad input
 * rejected without leaving files. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/png.h"
#include "io_support.h"
#include "support.h"

/* ---- PNG ---- */

TestSuite(png, .init = make_tmpdir, .fini = remove_tmpdir);

Test(png, write_and_read_back) {
    uint8_t px[3 * 4 * 3];
    for (int i = 0; i < 36; i++) px[i] = (uint8_t)(i * 7);
    clpdd_err e;
    cr_assert_eq(clpdd_png_write(tpath("rgb.png"), px, 4, 3, 3, &e), 0, "%s", e.msg);
    uint8_t *back;
    int w, h, c;
    cr_assert_eq(clpdd_png_read(tpath("rgb.png"), &back, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 4 && h == 3 && c == 3);
    cr_assert_eq(memcmp(back, px, 36), 0);
    free(back);
    cr_assert_eq(clpdd_png_write(tpath("g.png"), px, 6, 6, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_png_read(tpath("g.png"), &back, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 6 && h == 6 && c == 1);
    cr_assert_eq(memcmp(back, px, 36), 0);
    free(back);
    /* failures leave nothing behind */
    cr_assert_eq(clpdd_png_write(tpath("bad.png"), px, 0, 3, 3, &e), -1);
    assert_msg_has(e, "bad size");
    cr_assert_eq(clpdd_png_write(tpath("bad.png"), px, 4, 3, 2, &e), -1);
    assert_msg_has(e, "2 channels");
    cr_assert_eq(clpdd_png_write(tpath("no/dir/x.png"), px, 4, 3, 3, &e), -1);
    assert_msg_has(e, "cannot create");
    cr_assert_eq(n_files_in(g_dir), 2);
    spit(tpath("junk.png"), "not a png", 9);
    cr_assert_eq(clpdd_png_read(tpath("junk.png"), &back, &w, &h, &c, &e), -1);
    assert_msg_has(e, "junk.png: cannot read PNG");
}

Test(png, grid) {
    /* 7 grey 4×3 images, 3 per row, zoom 2: (3·(6+1)+1) × (3·(8+1)+1) */
    int m = 7, H = 4, W = 3;
    float *img = malloc(sizeof(float) * (size_t)(m * H * W * 3));
    for (int i = 0; i < m * H * W; i++) img[i] = (float)(i % (H * W)) / (float)(H * W - 1);
    img[0] = -1.0f;  /* clamped to 0 */
    img[1] = 2.0f;   /* clamped to 1 */
    img[2] = NAN;    /* → 0 */
    clpdd_err e;
    cr_assert_eq(clpdd_png_grid(tpath("grid.png"), img, m, 1, H, W, 3, 2, &e), 0, "%s", e.msg);
    uint8_t *px;
    int w, h, c;
    cr_assert_eq(clpdd_png_read(tpath("grid.png"), &px, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 22 && h == 28 && c == 1, "%d × %d × %d", w, h, c);
    for (int x = 0; x < w; x++) cr_assert(px[x] == 255 && px[(size_t)(h - 1) * w + x] == 255, "border");
    for (int y = 0; y < h; y++) cr_assert(px[(size_t)y * w] == 255 && px[(size_t)y * w + 7] == 255, "border");
    cr_assert_eq(px[1 * w + 1], 0);  /* image 0 pixel (0,0) = clamp(-1), zoomed 2×2 */
    cr_assert_eq(px[2 * w + 2], 0);
    cr_assert_eq(px[1 * w + 3], 255); /* pixel (0,1) = clamp(2) */
    cr_assert_eq(px[1 * w + 5], 0);   /* NaN */
    /* image 4 (row 1, col 1), pixel (3, 2) = 11/11 → 255; at x = 1+7+4.., y = 1+9+6.. */
    cr_assert_eq(px[(size_t)(10 + 6) * w + 8 + 4], 255);
    cr_assert_eq(px[(size_t)(10 + 0) * w + 8 + 2], (uint8_t)(1.0f / 11.0f * 255.0f + 0.5f));
    /* empty cells (images 7, 8) are white */
    cr_assert_eq(px[(size_t)(19 + 3) * w + 15 + 3], 255);
    free(px);
    /* RGB: channel planes → interleaved */
    for (int i = 0; i < H * W; i++) img[i] = 1.0f, img[H * W + i] = 0.5f, img[2 * H * W + i] = 0.0f;
    cr_assert_eq(clpdd_png_grid(tpath("rgb.png"), img, 2, 3, H, W, 2, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_png_read(tpath("rgb.png"), &px, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 2 * (W + 1) + 1 && h == H + 2 && c == 3);
    cr_assert(px[(1 * w + 1) * 3] == 255 && px[(1 * w + 1) * 3 + 1] == 128 && px[(1 * w + 1) * 3 + 2] == 0);
    free(px);
    cr_assert_eq(clpdd_png_grid(tpath("x.png"), img, 0, 1, H, W, 3, 1, &e), -1);
    assert_msg_has(e, "no images");
    cr_assert_eq(clpdd_png_grid(tpath("x.png"), img, 2, 2, H, W, 3, 1, &e), -1);
    assert_msg_has(e, "2 channels");
    cr_assert_eq(clpdd_png_grid(tpath("x.png"), img, 2, 1, H, W, 3, 0, &e), -1);
    assert_msg_has(e, "bad layout");
    cr_assert_eq(clpdd_png_grid(tpath("x.png"), img, 2, 1, 100000, 100000, 3, 100, &e), -1);
    assert_msg_has(e, "too large");
    free(img);
}

static int count_colour(const uint8_t *px, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    int n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) n += px[3 * i] == r && px[3 * i + 1] == g && px[3 * i + 2] == b;
    return n;
}

Test(png, plot) {
    float x[300], y[300];
    for (int i = 0; i < 300; i++) x[i] = (float)i, y[i] = 2.3f * expf(-i / 50.0f) + 0.01f;
    clpdd_plot o = {"loss", "step", "cross-entropy", 0, 0, 0};
    clpdd_err e;
    uint8_t *px;
    int w, h, c;
    cr_assert_eq(clpdd_png_plot(tpath("lin.png"), x, y, 300, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_png_read(tpath("lin.png"), &px, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 800 && h == 500 && c == 3);
    cr_assert(count_colour(px, w, h, 31, 119, 180) > 500, "the curve is drawn");
    cr_assert(count_colour(px, w, h, 20, 20, 20) > 500, "text is drawn");
    cr_assert(count_colour(px, w, h, 255, 255, 255) > w * h / 2, "mostly white");
    free(px);
    o.log_y = 1;
    o.width = 640, o.height = 400;
    y[5] = 0.0f, y[6] = -1.0f; /* skipped on a log axis */
    cr_assert_eq(clpdd_png_plot(tpath("log.png"), x, y, 300, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_png_read(tpath("log.png"), &px, &w, &h, &c, &e), 0, "%s", e.msg);
    cr_assert(w == 640 && h == 400 && c == 3);
    free(px);
    /* one point, constant values, negative ranges, small canvases, no labels */
    float one = 3.0f, cx[3] = {-5, -5, -5}, cy[3] = {-2e-7f, -2e-7f, -2e-7f};
    cr_assert_eq(clpdd_png_plot(tpath("one.png"), &one, &one, 1, NULL, &e), 0, "%s", e.msg);
    clpdd_plot small = {NULL, NULL, NULL, 200, 150, 0};
    cr_assert_eq(clpdd_png_plot(tpath("const.png"), cx, cy, 3, &small, &e), 0, "%s", e.msg);
    float bx[2] = {0, 1e9f}, by[2] = {1e-12f, 1e12f};
    o.log_y = 1;
    cr_assert_eq(clpdd_png_plot(tpath("wide.png"), bx, by, 2, &o, &e), 0, "%s", e.msg);
    o.log_y = 0;
    cr_assert_eq(clpdd_png_plot(tpath("wide_lin.png"), bx, by, 2, &o, &e), 0, "%s", e.msg);
    int before = n_files_in(g_dir);
    /* bad input: clean errors, no file */
    cr_assert_eq(clpdd_png_plot(tpath("bad.png"), x, y, 0, &o, &e), -1);
    assert_msg_has(e, "no points");
    y[10] = NAN;
    cr_assert_eq(clpdd_png_plot(tpath("bad.png"), x, y, 300, &o, &e), -1);
    assert_msg_has(e, "y[10] is nan");
    y[10] = 1;
    x[3] = INFINITY;
    cr_assert_eq(clpdd_png_plot(tpath("bad.png"), x, y, 300, &o, &e), -1);
    assert_msg_has(e, "x[3] is inf");
    x[3] = 3;
    float neg[2] = {-1, 0};
    o.log_y = 1;
    cr_assert_eq(clpdd_png_plot(tpath("bad.png"), x, neg, 2, &o, &e), -1);
    assert_msg_has(e, "no positive y values");
    o.width = 100;
    cr_assert_eq(clpdd_png_plot(tpath("bad.png"), x, y, 10, &o, &e), -1);
    assert_msg_has(e, "out of range");
    cr_assert_eq(n_files_in(g_dir), before);
    /* keep copies for eyeballing when asked */
    const char *keep = getenv("CLPDD_TEST_KEEP_PNG");
    if (keep && *keep) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp '%s'/*.png '%s'/", g_dir, keep);
        (void)!system(cmd);
    }
}
