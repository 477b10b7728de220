/* One distillation run, in four phases: setup (backbone, data, cached features, plugins, the
 * synthetic set), distill (the loop), evaluate (probes and baselines), write (the run directory).
 *
 * Legend: N real training images, m = C·ipc synthetic, n real batch per step, d feature dim,
 * C classes, px = c·H·W pixels of a dataset image.
 *
 * Step (DESIGN §1): params → X_s (pixels: the images; pyramid: rendered) → [DSA: k augmented
 * copies] → adapter → backbone (tape) → Φ_s; Z = solver(Φ_s, Y_s; Φ_b); L = loss(Z, y_b);
 * dZ → solver.backward → dΦ_s → backbone.backward → adapter.backward → [DSA backward, copies
 * summed] → dX_s → params; Adam on the params (pixels are then clamped to [0, 1], the space the
 * real images live in). With DSA the real batch is augmented too, so its features are
 * recomputed through the backbone every step (the cost LGM pays); otherwise they come from
 * the cache. me = k·m is the support size the solver sees. */
#define _GNU_SOURCE
#include "distill/run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encoder/augment.h"
#include "distill/checkpoint.h"
#include "data/data_source.h"
#include "data/dataset.h"
#include "encoder/encode.h"
#include "eval/evaluate.h"
#include "features/feature_cache.h"
#include "bench/flop_count.h"
#include "plugin/host.h"
#include "io/safetensors.h" /* clpdd_f32_to_f16 */
#include "distill/outputs.h"
#include "distill/param.h"
#include "numerics/precision.h"
#include "eval/probe.h"
#include "distill/rundir.h"
#include "eval/score_cache.h"

/* the run's state, freed in one place */
typedef struct run {
    clpdd_experiment *x;
    int quiet, resume;
    const char *outdir;
    char ckpt_path[4200];
    clpdd_host *h;
    const clpdd_ops *ops;
    clpdd_backbone bb;
    clpdd_encoder enc;
    const clpdd_solver_vt *svt;
    void *solver;
    const clpdd_loss_vt *lvt;
    void *loss;
    clpdd_dataset train, test;
    clpdd_data_info train_info, test_info; /* image datasets: class names, skipped files */
    clpdd_features ftrain, ftest; /* every training image's features (dataset order), the test split's */
    /* the training features split in two ([data] val_size): the distillation targets (what the
       real batches, init = real and the baselines draw from) and the validation split (what
       every selection uses); target row i is dataset image target_rows[i] */
    float *target_x, *val_x;       /* (N, d), (nv, d) host */
    int32_t *target_y, *val_y;     /* (N), (nv) */
    int *target_rows;              /* (N) */
    int nv;
    clpdd_rundir dir;
    char *config;                     /* the distillation's configuration lines (checkpoints) */
    char cache_dir[4096];             /* features and baseline scores */
    const clpdd_image_set *eval_set; /* clpdd eval: the set scored (NULL in a run) */
    clpdd_rng rng;
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
    float *Ys;                         /* (me, C) encoded support labels */
    int32_t *ys;                       /* (me) */
    void *Phi;                         /* (N, d) cached real features: float, or f16 bits when f16 */
    int f16;                           /* [data] feature_dtype = f16: Phi holds binary16 */
    float *phib;                       /* (n, d) */
    float *Z, *dZ;                     /* (n, C) */
    int32_t *idx, *yb;                 /* (n) */
    /* host */
    float *Xs_host;   /* (m, px) */
    int32_t *ys_host; /* (m) */
    int *perm;        /* (N) sampling permutation */
    float *Xr_host;   /* DSA: (n, px) */
    int *pick;        /* (n) */
    int32_t *idx_host, *yb_host;
    clpdd_log_row *log;
    int nlog, caplog;
    clpdd_summary sum;
    int feat_only, feat_part, feat_parts, feat_merge; /* clpdd features: the cache only (clpdd_run_features) */
    const clpdd_bench_opts *bench;                    /* clpdd bench: random data, timed steps (clpdd_run_bench) */
    double read_s;                                    /* DSA: seconds reading real images and copying them to the device */
} run;

static void run_free(run *r) {
    if (r->loss) r->lvt->destroy(r->loss);
    if (r->solver) r->svt->destroy(r->solver);
    clpdd_encoder_free(&r->enc);
    clpdd_param_destroy(r->param);
    clpdd_augment_destroy(r->aug_syn);
    clpdd_augment_destroy(r->aug_real);
    clpdd_adapter_free(&r->ad_real);
    if (r->bb.self) r->bb.vt->destroy(r->bb.self);
    clpdd_features_free(&r->ftrain);
    clpdd_features_free(&r->ftest);
    free(r->target_x), free(r->val_x), free(r->target_y), free(r->val_y), free(r->target_rows);
    clpdd_dataset_free(&r->train);
    clpdd_dataset_free(&r->test);
    clpdd_data_info_free(&r->train_info);
    clpdd_data_info_free(&r->test_info);
    if (r->h) clpdd_host_destroy(r->h); /* frees every device buffer */
    free(r->Xs_host);
    free(r->ys_host);
    free(r->perm);
    free(r->Xr_host);
    free(r->pick);
    free(r->idx_host);
    free(r->yb_host);
    free(r->log);
    clpdd_rundir_release(&r->dir);
    free(r->config);
}

static int plugin_fail(run *r, const char *what, const char *name, clpdd_err *e) {
    return clpdd_err_set(e, "%s '%s' failed: %s", what, name, clpdd_host_error(r->h));
}

static void *dalloc(run *r, size_t bytes, int *fail) {
    void *p = r->h->alloc(r->h, bytes);
    if (!p) *fail = 1;
    return p;
}

/* ---- setup ---- */

/* the two splits in memory: IDX files, or an image dataset decoded and preprocessed
   (core/data/data_source.h) with the [data] keys; images get the backbone's channel count (grey or RGB) */
