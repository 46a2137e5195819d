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


def _reference_loss(logp, old, adv, mask, agg, eps_low, eps_high, dual_clip, ref, kl_coef,
                    ent, ent_coef):
  """Float64 loss, d loss / d logp and d loss / d entropy over the unmasked tokens only.

  Written token by token from the module docstring; masked tokens and empty rows are
  never read, so garbage there cannot reach the result. Per token: rho = exp(logp -
  old), pg = max(-A rho, -A clip(rho, 1 - eps_low, 1 + eps_high)), capped at -A c for
  A < 0 under dual clip; d pg / d logp = -A rho where the unclipped branch is the max
  (A > 0 and rho <= 1 + eps_high, or A < 0 and rho >= 1 - eps_low) and the cap is not
  active, else 0. k3 KL to the reference, d = ref - logp: e^d - d - 1, derivative
  1 - e^d. Token weights: 1 / tokens (token-mean), 1 / (len_r rows) (seq-mean-token-mean),
  1 / rows (seq-mean-token-sum), rows counting only rows with a token.
  """
  tokens = [(r, t) for r in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[r, t]]
  len_r = {r: sum(1 for rr, _ in tokens if rr == r) for r, _ in tokens}
  weight = {"token-mean": lambda r: 1 / len(tokens),
            "seq-mean-token-mean": lambda r: 1 / (len_r[r] * len(len_r)),
            "seq-mean-token-sum": lambda r: 1 / len(len_r)}[agg]
  loss, d_logp, d_ent = 0.0, np.zeros(mask.shape), np.zeros(mask.shape)
  for r, t in tokens:
    a, rho = float(adv[r]), math.exp(float(logp[r, t]) - float(old[r, t]))
    pg = max(-a * rho, -a * min(max(rho, 1 - eps_low), 1 + eps_high))
    g = -a * rho if (a > 0 and rho <= 1 + eps_high) or (a < 0 and rho >= 1 - eps_low) else 0.0
    if dual_clip is not None and a < 0 and pg > -a * dual_clip:
      pg, g = -a * dual_clip, 0.0
    d = float(ref[r, t]) - float(logp[r, t])
    w = weight(r)
    loss += w * (pg + kl_coef * (math.exp(d) - d - 1) - ent_coef * float(ent[r, t]))
    d_logp[r, t] = w * (g + kl_coef * (1 - math.exp(d)))
    d_ent[r, t] = -w * ent_coef
  return loss, d_logp, d_ent


