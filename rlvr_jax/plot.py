"""Turns a workdir's `metrics.jsonl` into PNG curves under `<workdir>/plots/`.

    python -m rlvr_jax.plot --workdir=/tmp/w

One PNG per phase ('train', 'eval', 'warmstart'): a grid of every scalar over
steps; the last eval record also gives a pass@k curve (pass@k against k).
"""

import math
import os
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from rlvr_jax.rl import logger  # noqa: E402

_PASSK = re.compile(r"^(?:(?P<prefix>.*)/)?pass@(?P<k>\d+)$")


def plot_workdir(workdir: str) -> list[str]:
  """Writes the PNGs and returns their paths."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    raise ValueError(f"no metrics.jsonl in workdir {workdir!r}")
  records = logger.read_jsonl(path)
  out_dir = os.path.join(workdir, "plots")
  os.makedirs(out_dir, exist_ok=True)
  written = []
  for phase in sorted({r["phase"] for r in records}):
    rows = [r for r in records if r["phase"] == phase]
    keys = sorted({k for r in rows for k in r if k not in ("step", "phase")})
    if not keys:
      continue
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
      pts = [(r["step"], r[key]) for r in rows if key in r]
      ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
      ax.set_title(key, fontsize=8)
      ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
      ax.axis("off")
    fig.tight_layout()
    name = os.path.join(out_dir, f"{phase}.png")
    fig.savefig(name, dpi=80)
    plt.close(fig)
    written.append(name)
  evals = [r for r in records if r["phase"] == "eval"]
  if evals:
    written.append(_passk_curve(evals[-1], os.path.join(out_dir, "passk_curve.png")))
  return written


def _passk_curve(record: dict, name: str) -> str:
  curves: dict[str, list[tuple[int, float]]] = {}
  for key, v in record.items():
    m = _PASSK.match(key)
    if m:
      curves.setdefault(m.group("prefix") or "all", []).append((int(m.group("k")), v))
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for label, pts in sorted(curves.items()):
    pts.sort()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k")
  ax.set_title(f"eval at step {record['step']}")
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(name, dpi=80)
  plt.close(fig)
  return name


def main(argv: Sequence[str]) -> None:
  del argv
  for p in plot_workdir(flags.FLAGS.workdir):
    print(p)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("workdir", None, "A training workdir with metrics.jsonl.", required=True)
  app.run(main)
