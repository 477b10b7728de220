/* Evaluation (docs/design.md §7): the linear probe a user trains on the frozen encoder's features of an
 * image set, scored top-1 on the test split, with every baseline through the same evaluator.
 *
 * Protocols ([eval] protocol):
 *   probe  multinomial logistic regression solved to convergence (core/eval/probe.h: L-BFGS, float64),
 *          L2 strength chosen from the wd grid on the validation split, test reported for the
 *          chosen fit. Deterministic: one fit per evaluated set (n = 1), one per random draw.
 *   fast   LGM's Adam probe (core/eval/lgm_probe.h) on features computed once, `seeds` trainings.
 *   lgm    the same probe on features of images flipped and random-resized-cropped afresh every
 *          epoch (a backbone pass per epoch, on the device: images never leave it).
 *
 * Sets scored: any image set (the distilled one), random real images (ipc per class, a fresh
 * draw per seed), class centroids (per class the ipc real images nearest the class's mean
 * feature), the set's nearest real images (core/eval/neighbors.h: per distilled image the
 * same-class real image nearest in feature space, none twice), and the full-data probe (every distillation-target feature; on cached features
 * whatever the protocol, since augmenting every training image each epoch costs N backbone
 * passes per epoch).
 *
 * Legend: m images in the scored set, N real training features (distillation targets), nv
 * validation, nt test, d feature dim, C classes, c/H/W the dataset's image shape. */
#ifndef CLPDD_EVALUATE_H
#define CLPDD_EVALUATE_H
#include <stdint.h>

#include "encoder/augment.h"
#include "data/dataset.h"
#include "config/experiment.h"
#include "features/extract.h"
#include "eval/probe.h" /* clpdd_top1 */

#define CLPDD_MAX_GROUPS 64

/* one evaluated set's numbers */
typedef struct clpdd_score {
    clpdd_protocol protocol;
    int n;                                /* draws or trainings */
    double per_seed[CLPDD_MAX_SEEDS];     /* test top-1 in [0, 1] */
    double mean, std;                     /* std: population (numpy's default) */
    /* protocol probe only (NaN / 0 otherwise) */
    double val_per_seed[CLPDD_MAX_SEEDS]; /* validation top-1 of the chosen fit */
    double wd_per_seed[CLPDD_MAX_SEEDS];  /* the chosen L2 strength */
    double val_mean, val_std;
    int max_iterations, all_converged;
    double max_grad_norm; /* ‖g‖∞ in the solver's coordinates, the worst fit's */
    /* [data] group (G = 0 without): test accuracy per (label, group value) group */
    int G;
    double worst_per_seed[CLPDD_MAX_SEEDS]; /* the lowest group accuracy of each draw */
    double gmean_per_seed[CLPDD_MAX_SEEDS]; /* the unweighted mean over the groups of each draw */
    double worst_mean, worst_std, gmean_mean, gmean_std;
    double group_acc[CLPDD_MAX_GROUPS];     /* each group's accuracy, mean over the draws (NaN: no test image) */
    int group_n[CLPDD_MAX_GROUPS];          /* each group's test images */
} clpdd_score;
void clpdd_score_finish(clpdd_score *s);

/* host features and labels */
typedef struct clpdd_labelled {
    const float *x;   /* (n, d) */
    const int32_t *y; /* (n) */
    int n;
} clpdd_labelled;

typedef struct clpdd_eval_cfg {
    clpdd_protocol protocol;
    int seeds;                  /* baseline draws; fast/lgm: trainings per set */
    int epochs, batch, full_epochs;
    float lr;                   /* fast/lgm: Adam lr per 256 samples */
    const double *wd;           /* probe: the grid */
    int n_wd, max_iter;
    uint64_t seed;              /* the run's: every draw and probe seed derives from it */
} clpdd_eval_cfg;
void clpdd_eval_cfg_from_experiment(clpdd_eval_cfg *cfg, const clpdd_experiment *x);

typedef struct clpdd_evaluator {
    clpdd_eval_cfg cfg;
    clpdd_backbone *bb;
    int c, H, W, C, d, max_m;
    clpdd_labelled train, val, test; /* train: the real images baselines draw from */
    const clpdd_dataset *images;     /* train row i is the image images[image_of[i]] (lgm, baselines) */
    const int *image_of;
    clpdd_extractor ex;
    /* lgm protocol: augmentation of up to max_m images, on the device, allocated once */
    clpdd_augment *aug;
    float *aug_in, *aug_out; /* (max_m, c, H, W) */
    int quiet;
    /* [data] group, set by the caller after init (NULL / 0: none): the test and validation images'
       groups in [0, G); select_worst: the probe's wd chosen on the worst validation group */
    const int32_t *test_g, *val_g;
    int G, select_worst;
} clpdd_evaluator;

/* max_m: the largest set scored (the distilled set's m; the baselines use the same). val may
   have n = 0 (the probe then fits once with wd = 1/m; experiment.c refuses a wd grid without a
   split). images/image_of may be NULL when no baseline or lgm needs images. */
int clpdd_evaluator_init(clpdd_evaluator *ev, clpdd_backbone *bb, int c, int H, int W, int C, clpdd_labelled train,
                         clpdd_labelled val, clpdd_labelled test, const clpdd_dataset *images, const int *image_of,
                         const clpdd_eval_cfg *cfg, int max_m, int quiet, clpdd_err *e);
void clpdd_evaluator_free(clpdd_evaluator *ev);

/* features (m, d) host of host images (m, c, H, W) in [0, 1] */
int clpdd_evaluator_features(clpdd_evaluator *ev, float *out, const float *images, int m, clpdd_err *e);
/* an image set with its features (from clpdd_evaluator_features) and labels (m); T (m, C) or NULL:
   a label matrix of probability rows, the probe's soft targets instead of one-hot(y) (every
   protocol; docs/design.md §7) */
int clpdd_evaluate_set(clpdd_evaluator *ev, clpdd_score *s, const float *images, const float *feats, const int32_t *y,
                       const float *T, int m, clpdd_err *e);
int clpdd_evaluate_random_real(clpdd_evaluator *ev, clpdd_score *s, int ipc, clpdd_err *e);
int clpdd_evaluate_centroids(clpdd_evaluator *ev, clpdd_score *s, int ipc, clpdd_err *e);
/* the neighbours baseline of a set with features feats (m, d) host and labels y (m): its nearest
   real training images (core/eval/neighbors.h) scored as centroids are; pick (m) gets the chosen
   training rows (indices into ev->train), dist (m) their Euclidean distances in feature space */
int clpdd_evaluate_neighbors(clpdd_evaluator *ev, clpdd_score *s, const float *feats, const int32_t *y, int m, int *pick,
                             double *dist, clpdd_err *e);
int clpdd_evaluate_full(clpdd_evaluator *ev, clpdd_score *s, clpdd_err *e);

#endif
