#define _GNU_SOURCE
#include "experiment.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define UNBOUNDED 1, 0

static const clpdd_key experiment_keys[] = {
    {"name", CLPDD_KEY_STRING, "", "run name (default: the INI file's base name)", UNBOUNDED, NULL},
    {"seed", CLPDD_KEY_INT, "0", "seed of everything random in the run (init, batches, eval)", 0, 4294967295.0, NULL},
    {"device", CLPDD_KEY_ENUM, "auto", "auto = cuda when a GPU is visible, else cpu", UNBOUNDED, "auto|cpu|cuda"},
    {"output", CLPDD_KEY_STRING, "", "run directory (default: runs/<name>)", UNBOUNDED, NULL},
    {"progress_every", CLPDD_KEY_INT, "0", "progress line every N steps when not a terminal (0 = about 20 lines)", 0, 1e9, NULL},
};

static const clpdd_key data_keys[] = {
    {"dataset", CLPDD_KEY_ENUM, "fashion-mnist", "IDX dataset: fashion-mnist or mnist", UNBOUNDED, "fashion-mnist|mnist"},
    {"root", CLPDD_KEY_STRING, "", "directory of the IDX files (default for fashion-mnist: /usr/share/datasets/fashion-mnist, Debian package dataset-fashion-mnist)", UNBOUNDED, NULL},
    {"train_limit", CLPDD_KEY_INT, "0", "use a random class-stratified subset of this many training images for the real features (0 = all)", 0, 1e9, NULL},
    {"test_limit", CLPDD_KEY_INT, "0", "evaluate on the first N test images (0 = all)", 0, 1e9, NULL},
    {"subset_seed", CLPDD_KEY_INT, "0", "seed of the train_limit subset (kept apart from the run seed so runs share one feature cache)", 0, 4294967295.0, NULL},
    {"cache_dir", CLPDD_KEY_STRING, "", "feature cache directory (default: $CLPDD_CACHE_DIR, else $XDG_CACHE_HOME/clpdd, else ~/.cache/clpdd)", UNBOUNDED, NULL},
    {"adapt", CLPDD_KEY_ENUM, "resize", "how images of another size reach the backbone: resize = bilinear; pad = centred zero border on the [0,1] image (28x28 -> 32x32: 2 px each side), backward = crop", UNBOUNDED, "resize|pad"},
};

static const clpdd_key distill_keys[] = {
    {"ipc", CLPDD_KEY_INT, "1", "synthetic images per class", 1, 100000, NULL},
    {"steps", CLPDD_KEY_INT, "1000", "optimisation steps", 0, 1e9, NULL},
    {"lr", CLPDD_KEY_FLOAT, "0.01", "Adam learning rate on the pixels (images in [0, 1])", 0, 1e6, NULL},
    {"adam_b1", CLPDD_KEY_FLOAT, "0.9", "Adam beta1", 0, 0.999999, NULL},
    {"adam_b2", CLPDD_KEY_FLOAT, "0.999", "Adam beta2", 0, 0.99999999, NULL},
    {"real_batch", CLPDD_KEY_INT, "1024", "real features sampled per step (n)", 1, 1e8, NULL},
    {"init", CLPDD_KEY_ENUM, "real", "real: random real images of each class; noise: uniform [0, 1]", UNBOUNDED, "real|noise"},
    {"param", CLPDD_KEY_ENUM, "pixels", "what Adam optimises: pixels (clamped to [0, 1]), or LGM's pyramid (levels 1x1, 2x2, ... upsampled and summed, colour-decorrelated, sigmoid(2x))", UNBOUNDED, "pixels|pyramid"},
    {"pyramid_every", CLPDD_KEY_INT, "200", "pyramid: steps between added levels (0: all levels from the start); Adam state starts fresh for each new level", 0, 1e9, NULL},
    {"pyramid_init_std", CLPDD_KEY_FLOAT, "0.01", "pyramid with init = noise: std of the initial coarse levels", 0, 10, NULL},
    {"decorrelate", CLPDD_KEY_BOOL, "true", "pyramid: Lucid's colour decorrelation for 3-channel images", UNBOUNDED, NULL},
    {"augment", CLPDD_KEY_ENUM, "none", "differentiable augmentation: none, or dsa (LGM's flip, random-resized-crop, noise) of the synthetic copies and the real batch, whose features are then recomputed through the backbone every step", UNBOUNDED, "none|dsa"},
    {"augs_per_batch", CLPDD_KEY_INT, "1", "dsa: augmented copies of the synthetic set per step", 1, 1024, NULL},
    {"dsa_flip_p", CLPDD_KEY_FLOAT, "0.5", "dsa: probability of a horizontal flip", 0, 1, NULL},
    {"dsa_scale_min", CLPDD_KEY_FLOAT, "0.08", "dsa: smallest crop area fraction of random-resized-crop (ratio 3/4 to 4/3)", 1e-3, 1, NULL},
    {"dsa_noise_p", CLPDD_KEY_FLOAT, "0.5", "dsa: probability of additive Gaussian noise on an image", 0, 1, NULL},
    {"dsa_noise_mean", CLPDD_KEY_FLOAT, "0.5", "dsa: mean of the additive noise (in [0, 1] pixel units)", -10, 10, NULL},
    {"dsa_noise_std", CLPDD_KEY_FLOAT, "0.2", "dsa: std of the additive noise", 0, 10, NULL},
    {"log_every", CLPDD_KEY_INT, "10", "write a log.csv row every N steps", 1, 1e9, NULL},
    {"checkpoint_every", CLPDD_KEY_INT, "100", "write <run dir>/checkpoint.safetensors every N steps (0: never), for `clpdd run --resume` after a crash; removed when the run finishes", 0, 1e9, NULL},
    {"chunk", CLPDD_KEY_INT, "0", "0: one backbone tape for all m images; k > 0: forward without activations, then recompute and backpropagate k images at a time (memory grows with k, not m; one extra forward)", 0, 1e9, NULL},
};

