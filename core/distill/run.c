/* The commands built on a run's phases (core/distill/run.h):
 *   data      host, backbone, datasets, cached features, validation split (core/eval/run_data.h)
 *   loop      the solver/loss/param/augment setup and the distillation loop (core/distill/loop.h)
 *   evaluate  the set's probe and the baselines (core/distill/evaluation.h)
 *   write     the run directory and the result lines (core/distill/results.h)
 * clpdd run goes through all four, clpdd eval skips the loop, clpdd features stops at the
 * feature cache.
 *
 * Legend: m images of the set, px = c·H·W pixels of a dataset image, d feature dim, C classes. */
#define _GNU_SOURCE
#include "distill/run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill/evaluation.h"
#include "distill/loop.h"
#include "distill/results.h"
#include "distill/rundir.h"
#include "eval/run_data.h"

/* opts and its device are the caller's to give: their absence is a programming mistake */
static int need_device(const clpdd_run_opts *opts, const char *who, clpdd_err *e) {
    if (opts && opts->ops) return 0;
    return clpdd_err_set(e, "%s called without a device (opts->ops is NULL): the caller chooses it", who);
}

/* a summary before any phase: no losses yet */
static void summary_init(clpdd_summary *s) {
    memset(s, 0, sizeof *s);
    s->first_loss = s->last_loss = NAN;
}

/* the data phases up to the distillation targets */
static int data_setup(clpdd_run_data *r, clpdd_experiment *x, const clpdd_run_opts *opts, const char *what, clpdd_err *e) {
    if (clpdd_run_data_open(r, x, opts->ops, what, opts->quiet, e) || clpdd_run_data_load(r, e) ||
        clpdd_run_data_features(r, 0, 0, e))
        return -1;
    clpdd_run_data_targets(r);
    return 0;
}

/* the distilled set's evaluation, then the closed-form classifier the loop optimised ([eval]
   ridge_diagnostic) */
static int evaluate_run(clpdd_run_data *r, clpdd_loop *l, clpdd_summary *s, clpdd_err *e) {
    float *phis = clpdd_xmalloc((size_t)l->m * l->d * sizeof(float)); /* (m, d) */
    int rc = clpdd_evaluation_score(r, l->Xs_host, l->ys_host, l->Y_host, l->m, l->ipc, phis, s, e);
    if (rc == 0 && r->x->ridge_diagnostic && l->solver && l->svt->forward) s->solver_acc = clpdd_loop_solver_diagnostic(l, phis);
    free(phis);
    return rc;
}

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e) {
    double t_start = clpdd_now();
    if (need_device(opts, "clpdd_run", e)) return -1;
    clpdd_reset_peak_rss(); /* metrics.json reports this run's peak, also when a sweep runs many in one process */
    const char *outdir = opts->output ? opts->output : x->output;
    char ckpt_path[4200];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/checkpoint.safetensors", outdir);
    clpdd_rundir dir = {.lock_fd = -1};
    clpdd_run_data r;
    memset(&r, 0, sizeof r);
    clpdd_loop l;
    memset(&l, 0, sizeof l);
    clpdd_summary s;
    summary_init(&s);
    int rc = clpdd_rundir_acquire(&dir, outdir, opts->resume, opts->force, e);
    if (rc == 0) rc = data_setup(&r, x, opts, "run", e);
    if (rc == 0) rc = clpdd_loop_setup(&l, &r, opts->quiet, e);
    if (rc == 0) rc = clpdd_rundir_clear(&dir, e); /* everything that can fail before the loop writes has passed */
    if (rc == 0) rc = clpdd_loop_run(&l, outdir, ckpt_path, opts->resume, &s, e);
    if (rc == 0) rc = evaluate_run(&r, &l, &s, e);
    clpdd_results_set set = {l.Xs_host, l.ys_host, l.Y_host, l.m, l.ipc, l.n};
    if (rc == 0) rc = clpdd_results_write_run(outdir, &r, &set, l.log, l.nlog, t_start, &s, e);
    if (rc == 0) unlink(ckpt_path); /* finished: nothing to resume */
    if (rc == 0 && !opts->quiet) clpdd_results_report_run(&s, &r, outdir);
    clpdd_summary_free(&s);
    clpdd_loop_free(&l);
    clpdd_run_data_free(&r);
    clpdd_rundir_release(&dir);
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

/* the set fits the configuration's dataset: its image shape, its labels in 0..C-1, and (the
   layout of a distilled set and of its grid) class-major with ipc images of every class */
static int check_set(const clpdd_run_data *r, const clpdd_image_set *set, clpdd_err *e) {
    int channels_ok = set->c == r->c || (set->c == 3 && r->c == 1) || (set->c == 1 && r->c == 3), rc = 0;
    if (!channels_ok || set->H != r->H || set->W != r->W)
        return clpdd_err_set(e, "eval: %s holds %dx%dx%d images but the configuration's dataset has %dx%dx%d (%s)",
                             set->source, set->c, set->H, set->W, r->c, r->H, r->W, r->train.desc);
    for (int i = 0; i < set->m; i++)
        if (set->labels[i] < 0 || set->labels[i] >= r->C)
            return clpdd_err_set(e, "eval: %s: image %d has label %d; the dataset has classes 0..%d", set->source, i,
                                 set->labels[i], r->C - 1);
    int ipc = r->x->ipc, *count = clpdd_xcalloc((size_t)(r->C > 0 ? r->C : 1), sizeof *count);
    for (int i = 0; i < set->m; i++) count[set->labels[i]]++;
    for (int c = 0; rc == 0 && c < r->C; c++)
        if (count[c] != ipc)
            rc = clpdd_err_set(e, "eval: %s has %d images of class %d; a distilled set has the same number (here %d) of "
                                  "every class 0..%d", set->source, count[c], c, ipc, r->C - 1);
    free(count);
    return rc;
}

/* a class name as a number: a non-negative decimal integer ("3", "03"), or -1 */
static long class_number(const char *s) {
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n] || n > 9 + strspn(s, "0")) return -1;
    return strtol(s, NULL, 10);
}

