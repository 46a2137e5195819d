"""experiments/boundary_tiny/run.py: each arm's config, the tables on hand-made rows, and the
whole path at minimal size (2 arms x 1 seed x 2 RL steps, n = 16 samples in chunks of 8)."""

import csv
import importlib.util
import json
import math
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _load_run():
  spec = importlib.util.spec_from_file_location(
      "boundary_run", os.path.join(ROOT, "experiments", "boundary_tiny", "run.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_each_arm_builds_the_config_it_names(tmp_path):
  from rlvr_jax import sweep
  run = _load_run()
  args = run.parse_args([f"--outdir={tmp_path}", "--seeds=0,1", "--steps=10"])
  runs = run.sweep_runs(args, "/ws/params", "/ws/workdir")
  assert [(r.values["arm"], r.values["seed"]) for r in runs] == [
      (a, s) for a in run.ARMS for s in ("0", "1")]
  assert len({r.workdir for r in runs}) == len(runs)
  got = {}
  for r in runs[::2]:
    c = sweep.build(run.CONFIG, r.config_flag.partition(":")[2], dict(r.overrides))[0]
    got[r.values["arm"]] = c
    assert c.eval.num_samples == 256 and c.eval.sample_chunk == 32
    assert c.eval.base_curve == "/ws/workdir" and c.warmstart.load_dir == "/ws/params"
    assert c.rl.steps == 10 and c.warmstart.steps == 0
  assert got["grpo"].advantage.name == "grpo" and not got["grpo"].advantage.mask_high_success
  assert got["high_masked"].advantage.mask_high_success is True
  assert got["high_masked"].advantage.high_success_min == 0.75
  z = got["zero_only"].advantage
  assert (z.name, z.k, z.zero_success_only) == ("bbg", 256, True)
  b = got["bbg"].advantage
  assert (b.name, b.k, b.zero_success_only, b.gate_norm, b.weight_norm) == (
      "bbg", 256, False, "n+1", "u1")
  assert (got["passk"].advantage.name, got["passk"].advantage.k) == ("passk_analytical", 4)
  assert got["adaptive_entropy"].advantage.name == "adaptive_entropy"
  s = got["schedule"]
  assert (s.advantage.name, s.schedule.switch_at, s.schedule.advantage.name) == (
      "passk_analytical", "5", "grpo")
  with pytest.raises(ValueError, match="unknown arm"):
    run.parse_args([f"--outdir={tmp_path}", "--arms=grpo,ppo"])
  with pytest.raises(ValueError, match="must divide"):
    run.parse_args([f"--outdir={tmp_path}", "--sample_chunk=48"])


def test_tables_by_hand():
  run = _load_run()
  rows = [{"arm": "warmstart", "seed": 0, "pass@1": 0.10, "pass@avg": 0.30}]
  rows += [{"arm": "grpo", "seed": s, "pass@1": v, "pass@avg": 0.30} for s, v in
           enumerate([0.20, 0.30, 0.40])]
  rows += [{"arm": "bbg", "seed": s, "pass@1": v, "pass@avg": w} for s, (v, w) in
           enumerate([(0.10, 0.40), (0.20, 0.50), (0.30, 0.60)])]
  text = run.summary_tables(rows)
  # grpo pass@1: mean 30, sd 10, interval 30 +- 4.302653 * 10 / sqrt(3) = 30 +- 24.8.
  assert "| grpo | 3 | 30.0 ± 10.0 [5.2, 54.8] | 30.0 ± 0.0 [30.0, 30.0] |" in text
  # bbg - grpo on pass@1: -10, Welch se = sqrt(2 * 0.01 / 3), df = 4; t_{0.975, 4} = 2.776445.
  half = 100 * 2.776445 * math.sqrt(0.02 / 3)
  assert f"| bbg | -10.0 [{-10 - half:+.1f}, {-10 + half:+.1f}]" in text
  # bbg against the warm start's value on pass@avg: +20, se 0.1 / sqrt(3), df 2.
  half0 = 100 * 4.302653 * 0.1 / math.sqrt(3)
  assert f"+20.0 [{20 - half0:+.1f}, {20 + half0:+.1f}]" in text


def test_experiment_end_to_end_minimal(tmp_path):
  run = _load_run()
  out = tmp_path / "exp"
  table = run.main([f"--outdir={out}", "--arms=grpo,zero_only", "--seeds=0", "--steps=2",
                    "--warmstart_steps=2", "--eval_samples=16", "--sample_chunk=8", "--smoke",
                    "--no_progress", f"--cache_dir={tmp_path / 'xla'}"])
  assert "| grpo | 1 |" in table and "| zero_only | 1 |" in table
  with open(out / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["arm"] for r in rows] == ["warmstart", "grpo", "zero_only"]
  for r in rows:
    vals = [float(r[f"pass@{k}"]) for k in (1, 2, 4, 8, 16)]
    assert vals == sorted(vals) and 0 <= vals[0] and vals[-1] <= 1
  # Every run keeps the warm start's evaluation as its base curve and plots against it.
  with open(out / "warmstart" / "base_eval.json") as f:
    base = json.load(f)
  assert base["pass@16"] == pytest.approx(float(rows[0]["pass@16"]), abs=1e-5)
  for arm in ("grpo", "zero_only"):
    wd = out / arm / "runs" / "seed=0"
    with open(wd / "base_eval.json") as f:
      assert json.load(f) == base
    assert (wd / "plots" / "passk_curve.png").exists()
    recs = [json.loads(l) for l in open(wd / "metrics.jsonl")]
    train_recs = [r for r in recs if r["phase"] == "train"]
    assert [r["step"] for r in train_recs] == [1, 2] and "hist/problems_seen" in train_recs[-1]
  # zero_only: every problem with a success is gated out of the loss.
  zero = [json.loads(l) for l in open(out / "zero_only" / "runs" / "seed=0" / "metrics.jsonl")]
  for r in (r for r in zero if r["phase"] == "train"):
    assert r["gated_frac"] == pytest.approx(1.0 - r["all_wrong_frac"])
  assert (out / "curves.png").exists() and (out / "sweep_summary.md").exists()
  again = run.main([f"--outdir={out}", "--summarize_only"])
  assert again == table
