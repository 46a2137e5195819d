"""Advantage estimators for RLVR, chosen by name from one registry.

Shape letters: B problems (prompts), N rollouts a problem.

    adv_BxN, info = advantages.compute(name, rewards_BxN, valid_BxN=None, **params)
    fn = advantages.from_config(config.advantage)   # ConfigDict(name=..., **params)
    adv_BxN, info = fn(rewards_BxN, valid_BxN, key=None, entropy_BxN=None)

Every estimator is batched, masked (invalid rollouts get 0 and never
influence valid ones), free of Python loops over B and N, and jit-able with its
parameters static (`jax.jit(functools.partial(compute, 'grpo', ddof=1))`).
`info` holds per-problem arrays: `num_pos` (valid rewards > 0), `num_valid`,
`mean_reward`, `easy` (zeroed by easy_threshold), `high_masked` (zeroed by
mask_high_success), estimator-specific entries (`weight` and `gated` for bbg),
and one per-rollout entry, `loss_mask_BxN`: the rollouts that belong in the
loss (valid, not a passk_full left-over, not in a bbg-gated, easy-masked or
high-masked problem).

Two modifiers are accepted by every estimator (`COMMON_DEFAULTS`):

- `easy_threshold` (default None: off): problems whose mean valid reward
  (accuracy, for binary rewards) is strictly above it get 0 advantage and
  leave the loss ("w/o easy problems" of the Pass@k paper; it gives no value,
  0.6 is the usual choice).
- `mask_high_success` (default False) with `high_success_min` (default 0.75):
  problems whose success rate `num_pos / num_valid` is at least
  `high_success_min` get 0 advantage and leave the loss: the BBG paper's
  "masking high-success buckets (>= 6/8)", inclusive as the paper states it.

The BBG paper's other simple intervention, updates restricted to zero-success
problems, is `bbg`'s `zero_success_only` (see advantages/bbg.py).

Bad input raises ValueError. Reward values can only be checked on concrete
arrays; under jit a problem whose valid rewards are non-finite or, for binary
estimators, not in {0, 1}, gets NaN advantages so the error cannot pass silently.
"""

import functools
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlvr_jax.advantages import _common
from rlvr_jax.advantages import baselines  # noqa: F401  (registers estimators)
from rlvr_jax.advantages import bbg  # noqa: F401
from rlvr_jax.advantages import passk  # noqa: F401
from rlvr_jax.advantages import passk_sampling  # noqa: F401
from rlvr_jax.advantages import pkpo  # noqa: F401
from rlvr_jax.advantages._common import REGISTRY

# The modifiers every estimator takes, with their defaults (module docstring).
COMMON_DEFAULTS = {"easy_threshold": None, "mask_high_success": False, "high_success_min": 0.75}
_COMMON_PARAMS = tuple(COMMON_DEFAULTS)


def names() -> list[str]:
  """The registered estimator names (the only valid ones)."""
  return sorted(REGISTRY)


def defaults(name: str) -> dict[str, Any]:
  """The parameters estimator `name` takes, with their default values."""
  return dict(_estimator(name).defaults)


def _estimator(name: str) -> _common.Estimator:
  if name not in REGISTRY:
    raise ValueError(f"unknown advantage estimator {name!r}; known: {', '.join(names())}")
  return REGISTRY[name]


def _renamed(est: _common.Estimator, params: Mapping[str, Any]) -> dict[str, Any]:
  """`params` with deprecated parameter names replaced by their new ones (with a warning)."""
  params = dict(params)
  for old, new in est.renamed.items():
    if old in params:
      if new in params:
        raise ValueError(f"{est.name}: got both {old!r} (deprecated) and {new!r}")
      warnings.warn(f"{est.name}: parameter {old!r} is renamed {new!r}; {old!r} will be "
                    "removed in the next release", DeprecationWarning, stacklevel=3)
      params[new] = params.pop(old)
  return params


