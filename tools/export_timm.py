#!/usr/bin/env python3
"""Reference fixtures and real weights for clpdd's `vit` backbone plugin.

For each encoder, one code path builds the reference model (timm's classes, open_clip's
VisionTransformer, the DINOv2 repository's position resampling), gives it weights, and writes a
safetensors file holding:

  * the weights under the names the checkpoint ships with (timm's; MoCo v3's under
    module.base_encoder.; open_clip's under visual.),
  * fixture.images (n, c, S, S) float32 normalised images, fixture.dfeatures (n, d) float32,
  * fixture.features (n, d) and fixture.input_grad (n, c, S, S) float64: the reference's output
    and the gradient of <dfeatures, features> with respect to the images (PyTorch autograd in
    float64, the float32 weights promoted exactly),
  * fixture.pos_table (G², D) float32 where the position table is resampled: the reference's
    table at the run's grid, as PyTorch computes it in float32,
  * __metadata__ "clpdd.config": the plugin's INI keys for this model (without `weights`), and
    "clpdd.source": the versions and the reference used.

Only the weight source differs between the two modes:

  default       tiny models (2 blocks, width ≤ 32) with random weights, no network:
                    /usr/bin/python3 tools/export_timm.py              # all → tests/fixtures/
                    /usr/bin/python3 tools/export_timm.py --variant pos_hub --out /tmp
  --pretrained  the real ViT-B weights (needs internet and huggingface_hub), written under the
                plugin's default file name plus <name>.golden.safetensors (2 images at 224 px):
                    /usr/bin/python3 tools/export_timm.py --pretrained --out ../shared/models
                Downloads (float32 checkpoints): vit, deit, dinov2, clip (image tower), eva02 ≈ 330-350 MB
                each from the Hugging Face hub (timm/...); openclip ≈ 600 MB (open_clip's whole
                ViT-B-16-quickgelu 'openai' model, text tower dropped); mocov3 ≈ 1.2 GB (MoCo v3's whole
                training checkpoint, dl.fbaipublicfiles.com; module.base_encoder. kept, as shipped). A few
                minutes each on a fast link; the float64 reference at 224 px takes ~1 min per variant on a
                CPU.
  --base        the same as --pretrained with random ViT-B weights: no network (≈ 345 MB per file)

Fixtures: vit deit dinov2 clip mocov3 eva02 (one per variant), pos_plain pos_timm pos_hub (a
dinov2-style model whose 37×37 table is resampled to 16×16 each way), pos_tables (PyTorch's
tables for grids smaller and larger than the checkpoint's, each way), openclip (open_clip's
VisionTransformer, OpenAI layout, QuickGELU). tools/check_encoder.py compares the plugin with
these references on real weights.

Needs torch and timm (Debian: apt-get install python3-torch python3-torchvision; pip install
--no-deps timm), open_clip for the openclip fixture (pip install --no-deps open_clip_torch
ftfy; apt-get install python3-regex python3-tqdm). Writes safetensors itself.
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
import torch.nn.functional as F

import timm
from timm.layers import resample_abs_pos_embed
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

VARIANTS = ["vit", "deit", "dinov2", "clip", "mocov3", "eva02"]
EXTRA = ["pos_plain", "pos_timm", "pos_hub", "openclip", "pos_tables"]
POS_CASES = [(37, 16), (37, 4), (16, 37), (4, 5), (3, 7), (14, 16), (24, 16)]  # (G0, G): down and up
MOCO_PREFIX = "module.base_encoder."

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


# ---- position tables ------------------------------------------------------------------------


def mocov3_sincos(grid, dim, temperature=10000.0):
    """VisionTransformerMoCo.build_2d_sincos_position_embedding (facebookresearch/moco-v3,
    vits.py): the (1, 1 + grid², dim) table, zero row for CLS."""
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


def hub_pos_embed(pos_embed, w0):
    """DinoVisionTransformer.interpolate_pos_encoding (facebookresearch/dinov2, as torch.hub
    runs dinov2_vit*14: interpolate_offset 0.1, interpolate_antialias False) for a w0 × w0 grid:
    the (1, 1 + M², D) table with its CLS row to (1, 1 + w0², D), in float32."""
    pos_embed = pos_embed.float()
    N = pos_embed.shape[1] - 1
    M = int(math.sqrt(N))
    assert N == M * M
    sx = float(w0 + 0.1) / M
    patch = F.interpolate(pos_embed[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2), scale_factor=(sx, sx),
                          mode="bicubic", antialias=False)
    assert patch.shape[-2:] == (w0, w0)
    patch = patch.permute(0, 2, 3, 1).reshape(1, -1, pos_embed.shape[-1])
    return torch.cat((pos_embed[:, :1], patch), dim=1)


def resampled_state(ck, run, mode):
    """ck's state dict with its position table brought to run's grid as `mode` says:
    plain = resample_abs_pos_embed(antialias=False); timm = timm's own pretrained loading
    (checkpoint_filter_fn: antialias on); hub = the DINOv2 repository's arithmetic."""
    sd = {k: v.clone() for k, v in ck.state_dict().items()}
    prefix = 0 if ck.no_embed_class else ck.num_prefix_tokens
    g = list(run.patch_embed.grid_size)
    if mode == "timm":
        return checkpoint_filter_fn(sd, run)
    if mode == "hub":
        assert prefix == 1, "the DINOv2 hub table has exactly one prefix row (CLS)"
        sd["pos_embed"] = hub_pos_embed(sd["pos_embed"], g[0])
    else:
        sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=g, num_prefix_tokens=prefix,
                                                 interpolation="bicubic", antialias=False)
    return sd


