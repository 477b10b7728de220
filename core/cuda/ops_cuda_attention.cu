/* clpdd CUDA backend: multi-head attention, put into the table by ops_cuda.cu. Semantics:
 * clpdd/ops.h; the CPU reference is core/cpu/ops_cpu_attention.c (the same S = q·kᵀ,
 * P = softmax(scale·S), out = P·v, as cuBLAS products and the row-softmax kernels), checked
 * against it by tests/test_ops_cuda.c.
 *
 * Dimension legend: n images, T tokens, Hh heads, hd head width, D = Hh·hd. */
#include "cuda_common.h"

/* qkv (n, T, 3D), rows [q | k | v], head h at column h·hd of each part; att (n, Hh, T, T);
   out (n, T, D). The per-(b, h) products are strided-batched sgemms straight on the
   strided qkv rows (ld 3D) and out rows (ld D). For fixed h the (b, ·) matrices are
   equally spaced (q: T·3D, att: Hh·T·T, out: T·D), and for fixed b the (·, h) ones too
   (q: hd, att: T·T, out: hd); so we loop over the smaller of n and Hh and batch over the
   larger: min(n, Hh) cuBLAS calls per product, no pointer arrays. */
struct attn_plan {
    int nloop, batch;
    size_t qkv_off, att_off, out_off;   /* for loop index l: l·(these) */
    long long qkv_str, att_str, out_str; /* between batch entries */
};
static attn_plan attn_make_plan(int n, int T, int Hh, int hd) {
    size_t D = (size_t)Hh * hd, ld = 3 * D, TT = (size_t)T * T;
    attn_plan p;
    if (Hh <= n) { /* loop over heads h, batch over images b */
        p.nloop = Hh; p.batch = n;
        p.qkv_off = hd; p.att_off = TT; p.out_off = hd;
        p.qkv_str = (long long)(T * ld); p.att_str = (long long)(Hh * TT); p.out_str = (long long)(T * D);
    } else { /* loop over images b, batch over heads h */
        p.nloop = n; p.batch = Hh;
        p.qkv_off = T * ld; p.att_off = Hh * TT; p.out_off = T * D;
        p.qkv_str = hd; p.att_str = (long long)TT; p.out_str = hd;
    }
    return p;
}

/* as the CPU: S = q·kᵀ, P = softmax(scale·S) in place, out = P·v */
void clpdd_cuda_attention(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd, float scale) {
    CLPDD_CUDA_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0);
    if (!n || !T || !Hh || !hd) return;
    int D = Hh * hd, ld = 3 * D;
    attn_plan p = attn_make_plan(n, T, Hh, hd);
    for (int l = 0; l < p.nloop; l++) {
        const float *q = qkv + l * p.qkv_off, *k = q + D;
        clpdd_cuda_gemm_strided(0, 1, T, T, hd, 1.0f, q, ld, p.qkv_str, k, ld, p.qkv_str, 0.0f,
                                att + l * p.att_off, T, p.att_str, p.batch);
    }
    clpdd_cuda_softmax_rows(att, att, n * Hh * T, T, scale);
    for (int l = 0; l < p.nloop; l++) {
        const float *v = qkv + l * p.qkv_off + 2 * D;
        clpdd_cuda_gemm_strided(0, 0, T, hd, T, 1.0f, att + l * p.att_off, T, p.att_str, v, ld, p.qkv_str,
                                0.0f, out + l * p.out_off, D, p.out_str, p.batch);
    }
}

/* dqkv (n, T, 3D) =; datt (n, Hh, T, T) scratch; as the CPU:
   dP = dout·vᵀ, dv = Pᵀ·dout, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale·dS·k, dk = scale·dSᵀ·q.
   Every element of dqkv is some head's dq, dk or dv, all written with beta = 0. */
void clpdd_cuda_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                                   const float *att, int n, int T, int Hh, int hd, float scale) {
    CLPDD_CUDA_ASSERT(n >= 0 && T >= 0 && Hh >= 0 && hd >= 0);
    if (!n || !T || !Hh || !hd) return;
    int D = Hh * hd, ld = 3 * D;
    attn_plan p = attn_make_plan(n, T, Hh, hd);
    for (int l = 0; l < p.nloop; l++) {
        const float *v = qkv + l * p.qkv_off + 2 * D, *dO = dout + l * p.out_off, *P = att + l * p.att_off;
        float *dv = dqkv + l * p.qkv_off + 2 * D;
        clpdd_cuda_gemm_strided(0, 1, T, T, hd, 1.0f, dO, D, p.out_str, v, ld, p.qkv_str, 0.0f,
                                datt + l * p.att_off, T, p.att_str, p.batch); /* dP (T, T) */
        clpdd_cuda_gemm_strided(1, 0, T, hd, T, 1.0f, P, T, p.att_str, dO, D, p.out_str, 0.0f, dv, ld,
                                p.qkv_str, p.batch); /* dv (T, hd) */
    }
    clpdd_cuda_softmax_rows_backward(datt, datt, att, n * Hh * T, T, 1.0f); /* dS */
    for (int l = 0; l < p.nloop; l++) {
        const float *q = qkv + l * p.qkv_off, *k = q + D, *dS = datt + l * p.att_off;
        float *dq = dqkv + l * p.qkv_off, *dk = dq + D;
        clpdd_cuda_gemm_strided(0, 0, T, hd, T, scale, dS, T, p.att_str, k, ld, p.qkv_str, 0.0f, dq, ld,
                                p.qkv_str, p.batch);
        clpdd_cuda_gemm_strided(1, 0, T, hd, T, scale, dS, T, p.att_str, q, ld, p.qkv_str, 0.0f, dk, ld,
                                p.qkv_str, p.batch);
    }
}
