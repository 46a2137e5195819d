"""Advantage curves of the estimators for one problem with N rollouts.

For every N_pos = 0..N, the advantage of a correct (A_pos) and a wrong (A_neg)
response and eta = N_pos |A_pos| + N_neg |A_neg| (PAPERS.md section 2). Writes
curves.csv, curves.png and eta_argmax.csv into --out.

    python experiments/advantage_curves/run.py --out=/tmp/curves [--config=...]
"""

import csv
import os
import sys

from absl import app
from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from rlvr_jax import advantages  # noqa: E402
from rlvr_jax import metrics  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "../../configs/advantage_curves.py"),
    "advantage_curves config", lock_config=True)
_OUT = flags.DEFINE_string("out", None, "output directory", required=True)

# (label, advantage block): the paper's figure set, and two related estimators.
PAPER_SET = [
    ("grpo (Pass@1)", {"name": "grpo"}),
    ("Pass@4 analytical", {"name": "passk_analytical", "k": 4}),
    ("Pass@8 analytical", {"name": "passk_analytical", "k": 8}),
    ("combination k=4", {"name": "passk_combination", "k": 4}),
    ("exceeding k=4", {"name": "passk_exceeding", "k": 4}),
    ("Pass@4 w/o easy (>0.6)", {"name": "passk_analytical", "k": 4, "easy_threshold": 0.6}),
    ("bbg K=256", {"name": "bbg"}),
    ("pkpo k=4 (loo-1)", {"name": "pkpo", "k": 4}),
]


def curves(n: int, blocks):
  """{label: (a_pos [n+1], a_neg [n+1], eta [n+1])} with row c holding N_pos = c."""
  r = (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(np.float32)
  out = {}
  for label, block in blocks:
    adv, _ = advantages.from_config(block)(r, None)
    adv = np.asarray(adv, np.float64)
    a_pos = np.where(np.arange(n + 1) > 0, adv[:, 0], np.nan)   # undefined without a correct
    a_neg = np.where(np.arange(n + 1) < n, adv[:, -1], np.nan)  # ... or without a wrong one
    out[label] = (a_pos, a_neg, np.asarray(metrics.eta(adv), np.float64))
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  n = config.n
  blocks = PAPER_SET + [(f"config: {config.advantage.name}", config.advantage.to_dict())]
  data = curves(n, blocks)
  os.makedirs(_OUT.value, exist_ok=True)
  with open(os.path.join(_OUT.value, "curves.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["estimator", "n", "n_pos", "a_pos", "a_neg", "eta"])
    for label, (a_pos, a_neg, eta) in data.items():
      for c in range(n + 1):
        w.writerow([label, n, c, f"{a_pos[c]:.6f}", f"{a_neg[c]:.6f}", f"{eta[c]:.6f}"])
  with open(os.path.join(_OUT.value, "eta_argmax.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["estimator", "argmax_n_pos", "max_eta"])
    for label, (_, _, eta) in data.items():
      w.writerow([label, int(np.argmax(eta)), f"{eta.max():.4f}"])
      print(f"{label:28s} argmax eta at N_pos={int(np.argmax(eta)):2d}  (eta={eta.max():.3f})")
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
  for label, series in data.items():
    for ax, y in zip(axes, series):
      ax.plot(np.arange(n + 1), y, marker=".", label=label)
  for ax, title in zip(axes, ("A_pos", "A_neg", "eta = sum |A|")):
    ax.set_title(f"{title} (N={n})")
    ax.set_xlabel("N_pos")
    ax.grid(alpha=0.3)
  axes[2].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, "curves.png"), dpi=110)
  print(f"wrote {_OUT.value}/curves.csv, curves.png, eta_argmax.csv", file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
