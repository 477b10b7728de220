/* vit taped passes in pieces side by side: the batch cut into pieces of at most VIT_PIECE
 * images, one per pool thread (ops->pieces_run, ABI 1.6). Every buffer of a tape is image-major
 * ((n, T, ·), (n, Hh, T, ·), (n, D), ...; vit.h), so a piece [i0, i0 + k) runs the ordinary
 * passes on a view of the tape offset by i0 images, scratch included: pieces touch disjoint
 * slices and need no scratch of their own. An image's forward and backward read no other image,
 * so the threads meet once per pass instead of at each of the ~15 ops of each block. No op's
 * result for an image depends on how many images share its call (test_vit), so features and
 * gradients are bit for bit those of one pass. $CLPDD_VIT_PIECE overrides the size (0: one pass);
 * on a GPU, or with one thread, one pass. */
#include "vit.h"

#include <stdlib.h>

#define VIT_PIECE 16

/* the most images per piece, 0: one pass (vit.piece_cap) */
int vit_piece_cap(const vit *v) {
    if (v->ops->is_device || v->h->abi_minor < 6 || !v->ops->pieces_run || !v->ops->pieces_slots) return 0;
    if (v->ops->pieces_slots() < 2) return 0; /* no one to share with: one pass, as before */
    const char *env = getenv("CLPDD_VIT_PIECE");
    const long p = env && *env ? atol(env) : VIT_PIECE;
    return p <= 0 ? 0 : p > (1 << 20) ? 1 << 20 : (int)p;
}

static float *at(float *p, size_t i0, size_t per_image) { return p ? p + i0 * per_image : NULL; }

/* w = a's buffers from image i0 on; w's pointer arrays live in ptrs (vit_acts_ptrs of them) */
static void tape_view(const vit *v, const vit_acts *a, vit_acts *w, float **ptrs, size_t i0) {
    const size_t T = (size_t)v->T, D = (size_t)v->D, I = (size_t)v->I, F = (size_t)v->F, Fu = (size_t)v->Fu;
    const size_t Hh = (size_t)v->Hh, att = v->fused ? Hh * T : Hh * T * T, big = 3 * I > Fu ? 3 * I : Fu;
    const int L = v->L;
    *w = *a;
    w->xs = ptrs, ptrs += 2 * L + 1;
    for (int j = 0; j <= 2 * L; j++) w->xs[j] = at(a->xs[j], i0, T * D);
    float ***per_block[11] = {&w->mean1, &w->rstd1, &w->qkv, &w->att, &w->aos, &w->mean2,
                              &w->rstd2, &w->u, &w->m, &w->mean3, &w->rstd3};
    float **const src[11] = {a->mean1, a->rstd1, a->qkv, a->att, a->aos, a->mean2, a->rstd2, a->u, a->m, a->mean3, a->rstd3};
    const size_t per[11] = {T, T, T * 3 * I, att, T * I, T, T, T * Fu, T * F, T, T};
    for (int k = 0; k < 11; k++, ptrs += L) {
        *per_block[k] = ptrs;
        for (int l = 0; l < L; l++) ptrs[l] = at(src[k][l], i0, per[k]);
    }
    w->x0 = at(a->x0, i0, T * D), w->meanp = at(a->meanp, i0, T), w->rstdp = at(a->rstdp, i0, T);
    w->cls = at(a->cls, i0, D), w->pooln = at(a->pooln, i0, D);
    w->meanf = at(a->meanf, i0, 1), w->rstdf = at(a->rstdf, i0, 1);
    w->patches = at(a->patches, i0, (size_t)v->P * (size_t)v->K), w->emb = at(a->emb, i0, (size_t)v->P * D);
    w->h = at(a->h, i0, T * D), w->r = at(a->r, i0, T * F);
    w->dx = at(a->dx, i0, T * D), w->dh = at(a->dh, i0, T * D), w->dln = at(a->dln, i0, T * D);
    w->dbig = at(a->dbig, i0, T * big), w->dao = at(a->dao, i0, T * I), w->datt = at(a->datt, i0, att);
    w->dcls = at(a->dcls, i0, D), w->dpool = at(a->dpool, i0, D);
}

typedef struct vit_pieces {
    const vit *v;
    const vit_acts *a;
    float *out;
    const float *in;
    int forward;
} vit_pieces;

static void piece_pass(void *ctx, int i0, int k, int slot) {
    const vit_pieces *J = ctx;
    const vit *v = J->v;
    const size_t img = (size_t)v->c * (size_t)v->S * (size_t)v->S, d = (size_t)(v->E ? v->E : v->D);
    vit_acts w;
    tape_view(v, J->a, &w, (float **)J->a->ptrs + (size_t)(1 + slot) * vit_acts_ptrs(v), (size_t)i0);
    if (J->forward)
        vit_forward_pass(v, &w, J->out + (size_t)i0 * d, J->in + (size_t)i0 * img, k);
    else
        vit_backward_pass(v, &w, J->out + (size_t)i0 * img, J->in + (size_t)i0 * d, k);
}

void vit_taped_pass(const vit *v, vit_acts *a, float *out, const float *in, int n, int forward) {
    if (v->piece_cap <= 0 || a->slots < 2 || n < 2) {
        if (forward)
            vit_forward_pass(v, a, out, in, n);
        else
            vit_backward_pass(v, a, out, in, n);
        return;
    }
    vit_pieces J = {v, a, out, in, forward};
    v->ops->pieces_run(n, v->piece_cap, piece_pass, &J);
}
