/* resnet: torchvision ResNet-18/34/50 and the CIFAR ResNets as one backbone plugin —
 * descriptor, keys, architectures, weights (BatchNorm folded at load), tapes.
 *
 * The forward pass and the input-gradient backward are in resnet_pass.c; dimensions are
 * named as in resnet.h. Tensor names are the checkpoints' own: torchvision's
 * (conv1, bn1, layer{1..4}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.{0,1}}) and
 * akamaster/pytorch_resnet_cifar10's (the same for 3 stages, under `module.`). */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resnet.h"

/* ---- architectures ---- */

typedef struct rn_arch {
    const char *name;
    rn_family family;
    int bottleneck;
    int blocks[4]; /* per stage; CIFAR: 3 stages */
} rn_arch;

static const rn_arch rn_archs[] = {
    {"resnet20", RN_FAMILY_CIFAR, 0, {3, 3, 3, 0}},
    {"resnet32", RN_FAMILY_CIFAR, 0, {5, 5, 5, 0}},
    {"resnet44", RN_FAMILY_CIFAR, 0, {7, 7, 7, 0}},
    {"resnet56", RN_FAMILY_CIFAR, 0, {9, 9, 9, 0}},
    {"resnet18", RN_FAMILY_TORCHVISION, 0, {2, 2, 2, 2}},
    {"resnet34", RN_FAMILY_TORCHVISION, 0, {3, 4, 6, 3}},
    {"resnet50", RN_FAMILY_TORCHVISION, 1, {3, 4, 6, 3}},
};
#define RN_N_ARCHS ((int)(sizeof rn_archs / sizeof rn_archs[0]))

/* ---- keys ---- */

/* conv's values as h->cfg_enum gives them: its choices' order (arch's order is rn_archs') */
enum { RN_CONV_FAST = 0, RN_CONV_REFERENCE };

