"""Pass@k training by sampling groups: passk_full and passk_bootstrap.

Shape letters: B problems, N rollouts a problem, G groups a problem, K = k
members a group. A group's reward is the max of its members' rewards, so any
finite rewards work (binary rewards give Pass@k). Groups are drawn among a
problem's valid rollouts only; problems with fewer than k valid rollouts get 0.
"""

import jax
import jax.numpy as jnp

from rlvr_jax.advantages import _common
from rlvr_jax.advantages._common import register


def _random_order(key: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """Per-row random permutation of column indices with the valid ones first."""
  u_BxN = jax.random.uniform(key, valid_BxN.shape)
  return jnp.argsort(jnp.where(valid_BxN, u_BxN, 2.0), axis=-1)


@register("passk_full", defaults={"k": None}, domain="real", check=_common.check_k,
          needs_key=True)
def passk_full(rewards_BxN, valid_BxN, *, k, key, **_):
  """Full sampling: a random split of the valid rollouts into floor(n/k) groups.

  Group advantages are GRPO-normalized (population std) over the problem's
  groups; members share their group's advantage. The n mod k left-over
  rollouts get 0 and are out of `info['loss_mask_BxN']`.
  """
  B, N = rewards_BxN.shape
  G = -(-N // k)
  perm_BxN = _random_order(key, valid_BxN)
  r_perm_BxN = jnp.take_along_axis(rewards_BxN, perm_BxN, axis=-1)
  r_BxGK = jnp.pad(r_perm_BxN, ((0, 0), (0, G * k - N)))
  group_max_BxG = jnp.max(r_BxGK.reshape(B, G, k), axis=-1)
  num_groups_B = jnp.sum(valid_BxN, axis=-1) // k
  group_ok_BxG = jnp.arange(G)[None, :] < num_groups_B[:, None]
  group_adv_BxG = _common.standardize(group_max_BxG, group_ok_BxG, ddof=0)
  group_of_N = jnp.arange(N) // k
  adv_perm_BxN = group_adv_BxG[:, group_of_N]
  used_perm_BxN = group_ok_BxG[:, group_of_N]
  inverse_BxN = jnp.argsort(perm_BxN, axis=-1)
  adv_BxN = jnp.take_along_axis(adv_perm_BxN, inverse_BxN, axis=-1)
  used_BxN = jnp.take_along_axis(used_perm_BxN, inverse_BxN, axis=-1)
  return adv_BxN, {"loss_mask_BxN": used_BxN & valid_BxN,
                   "num_groups": num_groups_B.astype(jnp.float32)}


def bootstrap_from_groups(rewards_BxN: jax.Array, valid_BxN: jax.Array,
                          groups_BxGxK: jax.Array, reduce: str = "sum") -> jax.Array:
  """Bootstrap advantage for given groups (indices of k distinct valid rollouts).

  Group advantages are GRPO-normalized over the G groups; a response gets the
  sum (paper Eq. 6) or the mean of the advantages of the groups it is in (0 if
  it is in none). Problems with fewer than k valid rollouts get 0.
  """
  B, G, K = groups_BxGxK.shape
  group_max_BxG = jnp.max(jnp.take_along_axis(
      rewards_BxN[:, None, :], groups_BxGxK, axis=-1), axis=-1)
  enough_B = jnp.sum(valid_BxN, axis=-1) >= K
  group_ok_BxG = jnp.broadcast_to(enough_B[:, None], (B, G))
  group_adv_BxG = _common.standardize(group_max_BxG, group_ok_BxG, ddof=0)
  rows_Bx1x1 = jnp.arange(B)[:, None, None]
  adv_BxN = jnp.zeros(rewards_BxN.shape, jnp.float32).at[rows_Bx1x1, groups_BxGxK].add(
      jnp.broadcast_to(group_adv_BxG[:, :, None], (B, G, K)))
  if reduce == "mean":
    count_BxN = jnp.zeros(rewards_BxN.shape, jnp.float32).at[rows_Bx1x1, groups_BxGxK].add(1.0)
    adv_BxN = jnp.where(count_BxN > 0, adv_BxN / jnp.maximum(count_BxN, 1.0), 0.0)
  elif reduce != "sum":
    raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
  return jnp.where(valid_BxN & enough_B[:, None], adv_BxN, 0.0)


def _check_bootstrap(params, N):
  _common.check_k(params, N)
  if params["num_groups"] is not None:
    _common.check_int(params, "num_groups", 1)
  if params["reduce"] not in ("sum", "mean"):
    raise ValueError(f"reduce must be 'sum' or 'mean', got {params['reduce']!r}")


@register("passk_bootstrap", defaults={"k": None, "num_groups": None, "reduce": "sum"},
          domain="real", check=_check_bootstrap, needs_key=True)
def passk_bootstrap(rewards_BxN, valid_BxN, *, k, key, num_groups, reduce, **_):
  """Bootstrap sampling: num_groups (default N) groups of k distinct valid rollouts.

  Each group is the k smallest of fresh uniform keys over the valid rollouts
  (lax.top_k: exactly k distinct indices, ties included).
  """
  B, N = rewards_BxN.shape
  G = N if num_groups is None else num_groups
  u_BxGxN = jax.random.uniform(key, (B, G, N))
  u_BxGxN = jnp.where(valid_BxN[:, None, :], u_BxGxN, 2.0)
  _, groups_BxGxK = jax.lax.top_k(-u_BxGxN, k)
  adv_BxN = bootstrap_from_groups(rewards_BxN, valid_BxN, groups_BxGxK, reduce)
  return adv_BxN, {}
