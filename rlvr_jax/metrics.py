"""RLVR metrics: unbiased pass@k, Pass@k curves, eta, answer diversity.

Shape letters: B problems, N rollouts a problem.

`pass_at_k` is Chen et al. (2021)'s unbiased estimator from n samples with c
correct, `1 - C(n - c, k) / C(n, k)`, in the stable product form
`1 - prod_{i=n-c+1}^{n} (1 - k / i)` (`binomial.log_comb_ratio`, the
project's one binomial helper, re-exported here): exact to float32 rounding
even for n = 1024, where C(n, k) overflows any float.
"""

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlvr_jax.binomial import log_comb_ratio


def pass_at_k(n: Any, c: Any, k: Any, max_c: int | None = None) -> jax.Array:
  """Unbiased pass@k from n samples with c correct; batched, float32.

  `n`, `c`, `k` broadcast. `max_c` bounds c statically (required under jit;
  otherwise max(c)). Concrete inputs outside 0 <= c <= n, 1 <= k <= n raise
  ValueError; under jit such entries are NaN, so they cannot pass silently.
  """
  if not any(isinstance(x, jax.core.Tracer) for x in (n, c, k)):
    n_, c_, k_ = (np.asarray(x) for x in (n, c, k))
    if np.any(c_ < 0) or np.any(c_ > n_):
      raise ValueError(f"pass_at_k needs 0 <= c <= n; got n={n_}, c={c_}")
    if np.any(k_ < 1) or np.any(k_ > n_):
      raise ValueError(f"pass_at_k needs 1 <= k <= n; got n={n_}, k={k_}")
    if max_c is None:
      max_c = int(np.max(c_)) if c_.size else 0
  elif max_c is None:
    raise ValueError("pass_at_k under jit needs a static max_c")
  return _pass_at_k(n, c, k, max(int(max_c), 1))


@functools.partial(jax.jit, static_argnames=("max_c",))
def _pass_at_k(n, c, k, max_c):
  n = jnp.asarray(n, jnp.float32)
  c = jnp.asarray(c, jnp.float32)
  k = jnp.asarray(k, jnp.float32)
  bad = (c < 0) | (c > n) | (k < 1) | (k > n)
  value = -jnp.expm1(log_comb_ratio(n, c, k, max_c))
  return jnp.where(bad, jnp.nan, value)


def default_ks(n: int) -> list[int]:
  """k = 1, 2, 4, ... up to n, and n itself."""
  if n < 1:
    raise ValueError(f"default_ks needs n >= 1, got {n}")
  ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
  return ks if ks[-1] == n else ks + [n]


def pass_at_k_curve(num_samples_B: Any, num_correct_B: Any,
                    ks: Sequence[int] | None = None) -> dict[int, float]:
  """Mean over problems of pass@k for each k (default 1, 2, 4, ..., n).

  Every problem must have at least max(ks) samples.
  """
  n_B = np.asarray(num_samples_B)
  c_B = np.asarray(num_correct_B)
  if n_B.ndim != 1 or n_B.shape != c_B.shape or n_B.size == 0:
    raise ValueError(f"pass_at_k_curve needs equal non-empty 1-D arrays, got "
                     f"{n_B.shape} and {c_B.shape}")
  ks = default_ks(int(n_B.min())) if ks is None else list(ks)
  return {int(k): float(jnp.mean(pass_at_k(n_B, c_B, k))) for k in ks}


def eta(adv_BxN: jax.Array, valid_BxN: jax.Array | None = None) -> jax.Array:
  """Sum of absolute advantages of each problem's valid rollouts, [B].

  Pass@k training's diagnostic: `N_pos |A_pos| + N_neg |A_neg|` for binary rewards.
  """
  adv_BxN = jnp.asarray(adv_BxN)
  if adv_BxN.ndim != 2:
    raise ValueError(f"eta needs adv_BxN of rank 2, got shape {adv_BxN.shape}")
  if valid_BxN is None:
    return jnp.sum(jnp.abs(adv_BxN), axis=-1)
  valid_BxN = jnp.asarray(valid_BxN)
  if valid_BxN.shape != adv_BxN.shape:
    raise ValueError(f"valid_BxN shape {valid_BxN.shape} != adv_BxN shape {adv_BxN.shape}")
  return jnp.sum(jnp.where(valid_BxN, jnp.abs(adv_BxN), 0.0), axis=-1)


def answer_diversity(answers_BxN: Sequence[Sequence[str | None]], rewards_BxN: Any,
                     valid_BxN: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """Distinct final answers among each problem's wrong responses.

  Returns `(diversity_B, num_wrong_B)`: diversity is distinct answers / wrong
  responses (a response with no extractable answer, None, counts as one shared
  answer "no answer"); problems without wrong responses get diversity 0 and
  num_wrong 0, so average over `num_wrong_B > 0` for a batch value. A response
  is wrong when its reward is below 1.
  """
  rewards_BxN = np.asarray(rewards_BxN, np.float64)
  if rewards_BxN.ndim != 2:
    raise ValueError(f"answer_diversity needs rewards_BxN of rank 2, got {rewards_BxN.shape}")
  B, N = rewards_BxN.shape
  valid_BxN = (np.ones((B, N), bool) if valid_BxN is None
               else np.asarray(valid_BxN, bool))
  if valid_BxN.shape != (B, N):
    raise ValueError(f"valid_BxN shape {valid_BxN.shape} != rewards shape {(B, N)}")
  if len(answers_BxN) != B or any(len(row) != N for row in answers_BxN):
    raise ValueError(f"answers_BxN must be {B} rows of {N} answers")
  diversity_B = np.zeros(B, np.float64)
  num_wrong_B = np.zeros(B, np.int64)
  for b in range(B):  # answers are strings: this is host-side bookkeeping
    wrong = [answers_BxN[b][n] for n in range(N)
             if valid_BxN[b, n] and rewards_BxN[b, n] < 1.0]
    num_wrong_B[b] = len(wrong)
    if wrong:
      diversity_B[b] = len(set(wrong)) / len(wrong)
  return diversity_B, num_wrong_B