def _params(est: _common.Estimator, params: Mapping[str, Any], N: int) -> dict[str, Any]:
  unknown = set(params) - set(est.defaults) - set(_COMMON_PARAMS)
  if unknown:
    known = ", ".join(sorted(set(est.defaults) | set(_COMMON_PARAMS)))
    raise ValueError(f"{est.name}: unknown parameter(s) {sorted(unknown)}; known: {known}")
  full = dict(est.defaults, **COMMON_DEFAULTS)
  full.update(params)
  if est.check is not None:
    try:
      est.check(full, N)
    except ValueError as e:
      raise ValueError(f"{est.name}: {e}") from e
  if full["easy_threshold"] is not None:
    _common.check_float(full, "easy_threshold", lo=0.0, hi=1.0)
  if not isinstance(full["mask_high_success"], bool):
    raise ValueError(f"{est.name}: mask_high_success must be a bool, got "
                     f"{full['mask_high_success']!r}")
  try:
    _common.check_float(full, "high_success_min", lo=0.0, hi=1.0, lo_open=True)
  except ValueError as e:
    raise ValueError(f"{est.name}: {e}") from e
  return full


def _bad_entries(est, rewards_BxN):
  """Entries outside the estimator's reward domain (np or jnp, by input type)."""
  xp = np if _common.is_concrete(rewards_BxN) else jnp
  bad_BxN = ~xp.isfinite(rewards_BxN)
  if est.domain == "binary":
    bad_BxN |= (rewards_BxN != 0) & (rewards_BxN != 1)
  return bad_BxN


