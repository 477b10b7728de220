/* JPEG (TurboJPEG) and PNG (libpng) decoding into PIL-compatible 8-bit pixels; see image.h.
 * Dimension legend: w, h the decoded image's width and height, c its output channels. */
#define _GNU_SOURCE
#include "io/image.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS × 2 raises) */
#define CLPDD_IMAGE_MAX_PIXELS 178956970LL

struct clpdd_image_decoder {
    tjhandle tj;
};

clpdd_image_decoder *clpdd_image_decoder_new(void) {
    clpdd_image_decoder *d = clpdd_xcalloc(1, sizeof *d);
    d->tj = tjInitDecompress();
    CLPDD_ASSERT(d->tj != NULL);
    return d;
}

void clpdd_image_decoder_free(clpdd_image_decoder *d) {
    if (!d) return;
    tjDestroy(d->tj);
    free(d);
}

void clpdd_image_free(clpdd_image *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}

clpdd_img_format clpdd_image_sniff(const uint8_t *buf, size_t len) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) return CLPDD_IMG_JPEG;
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0) return CLPDD_IMG_PNG;
    return CLPDD_IMG_UNKNOWN;
}

/* PIL's convert("L") from RGB: ImagingConvert's L24 */
static inline uint8_t rgb_to_l(uint8_t r, uint8_t g, uint8_t b) {
    return (uint8_t)(((uint32_t)r * 19595 + (uint32_t)g * 38470 + (uint32_t)b * 7471 + 0x8000) >> 16);
}

/* PIL's MULDIV255 */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* ---------------------------------------------------------------- JPEG */

static int decode_jpeg(tjhandle tj, const uint8_t *buf, size_t len, const char *name, const clpdd_decode_opt *opt,
                       clpdd_image *out, clpdd_err *e) {
    int w = 0, h = 0, subsamp = 0, cs = 0;
    int has_eoi = len >= 2 && buf[len - 2] == 0xff && buf[len - 1] == 0xd9;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0)
        return clpdd_err_set(e, "image: %s: %s JPEG (%s)", name, has_eoi ? "not a readable" : "truncated or corrupt",
                             tjGetErrorStr2(tj));
    /* a file cut before its frame header: libjpeg warns and leaves the size unset */
    if (w == 0 && h == 0)
        return clpdd_err_set(e, "image: %s: truncated JPEG (%zu bytes, ends before the frame header: %s)", name, len,
                             tjGetErrorStr2(tj));
    if (w <= 0 || h <= 0 || (long long)w * h > CLPDD_IMAGE_MAX_PIXELS)
        return clpdd_err_set(e, "image: %s: JPEG of %d x %d pixels is empty or beyond PIL's limit of %lld", name, w, h,
                             CLPDD_IMAGE_MAX_PIXELS);
    int sw = w, sh = h;
    if (opt && opt->min_side > 0) {
        /* the smallest scaled size whose shorter side stays ≥ min_side */
        int nsf = 0;
        tjscalingfactor *sf = tjGetScalingFactors(&nsf);
        for (int i = 0; sf && i < nsf; i++) {
            /* 1/2, 1/4, 1/8 only: libjpeg-turbo's fast reduced IDCTs. The other factors (7/8 … 3/8)
               use slower generic IDCTs that cost more than they save, and shift pixels more */
            if (sf[i].num != 1 || sf[i].denom < 2) continue;
            int tw = TJSCALED(w, sf[i]), th = TJSCALED(h, sf[i]);
            if ((tw < th ? tw : th) >= opt->min_side && (long long)tw * th < (long long)sw * sh) sw = tw, sh = th;
        }
    }
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    int pf = cs == TJCS_GRAY ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_RGB;
    int pc = tjPixelSize[pf];
    uint8_t *raw = clpdd_xmalloc((size_t)sw * sh * pc);
    if (tjDecompress2(tj, buf, (unsigned long)len, raw, sw, 0, sh, pf, 0) != 0) {
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) != TJERR_WARNING || strstr(msg, "Premature end")) {
            int trunc = strstr(msg, "Premature end") != NULL;
            clpdd_err_set(e, "image: %s: %s JPEG (%s)", name, trunc ? "truncated" : "corrupt", msg);
            free(raw);
            return -1;
        }
        /* other warnings (extraneous bytes, …): the image is usable, as PIL uses it */
    }
    int oc = opt && opt->grey ? 1 : 3;
    size_t np = (size_t)sw * sh;
    uint8_t *px;
    if (pf == TJPF_RGB && oc == 3) {
        px = raw;
        raw = NULL;
    } else if (pf == TJPF_GRAY && oc == 1) {
        px = raw;
        raw = NULL;
    } else {
        px = clpdd_xmalloc(np * oc);
        for (size_t i = 0; i < np; i++) {
            uint8_t r, g, b;
            if (pf == TJPF_GRAY) {
                r = g = b = raw[i];
            } else if (pf == TJPF_RGB) {
                r = raw[3 * i], g = raw[3 * i + 1], b = raw[3 * i + 2];
            } else {
                /* PIL: rawmode "CMYK;I" (values inverted), then cmyk2rgb */
                const uint8_t *q = raw + 4 * i;
                int nk = q[3];
                r = (uint8_t)(nk - muldiv255(255 - q[0], nk));
                g = (uint8_t)(nk - muldiv255(255 - q[1], nk));
                b = (uint8_t)(nk - muldiv255(255 - q[2], nk));
            }
            if (oc == 1) {
                px[i] = pf == TJPF_GRAY ? r : rgb_to_l(r, g, b);
            } else {
                px[3 * i] = r, px[3 * i + 1] = g, px[3 * i + 2] = b;
            }
        }
        free(raw);
    }
    out->w = sw, out->h = sh, out->c = oc, out->px = px;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

