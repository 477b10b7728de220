/* Sweeps: the [sweep] grid, its points' names and directories, validation of every point before
 * any runs, and running them (skip the finished, resume the killed, record the failed). */
#define _GNU_SOURCE
#include "sweep/sweep.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/ini.h"
#include "config/experiment.h"

#define MAX_POINTS 100000

static int exists(const char *path) { return access(path, F_OK) == 0; }

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    CLPDD_ASSERT(n >= 0 && s);
    return s;
}

static char *trim_dup(const char *a, const char *b) {
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    char *s = clpdd_xmalloc((size_t)(b - a) + 1);
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = 0;
    return s;
}

static void push(char ***list, int *n, char *item) {
    *list = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    CLPDD_ASSERT(*list);
    (*list)[(*n)++] = item;
}

static void free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

/* "a..b" (integers, inclusive) → 1 and the bounds; 0 when it is not a range */
static int parse_range(const char *v, long long *a, long long *b) {
    const char *dots = strstr(v, "..");
    if (!dots) return 0;
    char *end;
    errno = 0;
    *a = strtoll(v, &end, 10);
    if (end != dots || end == v || errno) return 0;
    *b = strtoll(dots + 2, &end, 10);
    if (*end || end == dots + 2 || errno) return 0;
    return 1;
}

/* "v1, v2, 0..3" → values; -1 + message */
static int split_values(const char *text, const char *key, const char *where, char ***out, int *n, clpdd_err *e) {
    *out = NULL, *n = 0;
    const char *p = text;
    for (;;) {
        const char *c = strchr(p, ',');
        const char *end = c ? c : p + strlen(p);
        char *item = trim_dup(p, end);
        long long a, b;
        if (!*item) {
            free(item);
            free_list(*out, *n);
            return clpdd_err_set(e, "%s: [sweep] %s = '%s': empty value in the list (expected v1, v2, ... or a..b; "
                                    "values can't contain commas)", where, key, text);
        }
        if (parse_range(item, &a, &b)) {
            if (b < a || b - a >= MAX_POINTS) {
                free(item);
                free_list(*out, *n);
                return clpdd_err_set(e, "%s: [sweep] %s: range '%s' must be a..b with a <= b and fewer than %d values", where,
                                     key, text, MAX_POINTS);
            }
            for (long long v = a; v <= b; v++) push(out, n, xasprintf("%lld", v));
            free(item);
        } else {
            push(out, n, item);
        }
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* ---- plugins chosen at a point: which keys they take ---- */

typedef struct plug {
    clpdd_plugin_kind kind;
    char *name;
    clpdd_loaded l; /* l.desc NULL: not loadable (validation will say why) */
} plug;

typedef struct ctx {
    const clpdd_plugin_dirs *dirs;
    plug *plugs;
    int n_plugs;
} ctx;

static const clpdd_plugin *plugin_of(ctx *c, clpdd_plugin_kind kind, const char *name) {
    if (!name || !*name) return NULL;
    for (int i = 0; i < c->n_plugs; i++)
        if (c->plugs[i].kind == kind && strcmp(c->plugs[i].name, name) == 0) return c->plugs[i].l.desc;
    c->plugs = realloc(c->plugs, (size_t)(c->n_plugs + 1) * sizeof *c->plugs);
    CLPDD_ASSERT(c->plugs);
    plug *p = &c->plugs[c->n_plugs++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->name = clpdd_xstrdup(name);
    clpdd_err le;
    if (clpdd_plugin_find(c->dirs, kind, name, &p->l, &le)) memset(&p->l, 0, sizeof p->l);
    return p->l.desc;
}

static void ctx_free(ctx *c) {
    for (int i = 0; i < c->n_plugs; i++) {
        if (c->plugs[i].l.desc) clpdd_plugin_close(&c->plugs[i].l);
        free(c->plugs[i].name);
    }
    free(c->plugs);
}

static const clpdd_key *declared(const clpdd_plugin *d, const char *key) {
    for (int i = 0; d && i < d->n_keys; i++)
        if (strcmp(d->keys[i].name, key) == 0) return &d->keys[i];
    return NULL;
}

static const clpdd_key *core_key(const char *section, const char *key) {
    int n;
    const clpdd_core_section *cs = clpdd_core_sections(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(cs[i].name, section) == 0)
            for (int j = 0; j < cs[i].n_keys; j++)
                if (strcmp(cs[i].keys[j].name, key) == 0) return &cs[i].keys[j];
    return NULL;
}

static void split_key(const char *full, char *sec, size_t ns, const char **key) {
    const char *dot = strchr(full, '.');
    size_t l = dot ? (size_t)(dot - full) : strlen(full);
    if (l >= ns) l = ns - 1;
    memcpy(sec, full, l);
    sec[l] = 0;
    *key = dot ? dot + 1 : "";
}

/* does `full` (section.key) apply where these plugins are chosen? *decl: its declaration if known */
static int applies(ctx *c, const char *full, const char *bb, const char *sv, const char *ls, const clpdd_key **decl) {
    char sec[128];
    const char *key;
    split_key(full, sec, sizeof sec, &key);
    *decl = NULL;
    const clpdd_plugin *d = NULL;
    if (strcmp(sec, "backbone") == 0) {
        d = plugin_of(c, CLPDD_KIND_BACKBONE, bb);
    } else if (strcmp(sec, "solver") == 0) {
        d = plugin_of(c, CLPDD_KIND_SOLVER, sv);
    } else if (strcmp(sec, "loss") == 0) {
        const clpdd_plugin *s = plugin_of(c, CLPDD_KIND_SOLVER, sv);
        if (s && ((const clpdd_solver_vt *)s->vtable)->objective) return 0; /* no [loss] at all */
        d = plugin_of(c, CLPDD_KIND_LOSS, ls);
    } else {
        *decl = core_key(sec, key);
        return 1;
    }
    if (strcmp(key, "name") == 0 || !d) return 1; /* an unloadable plugin: validation will say why */
    return (*decl = declared(d, key)) != NULL;
}

/* ---- names ---- */

/* a point's directory name from its exact "label=value,..." text: the text itself when a path
   component keeps it as it is (letters, digits and . _ = , + -, not starting with '.', at most 200
   characters); otherwise a readable part (other characters as '_', at most 180) + '~' + 16 hex
   digits of a hash of the exact text. Plain names never contain '~', so a hashed name never meets
   a plain one, and two texts that read alike ("a/b", "a_b") get different names; the name depends
   on the point's own values only, not on the other points or the order of the lists. */
static char *point_name(const char *s) {
    size_t n = strlen(s);
    char *o = clpdd_xmalloc(n + 1);
    int lossy = n > 200 || s[0] == '.';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int keep = isalnum(ch) || strchr("._=,+-", ch);
        o[i] = keep ? (char)ch : '_';
        lossy |= !keep;
    }
    o[n] = 0;
    if (o[0] == '.') o[0] = '_'; /* no hidden directories, no "." or ".." */
    if (lossy) {
        char tail[24];
        snprintf(tail, sizeof tail, "~%016llx", (unsigned long long)clpdd_hash_str(CLPDD_HASH_SEED, s));
        o = realloc(o, (n > 180 ? 180 : n) + sizeof tail);
        CLPDD_ASSERT(o);
        strcpy(o + (n > 180 ? 180 : n), tail);
    }
    return o;
}

static void make_labels(clpdd_sweep *s) {
    for (int i = 0; i < s->n_keys; i++) {
        char sec[128];
        const char *key;
        split_key(s->keys[i].key, sec, sizeof sec, &key);
        s->keys[i].label = clpdd_xstrdup(strcmp(key, "name") == 0 ? sec : key);
    }
    for (int i = 0; i < s->n_keys; i++) {
        int clash = 0;
        for (int j = 0; j < s->n_keys; j++) clash |= j != i && strcmp(s->keys[i].label, s->keys[j].label) == 0;
        if (clash) {
            free(s->keys[i].label);
            s->keys[i].label = clpdd_xstrdup(s->keys[i].key);
        }
    }
}

/* ---- expansion ---- */

static int find_key(const clpdd_sweep *s, const char *k) {
    for (int i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i].key, k) == 0) return i;
    return -1;
}

