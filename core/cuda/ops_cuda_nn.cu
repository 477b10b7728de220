/* clpdd CUDA backend, part 2: activations, row ops (softmax, cross-entropy, one-hot,
 * argmax, layernorm), image ops, random streams and Adam (attention: ops_cuda_attention.cu).
 *
 * Gradients: activation gradients are written (=); parameter gradients (layernorm
 * dgamma/dbeta) accumulate (+=), as in clpdd/ops.h and the CPU reference (core/cpu),
 * whose arithmetic is mirrored here (float32 per element, float64 row sums) so the two
 * agree to ~1e-6. Row kernels give one block to a row; every output element is written
 * by the thread that last reads it, after the block's reductions, so the in-place uses
 * that the CPU allows (y = x, dx = dy, dz = z) are safe here too.
 *
 * Dimension legend: n batch, C channels, H/W height/width (OH/OW output), T tokens,
 * Hh heads, hd head dim, D = Hh·hd model width, p patch size, rows/cols of a matrix. */
#include "cuda_common.h"
#include "numerics/philox.h"
#include "numerics/pointwise.h"

#include <math.h>
#include <stdio.h>

/* ------------------------------------------------------------------------------------ */
/* activations (dx may alias dy)                                                        */

/* the per-element GELU maths: numerics/pointwise.h, shared with the CPU backend */

__global__ void k_relu(float *y, const float *x, size_t n) {
    CLPDD_GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void k_relu_backward(float *dx, const float *dy, const float *x, size_t n) {
    CLPDD_GRID_STRIDE(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
__global__ void k_gelu(float *y, const float *x, size_t n, int kind) {
    CLPDD_GRID_STRIDE(i, n) y[i] = clpdd_gelu1(x[i], kind);
}
__global__ void k_gelu_backward(float *dx, const float *dy, const float *x, size_t n, int kind) {
    CLPDD_GRID_STRIDE(i, n) dx[i] = dy[i] * clpdd_gelu1_grad(x[i], kind);
}

void clpdd_cuda_relu(float *y, const float *x, size_t n) {
    if (n) CLPDD_LAUNCH(k_relu, clpdd_grid_1d(n), CLPDD_THREADS, 0, y, x, n);
}
void clpdd_cuda_relu_backward(float *dx, const float *dy, const float *x, size_t n) {
    if (n) CLPDD_LAUNCH(k_relu_backward, clpdd_grid_1d(n), CLPDD_THREADS, 0, dx, dy, x, n);
}
void clpdd_cuda_gelu(float *y, const float *x, size_t n, clpdd_gelu_kind kind) {
    CLPDD_CUDA_ASSERT((unsigned)kind < CLPDD_GELU_COUNT);
    if (n) CLPDD_LAUNCH(k_gelu, clpdd_grid_1d(n), CLPDD_THREADS, 0, y, x, n, (int)kind);
}
void clpdd_cuda_gelu_backward(float *dx, const float *dy, const float *x, size_t n, clpdd_gelu_kind kind) {
    CLPDD_CUDA_ASSERT((unsigned)kind < CLPDD_GELU_COUNT);
    if (n) CLPDD_LAUNCH(k_gelu_backward, clpdd_grid_1d(n), CLPDD_THREADS, 0, dx, dy, x, n, (int)kind);
}

/* ------------------------------------------------------------------------------------ */
/* rows: one block per row (blockIdx.x = row), blockDim from clpdd_row_threads          */

/* y, x (rows, cols): y = softmax(scale·x) per row; y may alias x. As the CPU: max of
   scale·x, e = expf(scale·x − max) stored in y, float64 sum, then y *= (float)(1/sum). */
__global__ void k_softmax_rows(float *y, const float *x, int cols, float scale) {
    __shared__ float shf[33];
    __shared__ double shd[33];
    size_t o = (size_t)blockIdx.x * cols;
    const float *xr = x + o;
    float *yr = y + o;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, scale * xr[c]);
    mx = clpdd_block_max(mx, shf);
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(scale * xr[c] - mx);
        yr[c] = e;
        s += e;
    }
    s = clpdd_block_sum(s, shd);
    float inv = (float)(1.0 / s);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] *= inv;
}

