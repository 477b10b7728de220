/* The distillation loop (core/distill/loop.h).
 *
 * Legend: N distillation targets, m = C·ipc synthetic, n real batch per step, d feature dim,
 * C classes, px = c·H·W pixels of a dataset image.
 *
 * Step (docs/design.md §1): params → X_s (pixels: the images; pyramid: rendered) → [DSA: k
 * augmented copies] → adapter → backbone (tape) → Φ_s; Z = solver(Φ_s, Y_s; Φ_b); L = loss(Z, y_b);
 * dZ → solver.backward → dΦ_s → backbone.backward → adapter.backward → [DSA backward, copies
 * summed] → dX_s → params; Adam on the params (pixels are then clamped to [0, 1], the space the
 * real images live in). With DSA the real batch is augmented too, so its features are
 * recomputed through the backbone every step (the cost LGM pays); otherwise they come from
 * the cache. me = k·m is the support size the solver sees. */
#define _GNU_SOURCE
#include "distill/loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/prefetch.h"
#include "distill/checkpoint.h"
#include "eval/evaluate.h" /* clpdd_top1 */
#include "io/safetensors.h" /* clpdd_f32_to_f16 */
#include "numerics/precision.h"

static int plugin_fail(clpdd_loop *l, const char *what, const char *name, clpdd_err *e) {
    return clpdd_err_set(e, "%s '%s' failed: %s", what, name, clpdd_host_error(l->data->h));
}

static void *dalloc(clpdd_loop *l, size_t bytes, int *fail) {
    clpdd_host *h = l->data->h;
    void *p = h->alloc(h, bytes);
    if (!p) *fail = 1;
    return p;
}

/* ---- setup ---- */

/* the solver and loss plugins, the step's precision and the encoder */
static int setup_plugins(clpdd_loop *l, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    clpdd_run_data *r = l->data;
    clpdd_solver_dims dims = {l->me, l->d, l->C, l->n};
    l->svt = x->solver.desc->vtable;
    if (l->svt->create(r->h, x->solver_cfg, &dims, &l->solver)) {
        l->solver = NULL;
        return plugin_fail(l, "solver", x->solver.desc->name, e);
    }
    if (x->loss.desc) {
        l->lvt = x->loss.desc->vtable;
        if (l->lvt->create(r->h, x->loss_cfg, l->C, l->n, &l->loss)) {
            l->loss = NULL;
            return plugin_fail(l, "loss", x->loss.desc->name, e);
        }
    }
    if (clpdd_learned_setup(&l->learned, x, l->svt, l->solver, l->lvt, l->loss, e)) return -1;
    /* the step's backbone passes at [experiment] precision; extraction and evaluation stay fp32 */
    r->bb.precision = x->precision;
    if (x->precision != CLPDD_PRECISION_FP32) {
        clpdd_precision got = clpdd_precision_effective(l->ops, x->precision);
        if (got != x->precision && !l->quiet)
            fprintf(stderr, "warning: [experiment] precision = %s: %s computes fp32 only; the run is fp32\n",
                    clpdd_precision_name(x->precision), l->ops->name);
    }
    return clpdd_encoder_init(&l->enc, &r->bb, l->me, x->chunk, l->c, l->H, l->W, e);
}

