#!/usr/bin/python3
"""The CLP-DD step in PyTorch: the peer that bench/bench_step.c (clpdd-bench-step) times clpdd against.

    /usr/bin/python3 tools/bench_torch.py --backbone resnet20|mnist-vit --m 10 [--n 2048] [--steps 20]
                                          [--threads 2] [--models DIR] [--data DIR]

Prints one line for the bench to parse:
    RESULT torch=<version> ms=<per-step ms, comma-separated> extract_ips=<images/s>

The step is the one clpdd runs (core/distill/run.c, param = pixels, no augmentation), on the same weights:
    X_s (m, 1, 28, 28), init = the first m/10 training images of each class (class-major)
    adapter: mnist-vit (28², 1 channel): (x − 0.1307)/0.3081;
             resnet20 (adapt = pad): zero-pad 2 px to 32², grey → RGB, ImageNet mean/std
    Φ_s = f(adapter(X_s)) (m, d); Φ_b = the cached features of n real images (a fresh stride
    through the features of 4096 Fashion-MNIST training images each step, extracted once: timed)
    ridge (plugins/solvers/ridge/ridge.c, dual form): K = Φ_s Φ_sᵀ, λ_eff = 0.3·tr(K)/m,
    A = (K + λ_eff I)⁻¹ Y_s by Cholesky, W = Φ_sᵀ A, Z = Φ_b W
    L = CE(Z / 0.1, y_b); backward to X_s (autograd, λ_eff's dependence included); Adam lr 0.01;
    clamp to [0, 1].
The backbones are transcriptions (tools/export_resnet.py's CIFAR ResNet, lucidrains' ViT as
mnist-vit was trained), in eval mode; the ResNet's BatchNorm is folded into the conv weight +
bias exactly as clpdd's resnet plugin folds it, so both sides run the same arithmetic.
torch.set_num_threads(threads); oneDNN (mkldnn) convolutions as PyTorch picks them.
Needs only python3-torch (Debian) and numpy; safetensors and IDX files are read by hand."""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def st_load(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"bench_torch: {path}: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data, np.float32, (b - a) // 4, 8 + n + a).copy()).reshape(
            info["shape"])
    return out


def idx_read(path, count):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), f.read(4 * (magic & 0xFF)))
        per = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        a = np.frombuffer(f.read(per * min(count, dims[0])), np.uint8)
    return a.reshape((-1,) + tuple(dims[1:]))


# ---- resnet20 (CIFAR, option A), BatchNorm folded ----

class ResNet20:
    def __init__(self, w, eps=1e-5, prefix="module."):
        self.convs = {}

        def fold(conv, bn):
            W = w[prefix + conv + ".weight"]
            g, b = w[prefix + bn + ".weight"].double(), w[prefix + bn + ".bias"].double()
            mu, var = w[prefix + bn + ".running_mean"].double(), w[prefix + bn + ".running_var"].double()
            s = g / torch.sqrt(var + eps)
            return (W.double() * s[:, None, None, None]).float(), (b - mu * s).float()

        self.stem = fold("conv1", "bn1")
        self.blocks = []
        cin = 16
        for st, planes in enumerate([16, 32, 64]):
            for j in range(3):
                stride = 2 if (st > 0 and j == 0) else 1
                c1 = fold(f"layer{st + 1}.{j}.conv1", f"layer{st + 1}.{j}.bn1")
                c2 = fold(f"layer{st + 1}.{j}.conv2", f"layer{st + 1}.{j}.bn2")
                self.blocks.append((c1, c2, stride, cin != planes or stride != 1, planes // 4))
                cin = planes

    def __call__(self, x):
        x = F.relu(F.conv2d(x, *self.stem, 1, 1))
        for c1, c2, stride, opt_a, pad in self.blocks:
            out = F.relu(F.conv2d(x, *c1, stride, 1))
            out = F.conv2d(out, *c2, 1, 1)
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)) if opt_a else x
            x = F.relu(out + sc)
        return x.mean(dim=(2, 3))


# ---- mnist-vit (lucidrains ViT: patch 4, dim 64, depth 6, heads 4 × 64, MLP 128, ReLU) ----