static int load_datasets(run *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const char *name = clpdd_dataset_kind_name(x->dataset);
    if (x->dataset == CLPDD_DATASET_FASHION_MNIST || x->dataset == CLPDD_DATASET_MNIST)
        return clpdd_dataset_load_idx(&r->train, name, x->root, "train", x->train_limit, x->subset_seed, e) ||
                       clpdd_dataset_load_idx(&r->test, name, x->root, "test", x->test_limit, 0, e)
                   ? -1
                   : 0;
    int folder = x->dataset == CLPDD_DATASET_IMAGEFOLDER;
    const char *train_split = *x->train_split ? x->train_split : "train";
    const char *test_split = *x->test_split ? x->test_split : folder ? "val" : "test";
    clpdd_data_cfg cfg = {x->dataset, x->root, *x->classes_file ? x->classes_file : NULL, train_split, x->resize, x->crop,
                          x->workers, x->skip_bad_images, r->bb.info.channels == 1, 0, x->train_limit, x->subset_seed};
    if (clpdd_dataset_load_source(&r->train, &r->train_info, &cfg, e)) return clpdd_err_prefix(e, "[data] train split: ");
    cfg.split = test_split, cfg.resize = x->test_resize, cfg.crop = x->test_crop, cfg.limit = 0;
    if (clpdd_dataset_load_source(&r->test, &r->test_info, &cfg, e)) return clpdd_err_prefix(e, "[data] test split: ");
    if (x->test_limit > 0 && x->test_limit < r->test.n) { /* the first test_limit images, as for IDX */
        r->test.n = (int)x->test_limit;
        r->test.id = clpdd_hash64(r->test.id, &r->test.n, sizeof r->test.n);
        size_t len = strlen(r->test.desc);
        snprintf(r->test.desc + len, sizeof r->test.desc - len, ", the first %d", r->test.n);
    }
    if (clpdd_data_same_classes(&r->train_info, "the train split", &r->test_info, "the test split", e)) return -1;
    r->sum.skipped_images = r->train_info.skipped + r->test_info.skipped;
    for (int i = 0; i < CLPDD_DATA_REPORT_FIRST && !r->sum.skipped_first; i++)
        r->sum.skipped_first = r->train_info.skipped_first[i] ? r->train_info.skipped_first[i] : r->test_info.skipped_first[i];
    if (r->sum.skipped_images && !r->quiet)
        fprintf(stderr, "warning: %ld unreadable images left out ([data] on_bad_image = skip), the first: %s\n",
                r->sum.skipped_images, r->sum.skipped_first ? r->sum.skipped_first : "?");
    return 0;
}

/* the datasets, checked before any expensive work, then their features (cached) and the
   split of the training features into distillation targets and the validation split */
static int load_data(run *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    if (load_datasets(r, e)) return -1;
    clpdd_dataset *tr = &r->train, *te = &r->test;
    r->C = tr->classes, r->c = tr->c, r->H = tr->H, r->W = tr->W;
    r->px = (size_t)r->c * r->H * r->W;
    if (te->c != tr->c || ((te->H != tr->H || te->W != tr->W) && x->test_resize == x->resize && x->test_crop == x->crop))
        return clpdd_err_set(e, "data: the test images are %dx%dx%d but the training images %dx%dx%d (%s, %s)", te->c, te->H,
                             te->W, tr->c, tr->H, tr->W, te->desc, tr->desc);
    if (te->classes > tr->classes)
        return clpdd_err_set(e, "data: the test split has label %d but the training split only %d classes (%s)",
                             te->classes - 1, tr->classes, te->desc);
    /* every class 0..C-1 present, with enough images for what the run draws per class */
    int *count = clpdd_xcalloc((size_t)r->C, sizeof *count);
    for (int i = 0; i < tr->n; i++) count[tr->labels[i]]++;
    int need = x->ipc + (x->val_size > 0 ? 1 : 0), rc = 0;
    for (int c = 0; c < r->C && rc == 0; c++) {
        if (count[c] == 0 && x->train_limit > 0)
            rc = clpdd_err_set(e, "data: class %d has no image in the [data] train_limit = %ld subset (%s): raise train_limit", c,
                               x->train_limit, tr->desc);
        else if (count[c] == 0)
            rc = clpdd_err_set(e, "data: class %d has no training images, but the largest label is %d, so labels are read as "
                                  "0..%d (%s): a label out of range?", c, r->C - 1, r->C - 1, tr->desc);
        else if (count[c] < need)
            rc = clpdd_err_set(e, "data: class %d has %d training images; the run needs %d per class (ipc %d%s)%s", c, count[c],
                               need, x->ipc, x->val_size > 0 ? " + 1 held out for validation" : "",
                               x->train_limit ? ": raise [data] train_limit" : "");
    }
    free(count);
    if (rc) return -1;
    int N = tr->n, nv = (int)x->val_size;
    int *target = clpdd_xmalloc((size_t)N * sizeof(int)), *val = clpdd_xmalloc((size_t)(nv > 0 ? nv : 1) * sizeof(int));
    if (nv > 0) {
        if (nv >= N) rc = clpdd_err_set(e, "data: [data] val_size = %d leaves no training image of the %d", nv, N);
        else if (clpdd_split_stratified(tr->labels, N, r->C, nv, x->subset_seed, target, NULL, val, e)) rc = clpdd_err_prefix(e, "data: [data] val_size = %d: ", nv);
    } else {
        for (int i = 0; i < N; i++) target[i] = i;
    }
    if (rc == 0) {
        char *cache = r->cache_dir;
        clpdd_cache_dir(x->cache_dir, cache, sizeof r->cache_dir);
        clpdd_err ce;
        if ((clpdd_mkdirs(cache, &ce) || access(cache, W_OK) != 0) && !r->quiet) /* said before the extraction, not after */
            fprintf(stderr, "warning: feature cache directory %s is not writable: the features will be extracted but not kept\n",
                    cache);
        clpdd_features_opt fo = {.batch = 256, .verbose = !r->quiet, .f16 = x->feature_f16, .part = r->feat_part,
                                 .parts = r->feat_parts};
        if (r->feat_merge)
            rc = clpdd_features_merge(&r->bb, tr, "train", cache, &fo, e) || clpdd_features_merge(&r->bb, te, "test", cache, &fo, e)
                     ? -1
                     : 0;
        else if (clpdd_features_get_opt(&r->ftrain, &r->bb, tr, "train", cache, &fo, e) ||
                 clpdd_features_get_opt(&r->ftest, &r->bb, te, "test", cache, &fo, e))
            rc = -1;
        if (rc == 0 && r->feat_only) rc = 1; /* the cache was all that was asked for */
    }
    if (rc == 1) {
        free(target), free(val);
        return 0;
    }
    if (rc) {
        free(target), free(val);
        return -1;
    }
    int d = r->d;
    r->N = N - nv, r->nv = nv;
    r->target_rows = target;
    r->target_x = clpdd_xmalloc((size_t)r->N * d * sizeof(float)), r->target_y = clpdd_xmalloc((size_t)r->N * sizeof(int32_t));
    r->val_x = clpdd_xmalloc((size_t)(nv ? nv : 1) * d * sizeof(float)), r->val_y = clpdd_xmalloc((size_t)(nv ? nv : 1) * sizeof(int32_t));
    for (int i = 0; i < r->N; i++) {
        memcpy(r->target_x + (size_t)i * d, r->ftrain.x + (size_t)target[i] * d, (size_t)d * sizeof(float));
        r->target_y[i] = r->ftrain.y[target[i]];
    }
    for (int i = 0; i < nv; i++) {
        memcpy(r->val_x + (size_t)i * d, r->ftrain.x + (size_t)val[i] * d, (size_t)d * sizeof(float));
        r->val_y[i] = r->ftrain.y[val[i]];
    }
    free(val);
    return 0;
}

/* clpdd bench: random images (on demand) as the training split and random features as the
   distillation targets, N = max(real_batch, C·(ipc + 1)) rows: no files, no extraction; the
   step then costs what it costs on real data */
