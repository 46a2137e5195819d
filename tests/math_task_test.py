"""Math task: boxed extraction, math-verify equivalence through the pool, time-outs, loader."""

import json
import os
import time

import numpy as np
import pytest

from rlvr_jax import tasks
from rlvr_jax.tasks import extract, math_task

DATA = os.path.join(os.path.dirname(__file__), "testdata", "math_sample.jsonl")
TASK = tasks.get("math")


@pytest.fixture(scope="module")
def pool():
  # Generous limit: legitimate comparisons here take < 1 s unloaded, and the shared
  # machine can be several times slower; the hang below runs for minutes.
  with tasks.VerifierPool(num_workers=2, timeout_s=8.0, preload=("rlvr_jax.tasks.math_task",
                                                                  "math_verify")) as p:
    yield p


def test_last_boxed_extraction():
  assert extract.last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
  assert extract.last_boxed("\\boxed{{a}{b{c}}}") == "{a}{b{c}}"
  assert extract.last_boxed("\\boxed{1} then \\boxed{2") is None  # last one never closes
  assert extract.last_boxed("no box") is None
  assert extract.last_boxed("\\boxed{é{ü}}") == "é{ü}"  # multi-byte characters survive


EQUIVALENT = [  # (boxed answer, reference): equal for math-verify
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac12", "1/2"),
    ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("[1,2)", "[1,2)"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("x^{2}+2x+1", "(x+1)^2"),
    ("10\\%", "10"),
]
NOT_EQUIVALENT = [
    ("3", "4"),
    ("(1,2)", "[1,2]"),  # open vs closed interval
    ("[1,2)", "(1,2]"),
    ("0.333", "\\frac13"),
    ("\\sqrt{2}", "2"),
    ("x+1", "x-1"),
]


def test_equivalences_through_pool(pool):
  cases = EQUIVALENT + NOT_EQUIVALENT
  responses = [f"The answer is \\boxed{{{p}}}." for p, _ in cases]
  examples = [{"problem": "", "answer": g} for _, g in cases]
  rewards, info = tasks.verify_batch(TASK, responses, examples, pool=pool)
  assert rewards.dtype == np.float32
  assert rewards.tolist() == [1.0] * len(EQUIVALENT) + [0.0] * len(NOT_EQUIVALENT)
  assert info["timeouts"] == 0 and info["errors"] == 0 and info["graded"] == len(cases)


def test_last_boxed_is_graded(pool):
  ex = [{"problem": "", "answer": "4"}] * 4
  responses = ["\\boxed{3} no, \\boxed{4}", "\\boxed{4} no, \\boxed{3}", "4", "\\boxed{4"]
  rewards, info = tasks.verify_batch(TASK, responses, ex, pool=pool)
  assert rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
  assert info["graded"] == 2  # the unboxed and unclosed ones never reach a worker


def test_hang_times_out_scores_zero_and_is_counted(pool):
  # 9^(9^(9^9)) against 1: sympy tries to evaluate it and does not return for minutes
  # (measured: still running after 120 s in-process).
  ex = [{"problem": "", "answer": "1"}, {"problem": "", "answer": "2"}]
  start = time.perf_counter()
  rewards, info = tasks.verify_batch(TASK, ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{2}"], ex, pool=pool)
  elapsed = time.perf_counter() - start
  assert rewards.tolist() == [0.0, 1.0]
  assert info["timeouts"] == 1
  assert elapsed < pool.timeout_s + 10
  # The killed worker was replaced and the pool still grades.
  rewards, info = tasks.verify_batch(TASK, ["\\boxed{2}"], ex[1:], pool=pool)
  assert rewards.tolist() == [1.0] and info["timeouts"] == 0


def test_nothing_is_executed(pool, tmp_path):
  sentinel = tmp_path / "pwned"
  payloads = [f"__import__('os').system('touch {sentinel}')",
              f"1+__import__('os').system('touch {sentinel}')",
              f"exec(\"open('{sentinel}','w')\")",
              f"\\text{{__import__('os').system('touch {sentinel}')}}"]
  responses = [f"\\boxed{{{p}}}" for p in payloads] + payloads
  rewards, _ = tasks.verify_batch(TASK, responses, [{"problem": "", "answer": "0"}] * 8, pool)
  assert rewards.tolist() == [0.0] * 8
  assert not sentinel.exists()


def test_malformed_example_scores_zero(pool):
  rewards, info = tasks.verify_batch(TASK, ["\\boxed{1}", "\\boxed{1}"], [{}, None], pool)
  assert rewards.tolist() == [0.0, 0.0] and info["graded"] == 0


def test_long_answer_not_sent():
  assert TASK.candidate("\\boxed{" + "1" * 1001 + "}") is None
  assert TASK.candidate("\\boxed{" + "1" * 1000 + "}") == "1" * 1000
  assert TASK.normalized_answer("so \\boxed{ \\frac{1}{2} }") == "\\frac{1}{2}"


def test_single_verify_uses_default_pool():
  assert TASK.verify("\\boxed{\\frac{5}{6}}", {"problem": "", "answer": "\\frac{5}{6}"}) == 1.0
  for row in math_task.load_jsonl(DATA):  # each sample's own answer, boxed, is correct
    assert TASK.verify(f"\\boxed{{{row['answer']}}}", row) == 1.0


def test_load_jsonl(tmp_path):
  rows = math_task.load_jsonl(DATA)
  assert len(rows) == 4 and set(rows[0]) == {"problem", "answer"}
  assert TASK.messages(rows[0])[0]["content"].endswith(math_task.INSTRUCTION)
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"question": "x"}) + "\n")
  with pytest.raises(ValueError, match="no 'problem' field"):
    math_task.load_jsonl(bad)
  bad.write_text("{not json\n")
  with pytest.raises(ValueError, match="not a JSON line"):
    math_task.load_jsonl(bad)
  bad.write_text("\n")
  with pytest.raises(ValueError, match="no examples"):
    math_task.load_jsonl(bad)