/* dx = scale·y ⊙ (dy − Σ dy⊙y) per row; dx may alias dy or y */
__global__ void k_softmax_rows_backward(float *dx, const float *dy, const float *y, int cols, float scale) {
    __shared__ double shd[33];
    size_t o = (size_t)blockIdx.x * cols;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += (double)dy[o + c] * y[o + c];
    float sf = (float)clpdd_block_sum(s, shd);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dx[o + c] = scale * y[o + c] * (dy[o + c] - sf);
}

void clpdd_cuda_softmax_rows(float *y, const float *x, int rows, int cols, float scale) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (rows && cols) CLPDD_LAUNCH(k_softmax_rows, (unsigned)rows, clpdd_row_threads(cols), 0, y, x, cols, scale);
}
void clpdd_cuda_softmax_rows_backward(float *dx, const float *dy, const float *y, int rows, int cols, float scale) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (rows && cols)
        CLPDD_LAUNCH(k_softmax_rows_backward, (unsigned)rows, clpdd_row_threads(cols), 0, dx, dy, y, cols, scale);
}

/* loss (rows) or NULL, dz (rows, cols) or NULL, z (rows, cols), labels (rows).
   s = inv_tau·z, lse = max + log Σ exp(s − max) (float64):  loss = lse − s[y];
   dz = grad_scale·inv_tau·(exp(s − lse) − onehot(y)). dz may alias z (z[y] is read
   before the block's reductions, dz written after them). A label outside [0, cols) is a
   programming error: the kernel traps, and the next checked call aborts. */
__global__ void k_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels, int cols,
                                float inv_tau, float grad_scale) {
    __shared__ float shf[33];
    __shared__ double shd[33];
    int r = blockIdx.x;
    const float *zr = z + (size_t)r * cols;
    int32_t y = labels[r];
    if (y < 0 || y >= cols) {
        if (threadIdx.x == 0) printf("clpdd cuda: cross_entropy: label %d of row %d outside [0, %d)\n", (int)y, r, cols);
        __trap();
    }
    float sy = inv_tau * zr[y];
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, inv_tau * zr[c]);
    mx = clpdd_block_max(mx, shf);
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += exp((double)(inv_tau * zr[c] - mx));
    s = clpdd_block_sum(s, shd);
    double lse = (double)mx + log(s);
    if (loss && threadIdx.x == 0) loss[r] = (float)(lse - (double)sy);
    if (dz) {
        float *dr = dz + (size_t)r * cols;
        float g = grad_scale * inv_tau;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float p = (float)exp((double)(inv_tau * zr[c]) - lse);
            dr[c] = g * (p - (c == y ? 1.0f : 0.0f));
        }
    }
}
void clpdd_cuda_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels, int rows,
                              int cols, float inv_tau, float grad_scale) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (!rows || (!loss && !dz)) return;
    CLPDD_CUDA_ASSERT(cols > 0);
    CLPDD_LAUNCH(k_cross_entropy, (unsigned)rows, clpdd_row_threads(cols), 0, loss, dz, z, labels, cols, inv_tau, grad_scale);
}

/* Y (rows, cols) */
__global__ void k_onehot(float *Y, const int32_t *labels, size_t rows, int cols, float on, float off) {
    CLPDD_GRID_STRIDE(i, rows * (size_t)cols) {
        size_t r = i / cols;
        int c = (int)(i % cols);
        Y[i] = labels[r] == c ? on : off;
    }
}
void clpdd_cuda_onehot(float *Y, const int32_t *labels, int rows, int cols, float on, float off) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    size_t total = (size_t)rows * cols;
    if (total) CLPDD_LAUNCH(k_onehot, clpdd_grid_1d(total), CLPDD_THREADS, 0, Y, labels, (size_t)rows, cols, on, off);
}

