#!/usr/bin/env python3
"""Reference fixtures and real weights for clpdd's `vit` backbone plugin.

Default mode (no network needed): for each ViT variant, build the timm model (or, for
MoCo v3, timm's VisionTransformer with MoCo v3's fixed sin-cos position table computed as its
own code does) at a tiny size with random weights, and write ONE safetensors file per variant:

  * the model's weights under timm's own tensor names (what the plugin reads),
  * fixture.images (n, c, S, S) float32 normalised images, fixture.dfeatures (n, d) float32,
  * fixture.features (n, d) and fixture.input_grad (n, c, S, S) float64: the model's output
    and the gradient of <dfeatures, features> with respect to the images, computed by
    PyTorch autograd in float64 (the float32 weights promoted exactly),
  * __metadata__ "clpdd.config": the plugin's INI keys for this model, without `weights`,
    and "clpdd.source": the timm version and the constructor used.

    /usr/bin/python3 tools/export_timm.py                  # all variants → tests/fixtures/
    /usr/bin/python3 tools/export_timm.py --variant eva02 --out /tmp

With --pretrained (needs internet and huggingface_hub), export the real ViT-B weights of each
variant under the plugin's default file name (see plugins/backbones/vit/vit.c), plus a small
golden file <name>.golden.safetensors (features and input gradients of 2 random images at
224 px) in the same format, for a check against the real checkpoint:

    /usr/bin/python3 tools/export_timm.py --pretrained --out ../shared/models

Needs torch and timm (Debian: apt-get install python3-torch python3-torchvision;
pip install --no-deps timm). Writes safetensors itself (no safetensors package needed).
"""
import argparse
import json
import math
import os
import struct
import sys
from functools import partial

import torch
import torch.nn as nn

import timm
from timm.layers import resample_abs_pos_embed
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer

# ---- safetensors writer -------------------------------------------------------------------