static int check_key_form(const char *k, const char *where, clpdd_err *e) {
    const char *dot = strchr(k, '.');
    if (!dot || dot == k || !dot[1] || strchr(dot + 1, '.'))
        return clpdd_err_set(e, "%s: [sweep] '%s': expected section.key = v1, v2, ... (or zip = section.key, section.key)", where, k);
    if (strncmp(k, "sweep.", 6) == 0) return clpdd_err_set(e, "%s: [sweep] '%s': the [sweep] section can't sweep itself", where, k);
    if (!strcmp(k, "experiment.output") || !strcmp(k, "experiment.name"))
        return clpdd_err_set(e, "%s: [sweep] %s: a sweep names each point and its directory itself (<root>/<point>); "
                                "set the root with --output or [experiment] output", where, k);
    /* a section no run reads: said here, with the line, rather than by each point's load */
    int n;
    const clpdd_core_section *cs = clpdd_core_sections(&n);
    size_t sl = (size_t)(dot - k);
    int known = (sl == 8 && !strncmp(k, "backbone", 8)) || (sl == 6 && !strncmp(k, "solver", 6)) ||
                (sl == 4 && !strncmp(k, "loss", 4));
    for (int i = 0; i < n && !known; i++) known = strlen(cs[i].name) == sl && !strncmp(k, cs[i].name, sl);
    if (!known)
        return clpdd_err_set(e, "%s: [sweep] %s: no section [%.*s] (known: experiment, data, backbone, solver, loss, distill, "
                                "eval)", where, k, (int)sl, k);
    return 0;
}

static int add_key(clpdd_sweep *s, const char *k, const char *v, const char *where, clpdd_err *e) {
    if (check_key_form(k, where, e)) return -1;
    char **vals;
    int n;
    if (split_values(v, k, where, &vals, &n, e)) return -1;
    int i = find_key(s, k);
    if (i < 0) {
        s->keys = realloc(s->keys, (size_t)(s->n_keys + 1) * sizeof *s->keys);
        CLPDD_ASSERT(s->keys);
        i = s->n_keys++;
        memset(&s->keys[i], 0, sizeof s->keys[i]);
        s->keys[i].key = clpdd_xstrdup(k);
    } else {
        free_list(s->keys[i].values, s->keys[i].n_values);
        free(s->keys[i].where);
    }
    s->keys[i].values = vals;
    s->keys[i].n_values = n;
    s->keys[i].where = clpdd_xstrdup(where);
    return 0;
}

