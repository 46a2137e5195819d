"""Pass@k training, closed forms (Chen et al., arXiv 2508.10751; PAPERS.md section 2).

Shape letters: B problems, N rollouts a problem.

passk_analytical is the exact expectation, over all C(n, k) groups of k of a
problem's n valid rollouts, of the bootstrap advantage (group reward = max,
GRPO-normalized over groups, averaged over the groups containing a response):

    R     = 1 - C(n_neg, k) / C(n, k)
    A_pos = (1 - R) / sig                        sig = sqrt(R (1 - R))
    A_neg = (1 - R - q) / sig = -(n_pos / n) q / sig,   q = C(n_neg-1, k-1) / C(n-1, k-1)

The second form of A_neg uses C(n_neg, k) / C(n, k) = (n_neg / n) q and avoids
the cancellation in 1 - R - q. Ratios are products of O(1) factors, summed in
log space. All of it depends on (n, n_pos) alone, so it is tabulated once per
(k, N) in float64 (`_analytical_table`) and looked up per problem: exact to
float32 rounding at n = 1024, k = 512, and no [B, N] pass of log1p terms.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


def _log_comb_ratio_table(k: int, N: int) -> np.ndarray:
  """[N + 1, N + 1] float64: log(C(n - c, k) / C(n, k)) at [n, c]; -inf where n - c < k.

  The product form of `metrics.log_comb_ratio`, C(n - c, k) / C(n, k) =
  prod_{j < c} (1 - k / (n - j)): a cumulative sum of log1p terms.
  """
  n_Nx1 = np.arange(N + 1)[:, None]
  j_1xN = np.arange(N + 1)[None, :]
  # log of factor j, 1 - k / (n - j); only factors with n - j > k are ever used.
  with np.errstate(divide="ignore", invalid="ignore"):
    term_NxN = np.where(n_Nx1 - j_1xN > k, np.log1p(-k / np.maximum(n_Nx1 - j_1xN, 1)), 0.0)
  log_ratio_NxN = np.cumsum(term_NxN, axis=1) - term_NxN   # at [n, c]: sum over j < c
  return np.where(n_Nx1 - j_1xN >= k, log_ratio_NxN, -np.inf)


@functools.lru_cache(maxsize=32)
def _analytical_table(k: int, N: int) -> np.ndarray:
  """[3, N + 1, N + 1] float32: A_pos, A_neg and R at [:, n_valid, n_pos].

  They depend on two integers in [0, N] only, so they are tabulated once per
  (k, N) in float64 and each problem looks its values up: no [B, N] pass of
  log1p terms at run time. Inactive problems (see `_analytical_rows`) get 0.
  """
  n_Nx1 = np.arange(N + 1, dtype=np.float64)[:, None]
  c_1xN = np.arange(N + 1, dtype=np.float64)[None, :]
  active_NxN = (c_1xN > 0) & (n_Nx1 - c_1xN >= k) & (n_Nx1 >= k)
  log_ratio_NxN = _log_comb_ratio_table(k, N)                            # log(1 - R)
  log_q_NxN = np.pad(_log_comb_ratio_table(k - 1, N)[:-1], ((1, 0), (0, 0)),
                     constant_values=-np.inf)                            # at n - 1
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    r_NxN = -np.expm1(log_ratio_NxN)
    # Log space throughout: at n = 1024 the advantages reach 1e-20 while 1 - R
    # (their square, roughly) is below float32's smallest normal number.
    log_sig_NxN = 0.5 * (np.log(r_NxN) + log_ratio_NxN)
    a_pos_NxN = np.exp(log_ratio_NxN - log_sig_NxN)
    a_neg_NxN = -np.exp(np.log(c_1xN / n_Nx1) + log_q_NxN - log_sig_NxN)
  r_out_NxN = np.where(n_Nx1 - c_1xN < k, (n_Nx1 >= k) * 1.0, r_NxN)
  r_out_NxN = np.where((c_1xN > 0) & (c_1xN <= n_Nx1), r_out_NxN, 0.0)
  table = np.stack([np.where(active_NxN, a_pos_NxN, 0.0), np.where(active_NxN, a_neg_NxN, 0.0),
                    r_out_NxN])
  return table.astype(np.float32)


def _analytical_rows(rewards_BxN, k, counts):
  """(A_pos_B, A_neg_B, info) of passk_analytical, looked up by (n_valid, n_pos).

  Problems without a correct response, with n_neg < k, or with fewer than k
  valid rollouts get A_pos = A_neg = 0 (sig = 0 or too few rollouts).
  """
  a_pos_B, a_neg_B, r_B = (_common.lookup(t_NxN, counts)
                           for t_NxN in _analytical_table(k, rewards_BxN.shape[1]))
  return a_pos_B, a_neg_B, {"group_reward": r_B, "too_few_valid": counts.num_valid_B < k}


def _analytical_adv(rewards_BxN, valid_BxN, k, counts):
  a_pos_B, a_neg_B, info = _analytical_rows(rewards_BxN, k, counts)
  return _common.binary_blend(rewards_BxN, valid_BxN, a_pos_B, a_neg_B), info


def _check_k_ddof(params, N):
  _common.check_k(params, N)
  _common.check_ddof(params, N)


@register("passk_analytical", defaults={"k": None}, domain="binary",
          check=_common.check_k)
def passk_analytical(rewards_BxN, valid_BxN, *, k, counts, **_):
  """Exact expected bootstrap advantage of Pass@k training (paper Eqs. 11-15)."""
  return _analytical_adv(rewards_BxN, valid_BxN, k, counts)


@register("passk_combination", defaults={"k": None, "ddof": 0}, domain="binary",
          check=_check_k_ddof)
def passk_combination(rewards_BxN, valid_BxN, *, k, ddof, counts, **_):
  """A = (n_pos / n) A_passk + (1 - n_pos / n) A_grpo (paper Eq. 18)."""
  # Both terms are per-problem closed forms for binary rewards: mix them per row.
  pos_k_B, neg_k_B, info = _analytical_rows(rewards_BxN, k, counts)
  pos_1_B, neg_1_B = _common.binary_baseline("grpo", counts, rewards_BxN.shape[1], ddof)
  num_pos_B, num_valid_B, _ = counts
  acc_B = num_pos_B / jnp.maximum(num_valid_B, 1.0)
  pos_B = acc_B * pos_k_B + (1.0 - acc_B) * pos_1_B
  neg_B = acc_B * neg_k_B + (1.0 - acc_B) * neg_1_B
  return _common.binary_blend(rewards_BxN, valid_BxN, pos_B, neg_B), info


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
  adv_BxN, info = _analytical_adv(rewards_BxN, valid_BxN, k, counts)
  num_pos_B = counts.num_pos_B
  c_safe_B = jnp.maximum(num_pos_B, 1.0)
  f_B = 0.4 * math.log(log_base) / jnp.log(c_safe_B + 0.5)
  f_B = jnp.where(num_pos_B > 0, f_B, 0.0)
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
  ent_B = _common.masked_mean(entropy_BxN, valid_BxN, counts.num_valid_B)
  has_B = counts.num_valid_B > 0
  num_high = jnp.floor(fraction * jnp.sum(has_B) + 0.5).astype(jnp.int32)
  # Highest entropy first: smallest -entropy; problems without a valid rollout last.
  high_B = has_B & _common.first_in_order(jnp.where(has_B, -ent_B, jnp.inf), num_high)
  pos_k_B, neg_k_B, info = _analytical_rows(rewards_BxN, k, counts)
  pos_1_B, neg_1_B = _common.binary_baseline("grpo", counts, rewards_BxN.shape[1], ddof)
  pos_B = jnp.where(high_B, pos_1_B, pos_k_B)
  neg_B = jnp.where(high_B, neg_1_B, neg_k_B)
  adv_BxN = _common.binary_blend(rewards_BxN, valid_BxN, pos_B, neg_B)
  return adv_BxN, dict(info, high_entropy=high_B, entropy=ent_B)
