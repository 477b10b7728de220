#!/usr/bin/env python3
"""Writes the manifest of one Spawrious challenge (Lynch et al., 2023, arXiv:2303.05470) from its
extracted folder, for [data] dataset = manifest with group = background (docs/groups.md):

    python3 tools/spawrious_manifest.py --root /data/spawrious224 --challenge o2o_easy \\
        --out /data/spawrious224/o2o_easy.csv

The folder is the dataset as its tarballs extract: ROOT/<location 0|1>/<background>/<breed>/*.png
(ROOT = spawrious224/). Classes, in the benchmark's order: 0 bulldog, 1 corgi, 2 dachshund,
3 labrador. Each challenge is the benchmark's table (spawrious.torch `_get_combinations`,
`build_combination`; total = 3168 images per (breed, location folder)):
  one-to-one (o2o_*)  train: breed b on its spurious background, the first int(0.97 * 3168) images
                      of location folder 0 and int(0.87 * 3168) of folder 1, plus every breed on the
                      filler background for the rest (3168 minus those); test: breed b on its test
                      background, every image of both folders
  many-to-many (m2m_*) train: bulldog and dachshund each on two backgrounds (folder 0 one, folder 1
                      the other, 3168 each), labrador and corgi on two others; test: the test
                      backgrounds swapped, every image of both folders
"The first N images" = the first N file names in sorted (strcmp) order. That is how we read the
benchmark's loader; check the counts it prints against the benchmark's own before quoting numbers.

Columns: img_filename (relative to ROOT), y (class index), split (train | test), background.
Standard library only.
"""
import argparse
import os
import sys

CLASSES = ["bulldog", "corgi", "dachshund", "labrador"]
TOTAL = 3168
# challenge: (train backgrounds of bulldog, dachshund, labrador, corgi; test backgrounds; filler)
CHALLENGES = {
    "o2o_easy": (["desert", "jungle", "dirt", "snow"], ["dirt", "snow", "desert", "jungle"], "beach"),
    "o2o_medium": (["mountain", "beach", "dirt", "jungle"], ["jungle", "dirt", "beach", "snow"], "desert"),
    "o2o_hard": (["jungle", "mountain", "snow", "desert"], ["mountain", "snow", "desert", "jungle"], "beach"),
    "m2m_easy": (["desert", "mountain", "dirt", "jungle"], ["dirt", "jungle", "mountain", "desert"], None),
    "m2m_medium": (["beach", "snow", "mountain", "desert"], ["desert", "mountain", "beach", "snow"], None),
    "m2m_hard": (["dirt", "jungle", "snow", "beach"], ["snow", "beach", "dirt", "jungle"], None),
}
ORDER = ["bulldog", "dachshund", "labrador", "corgi"]  # the order of the table's backgrounds


def combinations(challenge):
    g, t, filler = CHALLENGES[challenge]
    if challenge.startswith("m2m"):
        pair = {"bulldog": (0, 1), "dachshund": (1, 0), "labrador": (2, 3), "corgi": (3, 2)}
        train = {b: [(g[i], TOTAL), (g[j], TOTAL)] for b, (i, j) in pair.items()}
        test = {b: [t[i], t[j]] for b, (i, j) in pair.items()}
        return train, test, None
    c0, c1 = int(0.97 * TOTAL), int(0.87 * TOTAL)
    train = {b: [(g[k], c0), (g[k], c1)] for k, b in enumerate(ORDER)}
    test = {b: [t[k], t[k]] for k, b in enumerate(ORDER)}
    return train, test, [(filler, TOTAL - c0), (filler, TOTAL - c1)]


def images(root, folder, background, breed, limit=None):
    d = os.path.join(root, str(folder), background, breed)
    if not os.path.isdir(d):
        sys.exit(f"spawrious_manifest: no folder {d} (is --root the extracted spawrious224/?)")
    names = sorted(n for n in os.listdir(d) if n.lower().endswith((".png", ".jpg", ".jpeg")))
    if limit is not None and len(names) < limit:
        sys.exit(f"spawrious_manifest: {d} holds {len(names)} images, the challenge takes {limit}")
    return [os.path.join(str(folder), background, breed, n) for n in names[:limit]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="the extracted spawrious224/ folder")
    ap.add_argument("--challenge", required=True, choices=sorted(CHALLENGES))
    ap.add_argument("--out", required=True, help="the manifest CSV to write")
    a = ap.parse_args()
    train, test, filler = combinations(a.challenge)
    rows, counts = [], {}
    for breed in CLASSES:
        y = CLASSES.index(breed)
        parts = [(folder, bg, n) for folder, (bg, n) in enumerate(train[breed])]
        parts += [(folder, bg, n) for folder, (bg, n) in enumerate(filler or [])]
        for folder, bg, n in parts:
            for p in images(a.root, folder, bg, breed, n):
                rows.append((p, y, "train", bg))
        for folder, bg in enumerate(test[breed]):
            for p in images(a.root, folder, bg, breed):
                rows.append((p, y, "test", bg))
    for p, y, split, bg in rows:
        counts[(split, CLASSES[y], bg)] = counts.get((split, CLASSES[y], bg), 0) + 1
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("img_filename,y,split,background\n")
        f.writelines(f"{p},{y},{s},{bg}\n" for p, y, s, bg in rows)
    os.replace(tmp, a.out)
    for (split, breed, bg), n in sorted(counts.items()):
        print(f"{split:5s} {breed:9s} {bg:8s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
