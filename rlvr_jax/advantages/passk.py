"""Pass@k training, closed forms (Chen et al., arXiv 2508.10751; PAPERS.md section 2).

Shape letters: B problems, N rollouts a problem.

passk_analytical is the exact expectation, over all C(n, k) groups of k of a
problem's n valid rollouts, of the bootstrap advantage (group reward = max,
GRPO-normalized over groups, averaged over the groups containing a response):

    R     = 1 - C(n_neg, k) / C(n, k)
    A_pos = (1 - R) / sig                        sig = sqrt(R (1 - R))
    A_neg = (1 - R - q) / sig = -(n_pos / n) q / sig,   q = C(n_neg-1, k-1) / C(n-1, k-1)

The second form of A_neg uses C(n_neg, k) / C(n, k) = (n_neg / n) q and avoids
the cancellation in 1 - R - q. Both ratios come from `binomial.log_comb_ratio`
and stay in log space: at n = 1024 the advantages reach 1e-20 while 1 - R
(their square, roughly) is below float32's smallest normal number.
"""

import math

import jax.numpy as jnp

from rlvr_jax import binomial
from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


def analytical_rows(k, counts, N):
  """(A_pos_B, A_neg_B, info) of passk_analytical, per problem.

  Problems without a correct response, with n_neg < k, or with fewer than k
  valid rollouts get A_pos = A_neg = 0 (sig = 0, or too few rollouts).
  """
  c_B, n_B = counts.num_pos_B, counts.num_valid_B
  log_ratio_B = binomial.log_comb_ratio(n_B, c_B, k, N)          # log(1 - R)
  log_q_B = binomial.log_comb_ratio(n_B - 1, c_B, k - 1, N)
  r_B = -jnp.expm1(log_ratio_B)
  active_B = (c_B > 0) & (n_B - c_B >= k)                         # implies n >= k
  safe_r_B = jnp.where(active_B, r_B, 1.0)
  safe_log_ratio_B = jnp.where(active_B, log_ratio_B, 0.0)
  log_sig_B = 0.5 * (jnp.log(safe_r_B) + safe_log_ratio_B)
  a_pos_B = jnp.exp(safe_log_ratio_B - log_sig_B)
  a_neg_B = -jnp.exp(jnp.log(jnp.maximum(c_B, 1.0) / jnp.maximum(n_B, 1.0))
                     + jnp.where(active_B, log_q_B, 0.0) - log_sig_B)
  enough_B = n_B >= k
  info = {"group_reward": jnp.where(enough_B & (c_B > 0), r_B, 0.0),
          "too_few_valid": ~enough_B}
  return jnp.where(active_B, a_pos_B, 0.0), jnp.where(active_B, a_neg_B, 0.0), info


def _analytical(rewards_BxN, valid_BxN, k, counts):
  a_pos_B, a_neg_B, info = analytical_rows(k, counts, rewards_BxN.shape[1])
  return _common.by_reward(rewards_BxN, valid_BxN, a_pos_B, a_neg_B), info


def _check_k_ddof(params, N):
  _common.check_k(params, N)
  _common.check_ddof(params, N)


@register("passk_analytical", defaults={"k": None}, domain="binary",
          check=_common.check_k)
def passk_analytical(rewards_BxN, valid_BxN, *, k, counts, **_):
  """Exact expected bootstrap advantage of Pass@k training (paper Eqs. 11-15)."""
  return _analytical(rewards_BxN, valid_BxN, k, counts)


@register("passk_combination", defaults={"k": None, "ddof": 0}, domain="binary",
          check=_check_k_ddof)
def passk_combination(rewards_BxN, valid_BxN, *, k, ddof, counts, **_):
  """A = (n_pos / n) A_passk + (1 - n_pos / n) A_grpo (paper Eq. 18)."""
  a_passk_BxN, info = _analytical(rewards_BxN, valid_BxN, k, counts)
  a_grpo_BxN = _common.standardize(rewards_BxN, valid_BxN, ddof)
  acc_Bx1 = (counts.num_pos_B / jnp.maximum(counts.num_valid_B, 1.0))[:, None]
  return acc_Bx1 * a_passk_BxN + (1.0 - acc_Bx1) * a_grpo_BxN, info


def _check_exceeding(params, N):
  _common.check_k(params, N)
  base = _common.check_float(params, "log_base", lo=0.0, lo_open=True)
  if base == 1.0:
    raise ValueError("log_base must not be 1")


