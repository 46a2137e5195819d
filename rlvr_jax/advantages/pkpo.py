"""PKPO: unbiased Pass@k / max@k policy gradients (Walder & Karkhanis, arXiv 2505.15201).

Shape letters: B problems, N rollouts a problem. Our derivation, written out
because the code follows it line by line.

Objective: J = E[max(f(y_1), ..., f(y_k))], y_j iid from the policy (pass@k
for binary f). With n >= k samples, averaging the score-function estimator over
all C(n, k) subsets S gives an unbiased estimate of grad J:

    g = sum_i s_i grad log pi(y_i),   s_i = (1 / C(n, k)) sum_{S containing i} max_S f

Sort the rewards f_(1) <= ... <= f_(n) (ties in any order). A subset containing
rank i has its max at rank i when its other k-1 members rank lower, else at its
top rank j > i with k-2 members below j (other than i):

    s_i = [C(i-1, k-1) f_(i) + sum_{j>i} C(j-2, k-2) f_(j)] / C(n, k)   ("none")

For binary rewards with c correct this is k/n for a correct sample and
(k/n) (1 - C(n-c-1, k-1) / C(n-1, k-1)) for a wrong one (the paper's form).

Baseline ("loo_minus_one", the default): inside each subset subtract
max_{S \\ i} f, which does not depend on y_i, so the estimator stays unbiased:

    a_i = (1 / C(n, k)) sum_{S containing i} (f_(i) - max_{S \\ i} f)_+
        = sum_{l=1}^{i-1} (f_(l+1) - f_(l)) C(l, k-1) / C(n, k)   (k >= 2)

(the second line sums, over the gaps below rank i, the fraction of subsets
whose other members all lie below the gap; hockey-stick identity). Every term
is >= 0, so a cumulative sum computes it without cancellation; wrong binary
samples get exactly 0, correct ones C(n-c, k-1) / C(n, k). For k = 1 the set
S \\ i is empty; there we use the RLOO baseline, a_i = (f_i - mean_{j!=i} f_j) / n.

Baseline "sloo" (the paper's Eq. 29 as we read it): subtract from s_i the mean
over j != i of s_j computed on the n - 1 samples without i. Those s_j sum to
k times the max@k estimate of the n - 1 others, rho_{-i}, so

    a_i = s_i - k rho_{-i} / (n - 1),   rho_{-i} = sum_{S in others, |S| = k} max_S f / C(n-1, k)

which needs n > k (with n = k there is no k-subset of the others, and a_i = s_i).

Ranks: tied rewards get equal values in exact arithmetic (Pascal's rule,
C(p-1, k-1) + C(p-1, k-2) = C(p, k-1), makes the sums above agree across a
tie; rho_{-i} depends on the others' multiset only), so each rollout reads its
value at its own place in a stable sort. The weights are ratios of binomials
from `binomial.log_comb_ratio`, exact to float32 rounding at n = 1024, k = 512.
"""

import jax
import jax.numpy as jnp

from rlvr_jax import binomial
from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register

_BASELINES = ("loo_minus_one", "none", "sloo")


def _check_pkpo(params, N):
  _common.check_k(params, N)
  if params["baseline"] not in _BASELINES:
    raise ValueError(f"baseline must be one of {list(_BASELINES)}, got {params['baseline']!r}")


def subset_weight(n_Bx1: jax.Array, p_N: jax.Array, k: int, N: int) -> jax.Array:
  """C(p, k-1) / C(n, k): the fraction of k-subsets of n whose max is sorted place p.

  [B, N] for p_N = arange(N); 0 at p >= n and where n < k. Written as C(p, k-1) / C(n, k-1) (a
  ratio of `log_comb_ratio`, with c = n - p factors) times C(n, k-1) / C(n, k)
  = k / (n - k + 1).
  """
  # It depends on (n, p) alone: a table over n = 0..N (N1 = N + 1 rows), then each problem
  # takes its n's row.
  n_N1x1 = jnp.arange(N + 1, dtype=jnp.float32)[:, None]
  ratio_N1xN = jnp.exp(binomial.log_comb_ratio(n_N1x1, n_N1x1 - p_N, k - 1, N))
  live_N1xN = (p_N < n_N1x1) & (n_N1x1 >= k)
  w_N1xN = jnp.where(live_N1xN, ratio_N1xN * k / jnp.maximum(n_N1x1 - k + 1, 1.0), 0.0)
  return w_N1xN[jnp.clip(n_Bx1[:, 0], 0, N).astype(jnp.int32)]


