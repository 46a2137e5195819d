"""Pass@k training vs Pass@1 training on the maze task with the tiny character policy.

    python experiments/maze_tiny/run.py --outdir=/tmp/maze_exp            # the full experiment
    python experiments/maze_tiny/run.py --outdir=/tmp/maze_exp --steps=12 --batch_prompts=8 \
        --warmstart_dir=<params>   # the reduced run of README.md

One supervised warm start (configs/maze_tiny.py), then from that same checkpoint
one RL run per (estimator, seed), all with the same number of steps; pass@1..8 on
each test maze size is evaluated once for the warm start (step 0 of every curve) and
in every run each `--eval_every` steps and at the end. Writes under --outdir:
`results.csv` (every eval point), `summary.md` (final-step table, mean +- sample std over
seeds with the 95% t interval of the mean over sizes, and each estimator against grpo by
Welch's t-test), `curves.png`, and one workdir per run (`runs/estimator=E,seed=S`);
`--summarize_only` rewrites summary.md and curves.png from results.csv.
The runs go through `rlvr_jax.sweep` (one process a run, a progress bar with ETA): a
finished run is skipped on re-launch; a cut-off one resumes.
"""

import argparse
import csv
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

ESTIMATORS = ("grpo", "passk_full", "passk_bootstrap", "passk_analytical")
KS = (1, 2, 4, 8)


