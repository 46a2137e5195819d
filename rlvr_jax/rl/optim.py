"""The optimizer and its state: AdamW after global-norm clipping, with linear warm-up.

The train state is a dict {params, opt_state, step}; `init_state` places the
optimizer moments on the params' shardings.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax.models import lora


def lr_schedule(opt_cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up from lr/warmup to lr over `warmup_steps` updates, then constant."""
  lr, warmup = float(opt_cfg.lr), int(opt_cfg.warmup_steps)
  if lr <= 0:
    raise ValueError(f"optimizer.lr must be > 0, got {lr}")
  if warmup <= 0:
    return optax.constant_schedule(lr)
  return lambda count: lr * jnp.minimum(1.0, (count + 1.0) / warmup)


def make_optimizer(opt_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with warm-up, after clipping the global gradient norm."""
  return optax.chain(
      optax.clip_by_global_norm(float(opt_cfg.max_grad_norm)),
      optax.adamw(lr_schedule(opt_cfg), b1=float(opt_cfg.b1), b2=float(opt_cfg.b2),
                  eps=float(opt_cfg.eps), weight_decay=float(opt_cfg.weight_decay)),
  )


def trainable(params: Any, adapters_only: bool) -> Any:
  """What the optimizer updates: every parameter, or (LoRA) the adapter leaves alone."""
  return lora.split(params)[0] if adapters_only else params


def init_state(params: Any, optimizer: optax.GradientTransformation, mesh: Any,
               adapters_only: bool = False) -> dict:
  """{params, opt_state, step}; optimizer moments follow the params' shardings and the
  scalars (step, Adam count) are replicated over `mesh`, so jit sees one device set. With
  `adapters_only` (LoRA) the moments exist for the adapter leaves alone."""
  repl = NamedSharding(mesh, PartitionSpec())
  opt_state = jax.jit(optimizer.init)(trainable(params, adapters_only))
  state = {"params": params, "opt_state": opt_state, "step": jnp.int32(0)}
  on_mesh = lambda x: isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh
  return jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, repl), state)
