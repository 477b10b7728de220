/* vit forward: images (n, c, S, S), normalised → features (n, d). Dimensions as in vit.h.
 *
 *   patches = patchify(images)                        (n, P, K)   (c, py, px) order
 *   x       = tok_init + [0 ; patches·Wpeᵀ]            (n, T, D)   tok_init folds cls, registers, pos, bias
 *   [x      = LN_pre(x)]                               clip's ln_pre
 *   per block l (pre-norm; LayerScale is folded into Wo, bo, W2, b2 at load):
 *     qkv = LN1(x)·Wqkvᵀ [+ bqkv]; [RoPE on q, k of the patch tokens]   qkv (n, T, 3I)
 *     x += proj(attention(qkv))                        att (n, Hh, T, T), or fused: lse (n, Hh, T)
 *     x += act(LN2(x)·W1ᵀ + b1)·W2ᵀ + b2               u (n, T, Fu) pre-activation
 *          SwiGLU: act(u) = LN_mlp(silu(u_g) ⊙ u_v)     m (n, T, F) the LN's input
 *   pooled = x[:, 0, :] (cls) or mean_t x[:, npt + t, :] (mean)      (n, D)
 *   features = LN_final(pooled) [·Whᵀ + bh]            (n, d)
 *
 * Every matrix product runs over all n·T tokens at once (one GEMM per linear layer). A
 * Linear y = x·Wᵀ + b is gemm(0, 1, ...) followed by add2d with a broadcast bias row. */
#include "vit.h"

/* r (NT, F) = act(u[l] (NT, Fu)); SwiGLU keeps its product in m[l] and the LN's statistics */
static void activation(const vit *v, vit_acts *a, int l, int NT) {
    const size_t count = (size_t)NT * (size_t)v->F;
    switch (v->act) {
    case VIT_ACT_RELU: v->ops->relu(a->r, a->u[l], count); break;
    case VIT_ACT_GELU_ERF: v->ops->gelu(a->r, a->u[l], count, CLPDD_GELU_ERF); break;
    case VIT_ACT_GELU_QUICK: v->ops->gelu(a->r, a->u[l], count, CLPDD_GELU_QUICK); break;
    case VIT_ACT_SWIGLU: {
        const vit_block *b = &v->blocks[l];
        v->ops->swiglu(a->m[l], a->u[l], NT, v->F);
        v->ops->layernorm(a->r, a->mean3[l], a->rstd3[l], a->m[l], b->mlpn_w, b->mlpn_b, NT, v->F, v->eps);
        break;
    }
    default: break;
    }
}

