/* vit: the ViT family as one backbone plugin — internal declarations.
 *
 * Dimension legend (every file of this plugin):
 *   n  images in a call; b images in one inference chunk (b ≤ batch)
 *   c  input channels, S image side (H = W = S), p patch side, G = S/p grid side, P = G² patches,
 *   R  register tokens, npt = 1 + R prefix tokens (CLS first, then registers),
 *   T  = npt + P tokens, K = c·p·p patch length, D model width (dim),
 *   Hh heads, hd head width (dim_head), I = Hh·hd attention inner width, F MLP width
 *      (Fu = 2F MLP pre-activation width for SwiGLU, else F), E projection width (0: none),
 *   L  depth (blocks), d = E or D the feature width.
 *
 * Variants differ only in a name map and defaults (vit_variant); every default is a key
 * the INI may override, and the forward and backward read the resolved flags in `vit`,
 * never the variant's name:
 *   lucid   lucidrains' simple ViT: Linear patch embedding on (p1 p2 c)-ordered patches,
 *           learned position embedding, qkv without bias, ReLU MLP, final LayerNorm of CLS
 *   vit, deit  timm VisionTransformer: conv patch embedding, qkv bias, GELU, CLS pooling
 *   dinov2  timm vit_*_dinov2: + LayerScale (ls1/ls2, folded into proj/fc2 at load), patch 14,
 *           position embedding resampled from its own 37×37 grid as the DINOv2 repository's
 *           torch.hub model does (pos_resample = hub, vit_pos.c), optional registers
 *   clip    timm vit_*_clip_quickgelu (OpenAI): norm_pre (ln_pre), QuickGELU, LayerNorm eps
 *           1e-5, feature = head(norm(CLS)) (the CLIP projection, with timm's zero bias)
 *   mocov3  MoCo v3 (timm VisionTransformer + fixed 2-D sin-cos position embedding, computed
 *           here exactly as MoCo v3's build_2d_sincos_position_embedding; zero for CLS)
 *   eva02   timm Eva (EVA-02): SwiGLU MLP with sub-LayerNorm, 2-D RoPE on q and k of the
 *           patch tokens, separate q/k/v projections (q and v biased), feature =
 *           fc_norm(mean of the patch tokens)
 *
 * A checkpoint's names are the variant's own (layout = timm) or open_clip's (layout = open_clip:
 * OpenAI / open_clip CLIP under visual.), optionally under a prefix (key_prefix), or found from
 * the file (layout = auto). docs/encoders.md says which reference each setting reproduces.
 *
 * All tensors are in host->ops memory (device memory on CUDA): never dereferenced here. */
#ifndef CLPDD_VIT_H
#define CLPDD_VIT_H
#include "clpdd/plugin.h"

/* order of a patch's values in the checkpoint's patch-embedding weight columns */
typedef enum {
    VIT_PATCH_PPC = 0, /* (py, px, c): lucid's Rearrange '(p1 p2 c)' */
    VIT_PATCH_CPP = 1, /* (c, py, px): a conv weight (timm and others), = ops->patchify */
    VIT_PATCH_COUNT
} vit_patch_order;

typedef enum {
    VIT_ACT_RELU = 0,
    VIT_ACT_GELU_ERF = 1,   /* timm vit/deit, dinov2, mocov3 */
    VIT_ACT_GELU_QUICK = 2, /* OpenAI CLIP */
    VIT_ACT_SWIGLU = 3,     /* EVA-02: silu(x·Wgᵀ + bg) ⊙ (x·Wxᵀ + bx), then a LayerNorm over F */
    VIT_ACT_COUNT
} vit_act;

typedef enum {
    VIT_POS_LEARNED = 0, /* read from the checkpoint, resampled to the run's grid when it differs */
    VIT_POS_SINCOS = 1,  /* MoCo v3's fixed 2-D sin-cos table (none for CLS) */
    VIT_POS_COUNT
} vit_pos_kind;

