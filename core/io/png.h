/* PNG output (libpng): image grids of distilled sets and simple line plots. All writes are
 * atomic (temporary file + rename). */
#ifndef CLPDD_IO_PNG_H
#define CLPDD_IO_PNG_H
#include <stdint.h>
#include "util/util.h"

/* pixels: h rows of w·channels bytes, channels 1 (grey) or 3 (RGB) */
int clpdd_png_write(const char *path, const uint8_t *pixels, int w, int h, int channels, clpdd_err *e);

/* read a PNG back as 8-bit grey (channels 1) or RGB (channels 3, also for palette/alpha
   images, alpha dropped onto black); *pixels is malloc'd, h rows of w·channels bytes */
int clpdd_png_read(const char *path, uint8_t **pixels, int *w, int *h, int *channels, clpdd_err *e);

/* images (m, c, H, W) host floats in [0, 1] (clamped), c = 1 or 3; laid out `cols` per row
   (row r = class r when cols = ipc) with a 1-pixel border, each image upscaled by an integer
   factor `zoom` (nearest) */
int clpdd_png_grid(const char *path, const float *images, int m, int c, int H, int W, int cols, int zoom,
                   clpdd_err *e);

/* a line plot of y against x (n points) with axes, tick labels, a title and axis labels,
   drawn with a built-in bitmap font; log_y plots log10(y) with decade ticks (y ≤ 0 points are
   skipped) */
typedef struct clpdd_plot {
    const char *title, *xlabel, *ylabel;
    int width, height; /* 0 → 800 × 500 */
    int log_y;
} clpdd_plot;
int clpdd_png_plot(const char *path, const float *x, const float *y, int n, const clpdd_plot *opt, clpdd_err *e);

#endif
