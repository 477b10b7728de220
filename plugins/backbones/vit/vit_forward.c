/* vit forward: images (n, c, S, S), normalised → features (n, D). Dimensions as in vit.h.
 *
 *   patches = patchify(images)                        (n, P, K)   (c, py, px) order
 *   x       = tok_init + [0 ; patches·Wpeᵀ]            (n, T, D)   tok_init folds cls, pos, bias
 *   per block l (pre-norm):
 *     x += proj(attention(LN1(x)·Wqkvᵀ [+ bqkv]))      qkv (n, T, 3I), att (n, Hh, T, T)
 *     x += act(LN2(x)·W1ᵀ + b1)·W2ᵀ + b2               u (n, T, F) pre-activation
 *   features = LN_final(x[:, 0, :])                    (n, D)
 *
 * Every matrix product runs over all n·T tokens at once (one GEMM per linear layer). A
 * Linear y = x·Wᵀ + b is gemm(0, 1, ...) followed by add2d with a broadcast bias row. */
#include "vit.h"

static void activation(const vit *v, float *y, const float *x, size_t count) {
    switch (v->var->act) {
    case VIT_ACT_RELU: v->ops->relu(y, x, count); break;
    case VIT_ACT_GELU_ERF: v->ops->gelu(y, x, count, CLPDD_GELU_ERF); break;
    case VIT_ACT_GELU_QUICK: v->ops->gelu(y, x, count, CLPDD_GELU_QUICK); break;
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
    float *qkv = a->qkv[l], *u = a->u[l];

    /* attention half */
    ops->layernorm(a->h, a->mean1[l], a->rstd1[l], x_in, b->ln1_w, b->ln1_b, NT, D, v->eps); /* (NT, D) */
    ops->gemm(0, 1, NT, 3 * I, D, 1.0f, a->h, D, b->qkv_w, D, 0.0f, qkv, 3 * I);             /* (NT, 3I) */
    if (b->qkv_b) ops->add2d(qkv, (size_t)3 * I, b->qkv_b, 0, (size_t)NT, (size_t)3 * I);
    ops->attention(a->ao, a->att[l], qkv, n, T, v->Hh, v->hd, v->scale); /* (NT, I) */
    if (x_mid != x_in) ops->copy(x_mid, x_in, xbytes);
    ops->gemm(0, 1, NT, D, I, 1.0f, a->ao, I, b->proj_w, I, 1.0f, x_mid, D); /* x += ao·Woᵀ */
    ops->add2d(x_mid, (size_t)D, b->proj_b, 0, (size_t)NT, (size_t)D);

    /* MLP half */
    ops->layernorm(a->h, a->mean2[l], a->rstd2[l], x_mid, b->ln2_w, b->ln2_b, NT, D, v->eps);
    ops->gemm(0, 1, NT, F, D, 1.0f, a->h, D, b->fc1_w, D, 0.0f, u, F); /* (NT, F) */
    ops->add2d(u, (size_t)F, b->fc1_b, 0, (size_t)NT, (size_t)F);
    activation(v, a->r, u, (size_t)NT * (size_t)F);
    if (x_out != x_mid) ops->copy(x_out, x_mid, xbytes);
    ops->gemm(0, 1, NT, D, F, 1.0f, a->r, F, b->fc2_w, F, 1.0f, x_out, D); /* x += r·W2ᵀ */
    ops->add2d(x_out, (size_t)D, b->fc2_b, 0, (size_t)NT, (size_t)D);
}

void vit_forward_pass(const vit *v, vit_acts *a, float *features, const float *images, int n) {
    const clpdd_ops *ops = v->ops;
    const int T = v->T, D = v->D, P = v->P, K = v->K;
    const size_t TD = (size_t)T * (size_t)D, PD = (size_t)P * (size_t)D;

    /* embedding */
    ops->patchify(a->patches, images, n, v->c, v->S, v->S, v->p);                      /* (n, P, K) */
    ops->gemm(0, 1, n * P, D, K, 1.0f, a->patches, K, v->patch_w, K, 0.0f, a->emb, D); /* (n·P, D) */
    float *x = a->xs[0];
    ops->copy2d(x, TD, v->tok_init, 0, (size_t)n, TD);  /* every image: cls+pos, pos+bias */
    ops->add2d(x + D, TD, a->emb, PD, (size_t)n, PD);   /* token rows 1..P += patch embeddings */

    for (int l = 0; l < v->L; l++) block_forward(v, a, l, n);

    /* CLS token → final LayerNorm */
    ops->copy2d(a->cls, (size_t)D, a->xs[2 * v->L], TD, (size_t)n, (size_t)D); /* (n, D) */
    ops->layernorm(features, a->meanf, a->rstdf, a->cls, v->norm_w, v->norm_b, n, D, v->eps);
}
