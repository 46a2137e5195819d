"""Fuzzing every verifier: random and adversarial text never raises, hangs, or executes.

Each verifier sees tens of thousands of strings (hypothesis) plus hand-made
giants (megabytes, million-digit numbers, deep or unbalanced braces, `\\boxed{`
without end). Every score must be a float in [0, 1], in-process calls must
return within a second, and nothing may reach eval / exec / a shell.
"""

import builtins
import contextlib
import os
import subprocess
import time

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from rlvr_jax import tasks
from rlvr_jax.tasks import arith, countdown, maze

FRAGMENTS = ["\\boxed{", "{", "}", "<answer>", "</answer>", "<answer", "answer>", "L", "R",
             "U", "D", "l", "d", "(", ")", "**", "^", "/", "0", "9" * 40, "\\frac{", "\\sqrt{",
             "=", "-", "+", "*", "\\", "$", "\n", "\x00", "\ufb02", "é", "\U0001f600", "\\left(",
             "\\right)", "\\infty", ",", "[", "]", "x", "\\text{", "__import__('os')", "1e999",
             "nan", "inf", " ", "÷", "×", "−", "\u202e"]
ADVERSARIAL = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)),
                       max_size=40).map("".join)
STRINGS = st.one_of(st.text(max_size=300), ADVERSARIAL,
                    st.binary(max_size=200).map(lambda b: b.decode("latin-1")))

MAZE_EX = maze.generate(9, 1, np.random.default_rng(0))[0]
COUNTDOWN_EX = {"numbers": [3, 3, 8, 8], "target": 24}
ARITH_EX = arith.solve([1, 9], "-")  # answer -8
MATH_EX = {"problem": "", "answer": "\\frac{1}{2}"}
SETTINGS = hypothesis.settings(deadline=None, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck))


@contextlib.contextmanager
def no_execution():
  """Makes eval / exec / compile / os.system / subprocess fail loudly while active."""
  calls = []

  def trap(name):
    def f(*a, **k):
      calls.append(name)
      raise AssertionError(f"verifier called {name}")
    return f

  saved = [(builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (os, "system"),
           (subprocess, "Popen")]
  originals = [getattr(m, n) for m, n in saved]
  for m, n in saved:
    setattr(m, n, trap(n))
  try:
    yield calls
  finally:
    for (m, n), orig in zip(saved, originals):
      setattr(m, n, orig)


def _check_in_process(task, responses, example):
  with no_execution() as calls:
    for r in responses:
      start = time.perf_counter()
      score = task.verify(r, example)
      key = task.normalized_answer(r)
      took = time.perf_counter() - start
      assert type(score) is float and 0.0 <= score <= 1.0, (r[:100], score)
      assert key is None or isinstance(key, str)
      assert took < 1.0, (r[:100], took)
  assert not calls


@pytest.fixture(scope="module")
def pool():
  with tasks.VerifierPool(num_workers=2, timeout_s=5.0,
                          preload=("rlvr_jax.tasks.math_task", "math_verify")) as p:
    yield p


# One string in ten is boxed adversarial text, so that about a thousand reach math-verify
# in the workers (each costs milliseconds of sympy there); the rest are mostly unboxed
# and score 0 in the caller. Hypothesis draws cost about 1 ms a string, so every
# generated string goes through every verifier.
FUZZ = st.sampled_from([True] + [False] * 9).flatmap(
    lambda boxed: ADVERSARIAL.map(lambda a: "\\boxed{" + a + "}") if boxed else STRINGS)


def test_fuzz_every_verifier(pool):
  in_process = [(tasks.get("maze"), MAZE_EX), (tasks.get("countdown"), COUNTDOWN_EX),
                (tasks.get("countdown", allow_power=True), COUNTDOWN_EX),
                (tasks.get("arith"), ARITH_EX)]
  math = tasks.get("math")
  totals = {"strings": 0, "graded": 0, "timeouts": 0, "errors": 0}

  @hypothesis.settings(SETTINGS, max_examples=400)
  @hypothesis.given(st.lists(FUZZ, min_size=50, max_size=50))
  def run(responses):
    for task, example in in_process:
      _check_in_process(task, responses, example)
    start = time.perf_counter()
    rewards, info = tasks.verify_batch(math, responses, [MATH_EX] * len(responses), pool)
    took = time.perf_counter() - start
    assert rewards.shape == (50,) and rewards.dtype == np.float32
    assert ((rewards >= 0) & (rewards <= 1)).all()
    # A batch is bounded by its time-outs: each blocks one of two workers for 5 s.
    assert took < 20 + pool.timeout_s * info["timeouts"], (took, info)
    totals["strings"] += len(responses)
    for k in ("graded", "timeouts", "errors"):
      totals[k] += info[k]

  run()
  print(totals)
  assert totals["strings"] == 20_000 and totals["graded"] > 500


def _giants():
  rng = np.random.default_rng(0)
  codepoints = rng.integers(0x20, 0xD7FF, size=300_000)
  mb = 1 << 20
  return [
      "x" * mb, "{" * mb, "}" * mb, "\\boxed{" * 150_000, "\\boxed{" + "{" * mb,
      "\\boxed{" + "9" * 1_000_000 + "}", "9" * 1_000_000, "(" * mb, ")" * mb,
      "".join(map(chr, codepoints.tolist())),
      "<answer>" * 100_000 + "</answer>" * 100_000, "<answer>" + "LR" * 500_000,
      "\\boxed{\\frac{" * 50_000 + "}" * 100_000,
      "2**" * 300_000 + "2", "1/" * 300_000 + "0",
      "\\boxed{" + "\\frac{1}{" * 90 + "2" + "}" * 90 + "}",  # deep but under the length bound
      "\\boxed{" + "(" * 400 + "1" + ")" * 400 + "}",
      "\\boxed{" + "^{9" * 300 + "}" * 300 + "}",
      "\\boxed{9^{9^{9^{9}}}}",  # hangs sympy for minutes: must time out
  ]


def test_giants_in_process():
  for task, example in ((tasks.get("maze"), MAZE_EX), (tasks.get("countdown"), COUNTDOWN_EX),
                        (tasks.get("countdown", allow_power=True), COUNTDOWN_EX),
                        (tasks.get("arith"), ARITH_EX)):
    _check_in_process(task, _giants(), example)


def test_giants_math(pool):
  giants = _giants()
  start = time.perf_counter()
  rewards, info = tasks.verify_batch(tasks.get("math"), giants, [MATH_EX] * len(giants), pool)
  assert rewards.tolist() == [0.0] * len(giants)
  assert info["timeouts"] >= 1  # the 9^9^9^9 tower
  assert time.perf_counter() - start < 30 + pool.timeout_s * info["timeouts"]


def test_megabyte_valid_path_still_scores():
  # A 1 MB answer that oscillates R/L next to S and then takes the shortest path is valid.
  ex = MAZE_EX
  first = ex["solution"][0]
  back = {"L": "R", "R": "L", "U": "D", "D": "U"}[first]
  long = "<answer>" + (first + back) * 500_000 + ex["solution"] + "</answer>"
  start = time.perf_counter()
  assert tasks.get("maze").verify(long, ex) == 1.0
  assert time.perf_counter() - start < 1.0
  assert countdown.score("<answer>" + "(" * 31 + "3*8" + ")" * 31 + "</answer>", [3, 8], 24) == 1
