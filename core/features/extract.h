/* A persistent feature extractor: dataset-space images → adapter → backbone (no tape) →
 * features on the host. Its adapter and device buffers are allocated once, at init, for
 * `batch` images, and reused by every call (the evaluation calls it every epoch of every
 * seed under the lgm protocol). Images may come from the host or already be in ops memory;
 * either way they pass through in pieces of `batch`.
 *
 * Legend: n images, c/H/W their channels and size (the dataset's), d feature dim. */
#ifndef CLPDD_EXTRACT_H
#define CLPDD_EXTRACT_H
#include "encoder/adapter.h"
#include "encoder/backbone.h"

typedef struct clpdd_extractor {
    clpdd_backbone *bb;
    int c, H, W, batch, d;
    clpdd_adapter ad;
    float *dx;    /* (batch, c, H, W)     host images staged in ops memory */
    float *dxin;  /* (batch, backbone px) the adapter's output */
    float *dfeat; /* (batch, d) */
} clpdd_extractor;

int clpdd_extractor_init(clpdd_extractor *ex, clpdd_backbone *bb, int c, int H, int W, int batch, clpdd_err *e);
/* out (n, d) host = f(adapt(images (n, c, H, W))); images on the host, or in ops memory
   when on_device */
int clpdd_extractor_run(clpdd_extractor *ex, float *out, const float *images, int n, int on_device, clpdd_err *e);
void clpdd_extractor_free(clpdd_extractor *ex);

#endif
