/* Evaluation: a fresh linear probe trained on features of an image set, scored top-1 on the
 * held-out split (DESIGN §7, protocol `fast`: LGM's probe on cached features, no augmentation).
 *
 * Probe: W (d, C) ~ N(0, 0.01²), b = 0; Adam (0.9, 0.999, 1e-8) with lr = lr_base·B/256 and a
 * cosine schedule to 0 over all steps, B = min(batch, m); `epochs` passes over the m training
 * features, reshuffled each epoch; softmax cross-entropy. Runs on the host (the sets are small:
 * m = C·ipc) with OpenBLAS for the test-set logits. */
#ifndef CLPDD_EVAL_H
#define CLPDD_EVAL_H
#include <stdint.h>

typedef struct clpdd_probe_cfg {
    int epochs, batch;
    float lr_base;
} clpdd_probe_cfg;

/* top-1 accuracy in [0, 1] of a probe trained on (Xtr (m, d), ytr) and scored on (Xte (nte, d), yte) */
double clpdd_probe_accuracy(const float *Xtr, const int32_t *ytr, int m, const float *Xte, const int32_t *yte, int nte,
                            int d, int C, const clpdd_probe_cfg *cfg, uint64_t seed);

/* protocol `lgm`: the probe's training features are recomputed every epoch (from freshly
   augmented images); fn writes the m features of `epoch` into X (m, d) and returns 0, or
   non-zero to abort (the accuracy is then NaN). With fn NULL, Xtr is used every epoch. */
typedef int (*clpdd_epoch_features_fn)(void *ctx, int epoch, float *X);
double clpdd_probe_accuracy_epochs(clpdd_epoch_features_fn fn, void *ctx, const float *Xtr, const int32_t *ytr, int m,
                                   const float *Xte, const int32_t *yte, int nte, int d, int C, const clpdd_probe_cfg *cfg,
                                   uint64_t seed);

/* top-1 of given logits (n, C) */
double clpdd_top1(const float *logits, const int32_t *y, int n, int C);

typedef struct clpdd_score {
    double mean, std; /* std: population (numpy's default) over seeds */
    double per_seed[64];
    int n;
} clpdd_score;
void clpdd_score_finish(clpdd_score *s);

#endif
