"""Registry entries and shared helpers of the advantage estimators.

Shape letters: B problems, N rollouts a problem, G groups (Pass@k sampling).
"""

import dataclasses
import functools
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
  num_pos_B: jax.Array    # valid finite rewards > 0
  num_valid_B: jax.Array  # valid rollouts
  num_bad_B: jax.Array    # valid entries flagged by `bad_BxN` (0 without one)


def row_counts(rewards_BxN: jax.Array, valid_BxN: jax.Array,
               bad_BxN: jax.Array | None = None) -> Counts:
  """Each row's number of valid, positive and bad entries, in one pass.

  One variadic integer reduction: XLA's CPU backend runs it as one vectorized
  loop, where each separate `jnp.sum` costs a pass (and a materialized mask).
  """
  # Finite and > 0, so raw rewards (with NaN / inf) count as their cleaned copy
  # would: reading the raw array keeps XLA from materializing a cleaned one.
  masks = [valid_BxN & (rewards_BxN > 0) & jnp.isfinite(rewards_BxN), valid_BxN]
  if bad_BxN is not None:
    masks.append(valid_BxN & bad_BxN)
  sums_B = jax.lax.reduce(tuple(m.astype(jnp.int32) for m in masks), (0,) * len(masks),
                          lambda a, b: tuple(x + y for x, y in zip(a, b)), (1,))
  num_pos_B, num_valid_B, *bad = (x.astype(jnp.float32) for x in sums_B)
  return Counts(num_pos_B, num_valid_B, bad[0] if bad else jnp.zeros_like(num_pos_B))


def row_sum(x_BxN: jax.Array, valid_BxN: jax.Array | None = None) -> jax.Array:
  """Sum of each row's valid entries (all entries without a mask), [B] float32.

  A matrix-vector product with ones: XLA's CPU backend runs a float reduction
  along a short minor axis as a scalar loop (it may not reorder float adds),
  while the product goes to a vectorized kernel, ~5x faster at [4096, 32].
  HIGHEST precision, so TPUs and GPUs keep every float32 bit (their default
  float32 products round inputs to bfloat16 / TF32).
  """
  ones_N = jnp.ones((x_BxN.shape[-1],), jnp.float32)
  if valid_BxN is not None:
    x_BxN = jnp.where(valid_BxN, x_BxN, 0.0)
  return jnp.dot(x_BxN, ones_N, precision=jax.lax.Precision.HIGHEST)


def masked_mean(x_BxN: jax.Array, valid_BxN: jax.Array,
                n_B: jax.Array | None = None) -> jax.Array:
  """Mean of each row's valid entries (0 for none); `n_B` saves recounting them."""
  if n_B is None:
    n_B = jnp.sum(valid_BxN, axis=-1)
  return row_sum(x_BxN, valid_BxN) / jnp.maximum(n_B, 1)


_SIGN_FREE_BITS = 0x7FFFFFFF


def order_key(x: jax.Array) -> jax.Array:
  """int32 keys that order as the float32 values do (-0.0 just below 0.0; no NaN).

  Non-negative floats order as their bit patterns; negative ones in reverse,
  which flipping all but the sign bit undoes. Integer max / min / compare
  vectorize on XLA's CPU backend where float reductions do not.
  """
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
  return jnp.where(bits < 0, bits ^ _SIGN_FREE_BITS, bits)


def from_order_key(key: jax.Array) -> jax.Array:
  """The float32 values of `order_key` keys (the map is its own inverse)."""
  bits = jnp.where(key < 0, key ^ _SIGN_FREE_BITS, key)
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _np_order_key(value: float) -> np.int32:
  bits = np.float32(value).view(np.int32)
  return bits ^ np.int32(_SIGN_FREE_BITS) if bits < 0 else bits


_KEY_NEG_INF, _KEY_POS_INF = _np_order_key(-np.inf), _np_order_key(np.inf)


# Rewards closer than float32's smallest normal number count as equal. Their
# difference would be subnormal, which CPUs and GPUs flush to 0 (or not) by
# platform; this threshold gives the same answer everywhere.
EQUAL_SPREAD = float(np.finfo(np.float32).tiny)


