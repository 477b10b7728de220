#!/usr/bin/env python3
"""ResNet weights and reference fixtures for clpdd's `resnet` backbone.

Three jobs:

  fixtures   write tests/fixtures/resnet_*.safetensors: tiny random-weight ResNets of every
             family (CIFAR option-A, torchvision basic and bottleneck) with their inputs,
             features, a random dfeatures and the input gradients, computed in float64 by a
             plain-PyTorch transcription (checked here against torchvision itself); and, when
             the real CIFAR checkpoints are found (--models, default $CLPDD_MODEL_PATH), the
             features/gradients of a few CIFAR-like images through them (weights NOT copied).
                 /usr/bin/python3 tools/export_resnet.py fixtures --models ../shared/models
  torchvision  export torchvision's ImageNet ResNet-18/34/50 (needs internet) unchanged:
                 python3 tools/export_resnet.py torchvision --arch resnet50 --out models/resnet50-imagenet.safetensors
  cifar        convert an akamaster/pytorch_resnet_cifar10 .th checkpoint (keys keep `module.`):
                 python3 tools/export_resnet.py cifar resnet20-12fca82f.th --out models/cifar10-resnet20.safetensors

Needs PyTorch (Debian: python3-torch; torchvision optional, used to check the transcription).
safetensors files are read and written by the small functions below (no extra package).
Never needed by the build or the tests.
"""
import argparse
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors (minimal)

_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_TD = {v: k for k, v in _DT.items()}


def st_save(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_load(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = _TD[info["dtype"]]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=dt) if b > a else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    return out


# ---------------------------------------------------------------- the models (transcriptions)

CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}
TV_LAYERS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet34": ("basic", [3, 4, 6, 3]),
             "resnet50": ("bottleneck", [3, 4, 6, 3])}


class CifarBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10 BasicBlock with option-A shortcut."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.option_a = stride != 1 or cin != planes
        self.pad = planes // 4

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.option_a:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)
        return F.relu(out + sc)


class CifarResNet(nn.Module):
    def __init__(self, n, width=16):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        cin = w
        for i, (planes, stride) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2)]):
            blocks = []
            for j in range(n):
                blocks.append(CifarBlock(cin, planes, stride if j == 0 else 1))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(cin, 10)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))


class TVBasic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = down

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + sc)


class TVBottleneck(nn.Module):
    """torchvision v1.5 Bottleneck: the stride is on the 3×3 convolution."""
    expansion = 4

    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = down

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        sc = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + sc)


class TVResNet(nn.Module):
    """torchvision.models.ResNet (same tensor names), base width `width` (64 in torchvision)."""

    def __init__(self, arch, width=64, num_classes=1000):
        super().__init__()
        kind, layers = TV_LAYERS[arch]
        block = TVBasic if kind == "basic" else TVBottleneck
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, nb in enumerate(layers):
            planes, stride = width * 2 ** i, 1 if i == 0 else 2
            blocks = []
            for j in range(nb):
                s = stride if j == 0 else 1
                down = None
                if j == 0 and (s != 1 or cin != planes * block.expansion):
                    down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, s, 0, bias=False),
                                         nn.BatchNorm2d(planes * block.expansion))
                blocks.append(block(cin, planes, s, down))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def make_model(arch, width):
    if arch in CIFAR_DEPTHS:
        return CifarResNet(CIFAR_DEPTHS[arch], width or 16)
    return TVResNet(arch, width or 64)


def randomise(model, gen):
    """Random weights with every part mattering: He-scaled convs, BN far from identity."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(1 + 0.3 * torch.randn(c, generator=gen))
                mod.bias.copy_(0.2 * torch.randn(c, generator=gen))
                mod.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                mod.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            elif isinstance(mod, nn.Linear):
                mod.weight.copy_(0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.zero_()


def reference(model, x, dfeat):
    """features and input gradient of <dfeat, features>, in float64"""
    m = model.double().eval()
    xd = x.double().clone().requires_grad_(True)
    f = m.features(xd)
    (g,) = torch.autograd.grad((f * dfeat.double()).sum(), xd)
    model.float()
    return f.detach().float(), g.detach().float()


def check_against_torchvision():
    """The transcription at width 64 is torchvision's ResNet: same names, same function."""
    try:
        import torchvision
    except ImportError:
        print("torchvision not installed: transcription check skipped", file=sys.stderr)
        return
    gen = torch.Generator().manual_seed(1)
    for arch in TV_LAYERS:
        ours = TVResNet(arch)
        randomise(ours, gen)
        ref = getattr(torchvision.models, arch)(weights=None)
        sd = ours.state_dict()
        missing = set(ref.state_dict()) ^ set(sd)
        assert not missing, f"{arch}: tensor names differ: {sorted(missing)[:5]}"
        ref.load_state_dict(sd)
        ref.eval(), ours.eval()
        x = torch.randn(2, 3, 64, 64, generator=gen)
        with torch.no_grad():
            a = ours.features(x)
            ref.fc = nn.Identity()
            b = ref(x)
        err = ((a - b).norm() / b.norm()).item()
        assert err < 1e-5, f"{arch}: transcription differs from torchvision (rel {err:.3g})"
        print(f"{arch}: transcription = torchvision (rel {err:.2g})", file=sys.stderr)
    # the CIFAR transcription vs the real checkpoint's names
    names = set(CifarResNet(3).state_dict())
    print(f"cifar resnet20 transcription: {len(names)} tensors", file=sys.stderr)


