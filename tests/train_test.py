"""The RL trainer end to end on maze_tiny (runlocal): 1 vs 8 devices, estimator schedule,
SIGTERM + exact resume, dynamic sampling, crash-safe checkpoints, the README's main command.

Runs in one process share compiled programs through a persistent compilation cache (a
directory of this test session), so only the first run of each mesh pays for compiles.
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax._src import compilation_cache

from rlvr_jax import tasks
from rlvr_jax.rl import batch as batch_lib, checkpointing, logger, rollout, train, warmstart

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "maze_tiny.py")
# Wall-clock and throughput differ run to run; everything else must match exactly.
TIMING = {"time_sample", "time_verify", "time_logprobs", "time_update", "time_step", "tokens_per_sec",
          "time_eval"}


@pytest.fixture(scope="module", autouse=True)
def compilation_cache_dir(tmp_path_factory):
  # One directory a session: under xdist the basetemp's parent is shared by its workers.
  base = tmp_path_factory.getbasetemp()
  path = str((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "jax_cache_train")
  saved = {k: getattr(jax.config, k) for k in (
      "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
      "jax_persistent_cache_min_entry_size_bytes")}
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  compilation_cache.reset_cache()  # the cache decides once whether it is on: ask again
  yield path
  for k, v in saved.items():
    jax.config.update(k, v)
  compilation_cache.reset_cache()


def _config(**overrides):
  """maze_tiny:runlocal with a 2-step warm start, bbg, and the estimator toggled to grpo for
  the second step only (schedule.switch_at = "1,2": step indices 1 and 2 toggle).

  bbg gives failed responses of zero-success problems a negative advantage, so even a barely
  warm-started policy (all rewards 0) gets a real, nonzero gradient; grpo gives it none.
  """
  c = runpy.run_path(CONFIG)["get_config"]("runlocal,estimator=bbg,warmstart_steps=2,steps=3")
  c.eval.at_start = False
  c.eval.at_end = False
  c.progress = False
  c.plot_at_end = False
  c.schedule.switch_at = "1,2"
  c.schedule.advantage = {"name": "grpo"}
  c.checkpoint.every = 10  # saves come only from the last step or a stop
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def _sharded(c):
  c.mesh.update(data=2, fsdp=2, tensor=2)  # data parallel, ZeRO-3 and tensor parallel at once
  return c


def _records(workdir, phase: str) -> list[dict]:
  path = os.path.join(str(workdir), "metrics.jsonl")
  return [r for r in logger.read_jsonl(path) if r["phase"] == phase]


def _strip(r: dict) -> dict:
  return {k: v for k, v in r.items() if k not in TIMING}


def _params(workdir, step: int):
  """A checkpoint's params as host NumPy arrays (no device placement to ask orbax for)."""
  path = os.path.join(str(workdir), "checkpoints", str(step), "tree")
  with ocp.PyTreeCheckpointer() as ckptr:
    meta = ckptr.metadata(path)
    meta = getattr(getattr(meta, "item_metadata", meta), "tree", meta)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
    tree = ckptr.restore(path, restore_args=as_numpy)
  return tree["state"]["params"]


def test_estimator_at_toggles_at_each_switch():
  c = _config()
  names = [train.estimator_at(c, s).name for s in range(4)]
  assert names == ["bbg", "grpo", "bbg", "bbg"]
  c.schedule.switch_at = ""
  assert {train.estimator_at(c, s).name for s in range(4)} == {"bbg"}


def _sigterm_on_call(monkeypatch, n: int) -> list:
  """Sends this process a real SIGTERM right after the n-th rollout (mid-step n)."""
  calls, original = [], rollout.generate

  def generate(*args, **kwargs):
    out = original(*args, **kwargs)
    calls.append(1)
    if len(calls) == n:
      # Without the trainer's handler SIGTERM would kill the test process: check it is there.
      assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
      os.kill(os.getpid(), signal.SIGTERM)
    return out

  monkeypatch.setattr(rollout, "generate", generate)
  return calls


