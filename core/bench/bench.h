/* clpdd bench (core/cli/bench_cmd.c): the experiment's distillation step (core/distill/loop.h),
 * timed on random images (or, --jpeg, generated JPEG files) and random real features (no dataset, no
 * extraction; with [backbone] weights = random no checkpoint either). warmup untimed steps, then `steps` timed ones, each
 * synchronised. */
#ifndef CLPDD_BENCH_H
#define CLPDD_BENCH_H
#include "distill/run.h"
#include "numerics/precision.h"

typedef struct clpdd_bench_opts {
    int steps, warmup;
    int classes;    /* C */
    int image_size; /* synthetic image side; 0: [data] crop, else the backbone's input */
    int memory_only; /* set everything up, run no step: the peak is already reached (ops never
                        allocate; plugins allocate at create / tape_create), so the memory of a
                        shape too large to time on this machine can still be measured */
    int jpeg;       /* the real images as a temporary folder of generated JPEGs (core/bench/bench_images.h),
                       decoded in the step as an image folder's: DSA's read share, [data] prefetch */
} clpdd_bench_opts;

typedef struct clpdd_bench_result {
    double ms_median, ms_min, ms_max; /* per timed step */
    double read_ms_median;            /* of which DSA waited for its real images (a read, or the prefetch) + the copy to the device */
    double flop;                      /* matrix FLOPs of one step, counted (core/bench/flop_count.h) */
    size_t peak_bytes;                /* high-water mark of every tensor the run allocated through the host */
    int m, me, n, d, C, N;            /* synthetic images, encoded per step (m·augs), real batch, ... */
    int image_side, backbone_side;
    float last_loss;
    clpdd_precision precision;        /* what the device computed (the CPU: fp32) */
    char device[160];
} clpdd_bench_result;

/* opts->ops: the device (required); opts' other fields are not used (bench is quiet) */
int clpdd_run_bench(clpdd_experiment *x, const clpdd_run_opts *opts, const clpdd_bench_opts *b, clpdd_bench_result *res,
                    clpdd_err *e);

#endif
