"""The jitted update: gradients accumulated over micro-batches, then one optimizer step.

Shape letters (docs/DESIGN.md): R rows of a mini-batch (responses), M micro-batches,
T response tokens. A batch is a `batch.TrainBatch` (rows on the leading axis; SFT
batches fill only tokens, attention mask and loss mask). The state is a dict
{params, opt_state, step} (`rl/optim.py`); the step function is pure and module-level.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from rlvr_jax.models import lora
from rlvr_jax.rl import loss as loss_lib
from rlvr_jax.rl.batch import TrainBatch
from rlvr_jax.rl.objectives import LossFn


def _split_micro(x: jax.Array, num_micro: int) -> jax.Array:
  # Micro-batch m takes rows m, m + M, m + 2M, ...: with rows sharded in contiguous
  # blocks over devices, every micro-batch then still spans every device.
  rows = x.shape[0]
  return x.reshape(rows // num_micro, num_micro, *x.shape[1:]).swapaxes(0, 1)


def train_step(state: dict, batch: TrainBatch, denom: jax.Array | None = None, *,
               loss_fn: LossFn, optimizer: optax.GradientTransformation, num_micro: int,
               agg: str = "token-mean", schedule: optax.Schedule | None = None,
               adapters_only: bool = False) -> tuple[dict, dict]:
  """One optimizer update on a mini-batch, accumulating gradients over `num_micro` slices.

  `denom` is the loss normalizer of the mini-batch (`loss.loss_denominator`); None takes
  it from `batch`. A batch whose zero-advantage rows were left out (`rl/skipping.py`)
  passes the full mini-batch's. `schedule` (the optimizer's learning-rate schedule) puts
  the learning rate of this update into the metrics, so the loop never reads the step
  count back. With `adapters_only` (LoRA) the gradient is taken over the adapter leaves
  with the base closed over: no base gradient is computed, accumulated or updated, and
  the optimizer state is the adapters' (`optim.init_state`).
  """
  rows = batch.loss_mask_RxT.shape[0]
  if rows % num_micro:
    raise ValueError(f"mini-batch of {rows} rows is not divisible into {num_micro} micro-batches")
  if denom is None:
    denom = loss_lib.loss_denominator(batch.loss_mask_RxT, agg)
  micro = jax.tree.map(functools.partial(_split_micro, num_micro=num_micro), batch)
  params = state["params"]
  if adapters_only:
    train, frozen = lora.split(params)
    grad_fn = jax.value_and_grad(lambda a, mb, d: loss_fn(lora.join(a, frozen), mb, d),
                                 has_aux=True)
  else:
    train, frozen = params, None
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def body(grads, mb):
    (_, metrics), g = grad_fn(train, mb, denom)
    metrics = dict(metrics, num_tokens=mb.loss_mask_RxT.astype(jnp.float32).sum())
    return jax.tree.map(jnp.add, grads, g), metrics

  zeros = jax.tree.map(jnp.zeros_like, train)
  grads, metrics_M = jax.lax.scan(body, zeros, micro)
  # Losses were normalized by the whole mini-batch: they add up. Token means are
  # re-weighted by each micro-batch's token count.
  tok_M = metrics_M.pop("num_tokens")
  w_M = tok_M / jnp.maximum(tok_M.sum(), 1.0)
  metrics = {k: (v.sum() if k in ("loss", "pg_loss") else (v * w_M).sum())
             for k, v in metrics_M.items()}
  metrics["grad_norm"] = optax.tree.norm(grads)
  metrics["num_tokens"] = tok_M.sum()
  updates, opt_state = optimizer.update(grads, state["opt_state"], train)
  new_params = optax.apply_updates(train, updates)
  if adapters_only:
    new_params = lora.join(new_params, frozen)
  metrics["update_norm"] = optax.tree.norm(updates)
  if schedule is not None:
    metrics["lr"] = jnp.asarray(schedule(state["step"]), jnp.float32)
  return {"params": new_params, "opt_state": opt_state, "step": state["step"] + 1}, metrics
