#!/bin/sh
# Keeps experiments/paper/ from rotting:
#   1. the 64 paper files are what tools/make_paper_configs.py writes (no hand edits that drift);
#   2. each one passes `clpdd check` with data.root pointed at a stand-in ImageNet folder made here:
#      train/ and val/ with one folder per wnid of experiments/paper/imagenet100.txt, each holding a
#      1x1 grey JPEG (the ImageNet-1K files take every folder of the stand-in as their classes), and
#      for the Waterbirds and Spawrious files a stand-in manifest of their columns.
# usage: tests/check_paper_configs.sh PATH/TO/clpdd [SOURCE_DIR]   (SOURCE_DIR: the repository root)
set -eu
clpdd=$1
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# the drift check needs python3, which CI does not promise: skipped (and said) without it
if command -v python3 >/dev/null 2>&1; then
    python3 "$src/tools/make_paper_configs.py" --check
else
    echo "python3 not found: the generator drift check is skipped"
fi

# a 1x1 grey baseline JPEG (libjpeg-turbo, quality 50)
jpeg=/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/wAALCAABAAEBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/ACv/2Q==
printf '%s' "$jpeg" | base64 -d >"$tmp/a.JPEG"
n=0
for w in $(grep -v '^#' "$src/experiments/paper/imagenet100.txt"); do
    for split in train val; do
        mkdir -p "$tmp/standin/$split/$w"
        cp "$tmp/a.JPEG" "$tmp/standin/$split/$w/a.JPEG"
    done
    n=$((n + 1))
done
[ "$n" -eq 100 ] || { echo "experiments/paper/imagenet100.txt: $n classes, expected 100" >&2; exit 1; }

cd "$src" # the files name classes = experiments/paper/imagenet100.txt, relative to the repository root
fail=0
count=0
for f in experiments/paper/imagenet100-*.ini experiments/paper/imagenet1k-*.ini; do
    count=$((count + 1))
    if ! "$clpdd" check "$f" --set data.root="$tmp/standin" >"$tmp/out" 2>&1; then
        echo "FAIL $f:" >&2
        tail -n 5 "$tmp/out" >&2
        fail=$((fail + 1))
    fi
done
# Waterbirds and Spawrious: a stand-in manifest of the same columns (4 rows per split, one per group)
printf 'img_id,img_filename,y,split,place,place_filename\n' >"$tmp/wb.csv"
printf 'img_filename,y,split,background\n' >"$tmp/sp.csv"
for i in 0 1 2 3; do
    printf '%d,a.JPEG,%d,0,%d,x\n%d,a.JPEG,%d,2,%d,x\n' $i $((i / 2)) $((i % 2)) $((i + 4)) $((i / 2)) $((i % 2)) >>"$tmp/wb.csv"
    printf 'a.JPEG,%d,train,desert\na.JPEG,%d,test,dirt\n' $i $i >>"$tmp/sp.csv"
done
for f in experiments/paper/waterbirds-*.ini experiments/paper/spawrious-*.ini; do
    count=$((count + 1))
    case $f in *waterbirds-*) csv=$tmp/wb.csv ;; *) csv=$tmp/sp.csv ;; esac
    if ! "$clpdd" check "$f" --set data.root="$csv" >"$tmp/out" 2>&1; then
        echo "FAIL $f:" >&2
        tail -n 5 "$tmp/out" >&2
        fail=$((fail + 1))
    fi
done
[ "$count" -eq 64 ] || { echo "experiments/paper: $count paper files, expected 64" >&2; exit 1; }
# the ablation sweep: every point of its grid validated
if ! "$clpdd" sweep experiments/paper/ablations-imagenet100.ini --list --set data.root="$tmp/standin" >"$tmp/out" 2>&1; then
    echo "FAIL experiments/paper/ablations-imagenet100.ini:" >&2
    tail -n 5 "$tmp/out" >&2
    fail=$((fail + 1))
fi
echo "$((count - fail)) of $count paper files pass clpdd check"
[ "$fail" -eq 0 ]
