/* One distillation run.
 *
 * Legend: N real training images, m = C·ipc synthetic, n real batch per step, d feature dim,
 * C classes, px = c·H·W pixels of a dataset image.
 *
 * Step (DESIGN §1): X_s → adapter → backbone (tape) → Φ_s; Z = solver(Φ_s, Y_s; Φ_b);
 * L = loss(Z, y_b); dZ → solver.backward → dΦ_s → backbone.backward → adapter.backward → dX_s;
 * Adam on X_s, then X_s is clamped to [0, 1] (the pixel space the real images live in). */
#define _GNU_SOURCE
#include "run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "encode.h"
#include "eval.h"
#include "feature_cache.h"
#include "host.h"
#include "outputs.h"

const clpdd_ops *clpdd_select_device(const char *device, clpdd_err *e) {
    if (strcmp(device, "cpu") == 0) return clpdd_ops_cpu();
    const char *why = NULL;
    const clpdd_ops *cuda = clpdd_ops_cuda(&why);
    if (cuda) return cuda;
    if (strcmp(device, "cuda") == 0) {
        clpdd_err_set(e, "device = cuda, but %s", why ? why : "CUDA is unavailable");
        return NULL;
    }
    return clpdd_ops_cpu();
}

/* the run's state, freed in one place */
typedef struct run {
    clpdd_experiment *x;
    clpdd_host *h;
    const clpdd_ops *ops;
    clpdd_backbone bb;
    clpdd_encoder enc;
    const clpdd_solver_vt *svt;
    void *solver;
    const clpdd_loss_vt *lvt;
    void *loss;
    clpdd_dataset train, test;
    clpdd_features ftrain, ftest;
    int quiet;
} run;

static void run_free(run *r) {
    if (r->loss) r->lvt->destroy(r->loss);
    if (r->solver) r->svt->destroy(r->solver);
    clpdd_encoder_free(&r->enc);
    if (r->bb.self) r->bb.vt->destroy(r->bb.self);
    clpdd_features_free(&r->ftrain);
    clpdd_features_free(&r->ftest);
    clpdd_dataset_free(&r->train);
    clpdd_dataset_free(&r->test);
    if (r->h) clpdd_host_destroy(r->h);
}

static int plugin_fail(run *r, const char *what, const char *name, clpdd_err *e) {
    return clpdd_err_set(e, "%s '%s' failed: %s", what, name, clpdd_host_error(r->h));
}

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

