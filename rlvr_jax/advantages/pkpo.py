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

Weights W_l = C(l, k-1) / C(n, k) come from W_{n-1} = k/n and
W_{l-1} / W_l = 1 - (k-1)/l, a reversed cumulative sum of log1p terms: O(N) a
problem and exact to float32 rounding where log-gamma differences are not.
"""

import jax
import jax.numpy as jnp

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


def _log_weights(n_Bx1: jax.Array, k: int, N: int) -> jax.Array:
  """log(C(p, k-1) / C(n, k)) at sorted position p = 0..N-1 (-inf where zero)."""
  m_N = jnp.arange(N, dtype=jnp.float32)
  use_BxN = (m_N >= k) & (m_N <= n_Bx1 - 1)
  term_BxN = jnp.where(use_BxN, jnp.log1p(-(k - 1) / jnp.maximum(m_N, 1.0)), 0.0)
  # sum_{m=p+1}^{n-1} term_m: reversed inclusive cumsum shifted by one position.
  rev_BxN = jnp.flip(jnp.cumsum(jnp.flip(term_BxN, -1), axis=-1), -1)
  tail_BxN = jnp.pad(rev_BxN[:, 1:], ((0, 0), (0, 1)))
  log_w_BxN = jnp.log(k / jnp.maximum(n_Bx1, 1.0)) + tail_BxN
  live_BxN = (m_N >= k - 1) & (m_N <= n_Bx1 - 1)
  return jnp.where(live_BxN, log_w_BxN, -jnp.inf)


def _check_pkpo(params, N):
  _common.check_k(params, N)
  if params["baseline"] not in ("loo_minus_one", "none"):
    raise ValueError(f"baseline must be 'loo_minus_one' or 'none', got {params['baseline']!r}")


@register("pkpo", defaults={"k": None, "baseline": "loo_minus_one"}, domain="real",
          check=_check_pkpo)
def pkpo(rewards_BxN, valid_BxN, *, k, baseline, **_):
  """Unbiased Pass@k (max@k) gradient weights: sum_i a_i grad log pi(y_i) estimates grad J.

  Works for binary and continuous rewards. Problems with fewer than k valid
  rollouts get 0 (`info['too_few_valid']`). `info['maxg_at_k']` is the
  unbiased estimate of J itself (pass@k for binary rewards).
  """
  B, N = rewards_BxN.shape
  n_B = jnp.sum(valid_BxN, axis=-1).astype(jnp.float32)
  enough_B = n_B >= k
  # Valid rewards first, ascending; invalid ones (+inf keys) last.
  order_BxN = jnp.argsort(jnp.where(valid_BxN, rewards_BxN, jnp.inf), axis=-1, stable=True)
  f_BxN = jnp.take_along_axis(jnp.where(valid_BxN, rewards_BxN, 0.0), order_BxN, axis=-1)
  p_N = jnp.arange(N, dtype=jnp.float32)
  live_BxN = p_N[None, :] < n_B[:, None]
  w_BxN = jnp.exp(_log_weights(n_B[:, None], k, N))               # C(p, k-1) / C(n, k)
  maxg_B = jnp.sum(jnp.where(live_BxN, w_BxN * f_BxN, 0.0), axis=-1)
  if baseline == "none":
    # C(p-1, k-2) / C(n, k) = W_p (k-1) / p, the weight of being the top of a subset with i.
    w2_BxN = jnp.where(p_N >= 1, w_BxN * (k - 1) / jnp.maximum(p_N, 1.0), 0.0)
    top_BxN = jnp.where(live_BxN, w2_BxN * f_BxN, 0.0)
    above_BxN = jnp.flip(jnp.cumsum(jnp.flip(top_BxN, -1), axis=-1), -1) - top_BxN
    s_BxN = w_BxN * f_BxN + above_BxN
  elif k == 1:
    total_B = jnp.sum(jnp.where(live_BxN, f_BxN, 0.0), axis=-1)
    others_BxN = (total_B[:, None] - f_BxN) / jnp.maximum(n_B - 1.0, 1.0)[:, None]
    s_BxN = jnp.where((n_B > 1)[:, None], (f_BxN - others_BxN) / n_B[:, None], 0.0)
  else:
    gap_BxN = jnp.pad(f_BxN[:, 1:] - f_BxN[:, :-1], ((0, 0), (1, 0)))
    g_BxN = jnp.where(live_BxN & (p_N >= 1), gap_BxN * w_BxN, 0.0)
    s_BxN = jnp.cumsum(g_BxN, axis=-1)
  s_BxN = jnp.where(live_BxN & enough_B[:, None], s_BxN, 0.0)
  inverse_BxN = jnp.argsort(order_BxN, axis=-1)
  adv_BxN = jnp.take_along_axis(s_BxN, inverse_BxN, axis=-1)
  return adv_BxN, {"maxg_at_k": jnp.where(enough_B, maxg_B, 0.0),
                   "too_few_valid": ~enough_B}
