/* clpdd bench: the step of this experiment, timed, on random data (core/bench/bench.h).
 *
 * Legend: N random distillation targets, d feature dim, C classes. */
#include "bench/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_images.h"
#include "bench/flop_count.h"
#include "distill/loop.h"
#include "eval/run_data.h"

/* random images (on demand; b->jpeg: generated JPEG files in a temporary image folder, removed by
   the caller) as the training split and random features as the distillation targets,
   N = max(real_batch, C·(ipc + 1)) rows: no extraction; the step then costs what it costs on real
   data */
static int bench_data(clpdd_run_data *r, const clpdd_bench_opts *b, clpdd_bench_folder *folder, clpdd_err *e) {
    const clpdd_experiment *x = r->x;
    if (b->classes < 1) return clpdd_err_set(e, "bench: classes = %d; expected >= 1", b->classes);
    int side = b->image_size > 0 ? b->image_size : x->crop > 0 ? x->crop : r->bb.info.height;
    int C = b->classes, N = x->real_batch > C * (x->ipc + 1) ? x->real_batch : C * (x->ipc + 1), d = r->d;
    if (b->jpeg) {
        if (clpdd_bench_folder_make(folder, &r->train, N, r->bb.info.channels, side, C, x->workers, x->seed + 17, e)) return -1;
    } else {
        clpdd_dataset_random(&r->train, N, r->bb.info.channels, side, side, C, x->seed + 17);
    }
    r->C = C, r->c = r->train.c, r->H = r->W = side, r->px = (size_t)r->c * side * side;
    r->N = N, r->nv = 0;
    r->target_rows = clpdd_xmalloc((size_t)N * sizeof(int));
    r->target_x = clpdd_xmalloc((size_t)N * d * sizeof(float));      /* (N, d) */
    r->target_y = clpdd_xmalloc((size_t)N * sizeof(int32_t));
    r->val_x = clpdd_xmalloc((size_t)d * sizeof(float)), r->val_y = clpdd_xmalloc(sizeof(int32_t));
    clpdd_rng rng = {x->seed + 29};
    for (int i = 0; i < N; i++) r->target_rows[i] = i, r->target_y[i] = r->train.labels[i];
    for (size_t i = 0; i < (size_t)N * d; i++) r->target_x[i] = (float)clpdd_rng_normal(&rng);
    return 0;
}

/* the timed steps (none with memory_only): ms per step and DSA's image reads into res */
static int bench_steps(clpdd_loop *l, const clpdd_bench_opts *b, clpdd_bench_result *res, clpdd_err *e) {
    const clpdd_ops *ops = l->ops;
    double *ms = clpdd_xmalloc((size_t)(b->steps > 0 ? b->steps : 1) * sizeof(double));
    double *read_ms = clpdd_xmalloc((size_t)(b->steps > 0 ? b->steps : 1) * sizeof(double));
    float L = NAN;
    int rc = 0;
    for (int step = 1; rc == 0 && step <= b->warmup + b->steps; step++) {
        ops->synchronize();
        clpdd_flops_reset();
        l->read_s = 0.0;
        double t0 = clpdd_now();
        int added;
        rc = clpdd_loop_step(l, step, &L, &added, e);
        ops->synchronize();
        double dt = clpdd_now() - t0;
        if (rc == 0 && step > b->warmup) ms[step - b->warmup - 1] = 1e3 * dt, read_ms[step - b->warmup - 1] = 1e3 * l->read_s;
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
    if (!opts || !opts->ops) return clpdd_err_set(e, "bench: clpdd_run_bench called without a device (opts->ops is NULL)");
    if ((b->steps < 1 && !b->memory_only) || b->warmup < 0)
        return clpdd_err_set(e, "bench: steps %d, warmup %d; expected steps >= 1, warmup >= 0", b->steps, b->warmup);
    const clpdd_ops *inner = opts->ops;
    clpdd_run_data r;
    clpdd_loop l;
    clpdd_bench_folder folder;
    memset(&folder, 0, sizeof folder);
    memset(&l, 0, sizeof l);
    /* the whole run on the counting view: the counter is read around one step only */
    int rc = clpdd_run_data_open(&r, x, clpdd_ops_counting(inner), "bench", 1, e);
    if (rc == 0) rc = bench_data(&r, b, &folder, e);
    if (rc == 0) rc = clpdd_loop_setup(&l, &r, 1, e);
    /* memory_only: every tensor is allocated by now (ops never allocate, plugins at create) */
    if (rc == 0 && !b->memory_only) rc = bench_steps(&l, b, res, e);
    if (rc == 0) {
        res->peak_bytes = clpdd_host_peak_bytes(r.h);
        res->m = l.m, res->me = l.me, res->n = l.n, res->d = l.d, res->C = l.C, res->N = l.N;
        res->image_side = l.H, res->backbone_side = r.bb.info.height;
        res->precision = clpdd_precision_effective(inner, x->precision);
        snprintf(res->device, sizeof res->device, "%s", inner->name);
    }
    clpdd_loop_free(&l);
    clpdd_run_data_free(&r);
    clpdd_bench_folder_remove(&folder);
    return rc ? -1 : 0;
}
