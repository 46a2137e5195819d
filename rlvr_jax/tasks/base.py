"""The Task interface and the registry of tasks by name.

A task turns an example (a dict of plain Python values) into a prompt and
scores a response against it. `verify` must never raise and always returns a
float in [0, 1]: it reads text written by a policy under optimization pressure.
"""

from collections.abc import Callable, Sequence
from typing import Any

Example = dict[str, Any]


class Task:
  """Base class; subclasses set `name` and implement the four methods.

  `needs_pool`: True when a verification can hang (symbolic math), so batches
  go through a process pool with a hard time limit; cheap verifiers run in-process.

  Tasks whose examples are a problem text with a reference answer (math, arith)
  also implement `with_problem` and `reference_answer`, which problem synthesis
  (SvS) needs; the others raise NotImplementedError there.
  """

  name: str = ""
  needs_pool: bool = False

  def messages(self, example: Example) -> list[dict[str, str]]:
    raise NotImplementedError

  def prompt_text(self, example: Example) -> str:
    raise NotImplementedError

  def verify(self, response: str, example: Example) -> float:
    raise NotImplementedError

  def normalized_answer(self, response: str) -> str | None:
    raise NotImplementedError

  def with_problem(self, example: Example, problem_text: str) -> Example:
    """A new example posing `problem_text` with `example`'s reference answer.

    SvS grades the solutions of a problem the policy synthesized from `example`
    against `example`'s answer.
    """
    raise NotImplementedError(f"task {self.name!r} has no problem text to replace "
                              "(with_problem is for problem-and-answer tasks: math, arith)")

  def reference_answer(self, example: Example) -> str:
    """`example`'s reference answer, normalized the way `verify` compares answers."""
    raise NotImplementedError(f"task {self.name!r} has no single reference answer "
                              "(reference_answer is for problem-and-answer tasks: math, arith)")

  def verify_many(self, responses: Sequence[str], examples: Sequence[Example],
                  pool: Any = None) -> tuple[list[float], dict]:
    """Scores of a batch with counts; in-process here, pooled in tasks that can hang."""
    del pool
    return [self.verify(r, e) for r, e in zip(responses, examples)], {"timeouts": 0, "errors": 0}


_REGISTRY: dict[str, Callable[..., Task]] = {}


def register(name: str) -> Callable[[type], type]:
  """Class decorator: makes `get(name, **kwargs)` build the class."""

  def wrap(cls: type) -> type:
    if name in _REGISTRY:
      raise ValueError(f"task {name!r} is already registered")
    cls.name = name
    _REGISTRY[name] = cls
    return cls

  return wrap


def get(name: str, **kwargs: Any) -> Task:
  """The task registered under `name`, built with `kwargs`."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown task {name!r}; known: {sorted(_REGISTRY)}")
  return _REGISTRY[name](**kwargs)


def names() -> list[str]:
  return sorted(_REGISTRY)


def clamp_score(x: Any) -> float:
  """A verifier's output as a float in [0, 1]; anything else (NaN included) is 0."""
  try:
    x = float(x)
  except (TypeError, ValueError, OverflowError):
    return 0.0
  return x if 0.0 <= x <= 1.0 else 0.0