static int bench_data(run *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const clpdd_bench_opts *b = r->bench;
    if (b->classes < 1) return clpdd_err_set(e, "bench: classes = %d; expected >= 1", b->classes);
    int side = b->image_size > 0 ? b->image_size : x->crop > 0 ? x->crop : r->bb.info.height;
    int C = b->classes, N = x->real_batch > C * (x->ipc + 1) ? x->real_batch : C * (x->ipc + 1), d = r->d;
    clpdd_dataset_random(&r->train, N, r->bb.info.channels, side, side, C, x->seed + 17);
    r->C = C, r->c = r->train.c, r->H = r->W = side, r->px = (size_t)r->c * side * side;
    r->N = N, r->nv = 0;
    r->target_rows = clpdd_xmalloc((size_t)N * sizeof(int));
    r->target_x = clpdd_xmalloc((size_t)N * d * sizeof(float));
    r->target_y = clpdd_xmalloc((size_t)N * sizeof(int32_t));
    r->val_x = clpdd_xmalloc((size_t)d * sizeof(float)), r->val_y = clpdd_xmalloc(sizeof(int32_t));
    clpdd_rng rng = {x->seed + 29};
    for (int i = 0; i < N; i++) r->target_rows[i] = i, r->target_y[i] = r->train.labels[i];
    for (size_t i = 0; i < (size_t)N * d; i++) r->target_x[i] = (float)clpdd_rng_normal(&rng);
    return 0;
}

/* the host, the backbone and the data: what a run and an evaluation share */
static int setup_data(run *r, const clpdd_ops *ops, const char *what, clpdd_err *e) {
    clpdd_experiment *x = r->x;
    r->ops = ops;
    r->h = clpdd_host_create(r->ops, x->seed);
    clpdd_host_set_quiet(r->h, r->quiet);
    if (!r->quiet) fprintf(stderr, "clpdd: %s '%s' on %s\n", what, x->name, ops->name);
    r->bb = (clpdd_backbone){r->h, x->backbone.desc, x->backbone.desc->vtable, NULL, {0}, x->backbone_key, x->adapt,
                             CLPDD_PRECISION_FP32 /* the step sets its own (setup_loop) */};
    if (r->bb.vt->create(r->h, x->backbone_cfg, &r->bb.self)) {
        r->bb.self = NULL;
        return plugin_fail(r, "backbone", r->bb.desc->name, e);
    }
    if (r->bb.vt->describe(r->bb.self, &r->bb.info)) return plugin_fail(r, "backbone", r->bb.desc->name, e);
    r->d = r->bb.info.feature_dim;
    return r->bench ? bench_data(r, e) : load_data(r, e);
}

/* the plugins, the synthetic set and the loop's buffers */
static int setup_loop(run *r, clpdd_err *e) {
    clpdd_experiment *x = r->x;
    const clpdd_ops *ops = r->ops;
    r->ipc = x->ipc, r->m = r->C * r->ipc;
    r->n = x->real_batch < r->N ? x->real_batch : r->N;
    if (r->n < x->real_batch && !r->quiet)
        fprintf(stderr, "warning: [distill] real_batch = %d is more than the %d distillation targets: each step uses all %d\n",
                x->real_batch, r->N, r->n);
    r->k = x->augment == CLPDD_AUGMENT_DSA ? x->augs_per_batch : 1;
    r->me = r->m * r->k;
    int m = r->m, d = r->d, C = r->C, n = r->n, N = r->N, me = r->me;

    clpdd_solver_dims dims = {me, d, C, n};
    r->svt = x->solver.desc->vtable;
    if (r->svt->create(r->h, x->solver_cfg, &dims, &r->solver)) {
        r->solver = NULL;
        return plugin_fail(r, "solver", x->solver.desc->name, e);
    }
    if (x->loss.desc) {
        r->lvt = x->loss.desc->vtable;
        if (r->lvt->create(r->h, x->loss_cfg, C, n, &r->loss)) {
            r->loss = NULL;
            return plugin_fail(r, "loss", x->loss.desc->name, e);
        }
    }
    /* the step's backbone passes at [experiment] precision; extraction and evaluation stay fp32 */
    r->bb.precision = x->precision;
    if (x->precision != CLPDD_PRECISION_FP32) {
        clpdd_precision got = clpdd_precision_effective(ops, x->precision);
        if (got != x->precision && !r->quiet)
            fprintf(stderr, "warning: [experiment] precision = %s: %s computes fp32 only; the run is fp32\n",
                    clpdd_precision_name(x->precision), ops->name);
    }
    if (clpdd_encoder_init(&r->enc, &r->bb, me, x->chunk, r->c, r->H, r->W, e)) return -1;

    int fail = 0;
    size_t szX = (size_t)m * r->px * sizeof(float);
    r->Xs = dalloc(r, szX, &fail), r->dXs = dalloc(r, szX, &fail);
    r->phis = dalloc(r, (size_t)me * d * sizeof(float), &fail), r->dphis = dalloc(r, (size_t)me * d * sizeof(float), &fail);
    r->Ys = dalloc(r, (size_t)me * C * sizeof(float), &fail), r->ys = dalloc(r, (size_t)me * sizeof(int32_t), &fail);
    /* the real features on the device in the cache's dtype: f16 halves the largest buffer of an
       ImageNet-1K run (1.28 M × d); the values are the same (the cache already rounded them) */
    r->f16 = x->feature_f16 && ops->gather_rows_f16;
    r->Phi = dalloc(r, (size_t)N * d * (r->f16 ? sizeof(uint16_t) : sizeof(float)), &fail);
    r->phib = dalloc(r, (size_t)n * d * sizeof(float), &fail);
    r->Z = dalloc(r, (size_t)n * C * sizeof(float), &fail), r->dZ = dalloc(r, (size_t)n * C * sizeof(float), &fail);
    r->idx = dalloc(r, (size_t)n * sizeof(int32_t), &fail), r->yb = dalloc(r, (size_t)n * sizeof(int32_t), &fail);
    if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));

    /* the synthetic set: class-major, labels fixed; the k augmented copies repeat them */
    r->rng = (clpdd_rng){x->seed * 0xD1B54A32D192ED03ULL + 1};
    r->Xs_host = clpdd_xmalloc(szX);
    r->ys_host = clpdd_xmalloc((size_t)me * sizeof(int32_t));
    for (int i = 0; i < me; i++) r->ys_host[i] = (i % m) / r->ipc;
    const float *init = NULL;
    if (x->init == CLPDD_INIT_REAL) {
        int *init_idx = clpdd_xmalloc((size_t)m * sizeof(int));
        int rc = clpdd_sample_per_class(r->target_y, N, C, r->ipc, &r->rng, init_idx, e);
        for (int i = 0; rc == 0 && i < m; i++) init_idx[i] = r->target_rows[init_idx[i]];
        if (rc == 0) rc = clpdd_dataset_read_float(&r->train, init_idx, 0, m, r->Xs_host, e);
        free(init_idx);
        if (rc) return -1;
        init = r->Xs_host;
    }
    clpdd_param_cfg pc;
    clpdd_param_cfg_default(&pc);
    pc.kind = x->param;
    pc.pyramid_every = x->pyramid_every;
    pc.init_std = x->pyramid_init_std;
    pc.decorrelate = x->decorrelate;
    if (clpdd_param_create(&r->param, r->h, &pc, m, r->c, r->H, r->W, init, x->seed, e)) return -1;
    size_t cap = clpdd_param_capacity(r->param);
    r->adam_m = dalloc(r, cap * sizeof(float), &fail), r->adam_v = dalloc(r, cap * sizeof(float), &fail);
    r->dvals = dalloc(r, cap * sizeof(float), &fail);
    if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));
    ops->fill(r->adam_m, 0.0f, cap);
    ops->fill(r->adam_v, 0.0f, cap);
    ops->to_device(r->ys, r->ys_host, (size_t)me * sizeof(int32_t));
    if (r->lvt && r->lvt->encode_labels) r->lvt->encode_labels(r->loss, r->Ys, r->ys, me);
    else ops->onehot(r->Ys, r->ys, me, C, 1.0f, 0.0f);

    if (x->augment == CLPDD_AUGMENT_DSA) {
        clpdd_augment_cfg ac;
        clpdd_augment_cfg_default(&ac);
        ac.flip_p = x->dsa_flip_p;
        ac.scale_lo = x->dsa_scale_min;
        ac.noise_p = x->dsa_noise_p;
        ac.noise_mean = x->dsa_noise_mean;
        ac.noise_std = x->dsa_noise_std;
        if (clpdd_augment_create(&r->aug_syn, r->h, &ac, r->c, r->H, r->W, me, e)) return -1;
        if (clpdd_augment_create(&r->aug_real, r->h, &ac, r->c, r->H, r->W, n, e)) return -1;
        if (clpdd_adapter_init_mode(&r->ad_real, r->h, r->c, r->H, r->W, &r->bb.info, n, r->bb.adapt, e)) return -1;
        size_t bpx = (size_t)r->bb.info.channels * r->bb.info.height * r->bb.info.width;
        r->Xa = dalloc(r, (size_t)me * r->px * sizeof(float), &fail), r->dXa = dalloc(r, (size_t)me * r->px * sizeof(float), &fail);
        r->Xr = dalloc(r, (size_t)n * r->px * sizeof(float), &fail), r->Xr_aug = dalloc(r, (size_t)n * r->px * sizeof(float), &fail);
        r->Xr_in = dalloc(r, (size_t)n * bpx * sizeof(float), &fail);
        if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));
        r->Xr_host = clpdd_xmalloc((size_t)n * r->px * sizeof(float));
    }
    if (r->f16) {
        uint16_t *h16 = clpdd_xmalloc((size_t)N * d * sizeof(uint16_t));
        for (size_t i = 0; i < (size_t)N * d; i++) h16[i] = clpdd_f32_to_f16(r->target_x[i]);
        ops->to_device(r->Phi, h16, (size_t)N * d * sizeof(uint16_t));
        free(h16);
    } else {
        ops->to_device(r->Phi, r->target_x, (size_t)N * d * sizeof(float));
    }

    r->perm = clpdd_xmalloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) r->perm[i] = i;
    r->idx_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    r->pick = clpdd_xmalloc((size_t)n * sizeof(int));
    r->yb_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    r->caplog = x->steps / x->log_every + 2;
    r->log = clpdd_xmalloc((size_t)r->caplog * sizeof *r->log);
    return 0;
}

