/* An experiment: the INI file resolved and validated — core sections and the three plugin
 * sections — with the plugins loaded. Nothing touches the output directory until this has
 * succeeded, so a configuration error leaves no trace (exit status 2). */
#ifndef CLPDD_EXPERIMENT_H
#define CLPDD_EXPERIMENT_H
#include "config.h"
#include "loader.h"

typedef struct clpdd_experiment {
    clpdd_ini ini;
    /* [experiment] */
    const char *name, *device, *output;
    uint64_t seed;
    int progress_every;
    /* [data] */
    const char *dataset, *root, *cache_dir;
    long train_limit, test_limit;
    uint64_t subset_seed;
    const char *adapt; /* resize */
    /* [distill] */
    int ipc, steps, real_batch, log_every, chunk, checkpoint_every;
    float lr, adam_b1, adam_b2;
    const char *init, *param, *augment;
    int pyramid_every, decorrelate, augs_per_batch;
    float pyramid_init_std, dsa_flip_p, dsa_scale_min, dsa_noise_p, dsa_noise_mean, dsa_noise_std;
    /* [eval] */
    const char *protocol;
    int eval_seeds, eval_epochs, eval_batch;
    float eval_lr;
    int baseline_random, ridge_diagnostic, baseline_full, full_epochs;
    /* plugins */
    clpdd_loaded backbone, solver, loss; /* loss.dl == NULL for objective solvers */
    clpdd_section *backbone_cfg, *solver_cfg, *loss_cfg;
    clpdd_key *plugin_keys[3]; /* name + the plugin's keys, per kind (the sections point into them) */
} clpdd_experiment;

/* load path, apply the --set overrides, validate everything, load the plugins.
   Returns 0, or -1 with a message naming file:line / key / plugin path. */
int clpdd_experiment_load(clpdd_experiment *x, const char *path, const char *const *sets, int n_sets,
                          const clpdd_plugin_dirs *dirs, clpdd_err *e);
void clpdd_experiment_free(clpdd_experiment *x);

/* the resolved configuration (every key, defaults included) as INI text; caller frees */
char *clpdd_experiment_resolved_ini(const clpdd_experiment *x);

/* key tables of the core sections, for `clpdd help` */
typedef struct clpdd_core_section {
    const char *name;
    const clpdd_key *keys;
    int n_keys;
} clpdd_core_section;
const clpdd_core_section *clpdd_core_sections(int *n);

#endif
