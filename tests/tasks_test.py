"""Task registry, batch verification, the character tokenizer, and the verifier pool."""

import math
import os
import string
import time

import numpy as np
import pytest

from rlvr_jax import tasks


def test_registry():
  assert tasks.names() == ["arith", "countdown", "math", "maze"]
  for name in tasks.names():
    assert tasks.get(name).name == name
  with pytest.raises(ValueError, match="unknown task 'mazes'"):
    tasks.get("mazes")
  with pytest.raises(ValueError, match="already registered"):
    tasks.register("maze")(type("Dup", (tasks.Task,), {}))


def test_verify_batch_in_process():
  task = tasks.get("countdown")
  ex = {"numbers": [1, 2, 3], "target": 6}
  rewards, info = tasks.verify_batch(task, ["1+2+3", "1*2*3", "1+2", "oops"], [ex] * 4)
  assert rewards.dtype == np.float32 and rewards.tolist() == [1.0, 1.0, 0.0, 0.0]
  assert info == {"timeouts": 0, "errors": 0}
  with pytest.raises(ValueError, match="3 responses but 2 examples"):
    tasks.verify_batch(task, ["a", "b", "c"], [ex, ex])


def test_clamp_score():
  assert [tasks.clamp_score(x) for x in (0.5, 1, -0.1, 1.5, float("nan"), "x", None)] == [
      0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_char_tokenizer():
  tok = tasks.CharTokenizer()
  text = string.printable.replace("\t", "").replace("\r", "").replace("\x0b", "").replace(
      "\x0c", "")
  assert len(set(text)) == 96  # 95 printable ASCII + newline
  assert tok.vocab_size == 3 + 96
  ids = tok.encode(text)
  assert len(set(ids)) == 96 and min(ids) == 3 and max(ids) == tok.vocab_size - 1
  assert tok.decode(ids) == text
  framed = tok.encode("RRD", add_bos=True, add_eos=True)
  assert framed[0] == tok.bos_id and framed[-1] == tok.eos_id
  # Pad and bos are skipped, decoding stops at the first eos.
  assert tok.decode([tok.pad_id, tok.bos_id] + tok.encode("LU") + [tok.eos_id] +
                    tok.encode("X") + [tok.pad_id]) == "LU"
  assert tok.decode(np.array(tok.encode("ok"), np.int32)) == "ok"
  with pytest.raises(ValueError, match="'é' at position 2"):
    tok.encode("caé")
  with pytest.raises(ValueError, match="outside"):
    tok.decode([tok.vocab_size])


def test_maze_prompt_fits_char_vocab():
  tok = tasks.CharTokenizer()
  from rlvr_jax.tasks import maze
  for ex in maze.generate(21, 3, np.random.default_rng(0)):
    assert tok.decode(tok.encode(tasks.get("maze").prompt_text(ex))) == ex["grid"] + "\nPath:"


@pytest.fixture(scope="module")
def small_pool():
  with tasks.VerifierPool(num_workers=2, timeout_s=1.5) as p:
    yield p


def test_pool_results_in_order(small_pool):
  results, info = small_pool.map(pow, [(i, 2) for i in range(40)])
  assert results == [i * i for i in range(40)]
  assert info == {"timeouts": 0, "errors": 0}


def test_pool_timeout_kills_and_replaces(small_pool):
  start = time.perf_counter()
  results, info = small_pool.map(time.sleep, [(60,), (0,), (60,)])
  assert time.perf_counter() - start < 15  # two time-outs of 1.5 s, not 60 s
  assert results == [None, None, None]  # sleep returns None; what matters are the counts
  assert info["timeouts"] == 2 and info["errors"] == 0
  assert small_pool.map(pow, [(3, 3)])[0] == [27]


def test_pool_errors_counted(small_pool):
  results, info = small_pool.map(math.sqrt, [(4.0,), (-1.0,)])
  assert results == [2.0, None] and info == {"timeouts": 0, "errors": 1}


def test_pool_recycles_workers():
  with tasks.VerifierPool(num_workers=1, timeout_s=30, max_calls_per_worker=3) as p:
    pids, _ = p.map(os.getpid, [()] * 7)
  # Calls 1-3 in one process, 4-6 in its replacement, 7 in a third.
  assert len(set(pids[:3])) == 1 and len(set(pids[3:6])) == 1 and len(set(pids)) == 3
  assert os.getpid() not in pids


def test_pool_bad_args():
  with pytest.raises(ValueError, match="timeout_s"):
    tasks.VerifierPool(timeout_s=0)
  p = tasks.VerifierPool(num_workers=1)
  p.close()
  with pytest.raises(ValueError, match="closed"):
    p.map(pow, [(1, 1)])


def test_pool_survives_a_dead_worker():
  with tasks.VerifierPool(num_workers=1, timeout_s=30) as p:
    p.map(pow, [(2, 2)])
    p._workers[0].proc.kill()  # e.g. the OOM killer, between two batches
    p._workers[0].proc.join()
    results, info = p.map(pow, [(2, 3), (3, 2)])
  assert results == [8, 9] and info == {"timeouts": 0, "errors": 0}