typedef enum {
    VIT_POOL_CLS = 0,  /* final norm of the CLS token */
    VIT_POOL_MEAN = 1, /* fc_norm of the mean of the patch tokens (prefix tokens excluded) */
    VIT_POOL_COUNT
} vit_pool;

/* How a checkpoint's position table is brought to the run's grid when the two differ; each
 * is how one reference runs the encoder (docs/encoders.md):
 *   plain  F.interpolate(size = (G, G), bicubic, align_corners = False, antialias = False):
 *          timm's resample_abs_pos_embed(antialias = False)
 *   timm   the same with antialias = True (upsample_bicubic2d_aa: Keys' cubic with a = −0.5,
 *          support widened by the downscale factor, taps renormalised at the border): timm's
 *          pretrained loading at another img_size, and dynamic_img_size
 *   hub    the DINOv2 repository's interpolate_pos_encoding (torch.hub): F.interpolate with
 *          scale_factor = (G + 0.1)/G0 (output side floor(G0·scale_factor) = G), bicubic
 *          a = −0.75, align_corners = False, no antialias; the sampling step is 1/scale_factor,
 *          not G0/G */
typedef enum {
    VIT_RESAMPLE_PLAIN = 0,
    VIT_RESAMPLE_TIMM = 1,
    VIT_RESAMPLE_HUB = 2,
    VIT_RESAMPLE_COUNT
} vit_resample;

/* The tensor names of one checkpoint layout. Per-block names contain one %d (the block
 * index). A NULL name means the layout has no such tensor. Alternatives are tried in the
 * order listed (e.g. a fused qkv first, then separate q/k/v projections). */
typedef struct vit_names {
    vit_patch_order patch_order;
    int patch_w_4d;                    /* 1: weight stored (D, c, p, p) as a conv; 0: (D, K) */
    const char *patch_w, *patch_b;     /* (D, K), (D) */
    const char *cls;                   /* (1, 1, D); cls_1d: (D) */
    const char *reg;                   /* (1, R, D) */
    const char *pos;                   /* (1, pos_prefix + G0², D); pos_2d: without the 1 */
    const char *pre_w, *pre_b;         /* norm_pre (D) */
    const char *ln1_w, *ln1_b;         /* (D) */
    const char *qkv_w, *qkv_b;         /* fused (3I, D), (3I) */
    const char *q_bias, *v_bias;       /* fused weight with separate q and v biases (I) (k: 0) */
    const char *q_w, *k_w, *v_w;       /* separate projections (I, D) */
    const char *q_b, *k_b, *v_b;       /* their biases (I); k's usually absent (0) */
    const char *proj_w, *proj_b;       /* (D, I), (D) */
    const char *ls1, *ls2;             /* LayerScale (D) */
    const char *ln2_w, *ln2_b;         /* (D) */
    const char *fc1_w, *fc1_b;         /* (F, D), (F) */
    const char *fc1g_w, *fc1g_b;       /* SwiGLU gate (F, D), (F) */
    const char *fc1x_w, *fc1x_b;       /* SwiGLU value (F, D), (F) */
    const char *mlpn_w, *mlpn_b;       /* SwiGLU sub-LayerNorm (F) */
    const char *fc2_w, *fc2_b;         /* (D, F), (D) */
    const char *norm_w, *norm_b;       /* final LayerNorm (D), CLS pooling */
    const char *fcn_w, *fcn_b;         /* fc_norm (D), mean pooling */
    const char *head_w, *head_b;       /* projection (E, D), (E) (bias optional); head_t: (D, E) */
    int cls_1d, pos_2d, head_t;        /* open_clip's shapes: class_embedding (D), positional_embedding
                                          (T, D), proj (D, E) applied as x·proj */
} vit_names;

