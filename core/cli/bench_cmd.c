/* `clpdd bench`: the cost of one distillation step, per method, at a backbone shape, m, n, C and
 * precision, on random weights and random images (no data, no checkpoint): the paper's cost
 * claims (CLP-DD ~14x faster than LGM with DSA, < 1/8 of its GPU memory) measured on the
 * machine at hand.
 *
 * Each row is a real run of the distillation step (core/bench/bench.h, clpdd_run_bench): the same encoder, solver,
 * loss, augmentation and Adam code as `clpdd run`, timed after warm-up steps, synchronised per
 * step; FLOPs are counted on the op table (core/bench/flop_count.h), peak memory is the high-water
 * mark of the run's tensors, and each precision's GEMM rate is measured in the same process so
 * that the achieved rate reads as a fraction of what the device's matrix units can do. */
#define _GNU_SOURCE
#include "cli/bench_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/startup.h"
#include "config/experiment.h"
#include "bench/bench.h"
#include "bench/flop_count.h"
#include "plugin/loader.h"
#include "numerics/precision.h"
#include "distill/run.h"
#include "util/util.h"

/* ---- presets: the paper's shapes (experiments/paper/), and scaled-down twins for a CPU ---- */

/* ViT-B/16 (MoCo v3's architecture; any ViT-B/16 costs the same) at 224 px, fed 256 px
   synthetic images through LGM's centre crop; "mini": a 4-block, 64-wide ViT at 32 px fed 36 px */
static const char *const vitb_backbone = "[backbone]\nname = vit\nvariant = mocov3\nweights = random\n";
static const char *const mini_backbone = "[backbone]\nname = vit\nvariant = vit\nweights = random\nimage_size = 32\n"
                                         "patch = 8\ndim = 64\ndepth = 4\nheads = 2\n";

/* the CIFAR ResNet-20 at 32 px: the batched convolution (docs/design.md §4) */
static const char *const resnet20_backbone = "[backbone]\nname = resnet\narch = resnet20\nweights = random\n";

typedef struct preset {
    const char *name, *what;
    const char *backbone; /* its [backbone] section */
    int classes, ipc, real_batch, augs, side;
} preset;