@register("passk_exceeding", defaults={"k": None, "log_base": math.e}, domain="binary",
          check=_check_exceeding)
def passk_exceeding(rewards_BxN, valid_BxN, *, k, log_base, counts, **_):
  """A' = f(n_pos) A_passk, f(n_pos) = 4 / (10 log(n_pos + 0.5)) (paper Eq. 17).

  The paper does not name the log's base; natural log (default) makes f(1) ~ 1.
  Problems with n_pos = 0 have zero Pass@k advantage, so f is not needed there.
  """
  adv_BxN, info = _analytical(rewards_BxN, valid_BxN, k, counts)
  c_B = counts.num_pos_B
  f_B = jnp.where(c_B > 0, 0.4 * math.log(log_base) / jnp.log(jnp.maximum(c_B, 1.0) + 0.5),
                  0.0)
  return adv_BxN * f_B[:, None], dict(info, scale=f_B)


def _check_adaptive(params, N):
  _check_k_ddof(params, N)
  _common.check_float(params, "fraction", lo=0.0, hi=1.0)


@register("adaptive_entropy", defaults={"k": None, "fraction": 0.5, "ddof": 0},
          domain="binary", check=_check_adaptive, needs_entropy=True)
def adaptive_entropy(rewards_BxN, valid_BxN, *, k, fraction, ddof, entropy_BxN, counts,
                     **_):
  """Entropy-guided mix (paper section 4.2.3).

  `entropy_BxN` is each response's mean token entropy. A problem's entropy is
  the mean over its valid responses; the `fraction` of the batch's problems
  (among those with a valid rollout) with the highest entropy already explore,
  so they get the Pass@1 (grpo) advantage; the rest get Pass@k (analytical).
  Ties are broken by problem index (stable sort).
  """
  entropy_B = _common.masked_mean(entropy_BxN, valid_BxN)
  has_B = counts.num_valid_B > 0
  num_high = jnp.floor(fraction * jnp.sum(has_B) + 0.5)
  # Highest entropy first; problems without a valid rollout last.
  order_B = jnp.argsort(jnp.where(has_B, -entropy_B, jnp.inf), stable=True)
  high_B = has_B & (_common.inverse_permutation(order_B[None])[0] < num_high)
  a_passk_BxN, info = _analytical(rewards_BxN, valid_BxN, k, counts)
  a_grpo_BxN = _common.standardize(rewards_BxN, valid_BxN, ddof)
  adv_BxN = jnp.where(high_B[:, None], a_grpo_BxN, a_passk_BxN)
  return adv_BxN, dict(info, high_entropy=high_B, entropy=entropy_B)


def _check_grpo_passk(params, N):
  _common.check_ddof(params, N)
  _common.check_float(params, "eps", lo=0.0)
  if not isinstance(params["normalize"], bool):
    raise ValueError(f"normalize must be a bool, got {params['normalize']!r}")


@register("grpo_passk", defaults={"ddof": 1, "eps": 0.0, "normalize": True}, domain="real",
          check=_check_grpo_passk)
def grpo_passk(rewards_BxN, valid_BxN, *, ddof, eps, normalize, **_):
  """verl's grpo_passk (after arXiv 2503.19595): only a problem's best response is pushed.

  A = r_max - r_second_max at the best valid response (the first one, if
  several tie: their gap is 0 anyway), 0 elsewhere; with `normalize`, divided
  by the problem's std + eps. verl uses ddof 1 (the default) and eps 1e-6.
  Problems with fewer than 2 valid responses get 0 (verl raises).
  """
  N = rewards_BxN.shape[1]
  masked_BxN = jnp.where(valid_BxN, rewards_BxN, -jnp.inf)
  best_BxN = jnp.arange(N) == jnp.argmax(masked_BxN, axis=-1)[:, None]
  if normalize:
    # standardize is increasing in r, so its gap between the top two is
    # (r_max - r_second) / (std + eps) in reward units.
    masked_BxN = jnp.where(valid_BxN, _common.standardize(rewards_BxN, valid_BxN, ddof, eps),
                           -jnp.inf)
  top_B = jnp.max(masked_BxN, axis=-1)
  second_B = jnp.max(jnp.where(best_BxN, -jnp.inf, masked_BxN), axis=-1)
  live_B = _common.varies(rewards_BxN, valid_BxN) & (jnp.sum(valid_BxN, axis=-1) >= 2)
  gap_B = jnp.where(live_B, top_B - second_B, 0.0)
  return jnp.where(best_BxN & valid_BxN, gap_B[:, None], 0.0), {}
