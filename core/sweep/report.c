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

#include "io/json.h"

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
} run;

typedef struct collect {
    run *runs;
    int n;
} collect;

static collect *g_collect; /* nftw has no user pointer */

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)f;
    if (flag != FTW_D) return 0;
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.json", path);
    int has_m = exists(p);
    snprintf(p, sizeof p, "%s/error.txt", path);
    if (!has_m && !exists(p)) return 0;
    collect *c = g_collect;
    c->runs = realloc(c->runs, (size_t)(c->n + 1) * sizeof *c->runs);
    CLPDD_ASSERT(c->runs);
    memset(&c->runs[c->n], 0, sizeof c->runs[c->n]);
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

/* config.ini as written by clpdd (resolved: "key = value", maybe "    ; default") */
static void read_config(run *r, const char *text) {
    char section[128] = "";
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        p = nl ? nl + 1 : NULL;
        char *mark = strstr(line, "    ;");
        if (mark) *mark = 0;
        char *a = line;
        while (isspace((unsigned char)*a)) a++;
        size_t l = strlen(a);
        while (l && isspace((unsigned char)a[l - 1])) a[--l] = 0;
        if (!*a || *a == ';' || *a == '#') continue;
        if (*a == '[' && a[l - 1] == ']') {
            snprintf(section, sizeof section, "%.*s", (int)(l - 2), a + 1);
            continue;
        }
        char *eq = strchr(a, '=');
        if (!eq) continue;
        char *ke = eq;
        while (ke > a && isspace((unsigned char)ke[-1])) ke--;
        char *v = eq + 1;
        while (isspace((unsigned char)*v)) v++;
        char key[400];
        snprintf(key, sizeof key, "%s.%.*s", section, (int)(ke - a), a);
        cfg_put(r, key, v);
    }
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
    if (exists(p) && clpdd_read_file(p, &data, &len, e) == 0) {
        read_config(r, (const char *)data);
        free(data);
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
    free(r->key), free(r->val), free(r->error), free(r->dir);
}

/* ---- cells ---- */

typedef struct stat2 {
    double mean, std;
    int n; /* runs with the value */
} stat2;