def _exclusive_cumsum(x_BxN: jax.Array, reverse: bool = False) -> jax.Array:
  """Sums over the earlier (or, reversed, the later) places of each row."""
  if reverse:
    return jnp.cumsum(x_BxN[:, ::-1], axis=-1)[:, ::-1] - x_BxN
  return jnp.cumsum(x_BxN, axis=-1) - x_BxN


@register("pkpo", defaults={"k": None, "baseline": "loo_minus_one"}, domain="real",
          check=_check_pkpo)
def pkpo(rewards_BxN, valid_BxN, *, k, baseline, counts, **_):
  """Unbiased Pass@k (max@k) gradient weights: sum_i a_i grad log pi(y_i) estimates grad J.

  Works for binary and continuous rewards. Problems with fewer than k valid
  rollouts get 0 (`info['too_few_valid']`). `info['maxg_at_k']` is the
  unbiased estimate of J itself (pass@k for binary rewards).
  """
  N = rewards_BxN.shape[1]
  n_B = counts.num_valid_B
  n_Bx1 = n_B[:, None]
  enough_B = n_B >= k
  # f_BxN: each row's valid rewards sorted ascending (stable), 0 past the n-th place.
  place_BxN = _common.stable_ranks(jnp.where(valid_BxN, rewards_BxN, jnp.inf))
  p_N = jnp.arange(N)
  live_BxN = p_N < n_Bx1
  rows_Bx1 = jnp.arange(rewards_BxN.shape[0])[:, None]
  f_BxN = jnp.where(live_BxN, jnp.zeros_like(rewards_BxN).at[rows_Bx1, place_BxN].set(rewards_BxN),
                    0.0)
  w_BxN = subset_weight(n_Bx1, p_N, k, N)                        # C(p, k-1) / C(n, k)
  maxg_B = jnp.sum(w_BxN * f_BxN, axis=-1)
  if baseline in ("none", "sloo"):
    # C(p-1, k-2) / C(n, k) = (k - 1) / p * C(p, k-1) / C(n, k): place p tops a subset
    # that holds a lower-ranked rollout.
    w_top_BxN = jnp.where(p_N >= 1, (k - 1) / jnp.maximum(p_N, 1) * w_BxN, 0.0)
    s_BxN = w_BxN * f_BxN + _exclusive_cumsum(w_top_BxN * f_BxN, reverse=True)
    if baseline == "sloo":
      # rho_{-i}: the others keep their places below i and move down one above it.
      w_others_BxN = subset_weight(n_Bx1 - 1, p_N, k, N)          # C(q, k-1) / C(n-1, k)
      w_shifted_BxN = jnp.pad(w_others_BxN[:, :-1], ((0, 0), (1, 0)))
      rho_others_BxN = (_exclusive_cumsum(w_others_BxN * f_BxN)
                        + _exclusive_cumsum(w_shifted_BxN * f_BxN, reverse=True))
      s_BxN -= k * rho_others_BxN / jnp.maximum(n_Bx1 - 1.0, 1.0)
  elif k == 1:
    others_BxN = (jnp.sum(f_BxN, axis=-1, keepdims=True) - f_BxN) / jnp.maximum(n_Bx1 - 1, 1)
    s_BxN = jnp.where(n_Bx1 > 1, (f_BxN - others_BxN) / n_Bx1, 0.0)
  else:
    gap_BxN = jnp.where(live_BxN & (p_N >= 1), f_BxN - jnp.roll(f_BxN, 1, axis=-1), 0.0)
    s_BxN = jnp.cumsum(gap_BxN * w_BxN, axis=-1)
  adv_BxN = jnp.take_along_axis(s_BxN, place_BxN, axis=-1)
  return (jnp.where(valid_BxN & enough_B[:, None], adv_BxN, 0.0),
          {"maxg_at_k": jnp.where(enough_B, maxg_B, 0.0), "too_few_valid": ~enough_B})