class RowStats(NamedTuple):
  """Each row's valid sum, max and min (-inf / inf for none), and whether it varies."""
  sum_B: jax.Array
  hi_B: jax.Array
  lo_B: jax.Array
  live_B: jax.Array  # max - min >= EQUAL_SPREAD: the one definition of "not all equal"


def row_stats(x_BxN: jax.Array, valid_BxN: jax.Array) -> RowStats:
  """Sum, max and min of each row's valid entries.

  Max and min come from one integer reduction over `order_key`s (vectorized
  on XLA CPU, unlike a float one), the sum from `row_sum`.
  """
  key_BxN = order_key(x_BxN)
  hi_key_B, lo_key_B = jax.lax.reduce(
      (jnp.where(valid_BxN, key_BxN, _KEY_NEG_INF), jnp.where(valid_BxN, key_BxN, _KEY_POS_INF)),
      (_KEY_NEG_INF, _KEY_POS_INF),
      lambda a, b: (jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])), (1,))
  hi_B, lo_B = from_order_key(hi_key_B), from_order_key(lo_key_B)
  return RowStats(row_sum(x_BxN, valid_BxN), hi_B, lo_B, (hi_B - lo_B) >= EQUAL_SPREAD)


def first_in_order(x_B: jax.Array, count: jax.Array) -> jax.Array:
  """Marks the first `count` entries of a stable ascending sort of x_B, bool [B].

  Sort-free (XLA's CPU argsort of 4096 floats takes ~0.9 ms): bisection over
  the 2^32 order keys finds the smallest key t with at least `count` entries
  <= t, in 32 counting passes; entries below t are in, and of those equal to
  t the ones with the lowest indices fill the remaining places. Values compare
  as the platform's float compare does (XLA's CPU reads subnormals as 0, and so
  does its argsort).
  """
  # -0.0 and 0.0 tie, as in a sort. Unsigned keys: the bisection's midpoint never overflows.
  x_B = jnp.where(x_B == 0, 0.0, x_B)
  key_B = jax.lax.bitcast_convert_type(order_key(x_B), jnp.uint32) ^ jnp.uint32(0x80000000)
  count = jnp.asarray(count, jnp.int32)

  def halve(_, bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) // 2
    enough = jnp.sum(key_B <= mid, dtype=jnp.int32) >= count
    return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

  t, _ = jax.lax.fori_loop(0, 32, halve, (jnp.uint32(0), jnp.uint32(0xFFFFFFFF)))
  below_B = key_B < t
  tied_B = key_B == t
  places = count - jnp.sum(below_B, dtype=jnp.int32)
  return below_B | (tied_B & (jnp.cumsum(tied_B, dtype=jnp.int32) <= places))


