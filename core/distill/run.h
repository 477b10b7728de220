/* The commands built on a run's phases (docs/design.md §1, §8): clpdd run (data → the
 * distillation loop → evaluation → the run directory), clpdd eval (data → evaluation of a given
 * set → the run directory) and clpdd features (data up to the feature cache). Each takes the
 * device in opts->ops, chosen once by its caller; NULL is a programming mistake. */
#ifndef CLPDD_RUN_H
#define CLPDD_RUN_H
#include "config/experiment.h"

typedef struct clpdd_run_opts {
    const clpdd_ops *ops; /* the device, chosen once by the caller; required */
    const char *output;   /* overrides [experiment] output when not NULL */
    int quiet;
    int resume;           /* continue from <output>/checkpoint.safetensors when there is one */
    int force;            /* replace another run's files in <output> (core/distill/rundir.h) */
} clpdd_run_opts;

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e);

/* an image set to evaluate (clpdd eval): host images in [0, 1] in the dataset's image space */
typedef struct clpdd_image_set {
    const float *images;   /* (m, c, H, W) */
    const int32_t *labels; /* (m) */
    const float *label_matrix; /* (m, label_C) a learned label matrix (probability rows), or NULL */
    int label_C;
    int m, c, H, W;
    const char *source;    /* where it came from, for messages and metrics.json */
    int from_run;          /* 1: a clpdd run directory, whose config.ini is the method's */
    /* NULL: labels are the dataset's classes. Else labels index these names (an image folder's
       class sub-folders), each mapped to the dataset's class of that name, or of that number where
       the dataset's classes are numbered; a name that is no class is an error listing the classes */
    const char *const *class_names; /* (n_class_names) */
    int n_class_names;
} clpdd_image_set;

/* the evaluation of a run, on a given set: the same data, features, validation split and
   evaluator as `clpdd run`, writing config.ini, metrics.json, distilled.{safetensors,png} into
   opts->output (or [experiment] output). [distill] ipc sizes the baselines. */
int clpdd_run_eval(clpdd_experiment *x, const clpdd_image_set *set, const clpdd_run_opts *opts, clpdd_err *e);

/* clpdd features: the feature cache of both splits, as a run would find it (the same datasets,
   backbone and keys); parts > 0: only part `part` of the shards; merge: verify every shard and
   write the index */
int clpdd_run_features(clpdd_experiment *x, const clpdd_run_opts *opts, int part, int parts, int merge, clpdd_err *e);

#endif
