/* clpdd-bench: CPU performance table — OpenBLAS sgemm, the attention op, and the mnist-vit
 * backbone (inference throughput; the taped forward + input backward of a distillation step).
 *
 *   clpdd-bench [--out FILE] [--reps N] [--only gemm|attention|model]
 *
 * Every row is the median of at least N repetitions (default 7; more for short rows, to span
 * ~1.5 s) after one warm-up call; nothing is asserted (timings depend on the machine and its
 * load, which is printed alongside). With --out the same table is also written as Markdown,
 * headed by the command that made it. The CPU ops' own threads: $CLPDD_CPU_THREADS, else
 * every CPU (core/cpu/threadpool.h).
 * The model rows need $CLPDD_MODEL_PATH/mnist-vit.safetensors and the built vit.so
 * (CLPDD_PLUGIN_BUILD_DIR); without them they are skipped with a note.
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width, I = Hh·hd, D model width,
 * F MLP width, L blocks, P patches, K patch length, m synthetic images of a distillation step.
 *
 * FLOP counts (2 per multiply-add, matmuls and attention only; LayerNorm, softmax, bias,
 * activation and copies are not counted — they are O(n·T·(D + F + Hh·T)), a few % at most):
 *   gemm M×N×K                 2·M·N·K
 *   attention forward          n·Hh·4·T²·hd      (S = q·kᵀ and P·v: 2·T²·hd each)
 *   attention backward         n·Hh·8·T²·hd      (dP = dO·vᵀ, dv = Pᵀ·dO, dq = dS·k, dk = dSᵀ·q)
 *   vit forward, per image     2·P·K·D + L·(2·T·D·3I + 4·Hh·T²·hd + 2·T·I·D + 4·T·D·F)
 *   vit input backward, image  2·P·D·K + L·(2·T·3I·D + 8·Hh·T²·hd + 2·T·D·I + 4·T·F·D)
 * (mnist-vit: T = 50, P = 49, K = 16, D = 64, Hh = 4, hd = 64, I = 256, F = 128, L = 6:
 *  64.6 MFLOP forward, 79.9 MFLOP backward per image.) */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/ini.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "util/util.h"

#include "clpdd/ops.h"
#include "clpdd/plugin.h"

/* ---- timing ---- */

typedef void (*bench_fn)(void *ctx);

static int g_reps = 7;

/* median seconds of one call to fn after one warm-up: at least g_reps repetitions, more (up to
   201) until they span ~1.5 s, so that a few seconds of load from another process move the
   median little; a call shorter than ~20 ms is repeated inside a repetition (inner count fixed
   by the warm-up) */
static double time_median(bench_fn fn, void *ctx) {
    double t0 = clpdd_now();
    fn(ctx);
    double warm = clpdd_now() - t0;
    if (warm < 1e-7) warm = 1e-7;
    int inner = warm < 0.02 ? (int)(0.02 / warm) + 1 : 1;
    int reps = (int)(1.5 / (warm * inner));
    reps = reps < g_reps ? g_reps : reps > 201 ? 201 : reps;
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double s = clpdd_now();
        for (int i = 0; i < inner; i++) fn(ctx);
        t[r] = (clpdd_now() - s) / inner;
    }
    double med = clpdd_median(t, reps);
    free(t);
    return med;
}

/* ---- the table ---- */

typedef struct row {
    char what[96], shape[64], extra[64];
    double ms, gflop, gflops, ratio; /* ratio: gflops / the large-sgemm rate (0: none) */
} row;

static row g_rows[64];
static int g_nrows;
static double g_peak; /* GFLOP/s of the large sgemm */

static void add_row(const char *what, const char *shape, double sec, double flop, const char *extra) {
    row *r = &g_rows[g_nrows++];
    snprintf(r->what, sizeof r->what, "%s", what);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    snprintf(r->extra, sizeof r->extra, "%s", extra ? extra : "");
    r->ms = sec * 1e3;
    r->gflop = flop * 1e-9;
    r->gflops = flop / sec * 1e-9;
    r->ratio = g_peak > 0 ? r->gflops / g_peak : 0;
    printf("%-44s %-26s %10.3f ms %9.4f GFLOP %8.2f GFLOP/s %6.1f%%  %s\n", r->what, r->shape, r->ms, r->gflop,
           r->gflops, 100 * r->ratio, r->extra);
    fflush(stdout);
}

static void section(const char *title) {
    row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->what, sizeof r->what, "%s", title);
    r->ms = -1;
    printf("\n== %s ==\n", title);
}

/* ---- (1) sgemm ---- */

typedef struct gemm_ctx {
    int tA, tB, M, N, K;
    float *A, *B, *C;
} gemm_ctx;

