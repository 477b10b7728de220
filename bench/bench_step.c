/* clpdd-bench-step: the CLP-DD step on the CPU, side by side with PyTorch (tools/bench_torch.py).
 *
 *   clpdd-bench-step [--backbones mnist-vit,resnet20] [--m 10,100] [--steps S] [--rounds R]
 *                    [--n N] [--torch "CMD" | --torch none] [--conv fast|reference] [--out FILE]
 *   A backbone mnist-vit/MODE runs the vit plugin with attention = MODE (auto, fused,
 *   materialized; plain mnist-vit: the default, auto), against the same torch run: e.g.
 *   --backbones mnist-vit/materialized,mnist-vit/fused measures both in one run.
 *   clpdd-bench-step --check      resnet20: conv = fast against conv = reference on real weights
 *
 * One step, the same on both sides (run.c's loop with param = pixels, no augmentation):
 *   X_s (m, 1, 28, 28) → adapter (mnist-vit: none; resnet20: pad to 32, grey → RGB, mean/std)
 *   → backbone with tape → Φ_s (m, d); Φ_b (n, d) gathered from the real features of n
 *   Fashion-MNIST training images (extracted once, timed: images/s); Z = ridge(Φ_s, Y_s; Φ_b)
 *   with λ_eff = 0.3·tr(K)/m; L = CE(Z/0.1, y_b); backward to X_s; Adam (lr 0.01) + clamp [0, 1].
 * Each round times S steps of every (backbone, m) after 2 warm-up steps, then runs the torch
 * script for the same configuration (alternating, so both see the same machine load), and
 * measures the OpenBLAS sgemm rate (1024³); the table gives medians over all rounds' steps.
 * Threads: OpenBLAS's (2 here) and the CPU ops' pool; the torch script is given
 * torch.set_num_threads(2) (override with --threads).
 *
 * FLOPs (2 per multiply-add) count the backbone's matmuls / convolutions of the step,
 * forward + input-backward, per image (ridge, CE and elementwise passes are not counted —
 * under 1 % at these sizes):
 *   resnet20 at 32²: Σ over the 19 convs of 2·cout·cin·k²·OH·OW = 81.1 MFLOP forward, the same
 *                    again for the input gradient: 162.2 MFLOP
 *   mnist-vit:       64.6 MFLOP forward + 79.9 MFLOP backward (bench/bench_cpu.c's formulas)
 * Needs $CLPDD_MODEL_PATH (mnist-vit.safetensors, cifar10-resnet20.safetensors), the Debian
 * package dataset-fashion-mnist, and for the torch column /usr/bin/python3 with python3-torch.
 *
 * Legend: m synthetic images, n real batch, d feature dim, C = 10 classes, S steps, R rounds. */
#define _GNU_SOURCE
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/ini.h"
#include "data/dataset.h"
#include "encoder/encode.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "util/util.h"

#include "clpdd/ops.h"
#include "clpdd/plugin.h"

#define C_CLASSES 10
#define MAX_CFG 8
#define MAX_SAMPLES 4096

static double cpu_s(void) { /* this process's CPU time, all threads */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
/* which library gemm's small products went to (CLPDD_HAVE_XSMM: bench/CMakeLists.txt, as for libclpdd;
   libxsmm unless $CLPDD_SMALL_GEMM = blas, core/cpu/ops_cpu_blas.c) */
static const char *small_products(void) {
    const char *e = getenv("CLPDD_SMALL_GEMM");
#ifdef CLPDD_HAVE_XSMM
    return e && !strcmp(e, "blas") ? "OpenBLAS ($CLPDD_SMALL_GEMM=blas)" : "libxsmm";
#else
    (void)e;
    return "OpenBLAS (built without libxsmm)";
#endif
}

/* the CLPDD_* variables of this run ("CLPDD_CONV_ALGO=winograd4 …", or "none"): a table's header
   must say which arithmetic and which code paths it measured, not only the command line */
extern char **environ;
static void clpdd_environment(char *out, size_t n) {
    size_t o = 0;
    out[0] = '\0';
    for (char **e = environ; e && *e; e++)
        if (!strncmp(*e, "CLPDD_", 6) && o < n)
            o += (size_t)snprintf(out + o, n - o, "%s%s", o ? " " : "", *e);
    if (!out[0]) snprintf(out, n, "none");
}

/* perf record -D -1 --control fifo:CTL: with $CLPDD_PERF_CTL = CTL only the timed steps are sampled */
static void perf_ctl(const char *cmd) {
    const char *path = getenv("CLPDD_PERF_CTL");
    if (!path || !*path) return;
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%s\n", cmd), fclose(f);
}
static void loadavg(char *buf, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)n, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
}
static void cpu_model(char *buf, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, n, "unknown CPU");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

