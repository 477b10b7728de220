/* Reports: run directories → summary.csv, summary.md and gnuplot plots (see report.h). */
#define _GNU_SOURCE
#include "sweep/report.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/ini.h"
#include "io/json.h"
#include "sweep/sweep.h"

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- metrics.json as flat (path, value) leaves: "accuracy.mean", "accuracy.per_seed[2]" ---- */

typedef struct leaf {
    char *path, *str; /* str: a string leaf */
    double num;       /* a number leaf; NaN for null/bool/string */
} leaf;

typedef struct leaves {
    leaf *v;
    int n;
} leaves;

static void add_leaf(leaves *l, const char *path, char *str, double num) {
    l->v = realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    CLPDD_ASSERT(l->v);
    l->v[l->n++] = (leaf){clpdd_xstrdup(path), str, num};
}

static int walk(clpdd_json_rd *r, const char *path, leaves *l) {
    char sub[512];
    int n = 0, rc;
    switch (clpdd_json_peek(r)) {
    case CLPDD_JSON_OBJECT: {
        if (clpdd_json_obj_begin(r)) return -1;
        char *key;
        size_t kl;
        while ((rc = clpdd_json_obj_next(r, &n, &key, &kl)) == 1) {
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
            free(key);
            if (walk(r, sub, l)) return -1;
        }
        return rc;
    }
    case CLPDD_JSON_ARRAY:
        if (clpdd_json_arr_begin(r)) return -1;
        while ((rc = clpdd_json_arr_next(r, &n)) == 1) {
            snprintf(sub, sizeof sub, "%s[%d]", path, n - 1);
            if (walk(r, sub, l)) return -1;
        }
        return rc;
    case CLPDD_JSON_STRING: {
        char *s;
        size_t len;
        if (clpdd_json_string(r, &s, &len)) return -1;
        add_leaf(l, path, s, NAN);
        return 0;
    }
    case CLPDD_JSON_NUMBER: {
        double v = strtod(r->p, NULL); /* peek left r->p at the number; skip validates it */
        if (clpdd_json_skip(r)) return -1;
        add_leaf(l, path, NULL, v);
        return 0;
    }
    default: return clpdd_json_skip(r);
    }
}

static const leaf *find_leaf(const leaves *l, const char *path) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].path, path) == 0) return &l->v[i];
    return NULL;
}

static double num(const leaves *l, const char *path) {
    const leaf *f = find_leaf(l, path);
    return f && !f->str ? f->num : NAN;
}

static const char *str(const leaves *l, const char *path) {
    const leaf *f = find_leaf(l, path);
    return f ? f->str : NULL;
}

/* ---- runs ---- */

typedef struct run {
    char *dir;
    leaves m;          /* metrics.json */
    char **key, **val; /* config.ini "section.key" → value */
    int n_cfg;
    char *error;       /* failed run: error.txt */
    char *same;        /* a finished run with config.ini: its keys that change what a run computes,
                          sorted "section.key=value" lines (equal: the same run) */
    int dup_of;        /* -1, or the run (index in collect.runs) this one repeats */
    dev_t dev;         /* the directory itself: found twice (DIR given twice, DIR and DIR/sub) is once */
    ino_t ino;
} run;

typedef struct collect {
    run *runs;
    int n;
} collect;

static collect *g_collect; /* nftw has no user pointer */

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)f;
    if (flag != FTW_D) return 0;
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.json", path);
    int has_m = exists(p);
    snprintf(p, sizeof p, "%s/error.txt", path);
    if (!has_m && !exists(p)) return 0;
    collect *c = g_collect;
    for (int i = 0; i < c->n; i++)
        if (c->runs[i].dev == st->st_dev && c->runs[i].ino == st->st_ino) return 0; /* the same directory again */
    c->runs = realloc(c->runs, (size_t)(c->n + 1) * sizeof *c->runs);
    CLPDD_ASSERT(c->runs);
    memset(&c->runs[c->n], 0, sizeof c->runs[c->n]);
    c->runs[c->n].dev = st->st_dev, c->runs[c->n].ino = st->st_ino;
    c->runs[c->n++].dir = clpdd_xstrdup(path);
    return 0;
}

static int by_dir(const void *a, const void *b) { return strcmp(((const run *)a)->dir, ((const run *)b)->dir); }

static void cfg_put(run *r, const char *k, const char *v) {
    r->key = realloc(r->key, (size_t)(r->n_cfg + 1) * sizeof *r->key);
    r->val = realloc(r->val, (size_t)(r->n_cfg + 1) * sizeof *r->val);
    CLPDD_ASSERT(r->key && r->val);
    r->key[r->n_cfg] = clpdd_xstrdup(k);
    r->val[r->n_cfg++] = clpdd_xstrdup(v);
}

static const char *cfg(const run *r, const char *k) {
    for (int i = 0; i < r->n_cfg; i++)
        if (strcmp(r->key[i], k) == 0) return r->val[i];
    return NULL;
}

/* config.ini (clpdd_experiment_resolved_ini's format: comments, "    ; default" marks) through the
   INI reader: every key as "section.key", in the file's order. A damaged or hand-broken file is an
   error naming file:line, as for any experiment file. */