# ---- the encoders ---------------------------------------------------------------------------


def vit(S, p, D, L, H, **kw):
    return VisionTransformer(img_size=S, patch_size=p, in_chans=3, embed_dim=D, depth=L, num_heads=H, mlp_ratio=4.0,
                             qkv_bias=True, global_pool="token", **{"num_classes": 0, **kw})


def spec(name, real):
    """The encoder `name` at tiny (real = False) or ViT-B (real = True) size: a dict with
    build(S) → model at side S, S0 (checkpoint side), S (run side), keys (the plugin's INI
    keys), pos (resampling mode when S0 ≠ S), timm (pretrained name), file (plugin's default)."""
    t = not real
    if name in ("vit", "deit"):
        S, p, D, L, H = (16, 4, 24, 2, 2) if t else (224, 16, 768, 12, 12)
        S0 = 12 if t and name == "deit" else S  # tiny deit: checkpoint grid 3, run grid 4
        if t and name == "deit":
            D, H = 16, 4
        keys = f"variant = {name}" + (f"; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}" if t else "")
        keys += f"; pos_grid = {S0 // p}" if S0 != S else ""
        return dict(build=lambda s: vit(s, p, D, L, H), S0=S0, S=S, keys=keys, pos="plain",
                    timm={"vit": "vit_base_patch16_224.augreg2_in21k_ft_in1k", "deit": "deit_base_patch16_224.fb_in1k"}[name],
                    file={"vit": "vit_base_patch16_224", "deit": "deit_base_patch16_224"}[name])
    if name == "dinov2":
        if t:  # LayerScale, 2 registers (timm: no_embed_class), checkpoint grid 4 → run grid 5, plain
            S0, S, p, D, L, H, R = 16, 20, 4, 16, 2, 2, 2
            kw = dict(init_values=1e-5, reg_tokens=R, no_embed_class=True)
            keys = (f"variant = dinov2; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; "
                    f"registers = {R}; pos_grid = {S0 // p}; pos_resample = plain")
            return dict(build=lambda s: vit(s, p, D, L, H, **kw), S0=S0, S=S, keys=keys, pos="plain")
        return dict(build=lambda s: vit(s, 14, 768, 12, 12, init_values=1e-5), S0=518, S=224, keys="variant = dinov2",
                    pos="hub", timm="vit_base_patch14_dinov2.lvd142m", file="vit_base_patch14_dinov2")
    if name.startswith("pos_"):  # dinov2 without registers: 37×37 table → 16×16 grid
        mode = name[4:]
        S0, S, p, D, L, H = 74, 32, 2, 32, 2, 2
        keys = (f"variant = dinov2; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; pos_grid = 37"
                + ("" if mode == "hub" else f"; pos_resample = {mode}"))  # hub: dinov2's default
        return dict(build=lambda s: vit(s, p, D, L, H, init_values=1e-5), S0=S0, S=S, keys=keys, pos=mode)
    if name == "clip":
        S, p, D, L, H, E = (16, 4, 16, 2, 2, 8) if t else (224, 16, 768, 12, 12, 512)
        keys = "variant = clip" + (f"; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; proj = {E}"
                                   if t else "")
        return dict(build=lambda s: vit(s, p, D, L, H, num_classes=E, pre_norm=True, norm_layer=nn.LayerNorm,
                                        act_layer="quick_gelu"),
                    S0=S, S=S, keys=keys, pos="plain", timm="vit_base_patch16_clip_quickgelu_224.openai",
                    file="vit_base_patch16_clip_quickgelu_224")
    if name == "mocov3":
        S, p, D, L, H = (16, 4, 16, 2, 2) if t else (224, 16, 768, 12, 12)
        keys = "variant = mocov3" + (f"; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}" if t else "")
        return dict(build=lambda s: vit(s, p, D, L, H, norm_layer=partial(nn.LayerNorm, eps=1e-6)), S0=S, S=S, keys=keys,
                    pos="plain", file="mocov3_vit_base")
    if name == "eva02":
        # eva02_base_patch14_224's options; tiny: RoPE reference grid 6 ≠ the run's grid 4
        S, p, D, L, H, ref = (16, 4, 16, 2, 2, 6) if t else (224, 14, 768, 12, 12, 16)
        keys = "variant = eva02" + (f"; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; "
                                    f"rope_ref = {ref}" if t else "")
        return dict(build=lambda s: Eva(img_size=s, patch_size=p, in_chans=3, num_classes=0, embed_dim=D, depth=L,
                                        num_heads=H, qkv_fused=False, mlp_ratio=4 * 2 / 3, swiglu_mlp=True,
                                        scale_mlp=True, use_rot_pos_emb=True, ref_feat_shape=(ref, ref),
                                        global_pool="avg"),
                    S0=S, S=S, keys=keys, pos="plain", timm="eva02_base_patch14_224.mim_in22k",
                    file="eva02_base_patch14_224")
    if name == "openclip":
        S, p, D, L, H, E = (16, 4, 16, 2, 2, 8) if t else (224, 16, 768, 12, 12, 512)
        keys = "variant = clip" + (f"; image_size = {S}; patch = {p}; dim = {D}; depth = {L}; heads = {H}; proj = {E}"
                                   if t else "")
        return dict(build=lambda s: openclip_visual(s, p, D, L, H, E), S0=S, S=S, keys=keys, pos="plain",
                    file="open_clip_vit_b_16_openai")
    raise SystemExit(f"export_timm: unknown encoder {name}")


