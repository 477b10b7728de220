/* vit: the ViT family as one backbone plugin — descriptor, keys, variants, weights, tapes.
 *
 * The forward pass is in vit_forward.c, the input-gradient backward in vit_backward.c;
 * dimensions are named as in vit.h. Parameters are frozen: backward produces the gradient
 * with respect to the (normalised) input images only, with "=" semantics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit.h"

/* ---- variants: name maps + flags ---- */

static const vit_variant vit_variants[] = {
    {
        /* .name = */ "lucid",
        /* .patch_order = */ VIT_PATCH_PPC,
        /* .act = */ VIT_ACT_RELU,
        /* .patch_w_4d = */ 0,
        /* .patch_w = */ "to_patch_embedding.1.weight",
        /* .patch_b = */ "to_patch_embedding.1.bias",
        /* .cls = */ "cls_token",
        /* .pos = */ "pos_embedding",
        /* .ln1_w = */ "transformer.layers.%d.0.norm.weight",
        /* .ln1_b = */ "transformer.layers.%d.0.norm.bias",
        /* .qkv_w = */ "transformer.layers.%d.0.fn.to_qkv.weight",
        /* .qkv_b = */ NULL,
        /* .proj_w = */ "transformer.layers.%d.0.fn.to_out.0.weight",
        /* .proj_b = */ "transformer.layers.%d.0.fn.to_out.0.bias",
        /* .ln2_w = */ "transformer.layers.%d.1.norm.weight",
        /* .ln2_b = */ "transformer.layers.%d.1.norm.bias",
        /* .fc1_w = */ "transformer.layers.%d.1.fn.net.0.weight",
        /* .fc1_b = */ "transformer.layers.%d.1.fn.net.0.bias",
        /* .fc2_w = */ "transformer.layers.%d.1.fn.net.3.weight",
        /* .fc2_b = */ "transformer.layers.%d.1.fn.net.3.bias",
        /* .norm_w = */ "mlp_head.0.weight",
        /* .norm_b = */ "mlp_head.0.bias",
    },
};
#define VIT_N_VARIANTS ((int)(sizeof vit_variants / sizeof vit_variants[0]))

/* ---- keys ---- */

