"""Registry entries and shared helpers of the advantage estimators.

Shape letters: B problems, N rollouts a problem, G groups (Pass@k sampling).
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
  receives float32 rewards, a bool mask, the rows' `Counts`, and every
  parameter (defaults filled in, already checked by `check`). `domain` is 'binary' (rewards in {0, 1}) or
  'real' (any finite reward).
  """
  name: str
  fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  defaults: dict[str, Any]
  domain: str
  check: Callable[[dict[str, Any], int], None] | None = None
  needs_key: bool = False
  needs_entropy: bool = False


REGISTRY: dict[str, Estimator] = {}


def register(name: str, *, defaults: dict[str, Any], domain: str,
             check: Callable[[dict[str, Any], int], None] | None = None,
             needs_key: bool = False, needs_entropy: bool = False):
  """Decorator adding an estimator function to the registry under `name`."""
  if domain not in ("binary", "real"):
    raise ValueError(f"unknown reward domain {domain!r}")

  def wrap(fn):
    if name in REGISTRY:
      raise ValueError(f"advantage estimator {name!r} registered twice")
    REGISTRY[name] = Estimator(name, fn, dict(defaults), domain, check, needs_key,
                               needs_entropy)
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
  num_pos_B: jax.Array    # valid rewards > 0
  num_valid_B: jax.Array  # valid rollouts
  num_bad_B: jax.Array    # valid entries flagged by `bad_BxN` (0 without one)


def row_counts(rewards_BxN: jax.Array, valid_BxN: jax.Array,
               bad_BxN: jax.Array | None = None) -> Counts:
  """Each row's number of valid, positive and bad entries, in one pass.

  One variadic integer reduction: XLA's CPU backend runs it as one vectorized
  loop, where each separate `jnp.sum` costs a pass (and a materialized mask).
  """
  masks = [valid_BxN & (rewards_BxN > 0), valid_BxN]
  if bad_BxN is not None:
    masks.append(valid_BxN & bad_BxN)
  sums_B = jax.lax.reduce(tuple(m.astype(jnp.int32) for m in masks), (0,) * len(masks),
                          lambda a, b: tuple(x + y for x, y in zip(a, b)), (1,))
  num_pos_B, num_valid_B, *bad = (x.astype(jnp.float32) for x in sums_B)
  return Counts(num_pos_B, num_valid_B, bad[0] if bad else jnp.zeros_like(num_pos_B))