class OpenClipVisual(nn.Module):
    """open_clip's VisionTransformer under `visual.` (its state dict is the checkpoint's)"""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual

    def forward(self, x):
        return self.visual(x)


def openclip_visual(S, p, D, L, H, E):
    from open_clip.model import QuickGELU
    from open_clip.transformer import VisionTransformer as OCVisionTransformer
    return OpenClipVisual(OCVisionTransformer(image_size=S, patch_size=p, width=D, layers=L, heads=H, mlp_ratio=4.0,
                                              output_dim=E, act_layer=QuickGELU))


def randomise(model, gen):
    """Random weights at scales where every part matters: attention far from uniform,
    LayerNorm/LayerScale affine far from identity, activations on both sides of 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # LayerScale
                p.copy_(0.7 + 0.3 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias") or (p.ndim == 1 and "class_embedding" not in name):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.split(".")[-1] in ("cls_token", "reg_token", "pos_embed", "class_embedding",
                                         "positional_embedding"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:  # weights (out, in...): std 1/sqrt(fan_in), a bit more for q/k
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (1.2 / math.sqrt(fan_in)))


def pretrained_weights(name, sp, ck):
    """the real checkpoint into ck (strict: the architecture above is the pretrained one)"""
    if name == "mocov3":
        url = "https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar"
        sd = torch.hub.load_state_dict_from_url(url, map_location="cpu")["state_dict"]
        sd = {k[len(MOCO_PREFIX):]: v for k, v in sd.items()
              if k.startswith(MOCO_PREFIX) and not k[len(MOCO_PREFIX):].startswith("head")}
    elif name == "openclip":
        import open_clip
        sd = {k: v for k, v in open_clip.create_model("ViT-B-16-quickgelu", pretrained="openai").state_dict().items()
              if k.startswith("visual.")}
    else:
        sd = timm.create_model(sp["timm"], pretrained=True, num_classes=ck.num_classes).state_dict()
    ck.load_state_dict(sd)


def shipped_weights(name, ck):
    """ck's weights as float32 under the names its checkpoint ships with"""
    sd = [(k, v.float()) for k, v in ck.state_dict().items()]
    if name == "mocov3":  # fixed sin-cos table: the plugin computes it; the checkpoint's keys are prefixed
        return [(MOCO_PREFIX + k, v) for k, v in sd if k != "pos_embed"]
    return sd


