"""The RL trainer end to end on maze_tiny (runlocal): one step, 1 vs 8 devices, resume, main."""

import json
import os
import runpy
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlvr_jax.rl import checkpointing, logger, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "maze_tiny.py")
# Wall-clock and throughput differ run to run; everything else must match exactly.
TIMING = {"time_sample_verify", "time_update", "time_step", "tokens_per_sec", "time_eval"}


def _config(arg: str, **overrides):
  # bbg gives failed responses of zero-success problems a negative advantage, so even a
  # barely warm-started policy (all rewards 0) gets a real, nonzero gradient.
  c = runpy.run_path(CONFIG)["get_config"](f"runlocal,estimator=bbg,{arg}")
  c.eval.at_start = False
  c.eval.at_end = False
  c.progress = False
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def _records(workdir: str, phase: str) -> list[dict]:
  return [r for r in logger.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if r["phase"] == phase]


def _strip(r: dict) -> dict:
  return {k: v for k, v in r.items() if k not in TIMING}


def _params(workdir: str, step: int):
  tree = ocp.PyTreeCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "tree"))
  return tree["state"]["params"]


def test_one_step_same_on_1_and_8_devices(tmp_path):
  assert jax.device_count() == 8, "tests/conftest.py should provide 8 fake CPU devices"
  one = _config("steps=1,warmstart_steps=2", num_devices=1)
  eight = _config("steps=1,warmstart_steps=2")
  eight.mesh.update(data=2, fsdp=2, tensor=2)  # data parallel, ZeRO-3 and tensor parallel at once
  m1 = train.run(one, str(tmp_path / "one"))
  m8 = train.run(eight, str(tmp_path / "eight"))
  assert np.isfinite(m1["loss"]) and m1["loss"] != 0.0 and m1["grad_norm"] > 0
  assert os.path.isdir(tmp_path / "one" / "checkpoints" / "1")
  for a, b in zip(_records(str(tmp_path / "one"), "warmstart"),
                  _records(str(tmp_path / "eight"), "warmstart")):
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
  # Same key -> same samples on any mesh, so the rewards agree exactly and the loss to rounding.
  assert m8["reward_mean"] == m1["reward_mean"] and m8["response_len_mean"] == m1["response_len_mean"]
  for k in ("loss", "pg_loss", "entropy", "grad_norm", "approx_kl"):
    np.testing.assert_allclose(m8[k], m1[k], rtol=1e-4, atol=1e-7, err_msg=k)


class _StopAfter(checkpointing.StopFlag):
  """A preemption that arrives once `n` steps are done (checked at each step boundary)."""

  def __init__(self, workdir: str, n: int):
    super().__init__()
    self.path, self.n = os.path.join(workdir, "metrics.jsonl"), n

  def __bool__(self) -> bool:
    return os.path.exists(self.path) and len(_records(os.path.dirname(self.path), "train")) >= self.n


def test_resume_after_kill_matches_straight_run(tmp_path):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  train.run(_config("steps=3,warmstart_steps=2"), straight)
  train.run(_config("steps=3,warmstart_steps=2"), resumed, stop=_StopAfter(resumed, 2))
  assert sorted(os.listdir(os.path.join(resumed, "checkpoints"))) == ["1", "2"]
  train.run(_config("steps=3,warmstart_steps=2"), resumed)
  a, b = _records(straight, "train"), _records(resumed, "train")
  assert [r["step"] for r in b] == [1, 2, 3]
  assert [_strip(r) for r in a] == [_strip(r) for r in b]
  pa, pb = _params(straight, 3), _params(resumed, 3)
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_array_equal(x, y)
  assert any(np.any(x != y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(_params(straight, 2))))


def test_sigterm_sets_the_stop_flag():
  flag = checkpointing.StopFlag().install()
  try:
    assert not flag
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag
  finally:
    flag.uninstall()


def test_main_command_leaves_metrics_plots_and_checkpoint(tmp_path):
  workdir = str(tmp_path / "w")
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "rlvr_jax.main",
                         "--config=configs/maze_tiny.py:runlocal", f"--workdir={workdir}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  recs = logger.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in recs if r["phase"] == "train"] == [1, 2, 3]
  evals = [r for r in recs if r["phase"] == "eval"]
  assert [r["step"] for r in evals] == [0, 3] and all(0 <= r["pass@1"] <= 1 for r in evals)
  for name in ("train.png", "eval.png", "warmstart.png", "passk_curve.png"):
    assert os.path.getsize(os.path.join(workdir, "plots", name)) > 1000
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "3"))
  assert any(f.startswith("events") for f in os.listdir(os.path.join(workdir, "tensorboard")))
