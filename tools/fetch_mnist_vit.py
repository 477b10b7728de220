#!/usr/bin/env python3
"""Download the MNIST "lucid" ViT used by the quickstart and convert it to safetensors.

The original is vit_mnist_gpu.pt of github.com/researchase/vit-mnist-explorations (MIT licence,
commit 325a984b). The tensors are written unchanged (same names, float32), which is exactly what
clpdd's `vit` backbone with `variant = lucid` reads.

    python3 tools/fetch_mnist_vit.py --out models/mnist-vit.safetensors
    export CLPDD_MODEL_PATH=$PWD/models

Needs internet, PyTorch and the `safetensors` package. Never needed by the build or the tests.
"""
import argparse
import os
import sys
import tempfile
import urllib.request

URL = ("https://github.com/researchase/vit-mnist-explorations/raw/"
       "325a984b/vit_mnist_gpu.pt")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/mnist-vit.safetensors")
    ap.add_argument("--url", default=URL)
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "vit_mnist_gpu.pt")
        print(f"downloading {args.url}", file=sys.stderr)
        urllib.request.urlretrieve(args.url, src)
        obj = torch.load(src, map_location="cpu", weights_only=False)
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, dict):
        sys.exit(f"unexpected checkpoint content: {type(obj)}")
    tensors = {k: v.detach().float().contiguous() for k, v in state.items() if torch.is_tensor(v)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp_out = args.out + ".tmp"
    save_file(tensors, tmp_out, metadata={"source": "researchase/vit-mnist-explorations vit_mnist_gpu.pt",
                                          "license": "MIT"})
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out} ({len(tensors)} tensors)", file=sys.stderr)


if __name__ == "__main__":
    main()
