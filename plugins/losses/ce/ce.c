/* ce: temperature-scaled softmax cross-entropy, the CLP-DD outer loss.
 *   L = mean_i −log softmax(Z_i/τ)[y_i];   dZ = (softmax(Z/τ) − onehot(y_i))/(n·τ)
 * Legend: n real batch, C classes. Support labels: plain one-hot (encode_labels NULL). */
#include <math.h>
#include <stdlib.h>

#include "clpdd/plugin.h"

typedef struct ce {
    const clpdd_host *h;
    float inv_tau;
    int C, n_max;
    float *loss_rows; /* (n_max) */
} ce;

static const clpdd_key ce_keys[] = {
    {/* .name = */ "temperature", /* .type = */ CLPDD_KEY_FLOAT, /* .default_value = */ "0.1",
     /* .help = */ "softmax temperature tau in CE(softmax(Z/tau), y); ridge predictions live on the one-hot scale, so tau < 1 sharpens them",
     /* .min = */ 1e-6, /* .max = */ 1e6, /* .choices = */ NULL},
};

static int ce_create(const clpdd_host *h, const clpdd_section *cfg, int C, int n_max, void **out) {
    ce *self = calloc(1, sizeof *self);
    if (!self) return h->error(h, "ce: out of memory"), -1;
    self->h = h;
    self->C = C;
    self->n_max = n_max;
    self->inv_tau = (float)(1.0 / h->cfg_float(h, cfg, "temperature"));
    self->loss_rows = h->alloc(h, (size_t)n_max * sizeof(float));
    if (!self->loss_rows) {
        free(self);
        return -1;
    }
    *out = self;
    return 0;
}

static void ce_destroy(void *p) {
    ce *self = p;
    if (!self) return;
    self->h->free(self->h, self->loss_rows);
    free(self);
}

static int ce_forward(void *p, float *L, float *dZ, const float *Z, const int32_t *y, int n) {
    ce *self = p;
    const clpdd_ops *ops = self->h->ops;
    if (n > self->n_max) return self->h->error(self->h, "ce: batch %d exceeds n_max %d", n, self->n_max), -1;
    ops->cross_entropy(self->loss_rows, dZ, Z, y, n, self->C, self->inv_tau, 1.0f / (float)n);
    double total = ops->sum(self->loss_rows, (size_t)n);
    if (!isfinite(total))
        return self->h->error(self->h, "ce: loss is not finite (predictions contain NaN/Inf or overflow at temperature %g)",
                              1.0 / self->inv_tau),
               -1;
    *L = (float)(total / n);
    return 0;
}

static const clpdd_loss_vt ce_vt = {
    /* .create = */ ce_create,
    /* .destroy = */ ce_destroy,
    /* .encode_labels = */ NULL,
    /* .forward = */ ce_forward,
};

static const clpdd_plugin ce_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 0, /* uses only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_LOSS,
    /* .name = */ "ce",
    /* .version = */ "1.0.0",
    /* .summary = */ "temperature-scaled softmax cross-entropy on the real batch (CLP-DD)",
    /* .keys = */ ce_keys,
    /* .n_keys = */ (int)(sizeof ce_keys / sizeof ce_keys[0]),
    /* .vtable = */ &ce_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(ce_plugin)
