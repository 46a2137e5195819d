"""Config-flag sweeps: a grid of flags -> locked configs -> one workdir a run -> one table, one plot.

    python -m rlvr_jax.sweep --config=configs/maze_tiny.py --workdir=/tmp/sweep \
        --grid=estimator=grpo,passk_analytical --grid=seed=0,1,2

A grid key is either an argument of the config file (`estimator`, `k`, `runlocal` of
configs/maze_tiny.py: it goes into `--config=FILE:key=value,...`) or a config field
(`advantage.name`, `rl.steps`, `seed`: it becomes `--config.FIELD=value`); a key that is both
is passed as the argument (the file then sets the field from it). Every grid point is built
and checked before anything runs, so a typo fails at once. `--set=KEY=VALUE` fixes a key for
every run. Each run gets `WORKDIR/runs/<key=value,...>`; a run that finished (its
`sweep_done.json`) is skipped when the sweep is launched again, and one that was cut off
resumes from its checkpoint. Runs go one after another here (`--parallel=N` runs N at once),
each as `python -m rlvr_jax.main` in its own process, with a persistent XLA cache shared by
all of them; `--print_commands` prints the commands instead (`--launcher=slurm` or
`--launcher=tpu_pod:NAME:ZONE` in docs/LAUNCH.md's form) for a cluster.

At the end: `WORKDIR/runs.csv` (one row a run: its grid values, final train metrics and
final eval pass@k), `WORKDIR/summary.csv` and `summary.md` (the runs grouped by every key
but `seed`; over the seeds of a group: the mean, the sample standard deviation, ddof 1,
and the 95 % t interval of the mean, mean +- t_{0.975, n-1} sd / sqrt(n)) and
`WORKDIR/sweep.png` (eval pass@k against k, and reward over the RL steps, a line a group).
With `--baseline=KEY=VALUE` (e.g. `estimator=grpo`) every group is also compared with the
group that has KEY=VALUE and the same other values: `comparisons.csv` and a table in
summary.md give the difference of the seed means, its 95 % interval and the two-sided p
of Welch's unequal-variance t-test (`--paired`: a paired t-test over the seeds both groups
have, for runs that share a warm start and seeds). Call a difference a result only when its
interval excludes 0; otherwise it is suggestive at most.
"""

import ast
import csv
import dataclasses
import importlib.util
import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

DONE_FILE = "sweep_done.json"
# Final train metrics reported in the tables (those a run has).
TRAIN_KEYS = ("reward_mean", "acc_mean", "entropy_rollouts", "zero_var_frac", "loss",
              "response_len_mean")


@dataclasses.dataclass(frozen=True)
class Run:
  """One point of the grid: its values, the `rlvr_jax.main` flags that make it, its workdir."""
  name: str
  values: dict[str, str]
  config_flag: str  # FILE:arg=value,...
  overrides: tuple[tuple[str, str], ...]  # (field, value) -> --config.field=value
  workdir: str

  def main_args(self) -> list[str]:
    return ([f"--config={self.config_flag}"] + [f"--config.{k}={v}" for k, v in self.overrides]
            + [f"--workdir={self.workdir}"])

  def command(self, python: str = "python") -> list[str]:
    return [python, "-m", "rlvr_jax.main", *self.main_args()]


def parse_grid(entries: Sequence[str]) -> list[tuple[str, list[str]]]:
  """['a.b=1,2', 'seed=0,1'] -> [('a.b', ['1', '2']), ('seed', ['0', '1'])]."""
  grid, seen = [], set()
  for entry in entries:
    key, sep, values = entry.partition("=")
    key = key.strip()
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or not vals:
      raise ValueError(f"--grid/--set entry {entry!r} is not KEY=V1,V2,...")
    if key in seen:
      raise ValueError(f"grid key {key!r} given twice")
    seen.add(key)
    grid.append((key, vals))
  return grid


def expand(grid: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, str]]:
  """Every combination, the last key varying fastest."""
  keys = [k for k, _ in grid]
  return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid))]