def maze_config(arg: str):
  """configs/maze_tiny.py's get_config(arg) (configs/ is not a package)."""
  spec = importlib.util.spec_from_file_location("maze_tiny_config",
                                                os.path.join(ROOT, "configs", "maze_tiny.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


CONFIG = os.path.join(ROOT, "configs", "maze_tiny.py")


def sweep_runs(args: argparse.Namespace, warmstart_dir: str) -> list:
  """The (estimator, seed) grid as `rlvr_jax.sweep` runs: every run loads the shared warm
  start, trains `--steps` and evaluates each `--eval_every` steps and at the end (step 0 is
  the shared warm-start evaluation, not repeated per run)."""
  from rlvr_jax import sweep
  fixed = {"k": args.k, "steps": args.steps, "batch_prompts": args.batch_prompts,
           "warmstart_dir": warmstart_dir, "warmstart_steps": 0, "eval.every": args.eval_every,
           "eval.at_start": False, "eval.at_end": True, "eval.num_samples": 8,
           "checkpoint.every": max(args.steps, 1), "checkpoint.keep": 1}
  if args.smoke:
    fixed.update(runlocal=True, **SMOKE)
  grid = [("estimator", args.estimators), ("seed", [str(s) for s in args.seeds])]
  return sweep.plan(CONFIG, args.outdir, grid, [(k, [str(v)]) for k, v in fixed.items()])


# Smallest shapes that still run every code path (for the test): 5x5 mazes, 1 device;
# rollouts and evaluation sample the same [4 prompts x 8] shape, so one sampler compile.
SMOKE = {"num_devices": 1, "data.splits.num_train": 16, "data.splits.num_test": 4,
         "data.splits.train_sizes": (5,), "data.splits.test_sizes": (5,),
         "rl.max_prompt_len": 48, "rl.max_new_tokens": 8, "rl.num_samples": 8,
         "eval.num_samples": 8, "eval.batch_prompts": 4}


def _shrink(c) -> None:
  for key, value in SMOKE.items():
    *path, leaf = key.split(".")
    node = c
    for part in path:
      node = node[part]
    node[leaf] = value


def warm_start(args: argparse.Namespace, eval_settings: dict | None = None) -> str:
  """The shared starting policy: `--warmstart_dir` or a fresh warm start; evaluated once
  (8 samples a maze, or `eval_settings` on the config's `eval` block).

  The evaluation is a 0-step RL run of the config, so it is the step-0 point of every curve;
  its workdir (`<outdir>/warmstart`) keeps it as `base_eval.json`.
  """
  from rlvr_jax.rl import train
  workdir = os.path.join(args.outdir, "warmstart")
  params_dir = args.warmstart_dir or os.path.join(workdir, "warmstart")
  if not _eval_records(workdir):
    c = maze_config("steps=0,runlocal=True" if args.smoke else "steps=0")
    c.warmstart.load_dir = args.warmstart_dir
    if args.warmstart_steps is not None:
      c.warmstart.steps = args.warmstart_steps
    c.eval.update(at_start=True, num_samples=8)
    c.progress = args.progress
    if args.smoke:
      _shrink(c)
    c.eval.update(eval_settings or {})
    train.run(c, workdir)
  if not os.path.isdir(params_dir):
    raise ValueError(f"no warm-start params at {params_dir!r}")
  return os.path.abspath(params_dir)


def _eval_records(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [r for r in map(json.loads, filter(str.strip, f)) if r["phase"] == "eval"]


def rows_of(records: Sequence[dict], estimator: str, seed: int) -> list[dict]:
  """One CSV row per (eval step, eval set): pass@k for k in KS; set 'mean' averages sets."""
  rows = []
  for r in records:
    sets = sorted({k.split("/")[0] for k in r if k.endswith("/pass@1")})
    for name in sets + ["mean"]:
      pre = "" if name == "mean" else name + "/"
      rows.append({"estimator": estimator, "seed": seed, "step": int(r["step"]), "set": name,
                   **{f"pass@{k}": float(r[f"{pre}pass@{k}"]) for k in KS}})
  return rows


def write_csv(rows: Sequence[dict], path: str) -> None:
  fields = ["estimator", "seed", "step", "set"] + [f"pass@{k}" for k in KS]
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
      w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})


def summary_table(rows: Sequence[dict], estimators: Sequence[str], final_step: int) -> str:
  """Markdown: warm start, then each estimator at `final_step`, mean +- sample std (ddof 1)
  over seeds; the columns of the mean over sets also give the 95% t interval of the mean."""
  sets = sorted({r["set"] for r in rows}, key=lambda s: (s == "mean", len(s), s))
  head = "| policy | seeds | " + " | ".join(f"{s} pass@1 | {s} pass@8" for s in sets) + " |"
  lines = [head, "|" + "---|" * (2 + 2 * len(sets))]

  def line(name: str, sel: list[dict]) -> str:
    cells = []
    for s in sets:
      for k in (1, 8):
        v = np.array([r[f"pass@{k}"] for r in sel if r["set"] == s])
        if not len(v):
          cells.append("-")
        elif len(v) == 1:  # one run (the warm start) has no spread to show
          cells.append(f"{100 * v.mean():.1f}")
        else:
          from rlvr_jax import sweep
          mu, sd, lo, hi = (100 * x for x in sweep.seed_stats(list(v)))
          cells.append(f"{mu:.1f} ± {sd:.1f}" + (f" [{lo:.1f}, {hi:.1f}]" if s == "mean" else ""))
    seeds = len({r["seed"] for r in sel})
    return f"| {name} | {seeds} | " + " | ".join(cells) + " |"

  lines.append(line("warm start (step 0)", [r for r in rows if r["estimator"] == "warmstart"]))
  for e in estimators:
    sel = [r for r in rows if r["estimator"] == e and r["step"] == final_step]
    if sel:
      lines.append(line(f"{e} (step {final_step})", sel))
  return "\n".join(lines)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
  """(mean(a) - mean(b), 95% interval low, high, two-sided p) of Welch's unequal-variance
  t-test: the sweep summary's (`rlvr_jax.sweep.compare`)."""
  from rlvr_jax import sweep
  return sweep.compare(a, b)


def comparison_table(rows: Sequence[dict], estimators: Sequence[str], final_step: int,
                     baseline: str = "grpo") -> str:
  """Markdown: each estimator against `baseline` on the mean over sets at `final_step`:
  difference of the seed means, its 95% Welch interval and p, for pass@1 and pass@8."""
  final = lambda e, k: np.array([r[f"pass@{k}"] for r in rows if r["estimator"] == e
                                 and r["step"] == final_step and r["set"] == "mean"])
  lines = [f"| vs {baseline} | seeds | pass@1 diff [95% CI] | p | pass@8 diff [95% CI] | p |",
           "|---|---|---|---|---|---|"]
  for e in estimators:
    if e == baseline or len(final(e, 1)) < 2 or len(final(baseline, 1)) < 2:
      continue
    cells = []
    for k in (1, 8):
      d, lo, hi, p = welch(final(e, k), final(baseline, k))
      cells += [f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]", f"{p:.2f}"]
    lines.append(f"| {e} | {len(final(e, 1))} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot_curves(rows: Sequence[dict], estimators: Sequence[str], path: str) -> None:
  """pass@1 (top) and pass@8 (bottom) against RL step per eval set; mean over seeds, min-max band."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  sets = sorted({r["set"] for r in rows}, key=lambda s: (s == "mean", len(s), s))
  fig, axes = plt.subplots(2, len(sets), figsize=(3.6 * len(sets), 6), squeeze=False)
  for j, s in enumerate(sets):
    for i, k in enumerate((1, 8)):
      ax = axes[i, j]
      start = [r for r in rows if r["estimator"] == "warmstart" and r["set"] == s]
      for e in estimators:
        sel = [r for r in rows if r["estimator"] == e and r["set"] == s]
        if sel and not any(r["step"] == 0 for r in sel):
          sel = start + sel
        steps = sorted({r["step"] for r in sel})
        if not steps:
          continue
        vals = [[r[f"pass@{k}"] for r in sel if r["step"] == t] for t in steps]
        mean = np.array([np.mean(v) for v in vals])
        ax.plot(steps, 100 * mean, marker=".", label=e)
        ax.fill_between(steps, [100 * min(v) for v in vals], [100 * max(v) for v in vals],
                        alpha=0.15)
      ax.set_title(f"{s}: pass@{k}", fontsize=9)
      ax.set_xlabel("RL step", fontsize=8)
      ax.set_ylabel("%", fontsize=8)
      ax.tick_params(labelsize=7)
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def read_csv(path: str) -> list[dict]:
  """`write_csv`'s rows back (seed and step ints, pass@k floats)."""
  with open(path, newline="", encoding="utf-8") as f:
    return [{**r, "seed": int(r["seed"]), "step": int(r["step"]),
             **{f"pass@{k}": float(r[f"pass@{k}"]) for k in KS}} for r in csv.DictReader(f)]


def write_summary(rows: Sequence[dict], args: argparse.Namespace, header: str) -> str:
  """summary.md (`header`, the final-step table, the Welch table) and curves.png in --outdir."""
  table = summary_table(rows, args.estimators, args.steps)
  table += "\n\n" + comparison_table(rows, args.estimators, args.steps)
  with open(os.path.join(args.outdir, "summary.md"), "w", encoding="utf-8") as f:
    f.write(f"{header}\n\n{table}\n")
  plot_curves(rows, args.estimators, os.path.join(args.outdir, "curves.png"))
  return table


def summarize_only(args: argparse.Namespace) -> str:
  """The tables and curves again from --outdir's results.csv (no run); the first line of an
  existing summary.md (the run's settings and time) is kept."""
  rows = read_csv(os.path.join(args.outdir, "results.csv"))
  path = os.path.join(args.outdir, "summary.md")
  header = f"steps={args.steps} seeds={args.seeds} (recomputed from results.csv)"
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      header = f.readline().rstrip("\n")
  return write_summary(rows, args, header)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--outdir", required=True)
  p.add_argument("--estimators", default=",".join(ESTIMATORS))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--steps", type=int, default=24)
  p.add_argument("--k", type=int, default=4)
  p.add_argument("--batch_prompts", type=int, default=16, help="prompts an RL step (x8 rollouts)")
  p.add_argument("--eval_every", type=int, default=8)
  p.add_argument("--warmstart_steps", type=int, default=None, help="default: the config's")
  p.add_argument("--warmstart_dir", default="",
                 help="existing warm-start params (orbax dir) instead of a fresh warm start")
  p.add_argument("--smoke", action="store_true", help="runlocal shapes, 5x5 mazes (tests)")
  p.add_argument("--summarize_only", action="store_true",
                 help="rewrite summary.md and curves.png from --outdir's results.csv")
  p.add_argument("--no_progress", dest="progress", action="store_false",
                 help="hide the per-run step bar (the overall progress line stays)")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/rlvr_jax_xla"),
                 help="persistent XLA compilation cache shared by the runs ('' = off)")
  a = p.parse_args(argv)
  a.estimators = [e for e in a.estimators.split(",") if e]
  a.seeds = [int(s) for s in a.seeds.split(",") if s]
  if not a.estimators or not a.seeds or a.steps < 1:
    raise ValueError("need at least one estimator, one seed and --steps >= 1")
  return a


def main(argv: Sequence[str] | None = None) -> str:
  """Runs (or finishes) the experiment; returns the summary markdown."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  if args.summarize_only:
    table = summarize_only(args)
    print(table, flush=True)
    return table
  import jax
  if args.cache_dir:  # every run re-jits its update step; identical programs hit the cache
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  os.makedirs(args.outdir, exist_ok=True)
  t0 = time.time()
  ws_dir = warm_start(args)
  ws_rows = rows_of(_eval_records(os.path.join(args.outdir, "warmstart"))[-1:], "warmstart", 0)
  print(f"[maze_exp] warm start ready in {time.time() - t0:.0f}s: "
        f"pass@1={ws_rows[-1]['pass@1']:.3f} pass@8={ws_rows[-1]['pass@8']:.3f}", flush=True)
  from rlvr_jax import sweep
  runs = sweep_runs(args, ws_dir)
  print(f"[maze_exp] {len(runs)} runs, {sum(sweep.is_done(r) for r in runs)} already done",
        flush=True)
  sweep.execute(runs, cache_dir=args.cache_dir, progress=args.progress)
  rows = list(ws_rows)
  for r in runs:
    rows += rows_of(_eval_records(r.workdir), r.values["estimator"], int(r.values["seed"]))
  write_csv(rows, os.path.join(args.outdir, "results.csv"))
  table = write_summary(rows, args, f"steps={args.steps} seeds={args.seeds} k={args.k} "
                        f"batch_prompts={args.batch_prompts} total time "
                        f"{(time.time() - t0) / 60:.1f} min")
  print(table, flush=True)
  return table


if __name__ == "__main__":
  main()
