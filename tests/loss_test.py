"""Hand-derived values of the clip-higher token-level PG loss (rlvr_jax/rl/loss.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax.rl import loss as loss_lib


def _one_token(ratio: float, adv: float, **kw):
  logp = jnp.array([[math.log(ratio)]], jnp.float32)
  old = jnp.zeros((1, 1), jnp.float32)
  f = lambda lp: loss_lib.policy_loss(lp, old, jnp.array([adv]), jnp.ones((1, 1)), **kw)
  (value, metrics), grad = jax.value_and_grad(f, has_aux=True)(logp)
  return float(value), metrics, float(grad[0, 0])


def test_positive_advantage_ratio_1_5_clipped_at_1_28():
  # min(1.5 * 1, clip(1.5, 0.8, 1.28) * 1) = 1.28; loss = -1.28, clipped so no gradient.
  value, m, g = _one_token(1.5, 1.0)
  np.testing.assert_allclose(value, -1.28, rtol=1e-6)
  assert g == 0.0
  assert float(m["clip_frac_high"]) == 1.0 and float(m["clip_frac_low"]) == 0.0


def test_negative_advantage_ratio_0_5_clipped_at_0_8():
  # A = -1: min(0.5 * -1, 0.8 * -1) = -0.8; loss = +0.8, clipped so no gradient.
  value, m, g = _one_token(0.5, -1.0)
  np.testing.assert_allclose(value, 0.8, rtol=1e-6)
  assert g == 0.0
  assert float(m["clip_frac_low"]) == 1.0 and float(m["clip_frac_high"]) == 0.0


def test_unclipped_sides_keep_gradient():
  # A = -1, ratio 1.5: min(-1.5, -1.28) = -1.5; loss 1.5, d loss / d logp = -A * ratio = 1.5.
  value, m, g = _one_token(1.5, -1.0)
  np.testing.assert_allclose([value, g], [1.5, 1.5], rtol=1e-6)
  assert float(m["clip_frac_low"]) == 0.0 and float(m["clip_frac_high"]) == 0.0
  # A = +2, ratio 0.5: min(1.0, 1.6) = 1.0; loss -1, gradient -A * ratio = -1.
  value, _, g = _one_token(0.5, 2.0)
  np.testing.assert_allclose([value, g], [-1.0, -1.0], rtol=1e-6)


def test_dual_clip_caps_negative_advantage_at_c():
  # A = -1, ratio 5: clipped PPO loss max(5, 1.28) = 5; dual clip caps it at -A * 3 = 3, no gradient.
  value, m, g = _one_token(5.0, -1.0, dual_clip=3.0)
  np.testing.assert_allclose(value, 3.0, rtol=1e-6)
  assert g == 0.0 and float(m["dual_clip_frac"]) == 1.0
  value, m, _ = _one_token(5.0, -1.0)
  np.testing.assert_allclose(value, 5.0, rtol=1e-6)
  # Positive advantages are untouched by the dual clip: still 1.28 for ratio 1.5.
  value, _, _ = _one_token(1.5, 1.0, dual_clip=3.0)
  np.testing.assert_allclose(value, -1.28, rtol=1e-6)
  with pytest.raises(ValueError, match="dual_clip"):
    _one_token(1.0, 1.0, dual_clip=1.0)


def _two_rows():
  # ratio 1 everywhere, so each token's loss is -A: row 0 (A=1) has 2 tokens -> -1, -1;
  # row 1 (A=-4) has 1 token -> +4.
  logp = jnp.zeros((2, 3))
  adv = jnp.array([1.0, -4.0])
  mask = jnp.array([[1, 1, 0], [1, 0, 0]], jnp.float32)
  return logp, adv, mask


@pytest.mark.parametrize("agg,expected", [
    ("token-mean", (-1 - 1 + 4) / 3),            # all tokens pooled
    ("seq-mean-token-mean", ((-1 - 1) / 2 + 4) / 2),  # row means, then mean over rows
    ("seq-mean-token-sum", ((-1 - 1) + 4) / 2),   # row sums, then mean over rows
])
def test_aggregation_modes(agg, expected):
  logp, adv, mask = _two_rows()
  value, m = loss_lib.policy_loss(logp, logp, adv, mask, agg=agg)
  np.testing.assert_allclose(float(value), expected, rtol=1e-6)
  assert float(m["approx_kl"]) == 0.0


def test_micro_batch_sums_equal_full_batch_with_shared_denominator():
  key = jax.random.PRNGKey(0)
  k1, k2, k3 = jax.random.split(key, 3)
  logp = -jax.random.uniform(k1, (6, 5))
  old = logp + 0.3 * jax.random.normal(k2, (6, 5))
  adv = jax.random.normal(k3, (6,))
  mask = (jnp.arange(5)[None, :] < jnp.array([5, 3, 1, 4, 2, 5])[:, None]).astype(jnp.float32)
  for agg in loss_lib.AGGREGATIONS:
    full, _ = loss_lib.policy_loss(logp, old, adv, mask, agg=agg)
    denom = loss_lib.loss_denominator(mask, agg)
    parts = [loss_lib.policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2],
                                  agg=agg, denom=denom)[0] for i in (0, 2, 4)]
    np.testing.assert_allclose(float(sum(parts)), float(full), rtol=1e-5)


def test_kl_and_entropy_terms():
  # One token, ratio 1 (A=0 so the PG term is 0). Reference log-prob lower by d=-0.5 -> k3 KL
  # = exp(-0.5) + 0.5 - 1; entropy 2.0 with coef 0.1 subtracts 0.2.
  logp = jnp.zeros((1, 1))
  ref = jnp.full((1, 1), -0.5)
  value, m = loss_lib.policy_loss(logp, logp, jnp.zeros(1), jnp.ones((1, 1)), ref_logp_RxT=ref,
                                  kl_coef=0.5, entropy_RxT=jnp.full((1, 1), 2.0), entropy_coef=0.1)
  kl = math.exp(-0.5) + 0.5 - 1
  np.testing.assert_allclose(float(value), 0.5 * kl - 0.2, rtol=1e-6)
  np.testing.assert_allclose(float(m["ref_kl"]), kl, rtol=1e-6)
  np.testing.assert_allclose(float(m["entropy"]), 2.0)


def test_bad_input_is_a_clear_error():
  x = jnp.zeros((1, 1))
  with pytest.raises(ValueError, match="aggregation"):
    loss_lib.policy_loss(x, x, jnp.zeros(1), x + 1, agg="mean")
  with pytest.raises(ValueError, match="ref_logp"):
    loss_lib.policy_loss(x, x, jnp.zeros(1), x + 1, kl_coef=0.1)