def test_1_vs_8_devices_schedule_sigterm_and_exact_resume(tmp_path, monkeypatch):
  """One test, so the 8-device run is both the 1-device run's twin and the straight run
  that the resumed one must reproduce (each run here costs minutes of compile on 2 cores)."""
  assert jax.device_count() == 8, "tests/conftest.py should provide 8 fake CPU devices"
  m1 = train.run(_config(num_devices=1), str(tmp_path / "one"))
  m8 = train.run(_sharded(_config()), str(tmp_path / "eight"))
  assert np.isfinite(m1["loss"]) and np.isfinite(m8["loss"])
  assert os.listdir(tmp_path / "one" / "checkpoints") == ["3"]
  for a, b in zip(_records(tmp_path / "one", "warmstart"), _records(tmp_path / "eight", "warmstart"),
                  strict=True):
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
  one, eight = _records(tmp_path / "one", "train"), _records(tmp_path / "eight", "train")
  assert [r["step"] for r in one] == [r["step"] for r in eight] == [1, 2, 3]
  # Step 1 is a real update (bbg): nonzero loss and gradient.
  assert one[0]["loss"] != 0.0 and one[0]["grad_norm"] > 0
  # Same key -> same samples on any mesh, so the rewards agree exactly and the loss to rounding.
  a, b = one[0], eight[0]
  assert (a["reward_mean"], a["response_len_mean"]) == (b["reward_mean"], b["response_len_mean"])
  for k in ("loss", "pg_loss", "entropy", "grad_norm", "approx_kl", "adv_abs_mean"):
    np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-7, err_msg=k)
  # The schedule: bbg, grpo, bbg. bbg gives the failed responses of zero-success problems a
  # nonzero advantage; grpo gives zero-variance groups exactly zero. The barely warm-started
  # policy solves nearly nothing; the lines below check that before relying on it.
  for recs in (one, eight):
    assert [r["estimator_index"] for r in recs] == [0.0, 1.0, 0.0]
    assert recs[0]["all_wrong_frac"] > 0 and recs[2]["all_wrong_frac"] > 0
    assert recs[0]["adv_abs_mean"] > 0 and recs[2]["adv_abs_mean"] > 0
    assert recs[1]["zero_var_frac"] == 1.0
    assert recs[1]["adv_abs_mean"] == 0.0 and recs[1]["loss"] == 0.0 and recs[1]["grad_norm"] == 0.0
  # SIGTERM mid-step 2 of the same 8-device run, then resume: identical to the straight run.
  straight, resumed = tmp_path / "eight", tmp_path / "resumed"
  handler_before = signal.getsignal(signal.SIGTERM)
  with monkeypatch.context() as m:
    calls = _sigterm_on_call(m, 2)
    train.run(_sharded(_config()), str(resumed))
  # The step that was running finished, was saved (every=10: only the stop saves) and run()
  # returned normally, with the previous SIGTERM handler back.
  assert len(calls) == 2 and signal.getsignal(signal.SIGTERM) == handler_before
  assert os.listdir(resumed / "checkpoints") == ["2"]
  assert [r["step"] for r in _records(resumed, "train")] == [1, 2]
  train.run(_sharded(_config()), str(resumed))
  a, b = _records(straight, "train"), _records(resumed, "train")
  assert [r["step"] for r in b] == [1, 2, 3]
  assert [_strip(r) for r in a] == [_strip(r) for r in b]
  # The resumed run skipped the warm start (it restored instead).
  assert len(_records(resumed, "warmstart")) == len(_records(straight, "warmstart"))
  pa, pb = _params(straight, 3), _params(resumed, 3)
  jax.tree.map(np.testing.assert_array_equal, pa, pb)
  p2 = _params(resumed, 2)
  assert any(np.any(x != y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(p2)))


