"""rlvr_jax.sweep: grid expansion into locked configs, the run loop (skip, fail, parallel), the
launch commands, and the tables and plot against hand-computed values.

The run loop is exercised with a stand-in for `python` that writes a run's metrics.jsonl
(the real runs are exercised by tests/maze_experiment_test.py, which sweeps through it).
"""

import csv
import json
import math
import os
import stat

import pytest
import scipy.stats

from rlvr_jax import config_utils, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAZE = os.path.join(ROOT, "configs", "maze_tiny.py")


def test_grid_keys_go_to_config_args_or_fields_and_typos_fail_before_running(tmp_path):
  mod = sweep.load_config_module(MAZE)
  assert {"estimator", "k", "seed", "runlocal"} <= set(config_utils.accepted_args(mod.get_config))
  grid = sweep.parse_grid(["estimator=grpo,passk_analytical", "rl.temperature=0.7,1.0"])
  runs = sweep.plan(MAZE, str(tmp_path), grid, [("k", ["8"]), ("runlocal", ["true"])])
  assert [r.values for r in runs] == [
      {"estimator": "grpo", "rl.temperature": "0.7"}, {"estimator": "grpo", "rl.temperature": "1.0"},
      {"estimator": "passk_analytical", "rl.temperature": "0.7"},
      {"estimator": "passk_analytical", "rl.temperature": "1.0"}]
  r = runs[2]
  assert r.config_flag == f"{MAZE}:k=8,runlocal=true,estimator=passk_analytical"
  assert r.overrides == (("rl.temperature", "0.7"),)
  assert r.workdir == os.path.join(str(tmp_path), "runs", "estimator=passk_analytical,rl.temperature=0.7")
  config, _, _ = sweep.build(MAZE, "", {"estimator": "passk_analytical", "k": "8",
                                        "rl.temperature": "0.7", "seed": "3"})
  assert config.advantage.name == "passk_analytical" and config.advantage.k == 8
  assert config.rl.temperature == 0.7 and config.seed == 3
  with pytest.raises(AttributeError):  # locked: a later typo cannot add a field
    config.rl.temprature = 1.0
  with pytest.raises(ValueError, match="neither an argument of the config file nor a config field"):
    sweep.plan(MAZE, str(tmp_path), sweep.parse_grid(["rl.temprature=0.7"]))
  with pytest.raises(ValueError, match="no field 'rll'"):
    sweep.plan(MAZE, str(tmp_path), sweep.parse_grid(["rll.steps=3"]))
  with pytest.raises(ValueError, match="is a int"):
    sweep.plan(MAZE, str(tmp_path), sweep.parse_grid(["rl.steps=three"]))
  with pytest.raises(ValueError, match="given twice"):
    sweep.parse_grid(["seed=0", "seed=1"])
  with pytest.raises(ValueError, match="KEY=V1,V2"):
    sweep.parse_grid(["seed"])
  # Every estimator parameter is a field (rl/defaults.advantage_block): bbg's normalizers, the
  # modifiers, and a None default (easy_threshold) parsed as its type; bad values fail here.
  bbg = sweep.build(MAZE, "", {"estimator": "bbg", "advantage.gate_norm": "u0",
                               "advantage.mask_high_success": "true",
                               "advantage.easy_threshold": "0.9"})[0].advantage
  assert (bbg.gate_norm, bbg.mask_high_success, bbg.easy_threshold) == ("u0", True, 0.9)
  with pytest.raises(ValueError, match="gate_norm must be one of"):
    sweep.build(MAZE, "", {"estimator": "bbg", "advantage.gate_norm": "n"})
  with pytest.raises(ValueError, match="is a float"):
    sweep.build(MAZE, "", {"advantage.easy_threshold": "high"})
  tuples = sweep.build(MAZE, "", {"data.splits.train_sizes": "(5, 7)"})[0]
  assert tuples.data.splits.train_sizes == (5, 7)
  with pytest.raises(SystemExit, match="--baseline key 'estimator' is not a grid key"):
    sweep.main([f"--config={MAZE}", f"--workdir={tmp_path}", "--grid=seed=0,1",
                "--baseline=estimator=grpo", "--print_commands"])
  with pytest.raises(SystemExit, match="sweep: grid key 'advantage.nme'"):
    sweep.main([f"--config={MAZE}", f"--workdir={tmp_path}", "--grid=advantage.nme=grpo",
                "--print_commands"])


