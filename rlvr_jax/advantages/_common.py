"""Registry entries and shared helpers of the advantage estimators.

Shape letters: B problems, N rollouts a problem, G groups (Pass@k sampling).
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Estimator:
  """One registry entry.

  `fn(rewards_BxN, valid_BxN, *, key, entropy_BxN, **params) -> (adv_BxN, info)`
  receives float32 rewards, a bool mask, and every parameter (defaults filled
  in, already checked by `check`). `domain` is 'binary' (rewards in {0, 1}) or
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


def counts(rewards_BxN: jax.Array, valid_BxN: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(num_pos_B, num_valid_B) as float32; positive means reward > 0."""
  num_pos_B = jnp.sum(valid_BxN & (rewards_BxN > 0), axis=-1).astype(jnp.float32)
  num_valid_B = jnp.sum(valid_BxN, axis=-1).astype(jnp.float32)
  return num_pos_B, num_valid_B


def masked_mean(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  n_B = jnp.sum(valid_BxN, axis=-1)
  total_B = jnp.sum(jnp.where(valid_BxN, x_BxN, 0.0), axis=-1)
  return total_B / jnp.maximum(n_B, 1)


def is_constant(x_BxN: jax.Array, valid_BxN: jax.Array) -> jax.Array:
  """True for problems whose valid values are all equal (or that have none).

  Compared exactly with max == min, not std == 0: float32 means of equal
  non-dyadic rewards (0.1, 0.1, 0.1) leave ~1e-9 deviations, and dividing those
  by their own tiny std would invent +-1 advantages.
  """
  hi_B = jnp.max(jnp.where(valid_BxN, x_BxN, -jnp.inf), axis=-1)
  lo_B = jnp.min(jnp.where(valid_BxN, x_BxN, jnp.inf), axis=-1)
  return ~(hi_B > lo_B)


def standardize(x_BxN: jax.Array, valid_BxN: jax.Array, ddof: int = 0) -> jax.Array:
  """(x - mean) / std over each row's valid entries; 0 where the row is constant.

  Rows with fewer than ddof + 1 valid entries also get 0; invalid entries get 0.
  """
  n_B = jnp.sum(valid_BxN, axis=-1).astype(jnp.float32)
  mean_B = masked_mean(x_BxN, valid_BxN)
  dev_BxN = jnp.where(valid_BxN, x_BxN - mean_B[:, None], 0.0)
  dof_B = n_B - ddof
  live_B = ~is_constant(x_BxN, valid_BxN) & (dof_B > 0)
  var_B = jnp.sum(dev_BxN * dev_BxN, axis=-1) / jnp.where(live_B, dof_B, 1.0)
  std_B = jnp.sqrt(jnp.where(live_B, var_B, 1.0))
  return jnp.where(live_B[:, None] & valid_BxN, dev_BxN / std_B[:, None], 0.0)