/* out (rows) = first index of the row maximum; NaNs never win (all NaN → 0), as the CPU.
   (v, i) pairs are reduced with an explicit order: a non-NaN beats a NaN, a larger value
   beats a smaller one, and among equals (or two NaNs) the smaller index wins. */
__device__ __forceinline__ void argmax_pick(float &v, int &i, float v2, int i2) {
    bool n1 = isnan(v), n2 = isnan(v2);
    bool take = (n1 && !n2) || (!n1 && !n2 && (v2 > v || (v2 == v && i2 < i))) || (n1 && n2 && i2 < i);
    if (take) {
        v = v2;
        i = i2;
    }
}
__global__ void k_argmax_rows(int32_t *out, const float *x, int cols) {
    __shared__ float shv[32];
    __shared__ int shi[32];
    const float *xr = x + (size_t)blockIdx.x * cols;
    float v = NAN; /* (NaN, INT_MAX) loses to every real element */
    int idx = 0x7fffffff;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) argmax_pick(v, idx, xr[c], c);
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_pick(v, idx, v2, i2);
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        shv[w] = v;
        shi[w] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++) argmax_pick(v, idx, shv[k], shi[k]);
        out[blockIdx.x] = idx; /* cols > 0, so some element was picked (the first NaN if all are) */
    }
}
void clpdd_cuda_argmax_rows(int32_t *out, const float *x, int rows, int cols) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (!rows) return;
    if (!cols) { /* as the CPU: index 0 for every (empty) row */
        CUDA_CHECK(cudaMemset(out, 0, (size_t)rows * sizeof(int32_t)));
        return;
    }
    CLPDD_LAUNCH(k_argmax_rows, (unsigned)rows, clpdd_row_threads(cols), 0, out, x, cols);
}

/* y, x (rows, cols); gamma, beta (cols), NULL meaning 1 and 0; mean, rstd (rows) or NULL.
   float64 two-pass mean and biased variance, rstd = (float)(1/√(var + eps)) as the CPU.
   y may alias x. */
__global__ void k_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                            const float *beta, int cols, float eps) {
    __shared__ double shd[33];
    size_t o = (size_t)blockIdx.x * cols;
    const float *xr = x + o;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    double mu = cols > 0 ? clpdd_block_sum(s, shd) / cols : 0.0;
    double v = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        double d = (double)xr[c] - mu;
        v += d * d;
    }
    v = cols > 0 ? clpdd_block_sum(v, shd) / cols : 0.0;
    float m = (float)mu, rs = (float)(1.0 / sqrt(v + (double)eps));
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        y[o + c] = (xr[c] - m) * rs * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
    if (threadIdx.x == 0) {
        if (mean) mean[blockIdx.x] = m;
        if (rstd) rstd[blockIdx.x] = rs;
    }
}
void clpdd_cuda_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int rows, int cols, float eps) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (!rows) return; /* cols = 0 still writes mean = 0, rstd = 1/√eps, as the CPU */
    CLPDD_LAUNCH(k_layernorm, (unsigned)rows, clpdd_row_threads(cols), 0, y, mean, rstd, x, gamma, beta, cols, eps);
}

/* dgamma/dbeta column sums, deterministic two-pass as sum_rows (ops_cuda.cu): block (32, 8)
   owns 32 columns × one chunk of rows; partials part[(2·chunk + {0: dγ, 1: dβ})·cols + c]
   in float64; the finish kernel adds the chunks in order and accumulates (+=). */