static const char *base_name(clpdd_ini *ini, const char *section) {
    clpdd_section *sec = clpdd_ini_section(ini, section);
    return sec ? clpdd_section_raw(sec, "name", NULL, NULL) : NULL;
}

/* a zip group's key: "zip", "zip2", "zip_lr" (no dot) */
static int is_zip(const char *k) { return strncmp(k, "zip", 3) == 0 && !strchr(k, '.'); }

/* the swept keys: the file's [sweep] lists (zip groups aside), then --sweep */
static int read_keys(clpdd_sweep *s, const clpdd_section *sw, const clpdd_sweep_opts *o, clpdd_err *e) {
    for (int i = 0; sw && i < clpdd_section_count(sw); i++) {
        const char *k = clpdd_section_key_at(sw, i);
        int line;
        const char *file;
        const char *v = clpdd_section_raw(sw, k, &line, &file);
        char where[1200];
        if (line > 0) snprintf(where, sizeof where, "%s:%d", file, line);
        else snprintf(where, sizeof where, "--set sweep.%s", k);
        if (is_zip(k)) continue; /* after every list is known */
        if (add_key(s, k, v, where, e)) return -1;
    }
    for (int i = 0; i < o->n_sweeps; i++) {
        const char *eq = strchr(o->sweeps[i], '=');
        if (!eq) return clpdd_err_set(e, "--sweep '%s': expected section.key=v1,v2,...", o->sweeps[i]);
        char *k = trim_dup(o->sweeps[i], eq);
        int r = add_key(s, k, eq + 1, "--sweep", e);
        free(k);
        if (r) return -1;
    }
    return 0;
}

/* zip group `group` (1-based): the swept keys named in its value, lists of equal length */
static int zip_group(clpdd_sweep *s, const char *k, const char *v, const char *where, int group, clpdd_err *e) {
    char **names;
    int nn;
    if (split_values(v, k, where, &names, &nn, e)) return -1;
    int len = -1, rc = 0;
    for (int j = 0; j < nn && !rc; j++) {
        int ki = find_key(s, names[j]);
        if (ki < 0)
            rc = clpdd_err_set(e, "%s: [sweep] %s: '%s' is not a swept key of this file (zip pairs the lists of keys set in [sweep])",
                               where, k, names[j]);
        else if (s->keys[ki].zip)
            rc = clpdd_err_set(e, "%s: [sweep] %s: '%s' is already in another zip group", where, k, names[j]);
        else if (len >= 0 && s->keys[ki].n_values != len)
            rc = clpdd_err_set(e, "%s: [sweep] %s: '%s' has %d values but '%s' has %d; zipped lists must be equally long", where,
                               k, names[j], s->keys[ki].n_values, names[0], len);
        else {
            s->keys[ki].zip = group;
            len = s->keys[ki].n_values;
        }
    }
    free_list(names, nn);
    return rc;
}

/* every zip group of [sweep], numbered 1, 2, ... in the file's order */
static int read_zip_groups(clpdd_sweep *s, const clpdd_section *sw, clpdd_err *e) {
    int n_zip = 0;
    for (int i = 0; sw && i < clpdd_section_count(sw); i++) {
        const char *k = clpdd_section_key_at(sw, i);
        if (!is_zip(k)) continue;
        int line;
        const char *file;
        const char *v = clpdd_section_raw(sw, k, &line, &file);
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", file, line);
        if (zip_group(s, k, v, where, ++n_zip, e)) return -1;
    }
    return 0;
}

/* the sweep's name ([experiment] name, else the file's base name) and root directory (--output,
   else [experiment] output, else runs/<name>) */
static void name_and_root(clpdd_sweep *s, clpdd_ini *ini, const char *path, const clpdd_sweep_opts *o) {
    clpdd_section *ex = clpdd_ini_section(ini, "experiment");
    const char *nm = ex ? clpdd_section_raw(ex, "name", NULL, NULL) : NULL;
    const char *outp = ex ? clpdd_section_raw(ex, "output", NULL, NULL) : NULL;
    if (nm && *nm) {
        s->name = clpdd_xstrdup(nm);
    } else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        s->name = clpdd_xstrdup(b);
        char *dot = strrchr(s->name, '.');
        if (dot && dot != s->name) *dot = 0;
    }
    if (o->output) s->root = clpdd_xstrdup(o->output);
    else if (outp && *outp) s->root = clpdd_xstrdup(outp);
    else s->root = xasprintf("runs/%s", s->name);
}

/* the grid's axes: each key, or each zip group at its first key */
typedef struct grid {
    int *axis_of;        /* per key: its axis */
    long long *axis_len; /* per axis: its number of values */
    int n_axes;
    long long total;     /* points in the grid: the product of the axes' lengths */
} grid;

