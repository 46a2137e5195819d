"""Orbax train-state checkpoints: async, keep the last n, exact resume.

A checkpoint holds the train state {params, opt_state, step}, the PRNG key
data, the prompt iterator's state and the per-problem history (rl/history.py;
both through Grain's orbax handler, one JSON file a process) and a small JSON
record (the RL step). Orbax writes each step to
a temporary directory and renames it only once every file is committed, so a
crash or kill mid-save never leaves a half-written checkpoint as the latest.
"""

import os
import signal
import threading
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from rlvr_jax import data as data_lib, multihost


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with the trainer's layout."""

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
    if keep < 1:
      raise ValueError(f"checkpoint keep must be >= 1, got {keep}")
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._mngr = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: dict, rng: jax.Array, meta: dict,
           prompts: data_lib.PromptIterator | None = None, *, force: bool = False,
           history: Any = None) -> None:
    """Starts an (async) save; `rng` is a typed or raw uint32 PRNG key; `prompts` the data
    iterator, whose position is taken now (iterating on during the save changes nothing);
    `history` a `history.ProblemHistory`, likewise taken now."""
    # The key as host data: in a multi-process run every process holds the same one.
    tree = {"state": state, "rng": np.asarray(jax.device_get(_key_data(rng)))}
    items = dict(tree=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta)))
    if prompts is not None:
      items["data"] = data_lib.iterator_save_args(prompts)
    if history is not None:
      items["history"] = grain.checkpoint.CheckpointSave(item=history.snapshot())
    self._mngr.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step: int, abstract_state: dict, rng_like: jax.Array,
              prompts: data_lib.PromptIterator | None = None, history: Any = None
              ) -> tuple[dict, jax.Array, dict]:
    """Restores onto the shardings of `abstract_state` (ShapeDtypeStructs or arrays), the
    saved data position into `prompts` and the per-problem history into `history` (in
    place; a checkpoint written before the history existed leaves it empty, with a warning)."""
    abstract = {"state": jax.tree.map(_abstract, abstract_state),
                "rng": np.asarray(jax.device_get(_key_data(rng_like)))}
    items = dict(tree=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    if prompts is not None:
      if not os.path.isdir(os.path.join(self.directory, str(step), "data")):
        raise ValueError(f"checkpoint {step} in {self.directory} holds no data iterator state "
                         "(written before the Grain data path?): it cannot resume exactly")
      items["data"] = data_lib.iterator_restore_args(prompts)
    if history is not None:
      if os.path.isdir(os.path.join(self.directory, str(step), "history")):
        items["history"] = grain.checkpoint.CheckpointRestore(item=history)
      else:
        logging.warning("checkpoint %d in %s holds no per-problem history: it starts empty",
                        step, self.directory)
    out = self._mngr.restore(step, args=ocp.args.Composite(**items))
    # Back to an uncommitted host-made key, as a fresh run has: a key committed to one device
    # would clash with params spread over a multi-device mesh in the sampler's jit.
    rng = jnp.asarray(np.asarray(jax.device_get(out.tree["rng"])))
    if jax.dtypes.issubdtype(rng_like.dtype, jax.dtypes.prng_key):
      rng = jax.random.wrap_key_data(rng)
    return out.tree["state"], rng, dict(out.meta)

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def _key_data(rng: jax.Array) -> jax.Array:
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(rng)
  return rng


def _abstract(x: Any) -> Any:
  if isinstance(x, jax.ShapeDtypeStruct):
    return x
  if isinstance(x, jax.Array):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  x = np.asarray(x)
  return jax.ShapeDtypeStruct(x.shape, x.dtype)


class AnyProcess:
  """A view of a `StopFlag` that is set when it is set on any process (one tiny collective a
  read), so every process of a multi-process run leaves the loop at the same step."""

  def __init__(self, flag: Any):
    self._flag = flag

  def __bool__(self) -> bool:
    return multihost.any_process(bool(self._flag))


class StopFlag:
  """Set by SIGTERM (TPU preemption): the loop saves at the next step boundary and exits."""

  def __init__(self):
    self._event = threading.Event()
    self._previous = None

  def install(self) -> "StopFlag":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda *_: self._event.set())
    return self

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def set(self) -> None:
    self._event.set()

  def __bool__(self) -> bool:
    return self._event.is_set()
