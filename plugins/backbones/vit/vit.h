/* vit: the ViT family as one backbone plugin — internal declarations.
 *
 * Dimension legend (every file of this plugin):
 *   n  images in a call; b images in one inference chunk (b ≤ batch)
 *   c  input channels, S image side (H = W = S), p patch side, P = (S/p)² patches,
 *   T  = P + 1 tokens (CLS first), K = c·p·p patch length, D model width (dim),
 *   Hh heads, hd head width (dim_head), I = Hh·hd attention inner width, F MLP width,
 *   L  depth (blocks).
 *
 * Variants differ only in a name map and a few flags (vit_variant); the forward and
 * backward read those flags, never the variant's name. Implemented: lucid
 * (lucidrains' simple ViT: Linear patch embedding on (p1 p2 c)-ordered patches, learned
 * position embedding, pre-norm blocks with qkv without bias, ReLU MLP, final LayerNorm of
 * the CLS token). Slots for timm vit/deit, dinov2, clip, mocov3, eva02 are the commented
 * flags below.
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
    VIT_ACT_GELU_ERF = 1,   /* timm, dinov2 (later) */
    VIT_ACT_GELU_QUICK = 2, /* clip (later) */
    VIT_ACT_COUNT
} vit_act;

/* The name map of a variant. Per-block names contain one %d (the block index).
 * A NULL name means the tensor does not exist in this variant (e.g. qkv bias). */
typedef struct vit_variant {
    const char *name;
    vit_patch_order patch_order;
    vit_act act;
    int patch_w_4d;                    /* 1: weight stored (D, c, p, p) as a conv; 0: (D, K) */
    const char *patch_w, *patch_b;     /* (D, K), (D) */
    const char *cls;                   /* (1, 1, D) */
    const char *pos;                   /* (1, T, D) */
    const char *ln1_w, *ln1_b;         /* (D) */
    const char *qkv_w, *qkv_b;         /* (3I, D), (3I) or NULL */
    const char *proj_w, *proj_b;       /* (D, I), (D) */
    const char *ln2_w, *ln2_b;         /* (D) */
    const char *fc1_w, *fc1_b;         /* (F, D), (F) */
    const char *fc2_w, *fc2_b;         /* (D, F), (D) */
    const char *norm_w, *norm_b;       /* final LayerNorm (D) */
} vit_variant;

/* parameters of one block (pointers into vit.params) */
typedef struct vit_block {
    float *ln1_w, *ln1_b; /* (D) */
    float *qkv_w;         /* (3I, D) */
    float *qkv_b;         /* (3I) or NULL */
    float *proj_w;        /* (D, I) */
    float *proj_b;        /* (D) */
    float *ln2_w, *ln2_b; /* (D) */
    float *fc1_w;         /* (F, D) */
    float *fc1_b;         /* (F) */
    float *fc2_w;         /* (D, F) */
    float *fc2_b;         /* (D) */
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
    float **att;         /* [L] (n, Hh, T, T) attention probabilities */
    float **mean2, **rstd2; /* [L] (n·T) LayerNorm statistics before the MLP */
    float **u;           /* [L] (n, T, F) MLP pre-activation */
    float *cls;          /* (n, D) CLS rows of xs[2L], contiguous */
    float *meanf, *rstdf; /* (n) final LayerNorm statistics, or NULL */
    /* scratch (not read by backward) */
    float *patches;      /* (n, P, K) */
    float *emb;          /* (n, P, D) */
    float *h;            /* (n, T, D) LayerNorm output */
    float *ao;           /* (n, T, I) attention output */
    float *r;            /* (n, T, F) MLP activation */
    /* backward scratch (tape only) */
    float *dx;           /* (n, T, D) gradient of the residual stream */
    float *dh;           /* (n, T, D) gradient of a LayerNorm output */
    float *dln;          /* (n, T, D) gradient of a LayerNorm input */
    float *dbig;         /* (n, T, max(3I, F)) dqkv / dr */
    float *dao;          /* (n, T, I) */
    float *datt;         /* (n, Hh, T, T) */
    float *dcls;         /* (n, D) */
    int last_n;          /* images of the last taped forward (0: none) */
    void *block;         /* the single allocation all of the above point into */
    void *ptrs;          /* host memory of the pointer arrays */
} vit_acts;

typedef struct vit {
    const clpdd_host *h;
    const clpdd_ops *ops;
    const vit_variant *var;
    int c, S, p, P, T, K, D, L, Hh, hd, I, F, batch;
    float eps, scale;
    float mean[3], std[3];
    char *weights_id;
    /* parameters, one allocation */
    float *params;
    float *patch_w;  /* (D, K), columns in ops->patchify's (c, py, px) order */
    float *tok_init; /* (T, D): row 0 = cls + pos[0], row t ≥ 1 = pos[t] + patch bias */
    float *norm_w, *norm_b; /* (D) */
    vit_block *blocks; /* [L] */
    vit_acts infer;    /* inference scratch for `batch` images */
} vit;

/* vit_forward.c: features (n, D) = f(images (n, c, S, S)) for n ≤ a->max_n, keeping in `a`
   what backward needs when a's buffers are distinct */
void vit_forward_pass(const vit *v, vit_acts *a, float *features, const float *images, int n);
/* vit_backward.c: dimages (n, c, S, S) = from dfeatures (n, D) and the tape of the last pass */
void vit_backward_pass(const vit *v, vit_acts *a, float *dimages, const float *dfeatures, int n);

#endif