/* ---- FLOPs per image ---- */
static double resnet20_flop(void) { /* forward + input backward of every conv, 32² input */
    double f = 2.0 * 16 * 27 * 1024;                   /* stem 3 → 16 */
    f += 6 * 2.0 * 16 * 144 * 1024;                    /* stage 1: 6 convs 16 → 16 at 32² */
    f += 2.0 * 32 * 144 * 256 + 5 * 2.0 * 32 * 288 * 256; /* stage 2 at 16² */
    f += 2.0 * 64 * 288 * 64 + 5 * 2.0 * 64 * 576 * 64;   /* stage 3 at 8² */
    return 2.0 * f;
}
static double vit_flop(void) { /* bench_cpu.c: mnist-vit forward + input backward */
    const double T = 50, P = 49, K = 16, D = 64, Hh = 4, hd = 64, Iw = 256, F = 128, L = 6;
    double fa = 2 * T * D * 3 * Iw + 4 * Hh * T * T * hd + 2 * T * Iw * D + 4 * T * D * F;
    double ba = 2 * T * 3 * Iw * D + 8 * Hh * T * T * hd + 2 * T * D * Iw + 4 * T * F * D;
    return 2 * P * K * D + L * fa + 2 * P * D * K + L * ba;
}

/* ---- one configuration's clpdd state ---- */
typedef struct step_ctx {
    const char *backbone;
    int m, n, d;
    clpdd_host *h;
    clpdd_loaded pb, ps, pl;
    clpdd_section *sb, *ss, *sl;
    clpdd_backbone bb;
    clpdd_encoder enc;
    const clpdd_solver_vt *svt;
    const clpdd_loss_vt *lvt;
    void *solver, *loss;
    float *Xs, *dXs, *am, *av, *phis, *dphis, *Ys, *Phi, *phib, *Z, *dZ;
    int32_t *ys, *yb, *idx;
    int32_t *idx_host, *yb_host, *ylab;
    int Nreal, t;
    double extract_ips; /* real-feature extraction, images/s */
} step_ctx;

static int fail(step_ctx *s, const char *what) {
    fprintf(stderr, "clpdd-bench-step: %s: %s\n", what, s->h ? clpdd_host_error(s->h) : "");
    return -1;
}

static int open_plugin(step_ctx *s, const char *so, const char *section, const char *text, clpdd_loaded *p,
                       clpdd_section **sec) {
    clpdd_err e = {{0}};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", CLPDD_PLUGIN_BUILD_DIR, so);
    if (clpdd_plugin_open(path, p, &e)) return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), -1;
    *sec = clpdd_section_from_string(section, text, p->desc->keys, p->desc->n_keys, &e);
    if (!*sec) return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), -1;
    return 0;
}

static const char *g_conv = "fast";