/* the step's device buffers of fixed size */
static int setup_buffers(clpdd_loop *l, clpdd_err *e) {
    int m = l->m, d = l->d, C = l->C, n = l->n, N = l->N, me = l->me, fail = 0;
    size_t szX = (size_t)m * l->px * sizeof(float);
    l->Xs = dalloc(l, szX, &fail), l->dXs = dalloc(l, szX, &fail);
    l->phis = dalloc(l, (size_t)me * d * sizeof(float), &fail), l->dphis = dalloc(l, (size_t)me * d * sizeof(float), &fail);
    l->Ys = dalloc(l, (size_t)me * C * sizeof(float), &fail), l->ys = dalloc(l, (size_t)me * sizeof(int32_t), &fail);
    /* the real features on the device in the cache's dtype: f16 halves the largest buffer of an
       ImageNet-1K run (1.28 M × d); the values are the same (the cache already rounded them) */
    l->f16 = l->x->feature_f16 && l->ops->gather_rows_f16;
    l->Phi = dalloc(l, (size_t)N * d * (l->f16 ? sizeof(uint16_t) : sizeof(float)), &fail);
    l->phib = dalloc(l, (size_t)n * d * sizeof(float), &fail);
    l->Z = dalloc(l, (size_t)n * C * sizeof(float), &fail), l->dZ = dalloc(l, (size_t)n * C * sizeof(float), &fail);
    l->idx = dalloc(l, (size_t)n * sizeof(int32_t), &fail), l->yb = dalloc(l, (size_t)n * sizeof(int32_t), &fail);
    return fail ? clpdd_err_set(e, "run: %s", clpdd_host_error(l->data->h)) : 0;
}

/* the synthetic set: class-major, labels fixed (the k augmented copies repeat them); its
   parameters from [distill] init, Adam's moments zero, the support labels encoded */
static int setup_synthetic(clpdd_loop *l, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    clpdd_run_data *r = l->data;
    const clpdd_ops *ops = l->ops;
    int m = l->m, me = l->me, fail = 0;
    l->rng = (clpdd_rng){x->seed * 0xD1B54A32D192ED03ULL + 1};
    l->Xs_host = clpdd_xmalloc((size_t)m * l->px * sizeof(float));
    l->ys_host = clpdd_xmalloc((size_t)me * sizeof(int32_t));
    for (int i = 0; i < me; i++) l->ys_host[i] = (i % m) / l->ipc;
    const float *init = NULL;
    if (x->init == CLPDD_INIT_REAL) {
        int *init_idx = clpdd_xmalloc((size_t)m * sizeof(int));
        int rc = clpdd_sample_per_class(r->target_y, l->N, l->C, l->ipc, &l->rng, init_idx, e);
        for (int i = 0; rc == 0 && i < m; i++) init_idx[i] = r->target_rows[init_idx[i]];
        if (rc == 0) rc = clpdd_dataset_read_float(&r->train, init_idx, 0, m, l->Xs_host, e);
        free(init_idx);
        if (rc) return -1;
        init = l->Xs_host;
    }
    clpdd_param_cfg pc;
    clpdd_param_cfg_default(&pc);
    pc.kind = x->param;
    pc.pyramid_every = x->pyramid_every;
    pc.init_std = x->pyramid_init_std;
    pc.decorrelate = x->decorrelate;
    if (clpdd_param_create(&l->param, r->h, &pc, m, l->c, l->H, l->W, init, x->seed, e)) return -1;
    size_t cap = clpdd_param_capacity(l->param);
    l->adam_m = dalloc(l, cap * sizeof(float), &fail), l->adam_v = dalloc(l, cap * sizeof(float), &fail);
    l->dvals = dalloc(l, cap * sizeof(float), &fail);
    if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));
    ops->fill(l->adam_m, 0.0f, cap);
    ops->fill(l->adam_v, 0.0f, cap);
    ops->to_device(l->ys, l->ys_host, (size_t)me * sizeof(int32_t));
    if (l->lvt && l->lvt->encode_labels) l->lvt->encode_labels(l->loss, l->Ys, l->ys, me);
    else ops->onehot(l->Ys, l->ys, me, l->C, 1.0f, 0.0f);
    l->learn_labels = x->labels == CLPDD_LABELS_LEARN;
    if (!l->learn_labels) return 0;
    l->dYs = dalloc(l, (size_t)me * l->C * sizeof(float), &fail);
    if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));
    if (clpdd_labels_init(&l->labels, r->h, m, l->k, l->C, l->ys_host, x->label_init, e)) return -1;
    clpdd_labels_forward(&l->labels, l->Ys);
    return 0;
}