static const preset presets[] = {
    {"imagenet100-ipc1", "ImageNet-100, IPC 1: ViT-B/16, 256 px synthetic, m = 100, n = 1000, LGM+DSA 10 augs", NULL, 100, 1, 1000, 10, 256},
    {"imagenet100-ipc10", "ImageNet-100, IPC 10: m = 1000", NULL, 100, 10, 1000, 10, 256},
    {"imagenet1k-ipc1", "ImageNet-1K, IPC 1: ViT-B/16, m = 1000, n = 3000, LGM+DSA 3 augs", NULL, 1000, 1, 3000, 3, 256},
    {"imagenet1k-ipc10", "ImageNet-1K, IPC 10: m = 10000", NULL, 1000, 10, 3000, 3, 256},
    {"imagenet100-ipc1-mini", "imagenet100-ipc1's m, n, C and augs on a mini ViT (4 blocks, width 64, 32 px): for a CPU", "mini", 100, 1, 1000, 10, 36},
    {"imagenet100-ipc10-mini", "imagenet100-ipc10 on the mini ViT", "mini", 100, 10, 1000, 10, 36},
    {"imagenet1k-ipc1-mini", "imagenet1k-ipc1 on the mini ViT", "mini", 1000, 1, 3000, 3, 36},
    {"imagenet1k-ipc10-mini", "imagenet1k-ipc10 on the mini ViT", "mini", 1000, 10, 3000, 3, 36},
    {"cifar10-resnet20-ipc1", "CIFAR-10, IPC 1: ResNet-20 at 32 px, m = 10, n = 1024, LGM+DSA 2 augs", "resnet20", 10, 1, 1024, 2, 32},
    {"cifar10-resnet20-ipc10", "CIFAR-10, IPC 10: ResNet-20, m = 100", "resnet20", 10, 10, 1024, 2, 32},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

/* ---- methods: the experiments/paper/ settings of each ---- */
typedef struct method {
    const char *name, *ini;
    int dsa;
    int sync_read; /* [data] prefetch = false; only when asked for (--methods), not in the default "all" */
} method;

static const method methods[] = {
    {"clpdd", "[solver]\nname = ridge\nlambda = 0.3\nlambda_mode = relative\n[loss]\nname = ce\ntemperature = 0.1\n", 0, 0},
    {"ridge-mse", "[solver]\nname = ridge\nlambda = 0.3\nlambda_mode = relative\n[loss]\nname = mse\n", 0, 0},
    {"ntk", "[solver]\nname = ntk\n[loss]\nname = ce\ntemperature = 0.1\n", 0, 0},
    {"unrolled", "[solver]\nname = unrolled\n[loss]\nname = ce\ntemperature = 0.1\n", 0, 0},
    {"lgm", "[solver]\nname = lgm\nhead_std = 0.01\nheads = 1\nbias = true\n", 0, 0},
    {"lgm-dsa", "[solver]\nname = lgm\nhead_std = 0.01\nheads = 1\nbias = true\n", 1, 0},
    /* lgm-dsa reading each step's images in the step: beside lgm-dsa on --jpeg, the wait the
       prefetch hides (docs/design.md §1) */
    {"lgm-dsa-sync", "[solver]\nname = lgm\nhead_std = 0.01\nheads = 1\nbias = true\n", 1, 1},
};
#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

typedef struct bench_args {
    const preset *pre;
    int method_on[N_METHODS];
    int prec[CLPDD_PRECISION_COUNT], nprec;
    int ipc[8], nipc;
    int steps, warmup, gemm, quiet, memory_only, jpeg;
    const char *device, *out;
    const char *const *sets, *const *overrides; /* --set as given; the experiment's overrides (--device's too) */
    int nsets, n_overrides;
} bench_args;

/* a comma-separated list; each item through `one`; -1 on a bad item (message printed) */
static int parse_list(const char *flag, const char *val, int (*one)(const char *item, void *ctx), void *ctx) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", val);
    for (char *save = NULL, *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*it)) it++;
        if (one(it, ctx)) return fprintf(stderr, "clpdd bench: --%s: '%s' is not one of the choices\n", flag, it), -1;
    }
    return 0;
}
static int one_method(const char *it, void *ctx) {
    bench_args *a = ctx;
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(it, methods[i].name)) return a->method_on[i] = 1, 0;
    return -1;
}
static int one_prec(const char *it, void *ctx) {
    bench_args *a = ctx;
    int p = clpdd_precision_parse(it);
    if (p < 0 || a->nprec == CLPDD_PRECISION_COUNT) return -1;
    a->prec[a->nprec++] = p;
    return 0;
}
static int one_ipc(const char *it, void *ctx) {
    bench_args *a = ctx;
    long v;
    if (clpdd_parse_long(it, 1, 100000, &v) || a->nipc == 8) return -1;
    a->ipc[a->nipc++] = (int)v;
    return 0;
}
/* the command's arguments into a; 0, or -1 with a message printed */
static int from_args(bench_args *a, const clpdd_args *g) {
    memset(a, 0, sizeof *a);
    a->steps = (int)clpdd_args_int(g, "steps", 20), a->warmup = (int)clpdd_args_int(g, "warmup", 3);
    a->gemm = (int)clpdd_args_int(g, "gemm", 0);
    a->quiet = clpdd_args_count(g, "quiet"), a->memory_only = clpdd_args_count(g, "memory");
    a->jpeg = clpdd_args_count(g, "jpeg");
    a->device = clpdd_args_str(g, "device");
    a->out = clpdd_args_str(g, "output") ? clpdd_args_str(g, "output") : clpdd_args_str(g, "out");
    a->sets = clpdd_args_list(g, "set", &a->nsets);
    a->overrides = g->overrides, a->n_overrides = g->n_overrides;
    const char *preset = clpdd_args_str(g, "preset");
    for (int p = 0; preset && p < N_PRESETS; p++)
        if (!strcmp(preset, presets[p].name)) a->pre = &presets[p];
    if (preset && !a->pre) return fprintf(stderr, "clpdd bench: unknown preset '%s' (clpdd bench --list)\n", preset), -1;
    static const struct {
        const char *flag;
        int (*one)(const char *item, void *ctx);
    } lists[] = {{"methods", one_method}, {"precision", one_prec}, {"ipc", one_ipc}};
    for (int k = 0; k < 3; k++) {
        int n;
        const char *const *v = clpdd_args_list(g, lists[k].flag, &n);
        for (int i = 0; i < n; i++)
            if (parse_list(lists[k].flag, v[i], lists[k].one, a)) return -1;
    }
    if (clpdd_args_count(g, "list")) return 0;
    if (!a->pre) {
        fprintf(stderr, "clpdd bench: --preset NAME is required (clpdd bench --list)\n\n");
        clpdd_command_help(g->cmd, stderr);
        return -1;
    }
    if (!clpdd_args_count(g, "methods"))
        for (int i = 0; i < N_METHODS; i++) a->method_on[i] = !methods[i].sync_read;
    if (!a->nprec) a->prec[a->nprec++] = CLPDD_PRECISION_FP32;
    if (!a->nipc) a->ipc[a->nipc++] = a->pre->ipc;
    return 0;
}

