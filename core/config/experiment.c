#define _GNU_SOURCE
#include "config/experiment.h"

#include "plugin/host.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define UNBOUNDED 1, 0

/* each enum key's choices, in the order of its C enum (experiment.h) */
#define DEVICE_CHOICES "auto|cpu|cuda"
#define PRECISION_CHOICES "fp32|tf32|bf16"
#define DATASET_CHOICES "fashion-mnist|mnist|imagefolder|manifest|cifar10|cifar100"
#define INIT_CHOICES "real|noise"
#define PARAM_CHOICES "pixels|pyramid"
#define AUGMENT_CHOICES "none|dsa"
#define ADAPT_CHOICES "resize|pad|crop"
#define BAD_IMAGE_CHOICES "error|skip"
#define FEATURE_DTYPE_CHOICES "f32|f16"
#define PROTOCOL_CHOICES "probe|fast|lgm"

/* the i-th name of a "a|b|c" choices string */
static const char *choice_name(const char *choices, int i, char *buf, size_t n) {
    const char *p = choices;
    for (; i > 0 && p; i--) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    size_t len = strcspn(p, "|");
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), p);
    return buf;
}

/* a validated enum value's index in its choices */
static int choice_index(const clpdd_section *s, const char *key, const char *choices) {
    const char *v = clpdd_section_str(s, key);
    char buf[64];
    for (int i = 0;; i++) {
        const char *name = choice_name(choices, i, buf, sizeof buf);
        if (!strcmp(name, "?")) break;
        if (!strcmp(name, v)) return i;
    }
    CLPDD_ASSERT(!"validated enum value not among its choices");
    return 0;
}

/* an enum key's value as its C enum; the key's choices and the enum's name table must agree */
#define PARSE_ENUM(s, key, choices, table) parse_enum(s, key, choices, table, (int)(sizeof table / sizeof table[0]))
static int parse_enum(const clpdd_section *s, const char *key, const char *choices, const char *const *names, int count) {
    int i = choice_index(s, key, choices);
    CLPDD_ASSERT(i < count && !strcmp(names[i], clpdd_section_str(s, key)));
    return i;
}

/* the names, for messages and metrics (parse_enum checks each table against its choices) */
static const char *const device_names[CLPDD_DEVICE_COUNT] = {"auto", "cpu", "cuda"};
static const char *const precision_names[CLPDD_PRECISION_COUNT] = {"fp32", "tf32", "bf16"};
static const char *const dataset_names[CLPDD_DATASET_COUNT] = {"fashion-mnist", "mnist",   "imagefolder",
                                                                 "manifest",      "cifar10", "cifar100"};
static const char *const bad_image_names[] = {"error", "skip"};
static const char *const feature_dtype_names[] = {"f32", "f16"};
static const char *const protocol_names[CLPDD_PROTOCOL_COUNT] = {"probe", "fast", "lgm"};
static const char *const init_names[CLPDD_INIT_COUNT] = {"real", "noise"};
static const char *const augment_names[CLPDD_AUGMENT_COUNT] = {"none", "dsa"};
#define NAME_OF(table, k) ((unsigned)(k) < sizeof table / sizeof table[0] ? table[k] : "?")
const char *clpdd_device_name(clpdd_device_kind k) { return NAME_OF(device_names, k); }
int clpdd_device_parse(const char *name) {
    for (int i = 0; i < CLPDD_DEVICE_COUNT; i++)
        if (name && !strcmp(name, device_names[i])) return i;
    return -1;
}
const char *clpdd_dataset_kind_name(clpdd_dataset_kind k) { return NAME_OF(dataset_names, k); }
const char *clpdd_protocol_name(clpdd_protocol p) { return NAME_OF(protocol_names, p); }
const char *clpdd_init_name(clpdd_init_kind k) { return NAME_OF(init_names, k); }

