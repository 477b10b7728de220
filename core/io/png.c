/* PNG output (see png.h): libpng with setjmp error handling, written through
 * clpdd_write_atomic, so a failed write never leaves a half-written PNG under the real name.
 * Plots are drawn on an RGB canvas with the 5×7 font in font5x7.h (at 2× for legibility). */
#define _GNU_SOURCE
#include "io/png.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/font5x7.h"

#define PNG_MAX_DIM (1 << 20)

/* ---- writing ---- */

typedef struct {
    char msg[256];
} png_errctx;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_errctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* the part that may longjmp: kept in its own frame so no local is modified after setjmp */
static int png_encode(FILE *fp, const uint8_t *pixels, int w, int h, int channels, png_errctx *ctx) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
    if (!png) {
        snprintf(ctx->msg, sizeof ctx->msg, "png_create_write_struct failed");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(ctx->msg, sizeof ctx->msg, "png_create_info_struct failed");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)w * (size_t)channels;
    for (int y = 0; y < h; y++) png_write_row(png, pixels + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* what clpdd_write_atomic streams: the encoded PNG */
typedef struct png_out {
    const char *path;
    const uint8_t *pixels;
    int w, h, channels;
} png_out;

static int png_stream(FILE *fp, void *vctx, clpdd_err *e) {
    const png_out *o = vctx;
    png_errctx ctx = {{0}};
    if (png_encode(fp, o->pixels, o->w, o->h, o->channels, &ctx))
        return clpdd_err_set(e, "%s: png write failed: %s", o->path, ctx.msg);
    return 0;
}

int clpdd_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels, clpdd_err *e) {
    if (!pixels) return clpdd_err_set(e, "%s: png write: no pixels", path);
    if (w <= 0 || h <= 0 || w > PNG_MAX_DIM || h > PNG_MAX_DIM)
        return clpdd_err_set(e, "%s: png write: bad size %d × %d (1..%d each)", path, w, h, PNG_MAX_DIM);
    if (channels != 1 && channels != 3)
        return clpdd_err_set(e, "%s: png write: %d channels (1 = grey or 3 = RGB)", path, channels);
    png_out o = {path, pixels, w, h, channels};
    return clpdd_write_atomic(path, png_stream, &o, e);
}

int clpdd_png_read(const char *path, uint8_t **pixels, int *w, int *h, int *channels, clpdd_err *e) {
    *pixels = NULL;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return clpdd_err_set(e, "%s: cannot read PNG: %s", path, img.message);
    int grey = !(img.format & PNG_FORMAT_FLAG_COLOR);
    img.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if (img.width > PNG_MAX_DIM || img.height > PNG_MAX_DIM) {
        png_image_free(&img);
        return clpdd_err_set(e, "%s: PNG is %u × %u, too large", path, img.width, img.height);
    }
    uint8_t *buf = clpdd_xmalloc(PNG_IMAGE_SIZE(img));
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, buf, 0, NULL)) {
        free(buf);
        return clpdd_err_set(e, "%s: cannot decode PNG: %s", path, img.message);
    }
    *pixels = buf;
    *w = (int)img.width;
    *h = (int)img.height;
    *channels = grey ? 1 : 3;
    return 0;
}

/* ---- image grid ---- */

static uint8_t to_byte(float v) {
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 1.0f) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

