/* clpdd device ops: one table of function pointers, two implementations (cpu, cuda).
 *
 * Conventions (every op):
 *  - fp32, row-major, explicit dimensions; pointers live where `is_device` says
 *    (host memory for cpu, device memory for cuda) unless a comment says "host".
 *  - outputs first, then inputs, then dimensions; nothing allocates inside an op
 *    (callers pass scratch where one is needed).
 *  - "=" overwrites the output, "+=" accumulates; each op says which. Where an op takes a
 *    beta (gemm, syrk, sum_rows), beta = 0 means the output is not read (NaN there is fine).
 *  - aliasing: only where a comment allows it (out = in for elementwise ops, y = x for
 *    channel_affine, softmax_rows and layernorm, dx = dy for the activation backwards).
 *  - ops never fail on valid input; programming errors (bad dims, CUDA faults) abort
 *    with file:line. The only user-causable failure, a non-positive-definite Cholesky,
 *    is returned as a status.
 *
 * Dimension legend: n batch, C channels, H/W height/width, T tokens, Hh heads,
 * hd head dim, rows/cols of a matrix, p patch size.
 *
 * The CPU implementation (core/cpu) is the reference; the CUDA one (core/cuda) is
 * checked against it op by op (tests/test_ops_cuda.c). */
#ifndef CLPDD_OPS_H
#define CLPDD_OPS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLPDD_GELU_ERF = 0,   /* x·Φ(x), exact */
    CLPDD_GELU_TANH = 1,  /* 0.5x(1+tanh(√(2/π)(x+0.044715x³))) */
    CLPDD_GELU_QUICK = 2, /* x·σ(1.702x), OpenAI CLIP's QuickGELU */
    CLPDD_GELU_COUNT
} clpdd_gelu_kind;

/* A 2-D convolution (ABI 1.2: conv2d, conv2d_backward), zero padding, dilation 1, no groups:
   x (n, cin, H, W) → y (n, cout, OH, OW), OH = (H + 2·pad − k)/stride + 1 (likewise OW),
   weight w (cout, cin·k·k), each row in (c, ky, kx) order (PyTorch's (cout, cin, k, k)).
   Optional epilogue of the forward, in this order: + bias[o]; + a shortcut read from
   res (n, res_c, res_H, res_W): y[i, res_pad + c, oy, ox] += res[i, c, oy·res_stride, ox·res_stride]
   for c < res_c (identity: res_c = cout, res_pad = 0, res_stride = 1; the CIFAR ResNets'
   option A: res_c = cin, res_pad = cout/4, res_stride = 2, res_H = H); then max(·, 0) when relu. */
typedef struct clpdd_conv2d_desc {
    int n, cin, H, W, cout, k, stride, pad, OH, OW;
    int relu;                                   /* forward only */
    int res_c, res_pad, res_H, res_W, res_stride; /* forward only, read when res ≠ NULL */
} clpdd_conv2d_desc;

/* scratch floats conv2d / conv2d_backward need for g images sharing one GEMM (g ≥ 1; g = n is
   fastest): g·OH·OW·(cin·k·k + cout) */
#define CLPDD_CONV2D_WORK(desc, g) \
    ((size_t)(g) * (size_t)(desc)->OH * (desc)->OW * ((size_t)(desc)->cin * (desc)->k * (desc)->k + (desc)->cout))

/* the arithmetic of the matrix products (ABI 1.3, set_precision) */
typedef enum {
    CLPDD_PRECISION_FP32 = 0, /* IEEE fp32 products */
    CLPDD_PRECISION_TF32 = 1, /* inputs rounded to tf32 (10-bit mantissa), fp32 accumulation */
    CLPDD_PRECISION_BF16 = 2, /* inputs rounded to bf16 (7-bit mantissa), fp32 accumulation */
    CLPDD_PRECISION_COUNT
} clpdd_precision;

typedef struct clpdd_ops clpdd_ops;
struct clpdd_ops {
    const char *name; /* "cpu" or "cuda:<device name>" */
    int is_device;    /* 1 when pointers are device memory */