def build(name, real, seed, state=None, pos=None, pretrained=False):
    """(model at the run's side, shipped weights, spec, the resampled table or None) at ViT-B
    (real) or tiny size. The weights: `state` (a state dict under the reference's own names)
    when given, else the pretrained checkpoint, else random ones; pos overrides the spec's
    resampling mode."""
    sp = spec(name, real)
    if pos:
        sp["pos"] = pos
    ck = sp["build"](sp["S0"])
    if state is not None:
        missing, unexpected = ck.load_state_dict(state, strict=False)
        if [k for k in missing if not (name == "mocov3" and k == "pos_embed")] or unexpected:
            raise SystemExit(f"export_timm: the weights do not fit {name}: missing {missing}, unexpected {unexpected}")
    elif pretrained:
        pretrained_weights(name, sp, ck)
    else:
        randomise(ck, torch.Generator().manual_seed(seed))
    if name == "mocov3":
        with torch.no_grad():
            ck.pos_embed.copy_(mocov3_sincos(sp["S"] // ck.patch_embed.patch_size[0], ck.embed_dim))
    weights, table = shipped_weights(name, ck), None
    run = ck
    if sp["S0"] != sp["S"]:
        run = sp["build"](sp["S"])
        sd = resampled_state(ck, run, sp["pos"])
        run.load_state_dict(sd)
        prefix = 0 if run.no_embed_class else run.num_prefix_tokens
        table = sd["pos_embed"][0, prefix:].float()
    return run, weights, sp, table


def reference(model, images, dfeat):
    """float64 features and input gradient of <dfeat, features>"""
    m = model.double().eval()
    x = images.double().requires_grad_(True)
    f = m(x)
    (f * dfeat.double()).sum().backward()
    return f.detach(), x.grad.detach()


def export_pos_tables(out_dir, seed):
    """vit_pos_tables.safetensors: random (G0, G0, 3) tables and PyTorch's (G, G, 3) results of
    each resampling mode, for grids smaller and larger than the checkpoint's"""
    gen = torch.Generator().manual_seed(seed)
    tensors, D = [], 3
    for i, (g0, g) in enumerate(POS_CASES):
        src = torch.randn(1, 1 + g0 * g0, D, generator=gen)
        tensors.append((f"case{i}.src", src[0, 1:].reshape(g0, g0, D)))
        for mode in ("plain", "timm", "hub"):
            if mode == "hub":
                out = hub_pos_embed(src, g)[0, 1:]
            else:
                out = resample_abs_pos_embed(src, new_size=[g, g], num_prefix_tokens=1, interpolation="bicubic",
                                             antialias=mode == "timm")[0, 1:]
            tensors.append((f"case{i}.{mode}", out.reshape(g, g, D).float()))
    path = os.path.join(out_dir, "vit_pos_tables.safetensors")
    cases = ";".join(f"{g0}x{g}" for g0, g in POS_CASES)
    write_safetensors(path, tensors, {"clpdd.cases": cases, "clpdd.source": f"torch {torch.__version__}, tools/export_timm.py"})
    print(f"{path}: {os.path.getsize(path)} bytes, cases {cases}")


def export(name, out_dir, seed, n, real, pretrained):
    """tiny (real = False): one fixture file; ViT-B: the checkpoint under the plugin's default
    name and its golden file (pretrained or random weights: the same code)"""
    torch.manual_seed(seed)
    model, weights, sp, table = build(name, real, seed, pretrained=pretrained)
    S = sp["S"]
    gen = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(n, 3, S, S, generator=gen)
    with torch.no_grad():
        d = model.eval()(images[:1]).shape[1]
    dfeat = torch.randn(n, d, generator=gen)
    feats, grad = reference(model, images, dfeat)
    src = f"timm {timm.__version__}, torch {torch.__version__}, tools/export_timm.py ({name}, pos {sp['pos']})"
    fixture = [("fixture.images", images), ("fixture.dfeatures", dfeat), ("fixture.features", feats),
               ("fixture.input_grad", grad)] + ([("fixture.pos_table", table)] if table is not None else [])
    if real:
        path = os.path.join(out_dir, sp["file"] + ".safetensors")
        write_safetensors(path, weights, {"clpdd.source": src})
        print(f"{path}: {os.path.getsize(path)} bytes")
        gpath = os.path.join(out_dir, sp["file"] + ".golden.safetensors")
        write_safetensors(gpath, fixture, {"clpdd.config": f"{sp['keys']}; weights = {sp['file']}.safetensors",
                                           "clpdd.source": src})
        print(f"{gpath}: golden features {tuple(feats.shape)}")
        return
    path = os.path.join(out_dir, f"vit_{name}.safetensors")
    write_safetensors(path, weights + fixture, {"clpdd.config": sp["keys"], "clpdd.source": src})
    print(f"{path}: {os.path.getsize(path)} bytes, features {tuple(feats.shape)}, {sp['keys']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", choices=VARIANTS + EXTRA, help="encoder(s) to export (default: all)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"), help="output directory")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--n", type=int, default=3, help="images per fixture (--pretrained: 2)")
    ap.add_argument("--pretrained", action="store_true",
                    help="the real ViT-B weights and a golden file each (needs internet; sizes above)")
    ap.add_argument("--base", action="store_true",
                    help="ViT-B with random weights, written as --pretrained writes the real ones (no network; "
                         "~1-2 min per variant on 2 cores)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    real = a.pretrained or a.base
    names = a.variant or (VARIANTS + ["openclip"] if real else VARIANTS + EXTRA)
    for v in names:
        seed = a.seed + 100 * (VARIANTS + EXTRA).index(v)
        if v == "pos_tables":
            export_pos_tables(a.out, seed)
        else:
            export(v, a.out, seed, 2 if real else a.n, real, a.pretrained)
    return 0


if __name__ == "__main__":
    sys.exit(main())
