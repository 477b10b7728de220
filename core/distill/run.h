/* One distillation run (DESIGN §1, §8): features → the optimisation loop → evaluation → the
 * run directory. */
#ifndef CLPDD_RUN_H
#define CLPDD_RUN_H
#include "config/experiment.h"

typedef struct clpdd_run_opts {
    const clpdd_ops *ops; /* the device, chosen once by the caller (clpdd_select_device) */
    const char *output;   /* overrides [experiment] output when not NULL */
    int quiet;
    int resume;           /* continue from <output>/checkpoint.safetensors when there is one */
    int force;            /* replace another run's files in <output> (core/distill/rundir.h) */
} clpdd_run_opts;

/* the device ops for [experiment] device; NULL + message when cuda is asked for and absent */
const clpdd_ops *clpdd_select_device(clpdd_device_kind device, clpdd_err *e);

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e);

/* an image set to evaluate (clpdd eval): host images in [0, 1] in the dataset's image space */
typedef struct clpdd_image_set {
    const float *images;   /* (m, c, H, W) */
    const int32_t *labels; /* (m) */
    int m, c, H, W;
    const char *source;    /* where it came from, for messages and metrics.json */
    int from_run;          /* 1: a clpdd run directory, whose config.ini is the method's */
} clpdd_image_set;

/* the evaluation of a run, on a given set: the same data, features, validation split and
   evaluator as `clpdd run`, writing config.ini, metrics.json, distilled.{safetensors,png} into
   opts->output (or [experiment] output). [distill] ipc sizes the baselines. */
int clpdd_run_eval(clpdd_experiment *x, const clpdd_image_set *set, const clpdd_run_opts *opts, clpdd_err *e);

/* clpdd bench (core/cli/bench_cmd.c): the experiment's distillation step, timed on random images
   and random real features (no dataset, no extraction; with [backbone] weights = random no
   checkpoint either). warmup untimed steps, then `steps` timed ones, each synchronised. */
typedef struct clpdd_bench_opts {
    int steps, warmup;
    int classes;    /* C */
    int image_size; /* synthetic image side; 0: [data] crop, else the backbone's input */
    int memory_only; /* set everything up, run no step: the peak is already reached (ops never
                        allocate; plugins allocate at create / tape_create), so the memory of a
                        shape too large to time on this machine can still be measured */
} clpdd_bench_opts;

typedef struct clpdd_bench_result {
    double ms_median, ms_min, ms_max; /* per timed step */
    double read_ms_median;            /* of which DSA's real images: host read + copy to the device */
    double flop;                      /* matrix FLOPs of one step, counted (core/bench/flop_count.h) */
    size_t peak_bytes;                /* high-water mark of every tensor the run allocated through the host */
    int m, me, n, d, C, N;            /* synthetic images, encoded per step (m·augs), real batch, ... */
    int image_side, backbone_side;
    float last_loss;
    clpdd_precision precision;        /* what the device computed (the CPU: fp32) */
    char device[160];
} clpdd_bench_result;

int clpdd_run_bench(clpdd_experiment *x, const clpdd_run_opts *opts, const clpdd_bench_opts *b, clpdd_bench_result *res,
                    clpdd_err *e);

#endif