/* backbone, solver, loss, data; Φ of the first Nreal training images */
static int step_setup(step_ctx *s, const char *backbone, int m, int n, int Nreal) {
    memset(s, 0, sizeof *s);
    s->backbone = backbone, s->m = m, s->n = n, s->Nreal = Nreal;
    s->h = clpdd_host_create(clpdd_ops_cpu(), 1);
    clpdd_host_set_quiet(s->h, 1);
    const clpdd_ops *ops = s->h->ops;
    const char *mp = getenv("CLPDD_MODEL_PATH");
    char cfg[4400];
    int resnet = !strcmp(backbone, "resnet20");
    if (resnet)
        snprintf(cfg, sizeof cfg, "arch = resnet20; weights = %s/cifar10-resnet20.safetensors; batch = 256; conv = %s",
                 mp ? mp : ".", g_conv);
    else
        snprintf(cfg, sizeof cfg, "variant = lucid; weights = %s/mnist-vit.safetensors; batch = 256; attention = %s",
                 mp ? mp : ".", strchr(backbone, '/') ? strchr(backbone, '/') + 1 : "auto");
    if (open_plugin(s, resnet ? "resnet.so" : "vit.so", "backbone", cfg, &s->pb, &s->sb)) return -1;
    if (open_plugin(s, "ridge.so", "solver", "lambda = 0.3; lambda_mode = relative", &s->ps, &s->ss)) return -1;
    if (open_plugin(s, "ce.so", "loss", "temperature = 0.1", &s->pl, &s->sl)) return -1;
    s->bb = (clpdd_backbone){s->h, s->pb.desc, s->pb.desc->vtable, NULL, {0}, "backbone (bench: no cache)",
                             resnet ? CLPDD_ADAPT_PAD : CLPDD_ADAPT_RESIZE, CLPDD_PRECISION_FP32};
    if (s->bb.vt->create(s->h, s->sb, &s->bb.self)) return s->bb.self = NULL, fail(s, "backbone");
    if (s->bb.vt->describe(s->bb.self, &s->bb.info)) return fail(s, "backbone");
    const int d = s->d = s->bb.info.feature_dim;
    clpdd_solver_dims dims = {m, d, C_CLASSES, n};
    s->svt = s->ps.desc->vtable;
    if (s->svt->create(s->h, s->ss, &dims, &s->solver)) return s->solver = NULL, fail(s, "ridge");
    s->lvt = s->pl.desc->vtable;
    if (s->lvt->create(s->h, s->sl, C_CLASSES, n, &s->loss)) return s->loss = NULL, fail(s, "ce");
    clpdd_err e = {{0}};
    if (clpdd_encoder_init(&s->enc, &s->bb, m, 0, 1, 28, 28, &e))
        return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), -1;

    clpdd_dataset ds;
    if (clpdd_dataset_load_idx(&ds, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "train", 0, 0, &e))
        return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), -1;
    const size_t px = 784;
    float *host = malloc(sizeof(float) * px * (size_t)(Nreal > m ? Nreal : m));
    const clpdd_host *h = s->h;
#define DA(p, cnt) (p) = h->alloc(h, (cnt) * sizeof *(p))
    DA(s->Xs, (size_t)m * px), DA(s->dXs, (size_t)m * px), DA(s->am, (size_t)m * px), DA(s->av, (size_t)m * px);
    DA(s->phis, (size_t)m * d), DA(s->dphis, (size_t)m * d), DA(s->Ys, (size_t)m * C_CLASSES), DA(s->ys, (size_t)m);
    DA(s->Phi, (size_t)Nreal * d), DA(s->phib, (size_t)n * d), DA(s->Z, (size_t)n * C_CLASSES);
    DA(s->dZ, (size_t)n * C_CLASSES), DA(s->yb, (size_t)n), DA(s->idx, (size_t)n);