def test_sigterm_in_warm_start_stops_and_a_finished_warm_start_is_reused(tmp_path, monkeypatch):
  # A stop (SIGTERM) during the first warm-start step ends the run at the next step boundary:
  # nothing saved, no RL step.
  work = tmp_path / "w"
  stop, batches, original = checkpointing.StopFlag(), [], warmstart.sft_batch

  def sft_batch(*args, **kwargs):
    batches.append(1)
    stop.set()
    return original(*args, **kwargs)

  with monkeypatch.context() as m:
    m.setattr(warmstart, "sft_batch", sft_batch)
    assert train.run(_config(), str(work), stop=stop) == {}
  assert len(batches) == 1
  assert not warmstart.saved(str(work / "warmstart"))
  assert _records(work, "train") == [] and not os.listdir(work / "checkpoints")
  # A finished warm start is saved; a run stopped before its first checkpoint reuses it
  # rather than warm-starting again.
  train.run(_config(**{"rl.steps": 0}), str(work))
  assert warmstart.saved(str(work / "warmstart"))
  assert [r["step"] for r in _records(work, "warmstart")] == [2]  # log_every = 2
  with monkeypatch.context() as m:
    m.setattr(warmstart, "run", lambda *a, **k: pytest.fail("warm start ran again"))
    train.run(_config(**{"rl.steps": 0}), str(work))
  assert [r["step"] for r in _records(work, "warmstart")] == [2]


def _rollouts(rewards_BxN, finished_R=None):
  r = np.asarray(rewards_BxN, np.float32)
  b, n = r.shape
  z = np.zeros((b * n, 2), np.int32)
  finished_R = np.ones(b * n, bool) if finished_R is None else np.asarray(finished_R, bool)
  return rollout.Rollouts(examples=list(range(b)), prompt_BxP=np.zeros((b, 3), np.int32),
                          prompt_mask_BxP=np.ones((b, 3), np.int32), tokens_RxT=z, mask_RxT=z,
                          logprobs_RxT=z.astype(np.float32),
                          sampling_logprobs_RxT=z.astype(np.float32),
                          entropy_RxT=z.astype(np.float32), lengths_R=np.zeros(b * n, np.int32),
                          finished_R=finished_R, responses=[""] * (b * n), rewards_BxN=r)


def test_sample_groups_puts_varied_groups_first_and_marks_fillers_invalid():
  parts = iter([_rollouts([[0, 0], [1, 0], [1, 1]]), _rollouts([[0, 0], [0, 1], [1, 1]])])
  spec = batch_lib.BatchSpec(generate=lambda p, ex, k: next(parts), batch_prompts=3,
                             dynamic_sampling=True, max_tries=2)
  picked, valid_BxN, counts = batch_lib.sample_groups(None, jax.random.PRNGKey(0), spec,
                                                      lambda: [None] * 3)
  # Concatenated groups 0..5; varied ones are 1 and 4; then the first flat one fills (2 tries,
  # the bound, give only 2 varied groups of the 3 wanted).
  assert picked.examples == [1, 1, 0] and counts["dyn_filled_groups"] == 1
  assert counts["sampling_tries"] == 2
  np.testing.assert_array_equal(valid_BxN, [[True, True], [True, True], [False, False]])
  np.testing.assert_array_equal(picked.rewards_BxN, [[1, 0], [0, 1], [0, 0]])
  spec = batch_lib.BatchSpec(generate=lambda p, ex, k: _rollouts([[0, 0], [1, 0], [1, 1]]),
                             batch_prompts=3)
  _, valid_BxN, counts = batch_lib.sample_groups(None, jax.random.PRNGKey(0), spec,
                                                 lambda: [None] * 3)
  assert valid_BxN.all() and counts["dyn_filled_groups"] == 0


