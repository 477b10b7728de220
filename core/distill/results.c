/* Writing a run directory and the result lines (core/distill/results.h). */
#include "distill/results.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* [data] group: the names and each group's images per split */
static void fill_groups(clpdd_summary *s, const clpdd_run_data *r) {
    s->G = r->groups.G, s->n_values = r->groups.n_values, s->group_values = r->groups.values;
    s->group_key = r->x->group, s->class_names = r->train_info.class_names;
    s->select_worst = r->x->select == CLPDD_SELECT_WORST_GROUP;
    memset(s->group_count, 0, sizeof s->group_count);
    if (!s->G) return;
    for (int i = 0; i < r->N; i++) s->group_count[0][r->groups.target[i]]++;
    for (int i = 0; i < r->nv; i++) s->group_count[1][r->groups.val[i]]++;
    for (int i = 0; i < r->ftest.n; i++) s->group_count[2][r->groups.test[i]]++;
}

/* what metrics.json reports beside the scores */
static void fill_summary(clpdd_summary *s, const clpdd_run_data *r, const clpdd_results_set *set) {
    const clpdd_experiment *x = r->x;
    s->name = x->name, s->backbone = r->bb.desc->name, s->solver = x->solver.desc->name;
    s->loss = x->loss.desc ? x->loss.desc->name : NULL;
    s->init = clpdd_init_name(x->init), s->protocol = clpdd_protocol_name(x->protocol), s->device = r->ops->name;
    s->dataset = r->train.desc, s->test_set = r->test.desc;
    s->ipc = set->ipc, s->real_batch = set->real_batch, s->lr = x->lr, s->seed = x->seed;
    s->eval_seeds = x->eval_seeds, s->eval_epochs = x->eval_epochs, s->eval_batch = x->eval_batch, s->eval_lr = x->eval_lr;
    s->n_train = r->N, s->n_val = r->nv, s->n_test = r->ftest.n, s->dim = r->d;
    s->from_cache = r->ftrain.from_cache && r->ftest.from_cache;
    s->features_s = r->ftrain.seconds + r->ftest.seconds;
    s->skipped_images = r->sum.skipped_images, s->skipped_first = r->sum.skipped_first;
    s->other_split_rows = r->sum.other_split_rows, s->other_split_first = r->sum.other_split_first;
    s->peak_host_mb = clpdd_peak_rss_bytes() / 1048576.0;
    s->peak_device_mb = r->ops->is_device ? r->ops->peak_bytes() / 1048576.0 : NAN;
    s->peak_alloc_mb = clpdd_host_peak_bytes(r->h) / 1048576.0;
    fill_groups(s, r);
}

/* the resolved configuration with each learned key's line ("key = learn…" in its section)
   replaced by its final value: config-fixed.ini, which reruns the learned run with fixed values */
static char *fixed_ini(const char *resolved, const clpdd_summary *s) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "%s", "");
    char section[64] = "";
    for (const char *p = resolved; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (*p == '[') sscanf(p, "[%63[^]]", section);
        int done = 0;
        for (int i = 0; i < s->n_learned && !done; i++) {
            const char *dot = strchr(s->learned_name[i], '.');
            size_t sl = (size_t)(dot - s->learned_name[i]), kl = strlen(dot + 1);
            if (strlen(section) == sl && !strncmp(section, s->learned_name[i], sl) && !strncmp(p, dot + 1, kl) &&
                !strncmp(p + kl, " = ", 3)) {
                const char *v = p + kl + 3;
                clpdd_sb_printf(&b, "%s = %.9g    ; learned (config.ini: %.*s)\n", dot + 1, s->learned_final[i],
                                (int)strcspn(v, " ;\n"), v);
                done = 1;
            }
        }
        if (!done) clpdd_sb_printf(&b, "%.*s", (int)len, p);
        p += len;
    }
    return b.s;
}

/* config.ini: the configuration that ran (a learned key stays `learn…`, as report, sweep and
   --resume compare it), with a closing comment giving the learned values and the --set that
   reruns them fixed; and then config-fixed.ini, the same with those values substituted */