/* ---- distill ---- */

static void fmt_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void progress(int step, int total, float loss, double elapsed, int tty, int final) {
    double rate = step / (elapsed > 1e-9 ? elapsed : 1e-9);
    char eta[32];
    fmt_duration(eta, sizeof eta, (total - step) / (rate > 0 ? rate : 1e-9));
    fprintf(stderr, "%sdistill: step %d/%d  loss %.5g  %.1f steps/s  ETA %s%s", tty ? "\r" : "", step, total, loss, rate, eta,
            tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* a real batch without replacement (the first n of a partial Fisher-Yates shuffle) and its
   features Φ_b: from the cache, or (DSA) of freshly augmented images through the backbone */
static int real_batch(run *r, int step, clpdd_err *e) {
    for (int i = 0; i < r->n; i++) {
        int j = i + clpdd_rng_below(&r->rng, r->N - i);
        int t = r->perm[i];
        r->perm[i] = r->perm[j];
        r->perm[j] = t;
        r->idx_host[i] = r->perm[i];
        r->pick[i] = r->target_rows[r->perm[i]];
        r->yb_host[i] = r->target_y[r->perm[i]];
    }
    const clpdd_ops *ops = r->ops;
    ops->to_device(r->yb, r->yb_host, (size_t)r->n * sizeof(int32_t));
    if (!r->aug_real) {
        ops->to_device(r->idx, r->idx_host, (size_t)r->n * sizeof(int32_t));
        if (r->f16) ops->gather_rows_f16(r->phib, r->Phi, r->idx, (size_t)r->n, (size_t)r->d);
        else ops->gather_rows(r->phib, r->Phi, r->idx, (size_t)r->n, (size_t)r->d);
        return 0;
    }
    double t0 = clpdd_now();
    if (clpdd_dataset_read_float(&r->train, r->pick, 0, r->n, r->Xr_host, e)) return -1; /* an image folder: decoded now */
    ops->to_device(r->Xr, r->Xr_host, (size_t)r->n * r->px * sizeof(float));
    r->read_s += clpdd_now() - t0;
    /* its own stream (seed + 1), so the real and the synthetic draws never coincide */
    clpdd_augment_sample(r->aug_real, r->n, r->x->seed + 1, (uint64_t)step * (uint64_t)r->n);
    clpdd_augment_forward(r->aug_real, r->Xr_aug, r->Xr, r->n);
    clpdd_adapter_forward(&r->ad_real, r->Xr_in, r->Xr_aug, r->n);
    clpdd_precision was = clpdd_backbone_precision_enter(&r->bb);
    int rc = r->bb.vt->forward(r->bb.self, r->phib, r->Xr_in, r->n, NULL);
    clpdd_backbone_precision_leave(&r->bb, was);
    return rc ? plugin_fail(r, "backbone", r->bb.desc->name, e) : 0;
}

/* L and dX_s for the current X_s and real batch */
static int loss_and_grad(run *r, int step, float *L, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const float *in = r->Xs;
    if (r->aug_syn) {
        clpdd_augment_sample(r->aug_syn, r->me, x->seed, (uint64_t)step * (uint64_t)r->me);
        clpdd_augment_forward_tiled(r->aug_syn, r->Xa, r->Xs, r->m, r->k);
        in = r->Xa;
    }
    if (clpdd_encoder_forward(&r->enc, r->phis, in, e)) return -1;
    if (r->svt->objective) {
        if (r->svt->objective(r->solver, L, r->phis, r->Ys, r->phib, r->yb, r->n) ||
            r->svt->backward(r->solver, r->dphis, NULL, NULL))
            return plugin_fail(r, "solver", x->solver.desc->name, e);
    } else {
        if (r->svt->forward(r->solver, r->Z, r->phis, r->Ys, r->phib, r->n))
            return plugin_fail(r, "solver", x->solver.desc->name, e);
        if (r->lvt->forward(r->loss, L, r->dZ, r->Z, r->yb, r->n)) return plugin_fail(r, "loss", x->loss.desc->name, e);
        if (r->svt->backward(r->solver, r->dphis, NULL, r->dZ)) return plugin_fail(r, "solver", x->solver.desc->name, e);
    }
    if (!r->aug_syn) return clpdd_encoder_backward(&r->enc, r->dXs, r->dphis, r->Xs, e);
    if (clpdd_encoder_backward(&r->enc, r->dXa, r->dphis, r->Xa, e)) return -1;
    clpdd_augment_backward_tiled(r->aug_syn, r->dXs, r->dXa, r->m, r->k);
    return 0;
}

/* the loop's whole state, between devices and the checkpoint file */
static clpdd_checkpoint checkpoint_view(run *r, float *host) {
    size_t cap = clpdd_param_capacity(r->param);
    return (clpdd_checkpoint){0,      0,       r->rng.s,  host,       host + cap, host + 2 * cap, cap, r->perm, r->N,
                              r->log, r->nlog, r->caplog, r->config, r->x->steps};
}

static int checkpoint_save(run *r, int step, uint64_t hash, clpdd_err *e) {
    size_t cap = clpdd_param_capacity(r->param);
    float *host = clpdd_xmalloc(3 * cap * sizeof(float));
    r->ops->to_host(host, clpdd_param_values(r->param), cap * sizeof(float));
    r->ops->to_host(host + cap, r->adam_m, cap * sizeof(float));
    r->ops->to_host(host + 2 * cap, r->adam_v, cap * sizeof(float));
    clpdd_checkpoint c = checkpoint_view(r, host);
    c.config_hash = hash, c.step = step;
    int rc = clpdd_mkdirs(r->outdir, e) || clpdd_checkpoint_write(r->ckpt_path, &c, e);
    free(host);
    return rc ? -1 : 0;
}

/* the last completed step of a checkpoint restored into the run, or 0 to start afresh */
static int checkpoint_restore(run *r, uint64_t hash, clpdd_err *e) {
    size_t cap = clpdd_param_capacity(r->param);
    float *host = clpdd_xmalloc(3 * cap * sizeof(float));
    clpdd_checkpoint c = checkpoint_view(r, host);
    c.config_hash = hash;
    int rc = clpdd_checkpoint_read(r->ckpt_path, &c, e);
    if (rc == 0) {
        r->ops->to_device(clpdd_param_values(r->param), host, cap * sizeof(float));
        r->ops->to_device(r->adam_m, host + cap, cap * sizeof(float));
        r->ops->to_device(r->adam_v, host + 2 * cap, cap * sizeof(float));
        r->rng.s = c.rng_state;
        r->nlog = c.nlog;
        if (r->nlog > 0 && r->log[0].step == 1) r->sum.first_loss = r->log[0].loss; /* step 1 is always logged */
        if (!r->quiet) fprintf(stderr, "distill: resuming after step %d from %s\n", c.step, r->ckpt_path);
    } else if (rc == 1 && !r->quiet) {
        fprintf(stderr, "distill: no checkpoint at %s; starting from step 1\n", r->ckpt_path);
    }
    free(host);
    return rc < 0 ? -1 : (rc == 0 ? c.step : 0);
}

/* the resolved values that determine the distillation (not the file's path, nor whether a
   value was a default, nor the [eval] keys) */
static uint64_t config_hash(run *r) {
    free(r->config);
    r->config = clpdd_experiment_distill_ini(r->x);
    return clpdd_hash_str(CLPDD_HASH_SEED, r->config);
}

/* one optimisation step: render X_s, a real batch, L and its gradient, Adam on the parameters;
   *level_added = 1 when the pyramid grew a level this step */
static int step_once(run *r, int step, float *L, int *level_added, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const clpdd_ops *ops = r->ops;
    size_t np = (size_t)r->m * r->px;
    *level_added = clpdd_param_on_step(r->param, step);
    clpdd_param_render(r->param, r->Xs);
    if (real_batch(r, step, e) || loss_and_grad(r, step, L, e)) return clpdd_err_prefix(e, "step %d: ", step);
    if (!isfinite(*L) || !ops->all_finite(r->dXs, np))
        return clpdd_err_set(e, "step %d: the loss or the image gradient is not finite (loss %g); lower [distill] lr?", step, *L);
    clpdd_param_backward(r->param, r->dvals, r->dXs);
    clpdd_param_adam(r->param, r->adam_m, r->adam_v, r->dvals, x->lr, x->adam_b1, x->adam_b2, 1e-8f, 0.0f);
    if (x->param == CLPDD_PARAM_PIXELS) ops->clamp(clpdd_param_values(r->param), 0.0f, 1.0f, np);
    return 0;
}

static int distill(run *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const clpdd_ops *ops = r->ops;
    size_t np = (size_t)r->m * r->px;
    int steps = x->steps, tty = isatty(2) && !r->quiet;
    int every = x->progress_every > 0 ? x->progress_every : (steps >= 20 ? steps / 20 : 1);
    uint64_t hash = config_hash(r);
    int done = r->resume ? checkpoint_restore(r, hash, e) : 0;
    if (done < 0) return -1;
    /* test seam: end the loop with an error after this step, as a crash would */
    const char *crash = getenv("CLPDD_TEST_CRASH_AFTER");
    int crash_after = crash ? atoi(crash) : 0;
    float L = NAN;
    double t0 = clpdd_now() - (r->nlog ? r->log[r->nlog - 1].seconds : 0.0), t_start = clpdd_now(), last_tty = 0;
    for (int step = done + 1; step <= steps; step++) {
        int added = 0;
        if (step_once(r, step, &L, &added, e)) return -1;
        if (added && !r->quiet && !tty)
            fprintf(stderr, "distill: step %d: pyramid level %d of %d added\n", step, clpdd_param_active_levels(r->param),
                    clpdd_param_levels(r->param));
        if (x->checkpoint_every > 0 && step % x->checkpoint_every == 0 && step < steps) {
            clpdd_err ce;
            /* a failed write (disk full) must not end hours of work: the last good checkpoint
               stays (writes are atomic), and the run goes on */
            if (checkpoint_save(r, step, hash, &ce) && !r->quiet)
                fprintf(stderr, "warning: step %d: checkpoint not written (%s); the last good one is kept\n", step, ce.msg);
        }
        if (step == crash_after) return clpdd_err_set(e, "simulated crash after step %d (CLPDD_TEST_CRASH_AFTER)", step);
        if (step == 1) r->sum.first_loss = L;
        double now = clpdd_now();
        if ((step % x->log_every == 0 || step == 1 || step == steps) && r->nlog < r->caplog)
            r->log[r->nlog++] = (clpdd_log_row){step, L, now - t0};
        if (r->quiet) continue;
        if (tty && (now - last_tty > 0.2 || step == steps)) {
            progress(step, steps, L, now - t0, 1, step == steps);
            last_tty = now;
        } else if (!tty && (step % every == 0 || step == steps)) {
            progress(step, steps, L, now - t0, 0, 1);
        }
    }
    clpdd_param_render(r->param, r->Xs);
    ops->synchronize();
    r->sum.loop_s = clpdd_now() - t_start; /* this process's share of the loop */
    r->sum.last_loss = L;
    r->sum.steps = steps;
    r->sum.ms_per_step = steps > done ? 1000.0 * r->sum.loop_s / (steps - done) : 0.0;
    ops->to_host(r->Xs_host, r->Xs, np * sizeof(float));
    return 0;
}

/* the closed-form classifier the run optimised, fitted on the distilled features phis (m, d)
   host, scored on the test split: the gap to the probe is worth seeing (DESIGN §7) */
static double solver_diagnostic(run *r, const float *phis) {
    const clpdd_ops *ops = r->ops;
    int m = r->m, d = r->d, C = r->C;
    double acc = NAN;
    for (int j = 0; j < r->k; j++) /* the support the solver was built for: k copies */
        ops->to_device(r->phis + (size_t)j * m * d, phis, (size_t)m * d * sizeof(float));
    float *Zte = clpdd_xmalloc((size_t)r->ftest.n * C * sizeof(float));
    int ok = 1;
    for (int i = 0; i < r->ftest.n && ok; i += r->n) {
        int k = r->ftest.n - i < r->n ? r->ftest.n - i : r->n;
        ops->to_device(r->phib, r->ftest.x + (size_t)i * d, (size_t)k * d * sizeof(float));
        ok = r->svt->forward(r->solver, r->Z, r->phis, r->Ys, r->phib, k) == 0;
        if (ok) ops->to_host(Zte + (size_t)i * C, r->Z, (size_t)k * C * sizeof(float));
    }
    if (ok) acc = clpdd_top1(Zte, r->ftest.y, r->ftest.n, C);
    else if (!r->quiet) fprintf(stderr, "warning: solver diagnostic failed: %s\n", clpdd_host_error(r->h));
    free(Zte);
    return acc;
}

/* ---- evaluate ---- */

/* what the baselines' scores depend on (core/eval/score_cache.h): the features (their cache files
   name backbone, weights, adapter and data), the split, the evaluation, ipc and the run's seed */
static char *baselines_key(const run *r) {
    const clpdd_experiment *x = r->x;
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "train=%s test=%s val=%ld/%llu protocol=%s seeds=%d epochs=%d batch=%d lr=%.9g full_epochs=%d "
                        "max_iter=%d ipc=%d seed=%llu random=%d centroids=%d full=%d wd=",
                    r->ftrain.path, r->ftest.path, x->val_size, (unsigned long long)x->subset_seed,
                    clpdd_protocol_name(x->protocol), x->eval_seeds, x->eval_epochs, x->eval_batch, x->eval_lr, x->full_epochs,
                    x->probe_max_iter, r->ipc, (unsigned long long)x->seed, x->baseline_random, x->baseline_centroids,
                    x->baseline_full);
    for (int i = 0; i < x->n_wd; i++) clpdd_sb_printf(&b, "%s%.9g", i ? "," : "", x->wd[i]);
    return b.s;
}

static int evaluate(run *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    clpdd_summary *s = &r->sum;
    int m = r->m, d = r->d;
    clpdd_eval_cfg cfg;
    clpdd_eval_cfg_from_experiment(&cfg, x);
    clpdd_evaluator ev;
    clpdd_labelled train = {r->target_x, r->target_y, r->N}, val = {r->val_x, r->val_y, r->nv},
                   test = {r->ftest.x, r->ftest.y, r->ftest.n};
    int max_m = m > r->C * r->ipc ? m : r->C * r->ipc; /* the set, or a baseline of ipc per class */
    if (clpdd_evaluator_init(&ev, &r->bb, r->c, r->H, r->W, r->C, train, val, test, &r->train, r->target_rows, &cfg, max_m,
                             r->quiet, e)) {
        clpdd_evaluator_free(&ev);
        return -1;
    }
    if (!r->quiet) {
        if (x->protocol == CLPDD_PROTOCOL_PROBE)
            fprintf(stderr, "eval: converged probe (L-BFGS; L2 from %d values on %d validation images)\n", x->n_wd, r->nv);
        else
            fprintf(stderr, "eval: %s protocol (LGM's probe: %d seeds x %d epochs)\n", clpdd_protocol_name(x->protocol),
                    x->eval_seeds, x->eval_epochs);
    }
    float *phis = clpdd_xmalloc((size_t)m * d * sizeof(float));
    int rc = clpdd_evaluator_features(&ev, phis, r->Xs_host, m, e) ||
             clpdd_evaluate_set(&ev, &s->acc, r->Xs_host, phis, r->ys_host, m, e);
    s->has_random = x->baseline_random, s->has_centroids = x->baseline_centroids, s->has_full = x->baseline_full;
    char *key = baselines_key(r);
    clpdd_baseline_scores b;
    if (rc == 0 && (s->has_random || s->has_centroids || s->has_full)) {
        if (clpdd_scores_load(r->cache_dir, key, &b) == 0) {
            s->baselines_from_cache = 1;
            if (!r->quiet) fprintf(stderr, "eval: baselines from the cache (the same data, split, evaluation, ipc and seed)\n");
        } else {
            memset(&b, 0, sizeof b);
            if (rc == 0 && s->has_random) rc = clpdd_evaluate_random_real(&ev, &b.random_real, r->ipc, e);
            if (rc == 0 && s->has_centroids) rc = clpdd_evaluate_centroids(&ev, &b.centroids, r->ipc, e);
            if (rc == 0 && s->has_full) {
                if (!r->quiet) fprintf(stderr, "eval: full-data probe on %d training features\n", r->N);
                rc = clpdd_evaluate_full(&ev, &b.full_data, e);
            }
            clpdd_err se;
            if (rc == 0 && clpdd_scores_save(r->cache_dir, key, &b, &se) && !r->quiet)
                fprintf(stderr, "warning: baseline scores not cached: %s\n", se.msg);
        }
        s->random_real = b.random_real, s->centroids = b.centroids, s->full_data = b.full_data;
    }
    free(key);
    clpdd_evaluator_free(&ev);
    s->solver_acc = NAN;
    if (rc == 0 && x->ridge_diagnostic && r->solver && r->svt->forward) s->solver_acc = solver_diagnostic(r, phis);
    free(phis);
    return rc ? -1 : 0;
}

/* ---- write ---- */

/* what metrics.json reports beside the scores */
static void fill_summary(run *r) {
    const clpdd_experiment *x = r->x;
    clpdd_summary *s = &r->sum;
    s->name = x->name, s->backbone = r->bb.desc->name, s->solver = x->solver.desc->name;
    s->loss = x->loss.desc ? x->loss.desc->name : NULL;
    s->init = clpdd_init_name(x->init), s->protocol = clpdd_protocol_name(x->protocol), s->device = r->ops->name;
    s->dataset = r->train.desc, s->test_set = r->test.desc;
    s->ipc = r->ipc, s->real_batch = r->n, s->lr = x->lr, s->seed = x->seed;
    s->eval_seeds = x->eval_seeds, s->eval_epochs = x->eval_epochs, s->eval_batch = x->eval_batch, s->eval_lr = x->eval_lr;
    s->n_train = r->N, s->n_val = r->nv, s->n_test = r->ftest.n, s->dim = r->d;
    s->from_cache = r->ftrain.from_cache && r->ftest.from_cache;
    s->features_s = r->ftrain.seconds + r->ftest.seconds;
    s->peak_host_mb = clpdd_peak_rss_bytes() / 1048576.0;
    s->peak_device_mb = r->ops->is_device ? r->ops->peak_bytes() / 1048576.0 : NAN;
    s->peak_alloc_mb = clpdd_host_peak_bytes(r->h) / 1048576.0;
}

static int write_outputs(run *r, const char *outdir, double t_start, clpdd_err *e) {
    clpdd_experiment *x = r->x;
    clpdd_summary *s = &r->sum;
    char path[4096];
    if (clpdd_mkdirs(outdir, e)) return -1;
    char *resolved = clpdd_experiment_resolved_ini(x);
    snprintf(path, sizeof path, "%s/config.ini", outdir);
    int rc = clpdd_write_file_atomic(path, resolved, strlen(resolved), e);
    free(resolved);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/log.csv", outdir);
    if (clpdd_write_log_csv(path, r->log, r->nlog, e)) return -1;

    fill_summary(r);
    if (clpdd_write_distilled(outdir, r->Xs_host, r->ys_host, r->m, r->c, r->H, r->W, r->ipc, r->C, s, e)) return -1;
    snprintf(path, sizeof path, "%s/loss.png", outdir);
    char title[512];
    snprintf(title, sizeof title, "%s: %s + %s, %s, ipc %d", x->name, s->solver, s->loss ? s->loss : "objective", s->backbone,
             r->ipc);
    if (r->nlog > 0 && clpdd_write_loss_plot(path, r->log, r->nlog, title, e)) return -1;
    s->wrote_loss_plot = r->nlog > 0;
    s->total_s = clpdd_now() - t_start; /* metrics.json last: its presence marks a finished run */
    snprintf(path, sizeof path, "%s/metrics.json", outdir);
    return clpdd_write_metrics(path, s, e);
}

/* config.ini, metrics.json and the grid of an evaluated set (clpdd eval) */
static int write_eval_outputs(run *r, const char *outdir, double t_start, clpdd_err *e) {
    clpdd_experiment *x = r->x;
    clpdd_summary *s = &r->sum;
    char path[4096];
    char *resolved = clpdd_experiment_resolved_ini(x);
    snprintf(path, sizeof path, "%s/config.ini", outdir);
    int rc = clpdd_write_file_atomic(path, resolved, strlen(resolved), e);
    free(resolved);
    if (rc) return -1;
    fill_summary(r);
    if (!r->eval_set->from_run) s->solver = s->loss = NULL; /* made elsewhere: not this configuration's method */
    if (clpdd_write_distilled(outdir, r->Xs_host, r->ys_host, r->m, r->c, r->H, r->W, r->ipc, r->C, s, e)) return -1;
    s->total_s = clpdd_now() - t_start;
    snprintf(path, sizeof path, "%s/metrics.json", outdir);
    return clpdd_write_metrics(path, s, e);
}

static void print_score(const char *name, const clpdd_score *s) {
    fprintf(stderr, "   %s %.2f%%", name, 100 * s->mean);
    if (s->n > 1) fprintf(stderr, " +- %.2f", 100 * s->std);
}

static void report(const run *r, const char *outdir) {
    const clpdd_summary *s = &r->sum;
    fprintf(stderr, "\nresult (%s protocol, test split):", s->protocol);
    print_score("distilled", &s->acc);
    if (s->has_random) print_score("random real", &s->random_real);
    if (s->has_centroids) print_score("centroids", &s->centroids);
    if (s->has_full) print_score("full data", &s->full_data);
    if (isfinite(s->solver_acc)) fprintf(stderr, "   (%s classifier %.2f%%)", s->solver, 100 * s->solver_acc);
    if (r->x->protocol == CLPDD_PROTOCOL_PROBE && r->nv > 0)
        fprintf(stderr, "\n        validation: distilled %.2f%% at wd %g%s", 100 * s->acc.val_mean, s->acc.wd_per_seed[0],
                s->acc.all_converged ? "" : " (the probe did NOT converge: raise [eval] probe_max_iter)");
    if (r->eval_set) {
        fprintf(stderr, "\n        peak RSS %.0f MB, total %.1f s\n"
                        "        wrote %s/{metrics.json,config.ini,distilled.safetensors,distilled.png}\n",
                s->peak_host_mb, s->total_s, outdir);
        return;
    }
    fprintf(stderr, "\n        %d steps, %.2f ms/step, peak RSS %.0f MB, total %.1f s\n"
                    "        wrote %s/{metrics.json,log.csv,config.ini,distilled.safetensors,distilled.png%s}\n",
            s->steps, s->ms_per_step, s->peak_host_mb, s->total_s, outdir, s->wrote_loss_plot ? ",loss.png" : "");
}

/* a run's state before anything else: the options, the device, the run directory taken */
static int begin(run *r, clpdd_experiment *x, const clpdd_run_opts *opts, int resume, const clpdd_ops **ops, clpdd_err *e) {
    memset(r, 0, sizeof *r);
    clpdd_reset_peak_rss(); /* metrics.json reports this run's peak, also when a sweep runs many in one process */
    r->dir.lock_fd = -1;
    r->x = x;
    r->quiet = opts && opts->quiet;
    r->resume = resume;
    r->sum.first_loss = r->sum.last_loss = NAN;
    *ops = opts && opts->ops ? opts->ops : clpdd_select_device(x->device, e);
    if (!*ops) return -1;
    r->outdir = opts && opts->output ? opts->output : x->output;
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.safetensors", r->outdir);
    return clpdd_rundir_acquire(&r->dir, r->outdir, resume, opts && opts->force, e);
}

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e) {
    double t_start = clpdd_now();
    run r;
    const clpdd_ops *ops;
    int rc = begin(&r, x, opts, opts && opts->resume, &ops, e);
    const char *outdir = r.outdir;
    if (rc == 0) rc = setup_data(&r, ops, "run", e);
    if (rc == 0) rc = setup_loop(&r, e);
    if (rc == 0) rc = distill(&r, e);
    if (rc == 0) rc = evaluate(&r, e);
    if (rc == 0) rc = write_outputs(&r, outdir, t_start, e);
    if (rc == 0) unlink(r.ckpt_path); /* finished: nothing to resume */
    if (rc == 0 && !r.quiet) report(&r, outdir);
    run_free(&r);
    return rc ? -1 : 0;
}

