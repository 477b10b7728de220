/* `clpdd sweep` and `clpdd report` (see sweep_cmd.h for the exit statuses). */
#define _GNU_SOURCE
#include "cli/sweep_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep/report.h"
#include "sweep/sweep.h"

const char *const clpdd_usage_sweep =
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
    "runs/<name>), named by its swept values (solver=ridge,loss=ce,seed=0). A point whose\n"
    "metrics.json and config.ini match is skipped; a killed one resumes from its checkpoint; a\n"
    "failing one leaves <point>/error.txt and the sweep goes on. The feature cache is shared:\n"
    "points run one after another, or with --jobs N in N processes once the first point of each\n"
    "feature set (backbone + data) has filled the cache. At the end `clpdd report DIR` writes\n"
    "DIR/summary.{csv,md} and plots.\n"
    "\n"
    "  --list        print the points, their --set overrides, directories and states; run nothing\n"
    "  --shard i/N   run points i, i+N, i+2N, ... (0-based: i = $SLURM_ARRAY_TASK_ID of a job\n"
    "                array --array=0-(N-1); see scripts/slurm/sweep.sbatch)\n"
    "\n"
    "exit status: 0 every point done, 1 some point failed (count on the last line), 2 a usage or\n"
    "configuration error.\n";

const char *const clpdd_usage_report =
    "usage: clpdd report DIR... [--output DIR] [--title TEXT] [--no-plots] [--quiet]\n"
    "\n"
    "Collects every run under the DIRs (a directory with metrics.json; one with only error.txt is\n"
    "a failed run) into summary.csv (one row per run, every configuration key that varies a\n"
    "column), summary.md (mean +- std over seeds per cell = runs differing only in\n"
    "experiment.seed; best cell per column in bold; baselines as rows; hyper-parameters chosen\n"
    "on validation where the runs have validation scores) and PNG plots drawn by gnuplot when it\n"
    "is installed (Debian: gnuplot-nox). --output: where they go (default: the first DIR).\n";

typedef struct sargs {
    const char *file, *output, *device, *plugin_path, *shard, *title;
    const char *sets[256], *sweeps[256], *dirs[256];
    int n_sets, n_sweeps, n_dirs, list, jobs, quiet, help, no_report, no_plots, allow_plugin_path;
} sargs;

static int parse(int argc, char **argv, sargs *a, int is_report) {
    memset(a, 0, sizeof *a);
    a->jobs = 1;
    const char *usage = is_report ? clpdd_usage_report : clpdd_usage_sweep;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *val = NULL;
        /* --opt value or --opt=value: 1 taken, -1 value missing, 0 not this option */
#define TAKE(flag)                                                                      \
    (strcmp(s, flag) == 0 ? (i + 1 < argc ? (val = argv[++i], 1) : -1)                 \
                          : (strncmp(s, flag "=", strlen(flag) + 1) == 0 ? (val = s + strlen(flag) + 1, 1) : 0))
        int r;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) a->help = 1;
        else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) a->quiet = 1;
        else if (!is_report && !strcmp(s, "--list")) a->list = 1;
        else if (!is_report && !strcmp(s, "--no-report")) a->no_report = 1;
        else if (is_report && !strcmp(s, "--no-plots")) a->no_plots = 1;
        else if ((r = TAKE("--output")) != 0) {
            if (r < 0) goto missing;
            a->output = val;
        } else if (is_report && (r = TAKE("--title")) != 0) {
            if (r < 0) goto missing;
            a->title = val;
        } else if (!is_report && (r = TAKE("--set")) != 0) {
            if (r < 0) goto missing;
            if (a->n_sets == 256) return fprintf(stderr, "clpdd: too many --set options\n"), -1;
            a->sets[a->n_sets++] = val;
        } else if (!is_report && (r = TAKE("--sweep")) != 0) {
            if (r < 0) goto missing;
            if (a->n_sweeps == 256) return fprintf(stderr, "clpdd: too many --sweep options\n"), -1;
            a->sweeps[a->n_sweeps++] = val;
        } else if (!is_report && (r = TAKE("--jobs")) != 0) {
            if (r < 0) goto missing;
            char *end;
            long j = strtol(val, &end, 10);
            if (*end || end == val || j < 1 || j > 1024)
                return fprintf(stderr, "clpdd: --jobs %s: expected a number of processes from 1 to 1024\n", val), -1;
            a->jobs = (int)j;
        } else if (!is_report && (r = TAKE("--shard")) != 0) {
            if (r < 0) goto missing;
            a->shard = val;
        } else if (!is_report && (r = TAKE("--device")) != 0) {
            if (r < 0) goto missing;
            if (strcmp(val, "auto") && strcmp(val, "cpu") && strcmp(val, "cuda"))
                return fprintf(stderr, "clpdd: --device %s: expected auto, cpu or cuda\n", val), -1;
            a->device = val;
        } else if (!is_report && !strcmp(s, "--allow-plugin-path")) {
            a->allow_plugin_path = 1;
        } else if (!is_report && (r = TAKE("--plugin-path")) != 0) {
            if (r < 0) goto missing;
            a->plugin_path = val;
        } else if (s[0] == '-' && s[1]) {
            return fprintf(stderr, "clpdd: unknown option '%s'\n\n%s", s, usage), -1;
        } else if (is_report) {
            if (a->n_dirs == 256) return fprintf(stderr, "clpdd: too many directories\n"), -1;
            a->dirs[a->n_dirs++] = s;
        } else if (!a->file) {
            a->file = s;
        } else {
            return fprintf(stderr, "clpdd: unexpected argument '%s'\n\n%s", s, usage), -1;
        }
        continue;
    missing:
        return fprintf(stderr, "clpdd: option %s needs a value\n\n%s", s, usage), -1;
