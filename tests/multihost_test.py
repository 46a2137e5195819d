"""Multi-process training with real processes: 2 JAX processes on localhost (4 fake CPU devices
each, one mesh over all 8) against 1 process on 8 devices, SIGTERM and resume, and a dead peer.

Each run is `python -m rlvr_jax.main` on `configs/maze_tiny.py:runlocal` with 8 prompts a step
(the prompt batch must split over the 8 data-parallel devices) and a small entropy bonus, so that
every step has a nonzero loss and gradient even when a barely warm-started policy solves nothing.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlvr_jax import multihost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FLAGS = ["--config=configs/maze_tiny.py:runlocal", "--config.rl.batch_prompts=8",
             "--config.rl.mini_batch_prompts=4",
             "--config.loss.entropy_coef=0.01", "--config.progress=False",
             "--config.plot_at_end=False", "--config.checkpoint.every=1"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, cache_dir: str) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             # The restarted runs compile the same programs: reuse them.
             JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return env


def _start(workdir: str, steps: int, processes: int, cache_dir: str,
           extra: tuple[str, ...] = ()) -> list[subprocess.Popen]:
  port = _free_port()
  procs = []
  for i in range(processes):
    cmd = [sys.executable, "-m", "rlvr_jax.main", f"--workdir={workdir}", *RUN_FLAGS,
           f"--config.rl.steps={steps}", *extra]
    if processes > 1:
      cmd += [f"--coordinator_address=localhost:{port}", f"--num_processes={processes}",
              f"--process_id={i}", "--heartbeat_timeout_s=10"]
    log = open(f"{workdir}.p{i}.log", "w")
    procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(8 // processes, cache_dir),
                                  stdout=log, stderr=subprocess.STDOUT))
  return procs


def _wait(procs: list[subprocess.Popen], workdir: str, timeout: float = 600) -> None:
  for i, p in enumerate(procs):
    rc = p.wait(timeout=timeout)
    if rc != 0:
      with open(f"{workdir}.p{i}.log") as f:
        tail = f.read()[-3000:]
      raise AssertionError(f"process {i} of {workdir} exited {rc}:\n{tail}")


def _records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _train_records(workdir: str) -> dict[int, dict]:
  return {r["step"]: r for r in _records(workdir) if r["phase"] == "train"}


def _state(workdir: str, step: int) -> dict:
  path = os.path.join(workdir, "checkpoints", str(step), "tree")
  with ocp.PyTreeCheckpointer() as ckptr:
    meta = ckptr.metadata(path).item_metadata.tree
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
    return ckptr.restore(path, restore_args=args)["state"]


def _wait_for_train_step(workdir: str, procs: list[subprocess.Popen], timeout: float = 600):
  t0 = time.time()
  while time.time() - t0 < timeout:
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")) and _train_records(workdir):
      return
    if any(p.poll() is not None for p in procs):
      raise AssertionError(f"a process of {workdir} ended before its first RL step")
    time.sleep(0.5)
  raise AssertionError(f"no RL step in {workdir} after {timeout} s")


def _assert_params_close(a: dict, b: dict) -> None:
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a["params"]),
                          jax.tree.leaves(b["params"])):
    # float32 rounding: the gradient all-reduce adds the devices' parts in another order
    # across processes than within one.
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  assert int(a["step"]) == int(b["step"])


def test_launcher_detection_and_flag_checks():
  assert multihost.launcher_detected({}) is None
  assert multihost.launcher_detected({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
  assert multihost.launcher_detected({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == "slurm"
  assert multihost.launcher_detected({"OMPI_MCA_orte_hnp_uri": "x",
                                      "OMPI_COMM_WORLD_SIZE": "2"}) == "openmpi"
  assert multihost.launcher_detected({"TPU_WORKER_HOSTNAMES": "w0"}) is None
  assert multihost.launcher_detected({"TPU_WORKER_HOSTNAMES": "w0,w1"}) == "gke-tpu"
  # What libtpu leaves in the variable on a machine without TPU workers (a comma inside).
  libtpu_warning = ("WARNING: could not determine TPU worker hostnames or IP addresses, please "
                    "set env var `TPU_WORKER_HOSTNAMES` manually")
  assert multihost.launcher_detected({"TPU_WORKER_HOSTNAMES": libtpu_warning}) is None
  with pytest.raises(ValueError, match="go together"):
    multihost.initialize("localhost:1234", None, None)
  with pytest.raises(ValueError, match="not in"):
    multihost.initialize("localhost:1234", 2, 2)
  # One process and no launcher: nothing to start, the functions are the identity.
  assert multihost.initialize() is False
  assert multihost.gather({"x": np.arange(3)})["x"].tolist() == [0, 1, 2]
  assert multihost.max_over(5) == 5 and multihost.any_process(False) is False


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory) -> str:
  """One persistent compilation cache for every run of these tests (xdist workers too)."""
  return str(tmp_path_factory.getbasetemp().parent / "multihost_xla_cache")


def test_two_processes_equal_one_through_sigterm_and_resume(tmp_path, xla_cache):
  """1 process on 8 devices runs 3 steps; 2 processes on 4 each get a SIGTERM after their
  first step (they agree on the step to stop at, save and exit 0) and are started again,
  resume and finish. Every step's metrics and the final parameters equal the 1-process run."""
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  steps = 3
  _wait(_start(one, steps, 1, xla_cache), one)
  procs = _start(two, steps, 2, xla_cache)
  _wait_for_train_step(two, procs)
  for p in procs:
    p.send_signal(signal.SIGTERM)
  _wait(procs, two)
  stopped = max(_train_records(two))
  assert stopped < steps, "the SIGTERM came too late to stop the run mid-way"
  assert os.path.isdir(os.path.join(two, "checkpoints", str(stopped)))
  _wait(_start(two, steps, 2, xla_cache), two)
  rec1, rec2 = _train_records(one), _train_records(two)
  assert sorted(rec1) == sorted(rec2) == [1, 2, 3]
  for s in rec1:
    for key in ("reward_mean", "acc_mean", "zero_var_frac", "response_len_mean",
                "entropy_rollouts", "rollout_tokens", "loss", "grad_norm", "clip_frac_high",
                "approx_kl", "eta_mean", "prompt_batches",
                # the per-problem history: each process's own problems, saved per process
                "hist/problems_seen", "hist/ever_solved_frac", "hist/unsolved_first_frac"):
      np.testing.assert_allclose(rec2[s][key], rec1[s][key], rtol=1e-5, atol=1e-7,
                                 err_msg=f"step {s} {key}")
  # The check has teeth: every step has a gradient, and the rollouts are not all alike.
  assert all(rec1[s]["grad_norm"] > 0 for s in rec1)
  assert rec1[1]["response_len_max"] > rec1[1]["response_len_mean"]
  _assert_params_close(_state(two, steps), _state(one, steps))
  eval1 = [r for r in _records(one) if r["phase"] == "eval"][-1]
  eval2 = [r for r in _records(two) if r["phase"] == "eval"][-1]
  assert eval1["step"] == eval2["step"] == steps
  for k in ("pass@1", "pass@4"):  # evaluation: each process samples its block of each chunk
    assert eval2[k] == pytest.approx(eval1[k], abs=1e-6)


def test_dead_process_stops_the_other(tmp_path, xla_cache):
  work = str(tmp_path / "dead")
  procs = _start(work, 50, 2, xla_cache, ("--config.warmstart.steps=0",
                                           "--config.eval.at_start=False"))
  try:
    _wait_for_train_step(work, procs)
    procs[1].kill()
    t0 = time.time()
    rc = procs[0].wait(timeout=120)
    waited = time.time() - t0
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert rc != 0
  # Heartbeat timeout 10 s: the survivor is told the other task died, well before 120 s.
  assert waited < 60, waited
  with open(f"{work}.p0.log") as f:
    log = f.read()
  assert "another task died" in log or "heartbeat" in log, log[-2000:]
