"""benchmarks/advantages_bench.py runs end to end on tiny sizes (so it cannot rot)."""

import importlib.util
import math
import os
import sys

import pytest

from rlvr_jax import advantages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
  spec = importlib.util.spec_from_file_location(
      "advantages_bench", os.path.join(ROOT, "benchmarks", "advantages_bench.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_estimator_benchmarks_and_matches_reference():
  bench = _bench()
  records = [rec for _, rec in bench.bench_rows(advantages.names(), [3], [8], reps=1,
                                                ref_reps=1, ref_budget=0.05)]
  assert [r["name"] for r in records] == advantages.names()
  for rec in records:
    assert rec["jit_s"] > 0 and rec["ref_s"] > 0 and math.isfinite(rec["speedup"])
    assert rec["b_ref"] >= 1
    if rec["name"] not in bench.RANDOM:
      assert rec["max_abs_diff"] < 1e-4, rec


def test_main_writes_the_table(tmp_path, monkeypatch):
  out = tmp_path / "table.md"
  monkeypatch.setattr(sys, "argv", ["advantages_bench.py", "--B=2,3", "--N=4", "--names=grpo",
                                    "--reps=1", "--ref_reps=1", f"--out={out}"])
  _bench().main()
  lines = out.read_text().splitlines()
  assert lines[0].startswith("device: cpu")
  table = [line for line in lines if line.startswith("| grpo |")]
  assert [line.split("|")[2:4] for line in table] == [[" 2 ", " 4 "], [" 3 ", " 4 "]]


def test_bound_failures_flags_each_bound():
  bench = _bench()
  ok = [dict(name="grpo", B=128, N=32, jit_s=0.001, speedup=2.0),
        dict(name="grpo", B=4096, N=32, jit_s=0.5, speedup=40.0),
        dict(name="grpo", B=256, N=8, jit_s=9.0, speedup=0.1)]  # no bound at this size
  assert bench.bound_failures(ok) == []
  slow = [dict(name="pkpo", B=128, N=32, jit_s=0.031, speedup=50.0),
          dict(name="bbg", B=4096, N=32, jit_s=0.1, speedup=9.5)]
  failures = bench.bound_failures(slow)
  assert len(failures) == 2 and "pkpo" in failures[0] and "bbg" in failures[1]


@pytest.mark.slow
def test_every_estimator_meets_the_speed_bounds():
  # Timing: medians of 16 jit calls and 3 reference runs, interleaved. Slow, and only
  # meaningful on an idle machine: run it with `pytest -m slow`.
  failures = _bench().check_bounds(advantages.names())
  assert not failures, failures