#undef TAKE
    }
    if (a->help) return 0;
    if (!is_report && !a->file) return fprintf(stderr, "clpdd: missing FILE.ini\n\n%s", usage), -1;
    if (is_report && !a->n_dirs) return fprintf(stderr, "clpdd: missing DIR\n\n%s", usage), -1;
    return 0;
}

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

int clpdd_cmd_sweep(int argc, char **argv) {
    sargs a;
    if (parse(argc, argv, &a, 0)) return 2;
    if (a.help) return fputs(clpdd_usage_sweep, stdout), 0;
    clpdd_err e = {{0}};
    int si = 0, sn = 1;
    if (a.shard && clpdd_sweep_shard_parse(a.shard, &si, &sn, &e)) return fprintf(stderr, "clpdd: %s\n", e.msg), 2;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, a.plugin_path);
    dirs.allow_paths = a.allow_plugin_path;
    clpdd_sweep_opts o = {a.sets, a.n_sets, a.sweeps, a.n_sweeps, a.output, &dirs};
    clpdd_sweep s;
    int rc = 0;
    if (clpdd_sweep_expand(&s, a.file, &o, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        clpdd_plugin_dirs_free(&dirs);
        return 2;
    }
    if (a.list) {
        if (clpdd_sweep_validate(&s, &o, &e)) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = 2;
        } else {
            print_list(&s, si, sn);
        }
        goto out;
    }
    /* the device: chosen once, from --device or the base file's [experiment] device */
    clpdd_experiment x;
    const clpdd_ops *ops = NULL;
    if (s.n_points > 0 && clpdd_experiment_load(&x, s.file, (const char *const *)s.points[0].sets, s.points[0].n_sets, &dirs,
                                                &e) == 0) {
        clpdd_device_kind dev = x.device;
        if (a.device) dev = !strcmp(a.device, "cpu") ? CLPDD_DEVICE_CPU : !strcmp(a.device, "cuda") ? CLPDD_DEVICE_CUDA : CLPDD_DEVICE_AUTO;
        ops = clpdd_select_device(dev, &e);
        clpdd_experiment_free(&x);
    } else if (s.n_points > 0) {
        clpdd_experiment_free(&x);
    }
    if (!ops) {
        /* validation says what is wrong with the file; else the device is */
        if (!clpdd_sweep_validate(&s, &o, &e) && !e.msg[0]) clpdd_err_set(&e, "no device");
        fprintf(stderr, "clpdd: %s\n", e.msg);
        rc = 2;
        goto out;
    }
    clpdd_sweep_run_opts ro = {ops, a.jobs, si, sn, a.quiet};
    clpdd_sweep_result res;
    if (clpdd_sweep_run(&s, &o, &ro, &res, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        rc = 2;
        goto out;
    }
    if (!a.no_report) {
        const char *d[] = {s.root};
        clpdd_report_opts rop = {s.root, NULL, 1, 0};
        char title[600];
        snprintf(title, sizeof title, "Sweep %s (%s)", s.name, s.file);
        rop.title = title;
        clpdd_report_result rr;
        clpdd_err re = {{0}};
        if (clpdd_report(d, 1, &rop, &rr, &re)) fprintf(stderr, "clpdd: report: %s\n", re.msg);
    }
    fprintf(stderr, "sweep %s: %d point%s in this process: %d ran, %d finished before (skipped), %d failed; %.1f s\n", s.name,
            res.in_shard, res.in_shard == 1 ? "" : "s", res.ran, res.skipped, res.failed, res.seconds);
    rc = res.failed ? 1 : 0;
out:
    clpdd_sweep_free(&s);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}

int clpdd_cmd_report(int argc, char **argv) {
    sargs a;
    if (parse(argc, argv, &a, 1)) return 2;
    if (a.help) return fputs(clpdd_usage_report, stdout), 0;
    clpdd_report_opts o = {a.output ? a.output : a.dirs[0], a.title, !a.no_plots, a.quiet};
    clpdd_report_result r;
    clpdd_err e = {{0}};
    if (clpdd_report(a.dirs, a.n_dirs, &o, &r, &e)) return fprintf(stderr, "clpdd: report: %s\n", e.msg), 2;
    return 0;
}
