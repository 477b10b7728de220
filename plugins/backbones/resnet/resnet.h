/* resnet: torchvision ResNet-18/34/50 and the CIFAR ResNet-20/32/44/56 (option-A shortcuts)
 * as one backbone plugin — internal declarations.
 *
 * Dimension legend (every file of this plugin):
 *   n  images in a call; b images in one inference chunk (b ≤ batch); g images per im2col group
 *   S  input side (H = W = S, 3 channels)
 *   cin/cout  a convolution's channels, k its kernel side, s stride, p padding,
 *   H, W → OH, OW  its input and output sides, P = OH·OW output pixels, K = cin·k·k
 *   A  the largest activation of the network per image (floats), KP the largest K·P
 *   Cf, Hf, Wf  the last stage's output (feature dim d = Cf; feature = its global mean)
 *
 * Every convolution is followed by a frozen BatchNorm, folded at load time into the conv:
 *   y = (W·diag(scale)) ∗ x + shift,  scale = γ/√(var + eps),  shift = β − mean·scale,
 * Two implementations of the convolutions (key `conv`):
 *   fast       ops->conv2d / conv2d_backward (ABI 1.2): many images per GEMM, with the shift,
 *              the ReLU and the residual shortcut fused into the GEMM's epilogue, and each
 *              ReLU's backward folded into the next conv2d_backward (mask);
 *   reference  the plain path, kept readable as the fast one's reference: im2col + one GEMM
 *              per image + a per-channel shift (ops->channel_affine with a vector of ones),
 *              separate ReLU and shortcut passes; input-gradient one GEMM + col2im per image.
 * Parameters are frozen:
 * backward forms the gradient with respect to the (normalised) input images only, "=" into
 * dimages; block gradients are summed "+=" where a shortcut meets the main path.
 *
 * All tensors are in host->ops memory (device memory on CUDA): never dereferenced here. */
#ifndef CLPDD_RESNET_H
#define CLPDD_RESNET_H
#include "clpdd/plugin.h"

#define RN_MAX_BLOCKS 32 /* ResNet-56: 27 blocks */

typedef enum {
    RN_FAMILY_CIFAR = 0,      /* akamaster/pytorch_resnet_cifar10: 3 stages, option-A shortcuts */
    RN_FAMILY_TORCHVISION = 1, /* torchvision.models.resnet: 7×7 stem + max-pool, 4 stages */
    RN_FAMILY_COUNT
} rn_family;

typedef enum {
    RN_SC_IDENTITY = 0, /* out += x */
    RN_SC_OPTION_A = 1, /* out[:, pad : pad + cin] += x[:, :, ::2, ::2]  (zero channel padding) */
    RN_SC_CONV = 2,     /* out += BN(conv1×1, stride s (x)): torchvision's downsample.0/.1 */
    RN_SC_COUNT
} rn_shortcut;

/* a convolution without bias and the BatchNorm after it, folded */
typedef struct rn_conv {
    int cin, cout, k, s, p;
    int H, W, OH, OW; /* the sides it runs at (fixed by image_size) */
    float *w;         /* (cout, cin·k·k): conv weight with the BN scale folded into each row */
    float *shift;     /* (cout) */
    char name[40];    /* checkpoint names without the prefix: "layer2.0.conv1" */
    char bn[40];      /* "layer2.0.bn1" */
} rn_conv;

typedef struct rn_block {
    int nconv;        /* 2 (basic) or 3 (bottleneck) */
    rn_conv conv[3];  /* main path; conv[nconv − 1] ends in the residual sum */
    rn_shortcut sc;
    rn_conv down;     /* RN_SC_CONV only */
    int sc_pad;       /* RN_SC_OPTION_A: channels of zero padding before x (= cout/4) */
    int cin, H, W, cout, OH, OW;
} rn_block;

/* activations of a pass. Taped: a buffer per stored activation (what backward needs:
 * every ReLU output and the max-pool argmax). Inference: the block buffers alias. */
/* one pass's scratch (rn_acts) */
#define RN_MAX_SLOTS 64 /* the CPU pool's most threads */
typedef struct rn_scratch {
    float *s, *g0, *g1, *m0, *m1, *col;
} rn_scratch;

typedef struct rn_acts {
    int max_n, last_n, taped;
    void *block;      /* the one allocation */
    float *stem;      /* (n, C0, H0, W0) ReLU(BN(conv1(x))) */
    int32_t *argmax;  /* (n, C0, H1, W1) max-pool (torchvision) */
    float *pool;      /* (n, C0, H1, W1) the first block's input (torchvision) */
    float *mid[RN_MAX_BLOCKS][2]; /* ReLU outputs inside a block (n, conv[j].cout, conv[j].OH, .OW) */
    float *out[RN_MAX_BLOCKS];    /* block outputs (n, cout, OH, OW) */
    /* scratch (piece·A floats each unless said; inference: batch·A): the slot a pass runs in */
    float *s;         /* option-A subsample / downsample output / shortcut gradient */
    float *g0, *g1;   /* backward: gradient of a block's output / input (taped only) */
    float *m0, *m1;   /* backward: gradients inside a block (taped only) */
    float *col;       /* reference: (g, KP) im2col columns of g images; fast: the conv2d work */
    int col_g;        /* g (reference) */
    size_t work_floats; /* fast: floats at col (≥ CLPDD_CONV2D_WORK of every conv for one image) */
    /* taped: pieces of at most `piece` images, up to nslots of them side by side, each with its
       own scratch (slot[k]; slot[0] is also the fields above) */
    int piece, nslots;
    rn_scratch slot[RN_MAX_SLOTS];
} rn_acts;

typedef struct rn {
    const clpdd_host *h;
    const clpdd_ops *ops;
    rn_family family;
    const char *arch;
    int S, width, batch;
    float mean[3], std[3];
    char *weights_id;
    char prefix[64];
    int maxpool;      /* torchvision stem max-pool 3×3 s2 p1 */
    int C0, H0, W0;   /* stem output */
    int H1, W1;       /* after the max-pool (= H0, W0 without) */
    rn_conv stem;
    int nblocks;
    rn_block blocks[RN_MAX_BLOCKS];
    int Cf, Hf, Wf;   /* last stage output; d = Cf */
    size_t A, KP;     /* largest activation and im2col column block per image (floats) */
    size_t WK;        /* largest CLPDD_CONV2D_WORK(conv, 1) (fast path) */
    size_t WW;        /* largest conv weight, cout·cin·k² floats (fast path: the CPU ops' backward copy) */
    int fast;         /* conv = fast: the batched conv2d ops (ABI 1.2); 0 = reference */
    int piece_cap;    /* taped passes: at most this many images per piece (0: one pass; rn_piece_cap) */
    int slots;        /* taped pieces side by side (ops->pieces_run, ABI 1.6); 1: one after another */
    int max_c;        /* widest layer (length of ones) */
    float *params;    /* one allocation: weights, shifts, ones */
    float *ones;      /* (max_c) */
    rn_acts infer;    /* inference scratch for `batch` images */
} rn;

/* features (n, Cf) = f(images (n, 3, S, S)); a->max_n ≥ n */
void rn_forward_pass(const rn *r, rn_acts *a, float *features, const float *images, int n);
/* dimages (n, 3, S, S) = (∂f/∂images)ᵀ·dfeatures (n, Cf), from the tape of the last forward */
void rn_backward_pass(const rn *r, rn_acts *a, float *dimages, const float *dfeatures, int n);

#endif
