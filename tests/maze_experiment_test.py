"""experiments/maze_tiny/run.py: the table / CSV / plot code, and its whole path at minimal size."""

import csv
import importlib.util
import math
import os

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _load_run():
  spec = importlib.util.spec_from_file_location(
      "maze_experiment_run", os.path.join(ROOT, "experiments", "maze_tiny", "run.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _record(step: int, p1: dict, p8: dict) -> dict:
  """An eval record as train.run writes it: per-set and set-averaged pass@k."""
  r = {"step": step, "phase": "eval"}
  for name in p1:
    for k in (1, 2, 4, 8):
      r[f"{name}/pass@{k}"] = p1[name] + (p8[name] - p1[name]) * (k - 1) / 7
  for k in (1, 2, 4, 8):
    r[f"pass@{k}"] = sum(r[f"{n}/pass@{k}"] for n in p1) / len(p1)
  return r


def test_rows_table_and_plot(tmp_path):
  run = _load_run()
  rows = run.rows_of([_record(0, {"size5": 0.5, "size7": 0.1}, {"size5": 0.9, "size7": 0.3})],
                     "warmstart", 0)
  for seed, (a, b) in enumerate([(0.6, 0.2), (0.8, 0.4)]):
    rows += run.rows_of([_record(0, {"size5": 0.5, "size7": 0.1}, {"size5": 0.9, "size7": 0.3}),
                         _record(3, {"size5": a, "size7": b}, {"size5": 1.0, "size7": 0.5})],
                        "grpo", seed)
  # 2 sets + their mean, per eval record.
  assert len(rows) == 3 + 2 * 2 * 3
  mean_row = [r for r in rows if r["estimator"] == "grpo" and r["seed"] == 1 and r["step"] == 3
              and r["set"] == "mean"][0]
  assert mean_row["pass@1"] == pytest.approx((0.8 + 0.4) / 2)
  assert mean_row["pass@8"] == pytest.approx(0.75)
  table = run.summary_table(rows, ["grpo", "passk_full"], final_step=3)
  lines = table.splitlines()
  assert lines[0].startswith("| policy | seeds | size5 pass@1")
  assert len(lines) == 4  # header, rule, warm start, grpo (passk_full has no rows)
  # size5 pass@1 over seeds 0.6, 0.8: mean 70.0, sample std sqrt(2 * 0.1^2 / 1) = 14.1.
  assert "| grpo (step 3) | 2 | 70.0 ± 14.1 | 100.0 ± 0.0 |" in lines[3]
  # Welch's test on hand-made seeds: a = (1, 2, 3), b = (4, 6, 8): diff -4, variances of the
  # means 1/3 and 4/3, se = sqrt(5/3), t = -4 / se, df = (5/3)^2 / ((1/3)^2 / 2 + (4/3)^2 / 2)
  # = 50/17. Two-sided p = I_{df / (df + t^2)}(df / 2, 1 / 2), integrated here numerically.
  d, lo, hi, p = run.welch(np.array([1.0, 2.0, 3.0]), np.array([4.0, 6.0, 8.0]))
  se, df = np.sqrt(5 / 3), 50 / 17
  assert d == -4.0 and hi - d == pytest.approx(d - lo)
  assert p == pytest.approx(_t_two_sided(4 / se, df), abs=1e-5)
  assert _t_two_sided((hi - d) / se, df) == pytest.approx(0.05, abs=1e-5)  # a 95% interval
  path = tmp_path / "r.csv"
  run.write_csv(rows, str(path))
  with open(path) as f:
    back = list(csv.DictReader(f))
  assert len(back) == len(rows) and float(back[-1]["pass@8"]) == pytest.approx(rows[-1]["pass@8"])
  run.plot_curves(rows, ["grpo"], str(tmp_path / "c.png"))
  assert (tmp_path / "c.png").stat().st_size > 1000
  # --summarize_only: the tables again from results.csv, the first line of summary.md kept.
  # Mean pass@1 over sizes per seed 0.4, 0.6: mean 50.0, sd 14.1, and the 95% interval
  # 50 +- t_{0.975, 1} 14.14 / sqrt(2) = 50 +- 12.7062 * 10 = [-77.1, 177.1].
  run.write_csv(rows, str(tmp_path / "results.csv"))
  (tmp_path / "summary.md").write_text("steps=3 seeds=[0, 1] total time 1.0 min\nold\n")
  run.main([f"--outdir={tmp_path}", "--estimators=grpo", "--seeds=0,1", "--steps=3",
            "--summarize_only"])
  text = (tmp_path / "summary.md").read_text()
  assert text.startswith("steps=3 seeds=[0, 1] total time 1.0 min\n\n| policy |")
  assert "| 50.0 ± 14.1 [-77.1, 177.1] |" in text


def _t_two_sided(t: float, df: float) -> float:
  """P(|T| > t) for Student's t with df degrees of freedom, by the regularized incomplete beta
  function I_x(df/2, 1/2) at x = df / (df + t^2), integrated with the midpoint rule."""
  x, a, b = df / (df + t * t), df / 2, 0.5
  u = (np.arange(2_000_000) + 0.5) / 2_000_000 * x
  log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
  return float(np.sum(u ** (a - 1) * (1 - u) ** (b - 1)) * x / 2_000_000 / math.exp(log_beta))


def test_bad_args():
  run = _load_run()
  with pytest.raises(ValueError, match="steps"):
    run.parse_args(["--outdir=/tmp/x", "--steps=0"])


def test_experiment_end_to_end_minimal(tmp_path):
  """Warm start, 2 estimators x 1 seed x 1 RL step on 5x5 mazes, then CSV, table and plot."""
  run = _load_run()
  out = tmp_path / "exp"
  table = run.main([f"--outdir={out}", "--estimators=grpo,passk_analytical", "--seeds=0",
                    "--steps=1", "--eval_every=0", "--warmstart_steps=2", "--smoke",
                    "--no_progress", f"--cache_dir={tmp_path / 'xla'}"])
  for e in ("grpo", "passk_analytical"):
    assert f"| {e} (step 1) | 1 |" in table
    assert (out / "runs" / f"estimator={e},seed=0" / "metrics.jsonl").exists()
  with open(out / "results.csv") as f:
    rows = list(csv.DictReader(f))
  # warm start (step 0) + 2 runs x step 1, each: size5 + mean.
  assert len(rows) == 2 + 2 * 2
  assert {r["set"] for r in rows} == {"size5", "mean"}
  for r in rows:
    assert 0.0 <= float(r["pass@1"]) <= float(r["pass@8"]) <= 1.0
  assert (out / "curves.png").exists() and (out / "summary.md").exists()
