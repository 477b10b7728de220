/* An experiment: the INI file resolved and validated — core sections and the three plugin
 * sections — with the plugins loaded. Nothing touches the output directory until this has
 * succeeded, so a configuration error leaves no trace (exit status 2). */
#ifndef CLPDD_EXPERIMENT_H
#define CLPDD_EXPERIMENT_H
#include "encoder/adapter.h"
#include "io/ini.h"
#include "plugin/loader.h"
#include "distill/param.h"

/* Every enum key is parsed once, here, into these types; each enum's order is its key's
   `choices` string's order (experiment.c keeps the two side by side). */
typedef enum { CLPDD_DEVICE_AUTO = 0, CLPDD_DEVICE_CPU, CLPDD_DEVICE_CUDA, CLPDD_DEVICE_COUNT } clpdd_device_kind;
typedef enum {
    CLPDD_DATASET_FASHION_MNIST = 0,
    CLPDD_DATASET_MNIST,
    CLPDD_DATASET_IMAGEFOLDER,
    CLPDD_DATASET_MANIFEST,
    CLPDD_DATASET_CIFAR10,
    CLPDD_DATASET_CIFAR100,
    CLPDD_DATASET_COUNT
} clpdd_dataset_kind;
typedef enum { CLPDD_INIT_REAL = 0, CLPDD_INIT_NOISE, CLPDD_INIT_COUNT } clpdd_init_kind;
typedef enum { CLPDD_AUGMENT_NONE = 0, CLPDD_AUGMENT_DSA, CLPDD_AUGMENT_COUNT } clpdd_augment_kind;
/* probe: converged L-BFGS logistic regression, L2 chosen on the validation split;
   fast / lgm: LGM's Adam probe without / with augmentation (faithful at the paper's sizes only) */
typedef enum { CLPDD_PROTOCOL_PROBE = 0, CLPDD_PROTOCOL_FAST, CLPDD_PROTOCOL_LGM, CLPDD_PROTOCOL_COUNT } clpdd_protocol;
const char *clpdd_device_name(clpdd_device_kind k);
int clpdd_device_parse(const char *name); /* "auto" | "cpu" | "cuda" → the kind; -1 for anything else */
const char *clpdd_dataset_kind_name(clpdd_dataset_kind k);
const char *clpdd_protocol_name(clpdd_protocol p);
const char *clpdd_init_name(clpdd_init_kind k);

#define CLPDD_MAX_SEEDS 100 /* [eval] seeds; clpdd_score holds this many */
#define CLPDD_MAX_WD 16     /* [eval] wd grid points */

typedef struct clpdd_experiment {
    clpdd_ini ini;
    /* [experiment] */
    const char *name, *output;
    clpdd_device_kind device;
    clpdd_precision precision; /* the backbone's products in the step (clpdd/ops.h) */
    uint64_t seed;
    int progress_every;
    /* [data] */
    clpdd_dataset_kind dataset;
    const char *root, *cache_dir, *classes_file, *train_split, *test_split; /* "" = the dataset's default */
    int resize, crop, test_resize, test_crop, workers, skip_bad_images;
    int feature_f16; /* [data] feature_dtype = f16 */
    long train_limit, test_limit, val_size;
    uint64_t subset_seed;
    clpdd_adapt_mode adapt;
    /* [distill] */
    int ipc, steps, real_batch, log_every, chunk, checkpoint_every;
    float lr, adam_b1, adam_b2;
    clpdd_init_kind init;
    clpdd_param_kind param;
    clpdd_augment_kind augment;
    int pyramid_every, decorrelate, augs_per_batch;
    float pyramid_init_std, dsa_flip_p, dsa_scale_min, dsa_noise_p, dsa_noise_mean, dsa_noise_std;
    /* [eval] */
    clpdd_protocol protocol;
    int eval_seeds, eval_epochs, eval_batch;
    float eval_lr;
    double wd[CLPDD_MAX_WD];
    int n_wd, probe_max_iter;
    int baseline_random, baseline_centroids, ridge_diagnostic, baseline_full, full_epochs;
    /* plugins */
    clpdd_loaded backbone, solver, loss; /* loss.dl == NULL for objective solvers */
    clpdd_section *backbone_cfg, *solver_cfg, *loss_cfg;
    char *backbone_key; /* the backbone's identity for the feature cache (clpdd_backbone.key) */
    clpdd_key *plugin_keys[3]; /* name + the plugin's keys, per kind (the sections point into them) */
} clpdd_experiment;

/* load path, apply the --set overrides, validate everything, load the plugins.
   Returns 0, or -1 with a message naming file:line / key / plugin path. */
int clpdd_experiment_load(clpdd_experiment *x, const char *path, const char *const *sets, int n_sets,
                          const clpdd_plugin_dirs *dirs, clpdd_err *e);
/* the same from INI text in memory; label names it in messages (e.g. "<bench clpdd>") */
int clpdd_experiment_load_memory(clpdd_experiment *x, const char *text, const char *label, const char *const *sets,
                                 int n_sets, const clpdd_plugin_dirs *dirs, clpdd_err *e);
void clpdd_experiment_free(clpdd_experiment *x);

/* the resolved configuration (every key, defaults included) as INI text; caller frees */
char *clpdd_experiment_resolved_ini(const clpdd_experiment *x);
/* the same without comments, file names or the [eval] section: what determines the
   distillation, for --resume's configuration check */
char *clpdd_experiment_distill_ini(const clpdd_experiment *x);

/* key tables of the core sections, for `clpdd help` */
typedef struct clpdd_core_section {
    const char *name;
    const clpdd_key *keys;
    int n_keys;
} clpdd_core_section;
const clpdd_core_section *clpdd_core_sections(int *n);

#endif