static const clpdd_key vit_keys[] = {
    {"variant", CLPDD_KEY_ENUM, "lucid",
     "architecture and tensor-name map: lucid (lucidrains ViT: linear patch embedding, no qkv bias, ReLU MLP)", 1, 0,
     "lucid"},
    {"weights", CLPDD_KEY_STRING, "mnist-vit.safetensors",
     "safetensors checkpoint; a relative path is looked up in CLPDD_MODEL_PATH, then the working directory", 1, 0,
     NULL},
    {"image_size", CLPDD_KEY_INT, "28", "input side S (square images, a multiple of patch)", 1, 4096, NULL},
    {"channels", CLPDD_KEY_INT, "1", "input channels c", 1, 3, NULL},
    {"patch", CLPDD_KEY_INT, "4", "patch side p", 1, 1024, NULL},
    {"dim", CLPDD_KEY_INT, "64", "model width D (= the feature dimension)", 1, 65536, NULL},
    {"depth", CLPDD_KEY_INT, "6", "transformer blocks", 0, 1024, NULL},
    {"heads", CLPDD_KEY_INT, "4", "attention heads", 1, 1024, NULL},
    {"dim_head", CLPDD_KEY_INT, "64", "width of one attention head (lucid: independent of dim)", 1, 65536, NULL},
    {"mlp_dim", CLPDD_KEY_INT, "128", "hidden width of the MLP", 1, 1048576, NULL},
    {"norm_eps", CLPDD_KEY_FLOAT, "1e-5", "LayerNorm epsilon", 0, 1, NULL},
    {"mean", CLPDD_KEY_FLOATS, "0.1307",
     "per-channel mean of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"std", CLPDD_KEY_FLOATS, "0.3081",
     "per-channel std of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"batch", CLPDD_KEY_INT, "256", "images per piece in inference (feature extraction)", 1, 1 << 20, NULL},
};
#define VIT_N_KEYS ((int)(sizeof vit_keys / sizeof vit_keys[0]))

/* ---- activations: one layout routine for tapes and inference scratch ---- */

/* Assigns every pointer of `a` for n images and returns the floats needed. base = NULL
 * only counts. taped: distinct buffers per block + statistics + backward scratch;
 * otherwise the per-block buffers alias and no statistics are kept. */
static float *carve(float *base, size_t *off, size_t count, size_t align) {
    size_t at = *off;
    *off += (count + align - 1) / align * align;
    return base ? base + at : NULL;
}

static size_t acts_layout(const vit *v, vit_acts *a, size_t n, int taped, float *base) {
    size_t off = 0;
#define CARVE(count) carve(base, &off, (count), 64) /* 256-byte aligned buffers */
    const size_t T = (size_t)v->T, D = (size_t)v->D, P = (size_t)v->P, K = (size_t)v->K;
    const size_t I = (size_t)v->I, F = (size_t)v->F, Hh = (size_t)v->Hh;
    const int L = v->L;
    const size_t NT = n * T;
    for (int j = 0; j <= 2 * L; j++) a->xs[j] = (taped || j == 0) ? CARVE(NT * D) : a->xs[0];
    for (int l = 0; l < L; l++) {
        int fresh = taped || l == 0;
        a->mean1[l] = taped ? CARVE(NT) : NULL;
        a->rstd1[l] = taped ? CARVE(NT) : NULL;
        a->mean2[l] = taped ? CARVE(NT) : NULL;
        a->rstd2[l] = taped ? CARVE(NT) : NULL;
        a->qkv[l] = fresh ? CARVE(NT * 3 * I) : a->qkv[0];
        a->att[l] = fresh ? CARVE(n * Hh * T * T) : a->att[0];
        a->u[l] = fresh ? CARVE(NT * F) : a->u[0];
    }
    a->cls = CARVE(n * D);
    a->meanf = taped ? CARVE(n) : NULL;
    a->rstdf = taped ? CARVE(n) : NULL;
    a->patches = CARVE(n * P * K);
    a->emb = CARVE(n * P * D);
    a->h = CARVE(NT * D);
    a->ao = CARVE(NT * I);
    a->r = CARVE(NT * F);
    if (taped) {
        a->dx = CARVE(NT * D);
        a->dh = CARVE(NT * D);
        a->dln = CARVE(NT * D);
        a->dbig = CARVE(NT * (3 * I > F ? 3 * I : F));
        a->dao = CARVE(NT * I);
        a->datt = CARVE(n * Hh * T * T);
        a->dcls = CARVE(n * D);
    } else {
        a->dx = a->dh = a->dln = a->dbig = a->dao = a->datt = a->dcls = NULL;
    }
#undef CARVE
    return off;
}

static void acts_free(const vit *v, vit_acts *a) {
    if (a->block) v->h->free(v->h, a->block);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

static int acts_alloc(const vit *v, vit_acts *a, int max_n, int taped) {
    memset(a, 0, sizeof *a);
    const int L = v->L;
    a->ptrs = calloc((size_t)(2 * L + 1) + 7 * (size_t)L + 1, sizeof(float *));
    if (!a->ptrs) return v->h->error(v->h, "vit: out of host memory"), -1;
    float **p = a->ptrs;
    a->xs = p, p += 2 * L + 1;
    a->mean1 = p, p += L;
    a->rstd1 = p, p += L;
    a->qkv = p, p += L;
    a->att = p, p += L;
    a->mean2 = p, p += L;
    a->rstd2 = p, p += L;
    a->u = p;
    size_t floats = acts_layout(v, a, (size_t)max_n, taped, NULL);
    a->block = v->h->alloc(v->h, floats * sizeof(float));
    if (!a->block) {
        v->h->error(v->h, "vit: cannot allocate %s for %d images (%.1f MiB)", taped ? "a tape" : "inference scratch",
                    max_n, floats * 4.0 / 1048576.0);
        free(a->ptrs);
        a->ptrs = NULL;
        return -1;
    }
    acts_layout(v, a, (size_t)max_n, taped, a->block);
    a->max_n = max_n;
    return 0;
}

/* ---- weights ---- */

static int read_named(vit *v, clpdd_weights *w, const char *fmt, int layer, int ndim, const int64_t *shape,
                      float *dst) {
    char name[512];
    snprintf(name, sizeof name, fmt, layer);
    return v->h->weights_read(v->h, w, name, ndim, shape, dst);
}

/* the patch-embedding weight (D, K), its columns reordered to ops->patchify's (c, py, px) */
static int load_patch_weight(vit *v, clpdd_weights *w) {
    const vit_variant *var = v->var;
    const int64_t shape2[2] = {v->D, v->K}, shape4[4] = {v->D, v->c, v->p, v->p};
    int rc = var->patch_w_4d ? read_named(v, w, var->patch_w, 0, 4, shape4, v->patch_w)
                             : read_named(v, w, var->patch_w, 0, 2, shape2, v->patch_w);
    if (rc || var->patch_order == VIT_PATCH_CPP || v->c == 1) return rc;
    /* (py, px, c) → (c, py, px): a one-off permutation on the host at load time */
    size_t nw = (size_t)v->D * (size_t)v->K;
    float *src = malloc(nw * sizeof(float)), *dst = malloc(nw * sizeof(float));
    if (!src || !dst) {
        free(src);
        free(dst);
        return v->h->error(v->h, "vit: out of host memory"), -1;
    }
    v->ops->to_host(src, v->patch_w, nw * sizeof(float));
    const int c = v->c, pp = v->p * v->p, K = v->K;
    for (int o = 0; o < v->D; o++)
        for (int ch = 0; ch < c; ch++)
            for (int q = 0; q < pp; q++) dst[(size_t)o * K + (size_t)ch * pp + q] = src[(size_t)o * K + (size_t)q * c + ch];
    v->ops->to_device(v->patch_w, dst, nw * sizeof(float));
    free(src);
    free(dst);
    return 0;
}

static int load_weights(vit *v, const char *path) {
    const clpdd_host *h = v->h;
    const clpdd_ops *ops = v->ops;
    const vit_variant *var = v->var;
    clpdd_weights *w = h->weights_open(h, path);
    if (!w) return -1; /* the host's message names the path */
    const int64_t D = v->D, T = v->T, I = v->I, F = v->F;
    const int64_t sD[1] = {D}, sCls[3] = {1, 1, D}, sPos[3] = {1, T, D}, sQkv[2] = {3 * I, D}, sQkvB[1] = {3 * I},
                  sProj[2] = {D, I}, sFc1[2] = {F, D}, sFc1B[1] = {F}, sFc2[2] = {D, F};
    int rc = load_patch_weight(v, w);
    /* tok_init = pos; row 0 += cls; rows 1.. += patch bias (the scratch rows of h hold the
       pieces: nothing else uses them yet) */
    float *tmp = v->infer.h; /* ≥ T·D floats */
    if (!rc) rc = h->weights_read(h, w, var->pos, 3, sPos, v->tok_init);
    if (!rc) rc = h->weights_read(h, w, var->cls, 3, sCls, tmp);
    if (!rc) rc = h->weights_read(h, w, var->patch_b, 1, sD, tmp + D);
    if (!rc) {
        ops->add2d(v->tok_init, (size_t)D, tmp, 0, 1, (size_t)D);
        ops->add2d(v->tok_init + D, (size_t)D, tmp + D, 0, (size_t)v->P, (size_t)D);
    }
    for (int l = 0; l < v->L && !rc; l++) {
        vit_block *b = &v->blocks[l];
        rc = read_named(v, w, var->ln1_w, l, 1, sD, b->ln1_w);
        if (!rc) rc = read_named(v, w, var->ln1_b, l, 1, sD, b->ln1_b);
        if (!rc) rc = read_named(v, w, var->qkv_w, l, 2, sQkv, b->qkv_w);
        if (!rc && var->qkv_b) rc = read_named(v, w, var->qkv_b, l, 1, sQkvB, b->qkv_b);
        if (!rc) rc = read_named(v, w, var->proj_w, l, 2, sProj, b->proj_w);
        if (!rc) rc = read_named(v, w, var->proj_b, l, 1, sD, b->proj_b);
        if (!rc) rc = read_named(v, w, var->ln2_w, l, 1, sD, b->ln2_w);
        if (!rc) rc = read_named(v, w, var->ln2_b, l, 1, sD, b->ln2_b);
        if (!rc) rc = read_named(v, w, var->fc1_w, l, 2, sFc1, b->fc1_w);
        if (!rc) rc = read_named(v, w, var->fc1_b, l, 1, sFc1B, b->fc1_b);
        if (!rc) rc = read_named(v, w, var->fc2_w, l, 2, sFc2, b->fc2_w);
        if (!rc) rc = read_named(v, w, var->fc2_b, l, 1, sD, b->fc2_b);
    }
    if (!rc) rc = h->weights_read(h, w, var->norm_w, 1, sD, v->norm_w);
    if (!rc) rc = h->weights_read(h, w, var->norm_b, 1, sD, v->norm_b);
    h->weights_close(h, w);
    return rc;
}

/* carve the parameters out of one allocation; base = NULL counts */
static size_t params_layout(vit *v, float *base) {
    size_t off = 0;
#define PCARVE(count) carve(base, &off, (count), 1)
    const size_t D = (size_t)v->D, I = (size_t)v->I, F = (size_t)v->F;
    v->patch_w = PCARVE(D * (size_t)v->K);
    v->tok_init = PCARVE((size_t)v->T * D);
    v->norm_w = PCARVE(D);
    v->norm_b = PCARVE(D);
    for (int l = 0; l < v->L; l++) {
        vit_block *b = &v->blocks[l];
        b->ln1_w = PCARVE(D);
        b->ln1_b = PCARVE(D);
        b->qkv_w = PCARVE(3 * I * D);
        b->qkv_b = v->var->qkv_b ? PCARVE(3 * I) : NULL;
        b->proj_w = PCARVE(D * I);
        b->proj_b = PCARVE(D);
        b->ln2_w = PCARVE(D);
        b->ln2_b = PCARVE(D);
        b->fc1_w = PCARVE(F * D);
        b->fc1_b = PCARVE(F);
        b->fc2_w = PCARVE(D * F);
        b->fc2_b = PCARVE(D);
    }
#undef PCARVE
    return off;
}

/* ---- vtable ---- */

static void vit_destroy(void *self) {
    vit *v = self;
    if (!v) return;
    acts_free(v, &v->infer);
    if (v->params) v->h->free(v->h, v->params);
    free(v->blocks);
    free(v->weights_id);
    free(v);
}

static int read_norm(const clpdd_host *h, const clpdd_section *cfg, const char *key, int c, float *out) {
    double vals[16];
    int k = h->cfg_floats(h, cfg, key, vals, 16);
    if (k != 1 && k != c)
        return h->error(h, "vit: %s has %d values; give 1 (every channel) or %d (one per channel)", key, k, c), -1;
    for (int i = 0; i < 3; i++) {
        out[i] = (float)vals[k == 1 ? 0 : (i < k ? i : k - 1)];
        if (!strcmp(key, "std") && !(out[i] > 0)) return h->error(h, "vit: std must be positive (got %g)", out[i]), -1;
    }
    return 0;
}

static int vit_create(const clpdd_host *h, const clpdd_section *cfg, void **out) {
    *out = NULL;
    const char *vname = h->cfg_str(h, cfg, "variant");
    const vit_variant *var = NULL;
    for (int i = 0; i < VIT_N_VARIANTS; i++)
        if (!strcmp(vit_variants[i].name, vname)) var = &vit_variants[i];
    if (!var) return h->error(h, "vit: unknown variant '%s'", vname), -1;

    vit *v = calloc(1, sizeof *v);
    if (!v) return h->error(h, "vit: out of host memory"), -1;
    v->h = h;
    v->ops = h->ops;
    v->var = var;
    v->c = (int)h->cfg_int(h, cfg, "channels");
    v->S = (int)h->cfg_int(h, cfg, "image_size");
    v->p = (int)h->cfg_int(h, cfg, "patch");
    v->D = (int)h->cfg_int(h, cfg, "dim");
    v->L = (int)h->cfg_int(h, cfg, "depth");
    v->Hh = (int)h->cfg_int(h, cfg, "heads");
    v->hd = (int)h->cfg_int(h, cfg, "dim_head");
    v->F = (int)h->cfg_int(h, cfg, "mlp_dim");
    v->batch = (int)h->cfg_int(h, cfg, "batch");
    v->eps = (float)h->cfg_float(h, cfg, "norm_eps");
    if (v->S % v->p) {
        h->error(h, "vit: image_size %d is not a multiple of patch %d", v->S, v->p);
        goto fail;
    }
    v->P = (v->S / v->p) * (v->S / v->p);
    v->T = v->P + 1;
    v->K = v->c * v->p * v->p;
    v->I = v->Hh * v->hd;
    v->scale = 1.0f / sqrtf((float)v->hd);
    if (read_norm(h, cfg, "mean", v->c, v->mean) || read_norm(h, cfg, "std", v->c, v->std)) goto fail;
    v->weights_id = strdup(h->cfg_str(h, cfg, "weights"));
    v->blocks = calloc((size_t)v->L + 1, sizeof *v->blocks);
    if (!v->weights_id || !v->blocks) {
        h->error(h, "vit: out of host memory");
        goto fail;
    }
    size_t np = params_layout(v, NULL);
    v->params = h->alloc(h, np * sizeof(float));
    if (!v->params) {
        h->error(h, "vit: cannot allocate %.1f MiB of parameters", np * 4.0 / 1048576.0);
        goto fail;
    }
    params_layout(v, v->params);
    if (acts_alloc(v, &v->infer, v->batch, 0)) goto fail;
    if (load_weights(v, v->weights_id)) goto fail;
    *out = v;
    return 0;
fail:
    vit_destroy(v);
    return -1;
}

static int vit_describe(void *self, clpdd_backbone_info *info) {
    vit *v = self;
    memset(info, 0, sizeof *info);
    info->channels = v->c;
    info->height = v->S;
    info->width = v->S;
    info->feature_dim = v->D;
    for (int i = 0; i < 3; i++) {
        info->mean[i] = v->mean[i];
        info->std[i] = v->std[i];
    }
    info->weights_id = v->weights_id;
    return 0;
}

static int vit_tape_create(void *self, int max_n, void **tape) {
    vit *v = self;
    *tape = NULL;
    if (max_n < 1) return v->h->error(v->h, "vit: tape for %d images", max_n), -1;
    vit_acts *a = calloc(1, sizeof *a);
    if (!a) return v->h->error(v->h, "vit: out of host memory"), -1;
    if (acts_alloc(v, a, max_n, 1)) {
        free(a);
        return -1;
    }
    *tape = a;
    return 0;
}

static void vit_tape_destroy(void *self, void *tape) {
    if (!tape) return;
    acts_free(self, tape);
    free(tape);
}

static int vit_forward(void *self, float *features, const float *images, int n, void *tape) {
    vit *v = self;
    if (n < 0) return v->h->error(v->h, "vit: forward of %d images", n), -1;
    if (!tape) {
        const size_t img = (size_t)v->c * (size_t)v->S * (size_t)v->S;
        for (int i = 0; i < n; i += v->batch) {
            int b = n - i < v->batch ? n - i : v->batch;
            vit_forward_pass(v, &v->infer, features + (size_t)i * (size_t)v->D, images + (size_t)i * img, b);
        }
        return 0;
    }
    vit_acts *a = tape;
    if (n > a->max_n) return v->h->error(v->h, "vit: forward of %d images on a tape for %d", n, a->max_n), -1;
    a->last_n = 0;
    if (n) vit_forward_pass(v, a, features, images, n);
    a->last_n = n;
    return 0;
}

static int vit_backward(void *self, float *dimages, const float *dfeatures, int n, void *tape) {
    vit *v = self;
    vit_acts *a = tape;
    if (!a) return v->h->error(v->h, "vit: backward needs the tape of a forward"), -1;
    if (n != a->last_n)
        return v->h->error(v->h, "vit: backward of %d images after a taped forward of %d", n, a->last_n), -1;
    if (n) vit_backward_pass(v, a, dimages, dfeatures, n);
    return 0;
}

static const clpdd_backbone_vt vit_vt = {
    /* .create = */ vit_create,
    /* .destroy = */ vit_destroy,
    /* .describe = */ vit_describe,
    /* .tape_create = */ vit_tape_create,
    /* .tape_destroy = */ vit_tape_destroy,
    /* .forward = */ vit_forward,
    /* .backward = */ vit_backward,
};

static const clpdd_plugin vit_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ CLPDD_ABI_MINOR,
    /* .kind = */ CLPDD_KIND_BACKBONE,
    /* .name = */ "vit",
    /* .version = */ "1.0.0",
    /* .summary = */ "Vision Transformer family (variant lucid); CLS feature after the final LayerNorm",
    /* .keys = */ vit_keys,
    /* .n_keys = */ VIT_N_KEYS,
    /* .vtable = */ &vit_vt,
};

CLPDD_DEFINE_PLUGIN(vit_plugin)
