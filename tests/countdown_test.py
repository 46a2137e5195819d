"""Countdown: parser, exact arithmetic, number usage, bounds, generator."""

import time
from fractions import Fraction

import numpy as np
import pytest

from rlvr_jax import tasks
from rlvr_jax.tasks import countdown

TASK = tasks.get("countdown")
EX = {"numbers": [3, 3, 8, 8], "target": 24, "solution": "8 / (3 - 8 / 3)"}


@pytest.mark.parametrize("response,expected", [
    # 8/(3 - 8/3) = 8/(1/3) = 24 exactly; in floats it is 23.999999999999993.
    ("<answer> 8 / (3 - 8 / 3) </answer>", 1.0),
    ("8/(3-8/3)", 1.0),  # bare expression (whole response)
    ("\\boxed{8 / (3 - 8 / 3)}", 1.0),
    ("<answer> 8 ÷ (3 − 8 ÷ 3) </answer>", 1.0),  # unicode operators normalized
    ("<answer> 8 / (3 - 8 / 3) = 24 </answer>", 1.0),  # '= target' suffix allowed
    ("<answer> 8 / (3 - 8 / 3) = 25 </answer>", 0.0),
    ("<answer> 3 * 8 </answer>", 1.0),  # unused numbers are fine (at most once)
    ("<answer> 8 * 3 + 8 - 8 </answer>", 0.0),  # 8 used three times, given twice
    ("<answer> 24 </answer>", 0.0),  # 24 is not a given number
    ("<answer> 3 * 8 / (3 - 3) </answer>", 0.0),  # division by zero
    ("<answer> 8 * 3 / 0 </answer>", 0.0),
    ("<answer> 3 ** 3 - 3 </answer>", 0.0),  # power not allowed by default
    ("<answer> 8 * 3 ) </answer>", 0.0),
    ("<answer> (8 * 3 </answer>", 0.0),
    ("<answer> 8 * 3.0 </answer>", 0.0),  # decimals are not part of the language
    ("<answer> 8 * 3; import os </answer>", 0.0),
    ("<answer></answer>", 0.0),
])
def test_verifier_cases(response, expected):
  assert TASK.verify(response, EX) == expected


@pytest.mark.parametrize("text,value", [
    ("2+3*4", 14), ("(2+3)*4", 20), ("8-3-2", 3), ("-3+5", 2), ("2*-3", -6),
    ("1/3+1/6", Fraction(1, 2)), ("((7))", 7),
])
def test_evaluate_precedence_and_exactness(text, value):
  assert countdown.evaluate(text)[0] == value


def test_power_when_allowed():
  assert countdown.evaluate("2**3**2", allow_power=True)[0] == 512  # right assoc: 2^9
  assert countdown.evaluate("2^-1", allow_power=True)[0] == Fraction(1, 2)
  powered = tasks.get("countdown", allow_power=True)
  assert powered.verify("<answer> 2 ^ 3 * 3 </answer>", {"numbers": [2, 3, 3], "target": 24}) == 1
  # Absurd exponents score 0 immediately instead of computing a huge number.
  for absurd in ("9**9**9**9", "2**1000000", "99^99", "0^-1", "2**(1/2)"):
    start = time.perf_counter()
    assert powered.verify(absurd, {"numbers": [9, 9, 9, 9, 2, 1000000, 99, 0, 1], "target": 1}) == 0
    assert time.perf_counter() - start < 0.1


def test_bounds_score_zero_fast():
  ex = {"numbers": [1], "target": 1}
  cases = ["1" * 1_000_000,  # million-digit number
           "(" * 100_000 + "1" + ")" * 100_000,  # deep nesting
           "-" * 10_000 + "1",
           "(" * 40 + "1" + ")" * 40,  # over MAX_DEPTH but under MAX_CHARS
           "1+" * 200 + "1"]  # over MAX_CHARS
  for text in cases:
    start = time.perf_counter()
    assert TASK.verify(text, ex) == 0.0
    assert time.perf_counter() - start < 0.5
  with pytest.raises(ValueError, match="invalid countdown expression"):
    countdown.evaluate("(" * 40 + "1" + ")" * 40)


def test_generated_problems_are_solvable():
  rows = countdown.generate(500, np.random.default_rng(0))
  for ex in rows:
    assert 3 <= len(ex["numbers"]) <= 4
    assert all(1 <= x <= 100 for x in ex["numbers"])
    assert 1 <= ex["target"] <= 1000
    assert TASK.verify(f"<answer>{ex['solution']}</answer>", ex) == 1.0
  again = countdown.generate(500, np.random.default_rng(0))
  assert rows == again


def test_normalized_answer_and_prompts():
  assert TASK.normalized_answer("<answer> (3 + 3) * 4 </answer>") == "(3+3)*4"
  assert TASK.normalized_answer("<answer>   </answer>") is None
  assert TASK.prompt_text(EX) == "numbers: 3 3 8 8\ntarget: 24\nexpression:"
  assert "[3, 3, 8, 8]" in TASK.messages(EX)[0]["content"]


def test_length_bound_is_inclusive_on_every_path():
  # "At most MAX_CHARS characters": an answer of exactly MAX_CHARS (here 3 * 8 spaced
  # out) scores 1 and one character more scores 0, bare, tagged, boxed and with the
  # '= target' suffix (which counts toward the length).
  n = countdown.MAX_CHARS
  for suffix in ("", " = 24"):
    fits = "3" + " " * (n - 4 - len(suffix)) + "* 8" + suffix
    over = "3" + " " * (n - 3 - len(suffix)) + "* 8" + suffix
    assert len(fits) == n and len(over) == n + 1
    for form in ("{}", "<answer>{}</answer>", "\\boxed{{{}}}"):
      assert TASK.verify(form.format(fits), EX) == 1.0, (form, suffix)
      assert TASK.verify(form.format(over), EX) == 0.0, (form, suffix)
  assert countdown.evaluate("3" + " " * (n - 4) + "* 8")[0] == 24
  with pytest.raises(ValueError, match="longer than"):
    countdown.evaluate("3" + " " * (n - 3) + "* 8")