static int make_axes(grid *g, const clpdd_sweep *s, const char *path, clpdd_err *e) {
    g->axis_of = clpdd_xcalloc((size_t)(s->n_keys ? s->n_keys : 1), sizeof *g->axis_of);
    g->axis_len = clpdd_xcalloc((size_t)(s->n_keys ? s->n_keys : 1), sizeof *g->axis_len);
    g->total = 1;
    for (int i = 0; i < s->n_keys; i++) {
        int a = -1;
        for (int j = 0; j < i && s->keys[i].zip; j++)
            if (s->keys[j].zip == s->keys[i].zip) a = g->axis_of[j];
        if (a < 0) {
            a = g->n_axes++;
            g->axis_len[a] = s->keys[i].n_values;
            g->total *= g->axis_len[a];
            if (g->total > MAX_POINTS) return clpdd_err_set(e, "%s: [sweep]: the grid has more than %d points", path, MAX_POINTS);
        }
        g->axis_of[i] = a;
    }
    return 0;
}

/* the point at grid position idx (one value index per axis): its --set list (the command line's,
   then its applicable swept values), id (those values, one per line: equal ids are one point)
   and name; used[i] set for each key that applies. -1 + message for a floats key. */
static int point_at(const clpdd_sweep *s, ctx *c, clpdd_ini *ini, const clpdd_sweep_opts *o, const grid *g,
                    const long long *idx, int *used, clpdd_sweep_point *p, clpdd_strbuf *id, clpdd_strbuf *name, clpdd_err *e) {
    const char *chosen[3] = {base_name(ini, "backbone"), base_name(ini, "solver"), base_name(ini, "loss")};
    const char *pk[3] = {"backbone.name", "solver.name", "loss.name"};
    for (int i = 0; i < s->n_keys; i++)
        for (int k = 0; k < 3; k++)
            if (strcmp(s->keys[i].key, pk[k]) == 0) chosen[k] = s->keys[i].values[idx[g->axis_of[i]]];
    for (int i = 0; i < o->n_sets; i++) push(&p->sets, &p->n_sets, clpdd_xstrdup(o->sets[i]));
    p->swept_from = p->n_sets;
    for (int i = 0; i < s->n_keys; i++) {
        const clpdd_key *decl;
        if (!applies(c, s->keys[i].key, chosen[0], chosen[1], chosen[2], &decl)) continue;
        if (decl && decl->type == CLPDD_KEY_FLOATS)
            return clpdd_err_set(e, "%s: [sweep] %s: a list-valued (floats) key can't be swept: its values contain commas",
                                 s->keys[i].where, s->keys[i].key);
        used[i] = 1;
        const char *v = s->keys[i].values[idx[g->axis_of[i]]];
        push(&p->sets, &p->n_sets, xasprintf("%s=%s", s->keys[i].key, v));
        p->n_swept++;
        clpdd_sb_printf(id, "%s=%s\n", s->keys[i].key, v);
        if (s->keys[i].n_values > 1) /* a single value tells no points apart */
            clpdd_sb_printf(name, "%s%s=%s", name->len ? "," : "", s->keys[i].label, v);
    }
    return 0;
}

/* p joins the sweep under its name, in <root>/<name>; -1 + message if another point has that
   name (distinct values give distinct names, so only a 64-bit hash collision could) */
static int add_point(clpdd_sweep *s, clpdd_sweep_point *p, const char *name, clpdd_err *e) {
    p->index = s->n_points;
    p->name = point_name(name ? name : "base");
    for (int j = 0; j < s->n_points; j++)
        if (strcmp(s->points[j].name, p->name) == 0) {
            clpdd_err_set(e, "%s: [sweep]: points %d and %d would share the directory %s", s->file, j, p->index, p->name);
            free(p->name);
            return -1;
        }
    p->dir = xasprintf("%s/%s", s->root, p->name);
    push(&p->sets, &p->n_sets, xasprintf("experiment.output=%s", p->dir));
    push(&p->sets, &p->n_sets, xasprintf("experiment.name=%s-%s", s->name, p->name));
    s->points = realloc(s->points, (size_t)(s->n_points + 1) * sizeof *s->points);
    CLPDD_ASSERT(s->points);
    s->points[s->n_points++] = *p;
    return 0;
}

/* every grid position in order (the last axis fastest); points made identical by dropped keys
   merged into the first; used[i]: key i applies at some point */
static int expand_grid(clpdd_sweep *s, ctx *c, clpdd_ini *ini, const clpdd_sweep_opts *o, const grid *g, int *used,
                       clpdd_err *e) {
    long long *idx = clpdd_xcalloc((size_t)(g->n_axes ? g->n_axes : 1), sizeof *idx);
    char **seen = NULL; /* each point's id, for merging */
    int n_seen = 0, rc = 0;
    for (long long at = 0; at < g->total && !rc; at++) {
        long long r = at;
        for (int a = g->n_axes - 1; a >= 0; a--) idx[a] = r % g->axis_len[a], r /= g->axis_len[a];
        clpdd_strbuf id = {0}, name = {0};
        clpdd_sweep_point p = {0};
        rc = point_at(s, c, ini, o, g, idx, used, &p, &id, &name, e);
        int dup = 0;
        for (int j = 0; !rc && j < n_seen && !dup; j++) dup = strcmp(seen[j], id.s ? id.s : "") == 0;
        if (rc || dup) {
            free_list(p.sets, p.n_sets);
            free(id.s), free(name.s);
            continue;
        }
        push(&seen, &n_seen, id.s ? id.s : clpdd_xstrdup(""));
        if ((rc = add_point(s, &p, name.s, e)) != 0) free_list(p.sets, p.n_sets);
        free(name.s);
    }
    free_list(seen, n_seen);
    free(idx);
    return rc;
}

