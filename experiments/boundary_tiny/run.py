"""The reasoning boundary on tiny mazes: what RLVR and its interventions do to Pass@k up to k = 256.

    python experiments/boundary_tiny/run.py --outdir=/tmp/boundary        # the full experiment
    python experiments/boundary_tiny/run.py --outdir=/tmp/boundary --summarize_only

One warm start (experiments/maze_tiny/run.py's, the same config), evaluated once with 256
samples a maze (in chunks of 32), then from it the same number of RL steps for each arm,
`--seeds` each, every run evaluated at its end the same way:

  grpo             standard RLVR (Pass@1 training)
  zero_only        updates restricted to zero-success problems: bbg's signed REINFORCE
                   term alone (`zero_success_only`; GRPO gives an all-wrong group no signal)
  high_masked      grpo with the >= 6/8 buckets masked (`mask_high_success`)
  bbg              Bayesian boundary gating, K = 256 (advantages/bbg.py defaults)
  passk            passk_analytical, k = 4
  adaptive_entropy adaptive_entropy, k = 4
  schedule         passk_analytical (k = 4), then grpo from half the steps on

The runs go through `rlvr_jax.sweep` (one process a run; a finished run is skipped on
re-launch, a cut-off one resumes), one sweep directory an arm (`<outdir>/<arm>/runs/seed=S`).
Writes under --outdir: `results.csv` (final pass@k for k = 1, 2, 4, ..., 256 and their mean
`pass@avg`, a row a run, plus the warm start's), `summary.md` (per arm mean ± sample std over
seeds [95% t interval]; each arm against grpo by Welch's t-test; each arm's mean against the
warm start's value), the sweep's own `summary.md` / `comparisons.csv` tables as
`sweep_summary.md`, and `curves.png` (pass@k against k, an arm a line, the warm start dashed).
"""

import argparse
import dataclasses
import importlib.util
import math
import os
import sys
import time
from collections.abc import Sequence

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "maze_tiny.py")


