/* An experiment: the INI file resolved and validated — core sections and the three plugin
 * sections — with the plugins loaded. Nothing touches the output directory until this has
 * succeeded, so a configuration error leaves no trace (exit status 2). */
#ifndef CLPDD_EXPERIMENT_H
#define CLPDD_EXPERIMENT_H
#include "config/kinds.h"
#include "io/ini.h"
#include "plugin/loader.h"

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
    const char *group; /* [data] group: "" = none (data/data_source.h) */
    int resize, crop, test_resize, test_crop, workers, skip_bad_images;
    int feature_f16; /* [data] feature_dtype = f16 */
    int data_verify; /* [data] verify: clpdd_data_verify (data/data_source.h) */
    int prefetch;    /* [data] prefetch: DSA reads the next real batch during the step (data/prefetch.h) */
    long train_limit, test_limit, val_size;
    uint64_t subset_seed;
    clpdd_adapt_mode adapt;
    /* [distill] */
    int ipc, steps, real_batch, log_every, chunk, checkpoint_every;
    float lr, adam_b1, adam_b2;
    float learn_lr, learn_prior; /* the learned scalars' Adam lr and prior std (0: none) */
    clpdd_init_kind init;
    clpdd_labels_kind labels;     /* [distill] labels (distill/labels.h) */
    float labels_lr, label_init;  /* the label logits' Adam lr; p0, the initial probability of the class */
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
    clpdd_select_kind select; /* [eval] select */
    int baseline_random, baseline_centroids, ridge_diagnostic, baseline_full, full_epochs;
    int baseline_neighbors; /* [eval] baseline_neighbors: the set's nearest real images (eval/neighbors.h) */
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

/* keys that never change what a run computes: [experiment] name, output, device,
   progress_every; [data] prefetch; [distill] checkpoint_every; a backbone's inference batch. --resume's
   configuration check leaves them out; a sweep point whose config.ini differs only in these is
   the same run (a sweep moved to another root), and so are two run directories in a report. */
int clpdd_config_key_incidental(const char *section, const char *key);

/* The core sections' keys, from the one key table (config/keys.c): {name, keys, n_keys} per
   section, in the order `clpdd keys` prints them; an ENUM key's choices are its enum's names. */
typedef struct clpdd_core_section {
    const char *name;
    const clpdd_key *keys;
    int n_keys;
} clpdd_core_section;
const clpdd_core_section *clpdd_core_sections(int *n);
/* every core key's validated value into its field of x (the sections validated against
   clpdd_core_sections' keys) */
void clpdd_core_keys_store(clpdd_experiment *x);

#endif
