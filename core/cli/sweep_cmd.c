/* `clpdd sweep` and `clpdd report` (see sweep_cmd.h for the exit statuses). */
#define _GNU_SOURCE
#include "cli/sweep_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/startup.h"
#include "sweep/report.h"
#include "sweep/sweep.h"

static void print_list(const clpdd_sweep *s, int si, int sn) {
    int n = 0;
    for (int i = 0; i < s->n_points; i++) n += clpdd_sweep_in_shard(i, si, sn);
    printf("sweep %s: %d point%s", s->name, s->n_points, s->n_points == 1 ? "" : "s");
    if (s->n_grid != s->n_points) printf(" (%d in the grid; %d merged: identical once keys that don't apply were dropped)",
                                         s->n_grid, s->n_grid - s->n_points);
    if (sn > 1) printf(", %d in shard %d/%d", n, si, sn);
    printf(" -> %s\n", s->root);
    for (int i = 0; i < s->n_keys; i++) {
        printf("  %s (%s, %s):", s->keys[i].key, s->keys[i].label, s->keys[i].where);
        for (int j = 0; j < s->keys[i].n_values; j++) printf("%s %s", j ? "," : "", s->keys[i].values[j]);
        if (s->keys[i].zip) printf("   [zip group %d]", s->keys[i].zip);
        printf("\n");
    }
    for (int i = 0; i < s->n_points; i++) {
        if (!clpdd_sweep_in_shard(i, si, sn)) continue;
        const clpdd_sweep_point *p = &s->points[i];
        printf("[%d] %s\n    dir   %s\n    state %s\n    set  ", p->index, p->name, p->dir,
               clpdd_point_state_name(clpdd_sweep_point_state(p, NULL)));
        for (int k = p->swept_from; k < p->swept_from + p->n_swept; k++) printf(" --set %s", p->sets[k]);
        if (!p->n_swept) printf(" (none)");
        printf("\n");
    }
}

/* the device: chosen once, from the first point's [experiment] device (which --device overrides) */
static const clpdd_ops *sweep_device(clpdd_sweep *s, const clpdd_sweep_opts *o, clpdd_plugin_dirs *dirs, clpdd_err *e) {
    clpdd_experiment x;
    const clpdd_ops *ops = NULL;
    if (s->n_points > 0) {
        if (clpdd_experiment_load(&x, s->file, (const char *const *)s->points[0].sets, s->points[0].n_sets, dirs, e) == 0)
            ops = clpdd_select_device(x.device, e);
        clpdd_experiment_free(&x);
    }
    /* validation says what is wrong with the file; else the device is */
    if (!ops && !clpdd_sweep_validate(s, o, e) && !e->msg[0]) clpdd_err_set(e, "no device");
    return ops;
}

static void sweep_report(const clpdd_sweep *s) {
    const char *d[] = {s->root};
    clpdd_report_opts rop = {s->root, NULL, 1, 0};
    char title[600];
    snprintf(title, sizeof title, "Sweep %s (%s)", s->name, s->file);
    rop.title = title;
    clpdd_report_result rr;
    clpdd_err re = {{0}};
    if (clpdd_report(d, 1, &rop, &rr, &re)) fprintf(stderr, "clpdd: report: %s\n", re.msg);
}

