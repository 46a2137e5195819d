"""Turns a workdir's `metrics.jsonl` into PNG curves under `<workdir>/plots/`.

    python -m rlvr_jax.plot --workdir=/tmp/w

One PNG per phase ('train', 'eval', 'warmstart'): a grid of every scalar over
steps (the pass@k intervals, `pass@k_lo` / `pass@k_hi`, only on the curves). The
evaluations give `passk_curve.png`: pass@k against k (log scale) averaged over the
eval sets, the base policy's curve (`<workdir>/base_eval.json`, else the eval at
step 0) dashed in black with its 95 % band, every later eval a line coloured by
step and the last one with its band; on the right, each eval set's last curve
against its base curve.
"""

import json
import math
import os
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from rlvr_jax.rl import logger  # noqa: E402

_PASSK = re.compile(r"^(?:(?P<prefix>.*)/)?pass@(?P<k>\d+)(?P<end>_lo|_hi)?$")


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
    keys = sorted({k for r in rows for k in r if k not in ("step", "phase")
                   and not k.endswith(("_lo", "_hi"))})
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
  base = base_record(workdir, evals)
  if evals or base:
    written.append(_passk_curve(evals, base, os.path.join(out_dir, "passk_curve.png")))
  return written


def base_record(workdir: str, evals: Sequence[dict]) -> dict | None:
  """The base policy's eval: `<workdir>/base_eval.json` (rl.stats.keep_base_eval), else the
  eval at step 0, else None."""
  path = os.path.join(workdir, "base_eval.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  at_zero = [r for r in evals if r["step"] == 0]
  return at_zero[-1] if at_zero else None


def curves(record: dict) -> dict[str, dict[int, dict[str, float]]]:
  """{set ('all' for the mean over sets): {k: {'value', 'lo', 'hi' (those it has)}}}."""
  out: dict[str, dict[int, dict[str, float]]] = {}
  for key, v in record.items():
    m = _PASSK.match(key)
    if m:
      part = {"_lo": "lo", "_hi": "hi"}.get(m.group("end") or "", "value")
      out.setdefault(m.group("prefix") or "all", {}).setdefault(int(m.group("k")), {})[part] = v
  return out


def _draw(ax, curve: dict[int, dict[str, float]], band: bool, **style) -> None:
  ks = sorted(k for k in curve if "value" in curve[k])
  ax.plot(ks, [curve[k]["value"] for k in ks], **style)
  if band and ks and all("lo" in curve[k] and "hi" in curve[k] for k in ks):
    ax.fill_between(ks, [curve[k]["lo"] for k in ks], [curve[k]["hi"] for k in ks],
                    color=style.get("color"), alpha=0.15, linewidth=0)


def _passk_curve(evals: Sequence[dict], base: dict | None, name: str) -> str:
  later = [r for r in evals if base is None or r["step"] > 0]
  fig, (ax_all, ax_sets) = plt.subplots(1, 2, figsize=(10, 3.8))
  if base is not None:
    _draw(ax_all, curves(base).get("all", {}), True, color="black", linestyle="--",
          marker="o", markersize=3, label="base (step 0)")
  steps = sorted({r["step"] for r in later})
  cmap = plt.get_cmap("viridis")
  for r in later:
    frac = steps.index(r["step"]) / max(len(steps) - 1, 1)
    _draw(ax_all, curves(r).get("all", {}), r is later[-1], color=cmap(frac), marker=".",
          label=f"step {r['step']}")
  last = later[-1] if later else base
  base_sets = curves(base) if base is not None else {}
  colors = plt.get_cmap("tab10")
  for i, (label, curve) in enumerate(sorted(curves(last).items())):
    if label == "all":
      continue
    _draw(ax_sets, curve, True, color=colors(i % 10), marker=".", label=f"{label} @{last['step']}")
    if label in base_sets and last is not base:
      _draw(ax_sets, base_sets[label], False, color=colors(i % 10), linestyle="--")
  for ax, title in ((ax_all, "mean over eval sets (band: 95% bootstrap)"),
                    (ax_sets, "each eval set, last eval (dashed: base)")):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
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