def test_launch_commands():
  runs = sweep.plan(MAZE, "/w", sweep.parse_grid(["seed=0,1"]))
  plain = sweep.launch_commands(runs)
  assert plain[1] == f"python -m rlvr_jax.main --config={MAZE}:seed=1 --workdir=/w/runs/seed=1"
  slurm = sweep.launch_commands(runs, "slurm")
  assert slurm[0].startswith("sbatch --job-name=seed=0 launch/slurm_gpu.sbatch --config=")
  pod = sweep.launch_commands(runs, "tpu_pod:my-v5p:us-east5-a")
  assert pod[0].startswith("launch/tpu_pod.sh my-v5p us-east5-a --config=")
  with pytest.raises(ValueError, match="--launcher"):
    sweep.launch_commands(runs, "kubernetes")


FAKE_MAIN = """#!/usr/bin/env python3
# Stands in for `python -m rlvr_jax.main`: writes two train records and one eval record whose
# values come from the run's seed and estimator, and fails for estimator=bad.
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[3:] if a.startswith("--") and "=" in a)
workdir, flag = args["workdir"], args["config"]
vals = dict(kv.split("=") for kv in flag.split(":", 1)[1].split(",") if "=" in kv)
if vals.get("estimator") == "bad":
  sys.exit(3)
seed, bonus = int(vals.get("seed", 0)), 0.5 if vals.get("estimator") == "passk_analytical" else 0
os.makedirs(workdir, exist_ok=True)
with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
  for step in (1, 2):
    f.write(json.dumps({"step": step, "phase": "train", "reward_mean": 0.1 * step + seed,
                        "loss": -seed}) + "\\n")
  f.write(json.dumps({"step": 2, "phase": "eval", "pass@1": 0.1 * seed + bonus,
                      "pass@2": 0.2 * seed + bonus}) + "\\n")
with open(os.path.join(os.path.dirname(workdir), "calls.txt"), "a") as f:
  f.write(os.path.basename(workdir) + "\\n")
"""


def _fake_python(tmp_path) -> str:
  path = tmp_path / "fake_python"
  path.write_text(FAKE_MAIN)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return str(path)


