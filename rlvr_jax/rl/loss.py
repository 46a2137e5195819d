"""Token-level policy-gradient loss (DAPO / GRPO) with clip-higher.

Shape letters: R rows (responses) of a (micro-)batch, T response tokens.

    L = -(1 / denom) * sum_r sum_t min(rho_rt * A_r, clip(rho_rt, 1 - eps_low, 1 + eps_high) * A_r)

`rho_rt = exp(logp_rt - old_logp_rt)`. With dual clip (verl's `clip_ratio_c`),
a negative-advantage token's loss is additionally capped at `-A_r * c`, so a
huge ratio on a bad token cannot dominate the step.

Importance ratio (`ratio`):
  token:    rho_rt as above (PPO, GRPO, DAPO; the Pass@k paper).
  sequence: GSPO (Zheng et al. 2025): every token of row r shares the row's
            length-normalized ratio s_r = exp(mean_t (logp_rt - old_logp_rt)),
            so the clip acts on whole sequences. The gradient of s_r is
            s_r * mean_t grad logp_rt, which is what GSPO-token's
            sg[s_r] * pi_t / sg[pi_t] gives too; GSPO aggregates with
            seq-mean-token-mean.

Truncated importance sampling (`tis_cap` > 0; Yao et al. 2025, verl's
`tis_imp_ratio_cap`): the responses were drawn from the sampler's q (its
temperature, top-p, its own numerics), not from the policy pi_old whose ratio
the loss clips. Each token's loss is weighted by the constant
min(pi_old / q, tis_cap), which corrects the gradient's expectation for that
mismatch with bounded variance.

Aggregation (`agg`):
  token-mean:          sum of token losses / number of tokens (DAPO, the paper).
  seq-mean-token-mean: mean over rows of each row's token mean (GRPO).
  seq-mean-token-sum:  mean over rows of each row's token sum (Dr. GRPO style).

For gradient accumulation the caller passes `denom`, the normalizer of the
whole mini-batch (tokens for token-mean, rows otherwise), so that the sum of
micro-batch losses equals the mini-batch loss exactly.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
RATIOS = ("token", "sequence")


def check_settings(*, eps_low: float, eps_high: float, dual_clip: float | None, agg: str,
                   ratio: str, tis_cap: float, kl_coef: float, entropy_coef: float) -> None:
  """ValueError for settings the loss cannot use (called by the trainer's validate too)."""
  for name, v in (("eps_low", eps_low), ("eps_high", eps_high), ("tis_cap", tis_cap),
                  ("kl_coef", kl_coef), ("entropy_coef", entropy_coef)):
    if not math.isfinite(v):
      raise ValueError(f"loss.{name} must be finite, got {v}")
  if eps_low < 0 or eps_high < 0:
    raise ValueError(f"clip epsilons must be >= 0, got eps_low={eps_low}, eps_high={eps_high}")
  if eps_low >= 1:
    raise ValueError(f"eps_low must be < 1 (the ratio's lower clip 1 - eps_low > 0), got {eps_low}")
  if dual_clip is not None and dual_clip <= 1.0:
    raise ValueError(f"dual_clip must be > 1 (verl uses 3), got {dual_clip}")
  if agg not in AGGREGATIONS:
    raise ValueError(f"unknown loss aggregation {agg!r}; expected one of {AGGREGATIONS}")
  if ratio not in RATIOS:
    raise ValueError(f"unknown importance ratio {ratio!r}; expected one of {RATIOS}")
  if tis_cap < 0:
    raise ValueError(f"tis_cap must be 0 (off) or > 0, got {tis_cap}")
  if kl_coef < 0:
    raise ValueError(f"kl_coef must be >= 0 (a KL penalty towards the reference), got {kl_coef}")


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
    ratio: str = "token",
    sampling_logp_RxT: jax.Array | None = None,
    tis_cap: float = 0.0,
) -> tuple[jax.Array, dict[str, Any]]:
  """Returns (loss, metrics). Metrics are token means over `mask_RxT` (not `agg`).

  metrics: pg_loss, clip_frac_low, clip_frac_high, dual_clip_frac (of the ratio
  the loss uses), approx_kl (k3 estimate of KL(old || new), token level),
  entropy (if given), ref_kl (if a reference is given), tis_weight and
  tis_capped_frac (with TIS). All are sums over this batch divided by `denom`-free token
  counts of this batch, so they are for logging, not for accumulation.
  """
  check_settings(eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip, agg=agg, ratio=ratio,
                 tis_cap=tis_cap, kl_coef=kl_coef, entropy_coef=entropy_coef)
  if (kl_coef != 0.0) and ref_logp_RxT is None:
    raise ValueError("kl_coef != 0 needs ref_logp_RxT (log-probs of the reference policy)")
  if (entropy_coef != 0.0) and entropy_RxT is None:
    raise ValueError("entropy_coef != 0 needs entropy_RxT")
  if tis_cap > 0 and sampling_logp_RxT is None:
    raise ValueError("tis_cap > 0 needs sampling_logp_RxT (the sampler's log-probs)")
  mask_RxT = mask_RxT.astype(jnp.float32)
  adv_RxT = jnp.broadcast_to(adv_R.astype(jnp.float32)[:, None], logp_RxT.shape)
  # Masked positions may hold garbage log-probs (padding); zero the log-ratio there
  # so exp cannot overflow into a NaN that `where` would still differentiate through.
  token_log_ratio_RxT = jnp.where(mask_RxT > 0, logp_RxT - old_logp_RxT, 0.0)
  log_ratio_RxT = token_log_ratio_RxT
  if ratio == "sequence":
    seq_log_ratio_R = token_log_ratio_RxT.sum(-1) / jnp.maximum(mask_RxT.sum(-1), 1.0)
    log_ratio_RxT = jnp.where(mask_RxT > 0, seq_log_ratio_R[:, None], 0.0)
  ratio_RxT = jnp.exp(log_ratio_RxT)
  loss1_RxT = -adv_RxT * ratio_RxT
  loss2_RxT = -adv_RxT * jnp.clip(ratio_RxT, 1.0 - eps_low, 1.0 + eps_high)
  pg_RxT = jnp.maximum(loss1_RxT, loss2_RxT)
  dual_RxT = jnp.zeros_like(pg_RxT, dtype=bool)
  if dual_clip is not None:
    cap_RxT = -adv_RxT * dual_clip
    dual_RxT = (adv_RxT < 0) & (pg_RxT > cap_RxT)
    pg_RxT = jnp.where(adv_RxT < 0, jnp.minimum(pg_RxT, cap_RxT), pg_RxT)

  n_tok = jnp.maximum(mask_RxT.sum(), 1.0)
  tmean = lambda x: jnp.where(mask_RxT > 0, x, 0.0).sum() / n_tok
  tis_metrics = {}
  if tis_cap > 0:
    log_w_RxT = jnp.where(mask_RxT > 0, old_logp_RxT - sampling_logp_RxT, 0.0)
    w_RxT = jax.lax.stop_gradient(jnp.minimum(jnp.exp(log_w_RxT), tis_cap))
    pg_RxT = pg_RxT * w_RxT
    tis_metrics = {"tis_weight": tmean(w_RxT),
                   "tis_capped_frac": tmean((jnp.exp(log_w_RxT) > tis_cap).astype(jnp.float32))}
  loss = aggregate(pg_RxT, mask_RxT, agg, denom)
  metrics = {
      "pg_loss": loss,
      "clip_frac_low": tmean(((adv_RxT < 0) & (ratio_RxT < 1.0 - eps_low)).astype(jnp.float32)),
      "clip_frac_high": tmean(((adv_RxT > 0) & (ratio_RxT > 1.0 + eps_high)).astype(jnp.float32)),
      "dual_clip_frac": tmean(dual_RxT.astype(jnp.float32)),
      # k3 estimator of KL(old || new): (rho - 1) - log rho, unbiased and >= 0.
      "approx_kl": tmean(jax.lax.stop_gradient(
          jnp.exp(token_log_ratio_RxT) - 1.0 - token_log_ratio_RxT)),
      **tis_metrics,
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