static void run_gemm(void *p) {
    gemm_ctx *g = p;
    int lda = g->tA ? g->M : g->K, ldb = g->tB ? g->K : g->N;
    cblas_sgemm(CblasRowMajor, g->tA ? CblasTrans : CblasNoTrans, g->tB ? CblasTrans : CblasNoTrans, g->M, g->N,
                g->K, 1.0f, g->A, lda, g->B, ldb, 0.0f, g->C, g->N);
}

static float *rand_floats(size_t count, unsigned seed) {
    float *x = malloc(sizeof(float) * count);
    if (!x) {
        fprintf(stderr, "clpdd-bench: out of memory\n");
        exit(1);
    }
    uint64_t s = 0x9e3779b97f4a7c15ULL * (seed + 1);
    for (size_t i = 0; i < count; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 40) / (double)(1ULL << 24) - 0.5);
    }
    return x;
}

static double bench_gemm(const char *what, int tA, int tB, int M, int N, int K) {
    gemm_ctx g = {tA, tB, M, N, K, rand_floats((size_t)M * K, 1), rand_floats((size_t)K * N, 2),
                  rand_floats((size_t)M * N, 3)};
    double s = time_median(run_gemm, &g);
    char shape[64];
    snprintf(shape, sizeof shape, "%s%s %d×%d×%d", tA ? "T" : "N", tB ? "T" : "N", M, N, K);
    double flop = 2.0 * M * N * K;
    if (!g_peak) g_peak = flop / s * 1e-9;
    add_row(what, shape, s, flop, NULL);
    free(g.A), free(g.B), free(g.C);
    return s;
}

/* ---- (2) the attention op ---- */

typedef struct att_ctx {
    const clpdd_ops *ops;
    int n, T, Hh, hd;
    float scale;
    float *out, *att, *qkv, *dout, *dqkv, *datt;
} att_ctx;

static void run_att_fwd(void *p) {
    att_ctx *a = p;
    a->ops->attention(a->out, a->att, a->qkv, a->n, a->T, a->Hh, a->hd, a->scale);
}
static void run_att_bwd(void *p) {
    att_ctx *a = p;
    a->ops->attention_backward(a->dqkv, a->datt, a->dout, a->qkv, a->att, a->n, a->T, a->Hh, a->hd, a->scale);
}

