#!/usr/bin/env python3
"""Writes experiments/paper/<dataset>-<method>-<backbone>.ini, the paper's 64 settings
(ImageNet-100, ImageNet-1K, Waterbirds and Spawrious x CLP-DD, ridge + MSE, LGM, LGM + DSA x CLIP,
DINOv2, EVA-02, MoCo v3), from the one table below, so the files cannot drift apart.

    /usr/bin/python3 tools/make_paper_configs.py           # (re)write the files
    /usr/bin/python3 tools/make_paper_configs.py --check   # exit 1 if a file differs from the table

Every value and its source (LGM's code, file:line at commit 1d84ffd8) is in
experiments/paper/README.md; values marked "ours" there are choices of this repository.
Standard library only.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "experiments", "paper")

IMAGENET_MEAN = "0.485, 0.456, 0.406"
IMAGENET_STD = "0.229, 0.224, 0.225"

# real_batch = LGM's ipc * augs_per_batch * classes (linear_gm.py:46-48), kept for every method
DATASETS = {
    "imagenet100": dict(title="ImageNet-100", classes="experiments/paper/imagenet100.txt", augs=10,
                        real_batch=1 * 10 * 100, val_size=5000),
    "imagenet1k": dict(title="ImageNet-1K", classes=None, augs=3, real_batch=1 * 3 * 1000, val_size=10000),
    # spurious-correlation benchmarks: manifests, groups = (label, background), worst-group accuracy
    "waterbirds": dict(title="Waterbirds", classes=None, augs=10, real_batch=1 * 10 * 2, val_size=500,
                       manifest="/path/to/waterbirds/metadata.csv", splits=("0", "2"), group="place",
                       needs="WILDS' waterbird_complete95_forest2water2/ (metadata.csv beside the images)"),
    "spawrious": dict(title="Spawrious O2O-Easy", classes=None, augs=10, real_batch=1 * 10 * 4, val_size=1000,
                      manifest="/path/to/spawrious224/o2o_easy.csv", splits=("train", "test"), group="background",
                      needs="the manifest of tools/spawrious_manifest.py --challenge o2o_easy in spawrious224/"),
}

BACKBONES = {
    "clip": dict(title="CLIP ViT-B/16 (OpenAI)", variant="clip",
                 weights="vit_base_patch16_clip_quickgelu_224.safetensors", extra=[]),
    "dinov2": dict(title="DINOv2 ViT-B/14, no registers", variant="dinov2",
                   weights="vit_base_patch14_dinov2.safetensors", extra=[("registers", "0")]),
    "eva02": dict(title="EVA-02 ViT-B/14 (MIM, IN-22K)", variant="eva02",
                  weights="eva02_base_patch14_224.safetensors", extra=[]),
    "mocov3": dict(title="MoCo v3 ViT-B/16", variant="mocov3", weights="mocov3_vit_base.safetensors", extra=[]),
}

METHODS = {
    "clpdd": dict(title="CLP-DD (closed-form ridge + temperature-scaled CE)",
                  solver=[("name", "ridge"), ("lambda", "0.3"), ("lambda_mode", "relative")],
                  loss=[("name", "ce"), ("temperature", "0.1")], dsa=False, baselines=True),
    "ridge-mse": dict(title="ridge + MSE (KIP-style centred one-hot targets)",
                      solver=[("name", "ridge"), ("lambda", "0.3"), ("lambda_mode", "relative")],
                      loss=[("name", "mse"), ("center", "true")], dsa=False, baselines=False),
    "lgm": dict(title="LGM's objective on cached features, no augmentation",
                solver=[("name", "lgm"), ("head_std", "0.01"), ("heads", "1"), ("bias", "true")],
                loss=None, dsa=False, baselines=False),
    "lgm-dsa": dict(title="LGM as published: flip + random-resized-crop + noise on synthetic and real images",
                    solver=[("name", "lgm"), ("head_std", "0.01"), ("heads", "1"), ("bias", "true")],
                    loss=None, dsa=True, baselines=False),
}


def section(name, pairs):
    return "[" + name + "]\n" + "".join(f"{k} = {v}\n" for k, v in pairs)


def render(ds_key, method_key, bb_key):
    ds, m, bb = DATASETS[ds_key], METHODS[method_key], BACKBONES[bb_key]
    name = f"{ds_key}-{method_key}-{bb_key}"
    manifest = ds.get("manifest")
    root = manifest or "/path/to/imagenet"
    head = (f"; {ds['title']}, {m['title']}, {bb['title']}: the paper's setting with LGM's hyper-parameters\n"
            f"; (sources: experiments/paper/README.md). Written by tools/make_paper_configs.py: edit it there.\n"
            f";   clpdd run experiments/paper/{name}.ini --set data.root={root}\n"
            f"; Needs {bb['weights']} (python3 tools/export_timm.py --pretrained --variant {bb['variant']}"
            f" --out models) and {ds['needs'] if manifest else 'root/train, root/val with one folder per wnid'}.\n")
    data = [("dataset", "manifest" if manifest else "imagefolder"), ("root", root)]
    if ds["classes"]:
        data.append(("classes", ds["classes"]))
    train_split, test_split = ds.get("splits", ("train", "val"))
    if manifest:
        data.append(("group", ds["group"]))
    data += [("train_split", train_split), ("test_split", test_split), ("resize", "256"), ("crop", "256"),
             ("test_resize", "256"), ("test_crop", "224"), ("adapt", "crop"), ("workers", "0"),
             ("on_bad_image", "error"), ("val_size", str(ds["val_size"]))]
    backbone = [("name", "vit"), ("variant", bb["variant"]), ("weights", bb["weights"])] + bb["extra"] + [
        ("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)]
    distill = [("ipc", "1"), ("steps", "5000"), ("lr", "0.002"), ("real_batch", str(ds["real_batch"])),
               ("init", "noise"), ("param", "pyramid"), ("pyramid_every", "200"), ("pyramid_init_std", "1"),
               ("decorrelate", "true")]
    if m["dsa"]:
        distill += [("augment", "dsa"), ("augs_per_batch", str(ds["augs"])), ("dsa_flip_p", "0.5"),
                    ("dsa_scale_min", "0.08"), ("dsa_noise_p", "0.5"), ("dsa_noise_mean", "0.5"),
                    ("dsa_noise_std", "0.2")]
    else:
        distill.append(("augment", "none"))
    distill.append(("chunk", "100"))
    ev = [("protocol", "lgm"), ("seeds", "5"), ("epochs", "1000"), ("batch", "100"), ("lr", "0.001")]
    if m["baselines"]:
        ev.append(("full_epochs", "100"))
    else:  # random / centroid / full-data baselines: once per dataset and backbone, in the clpdd file
        ev += [("baseline_random", "false"), ("baseline_centroids", "false"), ("baseline_full", "false")]
    parts = [head, section("experiment", [("name", name), ("seed", "0"), ("device", "cuda")]),
             section("data", data), section("backbone", backbone), section("solver", m["solver"])]
    if m["loss"]:
        parts.append(section("loss", m["loss"]))
    parts.append(section("distill", distill))
    parts.append("; protocol = probe (converged L-BFGS probe, L2 chosen on val_size held-out images) is the\n"
                 "; alternative; lgm is LGM's own Adam probe, faithful at m >= 100\n" + section("eval", ev))
    return name, "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    ap.add_argument("--out", default=OUT, help="output directory (default: experiments/paper)")
    a = ap.parse_args()
    bad = 0
    for ds in DATASETS:
        for method in METHODS:
            for bb in BACKBONES:
                name, text = render(ds, method, bb)
                path = os.path.join(a.out, name + ".ini")
                if a.check:
                    try:
                        with open(path, encoding="utf-8") as f:
                            same = f.read() == text
                    except OSError:
                        same = False
                    if not same:
                        print(f"{path}: differs from tools/make_paper_configs.py (rerun it)", file=sys.stderr)
                        bad += 1
                else:
                    tmp = path + ".tmp"
                    with open(tmp, "w", encoding="utf-8") as f:
                        f.write(text)
                    os.replace(tmp, path)
    total = len(DATASETS) * len(METHODS) * len(BACKBONES)
    if a.check:
        print(f"{total - bad} of {total} files match the table")
    else:
        print(f"wrote {total} files to {os.path.normpath(a.out)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