/* the experiment text of one cell */
static char *cell_ini(const preset *p, const method *m, int ipc, clpdd_precision prec, const char *device) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "[experiment]\nname = bench-%s-%s\nseed = 0\ndevice = %s\nprecision = %s\n", p->name, m->name, device,
                    clpdd_precision_name(prec));
    const char *bb = !p->backbone ? vitb_backbone : !strcmp(p->backbone, "mini") ? mini_backbone : resnet20_backbone;
    clpdd_sb_printf(&b, "[data]\nadapt = crop\n%s%s%s", m->sync_read ? "prefetch = false\n" : "", bb, m->ini);
    /* the paper's loop (experiments/paper/): LGM's pyramid from noise, every level active (the
       steady-state cost), the tape bounded by chunk = 100 images */
    clpdd_sb_printf(&b, "[distill]\nipc = %d\nreal_batch = %d\ninit = noise\nparam = pyramid\npyramid_every = 0\n"
                        "pyramid_init_std = 1\nchunk = 100\nlr = 0.002\n",
                    ipc, p->real_batch);
    if (m->dsa) clpdd_sb_printf(&b, "augment = dsa\naugs_per_batch = %d\n", p->augs);
    return b.s;
}

typedef struct row {
    const char *method;
    int ipc, ok;
    clpdd_precision asked;
    clpdd_bench_result r;
    char error[2048];
} row;

/* the GEMM rate (TFLOP/s) of an n³ product at precision p on ops (core/bench/flop_count.h), the
   setting restored after */
static double gemm_rate(const clpdd_ops *ops, int n, clpdd_precision p) {
    clpdd_precision was = ops->set_precision ? ops->set_precision(p) : CLPDD_PRECISION_FP32;
    double gflops = clpdd_gemm_gflops(ops, n, 5);
    if (ops->set_precision) ops->set_precision(was);
    return gflops / 1e3;
}

static void slug(char *out, size_t n, const char *name) {
    size_t k = 0;
    for (const char *s = name; *s && k + 1 < n; s++) {
        char c = (char)tolower((unsigned char)*s);
        if (isalnum((unsigned char)c)) out[k++] = c;
        else if (k && out[k - 1] != '-') out[k++] = '-';
    }
    while (k && out[k - 1] == '-') k--;
    out[k] = 0;
}

static const row *find(const row *rows, int n, const char *method, int ipc, clpdd_precision p) {
    for (int i = 0; i < n; i++)
        if (rows[i].ok && rows[i].ipc == ipc && rows[i].asked == p && !strcmp(rows[i].method, method)) return &rows[i];
    return NULL;
}

/* lgm-dsa beside lgm-dsa-sync: the wait for the real images with and without the prefetch */
static void prefetch_lines(clpdd_strbuf *md, const bench_args *a, const row *rows, int nrows) {
    if (!find(rows, nrows, "lgm-dsa-sync", a->ipc[0], a->prec[0]) || a->memory_only) return;
    clpdd_sb_printf(md, "\nLGM + DSA's wait for its real images, with ([data] prefetch, lgm-dsa) and without (lgm-dsa-sync) "
                        "the next batch decoded during the step:\n\n");
    for (int k = 0; k < a->nprec; k++)
        for (int q = 0; q < a->nipc; q++) {
            const row *on = find(rows, nrows, "lgm-dsa", a->ipc[q], a->prec[k]), *off = find(rows, nrows, "lgm-dsa-sync", a->ipc[q], a->prec[k]);
            if (!on || !off || a->memory_only) continue;
            clpdd_sb_printf(md, "- %s, ipc %d: waiting for images %.2f ms (%.1f%% of %.1f ms) with the prefetch, %.2f ms (%.1f%% of "
                                "%.1f ms) without; step time with / without %.3f\n",
                            clpdd_precision_name(a->prec[k]), a->ipc[q], on->r.read_ms_median, 100.0 * on->r.read_ms_median / on->r.ms_median,
                            on->r.ms_median, off->r.read_ms_median, 100.0 * off->r.read_ms_median / off->r.ms_median, off->r.ms_median,
                            on->r.ms_median / off->r.ms_median);
        }
}

