/* The synthetic set through the frozen encoder, differentiably: Φ_s = f(adapter(X_s)) and its
 * backward to the pixels.
 *
 * chunk = 0 keeps every activation of the m images on one tape (fastest). chunk = k > 0 bounds
 * memory by k instead of m (a ViT-B/16 image at 224² keeps ~79 MiB of tape,
 * results/bench/memory/README.md): the forward runs in inference mode without a tape, and
 * the backward recomputes each chunk's forward with a tape of k images before propagating
 * through it. The gradients are the same; the
 * cost is one extra forward.
 *
 * Legend: m synthetic images, k chunk, d feature dim, px/bpx pixels per dataset / backbone
 * image. */
#ifndef CLPDD_ENCODE_H
#define CLPDD_ENCODE_H
#include "encoder/adapter.h"
#include "encoder/backbone.h"

typedef struct clpdd_encoder {
    clpdd_backbone *bb;
    clpdd_adapter ad;   /* for k images */
    int m, k;           /* k = m when unchunked */
    int c, H, W;        /* dataset image shape */
    size_t px, bpx;
    float *Xin, *dXin;  /* (k, bpx) */
    float *scratch;     /* (k, d) recomputed features of a chunk (chunked only) */
    void *tape;         /* for k images */
} clpdd_encoder;

int clpdd_encoder_init(clpdd_encoder *en, clpdd_backbone *bb, int m, int chunk, int c, int H, int W, clpdd_err *e);
void clpdd_encoder_free(clpdd_encoder *en);
/* phis (m, d) = f(adapter(Xs (m, c, H, W))) */
int clpdd_encoder_forward(clpdd_encoder *en, float *phis, const float *Xs, clpdd_err *e);
/* dXs (m, c, H, W) = (∂Φ_s/∂X_s)ᵀ dphis, after clpdd_encoder_forward on the same Xs */
int clpdd_encoder_backward(clpdd_encoder *en, float *dXs, const float *dphis, const float *Xs, clpdd_err *e);

#endif
