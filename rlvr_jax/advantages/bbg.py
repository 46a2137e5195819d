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

u and the weight depend on (n, m), two integers in [0, N], only: they are
tabulated once per (N, K, alpha, beta) in float64, where log u, a difference of
two betalns (lgammas of ~1e3 at K + n ~ 300), is exact to ~1e-12 (float32
lgammas would leave ~1e-4), and each problem looks its values up.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register

_BASES = ("grpo", "dr_grpo", "rloo")


_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _betaln(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return (_lgamma(a) + _lgamma(b) - _lgamma(a + b)).astype(np.float64)


def log_utility(m: np.ndarray, n: np.ndarray, K: int, alpha: float, beta: float) -> np.ndarray:
  """log u(m; n, K) = log K + log B(m+a, n-m+b+K-1) - log B(m+a, n-m+b), float64."""
  a = m + alpha
  b = n - m + beta
  return math.log(K) + _betaln(a, b + K - 1.0) - _betaln(a, b)


@functools.lru_cache(maxsize=32)
def _weight_utility_table(N: int, K: int, alpha: float, beta: float) -> np.ndarray:
  """[2, N + 1, N + 1] float32: weight u(m) / u(0) and utility u(m) at [:, n, m] (m <= n)."""
  n_Nx1 = np.arange(N + 1, dtype=np.float64)[:, None]
  m_1xN = np.minimum(np.arange(N + 1, dtype=np.float64)[None, :], n_Nx1)  # m > n: unused
  log_u_NxN = log_utility(m_1xN, n_Nx1, K, alpha, beta)
  log_u0_Nx1 = log_utility(np.zeros_like(n_Nx1), n_Nx1, K, alpha, beta)
  weight_NxN = np.exp(np.minimum(log_u_NxN - log_u0_Nx1, 0.0))  # u(m) <= u(0) exactly
  return np.stack([weight_NxN, np.exp(log_u_NxN)]).astype(np.float32)


def _check_bbg(params, N):
  del N
  _common.check_int(params, "K", 1)
  _common.check_float(params, "tau", lo=0.0, hi=1.0)
  _common.check_float(params, "alpha", lo=0.0, lo_open=True)
  _common.check_float(params, "beta", lo=0.0, lo_open=True)
  _common.check_float(params, "zero_success_coef", lo=0.0)
  if params["base"] not in _BASES:
    raise ValueError(f"bbg base must be one of {sorted(_BASES)}, got {params['base']!r}")
  _common.check_int(params, "ddof", 0, 1)


@register("bbg", defaults={"K": 256, "tau": 0.01, "alpha": 1.0, "beta": 1.0,
                           "zero_success_coef": 0.1, "base": "grpo", "ddof": 0},
          domain="binary", check=_check_bbg)
def bbg(rewards_BxN, valid_BxN, *, K, tau, alpha, beta, zero_success_coef, base, ddof,
        counts, **_):
  """Base advantage times the normalized boundary utility; gating below tau."""
  m_B, n_B = counts.num_pos_B, counts.num_valid_B
  N = rewards_BxN.shape[1]
  weight_B, utility_B = (_common.lookup(t_NxN, counts) for t_NxN in
                         _weight_utility_table(N, K, float(alpha), float(beta)))
  has_B = n_B > 0
  zero_B = has_B & (m_B == 0)
  gated_B = has_B & (m_B > 0) & (weight_B < tau)
  # Rewards are binary, so the base advantage is a per-problem closed form too.
  base_pos_B, base_neg_B = _common.binary_baseline(base, counts, N, ddof)
  scale_B = jnp.where(gated_B, 0.0, weight_B)
  pos_B = jnp.where(zero_B, -zero_success_coef, scale_B * base_pos_B)
  neg_B = jnp.where(zero_B, -zero_success_coef, scale_B * base_neg_B)
  adv_BxN = _common.binary_blend(rewards_BxN, valid_BxN, pos_B, neg_B)
  return adv_BxN, {"weight": jnp.where(has_B, weight_B, 0.0), "gated": gated_B,
                   "utility": jnp.where(has_B, utility_B, 0.0),
                   "loss_mask_BxN": valid_BxN & ~gated_B[:, None]}
