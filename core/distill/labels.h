/* Learned labels (docs/design.md §1, "Learned labels"): with [distill] labels = learn the synthetic
 * set's label matrix is a parameter. Logits ℓ (m, C), Y = softmax(ℓ) per row (always a probability
 * matrix, and no ‖Y‖ ↔ τ scale degeneracy: a ridge Z is linear in Y), initialised at
 * ℓ = a·onehot(y), a = log(p0·(C−1)/(1−p0)) so that row i starts with p0 on its class. Each step the
 * solver's backward gives dY_s (me, C); the k DSA copies are summed into dY (m, C), taken through
 * the softmax into dℓ, and Adam (its own moments, bias-corrected with the step number) moves ℓ at
 * [distill] labels_lr. Everything on the device through ops.
 *
 * Legend: m synthetic images, k augmented copies (DSA; else 1), me = k·m, C classes. */
#ifndef CLPDD_LABELS_H
#define CLPDD_LABELS_H
#include <stdint.h>
#include "clpdd/plugin.h"
#include "util/util.h"

typedef struct clpdd_labels {
    const clpdd_ops *ops;
    int m, k, C;
    /* device */
    float *logits, *adam_m, *adam_v; /* (m, C) */
    float *Y;                        /* (m, C) softmax(logits) */
    float *dY, *dlogits;             /* (m, C) */
} clpdd_labels;

/* the logit at a row's own class (the others 0) that gives it probability p0 in (0, 1) */
double clpdd_labels_init_logit(double p0, int C);
/* buffers on h (freed with the host, as the loop's), logits a·onehot(y) (y (m) host classes), moments zero, Y computed */
int clpdd_labels_init(clpdd_labels *lb, clpdd_host *h, int m, int k, int C, const int32_t *y, double p0, clpdd_err *e);
/* Ys (me, C) device = the k copies of softmax(logits) */
void clpdd_labels_forward(clpdd_labels *lb, float *Ys);
/* dlogits (m, C) = ∂L/∂ℓ from dYs (me, C) device (the solver's dY_s of the step): the k copies
   summed, then through the softmax (Y must be softmax(logits)) */
void clpdd_labels_grad(clpdd_labels *lb, const float *dYs);
/* clpdd_labels_grad, then one Adam step t at lr on the logits and Y recomputed. -1 (message)
   when dℓ is not finite */
int clpdd_labels_step(clpdd_labels *lb, const float *dYs, int t, float lr, float b1, float b2, clpdd_err *e);
/* Y (m, C) to host */
void clpdd_labels_matrix(const clpdd_labels *lb, float *out);

#endif
