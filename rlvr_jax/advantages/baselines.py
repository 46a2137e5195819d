"""Pass@1 baselines: grpo, dr_grpo, rloo (PAPERS.md section 1).

Shape letters: B problems, N rollouts a problem. Every estimator gives 0 to a
problem whose valid rewards are all equal, and 0 to invalid rollouts.
"""

import jax.numpy as jnp

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


@register("grpo", defaults={"ddof": 0}, domain="real", check=_common.check_ddof)
def grpo(rewards_BxN, valid_BxN, *, ddof, counts, **_):
  """A_i = (r_i - mean r) / std r; ddof 0 (Pass@k paper) or 1 (verl, TRL, SvS)."""
  return _common.standardize(rewards_BxN, valid_BxN, ddof, counts.num_valid_B), {}


@register("dr_grpo", defaults={}, domain="real")
def dr_grpo(rewards_BxN, valid_BxN, *, counts, **_):
  """A_i = r_i - mean r (Dr. GRPO drops the std division)."""
  total_B, _, _, live_B = _common.row_stats(rewards_BxN, valid_BxN)
  mean_B = total_B / jnp.maximum(counts.num_valid_B, 1.0)
  adv_BxN = jnp.where(live_B[:, None] & valid_BxN, rewards_BxN - mean_B[:, None], 0.0)
  return adv_BxN, {}


@register("rloo", defaults={}, domain="real")
def rloo(rewards_BxN, valid_BxN, *, counts, **_):
  """A_i = r_i - mean_{j != i} r_j (leave-one-out baseline); 0 with one rollout."""
  n_B = counts.num_valid_B
  total_B, _, _, live_B = _common.row_stats(rewards_BxN, valid_BxN)
  others_BxN = (total_B[:, None] - rewards_BxN) / jnp.maximum(n_B - 1.0, 1.0)[:, None]
  live_B &= n_B > 1
  adv_BxN = jnp.where(live_B[:, None] & valid_BxN, rewards_BxN - others_BxN, 0.0)
  return adv_BxN, {}