_DT = {torch.float32: "F32", torch.float64: "F64"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in file order; metadata: dict str → str"""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- MoCo v3 -------------------------------------------------------------------------------


def mocov3_sincos(grid, dim, temperature=10000.0):
    """VisionTransformerMoCo.build_2d_sincos_position_embedding (facebookresearch/moco-v3,
    vits.py), transcribed: returns the (1, 1 + grid², dim) table, zero row for CLS."""
    grid_w = torch.arange(grid, dtype=torch.float32)
    grid_h = torch.arange(grid, dtype=torch.float32)
    grid_w, grid_h = torch.meshgrid(grid_w, grid_h, indexing="ij")
    pos_dim = dim // 4
    omega = torch.arange(pos_dim, dtype=torch.float32) / pos_dim
    omega = 1.0 / (temperature ** omega)
    out_w = torch.einsum("m,d->md", grid_w.flatten(), omega)
    out_h = torch.einsum("m,d->md", grid_h.flatten(), omega)
    pos = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)[None]
    return torch.cat([torch.zeros(1, 1, dim), pos], dim=1)


# ---- the tiny models ---------------------------------------------------------------------


def randomise(model, gen):
    """Random weights at scales where every part matters: attention far from uniform,
    LayerNorm/LayerScale affine far from identity, activations on both sides of 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # LayerScale
                p.copy_(0.7 + 0.3 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and ("norm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 or name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name in ("cls_token", "reg_token", "pos_embed"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:  # weights (out, in...) : std 1/sqrt(fan_in), a bit more for q/k
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.2 / math.sqrt(fan_in)))


def tiny(variant):
    """(model that maps normalised images to features, its weights' state dict, INI keys, c, S)"""
    c = 3
    if variant == "vit":
        S, p, D, L, H = 16, 4, 24, 2, 2
        m = VisionTransformer(img_size=S, patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L,
                              num_heads=H, mlp_ratio=4.0, qkv_bias=True, global_pool="token")
        cfg = f"variant = vit; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}"
        return m, None, cfg, c, S
    if variant == "deit":
        # checkpoint grid 3 (12 px), run grid 4 (16 px): pos_embed (with its CLS row) resampled
        S0, S, p, D, L, H = 12, 16, 4, 16, 2, 4
        ck = VisionTransformer(img_size=S0, patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L,
                               num_heads=H, mlp_ratio=4.0, qkv_bias=True, global_pool="token")
        run = VisionTransformer(img_size=S, patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L,
                                num_heads=H, mlp_ratio=4.0, qkv_bias=True, global_pool="token")
        cfg = (f"variant = deit; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; "
               f"pos_grid = {S0 // p}")
        return run, ck, cfg, c, S
    if variant == "dinov2":
        # LayerScale, 2 registers (timm: no_embed_class), checkpoint grid 4 → run grid 5
        S0, S, p, D, L, H, R = 16, 20, 4, 16, 2, 2, 2
        kw = dict(patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L, num_heads=H, mlp_ratio=4.0,
                  qkv_bias=True, init_values=1e-5, reg_tokens=R, no_embed_class=True, global_pool="token")
        ck = VisionTransformer(img_size=S0, **kw)
        run = VisionTransformer(img_size=S, **kw)
        cfg = (f"variant = dinov2; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; "
               f"registers = {R}; pos_grid = {S0 // p}")
        return run, ck, cfg, c, S
    if variant == "clip":
        S, p, D, L, H, E = 16, 4, 16, 2, 2, 8
        m = VisionTransformer(img_size=S, patch_size=p, in_chans=c, num_classes=E, embed_dim=D, depth=L,
                              num_heads=H, mlp_ratio=4.0, qkv_bias=True, pre_norm=True, norm_layer=nn.LayerNorm,
                              act_layer="quick_gelu", global_pool="token")
        cfg = f"variant = clip; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; proj = {E}"
        return m, None, cfg, c, S
    if variant == "mocov3":
        S, p, D, L, H = 16, 4, 16, 2, 2
        m = VisionTransformer(img_size=S, patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L,
                              num_heads=H, mlp_ratio=4.0, qkv_bias=True, global_pool="token",
                              norm_layer=partial(nn.LayerNorm, eps=1e-6))
        cfg = f"variant = mocov3; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}"
        return m, None, cfg, c, S
    if variant == "eva02":
        # eva02_base_patch14_224's options; RoPE reference grid 6 ≠ the run's grid 4
        S, p, D, L, H, ref = 16, 4, 16, 2, 2, 6
        m = Eva(img_size=S, patch_size=p, in_chans=c, num_classes=0, embed_dim=D, depth=L, num_heads=H,
                qkv_fused=False, mlp_ratio=4 * 2 / 3, swiglu_mlp=True, scale_mlp=True, use_rot_pos_emb=True,
                ref_feat_shape=(ref, ref), global_pool="avg")
        cfg = f"variant = eva02; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; rope_ref = {ref}"
        return m, None, cfg, c, S
    raise SystemExit(f"export_timm: unknown variant {variant}")


def weights_of(model):
    """the persistent state dict as float32 (what the plugin reads)"""
    return [(k, v.float()) for k, v in model.state_dict().items()]


def build_tiny(variant, seed):
    gen = torch.Generator().manual_seed(seed)
    run, ck, cfg, c, S = tiny(variant)
    src = ck if ck is not None else run
    randomise(src, gen)
    if variant == "mocov3":
        with torch.no_grad():
            src.pos_embed.copy_(mocov3_sincos(S // src.patch_embed.patch_size[0], src.embed_dim))
    weights = weights_of(src)
    if variant == "mocov3":  # MoCo v3's table is fixed: the plugin computes it, the file omits it
        weights = [(k, v) for k, v in weights if k != "pos_embed"]
    if ck is not None:
        # the reference at the run's size: timm's resample_abs_pos_embed, bicubic, no antialias
        sd = ck.state_dict()
        prefix = 0 if ck.no_embed_class else ck.num_prefix_tokens
        g = run.patch_embed.grid_size
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=list(g), num_prefix_tokens=prefix,
                                                 interpolation="bicubic", antialias=False)
        run.load_state_dict(sd)
    return run, weights, cfg, c, S


def reference(model, images, dfeat):
    """float64 features and input gradient of <dfeat, features>"""
    m = model.double().eval()
    x = images.double().requires_grad_(True)
    f = m(x)
    (f * dfeat.double()).sum().backward()
    return f.detach(), x.grad.detach()


def export_fixture(variant, out_dir, seed, n):
    torch.manual_seed(seed)
    model, weights, cfg, c, S = build_tiny(variant, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(n, c, S, S, generator=gen)
    with torch.no_grad():
        d = model(images[:1]).shape[1]
    dfeat = torch.randn(n, d, generator=gen)
    feats, grad = reference(model, images, dfeat)
    path = os.path.join(out_dir, f"vit_{variant}.safetensors")
    meta = {"clpdd.config": cfg, "clpdd.source": f"timm {timm.__version__}, torch {torch.__version__}, tools/export_timm.py"}
    write_safetensors(path, weights + [("fixture.images", images), ("fixture.dfeatures", dfeat),
                                       ("fixture.features", feats), ("fixture.input_grad", grad)], meta)
    print(f"{path}: {os.path.getsize(path)} bytes, features {tuple(feats.shape)}, {cfg}")


# ---- real weights --------------------------------------------------------------------------

PRETRAINED = {
    # variant: (timm name, plugin's default file name, create_model kwargs)
    "vit": ("vit_base_patch16_224.augreg2_in21k_ft_in1k", "vit_base_patch16_224", dict(num_classes=0)),
    "deit": ("deit_base_patch16_224.fb_in1k", "deit_base_patch16_224", dict(num_classes=0)),
    "dinov2": ("vit_base_patch14_dinov2.lvd142m", "vit_base_patch14_dinov2", dict(num_classes=0)),
    "clip": ("vit_base_patch16_clip_quickgelu_224.openai", "vit_base_patch16_clip_quickgelu_224", dict()),
    "eva02": ("eva02_base_patch14_224.mim_in22k", "eva02_base_patch14_224", dict(num_classes=0)),
}
MOCOV3_URL = "https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar"


def export_pretrained(variant, out_dir, seed):
    if variant == "mocov3":
        sd = torch.hub.load_state_dict_from_url(MOCOV3_URL, map_location="cpu")["state_dict"]
        pre = "module.base_encoder."
        sd = {k[len(pre):]: v for k, v in sd.items() if k.startswith(pre) and not k[len(pre):].startswith("head")}
        model = VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, num_classes=0,
                                  qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
        model.load_state_dict(sd)
        fname = "mocov3_vit_base"
        weights = [(k, v.float()) for k, v in sd.items() if k != "pos_embed"]
    else:
        name, fname, kw = PRETRAINED[variant]
        model = timm.create_model(name, pretrained=True, **kw)
        weights = weights_of(model)
    path = os.path.join(out_dir, fname + ".safetensors")
    write_safetensors(path, weights, {"clpdd.source": f"timm {timm.__version__} ({variant})"})
    print(f"{path}: {os.path.getsize(path)} bytes")
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, 224, 224, generator=gen)
    with torch.no_grad():
        d = model.eval()(images[:1]).shape[1]
    dfeat = torch.randn(2, d, generator=gen)
    feats, grad = reference(model, images, dfeat)
    gpath = os.path.join(out_dir, fname + ".golden.safetensors")
    write_safetensors(gpath, [("fixture.images", images), ("fixture.dfeatures", dfeat), ("fixture.features", feats),
                              ("fixture.input_grad", grad)],
                      {"clpdd.config": f"variant = {variant}; weights = {fname}.safetensors"})
    print(f"{gpath}: golden features {tuple(feats.shape)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", choices=["vit", "deit", "dinov2", "clip", "mocov3", "eva02"],
                    help="variant(s) to export (default: all)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"), help="output directory")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--n", type=int, default=3, help="images per fixture")
    ap.add_argument("--pretrained", action="store_true", help="export the real ViT-B weights (needs internet)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for i, v in enumerate(a.variant or ["vit", "deit", "dinov2", "clip", "mocov3", "eva02"]):
        if a.pretrained:
            export_pretrained(v, a.out, a.seed + i)
        else:
            export_fixture(v, a.out, a.seed + 100 * i, a.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