static int read_config(run *r, const char *path, clpdd_err *e) {
    clpdd_ini ini;
    int rc = clpdd_ini_load(path, &ini, e);
    for (int i = 0; rc == 0 && i < ini.n_sections; i++) {
        const clpdd_section *s = ini.sections[i];
        for (int j = 0; j < clpdd_section_count(s); j++) {
            const char *k = clpdd_section_key_at(s, j);
            char key[400];
            snprintf(key, sizeof key, "%s.%s", clpdd_section_name(s), k);
            cfg_put(r, key, clpdd_section_raw(s, k, NULL, NULL));
        }
    }
    clpdd_ini_free(&ini);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* r->same from its config.ini's keys (incidental ones aside: name, output, device, ...) */
static void same_run_text(run *r) {
    char **lines = clpdd_xcalloc((size_t)(r->n_cfg ? r->n_cfg : 1), sizeof *lines);
    int n = 0;
    for (int i = 0; i < r->n_cfg; i++) {
        const char *dot = strchr(r->key[i], '.');
        char sec[200];
        snprintf(sec, sizeof sec, "%.*s", dot ? (int)(dot - r->key[i]) : 0, r->key[i]);
        if (dot && clpdd_config_key_incidental(sec, dot + 1)) continue;
        lines[n] = clpdd_xmalloc(strlen(r->key[i]) + strlen(r->val[i]) + 3);
        sprintf(lines[n++], "%s=%s\n", r->key[i], r->val[i]);
    }
    qsort(lines, (size_t)n, sizeof *lines, cmp_str);
    clpdd_strbuf b = {0};
    for (int i = 0; i < n; i++) clpdd_sb_printf(&b, "%s", lines[i]), free(lines[i]);
    free(lines);
    r->same = b.s ? b.s : clpdd_xstrdup("");
}

static int load_run(run *r, clpdd_err *e) {
    char p[4400];
    uint8_t *data;
    size_t len;
    snprintf(p, sizeof p, "%s/metrics.json", r->dir);
    if (!exists(p)) {
        snprintf(p, sizeof p, "%s/error.txt", r->dir);
        if (clpdd_read_file(p, &data, &len, e)) return -1;
        while (len && isspace(data[len - 1])) data[--len] = 0;
        r->error = (char *)data;
        return 0;
    }
    if (clpdd_read_file(p, &data, &len, e)) return -1;
    clpdd_json_rd rd;
    clpdd_json_init(&rd, (const char *)data, len);
    int rc = walk(&rd, "", &r->m);
    if (rc == 0) rc = clpdd_json_finish(&rd);
    free(data);
    if (rc) return clpdd_err_set(e, "%s: not valid JSON: %s", p, rd.err);
    if (!isfinite(num(&r->m, "accuracy.mean"))) return clpdd_err_set(e, "%s: no accuracy.mean (not a clpdd metrics.json?)", p);
    snprintf(p, sizeof p, "%s/config.ini", r->dir);
    if (exists(p)) {
        if (read_config(r, p, e)) return -1;
        if (r->n_cfg) same_run_text(r);
    }
    if (!r->n_cfg) { /* no config.ini: what metrics.json says about the method */
        const char *map[][2] = {{"backbone.name", "method.backbone"}, {"solver.name", "method.solver"}, {"loss.name", "method.loss"}};
        for (int i = 0; i < 3; i++)
            if (str(&r->m, map[i][1])) cfg_put(r, map[i][0], str(&r->m, map[i][1]));
        const char *nmap[][2] = {{"distill.ipc", "method.ipc"}, {"distill.steps", "method.steps"}, {"experiment.seed", "method.seed"}};
        for (int i = 0; i < 3; i++) {
            double v = num(&r->m, nmap[i][1]);
            char b[64];
            snprintf(b, sizeof b, "%.10g", v);
            if (isfinite(v)) cfg_put(r, nmap[i][0], b);
        }
    }
    return 0;
}

static void run_free(run *r) {
    for (int i = 0; i < r->m.n; i++) free(r->m.v[i].path), free(r->m.v[i].str);
    free(r->m.v);
    for (int i = 0; i < r->n_cfg; i++) free(r->key[i]), free(r->val[i]);
    free(r->key), free(r->val), free(r->error), free(r->dir), free(r->same);
}

/* ---- cells ---- */

typedef struct stat2 {
    double mean, std;
    int n; /* runs with the value */
} stat2;

typedef struct cell {
    int *runs, n;
    stat2 acc, val, random, full, diag, ms, rss;
    stat2 worst, rworst, fworst; /* [data] group: the worst group's test accuracy (distilled, random real, full data) */
    stat2 nb, nworst; /* [eval] baseline_neighbors: the cell's own nearest real images (NaN: no run reports them) */
    stat2 tau, lambda;           /* learned temperature / lambda (docs/design.md §1): their final values */
    stat2 hard;                  /* [distill] labels = learn: the set's accuracy with argmax labels (§7) */
} cell;

/* mean ± std of a metric over runs: population std over runs (as clpdd_score_finish); with one
   run, that run's own std over probe seeds (std_path) when it has one */
static stat2 over(const collect *c, const int *idx, int n, const char *path, const char *std_path) {
    stat2 s = {NAN, NAN, 0};
    double sum = 0, sq = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double v = num(&c->runs[idx[i]].m, path);
        if (!isfinite(v)) continue;
        sum += v, k++;
    }
    if (!k) return s;
    s.mean = sum / k, s.n = k;
    for (int i = 0; i < n; i++) {
        double v = num(&c->runs[idx[i]].m, path);
        if (isfinite(v)) sq += (v - s.mean) * (v - s.mean);
    }
    s.std = sqrt(sq / k);
    if (k == 1 && std_path)
        for (int i = 0; i < n; i++)
            if (isfinite(num(&c->runs[idx[i]].m, path))) {
                /* one run: its own spread over probe seeds, when it had more than one (the probe
                   protocol fits once: no spread to show) */
                char second[256];
                snprintf(second, sizeof second, "%.*s.per_seed[1]", (int)(strlen(path) - strlen(".mean")), path);
                int seeds = strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".mean") && isfinite(num(&c->runs[idx[i]].m, second));
                s.std = seeds ? num(&c->runs[idx[i]].m, std_path) : NAN;
            }
    return s;
}

static void cell_stats(const collect *c, cell *cl) {
    cl->acc = over(c, cl->runs, cl->n, "accuracy.mean", "accuracy.std");
    cl->val = over(c, cl->runs, cl->n, "accuracy.val.mean", "accuracy.val.std");
    cl->random = over(c, cl->runs, cl->n, "baselines.random_real.mean", "baselines.random_real.std");
    cl->full = over(c, cl->runs, cl->n, "baselines.full_data.mean", "baselines.full_data.std");
    cl->diag = over(c, cl->runs, cl->n, "solver_diagnostic.accuracy", NULL);
    cl->worst = over(c, cl->runs, cl->n, "accuracy.worst_group.mean", "accuracy.worst_group.std");
    cl->rworst = over(c, cl->runs, cl->n, "baselines.random_real.worst_group.mean", "baselines.random_real.worst_group.std");
    cl->fworst = over(c, cl->runs, cl->n, "baselines.full_data.worst_group.mean", "baselines.full_data.worst_group.std");
    cl->nb = over(c, cl->runs, cl->n, "baselines.neighbors.mean", "baselines.neighbors.std");
    cl->nworst = over(c, cl->runs, cl->n, "baselines.neighbors.worst_group.mean", "baselines.neighbors.worst_group.std");
    cl->ms = over(c, cl->runs, cl->n, "timing.ms_per_step", NULL);
    if (cl->ms.n && !(over(c, cl->runs, cl->n, "timing.steps", NULL).mean > 0)) cl->ms.mean = cl->ms.std = NAN; /* eval only */
    cl->rss = over(c, cl->runs, cl->n, "memory.peak_host_mb", NULL);
    cl->tau = over(c, cl->runs, cl->n, "learned.loss.temperature.final", NULL);
    cl->lambda = over(c, cl->runs, cl->n, "learned.solver.lambda.final", NULL);
    cl->hard = over(c, cl->runs, cl->n, "accuracy_hard_labels.mean", "accuracy_hard_labels.std");
}

/* learned τ / λ and hard-label accuracy columns: only when a cell has them, so other reports stay
   as they were */
static int any_learned(const cell *cells, int nc, size_t off) {
    for (int i = 0; i < nc; i++)
        if (((const stat2 *)((const char *)&cells[i] + off))->n > 0) return 1;
    return 0;
}

static const char *cval(const run *r, const char *k) {
    const char *v = cfg(r, k);
    return v ? v : "-";
}

/* group runs by the values of keys[0..nk) */
static int group(const collect *c, const int *ok, int n_ok, char **keys, int nk, cell **out) {
    cell *cells = NULL;
    int nc = 0;
    for (int i = 0; i < n_ok; i++) {
        const run *r = &c->runs[ok[i]];
        int found = -1;
        for (int j = 0; j < nc && found < 0; j++) {
            const run *q = &c->runs[cells[j].runs[0]];
            int same = 1;
            for (int k = 0; k < nk && same; k++) same = strcmp(cval(r, keys[k]), cval(q, keys[k])) == 0;
            if (same) found = j;
        }
        if (found < 0) {
            cells = realloc(cells, (size_t)(nc + 1) * sizeof *cells);
            CLPDD_ASSERT(cells);
            memset(&cells[nc], 0, sizeof cells[nc]);
            found = nc++;
        }
        cell *cl = &cells[found];
        cl->runs = realloc(cl->runs, (size_t)(cl->n + 1) * sizeof *cl->runs);
        CLPDD_ASSERT(cl->runs);
        cl->runs[cl->n++] = ok[i];
    }
    for (int j = 0; j < nc; j++) cell_stats(c, &cells[j]);
    *out = cells;
    return nc;
}