int clpdd_png_grid(const char *path, const float *images, int m, int c, int H, int W, int cols, int zoom,
                   clpdd_err *e) {
    if (!images || m <= 0) return clpdd_err_set(e, "%s: png grid: no images", path);
    if (c != 1 && c != 3) return clpdd_err_set(e, "%s: png grid: %d channels (1 or 3 supported)", path, c);
    if (H <= 0 || W <= 0 || cols <= 0 || zoom <= 0)
        return clpdd_err_set(e, "%s: png grid: bad layout (H %d, W %d, cols %d, zoom %d)", path, H, W, cols, zoom);
    int rows = (m + cols - 1) / cols;
    int64_t cw = (int64_t)W * zoom, ch = (int64_t)H * zoom;
    int64_t ow = (int64_t)cols * (cw + 1) + 1, oh = (int64_t)rows * (ch + 1) + 1;
    if (ow > PNG_MAX_DIM || oh > PNG_MAX_DIM || ow * oh * c > (int64_t)1 << 31)
        return clpdd_err_set(e, "%s: png grid: %lld × %lld pixels is too large", path, (long long)ow, (long long)oh);
    size_t stride = (size_t)ow * (size_t)c;
    uint8_t *px = clpdd_xmalloc(stride * (size_t)oh);
    memset(px, 255, stride * (size_t)oh); /* white borders and empty cells */
    size_t plane = (size_t)H * (size_t)W;
    for (int i = 0; i < m; i++) {
        const float *img = images + (size_t)i * (size_t)c * plane; /* (c, H, W) */
        size_t x0 = (size_t)(i % cols) * (size_t)(cw + 1) + 1, y0 = (size_t)(i / cols) * (size_t)(ch + 1) + 1;
        for (int64_t y = 0; y < ch; y++) {
            uint8_t *row = px + (y0 + (size_t)y) * stride + x0 * (size_t)c;
            const float *src = img + (size_t)(y / zoom) * (size_t)W;
            for (int64_t x = 0; x < cw; x++)
                for (int k = 0; k < c; k++) row[(size_t)x * (size_t)c + (size_t)k] = to_byte(src[(size_t)k * plane + (size_t)(x / zoom)]);
        }
    }
    int rc = clpdd_png_write(path, px, (int)ow, (int)oh, c, e);
    free(px);
    return rc;
}

/* ---- line plot ---- */

typedef struct {
    int w, h;
    uint8_t *px; /* (h, w, 3) */
} canvas;

typedef struct {
    uint8_t r, g, b;
} rgb;

static const rgb C_AXIS = {40, 40, 40}, C_GRID = {222, 222, 222}, C_MINOR = {240, 240, 240},
                 C_TEXT = {20, 20, 20}, C_LINE = {31, 119, 180};

static void put(canvas *cv, int x, int y, rgb c) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    uint8_t *p = cv->px + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

static void fill(canvas *cv, int x0, int y0, int x1, int y1, rgb c) { /* inclusive */
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(cv, x, y, c);
}

