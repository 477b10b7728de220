/* resnet forward and input-gradient backward. Dimensions as in resnet.h.
 *
 *   forward:  x0 = ReLU(convbn(stem, images));  [torchvision] x0 = maxpool3×3,s2,p1(x0)
 *             per block: h = ReLU(convbn(h)) for every conv but the last,
 *                        out = ReLU(convbn_last(h) + shortcut(x))
 *             features = mean over H·W of the last block's output
 *   backward: the adjoint of each step in reverse; a block's input gradient is the main
 *             path's (=) plus the shortcut's (+=). ReLU backward reads the ReLU's output
 *             (y > 0 ⟺ x > 0), so the tape holds only ReLU outputs and the max-pool argmax. */
#include "resnet.h"

/* ---- fast path (conv = fast): ops->conv2d with the epilogue fused ---- */

static clpdd_conv2d_desc conv_desc(const rn_conv *c, int n) {
    clpdd_conv2d_desc d = {n, c->cin, c->H, c->W, c->cout, c->k, c->s, c->p, c->OH, c->OW, 0, 0, 0, 0, 0, 0};
    return d;
}

/* y (n, cout, OH, OW) = [relu](conv(x) + shift [+ shortcut(res)]); sc: how res enters
   (RN_SC_IDENTITY: same shape; RN_SC_OPTION_A: b's subsample + channel padding) */
static void conv_fwd_fast(const rn *r, rn_acts *a, const rn_conv *c, float *y, const float *x, int n, int relu,
                          const float *res, rn_shortcut sc, const rn_block *b) {
    clpdd_conv2d_desc d = conv_desc(c, n);
    d.relu = relu;
    if (res && sc == RN_SC_OPTION_A) {
        d.res_c = b->cin, d.res_pad = b->sc_pad, d.res_H = b->H, d.res_W = b->W, d.res_stride = 2;
    } else if (res) {
        d.res_c = c->cout, d.res_pad = 0, d.res_H = c->OH, d.res_W = c->OW, d.res_stride = 1;
    }
    r->ops->conv2d(y, a->col, a->work_floats, x, c->w, c->shift, res, &d);
}

/* dx (n, cin, H, W) = convᵀ(dy ⊙ [mask > 0])  (=); mask NULL: none */
static void conv_bwd_fast(const rn *r, rn_acts *a, const rn_conv *c, float *dx, const float *dy, const float *mask,
                          int n) {
    clpdd_conv2d_desc d = conv_desc(c, n);
    r->ops->conv2d_backward(dx, a->col, a->work_floats, dy, mask, c->w, &d);
}

static void block_forward_fast(const rn *r, rn_acts *a, const rn_block *b, float *out, float *const *mid,
                               const float *x, int n) {
    const float *h = x;
    for (int j = 0; j < b->nconv - 1; j++) {
        conv_fwd_fast(r, a, &b->conv[j], mid[j], h, n, 1, NULL, RN_SC_IDENTITY, b);
        h = mid[j];
    }
    const float *res = x;
    rn_shortcut sc = b->sc;
    if (b->sc == RN_SC_CONV) { /* the downsample branch first, then added like an identity */
        conv_fwd_fast(r, a, &b->down, a->s, x, n, 0, NULL, RN_SC_IDENTITY, b);
        res = a->s, sc = RN_SC_IDENTITY;
    }
    conv_fwd_fast(r, a, &b->conv[b->nconv - 1], out, h, n, 1, res, sc, b);
}

static void block_backward_fast(const rn *r, rn_acts *a, const rn_block *b, float *dx, float *dout,
                                float *const *mid, const float *out, int n) {
    const clpdd_ops *ops = r->ops;
    const size_t P = (size_t)b->OH * b->OW, IP = (size_t)b->H * b->W;
    const size_t nout = (size_t)n * b->cout * P, nin = (size_t)n * b->cin * IP;
    ops->relu_backward(dout, dout, out, nout); /* both the main path and the shortcut read it */
    float *g = dout, *bufs[2] = {a->m0, a->m1};
    const float *mask = NULL; /* the ReLU between conv j − 1 and conv j, folded into conv j − 1's backward */
    for (int j = b->nconv - 1; j >= 1; j--) {
        float *dh = bufs[j & 1];
        conv_bwd_fast(r, a, &b->conv[j], dh, g, mask, n);
        mask = mid[j - 1];
        g = dh;
    }
    conv_bwd_fast(r, a, &b->conv[0], dx, g, mask, n);
    switch (b->sc) {
    case RN_SC_IDENTITY: ops->axpy(dx, 1.0f, dout, nin); break;
    case RN_SC_OPTION_A:
        ops->copy2d(a->m0, (size_t)b->cin * P, dout + (size_t)b->sc_pad * P, (size_t)b->cout * P, (size_t)n,
                    (size_t)b->cin * P);
        ops->col2im(a->s, a->m0, n * b->cin, b->H, b->W, 1, 1, 2, 0, b->OH, b->OW);
        ops->axpy(dx, 1.0f, a->s, nin);
        break;
    case RN_SC_CONV:
        conv_bwd_fast(r, a, &b->down, a->s, dout, NULL, n);
        ops->axpy(dx, 1.0f, a->s, nin);
        break;
    default: break;
    }
}