    /* ---- memory: raw, untracked; plugins allocate through host->alloc instead ---- */
    void *(*malloc)(size_t bytes);                              /* NULL on failure */
    void (*free)(void *p);                                      /* NULL is a no-op */
    void (*to_device)(void *dst, const void *src_host, size_t bytes);
    void (*to_host)(void *dst_host, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);     /* device → device, no overlap */
    void (*synchronize)(void);
    size_t (*peak_bytes)(void); /* high-water mark of memory taken through malloc */

    /* ---- elementwise over n floats ---- */
    void (*fill)(float *x, float v, size_t n);                             /* x = v */
    void (*scale)(float *x, float a, size_t n);                            /* x *= a */
    void (*axpy)(float *y, float a, const float *x, size_t n);             /* y += a·x */
    void (*axpby)(float *out, float a, const float *x, float b, const float *y, size_t n);
                                                          /* out = a·x + b·y; out may alias x or y */
    void (*mul)(float *out, const float *x, const float *y, size_t n);     /* out = x ⊙ y */
    void (*clamp)(float *x, float lo, float hi, size_t n);  /* x = min(max(x,lo),hi); NaN → lo */
    void (*sigmoid)(float *y, const float *x, size_t n);                   /* y = σ(x) */

    /* ---- 2-D layout ---- */
    /* dst[r·ldd + c] = src[r·lds + c] for r < rows, c < cols; lds = 0 broadcasts one row */
    void (*copy2d)(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);
    /* dst[r·ldd + c] += src[r·lds + c] (lds = 0 broadcasts) */
    void (*add2d)(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);
    /* out[c] = beta·out[c] + Σ_r x[r·cols + c]   (column sums; the bias gradient) */
    void (*sum_rows)(float *out, const float *x, size_t rows, size_t cols, float beta);
    /* dst[i, :] = src[idx[i], :] for i < nidx; idx is an int32 array in op memory */
    void (*gather_rows)(float *dst, const float *src, const int32_t *idx, size_t nidx, size_t cols);
    /* per-channel affine on (n, C, HW): y = x·scale[c] + shift[c]; y may alias x.
       Normalisation by mean/std and BatchNorm in eval mode are both this op. */
    void (*channel_affine)(float *y, const float *x, const float *scale, const float *shift,
                           int n, int C, int HW);
    /* dx = dy·scale[c]  (=) */
    void (*channel_affine_backward)(float *dx, const float *dy, const float *scale, int n, int C, int HW);

    /* ---- reductions, result returned to the host (synchronising) ---- */
    double (*dot)(const float *x, const float *y, size_t n);
    double (*sum)(const float *x, size_t n);
    int (*all_finite)(const float *x, size_t n); /* 1 when no NaN/Inf */