/* Bresenham with a square pen of side `pen`; points clipped to [cx0, cx1] × [cy0, cy1] */
static void seg(canvas *cv, int x0, int y0, int x1, int y1, int pen, rgb c, int cx0, int cy0, int cx1, int cy1) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    int lo = -(pen - 1) / 2, hi = pen / 2;
    for (;;) {
        for (int j = lo; j <= hi; j++)
            for (int i = lo; i <= hi; i++) {
                int x = x0 + i, y = y0 + j;
                if (x >= cx0 && x <= cx1 && y >= cy0 && y <= cy1) put(cv, x, y, c);
            }
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

static int glyph_index(char ch) {
    unsigned char u = (unsigned char)ch;
    return (u >= CLPDD_FONT_FIRST && u <= CLPDD_FONT_LAST) ? u - CLPDD_FONT_FIRST : '?' - CLPDD_FONT_FIRST;
}

/* advance per character: 5 columns + 1 of spacing */
static int text_w(const char *s, int sc) {
    int n = (int)strlen(s);
    return n ? (n * (CLPDD_FONT_W + 1) - 1) * sc : 0;
}

/* horizontal text with its top-left corner at (x, y) */
static void text(canvas *cv, int x, int y, const char *s, int sc, rgb c) {
    for (int i = 0; s[i]; i++) {
        int gi = glyph_index(s[i]), gx0 = x + i * (CLPDD_FONT_W + 1) * sc, gy0 = y + clpdd_font5x7_drop[gi] * sc;
        const uint8_t *g = clpdd_font5x7[gi];
        for (int r = 0; r < CLPDD_FONT_H; r++)
            for (int col = 0; col < CLPDD_FONT_W; col++)
                if (g[r] & (0x10 >> col))
                    fill(cv, gx0 + col * sc, gy0 + r * sc, gx0 + col * sc + sc - 1, gy0 + r * sc + sc - 1, c);
    }
}

/* text rotated 90° counter-clockwise (reads bottom to top), its bottom-left corner at (x, y) */
static void text_up(canvas *cv, int x, int y, const char *s, int sc, rgb c) {
    for (int i = 0; s[i]; i++) {
        int gi = glyph_index(s[i]), gx0 = x + clpdd_font5x7_drop[gi] * sc;
        const uint8_t *g = clpdd_font5x7[gi];
        for (int r = 0; r < CLPDD_FONT_H; r++)
            for (int col = 0; col < CLPDD_FONT_W; col++)
                if (g[r] & (0x10 >> col)) {
                    int u = i * (CLPDD_FONT_W + 1) + col; /* along the text, upwards */
                    fill(cv, gx0 + r * sc, y - (u + 1) * sc + 1, gx0 + r * sc + sc - 1, y - u * sc, c);
                }
    }
}

typedef struct {
    double lo, hi;   /* axis range (data coordinates; log10 for log axes) */
    int n;           /* major ticks */
    double t[64];    /* their positions */
    char lab[64][48];
    int n_minor;
    double minor[128];
} axis;

/* tick label for value v on a linear axis with tick spacing step: fixed-point with as many
   decimals as the step needs, or a compact exponent form (2e11, -1.5e-7) for very large or
   very small magnitudes */
static void fmt_tick(char *out, size_t cap, double v, double step, double maxabs) {
    if (fabs(v) < step * 1e-9) v = 0;
    if (v == 0) {
        snprintf(out, cap, "0");
        return;
    }
    if (maxabs >= 1e6 || maxabs < 1e-3) {
        int digits = (int)floor(log10(fabs(v)) + 1e-9) - (int)floor(log10(step) + 1e-9);
        if (digits < 0) digits = 0;
        if (digits > 6) digits = 6;
        char buf[40];
        snprintf(buf, sizeof buf, "%.*e", digits, v);
        char *ep = strchr(buf, 'e');
        if (!ep) {
            snprintf(out, cap, "%s", buf);
            return;
        }
        int ex = atoi(ep + 1);
        *ep = 0;
        if (strchr(buf, '.')) { /* 2.50 → 2.5, 2.0 → 2 */
            char *z = ep - 1;
            while (*z == '0') *z-- = 0;
            if (*z == '.') *z = 0;
        }
        snprintf(out, cap, "%se%d", buf, ex);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 10) dec = 10;
    snprintf(out, cap, "%.*f", dec, v);
}

/* ticks at multiples of a 1-2-5 step for about `intervals` intervals over [lo, hi]; the axis
   range is widened to the enclosing ticks */
static void linear_axis(axis *a, double lo, double hi, int intervals) {
    if (!(hi - lo > 1e-12 * fmax(fabs(lo), fabs(hi))) || hi - lo < 1e-300) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= d, hi += d;
    }
    double raw = (hi - lo) / intervals, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    double k0 = floor(lo / step + 1e-9), k1 = ceil(hi / step - 1e-9);
    a->lo = k0 * step;
    a->hi = k1 * step;
    a->n = 0;
    double maxabs = fmax(fabs(a->lo), fabs(a->hi));
    for (double k = k0; k <= k1 + 0.5 && a->n < 64; k++) {
        a->t[a->n] = k * step;
        fmt_tick(a->lab[a->n], sizeof a->lab[0], k * step, step, maxabs);
        a->n++;
    }
    a->n_minor = 0;
}

/* decade ticks over log10 range [lo, hi], every k-th decade so that at most max_ticks show;
   minor ticks at 2..9 × 10^p when every decade is labelled */
static void log_axis(axis *a, double lo, double hi, int max_ticks) {
    double p0 = floor(lo + 1e-9), p1 = ceil(hi - 1e-9);
    if (p1 <= p0) p1 = p0 + 1;
    int k = (int)ceil((p1 - p0) / (max_ticks > 1 ? max_ticks - 1 : 1));
    if (k < 1) k = 1;
    p0 = floor(p0 / k) * k;
    p1 = p0 + ceil((p1 - p0) / k) * k;
    a->lo = p0, a->hi = p1, a->n = 0, a->n_minor = 0;
    for (double p = p0; p <= p1 + 0.5 && a->n < 64; p += k) {
        int ip = (int)p;
        a->t[a->n] = p;
        if (ip >= 0 && ip <= 4)
            snprintf(a->lab[a->n], sizeof a->lab[0], "%.0f", pow(10, ip));
        else if (ip < 0 && ip >= -3)
            snprintf(a->lab[a->n], sizeof a->lab[0], "%.*f", -ip, pow(10, ip));
        else
            snprintf(a->lab[a->n], sizeof a->lab[0], "1e%d", ip);
        a->n++;
        if (k == 1 && p < p1)
            for (int j = 2; j <= 9 && a->n_minor < 128; j++) a->minor[a->n_minor++] = p + log10(j);
    }
}

