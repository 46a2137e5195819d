"""Prompt batches for the RL loop: shuffled per epoch, sharded by host, resumable.

Letters: G the global batch (problems a step over all hosts), B = G / hosts
the problems this host yields, N rollouts a problem.

The pipeline yields B examples (not repeated): the sampler draws N rollouts a
prompt itself (`sampling.sample(..., num_samples=N)`, rows problem-major), and
`repeat_examples(batch, N)` lines the examples up with those rows for
`tasks.verify_batch`. Every host computes the same epoch permutation
(seeded by (seed, epoch)) and takes its own slice of each global batch, so
hosts need no communication. The tail of an epoch that does not fill a
global batch is dropped, to keep hosts in lockstep. `state()` is a small
dict of ints; `restore(state)` continues with exactly the next batch.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rlvr_jax.data.builders import to_example


class PromptBatches:
  """Iterator over lists of B examples from a random-access `source` (len + getitem)."""

  def __init__(self, source: Sequence[Any], global_batch_size: int, seed: int = 0,
               shuffle: bool = True, num_epochs: int | None = None,
               process_index: int | None = None, process_count: int | None = None):
    if process_index is None or process_count is None:
      import jax  # only here: tests and tools pass the host layout explicitly
      process_index = jax.process_index() if process_index is None else process_index
      process_count = jax.process_count() if process_count is None else process_count
    if global_batch_size < 1 or global_batch_size % process_count:
      raise ValueError(f"global_batch_size {global_batch_size} must be a positive multiple of "
                       f"the number of hosts {process_count}")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if len(source) < global_batch_size:
      raise ValueError(f"source has {len(source)} examples, fewer than one global batch "
                       f"({global_batch_size})")
    self.source = source
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self.seed, self.shuffle, self.num_epochs = seed, shuffle, num_epochs
    self.process_index = process_index
    self.batches_per_epoch = len(source) // global_batch_size
    self._epoch, self._batch = 0, 0
    self._order: np.ndarray | None = None

  def _epoch_order(self) -> np.ndarray:
    if self._order is None:
      n = len(self.source)
      self._order = (np.random.default_rng([self.seed, self._epoch]).permutation(n)
                     if self.shuffle else np.arange(n))
    return self._order

  def __iter__(self) -> Iterator[list[dict]]:
    return self

  def __next__(self) -> list[dict]:
    if self._batch == self.batches_per_epoch:
      self._epoch, self._batch, self._order = self._epoch + 1, 0, None
    if self.num_epochs is not None and self._epoch >= self.num_epochs:
      raise StopIteration
    start = self._batch * self.global_batch_size + self.process_index * self.local_batch_size
    ids = self._epoch_order()[start:start + self.local_batch_size]
    self._batch += 1
    return [_plain(self.source[int(i)]) for i in ids]

  def state(self) -> dict[str, int]:
    """Position after the last batch yielded, plus what must match on restore."""
    return {"epoch": self._epoch, "batch": self._batch, "seed": self.seed,
            "num_examples": len(self.source), "global_batch_size": self.global_batch_size}

  def restore(self, state: dict[str, int]) -> None:
    """Continue from `state()`; ValueError if it came from a different source or setup."""
    for key in ("seed", "num_examples", "global_batch_size"):
      mine = self.state()[key]
      if int(state[key]) != mine:
        raise ValueError(f"cannot restore: state has {key}={state[key]}, pipeline has {mine}")
    if not 0 <= int(state["batch"]) <= self.batches_per_epoch or int(state["epoch"]) < 0:
      raise ValueError(f"cannot restore: position {state} out of range")
    self._epoch, self._batch, self._order = int(state["epoch"]), int(state["batch"]), None


def _plain(record: Any) -> dict:
  return to_example(record) if isinstance(record, dict) else record


def repeat_examples(batch: Sequence[dict], num_rollouts: int) -> list[dict]:
  """Each example `num_rollouts` times in a row: row b*N + n is example b (problem-major)."""
  if num_rollouts < 1:
    raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
  return [ex for ex in batch for _ in range(num_rollouts)]
