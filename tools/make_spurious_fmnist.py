#!/usr/bin/env python3
"""Writes a spurious-correlation set made from Fashion-MNIST, the test bed of worst-group accuracy
([data] group, docs/groups.md): a 2-pixel white border around the image that goes with the class in
the training split and against it in the test split.

    python3 tools/make_spurious_fmnist.py [--fmnist /usr/share/datasets/fashion-mnist]
                                          [--out data/spurious-fmnist] [--train-per-class 1000]

Classes 0-4 (T-shirt, trouser, pullover, dress, coat) carry the border on 95 % of their training
images and classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) on 5 %; in the test split it is
the other way round (5 % and 95 %). The k-th image of a class in a split (IDX order) is bordered
when `(class < 5) == train` differs from `k % 20 == 0`, so the counts are exact: per class,
95 % / 5 % of the images taken (the first --train-per-class training images of each class in IDX
order, and every test image, 1000 per class). Groups are (label, border): 20 groups, the minority
ones (the 5 %) being those a classifier that reads the border gets wrong.

Writes OUT/{train,test}/<class>/<k>.png (8-bit grey) and OUT/metadata.csv with the columns
img_filename, y, split, border (border = yes | no): a manifest for
    [data] dataset = manifest, root = OUT/metadata.csv, group = border
Standard library only.
"""
import argparse
import gzip
import os
import struct
import sys
import zlib


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        h, w = struct.unpack(">II", data[8:16])
        return [data[16 + i * h * w:16 + (i + 1) * h * w] for i in range(n)], h, w
    return list(data[8:8 + n]), 0, 0


def png_grey(path, px, w, h):
    raw = b"".join(b"\x00" + px[y * w:(y + 1) * w] for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def border(px, w, h):
    b = bytearray(px)
    for y in range(h):
        for x in range(w):
            if x < 2 or y < 2 or x >= w - 2 or y >= h - 2:
                b[y * w + x] = 255
    return bytes(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fmnist", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="data/spurious-fmnist")
    ap.add_argument("--train-per-class", type=int, default=1000)
    a = ap.parse_args()
    rows = ["img_filename,y,split,border"]
    counts = {}
    for split, idx, per_class in (("train", "train", a.train_per_class), ("test", "t10k", 10 ** 9)):
        imgs, h, w = read_idx(os.path.join(a.fmnist, f"{idx}-images-idx3-ubyte.gz"))
        labels, _, _ = read_idx(os.path.join(a.fmnist, f"{idx}-labels-idx1-ubyte.gz"))
        got = [0] * 10
        for px, c in zip(imgs, labels):
            if got[c] >= per_class:
                continue
            k = got[c]
            got[c] += 1
            b = (c < 5) == (split == "train")
            b = b != (k % 20 == 0)
            d = os.path.join(a.out, split, str(c))
            os.makedirs(d, exist_ok=True)
            png_grey(os.path.join(d, f"{k:05d}.png"), border(px, w, h) if b else px, w, h)
            rows.append(f"{split}/{c}/{k:05d}.png,{c},{split},{'yes' if b else 'no'}")
            counts[(split, c, b)] = counts.get((split, c, b), 0) + 1
    tmp = os.path.join(a.out, "metadata.csv.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(rows) + "\n")
    os.replace(tmp, os.path.join(a.out, "metadata.csv"))
    for split in ("train", "test"):
        print(split + ": " + ", ".join(f"{c}:{counts.get((split, c, True), 0)}/{counts.get((split, c, False), 0)}"
                                     for c in range(10)) + "  (class:bordered/plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
