/* Loading an experiment: the core sections validated against the key table (keys.c), the
 * values the core derives (name, output, root), the checks across keys, then the plugins, each
 * section validated against its plugin's keys; and the resolved configuration written back. */
#define _GNU_SOURCE
#include "config/experiment.h"

#include "plugin/host.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const clpdd_key plugin_name_key = {"name", CLPDD_KEY_STRING, NULL, "plugin name (see `clpdd plugins`) or a path to a .so", 1, 0, NULL};

static const char *plugin_sections[] = {"backbone", "solver", "loss"};

/* a section's first line, for errors about the whole section */
static void section_where(const clpdd_section *s, char *buf, size_t n) {
    int line = 0;
    const char *file = NULL;
    if (clpdd_section_count(s) > 0) clpdd_section_raw(s, clpdd_section_key_at(s, 0), &line, &file);
    if (file && line > 0) snprintf(buf, n, "%s:%d", file, line);
    else if (file && line < 0) snprintf(buf, n, "--set");
    else snprintf(buf, n, "%s", file ? file : "?");
}

/* a value the core derives (not from the file): stored as a default, then re-validated */
static int derive(clpdd_section *s, const char *key, const char *value, clpdd_err *e) {
    int n_core;
    const clpdd_core_section *core = clpdd_core_sections(&n_core);
    clpdd_section_put(s, key, value, "<derived>", 0);
    for (int j = 0; j < n_core; j++)
        if (!strcmp(core[j].name, clpdd_section_name(s))) return clpdd_section_validate(s, core[j].keys, core[j].n_keys, e);
    CLPDD_ASSERT(!"derive: not a core section");
    return -1;
}

/* Unset keys whose default the plugin derives from other keys (ABI ≥ 1.2 key_default) get the
   value in force, still marked as defaults, so config.ini and `clpdd check` show what runs. */
#define PLUGIN_DEFAULT "<plugin default>"
static int resolve_plugin_defaults(const clpdd_plugin *d, clpdd_section *s, const clpdd_key *keys, int nk, clpdd_err *e) {
    if (d->abi_minor < 2 || !d->key_default) return 0;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_host_set_quiet(h, 1);
    int n = 0;
    char **vals = clpdd_xcalloc((size_t)nk, sizeof *vals);
    for (int i = 1; i < nk; i++) { /* keys[0] is the name */
        char buf[1024];
        const char *v = clpdd_section_is_set(s, keys[i].name) ? NULL : d->key_default(h, s, keys[i].name, buf, sizeof buf);
        if (v) vals[i] = clpdd_xstrdup(v), n++;
    }
    clpdd_host_destroy(h);
    for (int i = 1; i < nk; i++)
        if (vals[i]) clpdd_section_put(s, keys[i].name, vals[i], PLUGIN_DEFAULT, 0);
    for (int i = 0; i < nk; i++) free(vals[i]);
    free(vals);
    clpdd_err inner;
    if (n == 0 || clpdd_section_validate(s, keys, nk, &inner) == 0) return 0;
    return clpdd_err_set(e, "plugin '%s' resolved a default that fails its own key check (a plugin bug): %s", d->name,
                         inner.msg);
}

/* "backbone=<name> <version>; k=v ..." over every resolved key but the inference batch, a speed
   knob that must not change the features */
static char *backbone_key(const clpdd_plugin *d, const clpdd_section *s) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "backbone=%s %s;", d->name, d->version);
    for (int i = 0; i < clpdd_section_count(s); i++) {
        const char *k = clpdd_section_key_at(s, i);
        if (strcmp(k, CLPDD_KEY_INFERENCE_BATCH) != 0) clpdd_sb_printf(&b, " %s=%s", k, clpdd_section_raw(s, k, NULL, NULL));
    }
    return b.s;
}

