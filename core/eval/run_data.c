/* The data a run stands on: host, backbone, datasets, cached features, validation split
 * (core/eval/run_data.h). */
#define _GNU_SOURCE
#include "eval/run_data.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/evaluate.h" /* CLPDD_MAX_GROUPS */
#include "eval/probe.h" /* clpdd_split_stratified */

static int plugin_fail(clpdd_run_data *r, const char *what, const char *name, clpdd_err *e) {
    return clpdd_err_set(e, "%s '%s' failed: %s", what, name, clpdd_host_error(r->h));
}

int clpdd_run_data_open(clpdd_run_data *r, clpdd_experiment *x, const clpdd_ops *ops, const char *what, int quiet,
                        clpdd_err *e) {
    memset(r, 0, sizeof *r);
    r->x = x;
    r->quiet = quiet;
    r->ops = ops;
    r->h = clpdd_host_create(r->ops, x->seed);
    clpdd_host_set_quiet(r->h, r->quiet);
    if (!r->quiet) fprintf(stderr, "clpdd: %s '%s' on %s\n", what, x->name, ops->name);
    r->bb = (clpdd_backbone){r->h, x->backbone.desc, x->backbone.desc->vtable, NULL, {0}, x->backbone_key, x->adapt,
                             CLPDD_PRECISION_FP32 /* the step sets its own (core/distill/loop.c) */};
    if (r->bb.vt->create(r->h, x->backbone_cfg, &r->bb.self)) {
        r->bb.self = NULL;
        return plugin_fail(r, "backbone", r->bb.desc->name, e);
    }
    if (r->bb.vt->describe(r->bb.self, &r->bb.info)) return plugin_fail(r, "backbone", r->bb.desc->name, e);
    r->d = r->bb.info.feature_dim;
    return 0;
}

/* the two splits in memory: IDX files, or an image dataset decoded and preprocessed
   (core/data/data_source.h) with the [data] keys; images get the backbone's channel count (grey or RGB) */
static int load_datasets(clpdd_run_data *r, clpdd_err *e) {
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
    const char *const splits[] = {train_split, test_split, NULL};
    clpdd_data_cfg cfg = {.kind = x->dataset,
                          .root = x->root,
                          .classes_file = *x->classes_file ? x->classes_file : NULL,
                          .split = train_split,
                          .resize = x->resize,
                          .crop = x->crop,
                          .workers = x->workers,
                          .skip_bad = x->skip_bad_images,
                          .grey = r->bb.info.channels == 1,
                          .limit = x->train_limit,
                          .subset_seed = x->subset_seed,
                          .verify = x->data_verify,
                          .splits = splits,
                          .group = x->group};
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
    /* both loads count the same rows: those of neither split */
    r->sum.other_split_rows = r->train_info.other_rows, r->sum.other_split_first = r->train_info.other_first;
    if (r->sum.other_split_rows && !r->quiet)
        fprintf(stderr, "warning: %ld manifest rows of other splits left out, the first: %s\n", r->sum.other_split_rows,
                r->sum.other_split_first ? r->sum.other_split_first : "?");
    return 0;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* one split's groups (label·nv + the value's index in the union) */
static int32_t *split_groups(const clpdd_dataset *ds, const clpdd_data_info *info, char **values, int nv) {
    int32_t *g = clpdd_xmalloc((size_t)(ds->n ? ds->n : 1) * sizeof *g);
    for (int i = 0; i < ds->n; i++) {
        const char *key = info->group_values[ds->groups[i]];
        char **hit = bsearch(&key, values, (size_t)nv, sizeof *values, cmp_cstr);
        CLPDD_ASSERT(hit);
        g[i] = ds->labels[i] * nv + (int32_t)(hit - values);
    }
    return g;
}

/* [data] group: the union of both splits' values, and every image's group */
static int load_groups(clpdd_run_data *r, clpdd_err *e) {
    const clpdd_data_info *a = &r->train_info, *b = &r->test_info;
    if (!r->train.groups || !r->test.groups) return 0;
    char **v = clpdd_xmalloc((size_t)(a->n_group_values + b->n_group_values + 1) * sizeof *v);
    int n = 0;
    for (int i = 0; i < a->n_group_values; i++) v[n++] = a->group_values[i];
    for (int i = 0; i < b->n_group_values; i++) v[n++] = b->group_values[i];
    qsort(v, (size_t)n, sizeof *v, cmp_cstr);
    int nv = 0;
    for (int i = 0; i < n; i++)
        if (nv == 0 || strcmp(v[nv - 1], v[i]) != 0) v[nv++] = v[i];
    for (int i = 0; i < nv; i++) v[i] = clpdd_xstrdup(v[i]);
    r->groups.values = v, r->groups.n_values = nv, r->groups.G = r->C * nv;
    r->groups.train = split_groups(&r->train, a, v, nv);
    r->groups.test = split_groups(&r->test, b, v, nv);
    if (r->groups.G > CLPDD_MAX_GROUPS)
        return clpdd_err_set(e, "data: [data] group = %s gives %d classes x %d values = %d groups; at most %d are supported",
                             r->x->group, r->C, nv, r->groups.G, CLPDD_MAX_GROUPS);
    return 0;
}