class LucidViT:
    def __init__(self, w, depth=6, heads=4, dim_head=64, patch=4, eps=1e-5):
        self.w, self.depth, self.heads, self.dh, self.p, self.eps = w, depth, heads, dim_head, patch, eps

    def __call__(self, x):
        w, p, B = self.w, self.p, x.shape[0]
        c, H, W = x.shape[1:]
        # b c (h p1) (w p2) -> b (h w) (p1 p2 c)
        t = x.reshape(B, c, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * c)
        t = F.linear(t, w["to_patch_embedding.1.weight"], w["to_patch_embedding.1.bias"])
        t = torch.cat([w["cls_token"].expand(B, -1, -1), t], 1) + w["pos_embedding"][:, :t.shape[1] + 1]
        T, D = t.shape[1], t.shape[2]
        for i in range(self.depth):
            L = f"transformer.layers.{i}."
            h = F.layer_norm(t, (D,), w[L + "0.norm.weight"], w[L + "0.norm.bias"], self.eps)
            q, k, v = F.linear(h, w[L + "0.fn.to_qkv.weight"]).chunk(3, -1)
            q, k, v = (a.reshape(B, T, self.heads, self.dh).transpose(1, 2) for a in (q, k, v))
            att = torch.softmax(q @ k.transpose(-1, -2) * self.dh ** -0.5, -1)
            o = (att @ v).transpose(1, 2).reshape(B, T, self.heads * self.dh)
            t = t + F.linear(o, w[L + "0.fn.to_out.0.weight"], w[L + "0.fn.to_out.0.bias"])
            h = F.layer_norm(t, (D,), w[L + "1.norm.weight"], w[L + "1.norm.bias"], self.eps)
            h = F.relu(F.linear(h, w[L + "1.fn.net.0.weight"], w[L + "1.fn.net.0.bias"]))
            t = t + F.linear(h, w[L + "1.fn.net.3.weight"], w[L + "1.fn.net.3.bias"])
        return F.layer_norm(t[:, 0], (D,), w["mlp_head.0.weight"], w["mlp_head.0.bias"], self.eps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", choices=["resnet20", "mnist-vit"], required=True)
    ap.add_argument("--m", type=int, default=10)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=os.environ.get("CLPDD_MODEL_PATH", "/work/shared/models"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(True)
    C, Nreal = 10, max(4096, a.n)
    if a.m % C:
        raise SystemExit("bench_torch: m must be a multiple of 10 (class-major, m/10 per class)")

    if a.backbone == "resnet20":
        f = ResNet20(st_load(os.path.join(a.models, "cifar10-resnet20.safetensors")))
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

        def adapt(x):  # pad 2 → 32², grey → RGB, normalise
            return (F.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1) - mean) / std
    else:
        f = LucidViT(st_load(os.path.join(a.models, "mnist-vit.safetensors")))

        def adapt(x):
            return (x - 0.1307) / 0.3081

    imgs = idx_read(os.path.join(a.data, "train-images-idx3-ubyte.gz"), 60000)
    labs = idx_read(os.path.join(a.data, "train-labels-idx1-ubyte.gz"), 60000).astype(np.int64)
    X = torch.from_numpy(imgs[:Nreal].astype(np.float32) / 255.0).unsqueeze(1)
    ylab = torch.from_numpy(labs[:Nreal])
    with torch.no_grad():
        t0 = time.perf_counter()
        Phi = torch.cat([f(adapt(X[i:i + 256])) for i in range(0, Nreal, 256)])
        ips = Nreal / (time.perf_counter() - t0)

    ipc = a.m // C
    pick, seen = [], [0] * C
    for i, c in enumerate(labs):
        if seen[c] < ipc:
            pick.append((c, seen[c], i))
            seen[c] += 1
        if len(pick) == a.m:
            break
    pick.sort()
    Xs = torch.from_numpy(imgs[[i for _, _, i in pick]].astype(np.float32) / 255.0).unsqueeze(1).requires_grad_(True)
    Ys = F.one_hot(torch.arange(a.m) // ipc, C).float()
    opt = torch.optim.Adam([Xs], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    eye = torch.eye(a.m)
    ar = torch.arange(a.n, dtype=torch.int64)

    def step(t):
        idx = ((t + 1) * 7919 + ar * 104729) % Nreal  # bench_step.c's real batch
        phib, yb = Phi[idx], ylab[idx]
        opt.zero_grad(set_to_none=True)
        phis = f(adapt(Xs))
        K = phis @ phis.T
        lam = 0.3 * torch.trace(K) / a.m
        A = torch.cholesky_solve(Ys, torch.linalg.cholesky(K + lam * eye))
        Z = phib @ (phis.T @ A)
        L = F.cross_entropy(Z / 0.1, yb)
        L.backward()
        opt.step()
        with torch.no_grad():
            Xs.clamp_(0.0, 1.0)
        return L.item()

    step(0), step(1)  # warm-up (oneDNN primitive creation)
    ms = []
    for t in range(a.steps):
        t0 = time.perf_counter()
        step(t + 2)
        ms.append((time.perf_counter() - t0) * 1e3)
    print(f"RESULT torch={torch.__version__} ms={','.join(f'{x:.3f}' for x in ms)} extract_ips={ips:.1f}", flush=True)


if __name__ == "__main__":
    main()
