/* The evaluation of a distilled set: probes and baselines (core/distill/evaluation.h).
 *
 * Legend: m images of the set, d feature dim, C classes. */
#include "distill/evaluation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/evaluate.h"
#include "eval/score_cache.h"

/* what the baselines' scores depend on (core/eval/score_cache.h): the features (their cache files
   name backbone, weights, adapter and data), the split, the evaluation, ipc and the run's seed */
static char *baselines_key(const clpdd_run_data *r, int ipc) {
    const clpdd_experiment *x = r->x;
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "train=%s test=%s val=%ld/%llu protocol=%s seeds=%d epochs=%d batch=%d lr=%.9g full_epochs=%d "
                        "max_iter=%d ipc=%d seed=%llu random=%d centroids=%d full=%d group=%s select=%d wd=",
                    r->ftrain.path, r->ftest.path, x->val_size, (unsigned long long)x->subset_seed,
                    clpdd_protocol_name(x->protocol), x->eval_seeds, x->eval_epochs, x->eval_batch, x->eval_lr, x->full_epochs,
                    x->probe_max_iter, ipc, (unsigned long long)x->seed, x->baseline_random, x->baseline_centroids,
                    x->baseline_full, x->group, (int)x->select);
    for (int i = 0; i < x->n_wd; i++) clpdd_sb_printf(&b, "%s%.9g", i ? "," : "", x->wd[i]);
    return b.s;
}

/* the baselines' scores: from the score cache, or computed (and cached) */
static int baselines(clpdd_run_data *r, clpdd_evaluator *ev, int ipc, clpdd_summary *s, clpdd_err *e) {
    char *key = baselines_key(r, ipc);
    clpdd_baseline_scores b;
    int rc = 0;
    if (clpdd_scores_load(r->cache_dir, key, &b) == 0) {
        s->baselines_from_cache = 1;
        if (!r->quiet) fprintf(stderr, "eval: baselines from the cache (the same data, split, evaluation, ipc and seed)\n");
    } else {
        memset(&b, 0, sizeof b);
        if (rc == 0 && s->has_random) rc = clpdd_evaluate_random_real(ev, &b.random_real, ipc, e);
        if (rc == 0 && s->has_centroids) rc = clpdd_evaluate_centroids(ev, &b.centroids, ipc, e);
        if (rc == 0 && s->has_full) {
            if (!r->quiet) fprintf(stderr, "eval: full-data probe on %d training features\n", r->N);
            rc = clpdd_evaluate_full(ev, &b.full_data, e);
        }
        clpdd_err se;
        if (rc == 0 && clpdd_scores_save(r->cache_dir, key, &b, &se) && !r->quiet)
            fprintf(stderr, "warning: baseline scores not cached: %s\n", se.msg);
    }
    s->random_real = b.random_real, s->centroids = b.centroids, s->full_data = b.full_data;
    free(key);
    return rc;
}

/* [eval] baseline_neighbors: the set's nearest real images, scored; their training dataset rows
   and distances into s. It depends on the set's features phis (m, d), so it is never cached. */
static int neighbors(clpdd_run_data *r, clpdd_evaluator *ev, const float *phis, const int32_t *labels, int m,
                     clpdd_summary *s, clpdd_err *e) {
    if (!r->quiet) fprintf(stderr, "eval: neighbours baseline (each image's nearest real training image of its class)\n");
    s->neighbor_rows = clpdd_xmalloc((size_t)m * sizeof *s->neighbor_rows);
    s->neighbor_dist = clpdd_xmalloc((size_t)m * sizeof *s->neighbor_dist);
    if (clpdd_evaluate_neighbors(ev, &s->neighbors, phis, labels, m, s->neighbor_rows, s->neighbor_dist, e)) return -1;
    for (int i = 0; i < m; i++) s->neighbor_rows[i] = r->target_rows[s->neighbor_rows[i]];
    s->has_neighbors = 1;
    return 0;
}

/* a set with a label matrix T (m, C): also scored with each row's argmax as its label */
static int score_hard(clpdd_run_data *r, clpdd_evaluator *ev, const float *images, const float *phis, const float *T, int m,
                      clpdd_summary *s, clpdd_err *e) {
    int32_t *hard = clpdd_xmalloc((size_t)m * sizeof *hard);
    for (int i = 0; i < m; i++) {
        const float *t = T + (size_t)i * r->C;
        int best = 0;
        for (int c = 1; c < r->C; c++) best = t[c] > t[best] ? c : best; /* ties: the lowest class */
        hard[i] = best;
    }
    int rc = clpdd_evaluate_set(ev, &s->acc_hard, images, phis, hard, NULL, m, e);
    s->has_hard = rc == 0;
    free(hard);
    return rc;
}

int clpdd_evaluation_score(clpdd_run_data *r, const float *images, const int32_t *labels, const float *label_matrix, int m,
                           int ipc, float *phis, clpdd_summary *s, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    clpdd_eval_cfg cfg;
    clpdd_eval_cfg_from_experiment(&cfg, x);
    clpdd_evaluator ev;
    clpdd_labelled train = {r->target_x, r->target_y, r->N}, val = {r->val_x, r->val_y, r->nv},
                   test = {r->ftest.x, r->ftest.y, r->ftest.n};
    int max_m = m > r->C * ipc ? m : r->C * ipc; /* the set, or a baseline of ipc per class */
    if (clpdd_evaluator_init(&ev, &r->bb, r->c, r->H, r->W, r->C, train, val, test, &r->train, r->target_rows, &cfg, max_m,
                             r->quiet, e)) {
        clpdd_evaluator_free(&ev);
        return -1;
    }
    ev.test_g = r->groups.test, ev.val_g = r->groups.val, ev.G = r->groups.G;
    ev.select_worst = x->select == CLPDD_SELECT_WORST_GROUP;
    if (!r->quiet) {
        if (x->protocol == CLPDD_PROTOCOL_PROBE)
            fprintf(stderr, "eval: converged probe (L-BFGS; L2 from %d values on %d validation images)\n", x->n_wd, r->nv);
        else
            fprintf(stderr, "eval: %s protocol (LGM's probe: %d seeds x %d epochs)\n", clpdd_protocol_name(x->protocol),
                    x->eval_seeds, x->eval_epochs);
    }
    int rc = clpdd_evaluator_features(&ev, phis, images, m, e) ||
             clpdd_evaluate_set(&ev, &s->acc, images, phis, labels, label_matrix, m, e);
    if (rc == 0 && label_matrix) rc = score_hard(r, &ev, images, phis, label_matrix, m, s, e);
    if (rc == 0 && x->baseline_neighbors) rc = neighbors(r, &ev, phis, labels, m, s, e);
    s->has_random = x->baseline_random, s->has_centroids = x->baseline_centroids, s->has_full = x->baseline_full;
    if (rc == 0 && (s->has_random || s->has_centroids || s->has_full)) rc = baselines(r, &ev, ipc, s, e);
    clpdd_evaluator_free(&ev);
    s->solver_acc = NAN;
    return rc ? -1 : 0;
}