def is_constant(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """True for problems whose valid values are all equal (or that have none).

  Compared by range (max - min < EQUAL_SPREAD), not std == 0: float32 means of
  equal non-dyadic rewards (0.1, 0.1, 0.1) leave ~1e-9 deviations, and dividing
  those by their own tiny std would invent +-1 advantages.
  """
  return ~row_stats(x_BxN, valid_BxN).live_B


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
  _, hi_B, lo_B, live_B = row_stats(x_BxN, valid_BxN)
  live_B &= dof_B > 0
  range_B = jnp.where(live_B, hi_B - lo_B, 1.0)
  lo_B = jnp.where(live_B, lo_B, 0.0)
  unit_BxN = jnp.where(valid_BxN, (x_BxN - lo_B[:, None]) / range_B[:, None], 0.0)
  # One value at 0, one at 1: deviations from the mean are >= ~1/(2n), no underflow.
  # unit and dev are already 0 at invalid entries: their plain row sums are the valid sums.
  mean_B = row_sum(unit_BxN) / jnp.maximum(n_B, 1.0)
  dev_BxN = jnp.where(valid_BxN, unit_BxN - mean_B[:, None], 0.0)
  var_B = row_sum(dev_BxN * dev_BxN) / jnp.where(live_B, dof_B, 1.0)
  std_B = jnp.sqrt(jnp.where(live_B, var_B, 1.0))
  return jnp.where(live_B[:, None] & valid_BxN, dev_BxN / std_B[:, None], 0.0)


@functools.lru_cache(maxsize=32)
def binary_baseline_table(base: str, N: int, ddof: int = 0) -> np.ndarray:
  """[2, N + 1, N + 1] float32: A_pos, A_neg of a Pass@1 baseline at [:, n_valid, n_pos].

  For binary rewards (c correct among n, p = c / n) grpo, dr_grpo and rloo have
  closed forms in (n, c) alone, tabulated in float64 (0 where all rewards are
  equal, or n <= ddof, or n = 1 for rloo):

      grpo      A_pos = (1 - p) / std,   A_neg = -p / std,   std^2 = n p (1 - p) / (n - ddof)
      dr_grpo   A_pos = 1 - p,           A_neg = -p
      rloo      A_pos = (n - c) / (n - 1), A_neg = -c / (n - 1)
  """
  n_Nx1 = np.arange(N + 1, dtype=np.float64)[:, None]
  c_1xN = np.arange(N + 1, dtype=np.float64)[None, :]
  live_NxN = (c_1xN > 0) & (c_1xN < n_Nx1)
  with np.errstate(divide="ignore", invalid="ignore"):
    p_NxN = c_1xN / n_Nx1
    if base == "grpo":
      live_NxN &= n_Nx1 > ddof
      std_NxN = np.sqrt(n_Nx1 * p_NxN * (1.0 - p_NxN) / (n_Nx1 - ddof))
      a_pos_NxN, a_neg_NxN = (1.0 - p_NxN) / std_NxN, -p_NxN / std_NxN
    elif base == "dr_grpo":
      a_pos_NxN, a_neg_NxN = 1.0 - p_NxN, -p_NxN
    elif base == "rloo":
      a_pos_NxN, a_neg_NxN = (n_Nx1 - c_1xN) / (n_Nx1 - 1.0), -c_1xN / (n_Nx1 - 1.0)
    else:
      raise ValueError(f"unknown Pass@1 baseline {base!r}")
  table = np.where(live_NxN, np.stack([a_pos_NxN, a_neg_NxN]), 0.0)
  return table.astype(np.float32)


def lookup(table_NxN: np.ndarray, counts: Counts) -> jax.Array:
  """table[n_valid, n_pos] for each problem, [B]."""
  return jnp.asarray(table_NxN)[counts.num_valid_B.astype(jnp.int32),
                                counts.num_pos_B.astype(jnp.int32)]


def binary_baseline(base: str, counts: Counts, N: int, ddof: int = 0
                    ) -> tuple[jax.Array, jax.Array]:
  """Per-problem (A_pos, A_neg) of a Pass@1 baseline for binary rewards, from its table."""
  a_pos_B, a_neg_B = (lookup(t_NxN, counts) for t_NxN in binary_baseline_table(base, N, ddof))
  return a_pos_B, a_neg_B


def binary_blend(rewards_BxN: jax.Array, valid_BxN: jax.Array, a_pos_B: jax.Array,
                 a_neg_B: jax.Array) -> jax.Array:
  """A_pos at valid rewards 1, A_neg at valid rewards 0, 0 at invalid entries.

  Rewards are 0 or 1 (binary estimators; problems with other valid rewards end
  up NaN), so r and 1 - r blend the two exactly. XLA CPU vectorizes this; a
  per-element select between the two row values ran ~5x slower (measured).
  """
  valid_f_BxN = valid_BxN.astype(jnp.float32)
  return valid_f_BxN * (rewards_BxN * a_pos_B[:, None] + (1.0 - rewards_BxN) * a_neg_B[:, None])


# Up to this many rollouts a problem, ranks come from an [B, N, N] comparison
# (a few vector ops); XLA's CPU sort is ~100x slower at N = 32. Above it the
# quadratic memory costs more than a sort.
PAIRWISE_MAX_N = 64


def unpermute(x_perm_BxN: jax.Array, perm_BxN: jax.Array) -> jax.Array:
  """y with y[b, perm[b, i]] = x_perm[b, i]: undoes a per-row gather by perm.

  A scatter, not argsort(perm): XLA's CPU sort costs ~100 ms at [4096, 256].
  """
  rows_Bx1 = jnp.arange(perm_BxN.shape[0])[:, None]
  return jnp.zeros_like(x_perm_BxN).at[rows_Bx1, perm_BxN].set(x_perm_BxN)