#define LNB_TX 32
#define LNB_TY 8
__global__ void k_ln_param_partial(double *part, const float *dy, const float *x, const float *mean,
                                   const float *rstd, int rows, int cols, int rows_per_chunk) {
    __shared__ double shg[LNB_TY][LNB_TX + 1], shb[LNB_TY][LNB_TX + 1];
    int c = blockIdx.x * LNB_TX + threadIdx.x;
    int r0 = blockIdx.y * rows_per_chunk;
    int r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    double dg = 0.0, db = 0.0;
    if (c < cols)
        for (int r = r0 + threadIdx.y; r < r1; r += LNB_TY) {
            size_t i = (size_t)r * cols + c;
            dg += (double)dy[i] * ((x[i] - mean[r]) * rstd[r]);
            db += dy[i];
        }
    shg[threadIdx.y][threadIdx.x] = dg;
    shb[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double sg = 0.0, sb = 0.0;
        for (int k = 0; k < LNB_TY; k++) {
            sg += shg[k][threadIdx.x];
            sb += shb[k][threadIdx.x];
        }
        part[(size_t)(2 * blockIdx.y) * cols + c] = sg;
        part[(size_t)(2 * blockIdx.y + 1) * cols + c] = sb;
    }
}
__global__ void k_ln_param_finish(float *dgamma, float *dbeta, const double *part, int nchunks, int cols) {
    CLPDD_GRID_STRIDE(c, (size_t)cols) {
        double sg = 0.0, sb = 0.0;
        for (int k = 0; k < nchunks; k++) {
            sg += part[(size_t)(2 * k) * cols + c];
            sb += part[(size_t)(2 * k + 1) * cols + c];
        }
        if (dgamma) dgamma[c] += (float)sg;
        if (dbeta) dbeta[c] += (float)sb;
    }
}
/* dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)), g = gamma ⊙ dy, x̂ = (x − μ)·rstd */
__global__ void k_layernorm_backward_dx(float *dx, const float *dy, const float *x, const float *mean,
                                        const float *rstd, const float *gamma, int cols) {
    __shared__ double shd[33];
    size_t o = (size_t)blockIdx.x * cols;
    float m = mean[blockIdx.x], rs = rstd[blockIdx.x];
    double sg = 0.0, sgx = 0.0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float g = (gamma ? gamma[c] : 1.0f) * dy[o + c];
        sg += g;
        sgx += (double)g * ((x[o + c] - m) * rs);
    }
    sg = clpdd_block_sum(sg, shd);
    sgx = clpdd_block_sum(sgx, shd);
    float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float xh = (x[o + c] - m) * rs;
        dx[o + c] = rs * ((gamma ? gamma[c] : 1.0f) * dy[o + c] - mg - xh * mgx);
    }
}

static clpdd_cuda_scratch g_ln_part;

/* dgamma/dbeta are summed first (they read dy), then dx, so dx may alias dy */
void clpdd_cuda_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                   const float *mean, const float *rstd, const float *gamma, int rows, int cols) {
    CLPDD_CUDA_ASSERT(rows >= 0 && cols >= 0);
    if (!rows || !cols) return;
    if (dgamma || dbeta) {
        int gx = (cols + LNB_TX - 1) / LNB_TX;
        int want = clpdd_cuda_sm_count * 4 / gx + 1, max_chunks = (rows + 63) / 64;
        int nchunks = want < max_chunks ? want : max_chunks;
        if (nchunks > 1024) nchunks = 1024;
        int rpc = (rows + nchunks - 1) / nchunks;
        nchunks = (rows + rpc - 1) / rpc;
        double *part = (double *)clpdd_cuda_scratch_get(&g_ln_part, (size_t)2 * nchunks * cols * sizeof(double));
        dim3 grid((unsigned)gx, (unsigned)nchunks), block(LNB_TX, LNB_TY);
        CLPDD_LAUNCH(k_ln_param_partial, grid, block, 0, part, dy, x, mean, rstd, rows, cols, rpc);
        CLPDD_LAUNCH(k_ln_param_finish, clpdd_grid_1d((size_t)cols), CLPDD_THREADS, 0, dgamma, dbeta, part, nchunks, cols);
    }
    CLPDD_LAUNCH(k_layernorm_backward_dx, (unsigned)rows, clpdd_row_threads(cols), 0, dx, dy, x, mean, rstd, gamma, cols);
}