/* ---- reference path (conv = reference) ---- */

/* y (n, cout, OH, OW) = conv(x (n, cin, H, W)) + shift  (BN folded) */
static void conv_forward(const rn *r, rn_acts *a, const rn_conv *c, float *y, const float *x, int n) {
    const clpdd_ops *ops = r->ops;
    const int K = c->cin * c->k * c->k, P = c->OH * c->OW;
    const long long xs = (long long)c->cin * c->H * c->W, ys = (long long)c->cout * P;
    if (c->k == 1 && c->s == 1 && c->p == 0) { /* the image is its own column matrix */
        ops->gemm_batched(0, 0, c->cout, P, K, 1.0f, c->w, K, 0, x, P, xs, 0.0f, y, P, ys, n);
    } else {
        for (int i0 = 0; i0 < n; i0 += a->col_g) {
            int g = n - i0 < a->col_g ? n - i0 : a->col_g;
            for (int j = 0; j < g; j++)
                ops->im2col(a->col + (size_t)j * K * P, x + (size_t)(i0 + j) * xs, c->cin, c->H, c->W, c->k, c->k,
                            c->s, c->p, c->OH, c->OW);
            ops->gemm_batched(0, 0, c->cout, P, K, 1.0f, c->w, K, 0, a->col, P, (long long)K * P, 0.0f,
                              y + (size_t)i0 * ys, P, ys, g);
        }
    }
    ops->channel_affine(y, y, r->ones, c->shift, n, c->cout, P);
}

/* dx (n, cin, H, W) = convᵀ(dy (n, cout, OH, OW))  (=) */
static void conv_backward(const rn *r, rn_acts *a, const rn_conv *c, float *dx, const float *dy, int n) {
    const clpdd_ops *ops = r->ops;
    const int K = c->cin * c->k * c->k, P = c->OH * c->OW;
    const long long xs = (long long)c->cin * c->H * c->W, ys = (long long)c->cout * P;
    if (c->k == 1 && c->s == 1 && c->p == 0) {
        ops->gemm_batched(1, 0, K, P, c->cout, 1.0f, c->w, K, 0, dy, P, ys, 0.0f, dx, P, xs, n);
        return;
    }
    for (int i0 = 0; i0 < n; i0 += a->col_g) {
        int g = n - i0 < a->col_g ? n - i0 : a->col_g;
        ops->gemm_batched(1, 0, K, P, c->cout, 1.0f, c->w, K, 0, dy + (size_t)i0 * ys, P, ys, 0.0f, a->col, P,
                          (long long)K * P, g);
        for (int j = 0; j < g; j++)
            ops->col2im(dx + (size_t)(i0 + j) * xs, a->col + (size_t)j * K * P, c->cin, c->H, c->W, c->k, c->k, c->s,
                        c->p, c->OH, c->OW);
    }
}

/* out (n, cout, OH, OW) = block(x (n, cin, H, W)); mid[] receive the inner ReLU outputs */
static void block_forward(const rn *r, rn_acts *a, const rn_block *b, float *out, float *const *mid, const float *x,
                          int n) {
    const clpdd_ops *ops = r->ops;
    const size_t P = (size_t)b->OH * b->OW, nout = (size_t)n * b->cout * P;
    const float *h = x;
    for (int j = 0; j < b->nconv - 1; j++) {
        const rn_conv *c = &b->conv[j];
        conv_forward(r, a, c, mid[j], h, n);
        ops->relu(mid[j], mid[j], (size_t)n * c->cout * c->OH * c->OW);
        h = mid[j];
    }
    conv_forward(r, a, &b->conv[b->nconv - 1], out, h, n);
    switch (b->sc) {
    case RN_SC_IDENTITY: ops->axpy(out, 1.0f, x, nout); break;
    case RN_SC_OPTION_A: /* x[:, :, ::2, ::2]: a 1×1 "im2col" of stride 2 over all n·cin planes at once */
        ops->im2col(a->s, x, n * b->cin, b->H, b->W, 1, 1, 2, 0, b->OH, b->OW);
        ops->add2d(out + (size_t)b->sc_pad * P, (size_t)b->cout * P, a->s, (size_t)b->cin * P, (size_t)n,
                   (size_t)b->cin * P);
        break;
    case RN_SC_CONV:
        conv_forward(r, a, &b->down, a->s, x, n);
        ops->axpy(out, 1.0f, a->s, nout);
        break;
    default: break;
    }
    ops->relu(out, out, nout);
}

