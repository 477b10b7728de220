/* vit backward: dimages (n, c, S, S) = (∂features/∂images)ᵀ·dfeatures, from the tape of the
 * last forward. Dimensions as in vit.h. Parameters are frozen: only the input gradient is
 * formed, with "=" semantics for dimages; dx (the residual stream's gradient) accumulates
 * "+=" through the blocks in reverse.
 *
 *   dpool = dfeatures·Wh (projection); dcls = LN_finalᵀ(dpool)
 *   dx = 0 except dx[:, 0, :] = dcls (cls) or dx[:, npt:, :] = dcls/P (mean)
 *   per block l in reverse:
 *     MLP:  dr = dx·W2;  du = act'(u) ⊙ dr  (SwiGLU: du = swigluᵀ(LN_mlpᵀ(dr)));  dx += LN2ᵀ(du·W1)
 *     attn: dao = dx·Wo; dqkv = attentionᵀ(dao) [RoPEᵀ on dq, dk]; dx += LN1ᵀ(dqkv·Wqkv)
 *           (materialised: from the saved probabilities att; fused: from the saved lse and the
 *           block's attention output aos[l], the probabilities recomputed)
 *   [dx = LN_preᵀ(dx)]
 *   dpatches = dx[:, npt:, :]·Wpe;  dimages = unpatchifyᵀ(dpatches) */
#include "vit.h"

/* a->dbig (NT, Fu) = du from dr (NT, F) held in a->dbig; SwiGLU passes through a->r */
static void activation_backward(const vit *v, vit_acts *a, int l, int NT) {
    const size_t count = (size_t)NT * (size_t)v->F;
    switch (v->act) {
    case VIT_ACT_RELU: v->ops->relu_backward(a->dbig, a->dbig, a->u[l], count); break;
    case VIT_ACT_GELU_ERF: v->ops->gelu_backward(a->dbig, a->dbig, a->u[l], count, CLPDD_GELU_ERF); break;
    case VIT_ACT_GELU_QUICK: v->ops->gelu_backward(a->dbig, a->dbig, a->u[l], count, CLPDD_GELU_QUICK); break;
    case VIT_ACT_SWIGLU: {
        const vit_block *b = &v->blocks[l];
        v->ops->layernorm_backward(a->r, NULL, NULL, a->dbig, a->m[l], a->mean3[l], a->rstd3[l], b->mlpn_w, NT, v->F);
        v->ops->swiglu_backward(a->dbig, a->r, a->u[l], NT, v->F); /* (NT, 2F) */
        break;
    }
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
    activation_backward(v, a, l, NT);                                        /* du (NT, Fu) */
    ops->gemm(0, 0, NT, D, v->Fu, 1.0f, a->dbig, v->Fu, b->fc1_w, D, 0.0f, a->dh, D); /* dh (NT, D) */
    ops->layernorm_backward(a->dln, NULL, NULL, a->dh, a->xs[2 * l + 1], a->mean2[l], a->rstd2[l], b->ln2_w, NT, D);
    ops->axpy(a->dx, 1.0f, a->dln, ND);

    /* attention half: x_mid = x_in + attention(LN1(x_in)·Wqkvᵀ)·Woᵀ + bo */
    ops->gemm(0, 0, NT, I, D, 1.0f, a->dx, D, b->proj_w, I, 0.0f, a->dao, I); /* dao (NT, I) */
    if (v->fused) /* datt is the (n, Hh, T) delta scratch */
        ops->attention_fused_backward(a->dbig, a->datt, a->dao, a->aos[l], a->att[l], a->qkv[l], n, T, v->Hh, v->hd,
                                      v->scale);
    else
        ops->attention_backward(a->dbig, a->datt, a->dao, a->qkv[l], a->att[l], n, T, v->Hh, v->hd, v->scale);
    if (v->rope) /* the rotation's adjoint on dq, dk of the patch tokens */
        ops->rope(a->dbig, v->rope_sin, v->rope_cos, n, T, v->npt, 3 * I, 2 * v->Hh, v->hd, 1);
    ops->gemm(0, 0, NT, D, 3 * I, 1.0f, a->dbig, 3 * I, b->qkv_w, D, 0.0f, a->dh, D); /* dh (NT, D) */
    ops->layernorm_backward(a->dln, NULL, NULL, a->dh, a->xs[2 * l], a->mean1[l], a->rstd1[l], b->ln1_w, NT, D);
    ops->axpy(a->dx, 1.0f, a->dln, ND);
}

void vit_backward_pass(const vit *v, vit_acts *a, float *dimages, const float *dfeatures, int n) {
    const clpdd_ops *ops = v->ops;
    const int T = v->T, D = v->D, P = v->P, K = v->K;
    const size_t TD = (size_t)T * (size_t)D, PD = (size_t)P * (size_t)D, pre = (size_t)v->npt * (size_t)D;

    const float *dfn = dfeatures;
    if (v->E) { /* features = fn·Whᵀ + bh: dfn (n, D) = dfeatures·Wh */
        ops->gemm(0, 0, n, D, v->E, 1.0f, dfeatures, v->E, v->head_w, D, 0.0f, a->dpool, D);
        dfn = a->dpool;
    }
    ops->layernorm_backward(a->dcls, NULL, NULL, dfn, a->cls, a->meanf, a->rstdf, v->norm_w, n, D);
    if (v->pool == VIT_POOL_MEAN) { /* dx[i, npt:, :] = (1/P)·1·dcls[i]; prefix rows 0 */
        ops->gemm_batched(0, 0, P, D, 1, 1.0f / (float)P, v->ones, 1, 0, a->dcls, D, D, 0.0f, a->dx + pre, D,
                          (long long)TD, n);
        ops->fill(a->dh, 0.0f, pre);                       /* one zero block of npt rows */
        ops->copy2d(a->dx, TD, a->dh, 0, (size_t)n, pre); /* broadcast into every image's prefix rows */
    } else {
        ops->fill(a->dx, 0.0f, (size_t)n * TD);
        ops->copy2d(a->dx, TD, a->dcls, (size_t)D, (size_t)n, (size_t)D); /* only the CLS rows */
    }

    for (int l = v->L - 1; l >= 0; l--) block_backward(v, a, l, n);

    const float *dx0 = a->dx; /* gradient of the embedded tokens */
    if (v->norm_pre) {
        ops->layernorm_backward(a->dln, NULL, NULL, a->dx, a->x0, a->meanp, a->rstdp, v->pre_w, n * T, D);
        dx0 = a->dln;
    }

    /* embedding: x[:, npt:, :] = patches·Wpeᵀ + const */
    ops->copy2d(a->emb, PD, dx0 + pre, TD, (size_t)n, PD);                                /* (n·P, D) */
    ops->gemm(0, 0, n * P, K, D, 1.0f, a->emb, D, v->patch_w, K, 0.0f, a->patches, K); /* (n·P, K) */
    ops->unpatchify(dimages, a->patches, n, v->c, v->S, v->S, v->p);
}