/* the command that regenerates the table (--out aside) */
static void command_line(clpdd_strbuf *md, const bench_args *a, int gemm_n) {
    clpdd_sb_printf(md, "\nCommand: `clpdd bench --preset %s", a->pre->name);
    int all = 1;
    for (int i = 0; i < N_METHODS; i++) all &= a->method_on[i] == !methods[i].sync_read;
    if (!all) {
        clpdd_sb_printf(md, " --methods ");
        for (int i = 0, first = 1; i < N_METHODS; i++)
            if (a->method_on[i]) clpdd_sb_printf(md, "%s%s", first ? "" : ",", methods[i].name), first = 0;
    }
    clpdd_sb_printf(md, " --precision ");
    for (int k = 0; k < a->nprec; k++) clpdd_sb_printf(md, "%s%s", k ? "," : "", clpdd_precision_name(a->prec[k]));
    clpdd_sb_printf(md, " --ipc ");
    for (int q = 0; q < a->nipc; q++) clpdd_sb_printf(md, "%s%d", q ? "," : "", a->ipc[q]);
    if (a->jpeg) clpdd_sb_printf(md, " --jpeg");
    if (a->memory_only) clpdd_sb_printf(md, " --memory");
    else clpdd_sb_printf(md, " --steps %d --warmup %d --gemm %d", a->steps, a->warmup, gemm_n);
    if (a->device) clpdd_sb_printf(md, " --device %s", a->device);
    for (int i = 0; i < a->nsets; i++) clpdd_sb_printf(md, " --set %s", a->sets[i]);
    clpdd_sb_printf(md, "`\n");
}