/* one image (c, H·W) into the dataset's channel count: RGB → grey as PIL's convert("L") on the
   8-bit values (the images other tools export), grey → RGB by replication */
static void copy_channels(float *dst, int dst_c, const float *src, int src_c, size_t hw) {
    if (dst_c == src_c) {
        memcpy(dst, src, (size_t)dst_c * hw * sizeof(float));
    } else if (dst_c == 1) {
        for (size_t p = 0; p < hw; p++) {
            uint32_t rgb[3];
            for (int k = 0; k < 3; k++) rgb[k] = (uint32_t)lrintf(src[k * hw + p] * 255.0f);
            dst[p] = (float)((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16) / 255.0f;
        }
    } else {
        for (int k = 0; k < 3; k++) memcpy(dst + k * hw, src, hw * sizeof(float));
    }
}

int clpdd_run_eval(clpdd_experiment *x, const clpdd_image_set *set, const clpdd_run_opts *opts, clpdd_err *e) {
    double t_start = clpdd_now();
    run r;
    const clpdd_ops *ops;
    int rc = begin(&r, x, opts, 0, &ops, e);
    const char *outdir = r.outdir;
    if (rc == 0) rc = setup_data(&r, ops, "eval", e);
    int channels_ok = set->c == r.c || (set->c == 3 && r.c == 1) || (set->c == 1 && r.c == 3);
    if (rc == 0 && (!channels_ok || set->H != r.H || set->W != r.W))
        rc = clpdd_err_set(e, "eval: %s holds %dx%dx%d images but the configuration's dataset has %dx%dx%d (%s)", set->source,
                           set->c, set->H, set->W, r.c, r.H, r.W, r.train.desc);
    for (int i = 0; rc == 0 && i < set->m; i++)
        if (set->labels[i] < 0 || set->labels[i] >= r.C)
            rc = clpdd_err_set(e, "eval: %s: image %d has label %d; the dataset has classes 0..%d", set->source, i,
                               set->labels[i], r.C - 1);
    /* class-major, ipc per class: the layout of a distilled set (and of its grid) */
    int *count = clpdd_xcalloc((size_t)(r.C > 0 ? r.C : 1), sizeof *count);
    for (int i = 0; rc == 0 && i < set->m; i++) count[set->labels[i]]++;
    for (int c = 0; rc == 0 && c < r.C; c++)
        if (count[c] != x->ipc)
            rc = clpdd_err_set(e, "eval: %s has %d images of class %d; a distilled set has the same number (here %d) of "
                                  "every class 0..%d", set->source, count[c], c, x->ipc, r.C - 1);
    free(count);
    if (rc == 0) {
        r.m = set->m, r.ipc = x->ipc, r.n = 1, r.k = 1;
        r.Xs_host = clpdd_xmalloc((size_t)r.m * r.px * sizeof(float));
        r.ys_host = clpdd_xmalloc((size_t)r.m * sizeof(int32_t));
        for (int c = 0, j = 0; c < r.C; c++) /* stable: a set's own order within a class is kept */
            for (int i = 0; i < set->m; i++)
                if (set->labels[i] == c) {
                    copy_channels(r.Xs_host + (size_t)j * r.px, r.c, set->images + (size_t)i * set->c * r.H * r.W, set->c,
                                  (size_t)r.H * r.W);
                    r.ys_host[j++] = c;
                }
        r.sum.source = set->source;
        r.eval_set = set;
        rc = evaluate(&r, e);
    }
    if (rc == 0) rc = write_eval_outputs(&r, outdir, t_start, e);
    if (rc == 0 && !r.quiet) report(&r, outdir);
    run_free(&r);
    return rc ? -1 : 0;
}

/* clpdd features: the feature cache of both splits, as a run would find it (the same datasets,
   backbone and keys); parts > 0: only part `part` of the shards; merge: verify every shard and
   write the index */
int clpdd_run_features(clpdd_experiment *x, const clpdd_run_opts *opts, int part, int parts, int merge, clpdd_err *e) {
    run r;
    memset(&r, 0, sizeof r);
    r.dir.lock_fd = -1;
    r.x = x;
    r.quiet = opts && opts->quiet;
    r.sum.first_loss = r.sum.last_loss = NAN;
    r.feat_only = 1, r.feat_part = part, r.feat_parts = parts, r.feat_merge = merge;
    const clpdd_ops *ops = opts && opts->ops ? opts->ops : clpdd_select_device(x->device, e);
    int rc = ops ? setup_data(&r, ops, "features", e) : -1;
    run_free(&r);
    return rc ? -1 : 0;
}

/* ---- clpdd bench: the step of this experiment, timed, on random data ---- */

/* the timed steps (none with memory_only): ms per step and DSA's image reads into res */
static int bench_steps(run *r, const clpdd_bench_opts *b, clpdd_bench_result *res, clpdd_err *e) {
    const clpdd_ops *ops = r->ops;
    double *ms = clpdd_xmalloc((size_t)(b->steps > 0 ? b->steps : 1) * sizeof(double));
    double *read_ms = clpdd_xmalloc((size_t)(b->steps > 0 ? b->steps : 1) * sizeof(double));
    float L = NAN;
    int rc = 0;
    for (int step = 1; rc == 0 && step <= b->warmup + b->steps; step++) {
        ops->synchronize();
        clpdd_flops_reset();
        r->read_s = 0.0;
        double t0 = clpdd_now();
        int added;
        rc = step_once(r, step, &L, &added, e);
        ops->synchronize();
        double dt = clpdd_now() - t0;
        if (rc == 0 && step > b->warmup) ms[step - b->warmup - 1] = 1e3 * dt, read_ms[step - b->warmup - 1] = 1e3 * r->read_s;
        if (rc == 0) res->flop = clpdd_flops();
    }
    if (rc == 0 && b->steps > 0) {
        res->read_ms_median = clpdd_median(read_ms, b->steps);
        res->ms_median = clpdd_median(ms, b->steps); /* sorts ms */
        res->ms_min = ms[0], res->ms_max = ms[b->steps - 1];
        res->last_loss = L;
    }
    free(ms), free(read_ms);
    return rc;
}

int clpdd_run_bench(clpdd_experiment *x, const clpdd_run_opts *opts, const clpdd_bench_opts *b, clpdd_bench_result *res,
                    clpdd_err *e) {
    memset(res, 0, sizeof *res);
    if ((b->steps < 1 && !b->memory_only) || b->warmup < 0)
        return clpdd_err_set(e, "bench: steps %d, warmup %d; expected steps >= 1, warmup >= 0", b->steps, b->warmup);
    run r;
    memset(&r, 0, sizeof r);
    r.dir.lock_fd = -1;
    r.x = x;
    r.quiet = 1;
    r.bench = b;
    r.sum.first_loss = r.sum.last_loss = NAN;
    const clpdd_ops *inner = opts && opts->ops ? opts->ops : clpdd_select_device(x->device, e);
    if (!inner) return -1;
    /* the whole run on the counting view: the counter is read around one step only */
    int rc = setup_data(&r, clpdd_ops_counting(inner), "bench", e);
    if (rc == 0) rc = setup_loop(&r, e);
    /* memory_only: every tensor is allocated by now (ops never allocate, plugins at create) */
    if (rc == 0 && !b->memory_only) rc = bench_steps(&r, b, res, e);
    if (rc == 0) {
        res->peak_bytes = clpdd_host_peak_bytes(r.h);
        res->m = r.m, res->me = r.me, res->n = r.n, res->d = r.d, res->C = r.C, res->N = r.N;
        res->image_side = r.H, res->backbone_side = r.bb.info.height;
        res->precision = clpdd_precision_effective(inner, x->precision);
        snprintf(res->device, sizeof res->device, "%s", inner->name);
    }
    run_free(&r);
    return rc ? -1 : 0;
}
