"""Arith: sums and differences of single digits, the tiny CPU stand-in for math.

A problem is 2 to `MAX_OPERANDS` operands in 1..9 joined by `+` or `-`
(`7+5-3`), evaluated left to right; its answer is the integer value as a
string (it can be 0 or negative). There are 9 * 2 * 9 = 162 problems of 2
operands and 2916 of 3, and many share an answer: that is what SvS needs
(a synthesized problem is graded against the answer of the problem it was
written from).

Grading reads the response's last `\\boxed{...}` (`extract.last_boxed`).
Its content, stripped of surrounding whitespace, must be an integer literal:
an optional sign and ASCII digits, leading zeros allowed, at most
`MAX_ANSWER_CHARS` characters; it scores 1 when its value equals the answer.
So `+9`, `09` and ` 9 ` all grade as 9 and normalize to `9` (`-0` to `0`);
`9.0`, `9/1`, `- 9`, `x=9` and an unclosed box score 0.

Example dict: {'problem': '7+5-3', 'answer': '9', 'solution': '7+5=12,12-3=9 \\boxed{9}',
'operands': 3}. `make_splits` draws the train and test sets.
"""

import functools
import itertools
import re
from collections.abc import Sequence

import numpy as np

from rlvr_jax.tasks import base, extract
from rlvr_jax.tasks.math_task import INSTRUCTION

MIN_OPERANDS = 2
MAX_OPERANDS = 4
DIGITS = range(1, 10)
OPERATORS = "+-"
MAX_ANSWER_CHARS = 32
_INTEGER = re.compile(r"[+-]?[0-9]+")


def solve(digits: Sequence[int], operators: Sequence[str]) -> dict:
  """The example of `digits[0] op digits[1] op ...`, its worked left-to-right solution included."""
  value, steps = digits[0], []
  for op, digit in zip(operators, digits[1:], strict=True):
    new = value + digit if op == "+" else value - digit
    steps.append(f"{value}{op}{digit}={new}")
    value = new
  problem = str(digits[0]) + "".join(f"{op}{d}" for op, d in zip(operators, digits[1:]))
  return {"problem": problem, "answer": str(value),
          "solution": f"{','.join(steps)} \\boxed{{{value}}}", "operands": len(digits)}


def _check_operands(operands: Sequence[int]) -> tuple[int, ...]:
  operands = tuple(operands)
  if not operands or any(isinstance(n, bool) or not isinstance(n, int)
                         or not MIN_OPERANDS <= n <= MAX_OPERANDS for n in operands):
    raise ValueError(f"arith: operands must be a non-empty list of operand counts in "
                     f"{MIN_OPERANDS}..{MAX_OPERANDS}, got {operands!r}")
  return tuple(sorted(set(operands)))


def num_problems(num_operands: int) -> int:
  """How many distinct problems have `num_operands` operands."""
  return len(DIGITS)**num_operands * len(OPERATORS)**(num_operands - 1)


@functools.lru_cache(maxsize=8)
def _all_examples(counts: tuple[int, ...]) -> tuple[dict, ...]:
  return tuple(solve(digits, ops) for n in counts
               for digits in itertools.product(DIGITS, repeat=n)
               for ops in itertools.product(OPERATORS, repeat=n - 1))


def all_examples(operands: Sequence[int] = (2, 3)) -> list[dict]:
  """Every problem with one of the operand counts `operands`, by count, digits, operators."""
  return [dict(ex) for ex in _all_examples(_check_operands(operands))]


def make_splits(num_train: int, num_test: int, seed: int,
                operands: Sequence[int] = (2, 3)) -> dict[str, list[dict]]:
  """Train and test sets drawn uniformly, without replacement, from all problems of `operands`.

  The test set is drawn first (RNG stream [seed, 0]); train problems come from
  the rest (stream [seed, 1]), so no problem is in both splits nor twice in one.
  Operand counts are not balanced: a split holds them in proportion to how many
  problems each has (about 5% of 2 and 3 operand problems have 2). Asking for
  more problems than there are is a ValueError.
  """
  for name, num in (("num_train", num_train), ("num_test", num_test)):
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
      raise ValueError(f"arith: {name} must be a non-negative integer, got {num!r}")
  counts = _check_operands(operands)
  pool = _all_examples(counts)
  if num_train + num_test > len(pool):
    sizes = ", ".join(f"{num_problems(n)} of {n} operands" for n in counts)
    raise ValueError(f"arith: asked for {num_train} train + {num_test} test problems, but there "
                     f"are only {len(pool)} distinct problems ({sizes})")
  test_ids = np.random.default_rng([seed, 0]).choice(len(pool), num_test, replace=False)
  rest = np.setdiff1d(np.arange(len(pool)), test_ids)
  train_ids = np.random.default_rng([seed, 1]).choice(rest, num_train, replace=False)
  return {"train": [dict(pool[i]) for i in train_ids], "test": [dict(pool[i]) for i in test_ids]}


def normalize_integer(text: str) -> str | None:
  """`text` as a canonical integer string (`+09 ` -> `9`); None if it is no integer literal."""
  text = text.strip()
  if len(text) > MAX_ANSWER_CHARS or not _INTEGER.fullmatch(text):
    return None
  return str(int(text))


@base.register("arith")
class ArithTask(base.Task):
  """Single-digit sums and differences; the last boxed integer is graded."""

  def messages(self, example: dict) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{example['problem']}\n{INSTRUCTION}"}]

  def prompt_text(self, example: dict) -> str:
    return f"Problem: {example['problem']}\nSolution: "

  def verify(self, response: str, example: dict) -> float:
    try:
      answer = self.normalized_answer(response)
      return float(answer is not None and answer == self.reference_answer(example))
    except Exception:  # never raise on policy text; bad examples are caught by tests
      return 0.0

  def normalized_answer(self, response: str) -> str | None:
    try:
      boxed = extract.last_boxed(response)
      return None if boxed is None else normalize_integer(boxed)
    except Exception:
      return None

  def with_problem(self, example: dict, problem_text: str) -> dict:
    if not isinstance(problem_text, str):
      raise TypeError(f"problem_text must be a str, got {type(problem_text).__name__}")
    # The original's solution and operand count describe the original problem, not this one.
    return {"problem": problem_text, "answer": example["answer"]}

  def reference_answer(self, example: dict) -> str:
    answer = normalize_integer(str(example["answer"]))
    if answer is None:
      raise ValueError(f"arith: reference answer {example['answer']!r} is not an integer")
    return answer
