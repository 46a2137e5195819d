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

Ranks: tied rewards get equal values in exact arithmetic (Pascal's rule,
C(p-1, k-1) + C(p-1, k-2) = C(p, k-1), makes the sums above agree across a
tie), so each rollout can read its value at the first sorted position of its
reward. Weights C(p, k-1) / C(n, k) and C(p-1, k-2) / C(n, k) depend on
(n, p) alone and are tabulated once per (k, N) in float64.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


@functools.lru_cache(maxsize=32)
def _weight_tables(k: int, N: int) -> np.ndarray:
  """[2, N + 1, N] float32 at [:, n, p]: C(p, k-1) / C(n, k) and C(p-1, k-2) / C(n, k).

  The first is the weight of sorted position p being a subset's maximum (for
  the loo-1 gaps and the max@k estimate), the second that of p topping a
  subset that holds a lower-ranked rollout ("none"). 0 outside 0 <= p < n,
  n >= k; log-factorial differences in float64, relative error ~1e-12.
  """
  log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, N + 1, dtype=np.float64)))])

  def log_comb(a, b):
    ok = (b >= 0) & (a >= b)
    safe_a, safe_b = np.where(ok, a, 0), np.where(ok, b, 0)
    return np.where(ok, log_fact[safe_a] - log_fact[safe_b] - log_fact[safe_a - safe_b], -np.inf)

  n_Nx1 = np.arange(N + 1)[:, None]
  p_1xN = np.arange(N)[None, :]
  live_NxN = (p_1xN < n_Nx1) & (n_Nx1 >= k)
  log_total = np.where(n_Nx1 >= k, log_comb(n_Nx1, np.full_like(n_Nx1, k)), 0.0)
  tables = [np.where(live_NxN, np.exp(log_comb(p_1xN - shift, np.full_like(p_1xN, k - 1 - shift))
                                      - log_total), 0.0) for shift in (0, 1)]
  return np.stack(tables).astype(np.float32)


def _check_pkpo(params, N):
  _common.check_k(params, N)
  if params["baseline"] not in ("loo_minus_one", "none"):
    raise ValueError(f"baseline must be 'loo_minus_one' or 'none', got {params['baseline']!r}")


def _sorted_by_comparison(f_BxN: jax.Array, valid_BxN: jax.Array):
  """(valid rewards sorted ascending [B, N], read_back), for N <= 64.

  `read_back(s_BxN)` gives each rollout the value of a sorted-space array at
  its reward's first sorted position. A rollout's first position is the number of valid rewards below its own (one
  [B, N, N] float comparison); sorted position p holds the largest reward whose
  first position is <= p (an integer max over order keys: XLA CPU vectorizes
  that, not a float max along the row). Positions past a row's valid count
  hold garbage; callers mask them.
  """
  N = f_BxN.shape[1]
  x_BxN = jnp.where(valid_BxN, f_BxN, jnp.inf)
  first_BxN = jnp.sum(x_BxN[:, None, :] < x_BxN[:, :, None], axis=-1, dtype=jnp.int32)
  reached_BxNxN = first_BxN[:, None, :] <= jnp.arange(N)[:, None]   # [b, p, i]
  sorted_key_BxN = jnp.max(jnp.where(reached_BxNxN, _common.order_key(f_BxN)[:, None, :],
                                     jnp.iinfo(jnp.int32).min), axis=-1)
  read_back = lambda s_BxN: jnp.take_along_axis(s_BxN, first_BxN, axis=-1)
  return _common.from_order_key(sorted_key_BxN), read_back


def _sorted_by_sort(f_BxN: jax.Array, valid_BxN: jax.Array):
  """As `_sorted_by_comparison`, by a stable argsort (any N); tied rollouts read their own
  positions in the tie, which hold equal values."""
  order_BxN = jnp.argsort(jnp.where(valid_BxN, f_BxN, jnp.inf), axis=-1, stable=True)
  read_back = lambda s_BxN: _common.unpermute(s_BxN, order_BxN)
  return jnp.take_along_axis(f_BxN, order_BxN, axis=-1), read_back


def _cumsum(x_BxN: jax.Array, strict_reverse: bool = False) -> jax.Array:
  """Row prefix sums (or sums over later positions) as a product with a triangular matrix.

  XLA's CPU cumsum is ~3x slower at [4096, 32]; HIGHEST keeps float32 on TPU / GPU.
  """
  N = x_BxN.shape[1]
  tri_NxN = np.tril(np.ones((N, N), np.float32), -1) if strict_reverse else np.triu(
      np.ones((N, N), np.float32))
  return jnp.dot(x_BxN, tri_NxN, precision=jax.lax.Precision.HIGHEST)


@register("pkpo", defaults={"k": None, "baseline": "loo_minus_one"}, domain="real",
          check=_check_pkpo)
def pkpo(rewards_BxN, valid_BxN, *, k, baseline, counts, **_):
  """Unbiased Pass@k (max@k) gradient weights: sum_i a_i grad log pi(y_i) estimates grad J.

  Works for binary and continuous rewards. Problems with fewer than k valid
  rollouts get 0 (`info['too_few_valid']`). `info['maxg_at_k']` is the
  unbiased estimate of J itself (pass@k for binary rewards).
  """
  B, N = rewards_BxN.shape
  n_B = counts.num_valid_B
  enough_B = n_B >= k
  f_BxN = jnp.where(valid_BxN, rewards_BxN, 0.0)
  sort = _sorted_by_comparison if N <= _common.PAIRWISE_MAX_N else _sorted_by_sort
  f_sorted_BxN, read_back = sort(f_BxN, valid_BxN)
  p_N = jnp.arange(N)
  live_BxN = p_N[None, :] < n_B[:, None]
  f_sorted_BxN = jnp.where(live_BxN, f_sorted_BxN, 0.0)
  w_NxN, w_top_NxN = _weight_tables(k, N)
  n_int_B = n_B.astype(jnp.int32)
  w_BxN = jnp.asarray(w_NxN)[n_int_B]                                # C(p, k-1) / C(n, k)
  maxg_B = _common.row_sum(w_BxN * f_sorted_BxN)
  if baseline == "none":
    top_BxN = jnp.asarray(w_top_NxN)[n_int_B] * f_sorted_BxN       # C(p-1, k-2) / C(n, k) f_p
    s_BxN = w_BxN * f_sorted_BxN + _cumsum(top_BxN, strict_reverse=True)
  elif k == 1:
    total_B = _common.row_sum(f_sorted_BxN)
    others_BxN = (total_B[:, None] - f_sorted_BxN) / jnp.maximum(n_B - 1.0, 1.0)[:, None]
    s_BxN = jnp.where((n_B > 1)[:, None], (f_sorted_BxN - others_BxN) / n_B[:, None], 0.0)
  else:
    gap_BxN = jnp.pad(f_sorted_BxN[:, 1:] - f_sorted_BxN[:, :-1], ((0, 0), (1, 0)))
    s_BxN = _cumsum(jnp.where(live_BxN & (p_N >= 1), gap_BxN * w_BxN, 0.0))
  adv_BxN = jnp.where(valid_BxN & enough_B[:, None], read_back(s_BxN), 0.0)
  return adv_BxN, {"maxg_at_k": jnp.where(enough_B, maxg_B, 0.0),
                   "too_few_valid": ~enough_B}