def load_config_module(path: str) -> Any:
  spec = importlib.util.spec_from_file_location("sweep_config_" + os.path.basename(path)[:-3],
                                                path)
  if spec is None or not path.endswith(".py") or not os.path.exists(path):
    raise ValueError(f"--config {path!r} is not a config file")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _config_args(mod: Any) -> set[str]:
  """The argument names a config file's get_config(arg) accepts (config_utils.parse_arg keys)."""
  from rlvr_jax import config_utils
  return set(config_utils.accepted_args(mod.get_config))


def build(config_path: str, base_arg: str, values: dict[str, str], mod: Any = None
          ) -> tuple[ml_collections.ConfigDict, str, tuple[tuple[str, str], ...]]:
  """(locked config, the --config flag, field overrides) of one grid point; ValueError for
  an unknown key or a value of the wrong type."""
  mod = mod or load_config_module(config_path)
  arg_names = _config_args(mod)
  args = [a for a in base_arg.split(",") if a]
  overrides = []
  for key, value in values.items():
    if key in arg_names:
      args.append(f"{key}={value}")
    else:
      overrides.append((key, value))
  arg = ",".join(args)
  config = mod.get_config(arg or None)
  for key, value in overrides:
    _override(config, key, value)
  if "advantage" in config:  # an estimator parameter's bad value fails here, not at launch
    from rlvr_jax import advantages
    advantages.from_config(config.advantage)
  config.lock()
  flag = f"{config_path}:{arg}" if arg else config_path
  return config, flag, tuple(overrides)


def _override(config: ml_collections.ConfigDict, key: str, value: str) -> None:
  *path, leaf = key.split(".")
  node = config
  for part in path:
    if part not in node:
      raise ValueError(f"grid key {key!r}: the config has no field {part!r} "
                       f"(fields: {sorted(node.keys())})")
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise ValueError(f"grid key {key!r} is neither an argument of the config file nor a "
                     "config field")
  old = node[leaf]
  if old is None:  # a typed placeholder (advantage.easy_threshold): parse as its type
    like = node.get_ref(leaf).get_type()
    node[leaf] = None if value.lower() == "none" else _typed(value, like(), key)
    return
  node[leaf] = _typed(value, old, key)


def _typed(value: str, like: Any, key: str) -> Any:
  if isinstance(like, bool):
    if value.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"grid key {key!r} is a bool, got {value!r}")
    return value.lower() in ("true", "1")
  if isinstance(like, (int, float)) and not isinstance(like, bool):
    try:
      return type(like)(value) if not (isinstance(like, int) and "." in value) else float(value)
    except ValueError as e:
      raise ValueError(f"grid key {key!r} is a {type(like).__name__}, got {value!r}") from e
  if isinstance(like, (tuple, list)):
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError) as e:
      raise ValueError(f"grid key {key!r} is a {type(like).__name__}, got {value!r}") from e
    if not isinstance(parsed, (tuple, list)):
      parsed = (parsed,)
    return type(like)(parsed)
  if isinstance(like, ml_collections.ConfigDict):
    raise ValueError(f"grid key {key!r} names a config block, not a field")
  return value


def run_name(values: dict[str, str]) -> str:
  """A workdir name from the grid values, filesystem-safe."""
  name = ",".join(f"{k}={v}" for k, v in values.items()) or "base"
  return "".join(c if c.isalnum() or c in "=,._-" else "_" for c in name)


def plan(config_path: str, workdir: str, grid: Sequence[tuple[str, Sequence[str]]],
         fixed: Sequence[tuple[str, Sequence[str]]] = (), base_arg: str = "") -> list[Run]:
  """The runs of a grid, every config built and locked (errors before anything runs)."""
  mod = load_config_module(config_path)
  runs = []
  for point in expand(grid):
    values = {**{k: v[0] for k, v in fixed}, **point}
    _, flag, overrides = build(config_path, base_arg, values, mod)
    runs.append(Run(run_name(point), point, flag, overrides,
                    os.path.join(os.path.abspath(workdir), "runs", run_name(point))))
  if len({r.workdir for r in runs}) != len(runs):
    raise ValueError("two grid points map to the same workdir name")
  return runs


def is_done(run: Run) -> bool:
  return os.path.exists(os.path.join(run.workdir, DONE_FILE))


