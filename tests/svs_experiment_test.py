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


def test_interval_and_tests_by_hand():
  run = _load_run()
  m, s, lo, hi = run.interval(np.array([1.0, 2.0, 3.0]))
  # mean 2, sample std 1; with 2 dof the t CDF is 1/2 + t / (2 sqrt(t^2 + 2)), so its 0.975
  # quantile solves t / sqrt(t^2 + 2) = 0.95: t = 0.95 sqrt(2 / (1 - 0.95^2)) = 4.302653.
  assert (m, s) == (2.0, 1.0)
  assert lo == pytest.approx(2 - 4.302653 / 3 ** 0.5, rel=1e-6)
  assert hi == pytest.approx(2 + 4.302653 / 3 ** 0.5, rel=1e-6)
  # Paired differences 1, 1, 2 (mean 4/3, sd 1/sqrt(3)): t = 4 at 2 dof, two-sided
  # p = 1 - 4 / sqrt(18) = 0.05719.
  d, _, paired = run.tests(np.array([2.0, 3.0, 5.0]), np.array([1.0, 2.0, 3.0]))
  assert d == pytest.approx(4 / 3) and paired == pytest.approx(0.05719, abs=2e-5)


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
