#include "features/extract.h"

#include <string.h>

#include "plugin/host.h"

int clpdd_extractor_init(clpdd_extractor *ex, clpdd_backbone *bb, int c, int H, int W, int batch, clpdd_err *e) {
    memset(ex, 0, sizeof *ex);
    const clpdd_host *h = bb->h;
    ex->bb = bb, ex->c = c, ex->H = H, ex->W = W, ex->batch = batch > 0 ? batch : 1, ex->d = bb->info.feature_dim;
    if (clpdd_adapter_init_mode(&ex->ad, h, c, H, W, &bb->info, ex->batch, bb->adapt, e)) return -1;
    size_t in_px = (size_t)c * H * W, bb_px = (size_t)bb->info.channels * bb->info.height * bb->info.width;
    ex->dx = h->alloc(h, (size_t)ex->batch * in_px * sizeof(float));
    ex->dxin = h->alloc(h, (size_t)ex->batch * bb_px * sizeof(float));
    ex->dfeat = h->alloc(h, (size_t)ex->batch * ex->d * sizeof(float));
    if (!ex->dx || !ex->dxin || !ex->dfeat) return clpdd_err_set(e, "features: %s", clpdd_host_error(h));
    return 0;
}

int clpdd_extractor_run(clpdd_extractor *ex, float *out, const float *images, int n, int on_device, clpdd_err *e) {
    const clpdd_host *h = ex->bb->h;
    const clpdd_ops *ops = h->ops;
    size_t in_px = (size_t)ex->c * ex->H * ex->W;
    for (int i = 0; i < n; i += ex->batch) {
        int k = n - i < ex->batch ? n - i : ex->batch;
        const float *src = images + (size_t)i * in_px;
        if (!on_device) {
            ops->to_device(ex->dx, src, (size_t)k * in_px * sizeof(float));
            src = ex->dx;
        }
        clpdd_adapter_forward(&ex->ad, ex->dxin, src, k);
        if (ex->bb->vt->forward(ex->bb->self, ex->dfeat, ex->dxin, k, NULL))
            return clpdd_err_set(e, "backbone %s: %s", ex->bb->desc->name, clpdd_host_error(h));
        ops->to_host(out + (size_t)i * ex->d, ex->dfeat, (size_t)k * ex->d * sizeof(float));
    }
    return 0;
}

void clpdd_extractor_free(clpdd_extractor *ex) {
    if (ex->bb) {
        const clpdd_host *h = ex->bb->h;
        h->free(h, ex->dx);
        h->free(h, ex->dxin);
        h->free(h, ex->dfeat);
        clpdd_adapter_free(&ex->ad);
    }
    memset(ex, 0, sizeof *ex);
}