static int sweep(const clpdd_args *a) {
    clpdd_err e = {{0}};
    int si = 0, sn = 1, n_sweeps, rc = 0;
    clpdd_args_shard(a, "shard", &si, &sn);
    clpdd_startup st;
    clpdd_startup_dirs(&st, a);
    const char *const *sweeps = clpdd_args_list(a, "sweep", &n_sweeps);
    clpdd_sweep_opts o = {a->overrides, a->n_overrides, sweeps, n_sweeps, clpdd_args_str(a, "output"), &st.dirs};
    clpdd_sweep s;
    if (clpdd_sweep_expand(&s, a->pos[0], &o, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        clpdd_startup_end(&st);
        return 2;
    }
    const clpdd_ops *ops = NULL;
    if (clpdd_args_count(a, "list")) {
        if (clpdd_sweep_validate(&s, &o, &e)) rc = 2;
        else print_list(&s, si, sn);
    } else if (!(ops = sweep_device(&s, &o, &st.dirs, &e))) {
        rc = 2;
    } else {
        clpdd_sweep_run_opts ro = {ops, (int)clpdd_args_int(a, "jobs", 1), si, sn, clpdd_args_count(a, "quiet")};
        clpdd_sweep_result res;
        if (clpdd_sweep_run(&s, &o, &ro, &res, &e)) {
            rc = 2;
        } else {
            if (!clpdd_args_count(a, "no-report")) sweep_report(&s);
            fprintf(stderr, "sweep %s: %d point%s in this process: %d ran, %d finished before (skipped), %d failed; %.1f s\n",
                    s.name, res.in_shard, res.in_shard == 1 ? "" : "s", res.ran, res.skipped, res.failed, res.seconds);
            rc = res.failed ? 1 : 0;
        }
    }
    if (rc == 2) fprintf(stderr, "clpdd: %s\n", e.msg);
    clpdd_sweep_free(&s);
    clpdd_startup_end(&st);
    return rc;
}

static int report(const clpdd_args *a) {
    const char *output = clpdd_args_str(a, "output");
    clpdd_report_opts o = {output ? output : a->pos[0], clpdd_args_str(a, "title"), !clpdd_args_count(a, "no-plots"),
                           clpdd_args_count(a, "quiet")};
    clpdd_report_result r;
    clpdd_err e = {{0}};
    if (clpdd_report(a->pos, a->n_pos, &o, &r, &e)) return fprintf(stderr, "clpdd: report: %s\n", e.msg), 2;
    return 0;
}

static const clpdd_option opt_list = {
    .name = "list", .kind = CLPDD_OPT_FLAG, .help = "print the points, their --set overrides, directories and states; run nothing"};
static const clpdd_option opt_sweep = {
    .name = "sweep", .kind = CLPDD_OPT_STRING, .repeatable = 1, .value = "section.key=v1,v2,...",
    .help = "add or replace a swept key (repeatable)"};
static const clpdd_option opt_jobs = {
    .name = "jobs", .kind = CLPDD_OPT_INT, .value = "N", .lo = 1, .hi = 1024,
    .help = "run the points in N processes (1 to 1024) once the cache of each feature set is filled"};
static const clpdd_option opt_shard = {
    .name = "shard", .kind = CLPDD_OPT_SHARD, .value = "i/N",
    .help = "run points i, i+N, i+2N, ... (0-based: i = $SLURM_ARRAY_TASK_ID of a job array --array=0-(N-1); see scripts/slurm/sweep.sbatch)"};
static const clpdd_option opt_no_report = {
    .name = "no-report", .kind = CLPDD_OPT_FLAG, .help = "skip `clpdd report DIR` at the end"};
static const clpdd_option *const sweep_options[] = {&opt_list, &opt_sweep, &clpdd_opt_set, &opt_jobs, &opt_shard,
                                                    &clpdd_opt_output, &clpdd_opt_device, &clpdd_opt_plugin_path,
                                                    &clpdd_opt_allow_plugin_path, &opt_no_report, &clpdd_opt_quiet, NULL};

const clpdd_command clpdd_command_sweep = {
    .name = "sweep",
    .synopsis = "sweep FILE.ini",
    .summary = "run the grid of an experiment's [sweep] section, then report it",
    .usage =
        "usage: clpdd sweep FILE.ini [--list] [--sweep section.key=v1,v2,...]... [--set section.key=value]...\n"
        "                            [--jobs N] [--shard i/N] [--output DIR] [--device auto|cpu|cuda]\n"
        "                            [--plugin-path DIR[:DIR...]] [--allow-plugin-path] [--no-report] [--quiet]\n"
        "\n"
        "Runs the grid of FILE's [sweep] section: `section.key = v1, v2, ...` (or a..b for integers)\n"
        "per swept key, the product of the lists; `zip = a.b, c.d` pairs lists instead of crossing\n"
        "them. A plugin's key applies only where that plugin is chosen (loss.* not with lgm); points\n"
        "made identical by that are merged. --sweep adds or replaces a swept key; --set applies to\n"
        "every point. Values can't contain commas.\n"
        "\n"
        "Every point is validated before any runs (an error names FILE:LINE; nothing is written).\n"
        "Each point runs in DIR/<point>/ (DIR: --output, else [experiment] output, else\n"
        "runs/<name>), named by its swept values (solver=ridge,loss=ce,seed=0; values with other\n"
        "characters than letters, digits and ._=,+- get a ~hash of the exact values). A point whose\n"
        "metrics.json and config.ini match is skipped; one finished with another configuration is\n"
        "refused, nothing runs (remove it, or give another --output); a killed one resumes from its\n"
        "checkpoint; a failing one leaves <point>/error.txt and the sweep goes on. The feature cache\n"
        "is shared: points run one after another, or with --jobs N in N processes once the first\n"
        "point of each feature set (backbone + data) has filled the cache. At the end\n"
        "`clpdd report DIR` writes DIR/summary.{csv,md} and plots.\n"
        "\n"
        "exit status: 0 every point done, 1 some point failed (count on the last line), 2 a usage or\n"
        "configuration error.\n",
    .options = sweep_options,
    .positional = "FILE.ini",
    .min_pos = 1,
    .max_pos = 1,
    .run = sweep,
};

static const clpdd_option opt_title = {
    .name = "title", .kind = CLPDD_OPT_STRING, .value = "TEXT", .help = "the title of summary.md"};
static const clpdd_option opt_no_plots = {
    .name = "no-plots", .kind = CLPDD_OPT_FLAG, .help = "write no plots"};
static const clpdd_option report_output = {
    .name = "output", .kind = CLPDD_OPT_STRING, .value = "DIR", .help = "where the summary goes (default: the first DIR)"};
static const clpdd_option *const report_options[] = {&report_output, &opt_title, &opt_no_plots, &clpdd_opt_quiet, NULL};

const clpdd_command clpdd_command_report = {
    .name = "report",
    .synopsis = "report DIR...",
    .summary = "collect run directories into summary.csv, summary.md and plots",
    .usage =
        "usage: clpdd report DIR... [--output DIR] [--title TEXT] [--no-plots] [--quiet]\n"
        "\n"
        "Collects every run under the DIRs (a directory with metrics.json; one with only error.txt is\n"
        "a failed run) into summary.csv (one row per run, every configuration key that varies a\n"
        "column), summary.md (mean +- std over seeds per cell = runs differing only in\n"
        "experiment.seed; best cell per column in bold; baselines as rows; hyper-parameters chosen\n"
        "on validation where the runs have validation scores) and PNG plots drawn by gnuplot when it\n"
        "is installed (Debian: gnuplot-nox). --output: where they go (default: the first DIR).\n",
    .options = report_options,
    .positional = "DIR",
    .min_pos = 1,
    .max_pos = -1,
    .run = report,
};

int clpdd_cmd_sweep(int argc, char **argv) { return clpdd_command_main(&clpdd_command_sweep, argc, argv); }
int clpdd_cmd_report(int argc, char **argv) { return clpdd_command_main(&clpdd_command_report, argc, argv); }
