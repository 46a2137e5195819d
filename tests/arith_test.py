"""Arith: the boxed-integer verifier, worked solutions, splits, with_problem and the TFDS build."""

import collections
import re

import ml_collections
import pytest

from rlvr_jax import data, tasks
from rlvr_jax.rl.defaults import base_config
from rlvr_jax.tasks import arith

TASK = tasks.get("arith")
EX = {"problem": "7+5-3", "answer": "9", "solution": "7+5=12,12-3=9 \\boxed{9}", "operands": 3}
NEG = arith.solve([1, 9], "-")  # 1-9 = -8


def _python_value(problem: str) -> int:
  """The problem's value by Python's own arithmetic (an independent check of `solve`)."""
  assert re.fullmatch(r"[1-9]([+-][1-9])+", problem), problem
  return eval(problem, {"__builtins__": {}})  # noqa: S307  (generated digits and + - only)


def test_solve_writes_the_worked_solution():
  assert arith.solve([7, 5, 3], "+-") == EX
  assert arith.solve([7, 5], "+") == {"problem": "7+5", "answer": "12",
                                      "solution": "7+5=12 \\boxed{12}", "operands": 2}
  assert NEG == {"problem": "1-9", "answer": "-8", "solution": "1-9=-8 \\boxed{-8}",
                 "operands": 2}
  assert arith.solve([1, 9, 3], "-+")["solution"] == "1-9=-8,-8+3=-5 \\boxed{-5}"


@pytest.mark.parametrize("response,expected", [
    ("7+5=12,12-3=9 \\boxed{9}", 1.0),
    ("\\boxed{9}", 1.0),
    ("\\boxed{ 9 }", 1.0),  # surrounding whitespace is stripped
    ("\\boxed{+9}", 1.0),  # an explicit sign is an integer literal
    ("\\boxed{09}", 1.0),  # so are leading zeros
    ("\\boxed{8}", 0.0),
    ("\\boxed{-9}", 0.0),
    ("7+5-3=9", 0.0),  # no box
    ("9", 0.0),
    ("\\boxed{9", 0.0),  # never closed
    ("\\boxed{9} then \\boxed{8}", 0.0),  # the last box counts
    ("\\boxed{8} then \\boxed{9}", 1.0),
    ("\\boxed{9} then \\boxed{8", 0.0),  # the last box never closes
    ("\\boxed{}", 0.0),
    ("\\boxed{9.0}", 0.0),  # integers only
    ("\\boxed{9/1}", 0.0),
    ("\\boxed{4+5}", 0.0),
    ("\\boxed{x=9}", 0.0),
    ("\\boxed{9 9}", 0.0),  # whitespace inside the number is junk
    ("\\boxed{- 9}", 0.0),
    ("\\boxed{++9}", 0.0),
    ("\\boxed{{9}}", 0.0),
    ("\\boxed{٩}", 0.0),  # int() would read this Arabic-Indic nine; ASCII digits only
    ("\\boxed{" + "0" * 40 + "9}", 0.0),  # over MAX_ANSWER_CHARS
    ("", 0.0),
])
def test_verifier_cases(response, expected):
  assert TASK.verify(response, EX) == expected


@pytest.mark.parametrize("response,expected", [
    ("1-9=-8 \\boxed{-8}", 1.0),
    ("\\boxed{ -08 }", 1.0),
    ("\\boxed{8}", 0.0),
    ("\\boxed{--8}", 0.0),
])
def test_negative_answers(response, expected):
  assert TASK.verify(response, NEG) == expected


def test_zero_and_bad_inputs_never_raise():
  zero = arith.solve([4, 4], "-")
  assert zero["answer"] == "0"
  assert [TASK.verify(r, zero) for r in ("\\boxed{0}", "\\boxed{-0}", "\\boxed{+00}")] == [1.0] * 3
  assert TASK.verify(None, EX) == 0.0  # not a string
  assert TASK.verify("\\boxed{9}", {}) == 0.0  # no reference answer
  assert TASK.verify("\\boxed{9}", {"answer": "nine"}) == 0.0
  assert TASK.verify("\\boxed{" * 100_000 + "9", EX) == 0.0


