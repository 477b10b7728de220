#include "distill/outputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "io/safetensors.h"

int clpdd_write_log_csv(const char *path, const clpdd_log_row *rows, int n, const clpdd_summary *s, clpdd_err *e) {
    clpdd_strbuf b = {0};
    int k = s ? s->n_learned : 0;
    clpdd_sb_printf(&b, "step,loss,seconds");
    for (int j = 0; j < k; j++) clpdd_sb_printf(&b, ",%s", s->learned_name[j]);
    clpdd_sb_printf(&b, "\n");
    for (int i = 0; i < n; i++) {
        clpdd_sb_printf(&b, "%d,%.8g,%.4f", rows[i].step, rows[i].loss, rows[i].seconds);
        for (int j = 0; j < k; j++) clpdd_sb_printf(&b, ",%.9g", rows[i].learned[j]);
        clpdd_sb_printf(&b, "\n");
    }
    int rc = clpdd_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    return rc;
}

static void json_num_or_null(clpdd_strbuf *b, double v);

static void json_array(clpdd_strbuf *b, const double *v, int n) {
    clpdd_sb_printf(b, "[");
    for (int i = 0; i < n; i++) {
        if (i) clpdd_sb_printf(b, ", ");
        json_num_or_null(b, v[i]);
    }
    clpdd_sb_printf(b, "]");
}

/* "name": {"protocol": …, "mean": …, "std": …, "per_seed": […]} on the test split; the probe
   protocol adds the validation scores, the chosen L2 strengths and the fits' convergence */
static void json_score(clpdd_strbuf *b, const char *name, const clpdd_score *s) {
    clpdd_sb_json_str(b, name);
    clpdd_sb_printf(b, ": {\"protocol\": \"%s\", \"mean\": %.6f, \"std\": %.6f, \"per_seed\": ", clpdd_protocol_name(s->protocol),
                    s->mean, s->std);
    json_array(b, s->per_seed, s->n);
    if (s->protocol == CLPDD_PROTOCOL_PROBE) {
        clpdd_sb_printf(b, ", \"val\": {\"mean\": ");
        json_num_or_null(b, s->val_mean);
        clpdd_sb_printf(b, ", \"std\": ");
        json_num_or_null(b, isfinite(s->val_mean) ? s->val_std : NAN);
        clpdd_sb_printf(b, ", \"per_seed\": ");
        json_array(b, s->val_per_seed, s->n);
        clpdd_sb_printf(b, "}, \"wd\": ");
        json_array(b, s->wd_per_seed, s->n);
        clpdd_sb_printf(b, ", \"convergence\": {\"converged\": %s, \"max_iterations\": %d, \"max_grad_norm\": %.3g}",
                        s->all_converged ? "true" : "false", s->max_iterations, s->max_grad_norm);
    }
    if (s->G > 0) {
        clpdd_sb_printf(b, ", \"worst_group\": {\"mean\": ");
        json_num_or_null(b, s->worst_mean);
        clpdd_sb_printf(b, ", \"std\": %.6f, \"per_seed\": ", s->worst_std);
        json_array(b, s->worst_per_seed, s->n);
        clpdd_sb_printf(b, "}, \"group_mean\": {\"mean\": ");
        json_num_or_null(b, s->gmean_mean);
        clpdd_sb_printf(b, ", \"std\": %.6f, \"per_seed\": ", s->gmean_std);
        json_array(b, s->gmean_per_seed, s->n);
        clpdd_sb_printf(b, "}, \"per_group\": ");
        json_array(b, s->group_acc, s->G);
    }
    clpdd_sb_printf(b, "}");
}

/* "learned": {"loss.temperature": {"init": …, "final": …}, …}, only in a run that learned scalars
   (other runs' metrics.json stay as they were) */
static void json_learned(clpdd_strbuf *b, const clpdd_summary *s) {
    if (s->n_learned == 0) return;
    clpdd_sb_printf(b, "  \"learned\": {");
    for (int i = 0; i < s->n_learned; i++) {
        clpdd_sb_printf(b, "%s", i ? ", " : "");
        clpdd_sb_json_str(b, s->learned_name[i]);
        clpdd_sb_printf(b, ": {\"init\": %.9g, \"final\": %.9g}", s->learned_init[i], s->learned_final[i]);
    }
    clpdd_sb_printf(b, "},\n");
}

