/* Image preprocessing on 8-bit interleaved pixels (h, w, c), matching torchvision on PIL images:
 *   Resize(size)      the shorter side to `size`, the longer int(size · long / short) (torchvision's
 *                     rule), resampled as Pillow's Image.resize(..., BILINEAR): a separable triangle
 *                     filter whose support grows with the downscale factor (antialias), normalised
 *                     weights turned into int32 fixed point (22 fraction bits), horizontal pass
 *                     first then vertical, each rounded to uint8 (Pillow's ImagingResample, 8bpc).
 *                     Bit-exact with Pillow 9.4 on the committed fixture (tests/test_image.c).
 *   CenterCrop(size)  top = round((h − size) / 2) with Python's round-half-to-even, likewise left;
 *                     zero padding where the crop is larger than the image (torchvision pads).
 * Dimension legend: h, w input height/width, oh, ow output, c channels (1 or 3). */
#ifndef CLPDD_IMGPROC_H
#define CLPDD_IMGPROC_H
#include <stdint.h>
#include "io/image.h"
#include "util/util.h"

/* torchvision Resize(size) output for an (h, w) image */
void clpdd_resize_shorter_size(int h, int w, int size, int *oh, int *ow);

/* out (oh, ow, c) ← in (h, w, c), Pillow BILINEAR with antialias. out must not alias in. */
void clpdd_resize_bilinear_u8(uint8_t *out, int oh, int ow, const uint8_t *in, int h, int w, int c);

/* out (ch, cw, c) ← the centre crop of in (h, w, c), zero outside the image */
void clpdd_center_crop_u8(uint8_t *out, int ch, int cw, const uint8_t *in, int h, int w, int c);

/* Resize(resize) when resize > 0, then CenterCrop(crop) when crop > 0, replacing im's pixels */
void clpdd_image_preprocess(clpdd_image *im, int resize, int crop);

/* the (h, w) clpdd_image_preprocess produces for an (h, w) image */
void clpdd_preprocess_size(int h, int w, int resize, int crop, int *oh, int *ow);

#endif