def test_group_variance_rule_counts_only_valid_rollouts():
  # With mask_truncated, a group whose only differing rollout was truncated has no signal.
  ro = _rollouts([[1, 0], [1, 1], [0, 1]], finished_R=[True, False, True, True, True, True])
  valid_BxN = batch_lib.rollout_validity(ro, mask_truncated=True)
  np.testing.assert_array_equal(valid_BxN, [[True, False], [True, True], [True, True]])
  np.testing.assert_array_equal(batch_lib.varied_groups(ro, valid_BxN), [False, False, True])
  np.testing.assert_array_equal(batch_lib.varied_groups(ro, np.ones((3, 2), bool)),
                                [True, False, True])


def test_dynamic_sampling_refills_with_bounded_tries_and_hf_export(tmp_path, monkeypatch):
  # Rewards by verifier call: step 1 has 2 varied groups of 4 per try (2 tries fill the
  # batch), step 2 none (3 tries, the bound, then 4 flat fillers that do not count).
  calls = []

  def verify_batch(task, responses, examples, pool=None):
    calls.append(len(responses))
    r_BxN = np.zeros((len(responses) // 4, 4), np.float32)
    if len(calls) <= 2:
      r_BxN[:2, 0] = 1.0
    return r_BxN.reshape(-1), {"timeouts": 0, "errors": 0}

  monkeypatch.setattr(tasks, "verify_batch", verify_batch)
  c = _sharded(_config(**{"rl.steps": 2, "rl.dynamic_sampling": True, "rl.max_sampling_tries": 3,
                          "advantage": {"name": "grpo"}, "schedule.switch_at": "",
                          "checkpoint.export_hf": True}))
  train.run(c, str(tmp_path))
  # The final policy, exported as an HF directory, reads back equal to the last checkpoint.
  from rlvr_jax import checkpoints
  _, exported = checkpoints.load_hf(str(tmp_path / "hf_export"))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, exported),
               _params(tmp_path, 2))
  s1, s2 = _records(tmp_path, "train")
  assert len(calls) == 5 and set(calls) == {16}  # 4 prompts x 4 samples a try
  assert (s1["sampling_tries"], s1["dyn_filled_groups"], s1["valid_frac"], s1["prompt_batches"]) == (
      2, 0, 1.0, 2)
  # grpo on the varied groups: a real gradient (the loss itself can be 0 at ratio 1).
  assert s1["zero_var_frac"] == 0.0 and s1["adv_abs_mean"] > 0 and s1["grad_norm"] > 0
  assert (s2["sampling_tries"], s2["dyn_filled_groups"], s2["valid_frac"], s2["prompt_batches"]) == (
      3, 4, 0.0, 5)
  assert s2["loss"] == 0.0 and s2["grad_norm"] == 0.0


_CRASH = textwrap.dedent("""
    import os, sys
    import numpy as np
    import jax.numpy as jnp
    from rlvr_jax.rl import checkpointing
    ckpt = checkpointing.Checkpointer(sys.argv[1], keep=3, async_save=True)
    state = {"w": jnp.full((2048, 2048), 1.0)}
    ckpt.save(1, state, jnp.zeros(2, jnp.uint32), {"rl_step": 1})
    ckpt._mngr.wait_until_finished()  # step 1 complete before step 2 starts
    ckpt.save(2, {"w": jnp.full((2048, 2048), 2.0)}, jnp.zeros(2, jnp.uint32), {"rl_step": 2})
    os._exit(0)  # killed while step 2 is being written in the background
""")


def test_crash_mid_save_never_leaves_a_partial_latest(tmp_path):
  d = str(tmp_path / "ckpt")
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", _CRASH, d], env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Orbax made step 2's temporary directory before the kill; it never got its final name.
  assert sorted(os.listdir(d)) == ["1", "2" + ocp.utils.TMP_DIR_SUFFIX]
  # And a leftover temporary directory of a later step with a full-looking tree in it.
  os.makedirs(os.path.join(d, "3" + ocp.utils.TMP_DIR_SUFFIX, "tree"))
  ckpt = checkpointing.Checkpointer(d, keep=3, async_save=False)
  assert ckpt.latest_step() == 1
  like = {"w": jax.ShapeDtypeStruct((2048, 2048), np.float32)}
  state, _, meta = ckpt.restore(1, like, jax.numpy.zeros(2, jax.numpy.uint32))
  ckpt.close()
  assert meta == {"rl_step": 1} and float(state["w"].min()) == float(state["w"].max()) == 1.0


