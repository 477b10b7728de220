/* vit backward: dimages (n, c, S, S) = (∂features/∂images)ᵀ·dfeatures, from the tape of the
 * last forward. Dimensions as in vit.h. Parameters are frozen: only the input gradient is
 * formed, with "=" semantics for dimages; dx (the residual stream's gradient) accumulates
 * "+=" through the blocks in reverse.
 *
 *   dcls  = LN_finalᵀ(dfeatures);  dx = 0 except dx[:, 0, :] = dcls
 *   per block l in reverse:
 *     MLP:  dr = dx·W2;  du = act'(u) ⊙ dr;  dx += LN2ᵀ(du·W1)
 *     attn: dao = dx·Wo; dqkv = attentionᵀ(dao); dx += LN1ᵀ(dqkv·Wqkv)
 *   dpatches = dx[:, 1:, :]·Wpe;  dimages = unpatchifyᵀ(dpatches) */
#include "vit.h"

/* dx = act'(u)·dy (dx may alias dy) */
static void activation_backward(const vit *v, float *dx, const float *dy, const float *u, size_t count) {
    switch (v->var->act) {
    case VIT_ACT_RELU: v->ops->relu_backward(dx, dy, u, count); break;
    case VIT_ACT_GELU_ERF: v->ops->gelu_backward(dx, dy, u, count, CLPDD_GELU_ERF); break;
    case VIT_ACT_GELU_QUICK: v->ops->gelu_backward(dx, dy, u, count, CLPDD_GELU_QUICK); break;
    default: break;
    }
}

static void block_backward(const vit *v, vit_acts *a, int l, int n) {
    const clpdd_ops *ops = v->ops;
    const vit_block *b = &v->blocks[l];
    const int T = v->T, D = v->D, I = v->I, F = v->F;
    const int NT = n * T;
    const size_t ND = (size_t)NT * (size_t)D;

    /* MLP half: x_out = x_mid + act(LN2(x_mid)·W1ᵀ + b1)·W2ᵀ + b2 */
    ops->gemm(0, 0, NT, F, D, 1.0f, a->dx, D, b->fc2_w, F, 0.0f, a->dbig, F); /* dr (NT, F) */
    activation_backward(v, a->dbig, a->dbig, a->u[l], (size_t)NT * (size_t)F); /* du */
    ops->gemm(0, 0, NT, D, F, 1.0f, a->dbig, F, b->fc1_w, D, 0.0f, a->dh, D);  /* dh (NT, D) */
    ops->layernorm_backward(a->dln, NULL, NULL, a->dh, a->xs[2 * l + 1], a->mean2[l], a->rstd2[l], b->ln2_w, NT, D);
    ops->axpy(a->dx, 1.0f, a->dln, ND);

    /* attention half: x_mid = x_in + attention(LN1(x_in)·Wqkvᵀ)·Woᵀ + bo */
    ops->gemm(0, 0, NT, I, D, 1.0f, a->dx, D, b->proj_w, I, 0.0f, a->dao, I); /* dao (NT, I) */
    ops->attention_backward(a->dbig, a->datt, a->dao, a->qkv[l], a->att[l], n, T, v->Hh, v->hd, v->scale);
    ops->gemm(0, 0, NT, D, 3 * I, 1.0f, a->dbig, 3 * I, b->qkv_w, D, 0.0f, a->dh, D); /* dh (NT, D) */
    ops->layernorm_backward(a->dln, NULL, NULL, a->dh, a->xs[2 * l], a->mean1[l], a->rstd1[l], b->ln1_w, NT, D);
    ops->axpy(a->dx, 1.0f, a->dln, ND);
}

void vit_backward_pass(const vit *v, vit_acts *a, float *dimages, const float *dfeatures, int n) {
    const clpdd_ops *ops = v->ops;
    const int T = v->T, D = v->D, P = v->P, K = v->K;
    const size_t TD = (size_t)T * (size_t)D, PD = (size_t)P * (size_t)D;

    ops->layernorm_backward(a->dcls, NULL, NULL, dfeatures, a->cls, a->meanf, a->rstdf, v->norm_w, n, D);
    ops->fill(a->dx, 0.0f, (size_t)n * TD);
    ops->copy2d(a->dx, TD, a->dcls, (size_t)D, (size_t)n, (size_t)D); /* only the CLS rows */

    for (int l = v->L - 1; l >= 0; l--) block_backward(v, a, l, n);

    /* embedding: x[:, 1:, :] = patches·Wpeᵀ + const */
    ops->copy2d(a->emb, PD, a->dx + D, TD, (size_t)n, PD);                                /* (n·P, D) */
    ops->gemm(0, 0, n * P, K, D, 1.0f, a->emb, D, v->patch_w, K, 0.0f, a->patches, K); /* (n·P, K) */
    ops->unpatchify(dimages, a->patches, n, v->c, v->S, v->S, v->p);
}