static void bench_attention(int n, int T, int Hh, int hd) {
    att_ctx a = {clpdd_ops_cpu(), n, T, Hh, hd, 0.125f, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t D = (size_t)Hh * hd, tok = (size_t)n * T, tt = (size_t)n * Hh * T * T;
    a.qkv = rand_floats(tok * 3 * D, 4);
    a.dout = rand_floats(tok * D, 5);
    a.out = rand_floats(tok * D, 6);
    a.dqkv = rand_floats(tok * 3 * D, 7);
    a.att = rand_floats(tt, 8);
    a.datt = rand_floats(tt, 9);
    run_att_fwd(&a); /* att filled before the backward is timed */
    char what[96], shape[64];
    snprintf(shape, sizeof shape, "n=%d T=%d Hh=%d hd=%d", n, T, Hh, hd);
    double pairs = (double)n * Hh, t2h = (double)T * T * hd;
    snprintf(what, sizeof what, "attention forward");
    add_row(what, shape, time_median(run_att_fwd, &a), pairs * 4 * t2h, NULL);
    snprintf(what, sizeof what, "attention backward");
    add_row(what, shape, time_median(run_att_bwd, &a), pairs * 8 * t2h, NULL);
    free(a.qkv), free(a.dout), free(a.out), free(a.dqkv), free(a.att), free(a.datt);
}

/* ---- (3) the mnist-vit backbone ---- */

typedef struct vit_ctx {
    const clpdd_backbone_vt *vt;
    void *bb, *tape;
    int n;
    float *images, *features, *dfeatures, *dimages;
} vit_ctx;

static void run_vit_infer(void *p) {
    vit_ctx *v = p;
    v->vt->forward(v->bb, v->features, v->images, v->n, NULL);
}
static void run_vit_fwd_tape(void *p) {
    vit_ctx *v = p;
    v->vt->forward(v->bb, v->features, v->images, v->n, v->tape);
}
static void run_vit_fwd_bwd(void *p) {
    vit_ctx *v = p;
    v->vt->forward(v->bb, v->features, v->images, v->n, v->tape);
    v->vt->backward(v->bb, v->dimages, v->dfeatures, v->n, v->tape);
}

/* the mnist-vit defaults of the vit plugin (lucid): see the FLOP formulas at the top */
enum { MV_T = 50, MV_P = 49, MV_K = 16, MV_D = 64, MV_HH = 4, MV_HD = 64, MV_I = 256, MV_F = 128, MV_L = 6 };

static double vit_fwd_flop(void) {
    double T = MV_T, a = 2.0 * T * MV_D * 3 * MV_I + 4.0 * MV_HH * T * T * MV_HD + 2.0 * T * MV_I * MV_D +
                         4.0 * T * MV_D * MV_F;
    return 2.0 * MV_P * MV_K * MV_D + MV_L * a;
}
static double vit_bwd_flop(void) {
    double T = MV_T, a = 2.0 * T * 3 * MV_I * MV_D + 8.0 * MV_HH * T * T * MV_HD + 2.0 * T * MV_D * MV_I +
                         4.0 * T * MV_F * MV_D;
    return 2.0 * MV_P * MV_D * MV_K + MV_L * a;
}

static void bench_vit(void) {
    const char *mp = getenv("CLPDD_MODEL_PATH");
    char model[4096];
    if (!mp || !*mp) {
        printf("(skipped: set CLPDD_MODEL_PATH to the folder holding mnist-vit.safetensors)\n");
        return;
    }
    snprintf(model, sizeof model, "%s/mnist-vit.safetensors", mp);
    clpdd_loaded pl;
    clpdd_err e = {{0}};
    if (clpdd_plugin_open(CLPDD_PLUGIN_BUILD_DIR "/vit.so", &pl, &e)) {
        printf("(skipped: %s)\n", e.msg);
        return;
    }
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 1);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "weights = %s; batch = 256", model);
    clpdd_section *s = clpdd_section_from_string("backbone", cfg, pl.desc->keys, pl.desc->n_keys, &e);
    vit_ctx v = {pl.desc->vtable, NULL, NULL, 0, NULL, NULL, NULL, NULL};
    if (!s || v.vt->create(h, s, &v.bb)) {
        printf("(skipped: %s%s)\n", s ? "" : e.msg, s ? clpdd_host_error(h) : "");
        if (s) clpdd_section_destroy(s);
        clpdd_host_destroy(h);
        clpdd_plugin_close(&pl);
        return;
    }
    clpdd_section_destroy(s);
    clpdd_backbone_info info;
    v.vt->describe(v.bb, &info);
    const int img = info.channels * info.height * info.width, d = info.feature_dim;
    if (img != 784 || d != MV_D) printf("(warning: not the mnist-vit shape; FLOP counts assume it)\n");

    const int NB = 256, M = 10;
    float *x = rand_floats((size_t)NB * img, 10), *g = rand_floats((size_t)NB * d, 11);
    v.images = h->alloc(h, sizeof(float) * (size_t)NB * img);
    v.features = h->alloc(h, sizeof(float) * (size_t)NB * d);
    v.dfeatures = h->alloc(h, sizeof(float) * (size_t)NB * d);
    v.dimages = h->alloc(h, sizeof(float) * (size_t)NB * img);
    h->ops->to_device(v.images, x, sizeof(float) * (size_t)NB * img);
    h->ops->to_device(v.dfeatures, g, sizeof(float) * (size_t)NB * d);

    char extra[64], shape[64];
    v.n = NB;
    double sec = time_median(run_vit_infer, &v);
    snprintf(extra, sizeof extra, "%.0f images/s", NB / sec);
    snprintf(shape, sizeof shape, "n=%d (batch 256)", NB);
    add_row("mnist-vit inference forward", shape, sec, NB * vit_fwd_flop(), extra);

    if (v.vt->tape_create(v.bb, M, &v.tape) == 0) {
        v.n = M;
        snprintf(shape, sizeof shape, "m=%d, taped", M);
        double sf = time_median(run_vit_fwd_tape, &v);
        add_row("mnist-vit forward (tape)", shape, sf, M * vit_fwd_flop(), NULL);
        double sfb = time_median(run_vit_fwd_bwd, &v);
        snprintf(extra, sizeof extra, "backward ≈ %.3f ms", (sfb - sf) * 1e3);
        add_row("mnist-vit forward + input backward", shape, sfb, M * (vit_fwd_flop() + vit_bwd_flop()), extra);
        v.vt->tape_destroy(v.bb, v.tape);
    }
    free(x), free(g);
    v.vt->destroy(v.bb);
    clpdd_host_destroy(h);
    clpdd_plugin_close(&pl);
}

/* ---- output ---- */

static void loadavg(char *buf, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)n, f)) buf[0] = 0;
        fclose(f);
    }
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' ')) buf[--l] = 0;
}