static void free_cells(cell *c, int n) {
    for (int i = 0; i < n; i++) free(c[i].runs);
    free(c);
}

/* ---- formatting ---- */

static void pct(clpdd_strbuf *b, stat2 s, int bold) {
    if (!isfinite(s.mean)) {
        clpdd_sb_printf(b, " - |");
        return;
    }
    const char *m = bold ? "**" : "";
    if (isfinite(s.std)) clpdd_sb_printf(b, " %s%.2f ± %.2f%s |", m, 100 * s.mean, 100 * s.std, m);
    else clpdd_sb_printf(b, " %s%.2f%s |", m, 100 * s.mean, m);
}

static void plain(clpdd_strbuf *b, stat2 s, const char *fmt, int bold) {
    if (!isfinite(s.mean)) {
        clpdd_sb_printf(b, " - |");
        return;
    }
    char v[64];
    snprintf(v, sizeof v, fmt, s.mean);
    clpdd_sb_printf(b, " %s%s%s |", bold ? "**" : "", v, bold ? "**" : "");
}

/* index of the best cell by a statistic (max or min), -1 when fewer than two cells have it */
static int best(const cell *cells, int nc, size_t off, int maximise) {
    int bi = -1, have = 0;
    for (int i = 0; i < nc; i++) {
        const stat2 *s = (const stat2 *)((const char *)&cells[i] + off);
        if (!isfinite(s->mean)) continue;
        have++;
        const stat2 *t = bi >= 0 ? (const stat2 *)((const char *)&cells[bi] + off) : NULL;
        if (!t || (maximise ? s->mean > t->mean : s->mean < t->mean)) bi = i;
    }
    return have >= 2 ? bi : -1;
}

static const char *label_of(const char *key, char **keys, int nk, char *buf, size_t n) {
    const char *dot = strchr(key, '.');
    const char *k = dot ? dot + 1 : key;
    char short_[200];
    if (strcmp(k, "name") == 0 && dot) snprintf(short_, sizeof short_, "%.*s", (int)(dot - key), key);
    else snprintf(short_, sizeof short_, "%s", k);
    for (int i = 0; i < nk; i++) {
        if (strcmp(keys[i], key) == 0) continue;
        const char *d2 = strchr(keys[i], '.');
        const char *k2 = d2 ? d2 + 1 : keys[i];
        char s2[200];
        if (strcmp(k2, "name") == 0 && d2) snprintf(s2, sizeof s2, "%.*s", (int)(d2 - keys[i]), keys[i]);
        else snprintf(s2, sizeof s2, "%s", k2);
        if (strcmp(s2, short_) == 0) {
            snprintf(buf, n, "%s", key);
            return buf;
        }
    }
    snprintf(buf, n, "%s", short_);
    return buf;
}

static int is_method_key(const char *k) {
    return strncmp(k, "backbone.", 9) == 0 || strncmp(k, "data.", 5) == 0 || !strcmp(k, "solver.name") ||
           !strcmp(k, "loss.name") || !strcmp(k, "distill.ipc") || !strcmp(k, "distill.augment") ||
           !strcmp(k, "distill.param") || !strcmp(k, "distill.init");
}

static int is_baseline_key(const char *k) {
    return strncmp(k, "backbone.", 9) == 0 || strncmp(k, "data.", 5) == 0 || strncmp(k, "eval.", 5) == 0 ||
           !strcmp(k, "distill.ipc");
}

static void csv_field(clpdd_strbuf *b, const char *s) {
    if (!s) return;
    if (strpbrk(s, ",\"\n")) {
        clpdd_sb_printf(b, "\"");
        for (const char *p = s; *p; p++) clpdd_sb_printf(b, *p == '"' ? "\"\"" : "%c", *p);
        clpdd_sb_printf(b, "\"");
    } else {
        clpdd_sb_printf(b, "%s", s);
    }
}

static void csv_num(clpdd_strbuf *b, double v) {
    if (isfinite(v)) clpdd_sb_printf(b, ",%.6g", v);
    else clpdd_sb_printf(b, ",");
}

/* ---- plots ---- */

static int gnuplot(const char *dir, const char *script) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(dir)) _exit(126);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_text(const char *dir, const char *name, const clpdd_strbuf *b, clpdd_err *e) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return clpdd_write_file_atomic(p, b->s ? b->s : "", b->len, e);
}

static void gp_label(clpdd_strbuf *b, const char *s) { /* a gnuplot string in double quotes */
    clpdd_sb_printf(b, "\"");
    for (const char *p = s; *p; p++) clpdd_sb_printf(b, (*p == '"' || *p == '\\') ? "\\%c" : "%c", *p);
    clpdd_sb_printf(b, "\"");
}

/* plot-cells.tsv: one row per cell: index, name (its keys' values, " / " between them), accuracy %,
   its std %, ms/step, random real %, worst group %, its std %, random real's worst group % (NaN:
   none); *longest gets the longest name */
static int write_cells_tsv(const char *out, const collect *c, const cell *cells, int nc, char **cols, int ncols,
                           int *longest, clpdd_err *e) {
    clpdd_strbuf dat = {0};
    *longest = 3;
    for (int i = 0; i < nc; i++) {
        clpdd_strbuf name = {0};
        for (int k = 0; k < ncols; k++) clpdd_sb_printf(&name, "%s%s", k ? " / " : "", cval(&c->runs[cells[i].runs[0]], cols[k]));
        for (char *p = name.s; p && *p; p++)
            if (*p == '\t' || *p == '\n') *p = ' ';
        /* a label longer than 32 characters would squeeze the plot to nothing: its first 30 and
           ".." (the full values are in summary.md) */
        if (name.s && name.len > 32) name.s[30] = '.', name.s[31] = '.', name.s[32] = 0, name.len = 32;
        if (name.s && (int)name.len > *longest) *longest = (int)name.len;
        const cell *cl = &cells[i];
        clpdd_sb_printf(&dat, "%d\t%s\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\n", i, name.s ? name.s : "all",
                        100 * cl->acc.mean, isfinite(cl->acc.std) ? 100 * cl->acc.std : 0.0, cl->ms.mean, 100 * cl->random.mean,
                        100 * cl->worst.mean, isfinite(cl->worst.std) ? 100 * cl->worst.std : 0.0, 100 * cl->rworst.mean);
        free(name.s);
    }
    int rc = write_text(out, "plot-cells.tsv", &dat, e);
    free(dat.s);
    return rc ? -1 : 0;
}

/* accuracy.png: a bar per cell (mean ± std over seeds), beside it the worst group's bar when
   the runs have groups, each with its random-real baseline as a dashed segment across the bar;
   the cells' key values under the bars (the key names as the axis label), turned only when they
   would not fit side by side; the key outside the plot so it never hides a bar */
