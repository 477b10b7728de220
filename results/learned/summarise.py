"""summary.md of results/learned/run.sh: per run directory, the learned scalars' initial and final
values (metrics.json "learned"), the outer loss at the first and last step, the probe accuracy and
the accuracy of the closed-form ridge classifier fitted on the distilled features."""
import json
import os
import sys

root = sys.argv[1]
print("| run | lambda init -> final | tau init -> final | loss first -> last | probe accuracy % | ridge classifier % |")
print("|---|---|---|---|---|---|")
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "metrics.json")
    if not os.path.exists(path):
        continue
    m = json.load(open(path))
    learned = m.get("learned", {})

    def traj(key, fixed):
        v = learned.get(key)
        return f"{v['init']:.4g} -> {v['final']:.4g}" if v else f"{fixed} (fixed)"

    acc = m["accuracy"]
    loss = m.get("loss", {})
    print(f"| {name} | {traj('solver.lambda', 0.3)} | {traj('loss.temperature', 0.1)} | "
          f"{loss.get('first', float('nan')):.4f} -> {loss.get('last', float('nan')):.4f} | "
          f"{100 * acc['mean']:.2f} | {100 * (m.get('solver_diagnostic') or {}).get('accuracy', float('nan')):.2f} |")
