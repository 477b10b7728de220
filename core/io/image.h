/* Image decoding: JPEG (libjpeg-turbo's TurboJPEG 2.x API) and PNG (libpng) into 8-bit
 * interleaved pixels (h, w, c), converted as Pillow's Image.convert("RGB") does, so that a
 * dataset decoded here matches one decoded by torchvision's default loader (PIL):
 *   grey (1/2/4/8-bit)        → replicated into R = G = B
 *   grey + alpha, RGBA        → alpha dropped (no compositing onto a background)
 *   palette (any bit depth)   → expanded through the palette; tRNS ignored
 *   16-bit RGB / RGBA / LA    → the high byte of each sample (PIL's "RGB;16B" unpacker)
 *   16-bit grey               → PIL opens it as mode "I" and convert("RGB") clips: min(v, 255)
 *   CMYK / YCCK JPEG          → PIL reads Adobe CMYK inverted ("CMYK;I") and converts with
 *                               R = k − k·(255 − c)/255 (its MULDIV255 rounding), k, c as stored
 *   gAMA, iCCP, EXIF orientation: ignored, as PIL ignores them
 * With opt->grey set the output has one channel: grey sources as stored (16-bit grey clipped as
 * above), colour sources as PIL's convert("L"): (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
 *
 * A truncated JPEG ("Premature end of JPEG file") is an error, as in PIL (which raises "image
 * file is truncated"); other libjpeg warnings ("Corrupt JPEG data: N extraneous bytes") are
 * accepted, as PIL accepts them.
 *
 * opt->min_side > 0 lets libjpeg-turbo decode a JPEG at a reduced scale (its DCT scaling: the
 * smallest of 1/2, 1/4, 1/8 — its fast reduced IDCTs) whose shorter side stays ≥ min_side. Faster
 * for large files with a small target, but NOT pixel-identical to a full decode + resize:
 * leave it 0 where agreement with PIL matters (results/data/README.md measures the difference).
 *
 * Thread safety: every call is independent; a clpdd_image_decoder (optional) keeps one
 * TurboJPEG handle for reuse by one thread at a time. */
#ifndef CLPDD_IO_IMAGE_H
#define CLPDD_IO_IMAGE_H
#include <stddef.h>
#include <stdint.h>
#include "util/util.h"

typedef enum { CLPDD_IMG_UNKNOWN = 0, CLPDD_IMG_JPEG, CLPDD_IMG_PNG, CLPDD_IMG_FORMAT_COUNT } clpdd_img_format;

typedef struct clpdd_image {
    int w, h, c;  /* c = 3 (RGB) or 1 (grey mode) */
    uint8_t *px;  /* (h, w, c), malloc'd */
} clpdd_image;

typedef struct clpdd_decode_opt {
    int grey;     /* 1: one output channel (see above); 0: RGB */
    int min_side; /* > 0: JPEG DCT scaling down to a shorter side ≥ min_side; 0: full size */
} clpdd_decode_opt;

typedef struct clpdd_image_decoder clpdd_image_decoder;
clpdd_image_decoder *clpdd_image_decoder_new(void);
void clpdd_image_decoder_free(clpdd_image_decoder *d);

/* the format from the first bytes (magic), CLPDD_IMG_UNKNOWN when neither */
clpdd_img_format clpdd_image_sniff(const uint8_t *buf, size_t len);

/* decode an encoded image in memory; name is used in messages ("<name>: truncated JPEG …").
   dec may be NULL (a temporary handle); opt may be NULL (RGB, full size). */
int clpdd_image_decode(clpdd_image_decoder *dec, const uint8_t *buf, size_t len, const char *name,
                       const clpdd_decode_opt *opt, clpdd_image *out, clpdd_err *e);
/* read and decode a file */
int clpdd_image_read(clpdd_image_decoder *dec, const char *path, const clpdd_decode_opt *opt, clpdd_image *out,
                     clpdd_err *e);
void clpdd_image_free(clpdd_image *im);

/* encoders for tests and tools: JPEG (TurboJPEG, quality 1..100, 4:2:0 for c = 3, grey for
   c = 1) and PNG via clpdd_png_write */
int clpdd_image_write_jpeg(const char *path, const uint8_t *px, int w, int h, int c, int quality, clpdd_err *e);

#endif
