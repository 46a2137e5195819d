"""Bayesian Boundary Gating, BBG (Yuan et al., arXiv 2606.15455), as WE read it.

Shape letters: B problems, N rollouts a problem.

The paper's method section was not available to us; this is our reading of
its abstract, as PAPERS.md section 5 specifies it, not a verified
reimplementation:

- With m successes among n valid rollouts and a Beta(alpha, beta) prior, the
  success rate p has posterior Beta(m + alpha, n - m + beta). A problem's
  boundary utility is the posterior mean of d Pass@K / dp = K (1 - p)^(K-1):

      u(m) = K B(m + alpha, n - m + beta + K - 1) / B(m + alpha, n - m + beta)

- Its weight is u(m) / u(0) (same n). Problems with m > 0 and weight < tau are
  gated: advantage 0, out of the loss (`info['loss_mask_BxN']`). The others get
  the base advantage (grpo by default) times the weight.
- Problems with m = 0 (no GRPO signal) get a signed REINFORCE term: reward
  mapped to -1 for failures, so each valid response gets -zero_success_coef.
  The default coefficient 0.1 is our choice; the paper's value is unknown.

u is a ratio of Beta functions, which is a ratio of binomials with real
arguments: B(a, b + K - 1) / B(a, b) = prod_{j=0}^{K-2} (b + j) / (a + b + j),
the K - 1 factors of `binomial.log_comb_ratio(a + b + K - 2, K - 1, a)`, each
O(1), so float32 keeps it to rounding where a difference of lgammas of ~1e3
(K + n ~ 300) would leave ~1e-4.
"""

import math

import jax.numpy as jnp

from rlvr_jax import binomial
from rlvr_jax.advantages import _common
from rlvr_jax.advantages import baselines
from rlvr_jax.advantages._common import register

_BASES = ("grpo", "dr_grpo", "rloo")


def log_utility(m, n, K: int, alpha: float, beta: float):
  """log u(m; n, K) = log K + log B(m + alpha, n - m + beta + K - 1) - log B(m + alpha, n - m + beta)."""
  a, b = m + alpha, n - m + beta
  return math.log(K) + binomial.log_comb_ratio(a + b + K - 2.0, K - 1, a, K - 1)


def _check_bbg(params, N):
  del N
  _common.check_int(params, "k", 1)
  _common.check_float(params, "tau", lo=0.0, hi=1.0)
  _common.check_float(params, "alpha", lo=0.0, lo_open=True)
  _common.check_float(params, "beta", lo=0.0, lo_open=True)
  _common.check_float(params, "zero_success_coef", lo=0.0)
  if params["base"] not in _BASES:
    raise ValueError(f"bbg base must be one of {sorted(_BASES)}, got {params['base']!r}")
  _common.check_int(params, "ddof", 0, 1)


@register("bbg", defaults={"k": 256, "tau": 0.01, "alpha": 1.0, "beta": 1.0,
                           "zero_success_coef": 0.1, "base": "grpo", "ddof": 0},
          domain="binary", check=_check_bbg, renamed={"K": "k"})
def bbg(rewards_BxN, valid_BxN, *, k, tau, alpha, beta, zero_success_coef, base, ddof,
        counts, **_):
  """Base advantage times the normalized boundary utility; gating below tau."""
  m_B, n_B = counts.num_pos_B, counts.num_valid_B
  # u depends on (m, n) alone, each a count in 0..N: evaluated once on that grid (K - 1
  # factors a cell), then every problem takes its cell.
  N = rewards_BxN.shape[1]
  n_N1x1 = jnp.arange(N + 1, dtype=jnp.float32)[:, None]
  m_N1xN1 = jnp.minimum(jnp.arange(N + 1, dtype=jnp.float32)[None, :], n_N1x1)  # m <= n
  log_u_N1xN1 = log_utility(m_N1xN1, n_N1x1, k, alpha, beta)
  n_idx_B, m_idx_B = n_B.astype(jnp.int32), m_B.astype(jnp.int32)
  log_u_B = log_u_N1xN1[n_idx_B, m_idx_B]
  weight_B = jnp.exp(jnp.minimum(log_u_B - log_u_N1xN1[n_idx_B, 0], 0.0))
  has_B = n_B > 0
  zero_B = has_B & (m_B == 0)
  gated_B = has_B & (m_B > 0) & (weight_B < tau)
  base_params = {"ddof": ddof, "eps": 0.0, "scale": "group"} if base == "grpo" else {}
  base_BxN, _ = getattr(baselines, base)(rewards_BxN, valid_BxN, counts=counts, **base_params)
  scale_B = jnp.where(gated_B, 0.0, weight_B)
  adv_BxN = jnp.where(zero_B[:, None] & valid_BxN, -zero_success_coef,
                      scale_B[:, None] * base_BxN)
  return adv_BxN, {"weight": jnp.where(has_B, weight_B, 0.0), "gated": gated_B,
                   "utility": jnp.where(has_B, jnp.exp(log_u_B), 0.0),
                   "loss_mask_BxN": valid_BxN & ~gated_B[:, None]}
