"""Pass@1 baselines: grpo, dr_grpo, rloo (PAPERS.md section 1).

Shape letters: B problems, N rollouts a problem. Every estimator gives 0 to a
problem whose valid rewards are all equal, and 0 to invalid rollouts.

The peers' conventions are parameters, so a run can be compared with theirs
number for number: verl divides by std + 1e-6 with ddof 1 (`ddof=1, eps=1e-6`),
TRL and Tunix by std + 1e-4 with ddof 1 (`ddof=1, eps=1e-4`; Tunix's
`grpo_helpers.compute_advantages` as read on 2026-12-02), and TRL's
`scale_rewards='batch'` divides by the std of every reward in the batch
(`scale='batch'`).
"""

import jax.numpy as jnp

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register

_SCALES = ("group", "batch")


def _check_grpo(params, N):
  _common.check_ddof(params, N)
  _common.check_float(params, "eps", lo=0.0)
  if params["scale"] not in _SCALES:
    raise ValueError(f"scale must be one of {list(_SCALES)}, got {params['scale']!r}")


@register("grpo", defaults={"ddof": 0, "eps": 0.0, "scale": "group"}, domain="real",
          check=_check_grpo)
def grpo(rewards_BxN, valid_BxN, *, ddof, eps, scale, **_):
  """A_i = (r_i - mean r) / (std r + eps).

  ddof 0 (Pass@k paper) or 1 (verl, TRL, SvS). `scale='group'` takes the std
  over the problem's valid rewards; `scale='batch'` over every valid reward
  of the batch (TRL), still centring on the problem's mean. Problems whose
  rewards are all equal get 0 either way.
  """
  if scale == "group":
    return _common.standardize(rewards_BxN, valid_BxN, ddof, eps), {}
  # The batch's std, computed as standardize does: on [0, 1] by the batch's range.
  r_1xBN, valid_1xBN = rewards_BxN.reshape(1, -1), valid_BxN.reshape(1, -1)
  n = jnp.sum(valid_1xBN)
  lo, hi = (x[0] for x in _common.masked_range(r_1xBN, valid_1xBN))
  live = (hi - lo >= _common.EQUAL_SPREAD) & (n > ddof)
  spread = jnp.where(live, hi - lo, 1.0)
  unit_1xBN = (r_1xBN - jnp.where(live, lo, 0.0)) / spread
  dev_1xBN = jnp.where(valid_1xBN, unit_1xBN - _common.masked_mean(unit_1xBN, valid_1xBN), 0.0)
  std = spread * jnp.sqrt(jnp.sum(dev_1xBN ** 2) / jnp.where(live, n - ddof, 1.0))
  centred_BxN, _ = dr_grpo(rewards_BxN, valid_BxN)
  return jnp.where(live, centred_BxN / (std + eps), 0.0), {}


@register("dr_grpo", defaults={}, domain="real")
def dr_grpo(rewards_BxN, valid_BxN, **_):
  """A_i = r_i - mean r (Dr. GRPO drops the std division)."""
  mean_B = _common.masked_mean(rewards_BxN, valid_BxN)
  live_BxN = _common.varies(rewards_BxN, valid_BxN)[:, None] & valid_BxN
  return jnp.where(live_BxN, rewards_BxN - mean_B[:, None], 0.0), {}


@register("rloo", defaults={}, domain="real")
def rloo(rewards_BxN, valid_BxN, *, counts, **_):
  """A_i = r_i - mean_{j != i} r_j (leave-one-out baseline); 0 with one rollout."""
  n_B = counts.num_valid_B
  others_BxN = ((_common.masked_sum(rewards_BxN, valid_BxN)[:, None] - rewards_BxN)
                / jnp.maximum(n_B - 1.0, 1.0)[:, None])
  live_BxN = (_common.varies(rewards_BxN, valid_BxN) & (n_B > 1))[:, None] & valid_BxN
  return jnp.where(live_BxN, rewards_BxN - others_BxN, 0.0), {}