static void tables(clpdd_strbuf *md, clpdd_strbuf *csv, const bench_args *a, const row *rows, int nrows, const double *rate,
                   const clpdd_precision *rate_got, const char *device, int gemm_n) {
    const preset *p = a->pre;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    clpdd_sb_printf(md, "# clpdd bench --preset %s\n\n%s.\n\nDevice: %s. %s.", p->name, p->what, device, when);
    if (!a->memory_only)
        clpdd_sb_printf(md, " Steps: %d timed (median, min–max) after %d warm-up, each synchronised.", a->steps, a->warmup);
    clpdd_sb_printf(md, "\n\n");
    if (a->memory_only) clpdd_sb_printf(md, "Memory only (--memory): every cell set up, no step run, nothing timed.\n\n");
    else clpdd_sb_printf(md, "GEMM rate measured in this run (%d³, median of 5):", gemm_n);
    for (int k = 0; k < a->nprec && !a->memory_only; k++)
        clpdd_sb_printf(md, " %s %.2f TFLOP/s%s%s", clpdd_precision_name(a->prec[k]), rate[k],
                        (int)rate_got[k] != a->prec[k] ? " (computed as fp32)" : "", k + 1 < a->nprec ? ";" : ".\n\n");
    clpdd_sb_printf(md, "| method | precision | ipc | m | images encoded | n | ms/step | of which image reads | × CLP-DD time | peak MiB "
                        "| × CLP-DD memory | GFLOP/step | TFLOP/s | of GEMM rate |\n"
                        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    clpdd_sb_printf(csv, "preset,device,method,precision,precision_computed,ipc,m,images_encoded,n,d,C,ms_median,ms_min,ms_max,"
                         "peak_bytes,gflop_per_step,tflops,gemm_tflops,fraction_of_gemm,time_vs_clpdd,memory_vs_clpdd,read_ms,error\n");
    for (int k = 0; k < a->nprec; k++)
        for (int q = 0; q < a->nipc; q++)
            for (int i = 0; i < nrows; i++) {
                const row *w = &rows[i];
                if ((int)w->asked != a->prec[k] || w->ipc != a->ipc[q]) continue;
                if (!w->ok) {
                    clpdd_sb_printf(md, "| %s | %s | %d | | | | failed: %s | | | | | | | |\n", w->method, clpdd_precision_name(w->asked), w->ipc,
                                    w->error);
                    clpdd_sb_printf(csv, "%s,%s,%s,%s,,%d,,,,,,,,,,,,,,,,,", p->name, device, w->method, clpdd_precision_name(w->asked), w->ipc);
                    clpdd_sb_json_str(csv, w->error);
                    clpdd_sb_printf(csv, "\n");
                    continue;
                }
                const clpdd_bench_result *r = &w->r;
                const row *base = find(rows, nrows, "clpdd", w->ipc, w->asked);
                if (a->memory_only) {
                    char xms[32] = "";
                    if (base) snprintf(xms, sizeof xms, "%.2f", (double)r->peak_bytes / (double)base->r.peak_bytes);
                    clpdd_sb_printf(md, "| %s | %s | %d | %d | %d | %d | – | – | – | %.0f | %s | – | – | – |\n", w->method,
                                    clpdd_precision_name(w->asked), w->ipc, r->m, r->me, r->n, r->peak_bytes / 1048576.0, xms);
                    clpdd_sb_printf(csv, "%s,%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,,,,%zu,,,,,,%s,,\n", p->name, device, w->method,
                                    clpdd_precision_name(w->asked), clpdd_precision_name(r->precision), w->ipc, r->m, r->me, r->n, r->d,
                                    r->C, r->peak_bytes, xms);
                    continue;
                }
                double tf = r->flop / (r->ms_median * 1e-3) / 1e12, frac = rate[k] > 0 ? tf / rate[k] : 0.0;
                double xt = base ? r->ms_median / base->r.ms_median : 0.0;
                double xm = base ? (double)r->peak_bytes / (double)base->r.peak_bytes : 0.0;
                char xts[32] = "", xms[32] = "";
                if (base) snprintf(xts, sizeof xts, "%.2f", xt), snprintf(xms, sizeof xms, "%.2f", xm);
                char reads[32] = "–";
                if (r->read_ms_median > 0)
                    snprintf(reads, sizeof reads, "%.1f (%.0f%%)", r->read_ms_median, 100.0 * r->read_ms_median / r->ms_median);
                clpdd_sb_printf(md, "| %s | %s%s | %d | %d | %d | %d | %.1f (%.1f–%.1f) | %s | %s | %.0f | %s | %.1f | %.3f | %.2f |\n",
                                w->method, clpdd_precision_name(w->asked), r->precision != w->asked ? " (fp32)" : "", w->ipc, r->m, r->me,
                                r->n, r->ms_median, r->ms_min, r->ms_max, reads, xts, r->peak_bytes / 1048576.0, xms, r->flop / 1e9, tf,
                                frac);
                clpdd_sb_printf(csv, "%s,%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,%.4f,%.4f,%.4f,%zu,%.4f,%.5f,%.5f,%.4f,%s,%s,%.4f,\n", p->name,
                                device, w->method, clpdd_precision_name(w->asked), clpdd_precision_name(r->precision), w->ipc, r->m, r->me,
                                r->n, r->d, r->C, r->ms_median, r->ms_min, r->ms_max, r->peak_bytes, r->flop / 1e9, tf, rate[k], frac, xts,
                                xms, r->read_ms_median);
            }
    if (find(rows, nrows, "clpdd", a->ipc[0], a->prec[0]) && find(rows, nrows, "lgm-dsa", a->ipc[0], a->prec[0]))
        clpdd_sb_printf(md, "\nThe paper's claims, measured here (LGM+DSA / CLP-DD; the paper: ~14× the time, > 8× the memory):\n\n");
    for (int k = 0; k < a->nprec; k++)
        for (int q = 0; q < a->nipc; q++) {
            const row *c = find(rows, nrows, "clpdd", a->ipc[q], a->prec[k]), *l = find(rows, nrows, "lgm-dsa", a->ipc[q], a->prec[k]);
            if (c && l && a->memory_only)
                clpdd_sb_printf(md, "- %s, ipc %d: memory %.2f×\n", clpdd_precision_name(a->prec[k]), a->ipc[q],
                                (double)l->r.peak_bytes / (double)c->r.peak_bytes);
            else if (c && l)
                clpdd_sb_printf(md, "- %s, ipc %d: time %.2f×, memory %.2f×\n", clpdd_precision_name(a->prec[k]), a->ipc[q],
                                l->r.ms_median / c->r.ms_median, (double)l->r.peak_bytes / (double)c->r.peak_bytes);
        }
    prefetch_lines(md, a, rows, nrows);
    clpdd_sb_printf(md, "\nms/step: one optimisation step (render, real batch, encode the synthetic set (m × augs images), solver, "
                        "loss, backward to the pixels, Adam); with DSA it includes waiting for the n real images on the host and "
                        "copying them to the device (the image-reads column, ms and %% of the step): %s. ",
                    a->jpeg ? "here --jpeg, generated JPEG files in an image folder at the images' side, decoded on [data] workers "
                              "threads; lgm-dsa decodes the next step's batch while the step runs ([data] prefetch), lgm-dsa-sync "
                              "decodes each batch in its own step"
                            : "here a copy from a pool of random images, what a prefetching loader hands over (--jpeg decodes files)");
    clpdd_sb_printf(md, "Peak: every tensor the run allocated (weights, features, tape, "
                        "buffers), not the device's own workspaces. GFLOP/step: the matrix products (GEMM, convolution, "
                        "attention, Cholesky) counted on the op table. Random weights and images: the cost is the "
                        "architecture's, not the checkpoint's.\n");
    command_line(md, a, gemm_n);
}

/* one cell's experiment (the generated text with the overrides) and its run into w; 0, or 2 when
   the overrides are refused (the user's mistake: the message printed) */
static int run_cell(const bench_args *a, const method *m, row *w, const clpdd_ops *ops, const clpdd_plugin_dirs *dirs) {
    char *ini = cell_ini(a->pre, m, w->ipc, w->asked, clpdd_device_name(ops->is_device ? CLPDD_DEVICE_CUDA : CLPDD_DEVICE_CPU));
    clpdd_experiment x;
    clpdd_err ce = {{0}};
    char label[160];
    snprintf(label, sizeof label, "<bench %s %s>", a->pre->name, m->name);
    int rc = 0;
    if (clpdd_experiment_load_memory(&x, ini, label, a->overrides, a->n_overrides, dirs, &ce)) {
        fprintf(stderr, "clpdd: bench: %s\n", ce.msg);
        rc = 2;
    } else {
        clpdd_bench_opts bo = {a->steps, a->warmup, a->pre->classes, a->pre->side, a->memory_only, a->jpeg};
        clpdd_run_opts ro = {.ops = ops, .quiet = 1};
        if (!a->quiet)
            fprintf(stderr, "bench: %s %s ipc %d %s ...", a->pre->name, w->method, w->ipc, clpdd_precision_name(w->asked));
        if (clpdd_run_bench(&x, &ro, &bo, &w->r, &ce)) {
            snprintf(w->error, sizeof w->error, "%s", ce.msg);
            if (!a->quiet) fprintf(stderr, " failed: %s\n", ce.msg);
        } else {
            w->ok = 1;
            if (!a->quiet && a->memory_only) fprintf(stderr, " peak %.0f MiB\n", w->r.peak_bytes / 1048576.0);
            else if (!a->quiet)
                fprintf(stderr, " %.1f ms/step, peak %.0f MiB, %.2f GFLOP/step\n", w->r.ms_median, w->r.peak_bytes / 1048576.0,
                        w->r.flop / 1e9);
        }
    }
    clpdd_experiment_free(&x);
    free(ini);
    return rc;
}

/* the tables on stdout and into outdir; 0, or 1 when a file could not be written */
static int write_tables(const bench_args *a, const row *rows, int nrows, const clpdd_ops *ops, const char *outdir) {
    int gemm_n = a->gemm ? a->gemm : ops->is_device ? 8192 : 1024;
    double rate[CLPDD_PRECISION_COUNT];
    clpdd_precision got[CLPDD_PRECISION_COUNT];
    for (int k = 0; k < a->nprec; k++) {
        rate[k] = 0.0;
        got[k] = clpdd_precision_effective(ops, (clpdd_precision)a->prec[k]);
        if (!a->memory_only) rate[k] = gemm_rate(ops, gemm_n, (clpdd_precision)a->prec[k]);
    }
    clpdd_strbuf md = {0}, csv = {0};
    tables(&md, &csv, a, rows, nrows, rate, got, ops->name, gemm_n);
    fputs(md.s, stdout);
    char path[4200];
    clpdd_err e = {{0}};
    const char *suffix = a->memory_only ? "-memory" : "";
    int werr = clpdd_mkdirs(outdir, &e);
    if (!werr) {
        snprintf(path, sizeof path, "%s/%s%s.md", outdir, a->pre->name, suffix);
        werr = clpdd_write_file_atomic(path, md.s, md.len, &e);
    }
    if (!werr) {
        snprintf(path, sizeof path, "%s/%s%s.csv", outdir, a->pre->name, suffix);
        werr = clpdd_write_file_atomic(path, csv.s, csv.len, &e);
    }
    if (werr) fprintf(stderr, "clpdd: bench: %s\n", e.msg);
    else if (!a->quiet) fprintf(stderr, "bench: wrote %s/%s%s.{md,csv}\n", outdir, a->pre->name, suffix);
    free(md.s), free(csv.s);
    return werr ? 1 : 0;
}

static int bench(const clpdd_args *g) {
    bench_args a;
    if (from_args(&a, g)) return 2;
    if (clpdd_args_count(g, "list")) {
        for (int p = 0; p < N_PRESETS; p++) printf("%-24s %s\n", presets[p].name, presets[p].what);
        return 0;
    }
    clpdd_err e = {{0}};
    const clpdd_ops *ops = clpdd_select_device(a.device ? (clpdd_device_kind)clpdd_device_parse(a.device) : CLPDD_DEVICE_AUTO, &e);
    if (!ops) return fprintf(stderr, "clpdd: bench: %s\n", e.msg), 2;
    char dev_slug[128], outdir[4096];
    slug(dev_slug, sizeof dev_slug, ops->name);
    snprintf(outdir, sizeof outdir, "%s", a.out ? a.out : "");
    if (!a.out) snprintf(outdir, sizeof outdir, "results/bench/%s", dev_slug);

    clpdd_startup st;
    clpdd_startup_dirs(&st, g);
    int nrows = 0, failed = 0, rc = 0;
    row *rows = clpdd_xcalloc((size_t)N_METHODS * a.nprec * a.nipc, sizeof *rows);
    for (int k = 0; k < a.nprec && !rc; k++)
        for (int q = 0; q < a.nipc && !rc; q++)
            for (int i = 0; i < N_METHODS && !rc; i++) {
                if (!a.method_on[i]) continue;
                row *w = &rows[nrows++];
                w->method = methods[i].name, w->ipc = a.ipc[q], w->asked = (clpdd_precision)a.prec[k];
                rc = run_cell(&a, &methods[i], w, ops, &st.dirs);
                failed += !rc && !w->ok;
            }
    clpdd_startup_end(&st);
    if (rc == 0) rc = write_tables(&a, rows, nrows, ops, outdir) || failed ? 1 : 0;
    free(rows);
    return rc;
}

static const clpdd_option opt_preset = {
    .name = "preset", .kind = CLPDD_OPT_STRING, .value = "NAME", .help = "the shapes (--list)"};
static const clpdd_option opt_list = {.name = "list", .kind = CLPDD_OPT_FLAG, .help = "list the presets"};
static const clpdd_option opt_methods = {
    .name = "methods", .kind = CLPDD_OPT_STRING, .repeatable = 1, .value = "LIST",
    .help = "clpdd, ridge-mse, ntk, unrolled, lgm, lgm-dsa, lgm-dsa-sync, comma-separated (default: all but lgm-dsa-sync)"};
static const clpdd_option opt_precision = {
    .name = "precision", .kind = CLPDD_OPT_STRING, .repeatable = 1, .value = "LIST",
    .help = "fp32, tf32, bf16, comma-separated: a table per precision (default fp32)"};
static const clpdd_option opt_ipc = {
    .name = "ipc", .kind = CLPDD_OPT_STRING, .repeatable = 1, .value = "LIST",
    .help = "images per class, comma-separated (default: the preset's)"};
static const clpdd_option opt_steps = {
    .name = "steps", .kind = CLPDD_OPT_INT, .value = "N", .lo = 1, .hi = 1000000, .help = "timed steps (default 20)"};
static const clpdd_option opt_warmup = {
    .name = "warmup", .kind = CLPDD_OPT_INT, .value = "N", .lo = 0, .hi = 1000000,
    .help = "untimed steps before (default 3)"};
static const clpdd_option opt_gemm = {
    .name = "gemm", .kind = CLPDD_OPT_INT, .value = "N", .lo = 16, .hi = 1000000,
    .help = "the side of the GEMM-rate product (default 8192 on a GPU, 1024 on a CPU)"};
static const clpdd_option opt_memory = {
    .name = "memory", .kind = CLPDD_OPT_FLAG, .help = "set every cell up, run no step: the peak memory only"};
static const clpdd_option opt_jpeg = {
    .name = "jpeg", .kind = CLPDD_OPT_FLAG,
    .help = "the real images as a temporary folder of generated JPEGs at the preset's side, decoded in the step (DSA's read share)"};
static const clpdd_option opt_out = {
    .name = "out", .kind = CLPDD_OPT_STRING, .value = "DIR", .help = "the same as --output"};
static const clpdd_option bench_output = {
    .name = "output", .kind = CLPDD_OPT_STRING, .value = "DIR",
    .help = "where the tables go (default: results/bench/<device>)"};
static const clpdd_option *const options[] = {&opt_preset, &opt_list, &opt_methods, &opt_precision, &opt_ipc,
                                              &opt_steps, &opt_warmup, &clpdd_opt_device, &clpdd_opt_set, &bench_output,
                                              &opt_out, &opt_gemm, &opt_memory, &opt_jpeg, &clpdd_opt_plugin_path, &clpdd_opt_quiet,
                                              NULL};

const clpdd_command clpdd_command_bench = {
    .name = "bench",
    .synopsis = "bench --preset P",
    .summary = "time the distillation step of every method at the paper's shapes (random weights, no data)",
    .usage =
        "usage: clpdd bench --preset NAME [--methods LIST] [--precision LIST] [--ipc LIST] [--steps N] [--warmup N]\n"
        "                   [--device auto|cpu|cuda] [--set section.key=value]... [--out DIR] [--gemm N] [--memory] [--jpeg]\n"
        "                   [--quiet]\n"
        "       clpdd bench --list\n"
        "\n"
        "Times the distillation step of each method on random weights ([backbone] weights = random) and\n"
        "random images, so it needs no dataset and no checkpoint: the median ms per step of --steps timed\n"
        "steps (default 20) after --warmup (default 3), each synchronised; the peak memory of the run's\n"
        "tensors; the matrix FLOPs of one step, counted on the op table; the achieved TFLOP/s and that as a\n"
        "fraction of the GEMM rate of the same precision measured in the same process (an N x N x N\n"
        "product, --gemm N, default 8192 on a GPU and 1024 on a CPU); and each method's time and memory\n"
        "as multiples of CLP-DD's.\n"
        "Methods (experiments/paper/ settings): clpdd, ridge-mse, ntk, unrolled, lgm, lgm-dsa (default: all), and\n"
        "lgm-dsa-sync (lgm-dsa with [data] prefetch = false; only when named).\n"
        "--jpeg writes the real images as generated JPEG files in a temporary image folder ($TMPDIR or /tmp,\n"
        "removed after), so LGM + DSA decodes them as on ImageNet; `--jpeg --methods lgm-dsa,lgm-dsa-sync`\n"
        "shows the read share (ms of the step waiting for images, and % of it) with and without the prefetch.\n"
        "--precision fp32,tf32,bf16 repeats the table per precision ([experiment] precision; the CPU\n"
        "computes fp32 and says so). --ipc 1,10 overrides the preset's images per class (memory vs m).\n"
        "--set changes any key of the generated experiment (e.g. distill.chunk=0, backbone.attention=...).\n"
        "--memory sets every cell up and runs no step: the peak memory only (every tensor is allocated at\n"
        "setup), for shapes too large to time on this machine (ViT-B presets on a CPU); writes <preset>-memory.*\n"
        "Writes DIR/<preset>.md and DIR/<preset>.csv (default DIR: results/bench/<device>).\n"
        "Presets (--list): the paper's shapes on ViT-B/16, -mini twins (same m, n, C, augs on a small ViT)\n"
        "that a CPU runs in minutes, and the CIFAR ResNet-20 (convolutions).\n",
    .options = options,
    .run = bench,
};

int clpdd_cmd_bench(int argc, char **argv) { return clpdd_command_main(&clpdd_command_bench, argc, argv); }
