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

/* ---- variants: name maps + defaults ---- */

#define IMAGENET_MEAN {0.485f, 0.456f, 0.406f}
#define IMAGENET_STD {0.229f, 0.224f, 0.225f}
#define CLIP_MEAN {0.48145466f, 0.4578275f, 0.40821073f}
#define CLIP_STD {0.26862954f, 0.26130258f, 0.27577711f}

/* timm's names (VisionTransformer and Eva use the same ones) */
#define TIMM_NAMES                                                                          \
    {/* .patch_order = */ VIT_PATCH_CPP, /* .patch_w_4d = */ 1,                              \
    /* .patch_w = */ "patch_embed.proj.weight", /* .patch_b = */ "patch_embed.proj.bias",   \
    /* .cls = */ "cls_token", /* .reg = */ "reg_token", /* .pos = */ "pos_embed",          \
    /* .pre_w = */ "norm_pre.weight", /* .pre_b = */ "norm_pre.bias",                      \
    /* .ln1_w = */ "blocks.%d.norm1.weight", /* .ln1_b = */ "blocks.%d.norm1.bias",        \
    /* .qkv_w = */ "blocks.%d.attn.qkv.weight", /* .qkv_b = */ "blocks.%d.attn.qkv.bias",  \
    /* .q_bias = */ "blocks.%d.attn.q_bias", /* .v_bias = */ "blocks.%d.attn.v_bias",      \
    /* .q_w = */ "blocks.%d.attn.q_proj.weight", /* .k_w = */ "blocks.%d.attn.k_proj.weight", \
    /* .v_w = */ "blocks.%d.attn.v_proj.weight",                                           \
    /* .q_b = */ "blocks.%d.attn.q_proj.bias", /* .k_b = */ "blocks.%d.attn.k_proj.bias",  \
    /* .v_b = */ "blocks.%d.attn.v_proj.bias",                                             \
    /* .proj_w = */ "blocks.%d.attn.proj.weight", /* .proj_b = */ "blocks.%d.attn.proj.bias", \
    /* .ls1 = */ "blocks.%d.ls1.gamma", /* .ls2 = */ "blocks.%d.ls2.gamma",                \
    /* .ln2_w = */ "blocks.%d.norm2.weight", /* .ln2_b = */ "blocks.%d.norm2.bias",        \
    /* .fc1_w = */ "blocks.%d.mlp.fc1.weight", /* .fc1_b = */ "blocks.%d.mlp.fc1.bias",    \
    /* .fc1g_w = */ "blocks.%d.mlp.fc1_g.weight", /* .fc1g_b = */ "blocks.%d.mlp.fc1_g.bias", \
    /* .fc1x_w = */ "blocks.%d.mlp.fc1_x.weight", /* .fc1x_b = */ "blocks.%d.mlp.fc1_x.bias", \
    /* .mlpn_w = */ "blocks.%d.mlp.norm.weight", /* .mlpn_b = */ "blocks.%d.mlp.norm.bias", \
    /* .fc2_w = */ "blocks.%d.mlp.fc2.weight", /* .fc2_b = */ "blocks.%d.mlp.fc2.bias",    \
    /* .norm_w = */ "norm.weight", /* .norm_b = */ "norm.bias",                            \
    /* .fcn_w = */ "fc_norm.weight", /* .fcn_b = */ "fc_norm.bias",                        \
    /* .head_w = */ "head.weight", /* .head_b = */ "head.bias",                            \
    /* cls_1d, pos_2d, head_t = */ 0, 0, 0}

/* the ViT-B/16-style defaults shared by the timm variants (weights, patch, act, mean/std
   and the flags follow) */
#define TIMM_VITB 224, 3