def test_normalized_answer_and_reference_answer():
  got = [TASK.normalized_answer(r) for r in
         ("\\boxed{ +09 }", "\\boxed{-0}", "a \\boxed{-17} b", "\\boxed{9.0}", "no box", None)]
  assert got == ["9", "0", "-17", None, None, None]
  assert TASK.reference_answer(EX) == "9"
  assert TASK.reference_answer({"answer": " +012"}) == "12"
  with pytest.raises(ValueError, match="not an integer"):
    TASK.reference_answer({"answer": "1/2"})
  assert TASK.needs_pool is False


def test_prompts():
  assert TASK.prompt_text(EX) == "Problem: 7+5-3\nSolution: "
  (message,) = TASK.messages(EX)
  assert message["role"] == "user"
  assert message["content"] == ("7+5-3\nPlease reason step by step, and put your final answer "
                                "within \\boxed{}.")
  tok = tasks.CharTokenizer()
  for ex in arith.all_examples((2, 3)):
    tok.encode(TASK.prompt_text(ex) + ex["solution"])  # all inside the character vocabulary


def test_every_solution_verifies_and_equals_python_arithmetic():
  examples = arith.all_examples((2, 3, 4))
  assert len(examples) == 162 + 2916 + 52488 == sum(map(arith.num_problems, (2, 3, 4)))
  assert len({ex["problem"] for ex in examples}) == len(examples)
  for ex in examples:
    value = _python_value(ex["problem"])
    assert ex["answer"] == str(value)
    assert ex["operands"] == len(re.findall(r"[1-9]", ex["problem"]))
    assert TASK.verify(ex["solution"], ex) == 1.0
    steps = ex["solution"].split(" \\boxed{")[0].split(",")
    assert len(steps) == ex["operands"] - 1
    for step in steps:  # each step "a op b=c" is right
      lhs, rhs = step.split("=")
      assert eval(lhs, {"__builtins__": {}}) == int(rhs)  # noqa: S307
    assert steps[-1].split("=")[1] == ex["answer"]


def test_splits_are_disjoint_and_deterministic():
  splits = arith.make_splits(num_train=1000, num_test=200, seed=3)
  train, test = splits["train"], splits["test"]
  assert len(train) == 1000 and len(test) == 200
  train_problems = [ex["problem"] for ex in train]
  test_problems = [ex["problem"] for ex in test]
  assert len(set(train_problems)) == 1000 and len(set(test_problems)) == 200
  assert not set(train_problems) & set(test_problems)
  assert {ex["operands"] for ex in train + test} == {2, 3}
  assert arith.make_splits(num_train=1000, num_test=200, seed=3) == splits
  other = arith.make_splits(num_train=1000, num_test=200, seed=4)
  assert [ex["problem"] for ex in other["test"]] != test_problems
  # The test set is drawn first: its draw does not depend on num_train.
  assert arith.make_splits(num_train=5, num_test=200, seed=3)["test"] == test
  only_two = arith.make_splits(num_train=100, num_test=62, seed=0, operands=(2,))
  assert {ex["operands"] for ex in only_two["train"] + only_two["test"]} == {2}
  every = arith.make_splits(num_train=3000, num_test=78, seed=0)  # all 3078 problems
  assert len({ex["problem"] for ex in every["train"] + every["test"]}) == 3078


def test_split_sizes_are_validated():
  with pytest.raises(ValueError, match=r"2900 train \+ 200 test .* only 3078 distinct problems "
                     r"\(162 of 2 operands, 2916 of 3 operands\)"):
    arith.make_splits(num_train=2900, num_test=200, seed=0)
  with pytest.raises(ValueError, match="only 162 distinct"):
    arith.make_splits(num_train=150, num_test=13, seed=0, operands=(2,))
  with pytest.raises(ValueError, match="num_test must be a non-negative integer"):
    arith.make_splits(num_train=10, num_test=-1, seed=0)
  for bad in ((), (1, 2), (5,), (2.0,), (True,), (2, "3")):
    with pytest.raises(ValueError, match="operand counts in 2..4"):
      arith.make_splits(num_train=10, num_test=10, seed=0, operands=bad)


