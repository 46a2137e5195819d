"""Token-level policy-gradient loss (DAPO / GRPO) with clip-higher.

Shape letters: R rows (responses) of a (micro-)batch, T response tokens.

    L = -(1 / denom) * sum_r sum_t min(rho_rt * A_r, clip(rho_rt, 1 - eps_low, 1 + eps_high) * A_r)

`rho_rt = exp(logp_rt - old_logp_rt)`. With dual clip (verl's `clip_ratio_c`),
a negative-advantage token's loss is additionally capped at `-A_r * c`, so a
huge ratio on a bad token cannot dominate the step.

Aggregation (`agg`):
  token-mean:          sum of token losses / number of tokens (DAPO, the paper).
  seq-mean-token-mean: mean over rows of each row's token mean (GRPO).
  seq-mean-token-sum:  mean over rows of each row's token sum (Dr. GRPO style).

For gradient accumulation the caller passes `denom`, the normalizer of the
whole mini-batch (tokens for token-mean, rows otherwise), so that the sum of
micro-batch losses equals the mini-batch loss exactly.
"""

from typing import Any

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def loss_denominator(mask_RxT: jax.Array, agg: str) -> jax.Array:
  """The normalizer `agg` divides by: token count or row count (>= 1)."""
  if agg not in AGGREGATIONS:
    raise ValueError(f"unknown loss aggregation {agg!r}; expected one of {AGGREGATIONS}")
  mask_RxT = mask_RxT.astype(jnp.float32)
  if agg == "token-mean":
    return jnp.maximum(mask_RxT.sum(), 1.0)
  # Rows without a single loss token (filtered rollouts) do not count as sequences.
  return jnp.maximum((mask_RxT.sum(-1) > 0).sum().astype(jnp.float32), 1.0)


def aggregate(x_RxT: jax.Array, mask_RxT: jax.Array, agg: str, denom: jax.Array | None = None) -> jax.Array:
  """Reduces per-token values with aggregation `agg` (see module docstring)."""
  if denom is None:
    denom = loss_denominator(mask_RxT, agg)
  mask_RxT = mask_RxT.astype(jnp.float32)
  x_RxT = jnp.where(mask_RxT > 0, x_RxT, 0.0)
  if agg == "token-mean":
    return x_RxT.sum() / denom
  if agg == "seq-mean-token-mean":
    len_R = mask_RxT.sum(-1)
    return (x_RxT.sum(-1) / jnp.maximum(len_R, 1.0)).sum() / denom
  if agg == "seq-mean-token-sum":
    return x_RxT.sum() / denom
  raise ValueError(f"unknown loss aggregation {agg!r}; expected one of {AGGREGATIONS}")


def policy_loss(
    logp_RxT: jax.Array,
    old_logp_RxT: jax.Array,
    adv_R: jax.Array,
    mask_RxT: jax.Array,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    denom: jax.Array | None = None,
    ref_logp_RxT: jax.Array | None = None,
    kl_coef: float = 0.0,
    entropy_RxT: jax.Array | None = None,
    entropy_coef: float = 0.0,
) -> tuple[jax.Array, dict[str, Any]]:
  """Returns (loss, metrics). Metrics are token means over `mask_RxT` (not `agg`).

  metrics: pg_loss, clip_frac_low, clip_frac_high, dual_clip_frac, approx_kl
  (k3 estimate of KL(old || new)), entropy (if given), ref_kl (if a reference
  is given). All are sums over this batch divided by `denom`-free token
  counts of this batch, so they are for logging, not for accumulation.
  """
  if eps_low < 0 or eps_high < 0:
    raise ValueError(f"clip epsilons must be >= 0, got eps_low={eps_low}, eps_high={eps_high}")
  if dual_clip is not None and dual_clip <= 1.0:
    raise ValueError(f"dual_clip must be > 1 (verl uses 3), got {dual_clip}")
  if (kl_coef != 0.0) and ref_logp_RxT is None:
    raise ValueError("kl_coef != 0 needs ref_logp_RxT (log-probs of the reference policy)")
  if (entropy_coef != 0.0) and entropy_RxT is None:
    raise ValueError("entropy_coef != 0 needs entropy_RxT")
  mask_RxT = mask_RxT.astype(jnp.float32)
  adv_RxT = jnp.broadcast_to(adv_R.astype(jnp.float32)[:, None], logp_RxT.shape)
  # Masked positions may hold garbage log-probs (padding); zero the log-ratio there
  # so exp cannot overflow into a NaN that `where` would still differentiate through.
  log_ratio_RxT = jnp.where(mask_RxT > 0, logp_RxT - old_logp_RxT, 0.0)
  ratio_RxT = jnp.exp(log_ratio_RxT)
  loss1_RxT = -adv_RxT * ratio_RxT
  loss2_RxT = -adv_RxT * jnp.clip(ratio_RxT, 1.0 - eps_low, 1.0 + eps_high)
  pg_RxT = jnp.maximum(loss1_RxT, loss2_RxT)
  dual_RxT = jnp.zeros_like(pg_RxT, dtype=bool)
  if dual_clip is not None:
    cap_RxT = -adv_RxT * dual_clip
    dual_RxT = (adv_RxT < 0) & (pg_RxT > cap_RxT)
    pg_RxT = jnp.where(adv_RxT < 0, jnp.minimum(pg_RxT, cap_RxT), pg_RxT)

  loss = aggregate(pg_RxT, mask_RxT, agg, denom)
  n_tok = jnp.maximum(mask_RxT.sum(), 1.0)
  tmean = lambda x: jnp.where(mask_RxT > 0, x, 0.0).sum() / n_tok
  metrics = {
      "pg_loss": loss,
      "clip_frac_low": tmean(((adv_RxT < 0) & (ratio_RxT < 1.0 - eps_low)).astype(jnp.float32)),
      "clip_frac_high": tmean(((adv_RxT > 0) & (ratio_RxT > 1.0 + eps_high)).astype(jnp.float32)),
      "dual_clip_frac": tmean(dual_RxT.astype(jnp.float32)),
      # k3 estimator of KL(old || new): (rho - 1) - log rho, unbiased and >= 0.
      "approx_kl": tmean(jax.lax.stop_gradient((ratio_RxT - 1.0) - log_ratio_RxT)),
  }
  if ref_logp_RxT is not None:
    d_RxT = jnp.where(mask_RxT > 0, ref_logp_RxT - logp_RxT, 0.0)
    kl_RxT = jnp.exp(d_RxT) - d_RxT - 1.0  # k3 estimate of KL(new || ref)
    metrics["ref_kl"] = tmean(jax.lax.stop_gradient(kl_RxT))
    if kl_coef != 0.0:
      loss = loss + kl_coef * aggregate(kl_RxT, mask_RxT, agg, denom)
  if entropy_RxT is not None:
    metrics["entropy"] = tmean(jax.lax.stop_gradient(entropy_RxT))
    if entropy_coef != 0.0:
      loss = loss - entropy_coef * aggregate(entropy_RxT, mask_RxT, agg, denom)
  metrics["loss"] = loss
  return loss, metrics
