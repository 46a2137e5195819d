"""The jitted update: micro-batch gradient accumulation, AdamW, clipping.

Shape letters: R rows of a mini-batch (responses), M micro-batches, L = P + T
tokens of a row (left-padded prompt P, then response T), V vocabulary.

A batch is a `batch.TrainBatch` (rows on the leading axis; SFT batches fill
only tokens, attention mask and loss mask). The state is a dict
{params, opt_state, step}; the step function is pure and module-level.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from rlvr_jax import models
from rlvr_jax.rl import loss as loss_lib
from rlvr_jax.rl.batch import TrainBatch

LossFn = Callable[[Any, TrainBatch, jax.Array], tuple[jax.Array, dict]]


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


def response_logprobs(params: Any, cfg: models.ModelConfig, tokens_RxL: jax.Array,
                      attn_mask_RxL: jax.Array, resp_len: int, chunk_size: int
                      ) -> tuple[jax.Array, jax.Array]:
  """Log-probs and entropies [R, T] of the last `resp_len` tokens of each row.

  bfloat16 compute is `cfg.dtype`: the model casts the float32 master weights.
  """
  inputs_RxL1 = tokens_RxL[:, :-1]
  mask_RxL1 = attn_mask_RxL[:, :-1].astype(jnp.int32)
  positions_RxL1 = jnp.maximum(jnp.cumsum(mask_RxL1, axis=-1) - 1, 0)
  hidden_RxL1xD, _ = models.forward_hidden(params, cfg, inputs_RxL1, positions_RxL1, mask_RxL1)
  # Only the positions that predict response tokens need the vocabulary projection.
  hidden_RxTxD = hidden_RxL1xD[:, -resp_len:]
  targets_RxT = tokens_RxL[:, -resp_len:]
  logp_RxT, ent_RxT = models.token_logprobs(params, cfg, hidden_RxTxD, targets_RxT,
                                            chunk_size=chunk_size)
  return logp_RxT.astype(jnp.float32), ent_RxT.astype(jnp.float32)


def pg_loss_fn(params: Any, batch: TrainBatch, denom: jax.Array, *, cfg: models.ModelConfig,
               loss_cfg: ml_collections.ConfigDict, chunk_size: int) -> tuple[jax.Array, dict]:
  """The clip-higher PG loss of one micro-batch (normalized by the mini-batch `denom`)."""
  resp_len = batch.loss_mask_RxT.shape[1]
  logp_RxT, ent_RxT = response_logprobs(params, cfg, batch.tokens_RxL, batch.attn_mask_RxL,
                                        resp_len, chunk_size)
  return loss_lib.policy_loss(
      logp_RxT, batch.old_logp_RxT, batch.adv_R, batch.loss_mask_RxT,
      eps_low=loss_cfg.eps_low, eps_high=loss_cfg.eps_high, dual_clip=(loss_cfg.dual_clip or None),
      agg=loss_cfg.agg, denom=denom, ref_logp_RxT=batch.ref_logp_RxT,
      kl_coef=loss_cfg.kl_coef, entropy_RxT=ent_RxT, entropy_coef=loss_cfg.entropy_coef,
      ratio=loss_cfg.ratio, sampling_logp_RxT=batch.sampling_logp_RxT, tis_cap=loss_cfg.tis_cap)


def sft_loss_fn(params: Any, batch: TrainBatch, denom: jax.Array, *, cfg: models.ModelConfig,
                chunk_size: int) -> tuple[jax.Array, dict]:
  """Token-mean negative log-likelihood of the masked response tokens (warm start)."""
  mask_RxT = batch.loss_mask_RxT.astype(jnp.float32)
  logp_RxT, ent_RxT = response_logprobs(params, cfg, batch.tokens_RxL, batch.attn_mask_RxL,
                                        mask_RxT.shape[1], chunk_size)
  nll = -(logp_RxT * mask_RxT).sum() / denom
  n = jnp.maximum(mask_RxT.sum(), 1.0)
  return nll, {"loss": nll, "entropy": (ent_RxT * mask_RxT).sum() / n}


def init_state(params: Any, optimizer: optax.GradientTransformation, mesh: Any) -> dict:
  """{params, opt_state, step}; optimizer moments follow the params' shardings and the
  scalars (step, Adam count) are replicated over `mesh`, so jit sees one device set."""
  from jax.sharding import NamedSharding, PartitionSpec
  repl = NamedSharding(mesh, PartitionSpec())
  state = {"params": params, "opt_state": jax.jit(optimizer.init)(params), "step": jnp.int32(0)}
  on_mesh = lambda x: isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh
  return jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, repl), state)


def _split_micro(x: jax.Array, num_micro: int) -> jax.Array:
  # Micro-batch m takes rows m, m + M, m + 2M, ...: with rows sharded in contiguous
  # blocks over devices, every micro-batch then still spans every device.
  rows = x.shape[0]
  return x.reshape(rows // num_micro, num_micro, *x.shape[1:]).swapaxes(0, 1)


def train_step(state: dict, batch: TrainBatch, *, loss_fn: LossFn,
               optimizer: optax.GradientTransformation, num_micro: int, agg: str = "token-mean",
               schedule: optax.Schedule | None = None) -> tuple[dict, dict]:
  """One optimizer update on a mini-batch, accumulating gradients over `num_micro` slices.

  `schedule` (the optimizer's learning-rate schedule) puts the learning rate of
  this update into the metrics, so the loop never reads the step count back.
  """
  rows = batch.loss_mask_RxT.shape[0]
  if rows % num_micro:
    raise ValueError(f"mini-batch of {rows} rows is not divisible into {num_micro} micro-batches")
  denom = loss_lib.loss_denominator(batch.loss_mask_RxT, agg)
  micro = jax.tree.map(functools.partial(_split_micro, num_micro=num_micro), batch)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  params = state["params"]

  def body(grads, mb):
    (_, metrics), g = grad_fn(params, mb, denom)
    metrics = dict(metrics, num_tokens=mb.loss_mask_RxT.astype(jnp.float32).sum())
    return jax.tree.map(jnp.add, grads, g), metrics

  zeros = jax.tree.map(jnp.zeros_like, params)
  grads, metrics_M = jax.lax.scan(body, zeros, micro)
  # Losses were normalized by the whole mini-batch: they add up. Token means are
  # re-weighted by each micro-batch's token count.
  tok_M = metrics_M.pop("num_tokens")
  w_M = tok_M / jnp.maximum(tok_M.sum(), 1.0)
  metrics = {k: (v.sum() if k in ("loss", "pg_loss") else (v * w_M).sum())
             for k, v in metrics_M.items()}
  metrics["grad_norm"] = optax.tree.norm(grads)
  metrics["num_tokens"] = tok_M.sum()
  updates, opt_state = optimizer.update(grads, state["opt_state"], params)
  new_params = optax.apply_updates(params, updates)
  metrics["update_norm"] = optax.tree.norm(updates)
  if schedule is not None:
    metrics["lr"] = jnp.asarray(schedule(state["step"]), jnp.float32)
  return {"params": new_params, "opt_state": opt_state, "step": state["step"] + 1}, metrics