/* the CPU ops' pool size as threadpool.c chooses it */
static const char *pool_threads(void) {
    static char buf[64];
    const char *env = getenv("CLPDD_CPU_THREADS");
    if (env && *env) snprintf(buf, sizeof buf, "%s (CLPDD_CPU_THREADS)", env);
    else snprintf(buf, sizeof buf, "%ld (every CPU)", sysconf(_SC_NPROCESSORS_ONLN));
    return buf;
}

static int write_markdown(const char *path, int argc, char **argv, const char *load0, const char *load1) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    const char *mp = getenv("CLPDD_MODEL_PATH");
    fprintf(f, "# clpdd CPU benchmark\n\nCommand:\n\n```\n");
    if (mp) fprintf(f, "CLPDD_MODEL_PATH=%s ", mp);
    for (int i = 0; i < argc; i++) fprintf(f, "%s%s", i ? " " : "", argv[i]);
    fprintf(f, "\n```\n\n");
    fprintf(f, "OpenBLAS: %s, %d threads. Median of at least %d repetitions (spanning ~1.5 s) after a warm-up. ", openblas_get_config(),
            openblas_get_num_threads(), g_reps);
    fprintf(f, "CPU ops threads: %s. Load average before: %s; after: %s.\n\n", pool_threads(), load0, load1);
    fprintf(f, "FLOPs count matmuls and attention only (formulas in bench/bench_cpu.c); \"of peak\" is "
               "the achieved rate over the large-sgemm rate.\n\n");
    for (int i = 0; i < g_nrows; i++) {
        row *r = &g_rows[i];
        if (r->ms < 0) {
            fprintf(f, "%s### %s\n\n| what | shape | ms | GFLOP | GFLOP/s | of peak | note |\n"
                       "|---|---|---:|---:|---:|---:|---|\n",
                    i ? "\n" : "", r->what);
            continue;
        }
        fprintf(f, "| %s | %s | %.3f | %.4f | %.2f | %.1f%% | %s |\n", r->what, r->shape, r->ms, r->gflop,
                r->gflops, 100 * r->ratio, r->extra);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    const char *out = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--out FILE.md] [--reps N] [--only gemm|attention|model]\n", argv[0]);
            return 2;
        }
    }
    if (g_reps < 1) g_reps = 1;
    char load0[128], load1[128];
    loadavg(load0, sizeof load0);
    printf("clpdd-bench: OpenBLAS %s, %d threads; CPU ops threads %s; median of ≥ %d; load average %s\n",
           openblas_get_config(), openblas_get_num_threads(), pool_threads(), g_reps, load0);

    /* the large sgemm always runs: it is the reference rate of every row */
    section("OpenBLAS sgemm");
    bench_gemm("sgemm large square", 0, 0, 1024, 1024, 1024);
    if (!only || !strcmp(only, "gemm")) {
    /* the ViT's linear layers over n·T token rows, y = x·Wᵀ (NT), and their input backward (NN) */
    const int tok[2] = {256 * MV_T, 10 * MV_T};
    for (int i = 0; i < 2; i++) {
        char w[96];
        int NT = tok[i];
        snprintf(w, sizeof w, "vit qkv  x·Wqkvᵀ (%d tokens)", NT);
        bench_gemm(w, 0, 1, NT, 3 * MV_I, MV_D);
        snprintf(w, sizeof w, "vit proj ao·Woᵀ (%d tokens)", NT);
        bench_gemm(w, 0, 1, NT, MV_D, MV_I);
        snprintf(w, sizeof w, "vit fc1  h·W1ᵀ (%d tokens)", NT);
        bench_gemm(w, 0, 1, NT, MV_F, MV_D);
        snprintf(w, sizeof w, "vit fc2  r·W2ᵀ (%d tokens)", NT);
        bench_gemm(w, 0, 1, NT, MV_D, MV_F);
        snprintf(w, sizeof w, "vit bwd dqkv·Wqkv (%d tokens)", NT);
        bench_gemm(w, 0, 0, NT, MV_D, 3 * MV_I);
    }
    bench_gemm("attention S = q·kᵀ, one (image, head)", 0, 1, MV_T, MV_T, MV_HD);
    bench_gemm("attention P·v, one (image, head)", 0, 0, MV_T, MV_HD, MV_T);
    }

    if (!only || !strcmp(only, "attention")) {
        section("attention op (clpdd_ops_cpu)");
        bench_attention(10, MV_T, MV_HH, MV_HD);
        bench_attention(256, MV_T, MV_HH, MV_HD);
    }

    if (!only || !strcmp(only, "model")) {
        section("mnist-vit backbone (vit.so, CPU ops)");
        bench_vit();
    }

    loadavg(load1, sizeof load1);
    printf("\nload average after: %s\n", load1);
    if (out && write_markdown(out, argc, argv, load0, load1)) return 1;
    return 0;
}
