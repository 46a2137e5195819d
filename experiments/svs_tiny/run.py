"""SvS against plain RLVR (GRPO) on the arith task with the tiny character policy.

    python experiments/svs_tiny/run.py --outdir=/tmp/svs_exp            # the full experiment
    python experiments/svs_tiny/run.py --outdir=/tmp/svs_exp --smoke    # seconds-scale (tests)

One supervised warm start of configs/svs_tiny.py (both formats: solve a problem, write the
problem of a worked solution), evaluated once (step 0 of every curve); then from that same
policy one run per (algorithm, seed), `svs` and `rlvr`, the same number of RL steps, with
pass@1..32 on the 256 held-out problems each `--eval_every` steps and at the end. The runs go
through `rlvr_jax.sweep` (one process a run; a finished run is skipped on re-launch, a cut-off
one resumes). Writes under --outdir: `results.csv` (every eval point), `train.csv` (every RL
step: entropy of the original-problem rollouts, reward, SvS's synthesis statistics),
`summary.md` (final-step table: mean, sample std (ddof 1) and a 95 % t interval over seeds;
SvS minus RLVR with Welch's test; paired by seed too, as both arms share the warm start) and
`curves.png`.
"""

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Sequence

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "svs_tiny.py")
ALGORITHMS = ("svs", "rlvr")
KS = (1, 2, 4, 8, 16, 32)
TRAIN_KEYS = ("entropy_rollouts", "reward_mean", "updates", "num_tokens", "svs/contexts",
              "svs/extract_frac", "svs/leak_frac", "svs/synthesis_reward_mean",
              "svs/solve_acc_mean", "svs/synthesis_groups", "svs/solve_groups")
# Smallest shapes that run every code path (for the test).
SMOKE = {"num_devices": 1, "data.splits.num_train": 64, "data.splits.num_test": 8,
         "rl.batch_prompts": 4, "rl.num_samples": 4, "rl.mini_batch_prompts": 2,
         "rl.dynamic_sampling": False, "svs.num_syntheses": 4, "svs.max_contexts": 4,
         "eval.num_samples": 4, "eval.batch_prompts": 8}


def svs_config(arg: str):
  spec = importlib.util.spec_from_file_location("svs_tiny_config", CONFIG)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _set(c, key: str, value) -> None:
  *path, leaf = key.split(".")
  node = c
  for part in path:
    node = node[part]
  node[leaf] = value


def warm_start(args: argparse.Namespace) -> str:
  """The shared starting policy (a fresh warm start, or `--warmstart_dir`), evaluated once as
  a 0-step RL run: the step-0 point of every curve."""
  from rlvr_jax import sweep
  from rlvr_jax.rl import train
  workdir = os.path.join(args.outdir, "warmstart")
  params_dir = args.warmstart_dir or os.path.join(workdir, "warmstart")
  if not sweep.phase_records(workdir, "eval"):
    c = svs_config("steps=0,runlocal=True" if args.smoke else "steps=0")
    c.warmstart.load_dir = args.warmstart_dir
    c.eval.update(at_start=True, num_samples=args.eval_samples)
    c.progress = args.progress
    if args.smoke:
      for k, v in SMOKE.items():
        _set(c, k, v)
    train.run(c, workdir)
  if not os.path.isdir(params_dir):
    raise ValueError(f"no warm-start params at {params_dir!r}")
  return os.path.abspath(params_dir)


def sweep_runs(args: argparse.Namespace, warmstart_dir: str) -> list:
  from rlvr_jax import sweep
  fixed = {"steps": args.steps, "warmstart_dir": warmstart_dir, "warmstart_steps": 0,
           "eval.every": args.eval_every, "eval.at_start": False, "eval.at_end": True,
           "eval.num_samples": args.eval_samples, "checkpoint.every": max(args.steps, 1),
           "checkpoint.keep": 1}
  if args.smoke:
    fixed.update(runlocal=True, **SMOKE)
  fixed.update(dict(kv.split("=", 1) for kv in args.set))
  grid = [("algorithm", list(args.algorithms)), ("seed", [str(s) for s in args.seeds])]
  return sweep.plan(CONFIG, args.outdir, grid, [(k, [str(v)]) for k, v in fixed.items()])