def _lora(c):
  """LoRA rank 4 on every projection, with a KL term towards the reference (the base)."""
  c.lora.update(rank=4, alpha=8.0)
  c.loss.kl_coef = 0.05
  c.optimizer.lr = 1e-2  # adapters from B = 0 move visibly in three updates
  c.rl.mini_batch_prompts = c.rl.batch_prompts  # one update a step: step 1 runs at B = 0
  return c


def test_lora_1_vs_8_devices_base_reference_sigterm_and_exact_resume(tmp_path, monkeypatch):
  """LoRA end to end: the same update on 1 and 8 devices, the KL reference is the base (0 at
  step 1, where B = 0 makes the policy the base; > 0 after), checkpoints hold the adapters
  alone, a SIGTERM + resume reproduces the straight run to the bit, and a resume over
  another base fails."""
  m1 = train.run(_lora(_config(num_devices=1)), str(tmp_path / "one"))
  m8 = train.run(_sharded(_lora(_config())), str(tmp_path / "eight"))
  assert np.isfinite(m1["loss"]) and np.isfinite(m8["loss"])
  one, eight = _records(tmp_path / "one", "train"), _records(tmp_path / "eight", "train")
  for a, b in zip(one, eight, strict=True):
    assert (a["reward_mean"], a["response_len_mean"]) == (b["reward_mean"], b["response_len_mean"])
    for k in ("loss", "pg_loss", "ref_kl", "grad_norm", "approx_kl"):
      np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-7, err_msg=f"step {a['step']} {k}")
  for recs in (one, eight):
    assert recs[0]["ref_kl"] == 0.0 and recs[0]["grad_norm"] > 0
    assert recs[1]["ref_kl"] > 1e-6 and recs[2]["ref_kl"] > 1e-6
  saved = _params(tmp_path / "eight", 3)
  assert set(saved) == {"layers"} and all(n.endswith(("_lora_a", "_lora_b")) for n in saved["layers"])
  assert len(saved["layers"]) == 14  # A and B of the seven projections
  assert os.path.exists(tmp_path / "eight" / "lora_base.json")
  resumed = tmp_path / "resumed"
  with monkeypatch.context() as m:
    calls = _sigterm_on_call(m, 2)
    train.run(_sharded(_lora(_config())), str(resumed))
  assert len(calls) == 2 and os.listdir(resumed / "checkpoints") == ["2"]
  train.run(_sharded(_lora(_config())), str(resumed))
  a, b = _records(tmp_path / "eight", "train"), _records(resumed, "train")
  assert [_strip(r) for r in a] == [_strip(r) for r in b]
  jax.tree.map(np.testing.assert_array_equal, saved, _params(resumed, 3))
  assert any(np.any(x != y) for x, y in zip(jax.tree.leaves(saved),
                                             jax.tree.leaves(_params(resumed, 2))))
  # Adapters belong to one base: resuming over a changed one is refused.
  record_path = resumed / "lora_base.json"
  with open(record_path) as f:
    record = json.load(f)
  record["checksum"][0] *= 1.01
  with open(record_path, "w") as f:
    json.dump(record, f)
  with pytest.raises(ValueError, match="not the one the checkpointed adapters belong to"):
    train.run(_sharded(_lora(_config())), str(resumed))


