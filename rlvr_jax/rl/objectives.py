"""The training objectives: teacher-forced log-probabilities of the response tokens, and the
losses built on them (the clip-higher PG loss of `rl/loss.py`, the warm start's NLL).

Shape letters (docs/DESIGN.md): R rows, P prompt tokens, T response tokens, S = P + T
(S1 = S - 1 inputs, the last token only a target), D model width.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from rlvr_jax import models
from rlvr_jax.rl import loss as loss_lib
from rlvr_jax.rl.batch import TrainBatch

# (params, micro-batch, the mini-batch's loss denominator) -> (loss, metrics)
LossFn = Callable[[Any, TrainBatch, jax.Array], tuple[jax.Array, dict]]


def response_logprobs(params: Any, cfg: models.ModelConfig, tokens_RxS: jax.Array,
                      attn_mask_RxS: jax.Array, resp_len: int, chunk_size: int
                      ) -> tuple[jax.Array, jax.Array]:
  """Log-probs and entropies [R, T] of the last `resp_len` tokens of each row.

  bfloat16 compute is `cfg.dtype`: the model casts the float32 master weights.
  """
  inputs_RxS1 = tokens_RxS[:, :-1]
  mask_RxS1 = attn_mask_RxS[:, :-1].astype(jnp.int32)
  positions_RxS1 = jnp.maximum(jnp.cumsum(mask_RxS1, axis=-1) - 1, 0)
  hidden_RxS1xD, _ = models.forward_hidden(params, cfg, inputs_RxS1, positions_RxS1, mask_RxS1)
  # Only the positions that predict response tokens need the vocabulary projection.
  hidden_RxTxD = hidden_RxS1xD[:, -resp_len:]
  targets_RxT = tokens_RxS[:, -resp_len:]
  logp_RxT, ent_RxT = models.token_logprobs(params, cfg, hidden_RxTxD, targets_RxT,
                                            chunk_size=chunk_size)
  return logp_RxT.astype(jnp.float32), ent_RxT.astype(jnp.float32)


def pg_loss_fn(params: Any, batch: TrainBatch, denom: jax.Array, *, cfg: models.ModelConfig,
               loss_cfg: ml_collections.ConfigDict, chunk_size: int) -> tuple[jax.Array, dict]:
  """The clip-higher PG loss of one micro-batch (normalized by the mini-batch `denom`)."""
  resp_len = batch.loss_mask_RxT.shape[1]
  logp_RxT, ent_RxT = response_logprobs(params, cfg, batch.tokens_RxS, batch.attn_mask_RxS,
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
  logp_RxT, ent_RxT = response_logprobs(params, cfg, batch.tokens_RxS, batch.attn_mask_RxS,
                                        mask_RxT.shape[1], chunk_size)
  nll = -(logp_RxT * mask_RxT).sum() / denom
  n = jnp.maximum(mask_RxT.sum(), 1.0)
  return nll, {"loss": nll, "entropy": (ent_RxT * mask_RxT).sum() / n}