/* The defaults of a variant and its own tensor names (timm's, or lucidrains'). */
typedef struct vit_variant {
    const char *name;
    /* ---- defaults (each overridable by the key of the same name) ---- */
    const char *weights;
    int image_size, channels, patch, dim, depth, heads;
    int dim_head;         /* 0: dim / heads */
    int mlp_dim;          /* 0: (int)(dim · mlp_ratio) */
    double mlp_ratio;
    double norm_eps;
    float mean[3], std[3];
    vit_act act;
    int qkv_bias, layer_scale, norm_pre, registers;
    int pos_grid;         /* checkpoint position-embedding grid side; 0: the run's grid */
    vit_pos_kind pos_kind;
    vit_pool pool;
    int proj;             /* projection width after pooling; 0: none */
    int rope;             /* 2-D RoPE on q, k of the patch tokens */
    int rope_ref;         /* RoPE reference grid (timm's ref_feat_shape); 0: the run's grid */
    vit_resample pos_resample; /* how the position table reaches the run's grid */
    vit_names names;      /* layout = timm (the variant's own names) */
} vit_variant;

/* parameters of one block (pointers into vit.params) */
typedef struct vit_block {
    float *ln1_w, *ln1_b; /* (D) */
    float *qkv_w;         /* (3I, D) */
    float *qkv_b;         /* (3I) or NULL */
    float *proj_w;        /* (D, I), LayerScale ls1 folded in (rows scaled) */
    float *proj_b;        /* (D), ls1 folded in */
    float *ln2_w, *ln2_b; /* (D) */
    float *fc1_w;         /* (Fu, D): SwiGLU stacks [gate; value] */
    float *fc1_b;         /* (Fu) */
    float *mlpn_w, *mlpn_b; /* (F) SwiGLU sub-LayerNorm, or NULL */
    float *fc2_w;         /* (D, F), ls2 folded in */
    float *fc2_b;         /* (D), ls2 folded in */
} vit_block;

/* Activations of one pass over n images. The tape's pointers are all distinct (what
 * backward needs, for max_n images); the inference scratch aliases them (xs[j] all the
 * same buffer, per-block arrays the same buffer, statistics NULL) so that one forward
 * routine serves both. */
typedef struct vit_acts {
    int max_n;
    float **xs;          /* [2L+1] residual stream (n, T, D): xs[2l] enters block l's attention,
                            xs[2l+1] its MLP, xs[2L] leaves the last block */
    float **mean1, **rstd1; /* [L] (n·T) LayerNorm statistics before attention (NULL: not kept) */
    float **qkv;         /* [L] (n, T, 3I) */
    float **att;         /* [L] (n, Hh, T, T) attention probabilities; fused attention: lse (n, Hh, T)
                            (the softmax normalisers; vit.fused) */
    float **aos;         /* [L] (n, T, I) attention output; distinct per block only on a tape with fused
                            attention (the fused backward reads it), else every entry is the same scratch */
    float **mean2, **rstd2; /* [L] (n·T) LayerNorm statistics before the MLP */
    float **u;           /* [L] (n, T, Fu) MLP pre-activation */
    float **m;           /* [L] (n, T, F) SwiGLU product = input of the MLP's LayerNorm (SwiGLU only) */
    float **mean3, **rstd3; /* [L] (n·T) statistics of the MLP's LayerNorm (SwiGLU only) */
    float *x0;           /* (n, T, D) embedding before norm_pre (norm_pre only) */
    float *meanp, *rstdp; /* (n·T) norm_pre statistics, or NULL */
    float *cls;          /* (n, D) pooled tokens of xs[2L] (CLS row or patch mean), contiguous */
    float *pooln;        /* (n, D) pooled after the final norm (projection input; scratch) */
    float *meanf, *rstdf; /* (n) final LayerNorm statistics, or NULL */
    /* scratch (not read by backward) */
    float *patches;      /* (n, P, K) */
    float *emb;          /* (n, P, D) */
    float *h;            /* (n, T, D) LayerNorm output */
    float *r;            /* (n, T, F) MLP activation */
    /* backward scratch (tape only) */
    float *dx;           /* (n, T, D) gradient of the residual stream */
    float *dh;           /* (n, T, D) gradient of a LayerNorm output */
    float *dln;          /* (n, T, D) gradient of a LayerNorm input */
    float *dbig;         /* (n, T, max(3I, F)) dqkv / dr */
    float *dao;          /* (n, T, I) */
    float *datt;         /* (n, Hh, T, T); fused attention: delta (n, Hh, T) */
    float *dcls;         /* (n, D) */
    float *dpool;        /* (n, D) gradient of pooln */
    int last_n;          /* images of the last taped forward (0: none) */
    int slots;           /* taped: pieces that may run side by side (vit_pieces.c); 1: one pass */
    void *block;         /* the single allocation all of the above point into */
    void *ptrs;          /* host memory of the pointer arrays: this tape's, then one set per slot */
} vit_acts;

