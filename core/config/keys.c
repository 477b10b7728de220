/* The core's keys, each declared once: section, name, type, default, help, where its value is
 * stored in clpdd_experiment (offsetof + a typed setter) and, for an ENUM, its name table, in
 * the C enum's order (config/kinds.h). Parsing (clpdd_core_keys_store), `clpdd keys`,
 * `clpdd check` and config.ini all read these rows; a key's choices are its names joined
 * with '|', so an enum value's index in its choices is the enum value. */
#define _GNU_SOURCE
#include "config/experiment.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct core_key core_key;
typedef void (*key_setter)(clpdd_experiment *x, const core_key *k, const clpdd_section *s);
struct core_key {
    const char *section;
    clpdd_key key;            /* key.choices is NULL here: joined from names at first use */
    key_setter set;           /* writes the validated value into the field */
    size_t at, size;          /* the field: offsetof, sizeof */
    const char *const *names; /* ENUM: the names, in the enum's order; else NULL */
    int n_names;
};

#define UNBOUNDED 1, 0
#define FIELD(f) offsetof(clpdd_experiment, f), sizeof(((clpdd_experiment *)0)->f)
#define NAMES(table) table, (int)(sizeof table / sizeof table[0])
#define NO_NAMES NULL, 0

static void *field(clpdd_experiment *x, const core_key *k, size_t size) {
    CLPDD_ASSERT(k->size == size); /* the row's setter matches its field's type */
    return (char *)x + k->at;
}
static void set_str(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(const char **)field(x, k, sizeof(const char *)) = clpdd_section_str(s, k->key.name);
}
static void set_int(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(int *)field(x, k, sizeof(int)) = (int)clpdd_section_int(s, k->key.name);
}
static void set_long(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(long *)field(x, k, sizeof(long)) = (long)clpdd_section_int(s, k->key.name);
}
static void set_u64(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(uint64_t *)field(x, k, sizeof(uint64_t)) = (uint64_t)clpdd_section_int(s, k->key.name);
}
static void set_float(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(float *)field(x, k, sizeof(float)) = (float)clpdd_section_float(s, k->key.name);
}
static void set_bool(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(int *)field(x, k, sizeof(int)) = clpdd_section_bool(s, k->key.name);
}
/* an enum field (an int-sized C enum, or an int holding 0/1) */
static void set_enum(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    *(int *)field(x, k, sizeof(int)) = clpdd_section_enum(s, k->key.name);
}
/* [eval] wd: the values and their count */
static void set_wd(clpdd_experiment *x, const core_key *k, const clpdd_section *s) {
    x->n_wd = clpdd_section_floats(s, k->key.name, field(x, k, sizeof x->wd), CLPDD_MAX_WD);
}

_Static_assert(sizeof(clpdd_device_kind) == sizeof(int) && sizeof(clpdd_precision) == sizeof(int) &&
                   sizeof(clpdd_dataset_kind) == sizeof(int) && sizeof(clpdd_adapt_mode) == sizeof(int) &&
                   sizeof(clpdd_init_kind) == sizeof(int) && sizeof(clpdd_param_kind) == sizeof(int) &&
                   sizeof(clpdd_augment_kind) == sizeof(int) && sizeof(clpdd_protocol) == sizeof(int) &&
                   sizeof(clpdd_select_kind) == sizeof(int),
               "set_enum stores enums as int");

