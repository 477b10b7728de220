#!/usr/bin/env python3
"""Any PyTorch encoder → a TorchScript archive for clpdd's `torchscript` backbone, plus a golden file.

The archive maps normalised images (n, c, S, S) float32 to features (n, d): the tool traces the
encoder with its classifier head left out (timm: num_classes=0, so the model returns the pooled,
normalised features — the same features the `vit` plugin gives), in eval mode, on the CPU.

Sources (one of):
  --timm NAME        a timm model by name (random weights; --pretrained downloads the real ones)
  --module FILE:FN   any nn.Module: FN() in the Python file FILE returns it (its forward returns the
                     features tensor (n, d), not a tuple or the logits)
  --mnist-vit        the shipped models/mnist-vit.safetensors as lucidrains' ViT (features: the
                     LayerNorm of the CLS token, mlp_head's Linear left out), for comparing with `vit`
  --vit-fixture F    a `vit` plugin fixture of tools/export_timm.py (tests/fixtures/vit_<variant>.safetensors):
                     the same timm model and weights, for comparing the two plugins
--weights W.safetensors loads a state dict into --timm/--module models (strict).

Writes OUT (.pt) and OUT's stem + .golden.safetensors: fixture.images (n, c, S, S) float32,
fixture.dfeatures (n, d) float32, fixture.features (n, d) and fixture.input_grad (n, c, S, S) float64
(the module in float64, the float32 weights promoted exactly: the gradient of <dfeatures, features>),
and __metadata__ "clpdd.config", the [backbone] keys for the archive. It prints those keys.

    /usr/bin/python3 tools/export_torchscript.py --timm vit_small_patch16_224 --pretrained --out vits16.pt
    /usr/bin/python3 tools/export_torchscript.py --module my_encoder.py:build --image-size 32 --out enc.pt

Needs torch (Debian: python3-torch) and, for --timm/--vit-fixture, timm (pip install --no-deps timm).
"""
import argparse
import importlib.util
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# ---- lucidrains' ViT (vit-pytorch 0.x), the architecture of models/mnist-vit.safetensors ----

