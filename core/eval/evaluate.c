#include "eval/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/host.h"
#include "eval/lgm_probe.h"
#include "eval/neighbors.h"
#include "eval/probe.h"

void clpdd_score_finish(clpdd_score *s) {
    double mean = 0, var = 0, vmean = 0, vvar = 0;
    for (int i = 0; i < s->n; i++) mean += s->per_seed[i], vmean += s->val_per_seed[i];
    mean = s->n ? mean / s->n : 0;
    vmean = s->n ? vmean / s->n : 0;
    for (int i = 0; i < s->n; i++) {
        var += (s->per_seed[i] - mean) * (s->per_seed[i] - mean);
        vvar += (s->val_per_seed[i] - vmean) * (s->val_per_seed[i] - vmean);
    }
    s->mean = mean;
    s->std = s->n ? sqrt(var / s->n) : 0;
    s->val_mean = vmean; /* NaN when the draws have no validation score */
    s->val_std = s->n ? sqrt(vvar / s->n) : 0;
    if (s->G == 0) return;
    double w = 0, ww = 0, g = 0, gg = 0;
    for (int i = 0; i < s->n; i++) w += s->worst_per_seed[i], g += s->gmean_per_seed[i];
    w = s->n ? w / s->n : NAN, g = s->n ? g / s->n : NAN;
    for (int i = 0; i < s->n; i++) {
        ww += (s->worst_per_seed[i] - w) * (s->worst_per_seed[i] - w);
        gg += (s->gmean_per_seed[i] - g) * (s->gmean_per_seed[i] - g);
    }
    s->worst_mean = w, s->gmean_mean = g;
    s->worst_std = s->n ? sqrt(ww / s->n) : 0, s->gmean_std = s->n ? sqrt(gg / s->n) : 0;
    for (int k = 0; k < s->G; k++) s->group_acc[k] = s->n && s->group_n[k] ? s->group_acc[k] / s->n : NAN;
}

/* draw k's group numbers from its test predictions pred (nt); group_acc accumulates the sum over
   the draws (clpdd_score_finish divides) */
static void score_groups(const clpdd_evaluator *ev, clpdd_score *s, int k, const int32_t *pred) {
    double acc[CLPDD_MAX_GROUPS];
    s->G = ev->G;
    s->worst_per_seed[k] = clpdd_group_accuracy(pred, ev->test.y, ev->test_g, ev->test.n, ev->G, acc, s->group_n,
                                                &s->gmean_per_seed[k]);
    for (int g = 0; g < ev->G; g++) s->group_acc[g] += s->group_n[g] ? acc[g] : 0;
}

void clpdd_eval_cfg_from_experiment(clpdd_eval_cfg *cfg, const clpdd_experiment *x) {
    *cfg = (clpdd_eval_cfg){x->protocol,   x->eval_seeds, x->eval_epochs,     x->eval_batch, x->full_epochs,
                            x->eval_lr,    x->wd,         x->n_wd,            x->probe_max_iter,
                            x->seed};
}

int clpdd_evaluator_init(clpdd_evaluator *ev, clpdd_backbone *bb, int c, int H, int W, int C, clpdd_labelled train,
                         clpdd_labelled val, clpdd_labelled test, const clpdd_dataset *images, const int *image_of,
                         const clpdd_eval_cfg *cfg, int max_m, int quiet, clpdd_err *e) {
    memset(ev, 0, sizeof *ev);
    ev->cfg = *cfg, ev->bb = bb, ev->c = c, ev->H = H, ev->W = W, ev->C = C, ev->d = bb->info.feature_dim;
    ev->max_m = max_m, ev->train = train, ev->val = val, ev->test = test, ev->images = images, ev->image_of = image_of;
    ev->quiet = quiet;
    if (cfg->seeds < 1 || cfg->seeds > CLPDD_MAX_SEEDS)
        return clpdd_err_set(e, "eval: seeds = %d, expected 1..%d", cfg->seeds, CLPDD_MAX_SEEDS);
    if (clpdd_extractor_init(&ev->ex, bb, c, H, W, 256, e)) return -1;
    if (cfg->protocol != CLPDD_PROTOCOL_LGM) return 0;
    clpdd_augment_cfg ac;
    clpdd_augment_cfg_default(&ac);
    ac.noise_p = 0.0f; /* LGM's evaluation augmentation: flip + random-resized-crop, no noise */
    if (clpdd_augment_create(&ev->aug, bb->h, &ac, c, H, W, max_m, e)) return -1;
    size_t bytes = (size_t)max_m * c * H * W * sizeof(float);
    ev->aug_in = bb->h->alloc(bb->h, bytes), ev->aug_out = bb->h->alloc(bb->h, bytes);
    if (!ev->aug_in || !ev->aug_out) return clpdd_err_set(e, "eval: %s", clpdd_host_error(bb->h));
    return 0;
}

void clpdd_evaluator_free(clpdd_evaluator *ev) {
    if (ev->bb) {
        ev->bb->h->free(ev->bb->h, ev->aug_in);
        ev->bb->h->free(ev->bb->h, ev->aug_out);
    }
    clpdd_augment_destroy(ev->aug);
    clpdd_extractor_free(&ev->ex);
    memset(ev, 0, sizeof *ev);
}

