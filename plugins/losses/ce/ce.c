/* ce: temperature-scaled softmax cross-entropy, the CLP-DD outer loss.
 *   L = mean_i −log softmax(Z_i/τ)[y_i];   dZ = (softmax(Z/τ) − onehot(y_i))/(n·τ)
 * Legend: n real batch, C classes. Support labels: plain one-hot (encode_labels NULL).
 * temperature = learn (ABI 1.5): ∂L/∂log τ = −⟨dZ, Z⟩ (Z/τ is what the softmax sees, so
 * ∂L/∂τ = ⟨τ·dZ, −Z/τ²⟩), one dot after the op; the core runs Adam on log τ (docs/design.md §1). */
#include <math.h>
#include <stdlib.h>

#include "clpdd/plugin.h"

typedef struct ce {
    const clpdd_host *h;
    float inv_tau;
    double tau;       /* the temperature now (learned: set by the core) */
    int learn;        /* temperature = learn */
    double grad_log;  /* ∂L/∂log τ of the last forward */
    int C, n_max;
    float *loss_rows; /* (n_max) */
} ce;

static const clpdd_key ce_keys[] = {
    {/* .name = */ "temperature", /* .type = */ CLPDD_KEY_LEARNABLE, /* .default_value = */ "0.1",
     /* .help = */ "softmax temperature tau in CE(softmax(Z/tau), y); ridge predictions live on the one-hot scale, so tau < 1 sharpens them; learn or learn:<init> optimises log tau with the pixels",
     /* .min = */ 1e-6, /* .max = */ 1e6, /* .choices = */ NULL},
};

static int ce_create(const clpdd_host *h, const clpdd_section *cfg, int C, int n_max, void **out) {
    ce *self = calloc(1, sizeof *self);
    if (!self) return h->error(h, "ce: out of memory"), -1;
    self->h = h;
    self->C = C;
    self->n_max = n_max;
    self->tau = h->cfg_float(h, cfg, "temperature");
    self->inv_tau = (float)(1.0 / self->tau);
    self->learn = h->abi_minor >= 5 && h->cfg_learn(h, cfg, "temperature");
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
    if (self->learn) self->grad_log = -ops->dot(dZ, Z, (size_t)n * self->C);
    return 0;
}

static int ce_learned(void *p, clpdd_learned *out, int max) {
    ce *self = p;
    if (!self->learn) return 0;
    if (max > 0) out[0] = (clpdd_learned){"temperature", self->tau, self->grad_log};
    return 1;
}

static void ce_set_learned(void *p, int i, double value) {
    ce *self = p;
    if (i != 0) return;
    self->tau = value;
    self->inv_tau = (float)(1.0 / value);
}

static const clpdd_loss_vt ce_vt = {
    /* .create = */ ce_create,
    /* .destroy = */ ce_destroy,
    /* .encode_labels = */ NULL,
    /* .forward = */ ce_forward,
    /* .learned = */ ce_learned,
    /* .set_learned = */ ce_set_learned,
};

static const clpdd_plugin ce_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 5, /* a LEARNABLE key and learned/set_learned (ABI 1.5); only the ABI 1.0 ops */
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
