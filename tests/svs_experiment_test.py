"""experiments/svs_tiny/run.py: its statistics by hand, and its whole path at minimal size."""

import csv
import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _load_run():
  spec = importlib.util.spec_from_file_location(
      "svs_experiment_run", os.path.join(ROOT, "experiments", "svs_tiny", "run.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_summary_statistics_by_hand(tmp_path):
  run = _load_run()
  # pass@1 of svs 0.02, 0.03, 0.05 and rlvr 0.01, 0.02, 0.03 at step 4, seeds 0..2.
  ev = [{"algorithm": "warmstart", "seed": 0, "step": 0, "pass@1": 0.1, "pass@2": 0.2}]
  tr = []
  for alg, vals in (("svs", (0.02, 0.03, 0.05)), ("rlvr", (0.01, 0.02, 0.03))):
    for seed, v in enumerate(vals):
      ev.append({"algorithm": alg, "seed": seed, "step": 4, "pass@1": v, "pass@2": 2 * v})
      for step in range(1, 5):
        tr.append({"algorithm": alg, "seed": seed, "step": step, "entropy_rollouts": v,
                   "reward_mean": v, "updates": 2.0 if alg == "rlvr" else 5.0})
  from rlvr_jax import sweep
  sweep.write_rows(ev, str(tmp_path / "results.csv"))
  sweep.write_rows(tr, str(tmp_path / "train.csv"))
  table = run.main([f"--outdir={tmp_path}", "--summarize_only", "--steps=4", "--eval_samples=2",
                    "--cache_dir="])
  # rlvr pass@1: mean 2 %, sample std 1 %; with 2 dof the t CDF is 1/2 + t / (2 sqrt(t^2 + 2)),
  # so its 0.975 quantile is t = 0.95 sqrt(2 / (1 - 0.95^2)) = 4.3027: 2 ± 4.3027 / sqrt(3).
  assert "| rlvr (step 4) | 3 | 2.0 ± 1.0 [-0.5, 4.5] |" in table
  # Paired differences 1, 1, 2 points (mean 4/3, sd 1/sqrt(3)): t = 4 at 2 dof, two-sided
  # p = 1 - 4 / sqrt(18) = 0.0572.
  line = next(x for x in table.splitlines() if x.startswith("| pass@1 at step 4"))
  assert line.split("|")[-2].strip() == "0.057"
  assert "svs 5.0, rlvr 2.0" in table
  assert os.path.getsize(tmp_path / "curves.png") > 10_000


def test_smoke_runs_both_arms_from_one_warm_start(tmp_path):
  run = _load_run()
  table = run.main([f"--outdir={tmp_path}", "--smoke", "--no_progress", "--cache_dir=",
                    "--steps=1", "--eval_every=1", "--seeds=0"])
  assert "| svs (step 1) | 1 |" in table and "| rlvr (step 1) | 1 |" in table
  ev = list(csv.DictReader(open(tmp_path / "results.csv", encoding="utf-8")))
  assert sorted({(r["algorithm"], r["step"]) for r in ev}) == [
      ("rlvr", "1"), ("svs", "1"), ("warmstart", "0")]
  tr = list(csv.DictReader(open(tmp_path / "train.csv", encoding="utf-8")))
  svs_rows = [r for r in tr if r["algorithm"] == "svs"]
  assert len(svs_rows) == 1 and "svs/contexts" in svs_rows[0]
  assert all("svs/contexts" not in r or not r["svs/contexts"] for r in tr
             if r["algorithm"] == "rlvr")
  assert os.path.getsize(tmp_path / "curves.png") > 10_000
