/* The distillation loop (docs/design.md §1, §5): the synthetic set's parameters, the solver and
 * loss plugins, the augmentation and the device buffers of one step, set up once on a run's data
 * (core/eval/run_data.h), then stepped: params → X_s → [DSA] → encode → solver → loss →
 * backward → Adam, with checkpoints (core/distill/checkpoint.h) every [distill] checkpoint_every
 * steps.
 *
 * Legend: N distillation targets, m = C·ipc synthetic images, k augmented copies per image (DSA;
 * else 1), me = k·m the support the solver sees, n real batch per step, d feature dim, C classes,
 * px = c·H·W pixels of a dataset image. */
#ifndef CLPDD_LOOP_H
#define CLPDD_LOOP_H
#include "distill/labels.h"
#include "distill/learned.h"
#include "distill/outputs.h"
#include "distill/param.h"
#include "encoder/augment.h"
#include "encoder/encode.h"
#include "eval/run_data.h"

typedef struct clpdd_loop {
    clpdd_run_data *data;              /* the run's host, backbone, datasets and targets (not owned) */
    const clpdd_experiment *x;
    int quiet;
    const clpdd_ops *ops;
    clpdd_encoder enc;
    const clpdd_solver_vt *svt;
    void *solver;
    const clpdd_loss_vt *lvt;
    void *loss;                        /* NULL: an objective solver */
    clpdd_learned_set learned;         /* the plugin keys set to learn (core/distill/learned.h) */
    int learn_labels;                  /* [distill] labels = learn */
    clpdd_labels labels;               /* then the label logits (core/distill/labels.h) */
    clpdd_rng rng;                     /* init = real, then the real-batch sampler */
    int C, ipc, m, N, n, d, c, H, W, k, me;
    size_t px;
    clpdd_param *param;
    clpdd_augment *aug_syn, *aug_real; /* NULL without DSA */
    clpdd_adapter ad_real;             /* DSA: the real batch's adapter */
    /* device */
    float *Xs, *dXs;                   /* (m, px) rendered images and their gradient */
    float *adam_m, *adam_v, *dvals;    /* (param capacity) */
    float *Xa, *dXa;                   /* DSA: (me, px) augmented copies */
    float *Xr, *Xr_aug, *Xr_in;        /* DSA: (n, px), (n, px), (n, backbone pixels) */
    float *phis, *dphis;               /* (me, d) */
    float *Ys;                         /* (me, C) encoded support labels (labels = learn: k copies of softmax(ℓ)) */
    float *dYs;                        /* labels = learn: (me, C) the solver's ∂L/∂Y_s */
    int32_t *ys;                       /* (me) */
    void *Phi;                         /* (N, d) cached real features: float, or f16 bits when f16 */
    int f16;                           /* [data] feature_dtype = f16: Phi holds binary16 */
    float *phib;                       /* (n, d) */
    float *Z, *dZ;                     /* (n, C) */
    int32_t *idx, *yb;                 /* (n) */
    /* host */
    float *Xs_host;                    /* (m, px): the distilled set, after clpdd_loop_run */
    float *Y_host;                     /* labels = learn: (m, C) its label matrix, after clpdd_loop_run; else NULL */
    int32_t *ys_host;                  /* (me): class-major labels, the k copies repeating them */
    int *perm;                         /* (N) sampling permutation */
    float *Xr_host;                    /* DSA without a prefetch: (n, px) */
    struct clpdd_prefetch *prefetch;   /* DSA on files with [data] prefetch: the next batch read during the step */
    clpdd_rng ahead_rng;               /* with a prefetch: the sampler before (after, while rewound) the last draw */
    int *ahead_swap;                   /* with a prefetch: (n) the last draw's swaps */
    int *pick;                         /* (n) */
    int32_t *idx_host, *yb_host;       /* (n) */
    clpdd_log_row *log;
    int nlog, caplog;
    char *config;                      /* the distillation's configuration lines (checkpoints) */
    double read_s;                     /* DSA: seconds the step waited for real images (read, or the prefetch) and copied them to the device */
} clpdd_loop;

/* the plugins, the synthetic set (initialised from [distill] init) and every buffer of a step,
   on the data's host; sets the backbone's step precision ([experiment] precision) */
int clpdd_loop_setup(clpdd_loop *l, clpdd_run_data *data, int quiet, clpdd_err *e);
/* one optimisation step: render X_s, a real batch, L and its gradient, Adam on the parameters;
   *level_added = 1 when the pyramid grew a level this step */
int clpdd_loop_step(clpdd_loop *l, int step, float *L, int *level_added, clpdd_err *e);
/* the [distill] steps, with progress lines unless quiet and a checkpoint in ckpt_path (under
   outdir) every checkpoint_every steps; resume: first restore ckpt_path when there is one. The
   distilled set ends in Xs_host; the losses, steps and timings in s */
int clpdd_loop_run(clpdd_loop *l, const char *outdir, const char *ckpt_path, int resume, clpdd_summary *s, clpdd_err *e);
/* the closed-form classifier the run optimised, fitted on the distilled features phis (m, d)
   host, scored on the test split: the gap to the probe is worth seeing (docs/design.md §7) */
double clpdd_loop_solver_diagnostic(clpdd_loop *l, const float *phis);
/* the plugins and the host buffers (the device buffers go with the data's host) */
void clpdd_loop_free(clpdd_loop *l);

#endif