typedef struct vit {
    const clpdd_host *h;
    const clpdd_ops *ops;
    const vit_variant *var;
    const vit_names *nm; /* the checkpoint's layout (key layout, or detected from the file) */
    char *prefix;        /* key_prefix: put before every tensor name */
    int c, S, p, G, P, R, npt, T, K, D, L, Hh, hd, I, F, Fu, E, batch;
    float eps, scale;
    float mean[3], std[3];
    /* resolved flags (variant defaults + keys) */
    vit_act act;
    int qkv_bias, layer_scale, norm_pre, pos_grid, rope, rope_ref, pos_prefix;
    int fused;       /* key attention resolved: 1 = ops->attention_fused (no T×T matrix), 0 = materialised */
    vit_pos_kind pos_kind;
    vit_resample pos_resample;
    int layout;      /* key layout: VIT_LAYOUT_* (vit.c) */
    vit_pool pool;
    char *weights_id;
    /* parameters, one allocation */
    float *params;
    float *patch_w;  /* (D, K), columns in ops->patchify's (c, py, px) order */
    float *tok_init; /* (T, D): prefix rows = cls/registers (+ their pos), row npt + j = pos_j + patch bias */
    float *pre_w, *pre_b;   /* (D) norm_pre, or NULL */
    float *norm_w, *norm_b; /* (D) final norm (CLS pooling) or fc_norm (mean pooling) */
    float *head_w, *head_b; /* (E, D), (E), or NULL */
    float *ones;            /* (P) ones: mean pooling as a GEMM */
    float *rope_sin, *rope_cos; /* (P, hd/2), or NULL */
    vit_block *blocks; /* [L] */
    vit_acts infer;    /* inference scratch for `batch` images */
    int piece_cap;     /* taped passes: at most this many images per piece; 0: one pass (vit_pieces.c) */
} vit;

/* vit_pos.c: the (G0, G0, D) grid of position rows resampled to (G, G, D) as `mode` says;
   returns 0, -1 when hub's output side floor(G0·(G + 0.1)/G0) is not G, -2 out of memory */
int vit_pos_resample(float *dst, const float *src, int G0, int G, int D, vit_resample mode);

/* vit_forward.c: features (n, d) = f(images (n, c, S, S)) for n ≤ a->max_n, keeping in `a`
   what backward needs when a's buffers are distinct */
void vit_forward_pass(const vit *v, vit_acts *a, float *features, const float *images, int n);
/* vit_backward.c: dimages (n, c, S, S) = from dfeatures (n, d) and the tape of the last pass */
void vit_backward_pass(const vit *v, vit_acts *a, float *dimages, const float *dfeatures, int n);

/* vit_pieces.c: the passes above on a tape, in pieces side by side (forward: out = features,
   in = images; backward: out = dimages, in = dfeatures); the same bits as one pass */
void vit_taped_pass(const vit *v, vit_acts *a, float *out, const float *in, int n, int forward);
int vit_piece_cap(const vit *v);
/* pointers in one set of a vit_acts' pointer arrays (vit.c) */
size_t vit_acts_ptrs(const vit *v);

#endif