def _maze_run():
  """experiments/maze_tiny/run.py as a module (its warm start and smoke shapes are shared)."""
  spec = importlib.util.spec_from_file_location(
      "maze_tiny_run", os.path.join(ROOT, "experiments", "maze_tiny", "run.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def arms(steps: int) -> dict[str, dict[str, str]]:
  """Each arm's sweep values (config-file arguments and config fields)."""
  return {
      "grpo": {"estimator": "grpo"},
      "zero_only": {"estimator": "bbg", "k": "256", "advantage.zero_success_only": "true"},
      "high_masked": {"estimator": "grpo", "advantage.mask_high_success": "true"},
      "bbg": {"estimator": "bbg", "k": "256"},
      "passk": {"estimator": "passk_analytical", "k": "4"},
      "adaptive_entropy": {"estimator": "adaptive_entropy", "k": "4"},
      "schedule": {"estimator": "passk_analytical", "k": "4",
                   "schedule.switch_at": str(max(steps // 2, 1))},
  }


ARMS = tuple(arms(2))


def eval_settings(args: argparse.Namespace) -> dict:
  return {"num_samples": args.eval_samples, "sample_chunk": args.sample_chunk}


def sweep_runs(args: argparse.Namespace, warmstart_dir: str, base_workdir: str) -> list:
  """Every (arm, seed) as a `rlvr_jax.sweep` run, its values carrying the arm's name."""
  from rlvr_jax import sweep
  fixed = {"steps": args.steps, "batch_prompts": args.batch_prompts,
           "warmstart_dir": warmstart_dir, "warmstart_steps": 0, "eval.every": 0,
           "eval.at_start": False, "eval.at_end": True, "eval.base_curve": base_workdir,
           **{f"eval.{k}": v for k, v in eval_settings(args).items()},
           "checkpoint.every": max(args.steps, 1), "checkpoint.keep": 1}
  if args.smoke:
    fixed.update(runlocal=True, **{k: v for k, v in _maze_run().SMOKE.items()
                                   if not k.startswith("eval.num_samples")})
  runs = []
  for arm in args.arms:
    values = {**{k: str(v) for k, v in fixed.items()}, **arms(args.steps)[arm]}
    planned = sweep.plan(CONFIG, os.path.join(args.outdir, arm),
                         [("seed", [str(s) for s in args.seeds])],
                         [(k, [v]) for k, v in values.items()])
    runs += [dataclasses.replace(r, values={"arm": arm, **r.values}) for r in planned]
  return runs


def ks_of(record: dict) -> list[int]:
  return sorted(int(k[5:]) for k in record if k.startswith("pass@") and k[5:].isdigit())


def result_row(arm: str, seed: int, record: dict) -> dict:
  """A results.csv row: the record's mean-over-sets pass@k and their mean over k."""
  ks = ks_of(record)
  row = {"arm": arm, "seed": seed, **{f"pass@{k}": float(record[f"pass@{k}"]) for k in ks}}
  row["pass@avg"] = float(np.mean([record[f"pass@{k}"] for k in ks]))
  return row


def summary_tables(rows: Sequence[dict], baseline: str = "grpo",
                   metrics: Sequence[str] | None = None) -> str:
  """Markdown: the warm start and each arm (mean ± sd [95% t interval] over seeds, %); each
  arm against `baseline` (Welch) and against the warm start's value (one-sample t-test)."""
  from scipy import stats as sps
  from rlvr_jax import sweep
  metrics = list(metrics or [k for k in rows[0] if k.startswith("pass@")])
  base = [r for r in rows if r["arm"] == "warmstart"]
  arm_names = list(dict.fromkeys(r["arm"] for r in rows if r["arm"] != "warmstart"))
  vals = lambda arm, m: [r[m] for r in rows if r["arm"] == arm and m in r]
  lines = ["| policy | seeds | " + " | ".join(metrics) + " |", "|" + "---|" * (2 + len(metrics))]
  if base:
    lines.append("| warm start (step 0) | 1 | " + " | ".join(
        f"{100 * base[0][m]:.1f}" for m in metrics) + " |")
  for arm in arm_names:
    cells = []
    for m in metrics:
      mu, sd, lo, hi = sweep.seed_stats(vals(arm, m))
      cells.append(f"{100 * mu:.1f}" if math.isnan(sd) else
                   f"{100 * mu:.1f} ± {100 * sd:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
    lines.append(f"| {arm} | {len(vals(arm, metrics[0]))} | " + " | ".join(cells) + " |")
  out = ["\n".join(lines)]
  for title, other in ((f"vs {baseline} (Welch t-test)", baseline),
                       ("vs the warm start (one-sample t-test of the seeds against its value)",
                        None)):
    lines = [f"{title}: difference [95% interval] p, in points",
             "", "| arm | " + " | ".join(metrics) + " |", "|" + "---|" * (1 + len(metrics))]
    for arm in arm_names:
      if arm == other or (other is None and not base):
        continue
      cells = []
      for m in metrics:
        a = vals(arm, m)
        try:
          if other is None:  # the warm start is one evaluation: test against its value
            if len(a) < 2:
              raise ValueError("one seed")
            d = float(np.mean(a) - base[0][m])
            se = float(np.std(a, ddof=1)) / math.sqrt(len(a))
            half = float(sps.t.ppf(0.975, len(a) - 1)) * se
            p = float(2 * sps.t.sf(abs(d) / se, len(a) - 1)) if se > 0 else float(d == 0)
            lo, hi = d - half, d + half
          else:
            d, lo, hi, p = sweep.compare(a, vals(other, m))
          cells.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] p={p:.2g}")
        except ValueError:
          cells.append("-")
      lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    out.append("\n".join(lines))
  return "\n\n".join(out)


def plot_curves(rows: Sequence[dict], path: str) -> None:
  """pass@k against k (log scale): each arm's mean over seeds, min..max band; warm start dashed."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  ks = ks_of(rows[0])
  for arm in dict.fromkeys(r["arm"] for r in rows):
    sel = [r for r in rows if r["arm"] == arm]
    v = np.array([[r[f"pass@{k}"] for k in ks] for r in sel])
    style = dict(color="black", linestyle="--") if arm == "warmstart" else {}
    ax.plot(ks, 100 * v.mean(0), marker=".", label=arm, **style)
    if len(sel) > 1:
      ax.fill_between(ks, 100 * v.min(0), 100 * v.max(0), alpha=0.12)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k (%), mean over test sizes")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def write_summary(rows: Sequence[dict], outdir: str, header: str) -> str:
  ks = ks_of(rows[0])
  shown = [f"pass@{k}" for k in ks if k in (1, 4, 16, 64, 256) or k == ks[-1]] + ["pass@avg"]
  table = summary_tables(rows, metrics=list(dict.fromkeys(shown)))
  with open(os.path.join(outdir, "summary.md"), "w", encoding="utf-8") as f:
    f.write(f"{header}\n\n{table}\n")
  plot_curves(rows, os.path.join(outdir, "curves.png"))
  return table


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--outdir", required=True)
  p.add_argument("--arms", default=",".join(ARMS))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--steps", type=int, default=24)
  p.add_argument("--batch_prompts", type=int, default=16, help="prompts an RL step (x8 rollouts)")
  p.add_argument("--eval_samples", type=int, default=256, help="samples a test maze")
  p.add_argument("--sample_chunk", type=int, default=32, help="samples a maze per sampler call")
  p.add_argument("--warmstart_steps", type=int, default=None, help="default: the config's")
  p.add_argument("--warmstart_dir", default="", help="existing warm-start params (orbax dir)")
  p.add_argument("--smoke", action="store_true", help="runlocal shapes, 5x5 mazes (tests)")
  p.add_argument("--summarize_only", action="store_true",
                 help="rewrite summary.md and curves.png from --outdir's results.csv")
  p.add_argument("--no_progress", dest="progress", action="store_false")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/rlvr_jax_xla"),
                 help="persistent XLA compilation cache shared by the runs ('' = off)")
  a = p.parse_args(argv)
  a.arms = [x for x in a.arms.split(",") if x]
  a.seeds = [int(s) for s in a.seeds.split(",") if s]
  unknown = sorted(set(a.arms) - set(ARMS))
  if unknown:
    raise ValueError(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
  if not a.arms or not a.seeds or a.steps < 1:
    raise ValueError("need at least one arm, one seed and --steps >= 1")
  if a.sample_chunk < 1 or a.eval_samples % a.sample_chunk:
    raise ValueError(f"--sample_chunk={a.sample_chunk} must divide --eval_samples="
                     f"{a.eval_samples}")
  return a


def main(argv: Sequence[str] | None = None) -> str:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  from rlvr_jax import sweep
  if args.summarize_only:
    rows = sweep.read_rows(os.path.join(args.outdir, "results.csv"))
    with open(os.path.join(args.outdir, "summary.md"), encoding="utf-8") as f:
      header = f.readline().rstrip("\n")
    return write_summary(rows, args.outdir, header)
  import jax
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from rlvr_jax.rl import logger
  os.makedirs(args.outdir, exist_ok=True)
  t0 = time.time()
  maze = _maze_run()
  ws_params = maze.warm_start(args, eval_settings(args))
  ws_workdir = os.path.join(args.outdir, "warmstart")
  runs = sweep_runs(args, ws_params, ws_workdir)
  print(f"[boundary] warm start ready in {time.time() - t0:.0f}s; {len(runs)} runs, "
        f"{sum(sweep.is_done(r) for r in runs)} already done", flush=True)
  sweep.execute(runs, cache_dir=args.cache_dir, progress=args.progress)
  last_eval = lambda d: [r for r in logger.read_jsonl(os.path.join(d, "metrics.jsonl"))
                         if r["phase"] == "eval"][-1]
  rows = [result_row("warmstart", 0, last_eval(ws_workdir))]
  rows += [result_row(r.values["arm"], int(r.values["seed"]), last_eval(r.workdir)) for r in runs]
  sweep.write_rows(rows, os.path.join(args.outdir, "results.csv"))
  sweep_table = sweep.summarize(runs, args.outdir, baseline="arm=grpo" if
                                "grpo" in args.arms and len(args.seeds) > 1 else "")
  os.replace(os.path.join(args.outdir, "summary.md"), os.path.join(args.outdir, "sweep_summary.md"))
  del sweep_table
  table = write_summary(rows, args.outdir,
                        f"arms={args.arms} seeds={args.seeds} steps={args.steps} "
                        f"batch_prompts={args.batch_prompts} eval_samples={args.eval_samples} "
                        f"total time {(time.time() - t0) / 60:.1f} min")
  print(table, flush=True)
  return table


if __name__ == "__main__":
  main()