/* the dataset's class whose name is `name` (or whose number it is, where the class names are
   numbers: IDX and CIFAR are "0".."C-1"), or -1 */
static int class_of_name(const clpdd_run_data *r, const char *name) {
    long num = class_number(name);
    for (int k = 0; k < r->C; k++) {
        char own[16];
        const char *cn = r->train_info.class_names && k < r->train_info.classes ? r->train_info.class_names[k]
                                                                                 : (snprintf(own, sizeof own, "%d", k), own);
        if (strcmp(cn, name) == 0 || (num >= 0 && class_number(cn) == num)) return k;
    }
    return -1;
}

/* "0, 1, 2, …" the dataset's class names for a message (the first 20, then the count) */
static void class_list(const clpdd_run_data *r, char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; k < r->C && k < 20 && len < n; k++) {
        const char *cn = r->train_info.class_names && k < r->train_info.classes ? r->train_info.class_names[k] : NULL;
        len += cn ? (size_t)snprintf(out + len, n - len, "%s'%s'", k ? ", " : "", cn)
                  : (size_t)snprintf(out + len, n - len, "%s'%d'", k ? ", " : "", k);
    }
    if (r->C > 20 && len < n) snprintf(out + len, n - len, ", … (%d classes)", r->C);
}

/* the set's folders are exactly 1..C (a 1-based export of 0-based classes) */
static int numbered_from_one(const clpdd_image_set *set, int C) {
    int ok = set->n_class_names == C;
    for (int i = 0; ok && i < set->n_class_names; i++) {
        long v = class_number(set->class_names[i]);
        ok = v >= 1 && v <= C;
    }
    return ok;
}

/* labels (m) of the dataset's classes for a set whose labels index its own class names (an
   image folder): each name mapped to the dataset's class of that name; -1 with a message for a
   name that is no class, or two names of one class */
static int map_classes(const clpdd_run_data *r, const clpdd_image_set *set, int32_t *labels, clpdd_err *e) {
    int nn = set->n_class_names, *to = clpdd_xmalloc((size_t)(nn > 0 ? nn : 1) * sizeof *to), rc = 0;
    for (int i = 0; rc == 0 && i < nn; i++) {
        to[i] = class_of_name(r, set->class_names[i]);
        for (int j = 0; j < i && to[i] >= 0; j++)
            if (to[j] == to[i])
                rc = clpdd_err_set(e, "eval: %s: folders '%s' and '%s' are both class %d of the dataset", set->source,
                                   set->class_names[j], set->class_names[i], to[i]);
        if (to[i] < 0) {
            char list[1024];
            class_list(r, list, sizeof list);
            rc = clpdd_err_set(e, "eval: %s: folder '%s' is not a class of the dataset (%s); name each class folder by "
                                  "its class: %s%s", set->source, set->class_names[i], r->train.desc, list,
                               numbered_from_one(set, r->C) ? " (the folders are numbered 1..C: rename each to its number - 1)" : "");
        }
    }
    for (int i = 0; rc == 0 && i < set->m; i++) {
        if (set->labels[i] < 0 || set->labels[i] >= nn)
            rc = clpdd_err_set(e, "eval: %s: image %d has no class folder", set->source, i);
        else labels[i] = to[set->labels[i]];
    }
    free(to);
    return rc;
}

/* the set in the dataset's channel count, sorted by class (stable: a set's own order within a
   class is kept) into images (m, px) and labels (m) */
static void sort_set(const clpdd_run_data *r, const clpdd_image_set *set, float *images, int32_t *labels, float *T) {
    for (int c = 0, j = 0; c < r->C; c++)
        for (int i = 0; i < set->m; i++)
            if (set->labels[i] == c) {
                copy_channels(images + (size_t)j * r->px, r->c, set->images + (size_t)i * set->c * r->H * r->W, set->c,
                              (size_t)r->H * r->W);
                if (T) memcpy(T + (size_t)j * r->C, set->label_matrix + (size_t)i * r->C, (size_t)r->C * sizeof(float));
                labels[j++] = c;
            }
}

