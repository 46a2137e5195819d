"""Pass@k training, closed forms (Chen et al., arXiv 2508.10751; PAPERS.md section 2).

Shape letters: B problems, N rollouts a problem.

passk_analytical is the exact expectation, over all C(n, k) groups of k of a
problem's n valid rollouts, of the bootstrap advantage (group reward = max,
GRPO-normalized over groups, averaged over the groups containing a response):

    R     = 1 - C(n_neg, k) / C(n, k)
    A_pos = (1 - R) / sig                        sig = sqrt(R (1 - R))
    A_neg = (1 - R - q) / sig = -(n_pos / n) q / sig,   q = C(n_neg-1, k-1) / C(n-1, k-1)

The second form of A_neg uses C(n_neg, k) / C(n, k) = (n_neg / n) q and avoids
the cancellation in 1 - R - q. Ratios are products of O(1) factors
(`metrics.log_comb_ratio`), exact to float32 rounding at n = 1024, k = 512.
"""

import math

import jax
import jax.numpy as jnp

from rlvr_jax import metrics
from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


def analytical_pos_neg(num_pos_B: jax.Array, num_valid_B: jax.Array, k: int, N: int):
  """Per-problem (A_pos, A_neg, R, active) of passk_analytical.

  `active` is False where sig = 0 (no correct response, n_neg < k) or where a
  problem has fewer than k valid rollouts; those problems get A_pos = A_neg = 0.
  """
  c_B, n_B = num_pos_B, num_valid_B
  active_B = (c_B > 0) & (n_B - c_B >= k) & (n_B >= k)
  # Inactive problems are evaluated at a harmless point (n = 2k, c = 1) so that
  # no inf / nan is ever formed, not even in a branch jnp.where discards.
  c_safe = jnp.where(active_B, c_B, 1.0)
  n_safe = jnp.where(active_B, n_B, 2.0 * k)
  log_ratio_B = metrics.log_comb_ratio(n_safe, c_safe, k, N)          # log(1 - R)
  log_q_B = metrics.log_comb_ratio(n_safe - 1.0, c_safe, k - 1, N)    # log q
  one_minus_r_B = jnp.exp(log_ratio_B)
  r_B = -jnp.expm1(log_ratio_B)
  sig_B = jnp.sqrt(r_B * one_minus_r_B)
  a_pos_B = jnp.sqrt(one_minus_r_B / r_B)
  a_neg_B = -(c_safe / n_safe) * jnp.exp(log_q_B) / sig_B
  zero = jnp.zeros_like(a_pos_B)
  r_out_B = jnp.where(n_B - c_B < k, jnp.where(n_B >= k, 1.0, 0.0), r_B)
  r_out_B = jnp.where(c_B > 0, r_out_B, 0.0)
  return (jnp.where(active_B, a_pos_B, zero), jnp.where(active_B, a_neg_B, zero),
          r_out_B, active_B)


def _analytical_adv(rewards_BxN, valid_BxN, k):
  num_pos_B, num_valid_B = _common.counts(rewards_BxN, valid_BxN)
  a_pos_B, a_neg_B, r_B, _ = analytical_pos_neg(num_pos_B, num_valid_B, k,
                                                rewards_BxN.shape[1])
  adv_BxN = jnp.where(rewards_BxN > 0, a_pos_B[:, None], a_neg_B[:, None])
  adv_BxN = jnp.where(valid_BxN, adv_BxN, 0.0)
  too_few_B = num_valid_B < k
  return adv_BxN, {"group_reward": r_B, "too_few_valid": too_few_B}


def _check_k_ddof(params, N):
  _common.check_k(params, N)
  _common.check_ddof(params, N)


@register("passk_analytical", defaults={"k": None}, domain="binary",
          check=_common.check_k)
def passk_analytical(rewards_BxN, valid_BxN, *, k, **_):
  """Exact expected bootstrap advantage of Pass@k training (paper Eqs. 11-15)."""
  return _analytical_adv(rewards_BxN, valid_BxN, k)