static const vit_variant vit_variants[] = {
    {
        /* .name = */ "lucid",
        /* .weights = */ "mnist-vit.safetensors",
        /* image_size, channels, patch, dim, depth, heads, dim_head, mlp_dim = */ 28, 1, 4, 64, 6, 4, 64, 128,
        /* .mlp_ratio = */ 2.0, /* .norm_eps = */ 1e-5,
        /* .mean = */ {0.1307f, 0.1307f, 0.1307f}, /* .std = */ {0.3081f, 0.3081f, 0.3081f},
        /* .act = */ VIT_ACT_RELU,
        /* qkv_bias, layer_scale, norm_pre, registers, pos_grid = */ 0, 0, 0, 0, 0,
        /* .pos_kind = */ VIT_POS_LEARNED, /* .pool = */ VIT_POOL_CLS, /* .proj = */ 0,
        /* .rope = */ 0, /* .rope_ref = */ 0, /* .pos_resample = */ VIT_RESAMPLE_PLAIN,
        {/* .patch_order = */ VIT_PATCH_PPC,
        /* .patch_w_4d = */ 0,
        /* .patch_w = */ "to_patch_embedding.1.weight",
        /* .patch_b = */ "to_patch_embedding.1.bias",
        /* .cls = */ "cls_token",
        /* .reg = */ NULL,
        /* .pos = */ "pos_embedding",
        /* .pre_w = */ NULL, /* .pre_b = */ NULL,
        /* .ln1_w = */ "transformer.layers.%d.0.norm.weight",
        /* .ln1_b = */ "transformer.layers.%d.0.norm.bias",
        /* .qkv_w = */ "transformer.layers.%d.0.fn.to_qkv.weight",
        /* .qkv_b = */ NULL,
        /* .q_bias = */ NULL, /* .v_bias = */ NULL,
        /* .q_w = */ NULL, /* .k_w = */ NULL, /* .v_w = */ NULL,
        /* .q_b = */ NULL, /* .k_b = */ NULL, /* .v_b = */ NULL,
        /* .proj_w = */ "transformer.layers.%d.0.fn.to_out.0.weight",
        /* .proj_b = */ "transformer.layers.%d.0.fn.to_out.0.bias",
        /* .ls1 = */ NULL, /* .ls2 = */ NULL,
        /* .ln2_w = */ "transformer.layers.%d.1.norm.weight",
        /* .ln2_b = */ "transformer.layers.%d.1.norm.bias",
        /* .fc1_w = */ "transformer.layers.%d.1.fn.net.0.weight",
        /* .fc1_b = */ "transformer.layers.%d.1.fn.net.0.bias",
        /* .fc1g_w = */ NULL, /* .fc1g_b = */ NULL, /* .fc1x_w = */ NULL, /* .fc1x_b = */ NULL,
        /* .mlpn_w = */ NULL, /* .mlpn_b = */ NULL,
        /* .fc2_w = */ "transformer.layers.%d.1.fn.net.3.weight",
        /* .fc2_b = */ "transformer.layers.%d.1.fn.net.3.bias",
        /* .norm_w = */ "mlp_head.0.weight",
        /* .norm_b = */ "mlp_head.0.bias",
        /* .fcn_w = */ NULL, /* .fcn_b = */ NULL, /* .head_w = */ NULL, /* .head_b = */ NULL,
        /* cls_1d, pos_2d, head_t = */ 0, 0, 0},
    },
    {
        /* timm vit_base_patch16_224 (augreg: mean = std = 0.5) */
        "vit", "vit_base_patch16_224.safetensors", TIMM_VITB, 16, 768, 12, 12, 0, 0, 4.0, 1e-6,
        {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, VIT_ACT_GELU_ERF, 1, 0, 0, 0, 0, VIT_POS_LEARNED, VIT_POOL_CLS, 0,
        0, 0, VIT_RESAMPLE_PLAIN, TIMM_NAMES,
    },
    {
        /* timm deit_base_patch16_224 */
        "deit", "deit_base_patch16_224.safetensors", TIMM_VITB, 16, 768, 12, 12, 0, 0, 4.0, 1e-6, IMAGENET_MEAN,
        IMAGENET_STD, VIT_ACT_GELU_ERF, 1, 0, 0, 0, 0, VIT_POS_LEARNED, VIT_POOL_CLS, 0, 0, 0, VIT_RESAMPLE_PLAIN,
        TIMM_NAMES,
    },
    {
        /* timm vit_base_patch14_dinov2 (pos_embed for 518 px: a 37×37 grid) */
        "dinov2", "vit_base_patch14_dinov2.safetensors", TIMM_VITB, 14, 768, 12, 12, 0, 0, 4.0, 1e-6,
        IMAGENET_MEAN, IMAGENET_STD, VIT_ACT_GELU_ERF, 1, 1, 0, 0, 37, VIT_POS_LEARNED, VIT_POOL_CLS, 0, 0, 0,
        VIT_RESAMPLE_HUB, TIMM_NAMES,
    },
    {
        /* timm vit_base_patch16_clip_quickgelu_224 (OpenAI CLIP ViT-B/16 image tower) */
        "clip", "vit_base_patch16_clip_quickgelu_224.safetensors", TIMM_VITB, 16, 768, 12, 12, 0, 0, 4.0, 1e-5,
        CLIP_MEAN, CLIP_STD, VIT_ACT_GELU_QUICK, 1, 0, 1, 0, 0, VIT_POS_LEARNED, VIT_POOL_CLS, 512, 0, 0,
        VIT_RESAMPLE_PLAIN, TIMM_NAMES,
    },
    {
        /* MoCo v3 vit_base (the original repo's names: timm's, under module.base_encoder. in its
           checkpoint, which layout = auto finds) */
        "mocov3", "mocov3_vit_base.safetensors", TIMM_VITB, 16, 768, 12, 12, 0, 0, 4.0, 1e-6, IMAGENET_MEAN,
        IMAGENET_STD, VIT_ACT_GELU_ERF, 1, 0, 0, 0, 0, VIT_POS_SINCOS, VIT_POOL_CLS, 0, 0, 0, VIT_RESAMPLE_PLAIN,
        TIMM_NAMES,
    },
    {
        /* timm eva02_base_patch14_224.mim_in22k */
        "eva02", "eva02_base_patch14_224.safetensors", TIMM_VITB, 14, 768, 12, 12, 0, 0, 4.0 * 2.0 / 3.0, 1e-6,
        CLIP_MEAN, CLIP_STD, VIT_ACT_SWIGLU, 1, 0, 0, 0, 0, VIT_POS_LEARNED, VIT_POOL_MEAN, 0, 1, 16,
        VIT_RESAMPLE_PLAIN, TIMM_NAMES,
    },
};
#define VIT_N_VARIANTS ((int)(sizeof vit_variants / sizeof vit_variants[0]))

/* open_clip's VisionTransformer under `visual.` (open_clip and OpenAI CLIP checkpoints):
   nn.MultiheadAttention's fused in_proj, c_fc / c_proj MLP, LayerScale ls_1 / ls_2 where
   present, no conv bias, class_embedding (D), positional_embedding (T, D), proj (D, E) */
#define OC_BLOCK "visual.transformer.resblocks.%d."
static const vit_names openclip_names = {
    /* .patch_order = */ VIT_PATCH_CPP, /* .patch_w_4d = */ 1,
    /* .patch_w = */ "visual.conv1.weight", /* .patch_b = */ "visual.conv1.bias",
    /* .cls = */ "visual.class_embedding", /* .reg = */ NULL, /* .pos = */ "visual.positional_embedding",
    /* .pre_w = */ "visual.ln_pre.weight", /* .pre_b = */ "visual.ln_pre.bias",
    /* .ln1_w = */ OC_BLOCK "ln_1.weight", /* .ln1_b = */ OC_BLOCK "ln_1.bias",
    /* .qkv_w = */ OC_BLOCK "attn.in_proj_weight", /* .qkv_b = */ OC_BLOCK "attn.in_proj_bias",
    /* .q_bias = */ NULL, /* .v_bias = */ NULL, /* .q_w = */ NULL, /* .k_w = */ NULL, /* .v_w = */ NULL,
    /* .q_b = */ NULL, /* .k_b = */ NULL, /* .v_b = */ NULL,
    /* .proj_w = */ OC_BLOCK "attn.out_proj.weight", /* .proj_b = */ OC_BLOCK "attn.out_proj.bias",
    /* .ls1 = */ OC_BLOCK "ls_1.gamma", /* .ls2 = */ OC_BLOCK "ls_2.gamma",
    /* .ln2_w = */ OC_BLOCK "ln_2.weight", /* .ln2_b = */ OC_BLOCK "ln_2.bias",
    /* .fc1_w = */ OC_BLOCK "mlp.c_fc.weight", /* .fc1_b = */ OC_BLOCK "mlp.c_fc.bias",
    /* .fc1g_w = */ NULL, /* .fc1g_b = */ NULL, /* .fc1x_w = */ NULL, /* .fc1x_b = */ NULL,
    /* .mlpn_w = */ NULL, /* .mlpn_b = */ NULL,
    /* .fc2_w = */ OC_BLOCK "mlp.c_proj.weight", /* .fc2_b = */ OC_BLOCK "mlp.c_proj.bias",
    /* .norm_w = */ "visual.ln_post.weight", /* .norm_b = */ "visual.ln_post.bias",
    /* .fcn_w = */ NULL, /* .fcn_b = */ NULL,
    /* .head_w = */ "visual.proj", /* .head_b = */ NULL,
    /* cls_1d, pos_2d, head_t = */ 1, 1, 1,
};
#undef OC_BLOCK

/* layout's values as h->cfg_enum gives them: its choices' order */
enum { VIT_LAYOUT_AUTO = 0, VIT_LAYOUT_TIMM, VIT_LAYOUT_OPEN_CLIP };

/* the prefixes layout = auto tries when key_prefix is unset: none, MoCo v3's training checkpoint
   (its DDP-wrapped base encoder), any DDP-wrapped model */
static const char *const auto_prefixes[] = {"", "module.base_encoder.", "module."};
#define VIT_N_AUTO_PREFIXES ((int)(sizeof auto_prefixes / sizeof auto_prefixes[0]))

static const char *const act_names[VIT_ACT_COUNT] = {"relu", "gelu", "quick_gelu", "swiglu"};
static const char *const pool_names[VIT_POOL_COUNT] = {"cls", "mean"};
static const char *const resample_names[VIT_RESAMPLE_COUNT] = {"plain", "timm", "hub"};

/* attention = auto on the CPU: materialised, measured faster there (results/bench/cpu/attention.md:
   both are register-blocked; the fused forward costs the same, its backward recomputes S, 1.1–1.4×) */
#ifndef VIT_CPU_AUTO_FUSED
#define VIT_CPU_AUTO_FUSED 0
#endif
#define VIT_FUSED_HD_MAX 128 /* the fused ops' widest head (core/numerics/attention_tile.h ATT_HD_MAX) */

/* ---- keys (the defaults shown are lucid's; another variant brings its own, see vit.h) ---- */

/* attention's values as h->cfg_enum gives them: its choices' order */
enum { VIT_ATTENTION_AUTO = 0, VIT_ATTENTION_FUSED, VIT_ATTENTION_MATERIALIZED };

static const clpdd_key vit_keys[] = {
    {"variant", CLPDD_KEY_ENUM, "lucid",
     "architecture, tensor names and defaults: lucid (lucidrains), vit / deit (timm), dinov2 (LayerScale, "
     "registers), clip (OpenAI: norm_pre, QuickGELU, projection), mocov3 (sin-cos positions), eva02 (SwiGLU, RoPE, "
     "mean pool); every key below defaults to the variant's value",
     1, 0, "lucid|vit|deit|dinov2|clip|mocov3|eva02"},
    {"weights", CLPDD_KEY_STRING, "mnist-vit.safetensors",
     "safetensors checkpoint (tensor names: see layout; tools/export_timm.py --pretrained); a relative path is "
     "looked up in CLPDD_MODEL_PATH, the shipped models/, the working directory (default: per variant)",
     1, 0, NULL},
    {"image_size", CLPDD_KEY_INT, "28", "input side S (square images, a multiple of patch; timm variants 224)", 1, 4096,
     NULL},
    {"channels", CLPDD_KEY_INT, "1", "input channels c (timm variants 3)", 1, 3, NULL},
    {"patch", CLPDD_KEY_INT, "4", "patch side p (timm variants 16, dinov2 and eva02 14)", 1, 1024, NULL},
    {"dim", CLPDD_KEY_INT, "64", "model width D (timm variants 768)", 1, 65536, NULL},
    {"depth", CLPDD_KEY_INT, "6", "transformer blocks (timm variants 12)", 0, 1024, NULL},
    {"heads", CLPDD_KEY_INT, "4", "attention heads (timm variants 12)", 1, 1024, NULL},
    {"dim_head", CLPDD_KEY_INT, "64", "width of one attention head (lucid: independent of dim; others dim/heads)", 1,
     65536, NULL},
    {"mlp_dim", CLPDD_KEY_INT, "128", "hidden width F of the MLP (others: dim·mlp_ratio)", 1, 1048576, NULL},
    {"mlp_ratio", CLPDD_KEY_FLOAT, "2", "F = (int)(dim·mlp_ratio) when mlp_dim is not set (timm 4, eva02 8/3)", 0.01,
     64, NULL},
    {"norm_eps", CLPDD_KEY_FLOAT, "1e-5", "LayerNorm epsilon (timm variants 1e-6, clip 1e-5)", 0, 1, NULL},
    {"mean", CLPDD_KEY_FLOATS, "0.1307",
     "per-channel mean of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"std", CLPDD_KEY_FLOATS, "0.3081",
     "per-channel std of [0,1] pixels the weights were trained with (one value: every channel)", 1, 0, NULL},
    {"batch", CLPDD_KEY_INT, "256", "images per piece in inference (feature extraction)", 1, 1 << 20, NULL},
    {"act", CLPDD_KEY_ENUM, "relu", "MLP activation (vit/deit/dinov2/mocov3 gelu, clip quick_gelu, eva02 swiglu)", 1,
     0, "relu|gelu|quick_gelu|swiglu"},
    {"qkv_bias", CLPDD_KEY_BOOL, "false", "q, k, v projections have biases (all but lucid)", 1, 0, NULL},
    {"layer_scale", CLPDD_KEY_BOOL, "false", "LayerScale ls1/ls2 after attention and MLP (dinov2)", 1, 0, NULL},
    {"norm_pre", CLPDD_KEY_BOOL, "false", "LayerNorm of the embedded tokens before the blocks (clip's ln_pre)", 1, 0,
     NULL},
    {"registers", CLPDD_KEY_INT, "0", "register tokens after CLS (dinov2 *_reg4: 4)", 0, 256, NULL},
    {"pos_grid", CLPDD_KEY_INT, "0",
     "grid side of the checkpoint's position embedding, resampled to image_size/patch when different, as "
     "pos_resample says (0: the run's grid; dinov2 37)",
     0, 4096, NULL},
    {"pos_resample", CLPDD_KEY_ENUM, "plain",
     "how the position table reaches the run's grid when pos_grid differs, as each reference runs the encoder: "
     "plain = F.interpolate(size, bicubic, antialias off) (timm resample_abs_pos_embed(antialias=False)), timm = the "
     "same with antialias on (timm's pretrained loading at another img_size, dynamic_img_size), hub = the DINOv2 "
     "repository's interpolate_pos_encoding (torch.hub: scale_factor (G+0.1)/pos_grid, bicubic, antialias off) "
     "(dinov2 hub, the others plain)",
     1, 0, "plain|timm|hub"},
    {"layout", CLPDD_KEY_ENUM, "auto",
     "tensor names of the checkpoint: timm (the variant's own: timm's, lucid's), open_clip (open_clip / OpenAI "
     "CLIP: visual.conv1, visual.transformer.resblocks.N, visual.proj), auto = found from the file (its patch "
     "embedding; also under the prefixes module.base_encoder. and module.)",
     1, 0, "auto|timm|open_clip"},
    {"key_prefix", CLPDD_KEY_STRING, "",
     "put before every tensor name (e.g. module.base_encoder. for a MoCo v3 training checkpoint); unset with layout "
     "= auto: found from the file",
     1, 0, NULL},
    {"pos_prefix", CLPDD_KEY_BOOL, "true",
     "the position embedding has rows for CLS and registers (timm no_embed_class = false; dinov2 with registers: "
     "false)",
     1, 0, NULL},
    {"pool", CLPDD_KEY_ENUM, "cls",
     "feature: cls (final norm of CLS) or mean (fc_norm of the patch-token mean; eva02)", 1, 0, "cls|mean"},
    {"proj", CLPDD_KEY_INT, "0", "width of the projection ('head') after pooling, 0 = none (clip 512)", 0, 65536, NULL},
    {"rope", CLPDD_KEY_BOOL, "false", "2-D rotary embedding on q and k of the patch tokens (eva02)", 1, 0, NULL},
    {"rope_ref", CLPDD_KEY_INT, "0", "RoPE reference grid side, timm's ref_feat_shape (0: the run's grid; eva02 16)",
     0, 4096, NULL},
    {"attention", CLPDD_KEY_ENUM, "auto",
     "attention kernels: fused (no (n, heads, T, T) matrix; the tape keeps lse (n, heads, T) and the attention "
     "output per block instead of the probabilities; dim_head <= 128), materialized (the probabilities stored), "
     "auto = fused on a GPU (ops with is_device), materialized on the CPU (faster there); results agree to fp32 "
     "rounding",
     1, 0, "auto|fused|materialized"},
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
    const size_t I = (size_t)v->I, F = (size_t)v->F, Fu = (size_t)v->Fu, Hh = (size_t)v->Hh;
    const int L = v->L, glu = v->act == VIT_ACT_SWIGLU;
    const size_t NT = n * T;
    for (int j = 0; j <= 2 * L; j++) a->xs[j] = (taped || j == 0) ? CARVE(NT * D) : a->xs[0];
    for (int l = 0; l < L; l++) {
        int fresh = taped || l == 0;
        a->mean1[l] = taped ? CARVE(NT) : NULL;
        a->rstd1[l] = taped ? CARVE(NT) : NULL;
        a->mean2[l] = taped ? CARVE(NT) : NULL;
        a->rstd2[l] = taped ? CARVE(NT) : NULL;
        a->mean3[l] = taped && glu ? CARVE(NT) : NULL;
        a->rstd3[l] = taped && glu ? CARVE(NT) : NULL;
        a->qkv[l] = fresh ? CARVE(NT * 3 * I) : a->qkv[0];
        a->att[l] = fresh ? CARVE(v->fused ? n * Hh * T : n * Hh * T * T) : a->att[0]; /* lse or P */
        a->aos[l] = (taped && v->fused) || l == 0 ? CARVE(NT * I) : a->aos[0];
        a->u[l] = fresh ? CARVE(NT * Fu) : a->u[0];
        a->m[l] = !glu ? NULL : fresh ? CARVE(NT * F) : a->m[0];
    }
    a->x0 = v->norm_pre ? CARVE(NT * D) : NULL;
    a->meanp = taped && v->norm_pre ? CARVE(NT) : NULL;
    a->rstdp = taped && v->norm_pre ? CARVE(NT) : NULL;
    a->cls = CARVE(n * D);
    a->pooln = CARVE(n * D);
    a->meanf = taped ? CARVE(n) : NULL;
    a->rstdf = taped ? CARVE(n) : NULL;
    a->patches = CARVE(n * P * K);
    a->emb = CARVE(n * P * D);
    a->h = CARVE(NT * D);
    a->r = CARVE(NT * F);
    if (taped) {
        a->dx = CARVE(NT * D);
        a->dh = CARVE(NT * D);
        a->dln = CARVE(NT * D);
        a->dbig = CARVE(NT * (3 * I > Fu ? 3 * I : Fu));
        a->dao = CARVE(NT * I);
        a->datt = CARVE(v->fused ? n * Hh * T : n * Hh * T * T); /* delta or dP */
        a->dcls = CARVE(n * D);
        a->dpool = CARVE(n * D);
    } else {
        a->dx = a->dh = a->dln = a->dbig = a->dao = a->datt = a->dcls = a->dpool = NULL;
    }
#undef CARVE
    return off;
}

static void acts_free(const vit *v, vit_acts *a) {
    if (a->block) v->h->free(v->h, a->block);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

size_t vit_acts_ptrs(const vit *v) { return (size_t)(2 * v->L + 1) + 11 * (size_t)v->L + 1; }

static int acts_alloc(const vit *v, vit_acts *a, int max_n, int taped) {
    memset(a, 0, sizeof *a);
    const int L = v->L;
    a->slots = taped && v->piece_cap > 0 ? v->ops->pieces_slots() : 1;
    a->ptrs = calloc((size_t)(1 + (a->slots > 1 ? a->slots : 0)) * vit_acts_ptrs(v), sizeof(float *));
    if (!a->ptrs) return v->h->error(v->h, "vit: out of host memory"), -1;
    float **p = a->ptrs;
    a->xs = p, p += 2 * L + 1;
    a->mean1 = p, p += L;
    a->rstd1 = p, p += L;
    a->qkv = p, p += L;
    a->att = p, p += L;
    a->aos = p, p += L;
    a->mean2 = p, p += L;
    a->rstd2 = p, p += L;
    a->u = p, p += L;
    a->m = p, p += L;
    a->mean3 = p, p += L;
    a->rstd3 = p;
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

/* a tensor's name in the checkpoint: key_prefix, then the layout's name for block `layer` */
static void name_of(const vit *v, char *buf, size_t len, const char *fmt, int layer) {
    size_t n = (size_t)snprintf(buf, len, "%s", v->prefix ? v->prefix : "");
    if (n < len) snprintf(buf + n, len - n, fmt, layer);
}

static int has_named(vit *v, clpdd_weights *w, const char *fmt, int layer) {
    if (!fmt) return 0;
    char name[512];
    name_of(v, name, sizeof name, fmt, layer);
    return v->h->weights_has(v->h, w, name);
}

static int read_named(vit *v, clpdd_weights *w, const char *fmt, int layer, int ndim, const int64_t *shape,
                      float *dst) {
    char name[512];
    name_of(v, name, sizeof name, fmt, layer);
    return v->h->weights_read(v->h, w, name, ndim, shape, dst);
}

/* a tensor into host memory (through a temporary buffer in ops memory) */
static int read_host(vit *v, clpdd_weights *w, const char *fmt, int layer, int ndim, const int64_t *shape,
                     float *host) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    float *tmp = v->h->alloc(v->h, count * sizeof(float) + 1);
    if (!tmp) return -1;
    int rc = read_named(v, w, fmt, layer, ndim, shape, tmp);
    if (!rc) v->ops->to_host(host, tmp, count * sizeof(float));
    v->h->free(v->h, tmp);
    return rc;
}

/* a flag asks for tensors the variant has no names for */
static int no_names(vit *v, const char *what, const char *key) {
    return v->h->error(v->h, "vit: variant %s with layout %s has no tensor names for %s (key %s)", v->var->name,
                       v->nm == &openclip_names ? "open_clip" : "timm", what, key), -1;
}

/* the checkpoint holds a tensor that the configuration ignores: refuse rather than compute
   something else silently */
static int unexpected(vit *v, const char *fmt, int layer, const char *key) {
    char name[512];
    name_of(v, name, sizeof name, fmt, layer);
    return v->h->error(v->h, "vit: the checkpoint has '%s' but %s = false", name, key), -1;
}

/* the patch-embedding weight (D, K), its columns reordered to ops->patchify's (c, py, px) */
static int load_patch_weight(vit *v, clpdd_weights *w) {
    const vit_names *nm = v->nm;
    const int64_t shape2[2] = {v->D, v->K}, shape4[4] = {v->D, v->c, v->p, v->p};
    int rc = nm->patch_w_4d ? read_named(v, w, nm->patch_w, 0, 4, shape4, v->patch_w)
                             : read_named(v, w, nm->patch_w, 0, 2, shape2, v->patch_w);
    if (rc || nm->patch_order == VIT_PATCH_CPP || v->c == 1) return rc;
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

/* MoCo v3's build_2d_sincos_position_embedding (temperature 10000) for patch t = y·G + x:
   [sin(y·ω_k), cos(y·ω_k), sin(x·ω_k), cos(x·ω_k)], ω_k = 10000^(−k/(D/4)), k < D/4. (Its
   meshgrid(grid_w, grid_h) with 'ij' indexing puts the row index y in the "w" half.) */
static void sincos_table(float *pos, int G, int D) {
    const int pd = D / 4;
    for (int y = 0; y < G; y++)
        for (int x = 0; x < G; x++) {
            float *o = pos + ((size_t)y * G + x) * D;
            for (int k = 0; k < pd; k++) {
                float omega = 1.0f / powf(10000.0f, (float)k / (float)pd);
                float ay = (float)y * omega, ax = (float)x * omega;
                o[k] = sinf(ay);
                o[pd + k] = cosf(ay);
                o[2 * pd + k] = sinf(ax);
                o[3 * pd + k] = cosf(ax);
            }
        }
}

/* timm's RotaryEmbeddingCat (in_pixels = False, temperature 10000, 'ij' grid) for patch
   t = y·G + x: pair i < hd/4 turns by y'·b_i, pair hd/4 + i by x'·b_i, b_i = 10000^(−i/(hd/4)),
   y' = y·ref/G (EVA's rescaling to the reference grid; y' = y when ref = 0). */
static void rope_tables(float *sn, float *cs, int G, int hd, int ref) {
    const int nb = hd / 4, half = hd / 2;
    for (int y = 0; y < G; y++)
        for (int x = 0; x < G; x++) {
            float ty = (float)y, tx = (float)x;
            if (ref > 0) {
                ty = ty / (float)G * (float)ref;
                tx = tx / (float)G * (float)ref;
            }
            size_t row = ((size_t)y * G + x) * (size_t)half;
            for (int i = 0; i < half; i++) {
                int k = i < nb ? i : i - nb;
                float band = 1.0f / powf(10000.0f, (float)k / (float)nb);
                float ang = (i < nb ? ty : tx) * band;
                sn[row + i] = sinf(ang);
                cs[row + i] = cosf(ang);
            }
        }
}

/* rows r of a (rows, cols) matrix in ops memory scaled by g[r] (host): LayerScale folding */
static int scale_rows(vit *v, float *m, int rows, int cols, const float *g) {
    size_t count = (size_t)rows * (size_t)cols;
    float *tmp = malloc(count * sizeof(float));
    if (!tmp) return v->h->error(v->h, "vit: out of host memory"), -1;
    v->ops->to_host(tmp, m, count * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) tmp[(size_t)r * cols + c] *= g[r];
    v->ops->to_device(m, tmp, count * sizeof(float));
    free(tmp);
    return 0;
}

/* the checkpoint's position rows (pp + G0², D) into host memory: (1, rows, D), or (rows, D)
   in open_clip's layout */
static int read_pos(vit *v, clpdd_weights *w, int rows, float *pos) {
    const int64_t s3[3] = {1, rows, v->D}, s2[2] = {rows, v->D};
    return v->nm->pos_2d ? read_host(v, w, v->nm->pos, 0, 2, s2, pos) : read_host(v, w, v->nm->pos, 0, 3, s3, pos);
}

/* the patch rows of the position table (P, D) at the run's grid from the checkpoint's
   (G0², D), resampled as pos_resample says when G0 ≠ G */
static int grid_rows(vit *v, float *grid, const float *ck, int G0) {
    if (G0 == v->G) {
        memcpy(grid, ck, (size_t)v->P * v->D * sizeof(float));
        return 0;
    }
    int rc = vit_pos_resample(grid, ck, G0, v->G, v->D, v->pos_resample);
    if (!rc) return 0;
    if (rc == -2) return v->h->error(v->h, "vit: out of host memory"), -1;
    return v->h->error(v->h, "vit: pos_resample = %s cannot bring pos_grid %d to the grid %d (image_size %d / "
                             "patch %d)",
                       resample_names[v->pos_resample], G0, v->G, v->S, v->p), -1;
}

/* tok_init (T, D): CLS and registers with their position rows, patch rows = pos + patch bias */
static int load_tokens(vit *v, clpdd_weights *w) {
    const vit_names *nm = v->nm;
    const int D = v->D, T = v->T, P = v->P, R = v->R, npt = v->npt;
    const int G0 = v->pos_grid ? v->pos_grid : v->G, pp = v->pos_prefix ? npt : 0;
    const int64_t sD[1] = {D}, sCls[3] = {1, 1, D}, sReg[3] = {1, R, D};
    float *tok = calloc((size_t)T * D, sizeof(float)), *bias = malloc((size_t)D * sizeof(float));
    float *pos = calloc((size_t)(pp + G0 * G0) * D, sizeof(float)), *grid = malloc((size_t)P * D * sizeof(float));
    int rc = 0;
    if (!tok || !bias || !pos || !grid) rc = (v->h->error(v->h, "vit: out of host memory"), -1);
    if (!rc) rc = nm->cls_1d ? read_host(v, w, nm->cls, 0, 1, sD, tok) : read_host(v, w, nm->cls, 0, 3, sCls, tok);
    if (!rc && R) rc = nm->reg ? read_host(v, w, nm->reg, 0, 3, sReg, tok + D) : no_names(v, "registers", "registers");
    /* timm drops the patch bias with norm_pre (CLIP's conv1 has none): optional there only */
    if (!rc && v->norm_pre && !has_named(v, w, nm->patch_b, 0)) memset(bias, 0, (size_t)D * sizeof(float));
    else if (!rc) rc = read_host(v, w, nm->patch_b, 0, 1, sD, bias);
    if (!rc && v->pos_kind == VIT_POS_LEARNED) {
        rc = read_pos(v, w, pp + G0 * G0, pos);
        if (!rc) rc = grid_rows(v, grid, pos + (size_t)pp * D, G0);
    } else if (!rc) {
        sincos_table(grid, v->G, D); /* MoCo v3: the CLS position row is zero */
    }
    if (!rc) {
        for (int t = 0; t < npt && t < pp; t++)
            for (int d = 0; d < D; d++) tok[(size_t)t * D + d] += pos[(size_t)t * D + d];
        for (int j = 0; j < P; j++)
            for (int d = 0; d < D; d++) tok[(size_t)(npt + j) * D + d] = grid[(size_t)j * D + d] + bias[d];
        v->ops->to_device(v->tok_init, tok, (size_t)T * D * sizeof(float));
    }
    free(tok), free(bias), free(pos), free(grid);
    return rc;
}

/* q, k, v projections of block l into b->qkv_w (3I, D) and b->qkv_b (3I): a fused weight, or
   separate q/k/v projections; biases fused, as separate q and v biases (k: 0), or per
   projection */
static int load_qkv(vit *v, clpdd_weights *w, int l, vit_block *b) {
    const vit_names *nm = v->nm;
    const int64_t I = v->I, D = v->D, sQkv[2] = {3 * I, D}, sI[1] = {I}, s3I[1] = {3 * I}, sProj[2] = {I, D};
    const size_t ID = (size_t)I * (size_t)D;
    int fused = !nm->q_w || has_named(v, w, nm->qkv_w, l) || !has_named(v, w, nm->q_w, l);
    int rc;
    if (fused) {
        rc = nm->qkv_w ? read_named(v, w, nm->qkv_w, l, 2, sQkv, b->qkv_w) : no_names(v, "qkv", "variant");
    } else {
        rc = read_named(v, w, nm->q_w, l, 2, sProj, b->qkv_w);
        if (!rc) rc = read_named(v, w, nm->k_w, l, 2, sProj, b->qkv_w + ID);
        if (!rc) rc = read_named(v, w, nm->v_w, l, 2, sProj, b->qkv_w + 2 * ID);
    }
    const char *any_bias = has_named(v, w, nm->qkv_b, l)    ? nm->qkv_b
                           : has_named(v, w, nm->q_bias, l) ? nm->q_bias
                           : has_named(v, w, nm->q_b, l)    ? nm->q_b
                                                             : NULL;
    if (rc) return rc;
    if (!v->qkv_bias) return any_bias ? unexpected(v, any_bias, l, "qkv_bias") : 0;
    if (fused && nm->qkv_b && (has_named(v, w, nm->qkv_b, l) || !nm->q_bias))
        return read_named(v, w, nm->qkv_b, l, 1, s3I, b->qkv_b);
    v->ops->fill(b->qkv_b, 0.0f, (size_t)(3 * I));
    const char *qb = fused ? nm->q_bias : nm->q_b, *vb = fused ? nm->v_bias : nm->v_b;
    if (!qb || !vb) return no_names(v, "q/v biases", "qkv_bias");
    rc = read_named(v, w, qb, l, 1, sI, b->qkv_b);
    if (!rc && !fused && has_named(v, w, nm->k_b, l)) rc = read_named(v, w, nm->k_b, l, 1, sI, b->qkv_b + I);
    if (!rc) rc = read_named(v, w, vb, l, 1, sI, b->qkv_b + 2 * I);
    return rc;
}

/* LayerScale gamma (D) of block l folded into the rows of W (D, cols) and b (D) */
static int fold_layer_scale(vit *v, clpdd_weights *w, const char *fmt, int l, float *W, int cols, float *bvec) {
    const int64_t sD[1] = {v->D};
    float *g = malloc((size_t)v->D * sizeof(float));
    if (!g) return v->h->error(v->h, "vit: out of host memory"), -1;
    int rc = read_host(v, w, fmt, l, 1, sD, g);
    if (!rc) rc = scale_rows(v, W, v->D, cols, g);
    if (!rc) rc = scale_rows(v, bvec, v->D, 1, g);
    free(g);
    return rc;
}

static int load_block(vit *v, clpdd_weights *w, int l) {
    const vit_names *nm = v->nm;
    vit_block *b = &v->blocks[l];
    const int64_t D = v->D, I = v->I, F = v->F;
    const int64_t sD[1] = {D}, sProj[2] = {D, I}, sFc1[2] = {F, D}, sF[1] = {F}, sFc2[2] = {D, F};
    int rc = read_named(v, w, nm->ln1_w, l, 1, sD, b->ln1_w);
    if (!rc) rc = read_named(v, w, nm->ln1_b, l, 1, sD, b->ln1_b);
    if (!rc) rc = load_qkv(v, w, l, b);
    if (!rc) rc = read_named(v, w, nm->proj_w, l, 2, sProj, b->proj_w);
    if (!rc) rc = read_named(v, w, nm->proj_b, l, 1, sD, b->proj_b);
    if (!rc) rc = read_named(v, w, nm->ln2_w, l, 1, sD, b->ln2_w);
    if (!rc) rc = read_named(v, w, nm->ln2_b, l, 1, sD, b->ln2_b);
    if (!rc && v->act == VIT_ACT_SWIGLU) {
        if (!nm->fc1g_w || !nm->fc1x_w || !nm->mlpn_w) return no_names(v, "a SwiGLU MLP", "act");
        const size_t FD = (size_t)F * (size_t)D;
        rc = read_named(v, w, nm->fc1g_w, l, 2, sFc1, b->fc1_w);
        if (!rc) rc = read_named(v, w, nm->fc1g_b, l, 1, sF, b->fc1_b);
        if (!rc) rc = read_named(v, w, nm->fc1x_w, l, 2, sFc1, b->fc1_w + FD);
        if (!rc) rc = read_named(v, w, nm->fc1x_b, l, 1, sF, b->fc1_b + F);
        if (!rc) rc = read_named(v, w, nm->mlpn_w, l, 1, sF, b->mlpn_w);
        if (!rc) rc = read_named(v, w, nm->mlpn_b, l, 1, sF, b->mlpn_b);
    } else if (!rc) {
        rc = read_named(v, w, nm->fc1_w, l, 2, sFc1, b->fc1_w);
        if (!rc) rc = read_named(v, w, nm->fc1_b, l, 1, sF, b->fc1_b);
    }
    if (!rc) rc = read_named(v, w, nm->fc2_w, l, 2, sFc2, b->fc2_w);
    if (!rc) rc = read_named(v, w, nm->fc2_b, l, 1, sD, b->fc2_b);
    if (!rc && v->layer_scale) {
        if (!nm->ls1 || !nm->ls2) return no_names(v, "LayerScale", "layer_scale");
        rc = fold_layer_scale(v, w, nm->ls1, l, b->proj_w, v->I, b->proj_b);
        if (!rc) rc = fold_layer_scale(v, w, nm->ls2, l, b->fc2_w, v->F, b->fc2_b);
    } else if (!rc && has_named(v, w, nm->ls1, l)) {
        rc = unexpected(v, nm->ls1, l, "layer_scale");
    }
    return rc;
}

/* the projection (E, D) into v->head_w: timm's head.weight as it is, open_clip's proj (D, E)
   transposed (x·proj = proj^T x); the bias, where the layout has one, else 0 */
static int load_head(vit *v, clpdd_weights *w) {
    const vit_names *nm = v->nm;
    const int64_t D = v->D, E = v->E, sHead[2] = {E, D}, sHeadT[2] = {D, E}, sE[1] = {E};
    if (!nm->head_w) return no_names(v, "a projection", "proj");
    int rc;
    if (nm->head_t) {
        float *pt = malloc((size_t)(D * E) * sizeof(float)), *p = malloc((size_t)(D * E) * sizeof(float));
        rc = pt && p ? read_host(v, w, nm->head_w, 0, 2, sHeadT, pt)
                     : (v->h->error(v->h, "vit: out of host memory"), -1);
        for (int64_t e = 0; !rc && e < E; e++)
            for (int64_t d = 0; d < D; d++) p[e * D + d] = pt[d * E + e];
        if (!rc) v->ops->to_device(v->head_w, p, (size_t)(D * E) * sizeof(float));
        free(pt), free(p);
    } else {
        rc = read_named(v, w, nm->head_w, 0, 2, sHead, v->head_w);
    }
    if (!rc && has_named(v, w, nm->head_b, 0)) return read_named(v, w, nm->head_b, 0, 1, sE, v->head_b);
    if (!rc) v->ops->fill(v->head_b, 0.0f, (size_t)E);
    return rc;
}

/* the tables computed rather than read: the ones of mean pooling, RoPE's sin and cos */
static int fixed_tables(vit *v) {
    const clpdd_host *h = v->h;
    if (v->pool == VIT_POOL_MEAN) {
        float *one = malloc((size_t)v->P * sizeof(float));
        if (!one) return h->error(h, "vit: out of host memory"), -1;
        for (int i = 0; i < v->P; i++) one[i] = 1.0f;
        v->ops->to_device(v->ones, one, (size_t)v->P * sizeof(float));
        free(one);
    }
    if (v->rope) {
        size_t count = (size_t)v->P * (size_t)(v->hd / 2);
        float *sn = malloc(count * sizeof(float)), *cs = malloc(count * sizeof(float));
        if (!sn || !cs) {
            free(sn), free(cs);
            return h->error(h, "vit: out of host memory"), -1;
        }
        rope_tables(sn, cs, v->G, v->hd, v->rope_ref);
        v->ops->to_device(v->rope_sin, sn, count * sizeof(float));
        v->ops->to_device(v->rope_cos, cs, count * sizeof(float));
        free(sn), free(cs);
    }
    return 0;
}

/* v->nm and v->prefix from the keys layout and key_prefix. layout = auto looks for the patch
   embedding under each layout (and, without key_prefix, under each of auto_prefixes) and takes
   the one that is there; several are an error, none too unless weights = random (whose
   tensors all exist: the variant's own names). */
static int resolve_layout(vit *v, clpdd_weights *w, int prefix_set) {
    const vit_names *layouts[2] = {&v->var->names, &openclip_names};
    v->nm = layouts[v->layout == VIT_LAYOUT_OPEN_CLIP];
    if (v->layout != VIT_LAYOUT_AUTO || !strcmp(v->weights_id, CLPDD_RANDOM_WEIGHTS)) return 0;
    char *user = v->prefix, found[2][600];
    const char *prefix = user;
    int nfound = 0;
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < (prefix_set ? 1 : VIT_N_AUTO_PREFIXES); i++) {
            v->prefix = prefix_set ? user : (char *)auto_prefixes[i];
            if (!has_named(v, w, layouts[l]->patch_w, 0)) continue;
            if (nfound < 2) name_of(v, found[nfound], sizeof found[0], layouts[l]->patch_w, 0);
            if (nfound++ == 0) v->nm = layouts[l], prefix = v->prefix;
        }
    v->prefix = user;
    if (nfound > 1)
        return v->h->error(v->h, "vit: %s: more than one layout fits ('%s', '%s'%s); set layout and key_prefix",
                           v->weights_id, found[0], found[1], nfound > 2 ? ", ..." : ""), -1;
    if (!nfound)
        return v->h->error(v->h, "vit: %s: no patch embedding of a known layout ('%s%s' for variant %s, '%s%s' for "
                                 "open_clip%s); set layout and key_prefix to the checkpoint's",
                           v->weights_id, user, v->var->names.patch_w, v->var->name, user, openclip_names.patch_w,
                           prefix_set ? "" : ", also under module.base_encoder. and module."), -1;
    if (prefix == user) return 0;
    char *copy = strdup(prefix);
    if (!copy) return v->h->error(v->h, "vit: out of host memory"), -1;
    free(user);
    v->prefix = copy;
    return 0;
}

static int load_weights(vit *v, const char *path, int prefix_set) {
    const clpdd_host *h = v->h;
    clpdd_weights *w = h->weights_open(h, path);
    if (!w) return -1; /* the host's message names the path */
    int rc = resolve_layout(v, w, prefix_set);
    const vit_names *nm = v->nm;
    const int64_t sD[1] = {v->D};
    if (!rc) rc = load_patch_weight(v, w);
    if (!rc && v->norm_pre) { /* before the tokens: norm_pre decides whether the patch bias is optional */
        if (!nm->pre_w) rc = no_names(v, "norm_pre", "norm_pre");
        if (!rc) rc = read_named(v, w, nm->pre_w, 0, 1, sD, v->pre_w);
        if (!rc) rc = read_named(v, w, nm->pre_b, 0, 1, sD, v->pre_b);
    } else if (!rc && has_named(v, w, nm->pre_w, 0)) {
        rc = unexpected(v, nm->pre_w, 0, "norm_pre");
    }
    if (!rc) rc = load_tokens(v, w);
    for (int l = 0; l < v->L && !rc; l++) rc = load_block(v, w, l);
    const char *nw = v->pool == VIT_POOL_MEAN ? nm->fcn_w : nm->norm_w;
    const char *nb = v->pool == VIT_POOL_MEAN ? nm->fcn_b : nm->norm_b;
    if (!rc && !nw) rc = no_names(v, "fc_norm", "pool");
    if (!rc) rc = read_named(v, w, nw, 0, 1, sD, v->norm_w);
    if (!rc) rc = read_named(v, w, nb, 0, 1, sD, v->norm_b);
    if (!rc && v->E) rc = load_head(v, w);
    h->weights_close(h, w);
    return rc ? rc : fixed_tables(v);
}

/* carve the parameters out of one allocation; base = NULL counts */
static size_t params_layout(vit *v, float *base) {
    size_t off = 0;
#define PCARVE(count) carve(base, &off, (count), 1)
    const size_t D = (size_t)v->D, I = (size_t)v->I, F = (size_t)v->F, Fu = (size_t)v->Fu, E = (size_t)v->E;
    v->patch_w = PCARVE(D * (size_t)v->K);
    v->tok_init = PCARVE((size_t)v->T * D);
    v->pre_w = v->norm_pre ? PCARVE(D) : NULL;
    v->pre_b = v->norm_pre ? PCARVE(D) : NULL;
    v->norm_w = PCARVE(D);
    v->norm_b = PCARVE(D);
    v->head_w = E ? PCARVE(E * D) : NULL;
    v->head_b = E ? PCARVE(E) : NULL;
    v->ones = v->pool == VIT_POOL_MEAN ? PCARVE((size_t)v->P) : NULL;
    v->rope_sin = v->rope ? PCARVE((size_t)v->P * (size_t)(v->hd / 2)) : NULL;
    v->rope_cos = v->rope ? PCARVE((size_t)v->P * (size_t)(v->hd / 2)) : NULL;
    for (int l = 0; l < v->L; l++) {
        vit_block *b = &v->blocks[l];
        b->ln1_w = PCARVE(D);
        b->ln1_b = PCARVE(D);
        b->qkv_w = PCARVE(3 * I * D);
        b->qkv_b = v->qkv_bias ? PCARVE(3 * I) : NULL;
        b->proj_w = PCARVE(D * I);
        b->proj_b = PCARVE(D);
        b->ln2_w = PCARVE(D);
        b->ln2_b = PCARVE(D);
        b->fc1_w = PCARVE(Fu * D);
        b->fc1_b = PCARVE(Fu);
        b->mlpn_w = v->act == VIT_ACT_SWIGLU ? PCARVE(F) : NULL;
        b->mlpn_b = v->act == VIT_ACT_SWIGLU ? PCARVE(F) : NULL;
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
    free(v->prefix);
    free(v);
}

static int read_norm(const clpdd_host *h, const clpdd_section *cfg, const char *key, int c, const float *vdef,
                     float *out) {
    if (!h->cfg_is_set(h, cfg, key)) {
        for (int i = 0; i < 3; i++) out[i] = vdef[i];
        return 0;
    }
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

/* a key's value when the INI sets it, else the variant's default */
static int key_int(const clpdd_host *h, const clpdd_section *cfg, const char *key, int vdef) {
    return h->cfg_is_set(h, cfg, key) ? (int)h->cfg_int(h, cfg, key) : vdef;
}
static double key_float(const clpdd_host *h, const clpdd_section *cfg, const char *key, double vdef) {
    return h->cfg_is_set(h, cfg, key) ? h->cfg_float(h, cfg, key) : vdef;
}
static int key_bool(const clpdd_host *h, const clpdd_section *cfg, const char *key, int vdef) {
    return h->cfg_is_set(h, cfg, key) ? h->cfg_bool(h, cfg, key) : vdef;
}
/* an ENUM key whose choices are in its C enum's order (act_names, pool_names) */
static int key_enum(const clpdd_host *h, const clpdd_section *cfg, const char *key, int vdef) {
    return h->cfg_is_set(h, cfg, key) ? h->cfg_enum(h, cfg, key) : vdef;
}

/* the architecture in force: every key the INI sets, else the variant's default (shared by
   create and key_default, so config.ini shows exactly what create builds) */
static int vit_read_config(const clpdd_host *h, const clpdd_section *cfg, vit *v) {
    const int vi = h->cfg_enum(h, cfg, "variant"); /* the choices list vit_variants in order */
    if (vi < 0 || vi >= VIT_N_VARIANTS) return h->error(h, "vit: unknown variant '%s'", h->cfg_str(h, cfg, "variant")), -1;
    const vit_variant *var = &vit_variants[vi];
    v->h = h;
    v->ops = h->ops;
    v->var = var;
    v->c = key_int(h, cfg, "channels", var->channels);
    v->S = key_int(h, cfg, "image_size", var->image_size);
    v->p = key_int(h, cfg, "patch", var->patch);
    v->D = key_int(h, cfg, "dim", var->dim);
    v->L = key_int(h, cfg, "depth", var->depth);
    v->Hh = key_int(h, cfg, "heads", var->heads);
    v->batch = (int)h->cfg_int(h, cfg, "batch");
    v->eps = (float)key_float(h, cfg, "norm_eps", var->norm_eps);
    v->act = (vit_act)key_enum(h, cfg, "act", var->act);
    v->qkv_bias = key_bool(h, cfg, "qkv_bias", var->qkv_bias);
    v->layer_scale = key_bool(h, cfg, "layer_scale", var->layer_scale);
    v->norm_pre = key_bool(h, cfg, "norm_pre", var->norm_pre);
    v->R = key_int(h, cfg, "registers", var->registers);
    v->pos_grid = key_int(h, cfg, "pos_grid", var->pos_grid);
    v->pos_prefix = key_bool(h, cfg, "pos_prefix", v->R == 0); /* timm: registers ⇒ no_embed_class */
    v->pos_kind = var->pos_kind;
    v->pool = (vit_pool)key_enum(h, cfg, "pool", var->pool);
    v->E = key_int(h, cfg, "proj", var->proj);
    v->rope = key_bool(h, cfg, "rope", var->rope);
    v->rope_ref = key_int(h, cfg, "rope_ref", var->rope_ref);
    v->pos_resample = (vit_resample)key_enum(h, cfg, "pos_resample", var->pos_resample);
    v->layout = h->cfg_enum(h, cfg, "layout");
    if (h->cfg_is_set(h, cfg, "dim_head") || var->dim_head) {
        v->hd = key_int(h, cfg, "dim_head", var->dim_head);
    } else if (v->D % v->Hh) {
        h->error(h, "vit: dim %d is not a multiple of heads %d (set dim_head)", v->D, v->Hh);
        return -1;
    } else {
        v->hd = v->D / v->Hh;
    }
    if (h->cfg_is_set(h, cfg, "mlp_dim") || (var->mlp_dim && !h->cfg_is_set(h, cfg, "mlp_ratio")))
        v->F = key_int(h, cfg, "mlp_dim", var->mlp_dim);
    else
        v->F = (int)(v->D * key_float(h, cfg, "mlp_ratio", var->mlp_ratio));
    if (v->F < 1) {
        h->error(h, "vit: MLP width %d (dim·mlp_ratio) must be at least 1", v->F);
        return -1;
    }
    v->Fu = v->act == VIT_ACT_SWIGLU ? 2 * v->F : v->F;
    if (v->S % v->p) {
        h->error(h, "vit: image_size %d is not a multiple of patch %d", v->S, v->p);
        return -1;
    }
    if (v->pos_kind == VIT_POS_SINCOS && v->D % 4) {
        h->error(h, "vit: dim %d must be a multiple of 4 for the 2-D sin-cos position embedding", v->D);
        return -1;
    }
    if (v->rope && v->hd % 4) {
        h->error(h, "vit: dim_head %d must be a multiple of 4 for 2-D RoPE", v->hd);
        return -1;
    }
    v->G = v->S / v->p;
    v->P = v->G * v->G;
    v->npt = 1 + v->R;
    v->T = v->npt + v->P;
    v->K = v->c * v->p * v->p;
    v->I = v->Hh * v->hd;
    v->scale = 1.0f / sqrtf((float)v->hd);
    if (read_norm(h, cfg, "mean", v->c, var->mean, v->mean) || read_norm(h, cfg, "std", v->c, var->std, v->std))
        return -1;
    /* attention: fused needs the ABI 1.3 ops (a core before 1.3 has no such members; one that
       leaves them NULL cannot fuse either) and hd ≤ 128 */
    const int attn = h->cfg_enum(h, cfg, "attention");
    const clpdd_ops *ops = h->ops;
    const int has_fused = ops && h->abi_major == CLPDD_ABI_MAJOR && h->abi_minor >= 3 && ops->attention_fused &&
                          ops->attention_fused_backward;
    const int can_fuse = has_fused && v->hd <= VIT_FUSED_HD_MAX;
    if (attn == VIT_ATTENTION_FUSED) {
        if (!can_fuse) {
            h->error(h, "vit: attention = fused needs dim_head <= %d (have %d) and ops with attention_fused "
                        "(ops %s has %s); use attention = materialized",
                     VIT_FUSED_HD_MAX, v->hd, ops ? ops->name : "?",
                     has_fused ? "them" : "none");
            return -1;
        }
        v->fused = 1;
    } else if (attn == VIT_ATTENTION_MATERIALIZED) {
        v->fused = 0;
    } else { /* auto */
        v->fused = can_fuse && (ops->is_device || VIT_CPU_AUTO_FUSED);
    }
    return 0;
}

static int vit_create(const clpdd_host *h, const clpdd_section *cfg, void **out) {
    *out = NULL;
    vit *v = calloc(1, sizeof *v);
    if (!v) return h->error(h, "vit: out of host memory"), -1;
    if (vit_read_config(h, cfg, v)) goto fail;
    v->weights_id = strdup(h->cfg_is_set(h, cfg, "weights") ? h->cfg_str(h, cfg, "weights") : v->var->weights);
    v->prefix = strdup(h->cfg_str(h, cfg, "key_prefix"));
    v->blocks = calloc((size_t)v->L + 1, sizeof *v->blocks);
    if (!v->weights_id || !v->prefix || !v->blocks) {
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
    v->piece_cap = vit_piece_cap(v);
    if (acts_alloc(v, &v->infer, v->batch, 0)) goto fail;
    if (load_weights(v, v->weights_id, h->cfg_is_set(h, cfg, "key_prefix"))) goto fail;
    *out = v;
    return 0;
fail:
    vit_destroy(v);
    return -1;
}

/* the value in force of an unset key, as the INI would write it (clpdd_plugin.key_default) */
static const char *vit_key_default(const clpdd_host *h, const clpdd_section *cfg, const char *key, char *buf, size_t n) {
    vit v;
    memset(&v, 0, sizeof v);
    if (vit_read_config(h, cfg, &v)) return NULL; /* create reports the error */
    const struct { const char *key; int value; } ints[] = {
        {"image_size", v.S}, {"channels", v.c}, {"patch", v.p}, {"dim", v.D}, {"depth", v.L}, {"heads", v.Hh},
        {"dim_head", v.hd}, {"mlp_dim", v.F}, {"registers", v.R}, {"pos_grid", v.pos_grid}, {"proj", v.E},
        {"rope_ref", v.rope_ref}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(key, ints[i].key)) return snprintf(buf, n, "%d", ints[i].value), buf;
    const struct { const char *key; int value; } bools[] = {{"qkv_bias", v.qkv_bias}, {"layer_scale", v.layer_scale},
                                                            {"norm_pre", v.norm_pre}, {"pos_prefix", v.pos_prefix},
                                                            {"rope", v.rope}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
        if (!strcmp(key, bools[i].key)) return snprintf(buf, n, "%s", bools[i].value ? "true" : "false"), buf;
    if (!strcmp(key, "mlp_ratio")) return snprintf(buf, n, "%.9g", (double)v.F / v.D), buf;
    /* float fields: 7 significant digits give back the decimal the variant table holds */
    if (!strcmp(key, "norm_eps")) return snprintf(buf, n, "%.7g", (double)v.eps), buf;
    if (!strcmp(key, "act")) return snprintf(buf, n, "%s", act_names[v.act]), buf;
    if (!strcmp(key, "pool")) return snprintf(buf, n, "%s", pool_names[v.pool]), buf;
    if (!strcmp(key, "pos_resample")) return snprintf(buf, n, "%s", resample_names[v.pos_resample]), buf;
    if (!strcmp(key, "weights")) return snprintf(buf, n, "%s", v.var->weights), buf;
    if (!strcmp(key, "mean") || !strcmp(key, "std")) {
        const float *x = key[0] == 'm' ? v.mean : v.std;
        if (v.c == 1 || (x[0] == x[1] && x[1] == x[2])) snprintf(buf, n, "%.7g", (double)x[0]);
        else snprintf(buf, n, "%.7g, %.7g, %.7g", (double)x[0], (double)x[1], (double)x[2]);
        return buf;
    }
    return NULL; /* variant, batch, layout, key_prefix: the declared default */
}

static int vit_describe(void *self, clpdd_backbone_info *info) {
    vit *v = self;
    memset(info, 0, sizeof *info);
    info->channels = v->c;
    info->height = v->S;
    info->width = v->S;
    info->feature_dim = v->E ? v->E : v->D;
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
        const size_t img = (size_t)v->c * (size_t)v->S * (size_t)v->S, d = (size_t)(v->E ? v->E : v->D);
        for (int i = 0; i < n; i += v->batch) {
            int b = n - i < v->batch ? n - i : v->batch;
            vit_forward_pass(v, &v->infer, features + (size_t)i * d, images + (size_t)i * img, b);
        }
        return 0;
    }
    vit_acts *a = tape;
    if (n > a->max_n) return v->h->error(v->h, "vit: forward of %d images on a tape for %d", n, a->max_n), -1;
    a->last_n = 0;
    if (n) vit_taped_pass(v, a, features, images, n, 1);
    a->last_n = n;
    return 0;
}

static int vit_backward(void *self, float *dimages, const float *dfeatures, int n, void *tape) {
    vit *v = self;
    vit_acts *a = tape;
    if (!a) return v->h->error(v->h, "vit: backward needs the tape of a forward"), -1;
    if (n != a->last_n)
        return v->h->error(v->h, "vit: backward of %d images after a taped forward of %d", n, a->last_n), -1;
    if (n) vit_taped_pass(v, a, dimages, dfeatures, n, 0);
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
    /* .abi_minor = */ 4, /* key_default (1.2), the fused attention ops (1.3), host cfg_enum (1.4) */
    /* .kind = */ CLPDD_KIND_BACKBONE,
    /* .name = */ "vit",
    /* .version = */ "1.2.0",
    /* .summary = */ "Vision Transformer family (lucid, timm vit/deit, dinov2, clip, mocov3, eva02); pooled, normalised "
                     "(and projected) features",
    /* .keys = */ vit_keys,
    /* .n_keys = */ VIT_N_KEYS,
    /* .vtable = */ &vit_vt,
    /* .key_default = */ vit_key_default,
};

CLPDD_DEFINE_PLUGIN(vit_plugin)