static const clpdd_key eval_keys[] = {
    {"protocol", CLPDD_KEY_ENUM, "fast", "fast: LGM's probe on features computed once; lgm: the same probe on features of images flipped and random-resized-cropped afresh every epoch (a backbone pass per epoch)", UNBOUNDED, "fast|lgm"},
    {"seeds", CLPDD_KEY_INT, "5", "probe trainings (seeds) per evaluated set", 1, 1000, NULL},
    {"epochs", CLPDD_KEY_INT, "1000", "probe epochs", 1, 1e7, NULL},
    {"batch", CLPDD_KEY_INT, "100", "probe batch: min(batch, m)", 1, 1e6, NULL},
    {"lr", CLPDD_KEY_FLOAT, "0.001", "probe Adam lr per 256 samples: lr * batch / 256 (LGM)", 0, 1e3, NULL},
    {"baseline_random", CLPDD_KEY_BOOL, "true", "also score ipc random real images per class (a fresh draw per seed)", UNBOUNDED, NULL},
    {"baseline_full", CLPDD_KEY_BOOL, "false", "also score a probe trained on every real training feature (the ceiling), for full_epochs", UNBOUNDED, NULL},
    {"full_epochs", CLPDD_KEY_INT, "30", "epochs of the full-data probe (same head, optimiser and schedule)", 1, 1e6, NULL},
    {"ridge_diagnostic", CLPDD_KEY_BOOL, "true", "also score the run's closed-form solver fitted on the distilled features", UNBOUNDED, NULL},
};

static const clpdd_key plugin_name_key = {"name", CLPDD_KEY_STRING, NULL, "plugin name (see `clpdd plugins`) or a path to a .so", UNBOUNDED, NULL};

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))
static const clpdd_core_section core_sections[] = {
    {"experiment", experiment_keys, N(experiment_keys)},
    {"data", data_keys, N(data_keys)},
    {"distill", distill_keys, N(distill_keys)},
    {"eval", eval_keys, N(eval_keys)},
};

const clpdd_core_section *clpdd_core_sections(int *n) {
    *n = N(core_sections);
    return core_sections;
}

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
static int derive(clpdd_section *s, const char *key, const char *value, const clpdd_key *keys, int n_keys, clpdd_err *e) {
    clpdd_section_put(s, key, value, "<derived>", 0);
    return clpdd_section_validate(s, keys, n_keys, e);
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
    return 0;
}