/* DSA: the augmentations of the synthetic and the real images, the real batch's adapter and
   the buffers of both */
static int setup_dsa(clpdd_loop *l, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    clpdd_run_data *r = l->data;
    int me = l->me, n = l->n, fail = 0;
    clpdd_augment_cfg ac;
    clpdd_augment_cfg_default(&ac);
    ac.flip_p = x->dsa_flip_p;
    ac.scale_lo = x->dsa_scale_min;
    ac.noise_p = x->dsa_noise_p;
    ac.noise_mean = x->dsa_noise_mean;
    ac.noise_std = x->dsa_noise_std;
    if (clpdd_augment_create(&l->aug_syn, r->h, &ac, l->c, l->H, l->W, me, e)) return -1;
    if (clpdd_augment_create(&l->aug_real, r->h, &ac, l->c, l->H, l->W, n, e)) return -1;
    if (clpdd_adapter_init_mode(&l->ad_real, r->h, l->c, l->H, l->W, &r->bb.info, n, r->bb.adapt, e)) return -1;
    size_t bpx = (size_t)r->bb.info.channels * r->bb.info.height * r->bb.info.width;
    l->Xa = dalloc(l, (size_t)me * l->px * sizeof(float), &fail), l->dXa = dalloc(l, (size_t)me * l->px * sizeof(float), &fail);
    l->Xr = dalloc(l, (size_t)n * l->px * sizeof(float), &fail), l->Xr_aug = dalloc(l, (size_t)n * l->px * sizeof(float), &fail);
    l->Xr_in = dalloc(l, (size_t)n * bpx * sizeof(float), &fail);
    if (fail) return clpdd_err_set(e, "run: %s", clpdd_host_error(r->h));
    /* files to decode: the next batch is read while the step runs (docs/design.md §1); its two
       host buffers replace Xr_host */
    if (x->prefetch && clpdd_dataset_decodes_files(&r->train)) {
        l->prefetch = clpdd_prefetch_new(&r->train, n, l->px);
        l->ahead_swap = clpdd_xmalloc((size_t)n * sizeof(int));
    } else {
        l->Xr_host = clpdd_xmalloc((size_t)n * l->px * sizeof(float));
    }
    return 0;
}

/* the targets' features onto the device (in the cache's dtype), the sampler and the log */
static void setup_targets(clpdd_loop *l) {
    const clpdd_ops *ops = l->ops;
    const float *target_x = l->data->target_x;
    int N = l->N, n = l->n, d = l->d;
    if (l->f16) {
        uint16_t *h16 = clpdd_xmalloc((size_t)N * d * sizeof(uint16_t));
        for (size_t i = 0; i < (size_t)N * d; i++) h16[i] = clpdd_f32_to_f16(target_x[i]);
        ops->to_device(l->Phi, h16, (size_t)N * d * sizeof(uint16_t));
        free(h16);
    } else {
        ops->to_device(l->Phi, target_x, (size_t)N * d * sizeof(float));
    }
    l->perm = clpdd_xmalloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) l->perm[i] = i;
    l->idx_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    l->pick = clpdd_xmalloc((size_t)n * sizeof(int));
    l->yb_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    l->caplog = l->x->steps / l->x->log_every + 2;
    l->log = clpdd_xmalloc((size_t)l->caplog * sizeof *l->log);
}