/* ------------------------------------------------------------------------------------ */
/* images                                                                               */

/* x (n, C, H, W) → y (n, G, C·p·p), G = GH·GW:
   y[b, gy·GW + gx, (c·p + py)·p + px] = x[b, c, gy·p + py, gx·p + px]; one thread per y */
__global__ void k_patchify(float *y, const float *x, size_t total, int C, int H, int W, int p) {
    int GW = W / p, G = (H / p) * GW, P = C * p * p;
    CLPDD_GRID_STRIDE(i, total) {
        int e = (int)(i % P);
        size_t bg = i / P;
        int g = (int)(bg % G);
        size_t b = bg / G;
        int c = e / (p * p), py = (e / p) % p, px = e % p, gy = g / GW, gx = g % GW;
        y[i] = x[((b * C + c) * H + (size_t)gy * p + py) * W + (size_t)gx * p + px];
    }
}
/* inverse permutation (= adjoint); one thread per dx element */
__global__ void k_unpatchify(float *dx, const float *dy, size_t total, int C, int H, int W, int p) {
    int GW = W / p, G = (H / p) * GW, P = C * p * p;
    CLPDD_GRID_STRIDE(i, total) {
        int w = (int)(i % W), h = (int)((i / W) % H), c = (int)((i / ((size_t)W * H)) % C);
        size_t b = i / ((size_t)W * H * C);
        int gy = h / p, py = h % p, gx = w / p, px = w % p;
        dx[i] = dy[(b * G + (size_t)gy * GW + gx) * P + (c * p + py) * p + px];
    }
}
void clpdd_cuda_patchify(float *y, const float *x, int n, int C, int H, int W, int p) {
    CLPDD_CUDA_ASSERT(p > 0 && H % p == 0 && W % p == 0);
    size_t total = (size_t)n * C * H * W;
    if (total) CLPDD_LAUNCH(k_patchify, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, x, total, C, H, W, p);
}
void clpdd_cuda_unpatchify(float *dx, const float *dy, int n, int C, int H, int W, int p) {
    CLPDD_CUDA_ASSERT(p > 0 && H % p == 0 && W % p == 0);
    size_t total = (size_t)n * C * H * W;
    if (total) CLPDD_LAUNCH(k_unpatchify, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, total, C, H, W, p);
}

/* x (C, H, W) → col (C·kh·kw, OH·OW):
   col[(c·kh + i)·kw + j, oy·OW + ox] = x[c, oy·stride − pad + i, ox·stride − pad + j], 0 outside */
__global__ void k_im2col(float *col, const float *x, size_t total, int H, int W, int kh, int kw, int stride,
                         int pad, int OH, int OW) {
    size_t L = (size_t)OH * OW;
    CLPDD_GRID_STRIDE(t, total) {
        size_t pos = t % L, row = t / L;
        int j = (int)(row % kw), i = (int)((row / kw) % kh);
        size_t c = row / ((size_t)kw * kh);
        int oy = (int)(pos / OW), ox = (int)(pos % OW);
        int iy = oy * stride - pad + i, ix = ox * stride - pad + j;
        col[t] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(c * H + iy) * W + ix] : 0.0f;
    }
}
/* adjoint, as a gather (no atomics, deterministic): dx[c, iy, ix] = Σ over (i, j) with
   oy = (iy + pad − i)/stride and ox = (ix + pad − j)/stride whole and in range of
   col[(c·kh + i)·kw + j, oy·OW + ox], summed in the CPU's (i, j) order */