#undef DA
    /* real features: the adapter + backbone inference over Nreal images (timed) */
    clpdd_adapter ad;
    if (clpdd_adapter_init_mode(&ad, h, 1, 28, 28, &s->bb.info, 256, s->bb.adapt, &e))
        return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), -1;
    size_t bpx = (size_t)s->bb.info.channels * s->bb.info.height * s->bb.info.width;
    float *xin = h->alloc(h, sizeof(float) * 256 * px), *xad = h->alloc(h, sizeof(float) * 256 * bpx);
    clpdd_dataset_to_float(&ds, 0, Nreal, host);
    double t0 = clpdd_now();
    for (int i = 0; i < Nreal; i += 256) {
        int b = Nreal - i < 256 ? Nreal - i : 256;
        ops->to_device(xin, host + (size_t)i * px, sizeof(float) * (size_t)b * px);
        clpdd_adapter_forward(&ad, xad, xin, b);
        if (s->bb.vt->forward(s->bb.self, s->Phi + (size_t)i * d, xad, b, NULL)) return fail(s, "backbone");
    }
    s->extract_ips = Nreal / (clpdd_now() - t0);
    h->free(h, xin), h->free(h, xad);
    clpdd_adapter_free(&ad);
    s->ylab = malloc(sizeof(int32_t) * (size_t)Nreal);
    for (int i = 0; i < Nreal; i++) s->ylab[i] = ds.labels[i];
    /* X_s: the first image of each class, ipc = m/10 (class-major) */
    int32_t *ys = malloc(sizeof(int32_t) * (size_t)m);
    int *pick = malloc(sizeof(int) * (size_t)m), *seen = calloc(C_CLASSES, sizeof(int));
    for (int i = 0, k = 0; i < ds.n && k < m; i++) {
        int c = ds.labels[i], ipc = m / C_CLASSES;
        if (seen[c] < ipc) pick[c * ipc + seen[c]++] = i, k++;
    }
    for (int i = 0; i < m; i++) ys[i] = i / (m / C_CLASSES);
    clpdd_dataset_gather_float(&ds, pick, m, host);
    ops->to_device(s->Xs, host, sizeof(float) * (size_t)m * px);
    ops->to_device(s->ys, ys, sizeof(int32_t) * (size_t)m);
    ops->onehot(s->Ys, s->ys, m, C_CLASSES, 1.0f, 0.0f);
    ops->fill(s->am, 0, (size_t)m * px), ops->fill(s->av, 0, (size_t)m * px);
    free(ys), free(pick), free(seen), free(host);
    clpdd_dataset_free(&ds);
    s->idx_host = malloc(sizeof(int32_t) * (size_t)n), s->yb_host = malloc(sizeof(int32_t) * (size_t)n);
    return 0;
}

/* one CLP-DD step; returns the loss */
static float step_run(step_ctx *s) {
    const clpdd_ops *ops = s->h->ops;
    const int m = s->m, n = s->n;
    /* the real batch: a fresh deterministic stride through the cached features */
    for (int i = 0; i < n; i++) {
        int j = (int)(((long long)(s->t + 1) * 7919 + (long long)i * 104729) % s->Nreal);
        s->idx_host[i] = j, s->yb_host[i] = s->ylab[j];
    }
    ops->to_device(s->idx, s->idx_host, sizeof(int32_t) * (size_t)n);
    ops->to_device(s->yb, s->yb_host, sizeof(int32_t) * (size_t)n);
    ops->gather_rows(s->phib, s->Phi, s->idx, (size_t)n, (size_t)s->d);
    clpdd_err e = {{0}};
    float L = NAN;
    if (clpdd_encoder_forward(&s->enc, s->phis, s->Xs, &e) ||
        s->svt->forward(s->solver, s->Z, s->phis, s->Ys, s->phib, n) ||
        s->lvt->forward(s->loss, &L, s->dZ, s->Z, s->yb, n) || s->svt->backward(s->solver, s->dphis, NULL, s->dZ) ||
        clpdd_encoder_backward(&s->enc, s->dXs, s->dphis, s->Xs, &e)) {
        fprintf(stderr, "clpdd-bench-step: step failed: %s %s\n", e.msg, clpdd_host_error(s->h));
        exit(1);
    }
    ops->adam(s->Xs, s->am, s->av, s->dXs, (size_t)m * 784, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, ++s->t);
    ops->clamp(s->Xs, 0.0f, 1.0f, (size_t)m * 784);
    return L;
}

static void step_free(step_ctx *s) {
    if (s->enc.bb) clpdd_encoder_free(&s->enc);
    if (s->loss) s->lvt->destroy(s->loss);
    if (s->solver) s->svt->destroy(s->solver);
    if (s->bb.self) s->bb.vt->destroy(s->bb.self);
    if (s->sb) clpdd_section_destroy(s->sb);
    if (s->ss) clpdd_section_destroy(s->ss);
    if (s->sl) clpdd_section_destroy(s->sl);
    if (s->h) clpdd_host_destroy(s->h);
    if (s->pb.desc) clpdd_plugin_close(&s->pb);
    if (s->ps.desc) clpdd_plugin_close(&s->ps);
    if (s->pl.desc) clpdd_plugin_close(&s->pl);
    free(s->idx_host), free(s->yb_host), free(s->ylab);
}