def test_runs_skip_when_done_and_tables_average_over_seeds(tmp_path):
  work = tmp_path / "sweep"
  runs = sweep.plan(MAZE, str(work), sweep.parse_grid(["estimator=grpo,passk_analytical",
                                                       "seed=0,1,2"]))
  python = _fake_python(tmp_path)
  sweep.execute(runs, parallel=2, progress=False, python=python)
  calls = (work / "runs" / "calls.txt").read_text().split()
  assert sorted(calls) == sorted(r.name for r in runs)
  assert all(sweep.is_done(r) for r in runs)
  sweep.execute(runs, progress=False, python=python)  # relaunched: nothing runs again
  assert len((work / "runs" / "calls.txt").read_text().split()) == 6
  table = sweep.summarize(runs, str(work), baseline="estimator=grpo")
  # grpo over seeds 0, 1, 2: final reward 0.2 + seed -> mean 1.2, sample std 1; pass@1 0.1 *
  # seed -> mean 0.1, std 0.1; passk_analytical adds 0.5 to pass@k. The 95% interval of a
  # mean of 3 is mean +- t_{0.975, 2} sd / sqrt(3), t_{0.975, 2} = 4.302653 (t tables):
  # 1.2 +- 2.484 = [-1.28, 3.68], 0.1 +- 0.2484 = [-0.148, 0.348].
  lines = table.splitlines()
  assert lines[0] == "| estimator | runs | loss | reward_mean | pass@1 | pass@2 |"
  assert lines[2] == ("| grpo | 3 | -1 ± 1 [-3.48, 1.48] | 1.2 ± 1 [-1.28, 3.68] | "
                      "0.1 ± 0.1 [-0.148, 0.348] | 0.2 ± 0.2 [-0.297, 0.697] |")
  assert lines[3].startswith("| passk_analytical | 3 | -1 ± 1 [-3.48, 1.48] | 1.2 ± 1 ")
  assert "| 0.6 ± 0.1 [0.352, 0.848] |" in lines[3]
  # Against grpo: pass@1 differs by 0.5 with sd 0.1 on both sides (3 seeds each), so Welch's
  # se = sqrt(0.01 / 3 + 0.01 / 3) = 0.08165, df = 4 exactly, t = 6.1237; t_{0.975, 4} =
  # 2.776445 (t tables) gives the interval 0.5 +- 0.2267; p = 2 sf_t4(6.1237).
  se = math.sqrt(0.02 / 3)
  assert se == pytest.approx(0.0816497, rel=1e-6)
  p_want = 2 * scipy.stats.t.sf(0.5 / se, 4)
  comp = [l for l in lines if l.startswith("| passk_analytical")][-1]
  assert comp == (f"| passk_analytical | 3 | +0.5 [+0.273, +0.727] p={p_want:.2g} | "
                  f"+0.5 [+0.0466, +0.953] p={2 * scipy.stats.t.sf(0.5 / (2 * se), 4):.2g} |")
  with open(work / "comparisons.csv") as f:
    comp_rows = list(csv.DictReader(f))
  assert [r["estimator"] for r in comp_rows] == ["passk_analytical"]
  assert float(comp_rows[0]["pass@1_ci_hi"]) == pytest.approx(0.5 + 2.776445 * se, rel=1e-6)
  assert float(comp_rows[0]["pass@1_p"]) == pytest.approx(p_want, rel=1e-5)
  # Paired over the shared seeds: the differences are all 0.5 (no spread but float rounding),
  # so p is ~0 where Welch's is 0.004.
  sweep.summarize(runs, str(work), baseline="estimator=grpo", paired=True)
  with open(work / "comparisons.csv") as f:
    paired = list(csv.DictReader(f))[0]
  assert float(paired["pass@1_diff"]) == pytest.approx(0.5) and float(paired["pass@1_p"]) < 1e-12
  assert sweep.compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], paired=True)[3] == 1.0
  with pytest.raises(ValueError, match="not a grid key other than 'seed'"):
    sweep.summarize(runs, str(work), baseline="seed=0")
  with open(work / "runs.csv") as f:
    per_run = list(csv.DictReader(f))
  assert len(per_run) == 6 and per_run[5]["seed"] == "2" and float(per_run[5]["pass@2"]) == 0.9
  with open(work / "summary.csv") as f:
    grouped = list(csv.DictReader(f))
  assert float(grouped[1]["pass@1_mean"]) == pytest.approx(0.6)
  assert float(grouped[1]["pass@1_std"]) == pytest.approx(0.1)
  assert float(grouped[1]["pass@1_ci_lo"]) == pytest.approx(0.6 - 4.302653 * 0.1 / math.sqrt(3),
                                                            rel=1e-6)
  assert (work / "sweep.png").stat().st_size > 1000


def test_a_failed_run_is_reported_and_not_marked_done(tmp_path):
  # 'bad' is not an estimator the config accepts (plan would refuse it): a run made by hand.
  good = sweep.plan(MAZE, str(tmp_path / "w"), sweep.parse_grid(["estimator=grpo"]))[0]
  bad = sweep.Run("estimator=bad", {"estimator": "bad"}, f"{MAZE}:estimator=bad", (),
                  str(tmp_path / "w" / "runs" / "estimator=bad"))
  with pytest.raises(RuntimeError, match=r"estimator=bad \(exit 3"):
    sweep.execute([good, bad], progress=False, python=_fake_python(tmp_path))
  assert sweep.is_done(good) and not sweep.is_done(bad)
  assert json.load(open(os.path.join(good.workdir, sweep.DONE_FILE)))["values"] == good.values