typedef struct png_src {
    const uint8_t *p;
    size_t len, pos;
    char msg[256];
} png_src;

static void png_src_read(png_structp png, png_bytep dst, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "truncated file (unexpected end of data)");
    memcpy(dst, s->p + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg; /* ancillary-chunk trouble: PIL reads such files too */
}

static int decode_png(const uint8_t *buf, size_t len, const char *name, const clpdd_decode_opt *opt, clpdd_image *out,
                      clpdd_err *e) {
    png_src src = {.p = buf, .len = len, .pos = 0, .msg = ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    CLPDD_ASSERT(png != NULL);
    png_infop info = png_create_info_struct(png);
    CLPDD_ASSERT(info != NULL);
    /* volatile: assigned after setjmp and used after a longjmp */
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile px = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        free(px);
        int trunc = strstr(src.msg, "unexpected end") != NULL;
        return clpdd_err_set(e, "image: %s: %s PNG (%s)", name, trunc ? "truncated" : "corrupt", src.msg);
    }
    png_set_read_fn(png, &src, png_src_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if ((long long)w * h > CLPDD_IMAGE_MAX_PIXELS) png_error(png, "image beyond PIL's pixel limit");
    int grey16 = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY; /* PIL mode "I": clipped, not scaled */
    if (depth == 16 && !grey16) png_set_strip_16(png);     /* PIL's ";16B" unpackers: the high byte */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (grey16) png_set_swap(png); /* host order: little-endian 16-bit samples */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    raw = clpdd_xmalloc(rowbytes * h);
    rows = clpdd_xmalloc(h * sizeof *rows);
    for (png_uint_32 y = 0; y < h; y++) rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    /* ch: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (a palette with tRNS expands to RGBA) */
    int oc = opt && opt->grey ? 1 : 3;
    px = clpdd_xmalloc((size_t)w * h * oc);
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *r = rows[y];
        uint8_t *o = px + (size_t)y * w * oc;
        for (png_uint_32 x = 0; x < w; x++) {
            uint8_t R, G, B;
            int is_grey = ch <= 2;
            if (grey16) {
                unsigned v = (unsigned)r[2 * x] | (unsigned)r[2 * x + 1] << 8;
                R = G = B = (uint8_t)(v > 255 ? 255 : v);
            } else if (is_grey) {
                R = G = B = r[(size_t)x * ch];
            } else {
                R = r[(size_t)x * ch], G = r[(size_t)x * ch + 1], B = r[(size_t)x * ch + 2];
            }
            if (oc == 1) {
                o[x] = (grey16 || is_grey) ? R : rgb_to_l(R, G, B);
            } else {
                o[3 * x] = R, o[3 * x + 1] = G, o[3 * x + 2] = B;
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    out->w = (int)w, out->h = (int)h, out->c = oc, out->px = px;
    return 0;
}

/* ---------------------------------------------------------------- entry points */

int clpdd_image_decode(clpdd_image_decoder *dec, const uint8_t *buf, size_t len, const char *name,
                       const clpdd_decode_opt *opt, clpdd_image *out, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    switch (clpdd_image_sniff(buf, len)) {
    case CLPDD_IMG_JPEG: {
        tjhandle tj = dec ? dec->tj : tjInitDecompress();
        CLPDD_ASSERT(tj != NULL);
        int rc = decode_jpeg(tj, buf, len, name, opt, out, e);
        if (!dec) tjDestroy(tj);
        return rc;
    }
    case CLPDD_IMG_PNG:
        return decode_png(buf, len, name, opt, out, e);
    default:
        return clpdd_err_set(e, "image: %s: not a JPEG or PNG file (%zu bytes; first bytes %02x %02x %02x %02x)",
                             name, len, len > 0 ? buf[0] : 0, len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0,
                             len > 3 ? buf[3] : 0);
    }
}

int clpdd_image_read(clpdd_image_decoder *dec, const char *path, const clpdd_decode_opt *opt, clpdd_image *out,
                     clpdd_err *e) {
    uint8_t *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    if (clpdd_read_file(path, &buf, &len, e)) return -1;
    int rc = clpdd_image_decode(dec, buf, len, path, opt, out, e);
    free(buf);
    return rc;
}

int clpdd_image_write_jpeg(const char *path, const uint8_t *px, int w, int h, int c, int quality, clpdd_err *e) {
    if (c != 1 && c != 3) return clpdd_err_set(e, "image: %s: JPEG needs 1 or 3 channels, got %d", path, c);
    tjhandle tj = tjInitCompress();
    CLPDD_ASSERT(tj != NULL);
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    int rc = tjCompress2(tj, px, w, 0, h, c == 1 ? TJPF_GRAY : TJPF_RGB, &jpg, &size, c == 1 ? TJSAMP_GRAY : TJSAMP_420,
                         quality, 0);
    if (rc != 0) {
        clpdd_err_set(e, "image: %s: JPEG compression failed (%s)", path, tjGetErrorStr2(tj));
    } else {
        rc = clpdd_write_file_atomic(path, jpg, size, e);
    }
    tjFree(jpg);
    tjDestroy(tj);
    return rc;
}