def test_main_command_leaves_metrics_plots_and_checkpoint(tmp_path):
  workdir = str(tmp_path / "w")
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "rlvr_jax.main",
                         "--config=configs/maze_tiny.py:runlocal", f"--workdir={workdir}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  recs = logger.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  train_recs = [r for r in recs if r["phase"] == "train"]
  assert [r["step"] for r in train_recs] == [1, 2, 3]
  assert all(np.isfinite(r["loss"]) and 0 <= r["reward_mean"] <= 1 for r in train_recs)
  # The time split: sampling, verification and update are measured apart and add up to
  # no more than the step; the maze verifier never times out.
  for r in train_recs:
    assert r["time_sample"] > 0 and r["time_verify"] > 0 and r["time_update"] > 0
    assert r["time_sample"] + r["time_verify"] + r["time_update"] <= r["time_step"]
    assert r["verify_timeouts"] == 0 and r["verify_errors"] == 0
  assert any(r["phase"] == "warmstart" for r in recs)
  evals = [r for r in recs if r["phase"] == "eval"]
  assert [r["step"] for r in evals] == [0, 3] and all(0 <= r["pass@1"] <= 1 for r in evals)
  # Every eval has its bootstrap interval; the step-0 eval is kept as the base curve.
  assert all(r["pass@1_lo"] <= r["pass@1"] <= r["pass@1_hi"] for r in evals)
  with open(os.path.join(workdir, "base_eval.json"), encoding="utf-8") as f:
    assert json.load(f) == evals[0]
  for name in ("train.png", "eval.png", "warmstart.png", "passk_curve.png"):
    with open(os.path.join(workdir, "plots", name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
  assert "3" in os.listdir(os.path.join(workdir, "checkpoints"))
  events = [f for f in os.listdir(os.path.join(workdir, "tensorboard")) if f.startswith("events")]
  assert events and os.path.getsize(os.path.join(workdir, "tensorboard", events[0])) > 1000


def test_main_command_with_lora_exports_the_merged_model_and_the_adapters(tmp_path):
  """The README's main command with `--config.lora.rank=8`: it trains, its checkpoint holds
  the adapters alone, and hf_export/ is the warm-started base plus scale * A @ B of the
  final adapters (read back from the checkpoint and the warm start, not from the run)."""
  from rlvr_jax import checkpoints, models
  from rlvr_jax.models import lora
  workdir = tmp_path / "w"
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "rlvr_jax.main",
                         "--config=configs/maze_tiny.py:runlocal", f"--workdir={workdir}",
                         "--config.lora.rank=8", "--config.lora.alpha=16",
                         "--config.optimizer.lr=1e-2", "--config.checkpoint.export_hf=True"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  train_recs = _records(workdir, "train")
  assert [r["step"] for r in train_recs] == [1, 2, 3]
  assert all(np.isfinite(r["loss"]) for r in train_recs) and train_recs[0]["grad_norm"] > 0
  assert [r["step"] for r in _records(workdir, "eval")] == [0, 3]
  adapters = _params(workdir, 3)
  assert set(adapters) == {"layers"} and len(adapters["layers"]) == 14
  cfg = models.preset("tiny")
  base = warmstart.load_params(str(workdir / "warmstart"),
                               jax.eval_shape(lambda: models.init_params(cfg, jax.random.PRNGKey(0))))
  want = jax.device_get(lora.merge(lora.join(adapters, base), 16 / 8))
  _, exported = checkpoints.load_hf(str(workdir / "hf_export"))
  for name in ("q", "o", "down"):
    delta = np.abs(np.asarray(want["layers"][name]) - np.asarray(base["layers"][name])).max()
    assert delta > 1e-4, name  # the adapters moved the weights
    np.testing.assert_allclose(exported["layers"][name], want["layers"][name], rtol=1e-6,
                               atol=1e-7, err_msg=name)
  with open(workdir / "lora_export" / "adapter_config.json") as f:
    peft_cfg = json.load(f)
  assert (peft_cfg["r"], peft_cfg["lora_alpha"]) == (8, 16.0)
  assert os.path.exists(workdir / "lora_export" / "adapter_model.safetensors")