static void plot_cells(clpdd_strbuf *gp, int nc, char **cols, int ncols, int groups, int longest) {
    char lab[256];
    double w = groups ? 0.38 : 0.6, off = groups ? 0.2 : 0.0;
    clpdd_sb_printf(gp, "set output 'accuracy.png'\nset title '%s per cell: mean ± std over seeds; dashes: random real images'\n"
                        "set ylabel 'top-1 test accuracy (%%)'\nset yrange [0:100]\nset ytics 10\nset xlabel ",
                    groups ? "Accuracy and worst-group accuracy" : "Top-1 test accuracy");
    clpdd_strbuf names = {0};
    for (int k = 0; k < ncols; k++) clpdd_sb_printf(&names, "%s%s", k ? " / " : "", label_of(cols[k], cols, ncols, lab, sizeof lab));
    gp_label(gp, names.s ? names.s : "");
    free(names.s);
    /* ~7 px per character at font 10 on a 1000 px canvas: turn the labels when they would touch */
    if (nc * (longest * 7 + 12) > 880) clpdd_sb_printf(gp, " noenhanced\nset xtics nomirror scale 0 rotate by -30 left noenhanced font ',10'\n");
    else clpdd_sb_printf(gp, " noenhanced\nset xtics nomirror scale 0 norotate noenhanced font ',10'\n");
    clpdd_sb_printf(gp, "set key outside top center horizontal noenhanced\nset xrange [-0.6:%d.6]\nset boxwidth %.2f\n"
                        "set style fill solid 0.6 border -1\n"
                        "plot 'plot-cells.tsv' using ($1-%.2f):3 with boxes lc rgb '#4c72b0' title 'accuracy', "
                        "'' using ($1-%.2f):3:4 with yerrorbars lc rgb 'black' pt 7 ps 0.4 notitle, "
                        "'' using ($1-%.2f-%.2f):6:(%.2f):(0) with vectors nohead dt 2 lw 2 lc rgb 'black' title 'random real images'",
                    nc - 1, w, off, off, off, w / 2, w);
    if (groups)
        clpdd_sb_printf(gp, ", '' using ($1+%.2f):7 with boxes lc rgb '#dd8452' title 'worst group', "
                            "'' using ($1+%.2f):7:8 with yerrorbars lc rgb 'black' pt 7 ps 0.4 notitle, "
                            "'' using ($1+%.2f-%.2f):9:(%.2f):(0) with vectors nohead dt 2 lw 2 lc rgb 'black' notitle",
                        off, off, off, w / 2, w);
    clpdd_sb_printf(gp, ", '' using 1:3:xtic(2) with points ps 0 notitle\nunset xlabel\nset xtics norotate scale default\n"
                        "unset yrange\nset ytics autofreq\nset key default\n");
}

/* the distinct values of key a over the cells that set both a and b, in order of first
   appearance (at most 64), then sorted numerically */
static int distinct_sorted(const collect *c, const cell *cells, int nc, const char *a, const char *b, char **v) {
    int n = 0;
    for (int i = 0; i < nc; i++) {
        const run *r = &c->runs[cells[i].runs[0]];
        const char *x = cfg(r, a);
        if (!x || !cfg(r, b)) continue;
        int found = 0;
        for (int j = 0; j < n; j++) found |= !strcmp(v[j], x);
        if (!found && n < 64) v[n++] = (char *)x;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (atof(v[j]) < atof(v[i])) {
                char *t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    return n;
}

/* gnuplot tics: ("v0" 0, "v1" 1, ...) */
static void gp_tics(clpdd_strbuf *gp, char **v, int n) {
    for (int i = 0; i < n; i++) {
        clpdd_sb_printf(gp, "%s", i ? ", " : "");
        gp_label(gp, v[i]);
        clpdd_sb_printf(gp, " %d", i);
    }
}

/* plot-tau-lambda.tsv and its heat map in gp: accuracy over loss.temperature (x, column tk) ×
   solver.lambda (y, column lk), each square the mean over the cells with both values; 0 or -1 */
static int plot_tau_lambda(clpdd_strbuf *gp, const char *out, const collect *c, const cell *cells, int nc, int ncols,
                           const char *tk, const char *lk, clpdd_err *e) {
    char *tv[64], *lv[64];
    int nt = distinct_sorted(c, cells, nc, tk, lk, tv), nl = distinct_sorted(c, cells, nc, lk, tk, lv);
    clpdd_strbuf hm = {0};
    for (int a = 0; a < nl; a++)
        for (int b = 0; b < nt; b++) {
            double sum = 0;
            int k = 0;
            for (int i = 0; i < nc; i++) {
                const run *r = &c->runs[cells[i].runs[0]];
                const char *t = cfg(r, tk), *l = cfg(r, lk);
                if (t && l && !strcmp(t, tv[b]) && !strcmp(l, lv[a]) && isfinite(cells[i].acc.mean)) sum += cells[i].acc.mean, k++;
            }
            if (k) clpdd_sb_printf(&hm, "%d\t%d\t%.4f\n", b, a, 100 * sum / k);
            else clpdd_sb_printf(&hm, "%d\t%d\tNaN\n", b, a);
        }
    int rc = write_text(out, "plot-tau-lambda.tsv", &hm, e);
    free(hm.s);
    if (rc) return -1;
    clpdd_sb_printf(gp, "set output 'tau-lambda.png'\nset title 'Accuracy (%%) over loss.temperature x solver.lambda%s'\n"
                        "set xlabel 'loss.temperature'\nset ylabel 'solver.lambda'\nset xtics (",
                    ncols > 3 ? " (mean over the other keys)" : "");
    gp_tics(gp, tv, nt);
    clpdd_sb_printf(gp, ")\nset ytics (");
    gp_tics(gp, lv, nl);
    clpdd_sb_printf(gp, ")\nset xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset palette rgbformulae 33,13,10\nunset grid\n"
                        "plot 'plot-tau-lambda.tsv' using 1:2:3 with image notitle, '' using 1:2:(sprintf('%%.1f', $3)) "
                        "with labels notitle\n",
                    nt - 1, nl - 1);
    return 0;
}

/* the number of distinct value tuples of keys[0..n-1] over the cells */
static int distinct_tuples(const collect *c, const cell *cells, int nc, char **keys, int n) {
    int distinct = 0;
    for (int i = 0; i < nc; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            int same = 1;
            for (int k = 0; k < n && same; k++)
                same = !strcmp(cval(&c->runs[cells[i].runs[0]], keys[k]), cval(&c->runs[cells[j].runs[0]], keys[k]));
            seen = same;
        }
        distinct += !seen;
    }
    return distinct;
}

/* the keys that name the cells under the bars: the plugins' names and ipc first, then the other
   columns, each kept only when it tells more cells apart than the keys before it (a backbone's
   weights, image size and normalisation follow from its name and only crowd the label) */
static int bar_keys(const collect *c, const cell *cells, int nc, char **cols, int ncols, char **keys) {
    static const char *const first[] = {"backbone.name", "solver.name", "loss.name", "distill.ipc"};
    char *order[256];
    int no = 0, nk = 0, have = 1;
    for (size_t f = 0; f < sizeof first / sizeof first[0]; f++)
        for (int k = 0; k < ncols; k++)
            if (!strcmp(cols[k], first[f]) && no < 256) order[no++] = cols[k];
    for (int k = 0; k < ncols && no < 256; k++) {
        int listed = 0;
        for (size_t f = 0; f < sizeof first / sizeof first[0]; f++) listed |= !strcmp(cols[k], first[f]);
        if (!listed) order[no++] = cols[k];
    }
    for (int k = 0; k < no && have < nc; k++) {
        keys[nk] = order[k];
        int d = distinct_tuples(c, cells, nc, keys, nk + 1);
        if (d > have) have = d, nk++;
    }
    return nk;
}

/* plots.gp and its data, then gnuplot: accuracy per cell, accuracy against ms/step and, when both
   are columns, the loss.temperature × solver.lambda heat map. Returns the number of PNGs drawn,
   -127 when gnuplot is not installed, other < 0 on failure */
static int plots(const char *out, const collect *c, cell *cells, int nc, char **cols, int ncols, clpdd_err *e) {
    clpdd_strbuf gp = {0};
    clpdd_sb_printf(&gp, "# written by clpdd report; run: gnuplot plots.gp\n"
                         "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1000,600 } "
                         "else { set terminal png size 1000,600 }\nset datafile separator '\\t'\nset grid ytics\n");
    int longest, groups = 0;
    for (int i = 0; i < nc; i++) groups |= isfinite(cells[i].worst.mean);
    char *keys[256];
    int nkeys = bar_keys(c, cells, nc, cols, ncols < 256 ? ncols : 256, keys);
    if (write_cells_tsv(out, c, cells, nc, keys, nkeys, &longest, e)) goto fail;
    plot_cells(&gp, nc, keys, nkeys, groups, longest);
    double lo = INFINITY, hi = 0; /* the x range: the cells' times, a margin of a factor 1.3 each side (log scale) */
    for (int i = 0; i < nc; i++)
        if (isfinite(cells[i].ms.mean) && cells[i].ms.mean > 0) lo = fmin(lo, cells[i].ms.mean), hi = fmax(hi, cells[i].ms.mean);
    if (hi > 0) clpdd_sb_printf(&gp, "set xrange [%g:%g]\n", lo / 1.3, hi * 1.3);
    clpdd_sb_printf(&gp, "set output 'accuracy-vs-time.png'\nset title 'Top-1 test accuracy against time per distillation step "
                         "(mean ± std over seeds)'\nset xlabel 'ms / step (log scale)'\nset ylabel 'top-1 test accuracy (%%)'\n"
                         "set logscale x\nset offsets 0, 0, graph 0.1, graph 0.05\n"
                         "plot 'plot-cells.tsv' using 5:3:4 with yerrorbars lc rgb '#4c72b0' pt 7 ps 1.2 notitle, '' using 5:3:2 "
                         "with labels noenhanced font ',9' offset 0,1.2 notitle\nunset logscale x\nunset xlabel\nset offsets\n");
    int drawn = 2, ti = -1, li = -1;
    for (int k = 0; k < ncols; k++) {
        if (!strcmp(cols[k], "loss.temperature")) ti = k;
        if (!strcmp(cols[k], "solver.lambda")) li = k;
    }
    if (ti >= 0 && li >= 0) {
        if (plot_tau_lambda(&gp, out, c, cells, nc, ncols, cols[ti], cols[li], e)) goto fail;
        drawn++;
    }
    if (write_text(out, "plots.gp", &gp, e)) goto fail;
    free(gp.s);
    int rc = gnuplot(out, "plots.gp");
    if (rc == 127) return -127;
    if (rc != 0) return clpdd_err_set(e, "gnuplot failed on %s/plots.gp (exit %d)", out, rc), -1;
    return drawn;
fail:
    free(gp.s);
    return -1;
}

/* ---- the report: collect runs → load them → columns → summary.csv → cells → summary.md → plots ---- */

typedef struct report {
    collect c;
    int *ok, n_ok;       /* the finished runs: indices into c.runs */
    char **keys, **cols; /* every config.ini key of the finished runs; those that vary (the columns) */
    int nkeys, ncols;
    char **ckeys, **bkeys; /* what tells cells apart (the columns but the seed); baseline cells (is_baseline_key) */
    int nck, nbk;
    cell *cells, *bcells;
    int nc, nb;
    int groups; /* some finished run reports worst-group accuracy ([data] group): a worst-group column beside every accuracy */
    clpdd_strbuf csv, md;
} report;

/* every run directory under dirs, sorted by path; -1 + message when one of dirs is not a
   directory or none holds a run */
static int collect_runs(collect *c, const char *const *dirs, int n_dirs, clpdd_err *e) {
    g_collect = c;
    for (int i = 0; i < n_dirs; i++) {
        struct stat st;
        if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode)) {
            g_collect = NULL;
            return clpdd_err_set(e, "%s: not a directory", dirs[i]);
        }
        nftw(dirs[i], visit, 32, FTW_PHYS);
    }
    g_collect = NULL;
    if (!c->n) {
        clpdd_strbuf under = {0};
        for (int i = 0; i < n_dirs; i++) clpdd_sb_printf(&under, " %s", dirs[i]);
        clpdd_err_set(e, "no run directory (with metrics.json or error.txt) under%s", under.s);
        free(under.s);
        return -1;
    }
    qsort(c->runs, (size_t)c->n, sizeof *c->runs, by_dir);
    return 0;
}

