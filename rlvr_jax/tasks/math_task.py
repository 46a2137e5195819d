"""Math problems with a reference answer; the response's last `\\boxed{...}` is graded.

Equivalence is math-verify's (`parse` + `verify`: fractions, LaTeX forms,
intervals, sets). It runs in a `VerifierPool` worker with a hard time limit,
because sympy can hang; math-verify's own signal-based time-outs are turned
off there so that every time-out is the pool's and is counted. The boxed
answer is extracted in the caller (cheap) and only answers of at most
`max_answer_chars` characters are sent: a longer one scores 0 without
sympy ever seeing it. Only the LaTeX extractor reads the policy's answer
(math-verify's plain-expression extractor goes through sympy's
`parse_expr`, which evaluates Python).

Example dict: {'problem': str, 'answer': str}; `load_jsonl(path)` reads them.
"""

import functools
import json
import logging
import os
from collections.abc import Sequence

import numpy as np

from rlvr_jax.tasks import base, extract, pool as pool_lib

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@functools.lru_cache(maxsize=4096)
def _parse_gold(answer: str):
  import math_verify
  return math_verify.parse(f"${answer}$", parsing_timeout=None)


def equivalent(pred: str, gold: str) -> bool:
  """math-verify equivalence of a boxed answer and a reference answer (runs in a worker)."""
  import math_verify
  logging.getLogger("math_verify").setLevel(logging.ERROR)  # the "timeout disabled" warning
  parsed = math_verify.parse(f"\\boxed{{{pred}}}",
                             extraction_config=[math_verify.LatexExtractionConfig()],
                             parsing_timeout=None)
  if not parsed:
    return False
  return bool(math_verify.verify(_parse_gold(gold), parsed, timeout_seconds=None))


def load_jsonl(path: str | os.PathLike) -> list[dict]:
  """{'problem', 'answer'} of each line of a jsonl file (other fields are dropped).

  Answers may be JSON strings or numbers (AIME exports give ints); anything else,
  a blank problem or answer, a line that is not a JSON object, or a file
  without rows is a ValueError naming the file and line.
  """
  rows = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{lineno}: not a JSON line ({e})") from None
      if not isinstance(row, dict):
        raise ValueError(f"{path}:{lineno}: a line must be a JSON object, got {type(row).__name__}")
      for field in ("problem", "answer"):
        value = row.get(field)
        if field not in row:
          raise ValueError(f"{path}:{lineno}: no {field!r} field (has {sorted(row)})")
        # bool is an int to Python; an answer of `true` is a broken export, not a number.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
          raise ValueError(f"{path}:{lineno}: {field!r} must be a non-empty string or number, "
                           f"got {value!r:.80}")
      rows.append({"problem": str(row["problem"]), "answer": str(row["answer"])})
  if not rows:
    raise ValueError(f"{path}: no examples")
  return rows


@base.register("math")
class MathTask(base.Task):
  """Boxed-answer math graded by math-verify in a process pool."""

  needs_pool = True

  def __init__(self, max_answer_chars: int = 1000):
    self.max_answer_chars = max_answer_chars

  def messages(self, example: dict) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{example['problem']}\n{INSTRUCTION}"}]

  def prompt_text(self, example: dict) -> str:
    return f"Problem: {example['problem']}\nAnswer: \\boxed{{"

  def candidate(self, response: str) -> str | None:
    """The boxed answer to grade, or None when there is none (or it is too long)."""
    try:
      pred = extract.last_boxed(response)
    except Exception:
      return None
    if pred is None or not pred.strip() or len(pred) > self.max_answer_chars:
      return None
    return pred

  def verify(self, response: str, example: dict) -> float:
    rewards, _ = self.verify_many([response], [example], None)
    return float(rewards[0])

  def verify_many(self, responses: Sequence[str], examples: Sequence[dict],
                  pool: pool_lib.VerifierPool | None) -> tuple[np.ndarray, dict]:
    rewards = np.zeros(len(responses), np.float32)
    calls, where = [], []
    for i, (response, example) in enumerate(zip(responses, examples)):
      pred = self.candidate(response)
      gold = example.get("answer") if isinstance(example, dict) else None
      if pred is not None and gold is not None:
        calls.append((pred, str(gold)))
        where.append(i)
    info = {"timeouts": 0, "errors": 0, "graded": len(calls)}
    if calls:
      results, counts = (pool or pool_lib.default_pool()).map(equivalent, calls)
      info.update(counts)
      rewards[where] = [1.0 if r is True else 0.0 for r in results]
    return rewards, info

  def normalized_answer(self, response: str) -> str | None:
    pred = self.candidate(response)
    return None if pred is None else "".join(pred.split())

  def with_problem(self, example: dict, problem_text: str) -> dict:
    if not isinstance(problem_text, str):
      raise TypeError(f"problem_text must be a str, got {type(problem_text).__name__}")
    return {"problem": problem_text, "answer": str(example["answer"])}

  def reference_answer(self, example: dict) -> str:
    """The reference answer without whitespace, as `normalized_answer` writes a boxed answer
    (math-verify's equivalence is wider: `0.5` also grades against `\\frac{1}{2}`)."""
    return "".join(str(example["answer"]).split())
