#include "encoder/encode.h"

#include <string.h>

#include "plugin/host.h"

static int bb_fail(clpdd_encoder *en, clpdd_err *e) {
    return clpdd_err_set(e, "backbone '%s' failed: %s", en->bb->desc->name, clpdd_host_error(en->bb->h));
}

int clpdd_encoder_init(clpdd_encoder *en, clpdd_backbone *bb, int m, int chunk, int c, int H, int W, clpdd_err *e) {
    memset(en, 0, sizeof *en);
    const clpdd_host *h = bb->h;
    en->bb = bb;
    en->m = m;
    en->k = chunk > 0 && chunk < m ? chunk : m;
    en->c = c, en->H = H, en->W = W;
    en->px = (size_t)c * H * W;
    en->bpx = (size_t)bb->info.channels * bb->info.height * bb->info.width;
    if (clpdd_adapter_init_mode(&en->ad, h, c, H, W, &bb->info, en->k, bb->adapt, e)) return -1;
    en->Xin = h->alloc(h, (size_t)en->k * en->bpx * sizeof(float));
    en->dXin = h->alloc(h, (size_t)en->k * en->bpx * sizeof(float));
    if (en->k < m) en->scratch = h->alloc(h, (size_t)en->k * bb->info.feature_dim * sizeof(float));
    if (!en->Xin || !en->dXin || (en->k < m && !en->scratch))
        return clpdd_err_set(e, "encoder: %s", clpdd_host_error(h));
    if (bb->vt->tape_create(bb->self, en->k, &en->tape)) {
        en->tape = NULL;
        return bb_fail(en, e);
    }
    return 0;
}

void clpdd_encoder_free(clpdd_encoder *en) {
    if (!en->bb) return;
    const clpdd_host *h = en->bb->h;
    if (en->tape) en->bb->vt->tape_destroy(en->bb->self, en->tape);
    h->free(h, en->Xin);
    h->free(h, en->dXin);
    h->free(h, en->scratch);
    clpdd_adapter_free(&en->ad);
    memset(en, 0, sizeof *en);
}

static int forward(clpdd_encoder *en, float *phis, const float *Xs) {
    int d = en->bb->info.feature_dim;
    void *tape = en->k == en->m ? en->tape : NULL; /* chunked: no activations kept */
    for (int i = 0; i < en->m; i += en->k) {
        int n = en->m - i < en->k ? en->m - i : en->k;
        clpdd_adapter_forward(&en->ad, en->Xin, Xs + (size_t)i * en->px, n);
        if (en->bb->vt->forward(en->bb->self, phis + (size_t)i * d, en->Xin, n, tape)) return -1;
    }
    return 0;
}

static int backward(clpdd_encoder *en, float *dXs, const float *dphis, const float *Xs) {
    int d = en->bb->info.feature_dim;
    for (int i = 0; i < en->m; i += en->k) {
        int n = en->m - i < en->k ? en->m - i : en->k;
        if (en->k < en->m) { /* recompute this chunk's forward, with the tape this time */
            clpdd_adapter_forward(&en->ad, en->Xin, Xs + (size_t)i * en->px, n);
            if (en->bb->vt->forward(en->bb->self, en->scratch, en->Xin, n, en->tape)) return -1;
        }
        if (en->bb->vt->backward(en->bb->self, en->dXin, dphis + (size_t)i * d, n, en->tape)) return -1;
        clpdd_adapter_backward(&en->ad, dXs + (size_t)i * en->px, en->dXin, n);
    }
    return 0;
}

int clpdd_encoder_forward(clpdd_encoder *en, float *phis, const float *Xs, clpdd_err *e) {
    clpdd_precision was = clpdd_backbone_precision_enter(en->bb);
    int rc = forward(en, phis, Xs);
    clpdd_backbone_precision_leave(en->bb, was);
    return rc ? bb_fail(en, e) : 0;
}

int clpdd_encoder_backward(clpdd_encoder *en, float *dXs, const float *dphis, const float *Xs, clpdd_err *e) {
    clpdd_precision was = clpdd_backbone_precision_enter(en->bb);
    int rc = backward(en, dXs, dphis, Xs);
    clpdd_backbone_precision_leave(en->bb, was);
    return rc ? bb_fail(en, e) : 0;
}
