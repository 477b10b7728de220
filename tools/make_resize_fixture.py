#!/usr/bin/env python3
"""Reference fixture for clpdd's image decoding (core/io/image.c) and preprocessing (core/data/imgproc.c).

Writes tests/fixtures/image_pillow.safetensors with, for each case k (see CASES),
  case{k}_file  (len,) u8        the encoded file (PNG or JPEG), made here with Pillow
  case{k}_rgb   (H, W, 3) u8     torchvision's loader: Image.open(f).convert("RGB")  (absent for big cases)
  case{k}_l     (H, W) u8        Image.open(f).convert("L")                          (absent for big cases)
  case{k}_cfg   (2,) i32         resize, crop (0 = not applied)
  case{k}_out   (OH, OW, 3) u8   transforms.Resize(resize) then transforms.CenterCrop(crop) on the RGB image
                                 (torchvision on PIL: Image.resize(..., BILINEAR), antialiased)
and "__metadata__" {"cases": K, "case{k}": description, "pillow": version, "torchvision": version}.

    /usr/bin/python3 tools/make_resize_fixture.py tests/fixtures/image_pillow.safetensors

Needs Debian's python3-pil, python3-numpy and python3-torchvision. Never needed by the build or the tests.
"""
import io
import json
import struct
import sys

import numpy as np
import PIL
from PIL import Image
import torchvision
from torchvision import transforms as T


def save_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype(np.uint8): "U8", np.dtype(np.int32): "I32"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


rng = np.random.default_rng(20240610)


def smooth(h, w, c, cells=6, noise=12):
    """a photo-like image: a coarse random field upsampled, plus noise (so JPEG has structure)"""
    coarse = rng.integers(0, 256, size=(cells, cells, c)).astype(np.float64)
    ys = np.linspace(0, cells - 1, h)
    xs = np.linspace(0, cells - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, cells - 2)
    x0 = np.floor(xs).astype(int).clip(0, cells - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    a = coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1][:, x0] * fy * (1 - fx)
    a += coarse[y0][:, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1][:, x0 + 1] * fy * fx
    a += rng.normal(0, noise, size=a.shape)
    return a.clip(0, 255).astype(np.uint8)


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def cases():
    """(description, encoded bytes, resize, crop, keep_rgb)"""
    out = []
    out.append(("random RGB PNG 37x23, Resize(16) CenterCrop(12): downscale",
                encode(Image.fromarray(rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)), "PNG"), 16, 12, True))
    out.append(("grey PNG 20x31, Resize(48) CenterCrop(40): upscale",
                encode(Image.fromarray(smooth(31, 20, 1)[:, :, 0], "L"), "PNG"), 48, 40, True))
    out.append(("RGBA PNG 50x40 (random alpha), Resize(17)",
                encode(Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA"), "PNG"), 17, 0, True))
    p = Image.fromarray(smooth(45, 33, 3)).quantize(colors=37)
    out.append(("palette PNG 33x45 with tRNS, Resize(24) CenterCrop(24)",
                encode(p, "PNG", transparency=3), 24, 24, True))
    out.append(("grey+alpha PNG 28x19, CenterCrop(15) only (odd margins: round half to even)",
                encode(Image.fromarray(rng.integers(0, 256, (19, 28, 2), dtype=np.uint8), "LA"), "PNG"), 0, 15, True))
    a16 = rng.integers(0, 65536, (17, 21, 3), dtype=np.uint16)
    raw16 = encode_png16(a16)
    out.append(("16-bit RGB PNG 21x17, Resize(13)", raw16, 13, 0, True))
    g16 = rng.integers(0, 700, (18, 25), dtype=np.uint16)  # PIL mode I: convert clips to 255
    out.append(("16-bit grey PNG 25x18 (values 0..699), Resize(11)", encode_png16(g16[:, :, None]), 11, 0, True))
    out.append(("1-bit PNG 19x13, Resize(9)",
                encode(Image.fromarray(rng.integers(0, 2, (13, 19), dtype=np.uint8) * 255, "L").convert("1"), "PNG"), 9, 0, True))
    out.append(("4-bit palette PNG 23x16, Resize(30) CenterCrop(29)",
                encode(Image.fromarray(smooth(16, 23, 3)).quantize(colors=16), "PNG", bits=4), 30, 29, True))
    out.append(("JPEG 300x225 q90 4:2:0, Resize(32) CenterCrop(28): factor 7 downscale",
                encode(Image.fromarray(smooth(225, 300, 3, cells=12)), "JPEG", quality=90), 32, 28, False))
    out.append(("grey JPEG 64x48, Resize(40) CenterCrop(36)",
                encode(Image.fromarray(smooth(48, 64, 1)[:, :, 0], "L"), "JPEG", quality=85), 40, 36, True))
    cm = Image.fromarray(smooth(30, 40, 4), "CMYK")
    out.append(("CMYK JPEG 40x30 (Adobe, as Pillow writes it), Resize(24) CenterCrop(20)",
                encode(cm, "JPEG", quality=92), 24, 20, True))
    out.append(("RGB PNG 10x14, CenterCrop(16): larger than the image, zero padding",
                encode(Image.fromarray(smooth(14, 10, 3)), "PNG"), 0, 16, True))
    out.append(("JPEG 500x375 q75 (ImageNet-like), Resize(256) CenterCrop(224)",
                encode(Image.fromarray(smooth(375, 500, 3, cells=24, noise=20)), "JPEG", quality=75), 256, 224, False))
    return out


def encode_png16(a):
    """16-bit PNG (grey when a has 1 channel, RGB when 3) written with zlib by hand: Pillow
    cannot write 16-bit RGB"""
    import zlib
    h, w, c = a.shape
    ctype = {1: 0, 3: 2}[c]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/image_pillow.safetensors"
    tensors, meta = {}, {"pillow": PIL.__version__, "torchvision": torchvision.__version__}
    cs = cases()
    for k, (desc, data, resize, crop, keep) in enumerate(cs):
        img = Image.open(io.BytesIO(data))
        mode = img.mode
        rgb = img.convert("RGB")
        lum = Image.open(io.BytesIO(data)).convert("L")
        t = rgb
        if resize:
            t = T.Resize(resize)(t)
        if crop:
            t = T.CenterCrop(crop)(t)
        tensors[f"case{k}_file"] = np.frombuffer(data, dtype=np.uint8)
        if keep:
            tensors[f"case{k}_rgb"] = np.asarray(rgb)
            tensors[f"case{k}_l"] = np.asarray(lum)
        tensors[f"case{k}_cfg"] = np.array([resize, crop], dtype=np.int32)
        tensors[f"case{k}_out"] = np.asarray(t)
        meta[f"case{k}"] = f"{desc} [PIL mode {mode}]"
        print(f"case{k}: {meta[f'case{k}']}: {len(data)} bytes, out {np.asarray(t).shape}")
    meta["cases"] = str(len(cs))
    save_safetensors(path, tensors, meta)


if __name__ == "__main__":
    main()
