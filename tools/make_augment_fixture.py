#!/usr/bin/env python3
"""Reference fixture for clpdd's augmentation (core/encoder/augment.c, ops->crop_resize_bilinear).

Writes tests/fixtures/augment_torchvision.safetensors with, for a few image shapes,
  crop{k}_x      (n, C, H, W) f32   random images
  crop{k}_boxes  (n, 4) f32         integer boxes (top, left, h, w)
  crop{k}_flips  (n,) i32           horizontal flip flags
  crop{k}_y      (n, C, OH, OW) f32 torchvision F.resized_crop(x, top, left, h, w, (OH, OW),
                                    BILINEAR, antialias=False), then F.hflip when flipped
and, for RandomResizedCrop's box rule,
  rrc_cfg   (K, 6) f32   H, W, scale_lo, scale_hi, ratio_lo, ratio_hi
  rrc_u     (K, 40) f32  the uniforms in [0, 1) fed to try t as u[4t..4t+3] = area, log-ratio, top, left
  rrc_box   (K, 4) f32   the box torchvision's RandomResizedCrop.get_params returned (top, left, h, w)
get_params runs unchanged; only the `torch` it sees is wrapped so that its random draws come
from rrc_u (torch.empty(1).uniform_(a, b) → a + (b − a)·u, torch.randint(lo, hi) → lo + ⌊u·(hi − lo)⌋).

    python3 tools/make_augment_fixture.py tests/fixtures/augment_torchvision.safetensors

Needs torch and torchvision. Never needed by the build or the tests.
"""
import json
import struct
import sys

import torch
import torchvision.transforms.functional as TF
import torchvision.transforms.transforms as TT
from torchvision.transforms import InterpolationMode


def save_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dt = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Feed:
    """stands in for the `torch` module inside torchvision.transforms.transforms"""

    def __init__(self, u):
        self.u, self.calls, self.ints = u, 0, 0

    def __getattr__(self, name):
        return getattr(torch, name)

    def empty(self, *a, **k):
        feed = self

        class _T:
            def uniform_(self, a, b):
                t = feed.calls // 2
                v = feed.u[4 * t + (feed.calls % 2)]
                feed.calls += 1
                feed.ints = 0
                return torch.tensor([float(a) + (float(b) - float(a)) * v], dtype=torch.float32)

        return _T()

    def randint(self, lo, hi, size=None):
        t = (self.calls - 1) // 2
        v = self.u[4 * t + 2 + self.ints]
        self.ints += 1
        return torch.tensor([lo + min(int(v * (hi - lo)), hi - lo - 1)])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/augment_torchvision.safetensors"
    g = torch.Generator().manual_seed(20251127)
    tensors = {}
    cases = [(5, 3, 13, 17, 13, 17), (4, 3, 32, 32, 24, 40), (6, 1, 28, 28, 28, 28)]
    for k, (n, C, H, W, OH, OW) in enumerate(cases):
        x = torch.rand(n, C, H, W, generator=g)
        boxes, flips, ys = [], [], []
        for b in range(n):
            h = H if b == 0 else int(torch.randint(1, H + 1, (), generator=g))
            w = W if b == 0 else int(torch.randint(1, W + 1, (), generator=g))
            top = int(torch.randint(0, H - h + 1, (), generator=g))
            left = int(torch.randint(0, W - w + 1, (), generator=g))
            f = b % 2
            y = TF.resized_crop(x[b], top, left, h, w, [OH, OW], InterpolationMode.BILINEAR, antialias=False)
            if f:
                y = TF.hflip(y)
            boxes.append([top, left, h, w])
            flips.append(f)
            ys.append(y)
        tensors[f"crop{k}_x"] = x
        tensors[f"crop{k}_boxes"] = torch.tensor(boxes, dtype=torch.float32)
        tensors[f"crop{k}_flips"] = torch.tensor(flips, dtype=torch.int32)
        tensors[f"crop{k}_y"] = torch.stack(ys)

    cfgs = []
    for i in range(64):  # default ranges on the dataset shapes
        cfgs.append([(28, 28), (32, 32), (224, 224), (10, 20)][i % 4] + (0.08, 1.0, 3 / 4, 4 / 3))
    cfgs += [(10, 10, 1.0, 1.0, 2.0, 3.0), (10, 10, 1.0, 1.0, 0.2, 0.5), (10, 20, 1.0, 1.0, 1.0, 1.0),
             (28, 28, 0.9, 1.0, 0.5, 2.0), (7, 5, 0.08, 1.0, 3 / 4, 4 / 3)]
    us, rboxes = [], []
    saved = TT.torch
    try:
        for H, W, slo, shi, rlo, rhi in cfgs:
            u = torch.rand(40, generator=g).tolist()
            TT.torch = Feed(u)
            top, left, h, w = TT.RandomResizedCrop.get_params(torch.zeros(1, H, W), (slo, shi), (rlo, rhi))
            us.append(u)
            rboxes.append([top, left, h, w])
    finally:
        TT.torch = saved
    tensors["rrc_cfg"] = torch.tensor(cfgs, dtype=torch.float32)
    tensors["rrc_u"] = torch.tensor(us, dtype=torch.float32)
    tensors["rrc_box"] = torch.tensor(rboxes, dtype=torch.float32)
    import torchvision
    save_safetensors(out, tensors, {"tool": "tools/make_augment_fixture.py", "torch": torch.__version__,
                                    "torchvision": torchvision.__version__})
    print(f"wrote {out}: {len(cases)} crop cases, {len(cfgs)} RandomResizedCrop boxes")


if __name__ == "__main__":
    main()