/* a finished run whose config.ini is that of an earlier one (a copied run directory, the same
   sweep collected twice) is the same run, not another seed: counted once, with a warning */
static void find_duplicates(report *rp, const clpdd_report_opts *o, clpdd_report_result *res) {
    for (int i = 0; i < rp->c.n; i++) {
        run *r = &rp->c.runs[i];
        for (int j = 0; j < i && r->same && r->dup_of < 0; j++) {
            const run *q = &rp->c.runs[j];
            if (q->dup_of < 0 && q->same && !strcmp(q->same, r->same)) r->dup_of = j;
        }
        if (r->dup_of < 0) continue;
        res->duplicates++;
        if (!o->quiet)
            fprintf(stderr, "report: warning: %s has the configuration of %s (config.ini equal but for name, output and "
                            "device): the same run, counted once\n", r->dir, rp->c.runs[r->dup_of].dir);
    }
}

static int load_runs(report *rp, const clpdd_report_opts *o, clpdd_report_result *res, clpdd_err *e) {
    rp->ok = clpdd_xcalloc((size_t)rp->c.n, sizeof *rp->ok);
    for (int i = 0; i < rp->c.n; i++) {
        rp->c.runs[i].dup_of = -1;
        if (load_run(&rp->c.runs[i], e)) return -1;
    }
    find_duplicates(rp, o, res);
    for (int i = 0; i < rp->c.n; i++) {
        if (rp->c.runs[i].error) res->failed++;
        else if (rp->c.runs[i].dup_of < 0) rp->ok[rp->n_ok++] = i;
    }
    res->runs = rp->c.n;
    for (int i = 0; i < rp->n_ok; i++) rp->groups |= isfinite(num(&rp->c.runs[rp->ok[i]].m, "accuracy.worst_group.mean"));
    return 0;
}

/* the keys that vary among the finished runs (their columns), in config.ini order */
static void find_columns(report *rp) {
    const collect *c = &rp->c;
    for (int i = 0; i < rp->n_ok; i++) {
        const run *r = &c->runs[rp->ok[i]];
        for (int k = 0; k < r->n_cfg; k++) {
            int seen = 0;
            for (int j = 0; j < rp->nkeys && !seen; j++) seen = !strcmp(rp->keys[j], r->key[k]);
            if (!seen) {
                rp->keys = realloc(rp->keys, (size_t)(rp->nkeys + 1) * sizeof *rp->keys);
                CLPDD_ASSERT(rp->keys);
                rp->keys[rp->nkeys++] = r->key[k];
            }
        }
    }
    for (int j = 0; j < rp->nkeys; j++) {
        const char *key = rp->keys[j];
        if (!strcmp(key, "experiment.name") || !strcmp(key, "experiment.output")) continue;
        /* a column when two runs that have the key give it different values; a plugin's own keys
           (present only where it is chosen) otherwise only repeat the plugin's name column */
        size_t kl = strlen(key);
        int identity = kl > 5 && !strcmp(key + kl - 5, ".name");
        const char *first = NULL;
        int varies = 0;
        for (int i = 0; i < rp->n_ok && !varies; i++) {
            const char *v = identity ? cval(&c->runs[rp->ok[i]], key) : cfg(&c->runs[rp->ok[i]], key);
            if (!v) continue;
            if (!first) first = v;
            else varies = strcmp(first, v) != 0;
        }
        if (varies) {
            rp->cols = realloc(rp->cols, (size_t)(rp->ncols + 1) * sizeof *rp->cols);
            CLPDD_ASSERT(rp->cols);
            rp->cols[rp->ncols++] = rp->keys[j];
        }
    }
}