def counts(rewards_BxN: jax.Array, valid_BxN: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(num_pos_B, num_valid_B) as float32; positive means reward > 0."""
  num_pos_B, num_valid_B, _ = row_counts(rewards_BxN, valid_BxN)
  return num_pos_B, num_valid_B


def masked_mean(x_BxN: jax.Array, valid_BxN: jax.Array,
                n_B: jax.Array | None = None) -> jax.Array:
  """Mean of each row's valid entries (0 for none); `n_B` saves recounting them."""
  if n_B is None:
    n_B = jnp.sum(valid_BxN, axis=-1)
  total_B = jnp.sum(jnp.where(valid_BxN, x_BxN, 0.0), axis=-1)
  return total_B / jnp.maximum(n_B, 1)


# Rewards closer than float32's smallest normal number count as equal. Their
# difference would be subnormal, which CPUs and GPUs flush to 0 (or not) by
# platform; this threshold gives the same answer everywhere.
EQUAL_SPREAD = float(np.finfo(np.float32).tiny)


def row_sum_range(x_BxN: jax.Array, valid_BxN: jax.Array):
  """(sum_B, hi_B, lo_B): each row's valid sum, max and min (-inf / inf for none).

  One three-output reduction, so XLA emits one fused pass instead of three
  reductions over three materialized [B, N] selects.
  """
  def add_max_min(a, b):
    return a[0] + b[0], jnp.maximum(a[1], b[1]), jnp.minimum(a[2], b[2])
  return jax.lax.reduce(
      (jnp.where(valid_BxN, x_BxN, 0.0), jnp.where(valid_BxN, x_BxN, -jnp.inf),
       jnp.where(valid_BxN, x_BxN, jnp.inf)), (0.0, -jnp.inf, jnp.inf), add_max_min, (1,))


def _spread(x_BxN: jax.Array, valid_BxN: jax.Array):
  """(hi_B, lo_B, live_B): each row's valid max and min, and max - min >= EQUAL_SPREAD."""
  _, hi_B, lo_B = row_sum_range(x_BxN, valid_BxN)
  return hi_B, lo_B, (hi_B - lo_B) >= EQUAL_SPREAD


def is_constant(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """True for problems whose valid values are all equal (or that have none).

  Compared by range (max - min < EQUAL_SPREAD), not std == 0: float32 means of
  equal non-dyadic rewards (0.1, 0.1, 0.1) leave ~1e-9 deviations, and dividing
  those by their own tiny std would invent +-1 advantages.
  """
  return ~_spread(x_BxN, valid_BxN)[2]


def standardize(x_BxN: jax.Array, valid_BxN: jax.Array, ddof: int = 0,
                n_B: jax.Array | None = None) -> jax.Array:
  """(x - mean) / std over each row's valid entries; 0 where the row is constant.

  Rows with fewer than ddof + 1 valid entries also get 0; invalid entries get 0.
  A row whose range overflows float32 (|x| ~1e38) gives NaN, loudly; a row
  whose range is below EQUAL_SPREAD counts as constant.
  """
  if n_B is None:  # callers holding `Counts` pass num_valid_B
    n_B = jnp.sum(valid_BxN, axis=-1).astype(jnp.float32)
  dof_B = n_B - ddof
  # The result is shift- and scale-free, so map each row to [0, 1] first, by its
  # min and range: x - min is exact for nearby values (1 vs 1 + 1e-7 would lose
  # their deviation in a float32 mean), and tiny rewards (hypothesis found
  # 1.2e-38) would give subnormal means that the CPU flushes to 0.
  hi_B, lo_B, live_B = _spread(x_BxN, valid_BxN)
  live_B &= dof_B > 0
  range_B = jnp.where(live_B, hi_B - lo_B, 1.0)
  lo_B = jnp.where(live_B, lo_B, 0.0)
  unit_BxN = jnp.where(valid_BxN, (x_BxN - lo_B[:, None]) / range_B[:, None], 0.0)
  # One value at 0, one at 1: deviations from the mean are >= ~1/(2n), no underflow.
  dev_BxN = jnp.where(valid_BxN, unit_BxN - masked_mean(unit_BxN, valid_BxN, n_B)[:, None], 0.0)
  var_B = jnp.sum(dev_BxN * dev_BxN, axis=-1) / jnp.where(live_B, dof_B, 1.0)
  std_B = jnp.sqrt(jnp.where(live_B, var_B, 1.0))
  return jnp.where(live_B[:, None] & valid_BxN, dev_BxN / std_B[:, None], 0.0)


# Up to this many rollouts a problem, ranks come from an [B, N, N] comparison
# (a few vector ops); XLA's CPU sort is ~100x slower at N = 32. Above it the
# quadratic memory costs more than a sort.
PAIRWISE_MAX_N = 64


def pairwise_ranks(keys_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """Rank of each valid entry among its row's valid entries, ascending by key.

  Ties are broken by column index, so ranks are 0..n-1 exactly. Invalid entries
  get ranks n..N-1 (in column order). int32 [B, N].
  """
  N = keys_BxN.shape[1]
  col_N = jnp.arange(N)
  earlier_NxN = col_N[None, :] < col_N[:, None]           # [i, j]: j before i
  k_i, k_j = keys_BxN[:, :, None], keys_BxN[:, None, :]
  below_BxNxN = (k_j < k_i) | ((k_j == k_i) & earlier_NxN)
  v_i, v_j = valid_BxN[:, :, None], valid_BxN[:, None, :]
  before_BxNxN = jnp.where(v_i, v_j & below_BxNxN, v_j | earlier_NxN)
  return jnp.sum(before_BxNxN, axis=-1, dtype=jnp.int32)


def unpermute(x_perm_BxN: jax.Array, perm_BxN: jax.Array) -> jax.Array:
  """y with y[b, perm[b, i]] = x_perm[b, i]: undoes a per-row gather by perm.

  A scatter, not argsort(perm): XLA's CPU sort costs ~100 ms at [4096, 256].
  """
  rows_Bx1 = jnp.arange(perm_BxN.shape[0])[:, None]
  return jnp.zeros_like(x_perm_BxN).at[rows_Bx1, perm_BxN].set(x_perm_BxN)
