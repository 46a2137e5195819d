"""The one binomial helper of the project: ratios of binomial coefficients, in log space.

    C(n - c, k) / C(n, k) = prod_{j=0}^{c-1} (1 - k / (n - j))

Every factor is O(1), so a float32 sum of their logs stays exact to rounding
where the coefficients themselves overflow any float (C(1024, 512) ~ 1e306)
and log-gamma differences lose ~1e-4 (lgamma(1025) ~ 6e3, float32 eps ~ 6e-8).

Its users: pass@k (`metrics.pass_at_k`, 1 - the ratio), Pass@k training's
R and q (`advantages.passk`), PKPO's subset weights (`advantages.pkpo`) and
BBG's Beta-function ratio (`advantages.bbg`, where n and k are real: the
product is then Gamma(n - c + 1) Gamma(n - k + 1) / (Gamma(n - c - k + 1) Gamma(n + 1))).
"""

from typing import Any

import jax
import jax.numpy as jnp


def log_comb_ratio(n: Any, c: Any, k: Any, max_c: int) -> jax.Array:
  """log(C(n - c, k) / C(n, k)), batched, float32; -inf where the ratio is 0.

  `n`, `c`, `k` broadcast; `c` counts factors, an integer in [0, max_c]
  (`max_c` static: the sum runs over that many terms, the unused ones 0). The
  ratio is 0 when a factor is: k >= n - c + 1, which for integers is n - c < k
  (C(n - c, k) = 0). Real n, k (BBG) keep every factor positive.
  """
  n = jnp.asarray(n, jnp.float32)[..., None]
  c = jnp.asarray(c, jnp.float32)[..., None]
  k = jnp.asarray(k, jnp.float32)[..., None]
  j = jnp.arange(max_c, dtype=jnp.float32)
  zero = k >= n - c + 1
  used = (j < c) & ~zero
  # Unused factors become log1p(0): no division by zero or log of a negative
  # number reaches the sum (or its gradient).
  terms = jnp.where(used, jnp.log1p(-jnp.where(used, k, 0.0) / jnp.where(used, n - j, 1.0)),
                    0.0)
  return jnp.where(zero[..., 0], -jnp.inf, jnp.sum(terms, axis=-1))