/* summary.csv: one row per run, finished or failed */
static void summary_csv(report *rp) {
    clpdd_strbuf *csv = &rp->csv;
    clpdd_sb_printf(csv, "run");
    for (int k = 0; k < rp->ncols; k++) clpdd_sb_printf(csv, ",%s", rp->cols[k]);
    clpdd_sb_printf(csv, ",status,solver,loss,backbone,ipc,seed,protocol,accuracy_mean,accuracy_std,accuracy_val_mean,"
                         "random_real_mean,random_real_std,full_data_mean,full_data_std,solver_classifier,ms_per_step,"
                         "peak_host_mb,peak_device_mb,total_s,%sdevice,error\n",
                    rp->groups ? "accuracy_worst_group,random_real_worst_group,full_data_worst_group,accuracy_group_mean," : "");
    const char *gnums[] = {"accuracy.worst_group.mean", "baselines.random_real.worst_group.mean",
                           "baselines.full_data.worst_group.mean", "accuracy.group_mean.mean"};
    const char *nums[] = {"accuracy.mean", "accuracy.std", "accuracy.val.mean", "baselines.random_real.mean",
                          "baselines.random_real.std", "baselines.full_data.mean", "baselines.full_data.std",
                          "solver_diagnostic.accuracy", "timing.ms_per_step", "memory.peak_host_mb",
                          "memory.peak_device_mb", "timing.total_s"};
    for (int i = 0; i < rp->c.n; i++) {
        const run *r = &rp->c.runs[i];
        const leaves *m = &r->m;
        csv_field(csv, r->dir);
        for (int k = 0; k < rp->ncols; k++) {
            clpdd_sb_printf(csv, ",");
            csv_field(csv, cfg(r, rp->cols[k]));
        }
        clpdd_sb_printf(csv, ",%s,", r->error ? "failed" : r->dup_of >= 0 ? "duplicate" : "ok");
        csv_field(csv, str(m, "method.solver"));
        clpdd_sb_printf(csv, ",");
        csv_field(csv, str(m, "method.loss"));
        clpdd_sb_printf(csv, ",");
        csv_field(csv, str(m, "method.backbone"));
        csv_num(csv, num(m, "method.ipc"));
        csv_num(csv, num(m, "method.seed"));
        clpdd_sb_printf(csv, ",");
        csv_field(csv, str(m, "accuracy.protocol") ? str(m, "accuracy.protocol") : str(m, "eval.protocol"));
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++) csv_num(csv, num(m, nums[k]));
        for (size_t k = 0; rp->groups && k < sizeof gnums / sizeof *gnums; k++) csv_num(csv, num(m, gnums[k]));
        clpdd_sb_printf(csv, ",");
        csv_field(csv, str(m, "device"));
        clpdd_sb_printf(csv, ",");
        if (r->dup_of >= 0) {
            char *why = NULL;
            CLPDD_ASSERT(asprintf(&why, "the same run as %s: counted once", rp->c.runs[r->dup_of].dir) >= 0);
            csv_field(csv, why);
            free(why);
        } else {
            csv_field(csv, r->error);
        }
        clpdd_sb_printf(csv, "\n");
    }
}

/* cells: the finished runs grouped by the columns but the seed; baseline cells: by the columns
   that change a baseline */
static void make_cells(report *rp) {
    size_t n = (size_t)(rp->ncols ? rp->ncols : 1);
    rp->ckeys = clpdd_xcalloc(n, sizeof *rp->ckeys);
    rp->bkeys = clpdd_xcalloc(n, sizeof *rp->bkeys);
    for (int k = 0; k < rp->ncols; k++) {
        if (strcmp(rp->cols[k], "experiment.seed") == 0) continue;
        rp->ckeys[rp->nck++] = rp->cols[k];
        if (is_baseline_key(rp->cols[k])) rp->bkeys[rp->nbk++] = rp->cols[k];
    }
    rp->nc = rp->n_ok ? group(&rp->c, rp->ok, rp->n_ok, rp->ckeys, rp->nck, &rp->cells) : 0;
    rp->nb = rp->n_ok ? group(&rp->c, rp->ok, rp->n_ok, rp->bkeys, rp->nbk, &rp->bcells) : 0;
}

static int is_column(const report *rp, const char *key) {
    for (int k = 0; k < rp->ncols; k++)
        if (!strcmp(rp->cols[k], key)) return 1;
    return 0;
}

/* summary.md's opening: the title, what was counted, the probe protocol, what every run shares */
static void md_intro(report *rp, const char *const *dirs, int n_dirs, const char *title, int failed, int dups) {
    clpdd_strbuf *md = &rp->md;
    if (title) clpdd_sb_printf(md, "# %s\n\n", title);
    else {
        clpdd_sb_printf(md, "# Summary of");
        for (int i = 0; i < n_dirs; i++) clpdd_sb_printf(md, " %s", dirs[i]);
        clpdd_sb_printf(md, "\n\n");
    }
    const run *r0 = rp->n_ok ? &rp->c.runs[rp->ok[0]] : NULL;
    clpdd_sb_printf(md, "%d run%s (%d finished, %d failed", rp->c.n, rp->c.n == 1 ? "" : "s", rp->n_ok, failed);
    if (dups) clpdd_sb_printf(md, ", %d the same run as another: counted once", dups);
    clpdd_sb_printf(md, ") in %d cell%s. Top-1 test accuracy in %%, mean ± std over the cell's runs (experiment seeds) when it "
                        "has more than one; with one run, ± its std over probe seeds when it had several. ",
                    rp->nc, rp->nc == 1 ? "" : "s");
    if (r0) {
        const char *proto = str(&r0->m, "accuracy.protocol") ? str(&r0->m, "accuracy.protocol") : str(&r0->m, "eval.protocol");
        if (proto && !strcmp(proto, "probe"))
            clpdd_sb_printf(md, "Probe: `probe` protocol (converged L-BFGS logistic regression, L2 chosen on the validation "
                                "split; %g draws of random real images). ", num(&r0->m, "eval.seeds"));
        else
            clpdd_sb_printf(md, "Probe: `%s` protocol, %g seeds x %g epochs. ", proto ? proto : "?", num(&r0->m, "eval.seeds"),
                            num(&r0->m, "eval.epochs"));
    }
    if (rp->groups)
        clpdd_sb_printf(md, "Worst group: the lowest test accuracy over the (label, %s) groups ([data] group), mean ± std "
                            "as the accuracy; the validation selection is on `%s` accuracy. ",
                        r0 && str(&r0->m, "groups.key") ? str(&r0->m, "groups.key") : "group",
                        r0 && str(&r0->m, "groups.select") ? str(&r0->m, "groups.select") : "average");
    clpdd_sb_printf(md, "**Bold**: the best cell of the column. Per-run numbers: summary.csv.\n\n");
    if (r0 && r0->n_cfg) {
        clpdd_sb_printf(md, "Fixed in every run:");
        const char *show[] = {"data.dataset", "data.train_limit", "data.test_limit", "backbone.name", "backbone.weights",
                              "solver.name", "loss.name", "distill.ipc", "distill.steps", "distill.lr", "distill.real_batch",
                              "eval.protocol", "eval.seeds", "eval.epochs"};
        int any = 0;
        for (size_t s = 0; s < sizeof show / sizeof *show; s++) {
            const char *v = cfg(r0, show[s]);
            if (!is_column(rp, show[s]) && v) clpdd_sb_printf(md, "%s `%s = %s`", any++ ? "," : "", show[s], v);
        }
        clpdd_sb_printf(md, "%s\n\n", any ? "." : " -");
    }
}