typedef struct cell {
    int *runs, n;
    stat2 acc, val, random, full, diag, ms, rss;
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
    cl->ms = over(c, cl->runs, cl->n, "timing.ms_per_step", NULL);
    if (cl->ms.n && !(over(c, cl->runs, cl->n, "timing.steps", NULL).mean > 0)) cl->ms.mean = cl->ms.std = NAN; /* eval only */
    cl->rss = over(c, cl->runs, cl->n, "memory.peak_host_mb", NULL);
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

/* returns the number of PNGs drawn, -127 when gnuplot is not installed, other < 0 on failure */
static int plots(const char *out, const collect *c, cell *cells, int nc, char **cols, int ncols, clpdd_err *e) {
    (void)c;
    clpdd_strbuf gp = {0}, dat = {0};
    char lab[256];
    clpdd_sb_printf(&gp, "# written by clpdd report; run: gnuplot plots.gp\n"
                         "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1000,600 } "
                         "else { set terminal png size 1000,600 }\nset datafile separator '\\t'\nset grid ytics\n");
    /* accuracy per cell */
    for (int i = 0; i < nc; i++) {
        clpdd_strbuf name = {0};
        for (int k = 0; k < ncols; k++)
            clpdd_sb_printf(&name, "%s%s=%s", k ? "," : "", label_of(cols[k], cols, ncols, lab, sizeof lab),
                            cval(&c->runs[cells[i].runs[0]], cols[k]));
        for (char *p = name.s; p && *p; p++)
            if (*p == '\t' || *p == '\n') *p = ' ';
        clpdd_sb_printf(&dat, "%d\t%s\t%.6f\t%.6f\t%.6f\t%.6f\n", i, name.s ? name.s : "all", 100 * cells[i].acc.mean,
                        isfinite(cells[i].acc.std) ? 100 * cells[i].acc.std : 0.0, cells[i].ms.mean, 100 * cells[i].random.mean);
        free(name.s);
    }
    if (write_text(out, "plot-cells.tsv", &dat, e)) goto fail;
    clpdd_sb_printf(&gp, "set output 'accuracy.png'\nset title 'Accuracy per cell (mean ± std over seeds; dashed: random real images)'\n"
                         "set ylabel 'top-1 accuracy (%%)'\nset xtics rotate by -35 left noenhanced font ',8'\n"
                         "set bmargin 12\nset xrange [-0.6:%d.6]\nset boxwidth 0.6\nset style fill solid 0.4\n"
                         "plot 'plot-cells.tsv' using 1:3:xtic(2) with boxes notitle, '' using 1:3:4 with yerrorbars lc black pt 7 notitle, "
                         "'' using 1:6 with points pt 2 lc rgb 'red' title 'random real'\n",
                    nc - 1);
    clpdd_sb_printf(&gp, "set output 'accuracy-vs-time.png'\nset title 'Accuracy against time per step'\nset xlabel 'ms / step'\n"
                         "set ylabel 'top-1 accuracy (%%)'\nset xtics norotate\nset bmargin\nset autoscale x\nset logscale x\n"
                         "plot 'plot-cells.tsv' using 5:3:4 with yerrorbars pt 7 notitle, '' using 5:3:2 with labels "
                         "noenhanced font ',7' offset 0,1 notitle\nunset logscale x\nunset xlabel\n");
    int drawn = 2;
    /* τ × λ heat map */
    int ti = -1, li = -1;
    for (int k = 0; k < ncols; k++) {
        if (!strcmp(cols[k], "loss.temperature")) ti = k;
        if (!strcmp(cols[k], "solver.lambda")) li = k;
    }
    if (ti >= 0 && li >= 0) {
        char *tv[64], *lv[64];
        int nt = 0, nl = 0;
        for (int i = 0; i < nc; i++) {
            const run *r = &c->runs[cells[i].runs[0]];
            const char *t = cfg(r, cols[ti]), *l = cfg(r, cols[li]);
            if (!t || !l) continue;
            int ft = 0, fl = 0;
            for (int j = 0; j < nt; j++) ft |= !strcmp(tv[j], t);
            for (int j = 0; j < nl; j++) fl |= !strcmp(lv[j], l);
            if (!ft && nt < 64) tv[nt++] = (char *)t;
            if (!fl && nl < 64) lv[nl++] = (char *)l;
        }
        /* sort numerically */
        for (int a = 0; a < nt; a++)
            for (int b = a + 1; b < nt; b++)
                if (atof(tv[b]) < atof(tv[a])) { char *x = tv[a]; tv[a] = tv[b]; tv[b] = x; }
        for (int a = 0; a < nl; a++)
            for (int b = a + 1; b < nl; b++)
                if (atof(lv[b]) < atof(lv[a])) { char *x = lv[a]; lv[a] = lv[b]; lv[b] = x; }
        clpdd_strbuf hm = {0};
        for (int a = 0; a < nl; a++)
            for (int b = 0; b < nt; b++) {
                double sum = 0;
                int k = 0;
                for (int i = 0; i < nc; i++) {
                    const run *r = &c->runs[cells[i].runs[0]];
                    const char *t = cfg(r, cols[ti]), *l = cfg(r, cols[li]);
                    if (t && l && !strcmp(t, tv[b]) && !strcmp(l, lv[a]) && isfinite(cells[i].acc.mean)) sum += cells[i].acc.mean, k++;
                }
                if (k) clpdd_sb_printf(&hm, "%d\t%d\t%.4f\n", b, a, 100 * sum / k);
                else clpdd_sb_printf(&hm, "%d\t%d\tNaN\n", b, a);
            }
        if (write_text(out, "plot-tau-lambda.tsv", &hm, e)) {
            free(hm.s);
            goto fail;
        }
        free(hm.s);
        clpdd_sb_printf(&gp, "set output 'tau-lambda.png'\nset title 'Accuracy (%%) over loss.temperature x solver.lambda%s'\n"
                             "set xlabel 'loss.temperature'\nset ylabel 'solver.lambda'\nset xtics (",
                        ncols > 3 ? " (mean over the other keys)" : "");
        for (int b = 0; b < nt; b++) {
            clpdd_sb_printf(&gp, "%s", b ? ", " : "");
            gp_label(&gp, tv[b]);
            clpdd_sb_printf(&gp, " %d", b);
        }
        clpdd_sb_printf(&gp, ")\nset ytics (");
        for (int a = 0; a < nl; a++) {
            clpdd_sb_printf(&gp, "%s", a ? ", " : "");
            gp_label(&gp, lv[a]);
            clpdd_sb_printf(&gp, " %d", a);
        }
        clpdd_sb_printf(&gp, ")\nset xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\nset palette rgbformulae 33,13,10\nunset grid\n"
                             "plot 'plot-tau-lambda.tsv' using 1:2:3 with image notitle, '' using 1:2:(sprintf('%%.1f', $3)) "
                             "with labels notitle\n",
                        nt - 1, nl - 1);
        drawn++;
    }
    if (write_text(out, "plots.gp", &gp, e)) goto fail;
    free(gp.s), free(dat.s);
    int rc = gnuplot(out, "plots.gp");
    if (rc == 127) return -127;
    if (rc != 0) return clpdd_err_set(e, "gnuplot failed on %s/plots.gp (exit %d)", out, rc), -1;
    return drawn;
fail:
    free(gp.s), free(dat.s);
    return -1;
}

/* ---- the report ---- */

int clpdd_report(const char *const *dirs, int n_dirs, const clpdd_report_opts *o, clpdd_report_result *res, clpdd_err *e) {
    memset(res, 0, sizeof *res);
    collect c = {0};
    g_collect = &c;
    for (int i = 0; i < n_dirs; i++) {
        struct stat st;
        if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode)) {
            g_collect = NULL;
            for (int j = 0; j < c.n; j++) run_free(&c.runs[j]);
            free(c.runs);
            return clpdd_err_set(e, "%s: not a directory", dirs[i]);
        }
        nftw(dirs[i], visit, 32, FTW_PHYS);
    }
    g_collect = NULL;
    int rc = -1;
    int *ok = clpdd_xcalloc((size_t)(c.n ? c.n : 1), sizeof *ok), n_ok = 0;
    char **cols = NULL, **keys = NULL;
    int ncols = 0, nkeys = 0;
    cell *cells = NULL, *bcells = NULL;
    int nc = 0, nb = 0;
    clpdd_strbuf csv = {0}, md = {0};
    if (!c.n) {
        clpdd_err_set(e, "no run directory (with metrics.json or error.txt) under");
        for (int i = 0; i < n_dirs; i++) clpdd_sb_printf(&csv, " %s", dirs[i]);
        clpdd_err_set(e, "no run directory (with metrics.json or error.txt) under%s", csv.s);
        goto out;
    }
    qsort(c.runs, (size_t)c.n, sizeof *c.runs, by_dir);
    for (int i = 0; i < c.n; i++) {
        if (load_run(&c.runs[i], e)) goto out;
        if (!c.runs[i].error) ok[n_ok++] = i;
        else res->failed++;
    }
    res->runs = c.n;

    /* the keys that vary among the finished runs (their columns), in config.ini order */
    for (int i = 0; i < n_ok; i++) {
        const run *r = &c.runs[ok[i]];
        for (int k = 0; k < r->n_cfg; k++) {
            int seen = 0;
            for (int j = 0; j < nkeys && !seen; j++) seen = !strcmp(keys[j], r->key[k]);
            if (!seen) {
                keys = realloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
                keys[nkeys++] = r->key[k];
            }
        }
    }
    for (int j = 0; j < nkeys; j++) {
        if (!strcmp(keys[j], "experiment.name") || !strcmp(keys[j], "experiment.output")) continue;
        /* a column when two runs that have the key give it different values; a plugin's own keys
           (present only where it is chosen) otherwise only repeat the plugin's name column */
        size_t kl = strlen(keys[j]);
        int identity = kl > 5 && !strcmp(keys[j] + kl - 5, ".name");
        const char *first = NULL;
        int varies = 0;
        for (int i = 0; i < n_ok && !varies; i++) {
            const char *v = identity ? cval(&c.runs[ok[i]], keys[j]) : cfg(&c.runs[ok[i]], keys[j]);
            if (!v) continue;
            if (!first) first = v;
            else varies = strcmp(first, v) != 0;
        }
        if (varies) {
            cols = realloc(cols, (size_t)(ncols + 1) * sizeof *cols);
            cols[ncols++] = keys[j];
        }
    }

    /* summary.csv */
    char lab[256];
    clpdd_sb_printf(&csv, "run");
    for (int k = 0; k < ncols; k++) clpdd_sb_printf(&csv, ",%s", cols[k]);
    clpdd_sb_printf(&csv, ",status,solver,loss,backbone,ipc,seed,protocol,accuracy_mean,accuracy_std,accuracy_val_mean,"
                          "random_real_mean,random_real_std,full_data_mean,full_data_std,solver_classifier,ms_per_step,"
                          "peak_host_mb,peak_device_mb,total_s,device,error\n");
    for (int i = 0; i < c.n; i++) {
        const run *r = &c.runs[i];
        const leaves *m = &r->m;
        csv_field(&csv, r->dir);
        for (int k = 0; k < ncols; k++) {
            clpdd_sb_printf(&csv, ",");
            csv_field(&csv, cfg(r, cols[k]));
        }
        clpdd_sb_printf(&csv, ",%s,", r->error ? "failed" : "ok");
        csv_field(&csv, str(m, "method.solver"));
        clpdd_sb_printf(&csv, ",");
        csv_field(&csv, str(m, "method.loss"));
        clpdd_sb_printf(&csv, ",");
        csv_field(&csv, str(m, "method.backbone"));
        csv_num(&csv, num(m, "method.ipc"));
        csv_num(&csv, num(m, "method.seed"));
        clpdd_sb_printf(&csv, ",");
        csv_field(&csv, str(m, "accuracy.protocol") ? str(m, "accuracy.protocol") : str(m, "eval.protocol"));
        const char *nums[] = {"accuracy.mean", "accuracy.std", "accuracy.val.mean", "baselines.random_real.mean",
                              "baselines.random_real.std", "baselines.full_data.mean", "baselines.full_data.std",
                              "solver_diagnostic.accuracy", "timing.ms_per_step", "memory.peak_host_mb",
                              "memory.peak_device_mb", "timing.total_s"};
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++) csv_num(&csv, num(m, nums[k]));
        clpdd_sb_printf(&csv, ",");
        csv_field(&csv, str(m, "device"));
        clpdd_sb_printf(&csv, ",");
        csv_field(&csv, r->error);
        clpdd_sb_printf(&csv, "\n");
    }

    /* cells: the columns but the seed */
    char **ckeys = clpdd_xcalloc((size_t)(ncols ? ncols : 1), sizeof *ckeys), **bkeys = clpdd_xcalloc((size_t)(ncols ? ncols : 1), sizeof *bkeys);
    int nck = 0, nbk = 0;
    for (int k = 0; k < ncols; k++) {
        if (strcmp(cols[k], "experiment.seed") == 0) continue;
        ckeys[nck++] = cols[k];
        if (is_baseline_key(cols[k])) bkeys[nbk++] = cols[k];
    }
    nc = n_ok ? group(&c, ok, n_ok, ckeys, nck, &cells) : 0;
    nb = n_ok ? group(&c, ok, n_ok, bkeys, nbk, &bcells) : 0;
    res->cells = nc;

    /* summary.md */
    if (o->title) clpdd_sb_printf(&md, "# %s\n\n", o->title);
    else {
        clpdd_sb_printf(&md, "# Summary of");
        for (int i = 0; i < n_dirs; i++) clpdd_sb_printf(&md, " %s", dirs[i]);
        clpdd_sb_printf(&md, "\n\n");
    }
    int seeds_vary = 0;
    for (int k = 0; k < ncols; k++) seeds_vary |= !strcmp(cols[k], "experiment.seed");
    const run *r0 = n_ok ? &c.runs[ok[0]] : NULL;
    clpdd_sb_printf(&md, "%d run%s (%d finished, %d failed) in %d cell%s. Top-1 test accuracy in %%, mean ± std over the "
                         "cell's runs (experiment seeds) when it has more than one; with one run, ± its std over probe seeds when it had several. ",
                    c.n, c.n == 1 ? "" : "s", n_ok, res->failed, nc, nc == 1 ? "" : "s");
    if (r0)
    {
        const char *proto = str(&r0->m, "accuracy.protocol") ? str(&r0->m, "accuracy.protocol") : str(&r0->m, "eval.protocol");
        if (proto && !strcmp(proto, "probe"))
            clpdd_sb_printf(&md, "Probe: `probe` protocol (converged L-BFGS logistic regression, L2 chosen on the validation "
                                 "split; %g draws of random real images). ", num(&r0->m, "eval.seeds"));
        else
            clpdd_sb_printf(&md, "Probe: `%s` protocol, %g seeds x %g epochs. ", proto ? proto : "?", num(&r0->m, "eval.seeds"),
                            num(&r0->m, "eval.epochs"));
    }
    clpdd_sb_printf(&md, "**Bold**: the best cell of the column. Per-run numbers: summary.csv.\n\n");
    if (r0 && r0->n_cfg) {
        clpdd_sb_printf(&md, "Fixed in every run:");
        const char *show[] = {"data.dataset", "data.train_limit", "data.test_limit", "backbone.name", "backbone.weights",
                              "solver.name", "loss.name", "distill.ipc", "distill.steps", "distill.lr", "distill.real_batch",
                              "eval.protocol", "eval.seeds", "eval.epochs"};
        int any = 0;
        for (size_t s = 0; s < sizeof show / sizeof *show; s++) {
            int col = 0;
            for (int k = 0; k < ncols; k++) col |= !strcmp(cols[k], show[s]);
            const char *v = cfg(r0, show[s]);
            if (!col && v) clpdd_sb_printf(&md, "%s `%s = %s`", any++ ? "," : "", show[s], v);
        }
        clpdd_sb_printf(&md, "%s\n\n", any ? "." : " -");
    }
    if (nc) {
        int ba = best(cells, nc, offsetof(cell, acc), 1), bd = best(cells, nc, offsetof(cell, diag), 1);
        int bm = best(cells, nc, offsetof(cell, ms), 0), br = best(cells, nc, offsetof(cell, rss), 0);
        clpdd_sb_printf(&md, "| row |");
        for (int k = 0; k < nck; k++) clpdd_sb_printf(&md, " %s |", label_of(ckeys[k], ckeys, nck, lab, sizeof lab));
        clpdd_sb_printf(&md, " runs | accuracy %% | solver classifier %% | ms/step | peak RSS MB |\n|---|");
        for (int k = 0; k < nck; k++) clpdd_sb_printf(&md, "---|");
        clpdd_sb_printf(&md, "---|---|---|---|---|\n");
        for (int i = 0; i < nc; i++) {
            const run *r = &c.runs[cells[i].runs[0]];
            clpdd_sb_printf(&md, "| distilled |");
            for (int k = 0; k < nck; k++) clpdd_sb_printf(&md, " %s |", cval(r, ckeys[k]));
            clpdd_sb_printf(&md, " %d |", cells[i].n);
            pct(&md, cells[i].acc, i == ba);
            stat2 d = cells[i].diag;
            d.std = NAN;
            pct(&md, d, i == bd);
            plain(&md, cells[i].ms, "%.2f", i == bm);
            plain(&md, cells[i].rss, "%.0f", i == br);
            clpdd_sb_printf(&md, "\n");
        }
        for (int which = 0; which < 2; which++)
            for (int i = 0; i < nb; i++) {
                stat2 s = which == 0 ? bcells[i].random : bcells[i].full;
                if (!isfinite(s.mean)) continue;
                const run *r = &c.runs[bcells[i].runs[0]];
                clpdd_sb_printf(&md, "| %s |", which == 0 ? "random real images" : "full-data probe");
                for (int k = 0; k < nck; k++) {
                    int in = 0;
                    for (int j = 0; j < nbk; j++) in |= !strcmp(bkeys[j], ckeys[k]);
                    clpdd_sb_printf(&md, " %s |", in ? cval(r, ckeys[k]) : "·");
                }
                clpdd_sb_printf(&md, " %d |", s.n);
                pct(&md, s, 0);
                clpdd_sb_printf(&md, " - | - | - |\n");
            }
        clpdd_sb_printf(&md, "\nBaseline rows: the same probe on ipc random real training images per class (a fresh draw "
                             "per probe seed) and on every real training feature; mean ± std over the runs%s (a row's "
                             "runs all report it; `·`: the key does not change it).\n\n",
                        seeds_vary ? " of all seeds" : "");
    }

    /* selection on validation */
    int all_val = n_ok > 0;
    for (int i = 0; i < n_ok; i++) all_val &= isfinite(num(&c.runs[ok[i]].m, "accuracy.val.mean"));
    clpdd_sb_printf(&md, "## Hyper-parameter selection\n\n");
    if (all_val && nc) {
        char **mk = clpdd_xcalloc((size_t)(nck ? nck : 1), sizeof *mk), **hk = clpdd_xcalloc((size_t)(nck ? nck : 1), sizeof *hk);
        int nmk = 0, nhk = 0;
        for (int k = 0; k < nck; k++) {
            if (is_method_key(ckeys[k])) mk[nmk++] = ckeys[k];
            else hk[nhk++] = ckeys[k];
        }
        clpdd_sb_printf(&md, "Every run has a validation score: per method, the cell with the best validation accuracy is "
                             "selected and its test accuracy reported.\n\n| ");
        for (int k = 0; k < nmk; k++) clpdd_sb_printf(&md, "%s | ", label_of(mk[k], ckeys, nck, lab, sizeof lab));
        clpdd_sb_printf(&md, "selected | validation %% | test %% |\n|");
        for (int k = 0; k < nmk + 3; k++) clpdd_sb_printf(&md, "---|");
        clpdd_sb_printf(&md, "\n");
        int *done = clpdd_xcalloc((size_t)nc, sizeof *done);
        for (int i = 0; i < nc; i++) {
            if (done[i]) continue;
            const run *ri = &c.runs[cells[i].runs[0]];
            int sel = -1;
            for (int j = i; j < nc; j++) {
                const run *rj = &c.runs[cells[j].runs[0]];
                int same = 1;
                for (int k = 0; k < nmk && same; k++) same = !strcmp(cval(ri, mk[k]), cval(rj, mk[k]));
                if (!same) continue;
                done[j] = 1;
                if (sel < 0 || cells[j].val.mean > cells[sel].val.mean) sel = j;
            }
            clpdd_sb_printf(&md, "| ");
            for (int k = 0; k < nmk; k++) clpdd_sb_printf(&md, "%s | ", cval(ri, mk[k]));
            const run *rs = &c.runs[cells[sel].runs[0]];
            for (int k = 0; k < nhk; k++)
                clpdd_sb_printf(&md, "%s%s=%s", k ? ", " : "", label_of(hk[k], ckeys, nck, lab, sizeof lab), cval(rs, hk[k]));
            clpdd_sb_printf(&md, "%s |", nhk ? "" : "(no hyper-parameter varies)");
            pct(&md, cells[sel].val, 0);
            pct(&md, cells[sel].acc, 0);
            clpdd_sb_printf(&md, "\n");
        }
        free(done), free(mk), free(hk);
        clpdd_sb_printf(&md, "\n");
    } else {
        clpdd_sb_printf(&md, "These runs carry no validation score (metrics.json accuracy.val), so no hyper-parameters were "
                             "selected: the table reports test accuracy for every cell, and picking the best cell from it "
                             "would be selection on the test set.\n\n");
    }

    if (res->failed) {
        clpdd_sb_printf(&md, "## Failed runs (%d)\n\n", res->failed);
        for (int i = 0; i < c.n; i++)
            if (c.runs[i].error) {
                char first[600];
                snprintf(first, sizeof first, "%.*s", (int)strcspn(c.runs[i].error, "\n"), c.runs[i].error);
                clpdd_sb_printf(&md, "- `%s`: %s\n", c.runs[i].dir, first);
            }
        clpdd_sb_printf(&md, "\n");
    }

    if (clpdd_mkdirs(o->out_dir, e)) goto out2;
    if (write_text(o->out_dir, "summary.csv", &csv, e)) goto out2;
    clpdd_sb_printf(&md, "## Plots\n\n");
    if (o->plots && nc) {
        clpdd_err pe = {{0}};
        int p = plots(o->out_dir, &c, cells, nc, ckeys, nck, &pe);
        if (p == -127) {
            clpdd_sb_printf(&md, "No plots: gnuplot is not installed (Debian: `apt-get install gnuplot-nox`, then "
                                 "`clpdd report` again).\n");
        } else if (p < 0) {
            clpdd_sb_printf(&md, "No plots: %s.\n", pe.msg);
            if (!o->quiet) fprintf(stderr, "report: %s\n", pe.msg);
        } else {
            res->plots = p;
            clpdd_sb_printf(&md, "![accuracy per cell](accuracy.png)\n\n![accuracy against ms/step](accuracy-vs-time.png)\n");
            if (p > 2) clpdd_sb_printf(&md, "\n![accuracy over temperature x lambda](tau-lambda.png)\n");
        }
    } else {
        clpdd_sb_printf(&md, "Not drawn (%s).\n", nc ? "--no-plots" : "no finished run");
    }
    if (write_text(o->out_dir, "summary.md", &md, e)) goto out2;
    if (!o->quiet)
        fprintf(stderr, "report: %d runs (%d failed), %d cells -> %s/summary.{md,csv}%s\n", c.n, res->failed, nc, o->out_dir,
                res->plots ? " + plots" : "");
    rc = 0;
out2:
    free(ckeys), free(bkeys);
out:
    free_cells(cells, nc);
    free_cells(bcells, nb);
    free(csv.s), free(md.s);
    free(cols), free(keys);
    free(ok);
    for (int i = 0; i < c.n; i++) run_free(&c.runs[i]);
    free(c.runs);
    return rc;
}