def test_many_problems_share_each_answer():
  train = arith.make_splits(num_train=2000, num_test=200, seed=0)["train"]
  counts = collections.Counter(ex["answer"] for ex in train)
  assert counts.most_common(1)[0][1] >= 50
  assert sum(n >= 50 for n in counts.values()) >= 10
  # Over all problems, answers -17..27; only the extremes (1-9-9, 9+9+9, ...) are rare.
  every = collections.Counter(ex["answer"] for ex in arith.all_examples((2, 3)))
  assert sorted(map(int, every)) == list(range(-17, 28))
  assert sorted(every.values())[len(every) // 2] >= 50  # the median answer has >= 50 problems


def test_with_problem_keeps_the_answer():
  synthesized = TASK.with_problem(EX, "3+3+3")
  assert synthesized == {"problem": "3+3+3", "answer": "9"}
  assert TASK.prompt_text(synthesized) == "Problem: 3+3+3\nSolution: "
  assert TASK.verify("3+3=6,6+3=9 \\boxed{9}", synthesized) == 1.0
  assert TASK.reference_answer(synthesized) == TASK.reference_answer(EX) == "9"
  # Graded against the original's answer, whatever the new text says.
  assert TASK.verify("\\boxed{2}", TASK.with_problem(EX, "1+1")) == 0.0
  assert EX["problem"] == "7+5-3"  # the original is unchanged
  with pytest.raises(TypeError, match="must be a str"):
    TASK.with_problem(EX, None)


def test_with_problem_on_math_and_the_defaults():
  math = tasks.get("math")
  original = {"problem": "What is $1/2 + 1/4$?", "answer": "\\frac{3}{4}"}
  assert math.with_problem(original, "What is $1 - 1/4$?") == {"problem": "What is $1 - 1/4$?",
                                                               "answer": "\\frac{3}{4}"}
  assert math.reference_answer({"answer": " \\frac{3} {4} "}) == "\\frac{3}{4}"
  assert math.reference_answer({"answer": 6}) == "6"
  for name, ex in (("countdown", {"numbers": [1, 2], "target": 3}),
                   ("maze", {"grid": "S.E", "size": 3})):
    with pytest.raises(NotImplementedError, match=f"task '{name}' has no problem text"):
      tasks.get(name).with_problem(ex, "x")
    with pytest.raises(NotImplementedError, match=f"task '{name}' has no single reference"):
      tasks.get(name).reference_answer(ex)


def test_tfds_build_round_trip(tmp_path):
  splits = {"num_train": 300, "num_test": 120, "seed": 11, "operands": (2, 3)}
  cfg = base_config().data
  cfg.dir = str(tmp_path)
  cfg.splits = ml_collections.ConfigDict(splits)
  cfg.eval_group_key = "operands"
  train, evals = data.load("arith", cfg)
  expected = arith.make_splits(**splits)
  rows = [train[i] for i in range(len(train))]
  assert rows == expected["train"]  # same examples, same order, plain Python values
  assert all(type(e["operands"]) is int and type(e["answer"]) is str for e in rows)
  by_operands = {}
  for ex in expected["test"]:
    by_operands.setdefault(f"operands{ex['operands']}", []).append(ex)
  assert evals == by_operands and set(evals) == {"operands2", "operands3"}
  assert all(TASK.verify(e["solution"], e) == 1.0 for e in rows)
  with pytest.raises(ValueError, match="only 3078 distinct problems"):
    data.load("arith", ml_collections.ConfigDict({**cfg.to_dict(),
                                                  "splits": {**splits, "num_train": 3000}}))
  assert (tmp_path / "rlvr_arith").is_dir()
