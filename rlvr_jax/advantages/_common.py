"""Registry entries and shared helpers of the advantage estimators.

Shape letters (docs/DESIGN.md): B problems, N rollouts a problem, G groups of
rollouts a problem (Pass@k sampling).
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimator:
  """One registry entry.

  `fn(rewards_BxN, valid_BxN, *, key, entropy_BxN, counts, **params) -> (adv_BxN, info)`
  receives float32 rewards, a bool mask, the rows' `Counts` (computed once by
  the caller), and every parameter (defaults filled in, already checked by
  `check`). `domain` is 'binary' (rewards in {0, 1}) or 'real' (any finite reward).
  """
  name: str
  fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  defaults: dict[str, Any]
  domain: str
  check: Callable[[dict[str, Any], int], None] | None = None
  needs_key: bool = False
  needs_entropy: bool = False
  renamed: dict[str, str] = dataclasses.field(default_factory=dict)  # old name -> new


REGISTRY: dict[str, Estimator] = {}


def register(name: str, *, defaults: dict[str, Any], domain: str,
             check: Callable[[dict[str, Any], int], None] | None = None,
             needs_key: bool = False, needs_entropy: bool = False,
             renamed: dict[str, str] | None = None):
  """Decorator adding an estimator function to the registry under `name`.

  `renamed` maps a parameter's old name to its new one; the old one keeps
  working, with a DeprecationWarning, for a release.
  """
  if domain not in ("binary", "real"):
    raise ValueError(f"unknown reward domain {domain!r}")

  def wrap(fn):
    if name in REGISTRY:
      raise ValueError(f"advantage estimator {name!r} registered twice")
    REGISTRY[name] = Estimator(name, fn, dict(defaults), domain, check, needs_key,
                               needs_entropy, dict(renamed or {}))
    return fn
  return wrap


def is_concrete(*xs: Any) -> bool:
  """True when no argument is a jit tracer (so values can be checked in Python)."""
  return not any(isinstance(x, jax.core.Tracer) for x in xs)


def check_int(params: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int:
  value = params[name]
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an int, got {value!r}")
  if value < lo or (hi is not None and value > hi):
    bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    raise ValueError(f"{name} must be {bound}, got {value}")
  return int(value)


def check_float(params: dict[str, Any], name: str, lo: float | None = None,
                hi: float | None = None, lo_open: bool = False) -> float:
  value = params[name]
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise ValueError(f"{name} must be a number, got {value!r}")
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f"{name} must be finite, got {value}")
  if lo is not None and (value < lo or (lo_open and value == lo)):
    raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
  if hi is not None and value > hi:
    raise ValueError(f"{name} must be <= {hi}, got {value}")
  return value


def check_k(params: dict[str, Any], N: int) -> None:
  if params.get("k") is None:
    raise ValueError("k is required")
  check_int(params, "k", 1)
  if params["k"] > N:
    raise ValueError(f"k={params['k']} exceeds N={N} rollouts a problem")


def check_ddof(params: dict[str, Any], N: int) -> None:
  del N
  check_int(params, "ddof", 0, 1)


class Counts(NamedTuple):
  """Per-problem counts, float32 [B]: computed once by `row_counts`, shared by all users."""
  num_pos_B: jax.Array    # valid finite rewards > 0
  num_valid_B: jax.Array  # valid rollouts
  num_bad_B: jax.Array    # valid entries flagged by `bad_BxN` (0 without one)


def row_counts(rewards_BxN: jax.Array, valid_BxN: jax.Array,
               bad_BxN: jax.Array | None = None) -> Counts:
  """Each row's number of valid positive (finite, > 0), valid and valid bad entries."""
  count = lambda mask_BxN: jnp.sum(valid_BxN & mask_BxN, axis=-1, dtype=jnp.float32)
  num_bad_B = (jnp.zeros(rewards_BxN.shape[:1], jnp.float32) if bad_BxN is None
               else count(bad_BxN))
  return Counts(count((rewards_BxN > 0) & jnp.isfinite(rewards_BxN)), count(True), num_bad_B)