/* a swept key that applies at no point is an error */
static int check_used(const clpdd_sweep *s, const int *used, clpdd_err *e) {
    for (int i = 0; i < s->n_keys; i++)
        if (!used[i]) {
            const char *key = s->keys[i].key, *dot = strchr(key, '.');
            return clpdd_err_set(e, "%s: [sweep] %s applies at no point: no plugin chosen for [%.*s] has a key '%s' "
                                    "(`clpdd plugins` lists them)", s->keys[i].where, key, (int)(dot - key), key, dot + 1);
        }
    return 0;
}

/* the file (+ --set) → the swept keys and zip groups → labels, name, root → the grid's axes →
   its points (merged where dropped keys make them identical) → every key applies somewhere */
int clpdd_sweep_expand(clpdd_sweep *s, const char *path, const clpdd_sweep_opts *o, clpdd_err *e) {
    memset(s, 0, sizeof *s);
    s->file = clpdd_xstrdup(path);
    clpdd_ini ini;
    if (clpdd_ini_load(path, &ini, e)) {
        clpdd_ini_free(&ini);
        return -1;
    }
    int rc = -1;
    ctx c = {o->dirs, NULL, 0};
    grid g = {0};
    int *used = NULL;
    for (int i = 0; i < o->n_sets; i++)
        if (clpdd_ini_set(&ini, o->sets[i], e)) goto out;
    clpdd_section *sw = clpdd_ini_section(&ini, "sweep");
    if (read_keys(s, sw, o, e) || read_zip_groups(s, sw, e)) goto out;
    make_labels(s);
    name_and_root(s, &ini, path, o);
    if (make_axes(&g, s, path, e)) goto out;
    s->n_grid = (int)g.total;
    used = clpdd_xcalloc((size_t)(s->n_keys ? s->n_keys : 1), sizeof *used);
    if (expand_grid(s, &c, &ini, o, &g, used, e) || check_used(s, used, e)) goto out;
    rc = 0;
out:
    free(used);
    free(g.axis_of);
    free(g.axis_len);
    ctx_free(&c);
    clpdd_ini_free(&ini);
    if (rc) {
        clpdd_sweep_free(s);
        s->file = NULL;
    }
    return rc;
}

void clpdd_sweep_free(clpdd_sweep *s) {
    for (int i = 0; i < s->n_keys; i++) {
        free(s->keys[i].key), free(s->keys[i].label), free(s->keys[i].where);
        free_list(s->keys[i].values, s->keys[i].n_values);
    }
    for (int i = 0; i < s->n_points; i++) {
        free(s->points[i].name), free(s->points[i].dir), free(s->points[i].resolved);
        free_list(s->points[i].sets, s->points[i].n_sets);
    }
    free(s->keys), free(s->points), free(s->file), free(s->name), free(s->root);
    memset(s, 0, sizeof *s);
}

/* ---- validation ---- */

/* the swept key an error message is about ("[sec] key ..." or "key 'key' in section [sec]") */
static int culprit(const clpdd_sweep *s, const clpdd_sweep_point *p, const char *msg) {
    for (int i = p->swept_from; i < p->swept_from + p->n_swept; i++) {
        char sec[128], pat1[300], pat2[300];
        const char *key;
        split_key(p->sets[i], sec, sizeof sec, &key);
        size_t kl = strcspn(key, "=");
        snprintf(pat1, sizeof pat1, "[%s] %.*s ", sec, (int)kl, key);
        snprintf(pat2, sizeof pat2, "key '%.*s' in section [%s]", (int)kl, key, sec);
        if (strstr(msg, pat1) || strstr(msg, pat2)) {
            char full[300];
            snprintf(full, sizeof full, "%.*s", (int)strcspn(p->sets[i], "="), p->sets[i]);
            return find_key(s, full);
        }
    }
    return -1;
}

static int load_point(clpdd_experiment *x, const clpdd_sweep *s, const clpdd_sweep_point *p, const clpdd_sweep_opts *o,
                      clpdd_err *e) {
    clpdd_err le;
    if (clpdd_experiment_load(x, s->file, (const char *const *)p->sets, p->n_sets, o->dirs, &le) == 0) return 0;
    clpdd_experiment_free(x);
    int k = culprit(s, p, le.msg);
    if (k >= 0)
        return clpdd_err_set(e, "%s: [sweep] %s: point %d of %d (%s): %.1500s", s->keys[k].where, s->keys[k].key, p->index,
                             s->n_points, p->name, le.msg);
    return clpdd_err_set(e, "%.1500s (sweep point %d of %d: %s)", le.msg, p->index, s->n_points, p->name);
}