__global__ void k_col2im(float *dx, const float *col, size_t total, int H, int W, int kh, int kw, int stride,
                         int pad, int OH, int OW) {
    size_t L = (size_t)OH * OW;
    CLPDD_GRID_STRIDE(t, total) {
        int ix = (int)(t % W), iy = (int)((t / W) % H);
        size_t c = t / ((size_t)W * H);
        float s = 0.0f;
        for (int i = 0; i < kh; i++) {
            int ty = iy + pad - i;
            if (ty < 0 || ty % stride) continue;
            int oy = ty / stride;
            if (oy >= OH) continue;
            for (int j = 0; j < kw; j++) {
                int tx = ix + pad - j;
                if (tx < 0 || tx % stride) continue;
                int ox = tx / stride;
                if (ox >= OW) continue;
                s += col[((c * kh + i) * kw + j) * L + (size_t)oy * OW + ox];
            }
        }
        dx[t] = s;
    }
}
void clpdd_cuda_im2col(float *col, const float *x, int C, int H, int W, int kh, int kw, int stride, int pad,
                       int OH, int OW) {
    CLPDD_CUDA_ASSERT(stride > 0 && C >= 0 && kh >= 0 && kw >= 0 && OH >= 0 && OW >= 0);
    size_t total = (size_t)C * kh * kw * OH * OW;
    if (total) CLPDD_LAUNCH(k_im2col, clpdd_grid_1d(total), CLPDD_THREADS, 0, col, x, total, H, W, kh, kw, stride, pad, OH, OW);
}
void clpdd_cuda_col2im(float *dx, const float *col, int C, int H, int W, int kh, int kw, int stride, int pad,
                       int OH, int OW) {
    CLPDD_CUDA_ASSERT(stride > 0 && C >= 0 && H >= 0 && W >= 0);
    size_t total = (size_t)C * H * W;
    if (total) CLPDD_LAUNCH(k_col2im, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, col, total, H, W, kh, kw, stride, pad, OH, OW);
}

/* x (n·C planes, HW) → y (n·C): one warp per plane, float64 sum / HW as the CPU */
__global__ void k_global_avgpool(float *y, const float *x, size_t planes, int HW) {
    size_t q = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (q >= planes) return; /* whole warps leave together: planes index per warp */
    double s = 0.0;
    for (int i = lane; i < HW; i += 32) s += x[q * HW + i];
    s = clpdd_warp_sum(s);
    if (lane == 0) y[q] = HW > 0 ? (float)(s / HW) : 0.0f;
}
__global__ void k_global_avgpool_backward(float *dx, const float *dy, size_t total, int HW) {
    CLPDD_GRID_STRIDE(i, total) dx[i] = dy[i / HW] / (float)HW;
}
void clpdd_cuda_global_avgpool(float *y, const float *x, int n, int C, int HW) {
    size_t planes = (size_t)n * C;
    if (!planes) return;
    size_t blocks = (planes * 32 + CLPDD_THREADS - 1) / CLPDD_THREADS;
    CLPDD_CUDA_ASSERT(blocks < 0x7fffffffu);
    CLPDD_LAUNCH(k_global_avgpool, (unsigned)blocks, CLPDD_THREADS, 0, y, x, planes, HW);
}
void clpdd_cuda_global_avgpool_backward(float *dx, const float *dy, int n, int C, int HW) {
    size_t total = (size_t)n * C * HW;
    if (total) CLPDD_LAUNCH(k_global_avgpool_backward, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, total, HW);
}

/* x (n, C, H, W) → y, argmax (n, C, OH, OW); one thread per output, the CPU's loop:
   argmax = iy·W + ix inside the plane, first maximum in row-major window order, a NaN
   propagates, a window wholly in the padding gives −∞ and −1 */