static const clpdd_key experiment_keys[] = {
    {"name", CLPDD_KEY_STRING, "", "run name (default: the INI file's base name)", UNBOUNDED, NULL},
    {"seed", CLPDD_KEY_INT, "0", "seed of everything random in the run (init, batches, eval)", 0, 4294967295.0, NULL},
    {"device", CLPDD_KEY_ENUM, "auto", "auto = cuda when a GPU is visible, else cpu", UNBOUNDED, DEVICE_CHOICES},
    {"precision", CLPDD_KEY_ENUM, "fp32", "the backbone's matrix products in the distillation step (synthetic forward + backward, DSA's real forward): fp32; tf32 or bf16 = inputs rounded to that format on the GPU's tensor cores, fp32 accumulation, fp32 pixels, Adam state, features, ridge/NTK maths, Cholesky and loss. The CPU computes fp32 whatever is set (a warning says so); feature extraction and evaluation are always fp32", UNBOUNDED, PRECISION_CHOICES},
    {"output", CLPDD_KEY_STRING, "", "run directory (default: runs/<name>)", UNBOUNDED, NULL},
    {"progress_every", CLPDD_KEY_INT, "0", "progress line every N steps when not a terminal (0 = about 20 lines)", 0, 1e9, NULL},
};

static const clpdd_key data_keys[] = {
    {"dataset", CLPDD_KEY_ENUM, "fashion-mnist", "fashion-mnist, mnist (IDX files); imagefolder (root/<split>/<class>/<image>, torchvision's ImageFolder: ImageNet's layout); manifest (root = a CSV of path,label[,split] rows); cifar10, cifar100 (the binary versions)", UNBOUNDED, DATASET_CHOICES},
    {"root", CLPDD_KEY_STRING, "", "the dataset's directory (manifest: its CSV file); default for fashion-mnist: /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)", UNBOUNDED, NULL},
    {"classes", CLPDD_KEY_STRING, "", "imagefolder, manifest: a file with one class name per line (label i = line i; '#' lines skipped); selects a subset too, e.g. ImageNet-100 (default: every class folder, sorted by name)", UNBOUNDED, NULL},
    {"train_split", CLPDD_KEY_STRING, "", "the training split: imagefolder's sub-folder, a manifest's split value (default: train)", UNBOUNDED, NULL},
    {"test_split", CLPDD_KEY_STRING, "", "the test split (default: imagefolder val, manifest and cifar test)", UNBOUNDED, NULL},
    {"resize", CLPDD_KEY_INT, "0", "image datasets: training images resized so the shorter side is this (torchvision Resize: Pillow bilinear with antialias; 0 = stored size)", 0, 65536, NULL},
    {"crop", CLPDD_KEY_INT, "0", "image datasets: then the centred crop x crop window (torchvision CenterCrop; 0 = none); the synthetic images live at this size", 0, 65536, NULL},
    {"test_resize", CLPDD_KEY_INT, "-1", "test images' resize (-1: as resize)", -1, 65536, NULL},
    {"test_crop", CLPDD_KEY_INT, "-1", "test images' centre crop (-1: as crop)", -1, 65536, NULL},
    {"workers", CLPDD_KEY_INT, "0", "image datasets: decoder threads (0 = the machine's cores)", 0, 4096, NULL},
    {"on_bad_image", CLPDD_KEY_ENUM, "error", "an unreadable or truncated image: error (stop, naming the file) or skip (leave it out; counted in metrics.json)", UNBOUNDED, BAD_IMAGE_CHOICES},
    {"feature_dtype", CLPDD_KEY_ENUM, "f32", "the feature cache's storage: f32, or f16 (half the size; the features are then used as rounded to half precision)", UNBOUNDED, FEATURE_DTYPE_CHOICES},
    {"train_limit", CLPDD_KEY_INT, "0", "use a random class-stratified subset of this many training images for the real features (0 = all)", 0, 1e9, NULL},
    {"test_limit", CLPDD_KEY_INT, "0", "evaluate on the first N test images (0 = all)", 0, 1e9, NULL},
    {"val_size", CLPDD_KEY_INT, "1000", "training images held out (stratified by class, drawn with subset_seed) as the validation split: never distillation targets, never probe training data; every selection (the probe's L2, sweeps' hyper-parameters) uses it, and the test split is only reported (0 = none)", 0, 1e9, NULL},
    {"subset_seed", CLPDD_KEY_INT, "0", "seed of the train_limit subset (kept apart from the run seed so runs share one feature cache)", 0, 4294967295.0, NULL},
    {"cache_dir", CLPDD_KEY_STRING, "", "feature cache directory (default: $CLPDD_CACHE_DIR, else $XDG_CACHE_HOME/clpdd, else ~/.cache/clpdd)", UNBOUNDED, NULL},
    {"adapt", CLPDD_KEY_ENUM, "resize", "how images of another size reach the backbone (synthetic and real alike, differentiably): resize = bilinear; pad = centred zero border on the [0,1] image (28x28 -> 32x32: 2 px each side); crop = the centred window (256 -> 224, as LGM)", UNBOUNDED, ADAPT_CHOICES},
};

