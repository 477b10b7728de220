/* clpdd-bench-vitb: ViT-B/16 at 224×224 (timm `vit` variant, weights = random), forward +
 * input-backward through the plugin on one device, against the device's own GEMM rate at the
 * same precision measured in the same run.
 *
 *   clpdd-bench-vitb [--device cpu|cuda] [--batch B] [--reps R] [--precision fp32|tf32|bf16]
 *                    [--attention auto|fused|materialized] [--out FILE.md]
 *
 * FLOPs per image (2 per multiply-add; T = 197 tokens, D = 768, F = 3072, 12 blocks):
 *   forward  = 2·196·(3·16·16)·D (patch embedding)
 *            + 12·[2·T·(3D·D + D·D + 2·D·F) (qkv, proj, fc1, fc2) + 2·2·T²·D (q·kᵀ and P·v)]
 *            ≈ 35.1 GFLOP
 *   backward w.r.t. the input only: every product's input gradient costs what its forward did
 *            (no weight gradients), attention twice (dP and dv, dq and dk) ≈ 35.1 + 12·0.12 GFLOP
 * The ratio to the measured sgemm rate says how far the whole step is from the machine's
 * matrix ceiling. Timings are medians after a warm-up; nothing is asserted. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "bench/flop_count.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "numerics/precision.h"
#include "cli/startup.h"
#include "distill/run.h"
#include "util/util.h"

enum { D = 768, DEPTH = 12, F = 3072, P = 16, S = 224, T = 197 };

int main(int argc, char **argv) {
    const char *device = "cpu", *out = NULL, *prec_name = "fp32", *attention = "auto";
    int batch = 0, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec_name = argv[++i];
        else if (!strcmp(argv[i], "--attention") && i + 1 < argc) attention = argv[++i];
        else
            return fprintf(stderr, "usage: clpdd-bench-vitb [--device cpu|cuda] [--batch B] [--reps R] [--precision fp32|tf32|bf16]\n"
                                   "                        [--attention auto|fused|materialized] [--out FILE.md]\n"), 2;
    }
    int prec = clpdd_precision_parse(prec_name);
    if (prec < 0) return fprintf(stderr, "clpdd-bench-vitb: --precision %s: expected fp32, tf32 or bf16\n", prec_name), 2;
    if (reps < 1 || reps > 64) reps = 5;
    clpdd_err e = {{0}};
    if (clpdd_device_parse(device) < 0) return fprintf(stderr, "clpdd-bench-vitb: --device %s: expected cpu or cuda\n", device), 2;
    const clpdd_ops *ops = clpdd_select_device((clpdd_device_kind)clpdd_device_parse(device), &e);
    if (!ops) return fprintf(stderr, "clpdd-bench-vitb: %s\n", e.msg), 1;
    if (batch <= 0) batch = ops->is_device ? 64 : 2;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_loaded pl;
    if (clpdd_plugin_find(&dirs, CLPDD_KIND_BACKBONE, "vit", &pl, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    const clpdd_backbone_vt *vt = pl.desc->vtable;
    clpdd_host *h = clpdd_host_create(ops, 0);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "variant = vit; weights = random; image_size = 224; channels = 3; patch = 16; dim = 768; "
                              "depth = 12; heads = 12; dim_head = 64; mlp_dim = 3072; batch = %d; attention = %s",
             batch, attention);
    clpdd_section *sec = clpdd_section_from_string("backbone", cfg, pl.desc->keys, pl.desc->n_keys, &e);
    if (!sec) return fprintf(stderr, "%s\n", e.msg), 1;
    void *self, *tape;
    if (vt->create(h, sec, &self) || vt->tape_create(self, batch, &tape))
        return fprintf(stderr, "vit: %s\n", clpdd_host_error(h)), 1;
    size_t px = 3 * (size_t)S * S;
    float *x = h->alloc(h, batch * px * 4), *dx = h->alloc(h, batch * px * 4);
    float *f = h->alloc(h, (size_t)batch * D * 4), *df = h->alloc(h, (size_t)batch * D * 4);
    ops->rand_normal(x, batch * px, 0, 1, 3, 0);
    ops->rand_normal(df, (size_t)batch * D, 0, 1, 4, 0);

    /* the backbone's products at the asked precision (the CPU stays fp32 and says so) */
    clpdd_precision got = clpdd_precision_effective(ops, (clpdd_precision)prec);
    ops->set_precision((clpdd_precision)prec);
    double tf[64], tb[64], ti[64];
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = clpdd_now();
        vt->forward(self, f, x, batch, tape);
        ops->synchronize();
        double t1 = clpdd_now();
        vt->backward(self, dx, df, batch, tape);
        ops->synchronize();
        double t2 = clpdd_now();
        vt->forward(self, f, x, batch, NULL);
        ops->synchronize();
        double t3 = clpdd_now();
        if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1, ti[r] = t3 - t2;
    }
    double fwd = clpdd_median(tf, reps), bwd = clpdd_median(tb, reps), inf = clpdd_median(ti, reps);
    double gf_fwd = 2.0 * 196 * 768 * D + DEPTH * (2.0 * T * (3.0 * D * D + 1.0 * D * D + 2.0 * D * F) + 4.0 * T * T * D);
    double gf_bwd = gf_fwd + DEPTH * 4.0 * T * T * D;
    gf_fwd /= 1e9, gf_bwd /= 1e9;
    int N = ops->is_device ? 8192 : 2048;
    double gemm = clpdd_gemm_gflops(ops, N, ops->is_device ? 10 : 3); /* at the same precision */
    double step_rate = batch * (gf_fwd + gf_bwd) / (fwd + bwd);
    clpdd_strbuf b = {0};
    ops->set_precision(CLPDD_PRECISION_FP32);
    clpdd_sb_printf(&b, "| device | precision | attention | batch | forward (tape) ms | input-backward ms | fwd+bwd images/s | "
                        "fwd+bwd GFLOP/s | inference images/s | GEMM %d³ GFLOP/s (same precision) | fwd+bwd / GEMM |\n", N);
    clpdd_sb_printf(&b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    clpdd_sb_printf(&b, "| %s | %s%s | %s | %d | %.1f | %.1f | %.1f | %.0f | %.1f | %.0f | %.2f |\n", ops->name, prec_name,
                    (int)got != prec ? " (computed fp32)" : "", attention, batch, 1e3 * fwd, 1e3 * bwd, batch / (fwd + bwd), step_rate,
                    batch / inf, gemm, step_rate / gemm);
    printf("%s", b.s);
    printf("FLOPs per image: forward %.2f G, input-backward %.2f G; peak tensor memory %.0f MB\n", gf_fwd, gf_bwd,
           clpdd_host_peak_bytes(h) / 1048576.0);
    if (out) { /* appended: one table across runs, its header written once */
        int fresh = access(out, F_OK) != 0;
        FILE *o = fopen(out, "a");
        if (o) fputs(fresh ? b.s : strchr(strchr(b.s, '\n') + 1, '\n') + 1, o), fclose(o);
    }
    free(b.s);
    vt->tape_destroy(self, tape);
    vt->destroy(self);
    clpdd_section_destroy(sec);
    clpdd_host_destroy(h);
    clpdd_plugin_close(&pl);
    clpdd_plugin_dirs_free(&dirs);
    return 0;
}