/* load the plugin named in section `sec` and validate the section against name + its keys */
static int load_plugin(clpdd_experiment *x, const char *secname, clpdd_plugin_kind kind, const clpdd_plugin_dirs *dirs,
                       clpdd_loaded *out, clpdd_section **cfg, clpdd_err *e) {
    clpdd_section *s = clpdd_ini_section(&x->ini, secname);
    if (!s) return clpdd_err_set(e, "%s: missing section [%s] (it needs at least: name = <%s plugin>)", x->ini.path, secname, secname);
    int line = 0;
    const char *file = NULL;
    const char *name = clpdd_section_raw(s, "name", &line, &file);
    if (!name || !*name)
        return clpdd_err_set(e, "%s: section [%s] needs 'name = <plugin>' (`clpdd plugins` lists them)", x->ini.path, secname);
    clpdd_err le;
    if (clpdd_plugin_find(dirs, kind, name, out, &le)) {
        if (line > 0) return clpdd_err_set(e, "%s:%d: [%s] name = %s: %s", file, line, secname, name, le.msg);
        return clpdd_err_set(e, "[%s] name = %s: %s", secname, name, le.msg);
    }
    const clpdd_plugin *d = out->desc;
    int nk = d->n_keys + 1;
    clpdd_key *keys = clpdd_xcalloc((size_t)nk, sizeof *keys);
    keys[0] = plugin_name_key;
    for (int i = 0; i < d->n_keys; i++) {
        if (strcmp(d->keys[i].name, "name") == 0) {
            free(keys);
            return clpdd_err_set(e, "%s: plugin '%s' declares the reserved key 'name'", out->path, d->name);
        }
        keys[i + 1] = d->keys[i];
    }
    int rc = clpdd_section_validate(s, keys, nk, e);
    /* the section keeps pointers into `keys` for typed access: keep the table alive with x */
    if (rc) {
        free(keys);
        return -1;
    }
    x->plugin_keys[kind] = keys;
    *cfg = s;
    return resolve_plugin_defaults(d, s, keys, nk, e);
}

/* every section known; the core sections validated against the key table (defaults applied) */
static int validate_core(clpdd_experiment *x, clpdd_err *e) {
    int n_core;
    const clpdd_core_section *core = clpdd_core_sections(&n_core);
    for (int i = 0; i < x->ini.n_sections; i++) {
        const char *name = clpdd_section_name(x->ini.sections[i]);
        int known = 0;
        for (int j = 0; j < n_core; j++) known |= strcmp(name, core[j].name) == 0;
        for (int j = 0; j < 3; j++) known |= strcmp(name, plugin_sections[j]) == 0;
        known |= strcmp(name, "sweep") == 0; /* read by `clpdd sweep`; a single run ignores it */
        if (!known) {
            char where[1100];
            section_where(x->ini.sections[i], where, sizeof where);
            return clpdd_err_set(e, "%s: unknown section [%s] (known: experiment, data, backbone, solver, loss, distill, eval, sweep)",
                                 where, name);
        }
    }
    for (int j = 0; j < n_core; j++) {
        clpdd_section *s = clpdd_ini_section_add(&x->ini, core[j].name);
        if (clpdd_section_validate(s, core[j].keys, core[j].n_keys, e)) return -1;
    }
    return 0;
}

/* [experiment] name (default: the file's base name) and output (default: runs/<name>) */
static int derive_name_output(clpdd_experiment *x, clpdd_err *e) {
    clpdd_section *s = clpdd_ini_section(&x->ini, "experiment");
    const char *name = clpdd_section_str(s, "name");
    if (!*name) {
        const char *base = strrchr(x->ini.path, '/');
        base = base ? base + 1 : x->ini.path;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", base);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
        if (derive(s, "name", buf, e)) return -1;
        name = clpdd_section_str(s, "name");
    }
    if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/')) {
        char where[1100], esc[300];
        section_where(s, where, sizeof where);
        return clpdd_err_set(e, "%s: [experiment] name = '%s' must be one path component (no '/', not . or ..): runs go to "
                                "runs/<name>; set [experiment] output to write elsewhere",
                             where, clpdd_escape(name, esc, sizeof esc));
    }
    if (*clpdd_section_str(s, "output")) return 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "runs/%s", name);
    return derive(s, "output", buf, e);
}

/* [data] root: required but for fashion-mnist, whose default is the Debian package's directory */
static int derive_root(clpdd_experiment *x, clpdd_err *e) {
    clpdd_section *s = clpdd_ini_section(&x->ini, "data");
    if (*clpdd_section_str(s, "root")) return 0;
    clpdd_dataset_kind dataset = (clpdd_dataset_kind)clpdd_section_enum(s, "dataset");
    if (dataset != CLPDD_DATASET_FASHION_MNIST)
        return clpdd_err_set(e, "%s: [data] dataset = %s needs root = <%s>", x->ini.path, clpdd_dataset_kind_name(dataset),
                             dataset == CLPDD_DATASET_MANIFEST ? "its CSV file" : "its directory");
    return derive(s, "root", "/usr/share/datasets/fashion-mnist", e);
}