class _PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x):
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Identity())

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = [t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1)]
        attn = ((q @ k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim, mlp_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Identity(), nn.Linear(mlp_dim, dim))

    def forward(self, x):
        return self.net(x)


class LucidViT(nn.Module):
    """features = LayerNorm(CLS token) of lucidrains' ViT (ReLU MLP, pre-norm blocks)"""

    def __init__(self, S=28, p=4, c=1, dim=64, depth=6, heads=4, dim_head=64, mlp_dim=128):
        super().__init__()
        self.p = p
        self.to_patch_embedding = nn.Sequential(nn.Identity(), nn.Linear(p * p * c, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, (S // p) ** 2 + 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        ff = lambda: _FeedForward(dim, mlp_dim)
        self.transformer = nn.Module()
        self.transformer.layers = nn.ModuleList(
            nn.ModuleList([_PreNorm(dim, _Attention(dim, heads, dim_head)), _PreNorm(dim, ff())]) for _ in range(depth))
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim))

    def forward(self, x):
        b, c, H, W = x.shape
        p = self.p
        # 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'
        x = x.reshape(b, c, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (H // p) * (W // p), p * p * c)
        x = self.to_patch_embedding(x)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + self.pos_embedding[:, : x.shape[1] + 1]
        for attn, ff in self.transformer.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.mlp_head(x[:, 0])


def _read_safetensors(path):
    from safetensors.torch import load_file
    return {k: v.float() for k, v in load_file(path).items()}


def _metadata(path):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        return f.metadata() or {}


# ---- sources ----

def source(args):
    """(model in float32 eval mode, c, S, mean, std, fixture images or None)"""
    if args.mnist_vit:
        m = LucidViT()
        sd = {k: v for k, v in _read_safetensors(args.mnist_vit).items() if not k.startswith("mlp_head.1.")}
        m.load_state_dict(sd)
        return m, 1, 28, [0.1307], [0.3081], None
    if args.vit_fixture:
        import export_timm as ex
        meta = _metadata(args.vit_fixture)
        keys = dict(kv.split(" = ") for kv in meta["clpdd.config"].split("; "))
        sd = _read_safetensors(args.vit_fixture)
        images = sd.pop("fixture.images")
        state = {k: v for k, v in sd.items() if not k.startswith("fixture.")}
        if keys["variant"] == "mocov3":
            state = {k[len(ex.MOCO_PREFIX):]: v for k, v in state.items()}
        run, _, sp, _ = ex.build(keys["variant"], False, 0, state=state)
        return run, 3, sp["S"], [0.5], [0.5], images
    if args.timm:
        import timm
        m = timm.create_model(args.timm, pretrained=args.pretrained, num_classes=0,
                              **({"img_size": args.image_size} if args.image_size else {}))
        cfg = m.pretrained_cfg
        S = args.image_size or cfg["input_size"][-1]
        c = cfg["input_size"][0]
        mean, std = list(cfg.get("mean", (0.5,) * c)), list(cfg.get("std", (0.5,) * c))
    else:
        file, fn = args.module.rsplit(":", 1)
        spec = importlib.util.spec_from_file_location("clpdd_user_encoder", file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        m = getattr(mod, fn)()
        if not args.image_size:
            raise SystemExit("export_torchscript: --module needs --image-size")
        S, c, mean, std = args.image_size, args.channels, args.mean, args.std
    if args.weights:
        m.load_state_dict(_read_safetensors(args.weights))
    elif not args.pretrained and args.seed is not None:
        torch.manual_seed(args.seed)
    return m, c, S, mean, std, None


# ---- encoders the plugin must refuse (tests/test_torchscript.c) ----

class _Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        f = self.fc(x.flatten(1))
        return f, f


class _Tokens(nn.Module):  # (n, T, d): tokens, not pooled features
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        return self.fc(x.flatten(2))


class _Constant(nn.Module):  # features that ignore the images
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, 4))

    def forward(self, x):
        return self.w.expand(x.shape[0], 4) * 1.0


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _on_cuda(path):
    """rewrite an archive's storages to say cuda:0 (what torch.jit.save writes for a module on a GPU),
    so a machine without one can make the fixture"""
    import zipfile
    zin = zipfile.ZipFile(path)
    items = [(i, zin.read(i.filename)) for i in zin.infolist()]
    zin.close()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info, data in items:
            if info.filename.endswith("/data.pkl"):
                # a storage's location is the short unicode string 'cpu': X + len (1 byte) + bytes
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
                data = data.replace(b"\x8c\x03cpu", b"\x8c\x06cuda:0")
            zout.writestr(info, data)


def bad_fixtures(out_dir):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    for name, m in (("bad_tuple", _Tuple()), ("bad_tokens", _Tokens()), ("bad_constant", _Constant()),
                    ("bad_cuda", _Linear())):
        with torch.no_grad():
            t = torch.jit.trace(m.eval(), x, check_trace=False)
        path = os.path.join(out_dir, name + ".pt")
        t.save(path)
        if name == "bad_cuda":
            _on_cuda(path)
        print(f"wrote {path}")


def fmt(v):
    return ", ".join(f"{x:.7g}" for x in v) if len(set(v)) > 1 else f"{v[0]:.7g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--timm", help="timm model name (features: num_classes=0)")
    src.add_argument("--module", help="FILE.py:FN, FN() returns the nn.Module")
    src.add_argument("--mnist-vit", nargs="?", const="models/mnist-vit.safetensors", help="lucid ViT checkpoint")
    src.add_argument("--vit-fixture", help="tests/fixtures/vit_<variant>.safetensors")
    src.add_argument("--bad-fixtures", metavar="DIR", help="write the encoders the plugin refuses (8×8 RGB)")
    ap.add_argument("--pretrained", action="store_true", help="timm: download the real weights")
    ap.add_argument("--weights", help="state dict (safetensors) for --timm / --module")
    ap.add_argument("--image-size", type=int, default=0, help="input side S (timm: the model's default)")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--mean", type=float, nargs="+", default=[0.5])
    ap.add_argument("--std", type=float, nargs="+", default=[0.5])
    ap.add_argument("--n", type=int, default=3, help="golden images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="the .pt to write")
    args = ap.parse_args()
    if args.bad_fixtures:
        return bad_fixtures(args.bad_fixtures)
    if not args.out:
        ap.error("--out is required")

    torch.manual_seed(args.seed)
    model, c, S, mean, std, images = source(args)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(args.seed + 1)
    if images is None:
        images = torch.randn(args.n, c, S, S, generator=gen)
    with torch.no_grad():
        traced = torch.jit.trace(model, images[:1].clone(), check_trace=False)
        out = traced(images)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise SystemExit("export_torchscript: the module must return one (n, d) features tensor")
    traced.save(args.out)

    # the float64 reference: the same module (not the trace) with its weights promoted exactly
    dfeat = torch.randn(out.shape, generator=gen)
    ref = model.double()
    x = images.double().requires_grad_(True)
    f = ref(x)
    (f * dfeat.double()).sum().backward()
    keys = (f"file = {os.path.basename(args.out)}; channels = {c}; image_size = {S}; mean = {fmt(mean)}; "
            f"std = {fmt(std)}")
    golden = os.path.splitext(args.out)[0] + ".golden.safetensors"
    from safetensors.torch import save_file
    save_file({"fixture.images": images.float().contiguous(), "fixture.dfeatures": dfeat.float().contiguous(),
               "fixture.features": f.detach().contiguous(), "fixture.input_grad": x.grad.contiguous()},
              golden, metadata={"clpdd.config": keys,
                                "clpdd.source": f"torch {torch.__version__}, tools/export_torchscript.py"})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) and {golden}: features d = {out.shape[1]}")
    print("[backbone]\nname = torchscript\n" + keys.replace("; ", "\n"))


if __name__ == "__main__":
    main()
