"""Prompt batches for the RL loop through Grain: shuffled per epoch, repeated, sharded by process.

Letters: B the batch this process yields, P processes, G = B * P the global
batch (problems a step over all processes), n the examples in the source.

    it = data.prompt_iterator(train, batch_size=B, seed=config.seed)
    examples = next(it)                        # list of B example dicts

The pipeline is one Grain MapDataset: source -> shuffle (a permutation an
epoch, seeded by (seed, epoch)) -> repeat forever -> this process's block of
each global batch -> batches of B. Global batch t is elements t * G .. t * G +
G - 1 of the shuffled stream and process p reads elements t * G + p * B ..
t * G + p * B + B - 1 of it (only those: random access), so the P processes'
batches of step t are that step's global batch in order, rows process-major
as `multihost.global_rows` lays them out, with no communication; the stream
of global batches, and the row of the global batch each example lands in,
do not depend on P. Batches run on across epoch boundaries (no example is ever
dropped; a batch that straddles two epochs may hold one example twice).

The iterator's state is a small JSON dict (Grain's position plus the
settings it must be restored into); `iterator_save_args` / `iterator_restore_args`
put it into an orbax checkpoint through Grain's own orbax handler.
"""

from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

# Streams drawn from the same seed must differ: the RL prompts and the warm start's examples.
_PROMPTS, _WARMSTART = 0, 1


def _grain_seed(seed: int, stream: int) -> int:
  """A 32-bit Grain seed mixed from (seed, stream).

  Grain shuffles epoch e with seed + e, so seeds 0 and 1 used as they are would give
  the same orders one epoch apart; mixed seeds land at random among the 2**32.
  """
  return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


class PromptIterator(grain.DatasetIterator):
  """Yields lists of B example dicts forever; `get_state` / `set_state` resume exactly.

  Made by `prompt_iterator` / `warmstart_iterator`; `settings` are what a restored
  state must match (the same position means other examples otherwise).
  """

  def __init__(self, parent: grain.DatasetIterator, settings: dict[str, int]):
    super().__init__(parent)
    self.settings = settings

  def __next__(self) -> list[dict]:
    return next(self._parent)

  def get_state(self) -> dict[str, Any]:
    return {"grain": self._parent.get_state(), **self.settings}

  def set_state(self, state: dict[str, Any]) -> None:
    for key, mine in self.settings.items():
      if state.get(key) != mine:
        raise ValueError(f"cannot restore the prompt iterator: the saved state has "
                         f"{key}={state.get(key)!r}, this iterator {key}={mine!r}")
    self._parent.set_state(state["grain"])


class _ProcessBlock(grain.MapDataset):
  """Elements p * B .. p * B + B - 1 of every block of G = B * P elements of `parent`."""

  def __init__(self, parent: grain.MapDataset, block: int, index: int, count: int):
    super().__init__(parent)
    self._block, self._index, self._count = block, index, count

  def __len__(self) -> int:
    return len(self._parent) // self._count

  def __getitem__(self, i):
    if isinstance(i, slice):
      return self.slice(i)
    step, offset = divmod(i, self._block)
    return self._parent[(step * self._count + self._index) * self._block + offset]

  def __str__(self) -> str:
    return f"ProcessBlock(block={self._block}, index={self._index}, count={self._count})"


def _iterator(source: Sequence[dict], batch_size: int, seed: int, process_index: int,
              process_count: int, stream: int) -> PromptIterator:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  if len(source) < batch_size * process_count:
    raise ValueError(f"the source has {len(source)} examples, fewer than one global batch "
                     f"({batch_size} x {process_count} processes)")
  shuffled = grain.MapDataset.source(source).shuffle(seed=_grain_seed(seed, stream)).repeat()
  ds = _ProcessBlock(shuffled, batch_size, process_index, process_count).batch(batch_size,
                                                                               batch_fn=list)
  # Read in this thread: a step needs a few hundred records (milliseconds), and no
  # prefetch threads are alive when the verifier pool forks its workers.
  options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
  settings = {"seed": int(seed), "stream": stream, "num_examples": len(source),
              "batch_size": batch_size, "process_count": process_count}
  return PromptIterator(iter(ds.to_iter_dataset(options)), settings)


def prompt_iterator(source: Sequence[dict], batch_size: int, seed: int,
                    process_index: int | None = None, process_count: int | None = None
                    ) -> PromptIterator:
  """This process's B examples of each global batch of B * process_count (default: jax's)."""
  if process_index is None or process_count is None:
    import jax  # only here: tests and tools pass the process layout explicitly
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  return _iterator(source, batch_size, seed, process_index, process_count, _PROMPTS)


def warmstart_iterator(source: Sequence[dict], batch_size: int, seed: int) -> PromptIterator:
  """The warm start's batches: the same B examples on every process, in an order of their
  own (a different stream than `prompt_iterator` with the same seed)."""
  return _iterator(source, batch_size, seed, 0, 1, _WARMSTART)


class _SavedState(grain.DatasetIterator):
  """A state taken when the save was asked for, so that iterating on while orbax
  writes in the background cannot change what is written."""

  def __init__(self, state: dict[str, Any]):
    super().__init__()
    self._state = state

  def __next__(self):
    raise TypeError("a saved iterator state is not an iterator")

  def get_state(self) -> dict[str, Any]:
    return self._state

  def set_state(self, state: dict[str, Any]) -> None:
    raise TypeError("a saved iterator state cannot be restored into")


def iterator_save_args(it: PromptIterator) -> Any:
  """The orbax args that save `it`'s current state (one JSON file a process)."""
  return grain.checkpoint.CheckpointSave(item=_SavedState(it.get_state()))


def iterator_restore_args(it: PromptIterator) -> Any:
  """The orbax args that restore a saved state into `it` (in place; orbax returns `it`)."""
  return grain.checkpoint.CheckpointRestore(item=it)
