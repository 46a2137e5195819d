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

log u is a difference of two `betaln`s. JAX's betaln corrects Stirling's
series for large arguments instead of subtracting lgammas of ~1e3 (which in
float32 leaves ~1e-4 relative error at K + n ~ 300); it is ~1e-6 here.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register
from rlvr_jax.advantages import baselines

_BASES = {"grpo": baselines.grpo, "dr_grpo": baselines.dr_grpo, "rloo": baselines.rloo}


def log_utility(m_B: jax.Array, n_B: jax.Array, K: int, alpha: float,
                beta: float) -> jax.Array:
  """log u(m; n, K) = log K + log B(m+a, n-m+b+K-1) - log B(m+a, n-m+b)."""
  a_B = m_B + alpha
  b_B = n_B - m_B + beta
  return jnp.log(float(K)) + betaln(a_B, b_B + K - 1.0) - betaln(a_B, b_B)


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
  log_u_B = log_utility(m_B, n_B, K, alpha, beta)
  log_u0_B = log_utility(jnp.zeros_like(m_B), n_B, K, alpha, beta)
  weight_B = jnp.exp(jnp.minimum(log_u_B - log_u0_B, 0.0))  # u(m) <= u(0) exactly
  has_B = n_B > 0
  zero_B = has_B & (m_B == 0)
  gated_B = has_B & (m_B > 0) & (weight_B < tau)
  base_fn = _BASES[base]
  base_BxN, _ = base_fn(rewards_BxN, valid_BxN, ddof=ddof, counts=counts)
  adv_BxN = jnp.where(zero_B[:, None], -zero_success_coef, weight_B[:, None] * base_BxN)
  adv_BxN = jnp.where(gated_B[:, None] | ~valid_BxN, 0.0, adv_BxN)
  return adv_BxN, {"weight": jnp.where(has_B, weight_B, 0.0), "gated": gated_B,
                   "utility": jnp.where(has_B, jnp.exp(log_u_B), 0.0),
                   "loss_mask_BxN": valid_BxN & ~gated_B[:, None]}
