/* mse: KIP-style squared error on the real batch.
 *   targets T = onehot − 1/C (centred, as KIP and FRePo; `center = false`: plain one-hot);
 *   L = ½·mean over n×C of (Z − T)²;  dZ = (Z − T)/(n·C).
 * The support labels Y_s use the same encoding (encode_labels).
 * Legend: n real batch, m synthetic, C classes. */
#include <math.h>
#include <stdlib.h>

#include "clpdd/plugin.h"

typedef struct mse {
    const clpdd_host *h;
    int C, n_max, center;
    float *targets; /* (n_max, C) */
} mse;

static const clpdd_key mse_keys[] = {
    {/* .name = */ "center", /* .type = */ CLPDD_KEY_BOOL, /* .default_value = */ "true",
     /* .help = */ "centre the one-hot targets (onehot - 1/C), as KIP and FRePo do; false = plain one-hot",
     /* .min = */ 1, /* .max = */ 0, /* .choices = */ NULL},
};

static int mse_create(const clpdd_host *h, const clpdd_section *cfg, int C, int n_max, void **out) {
    mse *self = calloc(1, sizeof *self);
    if (!self) return h->error(h, "mse: out of memory"), -1;
    self->h = h;
    self->C = C;
    self->n_max = n_max;
    self->center = h->cfg_bool(h, cfg, "center");
    self->targets = h->alloc(h, (size_t)n_max * (size_t)C * sizeof(float));
    if (!self->targets) {
        free(self);
        return -1;
    }
    *out = self;
    return 0;
}

static void mse_destroy(void *p) {
    mse *self = p;
    if (!self) return;
    self->h->free(self->h, self->targets);
    free(self);
}

static int mse_encode(void *p, float *Y, const int32_t *y, int m) {
    mse *self = p;
    float off = self->center ? -1.0f / (float)self->C : 0.0f;
    self->h->ops->onehot(Y, y, m, self->C, 1.0f + off, off);
    return 0;
}

static int mse_forward(void *p, float *L, float *dZ, const float *Z, const int32_t *y, int n) {
    mse *self = p;
    const clpdd_ops *ops = self->h->ops;
    if (n > self->n_max) return self->h->error(self->h, "mse: batch %d exceeds n_max %d", n, self->n_max), -1;
    size_t nc = (size_t)n * (size_t)self->C;
    mse_encode(self, self->targets, y, n);
    ops->axpby(dZ, 1.0f, Z, -1.0f, self->targets, nc); /* dZ = Z − T  (the residual, scaled below) */
    double ss = ops->dot(dZ, dZ, nc);
    if (!isfinite(ss)) return self->h->error(self->h, "mse: loss is not finite (predictions contain NaN/Inf)"), -1;
    *L = (float)(0.5 * ss / (double)nc);
    ops->scale(dZ, 1.0f / (float)nc, nc);
    return 0;
}

static const clpdd_loss_vt mse_vt = {
    /* .create = */ mse_create,
    /* .destroy = */ mse_destroy,
    /* .encode_labels = */ mse_encode,
    /* .forward = */ mse_forward,
    /* .learned = */ NULL, /* learns nothing (ABI 1.5 members; the core reads them from minor >= 5 only) */
    /* .set_learned = */ NULL,
};

static const clpdd_plugin mse_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 0, /* uses only the ABI 1.0 ops */
    /* .kind = */ CLPDD_KIND_LOSS,
    /* .name = */ "mse",
    /* .version = */ "1.0.0",
    /* .summary = */ "KIP-style mean squared error against (centred) one-hot targets (no learnable keys)",
    /* .keys = */ mse_keys,
    /* .n_keys = */ (int)(sizeof mse_keys / sizeof mse_keys[0]),
    /* .vtable = */ &mse_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(mse_plugin)