def _records(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def phase_records(workdir: str, phase: str) -> list[dict]:
  """A run's metrics.jsonl records of one phase ('train', 'eval', 'warmstart')."""
  return [r for r in _records(workdir) if r["phase"] == phase]


# Columns of an experiment's rows that hold text or integers; every other one is a float.
TEXT_COLUMNS = ("algorithm", "arm", "estimator", "set")
INT_COLUMNS = ("seed", "step")


def write_rows(rows: Sequence[dict], path: str, digits: int = 5) -> None:
  """An experiment's rows as CSV: the union of their keys, floats to `digits` decimals."""
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
      w.writerow({k: (f"{v:.{digits}f}" if isinstance(v, float) else v) for k, v in r.items()})


def read_rows(path: str) -> list[dict]:
  """`write_rows`'s rows back: TEXT_COLUMNS as text, INT_COLUMNS as ints, the rest floats;
  an empty cell (a key the row did not have) is left out."""
  with open(path, newline="", encoding="utf-8") as f:
    return [{k: (v if k in TEXT_COLUMNS else int(v) if k in INT_COLUMNS else float(v))
             for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def _mark_done(run: Run, seconds: float) -> None:
  with open(os.path.join(run.workdir, DONE_FILE), "w", encoding="utf-8") as f:
    json.dump({"values": run.values, "seconds": seconds}, f)


def execute(runs: Sequence[Run], *, parallel: int = 1, cache_dir: str = "",
            progress: bool = True, python: str = sys.executable,
            env: dict[str, str] | None = None) -> None:
  """Runs what is not done yet, `parallel` at once, each `python -m rlvr_jax.main` with its
  output in `<workdir>.log`; RuntimeError naming the failed runs at the end."""
  import tqdm
  todo = [r for r in runs if not is_done(r)]
  env = dict(os.environ if env is None else env)
  if cache_dir:
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache_dir)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  bar = tqdm.tqdm(total=len(runs), initial=len(runs) - len(todo), desc="sweep", unit="run",
                  disable=not progress, dynamic_ncols=True)
  running: list[tuple[Run, subprocess.Popen, float, Any]] = []
  failed = []
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  queue = list(todo)
  while queue or running:
    while queue and len(running) < max(1, parallel):
      run = queue.pop(0)
      os.makedirs(os.path.dirname(run.workdir), exist_ok=True)
      log = open(run.workdir + ".log", "a", encoding="utf-8")
      cmd = run.command(python) + ["--config.progress=False"]
      running.append((run, subprocess.Popen(cmd, cwd=root, env=env, stdout=log,
                                            stderr=subprocess.STDOUT), time.time(), log))
    time.sleep(0.2)
    for item in list(running):
      run, proc, t0, log = item
      if proc.poll() is None:
        continue
      running.remove(item)
      log.close()
      if proc.returncode == 0:
        _mark_done(run, time.time() - t0)
      else:
        failed.append(f"{run.name} (exit {proc.returncode}, log {run.workdir}.log)")
      bar.set_postfix_str(run.name, refresh=False)
      bar.update(1)
  bar.close()
  if failed:
    raise RuntimeError("sweep runs failed: " + "; ".join(failed))


def launch_commands(runs: Sequence[Run], launcher: str = "") -> list[str]:
  """One shell command a run: plain, or through docs/LAUNCH.md's SLURM / TPU-pod scripts."""
  out = []
  for run in runs:
    args = " ".join(shlex.quote(a) for a in run.main_args())
    if not launcher:
      out.append(f"python -m rlvr_jax.main {args}")
    elif launcher == "slurm":
      out.append(f"sbatch --job-name={shlex.quote(run.name)} launch/slurm_gpu.sbatch {args}")
    elif launcher.startswith("tpu_pod:") and len(launcher.split(":")) == 3:
      _, name, zone = launcher.split(":")
      out.append(f"launch/tpu_pod.sh {shlex.quote(name)} {shlex.quote(zone)} {args}")
    else:
      raise ValueError(f"--launcher {launcher!r}: '' (plain), 'slurm' or 'tpu_pod:NAME:ZONE'")
  return out


def final_metrics(run: Run) -> dict[str, float]:
  """The run's last train metrics (TRAIN_KEYS it has) and its last eval record's pass@k."""
  recs = _records(run.workdir)
  train = [r for r in recs if r["phase"] == "train"]
  evals = [r for r in recs if r["phase"] == "eval"]
  out: dict[str, float] = {}
  if train:
    out["step"] = float(train[-1]["step"])
    out.update({k: float(train[-1][k]) for k in TRAIN_KEYS if k in train[-1]})
  if evals:
    # The mean curve's values; its bootstrap intervals (pass@k_lo / _hi) describe one run's
    # problems, the tables describe the seeds.
    out.update({k: float(v) for k, v in evals[-1].items() if re.fullmatch(r"pass@\d+", k)})
  return out


def _group_key(values: dict[str, str], over: str) -> tuple[tuple[str, str], ...]:
  return tuple((k, v) for k, v in values.items() if k != over)


def summarize(runs: Sequence[Run], workdir: str, over: str = "seed", baseline: str = "",
              paired: bool = False) -> str:
  """Writes runs.csv, summary.csv, summary.md, sweep.png (and with `baseline`,
  comparisons.csv) under `workdir`; returns the markdown (module docstring)."""
  per_run = [(r, final_metrics(r)) for r in runs]
  keys = [k for k in dict.fromkeys(k for r in runs for k in r.values)]
  metric_keys = sorted({m for _, f in per_run for m in f},
                       key=lambda m: (m.startswith("pass@"), _pass_k(m), m))
  with open(os.path.join(workdir, "runs.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(keys + metric_keys)
    for r, m in per_run:
      w.writerow([r.values.get(k, "") for k in keys] + [_fmt(m.get(k)) for k in metric_keys])
  groups: dict[tuple, list[dict[str, float]]] = {}
  for r, m in per_run:
    groups.setdefault(_group_key(r.values, over), []).append(m)
  group_keys = [k for k in keys if k != over]
  shown = [k for k in metric_keys if k != "step"]
  lines = ["| " + " | ".join(group_keys + ["runs"] + shown) + " |",
           "|" + "---|" * (len(group_keys) + 1 + len(shown))]
  with open(os.path.join(workdir, "summary.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(group_keys + ["runs"] + [f"{k}_{s}" for k in shown
                                        for s in ("mean", "std", "ci_lo", "ci_hi")])
    for g, ms in groups.items():
      stats = [seed_stats([m[k] for m in ms if k in m]) for k in shown]
      w.writerow([v for _, v in g] + [len(ms)] + [_fmt(x) for st in stats for x in st])
      lines.append("| " + " | ".join([v for _, v in g] + [str(len(ms))]
                                     + [_cell(*st) for st in stats]) + " |")
  table = "\n".join(lines)
  text = (f"{len(runs)} runs; over `{over}`: mean ± sample std (ddof 1) [95% t interval of "
          f"the mean]\n\n{table}\n")
  if baseline:
    comp = comparisons(runs, per_run, over, baseline, [k for k in shown if _pass_k(k)] or shown,
                       paired, os.path.join(workdir, "comparisons.csv"))
    table += "\n\n" + comp
    text += f"\n{comp}\n"
  with open(os.path.join(workdir, "summary.md"), "w", encoding="utf-8") as f:
    f.write(text)
  plot(runs, groups, os.path.join(workdir, "sweep.png"), over)
  return table


def _cell(mu: float, sd: float, lo: float, hi: float) -> str:
  if math.isnan(mu):
    return "-"
  if math.isnan(sd):
    return f"{mu:.4g}"
  return f"{mu:.4g} ± {sd:.2g} [{lo:.3g}, {hi:.3g}]"


def seed_stats(xs: Sequence[float]) -> tuple[float, float, float, float]:
  """(mean, sample std (ddof 1), 95 % t interval low, high) of `xs`; NaN where undefined."""
  from scipy import stats
  if not xs:
    return (math.nan,) * 4
  mu = float(np.mean(xs))
  if len(xs) < 2:
    return mu, math.nan, math.nan, math.nan
  sd = float(np.std(xs, ddof=1))
  half = float(stats.t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
  return mu, sd, mu - half, mu + half


def compare(a: Sequence[float], b: Sequence[float], paired: bool = False
            ) -> tuple[float, float, float, float]:
  """(mean(a) - mean(b), 95 % interval low, high, two-sided p): Welch's unequal-variance
  t-test, or (`paired`) the t-test of the differences a_i - b_i. Both need 2+ values a side;
  with no spread at all the interval is the difference and p is 1 (equal) or 0."""
  from scipy import stats
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if paired:
    if a.shape != b.shape or len(a) < 2:
      raise ValueError(f"a paired test needs two equal samples of 2+, got {len(a)} and {len(b)}")
    d = a - b
    diff, var, df = float(d.mean()), float(d.var(ddof=1)) / len(d), len(d) - 1
  else:
    if len(a) < 2 or len(b) < 2:
      raise ValueError(f"Welch's test needs 2+ values a side, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff, var = float(a.mean() - b.mean()), float(va + vb)
    df = var ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if var > 0 else 1
  if var == 0:
    return diff, diff, diff, 1.0 if diff == 0 else 0.0
  t = diff / math.sqrt(var)
  half = float(stats.t.ppf(0.975, df)) * math.sqrt(var)
  return diff, diff - half, diff + half, float(2 * stats.t.sf(abs(t), df))


def parse_baseline(baseline: str, keys: Sequence[str], over: str) -> tuple[str, str]:
  """'KEY=VALUE' -> (KEY, VALUE); ValueError unless KEY is a grid key other than `over`."""
  key, sep, value = baseline.partition("=")
  if not sep or not key or not value:
    raise ValueError(f"--baseline {baseline!r} is not KEY=VALUE")
  if key == over or key not in keys:
    raise ValueError(f"--baseline key {key!r} is not a grid key other than {over!r}")
  return key, value


def comparisons(runs: Sequence[Run], per_run: Sequence[tuple[Run, dict]], over: str,
                baseline: str, metric_keys: Sequence[str], paired: bool, csv_path: str) -> str:
  """Each group against its baseline group (module docstring): writes `csv_path` (every metric
  in `metric_keys`) and returns a markdown table of them."""
  key, value = parse_baseline(baseline, [k for r in runs for k in r.values], over)
  by_group: dict[tuple, dict[str, dict[str, float]]] = {}
  for r, m in per_run:
    by_group.setdefault(_group_key(r.values, over), {})[r.values.get(over, "")] = m
  test = "paired t-test over shared seeds" if paired else "Welch t-test"
  head = [k for k, _ in next(iter(by_group))]
  lines = [f"vs `{baseline}` ({test}): difference of the means [95% interval], p", "",
           "| " + " | ".join(head + ["runs"] + list(metric_keys)) + " |",
           "|" + "---|" * (len(head) + 1 + len(metric_keys))]
  rows = []
  for g, members in by_group.items():
    values = dict(g)
    if values.get(key) == value:
      continue
    base_g = tuple((k, value if k == key else v) for k, v in g)
    if base_g not in by_group:
      continue
    base = by_group[base_g]
    seeds = sorted(set(members) & set(base)) if paired else None
    cells, row = [], [v for _, v in g] + [len(members)]
    for mk in metric_keys:
      if paired:
        a, b = [members[s].get(mk) for s in seeds], [base[s].get(mk) for s in seeds]
      else:
        a = [m[mk] for m in members.values() if mk in m]
        b = [m[mk] for m in base.values() if mk in m]
      try:
        d, lo, hi, p = compare([x for x in a if x is not None], [x for x in b if x is not None],
                               paired)
      except ValueError:
        d = lo = hi = p = math.nan
      row += [_fmt(d), _fmt(lo), _fmt(hi), _fmt(p)]
      cells.append("-" if math.isnan(d) else f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}] p={p:.2g}")
    rows.append(row)
    lines.append("| " + " | ".join([v for _, v in g] + [str(len(members))] + cells) + " |")
  with open(csv_path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(head + ["runs"] + [f"{mk}_{s}" for mk in metric_keys
                                  for s in ("diff", "ci_lo", "ci_hi", "p")])
    w.writerows(rows)
  return "\n".join(lines)


def _pass_k(name: str) -> int:
  return int(name.split("@")[1]) if name.startswith("pass@") else 0


def _fmt(x: Any) -> str:
  return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
  return seed_stats(xs)[:2]


def plot(runs: Sequence[Run], groups: dict, path: str, over: str) -> None:
  """Left: final eval pass@k against k, a line a group (mean over `over`, +- std bars);
  right: reward_mean over the RL steps, a line a group (mean over `over`). `groups`:
  each group's final metrics, as `summarize` grouped them."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (ax_k, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
  by_group: dict[tuple, list[Run]] = {}
  for r in runs:
    by_group.setdefault(_group_key(r.values, over), []).append(r)
  for g, members in by_group.items():
    label = ",".join(f"{k}={v}" for k, v in g) or "all"
    finals = groups[g]
    ks = sorted({_pass_k(k) for f in finals for k in f if k.startswith("pass@")})
    if ks:
      stats = [_mean_std([f[f"pass@{k}"] for f in finals if f"pass@{k}" in f]) for k in ks]
      ax_k.errorbar(ks, [m for m, _ in stats], yerr=[0 if math.isnan(s) else s for _, s in stats],
                    marker="o", capsize=3, label=label)
    curves = [[(r["step"], r["reward_mean"]) for r in _records(m.workdir)
               if r["phase"] == "train" and "reward_mean" in r] for m in members]
    steps = sorted({s for c in curves for s, _ in c})
    if steps:
      mean = [np.mean([v for c in curves for s, v in c if s == t]) for t in steps]
      ax_r.plot(steps, mean, label=label)
  ax_k.set_xscale("log", base=2)
  ax_k.set_xlabel("k")
  ax_k.set_ylabel("eval pass@k (final)")
  ax_r.set_xlabel("RL step")
  ax_r.set_ylabel("reward_mean")
  for ax in (ax_k, ax_r):
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main(argv: Sequence[str] | None = None) -> str:
  import argparse
  p = argparse.ArgumentParser(prog="python -m rlvr_jax.sweep",
                              description=__doc__.split("\n")[0])
  p.add_argument("--config", required=True, help="config file, optionally FILE:arg=v,...")
  p.add_argument("--workdir", required=True)
  p.add_argument("--grid", action="append", default=[], help="KEY=V1,V2,... (repeatable)")
  p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
  p.add_argument("--parallel", type=int, default=1, help="runs at once on this host")
  p.add_argument("--over", default="seed", help="the key the tables average over")
  p.add_argument("--baseline", default="",
                 help="KEY=VALUE: compare every group with this one (Welch t-test)")
  p.add_argument("--paired", action="store_true",
                 help="with --baseline: a paired t-test over the seeds both groups have")
  p.add_argument("--print_commands", action="store_true",
                 help="print one launch command a run instead of running them")
  p.add_argument("--launcher", default="", help="'' | slurm | tpu_pod:NAME:ZONE")
  p.add_argument("--summarize_only", action="store_true",
                 help="write the tables and the plot from the runs' workdirs")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/rlvr_jax_xla"),
                 help="persistent XLA compilation cache shared by the runs ('' = off)")
  p.add_argument("--no_progress", dest="progress", action="store_false")
  a = p.parse_args(sys.argv[1:] if argv is None else argv)
  if a.parallel < 1:
    raise SystemExit("--parallel must be >= 1")
  path, _, base_arg = a.config.partition(":")
  grid = parse_grid(a.grid)
  fixed = [(k.strip(), [v]) for k, _, v in (e.partition("=") for e in a.set)]
  if any(not k or not v for k, (v,) in fixed):
    raise SystemExit("--set takes KEY=VALUE")
  if {k for k, _ in grid} & {k for k, _ in fixed}:
    raise SystemExit("a key is both in --grid and in --set")
  try:
    runs = plan(path, a.workdir, grid, fixed, base_arg)
  except ValueError as e:  # a typo in a key or a value: before anything runs
    raise SystemExit(f"sweep: {e}") from e
  if a.baseline:
    try:
      parse_baseline(a.baseline, [k for k, _ in grid], a.over)
    except ValueError as e:
      raise SystemExit(f"sweep: {e}") from e
  if a.print_commands:
    text = "\n".join(launch_commands(runs, a.launcher))
    print(text)
    return text
  os.makedirs(a.workdir, exist_ok=True)
  if not a.summarize_only:
    execute(runs, parallel=a.parallel, cache_dir=a.cache_dir, progress=a.progress)
  table = summarize(runs, a.workdir, a.over, a.baseline, a.paired)
  print(table)
  return table


if __name__ == "__main__":
  main()
