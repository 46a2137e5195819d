"""The per-problem history (rlvr_jax/rl/history.py): counts by hand, the checkpoint round
trip, and a SIGTERM + resume of the trainer that must leave the same history as a straight
run, with counts equal to the rewards of every rollout the run sampled."""

import json
import os
import runpy
import signal
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from rlvr_jax.rl import checkpointing, history as history_lib, rollout, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "maze_tiny.py")


def _ro(examples, successes, n=4):
  """Rollouts of `examples` with the given success counts out of n each (a SimpleNamespace
  with what the history reads)."""
  r = (np.arange(n)[None, :] < np.asarray(successes)[:, None]).astype(np.float32)
  return SimpleNamespace(examples=list(examples), rewards_BxN=r)


A, B, C = {"grid": "a", "size": np.int32(5)}, {"grid": "b", "size": 5}, {"grid": b"c", "size": 5}


def test_counts_steps_posterior_and_metrics_by_hand():
  h = history_lib.ProblemHistory(alpha=1.0, beta=2.0)
  h.update(1, _ro([A, B], [2, 0]))
  h.update(2, _ro([B, C], [1, 0]))
  h.update(3, _ro([A, C, B], [0, 0, 0]))
  key = history_lib.problem_key
  # The same content is the same problem whatever its value types (np.int32 vs int).
  assert key({"grid": "a", "size": 5}) == key(A) and key(A) != key(B)
  assert h.row(key(A)) == dict(rollouts=8, successes=2, visits=2, first_step=1,
                               first_solved_step=1, first_rollouts=4, first_successes=2,
                               last_step=3, last_rollouts=4, last_successes=0)
  assert h.row(key(B)) == dict(rollouts=12, successes=1, visits=3, first_step=1,
                               first_solved_step=2, first_rollouts=4, first_successes=0,
                               last_step=3, last_rollouts=4, last_successes=0)
  assert h.row(key(C))["first_solved_step"] == -1 and h.row(key(C))["visits"] == 2
  a, b = h.posterior()  # Beta(1 + successes, 2 + failures), in first-seen order A, B, C
  np.testing.assert_array_equal(a, [3, 2, 1])
  np.testing.assert_array_equal(b, [8, 13, 10])
  m = h.metrics()
  # Seen A, B, C; solved ever: A, B; unsolved at first visit: B, C; of those B later solved.
  assert m["hist/problems_seen"] == 3 and m["hist/ever_solved_frac"] == pytest.approx(2 / 3)
  assert m["hist/unsolved_first_frac"] == pytest.approx(2 / 3)
  assert m["hist/later_solved_frac"] == 0.5 and m["hist/revisited_frac"] == 1.0
  # Buckets 0..4 of 4 rollouts: B and C started at 0 (B solved later, latest accuracies 0, 0),
  # A at 2 (not solved after its first visit, latest accuracy 0).
  assert m["hist/bucket0_frac"] == pytest.approx(2 / 3)
  assert m["hist/bucket2_frac"] == pytest.approx(1 / 3)
  assert m["hist/bucket0_later_solved_frac"] == 0.5 and m["hist/bucket2_later_solved_frac"] == 0.0
  assert m["hist/bucket2_last_acc"] == 0.0 and m["hist/bucket4_frac"] == 0.0
  assert sorted(k for k in m if k.startswith("hist/bucket")) == sorted(
      f"hist/bucket{i}_{s}" for i in range(5) for s in ("frac", "later_solved_frac", "last_acc"))
  # The state round trip, and a prior that does not match is refused.
  back = history_lib.ProblemHistory(alpha=1.0, beta=2.0)
  back.set_state(json.loads(json.dumps(h.get_state())))
  assert back.keys == h.keys and np.array_equal(back.table_UxF, h.table_UxF)
  with pytest.raises(ValueError, match="prior"):
    history_lib.ProblemHistory().set_state(h.get_state())
  with pytest.raises(ValueError, match="examples for rewards"):
    h.update(4, SimpleNamespace(examples=[A], rewards_BxN=np.zeros((2, 4))))


def test_checkpoint_round_trip_and_a_checkpoint_without_history(tmp_path):
  h = history_lib.ProblemHistory()
  h.update(1, _ro([A, B], [1, 0]))
  state = {"w": jax.numpy.ones(3)}
  rng = jax.random.PRNGKey(0)
  ckpt = checkpointing.Checkpointer(str(tmp_path / "c"), keep=2, async_save=True)
  ckpt.save(1, state, rng, {"rl_step": 1}, history=h)
  h.update(2, _ro([C], [4]))  # after the save was asked for: not in checkpoint 1
  ckpt.save(2, state, rng, {"rl_step": 2})  # no history
  ckpt.close()
  ckpt = checkpointing.Checkpointer(str(tmp_path / "c"), keep=2)
  back = history_lib.ProblemHistory()
  ckpt.restore(1, state, rng, history=back)
  assert len(back) == 2 and back.row(history_lib.problem_key(A))["successes"] == 1
  empty = history_lib.ProblemHistory()
  ckpt.restore(2, state, rng, history=empty)
  assert len(empty) == 0
  ckpt.close()


def _config():
  c = runpy.run_path(CONFIG)["get_config"]("runlocal,estimator=bbg,warmstart_steps=2,steps=3")
  c.num_devices = 1
  c.eval.update(at_start=False, at_end=False)
  c.progress = False
  c.plot_at_end = False
  c.checkpoint.every = 10  # saves come only from the last step or a stop
  return c


def _saved_history(workdir, step):
  with open(os.path.join(str(workdir), "checkpoints", str(step), "history",
                         "process_0-of-1.json"), encoding="utf-8") as f:
    return json.load(f)


def test_history_survives_sigterm_and_resume_and_counts_the_rollouts(tmp_path, monkeypatch):
  sampled, original = [], rollout.generate

  def recording(*args, **kwargs):
    out = original(*args, **kwargs)
    sampled.append((list(out.examples), np.asarray(out.rewards_BxN)))
    return out

  with monkeypatch.context() as m:
    m.setattr(rollout, "generate", recording)
    last = train.run(_config(), str(tmp_path / "straight"))
  straight = _saved_history(tmp_path / "straight", 3)
  # Its counts are the sampled rewards', problem by problem.
  want: dict[str, list[int]] = {}
  for step, (examples, r) in enumerate(sampled, start=1):
    for ex, row in zip(examples, r):
      k = history_lib.problem_key(ex)
      got = want.setdefault(k, [0, 0, step])
      got[0] += len(row)
      got[1] += int((row >= 1).sum())
  assert len(sampled) == 3 and len(straight["keys"]) == len(want)
  for key, row in zip(straight["keys"], straight["rows"]):
    r = dict(zip(history_lib.FIELDS, row))
    assert [r["rollouts"], r["successes"], r["first_step"]] == want[key]
  assert last["hist/problems_seen"] == len(want)
  # SIGTERM mid-step 2, then resume: the same history as the straight run.
  calls = []

  def stop_at_2(*args, **kwargs):
    out = original(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return out

  resumed = tmp_path / "resumed"
  with monkeypatch.context() as m:
    m.setattr(rollout, "generate", stop_at_2)
    train.run(_config(), str(resumed))
  assert os.listdir(resumed / "checkpoints") == ["2"]
  assert _saved_history(resumed, 2)["rows"] != straight["rows"]  # two steps of three
  train.run(_config(), str(resumed))
  assert _saved_history(resumed, 3) == straight