int clpdd_evaluator_features(clpdd_evaluator *ev, float *out, const float *images, int m, clpdd_err *e) {
    return clpdd_extractor_run(&ev->ex, out, images, m, 0, e);
}

/* protocol lgm: the features of `epoch`'s freshly augmented copies of the images in aug_in */
typedef struct epoch_ctx {
    clpdd_evaluator *ev;
    int m;
    uint64_t seed;
    clpdd_err *e;
} epoch_ctx;

static int epoch_features(void *p, int epoch, float *X) {
    epoch_ctx *c = p;
    clpdd_evaluator *ev = c->ev;
    clpdd_augment_sample(ev->aug, c->m, c->seed, (uint64_t)epoch * (uint64_t)c->m);
    clpdd_augment_forward(ev->aug, ev->aug_out, ev->aug_in, c->m);
    return clpdd_extractor_run(&ev->ex, X, ev->aug_out, c->m, 1, c->e);
}

/* the k-th probe training's seed (fast/lgm) */
static uint64_t probe_seed(const clpdd_evaluator *ev, int k) { return ev->cfg.seed * 1000 + 1 + (uint64_t)k; }

/* draw k of score s: one probe on (feats (m, d), y); images (host) feed the lgm protocol */
static int score_draw_pred(clpdd_evaluator *ev, clpdd_score *s, int k, const float *images, const float *feats,
                           const int32_t *y, const float *T, int m, int epochs, uint64_t seed, int32_t *pred,
                           clpdd_err *e) {
    const clpdd_eval_cfg *cfg = &ev->cfg;
    s->protocol = cfg->protocol;
    s->val_per_seed[k] = s->wd_per_seed[k] = NAN;
    if (cfg->protocol == CLPDD_PROTOCOL_PROBE) {
        clpdd_probe_select_cfg pc = {cfg->wd, cfg->n_wd, cfg->max_iter, 0, 0, ev->select_worst ? ev->val_g : NULL, ev->G};
        clpdd_probe_result r;
        clpdd_logreg fit;
        if (clpdd_probe_select_fit(&r, feats, y, T, m, ev->val.x, ev->val.y, ev->val.n, ev->test.x, ev->test.y,
                                   ev->test.n, ev->d, ev->C, &pc, ev->test_g ? &fit : NULL, e))
            return -1;
        if (ev->test_g) {
            clpdd_logreg_predict(&fit, ev->test.x, ev->test.n, pred);
            score_groups(ev, s, k, pred);
            clpdd_logreg_free(&fit);
        }
        s->per_seed[k] = r.test_acc, s->val_per_seed[k] = r.val_acc, s->wd_per_seed[k] = r.wd;
        if (r.iterations > s->max_iterations) s->max_iterations = r.iterations;
        if (k == 0 || r.grad_norm > s->max_grad_norm) s->max_grad_norm = r.grad_norm;
        s->all_converged = (k == 0 || s->all_converged) && r.converged;
        return 0;
    }
    clpdd_lgm_probe_cfg pc = {epochs, cfg->batch, cfg->lr};
    if (cfg->protocol == CLPDD_PROTOCOL_FAST || !images) {
        s->per_seed[k] = clpdd_lgm_probe_pred(NULL, NULL, feats, y, T, m, ev->test.x, ev->test.y, ev->test.n, ev->d, ev->C,
                                              &pc, seed, ev->test_g ? pred : NULL);
        if (ev->test_g) score_groups(ev, s, k, pred);
        return 0;
    }
    CLPDD_ASSERT(m <= ev->max_m);
    ev->bb->h->ops->to_device(ev->aug_in, images, (size_t)m * ev->c * ev->H * ev->W * sizeof(float));
    epoch_ctx c = {ev, m, seed ^ 0x6576616cULL, e};
    s->per_seed[k] = clpdd_lgm_probe_pred(epoch_features, &c, NULL, y, T, m, ev->test.x, ev->test.y, ev->test.n, ev->d,
                                          ev->C, &pc, seed, ev->test_g ? pred : NULL);
    if (isnan(s->per_seed[k])) return -1;
    if (ev->test_g) score_groups(ev, s, k, pred);
    return 0;
}

/* draw k of score s, with a buffer for the test predictions when there are groups */
static int score_draw(clpdd_evaluator *ev, clpdd_score *s, int k, const float *images, const float *feats,
                      const int32_t *y, const float *T, int m, int epochs, uint64_t seed, clpdd_err *e) {
    int32_t *pred = ev->test_g ? clpdd_xmalloc((size_t)(ev->test.n ? ev->test.n : 1) * sizeof *pred) : NULL;
    int rc = score_draw_pred(ev, s, k, images, feats, y, T, m, epochs, seed, pred, e);
    free(pred);
    return rc;
}