__global__ void k_maxpool(float *y, int32_t *argmax, const float *x, size_t total, int H, int W, int k, int s,
                          int pad, int OH, int OW) {
    CLPDD_GRID_STRIDE(o, total) {
        int ox = (int)(o % OW), oy = (int)((o / OW) % OH);
        size_t q = o / ((size_t)OW * OH);
        const float *xq = x + q * H * W;
        float best = -INFINITY;
        int32_t bi = -1;
        for (int i = 0; i < k; i++) {
            int iy = oy * s - pad + i;
            if (iy < 0 || iy >= H) continue;
            for (int j = 0; j < k; j++) {
                int ix = ox * s - pad + j;
                if (ix < 0 || ix >= W) continue;
                float v = xq[(size_t)iy * W + ix];
                if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                    best = v;
                    bi = iy * W + ix;
                }
            }
        }
        y[o] = best;
        argmax[o] = bi;
    }
}
/* dx is zeroed, then each output adds dy to its argmax position. Overlapping windows
   (s < k) can share a position, so the add is atomic; such sums may differ from the CPU's
   sequential order in the last bit. */
__global__ void k_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, size_t total, size_t HW,
                                   size_t L) {
    CLPDD_GRID_STRIDE(o, total) {
        int32_t a = argmax[o];
        if (a >= 0) atomicAdd(&dx[(o / L) * HW + a], dy[o]);
    }
}
void clpdd_cuda_maxpool(float *y, int32_t *argmax, const float *x, int n, int C, int H, int W, int k, int s,
                        int pad, int OH, int OW) {
    CLPDD_CUDA_ASSERT(k > 0 && s > 0);
    size_t total = (size_t)n * C * OH * OW;
    if (total) CLPDD_LAUNCH(k_maxpool, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, argmax, x, total, H, W, k, s, pad, OH, OW);
}
void clpdd_cuda_maxpool_backward(float *dx, const float *dy, const int32_t *argmax, int n, int C, int H, int W,
                                 int OH, int OW) {
    size_t nx = (size_t)n * C * H * W, total = (size_t)n * C * OH * OW;
    if (!nx) return;
    CUDA_CHECK(cudaMemset(dx, 0, nx * sizeof(float)));
    if (total)
        CLPDD_LAUNCH(k_maxpool_backward, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, argmax, total,
                     (size_t)H * W, (size_t)OH * OW);
}

/* PyTorch bilinear source coordinate (align_corners = False), identical to the CPU's:
   src = (dst + 0.5)·in/out − 0.5, clamped at 0; i0 = ⌊src⌋ (≤ in − 1), i1 = min(i0 + 1,
   in − 1), weights (1 − λ, λ), λ = src − i0 */
struct bilin_tap {
    int i0, i1;
    float l0, l1;
};
__device__ __forceinline__ bilin_tap bilin_src(int dst, int in, int out) {
    float sc = (float)in / (float)out;
    float src = ((float)dst + 0.5f) * sc - 0.5f;
    if (src < 0.0f) src = 0.0f;
    bilin_tap t;
    t.i0 = (int)src;
    if (t.i0 > in - 1) t.i0 = in - 1;
    t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
    t.l1 = src - (float)t.i0;
    t.l0 = 1.0f - t.l1;
    return t;
}
/* x (n, C, H, W) → y (n, C, OH, OW), one thread per output */
__global__ void k_resize_bilinear(float *y, const float *x, size_t total, int H, int W, int OH, int OW) {
    CLPDD_GRID_STRIDE(o, total) {
        int ox = (int)(o % OW), oy = (int)((o / OW) % OH);
        size_t q = o / ((size_t)OW * OH);
        bilin_tap ty = bilin_src(oy, H, OH), tx = bilin_src(ox, W, OW);
        const float *r0 = x + q * H * W + (size_t)ty.i0 * W, *r1 = x + q * H * W + (size_t)ty.i1 * W;
        y[o] = ty.l0 * (tx.l0 * r0[tx.i0] + tx.l1 * r0[tx.i1]) + ty.l1 * (tx.l0 * r1[tx.i0] + tx.l1 * r1[tx.i1]);
    }
}
/* the exact adjoint: dx zeroed, each output scatters its four weighted taps (atomic,
   since neighbouring outputs share inputs; order differs from the CPU in the last bit) */
