/* Reports (docs/design.md §8): every run directory under some directories (one with metrics.json,
 * or with error.txt and no metrics.json: a failed sweep point; a directory reached twice, by
 * overlapping or repeated arguments, counts once) collated into
 *   summary.csv  one row per run: its varying configuration keys (from config.ini, read by the
 *                INI reader; a run without one: the method its metrics.json names), the
 *                accuracy (mean, std, validation mean when present, protocol), the baselines,
 *                the solver diagnostic, ms/step, memory, device; failed runs with their error
 *   summary.md   one row per cell (runs that differ only in experiment.seed): accuracy
 *                mean ± std over the cell's runs (with one run: ± its std over probe seeds),
 *                the best cell of each column in bold, random-real and full-data baselines as
 *                rows, selection on validation where every run has a validation score,
 *                failed runs listed, runs that repeat another's configuration (config.ini
 *                equal but for name, output, device: a copied directory, a sweep collected
 *                twice) listed and counted once, with a warning
 *   *.png        gnuplot plots when gnuplot is installed (Debian gnuplot-nox; else a note):
 *                accuracy per cell (bars from 0 with error bars, random real as a dashed
 *                segment over each bar), accuracy against ms/step, and a
 *                loss.temperature × solver.lambda heat map when both vary.
 * Runs with groups ([data] group: metrics.json accuracy.worst_group) add a worst-group column
 * beside every accuracy column of summary.md (cells, baseline rows, selection), worst-group
 * columns to summary.csv and a worst-group bar beside each accuracy bar.
 * Percentages in summary.md are 100 × the fractions of metrics.json, rounded to 2 decimals. */
#ifndef CLPDD_REPORT_H
#define CLPDD_REPORT_H
#include "util/util.h"

typedef struct clpdd_report_opts {
    const char *out_dir; /* where summary.* go (created) */
    const char *title;   /* summary.md's heading; NULL: "Summary of <dirs>" */
    int plots;           /* 0: no gnuplot even when installed */
    int quiet;
} clpdd_report_opts;

typedef struct clpdd_report_result {
    int runs, failed, cells, plots; /* plots drawn */
    int duplicates;                 /* finished runs that repeat an earlier one's configuration: not counted */
} clpdd_report_result;

/* -1 + message when no run is found, a metrics.json is unreadable (naming the file) or a
   config.ini does not parse (naming the file and line) */
int clpdd_report(const char *const *dirs, int n_dirs, const clpdd_report_opts *o, clpdd_report_result *res, clpdd_err *e);

#endif
