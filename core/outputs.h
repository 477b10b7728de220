/* The files of a run directory, each written atomically. */
#ifndef CLPDD_OUTPUTS_H
#define CLPDD_OUTPUTS_H
#include <stdint.h>
#include "eval.h"
#include "util.h"

typedef struct clpdd_log_row {
    int step;
    float loss;
    double seconds; /* since the loop started */
} clpdd_log_row;

int clpdd_write_log_csv(const char *path, const clpdd_log_row *rows, int n, clpdd_err *e);
/* images (m, c, H, W) in [0, 1], class-major (class k: rows k·ipc … k·ipc+ipc−1) */
int clpdd_write_distilled(const char *dir, const float *images, const int32_t *labels, int m, int c, int H, int W,
                          int ipc, int C, const char *meta_json, clpdd_err *e);
int clpdd_write_loss_plot(const char *path, const clpdd_log_row *rows, int n, const char *title, clpdd_err *e);

/* "name": {"mean": …, "std": …, "per_seed": […]} */
void clpdd_json_score(clpdd_strbuf *b, const char *name, const clpdd_score *s);

#endif