int clpdd_sweep_validate(clpdd_sweep *s, const clpdd_sweep_opts *o, clpdd_err *e) {
    for (int i = 0; i < s->n_points; i++) {
        clpdd_experiment x;
        if (load_point(&x, s, &s->points[i], o, e)) return -1;
        free(s->points[i].resolved);
        s->points[i].resolved = clpdd_experiment_resolved_ini(&x);
        clpdd_experiment_free(&x);
    }
    return 0;
}

/* ---- the state of a point's directory ---- */

const char *clpdd_point_state_name(clpdd_point_state st) {
    static const char *n[] = {"new", "done", "partial (checkpoint)", "failed",
                              "stale (finished with another configuration: kept; the sweep refuses to run)"};
    return (unsigned)st < CLPDD_POINT_STATE_COUNT ? n[st] : "?";
}

/* 1 when key of a core section is absent from one configuration and at its declared default in
   the other: a run finished before the key existed computed what the default computes, so a
   newer clpdd neither calls it stale nor reruns it */
static int absent_at_default(const char *sec, const char *key, const char *value) {
    int ns = 0;
    const clpdd_core_section *cs = clpdd_core_sections(&ns);
    for (int i = 0; i < ns; i++) {
        if (strcmp(cs[i].name, sec)) continue;
        for (int j = 0; j < cs[i].n_keys; j++)
            if (!strcmp(cs[i].keys[j].name, key))
                return cs[i].keys[j].default_value && !strcmp(cs[i].keys[j].default_value, value);
    }
    return 0;
}

/* the first key set differently in a and b, in a's order then b's (incidental keys aside when
   asked; a core key absent on one side and at its default on the other is no difference):
   "[sec] key = va" / "vb" (NULL: not set); 0 when there is none */
static int first_difference(const clpdd_ini *a, const clpdd_ini *b, int incidental, char *sec, size_t ns, char *key, size_t nk,
                            const char **va, const char **vb) {
    for (int pass = 0; pass < 2; pass++) {
        const clpdd_ini *x = pass ? b : a, *y = pass ? a : b;
        for (int i = 0; i < x->n_sections; i++) {
            const clpdd_section *sx = x->sections[i], *sy = clpdd_ini_section(y, clpdd_section_name(sx));
            for (int j = 0; j < clpdd_section_count(sx); j++) {
                const char *k = clpdd_section_key_at(sx, j), *v = clpdd_section_raw(sx, k, NULL, NULL);
                const char *w = sy ? clpdd_section_raw(sy, k, NULL, NULL) : NULL;
                if (!incidental && clpdd_config_key_incidental(clpdd_section_name(sx), k)) continue;
                if (w && !strcmp(v, w)) continue;
                if (!w && absent_at_default(clpdd_section_name(sx), k, v)) continue;
                snprintf(sec, ns, "%s", clpdd_section_name(sx));
                snprintf(key, nk, "%s", k);
                *va = pass ? w : v, *vb = pass ? v : w;
                return 1;
            }
        }
    }
    return 0;
}

/* -1: a text does not parse; 0 the same (incidental keys aside unless asked); 1 different, the
   first difference in diff (may be NULL) */
static int config_compare(const char *a, const char *b, int incidental, char *diff, size_t n) {
    clpdd_ini ia = {0}, ib = {0};
    clpdd_err e;
    int rc = -1;
    if (clpdd_ini_load_memory(a, strlen(a), "config.ini", &ia, &e) == 0 &&
        clpdd_ini_load_memory(b, strlen(b), "resolved configuration", &ib, &e) == 0) {
        char sec[128], key[128];
        const char *va, *vb;
        rc = first_difference(&ia, &ib, incidental, sec, sizeof sec, key, sizeof key, &va, &vb);
        if (rc && diff)
            snprintf(diff, n, "[%s] %s: %s%.200s%s in its config.ini, %s%.200s%s now", sec, key, va ? "'" : "", va ? va : "not set",
                     va ? "'" : "", vb ? "'" : "", vb ? vb : "not set", vb ? "'" : "");
    }
    clpdd_ini_free(&ia);
    clpdd_ini_free(&ib);
    return rc;
}

int clpdd_config_text_equal(const char *a, const char *b) { return config_compare(a, b, 1, NULL, 0) == 0; }

static int in_dir(const clpdd_sweep_point *p, const char *file, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", p->dir, file);
    return exists(buf);
}

/* the point's config.ini compared with resolved: as config_compare, -1 also when it is missing */
static int point_config(const clpdd_sweep_point *p, const char *resolved, char *diff, size_t n) {
    char path[4400];
    uint8_t *cfg;
    size_t len;
    clpdd_err e;
    if (!in_dir(p, "config.ini", path, sizeof path) || clpdd_read_file(path, &cfg, &len, &e)) return -1;
    int rc = config_compare((const char *)cfg, resolved, 0, diff, n);
    free(cfg);
    return rc;
}

