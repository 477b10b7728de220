/* The files of a run directory, each written atomically. */
#ifndef CLPDD_OUTPUTS_H
#define CLPDD_OUTPUTS_H
#include <stdint.h>
#include "eval/evaluate.h"
#include "util/util.h"

/* the most scalars one run learns (core/distill/learned.h) */
#define CLPDD_MAX_LEARNED 4

typedef struct clpdd_log_row {
    int step;
    float loss;
    double seconds; /* since the loop started */
    double learned[CLPDD_MAX_LEARNED]; /* the learned scalars' values this step's forward used */
} clpdd_log_row;

/* everything metrics.json reports about a finished run */
typedef struct clpdd_summary {
    const char *name, *backbone, *solver, *loss /* NULL: objective solver */, *init, *protocol, *device;
    const char *dataset, *test_set;
    const char *source; /* clpdd eval: the evaluated set's path (NULL in a run) */
    int ipc, steps, real_batch, eval_seeds, eval_epochs, eval_batch;
    uint64_t seed;
    double lr, eval_lr;
    clpdd_score acc, random_real, centroids, full_data;
    /* a set with a label matrix (labels = learn): acc is its score with the soft labels as stored,
       acc_hard the same set's with each row's argmax as its label (docs/design.md §7) */
    clpdd_score acc_hard;
    int has_hard;
    int has_random, has_centroids, has_full;
    /* [eval] baseline_neighbors: the set's nearest real images (eval/neighbors.h), one per distilled
       image i: training dataset row neighbor_rows[i] at feature distance neighbor_dist[i] (owned:
       clpdd_summary_free) */
    clpdd_score neighbors;
    int has_neighbors;
    int *neighbor_rows;
    double *neighbor_dist;
    int baselines_from_cache; /* the baselines' scores came from core/eval/score_cache.h */
    double solver_acc; /* NaN: none */
    double first_loss, last_loss;
    double ms_per_step, loop_s, features_s, total_s;
    int n_train, n_val, n_test, dim, from_cache;
    int wrote_loss_plot;
    long skipped_images;       /* [data] on_bad_image = skip: images left out */
    const char *skipped_first; /* the first of them, "path: why" */
    long other_split_rows;     /* manifest rows of a split the run does not use (e.g. Waterbirds' val) */
    const char *other_split_first;
    double peak_host_mb, peak_device_mb /* NaN on the CPU */, peak_alloc_mb;
    /* [data] group (G = 0: none): group g = label·n_values + value; its images per split */
    const char *group_key;
    int G, n_values;
    char *const *group_values; /* (n_values) */
    char *const *class_names;  /* (C) or NULL */
    int group_count[3][CLPDD_MAX_GROUPS]; /* distillation targets, validation split, test split */
    int select_worst;          /* [eval] select = worst_group */
    /* learned scalars (core/distill/learned.h): "section.key", initial and final values */
    int n_learned;
    const char *learned_name[CLPDD_MAX_LEARNED];
    double learned_init[CLPDD_MAX_LEARNED], learned_final[CLPDD_MAX_LEARNED];
} clpdd_summary;

void clpdd_summary_free(clpdd_summary *s);
int clpdd_write_metrics(const char *path, const clpdd_summary *s, clpdd_err *e);
/* step,loss,seconds and one column per learned scalar (s->learned_name; none when s is NULL) */
int clpdd_write_log_csv(const char *path, const clpdd_log_row *rows, int n, const clpdd_summary *s, clpdd_err *e);
/* images (m, c, H, W) in [0, 1], class-major (class k: rows k·ipc … k·ipc+ipc−1); label_matrix
   (m, C) or NULL: a learned label matrix, stored beside them as "label_matrix" */
int clpdd_write_distilled(const char *dir, const float *images, const int32_t *labels, const float *label_matrix, int m,
                          int c, int H, int W, int ipc, int C, const clpdd_summary *s, clpdd_err *e);
/* neighbors.csv: each distilled image's nearest real image (s->neighbor_rows, labels (m)) */
int clpdd_write_neighbors_csv(const char *path, const clpdd_summary *s, const int32_t *labels, int m, clpdd_err *e);
/* a class grid PNG of images (m, c, H, W) laid out as distilled.png (one column per class) */
int clpdd_write_class_grid(const char *path, const float *images, int m, int c, int H, int W, int ipc, int C, clpdd_err *e);
int clpdd_write_loss_plot(const char *path, const clpdd_log_row *rows, int n, const char *title, clpdd_err *e);


#endif
