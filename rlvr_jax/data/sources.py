"""A task's train source and eval sets, built once into the data dir and read through TFDS.

    train, evals = data.load('maze', config.data)   # builds if needed (a no-op when built)
    train[i]            # the task's example dict (str, int, list[int]); len(train)
    evals               # {eval set name: [example, ...]}

Eval sets: maze / countdown / arith split their test split by `data.eval_group_key`
(set name f'{key}{value}', e.g. 'size7' or 'operands3'; one set 'test' without a key) after
capping it at its first `data.eval_limit` examples (0: all); math has one set
an eval file (`data.eval_files`), each capped at `data.eval_limit`.
The data dir is `data.dir`, else $RLVR_JAX_DATA_DIR, else ~/.cache/rlvr_jax/tfds.
"""

import fcntl
import os
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from rlvr_jax.data import builders

DATA_DIR_ENV = "RLVR_JAX_DATA_DIR"


def data_dir(configured: str = "") -> str:
  """Where builds go: `configured`, else $RLVR_JAX_DATA_DIR, else ~/.cache/rlvr_jax/tfds."""
  path = configured or os.environ.get(DATA_DIR_ENV) or os.path.join("~", ".cache", "rlvr_jax", "tfds")
  return os.path.abspath(os.path.expanduser(path))


def to_example(record: dict) -> dict:
  """A decoded TFDS record as plain Python values (str, int, list[int])."""
  out = {}
  for key, value in record.items():
    if isinstance(value, bytes):
      out[key] = value.decode("utf-8")
    elif isinstance(value, np.ndarray) and value.ndim > 0:
      out[key] = value.tolist()
    elif isinstance(value, (np.generic, np.ndarray)):
      out[key] = value.item()
    else:
      out[key] = value
  return out


class Examples:
  """Random access to a TFDS data source that returns the task's example dicts."""

  def __init__(self, source: Any):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    return to_example(self.source[index])

  def __repr__(self) -> str:
    return f"Examples({len(self)} records of {self.source!r})"


class Splits(NamedTuple):
  train: Examples
  evals: dict[str, list[dict]]


def load(task_name: str, data_cfg: ml_collections.ConfigDict) -> Splits:
  """Builds `task_name`'s data for `data_cfg` if it is not built yet, and opens it."""
  root = data_dir(data_cfg.get("dir", ""))
  # Runs (or test workers, or the processes of a host) sharing the data dir build one at a
  # time; the others wait, then open the files (the builder is made under the lock, so it
  # sees them). TFDS returns at once when the files are there.
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, ".build.lock"), "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      builder = builders.for_task(task_name, data_cfg, root)
      builder.download_and_prepare()
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
  train = Examples(builder.as_data_source(split="train"))
  if not len(train):
    raise ValueError(f"the train split of {task_name!r} is empty ({builder.data_dir})")
  limit = int(data_cfg.get("eval_limit", 0))
  key = data_cfg.get("eval_group_key") or ""
  read = lambda split: [to_example(r) for r in _head(builder.as_data_source(split=split), limit)]
  evals: dict[str, list[dict]] = {}
  if task_name == "math":
    if key:
      raise ValueError("data.eval_group_key does not apply to math: each eval file is one set")
    for name, _ in builders.eval_files(data_cfg.get("eval_files", "")):
      evals[name] = read(name)
    return Splits(train, evals)
  for ex in read("test"):
    evals.setdefault(f"{key}{ex[key]}" if key else "test", []).append(ex)
  return Splits(train, evals)


def _head(source: Any, limit: int) -> list:
  n = len(source) if limit <= 0 else min(limit, len(source))
  return [source[i] for i in range(n)]
