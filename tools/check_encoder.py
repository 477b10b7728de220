#!/usr/bin/env python3
"""Compare clpdd's `vit` plugin with the reference implementation on a real checkpoint.

    /usr/bin/python3 tools/check_encoder.py CHECKPOINT.safetensors --variant dinov2
    /usr/bin/python3 tools/check_encoder.py open_clip_model.safetensors --variant clip     # open_clip layout
    /usr/bin/python3 tools/check_encoder.py vit_base_patch14_dinov2.safetensors --variant dinov2 --reference timm

The reference is the model the checkpoint comes from, built by tools/export_timm.py: timm's
VisionTransformer / Eva (vit, deit, dinov2, clip, mocov3, eva02), open_clip's VisionTransformer
(a checkpoint under visual.: OpenAI or open_clip CLIP), with the position table brought to the
run's grid the way --reference says (default: the variant's pos_resample default: dinov2 as the
DINOv2 repository's torch.hub model runs it, the others plain). It computes in float64 the
features of a few random images at the variant's size and the gradient of <g, features> with
respect to the images for a random g, writes them to a golden file, and runs the plugin on the
same images through the test program (build/tests/test_vit_variants, test vit_golden), which
prints the relative errors (‖clpdd − reference‖₂ / ‖reference‖₂). The plugin reads the
checkpoint as it is (layout = auto), with the keys the golden file names.

A golden file written by `tools/export_timm.py --pretrained` (NAME.golden.safetensors, its
config naming the weights file, found through CLPDD_MODEL_PATH / models/) is checked as it is:

    CLPDD_MODEL_PATH=models /usr/bin/python3 tools/check_encoder.py models/vit_base_patch14_dinov2.golden.safetensors

The architecture is ViT-B (the paper's encoders; --tiny: export_timm.py's tiny models, to run
this tool on its fixtures, e.g. tests/fixtures/vit_pos_hub.safetensors --variant pos_hub --tiny).
Needs torch, timm (and open_clip for an open_clip checkpoint), safetensors, and a build tree.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_timm as ex  # noqa: E402

PREFIXES = ["", "module.base_encoder.", "module."]


def read_checkpoint(path):
    from safetensors.torch import load_file
    return {k: v for k, v in load_file(path).items() if not k.startswith("fixture.")}


def detect(sd):
    """(layout, prefix) of a checkpoint, as the plugin's layout = auto finds them"""
    found = [("timm", p) for p in PREFIXES if p + "patch_embed.proj.weight" in sd]
    found += [("open_clip", "")] if "visual.conv1.weight" in sd else []
    if len(found) != 1:
        raise SystemExit(f"check_encoder: {len(found)} layouts fit ({found}); the plugin refuses it too")
    return found[0]


def run_plugin(test, golden):
    """(features, input gradient) relative errors of the plugin on a golden file"""
    env = dict(os.environ, CLPDD_VIT_GOLDEN=golden)
    r = subprocess.run([test, "--filter", "vit_golden/*", "--verbose"], env=env, capture_output=True, text=True)
    m = re.search(r"clpdd-golden: features (\S+) input_grad (\S+)", r.stdout + r.stderr)
    if not m:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"check_encoder: {test} gave no result (exit {r.returncode})")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--variant", choices=ex.VARIANTS + ex.EXTRA, help="required unless CHECKPOINT is a golden file")
    ap.add_argument("--reference", choices=["plain", "timm", "hub"],
                    help="how the reference resamples the position table (default: the variant's)")
    ap.add_argument("--keys", default="",
                    help="plugin keys to add ('k = v; ...'), e.g. 'pos_resample = plain' to measure what another "
                         "resampling costs against this reference")
    ap.add_argument("--n", type=int, default=2, help="images")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tiny", action="store_true", help="export_timm.py's tiny architecture (its fixtures)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--build", default=os.path.join(here, "..", "build"), help="clpdd build tree")
    a = ap.parse_args()
    test = os.path.join(a.build, "tests", "test_vit_variants")
    if a.checkpoint.endswith(".golden.safetensors"):
        ef, eg = run_plugin(test, os.path.abspath(a.checkpoint))
        print(f"{os.path.basename(a.checkpoint)}: features {ef:.2e}, input grad {eg:.2e}")
        return 0
    if not a.variant:
        ap.error("--variant is required for a checkpoint")

    sd = read_checkpoint(a.checkpoint)
    layout, prefix = detect(sd)
    name = "openclip" if layout == "open_clip" else a.variant
    if layout == "open_clip":
        state = {k: v for k, v in sd.items() if k.startswith("visual.")}
    else:
        state = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    model, _, sp, _ = ex.build(name, not a.tiny, a.seed, state=state, pos=a.reference)
    S = sp["S"]
    gen = torch.Generator().manual_seed(a.seed)
    images = torch.randn(a.n, 3, S, S, generator=gen)
    with torch.no_grad():
        d = model.eval()(images[:1]).shape[1]
    dfeat = torch.randn(a.n, d, generator=gen)
    print(f"reference: {name} ({layout} layout{', prefix ' + prefix if prefix else ''}), pos {sp['pos']}, "
          f"{a.n} images at {S} px, float64 ...", flush=True)
    feats, grad = ex.reference(model, images, dfeat)
    keys = sp["keys"] + (f"; pos_resample = {a.reference}" if a.reference and "pos_resample" not in sp["keys"] else "")
    keys += f"; weights = {os.path.abspath(a.checkpoint)}" + (f"; {a.keys}" if a.keys else "")
    with tempfile.TemporaryDirectory() as tmp:
        golden = os.path.join(tmp, "golden.safetensors")
        ex.write_safetensors(golden, [("fixture.images", images), ("fixture.dfeatures", dfeat),
                                      ("fixture.features", feats), ("fixture.input_grad", grad)],
                             {"clpdd.config": keys})
        ef, eg = run_plugin(test, golden)
    ref = {"openclip": "open_clip", "hub": "DINOv2 hub"}.get(name, "timm")
    ref = "DINOv2 hub" if sp["pos"] == "hub" else ref
    print(f"clpdd [{keys}]")
    print(f"{'variant':10} {'reference':12} {'features':>10} {'input grad':>11}")
    print(f"{a.variant:10} {ref:12} {ef:10.2e} {eg:11.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