static int max_label_w(const axis *a, int sc) {
    int w = 0;
    for (int i = 0; i < a->n; i++)
        if (text_w(a->lab[i], sc) > w) w = text_w(a->lab[i], sc);
    return w;
}

int clpdd_png_plot(const char *path, const float *x, const float *y, int n, const clpdd_plot *opt, clpdd_err *e) {
    clpdd_plot o = opt ? *opt : (clpdd_plot){0};
    if (!o.width) o.width = 800;
    if (!o.height) o.height = 500;
    if (o.width < 160 || o.height < 120 || o.width > 8192 || o.height > 8192)
        return clpdd_err_set(e, "%s: plot: size %d × %d out of range (160..8192 × 120..8192)", path, o.width, o.height);
    if (n <= 0 || !x || !y) return clpdd_err_set(e, "%s: plot: no points to plot", path);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) return clpdd_err_set(e, "%s: plot: x[%d] is %g; all points must be finite", path, i, (double)x[i]);
        if (!isfinite(y[i])) return clpdd_err_set(e, "%s: plot: y[%d] is %g; all points must be finite", path, i, (double)y[i]);
        if (o.log_y && !(y[i] > 0)) continue;
        double yv = o.log_y ? log10((double)y[i]) : (double)y[i];
        xmin = fmin(xmin, x[i]), xmax = fmax(xmax, x[i]), ymin = fmin(ymin, yv), ymax = fmax(ymax, yv);
        used++;
    }
    if (!used) return clpdd_err_set(e, "%s: plot: no positive y values for a log axis", path);

    /* layout: margins from the text they hold; then as many ticks (≤ 5 intervals, 1-2-5 steps)
       as fit without labels colliding */
    int sc = (o.width >= 400 && o.height >= 250) ? 2 : 1;
    int ch = CLPDD_FONT_H * sc, lh = (CLPDD_FONT_H + 2) * sc, tick = 3 * sc, pad = 4 * sc; /* lh: with descenders */
    int top = (o.title && *o.title ? 2 * pad + lh + 2 * pad : 3 * pad + ch / 2);
    int bottom = tick + pad + ch + (o.xlabel && *o.xlabel ? 2 * pad + lh : 0) + 2 * pad;
    int py0 = top, py1 = o.height - 1 - bottom;
    axis ax, ay;
    for (int iv = 4; iv >= 1; iv--) {
        if (o.log_y)
            log_axis(&ay, ymin, ymax, iv + 3);
        else
            linear_axis(&ay, ymin, ymax, iv);
        if (ay.n < 2 || (py1 - py0) / (ay.n - 1) >= ch + 2 * pad) break;
    }
    int left = pad + (o.ylabel && *o.ylabel ? lh + 2 * pad : 0) + max_label_w(&ay, sc) + pad + tick;
    int px0 = left, px1 = 0;
    for (int iv = 4; iv >= 1; iv--) {
        linear_axis(&ax, xmin, xmax, iv);
        int lw = max_label_w(&ax, sc);
        px1 = o.width - 1 - (2 * pad + lw / 2); /* room for half of the last label */
        if (ax.n < 2 || (px1 - px0) / (ax.n - 1) >= lw + 3 * (CLPDD_FONT_W + 1) * sc) break;
    }
    if (px1 - px0 < 40 || py1 - py0 < 30)
        return clpdd_err_set(e, "%s: plot: %d × %d is too small for the labels", path, o.width, o.height);

    canvas cv = {o.width, o.height, clpdd_xmalloc((size_t)o.width * (size_t)o.height * 3)};
    memset(cv.px, 255, (size_t)o.width * (size_t)o.height * 3);