/* the baseline rows under the cells' table: random real images, then the full-data probe; extra:
   the learned-scalar columns they have no value in */
static void md_baseline_rows(report *rp, int extra) {
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < rp->nb; i++) {
            stat2 s = which == 0 ? rp->bcells[i].random : rp->bcells[i].full;
            stat2 w = which == 0 ? rp->bcells[i].rworst : rp->bcells[i].fworst;
            if (!isfinite(s.mean)) continue;
            const run *r = &rp->c.runs[rp->bcells[i].runs[0]];
            clpdd_sb_printf(&rp->md, "| %s |", which == 0 ? "random real images" : "full-data probe");
            for (int k = 0; k < rp->nck; k++) {
                int in = 0;
                for (int j = 0; j < rp->nbk; j++) in |= !strcmp(rp->bkeys[j], rp->ckeys[k]);
                clpdd_sb_printf(&rp->md, " %s |", in ? cval(r, rp->ckeys[k]) : "·");
            }
            clpdd_sb_printf(&rp->md, " %d |", s.n);
            pct(&rp->md, s, 0);
            if (rp->groups) pct(&rp->md, w, 0);
            clpdd_sb_printf(&rp->md, " - | - | - |");
            for (int k = 0; k < extra; k++) clpdd_sb_printf(&rp->md, " - |");
            clpdd_sb_printf(&rp->md, "\n");
        }
}

/* the nearest real images of each cell's distilled sets ([eval] baseline_neighbors): a baseline of
   the cell itself, so its row names every key of the cell; the number of rows written */
static int md_neighbor_rows(report *rp, int extra) {
    int rows = 0;
    for (int i = 0; i < rp->nc; i++) {
        const cell *cl = &rp->cells[i];
        if (!isfinite(cl->nb.mean)) continue;
        const run *r = &rp->c.runs[cl->runs[0]];
        clpdd_sb_printf(&rp->md, "| nearest real images |");
        for (int k = 0; k < rp->nck; k++) clpdd_sb_printf(&rp->md, " %s |", cval(r, rp->ckeys[k]));
        clpdd_sb_printf(&rp->md, " %d |", cl->nb.n);
        pct(&rp->md, cl->nb, 0);
        if (rp->groups) pct(&rp->md, cl->nworst, 0);
        clpdd_sb_printf(&rp->md, " - | - | - |");
        for (int k = 0; k < extra; k++) clpdd_sb_printf(&rp->md, " - |");
        clpdd_sb_printf(&rp->md, "\n");
        rows++;
    }
    return rows;
}

/* the cells' table: one row per cell, the best of each column in bold, then the baselines */
static void md_cells(report *rp) {
    clpdd_strbuf *md = &rp->md;
    const cell *cells = rp->cells;
    int nc = rp->nc;
    char lab[256];
    int ba = best(cells, nc, offsetof(cell, acc), 1), bd = best(cells, nc, offsetof(cell, diag), 1);
    int bm = best(cells, nc, offsetof(cell, ms), 0), br = best(cells, nc, offsetof(cell, rss), 0);
    int bw = best(cells, nc, offsetof(cell, worst), 1);
    int lt = any_learned(cells, nc, offsetof(cell, tau)), ll = any_learned(cells, nc, offsetof(cell, lambda));
    int lh = any_learned(cells, nc, offsetof(cell, hard));
    clpdd_sb_printf(md, "| row |");
    for (int k = 0; k < rp->nck; k++) clpdd_sb_printf(md, " %s |", label_of(rp->ckeys[k], rp->ckeys, rp->nck, lab, sizeof lab));
    clpdd_sb_printf(md, " runs | accuracy %% |%s solver classifier %% | ms/step | peak RSS MB |%s%s%s\n|---|",
                    rp->groups ? " worst group % |" : "", lt ? " learned temperature |" : "", ll ? " learned lambda |" : "",
                    lh ? " hard-label accuracy % |" : "");
    for (int k = 0; k < rp->nck; k++) clpdd_sb_printf(md, "---|");
    clpdd_sb_printf(md, "---|---|---|---|---|%s%s%s%s\n", rp->groups ? "---|" : "", lt ? "---|" : "", ll ? "---|" : "",
                    lh ? "---|" : "");
    for (int i = 0; i < nc; i++) {
        const run *r = &rp->c.runs[cells[i].runs[0]];
        clpdd_sb_printf(md, "| distilled |");
        for (int k = 0; k < rp->nck; k++) clpdd_sb_printf(md, " %s |", cval(r, rp->ckeys[k]));
        clpdd_sb_printf(md, " %d |", cells[i].n);
        pct(md, cells[i].acc, i == ba);
        if (rp->groups) pct(md, cells[i].worst, i == bw);
        stat2 d = cells[i].diag;
        d.std = NAN;
        pct(md, d, i == bd);
        plain(md, cells[i].ms, "%.2f", i == bm);
        plain(md, cells[i].rss, "%.0f", i == br);
        if (lt) plain(md, cells[i].tau, "%.4g", 0);
        if (ll) plain(md, cells[i].lambda, "%.4g", 0);
        if (lh) pct(md, cells[i].hard, 0);
        clpdd_sb_printf(md, "\n");
    }
    md_baseline_rows(rp, lt + ll + lh);
    int neighbors = md_neighbor_rows(rp, lt + ll + lh);
    clpdd_sb_printf(md, "\nBaseline rows: the same probe on ipc random real training images per class (a fresh draw "
                        "per probe seed) and on every real training feature; mean ± std over the runs%s (a row's "
                        "runs all report it; `·`: the key does not change it).",
                    is_column(rp, "experiment.seed") ? " of all seeds" : "");
    if (neighbors)
        clpdd_sb_printf(md, " Nearest real images: per distilled image of the cell's runs, the real training image of "
                            "its class nearest in feature space (none twice), scored by the same probe.");
    clpdd_sb_printf(md, "\n\n");
}

/* one row per method (the cells' method keys, mk): the cell with the best validation accuracy
   among the method's cells, its hyper-parameters (hk), validation and test accuracy */
