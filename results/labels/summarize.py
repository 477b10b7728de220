"""summary.md of results/labels/run.sh: per run directory (ipc<k>-onehot, ipc<k>-lr<x>) the probe's
accuracy with the soft labels and with argmax labels, the ridge classifier's, and how far the
learned label matrix moved (mean probability of each image's class; rows whose argmax is it)."""
import json
import os
import struct
import sys


def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        s, e = t["data_offsets"]
        fmt = {"F32": "f", "I32": "i"}[t["dtype"]]
        out[name] = (t["shape"], struct.unpack("<%d%s" % ((e - s) // 4, fmt), raw[8 + n + s:8 + n + e]))
    return out


def row(d):
    m = json.load(open(os.path.join(d, "metrics.json")))
    name = os.path.basename(d.rstrip("/"))
    ipc, what = name.split("-", 1)
    soft = 100 * m["accuracy"]["mean"]
    hard = m.get("accuracy_hard_labels")
    ridge = 100 * m["solver_diagnostic"]["accuracy"]
    t = tensors(os.path.join(d, "distilled.safetensors"))
    if "label_matrix" not in t:
        return (int(ipc[3:]), -1, "| %s | one-hot | %.2f | - | %.2f | - | - |" % (ipc[3:], soft, ridge))
    (mm, C), T = t["label_matrix"]
    y = t["labels"][1]
    own = sum(T[i * C + y[i]] for i in range(mm)) / mm
    kept = sum(max(range(C), key=lambda c: T[i * C + c]) == y[i] for i in range(mm))
    lr = float(what[2:])
    return (int(ipc[3:]), lr, "| %s | learn, labels_lr %g | %.2f | %.2f | %.2f | %.3f | %d / %d |"
            % (ipc[3:], lr, soft, 100 * hard["mean"], ridge, own, kept, mm))


runs = sorted(row(os.path.join(sys.argv[1], d)) for d in os.listdir(sys.argv[1]))
print("# Learned labels on the quickstart\n")
print("`bash results/labels/run.sh` (experiments/quickstart.ini, 300 steps, CPU, seed 0; probe protocol: one")
print("deterministic fit per set). Soft: the probe fitted on the label matrix; hard: on its argmax labels;")
print("p(class): the mean learned probability of each image's own class (it starts at label_init = 0.9).\n")
print("| IPC | labels | probe % (soft) | probe % (hard labels) | ridge classifier % | p(class) | argmax = class |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in runs:
    print(r[2])