/* a set's label matrix: one probability row per image over the dataset's classes (the probe's soft
   targets, core/eval/probe.h) */
static int check_label_matrix(const clpdd_run_data *r, const clpdd_image_set *set, clpdd_err *e) {
    if (!set->label_matrix) return 0;
    if (set->label_C != r->C)
        return clpdd_err_set(e, "eval: %s: label_matrix has %d columns; the dataset has %d classes", set->source,
                             set->label_C, r->C);
    for (int i = 0; i < set->m; i++) {
        const float *t = set->label_matrix + (size_t)i * r->C;
        double sum = 0;
        int ok = 1;
        for (int c = 0; c < r->C; c++) ok = ok && t[c] >= 0.0f && t[c] <= 1.0f, sum += t[c];
        if (!ok || fabs(sum - 1.0) > 1e-3)
            return clpdd_err_set(e, "eval: %s: label_matrix row %d is not a probability row (entries in [0, 1] summing "
                                    "to 1; it sums to %g)", set->source, i, sum);
    }
    return 0;
}

int clpdd_run_eval(clpdd_experiment *x, const clpdd_image_set *set, const clpdd_run_opts *opts, clpdd_err *e) {
    double t_start = clpdd_now();
    if (need_device(opts, "clpdd_run_eval", e)) return -1;
    clpdd_reset_peak_rss();
    const char *outdir = opts->output ? opts->output : x->output;
    clpdd_rundir dir = {.lock_fd = -1};
    clpdd_run_data r;
    memset(&r, 0, sizeof r);
    clpdd_summary s;
    summary_init(&s);
    float *images = NULL, *phis = NULL;
    int32_t *labels = NULL;
    clpdd_image_set named = *set; /* the set with labels of the dataset's classes */
    int32_t *named_labels = NULL;
    int rc = clpdd_rundir_acquire(&dir, outdir, 0, opts->force, e);
    /* the set is checked against the loaded datasets before their features are extracted */
    if (rc == 0) rc = clpdd_run_data_open(&r, x, opts->ops, "eval", opts->quiet, e) || clpdd_run_data_load(&r, e) ? -1 : 0;
    if (rc == 0 && set->class_names) {
        named.labels = named_labels = clpdd_xmalloc((size_t)(set->m > 0 ? set->m : 1) * sizeof(int32_t));
        rc = map_classes(&r, set, named_labels, e);
    }
    if (rc == 0) rc = check_set(&r, &named, e) || check_label_matrix(&r, &named, e) ? -1 : 0;
    if (rc == 0) rc = clpdd_run_data_features(&r, 0, 0, e);
    if (rc == 0) clpdd_run_data_targets(&r);
    clpdd_results_set rs = {NULL, NULL, NULL, set->m, x->ipc, 1};
    float *T = NULL; /* the label matrix in the sorted order */
    if (rc == 0) {
        rs.images = images = clpdd_xmalloc((size_t)set->m * r.px * sizeof(float));
        rs.labels = labels = clpdd_xmalloc((size_t)set->m * sizeof(int32_t));
        if (set->label_matrix) rs.label_matrix = T = clpdd_xmalloc((size_t)set->m * r.C * sizeof(float));
        sort_set(&r, &named, images, labels, T);
        s.source = set->source;
        phis = clpdd_xmalloc((size_t)set->m * r.d * sizeof(float)); /* (m, d) */
        rc = clpdd_evaluation_score(&r, images, labels, T, set->m, x->ipc, phis, &s, e);
    }
    if (rc == 0) rc = clpdd_rundir_clear(&dir, e); /* the old results go only once the new ones exist */
    if (rc == 0) rc = clpdd_results_write_eval(outdir, &r, &rs, set->from_run, t_start, &s, e);
    if (rc == 0 && !opts->quiet) clpdd_results_report_eval(&s, &r, outdir);
    free(images), free(labels), free(phis), free(named_labels), free(T);
    clpdd_summary_free(&s);
    clpdd_run_data_free(&r);
    clpdd_rundir_release(&dir);
    return rc ? -1 : 0;
}

int clpdd_run_features(clpdd_experiment *x, const clpdd_run_opts *opts, int part, int parts, int merge, clpdd_err *e) {
    if (need_device(opts, "clpdd_run_features", e)) return -1;
    clpdd_run_data r;
    int rc = clpdd_run_data_open(&r, x, opts->ops, "features", opts->quiet, e) || clpdd_run_data_load(&r, e);
    if (rc == 0) rc = merge ? clpdd_run_data_merge(&r, part, parts, e) : clpdd_run_data_features(&r, part, parts, e);
    clpdd_run_data_free(&r);
    return rc ? -1 : 0;
}