int clpdd_experiment_load(clpdd_experiment *x, const char *path, const char *const *sets, int n_sets,
                          const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    memset(x, 0, sizeof *x);
    if (clpdd_ini_load(path, &x->ini, e)) return -1;
    for (int i = 0; i < n_sets; i++)
        if (clpdd_ini_set(&x->ini, sets[i], e)) return -1;

    /* every section must be known */
    for (int i = 0; i < x->ini.n_sections; i++) {
        const char *name = clpdd_section_name(x->ini.sections[i]);
        int known = 0;
        for (int j = 0; j < N(core_sections); j++) known |= strcmp(name, core_sections[j].name) == 0;
        for (int j = 0; j < 3; j++) known |= strcmp(name, plugin_sections[j]) == 0;
        if (!known) {
            char where[1100];
            section_where(x->ini.sections[i], where, sizeof where);
            return clpdd_err_set(e, "%s: unknown section [%s] (known: experiment, data, backbone, solver, loss, distill, eval)",
                                 where, name);
        }
    }
    for (int j = 0; j < N(core_sections); j++) {
        clpdd_section *s = clpdd_ini_section_add(&x->ini, core_sections[j].name);
        if (clpdd_section_validate(s, core_sections[j].keys, core_sections[j].n_keys, e)) return -1;
    }
    clpdd_section *s = clpdd_ini_section(&x->ini, "experiment");
    x->name = clpdd_section_str(s, "name");
    if (!*x->name) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", base);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
        if (derive(s, "name", buf, experiment_keys, N(experiment_keys), e)) return -1;
        x->name = clpdd_section_str(s, "name");
    }
    x->seed = (uint64_t)clpdd_section_int(s, "seed");
    x->output = clpdd_section_str(s, "output");
    if (!*x->output) {
        char buf[4096];
        snprintf(buf, sizeof buf, "runs/%s", x->name);
        if (derive(s, "output", buf, experiment_keys, N(experiment_keys), e)) return -1;
        x->name = clpdd_section_str(s, "name");
        x->output = clpdd_section_str(s, "output");
    }
    x->device = clpdd_section_str(s, "device");
    x->progress_every = (int)clpdd_section_int(s, "progress_every");

    s = clpdd_ini_section(&x->ini, "data");
    x->dataset = clpdd_section_str(s, "dataset");
    x->root = clpdd_section_str(s, "root");
    if (!*x->root) {
        if (strcmp(x->dataset, "fashion-mnist") != 0)
            return clpdd_err_set(e, "%s: [data] dataset = %s needs root = <directory of its IDX files>", x->ini.path, x->dataset);
        if (derive(s, "root", "/usr/share/datasets/fashion-mnist", data_keys, N(data_keys), e)) return -1;
        x->dataset = clpdd_section_str(s, "dataset");
        x->root = clpdd_section_str(s, "root");
    }
    x->train_limit = (long)clpdd_section_int(s, "train_limit");
    x->test_limit = (long)clpdd_section_int(s, "test_limit");
    x->subset_seed = (uint64_t)clpdd_section_int(s, "subset_seed");
    x->cache_dir = clpdd_section_str(s, "cache_dir");
    x->adapt = clpdd_section_str(s, "adapt");

    s = clpdd_ini_section(&x->ini, "distill");
    x->ipc = (int)clpdd_section_int(s, "ipc");
    x->steps = (int)clpdd_section_int(s, "steps");
    x->lr = (float)clpdd_section_float(s, "lr");
    x->adam_b1 = (float)clpdd_section_float(s, "adam_b1");
    x->adam_b2 = (float)clpdd_section_float(s, "adam_b2");
    x->real_batch = (int)clpdd_section_int(s, "real_batch");
    x->init = clpdd_section_str(s, "init");
    x->param = clpdd_section_str(s, "param");
    x->pyramid_every = (int)clpdd_section_int(s, "pyramid_every");
    x->pyramid_init_std = (float)clpdd_section_float(s, "pyramid_init_std");
    x->decorrelate = clpdd_section_bool(s, "decorrelate");
    x->augment = clpdd_section_str(s, "augment");
    x->augs_per_batch = (int)clpdd_section_int(s, "augs_per_batch");
    x->dsa_flip_p = (float)clpdd_section_float(s, "dsa_flip_p");
    x->dsa_scale_min = (float)clpdd_section_float(s, "dsa_scale_min");
    x->dsa_noise_p = (float)clpdd_section_float(s, "dsa_noise_p");
    x->dsa_noise_mean = (float)clpdd_section_float(s, "dsa_noise_mean");
    x->dsa_noise_std = (float)clpdd_section_float(s, "dsa_noise_std");
    x->log_every = (int)clpdd_section_int(s, "log_every");
    x->chunk = (int)clpdd_section_int(s, "chunk");
    x->checkpoint_every = (int)clpdd_section_int(s, "checkpoint_every");

    s = clpdd_ini_section(&x->ini, "eval");
    x->protocol = clpdd_section_str(s, "protocol");
    x->eval_seeds = (int)clpdd_section_int(s, "seeds");
    x->eval_epochs = (int)clpdd_section_int(s, "epochs");
    x->eval_batch = (int)clpdd_section_int(s, "batch");
    x->eval_lr = (float)clpdd_section_float(s, "lr");
    x->baseline_random = clpdd_section_bool(s, "baseline_random");
    x->ridge_diagnostic = clpdd_section_bool(s, "ridge_diagnostic");
    x->baseline_full = clpdd_section_bool(s, "baseline_full");
    x->full_epochs = (int)clpdd_section_int(s, "full_epochs");

    if (load_plugin(x, "backbone", CLPDD_KIND_BACKBONE, dirs, &x->backbone, &x->backbone_cfg, e)) return -1;
    if (load_plugin(x, "solver", CLPDD_KIND_SOLVER, dirs, &x->solver, &x->solver_cfg, e)) return -1;
    const clpdd_solver_vt *svt = x->solver.desc->vtable;
    clpdd_section *loss = clpdd_ini_section(&x->ini, "loss");
    if (svt->objective) {
        if (loss) {
            char where[1100];
            section_where(loss, where, sizeof where);
            return clpdd_err_set(e, "%s: solver '%s' computes its own objective, so a [loss] section is an error; remove it",
                                 where, x->solver.desc->name);
        }
    } else if (load_plugin(x, "loss", CLPDD_KIND_LOSS, dirs, &x->loss, &x->loss_cfg, e)) {
        return -1;
    }
    return 0;
}

void clpdd_experiment_free(clpdd_experiment *x) {
    clpdd_plugin_close(&x->backbone);
    clpdd_plugin_close(&x->solver);
    clpdd_plugin_close(&x->loss);
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
        clpdd_sb_printf(b, "%s = %s%s\n", k, v, line == 0 ? "    ; default" : line < 0 ? "    ; --set" : "");
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
