"""Train / eval examples for the RL loop, and a resumable order over them.

Examples come from the task module's `make_splits(**config.data.splits)`
(e.g. `rlvr_jax.tasks.maze.make_splits`), so train and test are de-duplicated
by the task. The loop's position in the train stream is one integer: epoch e
visits the examples in a permutation seeded by (seed, e), so a checkpointed
position resumes the exact same stream.
"""

import importlib
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np


def load_splits(task_name: str, data_cfg: ml_collections.ConfigDict) -> tuple[list, dict[str, list]]:
  """(train examples, {eval set name: examples}); eval sets split by `data.eval_group_key`."""
  try:
    module = importlib.import_module(f"rlvr_jax.tasks.{task_name}")
  except ImportError as e:
    raise ValueError(f"task {task_name!r} has no module rlvr_jax.tasks.{task_name}") from e
  kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data_cfg.splits.to_dict().items()}
  if hasattr(module, "make_splits"):
    splits = module.make_splits(**kwargs)
  elif hasattr(module, "generate"):
    splits = _splits_from_generate(module.generate, **kwargs)
  else:
    raise ValueError(f"rlvr_jax.tasks.{task_name} has neither make_splits() nor generate()")
  train, test = list(splits["train"]), list(splits["test"])
  if not train:
    raise ValueError("the train split is empty")
  key = data_cfg.get("eval_group_key") or ""
  evals: dict[str, list] = {}
  for ex in test[: len(test) if data_cfg.eval_limit <= 0 else data_cfg.eval_limit]:
    name = f"{key}{ex[key]}" if key else "test"
    evals.setdefault(name, []).append(ex)
  return train, evals


def _splits_from_generate(generate: Any, num_train: int, num_test: int, seed: int,
                          **kwargs: Any) -> dict[str, list]:
  """Adapter for tasks that only offer `generate(count, rng)` (countdown): test first,
  then train examples whose prompt fields repeat a test one are dropped."""
  test = generate(num_test, np.random.default_rng([seed, 0]), **kwargs)
  key = lambda ex: repr(sorted((k, v) for k, v in ex.items() if k != "solution"))
  seen = {key(ex) for ex in test}
  train = [ex for ex in generate(2 * num_train, np.random.default_rng([seed, 1]), **kwargs)
           if key(ex) not in seen][:num_train]
  if len(train) < num_train:
    raise ValueError(f"could only draw {len(train)} distinct train examples of {num_train}")
  return {"train": train, "test": test}


class Stream:
  """Examples in epoch-wise seeded permutations; `position` is all the state there is."""

  def __init__(self, examples: Sequence[Any], seed: int, position: int = 0):
    self.examples = list(examples)
    self.seed = int(seed)
    self.position = int(position)

  def _perm(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

  def take(self, count: int) -> list:
    n = len(self.examples)
    out = []
    for p in range(self.position, self.position + count):
      out.append(self.examples[self._perm(p // n)[p % n]])
    self.position += count
    return out