/* the checks across keys, once every field is stored */
static int check_core(clpdd_experiment *x, clpdd_err *e) {
    char where[1100];
    int idx = x->dataset == CLPDD_DATASET_FASHION_MNIST || x->dataset == CLPDD_DATASET_MNIST;
    if (idx && (x->resize || x->crop || x->test_resize || x->test_crop || *x->classes_file)) {
        section_where(clpdd_ini_section(&x->ini, "data"), where, sizeof where);
        return clpdd_err_set(e, "%s: [data] resize, crop, test_resize, test_crop and classes are for image datasets "
                                "(imagefolder, manifest, cifar10, cifar100), not %s", where, clpdd_dataset_kind_name(x->dataset));
    }
    if (*x->group && x->dataset != CLPDD_DATASET_MANIFEST && x->dataset != CLPDD_DATASET_IMAGEFOLDER) {
        section_where(clpdd_ini_section(&x->ini, "data"), where, sizeof where);
        return clpdd_err_set(e, "%s: [data] group = %s: groups come from a manifest's column or an image folder's path, "
                                "not from %s", where, x->group, clpdd_dataset_kind_name(x->dataset));
    }
    if (x->select == CLPDD_SELECT_WORST_GROUP && !*x->group) {
        section_where(clpdd_ini_section(&x->ini, "eval"), where, sizeof where);
        return clpdd_err_set(e, "%s: [eval] select = worst_group needs groups: set [data] group", where);
    }
    if (x->protocol == CLPDD_PROTOCOL_PROBE && x->n_wd > 1 && x->val_size == 0) {
        section_where(clpdd_ini_section(&x->ini, "eval"), where, sizeof where);
        return clpdd_err_set(e, "%s: [eval] protocol = probe chooses wd on the validation split, but [data] val_size = 0: "
                                "set val_size > 0, or give a single wd value", where);
    }
    return 0;
}

/* [distill] labels = learn needs a solver whose backward gives dY_s through a loss on its logits,
   and a loss whose support labels are plain one-hot rows (docs/design.md §1, "Learned labels") */
static int check_labels(const clpdd_experiment *x, clpdd_err *e) {
    if (x->labels != CLPDD_LABELS_LEARN) return 0;
    char where[1100] = "--set";
    const clpdd_section *distill = clpdd_ini_section(&x->ini, "distill");
    if (distill) section_where(distill, where, sizeof where);
    const clpdd_solver_vt *svt = x->solver.desc->vtable;
    if (svt->objective)
        return clpdd_err_set(e, "%s: [distill] labels = learn: solver '%s' matches the gradients of one-hot heads, not "
                                "a loss on a label matrix; use labels = onehot, or a ridge/ntk/unrolled solver", where,
                             x->solver.desc->name);
    const clpdd_loss_vt *lvt = x->loss.desc->vtable;
    if (lvt->encode_labels)
        return clpdd_err_set(e, "%s: [distill] labels = learn: loss '%s' encodes its own support targets (not a "
                                "probability matrix); use labels = onehot, or [loss] name = ce", where,
                             x->loss.desc->name);
    return 0;
}

/* backbone, solver, and a loss unless the solver computes its own objective */
static int load_plugins(clpdd_experiment *x, const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    if (load_plugin(x, "backbone", CLPDD_KIND_BACKBONE, dirs, &x->backbone, &x->backbone_cfg, e)) return -1;
    x->backbone_key = backbone_key(x->backbone.desc, x->backbone_cfg);
    if (load_plugin(x, "solver", CLPDD_KIND_SOLVER, dirs, &x->solver, &x->solver_cfg, e)) return -1;
    const clpdd_solver_vt *svt = x->solver.desc->vtable;
    clpdd_section *loss = clpdd_ini_section(&x->ini, "loss");
    if (!svt->objective)
        return load_plugin(x, "loss", CLPDD_KIND_LOSS, dirs, &x->loss, &x->loss_cfg, e) || check_labels(x, e) ? -1 : 0;
    if (check_labels(x, e)) return -1;
    if (!loss) return 0;
    char where[1100];
    section_where(loss, where, sizeof where);
    return clpdd_err_set(e, "%s: solver '%s' computes its own objective, so a [loss] section is an error; remove it", where,
                         x->solver.desc->name);
}

/* the --set overrides, the core sections (validated, derived defaults filled in, every key into
   its field, the checks across keys), then the plugins */