__global__ void k_resize_bilinear_backward(float *dx, const float *dy, size_t total, int H, int W, int OH, int OW) {
    CLPDD_GRID_STRIDE(o, total) {
        int ox = (int)(o % OW), oy = (int)((o / OW) % OH);
        size_t q = o / ((size_t)OW * OH);
        bilin_tap ty = bilin_src(oy, H, OH), tx = bilin_src(ox, W, OW);
        float g = dy[o];
        float *r0 = dx + q * H * W + (size_t)ty.i0 * W, *r1 = dx + q * H * W + (size_t)ty.i1 * W;
        atomicAdd(&r0[tx.i0], ty.l0 * tx.l0 * g);
        atomicAdd(&r0[tx.i1], ty.l0 * tx.l1 * g);
        atomicAdd(&r1[tx.i0], ty.l1 * tx.l0 * g);
        atomicAdd(&r1[tx.i1], ty.l1 * tx.l1 * g);
    }
}
void clpdd_cuda_resize_bilinear(float *y, const float *x, int n, int C, int H, int W, int OH, int OW) {
    size_t total = (size_t)n * C * OH * OW;
    if (!total) return;
    CLPDD_CUDA_ASSERT(H > 0 && W > 0);
    CLPDD_LAUNCH(k_resize_bilinear, clpdd_grid_1d(total), CLPDD_THREADS, 0, y, x, total, H, W, OH, OW);
}
void clpdd_cuda_resize_bilinear_backward(float *dx, const float *dy, int n, int C, int H, int W, int OH, int OW) {
    size_t nx = (size_t)n * C * H * W, total = (size_t)n * C * OH * OW;
    if (!nx) return;
    CUDA_CHECK(cudaMemset(dx, 0, nx * sizeof(float)));
    if (total) CLPDD_LAUNCH(k_resize_bilinear_backward, clpdd_grid_1d(total), CLPDD_THREADS, 0, dx, dy, total, H, W, OH, OW);
}

/* ------------------------------------------------------------------------------------ */
/* random: element i is element offset + i of the Philox stream of seed (core/numerics/philox.h,
   shared with the CPU backend, so both devices draw the same numbers up to libm ulps) */

__global__ void k_rand_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t offset) {
    CLPDD_GRID_STRIDE(i, n) x[i] = clpdd_philox_uniform(seed, offset + i, lo, hi);
}
__global__ void k_rand_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t offset) {
    CLPDD_GRID_STRIDE(i, n) x[i] = clpdd_philox_normal(seed, offset + i, mean, std);
}
void clpdd_cuda_rand_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t offset) {
    if (n) CLPDD_LAUNCH(k_rand_uniform, clpdd_grid_1d(n), CLPDD_THREADS, 0, x, n, lo, hi, seed, offset);
}
void clpdd_cuda_rand_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t offset) {
    if (n) CLPDD_LAUNCH(k_rand_normal, clpdd_grid_1d(n), CLPDD_THREADS, 0, x, n, mean, std, seed, offset);
}

/* ------------------------------------------------------------------------------------ */
/* Adam with bias correction and decoupled weight decay (step t ≥ 1); bias corrections
   computed on the host in float64 exactly as the CPU does */

__global__ void k_adam(float *p, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2,
                       float eps, float wd, float bc1, float bc2) {
    CLPDD_GRID_STRIDE(i, n) clpdd_adam1(p + i, m + i, v + i, g[i], lr, b1, b2, eps, wd, bc1, bc2);
}
void clpdd_cuda_adam(float *p, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2,
                     float eps, float wd, int t) {
    CLPDD_CUDA_ASSERT(t >= 1);
    if (!n) return;
    float bc1 = clpdd_adam_bias_correction(b1, t), bc2 = clpdd_adam_bias_correction(b2, t);
    CLPDD_LAUNCH(k_adam, clpdd_grid_1d(n), CLPDD_THREADS, 0, p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2);
}
