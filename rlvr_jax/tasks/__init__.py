"""Verifiable tasks: registry, verifiers, batch verification, the character tokenizer.

    task = tasks.get('maze')               # also 'countdown', 'math', 'arith'
    rewards_R, info = tasks.verify_batch(task, responses, examples)
"""

from collections.abc import Sequence

import numpy as np

from rlvr_jax.tasks import arith, countdown, math_task, maze  # noqa: F401  (registers the tasks)
from rlvr_jax.tasks.base import Example, Task, clamp_score, get, names, register
from rlvr_jax.tasks.pool import VerifierPool, default_pool
from rlvr_jax.tasks.tokenizer import CharTokenizer


def verify_batch(task: Task, responses: Sequence[str], examples: Sequence[Example],
                 pool: VerifierPool | None = None) -> tuple[np.ndarray, dict]:
  """Rewards [R] float32 in [0, 1] of a rollout batch, and counts (`timeouts`, `errors`).

  Tasks that can hang (`task.needs_pool`) go through `pool` (default: the shared
  pool); the cheap verifiers (maze, countdown, arith) run in-process, which
  benchmarks/RESULTS.md measures to be faster than the pool, even in chunks.
  """
  if len(responses) != len(examples):
    raise ValueError(f"verify_batch: {len(responses)} responses but {len(examples)} examples")
  rewards, info = task.verify_many(responses, examples, pool if task.needs_pool else None)
  rewards_R = np.asarray([clamp_score(r) for r in rewards], np.float32)
  return rewards_R, info


__all__ = ["CharTokenizer", "Example", "Task", "VerifierPool", "default_pool", "get", "names",
           "register", "verify_batch"]