def compute(name: str, rewards_BxN: Any, valid_BxN: Any = None, **params: Any
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Advantages of estimator `name` for rewards [B, N]; see the module docstring.

  `key` (PRNG key) is required by passk_full / passk_bootstrap and
  `entropy_BxN` (mean token entropy of each response) by adaptive_entropy;
  estimators that do not need them ignore them.
  """
  est = _estimator(name)
  key = params.pop("key", None)
  entropy_BxN = params.pop("entropy_BxN", None)
  # Concrete inputs are handled in NumPy: no op-by-op dispatch before the jitted core.
  xp = np if _common.is_concrete(rewards_BxN, valid_BxN, entropy_BxN) else jnp
  rewards_BxN = xp.asarray(rewards_BxN)
  if rewards_BxN.ndim != 2 or 0 in rewards_BxN.shape:
    raise ValueError(f"{name}: rewards_BxN must be a non-empty [B, N] array, got shape "
                     f"{rewards_BxN.shape}")
  if not (np.issubdtype(rewards_BxN.dtype, np.number) or rewards_BxN.dtype == bool):
    raise ValueError(f"{name}: rewards_BxN must be numeric, got {rewards_BxN.dtype}")
  rewards_BxN = rewards_BxN.astype(np.float32)
  B, N = rewards_BxN.shape
  full = _params(est, _renamed(est, params), N)
  if valid_BxN is None:
    valid_BxN = xp.ones((B, N), bool)
  valid_BxN = xp.asarray(valid_BxN)
  if valid_BxN.shape != (B, N):
    raise ValueError(f"{name}: valid_BxN shape {valid_BxN.shape} != rewards shape {(B, N)}")
  valid_BxN = valid_BxN.astype(bool)
  if est.needs_key and key is None:
    raise ValueError(f"{name} samples groups at random and needs key=<PRNG key>")
  if est.needs_entropy:
    if entropy_BxN is None:
      raise ValueError(f"{name} needs entropy_BxN (mean token entropy of each response)")
    entropy_BxN = xp.asarray(entropy_BxN).astype(np.float32)
    if entropy_BxN.shape != (B, N):
      raise ValueError(f"{name}: entropy_BxN shape {entropy_BxN.shape} != {(B, N)}")
    if _common.is_concrete(entropy_BxN) and not np.all(
        np.isfinite(np.asarray(entropy_BxN))[np.asarray(valid_BxN)]):
      raise ValueError(f"{name}: entropy_BxN has non-finite values at valid rollouts")
  if _common.is_concrete(rewards_BxN, valid_BxN):
    bad_B = np.any(_bad_entries(est, np.asarray(rewards_BxN)) & np.asarray(valid_BxN), axis=-1)
    if bad_B.any():
      rows = np.flatnonzero(bad_B)[:5].tolist()
      domain = "in {0, 1}" if est.domain == "binary" else "finite"
      raise ValueError(f"{name}: valid rewards must be {domain}; problems {rows} are not")
  frozen = tuple(sorted(full.items()))
  return _run(name, frozen, rewards_BxN, valid_BxN, key, entropy_BxN)


@functools.partial(jax.jit, static_argnames=("name", "frozen"))
def _run(name, frozen, rewards_BxN, valid_BxN, key, entropy_BxN):
  """The estimator and the common post-processing, compiled once per shape and params."""
  est = REGISTRY[name]
  full = dict(frozen)
  B, _ = rewards_BxN.shape
  # The estimator never sees a non-finite value; flagged problems become NaN below.
  clean_BxN = jnp.where(jnp.isfinite(rewards_BxN), rewards_BxN, 0.0)
  # Counted once and handed to the estimator.
  counts = _common.row_counts(rewards_BxN, valid_BxN, _bad_entries(est, rewards_BxN))
  num_pos_B, num_valid_B, num_bad_B = counts
  easy_threshold = full.pop("easy_threshold")
  mask_high, high_min = full.pop("mask_high_success"), full.pop("high_success_min")
  adv_BxN, info = est.fn(clean_BxN, valid_BxN, key=key, entropy_BxN=entropy_BxN,
                         counts=counts, **full)
  info = dict(info)
  mean_B = _common.masked_mean(clean_BxN, valid_BxN)
  loss_mask_BxN = info.pop("loss_mask_BxN", valid_BxN)
  easy_B = jnp.zeros((B,), bool)
  if easy_threshold is not None:
    easy_B = (num_valid_B > 0) & (mean_B > easy_threshold)
    adv_BxN = jnp.where(easy_B[:, None], 0.0, adv_BxN)
    loss_mask_BxN = loss_mask_BxN & ~easy_B[:, None]
  high_B = jnp.zeros((B,), bool)
  if mask_high:
    # num_pos / num_valid is correctly rounded, so an exact bucket (6/8 = 0.75) compares equal.
    high_B = (num_valid_B > 0) & (num_pos_B / jnp.maximum(num_valid_B, 1.0) >= high_min)
    adv_BxN = jnp.where(high_B[:, None], 0.0, adv_BxN)
    loss_mask_BxN = loss_mask_BxN & ~high_B[:, None]
  adv_BxN = jnp.where((num_bad_B > 0)[:, None], jnp.nan, adv_BxN).astype(jnp.float32)
  info.update(num_pos=num_pos_B, num_valid=num_valid_B, mean_reward=mean_B, easy=easy_B,
              high_masked=high_B, loss_mask_BxN=loss_mask_BxN)
  return adv_BxN, info


def from_config(config: Any) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
  """Turns an `advantage` config block (name + parameters) into a callable.

  Names and parameters are checked now (k against N at call time), so a typo
  in a sweep fails at launch. Returns `fn(rewards_BxN, valid_BxN, key=None,
  entropy_BxN=None) -> (adv_BxN, info)`.
  """
  block = dict(config.to_dict() if hasattr(config, "to_dict") else config)
  if "name" not in block:
    raise ValueError(f"advantage config needs a 'name'; got keys {sorted(block)}")
  name = block.pop("name")
  est = _estimator(name)
  block = _renamed(est, block)
  _params(est, block, sys.maxsize)

  def fn(rewards_BxN, valid_BxN=None, key=None, entropy_BxN=None):
    return compute(name, rewards_BxN, valid_BxN, key=key, entropy_BxN=entropy_BxN, **block)

  fn.__name__ = f"advantage_{name}"
  return fn


def dynamic_sampling_mask(rewards_BxN: Any, valid_BxN: Any = None) -> jax.Array:
  """DAPO dynamic sampling: True for problems whose valid rewards are not all equal.

  Problems where this is False carry no GRPO-family signal; drop and refill them.
  """
  rewards_BxN = jnp.asarray(rewards_BxN, jnp.float32)
  if rewards_BxN.ndim != 2:
    raise ValueError(f"rewards_BxN must be [B, N], got shape {rewards_BxN.shape}")
  valid_BxN = (jnp.ones(rewards_BxN.shape, bool) if valid_BxN is None
               else jnp.asarray(valid_BxN, bool))
  if valid_BxN.shape != rewards_BxN.shape:
    raise ValueError(f"valid_BxN shape {valid_BxN.shape} != rewards shape {rewards_BxN.shape}")
  return _common.varies(rewards_BxN, valid_BxN)


__all__ = ["compute", "names", "defaults", "from_config", "dynamic_sampling_mask",
           "COMMON_DEFAULTS"]