/* ---- the sgemm rate ---- */
static double sgemm_gflops(void) {
    const int N = 1024;
    float *a = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * N * N), *c = malloc(sizeof(float) * N * N);
    for (int i = 0; i < N * N; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t[9];
    for (int r = 0; r < 9; r++) {
        double t0 = clpdd_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        t[r] = clpdd_now() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * N * N * N / clpdd_median(t, 9) * 1e-9;
}

/* ---- the torch side: one process per (round, config), parsing its "RESULT" line ---- */
typedef struct torch_res {
    double ms[MAX_SAMPLES];
    int nms;
    double ips; /* extraction images/s (last round) */
    char version[64];
} torch_res;

static int run_torch(const char *cmd, const char *backbone, int m, int n, int steps, int threads, torch_res *t) {
    char line[65536], full[8192];
    const int base = (int)strcspn(backbone, "/"); /* mnist-vit/MODE: torch runs mnist-vit */
    snprintf(full, sizeof full, "%s --backbone %.*s --m %d --n %d --steps %d --threads %d", cmd, base, backbone, m, n,
             steps, threads);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "RESULT ", 7)) continue;
        char *tok = strtok(line + 7, " \n");
        while (tok) {
            if (!strncmp(tok, "ms=", 3)) {
                for (char *q = tok + 3; *q && t->nms < MAX_SAMPLES;) {
                    t->ms[t->nms++] = strtod(q, &q);
                    if (*q == ',') q++;
                    else break;
                }
                ok = 1;
            } else if (!strncmp(tok, "extract_ips=", 12)) {
                t->ips = atof(tok + 12);
            } else if (!strncmp(tok, "torch=", 6)) {
                snprintf(t->version, sizeof t->version, "%s", tok + 6);
            }
            tok = strtok(NULL, " \n");
        }
    }
    int rc = pclose(p);
    if (!ok || rc) fprintf(stderr, "clpdd-bench-step: torch run failed (exit %d): %s\n", rc, full);
    return ok ? 0 : -1;
}

/* ---- --check: resnet20 conv = fast against conv = reference on real weights and images ---- */
static int check_conv(int m) {
    step_ctx a, b;
    g_conv = "fast";
    if (step_setup(&a, "resnet20", m, 256, 256)) return 1;
    g_conv = "reference";
    if (step_setup(&b, "resnet20", m, 256, 256)) return 1;
    const int d = a.d;
    float *Fa = malloc(sizeof(float) * 256 * d), *Fb = malloc(sizeof(float) * 256 * d);
    a.h->ops->to_host(Fa, a.Phi, sizeof(float) * 256 * d), b.h->ops->to_host(Fb, b.Phi, sizeof(float) * 256 * d);
    double fmax = 0, fref = 0;
    for (int i = 0; i < 256 * d; i++) {
        fmax = fmax > fabs(Fa[i] - Fb[i]) ? fmax : fabs(Fa[i] - Fb[i]);
        fref = fref > fabs(Fb[i]) ? fref : fabs(Fb[i]);
    }
    /* the input gradient of one step's loss (both from the same X_s, real batch and tape) */
    step_run(&a), step_run(&b);
    const size_t N = (size_t)m * 784;
    float *Ga = malloc(sizeof(float) * N), *Gb = malloc(sizeof(float) * N);
    a.h->ops->to_host(Ga, a.dXs, sizeof(float) * N), b.h->ops->to_host(Gb, b.dXs, sizeof(float) * N);
    double gmax = 0, gref = 0, num = 0, den = 0;
    for (size_t i = 0; i < N; i++) {
        double e = fabs(Ga[i] - Gb[i]);
        gmax = gmax > e ? gmax : e;
        gref = gref > fabs(Gb[i]) ? gref : fabs(Gb[i]);
        num += e * e, den += (double)Gb[i] * Gb[i];
    }
    printf("resnet20 conv = fast vs reference, real weights, Fashion-MNIST padded to 32:\n");
    printf("  features of 256 real images: max abs err %.3g, max |ref| %.3g, max abs err / max |ref| %.3g\n", fmax,
           fref, fmax / fref);
    printf("  dL/dX_s (m = %d, one step): max abs err %.3g, max |ref| %.3g, ratio %.3g, ‖Δ‖₂/‖ref‖₂ %.3g\n", m, gmax,
           gref, gmax / gref, sqrt(num / den));
    free(Fa), free(Fb), free(Ga), free(Gb);
    step_free(&a), step_free(&b);
    return 0;
}

