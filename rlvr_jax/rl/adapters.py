"""LoRA in the trainer: adapters on the policy RL starts from, what a checkpoint holds, and
the record of which base the adapters belong to.

With `config.lora.rank > 0` the base (the loaded or warm-started policy) is frozen and
only the adapter leaves of `models/lora.py` train. A checkpoint then holds the adapters,
their optimizer state and the step, not the base: on resume the base is loaded again
(model source and warm start, as at the start) and `<workdir>/lora_base.json`, written
once by the first run, checks that it is the same base, by a per-leaf checksum.
"""

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlvr_jax import models, multihost, sharding
from rlvr_jax.models import lora

BASE_RECORD = "lora_base.json"


def add(params: Any, cfg: models.ModelConfig, spec: lora.LoraSpec, mesh: Any, rules: Any,
        key: jax.Array) -> tuple[models.ModelConfig, Any]:
  """(cfg with the adapters' scale, params with fresh adapters created on their shards)."""
  adapters = sharding.init_sharded(lambda k: lora.init_adapters(cfg, spec, k),
                                   lora.logical_axes(cfg, spec), mesh, rules, key)
  return cfg.replace(lora_scale=spec.scale), lora.join(adapters, params)


def saved(state: dict, spec: lora.LoraSpec | None) -> dict:
  """The part of the train state a checkpoint holds: all of it, or (LoRA) all but the base."""
  if spec is None:
    return state
  return dict(state, params=lora.split(state["params"])[0])


def restored(state: dict, loaded: dict, spec: lora.LoraSpec | None) -> dict:
  """The train state from a restored `saved(...)` tree and the current (freshly loaded) base."""
  if spec is None:
    return loaded
  return dict(loaded, params=lora.join(loaded["params"], lora.base(state["params"])))


def checksum(params: Any) -> list[float]:
  """Sum of |x| of every leaf, in float32 (one reduction a leaf, read back once)."""
  leaves = jax.tree.leaves(params)
  sums = jax.jit(lambda xs: jnp.stack([jnp.sum(jnp.abs(x.astype(jnp.float32))) for x in xs]))
  return [float(v) for v in np.asarray(multihost.gather(sums(leaves)))]


def base_record(config: ml_collections.ConfigDict, base: Any) -> dict:
  """What identifies the base: its source, the warm start, and the per-leaf checksum."""
  m, ws = config.model, config.warmstart
  return {"source": m.source, "preset": m.preset, "path": m.path,
          "param_dtype": m.param_dtype, "warmstart_steps": int(ws.steps),
          "warmstart_load_dir": ws.load_dir, "lora": config.lora.to_dict(),
          "checksum": checksum(base)}


def check_base(workdir: str, config: ml_collections.ConfigDict, base: Any) -> None:
  """Writes `<workdir>/lora_base.json` on the first run; on a later one, fails unless the
  base loaded now is the one the saved adapters were trained on (checksums within 1e-5,
  room for a different reduction order on another mesh)."""
  path = os.path.join(workdir, BASE_RECORD)
  record = base_record(config, base)
  if not os.path.exists(path):
    if multihost.is_lead():
      with open(path, "w") as f:
        json.dump(record, f, indent=2)
    multihost.sync("lora_base_record")
    return
  with open(path) as f:
    old = json.load(f)
  if old["lora"] != record["lora"]:
    raise ValueError(f"{path}: the adapters were made with lora={old['lora']}, this run asks "
                     f"for lora={record['lora']}")
  a, b = np.asarray(old["checksum"]), np.asarray(record["checksum"])
  if a.shape != b.shape or not np.allclose(a, b, rtol=1e-5, atol=0.0):
    raise ValueError(f"{path}: the base loaded now (source {record['source']!r}, preset "
                     f"{record['preset']!r}, path {record['path']!r}) is not the one the "
                     f"checkpointed adapters belong to (source {old['source']!r}, preset "
                     f"{old['preset']!r}, path {old['path']!r}): its weights differ")