def masked_sum(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """Sum of each row's valid entries, [B]."""
  return jnp.sum(jnp.where(valid_BxN, x_BxN, 0.0), axis=-1)


def masked_mean(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """Mean of each row's valid entries (0 for a row without any), [B]."""
  return masked_sum(x_BxN, valid_BxN) / jnp.maximum(jnp.sum(valid_BxN, axis=-1), 1)


# Rewards closer than float32's smallest normal number count as equal. Their
# difference would be subnormal, which CPUs and GPUs flush to 0 (or not) by
# platform; this threshold gives the same answer everywhere.
EQUAL_SPREAD = float(np.finfo(np.float32).tiny)


def masked_range(x_BxN: jax.Array, valid_BxN: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(min, max) of each row's valid entries, [B] each; (inf, -inf) for a row without any."""
  return (jnp.min(jnp.where(valid_BxN, x_BxN, jnp.inf), axis=-1),
          jnp.max(jnp.where(valid_BxN, x_BxN, -jnp.inf), axis=-1))


def varies(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """True for rows whose valid entries are not all equal: max - min >= EQUAL_SPREAD.

  The one definition of "not all equal". By range, not std == 0: float32
  means of equal non-dyadic rewards (0.1, 0.1, 0.1) leave ~1e-9 deviations,
  and dividing those by their own tiny std would invent +-1 advantages.
  """
  lo_B, hi_B = masked_range(x_BxN, valid_BxN)
  return hi_B - lo_B >= EQUAL_SPREAD


def standardize(x_BxN: jax.Array, valid_BxN: jax.Array, ddof: int = 0,
                eps: float = 0.0) -> jax.Array:
  """(x - mean) / (std + eps) over each row's valid entries; 0 where the row is constant.

  Rows with fewer than ddof + 1 valid entries also get 0; invalid entries get 0.
  A row whose range overflows float32 (|x| ~1e38) gives NaN, loudly; a row
  whose range is below EQUAL_SPREAD counts as constant.
  """
  n_B = jnp.sum(valid_BxN, axis=-1).astype(jnp.float32)
  # The result is shift- and scale-free, so each row is first mapped onto
  # [0, 1] by its min and range: x - min is exact for nearby values (1 vs
  # 1 + 1e-7 would lose their deviation in a float32 mean), and tiny rewards
  # (hypothesis found 1.2e-38) would give subnormal means that the CPU
  # flushes to 0. With one value at 0 and one at 1, deviations are >= ~1/(2n).
  lo_B, hi_B = masked_range(x_BxN, valid_BxN)
  live_B = (hi_B - lo_B >= EQUAL_SPREAD) & (n_B > ddof)
  range_B = jnp.where(live_B, hi_B - lo_B, 1.0)
  unit_BxN = (x_BxN - jnp.where(live_B, lo_B, 0.0)[:, None]) / range_B[:, None]
  dev_BxN = jnp.where(valid_BxN, unit_BxN - masked_mean(unit_BxN, valid_BxN)[:, None], 0.0)
  var_B = jnp.sum(dev_BxN ** 2, axis=-1) / jnp.where(live_B, n_B - ddof, 1.0)
  # std + eps in reward units is range * (unit std + eps / range).
  scale_B = jnp.sqrt(jnp.where(live_B, var_B, 1.0)) + eps / range_B
  return jnp.where(live_B[:, None] & valid_BxN, dev_BxN / scale_B[:, None], 0.0)


def by_reward(rewards_BxN: jax.Array, valid_BxN: jax.Array, a_pos_B: jax.Array,
              a_neg_B: jax.Array) -> jax.Array:
  """A_pos at valid correct rollouts, A_neg at valid wrong ones, 0 at invalid ones."""
  adv_BxN = jnp.where(rewards_BxN > 0, a_pos_B[:, None], a_neg_B[:, None])
  return jnp.where(valid_BxN, adv_BxN, 0.0)


# Rows up to this long are ranked by counting comparisons (N^2 of them a row); longer ones by
# a sort. On XLA:CPU a sort of 4096 rows of 32 takes ~18 ms and the comparisons ~1.4 ms; at
# N = 64 the two cost about the same (benchmarks/RESULTS.md, 2026-12-02).
_COMPARE_MAX_N = 64


def stable_ranks(*keys_BxN: jax.Array) -> jax.Array:
  """Each column's place (int32 [B, N]) when its row is sorted ascending by the keys, the
  first key first, ties broken by the next key and at last by column (a stable sort).

  `stable_ranks(x)` is `inverse_permutation(jnp.argsort(x, stable=True))`.
  """
  B, N = keys_BxN[0].shape
  if N > _COMPARE_MAX_N:
    order_BxN = jnp.lexsort(keys_BxN[::-1], axis=-1)  # lexsort's primary key is its last
    return inverse_permutation(order_BxN.astype(jnp.int32))
  col_N = jnp.arange(N)
  # before[b, i, j]: column j sorts before column i.
  before_BxNxN = jnp.broadcast_to(col_N[None, :] < col_N[:, None], (B, N, N))
  for key_BxN in keys_BxN[::-1]:  # from the last tie-break to the first key
    mine, other = key_BxN[:, :, None], key_BxN[:, None, :]
    before_BxNxN = (other < mine) | ((other == mine) & before_BxNxN)
  return jnp.sum(before_BxNxN, axis=-1, dtype=jnp.int32)


def inverse_permutation(order_BxN: jax.Array) -> jax.Array:
  """rank with rank[b, order[b, i]] = i: each column's place in its row's order."""
  rows_Bx1 = jnp.arange(order_BxN.shape[0])[:, None]
  places_BxN = jnp.broadcast_to(jnp.arange(order_BxN.shape[1]), order_BxN.shape)
  return jnp.zeros_like(order_BxN).at[rows_Bx1, order_BxN].set(places_BxN)
