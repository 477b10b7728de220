/* clpdd-bench-attention: the CPU attention op, fused against materialised, side by side.
 *
 *   clpdd-bench-attention [--rounds R] [--out FILE.md]
 *
 * For each shape (the mnist-vit's T = 50, Hh = 4, hd = 64 at n = 10 and 100 images; ViT-B's
 * T = 197, Hh = 12, hd = 64 at n = 8), R interleaved rounds time the four calls — fused
 * forward, materialised forward, fused backward, materialised backward — one after the other,
 * each as the median of ~0.2 s of repetitions, so that the machine's load moves all four alike.
 * Reported: the median over rounds of each time, its GFLOP/s, and the fused / materialised
 * ratio (median of the per-round ratios, with their min–max as the spread). Nothing is asserted.
 *
 * FLOPs (2 per multiply-add, as bench/bench_cpu.c): forward n·Hh·4·T²·hd (S = q·kᵀ, P·v),
 * backward n·Hh·8·T²·hd (dP, dv, dq, dk) for both paths — the fused backward also recomputes
 * S (n·Hh·2·T²·hd more work, not counted: the rate is of the useful work).
 * Threads: $CLPDD_CPU_THREADS, else every CPU (core/cpu/threadpool.h).
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width, D = Hh·hd. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clpdd/ops.h"
#include "util/util.h"

typedef struct bench_att {
    const clpdd_ops *ops;
    int n, T, Hh, hd;
    float scale;
    float *qkv, *dout, *out, *att, *datt, *lse, *delta, *dqkv;
} bench_att;

enum { CALL_FUSED_FWD, CALL_MAT_FWD, CALL_FUSED_BWD, CALL_MAT_BWD, NCALLS };
static const char *call_name[NCALLS] = {"forward", "forward", "backward", "backward"};

static void call(const bench_att *a, int which) {
    const clpdd_ops *o = a->ops;
    switch (which) {
    case CALL_FUSED_FWD: o->attention_fused(a->out, a->lse, a->qkv, a->n, a->T, a->Hh, a->hd, a->scale); break;
    case CALL_MAT_FWD: o->attention(a->out, a->att, a->qkv, a->n, a->T, a->Hh, a->hd, a->scale); break;
    case CALL_FUSED_BWD:
        o->attention_fused_backward(a->dqkv, a->delta, a->dout, a->out, a->lse, a->qkv, a->n, a->T, a->Hh, a->hd,
                                    a->scale);
        break;
    default: o->attention_backward(a->dqkv, a->datt, a->dout, a->qkv, a->att, a->n, a->T, a->Hh, a->hd, a->scale);
    }
}

/* median seconds of one call over repetitions spanning ~0.2 s (at least 5) */
static double time_call(const bench_att *a, int which) {
    double t0 = clpdd_now();
    call(a, which);
    double warm = clpdd_now() - t0;
    int reps = (int)(0.2 / (warm > 1e-6 ? warm : 1e-6));
    reps = reps < 5 ? 5 : reps > 501 ? 501 : reps;
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double s = clpdd_now();
        call(a, which);
        t[r] = clpdd_now() - s;
    }
    double m = clpdd_median(t, reps);
    free(t);
    return m;
}

static float *rand_floats(size_t n, unsigned seed) {
    float *x = malloc(sizeof(float) * n);
    srand(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
    return x;
}

static void bench_shape(FILE *md, const char *label, int n, int T, int Hh, int hd, int rounds) {
    const size_t D = (size_t)Hh * hd, tok = (size_t)n * T, rows = (size_t)n * Hh * T;
    bench_att a = {clpdd_ops_cpu(), n, T, Hh, hd, 0.125f, rand_floats(tok * 3 * D, 1), rand_floats(tok * D, 2),
                   rand_floats(tok * D, 3), rand_floats(rows * T, 4), rand_floats(rows * T, 5),
                   rand_floats(rows, 6), rand_floats(rows, 7), rand_floats(tok * 3 * D, 8)};
    call(&a, CALL_MAT_FWD), call(&a, CALL_FUSED_FWD); /* att and lse for the backwards */
    double *t[NCALLS], *ratio[2];
    for (int c = 0; c < NCALLS; c++) t[c] = malloc(sizeof(double) * (size_t)rounds);
    for (int k = 0; k < 2; k++) ratio[k] = malloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < NCALLS; c++) t[c][r] = time_call(&a, c);
        ratio[0][r] = t[CALL_FUSED_FWD][r] / t[CALL_MAT_FWD][r];
        ratio[1][r] = t[CALL_FUSED_BWD][r] / t[CALL_MAT_BWD][r];
    }
    const double flop[2] = {(double)n * Hh * 4.0 * T * T * hd, (double)n * Hh * 8.0 * T * T * hd};
    for (int pass = 0; pass < 2; pass++) {
        double lo = 1e30, hi = 0;
        for (int r = 0; r < rounds; r++) lo = ratio[pass][r] < lo ? ratio[pass][r] : lo, hi = ratio[pass][r] > hi ? ratio[pass][r] : hi;
        double rm = clpdd_median(ratio[pass], rounds), tf = clpdd_median(t[2 * pass], rounds), tm = clpdd_median(t[2 * pass + 1], rounds);
        char line[320];
        snprintf(line, sizeof line, "| %s | n=%d T=%d Hh=%d hd=%d | %s | %.3f | %.1f | %.3f | %.1f | %.2f (%.2f–%.2f) |",
                 label, n, T, Hh, hd, call_name[2 * pass], tf * 1e3, flop[pass] / tf * 1e-9, tm * 1e3,
                 flop[pass] / tm * 1e-9, rm, lo, hi);
        puts(line);
        if (md) fprintf(md, "%s\n", line);
    }
    fflush(stdout);
    for (int c = 0; c < NCALLS; c++) free(t[c]);
    free(ratio[0]), free(ratio[1]);
    free(a.qkv), free(a.dout), free(a.out), free(a.att), free(a.datt), free(a.lse), free(a.delta), free(a.dqkv);
}

int main(int argc, char **argv) {
    int rounds = 5;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--rounds R (> 0)] [--out FILE.md]\n", argv[0]);
            return 2;
        }
    }
    FILE *md = out ? fopen(out, "w") : NULL;
    if (out && !md) {
        perror(out);
        return 1;
    }
    const char *head = "| shape | dims | pass | fused ms | fused GFLOP/s | materialised ms | materialised GFLOP/s | "
                       "fused / materialised (min–max) |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |";
    if (md) {
        fprintf(md, "`%s", argv[0]);
        for (int i = 1; i < argc; i++) fprintf(md, " %s", argv[i]);
        const char *th = getenv("CLPDD_CPU_THREADS");
        fprintf(md, "` (CLPDD_CPU_THREADS=%s), %d interleaved rounds; medians over rounds\n\n%s\n", th ? th : "unset",
                rounds, head);
    }
    puts(head);
    bench_shape(md, "mnist-vit", 10, 50, 4, 64, rounds);
    bench_shape(md, "mnist-vit", 100, 50, 4, 64, rounds);
    bench_shape(md, "ViT-B", 8, 197, 12, 64, rounds);
    if (md) fclose(md);
    return 0;
}