/* rows of one section are contiguous; sections in the order `clpdd keys` prints them */
static const core_key rows[] = {
    /* [experiment] */
    {"experiment", {"name", CLPDD_KEY_STRING, "", "run name (default: the INI file's base name)", UNBOUNDED, NULL}, set_str, FIELD(name), NO_NAMES},
    {"experiment", {"seed", CLPDD_KEY_INT, "0", "seed of everything random in the run (init, batches, eval)", 0, 4294967295.0, NULL}, set_u64, FIELD(seed), NO_NAMES},
    {"experiment", {"device", CLPDD_KEY_ENUM, "auto", "auto = cuda when a GPU is visible, else cpu", UNBOUNDED, NULL}, set_enum, FIELD(device), NAMES(clpdd_device_names)},
    {"experiment", {"precision", CLPDD_KEY_ENUM, "fp32", "the backbone's matrix products in the distillation step (synthetic forward + backward, DSA's real forward): fp32; tf32 or bf16 = inputs rounded to that format on the GPU's tensor cores, fp32 accumulation, fp32 pixels, Adam state, features, ridge/NTK maths, Cholesky and loss. The CPU computes fp32 whatever is set (a warning says so); feature extraction and evaluation are always fp32", UNBOUNDED, NULL}, set_enum, FIELD(precision), NAMES(clpdd_precision_names)},
    {"experiment", {"output", CLPDD_KEY_STRING, "", "run directory (default: runs/<name>)", UNBOUNDED, NULL}, set_str, FIELD(output), NO_NAMES},
    {"experiment", {"progress_every", CLPDD_KEY_INT, "0", "progress line every N steps when not a terminal (0 = about 20 lines)", 0, 1e9, NULL}, set_int, FIELD(progress_every), NO_NAMES},
    /* [data] */
    {"data", {"dataset", CLPDD_KEY_ENUM, "fashion-mnist", "fashion-mnist, mnist (IDX files); imagefolder (root/<split>/<class>/<image>, torchvision's ImageFolder: ImageNet's layout); manifest (root = a CSV of path,label[,split] rows); cifar10, cifar100 (the binary versions)", UNBOUNDED, NULL}, set_enum, FIELD(dataset), NAMES(clpdd_dataset_names)},
    {"data", {"root", CLPDD_KEY_STRING, "", "the dataset's directory (manifest: its CSV file); default for fashion-mnist: /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)", UNBOUNDED, NULL}, set_str, FIELD(root), NO_NAMES},
    {"data", {"classes", CLPDD_KEY_STRING, "", "imagefolder, manifest: a file with one class name per line (label i = line i; '#' lines skipped); selects a subset too, e.g. ImageNet-100 (default: every class folder, sorted by name)", UNBOUNDED, NULL}, set_str, FIELD(classes_file), NO_NAMES},
    {"data", {"train_split", CLPDD_KEY_STRING, "", "the training split: imagefolder's sub-folder, a manifest's split value (default: train)", UNBOUNDED, NULL}, set_str, FIELD(train_split), NO_NAMES},
    {"data", {"group", CLPDD_KEY_STRING, "", "spurious-correlation benchmarks: each image's group is (label, group value); the value is a manifest's column of this name (Waterbirds: place), or for an image folder path:K, the K-th folder below the split folder (0 = the class). Every evaluated set then reports per-group, worst-group and mean-over-groups test accuracy (default: none)", UNBOUNDED, NULL}, set_str, FIELD(group), NO_NAMES},
    {"data", {"test_split", CLPDD_KEY_STRING, "", "the test split (default: imagefolder val, manifest and cifar test)", UNBOUNDED, NULL}, set_str, FIELD(test_split), NO_NAMES},
    {"data", {"resize", CLPDD_KEY_INT, "0", "image datasets: training images resized so the shorter side is this (torchvision Resize: Pillow bilinear with antialias; 0 = stored size)", 0, 65536, NULL}, set_int, FIELD(resize), NO_NAMES},
    {"data", {"crop", CLPDD_KEY_INT, "0", "image datasets: then the centred crop x crop window (torchvision CenterCrop; 0 = none); the synthetic images live at this size", 0, 65536, NULL}, set_int, FIELD(crop), NO_NAMES},
    {"data", {"test_resize", CLPDD_KEY_INT, "-1", "test images' resize (-1: as resize)", -1, 65536, NULL}, set_int, FIELD(test_resize), NO_NAMES},
    {"data", {"test_crop", CLPDD_KEY_INT, "-1", "test images' centre crop (-1: as crop)", -1, 65536, NULL}, set_int, FIELD(test_crop), NO_NAMES},
    {"data", {"workers", CLPDD_KEY_INT, "0", "image datasets: decoder threads (0 = the machine's cores)", 0, 4096, NULL}, set_int, FIELD(workers), NO_NAMES},
    {"data", {"prefetch", CLPDD_KEY_BOOL, "true", "image folders and manifests with augment = dsa: decode the next step's real batch on the decode workers while the current step runs (two batches of images in memory); the same images and results either way, false only to measure the wait", UNBOUNDED, NULL}, set_bool, FIELD(prefetch), NO_NAMES},
    {"data", {"on_bad_image", CLPDD_KEY_ENUM, "error", "an unreadable or truncated image: error (stop, naming the file) or skip (leave it out; counted in metrics.json)", UNBOUNDED, NULL}, set_enum, FIELD(skip_bad_images), NAMES(clpdd_bad_image_names)},
    {"data", {"verify", CLPDD_KEY_ENUM, "stat", "image folders and manifests: how a file is known to be unchanged since its features were cached: stat = size, mtime, ctime and inode together (as git's index; a rewrite with the mtime put back still moves the ctime); content = the XXH3 hash of every file's bytes, read at every load (a copied or moved dataset keeps its cache). CIFAR and IDX files are always identified by their bytes", UNBOUNDED, NULL}, set_enum, FIELD(data_verify), NAMES(clpdd_data_verify_names)},
    {"data", {"feature_dtype", CLPDD_KEY_ENUM, "f32", "the feature cache's storage: f32, or f16 (half the size; the features are then used as rounded to half precision)", UNBOUNDED, NULL}, set_enum, FIELD(feature_f16), NAMES(clpdd_feature_dtype_names)},
    {"data", {"train_limit", CLPDD_KEY_INT, "0", "use a random class-stratified subset of this many training images for the real features (0 = all)", 0, 1e9, NULL}, set_long, FIELD(train_limit), NO_NAMES},
    {"data", {"test_limit", CLPDD_KEY_INT, "0", "evaluate on the first N test images (0 = all)", 0, 1e9, NULL}, set_long, FIELD(test_limit), NO_NAMES},
    {"data", {"val_size", CLPDD_KEY_INT, "1000", "training images held out (stratified by class, drawn with subset_seed) as the validation split: never distillation targets, never probe training data; every selection (the probe's L2, sweeps' hyper-parameters) uses it, and the test split is only reported (0 = none)", 0, 1e9, NULL}, set_long, FIELD(val_size), NO_NAMES},
    {"data", {"subset_seed", CLPDD_KEY_INT, "0", "seed of the train_limit subset (kept apart from the run seed so runs share one feature cache)", 0, 4294967295.0, NULL}, set_u64, FIELD(subset_seed), NO_NAMES},
    {"data", {"cache_dir", CLPDD_KEY_STRING, "", "feature cache directory (default: $CLPDD_CACHE_DIR, else $XDG_CACHE_HOME/clpdd, else ~/.cache/clpdd)", UNBOUNDED, NULL}, set_str, FIELD(cache_dir), NO_NAMES},
    {"data", {"adapt", CLPDD_KEY_ENUM, "resize", "how images of another size reach the backbone (synthetic and real alike, differentiably): resize = bilinear; pad = centred zero border on the [0,1] image (28x28 -> 32x32: 2 px each side); crop = the centred window (256 -> 224, as LGM)", UNBOUNDED, NULL}, set_enum, FIELD(adapt), NAMES(clpdd_adapt_names)},
    /* [distill] */
    {"distill", {"ipc", CLPDD_KEY_INT, "1", "synthetic images per class", 1, 100000, NULL}, set_int, FIELD(ipc), NO_NAMES},
    {"distill", {"steps", CLPDD_KEY_INT, "1000", "optimisation steps", 0, 1e9, NULL}, set_int, FIELD(steps), NO_NAMES},
    {"distill", {"lr", CLPDD_KEY_FLOAT, "0.01", "Adam learning rate on the pixels (images in [0, 1])", 0, 1e6, NULL}, set_float, FIELD(lr), NO_NAMES},
    {"distill", {"adam_b1", CLPDD_KEY_FLOAT, "0.9", "Adam beta1", 0, 0.999999, NULL}, set_float, FIELD(adam_b1), NO_NAMES},
    {"distill", {"adam_b2", CLPDD_KEY_FLOAT, "0.999", "Adam beta2", 0, 0.99999999, NULL}, set_float, FIELD(adam_b2), NO_NAMES},
    {"distill", {"real_batch", CLPDD_KEY_INT, "1024", "real features sampled per step (n)", 1, 1e8, NULL}, set_int, FIELD(real_batch), NO_NAMES},
    {"distill", {"init", CLPDD_KEY_ENUM, "real", "real: random real images of each class; noise: uniform [0, 1]", UNBOUNDED, NULL}, set_enum, FIELD(init), NAMES(clpdd_init_names)},
    {"distill", {"param", CLPDD_KEY_ENUM, "pixels", "what Adam optimises: pixels (clamped to [0, 1]), or LGM's pyramid (levels 1x1, 2x2, ... upsampled and summed, colour-decorrelated, sigmoid(2x))", UNBOUNDED, NULL}, set_enum, FIELD(param), NAMES(clpdd_param_names)},
    {"distill", {"pyramid_every", CLPDD_KEY_INT, "200", "pyramid: steps between added levels (0: all levels from the start); Adam state starts fresh for each new level", 0, 1e9, NULL}, set_int, FIELD(pyramid_every), NO_NAMES},
    {"distill", {"pyramid_init_std", CLPDD_KEY_FLOAT, "0.01", "pyramid with init = noise: std of the initial coarse levels", 0, 10, NULL}, set_float, FIELD(pyramid_init_std), NO_NAMES},
    {"distill", {"decorrelate", CLPDD_KEY_BOOL, "true", "pyramid: Lucid's colour decorrelation for 3-channel images", UNBOUNDED, NULL}, set_bool, FIELD(decorrelate), NO_NAMES},
    {"distill", {"augment", CLPDD_KEY_ENUM, "none", "differentiable augmentation: none, or dsa (LGM's flip, random-resized-crop, noise) of the synthetic copies and the real batch, whose features are then recomputed through the backbone every step", UNBOUNDED, NULL}, set_enum, FIELD(augment), NAMES(clpdd_augment_names)},
    {"distill", {"augs_per_batch", CLPDD_KEY_INT, "1", "dsa: augmented copies of the synthetic set per step", 1, 1024, NULL}, set_int, FIELD(augs_per_batch), NO_NAMES},
    {"distill", {"dsa_flip_p", CLPDD_KEY_FLOAT, "0.5", "dsa: probability of a horizontal flip", 0, 1, NULL}, set_float, FIELD(dsa_flip_p), NO_NAMES},
    {"distill", {"dsa_scale_min", CLPDD_KEY_FLOAT, "0.08", "dsa: smallest crop area fraction of random-resized-crop (ratio 3/4 to 4/3)", 1e-3, 1, NULL}, set_float, FIELD(dsa_scale_min), NO_NAMES},
    {"distill", {"dsa_noise_p", CLPDD_KEY_FLOAT, "0.5", "dsa: probability of additive Gaussian noise on an image", 0, 1, NULL}, set_float, FIELD(dsa_noise_p), NO_NAMES},
    {"distill", {"dsa_noise_mean", CLPDD_KEY_FLOAT, "0.5", "dsa: mean of the additive noise (in [0, 1] pixel units)", -10, 10, NULL}, set_float, FIELD(dsa_noise_mean), NO_NAMES},
    {"distill", {"dsa_noise_std", CLPDD_KEY_FLOAT, "0.2", "dsa: std of the additive noise", 0, 10, NULL}, set_float, FIELD(dsa_noise_std), NO_NAMES},
    {"distill", {"learn_lr", CLPDD_KEY_FLOAT, "0.02", "Adam learning rate on log(value) of the learned scalars (a plugin key set to learn: [loss] ce temperature, [solver] ridge/ntk lambda); same beta1/beta2 as the pixels", 0, 1e3, NULL}, set_float, FIELD(learn_lr), NO_NAMES},
    {"distill", {"learn_prior", CLPDD_KEY_FLOAT, "1", "std (in nats) of a Gaussian prior on each learned log(value) around its initial value: the scalars minimise L + sum (u - u0)^2 / (2 std^2), which keeps them out of the flat lambda*tau valley and the tau -> 0 descent (docs/design.md section 1); 0 = no prior", 0, 1e6, NULL}, set_float, FIELD(learn_prior), NO_NAMES},
    {"distill", {"labels", CLPDD_KEY_ENUM, "onehot", "the synthetic set's label matrix: onehot (fixed), or learn: Y = softmax(logits) per row, the logits optimised with the pixels by Adam through the solver's dY (ridge, ntk, unrolled; not lgm, whose objective matches gradients of one-hot heads, nor the mse loss, which encodes its own targets). Stored as label_matrix in distilled.safetensors; the set is scored with it and with argmax labels (accuracy_hard_labels)", UNBOUNDED, NULL}, set_enum, FIELD(labels), NAMES(clpdd_labels_names)},
    {"distill", {"labels_lr", CLPDD_KEY_FLOAT, "0.02", "labels = learn: Adam learning rate of the label logits (same beta1/beta2 as the pixels; 0.02 from the quickstart sweep, results/labels)", 0, 1e3, NULL}, set_float, FIELD(labels_lr), NO_NAMES},
    {"distill", {"label_init", CLPDD_KEY_FLOAT, "0.9", "labels = learn: each image's initial probability of its class, p0 (the rest shared equally by the other classes); the logits start at a*onehot, a = log(p0 (C-1) / (1 - p0))", 1e-6, 0.999999, NULL}, set_float, FIELD(label_init), NO_NAMES},
    {"distill", {"log_every", CLPDD_KEY_INT, "10", "write a log.csv row every N steps", 1, 1e9, NULL}, set_int, FIELD(log_every), NO_NAMES},
    {"distill", {"checkpoint_every", CLPDD_KEY_INT, "100", "write <run dir>/checkpoint.safetensors every N steps (0: never), for `clpdd run --resume` after a crash; removed when the run finishes", 0, 1e9, NULL}, set_int, FIELD(checkpoint_every), NO_NAMES},
    {"distill", {"chunk", CLPDD_KEY_INT, "0", "0: one backbone tape for all m images; k > 0: forward without activations, then recompute and backpropagate k images at a time (memory grows with k, not m; one extra forward)", 0, 1e9, NULL}, set_int, FIELD(chunk), NO_NAMES},
    /* [eval] */
    {"eval", {"protocol", CLPDD_KEY_ENUM, "probe", "probe: multinomial logistic regression on the features solved to convergence (L-BFGS, float64), L2 on the weights chosen from `wd` on the validation split; fast: LGM's Adam probe on features computed once; lgm: LGM's probe on features of images flipped and random-resized-cropped afresh every epoch (fast and lgm are faithful at the paper's sizes only: at m = 10 they do not train)", UNBOUNDED, NULL}, set_enum, FIELD(protocol), NAMES(clpdd_protocol_names)},
    {"eval", {"wd", CLPDD_KEY_FLOATS, "1e-5, 1e-4, 1e-3, 1e-2, 1e-1", "probe: the L2 strengths tried (mean cross-entropy + wd/2 |W|^2); the one with the best validation accuracy is reported", 0, 1e6, NULL}, set_wd, FIELD(wd), NO_NAMES},
    {"eval", {"select", CLPDD_KEY_ENUM, "average", "probe: the validation score the L2 strength is chosen on: average accuracy, or worst_group (the lowest accuracy over the (label, [data] group) groups; needs [data] group)", UNBOUNDED, NULL}, set_enum, FIELD(select), NAMES(clpdd_select_names)},
    {"eval", {"probe_max_iter", CLPDD_KEY_INT, "1000", "probe: L-BFGS iteration cap (convergence is reported in metrics.json)", 1, 1e6, NULL}, set_int, FIELD(probe_max_iter), NO_NAMES},
    {"eval", {"seeds", CLPDD_KEY_INT, "5", "random draws per baseline (and, for fast/lgm, probe trainings per evaluated set; the probe protocol's fit is deterministic)", 1, CLPDD_MAX_SEEDS, NULL}, set_int, FIELD(eval_seeds), NO_NAMES},
    {"eval", {"epochs", CLPDD_KEY_INT, "1000", "fast/lgm: probe epochs", 1, 1e7, NULL}, set_int, FIELD(eval_epochs), NO_NAMES},
    {"eval", {"batch", CLPDD_KEY_INT, "100", "fast/lgm: probe batch, min(batch, m)", 1, 1e6, NULL}, set_int, FIELD(eval_batch), NO_NAMES},
    {"eval", {"lr", CLPDD_KEY_FLOAT, "0.001", "fast/lgm: probe Adam lr per 256 samples, lr * batch / 256 (LGM)", 0, 1e3, NULL}, set_float, FIELD(eval_lr), NO_NAMES},
    {"eval", {"baseline_random", CLPDD_KEY_BOOL, "true", "also score ipc random real images per class (a fresh draw per seed)", UNBOUNDED, NULL}, set_bool, FIELD(baseline_random), NO_NAMES},
    {"eval", {"baseline_centroids", CLPDD_KEY_BOOL, "true", "also score class centroids: per class, the ipc real images nearest the class's mean feature", UNBOUNDED, NULL}, set_bool, FIELD(baseline_centroids), NO_NAMES},
    {"eval", {"baseline_neighbors", CLPDD_KEY_BOOL, "true", "also score the set's nearest real images: per distilled image, the real training image of its class nearest in feature space, none twice (neighbors.csv lists them)", UNBOUNDED, NULL}, set_bool, FIELD(baseline_neighbors), NO_NAMES},
    {"eval", {"baseline_full", CLPDD_KEY_BOOL, "true", "also score a probe trained on every real training feature (the ceiling)", UNBOUNDED, NULL}, set_bool, FIELD(baseline_full), NO_NAMES},
    {"eval", {"full_epochs", CLPDD_KEY_INT, "30", "fast/lgm: epochs of the full-data probe (same head, optimiser and schedule)", 1, 1e6, NULL}, set_int, FIELD(full_epochs), NO_NAMES},
    {"eval", {"ridge_diagnostic", CLPDD_KEY_BOOL, "true", "also score the run's closed-form solver fitted on the distilled features", UNBOUNDED, NULL}, set_bool, FIELD(ridge_diagnostic), NO_NAMES},
};

