/* The evaluation of a distilled set (docs/design.md §7): the [eval] protocol's score of the set
 * on the test split, and the baselines ([eval] baseline_*) of the same data, split and ipc, from
 * the score cache (core/eval/score_cache.h) or computed and cached; the neighbours baseline (the
 * set's nearest real images) is computed every time, as it depends on the set. A run evaluates the set it
 * distilled, clpdd eval a set it is given; both through this one phase. */
#ifndef CLPDD_EVALUATION_H
#define CLPDD_EVALUATION_H
#include "distill/outputs.h"
#include "eval/run_data.h"

/* images (m, c, H, W) host in [0, 1], class-major with ipc per class, labels (m) and label_matrix
   (m, C) or NULL (a learned one: the set is scored with it, "accuracy", and with each row's argmax
   label, s->acc_hard, "accuracy_hard_labels"); their features
   through the evaluator into phis (m, d) host; the scores into s (solver_acc = NaN: the run
   fills it from its solver) */
int clpdd_evaluation_score(clpdd_run_data *r, const float *images, const int32_t *labels, const float *label_matrix, int m,
                           int ipc, float *phis, clpdd_summary *s, clpdd_err *e);

#endif