int clpdd_loop_setup(clpdd_loop *l, clpdd_run_data *data, int quiet, clpdd_err *e) {
    const clpdd_experiment *x = data->x;
    memset(l, 0, sizeof *l);
    l->data = data, l->x = x, l->quiet = quiet, l->ops = data->ops;
    l->C = data->C, l->c = data->c, l->H = data->H, l->W = data->W, l->px = data->px;
    l->N = data->N, l->d = data->d;
    l->ipc = x->ipc, l->m = l->C * l->ipc;
    l->n = x->real_batch < l->N ? x->real_batch : l->N;
    if (l->n < x->real_batch && !quiet)
        fprintf(stderr, "warning: [distill] real_batch = %d is more than the %d distillation targets: each step uses all %d\n",
                x->real_batch, l->N, l->n);
    l->k = x->augment == CLPDD_AUGMENT_DSA ? x->augs_per_batch : 1;
    l->me = l->m * l->k;
    if (setup_plugins(l, e) || setup_buffers(l, e) || setup_synthetic(l, e)) return -1;
    if (x->augment == CLPDD_AUGMENT_DSA && setup_dsa(l, e)) return -1;
    setup_targets(l);
    return 0;
}

void clpdd_loop_free(clpdd_loop *l) {
    if (l->loss) l->lvt->destroy(l->loss);
    if (l->solver) l->svt->destroy(l->solver);
    clpdd_encoder_free(&l->enc);
    clpdd_param_destroy(l->param);
    clpdd_augment_destroy(l->aug_syn);
    clpdd_augment_destroy(l->aug_real);
    clpdd_adapter_free(&l->ad_real);
    free(l->Xs_host);
    free(l->Y_host);
    free(l->ys_host);
    free(l->perm);
    free(l->Xr_host);
    clpdd_prefetch_free(l->prefetch); /* joins a read still in flight (an error, a crash seam) */
    free(l->ahead_swap);
    free(l->pick);
    free(l->idx_host);
    free(l->yb_host);
    free(l->log);
    free(l->config);
}

/* ---- the step ---- */

/* the next real batch without replacement: the first n of a partial Fisher-Yates shuffle of perm.
   With a prefetch the swaps and the generator's state before them are kept, so that a checkpoint
   can store the sampler as it was before a batch drawn ahead (sampler_rewind) */
static void draw_batch(clpdd_loop *l) {
    clpdd_run_data *r = l->data;
    l->ahead_rng = l->rng;
    for (int i = 0; i < l->n; i++) {
        int j = i + clpdd_rng_below(&l->rng, l->N - i);
        int t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
        if (l->ahead_swap) l->ahead_swap[i] = j;
        l->idx_host[i] = l->perm[i];
        l->pick[i] = r->target_rows[l->perm[i]];
        l->yb_host[i] = r->target_y[l->perm[i]];
    }
}

/* a batch drawn ahead undone (forward = 0) or done again (1): the sampler's state of a run without
   the prefetch, for checkpoints (resuming with or without the prefetch gives the same batches) */