void rn_forward_pass(const rn *r, rn_acts *a, float *features, const float *images, int n) {
    const clpdd_ops *ops = r->ops;
    if (r->fast) {
        conv_fwd_fast(r, a, &r->stem, a->stem, images, n, 1, NULL, RN_SC_IDENTITY, NULL);
    } else {
        conv_forward(r, a, &r->stem, a->stem, images, n);
        ops->relu(a->stem, a->stem, (size_t)n * r->C0 * r->H0 * r->W0);
    }
    const float *x = a->stem;
    if (r->maxpool) {
        ops->maxpool(a->pool, a->argmax, a->stem, n, r->C0, r->H0, r->W0, 3, 2, 1, r->H1, r->W1);
        x = a->pool;
    }
    for (int i = 0; i < r->nblocks; i++) {
        if (r->fast)
            block_forward_fast(r, a, &r->blocks[i], a->out[i], a->mid[i], x, n);
        else
            block_forward(r, a, &r->blocks[i], a->out[i], a->mid[i], x, n);
        x = a->out[i];
    }
    ops->global_avgpool(features, x, n, r->Cf, r->Hf * r->Wf);
}

/* dx (n, cin, H, W) = blockᵀ(dout (n, cout, OH, OW)); dout is overwritten (it becomes the
   gradient of the pre-ReLU sum) */
static void block_backward(const rn *r, rn_acts *a, const rn_block *b, float *dx, float *dout, float *const *mid,
                           const float *out, int n) {
    const clpdd_ops *ops = r->ops;
    const size_t P = (size_t)b->OH * b->OW, IP = (size_t)b->H * b->W;
    const size_t nout = (size_t)n * b->cout * P, nin = (size_t)n * b->cin * IP;
    ops->relu_backward(dout, dout, out, nout);
    /* main path, last conv first; m0/m1 alternate as the gradient of each inner ReLU output */
    float *g = dout, *bufs[2] = {a->m0, a->m1};
    for (int j = b->nconv - 1; j >= 1; j--) {
        float *dh = bufs[j & 1];
        conv_backward(r, a, &b->conv[j], dh, g, n);
        const rn_conv *prev = &b->conv[j - 1];
        ops->relu_backward(dh, dh, mid[j - 1], (size_t)n * prev->cout * prev->OH * prev->OW);
        g = dh;
    }
    conv_backward(r, a, &b->conv[0], dx, g, n);
    switch (b->sc) {
    case RN_SC_IDENTITY: ops->axpy(dx, 1.0f, dout, nin); break;
    case RN_SC_OPTION_A: /* crop the padded channels, then scatter back to the even pixels */
        ops->copy2d(a->m0, (size_t)b->cin * P, dout + (size_t)b->sc_pad * P, (size_t)b->cout * P, (size_t)n,
                    (size_t)b->cin * P); /* m0 is free once the main path is done */
        ops->col2im(a->s, a->m0, n * b->cin, b->H, b->W, 1, 1, 2, 0, b->OH, b->OW);
        ops->axpy(dx, 1.0f, a->s, nin);
        break;
    case RN_SC_CONV:
        conv_backward(r, a, &b->down, a->s, dout, n);
        ops->axpy(dx, 1.0f, a->s, nin);
        break;
    default: break;
    }
}

void rn_backward_pass(const rn *r, rn_acts *a, float *dimages, const float *dfeatures, int n) {
    const clpdd_ops *ops = r->ops;
    float *g = a->g0, *d = a->g1; /* gradient of the current block's output / input */
    ops->global_avgpool_backward(g, dfeatures, n, r->Cf, r->Hf * r->Wf);
    for (int i = r->nblocks - 1; i >= 0; i--) {
        if (r->fast)
            block_backward_fast(r, a, &r->blocks[i], d, g, a->mid[i], a->out[i], n);
        else
            block_backward(r, a, &r->blocks[i], d, g, a->mid[i], a->out[i], n);
        float *t = g;
        g = d;
        d = t;
    }
    if (r->maxpool) {
        ops->maxpool_backward(d, g, a->argmax, n, r->C0, r->H0, r->W0, r->H1, r->W1);
        g = d;
    }
    if (r->fast) { /* the stem's ReLU backward folded in as the mask */
        conv_bwd_fast(r, a, &r->stem, dimages, g, a->stem, n);
        return;
    }
    ops->relu_backward(g, g, a->stem, (size_t)n * r->C0 * r->H0 * r->W0);
    conv_backward(r, a, &r->stem, dimages, g, n);
}