def cifar_like_images(n, gen, size=32):
    """Smooth random colour images in [0, 1] (bilinear upsampling of 4×4 and 8×8 noise)."""
    lo = torch.rand(n, 3, 4, 4, generator=gen)
    mid = torch.rand(n, 3, 8, 8, generator=gen)
    img = 0.6 * F.interpolate(lo, size=size, mode="bilinear", align_corners=False) + \
        0.4 * F.interpolate(mid, size=size, mode="bilinear", align_corners=False)
    return img.clamp(0, 1)


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# tiny configs: (file, arch, width, n, side, prefix)
TINY = [
    ("resnet_tiny_resnet20.safetensors", "resnet20", 4, 3, 10, "module."),
    ("resnet_tiny_resnet18.safetensors", "resnet18", 4, 2, 20, ""),
    ("resnet_tiny_resnet34.safetensors", "resnet34", 2, 2, 18, ""),
    ("resnet_tiny_resnet50.safetensors", "resnet50", 2, 2, 24, ""),
]


def write_fixtures(outdir, models_dir):
    check_against_torchvision()
    gen = torch.Generator().manual_seed(2024)
    os.makedirs(outdir, exist_ok=True)
    for fname, arch, width, n, side, prefix in TINY:
        model = make_model(arch, width)
        randomise(model, gen)
        x = torch.randn(n, 3, side, side, generator=gen)
        with torch.no_grad():
            d = model.features(x).shape[1]
        dfeat = torch.randn(n, d, generator=gen)
        feat, grad = reference(model, x, dfeat)
        t = {prefix + k: v.float() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked") and not k.startswith(("fc.", "linear."))}
        t.update({"test.inputs": x, "test.features": feat, "test.dfeatures": dfeat, "test.dinputs": grad})
        path = os.path.join(outdir, fname)
        st_save(t, path, {"arch": arch, "width": width, "image_size": side, "prefix": prefix,
                          "made_by": "tools/export_resnet.py fixtures (float64 PyTorch)"})
        print(f"wrote {path} ({os.path.getsize(path)} bytes): {arch} width {width}, {n}x3x{side}x{side} -> {d}",
              file=sys.stderr)
    for arch in ("resnet20", "resnet56"):
        src = os.path.join(models_dir or "", f"cifar10-{arch}.safetensors")
        if not models_dir or not os.path.exists(src):
            print(f"{src}: not found, real-checkpoint fixture for {arch} skipped", file=sys.stderr)
            continue
        sd = st_load(src)
        model = make_model(arch, 16)
        res = model.load_state_dict({k[len("module."):]: v for k, v in sd.items()}, strict=False)
        missing = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
        assert not missing and not res.unexpected_keys, f"{src}: {missing[:4]} {res.unexpected_keys[:4]}"

        pixels = cifar_like_images(3, gen)
        x = (pixels - IMAGENET_MEAN) / IMAGENET_STD
        dfeat = torch.randn(3, 64, generator=gen)
        feat, grad = reference(model, x, dfeat)
        with torch.no_grad():
            logits = model.linear(feat)
        path = os.path.join(outdir, f"resnet_cifar10_{arch}.safetensors")
        st_save({"test.inputs": x, "test.features": feat, "test.dfeatures": dfeat, "test.dinputs": grad,
                 "test.logits": logits},
                path, {"arch": arch, "weights": os.path.basename(src),
                       "made_by": "tools/export_resnet.py fixtures (float64 PyTorch, real weights)"})
        print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def export_torchvision(arch, out):
    import torchvision
    weights = {"resnet18": "IMAGENET1K_V1", "resnet34": "IMAGENET1K_V1", "resnet50": "IMAGENET1K_V2"}[arch]
    model = getattr(torchvision.models, arch)(weights=weights)
    sd = {k: v.float() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    st_save(sd, out, {"source": f"torchvision.models.{arch}(weights={weights})", "license": "BSD-3-Clause"})
    print(f"wrote {out} ({len(sd)} tensors)", file=sys.stderr)


def convert_cifar(src, out):
    obj = torch.load(src, map_location="cpu")
    sd = obj.get("state_dict", obj)
    t = {k: v.float() for k, v in sd.items() if torch.is_tensor(v) and not k.endswith("num_batches_tracked")}
    meta = {"source": os.path.basename(src), "license": "BSD-2-Clause"}
    if "best_prec1" in obj:
        meta["best_prec1"] = float(obj["best_prec1"])
    st_save(t, out, meta)
    print(f"wrote {out} ({len(t)} tensors)", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    f.add_argument("--models", default=(os.environ.get("CLPDD_MODEL_PATH") or "").split(":")[0])
    tv = sub.add_parser("torchvision")
    tv.add_argument("--arch", choices=sorted(TV_LAYERS), required=True)
    tv.add_argument("--out", required=True)
    c = sub.add_parser("cifar")
    c.add_argument("src")
    c.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "fixtures":
        write_fixtures(args.out, args.models)
    elif args.cmd == "torchvision":
        export_torchvision(args.arch, args.out)
    else:
        convert_cifar(args.src, args.out)


if __name__ == "__main__":
    main()