/* every class 0..C-1 present, with enough images for what the run draws per class */
static int check_classes(const clpdd_run_data *r, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    const clpdd_dataset *tr = &r->train;
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
    return rc ? -1 : 0;
}

int clpdd_run_data_load(clpdd_run_data *r, clpdd_err *e) {
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
    if (check_classes(r, e)) return -1;
    if (load_groups(r, e)) return -1;
    int N = tr->n, nv = (int)x->val_size;
    r->target_rows = clpdd_xmalloc((size_t)N * sizeof(int)), r->val_rows = clpdd_xmalloc((size_t)(nv > 0 ? nv : 1) * sizeof(int));
    if (nv > 0) {
        if (nv >= N) return clpdd_err_set(e, "data: [data] val_size = %d leaves no training image of the %d", nv, N);
        if (clpdd_split_stratified(tr->labels, N, r->C, nv, x->subset_seed, r->target_rows, NULL, r->val_rows, e))
            return clpdd_err_prefix(e, "data: [data] val_size = %d: ", nv);
    } else {
        for (int i = 0; i < N; i++) r->target_rows[i] = i;
    }
    return 0;
}

/* the cache directory, made if need be; a warning when it cannot be written, said before the
   extraction, not after */
static void cache_ready(clpdd_run_data *r) {
    char *cache = r->cache_dir;
    clpdd_cache_dir(r->x->cache_dir, cache, sizeof r->cache_dir);
    clpdd_err ce;
    if ((clpdd_mkdirs(cache, &ce) || access(cache, W_OK) != 0) && !r->quiet)
        fprintf(stderr, "warning: feature cache directory %s is not writable: the features will be extracted but not kept\n",
                cache);
}

int clpdd_run_data_features(clpdd_run_data *r, int part, int parts, clpdd_err *e) {
    cache_ready(r);
    clpdd_features_opt fo = {.batch = 256, .verbose = !r->quiet, .f16 = r->x->feature_f16, .part = part, .parts = parts};
    return clpdd_features_get_opt(&r->ftrain, &r->bb, &r->train, "train", r->cache_dir, &fo, e) ||
                   clpdd_features_get_opt(&r->ftest, &r->bb, &r->test, "test", r->cache_dir, &fo, e)
               ? -1
               : 0;
}

int clpdd_run_data_merge(clpdd_run_data *r, int part, int parts, clpdd_err *e) {
    cache_ready(r);
    clpdd_features_opt fo = {.batch = 256, .verbose = !r->quiet, .f16 = r->x->feature_f16, .part = part, .parts = parts};
    return clpdd_features_merge(&r->bb, &r->train, "train", r->cache_dir, &fo, e) ||
                   clpdd_features_merge(&r->bb, &r->test, "test", r->cache_dir, &fo, e)
               ? -1
               : 0;
}

void clpdd_run_data_targets(clpdd_run_data *r) {
    int d = r->d, nv = (int)r->x->val_size;
    r->N = r->train.n - nv, r->nv = nv;
    r->target_x = clpdd_xmalloc((size_t)r->N * d * sizeof(float)), r->target_y = clpdd_xmalloc((size_t)r->N * sizeof(int32_t));
    r->val_x = clpdd_xmalloc((size_t)(nv ? nv : 1) * d * sizeof(float)), r->val_y = clpdd_xmalloc((size_t)(nv ? nv : 1) * sizeof(int32_t));
    for (int i = 0; i < r->N; i++) {
        memcpy(r->target_x + (size_t)i * d, r->ftrain.x + (size_t)r->target_rows[i] * d, (size_t)d * sizeof(float));
        r->target_y[i] = r->ftrain.y[r->target_rows[i]];
    }
    if (r->groups.train) {
        r->groups.target = clpdd_xmalloc((size_t)(r->N ? r->N : 1) * sizeof(int32_t));
        r->groups.val = clpdd_xmalloc((size_t)(nv ? nv : 1) * sizeof(int32_t));
        for (int i = 0; i < r->N; i++) r->groups.target[i] = r->groups.train[r->target_rows[i]];
        for (int i = 0; i < nv; i++) r->groups.val[i] = r->groups.train[r->val_rows[i]];
    }
    for (int i = 0; i < nv; i++) {
        memcpy(r->val_x + (size_t)i * d, r->ftrain.x + (size_t)r->val_rows[i] * d, (size_t)d * sizeof(float));
        r->val_y[i] = r->ftrain.y[r->val_rows[i]];
    }
}

void clpdd_run_data_free(clpdd_run_data *r) {
    if (r->bb.self) r->bb.vt->destroy(r->bb.self);
    clpdd_features_free(&r->ftrain);
    clpdd_features_free(&r->ftest);
    free(r->target_x), free(r->val_x), free(r->target_y), free(r->val_y), free(r->target_rows), free(r->val_rows);
    for (int i = 0; i < r->groups.n_values; i++) free(r->groups.values[i]);
    free(r->groups.values), free(r->groups.train), free(r->groups.test), free(r->groups.target), free(r->groups.val);
    clpdd_dataset_free(&r->train);
    clpdd_dataset_free(&r->test);
    clpdd_data_info_free(&r->train_info);
    clpdd_data_info_free(&r->test_info);
    if (r->h) clpdd_host_destroy(r->h); /* frees every device buffer */
}