clpdd_point_state clpdd_sweep_point_state(const clpdd_sweep_point *p, const char *resolved) {
    char path[4400];
    if (!resolved) resolved = p->resolved;
    if (in_dir(p, "metrics.json", path, sizeof path))
        return !resolved || point_config(p, resolved, NULL, 0) == 0 ? CLPDD_POINT_DONE : CLPDD_POINT_STALE;
    if (in_dir(p, "checkpoint.safetensors", path, sizeof path)) return CLPDD_POINT_PARTIAL;
    if (in_dir(p, "error.txt", path, sizeof path)) return CLPDD_POINT_FAILED;
    return CLPDD_POINT_NEW;
}

/* a point of the shard that finished with another configuration stops the sweep before anything
   runs: its results are never replaced, and the message says how to proceed */
static int refuse_stale(const clpdd_sweep *s, const int *todo, int n, clpdd_err *e) {
    int first = -1, count = 0;
    for (int k = 0; k < n; k++)
        if (clpdd_sweep_point_state(&s->points[todo[k]], NULL) == CLPDD_POINT_STALE) count++, first = first < 0 ? todo[k] : first;
    if (first < 0) return 0;
    const clpdd_sweep_point *p = &s->points[first];
    char diff[700];
    if (point_config(p, p->resolved, diff, sizeof diff) < 0) snprintf(diff, sizeof diff, "its config.ini is missing or damaged");
    return clpdd_err_set(e, "sweep %s: point %d (%s) finished with another configuration (%s); a sweep never replaces a finished "
                            "point, so nothing was run (%d point%s in this state: `clpdd sweep %s --list` marks them stale). "
                            "To keep it, run this configuration under another root (--output DIR); to replace it, remove %s",
                         s->name, p->index, p->name, diff, count, count == 1 ? " is" : "s are", s->file, p->dir);
}

/* ---- running ---- */

static void write_error(const clpdd_sweep_point *p, const char *msg) {
    clpdd_err e;
    char path[4400];
    if (clpdd_mkdirs(p->dir, &e)) return;
    snprintf(path, sizeof path, "%s/error.txt", p->dir);
    char *text = xasprintf("%s\n", msg);
    clpdd_write_file_atomic(path, text, strlen(text), &e);
    free(text);
}

/* one point, start to end; 0 ran, 1 skipped (finished before), -1 failed (error.txt written) */
static int run_point(const clpdd_sweep *s, const clpdd_sweep_point *p, const clpdd_sweep_opts *o, const clpdd_sweep_run_opts *r,
                     int quiet, clpdd_err *e) {
    clpdd_experiment x;
    if (load_point(&x, s, p, o, e)) {
        write_error(p, e->msg);
        return -1;
    }
    char *resolved = clpdd_experiment_resolved_ini(&x);
    clpdd_point_state st = clpdd_sweep_point_state(p, resolved);
    free(resolved);
    if (st == CLPDD_POINT_DONE) {
        clpdd_experiment_free(&x);
        return 1;
    }
    if (st == CLPDD_POINT_STALE) { /* refused before the sweep started; another process may have written it since */
        clpdd_experiment_free(&x);
        return clpdd_err_set(e, "%s: finished with another configuration: kept, not run (remove it to replace it)", p->dir), -1;
    }
    char path[4400];
    /* resume a checkpoint; otherwise the directory is the sweep's own: whatever an unfinished or
       failed attempt left there is replaced (--force) */
    int resume = st == CLPDD_POINT_PARTIAL;
    clpdd_run_opts ro = {r->ops, p->dir, quiet, resume, !resume};
    int rc = clpdd_run(&x, &ro, e);
    clpdd_experiment_free(&x);
    snprintf(path, sizeof path, "%s/error.txt", p->dir);
    if (rc) {
        write_error(p, e->msg);
        return -1;
    }
    unlink(path);
    return 0;
}

static void say(const clpdd_sweep *s, const clpdd_sweep_point *p, int k, int n, const char *what, double secs) {
    if (secs >= 0) fprintf(stderr, "sweep %s: [%d/%d] %s: %s (%.1f s)\n", s->name, k, n, p->name, what, secs);
    else fprintf(stderr, "sweep %s: [%d/%d] %s: %s\n", s->name, k, n, p->name, what);
}

static void tally(clpdd_sweep_result *res, int rc) {
    if (rc == 0) res->ran++;
    else if (rc == 1) res->skipped++;
    else res->failed++;
}

/* the features a point needs: the keys and values of its resolved [backbone] and [data] sections
   (whether a value was set or defaulted makes no difference) */
static uint64_t feature_key(const clpdd_experiment *x) {
    uint64_t h = CLPDD_HASH_SEED;
    const char *secs[] = {"backbone", "data"};
    for (int i = 0; i < 2; i++) {
        const clpdd_section *s = clpdd_ini_section(&x->ini, secs[i]);
        h = clpdd_hash_str(h, secs[i]);
        for (int j = 0; s && j < clpdd_section_count(s); j++) {
            const char *k = clpdd_section_key_at(s, j);
            h = clpdd_hash_str(clpdd_hash_str(h, k), clpdd_section_raw(s, k, NULL, NULL));
        }
    }
    return h;
}