    /* ---- BLAS / LAPACK (row-major; trans = 0 or 1) ---- */
    /* C = alpha·op(A)·op(B) + beta·C, op(A) M×K, op(B) K×N, C M×N */
    void (*gemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
    /* batch of the above with element strides between consecutive matrices */
    void (*gemm_batched)(int transA, int transB, int M, int N, int K, float alpha,
                         const float *A, int lda, long long strideA, const float *B, int ldb,
                         long long strideB, float beta, float *C, int ldc, long long strideC, int batch);
    /* trans = 0: C = alpha·A·Aᵀ + beta·C with A N×K; trans = 1: C = alpha·Aᵀ·A + beta·C with
       A K×N. C is N×N and both triangles are written. */
    void (*syrk)(int trans, int N, int K, float alpha, const float *A, int lda, float beta, float *C, int ldc);
    /* Cholesky A = L·Lᵀ of an n×n SPD matrix; L is left in the lower triangle (row-major;
       the strict upper triangle is unspecified afterwards). Returns 0, or k > 0 when the
       leading minor of order k is not positive definite. */
    int (*potrf)(float *A, int n, int lda);
    /* Solve (L·Lᵀ)·X = B in place (B n×nrhs) with L from potrf. */
    void (*potrs)(const float *L, int n, int lda, float *B, int nrhs, int ldb);

    /* ---- activations (= ; dx may alias dy) ---- */
    void (*relu)(float *y, const float *x, size_t n);
    void (*relu_backward)(float *dx, const float *dy, const float *x, size_t n); /* dy·[x>0] */
    void (*gelu)(float *y, const float *x, size_t n, clpdd_gelu_kind kind);
    void (*gelu_backward)(float *dx, const float *dy, const float *x, size_t n, clpdd_gelu_kind kind);

    /* ---- rows ---- */
    /* y_r = softmax(scale·x_r) per row (=); y may alias x */
    void (*softmax_rows)(float *y, const float *x, int rows, int cols, float scale);
    /* dx = scale·y ⊙ (dy − Σ dy⊙y) per row (=) */
    void (*softmax_rows_backward)(float *dx, const float *dy, const float *y, int rows, int cols, float scale);
    /* loss[i] = −log softmax(inv_tau·z_i)[y_i]  (loss may be NULL);
       dz = grad_scale·inv_tau·(softmax(inv_tau·z_i) − onehot(y_i))  (dz may be NULL).
       labels: int32 in op memory, each in [0, cols). */
    void (*cross_entropy)(float *loss, float *dz, const float *z, const int32_t *labels, int rows,
                          int cols, float inv_tau, float grad_scale);
    /* Y[i, c] = on when c = labels[i], else off */
    void (*onehot)(float *Y, const int32_t *labels, int rows, int cols, float on, float off);
    /* out[i] = argmax_c x[i, c] (first maximum) */
    void (*argmax_rows)(int32_t *out, const float *x, int rows, int cols);
    /* y = (x − μ)·rstd·gamma + beta per row; mean, rstd (rows) saved when not NULL;
       gamma and beta are required */
    void (*layernorm)(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                      const float *beta, int rows, int cols, float eps);
    /* dx = (from dy, saved mean/rstd);  dgamma += , dbeta +=  (either may be NULL) */
    void (*layernorm_backward)(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                               const float *mean, const float *rstd, const float *gamma, int rows, int cols);

    /* ---- attention (bidirectional, batched heads) ----
       qkv (n, T, 3·Hh·hd): each token row is [q | k | v], each Hh heads of hd, head h at h·hd.
       att (n, Hh, T, T): softmax(scale·q·kᵀ), saved for backward.
       out (n, T, Hh·hd): heads concatenated. */
    void (*attention)(float *out, float *att, const float *qkv, int n, int T, int Hh, int hd, float scale);
    /* dqkv = (overwrite); datt (n, Hh, T, T) is scratch */
    void (*attention_backward)(float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, int n, int T, int Hh, int hd, float scale);

    /* ---- images ---- */
    /* x (n, C, H, W) → y (n, (H/p)·(W/p), C·p·p); patches in row-major grid order, each
       flattened in (c, py, px) order (a conv with kernel = stride = p). H, W multiples of p. */
    void (*patchify)(float *y, const float *x, int n, int C, int H, int W, int p);
    /* exact adjoint of patchify (=) */
    void (*unpatchify)(float *dx, const float *dy, int n, int C, int H, int W, int p);
    /* one image x (C, H, W) → col (C·kh·kw, OH·OW), zero padding, dilation 1 */
    void (*im2col)(float *col, const float *x, int C, int H, int W, int kh, int kw, int stride,
                   int pad, int OH, int OW);
    /* adjoint of im2col: dx = (overwrite) */
    void (*col2im)(float *dx, const float *col, int C, int H, int W, int kh, int kw, int stride,
                   int pad, int OH, int OW);
    /* (n, C, H, W) → (n, C): mean over H·W */
    void (*global_avgpool)(float *y, const float *x, int n, int C, int HW);
    void (*global_avgpool_backward)(float *dx, const float *dy, int n, int C, int HW); /* = */
    /* max pooling k×k, stride s, padding pad (−∞ padding); argmax (int32, n·C·OH·OW) saved as
       iy·W + ix within the image plane (first maximum; −1 for a window wholly in padding) */
    void (*maxpool)(float *y, int32_t *argmax, const float *x, int n, int C, int H, int W, int k,
                    int s, int pad, int OH, int OW);
    void (*maxpool_backward)(float *dx, const float *dy, const int32_t *argmax, int n, int C, int H,
                             int W, int OH, int OW); /* = */
    /* bilinear resampling (n, C, H, W) → (n, C, OH, OW), PyTorch align_corners = False,
       no antialiasing */
    void (*resize_bilinear)(float *y, const float *x, int n, int C, int H, int W, int OH, int OW);
    void (*resize_bilinear_backward)(float *dx, const float *dy, int n, int C, int H, int W, int OH,
                                     int OW); /* = */

    /* ---- random (counter-based: element i depends only on (seed, offset + i), so a stream
       is reproducible on one device and can be drawn in pieces) ---- */
    void (*rand_uniform)(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t offset);
    void (*rand_normal)(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t offset);

    /* ---- optimiser ----
       Adam (Kingma & Ba) with bias correction at step t ≥ 1 and decoupled weight decay wd:
       m = b1·m + (1−b1)·g; v = b2·v + (1−b2)·g²; p −= lr·(m̂/(√v̂ + eps) + wd·p) */
    void (*adam)(float *p, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2,
                 float eps, float wd, int t);

    /* ==== ABI 1.1: new ops go below, at the end only (plugins built against 1.0 read the
       table up to here) ==== */

    /* ---- transformer extras (ABI 1.1) ---- */
    /* rotary position embedding (RoPE), in place on token rows x (n, T, ld): for every token
       t ≥ t0 and every head block of hd columns among the first nblk·hd columns of the row,
       each column pair (2i, 2i+1) of the block is rotated by the angle of (t − t0, i):
         (a, b) ← (a·c − b·s, b·c + a·s),  c = cos[(t − t0)·hd/2 + i], s = sin[...]
       sin, cos (T − t0, hd/2). inverse = 1 rotates by the opposite angle, which is also the
       adjoint (the backward: dx = rope(dy, inverse = 1)). hd even, nblk·hd ≤ ld.
       (timm's apply_rot_embed_cat with half = False: EVA-02's 2-D RoPE on q and k.) */
    void (*rope)(float *x, const float *sin, const float *cos, int n, int T, int t0, int ld, int nblk,
                 int hd, int inverse);
    /* SwiGLU gate: u (rows, 2F) holds [g | v] per row; y (rows, F) = silu(g) ⊙ v  (=),
       silu(g) = g·σ(g) */
    void (*swiglu)(float *y, const float *u, int rows, int F);
    /* du (rows, 2F) = [dy ⊙ v ⊙ silu'(g) | dy ⊙ silu(g)]  (=); du must not alias dy or u */
    void (*swiglu_backward)(float *du, const float *dy, const float *u, int rows, int F);

    /* ---- augmentation (ABI 1.1) ---- */
    /* crop + resize + horizontal flip per image, x (n, C, H, W) → y (n, C, OH, OW) (=):
       torchvision F.resized_crop(img, top, left, h, w, (OH, OW), bilinear, antialias=False),
       i.e. bilinear interpolation of the crop with align_corners = False, then mirrored
       when flips[b] ≠ 0. boxes (n, 4) float (y0, x0, h, w) in input pixels, flips (n) int32
       (NULL: no flips), both in op memory. Along each axis, output index o (ox' = OW−1−ox
       when flipped) samples s = clamp((o + 0.5)·len/out − 0.5, 0, len − 1) + start with taps
       ⌊s⌋ and ⌊s⌋ + 1 (clamped to the image); for integer boxes inside the image this is
       PyTorch's value. The identity box (0, 0, H, W) at OH = H, OW = W copies exactly. */
    void (*crop_resize_bilinear)(float *y, const float *x, const float *boxes, const int32_t *flips,
                                 int n, int C, int H, int W, int OH, int OW);
    /* its exact adjoint: dx (n, C, H, W) = (overwrite) */
    void (*crop_resize_bilinear_backward)(float *dx, const float *dy, const float *boxes,
                                          const int32_t *flips, int n, int C, int H, int W, int OH,
                                          int OW);

    /* ==== ABI 1.2: new ops go below, at the end only ==== */

    /* ---- convolution (ABI 1.2), the shapes of clpdd_conv2d_desc above ---- */
    /* y (n, cout, OH, OW) = epilogue(w ∗ x)  (=); bias (cout) and res may be NULL.
       work: scratch of work_floats ≥ CLPDD_CONV2D_WORK(d, 1); the images are taken in groups
       of at most g = work_floats / CLPDD_CONV2D_WORK(d, 1) per GEMM (the CPU splits them over
       its threads, each group within its thread's share of work). y must not alias x, res or work. */
    void (*conv2d)(float *y, float *work, size_t work_floats, const float *x, const float *w,
                   const float *bias, const float *res, const clpdd_conv2d_desc *d);
    /* input gradient: dx (n, cin, H, W) = wᵀ ∗ (dy ⊙ [mask > 0])  (=), the adjoint of the
       linear part of conv2d; mask (n, cout, OH, OW) or NULL (no mask: plain adjoint). Passing
       the forward's ReLU output as mask folds that ReLU's backward in. relu and res_* are
       ignored. dx must not alias dy, mask or work. */
    void (*conv2d_backward)(float *dx, float *work, size_t work_floats, const float *dy,
                            const float *mask, const float *w, const clpdd_conv2d_desc *d);

    /* ==== ABI 1.3: new ops go below, at the end only ==== */

    /* ---- precision (ABI 1.3) ----
       The arithmetic of every later gemm and gemm_batched (and of the ops built on them:
       attention, conv2d) until the next call; returns the setting before. Pointers stay fp32
       in and out; tf32 / bf16 round the product's inputs and accumulate in fp32 (tensor
       cores). syrk, potrf, potrs and everything else stay fp32 whatever is set. An
       implementation without the reduced formats (the CPU) keeps fp32 and returns fp32 for
       every call, so callers can tell what they got. */
    clpdd_precision (*set_precision)(clpdd_precision p);

    /* ---- fused attention (ABI 1.3): attention without the (n, Hh, T, T) matrix ----
       out (n, T, Hh·hd) as attention(); lse (n, Hh, T) = log Σ_j exp(scale·q_i·k_j) per query
       row i (the softmax's normaliser), saved for backward instead of att. hd ≤ 128 (larger
       aborts: the kernels keep a head's row per thread). */
    void (*attention_fused)(float *out, float *lse, const float *qkv, int n, int T, int Hh, int hd, float scale);
    /* dqkv (=) from dout and the forward's out and lse (the probabilities are recomputed);
       delta (n, Hh, T) is scratch (Σ_c dout⊙out per query row). */
    void (*attention_fused_backward)(float *dqkv, float *delta, const float *dout, const float *out,
                                     const float *lse, const float *qkv, int n, int T, int Hh, int hd,
                                     float scale);

    /* ---- features kept in half precision (ABI 1.3: [data] feature_dtype = f16 halves the
       device memory of the real features) ----
       dst[i, :] = src[idx[i], :] widened exactly from IEEE binary16; src holds the uint16 bit
       patterns (rows of cols), idx int32, both in op memory */
    void (*gather_rows_f16)(float *dst, const uint16_t *src, const int32_t *idx, size_t nidx, size_t cols);

    /* ---- precision query (optional: NULL means fp32 only) ----
       The precision set_precision(p) would give, changing nothing: a pure query of what the
       device supports (the CPU: fp32 whatever p is). */
    clpdd_precision (*precision_supported)(clpdd_precision p);

    /* ==== ABI 1.6: new ops go below, at the end only ==== */

    /* ---- independent pieces of work side by side (ABI 1.6; optional: NULL = one at a time) ----
       pieces_slots(): how many pieces run at once (the CPU: its pool's threads; ≥ 1).
       pieces_run(n, most, fn, ctx): cuts [0, n) into consecutive pieces of at most `most` items
       (≤ 0: n), their sizes differing by at most one, as many as a multiple of pieces_slots()
       where n allows (else n pieces of one), and calls
       fn(ctx, first, count, slot) once for each, spread over the backend's threads; returns when
       all are done. No two calls running at once share a slot in [0, pieces_slots()), so fn may
       use per-slot scratch. The ops fn calls run on its thread alone, so a piece's results are
       those of running it by itself; fn must touch only what its piece owns. For work with no
       shared step between its items (a frozen encoder's images), where one op at a time would
       meet the threads ~100 times per step. A plugin reads these two only when
       h->abi_minor >= 6. */
    int (*pieces_slots)(void);
    void (*pieces_run)(int n, int most, void (*fn)(void *ctx, int first, int count, int slot), void *ctx);
};

/* The two implementations. cuda returns NULL (with a reason in *why) when no GPU is visible
   or when the build has no CUDA backend. */
const clpdd_ops *clpdd_ops_cpu(void);
const clpdd_ops *clpdd_ops_cuda(const char **why);

#ifdef __cplusplus
}
#endif
#endif
