#include "eval/lgm_probe.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "eval/probe.h"
#include "util/util.h"

double clpdd_lgm_probe(const float *Xtr, const int32_t *ytr, int m, const float *Xte, const int32_t *yte, int nte,
                            int d, int C, const clpdd_lgm_probe_cfg *cfg, uint64_t seed) {
    return clpdd_lgm_probe_epochs(NULL, NULL, Xtr, ytr, m, Xte, yte, nte, d, C, cfg, seed);
}

double clpdd_lgm_probe_epochs(clpdd_lgm_epoch_fn fn, void *ctx, const float *Xtr, const int32_t *ytr, int m,
                                   const float *Xte, const int32_t *yte, int nte, int d, int C, const clpdd_lgm_probe_cfg *cfg,
                                   uint64_t seed) {
    return clpdd_lgm_probe_pred(fn, ctx, Xtr, ytr, NULL, m, Xte, yte, nte, d, C, cfg, seed, NULL);
}

/* pred[a] = argmax of logits row a (ties → the lowest class, clpdd_top1's rule) */
static void predict_rows(const float *logits, int k, int C, int32_t *pred) {
    for (int a = 0; a < k; a++) {
        const float *z = logits + (size_t)a * C;
        int best = 0;
        for (int c = 1; c < C; c++) best = z[c] > z[best] ? c : best;
        pred[a] = best;
    }
}

double clpdd_lgm_probe_pred(clpdd_lgm_epoch_fn fn, void *ctx, const float *Xtr, const int32_t *ytr, const float *Ttr, int m,
                            const float *Xte, const int32_t *yte, int nte, int d, int C, const clpdd_lgm_probe_cfg *cfg,
                            uint64_t seed, int32_t *pred) {
    float *Xep = fn ? clpdd_xmalloc((size_t)m * d * sizeof(float)) : NULL;
    clpdd_rng r = {seed * 0x9E3779B97F4A7C15ULL + 0x1234567};
    int P = (d + 1) * C; /* W (d, C) then b (C) */
    float *p = clpdd_xcalloc((size_t)P, sizeof *p), *g = clpdd_xcalloc((size_t)P, sizeof *g);
    float *am = clpdd_xcalloc((size_t)P, sizeof *am), *av = clpdd_xcalloc((size_t)P, sizeof *av);
    for (int i = 0; i < d * C; i++) p[i] = 0.01f * (float)clpdd_rng_normal(&r);
    int B = cfg->batch < m ? cfg->batch : m;
    int per_epoch = (m + B - 1) / B;
    long total = (long)cfg->epochs * per_epoch;
    double lr0 = cfg->lr_base * B / 256.0;
    int *order = clpdd_xmalloc((size_t)m * sizeof *order);
    for (int i = 0; i < m; i++) order[i] = i;
    float *z = clpdd_xmalloc((size_t)B * C * sizeof *z);
    long t = 0;
    for (int ep = 0; ep < cfg->epochs; ep++) {
        if (fn) {
            if (fn(ctx, ep, Xep)) {
                free(Xep), free(z), free(order), free(p), free(g), free(am), free(av);
                return NAN;
            }
            Xtr = Xep;
        }
        clpdd_rng_shuffle(&r, order, m);
        for (int s = 0; s < m; s += B, t++) {
            int bs = m - s < B ? m - s : B;
            memset(g, 0, (size_t)P * sizeof *g);
            for (int k = 0; k < bs; k++) {
                const float *x = Xtr + (size_t)order[s + k] * d;
                float *zk = z + (size_t)k * C;
                for (int c = 0; c < C; c++) zk[c] = p[d * C + c];
                for (int j = 0; j < d; j++)
                    for (int c = 0; c < C; c++) zk[c] += x[j] * p[j * C + c];
                float mx = zk[0];
                for (int c = 1; c < C; c++) mx = zk[c] > mx ? zk[c] : mx;
                float sum = 0;
                for (int c = 0; c < C; c++) sum += (zk[c] = expf(zk[c] - mx));
                const float *tk = Ttr ? Ttr + (size_t)order[s + k] * C : NULL;
                for (int c = 0; c < C; c++) zk[c] = (zk[c] / sum - (tk ? tk[c] : (float)(c == ytr[order[s + k]]))) / bs; /* dL/dz */
                for (int j = 0; j < d; j++)
                    for (int c = 0; c < C; c++) g[j * C + c] += x[j] * zk[c];
                for (int c = 0; c < C; c++) g[d * C + c] += zk[c];
            }
            double lr = lr0 * 0.5 * (1.0 + cos(M_PI * (double)t / (double)total));
            double bc1 = 1.0 - pow(0.9, (double)(t + 1)), bc2 = 1.0 - pow(0.999, (double)(t + 1));
            for (int i = 0; i < P; i++) {
                am[i] = 0.9f * am[i] + 0.1f * g[i];
                av[i] = 0.999f * av[i] + 0.001f * g[i] * g[i];
                p[i] -= (float)(lr * (am[i] / bc1) / (sqrt(av[i] / bc2) + 1e-8));
            }
        }
    }
    /* test logits in slabs: (slab, d) · (d, C) + b */
    int slab = 4096, correct = 0;
    float *logits = clpdd_xmalloc((size_t)slab * C * sizeof *logits);
    for (int i = 0; i < nte; i += slab) {
        int k = nte - i < slab ? nte - i : slab;
        for (int a = 0; a < k; a++) memcpy(logits + (size_t)a * C, p + d * C, (size_t)C * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, C, d, 1.0f, Xte + (size_t)i * d, d, p, C, 1.0f, logits, C);
        correct += (int)lround(clpdd_top1(logits, yte + i, k, C) * k);
        if (pred) predict_rows(logits, k, C, pred + i);
    }
    free(logits);
    free(Xep);
    free(z);
    free(order);
    free(p);
    free(g);
    free(am);
    free(av);
    return nte > 0 ? (double)correct / nte : 0;
}