static const clpdd_key distill_keys[] = {
    {"ipc", CLPDD_KEY_INT, "1", "synthetic images per class", 1, 100000, NULL},
    {"steps", CLPDD_KEY_INT, "1000", "optimisation steps", 0, 1e9, NULL},
    {"lr", CLPDD_KEY_FLOAT, "0.01", "Adam learning rate on the pixels (images in [0, 1])", 0, 1e6, NULL},
    {"adam_b1", CLPDD_KEY_FLOAT, "0.9", "Adam beta1", 0, 0.999999, NULL},
    {"adam_b2", CLPDD_KEY_FLOAT, "0.999", "Adam beta2", 0, 0.99999999, NULL},
    {"real_batch", CLPDD_KEY_INT, "1024", "real features sampled per step (n)", 1, 1e8, NULL},
    {"init", CLPDD_KEY_ENUM, "real", "real: random real images of each class; noise: uniform [0, 1]", UNBOUNDED, INIT_CHOICES},
    {"param", CLPDD_KEY_ENUM, "pixels", "what Adam optimises: pixels (clamped to [0, 1]), or LGM's pyramid (levels 1x1, 2x2, ... upsampled and summed, colour-decorrelated, sigmoid(2x))", UNBOUNDED, PARAM_CHOICES},
    {"pyramid_every", CLPDD_KEY_INT, "200", "pyramid: steps between added levels (0: all levels from the start); Adam state starts fresh for each new level", 0, 1e9, NULL},
    {"pyramid_init_std", CLPDD_KEY_FLOAT, "0.01", "pyramid with init = noise: std of the initial coarse levels", 0, 10, NULL},
    {"decorrelate", CLPDD_KEY_BOOL, "true", "pyramid: Lucid's colour decorrelation for 3-channel images", UNBOUNDED, NULL},
    {"augment", CLPDD_KEY_ENUM, "none", "differentiable augmentation: none, or dsa (LGM's flip, random-resized-crop, noise) of the synthetic copies and the real batch, whose features are then recomputed through the backbone every step", UNBOUNDED, AUGMENT_CHOICES},
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
    {"protocol", CLPDD_KEY_ENUM, "probe", "probe: multinomial logistic regression on the features solved to convergence (L-BFGS, float64), L2 on the weights chosen from `wd` on the validation split; fast: LGM's Adam probe on features computed once; lgm: LGM's probe on features of images flipped and random-resized-cropped afresh every epoch (fast and lgm are faithful at the paper's sizes only: at m = 10 they do not train)", UNBOUNDED, PROTOCOL_CHOICES},
    {"wd", CLPDD_KEY_FLOATS, "1e-5, 1e-4, 1e-3, 1e-2, 1e-1", "probe: the L2 strengths tried (mean cross-entropy + wd/2 |W|^2); the one with the best validation accuracy is reported", 0, 1e6, NULL},
    {"probe_max_iter", CLPDD_KEY_INT, "1000", "probe: L-BFGS iteration cap (convergence is reported in metrics.json)", 1, 1e6, NULL},
    {"seeds", CLPDD_KEY_INT, "5", "random draws per baseline (and, for fast/lgm, probe trainings per evaluated set; the probe protocol's fit is deterministic)", 1, CLPDD_MAX_SEEDS, NULL},
    {"epochs", CLPDD_KEY_INT, "1000", "fast/lgm: probe epochs", 1, 1e7, NULL},
    {"batch", CLPDD_KEY_INT, "100", "fast/lgm: probe batch, min(batch, m)", 1, 1e6, NULL},
    {"lr", CLPDD_KEY_FLOAT, "0.001", "fast/lgm: probe Adam lr per 256 samples, lr * batch / 256 (LGM)", 0, 1e3, NULL},
    {"baseline_random", CLPDD_KEY_BOOL, "true", "also score ipc random real images per class (a fresh draw per seed)", UNBOUNDED, NULL},
    {"baseline_centroids", CLPDD_KEY_BOOL, "true", "also score class centroids: per class, the ipc real images nearest the class's mean feature", UNBOUNDED, NULL},
    {"baseline_full", CLPDD_KEY_BOOL, "true", "also score a probe trained on every real training feature (the ceiling)", UNBOUNDED, NULL},
    {"full_epochs", CLPDD_KEY_INT, "30", "fast/lgm: epochs of the full-data probe (same head, optimiser and schedule)", 1, 1e6, NULL},
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

static int load(clpdd_experiment *x, const char *const *sets, int n_sets, const clpdd_plugin_dirs *dirs, clpdd_err *e);

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

static int load(clpdd_experiment *x, const char *const *sets, int n_sets, const clpdd_plugin_dirs *dirs, clpdd_err *e) {
    for (int i = 0; i < n_sets; i++)
        if (clpdd_ini_set(&x->ini, sets[i], e)) return -1;

    /* every section must be known */
    for (int i = 0; i < x->ini.n_sections; i++) {
        const char *name = clpdd_section_name(x->ini.sections[i]);
        int known = 0;
        for (int j = 0; j < N(core_sections); j++) known |= strcmp(name, core_sections[j].name) == 0;
        for (int j = 0; j < 3; j++) known |= strcmp(name, plugin_sections[j]) == 0;
        known |= strcmp(name, "sweep") == 0; /* read by `clpdd sweep`; a single run ignores it */
        if (!known) {
            char where[1100];
            section_where(x->ini.sections[i], where, sizeof where);
            return clpdd_err_set(e, "%s: unknown section [%s] (known: experiment, data, backbone, solver, loss, distill, eval, sweep)",
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
        const char *base = strrchr(x->ini.path, '/');
        base = base ? base + 1 : x->ini.path;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", base);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
        if (derive(s, "name", buf, experiment_keys, N(experiment_keys), e)) return -1;
        x->name = clpdd_section_str(s, "name");
    }
    if (!strcmp(x->name, ".") || !strcmp(x->name, "..") || strchr(x->name, '/')) {
        char where[1100], esc[300];
        section_where(s, where, sizeof where);
        return clpdd_err_set(e, "%s: [experiment] name = '%s' must be one path component (no '/', not . or ..): runs go to "
                                "runs/<name>; set [experiment] output to write elsewhere",
                             where, clpdd_escape(x->name, esc, sizeof esc));
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
    x->device = (clpdd_device_kind)PARSE_ENUM(s, "device", DEVICE_CHOICES, device_names);
    x->precision = (clpdd_precision)PARSE_ENUM(s, "precision", PRECISION_CHOICES, precision_names);
    x->progress_every = (int)clpdd_section_int(s, "progress_every");

    s = clpdd_ini_section(&x->ini, "data");
    x->dataset = (clpdd_dataset_kind)PARSE_ENUM(s, "dataset", DATASET_CHOICES, dataset_names);
    x->root = clpdd_section_str(s, "root");
    if (!*x->root) {
        if (x->dataset != CLPDD_DATASET_FASHION_MNIST)
            return clpdd_err_set(e, "%s: [data] dataset = %s needs root = <%s>", x->ini.path, clpdd_dataset_kind_name(x->dataset),
                                 x->dataset == CLPDD_DATASET_MANIFEST ? "its CSV file" : "its directory");
        if (derive(s, "root", "/usr/share/datasets/fashion-mnist", data_keys, N(data_keys), e)) return -1;
        x->root = clpdd_section_str(s, "root");
    }
    x->classes_file = clpdd_section_str(s, "classes");
    x->train_split = clpdd_section_str(s, "train_split");
    x->test_split = clpdd_section_str(s, "test_split");
    x->resize = (int)clpdd_section_int(s, "resize");
    x->crop = (int)clpdd_section_int(s, "crop");
    x->test_resize = (int)clpdd_section_int(s, "test_resize");
    x->test_crop = (int)clpdd_section_int(s, "test_crop");
    if (x->test_resize < 0) x->test_resize = x->resize;
    if (x->test_crop < 0) x->test_crop = x->crop;
    x->workers = (int)clpdd_section_int(s, "workers");
    x->skip_bad_images = PARSE_ENUM(s, "on_bad_image", BAD_IMAGE_CHOICES, bad_image_names);
    x->feature_f16 = PARSE_ENUM(s, "feature_dtype", FEATURE_DTYPE_CHOICES, feature_dtype_names);
    int idx = x->dataset == CLPDD_DATASET_FASHION_MNIST || x->dataset == CLPDD_DATASET_MNIST;
    if (idx && (x->resize || x->crop || x->test_resize || x->test_crop || *x->classes_file)) {
        char where[1100];
        section_where(s, where, sizeof where);
        return clpdd_err_set(e, "%s: [data] resize, crop, test_resize, test_crop and classes are for image datasets "
                                "(imagefolder, manifest, cifar10, cifar100), not %s", where, clpdd_dataset_kind_name(x->dataset));
    }
    x->train_limit = (long)clpdd_section_int(s, "train_limit");
    x->test_limit = (long)clpdd_section_int(s, "test_limit");
    x->val_size = (long)clpdd_section_int(s, "val_size");
    x->subset_seed = (uint64_t)clpdd_section_int(s, "subset_seed");
    x->cache_dir = clpdd_section_str(s, "cache_dir");
    x->adapt = (clpdd_adapt_mode)clpdd_adapter_mode_parse(clpdd_section_str(s, "adapt"));
    CLPDD_ASSERT((int)x->adapt >= 0);

    s = clpdd_ini_section(&x->ini, "distill");
    x->ipc = (int)clpdd_section_int(s, "ipc");
    x->steps = (int)clpdd_section_int(s, "steps");
    x->lr = (float)clpdd_section_float(s, "lr");
    x->adam_b1 = (float)clpdd_section_float(s, "adam_b1");
    x->adam_b2 = (float)clpdd_section_float(s, "adam_b2");
    x->real_batch = (int)clpdd_section_int(s, "real_batch");
    x->init = (clpdd_init_kind)PARSE_ENUM(s, "init", INIT_CHOICES, init_names);
    x->param = (clpdd_param_kind)clpdd_param_kind_parse(clpdd_section_str(s, "param"));
    CLPDD_ASSERT((int)x->param >= 0);
    x->pyramid_every = (int)clpdd_section_int(s, "pyramid_every");
    x->pyramid_init_std = (float)clpdd_section_float(s, "pyramid_init_std");
    x->decorrelate = clpdd_section_bool(s, "decorrelate");
    x->augment = (clpdd_augment_kind)PARSE_ENUM(s, "augment", AUGMENT_CHOICES, augment_names);
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
    x->protocol = (clpdd_protocol)PARSE_ENUM(s, "protocol", PROTOCOL_CHOICES, protocol_names);
    x->n_wd = clpdd_section_floats(s, "wd", x->wd, CLPDD_MAX_WD);
    x->probe_max_iter = (int)clpdd_section_int(s, "probe_max_iter");
    x->baseline_centroids = clpdd_section_bool(s, "baseline_centroids");
    x->eval_seeds = (int)clpdd_section_int(s, "seeds");
    x->eval_epochs = (int)clpdd_section_int(s, "epochs");
    x->eval_batch = (int)clpdd_section_int(s, "batch");
    x->eval_lr = (float)clpdd_section_float(s, "lr");
    x->baseline_random = clpdd_section_bool(s, "baseline_random");
    x->ridge_diagnostic = clpdd_section_bool(s, "ridge_diagnostic");
    x->baseline_full = clpdd_section_bool(s, "baseline_full");
    x->full_epochs = (int)clpdd_section_int(s, "full_epochs");
    if (x->protocol == CLPDD_PROTOCOL_PROBE && x->n_wd > 1 && x->val_size == 0) {
        char where[1100];
        section_where(s, where, sizeof where);
        return clpdd_err_set(e, "%s: [eval] protocol = probe chooses wd on the validation split, but [data] val_size = 0: "
                                "set val_size > 0, or give a single wd value", where);
    }

    if (load_plugin(x, "backbone", CLPDD_KIND_BACKBONE, dirs, &x->backbone, &x->backbone_cfg, e)) return -1;
    x->backbone_key = backbone_key(x->backbone.desc, x->backbone_cfg);
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

/* keys that never change what the distillation computes */
static int outside_distillation(const char *section, const char *key) {
    static const char *const skip[][2] = {{"experiment", "name"},     {"experiment", "output"},
                                          {"experiment", "device"},   {"experiment", "progress_every"},
                                          {"distill", "checkpoint_every"}, {"backbone", CLPDD_KEY_INFERENCE_BATCH}};
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
            if (outside_distillation(order[i], k)) continue;
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