static int parse_list(const char *s, char out[][32], int max) {
    int k = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok(buf, ","); t && k < max; t = strtok(NULL, ",")) snprintf(out[k++], 32, "%s", t);
    return k;
}

int main(int argc, char **argv) {
    const char *backbones = "mnist-vit,resnet20", *ms = "10,100", *out = NULL;
    const char *torch = "/usr/bin/python3 " CLPDD_SOURCE_DIR "/tools/bench_torch.py";
    int steps = 20, rounds = 3, n = 2048, threads = 2, check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check")) { check = 1; continue; }
        if (!v) { fprintf(stderr, "clpdd-bench-step: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--backbones")) backbones = v;
        else if (!strcmp(a, "--m")) ms = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--n")) n = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--torch")) torch = v;
        else if (!strcmp(a, "--conv")) g_conv = v;
        else if (!strcmp(a, "--out")) out = v;
        else { fprintf(stderr, "clpdd-bench-step: unknown option %s (see the comment at the top of bench_step.c)\n", a); return 2; }
        i++;
    }
    if (check) return check_conv(10) || check_conv(100);
    if (steps < 1 || rounds < 1 || steps * rounds > MAX_SAMPLES || n < 1) {
        fprintf(stderr, "clpdd-bench-step: need steps ≥ 1, rounds ≥ 1, steps·rounds ≤ %d, n ≥ 1\n", MAX_SAMPLES);
        return 2;
    }
    int use_torch = strcmp(torch, "none") != 0;
    char bbl[MAX_CFG][32], ml[MAX_CFG][32];
    int nb = parse_list(backbones, bbl, MAX_CFG), nm = parse_list(ms, ml, MAX_CFG);
    static double cms[MAX_CFG * MAX_CFG][MAX_SAMPLES];
    static torch_res tr[MAX_CFG * MAX_CFG];
    int cn[MAX_CFG * MAX_CFG] = {0};
    double cips[MAX_CFG * MAX_CFG] = {0}, gem[64];
    int ngem = 0;
    char load0[128], load1[128], cpu[256];
    loadavg(load0, sizeof load0);
    cpu_model(cpu, sizeof cpu);
    const int Nreal = n > 4096 ? n : 4096;
    printf("clpdd-bench-step: %s; OpenBLAS %s, %d threads; load average %s\n", cpu, openblas_get_config(),
           openblas_get_num_threads(), load0);
    for (int r = 0; r < rounds; r++) {
        gem[ngem++] = sgemm_gflops();
        for (int b = 0; b < nb; b++)
            for (int q = 0; q < nm; q++) {
                int c = b * nm + q, m = atoi(ml[q]);
                step_ctx s;
                if (step_setup(&s, bbl[b], m, n, Nreal)) return 1;
                cips[c] = s.extract_ips;
                step_run(&s), step_run(&s); /* warm-up */
                double tmp[MAX_SAMPLES], cpu[MAX_SAMPLES];
                perf_ctl("enable");
                for (int k = 0; k < steps; k++) {
                    double t0 = clpdd_now(), c0 = cpu_s();
                    step_run(&s);
                    cms[c][cn[c]++] = (clpdd_now() - t0) * 1e3;
                    cpu[k] = (cpu_s() - c0) * 1e3;
                }
                perf_ctl("disable");
                step_free(&s);
                memcpy(tmp, cms[c] + cn[c] - steps, sizeof(double) * steps);
                printf("round %d  %-9s m=%-4d clpdd %8.2f ms (CPU time %.2f ms)", r + 1, bbl[b], m, clpdd_median(tmp, steps),
                       clpdd_median(cpu, steps));
                if (use_torch) {
                    int before = tr[c].nms;
                    if (run_torch(torch, bbl[b], m, n, steps, threads, &tr[c]) == 0) {
                        memcpy(tmp, tr[c].ms + before, sizeof(double) * (tr[c].nms - before));
                        printf("  torch %8.2f ms", clpdd_median(tmp, tr[c].nms - before));
                    }
                }
                printf("\n");
                fflush(stdout);
            }
    }
    gem[ngem++] = sgemm_gflops();
    loadavg(load1, sizeof load1);
    double gf = clpdd_median(gem, ngem);
    char table[16384];
    int o = snprintf(table, sizeof table,
                     "| backbone | m | clpdd ms/step | PyTorch ms/step | clpdd / PyTorch | clpdd GFLOP/s | PyTorch GFLOP/s "
                     "| clpdd / sgemm rate | clpdd extraction img/s | PyTorch extraction img/s |\n"
                     "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int b = 0; b < nb; b++)
        for (int q = 0; q < nm; q++) {
            int c = b * nm + q, m = atoi(ml[q]);
            double fl = m * (!strcmp(bbl[b], "resnet20") ? resnet20_flop() : vit_flop());
            double a = clpdd_median(cms[c], cn[c]), t = use_torch ? clpdd_median(tr[c].ms, tr[c].nms) : NAN;
            o += snprintf(table + o, sizeof table - o, "| %s | %d | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f | %.0f | %.0f |\n",
                          bbl[b], m, a, t, a / t, fl / a * 1e-6, fl / t * 1e-6, fl / a * 1e-6 / gf, cips[c],
                          use_torch ? tr[c].ips : NAN);
        }
    printf("\n%s\nOpenBLAS sgemm 1024³: %.1f GFLOP/s (median of %d, measured between the rounds). Load average before: "
           "%s; after: %s.\n",
           table, gf, ngem, load0, load1);
    if (out) {
        char env[1024];
        clpdd_environment(env, sizeof env);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len); /* written atomically below: never a half table under its name */
        if (!f) return fprintf(stderr, "clpdd-bench-step: out of memory\n"), 1;
        fprintf(f, "# CLP-DD step on the CPU: clpdd against PyTorch\n\nCommand:\n\n```\n");
        for (int i = 0; i < argc; i++) fprintf(f, "%s%s", argv[i], i + 1 < argc ? " " : "\n");
        fprintf(f, "```\n\nMachine: %s, %ld CPUs online. OpenBLAS %s, %d threads; PyTorch %s, %d threads. "
                   "Real batch n = %d, %d steps × %d rounds per configuration (after 2 warm-up steps), medians over "
                   "all steps; clpdd and PyTorch alternate per configuration. Load average before: %s; after: %s. "
                   "Small products (core/cpu/ops_cpu_blas.c): %s. Environment: %s.\n\n",
                cpu, sysconf(_SC_NPROCESSORS_ONLN), openblas_get_config(), openblas_get_num_threads(),
                use_torch && tr[0].version[0] ? tr[0].version : "-", threads, n, steps, rounds, load0, load1,
                small_products(), env);
        fprintf(f, "%s\nGFLOP/s count the backbone's forward + input-backward matmuls/convolutions (bench/bench_step.c: "
                   "resnet20 162.2 MFLOP, mnist-vit 144.5 MFLOP per image). OpenBLAS sgemm 1024³ in the same run: "
                   "%.1f GFLOP/s.\n", table, gf);
        fclose(f);
        clpdd_err e;
        const int rc = clpdd_write_file_atomic(out, text, len, &e);
        free(text);
        if (rc) return fprintf(stderr, "clpdd-bench-step: %s\n", e.msg), 1;
    }
    return 0;
}