/* x_out (n·T, D) = x_in + block(x_in); x_out may equal x_in (inference) */
static void block_forward(const vit *v, vit_acts *a, int l, int n) {
    const clpdd_ops *ops = v->ops;
    const vit_block *b = &v->blocks[l];
    const int T = v->T, D = v->D, I = v->I, F = v->F;
    const int NT = n * T;
    const size_t xbytes = (size_t)NT * (size_t)D * sizeof(float);
    float *x_in = a->xs[2 * l], *x_mid = a->xs[2 * l + 1], *x_out = a->xs[2 * l + 2];
    float *qkv = a->qkv[l], *u = a->u[l], *ao = a->aos[l];

    /* attention half */
    ops->layernorm(a->h, a->mean1[l], a->rstd1[l], x_in, b->ln1_w, b->ln1_b, NT, D, v->eps); /* (NT, D) */
    ops->gemm(0, 1, NT, 3 * I, D, 1.0f, a->h, D, b->qkv_w, D, 0.0f, qkv, 3 * I);             /* (NT, 3I) */
    if (b->qkv_b) ops->add2d(qkv, (size_t)3 * I, b->qkv_b, 0, (size_t)NT, (size_t)3 * I);
    if (v->rope) /* q and k: the first 2·Hh head blocks of each patch token's row */
        ops->rope(qkv, v->rope_sin, v->rope_cos, n, T, v->npt, 3 * I, 2 * v->Hh, v->hd, 0);
    if (v->fused) /* no (n, Hh, T, T) matrix: lse (n, Hh, T) for the backward */
        ops->attention_fused(ao, a->att[l], qkv, n, T, v->Hh, v->hd, v->scale); /* (NT, I) */
    else
        ops->attention(ao, a->att[l], qkv, n, T, v->Hh, v->hd, v->scale); /* (NT, I) */
    if (x_mid != x_in) ops->copy(x_mid, x_in, xbytes);
    ops->gemm(0, 1, NT, D, I, 1.0f, ao, I, b->proj_w, I, 1.0f, x_mid, D); /* x += ao·Woᵀ */
    ops->add2d(x_mid, (size_t)D, b->proj_b, 0, (size_t)NT, (size_t)D);

    /* MLP half */
    ops->layernorm(a->h, a->mean2[l], a->rstd2[l], x_mid, b->ln2_w, b->ln2_b, NT, D, v->eps);
    const int Fu = v->Fu;
    ops->gemm(0, 1, NT, Fu, D, 1.0f, a->h, D, b->fc1_w, D, 0.0f, u, Fu); /* (NT, Fu) */
    ops->add2d(u, (size_t)Fu, b->fc1_b, 0, (size_t)NT, (size_t)Fu);
    activation(v, a, l, NT); /* r (NT, F) */
    if (x_out != x_mid) ops->copy(x_out, x_mid, xbytes);
    ops->gemm(0, 1, NT, D, F, 1.0f, a->r, F, b->fc2_w, F, 1.0f, x_out, D); /* x += r·W2ᵀ */
    ops->add2d(x_out, (size_t)D, b->fc2_b, 0, (size_t)NT, (size_t)D);
}

void vit_forward_pass(const vit *v, vit_acts *a, float *features, const float *images, int n) {
    const clpdd_ops *ops = v->ops;
    const int T = v->T, D = v->D, P = v->P, K = v->K;
    const size_t TD = (size_t)T * (size_t)D, PD = (size_t)P * (size_t)D, pre = (size_t)v->npt * (size_t)D;

    /* embedding */
    ops->patchify(a->patches, images, n, v->c, v->S, v->S, v->p);                      /* (n, P, K) */
    ops->gemm(0, 1, n * P, D, K, 1.0f, a->patches, K, v->patch_w, K, 0.0f, a->emb, D); /* (n·P, D) */
    float *x = v->norm_pre ? a->x0 : a->xs[0];
    ops->copy2d(x, TD, v->tok_init, 0, (size_t)n, TD);  /* every image: cls+pos, pos+bias */
    ops->add2d(x + pre, TD, a->emb, PD, (size_t)n, PD); /* token rows npt.. += patch embeddings */
    if (v->norm_pre) ops->layernorm(a->xs[0], a->meanp, a->rstdp, x, v->pre_w, v->pre_b, n * T, D, v->eps);

    for (int l = 0; l < v->L; l++) block_forward(v, a, l, n);

    /* pool → final LayerNorm (fc_norm for mean pooling) → projection */
    if (v->pool == VIT_POOL_MEAN) /* cls[i] = (1/P)·1ᵀ·x[i, npt:, :] */
        ops->gemm_batched(0, 0, 1, D, P, 1.0f / (float)P, v->ones, P, 0, a->xs[2 * v->L] + pre, D, (long long)TD,
                          0.0f, a->cls, D, D, n);
    else
        ops->copy2d(a->cls, (size_t)D, a->xs[2 * v->L], TD, (size_t)n, (size_t)D); /* (n, D) */
    float *fn = v->E ? a->pooln : features;
    ops->layernorm(fn, a->meanf, a->rstdf, a->cls, v->norm_w, v->norm_b, n, D, v->eps);
    if (v->E) { /* features (n, E) = fn·Whᵀ + bh */
        ops->gemm(0, 1, n, v->E, D, 1.0f, fn, D, v->head_w, D, 0.0f, features, v->E);
        ops->add2d(features, (size_t)v->E, v->head_b, 0, (size_t)n, (size_t)v->E);
    }
}