static int load(clpdd_experiment *x, const char *const *sets, int n_sets, const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    for (int i = 0; i < n_sets; i++)
        if (clpdd_ini_set(&x->ini, sets[i], e)) return -1;
    if (validate_core(x, e) || derive_name_output(x, e) || derive_root(x, e)) return -1;
    clpdd_core_keys_store(x);
    if (x->test_resize < 0) x->test_resize = x->resize;
    if (x->test_crop < 0) x->test_crop = x->crop;
    if (check_core(x, e)) return -1;
    return load_plugins(x, dirs, e);
}

int clpdd_experiment_load(clpdd_experiment *x, const char *path, const char *const *sets, int n_sets,
                          const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    memset(x, 0, sizeof *x);
    if (clpdd_ini_load(path, &x->ini, e)) return -1;
    return load(x, sets, n_sets, dirs, e);
}

int clpdd_experiment_load_memory(clpdd_experiment *x, const char *text, const char *label, const char *const *sets,
                                 int n_sets, const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    memset(x, 0, sizeof *x);
    if (clpdd_ini_load_memory(text, strlen(text), label, &x->ini, e)) return -1;
    return load(x, sets, n_sets, dirs, e);
}

void clpdd_experiment_free(clpdd_experiment *x) {
    clpdd_plugin_close(&x->backbone);
    clpdd_plugin_close(&x->solver);
    clpdd_plugin_close(&x->loss);
    free(x->backbone_key);
    clpdd_ini_free(&x->ini);
    for (int i = 0; i < 3; i++) free(x->plugin_keys[i]);
    memset(x, 0, sizeof *x);
}

static void dump_section(clpdd_strbuf *b, const clpdd_section *s) {
    clpdd_sb_printf(b, "[%s]\n", clpdd_section_name(s));
    for (int i = 0; i < clpdd_section_count(s); i++) {
        const char *k = clpdd_section_key_at(s, i);
        int line;
        const char *file;
        const char *v = clpdd_section_raw(s, k, &line, &file);
        const char *mark = line < 0 ? "    ; --set" : "";
        if (line == 0) mark = file && !strcmp(file, PLUGIN_DEFAULT) ? "    ; default, as the plugin resolves it" : "    ; default";
        clpdd_sb_printf(b, "%s = %s%s\n", k, v, mark);
    }
    clpdd_sb_printf(b, "\n");
}

char *clpdd_experiment_resolved_ini(const clpdd_experiment *x) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "; resolved configuration of %s (every key, defaults marked)\n\n", x->ini.path);
    const char *order[] = {"experiment", "data", "backbone", "solver", "loss", "distill", "eval"};
    for (int i = 0; i < 7; i++) {
        const clpdd_section *s = clpdd_ini_section(&x->ini, order[i]);
        if (s) dump_section(&b, s);
    }
    return b.s;
}

int clpdd_config_key_incidental(const char *section, const char *key) {
    static const char *const skip[][2] = {{"experiment", "name"},     {"experiment", "output"},
                                          {"experiment", "device"},   {"experiment", "progress_every"},
                                          {"distill", "checkpoint_every"}, {"backbone", CLPDD_KEY_INFERENCE_BATCH},
                                          {"data", "prefetch"}};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcmp(section, skip[i][0]) && !strcmp(key, skip[i][1])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char *clpdd_experiment_distill_ini(const clpdd_experiment *x) {
    /* "section.key = value" lines, sorted: neither key order nor file names nor comments matter */
    int n = 0, cap = 0;
    char **lines = NULL;
    const char *order[] = {"experiment", "data", "backbone", "solver", "loss", "distill"};
    for (int i = 0; i < 6; i++) {
        const clpdd_section *s = clpdd_ini_section(&x->ini, order[i]);
        for (int j = 0; s && j < clpdd_section_count(s); j++) {
            const char *k = clpdd_section_key_at(s, j);
            if (clpdd_config_key_incidental(order[i], k)) continue;
            if (n == cap) lines = realloc(lines, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *lines);
            CLPDD_ASSERT(lines);
            clpdd_strbuf line = {0};
            clpdd_sb_printf(&line, "%s.%s = %s\n", order[i], k, clpdd_section_raw(s, k, NULL, NULL));
            lines[n++] = line.s;
        }
    }
    qsort(lines, (size_t)n, sizeof *lines, cmp_str);
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "%s", "");
    for (int i = 0; i < n; i++) {
        clpdd_sb_printf(&b, "%s", lines[i]);
        free(lines[i]);
    }
    free(lines);
    return b.s;
}