@pytest.mark.parametrize("dual_clip", [None, 3.0])
@pytest.mark.parametrize("agg", loss_lib.AGGREGATIONS)
def test_garbage_at_masked_positions_and_empty_rows_changes_nothing(agg, dual_clip):
  # Masked positions hold NaN, +-inf and huge log-probs / entropies (padding, or rows the
  # estimator left out), and rows 2 and 5 are empty with a NaN / inf advantage. Loss,
  # gradients and metrics must be finite and equal those of the batch without the masked
  # positions and empty rows (the float64 reference never reads them), and the gradient
  # must be exactly 0 at masked positions. Ratios are kept away from the clip and cap
  # boundaries (where the derivative jumps) so the reference's branches are unambiguous.
  R, T = 7, 6
  rng = np.random.default_rng(0)
  logp = -rng.uniform(0.1, 3.0, (R, T))
  old = logp + rng.choice([-1.0, 1.0], (R, T)) * rng.uniform(0.02, 1.5, (R, T))
  ref = logp + rng.normal(0.0, 0.5, (R, T))
  ent = rng.uniform(0.0, 2.0, (R, T))
  adv = rng.normal(0.0, 1.5, R)
  lengths = np.array([6, 3, 0, 1, 5, 0, 2])
  mask = np.arange(T)[None, :] < lengths[:, None]
  mask[4, 1] = False  # a hole inside a row, not only padding at its end
  rho = np.exp(logp - old)
  for edge in (0.8, 1.28):
    assert np.all(np.abs(rho[mask] - edge) > 1e-3)
  garbage = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e4])
  fill = lambda x, shift: np.where(mask, x, garbage[(np.arange(R * T).reshape(R, T) + shift)
                                                    % len(garbage)])
  logp_g, old_g, ref_g, ent_g = fill(logp, 0), fill(old, 1), fill(ref, 2), fill(ent, 3)
  adv_g = adv.copy()
  adv_g[2], adv_g[5] = np.nan, np.inf
  kw = dict(eps_low=0.2, eps_high=0.28, dual_clip=dual_clip, agg=agg, kl_coef=0.3,
            entropy_coef=0.05)

  def f(lp, e):
    return loss_lib.policy_loss(logp_RxT=lp, old_logp_RxT=jnp.asarray(old_g, jnp.float32),
                                adv_R=jnp.asarray(adv_g, jnp.float32),
                                mask_RxT=jnp.asarray(mask, jnp.float32),
                                ref_logp_RxT=jnp.asarray(ref_g, jnp.float32), entropy_RxT=e,
                                **kw)

  grad_fn = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))
  (value, metrics), (g_logp, g_ent) = grad_fn(jnp.asarray(logp_g, jnp.float32),
                                              jnp.asarray(ent_g, jnp.float32))
  want, want_logp, want_ent = _reference_loss(logp, old, adv, mask, agg, 0.2, 0.28, dual_clip,
                                              ref, 0.3, ent, 0.05)
  np.testing.assert_allclose(float(value), want, rtol=1e-5)
  g_logp, g_ent = np.asarray(g_logp), np.asarray(g_ent)
  assert np.all(g_logp[~mask] == 0) and np.all(g_ent[~mask] == 0)
  np.testing.assert_allclose(g_logp, want_logp, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(g_ent, want_ent, rtol=1e-5, atol=1e-7)
  # Metrics are token means over the unmasked tokens.
  a_tok, rho_tok = np.broadcast_to(adv[:, None], (R, T))[mask], rho[mask]
  d_tok = (ref - logp)[mask]
  want_metrics = {
      "clip_frac_low": np.mean((a_tok < 0) & (rho_tok < 0.8)),
      "clip_frac_high": np.mean((a_tok > 0) & (rho_tok > 1.28)),
      "approx_kl": np.mean(rho_tok - 1 - np.log(rho_tok)),
      "ref_kl": np.mean(np.exp(d_tok) - d_tok - 1),
      "entropy": np.mean(ent[mask]),
      "loss": want,
  }
  if dual_clip is not None:
    pg_tok = np.maximum(-a_tok * rho_tok, -a_tok * np.clip(rho_tok, 0.8, 1.28))
    want_metrics["dual_clip_frac"] = np.mean((a_tok < 0) & (pg_tok > -a_tok * dual_clip))
  for name, want_value in want_metrics.items():
    np.testing.assert_allclose(float(metrics[name]), want_value, rtol=1e-5, atol=1e-7,
                               err_msg=name)
  assert all(np.isfinite(float(v)) for v in metrics.values())


@pytest.mark.parametrize("agg", loss_lib.AGGREGATIONS)
def test_denominator_and_aggregate_ignore_empty_rows_and_masked_garbage(agg):
  # aggregate of x with mask: hand-derived. Rows: [2, -4 | masked NaN], [masked inf, inf],
  # [6 | masked 1e30 ...] and an empty row of NaN. Tokens 2, -4, 6: token-mean 4 / 3;
  # row means -1, 6 over 2 non-empty rows: 5 / 2; row sums -2, 6: 4 / 2.
  x = jnp.array([[2.0, -4.0, jnp.nan], [jnp.inf, jnp.inf, jnp.inf], [6.0, 1e30, -1e30],
                 [jnp.nan, jnp.nan, jnp.nan]])
  mask = jnp.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]], jnp.float32)
  want = {"token-mean": 4 / 3, "seq-mean-token-mean": 5 / 2, "seq-mean-token-sum": 4 / 2}[agg]
  want_denom = {"token-mean": 3.0, "seq-mean-token-mean": 2.0, "seq-mean-token-sum": 2.0}[agg]
  assert float(loss_lib.loss_denominator(mask_RxT=mask, agg=agg)) == want_denom
  agg_fn = lambda x: loss_lib.aggregate(x_RxT=x, mask_RxT=mask, agg=agg)
  value, grad = jax.value_and_grad(agg_fn)(x)
  np.testing.assert_allclose(float(value), want, rtol=1e-6)
  # d / dx: the token weights (1/3 each; 1/(2 len_r); 1/2), 0 at masked positions.
  len_Rx1 = jnp.array([[2], [1], [1], [1]])  # row lengths, 1 for the empty rows (x 0 anyway)
  want_grad = {"token-mean": mask / 3, "seq-mean-token-mean": mask / (2 * len_Rx1),
               "seq-mean-token-sum": mask / 2}[agg]
  np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-6)
  # All-empty batch: denominator 1, loss 0 (not NaN).
  empty = jnp.zeros_like(mask)
  assert float(loss_lib.loss_denominator(mask_RxT=empty, agg=agg)) == 1.0
  assert float(loss_lib.aggregate(x_RxT=x, mask_RxT=empty, agg=agg)) == 0.0