/* "groups": the key, the values and every group's label, value and images per split */
static void json_groups(clpdd_strbuf *b, const clpdd_summary *s) {
    clpdd_sb_printf(b, "  \"groups\": ");
    if (s->G == 0) {
        clpdd_sb_printf(b, "null,\n");
        return;
    }
    clpdd_sb_printf(b, "{\"key\": ");
    clpdd_sb_json_str(b, s->group_key);
    clpdd_sb_printf(b, ", \"select\": \"%s\", \"values\": [", s->select_worst ? "worst_group" : "average");
    for (int v = 0; v < s->n_values; v++) clpdd_sb_printf(b, "%s", v ? ", " : ""), clpdd_sb_json_str(b, s->group_values[v]);
    clpdd_sb_printf(b, "],\n    \"groups\": [");
    for (int g = 0; g < s->G; g++) {
        int label = g / s->n_values;
        clpdd_sb_printf(b, "%s\n      {\"group\": %d, \"label\": %d, \"class\": ", g ? "," : "", g, label);
        if (s->class_names) clpdd_sb_json_str(b, s->class_names[label]);
        else clpdd_sb_printf(b, "null");
        clpdd_sb_printf(b, ", \"value\": ");
        clpdd_sb_json_str(b, s->group_values[g % s->n_values]);
        clpdd_sb_printf(b, ", \"train\": %d, \"val\": %d, \"test\": %d}", s->group_count[0][g], s->group_count[1][g],
                        s->group_count[2][g]);
    }
    clpdd_sb_printf(b, "]},\n");
}

static void json_key_str(clpdd_strbuf *b, const char *key, const char *value) {
    clpdd_sb_json_str(b, key);
    clpdd_sb_printf(b, ": ");
    if (value) clpdd_sb_json_str(b, value);
    else clpdd_sb_printf(b, "null");
}

static void json_num_or_null(clpdd_strbuf *b, double v) {
    if (isfinite(v)) clpdd_sb_printf(b, "%.6g", v);
    else clpdd_sb_printf(b, "null");
}

void clpdd_summary_free(clpdd_summary *s) {
    free(s->neighbor_rows), free(s->neighbor_dist);
    s->neighbor_rows = NULL, s->neighbor_dist = NULL;
}

int clpdd_write_metrics(const char *path, const clpdd_summary *s, clpdd_err *e) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "{\n  \"method\": {");
    json_key_str(&b, "solver", s->solver);
    clpdd_sb_printf(&b, ", ");
    json_key_str(&b, "loss", s->loss);
    clpdd_sb_printf(&b, ", ");
    json_key_str(&b, "backbone", s->backbone);
    clpdd_sb_printf(&b, ", \"ipc\": %d, ", s->ipc);
    json_key_str(&b, "init", s->init);
    clpdd_sb_printf(&b, ", \"steps\": %d, \"lr\": %g, \"real_batch\": %d, \"seed\": %llu},\n  ", s->steps, s->lr,
                    s->real_batch, (unsigned long long)s->seed);
    json_key_str(&b, "name", s->name);
    clpdd_sb_printf(&b, ",\n  ");
    json_key_str(&b, "dataset", s->dataset);
    clpdd_sb_printf(&b, ",\n  ");
    json_key_str(&b, "test_set", s->test_set);
    if (s->source) {
        clpdd_sb_printf(&b, ",\n  ");
        json_key_str(&b, "evaluated_set", s->source);
    }
    clpdd_sb_printf(&b, ",\n  \"eval\": {");
    json_key_str(&b, "protocol", s->protocol);
    clpdd_sb_printf(&b, ", \"seeds\": %d, \"epochs\": %d, \"batch\": %d, \"lr_base\": %g},\n  ", s->eval_seeds,
                    s->eval_epochs, s->eval_batch, s->eval_lr);
    json_score(&b, "accuracy", &s->acc);
    if (s->has_hard) clpdd_sb_printf(&b, ",\n  "), json_score(&b, "accuracy_hard_labels", &s->acc_hard);
    clpdd_sb_printf(&b, ",\n  \"baselines\": {");
    const char *sep = "\n    ";
    if (s->has_random) json_score(&b, "random_real", &s->random_real), sep = ",\n    ";
    if (s->has_centroids) clpdd_sb_printf(&b, "%s", sep), json_score(&b, "centroids", &s->centroids), sep = ",\n    ";
    if (s->has_neighbors) clpdd_sb_printf(&b, "%s", sep), json_score(&b, "neighbors", &s->neighbors), sep = ",\n    ";
    if (s->has_full) clpdd_sb_printf(&b, "%s", sep), json_score(&b, "full_data", &s->full_data);
    clpdd_sb_printf(&b, "},\n  \"baselines_from_cache\": %s", s->baselines_from_cache ? "true" : "false");
    clpdd_sb_printf(&b, ",\n  \"solver_diagnostic\": ");
    if (isfinite(s->solver_acc))
        clpdd_sb_printf(&b, "{\"classifier\": \"%s fitted on the distilled features\", \"accuracy\": %.6f}", s->solver,
                        s->solver_acc);
    else clpdd_sb_printf(&b, "null");
    clpdd_sb_printf(&b, ",\n  \"loss\": {\"first\": ");
    json_num_or_null(&b, s->first_loss);
    clpdd_sb_printf(&b, ", \"last\": ");
    json_num_or_null(&b, s->last_loss);
    clpdd_sb_printf(&b, "},\n  \"timing\": {\"ms_per_step\": ");
    json_num_or_null(&b, s->steps > 0 ? s->ms_per_step : NAN); /* no step, no time per step (clpdd eval, steps = 0) */
    clpdd_sb_printf(&b, ", \"steps\": %d, \"loop_s\": %.3f, \"feature_extraction_s\": %.3f, \"total_s\": %.3f},\n", s->steps,
                    s->loop_s, s->features_s, s->total_s);
    clpdd_sb_printf(&b, "  \"features\": {\"train\": %d, \"val\": %d, \"test\": %d, \"dim\": %d, \"from_cache\": %s},\n",
                    s->n_train, s->n_val, s->n_test, s->dim, s->from_cache ? "true" : "false");
    clpdd_sb_printf(&b, "  \"skipped_images\": {\"count\": %ld, \"first\": ", s->skipped_images);
    if (s->skipped_first) clpdd_sb_json_str(&b, s->skipped_first);
    else clpdd_sb_printf(&b, "null");
    clpdd_sb_printf(&b, "},\n  \"other_split_rows\": {\"count\": %ld, \"first\": ", s->other_split_rows);
    if (s->other_split_first) clpdd_sb_json_str(&b, s->other_split_first);
    else clpdd_sb_printf(&b, "null");
    clpdd_sb_printf(&b, "},\n");
    json_groups(&b, s);
    json_learned(&b, s);
    clpdd_sb_printf(&b, "  \"memory\": {\"peak_host_mb\": %.1f, \"peak_device_mb\": ", s->peak_host_mb);
    json_num_or_null(&b, s->peak_device_mb);
    clpdd_sb_printf(&b, ", \"peak_plugin_alloc_mb\": %.1f},\n  ", s->peak_alloc_mb);
    json_key_str(&b, "device", s->device);
    clpdd_sb_printf(&b, "\n}\n");
    int rc = clpdd_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    return rc;
}

