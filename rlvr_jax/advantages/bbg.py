"""Bayesian Boundary Gating, BBG (Yuan et al., arXiv 2606.15455), as WE read it.

Shape letters: B problems, N rollouts a problem.

The paper's method section was not available to us. What is here follows
PAPERS.md section 5 and a third-party implementation that cites the paper's
equations; every choice marked (ours) is not from either source.

- With m successes among n valid rollouts and a Beta(alpha, beta) prior, the
  success rate p has posterior Beta(m + alpha, n - m + beta). A problem's
  boundary utility (Eq. 8) is the posterior mean of d Pass@K / dp = K (1 - p)^(K-1):

      u(m) = K B(m + alpha, n - m + beta + K - 1) / B(m + alpha, n - m + beta)

- The gate, `gate_norm`: a problem is gated (advantage 0, out of the loss
  through `info['loss_mask_BxN']`) when
    'n+1' (default, the cited Eq. 9):  u(m) < tau * (n + 1)
    'u0'  (PAPERS.md's first reading): u(m) / u(0) < tau
  The threshold of 'u0' is tau u(0) = tau K (n + 1) / (n + K) for alpha = beta = 1,
  K / (n + K) times that of 'n+1', so 'n+1' gates at least as much. At K = 256,
  tau = 0.01 the two gate the same buckets at n = 8, 16 and 32 (m >= 2, 2, 3);
  they differ at n = 29, 30 (m = 2) and 72..79 (m = 3), which a batch of 32 or 80
  rollouts with a few masked (truncated) ones reaches. (PAPERS.md says they can
  differ "at n = 32"; at tau = 0.01 they do not, at tau = 0.0115 they do.)
  The gate is applied to every problem, m = 0 included (ours; u(0) is below
  the 'n+1' threshold only if K / (n + K) < tau, never at the defaults).
- The weight of a kept problem, `weight_norm`: its base advantage (grpo by
  default) times u(m) / u(1) ('u1', default), u(m) / u(0) ('u0') or 1 ('none').
  How the paper weights kept problems is not known: 'u1' gives the m = 1
  bucket weight 1, 'u0' about 0.03 at n = 8. The default 'u1' is the issue's
  choice, not a verified one.
- Problems with m = 0 (no GRPO signal) get a signed REINFORCE term: reward
  mapped to -1 for failures, so each valid response gets -zero_success_coef,
  not scaled by any weight (ours). The default coefficient 0.1 is ours; the
  paper's value is unknown. Their reported weight is 1.
- `zero_success_only` (the paper's simpler intervention "updates restricted to
  zero-success problems"): every problem with a success is gated, so only the
  m = 0 term trains. GRPO alone cannot express it (the advantages of an
  all-wrong group are 0); this is the intervention as BBG's m = 0 term gives it
  a signal (ours). The other simple intervention, masking high-success
  buckets, is the `mask_high_success` modifier every estimator takes
  (rlvr_jax/advantages/__init__.py).

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
GATE_NORMS = ("n+1", "u0")
WEIGHT_NORMS = ("u1", "u0", "none")


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
  for name, allowed in (("gate_norm", GATE_NORMS), ("weight_norm", WEIGHT_NORMS)):
    if params[name] not in allowed:
      raise ValueError(f"{name} must be one of {list(allowed)}, got {params[name]!r}")
  if not isinstance(params["zero_success_only"], bool):
    raise ValueError(f"zero_success_only must be a bool, got {params['zero_success_only']!r}")


@register("bbg", defaults={"k": 256, "tau": 0.01, "alpha": 1.0, "beta": 1.0,
                           "zero_success_coef": 0.1, "base": "grpo", "ddof": 0,
                           "gate_norm": "n+1", "weight_norm": "u1",
                           "zero_success_only": False},
          domain="binary", check=_check_bbg, renamed={"K": "k"})
def bbg(rewards_BxN, valid_BxN, *, k, tau, alpha, beta, zero_success_coef, base, ddof,
        gate_norm, weight_norm, zero_success_only, counts, **_):
  """Base advantage times the normalized boundary utility; gating below the threshold."""
  m_B, n_B = counts.num_pos_B, counts.num_valid_B
  # u depends on (m, n) alone, each a count in 0..N: evaluated once on that grid (K - 1
  # factors a cell), then every problem takes its cell.
  N = rewards_BxN.shape[1]
  n_N1x1 = jnp.arange(N + 1, dtype=jnp.float32)[:, None]
  m_N1xN1 = jnp.minimum(jnp.arange(N + 1, dtype=jnp.float32)[None, :], n_N1x1)  # m <= n
  log_u_N1xN1 = log_utility(m_N1xN1, n_N1x1, k, alpha, beta)
  n_idx_B, m_idx_B = n_B.astype(jnp.int32), m_B.astype(jnp.int32)
  log_u_B = log_u_N1xN1[n_idx_B, m_idx_B]
  has_B = n_B > 0
  zero_B = has_B & (m_B == 0)
  # The gate, in log space: log u(m) < log tau + log(n + 1) or log u(0) (tau = 0 gates nothing).
  if tau > 0:
    log_norm_B = jnp.log(n_B + 1.0) if gate_norm == "n+1" else log_u_N1xN1[n_idx_B, 0]
    gated_B = has_B & (log_u_B < math.log(tau) + log_norm_B)
  else:
    gated_B = jnp.zeros_like(has_B)
  if zero_success_only:
    gated_B = gated_B | (has_B & (m_B > 0))
  if weight_norm == "none":
    weight_B = jnp.ones_like(log_u_B)
  else:
    col = 1 if weight_norm == "u1" else 0  # u(1) exists: a problem with m > 0 has n >= 1
    weight_B = jnp.exp(log_u_B - log_u_N1xN1[n_idx_B, col])
  weight_B = jnp.where(has_B & ~zero_B, weight_B, jnp.where(zero_B, 1.0, 0.0))
  base_params = {"ddof": ddof, "eps": 0.0, "scale": "group"} if base == "grpo" else {}
  base_BxN, _ = getattr(baselines, base)(rewards_BxN, valid_BxN, counts=counts, **base_params)
  adv_BxN = jnp.where(zero_B[:, None] & valid_BxN, -zero_success_coef,
                      weight_B[:, None] * base_BxN)
  adv_BxN = jnp.where(gated_B[:, None], 0.0, adv_BxN)
  return adv_BxN, {"weight": weight_B, "gated": gated_B,
                   "utility": jnp.where(has_B, jnp.exp(log_u_B), 0.0),
                   "loss_mask_BxN": valid_BxN & ~gated_B[:, None]}