def eval_rows(recs: Sequence[dict], algorithm: str, seed: int, ks: Sequence[int]) -> list[dict]:
  return [{"algorithm": algorithm, "seed": seed, "step": int(r["step"]),
           **{f"pass@{k}": float(r[f"pass@{k}"]) for k in ks if f"pass@{k}" in r}} for r in recs]


def train_rows(recs: Sequence[dict], algorithm: str, seed: int) -> list[dict]:
  return [{"algorithm": algorithm, "seed": seed, "step": int(r["step"]),
           **{k: float(r[k]) for k in TRAIN_KEYS if k in r}} for r in recs]


def final(rows: Sequence[dict], algorithm: str, key: str, step: int) -> np.ndarray:
  sel = sorted((r["seed"], r[key]) for r in rows if r["algorithm"] == algorithm
               and r["step"] == step and key in r)
  return np.array([v for _, v in sel])


def late_mean(rows: Sequence[dict], algorithm: str, key: str, from_step: int) -> np.ndarray:
  """Per seed, the mean of `key` over the steps >= from_step (a train metric's late level)."""
  seeds = sorted({r["seed"] for r in rows if r["algorithm"] == algorithm})
  return np.array([np.mean([r[key] for r in rows if r["algorithm"] == algorithm
                            and r["seed"] == s and r["step"] >= from_step and key in r])
                   for s in seeds])


def summary(ev: Sequence[dict], tr: Sequence[dict], args: argparse.Namespace) -> str:
  """Markdown: the final step's pass@k per arm (mean ± sample std [95 % t interval] over
  seeds, `sweep.seed_stats`), then SvS - RLVR with its 95 % interval and p, Welch's and
  paired by seed (`sweep.compare`), for pass@k and the late-training entropy and reward."""
  from rlvr_jax import sweep
  ks = [k for k in KS if k <= args.eval_samples]
  pct = lambda v: f"{100 * v:.1f}"
  lines = ["| policy | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |",
           "|---|---|" + "---|" * len(ks)]
  base = [r for r in ev if r["algorithm"] == "warmstart"]
  if base:
    lines.append("| warm start (step 0) | - | " + " | ".join(pct(base[-1][f"pass@{k}"])
                                                            for k in ks) + " |")
  for alg in args.algorithms:
    cells = []
    for k in ks:
      m, s, lo, hi = sweep.seed_stats(list(final(ev, alg, f"pass@{k}", args.steps)))
      cells.append(f"{pct(m)} ± {pct(s)} [{pct(lo)}, {pct(hi)}]")
    lines.append(f"| {alg} (step {args.steps}) | {len(final(ev, alg, 'pass@1', args.steps))} | "
                 + " | ".join(cells) + " |")
  lines += ["", "mean ± sample std [95 % t interval] over seeds, in %.", ""]
  if set(ALGORITHMS) <= set(args.algorithms) and len(args.seeds) > 1:
    lines += ["| svs - rlvr | difference [95 % CI], Welch | p | paired by seed [95 % CI] | p |",
              "|---|---|---|---|---|"]
    late = args.steps // 2 + 1
    rows = [(f"pass@{k} at step {args.steps} (points)", 100.0,
             final(ev, "svs", f"pass@{k}", args.steps), final(ev, "rlvr", f"pass@{k}", args.steps))
            for k in ks]
    rows += [(f"{key}, mean of steps {late}-{args.steps}", 1.0, late_mean(tr, "svs", key, late),
              late_mean(tr, "rlvr", key, late)) for key in ("entropy_rollouts", "reward_mean")]
    for name, scale, a, b in rows:
      cells = []
      for paired in (False, True):
        d, lo, hi, p = sweep.compare(a, b, paired=paired)
        cells += [f"{scale * d:+.3g} [{scale * lo:+.3g}, {scale * hi:+.3g}]", f"{p:.3f}"]
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
  if "svs" in args.algorithms:
    lines += ["", "SvS synthesis statistics, each seed's mean over all steps, then mean ± sample "
              "std over seeds:", "", "| statistic | value |", "|---|---|"]
    for key in TRAIN_KEYS:
      if key.startswith("svs/") and any(key in r for r in tr):
        m, sd, _, _ = sweep.seed_stats(list(late_mean(tr, "svs", key, 1)))
        lines.append(f"| {key[4:]} | {m:.3g} ± {sd:.2g} |")
  if set(ALGORITHMS) <= set(args.algorithms):
    upd = {a: late_mean(tr, a, "updates", 1) for a in ALGORITHMS}
    lines += ["", f"Optimizer updates a step (mean): svs {upd['svs'].mean():.1f}, "
              f"rlvr {upd['rlvr'].mean():.1f}."]
  return "\n".join(lines)