@register("passk_combination", defaults={"k": None, "ddof": 0}, domain="binary",
          check=_check_k_ddof)
def passk_combination(rewards_BxN, valid_BxN, *, k, ddof, **_):
  """A = (n_pos / n) A_passk + (1 - n_pos / n) A_grpo (paper Eq. 18)."""
  adv_k_BxN, info = _analytical_adv(rewards_BxN, valid_BxN, k)
  adv_1_BxN = _common.standardize(rewards_BxN, valid_BxN, ddof)
  num_pos_B, num_valid_B = _common.counts(rewards_BxN, valid_BxN)
  acc_B = (num_pos_B / jnp.maximum(num_valid_B, 1.0))[:, None]
  return acc_B * adv_k_BxN + (1.0 - acc_B) * adv_1_BxN, info


def _check_exceeding(params, N):
  _common.check_k(params, N)
  base = _common.check_float(params, "log_base", lo=0.0, lo_open=True)
  if base == 1.0:
    raise ValueError("log_base must not be 1")


@register("passk_exceeding", defaults={"k": None, "log_base": math.e}, domain="binary",
          check=_check_exceeding)
def passk_exceeding(rewards_BxN, valid_BxN, *, k, log_base, **_):
  """A' = f(n_pos) A_passk, f(n_pos) = 4 / (10 log(n_pos + 0.5)) (paper Eq. 17).

  The paper does not name the log's base; natural log (default) makes f(1) ~ 1.
  Problems with n_pos = 0 have zero Pass@k advantage, so f is not needed there.
  """
  adv_BxN, info = _analytical_adv(rewards_BxN, valid_BxN, k)
  num_pos_B, _ = _common.counts(rewards_BxN, valid_BxN)
  c_safe_B = jnp.maximum(num_pos_B, 1.0)
  f_B = 0.4 * math.log(log_base) / jnp.log(c_safe_B + 0.5)
  f_B = jnp.where(num_pos_B > 0, f_B, 0.0)
  return adv_BxN * f_B[:, None], dict(info, scale=f_B)


def _check_adaptive(params, N):
  _check_k_ddof(params, N)
  _common.check_float(params, "fraction", lo=0.0, hi=1.0)


@register("adaptive_entropy", defaults={"k": None, "fraction": 0.5, "ddof": 0},
          domain="binary", check=_check_adaptive, needs_entropy=True)
def adaptive_entropy(rewards_BxN, valid_BxN, *, k, fraction, ddof, entropy_BxN, **_):
  """Entropy-guided mix (paper section 4.2.3).

  `entropy_BxN` is each response's mean token entropy. A problem's entropy is
  the mean over its valid responses; the `fraction` of the batch's problems
  (among those with a valid rollout) with the highest entropy already explore,
  so they get the Pass@1 (grpo) advantage; the rest get Pass@k (analytical).
  Ties are broken by problem index (stable sort).
  """
  ent_B = _common.masked_mean(entropy_BxN, valid_BxN)
  has_B = jnp.any(valid_BxN, axis=-1)
  order_B = jnp.argsort(jnp.where(has_B, -ent_B, jnp.inf), stable=True)
  rank_B = jnp.zeros_like(order_B).at[order_B].set(jnp.arange(order_B.shape[0]))
  num_high = jnp.floor(fraction * jnp.sum(has_B) + 0.5)
  high_B = has_B & (rank_B < num_high)
  adv_k_BxN, info = _analytical_adv(rewards_BxN, valid_BxN, k)
  adv_1_BxN = _common.standardize(rewards_BxN, valid_BxN, ddof)
  adv_BxN = jnp.where(high_B[:, None], adv_1_BxN, adv_k_BxN)
  return adv_BxN, dict(info, high_entropy=high_B, entropy=ent_B)
