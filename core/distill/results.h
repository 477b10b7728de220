/* Writing a run directory (docs/design.md §8) and the result lines on stderr: what clpdd run
 * and clpdd eval leave behind. metrics.json is written last: its presence marks a finished run. */
#ifndef CLPDD_RESULTS_H
#define CLPDD_RESULTS_H
#include "distill/outputs.h"
#include "eval/run_data.h"

/* a distilled set on the host: images (m, c, H, W) in [0, 1], class-major with ipc per class */
typedef struct clpdd_results_set {
    const float *images;
    const int32_t *labels; /* (m) */
    const float *label_matrix; /* (m, C) learned label matrix, or NULL */
    int m, ipc;
    int real_batch;        /* the run's n per step (metrics.json) */
} clpdd_results_set;

/* config.ini, log.csv, distilled.{safetensors,png}, loss.png (when there are log rows) and
   metrics.json of a run into outdir; s completed from the data first */
int clpdd_results_write_run(const char *outdir, const clpdd_run_data *r, const clpdd_results_set *set,
                            const clpdd_log_row *log, int nlog, double t_start, clpdd_summary *s, clpdd_err *e);
/* config.ini, distilled.{safetensors,png} and metrics.json of an evaluated set into outdir;
   from_run = 0: the set was made elsewhere, so the configuration's solver and loss are not named */
int clpdd_results_write_eval(const char *outdir, const clpdd_run_data *r, const clpdd_results_set *set, int from_run,
                             double t_start, clpdd_summary *s, clpdd_err *e);
/* the result lines of a run, and those of an evaluation */
void clpdd_results_report_run(const clpdd_summary *s, const clpdd_run_data *r, const char *outdir);
void clpdd_results_report_eval(const clpdd_summary *s, const clpdd_run_data *r, const char *outdir);
/* [data] group: the worst-group line of every evaluated set (part of both reports above) */
void clpdd_results_report_groups(const clpdd_summary *s);

#endif