#define MAPX(v) ((int)lround(px0 + ((v) - ax.lo) / (ax.hi - ax.lo) * (px1 - px0)))
#define MAPY(v) ((int)lround(py1 - ((v) - ay.lo) / (ay.hi - ay.lo) * (py1 - py0)))
    /* grid */
    for (int i = 0; i < ay.n_minor; i++) seg(&cv, px0, MAPY(ay.minor[i]), px1, MAPY(ay.minor[i]), 1, C_MINOR, 0, 0, cv.w, cv.h);
    for (int i = 0; i < ax.n; i++) seg(&cv, MAPX(ax.t[i]), py0, MAPX(ax.t[i]), py1, 1, C_GRID, 0, 0, cv.w, cv.h);
    for (int i = 0; i < ay.n; i++) seg(&cv, px0, MAPY(ay.t[i]), px1, MAPY(ay.t[i]), 1, C_GRID, 0, 0, cv.w, cv.h);
    /* curve (and markers when the points are few enough to see) */
    int have_prev = 0, qx = 0, qy = 0;
    for (int i = 0; i < n; i++) {
        if (o.log_y && !(y[i] > 0)) continue;
        double yv = o.log_y ? log10((double)y[i]) : (double)y[i];
        int cx = MAPX((double)x[i]), cy = MAPY(yv);
        if (have_prev) seg(&cv, qx, qy, cx, cy, sc, C_LINE, px0, py0, px1, py1);
        if (used <= 60 || used == 1) fill(&cv, cx - sc - 1, cy - sc - 1, cx + sc + 1, cy + sc + 1, C_LINE);
        qx = cx, qy = cy, have_prev = 1;
    }
    /* frame and ticks */
    seg(&cv, px0, py0, px1, py0, 1, C_AXIS, 0, 0, cv.w, cv.h);
    seg(&cv, px0, py1, px1, py1, 1, C_AXIS, 0, 0, cv.w, cv.h);
    seg(&cv, px0, py0, px0, py1, 1, C_AXIS, 0, 0, cv.w, cv.h);
    seg(&cv, px1, py0, px1, py1, 1, C_AXIS, 0, 0, cv.w, cv.h);
    for (int i = 0; i < ax.n; i++) {
        int tx = MAPX(ax.t[i]);
        seg(&cv, tx, py1, tx, py1 + tick, 1, C_AXIS, 0, 0, cv.w, cv.h);
        text(&cv, tx - text_w(ax.lab[i], sc) / 2, py1 + tick + pad, ax.lab[i], sc, C_TEXT);
    }
    for (int i = 0; i < ay.n; i++) {
        int ty = MAPY(ay.t[i]);
        seg(&cv, px0 - tick, ty, px0, ty, 1, C_AXIS, 0, 0, cv.w, cv.h);
        text(&cv, px0 - tick - pad - text_w(ay.lab[i], sc), ty - ch / 2, ay.lab[i], sc, C_TEXT);
    }
    for (int i = 0; i < ay.n_minor; i++) {
        int ty = MAPY(ay.minor[i]);
        seg(&cv, px0 - tick / 2 - 1, ty, px0, ty, 1, C_AXIS, 0, 0, cv.w, cv.h);
    }
#undef MAPX
#undef MAPY
    /* title, axis labels (centred on the plot area) */
    int mid = (px0 + px1) / 2;
    if (o.title && *o.title) text(&cv, mid - text_w(o.title, sc) / 2, pad * 2, o.title, sc, C_TEXT);
    if (o.xlabel && *o.xlabel) text(&cv, mid - text_w(o.xlabel, sc) / 2, o.height - 1 - 2 * pad - lh, o.xlabel, sc, C_TEXT);
    if (o.ylabel && *o.ylabel) text_up(&cv, pad, (py0 + py1) / 2 + text_w(o.ylabel, sc) / 2, o.ylabel, sc, C_TEXT);

    int rc = clpdd_png_write(path, cv.px, cv.w, cv.h, 3, e);
    free(cv.px);
    return rc;
}