static void sampler_rewind(clpdd_loop *l, int forward) {
    clpdd_rng now = l->rng;
    l->rng = l->ahead_rng, l->ahead_rng = now;
    for (int k = 0; k < l->n; k++) {
        int i = forward ? k : l->n - 1 - k, j = l->ahead_swap[i], t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
}

static int batch_ahead(const clpdd_loop *l) { return l->prefetch && clpdd_prefetch_pending(l->prefetch); }

/* DSA: the batch's images on the device: from the prefetch (read during the previous step; the
   next one is then drawn and started, the same draws as a run without it) or read now. read_s: the
   time the step waited for them */
static int real_images(clpdd_loop *l, int step, clpdd_err *e) {
    double t0 = clpdd_now();
    const float *X = l->Xr_host;
    if (l->prefetch ? clpdd_prefetch_wait(l->prefetch, &X, e)
                    : clpdd_dataset_read_float(&l->data->train, l->pick, 0, l->n, l->Xr_host, e))
        return -1;
    l->ops->to_device(l->Xr, X, (size_t)l->n * l->px * sizeof(float));
    l->read_s += clpdd_now() - t0;
    if (l->prefetch && step < l->x->steps) {
        draw_batch(l); /* the device already has this step's labels (yb) */
        clpdd_prefetch_start(l->prefetch, l->pick);
    }
    return 0;
}

/* a real batch and its features Φ_b: from the cache, or (DSA) of freshly augmented images through
   the backbone */
static int real_batch(clpdd_loop *l, int step, clpdd_err *e) {
    clpdd_run_data *r = l->data;
    if (!batch_ahead(l)) {
        draw_batch(l);
        if (l->prefetch) clpdd_prefetch_start(l->prefetch, l->pick);
    }
    const clpdd_ops *ops = l->ops;
    ops->to_device(l->yb, l->yb_host, (size_t)l->n * sizeof(int32_t));
    if (!l->aug_real) {
        ops->to_device(l->idx, l->idx_host, (size_t)l->n * sizeof(int32_t));
        if (l->f16) ops->gather_rows_f16(l->phib, l->Phi, l->idx, (size_t)l->n, (size_t)l->d);
        else ops->gather_rows(l->phib, l->Phi, l->idx, (size_t)l->n, (size_t)l->d);
        return 0;
    }
    if (real_images(l, step, e)) return -1;
    /* its own stream (seed + 1), so the real and the synthetic draws never coincide */
    clpdd_augment_sample(l->aug_real, l->n, l->x->seed + 1, (uint64_t)step * (uint64_t)l->n);
    clpdd_augment_forward(l->aug_real, l->Xr_aug, l->Xr, l->n);
    clpdd_adapter_forward(&l->ad_real, l->Xr_in, l->Xr_aug, l->n);
    clpdd_precision was = clpdd_backbone_precision_enter(&r->bb);
    int rc = r->bb.vt->forward(r->bb.self, l->phib, l->Xr_in, l->n, NULL);
    clpdd_backbone_precision_leave(&r->bb, was);
    return rc ? plugin_fail(l, "backbone", r->bb.desc->name, e) : 0;
}

/* L and dX_s for the current X_s and real batch */
static int loss_and_grad(clpdd_loop *l, int step, float *L, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    const float *in = l->Xs;
    if (l->aug_syn) {
        clpdd_augment_sample(l->aug_syn, l->me, x->seed, (uint64_t)step * (uint64_t)l->me);
        clpdd_augment_forward_tiled(l->aug_syn, l->Xa, l->Xs, l->m, l->k);
        in = l->Xa;
    }
    if (clpdd_encoder_forward(&l->enc, l->phis, in, e)) return -1;
    /* the step keys a solver's own draws (lgm's heads): a resumed run draws what this one did */
    if (x->solver.desc->abi_minor >= 5 && l->svt->set_step) l->svt->set_step(l->solver, (uint64_t)step);
    if (l->svt->objective) {
        if (l->svt->objective(l->solver, L, l->phis, l->Ys, l->phib, l->yb, l->n) ||
            l->svt->backward(l->solver, l->dphis, NULL, NULL))
            return plugin_fail(l, "solver", x->solver.desc->name, e);
    } else {
        if (l->svt->forward(l->solver, l->Z, l->phis, l->Ys, l->phib, l->n))
            return plugin_fail(l, "solver", x->solver.desc->name, e);
        if (l->lvt->forward(l->loss, L, l->dZ, l->Z, l->yb, l->n)) return plugin_fail(l, "loss", x->loss.desc->name, e);
        if (l->svt->backward(l->solver, l->dphis, l->learn_labels ? l->dYs : NULL, l->dZ))
            return plugin_fail(l, "solver", x->solver.desc->name, e);
    }
    if (!l->aug_syn) return clpdd_encoder_backward(&l->enc, l->dXs, l->dphis, l->Xs, e);
    if (clpdd_encoder_backward(&l->enc, l->dXa, l->dphis, l->Xa, e)) return -1;
    clpdd_augment_backward_tiled(l->aug_syn, l->dXs, l->dXa, l->m, l->k);
    return 0;
}

int clpdd_loop_step(clpdd_loop *l, int step, float *L, int *level_added, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    const clpdd_ops *ops = l->ops;
    size_t np = (size_t)l->m * l->px;
    *level_added = clpdd_param_on_step(l->param, step);
    clpdd_param_render(l->param, l->Xs);
    if (real_batch(l, step, e) || loss_and_grad(l, step, L, e)) return clpdd_err_prefix(e, "step %d: ", step);
    if (!isfinite(*L) || !ops->all_finite(l->dXs, np))
        return clpdd_err_set(e, "step %d: the loss or the image gradient is not finite (loss %g); lower [distill] lr?", step, *L);
    if (clpdd_learned_step(&l->learned, step, x->learn_lr, x->adam_b1, x->adam_b2, x->learn_prior, e))
        return clpdd_err_prefix(e, "step %d: ", step);
    if (l->learn_labels) {
        if (clpdd_labels_step(&l->labels, l->dYs, step, x->labels_lr, x->adam_b1, x->adam_b2, e))
            return clpdd_err_prefix(e, "step %d: ", step);
        clpdd_labels_forward(&l->labels, l->Ys); /* the next step's support labels */
    }
    clpdd_param_backward(l->param, l->dvals, l->dXs);
    clpdd_param_adam(l->param, l->adam_m, l->adam_v, l->dvals, x->lr, x->adam_b1, x->adam_b2, 1e-8f, 0.0f);
    if (x->param == CLPDD_PARAM_PIXELS) ops->clamp(clpdd_param_values(l->param), 0.0f, 1.0f, np);
    return 0;
}

/* ---- checkpoints ---- */

/* the learned scalars' state as the checkpoint keeps it: (n, 4) rows of u, Adam's m and v, and
   the value the last step used */
static void learned_pack(const clpdd_learned_set *ls, double *out) {
    for (int k = 0; k < ls->n; k++)
        out[4 * k] = ls->u[k], out[4 * k + 1] = ls->m[k], out[4 * k + 2] = ls->v[k], out[4 * k + 3] = ls->used[k];
}

static void learned_unpack(clpdd_learned_set *ls, const double *in) {
    for (int k = 0; k < ls->n; k++)
        ls->u[k] = in[4 * k], ls->m[k] = in[4 * k + 1], ls->v[k] = in[4 * k + 2], ls->used[k] = in[4 * k + 3];
}

/* the checkpoint's optimised vector: the parameters, then (labels = learn) the label logits; its
   Adam moments likewise */
static size_t label_count(const clpdd_loop *l) { return l->learn_labels ? (size_t)l->m * l->C : 0; }
static size_t state_count(const clpdd_loop *l) { return clpdd_param_capacity(l->param) + label_count(l); }

/* the three arrays (values, Adam m, Adam v) between the devices and host (3 × state_count);
   to_host = 0: host to devices */
static void state_transfer(clpdd_loop *l, float *host, int to_host) {
    size_t pc = clpdd_param_capacity(l->param), nl = label_count(l), cap = pc + nl;
    float *dev[3] = {clpdd_param_values(l->param), l->adam_m, l->adam_v};
    float *lab[3] = {l->labels.logits, l->labels.adam_m, l->labels.adam_v};
    for (int a = 0; a < 3; a++) {
        if (to_host) l->ops->to_host(host + a * cap, dev[a], pc * sizeof(float));
        else l->ops->to_device(dev[a], host + a * cap, pc * sizeof(float));
        if (!nl) continue;
        if (to_host) l->ops->to_host(host + a * cap + pc, lab[a], nl * sizeof(float));
        else l->ops->to_device(lab[a], host + a * cap + pc, nl * sizeof(float));
    }
}

/* the loop's whole state, between devices and the checkpoint file */
static clpdd_checkpoint checkpoint_view(clpdd_loop *l, float *host) {
    size_t cap = state_count(l);
    return (clpdd_checkpoint){0,      0,       l->rng.s,  host,       host + cap, host + 2 * cap, cap, l->perm, l->N,
                              l->log, l->nlog, l->caplog, l->config, l->x->steps, l->learned.n, NULL};
}

static int checkpoint_save(clpdd_loop *l, const char *outdir, const char *path, int step, uint64_t hash, clpdd_err *e) {
    float *host = clpdd_xmalloc(3 * state_count(l) * sizeof(float));
    state_transfer(l, host, 1);
    int ahead = batch_ahead(l); /* the checkpoint holds the sampler before the batch drawn ahead */
    if (ahead) sampler_rewind(l, 0);
    clpdd_checkpoint c = checkpoint_view(l, host);
    c.config_hash = hash, c.step = step;
    double learned[4 * CLPDD_MAX_LEARNED];
    learned_pack(&l->learned, learned);
    c.learned = learned;
    int rc = clpdd_mkdirs(outdir, e) || clpdd_checkpoint_write(path, &c, e);
    if (ahead) sampler_rewind(l, 1);
    free(host);
    return rc ? -1 : 0;
}

/* the last completed step of a checkpoint restored into the loop, or 0 to start afresh */
static int checkpoint_restore(clpdd_loop *l, const char *path, uint64_t hash, clpdd_summary *s, clpdd_err *e) {
    float *host = clpdd_xmalloc(3 * state_count(l) * sizeof(float));
    clpdd_checkpoint c = checkpoint_view(l, host);
    c.config_hash = hash;
    double learned[4 * CLPDD_MAX_LEARNED];
    c.learned = learned;
    int rc = clpdd_checkpoint_read(path, &c, e);
    if (rc == 0) {
        learned_unpack(&l->learned, learned);
        clpdd_learned_apply(&l->learned);
        state_transfer(l, host, 0);
        if (l->learn_labels) { /* Y and the support from the restored logits */
            l->ops->softmax_rows(l->labels.Y, l->labels.logits, l->m, l->C, 1.0f);
            clpdd_labels_forward(&l->labels, l->Ys);
        }
        l->rng.s = c.rng_state;
        l->nlog = c.nlog;
        if (l->nlog > 0 && l->log[0].step == 1) s->first_loss = l->log[0].loss; /* step 1 is always logged */
        if (!l->quiet) fprintf(stderr, "distill: resuming after step %d from %s\n", c.step, path);
    } else if (rc == 1 && !l->quiet) {
        fprintf(stderr, "distill: no checkpoint at %s; starting from step 1\n", path);
    }
    free(host);
    return rc < 0 ? -1 : (rc == 0 ? c.step : 0);
}

/* the resolved values that determine the distillation (not the file's path, nor whether a
   value was a default, nor the [eval] keys) */
static uint64_t config_hash(clpdd_loop *l) {
    free(l->config);
    l->config = clpdd_experiment_distill_ini(l->x);
    return clpdd_hash_str(CLPDD_HASH_SEED, l->config);
}

/* ---- the loop ---- */

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

int clpdd_loop_run(clpdd_loop *l, const char *outdir, const char *ckpt_path, int resume, clpdd_summary *s, clpdd_err *e) {
    const clpdd_experiment *x = l->x;
    const clpdd_ops *ops = l->ops;
    size_t np = (size_t)l->m * l->px;
    int steps = x->steps, tty = isatty(2) && !l->quiet;
    int every = x->progress_every > 0 ? x->progress_every : (steps >= 20 ? steps / 20 : 1);
    uint64_t hash = config_hash(l);
    int done = resume ? checkpoint_restore(l, ckpt_path, hash, s, e) : 0;
    if (done < 0) return -1;
    /* test seam: end the loop with an error after this step, as a crash would */
    const char *crash = getenv("CLPDD_TEST_CRASH_AFTER");
    int crash_after = crash ? atoi(crash) : 0;
    float L = NAN;
    double t0 = clpdd_now() - (l->nlog ? l->log[l->nlog - 1].seconds : 0.0), t_start = clpdd_now(), last_tty = 0;
    for (int step = done + 1; step <= steps; step++) {
        int added = 0;
        if (clpdd_loop_step(l, step, &L, &added, e)) return -1;
        if (added && !l->quiet && !tty)
            fprintf(stderr, "distill: step %d: pyramid level %d of %d added\n", step, clpdd_param_active_levels(l->param),
                    clpdd_param_levels(l->param));
        if (step == 1) s->first_loss = L;
        double now = clpdd_now();
        /* the step's log row before its checkpoint: a resumed run's log.csv has every row */
        if ((step % x->log_every == 0 || step == 1 || step == steps) && l->nlog < l->caplog) {
            clpdd_log_row row = {step, L, now - t0, {0}};
            memcpy(row.learned, l->learned.used, sizeof row.learned);
            l->log[l->nlog++] = row;
        }
        if (x->checkpoint_every > 0 && step % x->checkpoint_every == 0 && step < steps) {
            clpdd_err ce;
            /* a failed write (disk full) must not end hours of work: the last good checkpoint
               stays (writes are atomic), and the run goes on */
            if (checkpoint_save(l, outdir, ckpt_path, step, hash, &ce) && !l->quiet)
                fprintf(stderr, "warning: step %d: checkpoint not written (%s); the last good one is kept\n", step, ce.msg);
        }
        if (step == crash_after) return clpdd_err_set(e, "simulated crash after step %d (CLPDD_TEST_CRASH_AFTER)", step);
        if (l->quiet) continue;
        if (tty && (now - last_tty > 0.2 || step == steps)) {
            progress(step, steps, L, now - t0, 1, step == steps);
            last_tty = now;
        } else if (!tty && (step % every == 0 || step == steps)) {
            progress(step, steps, L, now - t0, 0, 1);
        }
    }
    clpdd_param_render(l->param, l->Xs);
    ops->synchronize();
    s->loop_s = clpdd_now() - t_start; /* this process's share of the loop */
    s->last_loss = L;
    s->steps = steps;
    s->n_learned = l->learned.n;
    for (int k = 0; k < l->learned.n; k++)
        s->learned_name[k] = l->learned.name[k], s->learned_init[k] = exp(l->learned.u0[k]),
        s->learned_final[k] = exp(l->learned.u[k]);
    s->ms_per_step = steps > done ? 1000.0 * s->loop_s / (steps - done) : 0.0;
    ops->to_host(l->Xs_host, l->Xs, np * sizeof(float));
    if (l->learn_labels) {
        l->Y_host = clpdd_xmalloc((size_t)l->m * l->C * sizeof(float));
        clpdd_labels_matrix(&l->labels, l->Y_host);
    }
    return 0;
}

double clpdd_loop_solver_diagnostic(clpdd_loop *l, const float *phis) {
    const clpdd_ops *ops = l->ops;
    const clpdd_features *test = &l->data->ftest;
    int m = l->m, d = l->d, C = l->C;
    double acc = NAN;
    for (int j = 0; j < l->k; j++) /* the support the solver was built for: k copies */
        ops->to_device(l->phis + (size_t)j * m * d, phis, (size_t)m * d * sizeof(float));
    float *Zte = clpdd_xmalloc((size_t)test->n * C * sizeof(float));
    int ok = 1;
    for (int i = 0; i < test->n && ok; i += l->n) {
        int k = test->n - i < l->n ? test->n - i : l->n;
        ops->to_device(l->phib, test->x + (size_t)i * d, (size_t)k * d * sizeof(float));
        ok = l->svt->forward(l->solver, l->Z, l->phis, l->Ys, l->phib, k) == 0;
        if (ok) ops->to_host(Zte + (size_t)i * C, l->Z, (size_t)k * C * sizeof(float));
    }
    if (ok) acc = clpdd_top1(Zte, test->y, test->n, C);
    else if (!l->quiet) fprintf(stderr, "warning: solver diagnostic failed: %s\n", clpdd_host_error(l->data->h));
    free(Zte);
    return acc;
}