/* child processes: the feature groups' first points one at a time, then the rest N at a time */
static int run_forked(const clpdd_sweep *s, const clpdd_sweep_opts *o, const clpdd_sweep_run_opts *r, const int *todo, int n,
                      clpdd_sweep_result *res, clpdd_err *e) {
    uint64_t *fk = clpdd_xcalloc((size_t)n, sizeof *fk);
    int *leader = clpdd_xcalloc((size_t)n, sizeof *leader);
    for (int i = 0; i < n; i++) {
        clpdd_experiment x;
        if (load_point(&x, s, &s->points[todo[i]], o, e)) {
            free(fk), free(leader);
            return -1;
        }
        char *resolved = clpdd_experiment_resolved_ini(&x);
        fk[i] = feature_key(&x);
        leader[i] = clpdd_sweep_point_state(&s->points[todo[i]], resolved) != CLPDD_POINT_DONE;
        free(resolved);
        clpdd_experiment_free(&x);
        for (int j = 0; j < i && leader[i]; j++) leader[i] = !(leader[j] && fk[j] == fk[i]);
    }
    pid_t *pids = clpdd_xcalloc((size_t)n, sizeof *pids);
    double *t0 = clpdd_xcalloc((size_t)n, sizeof *t0);
    int started = 0, running = 0, done = 0;
    for (int phase = 0; phase < 2; phase++) {
        int limit = phase == 0 ? 1 : (r->jobs > 0 ? r->jobs : 1);
        for (int i = 0;; i++) {
            while (running >= limit || (i >= n && running > 0)) {
                int status;
                pid_t pid = wait(&status);
                if (pid < 0) break;
                for (int j = 0; j < n; j++) {
                    if (pids[j] != pid) continue;
                    pids[j] = 0;
                    running--;
                    int rc = WIFEXITED(status) ? (WEXITSTATUS(status) == 0 ? 0 : WEXITSTATUS(status) == 3 ? 1 : -1) : -1;
                    if (WIFSIGNALED(status)) {
                        char msg[128];
                        snprintf(msg, sizeof msg, "the point's process was killed by signal %d (%s)", WTERMSIG(status),
                                 strsignal(WTERMSIG(status)));
                        write_error(&s->points[todo[j]], msg);
                    }
                    tally(res, rc);
                    say(s, &s->points[todo[j]], ++done, n, rc == 0 ? "done" : rc == 1 ? "finished before: skipped" : "FAILED (see error.txt)",
                        rc == 1 ? -1 : clpdd_now() - t0[j]);
                }
            }
            if (i >= n) break;
            if (leader[i] != (phase == 0)) continue;
            fflush(NULL);
            t0[i] = clpdd_now();
            pid_t pid = fork();
            if (pid < 0) {
                free(fk), free(leader), free(pids), free(t0);
                return clpdd_err_set(e, "sweep: fork: %s", strerror(errno));
            }
            if (pid == 0) {
                clpdd_err ce;
                int rc = run_point(s, &s->points[todo[i]], o, r, 1, &ce);
                fflush(NULL);
                _exit(rc == 0 ? 0 : rc == 1 ? 3 : 1);
            }
            pids[i] = pid;
            running++, started++;
        }
    }
    free(fk), free(leader), free(pids), free(t0);
    return 0;
}

int clpdd_sweep_run(clpdd_sweep *s, const clpdd_sweep_opts *o, const clpdd_sweep_run_opts *r, clpdd_sweep_result *res,
                    clpdd_err *e) {
    memset(res, 0, sizeof *res);
    double t0 = clpdd_now();
    if (clpdd_sweep_validate(s, o, e)) return -1;
    int *todo = clpdd_xcalloc((size_t)(s->n_points ? s->n_points : 1), sizeof *todo);
    int n = 0;
    for (int i = 0; i < s->n_points; i++)
        if (clpdd_sweep_in_shard(i, r->shard_i, r->shard_n)) todo[n++] = i;
    res->in_shard = n;
    if (refuse_stale(s, todo, n, e)) {
        free(todo);
        return -1;
    }
    fprintf(stderr, "sweep %s: %d point%s", s->name, n, n == 1 ? "" : "s");
    if (r->shard_n > 1) fprintf(stderr, " (shard %d/%d of %d)", r->shard_i, r->shard_n, s->n_points);
    fprintf(stderr, " in %s\n", s->root);
    int rc = 0;
    if (r->jobs > 1) {
        rc = run_forked(s, o, r, todo, n, res, e);
    } else {
        for (int k = 0; k < n; k++) {
            const clpdd_sweep_point *p = &s->points[todo[k]];
            double t = clpdd_now();
            if (!r->quiet) say(s, p, k + 1, n, "running", -1);
            clpdd_err pe = {{0}};
            int prc = run_point(s, p, o, r, r->quiet, &pe);
            tally(res, prc);
            if (prc < 0) fprintf(stderr, "sweep %s: [%d/%d] %s: FAILED: %s\n", s->name, k + 1, n, p->name, pe.msg);
            else say(s, p, k + 1, n, prc == 1 ? "finished before: skipped" : "done", prc == 1 ? -1 : clpdd_now() - t);
        }
    }
    free(todo);
    res->seconds = clpdd_now() - t0;
    return rc;
}