static void md_selected_rows(report *rp, char **mk, int nmk, char **hk, int nhk) {
    clpdd_strbuf *md = &rp->md;
    const cell *cells = rp->cells;
    char lab[256];
    int *done = clpdd_xcalloc((size_t)rp->nc, sizeof *done);
    for (int i = 0; i < rp->nc; i++) {
        if (done[i]) continue;
        const run *ri = &rp->c.runs[cells[i].runs[0]];
        int sel = -1;
        for (int j = i; j < rp->nc; j++) {
            const run *rj = &rp->c.runs[cells[j].runs[0]];
            int same = 1;
            for (int k = 0; k < nmk && same; k++) same = !strcmp(cval(ri, mk[k]), cval(rj, mk[k]));
            if (!same) continue;
            done[j] = 1;
            if (sel < 0 || cells[j].val.mean > cells[sel].val.mean) sel = j;
        }
        clpdd_sb_printf(md, "| ");
        for (int k = 0; k < nmk; k++) clpdd_sb_printf(md, "%s | ", cval(ri, mk[k]));
        const run *rs = &rp->c.runs[cells[sel].runs[0]];
        for (int k = 0; k < nhk; k++)
            clpdd_sb_printf(md, "%s%s=%s", k ? ", " : "", label_of(hk[k], rp->ckeys, rp->nck, lab, sizeof lab), cval(rs, hk[k]));
        clpdd_sb_printf(md, "%s |", nhk ? "" : "(no hyper-parameter varies)");
        pct(md, cells[sel].val, 0);
        pct(md, cells[sel].acc, 0);
        if (rp->groups) pct(md, cells[sel].worst, 0);
        clpdd_sb_printf(md, "\n");
    }
    free(done);
}

/* hyper-parameters selected on validation, only where every finished run has a validation score */
static void md_selection(report *rp) {
    clpdd_strbuf *md = &rp->md;
    int all_val = rp->n_ok > 0;
    for (int i = 0; i < rp->n_ok; i++) all_val &= isfinite(num(&rp->c.runs[rp->ok[i]].m, "accuracy.val.mean"));
    clpdd_sb_printf(md, "## Hyper-parameter selection\n\n");
    if (!all_val || !rp->nc) {
        clpdd_sb_printf(md, "These runs carry no validation score (metrics.json accuracy.val), so no hyper-parameters were "
                            "selected: the table reports test accuracy for every cell, and picking the best cell from it "
                            "would be selection on the test set.\n\n");
        return;
    }
    size_t n = (size_t)(rp->nck ? rp->nck : 1);
    char **mk = clpdd_xcalloc(n, sizeof *mk), **hk = clpdd_xcalloc(n, sizeof *hk);
    int nmk = 0, nhk = 0;
    char lab[256];
    for (int k = 0; k < rp->nck; k++) {
        if (is_method_key(rp->ckeys[k])) mk[nmk++] = rp->ckeys[k];
        else hk[nhk++] = rp->ckeys[k];
    }
    clpdd_sb_printf(md, "Every run has a validation score: per method, the cell with the best validation accuracy is "
                        "selected and its test accuracy reported.\n\n| ");
    for (int k = 0; k < nmk; k++) clpdd_sb_printf(md, "%s | ", label_of(mk[k], rp->ckeys, rp->nck, lab, sizeof lab));
    clpdd_sb_printf(md, "selected | validation %% | test %% |%s\n|", rp->groups ? " test worst group % |" : "");
    for (int k = 0; k < nmk + 3 + rp->groups; k++) clpdd_sb_printf(md, "---|");
    clpdd_sb_printf(md, "\n");
    md_selected_rows(rp, mk, nmk, hk, nhk);
    free(mk), free(hk);
    clpdd_sb_printf(md, "\n");
}

/* the failed runs with the first line of their error.txt */
static void md_failed(report *rp, int failed) {
    if (!failed) return;
    clpdd_sb_printf(&rp->md, "## Failed runs (%d)\n\n", failed);
    for (int i = 0; i < rp->c.n; i++)
        if (rp->c.runs[i].error) {
            char first[600];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(rp->c.runs[i].error, "\n"), rp->c.runs[i].error);
            clpdd_sb_printf(&rp->md, "- `%s`: %s\n", rp->c.runs[i].dir, first);
        }
    clpdd_sb_printf(&rp->md, "\n");
}

/* the runs counted once: each with the run it repeats */
static void md_duplicates(report *rp, int dups) {
    if (!dups) return;
    clpdd_sb_printf(&rp->md, "## The same run twice (%d)\n\nThese have the configuration (config.ini but for name, output "
                             "and device) of an earlier run and are not counted:\n\n", dups);
    for (int i = 0; i < rp->c.n; i++)
        if (rp->c.runs[i].dup_of >= 0)
            clpdd_sb_printf(&rp->md, "- `%s`: the same run as `%s`\n", rp->c.runs[i].dir, rp->c.runs[rp->c.runs[i].dup_of].dir);
    clpdd_sb_printf(&rp->md, "\n");
}

/* draw the plots (when asked and there are cells) and say in summary.md what came of it */
static void md_plots(report *rp, const clpdd_report_opts *o, clpdd_report_result *res) {
    clpdd_strbuf *md = &rp->md;
    clpdd_sb_printf(md, "## Plots\n\n");
    if (!o->plots || !rp->nc) {
        clpdd_sb_printf(md, "Not drawn (%s).\n", rp->nc ? "--no-plots" : "no finished run");
        return;
    }
    clpdd_err pe = {{0}};
    int p = plots(o->out_dir, &rp->c, rp->cells, rp->nc, rp->ckeys, rp->nck, &pe);
    if (p == -127) {
        clpdd_sb_printf(md, "No plots: gnuplot is not installed (Debian: `apt-get install gnuplot-nox`, then "
                            "`clpdd report` again).\n");
    } else if (p < 0) {
        clpdd_sb_printf(md, "No plots: %s.\n", pe.msg);
        if (!o->quiet) fprintf(stderr, "report: %s\n", pe.msg);
    } else {
        res->plots = p;
        clpdd_sb_printf(md, "![accuracy per cell](accuracy.png)\n\n![accuracy against ms/step](accuracy-vs-time.png)\n");
        if (p > 2) clpdd_sb_printf(md, "\n![accuracy over temperature x lambda](tau-lambda.png)\n");
    }
}

static void report_free(report *rp) {
    free(rp->ckeys), free(rp->bkeys);
    free_cells(rp->cells, rp->nc);
    free_cells(rp->bcells, rp->nb);
    free(rp->csv.s), free(rp->md.s);
    free(rp->cols), free(rp->keys);
    free(rp->ok);
    for (int i = 0; i < rp->c.n; i++) run_free(&rp->c.runs[i]);
    free(rp->c.runs);
}

int clpdd_report(const char *const *dirs, int n_dirs, const clpdd_report_opts *o, clpdd_report_result *res, clpdd_err *e) {
    memset(res, 0, sizeof *res);
    report rp = {0};
    int rc = -1;
    if (collect_runs(&rp.c, dirs, n_dirs, e) || load_runs(&rp, o, res, e)) goto out;
    find_columns(&rp);
    summary_csv(&rp);
    make_cells(&rp);
    res->cells = rp.nc;
    md_intro(&rp, dirs, n_dirs, o->title, res->failed, res->duplicates);
    if (rp.nc) md_cells(&rp);
    md_selection(&rp);
    md_failed(&rp, res->failed);
    md_duplicates(&rp, res->duplicates);
    if (clpdd_mkdirs(o->out_dir, e) || write_text(o->out_dir, "summary.csv", &rp.csv, e)) goto out;
    md_plots(&rp, o, res);
    if (write_text(o->out_dir, "summary.md", &rp.md, e)) goto out;
    if (!o->quiet)
        fprintf(stderr, "report: %d runs (%d failed, %d counted once as the same run as another), %d cells -> %s/summary.{md,csv}%s\n",
                rp.c.n, res->failed, res->duplicates, rp.nc, o->out_dir, res->plots ? " + plots" : "");
    rc = 0;
out:
    report_free(&rp);
    return rc;
}