static const clpdd_key rn_keys[] = {
    {"arch", CLPDD_KEY_ENUM, "resnet20",
     "CIFAR ResNets resnet20|32|44|56 (3 stages of 16/32/64 channels, option-A shortcuts, 64-d feature) or "
     "torchvision resnet18|34 (512-d) and resnet50 (2048-d)",
     1, 0, "resnet20|resnet32|resnet44|resnet56|resnet18|resnet34|resnet50"},
    {"weights", CLPDD_KEY_STRING, "auto",
     "safetensors checkpoint (relative: looked up in CLPDD_MODEL_PATH, the shipped models/, the working directory); auto = "
     "cifar10-<arch>.safetensors (CIFAR) or <arch>-imagenet.safetensors (torchvision, tools/export_resnet.py)",
     1, 0, NULL},
    {"prefix", CLPDD_KEY_STRING, "auto",
     "prefix of every tensor name; auto = 'module.' when the file has module.conv1.weight (the CIFAR "
     "checkpoints), else none (torchvision)",
     1, 0, NULL},
    {"width", CLPDD_KEY_INT, "0", "base channel width; 0 = the arch's (16 CIFAR, 64 torchvision)", 0, 65536, NULL},
    {"image_size", CLPDD_KEY_INT, "0", "input side S (square, 3 channels); 0 = the arch's (32 CIFAR, 224 torchvision)",
     0, 4096, NULL},
    {"bn_eps", CLPDD_KEY_FLOAT, "1e-5", "BatchNorm epsilon (folded with the running statistics at load)", 0, 1, NULL},
    {"mean", CLPDD_KEY_FLOATS, "0.485, 0.456, 0.406",
     "per-channel mean of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"std", CLPDD_KEY_FLOATS, "0.229, 0.224, 0.225",
     "per-channel std of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"batch", CLPDD_KEY_INT, "64", "images per piece in inference (feature extraction)", 1, 1 << 20, NULL},
    {"conv", CLPDD_KEY_ENUM, "fast",
     "convolution path: fast (many images per GEMM, bias + ReLU + shortcut fused; device ops of ABI 1.2) or "
     "reference (im2col + one GEMM per image, separate passes: the readable path the fast one is tested against)",
     1, 0, "fast|reference"},
};
#define RN_N_KEYS ((int)(sizeof rn_keys / sizeof rn_keys[0]))

/* ---- geometry ---- */

static int conv_side(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

static void conv_set(rn *r, rn_conv *c, int cin, int cout, int k, int s, int p, int H, int W, const char *name,
                     const char *bn) {
    c->cin = cin, c->cout = cout, c->k = k, c->s = s, c->p = p;
    c->H = H, c->W = W;
    c->OH = conv_side(H, k, s, p), c->OW = conv_side(W, k, s, p);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->bn, sizeof c->bn, "%s", bn);
    size_t out = (size_t)cout * c->OH * c->OW;
    if (out > r->A) r->A = out;
    if (!(k == 1 && s == 1 && p == 0)) {
        size_t kp = (size_t)cin * k * k * c->OH * c->OW;
        if (kp > r->KP) r->KP = kp;
    }
    clpdd_conv2d_desc d = {1, cin, H, W, cout, k, s, p, c->OH, c->OW, 0, 0, 0, 0, 0, 0};
    if (CLPDD_CONV2D_WORK(&d, 1) > r->WK) r->WK = CLPDD_CONV2D_WORK(&d, 1);
    if ((size_t)cout * cin * k * k > r->WW) r->WW = (size_t)cout * cin * k * k;
    if (cout > r->max_c) r->max_c = cout;
}

static int build(rn *r, const rn_arch *arch) {
    const clpdd_host *h = r->h;
    const int w = r->width, S = r->S;
    char name[40], bn[40];
    r->A = r->KP = r->WK = 0;
    r->max_c = 0;
    r->nblocks = 0;
    if (arch->family == RN_FAMILY_CIFAR) {
        conv_set(r, &r->stem, 3, w, 3, 1, 1, S, S, "conv1", "bn1");
        r->maxpool = 0;
    } else {
        conv_set(r, &r->stem, 3, w, 7, 2, 3, S, S, "conv1", "bn1");
        r->maxpool = 1;
    }
    r->C0 = w, r->H0 = r->stem.OH, r->W0 = r->stem.OW;
    r->H1 = r->maxpool ? conv_side(r->H0, 3, 2, 1) : r->H0;
    r->W1 = r->maxpool ? conv_side(r->W0, 3, 2, 1) : r->W0;
    if ((size_t)r->C0 * r->H1 * r->W1 > r->A) r->A = (size_t)r->C0 * r->H1 * r->W1;
    const int stages = arch->family == RN_FAMILY_CIFAR ? 3 : 4, expansion = arch->bottleneck ? 4 : 1;
    int cin = w, H = r->H1, W = r->W1;
    for (int st = 0; st < stages; st++) {
        const int planes = w << st, cout = planes * expansion;
        for (int j = 0; j < arch->blocks[st]; j++) {
            if (r->nblocks == RN_MAX_BLOCKS) return h->error(h, "resnet: more than %d blocks", RN_MAX_BLOCKS), -1;
            rn_block *b = &r->blocks[r->nblocks++];
            const int s = (st > 0 && j == 0) ? 2 : 1;
            b->cin = cin, b->H = H, b->W = W, b->cout = cout;
            int hh = H, ww = W;
#define CONV(idx, ci, co, k, st_, p)                                                  \
    do {                                                                          \
        snprintf(name, sizeof name, "layer%d.%d.conv%d", st + 1, j, (idx) + 1);   \
        snprintf(bn, sizeof bn, "layer%d.%d.bn%d", st + 1, j, (idx) + 1);         \
        conv_set(r, &b->conv[idx], ci, co, k, st_, p, hh, ww, name, bn);          \
        hh = b->conv[idx].OH, ww = b->conv[idx].OW;                               \
    } while (0)
            if (arch->bottleneck) { /* torchvision v1.5: the stride is on the 3×3 */
                b->nconv = 3;
                CONV(0, cin, planes, 1, 1, 0);
                CONV(1, planes, planes, 3, s, 1);
                CONV(2, planes, cout, 1, 1, 0);
            } else {
                b->nconv = 2;
                CONV(0, cin, planes, 3, s, 1);
                CONV(1, planes, planes, 3, 1, 1);
            }
#undef CONV
            b->OH = hh, b->OW = ww;
            if (s == 1 && cin == cout) {
                b->sc = RN_SC_IDENTITY;
            } else if (arch->family == RN_FAMILY_CIFAR) {
                b->sc = RN_SC_OPTION_A;
                b->sc_pad = planes / 4;
                if (cin + 2 * b->sc_pad != cout)
                    return h->error(h, "resnet: width %d: option-A shortcut pads %d channels to %d (use an even width)",
                                    w, cin, cout), -1;
                if (s != 2 || conv_side(H, 1, 2, 0) != b->OH)
                    return h->error(h, "resnet: internal: option-A shortcut geometry"), -1;
            } else {
                b->sc = RN_SC_CONV;
                snprintf(name, sizeof name, "layer%d.%d.downsample.0", st + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", st + 1, j);
                conv_set(r, &b->down, cin, cout, 1, s, 0, H, W, name, bn);
            }
            cin = cout, H = b->OH, W = b->OW;
        }
    }
    r->Cf = cin, r->Hf = H, r->Wf = W;
    return 0;
}

/* ---- parameters ---- */

static float *carve(float *base, size_t *off, size_t count) {
    size_t at = *off;
    *off += (count + 63) / 64 * 64; /* 256-byte aligned buffers */
    return base ? base + at : NULL;
}

static void conv_params(rn_conv *c, float *base, size_t *off) {
    c->w = carve(base, off, (size_t)c->cout * c->cin * c->k * c->k);
    c->shift = carve(base, off, (size_t)c->cout);
}

static size_t params_layout(rn *r, float *base) {
    size_t off = 0;
    conv_params(&r->stem, base, &off);
    for (int i = 0; i < r->nblocks; i++) {
        rn_block *b = &r->blocks[i];
        for (int j = 0; j < b->nconv; j++) conv_params(&b->conv[j], base, &off);
        if (b->sc == RN_SC_CONV) conv_params(&b->down, base, &off);
    }
    r->ones = carve(base, &off, (size_t)r->max_c);
    return off;
}

typedef struct loader {
    rn *r;
    clpdd_weights *w;
    float *dev;          /* device staging: largest weight + 4·max_c */
    float *host_w, *host_bn; /* host copies */
    double eps;
} loader;

/* reads conv weight + BN statistics, folds scale into the rows, uploads */
static int load_conv(loader *L, rn_conv *c) {
    rn *r = L->r;
    const clpdd_host *h = r->h;
    const clpdd_ops *ops = r->ops;
    const int K = c->cin * c->k * c->k, C = c->cout;
    char name[160];
    const int64_t sw[4] = {C, c->cin, c->k, c->k}, sc[1] = {C};
    snprintf(name, sizeof name, "%s%s.weight", r->prefix, c->name);
    if (h->weights_read(h, L->w, name, 4, sw, L->dev)) return -1;
    ops->to_host(L->host_w, L->dev, (size_t)C * K * sizeof(float));
    static const char *stats[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int q = 0; q < 4; q++) {
        snprintf(name, sizeof name, "%s%s.%s", r->prefix, c->bn, stats[q]);
        if (h->weights_read(h, L->w, name, 1, sc, L->dev + (size_t)q * C)) return -1;
    }
    ops->to_host(L->host_bn, L->dev, (size_t)4 * C * sizeof(float));
    const float *gamma = L->host_bn, *beta = gamma + C, *mu = beta + C, *var = mu + C;
    float *shift = L->host_bn + 4 * (size_t)C; /* room for C more: see staging size */
    for (int o = 0; o < C; o++) {
        if (!(var[o] + L->eps > 0) || !isfinite(var[o]))
            return h->error(h, "resnet: %s%s.running_var[%d] = %g: not a variance", r->prefix, c->bn, o, var[o]), -1;
        double s = (double)gamma[o] / sqrt((double)var[o] + L->eps);
        shift[o] = (float)((double)beta[o] - (double)mu[o] * s);
        for (int i = 0; i < K; i++) L->host_w[(size_t)o * K + i] = (float)(L->host_w[(size_t)o * K + i] * s);
    }
    ops->to_device(c->w, L->host_w, (size_t)C * K * sizeof(float));
    ops->to_device(c->shift, shift, (size_t)C * sizeof(float));
    return 0;
}

static int load_weights(rn *r, const char *path, const char *prefix, double eps) {
    const clpdd_host *h = r->h;
    clpdd_weights *w = h->weights_open(h, path);
    if (!w) return -1; /* the host's message names the path */
    if (!strcmp(prefix, "auto")) {
        if (!strcmp(path, CLPDD_RANDOM_WEIGHTS)) /* random weights: any names will do */
            prefix = "";
        else if (h->weights_has(h, w, "module.conv1.weight"))
            prefix = "module.";
        else if (h->weights_has(h, w, "conv1.weight"))
            prefix = "";
        else {
            h->weights_close(h, w);
            return h->error(h, "resnet: %s has neither conv1.weight nor module.conv1.weight: not a ResNet checkpoint "
                               "(or set prefix)", path), -1;
        }
    }
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    size_t maxw = 0;
    rn_conv *all[1 + 4 * RN_MAX_BLOCKS];
    int nc = 0;
    all[nc++] = &r->stem;
    for (int i = 0; i < r->nblocks; i++) {
        for (int j = 0; j < r->blocks[i].nconv; j++) all[nc++] = &r->blocks[i].conv[j];
        if (r->blocks[i].sc == RN_SC_CONV) all[nc++] = &r->blocks[i].down;
    }
    for (int i = 0; i < nc; i++) {
        size_t s = (size_t)all[i]->cout * all[i]->cin * all[i]->k * all[i]->k;
        if (s > maxw) maxw = s;
    }
    loader L = {r, w, NULL, NULL, NULL, eps};
    L.dev = h->alloc(h, (maxw > 4 * (size_t)r->max_c ? maxw : 4 * (size_t)r->max_c) * sizeof(float));
    L.host_w = malloc(maxw * sizeof(float));
    L.host_bn = malloc(5 * (size_t)r->max_c * sizeof(float));
    int rc = 0;
    if (!L.dev || !L.host_w || !L.host_bn) rc = (h->error(h, "resnet: out of memory loading %s", path), -1);
    for (int i = 0; i < nc && !rc; i++) rc = load_conv(&L, all[i]);
    if (L.dev) h->free(h, L.dev);
    free(L.host_w);
    free(L.host_bn);
    h->weights_close(h, w);
    return rc;
}

/* ---- activations ---- */

/* the fast path's conv2d scratch: 1 MiB per CPU thread by default ($CLPDD_RESNET_WORK_KB
   overrides the per-thread size, for measuring); each conv then multiplies as many images at once
   as fit, at least one, and the CPU ops give each of their threads its own slice (ops_cpu_conv.c:
   image groups of at most 1 MiB per thread, run side by side with a single-threaded sgemm each).
   Measured (resnet20, m = 100, one thread, CPU time per step; AMD EPYC 2 MiB L2): 1 MiB 342 ms,
   2 MiB 354, 4 MiB 380, 8 MiB 425, 64 MiB 566 — the columns must still be in cache when
   OpenBLAS packs them, so small groups win (1 MiB: one 32² image, six 8² images per GEMM).
   Threads: $CLPDD_CPU_THREADS when set, else the CPUs this process may run on (as the CPU ops'
   pool, core/cpu/threadpool.h), at most 64. */
static size_t rn_work_threads(void) {
    const char *env = getenv("CLPDD_CPU_THREADS");
    long t = env && *env ? atol(env) : 0;
    if (t <= 0) {
        cpu_set_t set;
        t = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    }
    return (size_t)(t < 1 ? 1 : t > 64 ? 64 : t);
}
static size_t rn_work_floats(void) {
    const char *env = getenv("CLPDD_RESNET_WORK_KB");
    long kb = env && *env ? atol(env) : 1024;
    return (size_t)(kb > 0 ? kb : 1024) << 8;
}
#define RN_WORK_FLOATS rn_work_floats()

/* Taped passes on the CPU run in pieces of at most RN_PIECE images through every layer (the whole
   forward of a piece, then the next; the backward likewise): a layer's output is then read by the
   next layer from cache. At m = 100 the batch's 6.4 MB activations went through memory between
   layers, and resnet20's stride-1 convolutions ran at ~60 % of their in-cache rate. The pieces run
   side by side, one per pool thread (ops->pieces_run), each with its own scratch: an image's
   forward and backward touch no other image (BN is frozen), so the threads meet once per pass
   instead of at each of resnet20's ~40 convolutions and their epilogues. With T threads the
   batch is cut into a multiple of T pieces of near-equal size (m = 100, 2 threads: 8 of 12–13).
   The pieces write the same tape as one pass (each image's slice), and no op's result for an
   image depends on how the batch is split or on the thread it runs on (test_resnet), so features
   and gradients are bit for bit the same. $CLPDD_RESNET_PIECE overrides the size (0: one pass);
   on a GPU, one pass. */
#define RN_PIECE 16
static int rn_piece_cap(const rn *r) {
    if (r->ops->is_device) return 0;
    const char *env = getenv("CLPDD_RESNET_PIECE");
    const long p = env && *env ? atol(env) : RN_PIECE;
    return p <= 0 ? 0 : p > (1 << 20) ? 1 << 20 : (int)p;
}

/* the most images in a piece of a taped pass over up to n images (rn_forward; ops->pieces_run cuts
   n into a multiple of the slots): the scratch of a slot holds that many */
static size_t rn_slot_images(const rn *r, size_t n) {
    if (r->piece_cap <= 0) return n;
    size_t P = (size_t)r->piece_cap;
    const size_t even = (n + (size_t)r->slots - 1) / (size_t)r->slots;
    if (r->slots > 1 && even < P) P = even;
    return P < n ? P : n;
}

/* one slot's scratch for P images at base + off (base NULL: only count); returns the new off */
static size_t scratch_layout(const rn *r, rn_acts *a, rn_scratch *z, size_t P, int taped, float *base, size_t off) {
    const size_t A = r->A;
    z->s = carve(base, &off, P * A);
    z->g0 = taped ? carve(base, &off, P * A) : NULL;
    z->g1 = taped ? carve(base, &off, P * A) : NULL;
    z->m0 = taped ? carve(base, &off, P * A) : NULL;
    z->m1 = taped ? carve(base, &off, P * A) : NULL;
    if (r->fast) { /* conv2d work: per thread up to RN_WORK_FLOATS, at least one image of the largest conv */
        const size_t T = rn_work_threads();
        size_t g = RN_WORK_FLOATS / r->WK;
        if (g < 1) g = 1;
        g *= T;
        /* at most ⌈P / T⌉ images per thread: the CPU ops' groups never need more, so the group
           sizes depend on P and the threads only, not on this cap (features must not depend on
           how a batch is split into calls: test_resnet, inference in pieces = taped) */
        if (g > (P + T - 1) / T * T) g = (P + T - 1) / T * T;
        a->col_g = 0;
        /* + one weight: the CPU ops' stride-1 backward keeps a flipped copy there (ops_cpu_conv.c) */
        a->work_floats = g * r->WK + r->WW;
        z->col = carve(base, &off, a->work_floats);
        return off;
    }
    /* im2col groups: up to 32 MiB of columns, at least one image */
    size_t g = r->KP ? ((size_t)1 << 23) / r->KP : P;
    if (g < 1) g = 1;
    if (g > P) g = P;
    a->col_g = (int)g;
    z->col = carve(base, &off, g * (r->KP ? r->KP : 1));
    a->work_floats = 0;
    return off;
}

static size_t acts_layout(const rn *r, rn_acts *a, size_t n, int taped, float *base) {
    size_t off = 0;
    const size_t A = r->A, stem = (size_t)r->C0 * r->H0 * r->W0, pool = (size_t)r->C0 * r->H1 * r->W1;
    float *X = NULL, *Y = NULL;
    if (!taped) {
        X = carve(base, &off, n * A);
        Y = carve(base, &off, n * A);
    }
    a->stem = taped ? carve(base, &off, n * stem) : X;
    a->argmax = r->maxpool ? (int32_t *)carve(base, &off, n * pool) : NULL;
    a->pool = r->maxpool ? (taped ? carve(base, &off, n * pool) : Y) : NULL;
    float *m0 = taped ? NULL : carve(base, &off, n * A), *m1 = taped ? NULL : carve(base, &off, n * A);
    const float *in = r->maxpool ? a->pool : a->stem;
    for (int i = 0; i < r->nblocks; i++) {
        const rn_block *b = &r->blocks[i];
        for (int j = 0; j < 2; j++) {
            const rn_conv *c = &b->conv[j];
            a->mid[i][j] = j < b->nconv - 1 ? (taped ? carve(base, &off, n * c->cout * c->OH * c->OW) : (j ? m1 : m0))
                                            : NULL;
        }
        a->out[i] = taped ? carve(base, &off, n * b->cout * b->OH * b->OW) : (in == X ? Y : X);
        in = a->out[i];
    }
    const size_t P = taped ? rn_slot_images(r, n) : n;
    a->piece = (int)P, a->nslots = P < n ? r->slots : 1;
    for (int k = 0; k < a->nslots; k++) off = scratch_layout(r, a, &a->slot[k], P, taped, base, off);
    a->s = a->slot[0].s, a->g0 = a->slot[0].g0, a->g1 = a->slot[0].g1;
    a->m0 = a->slot[0].m0, a->m1 = a->slot[0].m1, a->col = a->slot[0].col;
    return off;
}

static void acts_free(const rn *r, rn_acts *a) {
    if (a->block) r->h->free(r->h, a->block);
    memset(a, 0, sizeof *a);
}

static int acts_alloc(const rn *r, rn_acts *a, int max_n, int taped) {
    memset(a, 0, sizeof *a);
    size_t floats = acts_layout(r, a, (size_t)max_n, taped, NULL);
    a->block = r->h->alloc(r->h, floats * sizeof(float));
    if (!a->block)
        return r->h->error(r->h, "resnet: cannot allocate %s for %d images (%.1f MiB)",
                           taped ? "a tape" : "inference scratch", max_n, floats * 4.0 / 1048576.0), -1;
    acts_layout(r, a, (size_t)max_n, taped, a->block);
    a->max_n = max_n;
    a->taped = taped;
    return 0;
}

/* ---- vtable ---- */

static void rn_destroy(void *self) {
    rn *r = self;
    if (!r) return;
    acts_free(r, &r->infer);
    if (r->params) r->h->free(r->h, r->params);
    free(r->weights_id);
    free(r);
}

static int read_norm(const clpdd_host *h, const clpdd_section *cfg, const char *key, float *out) {
    double vals[16];
    int k = h->cfg_floats(h, cfg, key, vals, 16);
    if (k != 1 && k != 3)
        return h->error(h, "resnet: %s has %d values; give 1 (every channel) or 3 (one per channel)", key, k), -1;
    for (int i = 0; i < 3; i++) {
        out[i] = (float)vals[k == 1 ? 0 : i];
        if (!strcmp(key, "std") && !(out[i] > 0))
            return h->error(h, "resnet: std must be positive (got %g)", out[i]), -1;
    }
    return 0;
}

static int rn_create(const clpdd_host *h, const clpdd_section *cfg, void **out) {
    *out = NULL;
    const int a = h->cfg_enum(h, cfg, "arch"); /* the choices list rn_archs in order */
    if (a < 0 || a >= RN_N_ARCHS) return h->error(h, "resnet: unknown arch '%s'", h->cfg_str(h, cfg, "arch")), -1;
    const rn_arch *arch = &rn_archs[a];
    rn *r = calloc(1, sizeof *r);
    if (!r) return h->error(h, "resnet: out of host memory"), -1;
    r->h = h;
    r->ops = h->ops;
    r->family = arch->family;
    r->arch = arch->name;
    const int cifar = arch->family == RN_FAMILY_CIFAR;
    r->width = (int)h->cfg_int(h, cfg, "width");
    if (!r->width) r->width = cifar ? 16 : 64;
    r->S = (int)h->cfg_int(h, cfg, "image_size");
    if (!r->S) r->S = cifar ? 32 : 224;
    r->batch = (int)h->cfg_int(h, cfg, "batch");
    r->fast = h->cfg_enum(h, cfg, "conv") == RN_CONV_FAST;
    if (read_norm(h, cfg, "mean", r->mean) || read_norm(h, cfg, "std", r->std)) goto fail;
    const char *wk = h->cfg_str(h, cfg, "weights");
    if (!strcmp(wk, "auto")) {
        if (asprintf(&r->weights_id, cifar ? "cifar10-%s.safetensors" : "%s-imagenet.safetensors", arch->name) < 0)
            r->weights_id = NULL;
    } else {
        r->weights_id = strdup(wk);
    }
    if (!r->weights_id) {
        h->error(h, "resnet: out of host memory");
        goto fail;
    }
    if (build(r, arch)) goto fail;
    r->piece_cap = rn_piece_cap(r);
    r->slots = r->piece_cap && h->abi_minor >= 6 && r->ops->pieces_run && r->ops->pieces_slots ? r->ops->pieces_slots() : 1;
    if (r->slots > RN_MAX_SLOTS) r->slots = RN_MAX_SLOTS;
    if (r->slots < 1) r->slots = 1;
    size_t np = params_layout(r, NULL);
    r->params = h->alloc(h, np * sizeof(float));
    if (!r->params) {
        h->error(h, "resnet: cannot allocate %.1f MiB of parameters", np * 4.0 / 1048576.0);
        goto fail;
    }
    params_layout(r, r->params);
    r->ops->fill(r->ones, 1.0f, (size_t)r->max_c);
    if (load_weights(r, r->weights_id, h->cfg_str(h, cfg, "prefix"), h->cfg_float(h, cfg, "bn_eps"))) goto fail;
    if (acts_alloc(r, &r->infer, r->batch, 0)) goto fail;
    *out = r;
    return 0;
fail:
    rn_destroy(r);
    return -1;
}

static int rn_describe(void *self, clpdd_backbone_info *info) {
    rn *r = self;
    memset(info, 0, sizeof *info);
    info->channels = 3;
    info->height = r->S;
    info->width = r->S;
    info->feature_dim = r->Cf;
    for (int i = 0; i < 3; i++) {
        info->mean[i] = r->mean[i];
        info->std[i] = r->std[i];
    }
    info->weights_id = r->weights_id;
    return 0;
}

static int rn_tape_create(void *self, int max_n, void **tape) {
    rn *r = self;
    *tape = NULL;
    if (max_n < 1) return r->h->error(r->h, "resnet: tape for %d images", max_n), -1;
    rn_acts *a = calloc(1, sizeof *a);
    if (!a) return r->h->error(r->h, "resnet: out of host memory"), -1;
    if (acts_alloc(r, a, max_n, 1)) {
        free(a);
        return -1;
    }
    *tape = a;
    return 0;
}

static void rn_tape_destroy(void *self, void *tape) {
    if (!tape) return;
    acts_free(self, tape);
    free(tape);
}

/* the tape from image i0 on: its taped tensors offset by i0 images, the scratch of slot k */
static rn_acts tape_from(const rn *r, const rn_acts *a, int i0, int k) {
    rn_acts v = *a;
    const size_t i = (size_t)i0, pool = (size_t)r->C0 * r->H1 * r->W1;
    v.stem = a->stem + i * r->C0 * r->H0 * r->W0;
    v.argmax = a->argmax ? a->argmax + i * pool : NULL;
    v.pool = a->pool ? a->pool + i * pool : NULL;
    for (int b = 0; b < r->nblocks; b++) {
        const rn_block *B = &r->blocks[b];
        for (int j = 0; j < 2; j++)
            if (a->mid[b][j]) v.mid[b][j] = a->mid[b][j] + i * B->conv[j].cout * B->conv[j].OH * B->conv[j].OW;
        v.out[b] = a->out[b] + i * B->cout * B->OH * B->OW;
    }
    const rn_scratch *z = &a->slot[k];
    v.s = z->s, v.g0 = z->g0, v.g1 = z->g1, v.m0 = z->m0, v.m1 = z->m1, v.col = z->col;
    return v;
}

/* a taped pass over n images in pieces: forward (out = features, in = images) or backward
   (out = dimages, in = dfeatures) */
typedef struct rn_pieces {
    const rn *r;
    const rn_acts *a;
    float *out;
    const float *in;
    int forward;
} rn_pieces;

static void piece_pass(void *ctx, int i0, int k, int slot) {
    const rn_pieces *J = ctx;
    const rn *r = J->r;
    const size_t img = (size_t)3 * r->S * r->S;
    rn_acts v = tape_from(r, J->a, i0, slot);
    if (J->forward)
        rn_forward_pass(r, &v, J->out + (size_t)i0 * r->Cf, J->in + (size_t)i0 * img, k);
    else
        rn_backward_pass(r, &v, J->out + (size_t)i0 * img, J->in + (size_t)i0 * r->Cf, k);
}

static void run_pieces(const rn *r, const rn_acts *a, float *out, const float *in, int n, int forward) {
    rn_pieces J = {r, a, out, in, forward};
    if (a->nslots > 1)
        r->ops->pieces_run(n, a->piece, piece_pass, &J);
    else
        for (int i = 0; i < n; i += a->piece) piece_pass(&J, i, n - i < a->piece ? n - i : a->piece, 0);
}

static int rn_forward(void *self, float *features, const float *images, int n, void *tape) {
    rn *r = self;
    if (n < 0) return r->h->error(r->h, "resnet: forward of %d images", n), -1;
    const size_t img = (size_t)3 * r->S * r->S;
    if (!tape) {
        for (int i = 0; i < n; i += r->batch) {
            int b = n - i < r->batch ? n - i : r->batch;
            rn_forward_pass(r, &r->infer, features + (size_t)i * r->Cf, images + (size_t)i * img, b);
        }
        return 0;
    }
    rn_acts *a = tape;
    if (n > a->max_n) return r->h->error(r->h, "resnet: forward of %d images on a tape for %d", n, a->max_n), -1;
    a->last_n = 0;
    if (n) run_pieces(r, a, features, images, n, 1);
    a->last_n = n;
    return 0;
}

static int rn_backward(void *self, float *dimages, const float *dfeatures, int n, void *tape) {
    rn *r = self;
    rn_acts *a = tape;
    if (!a) return r->h->error(r->h, "resnet: backward needs the tape of a forward"), -1;
    if (n != a->last_n)
        return r->h->error(r->h, "resnet: backward of %d images after a taped forward of %d", n, a->last_n), -1;
    if (n) run_pieces(r, a, dimages, dfeatures, n, 0);
    return 0;
}

static const clpdd_backbone_vt rn_vt = {
    /* .create = */ rn_create,
    /* .destroy = */ rn_destroy,
    /* .describe = */ rn_describe,
    /* .tape_create = */ rn_tape_create,
    /* .tape_destroy = */ rn_tape_destroy,
    /* .forward = */ rn_forward,
    /* .backward = */ rn_backward,
};

static const clpdd_plugin rn_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 4, /* conv = fast uses ops->conv2d / conv2d_backward (ABI 1.2); host cfg_enum (1.4) */
    /* .kind = */ CLPDD_KIND_BACKBONE,
    /* .name = */ "resnet",
    /* .version = */ "1.0.0",
    /* .summary = */ "ResNets: CIFAR resnet20/32/44/56 (option A) and torchvision resnet18/34/50, frozen BN; "
                     "global-average-pool feature",
    /* .keys = */ rn_keys,
    /* .n_keys = */ RN_N_KEYS,
    /* .vtable = */ &rn_vt,
    /* .key_default = */ NULL,
};

CLPDD_DEFINE_PLUGIN(rn_plugin)