/* probe accuracy over seeds of a feature set */
static void score_set(clpdd_score *s, const float *X, const int32_t *y, int m, const clpdd_features *test, int d, int C,
                      const clpdd_experiment *x, uint64_t seed_base) {
    clpdd_probe_cfg cfg = {x->eval_epochs, x->eval_batch, x->eval_lr};
    s->n = x->eval_seeds < 64 ? x->eval_seeds : 64;
    for (int k = 0; k < s->n; k++)
        s->per_seed[k] = clpdd_probe_accuracy(X, y, m, test->x, test->y, test->n, d, C, &cfg, seed_base + (uint64_t)k);
    clpdd_score_finish(s);
}

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e) {
    double t_start = clpdd_now();
    run r = {0};
    r.x = x;
    r.quiet = opts && opts->quiet;
    const char *device = opts && opts->device ? opts->device : x->device;
    const char *outdir = opts && opts->output ? opts->output : x->output;
    int rc = -1;
    float *Xs_host = NULL, *phis_host = NULL;
    int32_t *ys_host = NULL;
    int *perm = NULL, *init_idx = NULL;
    clpdd_log_row *logrows = NULL;
    float *rand_feats = NULL;
    int32_t *rand_labels = NULL;
    float *Zte = NULL;
    clpdd_strbuf meta = {0}, json = {0};
    char *resolved = NULL;

    r.ops = clpdd_select_device(device, e);
    if (!r.ops) return -1;
    r.h = clpdd_host_create(r.ops, x->seed);
    clpdd_host_set_quiet(r.h, r.quiet);
    const clpdd_ops *ops = r.ops;
    if (!r.quiet) fprintf(stderr, "clpdd: run '%s' on %s\n", x->name, ops->name);

    /* ---- backbone ---- */
    r.bb.h = r.h;
    r.bb.desc = x->backbone.desc;
    r.bb.vt = x->backbone.desc->vtable;
    r.bb.cfg = x->backbone_cfg;
    if (r.bb.vt->create(r.h, x->backbone_cfg, &r.bb.self)) {
        r.bb.self = NULL;
        plugin_fail(&r, "backbone", r.bb.desc->name, e);
        goto done;
    }
    memset(&r.bb.info, 0, sizeof r.bb.info);
    if (r.bb.vt->describe(r.bb.self, &r.bb.info)) {
        plugin_fail(&r, "backbone", r.bb.desc->name, e);
        goto done;
    }
    const clpdd_backbone_info *info = &r.bb.info;
    int d = info->feature_dim;

    /* ---- data and features ---- */
    if (clpdd_dataset_load_idx(&r.train, x->dataset, x->root, "train", x->train_limit, x->subset_seed, e)) goto done;
    if (clpdd_dataset_load_idx(&r.test, x->dataset, x->root, "test", x->test_limit, 0, e)) goto done;
    char cache[4096];
    clpdd_cache_dir(x->cache_dir, cache, sizeof cache);
    if (clpdd_features_get(&r.ftrain, &r.bb, &r.train, "train", cache, 256, !r.quiet, e)) goto done;
    if (clpdd_features_get(&r.ftest, &r.bb, &r.test, "test", cache, 256, !r.quiet, e)) goto done;

    int C = r.train.classes, ipc = x->ipc, m = C * ipc, N = r.train.n;
    int n = x->real_batch < N ? x->real_batch : N;
    int c = r.train.c, H = r.train.H, W = r.train.W;
    size_t px = (size_t)c * H * W;

    /* ---- solver, loss ---- */
    clpdd_solver_dims dims = {m, d, C, n};
    r.svt = x->solver.desc->vtable;
    if (r.svt->create(r.h, x->solver_cfg, &dims, &r.solver)) {
        r.solver = NULL;
        plugin_fail(&r, "solver", x->solver.desc->name, e);
        goto done;
    }
    if (x->loss.desc) {
        r.lvt = x->loss.desc->vtable;
        if (r.lvt->create(r.h, x->loss_cfg, C, n, &r.loss)) {
            r.loss = NULL;
            plugin_fail(&r, "loss", x->loss.desc->name, e);
            goto done;
        }
    }
    if (clpdd_encoder_init(&r.enc, &r.bb, m, x->chunk, c, H, W, e)) goto done;

    /* ---- the synthetic set: class-major, labels fixed ---- */
    clpdd_rng rng = {x->seed * 0xD1B54A32D192ED03ULL + 1};
    Xs_host = clpdd_xmalloc((size_t)m * px * sizeof(float));
    ys_host = clpdd_xmalloc((size_t)m * sizeof(int32_t));
    init_idx = clpdd_xmalloc((size_t)m * sizeof(int));
    for (int i = 0; i < m; i++) ys_host[i] = i / ipc;
    size_t szX = (size_t)m * px * sizeof(float);
    float *Xs = r.h->alloc(r.h, szX), *adam_m = r.h->alloc(r.h, szX), *adam_v = r.h->alloc(r.h, szX);
    float *dXs = r.h->alloc(r.h, szX);
    float *phis = r.h->alloc(r.h, (size_t)m * d * sizeof(float)), *dphis = r.h->alloc(r.h, (size_t)m * d * sizeof(float));
    float *Ys = r.h->alloc(r.h, (size_t)m * C * sizeof(float));
    int32_t *ys = r.h->alloc(r.h, (size_t)m * sizeof(int32_t));
    float *Phi = r.h->alloc(r.h, (size_t)N * d * sizeof(float));
    float *phib = r.h->alloc(r.h, (size_t)n * d * sizeof(float));
    float *Z = r.h->alloc(r.h, (size_t)n * C * sizeof(float)), *dZ = r.h->alloc(r.h, (size_t)n * C * sizeof(float));
    int32_t *idx = r.h->alloc(r.h, (size_t)n * sizeof(int32_t)), *yb = r.h->alloc(r.h, (size_t)n * sizeof(int32_t));
    if (!Xs || !adam_m || !adam_v || !dXs || !phis || !dphis || !Ys || !ys || !Phi || !phib || !Z || !dZ ||
        !idx || !yb) {
        clpdd_err_set(e, "run: %s", clpdd_host_error(r.h));
        goto done;
    }
    if (strcmp(x->init, "real") == 0) {
        if (clpdd_sample_per_class(r.train.labels, N, C, ipc, &rng, init_idx, e)) goto done;
        clpdd_dataset_gather_float(&r.train, init_idx, m, Xs_host);
        ops->to_device(Xs, Xs_host, szX);
    } else {
        ops->rand_uniform(Xs, (size_t)m * px, 0.0f, 1.0f, x->seed, 0);
    }
    ops->fill(adam_m, 0.0f, (size_t)m * px);
    ops->fill(adam_v, 0.0f, (size_t)m * px);
    ops->to_device(ys, ys_host, (size_t)m * sizeof(int32_t));
    if (r.lvt && r.lvt->encode_labels) r.lvt->encode_labels(r.loss, Ys, ys, m);
    else ops->onehot(Ys, ys, m, C, 1.0f, 0.0f);
    ops->to_device(Phi, r.ftrain.x, (size_t)N * d * sizeof(float));

    /* ---- the loop ---- */
    int steps = x->steps, tty = isatty(2) && !r.quiet;
    int every = x->progress_every > 0 ? x->progress_every : (steps >= 20 ? steps / 20 : 1);
    perm = clpdd_xmalloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) perm[i] = i;
    int32_t *yb_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    int32_t *idx_host = clpdd_xmalloc((size_t)n * sizeof(int32_t));
    int nlog = 0, caplog = steps / x->log_every + 2;
    logrows = clpdd_xmalloc((size_t)caplog * sizeof *logrows);
    float L = NAN, first_loss = NAN;
    double t_loop = clpdd_now(), last_tty = 0;
    int failed = 0;
    for (int step = 1; step <= steps && !failed; step++) {
        /* a real batch without replacement: the first n of a partial Fisher-Yates shuffle */
        for (int i = 0; i < n; i++) {
            int j = i + clpdd_rng_below(&rng, N - i);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
            idx_host[i] = perm[i];
            yb_host[i] = r.ftrain.y[perm[i]];
        }
        ops->to_device(idx, idx_host, (size_t)n * sizeof(int32_t));
        ops->to_device(yb, yb_host, (size_t)n * sizeof(int32_t));
        ops->gather_rows(phib, Phi, idx, (size_t)n, (size_t)d);

        if (clpdd_encoder_forward(&r.enc, phis, Xs, e)) failed = -1;
        else if (r.svt->objective) {
            if (r.svt->objective(r.solver, &L, phis, Ys, phib, yb, n) || r.svt->backward(r.solver, dphis, NULL, NULL))
                failed = plugin_fail(&r, "solver", x->solver.desc->name, e);
        } else if (r.svt->forward(r.solver, Z, phis, Ys, phib, n)) {
            failed = plugin_fail(&r, "solver", x->solver.desc->name, e);
        } else if (r.lvt->forward(r.loss, &L, dZ, Z, yb, n)) {
            failed = plugin_fail(&r, "loss", x->loss.desc->name, e);
        } else if (r.svt->backward(r.solver, dphis, NULL, dZ)) {
            failed = plugin_fail(&r, "solver", x->solver.desc->name, e);
        }
        if (failed) {
            clpdd_err_set(e, "step %d: %.1900s", step, e->msg);
            break;
        }
        if (clpdd_encoder_backward(&r.enc, dXs, dphis, Xs, e)) {
            failed = clpdd_err_set(e, "step %d: %.1900s", step, e->msg);
            break;
        }
        if (!isfinite(L) || !ops->all_finite(dXs, (size_t)m * px)) {
            failed = clpdd_err_set(e, "step %d: the loss or the image gradient is not finite (loss %g); lower [distill] lr?", step, L);
            break;
        }
        ops->adam(Xs, adam_m, adam_v, dXs, (size_t)m * px, x->lr, x->adam_b1, x->adam_b2, 1e-8f, 0.0f, step);
        ops->clamp(Xs, 0.0f, 1.0f, (size_t)m * px);
        if (step == 1) first_loss = L;
        double now = clpdd_now();
        if (step % x->log_every == 0 || step == 1 || step == steps)
            if (nlog < caplog) logrows[nlog++] = (clpdd_log_row){step, L, now - t_loop};
        if (!r.quiet) {
            if (tty && (now - last_tty > 0.2 || step == steps)) {
                progress(step, steps, L, now - t_loop, 1, step == steps);
                last_tty = now;
            } else if (!tty && (step % every == 0 || step == steps)) {
                progress(step, steps, L, now - t_loop, 0, 1);
            }
        }
    }
    ops->synchronize();
    double loop_s = clpdd_now() - t_loop;
    free(yb_host);
    free(idx_host);
    if (failed) goto done;
    ops->to_host(Xs_host, Xs, szX);

    /* ---- evaluation ---- */
    if (!r.quiet) fprintf(stderr, "eval: probe on the distilled set (%d seeds x %d epochs)\n", x->eval_seeds, x->eval_epochs);
    phis_host = clpdd_xmalloc((size_t)m * d * sizeof(float));
    if (clpdd_features_of_images(phis_host, &r.bb, Xs_host, m, c, H, W, 256, e)) goto done;
    clpdd_score acc = {0}, base = {0};
    score_set(&acc, phis_host, ys_host, m, &r.ftest, d, C, x, x->seed * 1000 + 1);
    if (x->baseline_random) {
        rand_feats = clpdd_xmalloc((size_t)m * d * sizeof(float));
        rand_labels = clpdd_xmalloc((size_t)m * sizeof(int32_t));
        clpdd_probe_cfg cfg = {x->eval_epochs, x->eval_batch, x->eval_lr};
        base.n = acc.n;
        for (int k = 0; k < base.n; k++) {
            clpdd_rng br = {x->seed * 7919 + 100 + (uint64_t)k};
            if (clpdd_sample_per_class(r.ftrain.y, N, C, ipc, &br, init_idx, e)) goto done;
            for (int i = 0; i < m; i++) {
                memcpy(rand_feats + (size_t)i * d, r.ftrain.x + (size_t)init_idx[i] * d, (size_t)d * sizeof(float));
                rand_labels[i] = r.ftrain.y[init_idx[i]];
            }
            base.per_seed[k] = clpdd_probe_accuracy(rand_feats, rand_labels, m, r.ftest.x, r.ftest.y, r.ftest.n, d, C, &cfg,
                                                    x->seed * 1000 + 1 + (uint64_t)k);
        }
        clpdd_score_finish(&base);
    }
    clpdd_score full = {0};
    if (x->baseline_full) {
        if (!r.quiet) fprintf(stderr, "eval: full-data probe on %d training features (%d seeds x %d epochs)\n", N, x->eval_seeds,
                              x->full_epochs);
        clpdd_probe_cfg cfg = {x->full_epochs, x->eval_batch, x->eval_lr};
        full.n = acc.n;
        for (int k = 0; k < full.n; k++)
            full.per_seed[k] = clpdd_probe_accuracy(r.ftrain.x, r.ftrain.y, N, r.ftest.x, r.ftest.y, r.ftest.n, d, C, &cfg,
                                                    x->seed * 1000 + 1 + (uint64_t)k);
        clpdd_score_finish(&full);
    }
    double ridge_acc = NAN;
    if (x->ridge_diagnostic && r.svt->forward) {
        /* the closed-form classifier the run optimised, fitted on the distilled features */
        ops->to_device(phis, phis_host, (size_t)m * d * sizeof(float));
        Zte = clpdd_xmalloc((size_t)r.ftest.n * C * sizeof(float));
        int ok = 1;
        for (int i = 0; i < r.ftest.n && ok; i += n) {
            int k = r.ftest.n - i < n ? r.ftest.n - i : n;
            ops->to_device(phib, r.ftest.x + (size_t)i * d, (size_t)k * d * sizeof(float));
            ok = r.svt->forward(r.solver, Z, phis, Ys, phib, k) == 0;
            if (ok) ops->to_host(Zte + (size_t)i * C, Z, (size_t)k * C * sizeof(float));
        }
        if (ok) ridge_acc = clpdd_top1(Zte, r.ftest.y, r.ftest.n, C);
        else if (!r.quiet) fprintf(stderr, "warning: solver diagnostic failed: %s\n", clpdd_host_error(r.h));
    }

    /* ---- the run directory ---- */
    if (clpdd_mkdirs(outdir, e)) goto done;
    char path[4096];
    resolved = clpdd_experiment_resolved_ini(x);
    snprintf(path, sizeof path, "%s/config.ini", outdir);
    if (clpdd_write_file_atomic(path, resolved, strlen(resolved), e)) goto done;
    snprintf(path, sizeof path, "%s/log.csv", outdir);
    if (clpdd_write_log_csv(path, logrows, nlog, e)) goto done;
    clpdd_sb_printf(&meta, "{\"name\": ");
    clpdd_sb_json_str(&meta, x->name);
    clpdd_sb_printf(&meta, ", \"backbone\": ");
    clpdd_sb_json_str(&meta, r.bb.desc->name);
    clpdd_sb_printf(&meta, ", \"solver\": ");
    clpdd_sb_json_str(&meta, x->solver.desc->name);
    clpdd_sb_printf(&meta, ", \"ipc\": %d, \"steps\": %d, \"seed\": %llu}", ipc, steps, (unsigned long long)x->seed);
    if (clpdd_write_distilled(outdir, Xs_host, ys_host, m, c, H, W, ipc, C, meta.s, e)) goto done;
    snprintf(path, sizeof path, "%s/loss.png", outdir);
    char title[512];
    snprintf(title, sizeof title, "%s: %s + %s, %s, ipc %d", x->name, x->solver.desc->name,
             x->loss.desc ? x->loss.desc->name : "objective", r.bb.desc->name, ipc);
    if (nlog > 0 && clpdd_write_loss_plot(path, logrows, nlog, title, e)) goto done;

    double total_s = clpdd_now() - t_start;
    size_t peak_host = clpdd_peak_rss_bytes();
    clpdd_sb_printf(&json, "{\n  \"method\": {\"solver\": ");
    clpdd_sb_json_str(&json, x->solver.desc->name);
    clpdd_sb_printf(&json, ", \"loss\": ");
    if (x->loss.desc) clpdd_sb_json_str(&json, x->loss.desc->name);
    else clpdd_sb_printf(&json, "null");
    clpdd_sb_printf(&json, ", \"backbone\": ");
    clpdd_sb_json_str(&json, r.bb.desc->name);
    clpdd_sb_printf(&json, ", \"ipc\": %d, \"init\": ", ipc);
    clpdd_sb_json_str(&json, x->init);
    clpdd_sb_printf(&json, ", \"steps\": %d, \"lr\": %g, \"real_batch\": %d},\n  \"dataset\": ", steps, x->lr, n);
    clpdd_sb_json_str(&json, r.train.desc);
    clpdd_sb_printf(&json, ",\n  \"test_set\": ");
    clpdd_sb_json_str(&json, r.test.desc);
    clpdd_sb_printf(&json, ",\n  \"eval\": {\"protocol\": ");
    clpdd_sb_json_str(&json, x->protocol);
    clpdd_sb_printf(&json, ", \"seeds\": %d, \"epochs\": %d, \"batch\": %d, \"lr_base\": %g},\n  \"accuracy\": ",
                    x->eval_seeds, x->eval_epochs, x->eval_batch, x->eval_lr);
    clpdd_sb_printf(&json, "{\"mean\": %.6f, \"std\": %.6f, \"per_seed\": [", acc.mean, acc.std);
    for (int k = 0; k < acc.n; k++) clpdd_sb_printf(&json, "%s%.6f", k ? ", " : "", acc.per_seed[k]);
    clpdd_sb_printf(&json, "]},\n  \"baselines\": {");
    if (x->baseline_random) clpdd_json_score(&json, "random_real", &base);
    if (x->baseline_full) {
        if (x->baseline_random) clpdd_sb_printf(&json, ", ");
        clpdd_json_score(&json, "full_data", &full);
    }
    clpdd_sb_printf(&json, "},\n  \"solver_diagnostic\": ");
    if (isfinite(ridge_acc)) clpdd_sb_printf(&json, "{\"classifier\": \"%s fitted on the distilled features\", \"accuracy\": %.6f}",
                                             x->solver.desc->name, ridge_acc);
    else clpdd_sb_printf(&json, "null");
    clpdd_sb_printf(&json, ",\n  \"loss\": {\"first\": %.8g, \"last\": %.8g},\n", first_loss, L);
    clpdd_sb_printf(&json, "  \"timing\": {\"ms_per_step\": %.4f, \"steps\": %d, \"loop_s\": %.3f, \"feature_extraction_s\": %.3f, \"total_s\": %.3f},\n",
                    steps > 0 ? 1000.0 * loop_s / steps : 0.0, steps, loop_s, r.ftrain.seconds + r.ftest.seconds, total_s);
    clpdd_sb_printf(&json, "  \"features\": {\"train\": %d, \"test\": %d, \"dim\": %d, \"from_cache\": %s},\n", r.ftrain.n,
                    r.ftest.n, d, r.ftrain.from_cache && r.ftest.from_cache ? "true" : "false");
    clpdd_sb_printf(&json, "  \"memory\": {\"peak_host_mb\": %.1f, \"peak_device_mb\": ", peak_host / 1048576.0);
    if (ops->is_device) clpdd_sb_printf(&json, "%.1f", ops->peak_bytes() / 1048576.0);
    else clpdd_sb_printf(&json, "null");
    clpdd_sb_printf(&json, ", \"peak_plugin_alloc_mb\": %.1f},\n  \"device\": ", clpdd_host_peak_bytes(r.h) / 1048576.0);
    clpdd_sb_json_str(&json, ops->name);
    clpdd_sb_printf(&json, "\n}\n");
    snprintf(path, sizeof path, "%s/metrics.json", outdir);
    if (clpdd_write_file_atomic(path, json.s, json.len, e)) goto done;

    if (!r.quiet) {
        fprintf(stderr, "\nresult: distilled %.2f%% +- %.2f", 100 * acc.mean, 100 * acc.std);
        if (x->baseline_random) fprintf(stderr, "   random real %.2f%% +- %.2f", 100 * base.mean, 100 * base.std);
        if (x->baseline_full) fprintf(stderr, "   full data %.2f%% +- %.2f", 100 * full.mean, 100 * full.std);
        if (isfinite(ridge_acc)) fprintf(stderr, "   (%s classifier %.2f%%)", x->solver.desc->name, 100 * ridge_acc);
        fprintf(stderr, "\n        %d steps, %.2f ms/step, peak RSS %.0f MB, total %.1f s\n        wrote %s/{metrics.json,log.csv,config.ini,distilled.safetensors,distilled.png,loss.png}\n",
                steps, steps > 0 ? 1000.0 * loop_s / steps : 0.0, peak_host / 1048576.0, total_s, outdir);
    }
    rc = 0;
done:
    free(Xs_host);
    free(phis_host);
    free(ys_host);
    free(perm);
    free(init_idx);
    free(logrows);
    free(rand_feats);
    free(rand_labels);
    free(Zte);
    free(meta.s);
    free(json.s);
    free(resolved);
    run_free(&r);
    return rc;
}