#define N(a) (int)(sizeof(a) / sizeof((a)[0]))
static const char *const section_names[] = {"experiment", "data", "distill", "eval"};
static clpdd_key keys[N(rows)]; /* rows' keys with their choices joined */
static clpdd_core_section sections[N(section_names)];
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void build_keys(void) {
    int j = -1;
    for (int i = 0; i < N(rows); i++) {
        keys[i] = rows[i].key;
        if (rows[i].names) keys[i].choices = clpdd_names_join(rows[i].names, rows[i].n_names);
        if (j < 0 || strcmp(rows[i].section, sections[j].name) != 0) {
            j++;
            CLPDD_ASSERT(j < N(section_names) && !strcmp(rows[i].section, section_names[j]));
            sections[j] = (clpdd_core_section){section_names[j], &keys[i], 0};
        }
        sections[j].n_keys++;
    }
    CLPDD_ASSERT(j == N(section_names) - 1);
}

const clpdd_core_section *clpdd_core_sections(int *n) {
    pthread_once(&keys_once, build_keys);
    *n = N(sections);
    return sections;
}

void clpdd_core_keys_store(clpdd_experiment *x) {
    for (int i = 0; i < N(rows); i++) rows[i].set(x, &rows[i], clpdd_ini_section(&x->ini, rows[i].section));
}