def plot(ev: Sequence[dict], tr: Sequence[dict], args: argparse.Namespace, path: str) -> None:
  """pass@k against k at the end (with the warm start); pass@1 and pass@32 against step;
  entropy of the original-problem rollouts; SvS's synthesis statistics."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  ks = [k for k in KS if k <= args.eval_samples]
  fig, axes = plt.subplots(1, 5, figsize=(20, 3.8))
  base = [r for r in ev if r["algorithm"] == "warmstart"]
  if base:
    axes[0].plot(ks, [100 * base[-1][f"pass@{k}"] for k in ks], "k--", marker=".",
                 label="warm start")
  for alg in args.algorithms:
    m = [100 * final(ev, alg, f"pass@{k}", args.steps).mean() for k in ks]
    s = [100 * final(ev, alg, f"pass@{k}", args.steps).std(ddof=1) if len(
        final(ev, alg, "pass@1", args.steps)) > 1 else 0.0 for k in ks]
    axes[0].errorbar(ks, m, yerr=s, marker=".", capsize=2, label=f"{alg} step {args.steps}")
    for ax, k in ((axes[1], 1), (axes[2], ks[-1])):
      steps = sorted({r["step"] for r in ev if r["algorithm"] == alg} | ({0} if base else set()))
      vals = [100 * (base[-1][f"pass@{k}"] if t == 0 and base else
                     final(ev, alg, f"pass@{k}", t).mean()) for t in steps]
      ax.plot(steps, vals, marker=".", label=alg)
    steps = sorted({r["step"] for r in tr if r["algorithm"] == alg})
    ent = [np.mean([r["entropy_rollouts"] for r in tr if r["algorithm"] == alg
                    and r["step"] == t]) for t in steps]
    axes[3].plot(steps, ent, label=alg)
  for key, style in (("svs/synthesis_reward_mean", "-"), ("svs/extract_frac", ":"),
                     ("svs/leak_frac", "--"), ("svs/solve_acc_mean", "-.")):
    steps = sorted({r["step"] for r in tr if r["algorithm"] == "svs" and key in r})
    if steps:
      axes[4].plot(steps, [np.mean([r[key] for r in tr if r["algorithm"] == "svs"
                                    and r["step"] == t]) for t in steps], style,
                   label=key[4:])
  axes[0].set(xscale="log", xlabel="k", ylabel="pass@k (%)", title="held-out pass@k")
  axes[0].set_xticks(ks, [str(k) for k in ks])
  axes[1].set(xlabel="RL step", ylabel="%", title="pass@1")
  axes[2].set(xlabel="RL step", ylabel="%", title=f"pass@{ks[-1]}")
  axes[3].set(xlabel="RL step", ylabel="nats / token", title="entropy, original problems")
  axes[4].set(xlabel="RL step", title="SvS synthesis (mean over seeds)")
  for ax in axes:
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--outdir", required=True)
  p.add_argument("--algorithms", default=",".join(ALGORITHMS))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--eval_every", type=int, default=10)
  p.add_argument("--eval_samples", type=int, default=32, help="samples a problem (pass@k, k <= it)")
  p.add_argument("--parallel", type=int, default=2, help="runs at once")
  p.add_argument("--warmstart_dir", default="",
                 help="existing warm-start params (orbax dir) instead of a fresh warm start")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="a config field or argument for every run (repeatable), e.g. "
                      "rl.mini_batch_prompts=24")
  p.add_argument("--smoke", action="store_true", help="runlocal shapes (tests)")
  p.add_argument("--summarize_only", action="store_true",
                 help="rewrite summary.md and curves.png from results.csv and train.csv")
  p.add_argument("--no_progress", dest="progress", action="store_false")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/rlvr_jax_xla"),
                 help="persistent XLA compilation cache shared by the runs ('' = off)")
  a = p.parse_args(argv)
  if a.smoke:
    a.eval_samples = SMOKE["eval.num_samples"]
  a.algorithms = [x for x in a.algorithms.split(",") if x]
  a.seeds = [int(s) for s in a.seeds.split(",") if s]
  unknown = set(a.algorithms) - set(ALGORITHMS)
  if unknown or not a.algorithms or not a.seeds or a.steps < 1:
    raise ValueError(f"need algorithms among {ALGORITHMS} (got {a.algorithms}), a seed and "
                     "--steps >= 1")
  return a


def main(argv: Sequence[str] | None = None) -> str:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import jax
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  os.makedirs(args.outdir, exist_ok=True)
  if args.summarize_only:
    from rlvr_jax import sweep
    ev = sweep.read_rows(os.path.join(args.outdir, "results.csv"))
    tr = sweep.read_rows(os.path.join(args.outdir, "train.csv"))
    return write_summary(ev, tr, args, None)
  t0 = time.time()
  ws_dir = warm_start(args)
  ks = [k for k in KS if k <= args.eval_samples]
  from rlvr_jax import sweep
  ev = eval_rows(sweep.phase_records(os.path.join(args.outdir, "warmstart"), "eval")[-1:],
                 "warmstart", 0, ks)
  print(f"[svs_exp] warm start ready in {time.time() - t0:.0f}s: "
        + " ".join(f"pass@{k}={ev[-1][f'pass@{k}']:.3f}" for k in ks), flush=True)
  runs = sweep_runs(args, ws_dir)
  sweep.execute(runs, parallel=args.parallel, cache_dir=args.cache_dir, progress=args.progress)
  tr = []
  for r in runs:
    alg, seed = r.values["algorithm"], int(r.values["seed"])
    ev += eval_rows(sweep.phase_records(r.workdir, "eval"), alg, seed, ks)
    tr += train_rows(sweep.phase_records(r.workdir, "train"), alg, seed)
  sweep.write_rows(ev, os.path.join(args.outdir, "results.csv"))
  sweep.write_rows(tr, os.path.join(args.outdir, "train.csv"))
  return write_summary(ev, tr, args, (time.time() - t0) / 60)


def write_summary(ev: Sequence[dict], tr: Sequence[dict], args: argparse.Namespace,
                  minutes: float | None) -> str:
  table = summary(ev, tr, args)
  took = "" if minutes is None else f" total time {minutes:.1f} min"
  with open(os.path.join(args.outdir, "summary.md"), "w", encoding="utf-8") as f:
    f.write(f"steps={args.steps} seeds={args.seeds}{took}\n\n{table}\n")
  plot(ev, tr, args, os.path.join(args.outdir, "curves.png"))
  print(table, flush=True)
  return table


if __name__ == "__main__":
  main()
