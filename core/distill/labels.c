/* Learned labels (core/distill/labels.h; docs/design.md §1). */
#include "distill/labels.h"

#include <math.h>
#include <stdlib.h>

#include "plugin/host.h"

double clpdd_labels_init_logit(double p0, int C) { return log(p0 * (C - 1) / (1.0 - p0)); }

int clpdd_labels_init(clpdd_labels *lb, clpdd_host *h, int m, int k, int C, const int32_t *y, double p0, clpdd_err *e) {
    const clpdd_ops *ops = h->ops;
    size_t n = (size_t)m * C, bytes = n * sizeof(float);
    *lb = (clpdd_labels){ops, m, k, C, NULL, NULL, NULL, NULL, NULL, NULL};
    float **bufs[] = {&lb->logits, &lb->adam_m, &lb->adam_v, &lb->Y, &lb->dY, &lb->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = h->alloc(h, bytes))) return clpdd_err_set(e, "labels: %s", clpdd_host_error(h));
    float *host = clpdd_xmalloc(bytes);
    float a = (float)clpdd_labels_init_logit(p0, C);
    for (int i = 0; i < m; i++)
        for (int c = 0; c < C; c++) host[(size_t)i * C + c] = c == y[i] ? a : 0.0f;
    ops->to_device(lb->logits, host, bytes);
    free(host);
    ops->fill(lb->adam_m, 0.0f, n);
    ops->fill(lb->adam_v, 0.0f, n);
    ops->softmax_rows(lb->Y, lb->logits, m, C, 1.0f);
    return 0;
}

void clpdd_labels_forward(clpdd_labels *lb, float *Ys) {
    size_t mC = (size_t)lb->m * lb->C;
    for (int j = 0; j < lb->k; j++) lb->ops->copy(Ys + (size_t)j * mC, lb->Y, mC * sizeof(float));
}

void clpdd_labels_grad(clpdd_labels *lb, const float *dYs) {
    const clpdd_ops *ops = lb->ops;
    size_t mC = (size_t)lb->m * lb->C;
    /* the k copies share one label row each: their gradients add */
    ops->copy(lb->dY, dYs, mC * sizeof(float));
    for (int j = 1; j < lb->k; j++) ops->axpy(lb->dY, 1.0f, dYs + (size_t)j * mC, mC);
    ops->softmax_rows_backward(lb->dlogits, lb->dY, lb->Y, lb->m, lb->C, 1.0f);
}

int clpdd_labels_step(clpdd_labels *lb, const float *dYs, int t, float lr, float b1, float b2, clpdd_err *e) {
    const clpdd_ops *ops = lb->ops;
    size_t mC = (size_t)lb->m * lb->C;
    clpdd_labels_grad(lb, dYs);
    if (!ops->all_finite(lb->dlogits, mC))
        return clpdd_err_set(e, "the label logits' gradient is not finite; lower [distill] labels_lr?");
    ops->adam(lb->logits, lb->adam_m, lb->adam_v, lb->dlogits, mC, lr, b1, b2, 1e-8f, 0.0f, t);
    ops->softmax_rows(lb->Y, lb->logits, lb->m, lb->C, 1.0f);
    return 0;
}

void clpdd_labels_matrix(const clpdd_labels *lb, float *out) {
    lb->ops->to_host(out, lb->Y, (size_t)lb->m * lb->C * sizeof(float));
}
