/* LGM's linear probe (docs/design.md §7, protocols `fast` and `lgm`): a fresh head trained with Adam on
 * features of an image set, scored top-1 on the test split. Faithful to LGM at the paper's sizes;
 * at m = 10 it takes ~1000 steps at lr ≈ 4e-5 and does not train (use protocol `probe`).
 *
 * Probe: W (d, C) ~ N(0, 0.01²), b = 0; Adam (0.9, 0.999, 1e-8) with lr = lr_base·B/256 and a
 * cosine schedule to 0 over all steps, B = min(batch, m); `epochs` passes over the m training
 * features, reshuffled each epoch; softmax cross-entropy. Runs on the host (the sets are small:
 * m = C·ipc) with OpenBLAS for the test-set logits. */
#ifndef CLPDD_LGM_PROBE_H
#define CLPDD_LGM_PROBE_H
#include <stdint.h>

typedef struct clpdd_lgm_probe_cfg {
    int epochs, batch;
    float lr_base;
} clpdd_lgm_probe_cfg;

/* top-1 accuracy in [0, 1] of a probe trained on (Xtr (m, d), ytr) and scored on (Xte (nte, d), yte) */
double clpdd_lgm_probe(const float *Xtr, const int32_t *ytr, int m, const float *Xte, const int32_t *yte, int nte,
                            int d, int C, const clpdd_lgm_probe_cfg *cfg, uint64_t seed);

/* protocol `lgm`: the probe's training features are recomputed every epoch (from freshly
   augmented images); fn writes the m features of `epoch` into X (m, d) and returns 0, or
   non-zero to abort (the accuracy is then NaN). With fn NULL, Xtr is used every epoch. */
typedef int (*clpdd_lgm_epoch_fn)(void *ctx, int epoch, float *X);
double clpdd_lgm_probe_epochs(clpdd_lgm_epoch_fn fn, void *ctx, const float *Xtr, const int32_t *ytr, int m,
                                   const float *Xte, const int32_t *yte, int nte, int d, int C, const clpdd_lgm_probe_cfg *cfg,
                                   uint64_t seed);
/* the same, and (pred non-NULL) each test point's predicted class into pred (nte); Ttr (m, C) or
   NULL: soft targets (probability rows) for the cross-entropy instead of one-hot(ytr), whose
   gradient in the logits z is softmax(z) − T */
double clpdd_lgm_probe_pred(clpdd_lgm_epoch_fn fn, void *ctx, const float *Xtr, const int32_t *ytr, const float *Ttr, int m,
                            const float *Xte, const int32_t *yte, int nte, int d, int C, const clpdd_lgm_probe_cfg *cfg,
                            uint64_t seed, int32_t *pred);

#endif