static int write_config(const char *outdir, const clpdd_experiment *x, const clpdd_summary *s, clpdd_err *e) {
    char path[4096];
    char *resolved = clpdd_experiment_resolved_ini(x);
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "%s", resolved);
    if (s->n_learned > 0) {
        clpdd_sb_printf(&b, "; learned values at the end of the run (log.csv has their trajectories); rerun them fixed with\n;  ");
        for (int i = 0; i < s->n_learned; i++) clpdd_sb_printf(&b, " --set %s=%.9g", s->learned_name[i], s->learned_final[i]);
        clpdd_sb_printf(&b, "\n; or `clpdd run %s/config-fixed.ini`\n", outdir);
    }
    snprintf(path, sizeof path, "%s/config.ini", outdir);
    int rc = clpdd_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    if (rc == 0 && s->n_learned > 0) {
        char *fixed = fixed_ini(resolved, s);
        snprintf(path, sizeof path, "%s/config-fixed.ini", outdir);
        rc = clpdd_write_file_atomic(path, fixed, strlen(fixed), e);
        free(fixed);
    }
    free(resolved);
    return rc ? -1 : 0;
}

/* [eval] baseline_neighbors: neighbors.csv (which real images were picked) and neighbors.png (the
   picked images, laid out as distilled.png) */
static int write_neighbors(const char *outdir, const clpdd_run_data *r, const clpdd_results_set *set,
                           const clpdd_summary *s, clpdd_err *e) {
    if (!s->has_neighbors) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/neighbors.csv", outdir);
    if (clpdd_write_neighbors_csv(path, s, set->labels, set->m, e)) return -1;
    float *images = clpdd_xmalloc((size_t)set->m * r->px * sizeof(float));
    int rc = clpdd_dataset_read_float(&r->train, s->neighbor_rows, 0, set->m, images, e);
    snprintf(path, sizeof path, "%s/neighbors.png", outdir);
    if (rc == 0) rc = clpdd_write_class_grid(path, images, set->m, r->c, r->H, r->W, set->ipc, r->C, e);
    free(images);
    return rc;
}

int clpdd_results_write_run(const char *outdir, const clpdd_run_data *r, const clpdd_results_set *set,
                            const clpdd_log_row *log, int nlog, double t_start, clpdd_summary *s, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    char path[4096];
    if (clpdd_mkdirs(outdir, e)) return -1;
    if (write_config(outdir, x, s, e)) return -1;
    snprintf(path, sizeof path, "%s/log.csv", outdir);
    if (clpdd_write_log_csv(path, log, nlog, s, e)) return -1;

    fill_summary(s, r, set);
    if (clpdd_write_distilled(outdir, set->images, set->labels, set->label_matrix, set->m, r->c, r->H, r->W, set->ipc, r->C, s, e) ||
        write_neighbors(outdir, r, set, s, e))
        return -1;
    snprintf(path, sizeof path, "%s/loss.png", outdir);
    char title[512];
    snprintf(title, sizeof title, "%s: %s + %s, %s, ipc %d", x->name, s->solver, s->loss ? s->loss : "objective", s->backbone,
             set->ipc);
    if (nlog > 0 && clpdd_write_loss_plot(path, log, nlog, title, e)) return -1;
    s->wrote_loss_plot = nlog > 0;
    s->total_s = clpdd_now() - t_start; /* metrics.json last: its presence marks a finished run */
    snprintf(path, sizeof path, "%s/metrics.json", outdir);
    return clpdd_write_metrics(path, s, e);
}

int clpdd_results_write_eval(const char *outdir, const clpdd_run_data *r, const clpdd_results_set *set, int from_run,
                             double t_start, clpdd_summary *s, clpdd_err *e) {
    char path[4096];
    if (write_config(outdir, r->x, s, e)) return -1;
    fill_summary(s, r, set);
    if (!from_run) s->solver = s->loss = NULL; /* made elsewhere: not this configuration's method */
    if (clpdd_write_distilled(outdir, set->images, set->labels, set->label_matrix, set->m, r->c, r->H, r->W, set->ipc, r->C, s, e) ||
        write_neighbors(outdir, r, set, s, e))
        return -1;
    s->total_s = clpdd_now() - t_start;
    snprintf(path, sizeof path, "%s/metrics.json", outdir);
    return clpdd_write_metrics(path, s, e);
}