int clpdd_write_distilled(const char *dir, const float *images, const int32_t *labels, const float *label_matrix, int m,
                          int c, int H, int W, int ipc, int C, const clpdd_summary *s, clpdd_err *e) {
    char path[4096];
    clpdd_strbuf meta = {0};
    clpdd_sb_printf(&meta, "{");
    json_key_str(&meta, "name", s->name);
    clpdd_sb_printf(&meta, ", ");
    json_key_str(&meta, "backbone", s->backbone);
    clpdd_sb_printf(&meta, ", ");
    json_key_str(&meta, "solver", s->solver);
    clpdd_sb_printf(&meta, ", \"ipc\": %d, \"steps\": %d, \"seed\": %llu}", ipc, s->steps, (unsigned long long)s->seed);
    snprintf(path, sizeof path, "%s/distilled.safetensors", dir);
    clpdd_st_entry ent[3] = {
        {"images", CLPDD_DT_F32, 4, {m, c, H, W}, images},
        {"labels", CLPDD_DT_I32, 1, {m}, labels},
        {"label_matrix", CLPDD_DT_F32, 2, {m, C}, label_matrix},
    };
    const char *mk[] = {"format", "run"};
    const char *mv[] = {"clpdd distilled set v1: images (m, c, H, W) in [0, 1] pixel space, class-major", meta.s};
    /* without a learned label matrix the file is as before */
    int st = clpdd_st_write(path, ent, label_matrix ? 3 : 2, mk, mv, 2, e);
    free(meta.s);
    if (st) return -1;
    snprintf(path, sizeof path, "%s/distilled.png", dir);
    return clpdd_write_class_grid(path, images, m, c, H, W, ipc, C, e);
}

int clpdd_write_class_grid(const char *path, const float *images, int m, int c, int H, int W, int ipc, int C, clpdd_err *e) {
    /* grid: one column per class, row r = the r-th image of every class */
    size_t px = (size_t)c * H * W;
    float *grid = clpdd_xmalloc((size_t)m * px * sizeof(float));
    for (int r = 0; r < ipc; r++)
        for (int k = 0; k < C; k++) memcpy(grid + ((size_t)r * C + k) * px, images + ((size_t)k * ipc + r) * px, px * sizeof(float));
    int zoom = H >= 128 ? 1 : (H >= 64 ? 2 : 4);
    int rc = clpdd_png_grid(path, grid, m, c, H, W, C, zoom, e);
    free(grid);
    return rc;
}

int clpdd_write_neighbors_csv(const char *path, const clpdd_summary *s, const int32_t *labels, int m, clpdd_err *e) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "distilled_index,train_row,label,distance\n");
    for (int i = 0; i < m; i++)
        clpdd_sb_printf(&b, "%d,%d,%d,%.9g\n", i, s->neighbor_rows[i], (int)labels[i], s->neighbor_dist[i]);
    int rc = clpdd_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    return rc;
}

int clpdd_write_loss_plot(const char *path, const clpdd_log_row *rows, int n, const char *title, clpdd_err *e) {
    float *x = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(float)), *y = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(float));
    int all_positive = 1;
    for (int i = 0; i < n; i++) {
        x[i] = (float)rows[i].step;
        y[i] = rows[i].loss;
        all_positive &= rows[i].loss > 0;
    }
    clpdd_plot opt = {title, "step", "outer loss", 0, 0, all_positive};
    int rc = clpdd_png_plot(path, x, y, n, &opt, e);
    free(x);
    free(y);
    return rc;
}
