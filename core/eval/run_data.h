/* The data a run stands on (docs/design.md §7): the host on the chosen device, the backbone, the
 * two splits, their cached features and the split of the training features into distillation
 * targets and the validation split. clpdd run, clpdd eval and clpdd features go through the same
 * phases, in this order, so that they see the same datasets, cache files and split:
 *   clpdd_run_data_open      host + backbone
 *   clpdd_run_data_load      datasets, checked before any expensive work, and the split's rows
 *   clpdd_run_data_features  features of both splits (cached); or clpdd_run_data_merge
 *   clpdd_run_data_targets   the targets' and the validation split's feature rows
 * clpdd bench fills train and the targets with random data instead (core/bench/bench.c).
 * It stands in eval/ because the validation split it draws is the evaluation's
 * (clpdd_split_stratified, core/eval/probe.h).
 *
 * Legend: N training images (dataset order), nt distillation targets, nv validation images, d
 * feature dim, C classes, px = c·H·W pixels of a dataset image. */
#ifndef CLPDD_RUN_DATA_H
#define CLPDD_RUN_DATA_H
#include "config/experiment.h"
#include "data/data_source.h"
#include "data/dataset.h"
#include "features/feature_cache.h"
#include "plugin/host.h"

typedef struct clpdd_run_data {
    clpdd_experiment *x;
    int quiet;
    const clpdd_ops *ops;
    clpdd_host *h;                         /* owns every device buffer of the run */
    clpdd_backbone bb;
    int d, C, c, H, W;
    size_t px;
    clpdd_dataset train, test;
    clpdd_data_info train_info, test_info; /* image datasets: class names, skipped files */
    struct {
        long skipped_images;               /* [data] on_bad_image = skip: images left out */
        const char *skipped_first;         /* the first of them, "path: why" */
        long other_split_rows;             /* manifest rows of a split the run does not use */
        const char *other_split_first;     /* the first of them, "file.csv:line: split 'x'" */
    } sum;
    /* [data] group: group g = label·nv + value (value: the index into values, the union of both
       splits' values sorted by strcmp); G = C·nv; NULL / 0 without groups */
    struct {
        int n_values, G;
        char **values;            /* (n_values) */
        int32_t *train, *test;    /* (train.n), (test.n): each image's group, dataset order */
        int32_t *target, *val;    /* (N), (nv): the targets' and the validation split's groups */
    } groups;
    clpdd_features ftrain, ftest;          /* every training image's features (dataset order), the test split's */
    char cache_dir[4096];                  /* features and baseline scores */
    /* the training features split in two ([data] val_size): the distillation targets (what the
       real batches, init = real and the baselines draw from) and the validation split (what
       every selection uses); target row i is dataset image target_rows[i] */
    int N, nv;                             /* N: the targets (after clpdd_run_data_targets) */
    int *target_rows, *val_rows;           /* (nt), (nv) */
    float *target_x, *val_x;               /* (nt, d), (nv, d) host */
    int32_t *target_y, *val_y;             /* (nt), (nv) */
} clpdd_run_data;

/* the host on ops (seeded with [experiment] seed), "clpdd: <what> '<name>' on <device>" unless
   quiet, the backbone created and described; d = its feature dim */
int clpdd_run_data_open(clpdd_run_data *r, clpdd_experiment *x, const clpdd_ops *ops, const char *what, int quiet,
                        clpdd_err *e);
/* both splits loaded and checked (shapes, labels, images per class for ipc and val_size), the
   rows of the targets and of the validation split chosen (stratified, [data] subset_seed) */
int clpdd_run_data_load(clpdd_run_data *r, clpdd_err *e);
/* both splits' features, from the cache or extracted into it; parts > 0: only part `part` of
   the shards, nothing kept in memory (clpdd features --shard) */
int clpdd_run_data_features(clpdd_run_data *r, int part, int parts, clpdd_err *e);
/* both splits' sharded caches verified and their indexes written (clpdd features --merge) */
int clpdd_run_data_merge(clpdd_run_data *r, int part, int parts, clpdd_err *e);
/* target_x/y and val_x/y copied from the training features; N = the number of targets */
void clpdd_run_data_targets(clpdd_run_data *r);
/* everything, the host (and so every device buffer) last; the plugins on the host must be
   destroyed before */
void clpdd_run_data_free(clpdd_run_data *r);

#endif