static void print_score(const char *name, const clpdd_score *s) {
    fprintf(stderr, "   %s %.2f%%", name, 100 * s->mean);
    if (s->n > 1) fprintf(stderr, " +- %.2f", 100 * s->std);
}

static void print_worst(const char *name, const clpdd_score *s) {
    fprintf(stderr, "   %s %.2f%%", name, 100 * s->worst_mean);
    if (s->n > 1) fprintf(stderr, " +- %.2f", 100 * s->worst_std);
    fprintf(stderr, " (group mean %.2f%%)", 100 * s->gmean_mean);
}

/* [data] group: the worst group's test accuracy of every evaluated set */
void clpdd_results_report_groups(const clpdd_summary *s) {
    if (s->G == 0) return;
    fprintf(stderr, "\n   worst group (%d groups of (label, %s)):", s->G, s->group_key);
    print_worst("distilled", &s->acc);
    if (s->has_hard) print_worst("hard labels", &s->acc_hard);
    if (s->has_random) print_worst("random real", &s->random_real);
    if (s->has_centroids) print_worst("centroids", &s->centroids);
    if (s->has_neighbors) print_worst("neighbours", &s->neighbors);
    if (s->has_full) print_worst("full data", &s->full_data);
}

/* the scores' line, and the validation line of the probe protocol */
static void report_scores(const clpdd_summary *s, const clpdd_run_data *r) {
    fprintf(stderr, "\nresult (%s protocol, test split):", s->protocol);
    print_score(s->has_hard ? "distilled (soft labels)" : "distilled", &s->acc);
    if (s->has_hard) print_score("hard labels", &s->acc_hard);
    if (s->has_random) print_score("random real", &s->random_real);
    if (s->has_centroids) print_score("centroids", &s->centroids);
    if (s->has_neighbors) print_score("neighbours", &s->neighbors);
    if (s->has_full) print_score("full data", &s->full_data);
    if (isfinite(s->solver_acc)) fprintf(stderr, "   (%s classifier %.2f%%)", s->solver, 100 * s->solver_acc);
    clpdd_results_report_groups(s);
    if (r->x->protocol == CLPDD_PROTOCOL_PROBE && r->nv > 0)
        fprintf(stderr, "\n        validation%s: distilled %.2f%% at wd %g%s", s->select_worst ? " (worst group)" : "",
                100 * s->acc.val_mean, s->acc.wd_per_seed[0],
                s->acc.all_converged ? "" : " (the probe did NOT converge: raise [eval] probe_max_iter)");
}

void clpdd_results_report_run(const clpdd_summary *s, const clpdd_run_data *r, const char *outdir) {
    report_scores(s, r);
    fprintf(stderr, "\n        %d steps, %.2f ms/step, peak RSS %.0f MB, total %.1f s\n"
                    "        wrote %s/{metrics.json,log.csv,config.ini,distilled.safetensors,distilled.png%s%s}\n",
            s->steps, s->ms_per_step, s->peak_host_mb, s->total_s, outdir, s->wrote_loss_plot ? ",loss.png" : "",
            s->has_neighbors ? ",neighbors.csv,neighbors.png" : "");
}

void clpdd_results_report_eval(const clpdd_summary *s, const clpdd_run_data *r, const char *outdir) {
    report_scores(s, r);
    fprintf(stderr, "\n        peak RSS %.0f MB, total %.1f s\n"
                    "        wrote %s/{metrics.json,config.ini,distilled.safetensors,distilled.png%s}\n",
            s->peak_host_mb, s->total_s, outdir, s->has_neighbors ? ",neighbors.csv,neighbors.png" : "");
}