int clpdd_evaluate_set(clpdd_evaluator *ev, clpdd_score *s, const float *images, const float *feats, const int32_t *y,
                       const float *T, int m, clpdd_err *e) {
    memset(s, 0, sizeof *s);
    /* the probe's fit is deterministic: one is the whole story */
    s->n = ev->cfg.protocol == CLPDD_PROTOCOL_PROBE ? 1 : ev->cfg.seeds;
    for (int k = 0; k < s->n; k++)
        if (score_draw(ev, s, k, images, feats, y, T, m, ev->cfg.epochs, probe_seed(ev, k), e)) return -1;
    clpdd_score_finish(s);
    return 0;
}

/* rows `pick` (m) of the training features, their labels and (when the protocol needs them) images */
static int gather(clpdd_evaluator *ev, const int *pick, int m, float *feats, int32_t *labels, float *images, int *rows,
                  clpdd_err *e) {
    for (int i = 0; i < m; i++) {
        memcpy(feats + (size_t)i * ev->d, ev->train.x + (size_t)pick[i] * ev->d, (size_t)ev->d * sizeof(float));
        labels[i] = ev->train.y[pick[i]];
        rows[i] = ev->image_of ? ev->image_of[pick[i]] : pick[i];
    }
    return images && ev->images ? clpdd_dataset_read_float(ev->images, rows, 0, m, images, e) : 0;
}

/* score fixed (seeds ≤ 1 draws: deterministic) real subsets of m training rows, or drawn ones of
   ipc per class (m = C·ipc) */
static int score_real_subsets(clpdd_evaluator *ev, clpdd_score *s, int m, int ipc, int draws, const int *fixed,
                              clpdd_err *e) {
    int d = ev->d;
    int need_images = ev->cfg.protocol == CLPDD_PROTOCOL_LGM;
    float *feats = clpdd_xmalloc((size_t)m * d * sizeof(float));
    float *images = need_images ? clpdd_xmalloc((size_t)m * ev->c * ev->H * ev->W * sizeof(float)) : NULL;
    int32_t *labels = clpdd_xmalloc((size_t)m * sizeof(int32_t));
    int *pick = clpdd_xmalloc((size_t)m * sizeof(int)), *rows = clpdd_xmalloc((size_t)m * sizeof(int));
    memset(s, 0, sizeof *s);
    s->n = draws;
    int rc = 0;
    for (int k = 0; k < draws && rc == 0; k++) {
        if (fixed) {
            memcpy(pick, fixed, (size_t)m * sizeof(int));
        } else {
            clpdd_rng br = {ev->cfg.seed * 7919 + 100 + (uint64_t)k};
            if ((rc = clpdd_sample_per_class(ev->train.y, ev->train.n, ev->C, ipc, &br, pick, e))) break;
        }
        if ((rc = gather(ev, pick, m, feats, labels, images, rows, e))) break;
        rc = score_draw(ev, s, k, images, feats, labels, NULL, m, ev->cfg.epochs, probe_seed(ev, k), e);
    }
    free(feats), free(images), free(labels), free(pick), free(rows);
    if (rc == 0) clpdd_score_finish(s);
    return rc;
}

int clpdd_evaluate_random_real(clpdd_evaluator *ev, clpdd_score *s, int ipc, clpdd_err *e) {
    /* a fresh draw per seed, under every protocol: the draw is the randomness that matters */
    return score_real_subsets(ev, s, ev->C * ipc, ipc, ev->cfg.seeds, NULL, e);
}

int clpdd_evaluate_centroids(clpdd_evaluator *ev, clpdd_score *s, int ipc, clpdd_err *e) {
    int *pick = clpdd_xmalloc((size_t)ev->C * ipc * sizeof(int));
    int rc = clpdd_class_centroids(ev->train.x, ev->train.y, ev->train.n, ev->d, ev->C, ipc, pick, e);
    if (rc == 0)
        rc = score_real_subsets(ev, s, ev->C * ipc, ipc, ev->cfg.protocol == CLPDD_PROTOCOL_PROBE ? 1 : ev->cfg.seeds,
                                pick, e);
    free(pick);
    return rc;
}

int clpdd_evaluate_neighbors(clpdd_evaluator *ev, clpdd_score *s, const float *feats, const int32_t *y, int m, int *pick,
                             double *dist, clpdd_err *e) {
    if (clpdd_nearest_real(ev->train.x, ev->train.y, ev->train.n, feats, y, m, ev->d, ev->C, pick, dist, e)) return -1;
    /* one deterministic selection, scored like centroids (and with the set's own probe seeds) */
    return score_real_subsets(ev, s, m, 0, ev->cfg.protocol == CLPDD_PROTOCOL_PROBE ? 1 : ev->cfg.seeds, pick, e);
}

int clpdd_evaluate_full(clpdd_evaluator *ev, clpdd_score *s, clpdd_err *e) {
    memset(s, 0, sizeof *s);
    s->n = ev->cfg.protocol == CLPDD_PROTOCOL_PROBE ? 1 : ev->cfg.seeds;
    for (int k = 0; k < s->n; k++)
        if (score_draw(ev, s, k, NULL, ev->train.x, ev->train.y, NULL, ev->train.n, ev->cfg.full_epochs,
                       probe_seed(ev, k), e))
            return -1;
    clpdd_score_finish(s);
    return 0;
}
