"""Hand-derived values of the loss options: GSPO's sequence ratio, TIS, the KL reference term."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax.rl import loss as loss_lib


def _loss_and_grad(logp_RxT, old_RxT, adv_R, mask_RxT=None, **kw):
  logp_RxT = jnp.asarray(logp_RxT, jnp.float32)
  mask_RxT = jnp.ones(logp_RxT.shape) if mask_RxT is None else jnp.asarray(mask_RxT, jnp.float32)
  f = lambda lp: loss_lib.policy_loss(lp, jnp.asarray(old_RxT, jnp.float32),
                                      jnp.asarray(adv_R, jnp.float32), mask_RxT, **kw)
  (value, metrics), grad = jax.value_and_grad(f, has_aux=True)(logp_RxT)
  return float(value), metrics, np.asarray(grad)


# Two tokens with ratios 1.2 and 1.875: the length-normalized sequence ratio is
# exp((log 1.2 + log 1.875) / 2) = sqrt(2.25) = 1.5.
_TWO = [[math.log(1.2), math.log(1.875)]]


def test_gspo_sequence_ratio_1_5_is_clipped_at_1_plus_eps_high_for_the_whole_sequence():
  value, m, g = _loss_and_grad(_TWO, [[0.0, 0.0]], [1.0], ratio="sequence")
  # Both tokens carry min(1.5, clip(1.5, 0.8, 1.28)) * 1 = 1.28: loss -1.28, no gradient.
  np.testing.assert_allclose(value, -1.28, rtol=1e-6)
  assert not g.any() and float(m["clip_frac_high"]) == 1.0
  # Token-level, the first token (1.2) is inside the clip and keeps its gradient.
  value_tok, m_tok, g_tok = _loss_and_grad(_TWO, [[0.0, 0.0]], [1.0], ratio="token")
  np.testing.assert_allclose(value_tok, -(1.2 + 1.28) / 2, rtol=1e-6)
  np.testing.assert_allclose(g_tok, [[-1.2 / 2, 0.0]], rtol=1e-6)
  assert float(m_tok["clip_frac_high"]) == 0.5


def test_gspo_unclipped_gradient_is_the_sequence_ratio_times_the_mean_token_gradient():
  # A = -1: loss = -A * s = s = 1.5 on both tokens, token mean 1.5. d s / d logp_t = s / |y| =
  # 0.75 for each token; the token mean of two equal terms keeps it: 0.75 each.
  value, _, g = _loss_and_grad(_TWO, [[0.0, 0.0]], [-1.0], ratio="sequence")
  np.testing.assert_allclose(value, 1.5, rtol=1e-6)
  np.testing.assert_allclose(g, [[0.75, 0.75]], rtol=1e-6)


def test_gspo_ratio_uses_only_the_rows_loss_tokens():
  # A masked third token with a huge log-ratio changes nothing: s is still 1.5.
  logp = [[math.log(1.2), math.log(1.875), 50.0]]
  value, _, g = _loss_and_grad(logp, [[0.0, 0.0, 0.0]], [-1.0], mask_RxT=[[1, 1, 0]],
                               ratio="sequence")
  np.testing.assert_allclose(value, 1.5, rtol=1e-6)
  np.testing.assert_allclose(g, [[0.75, 0.75, 0.0]], rtol=1e-6)


def test_tis_weights_are_capped_and_carry_no_gradient():
  # At ratio 1 (logp = old) with A = 1 each token's PG loss is -1. pi_old / q = 3 and 0.5:
  # weights min(3, 2) = 2 and 0.5, loss -(2 + 0.5) / 2 = -1.25; the gradient of each token is
  # -A * ratio * w = -w, over 2 tokens: -1 and -0.25.
  old = [[0.0, 0.0]]
  q = [[-math.log(3.0), math.log(2.0)]]
  value, m, g = _loss_and_grad(old, old, [1.0], tis_cap=2.0, sampling_logp_RxT=jnp.asarray(q))
  np.testing.assert_allclose(value, -1.25, rtol=1e-6)
  np.testing.assert_allclose(g, [[-1.0, -0.25]], rtol=1e-6)
  np.testing.assert_allclose([float(m["tis_weight"]), float(m["tis_capped_frac"])], [1.25, 0.5],
                             rtol=1e-6)


def test_options_off_give_the_documented_token_level_loss():
  # A float64 evaluation of the module docstring's formula on random inputs (token-mean,
  # clip 0.2 / 0.28) against the loss with ratio='token' and tis_cap=0 spelled out.
  rng = np.random.default_rng(0)
  logp = rng.normal(-2.0, 0.5, (4, 7))
  old = logp + rng.normal(0.0, 0.3, (4, 7))
  adv = rng.normal(0.0, 1.0, 4)
  mask = (rng.random((4, 7)) < 0.7).astype(np.float64)
  rho = np.exp(logp - old)
  per_token = np.maximum(-adv[:, None] * rho, -adv[:, None] * np.clip(rho, 0.8, 1.28))
  expected = (per_token * mask).sum() / mask.sum()
  value, _, _ = _loss_and_grad(logp, old, adv, mask, ratio="token", tis_cap=0.0)
  default, _, _ = _loss_and_grad(logp, old, adv, mask)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert value == default


def test_kl_term_is_zero_at_the_reference_and_pulls_towards_it():
  rng = np.random.default_rng(1)
  ref = jnp.asarray(rng.normal(-2.0, 0.5, (3, 5)), jnp.float32)
  zeros_R = jnp.zeros(3)
  kw = dict(kl_coef=0.5, ref_logp_RxT=ref)
  # At the reference the k3 estimate exp(d) - d - 1 is 0 and so is its gradient.
  value, m, g = _loss_and_grad(ref, ref, zeros_R, **kw)
  assert value == 0.0 and float(m["ref_kl"]) == 0.0 and not g.any()
  # Away from it (advantages 0: the KL term alone) a gradient step lowers the estimate.
  logp = ref + 0.3
  value, m, g = _loss_and_grad(logp, logp, zeros_R, **kw)
  # d/dlogp of exp(ref - logp) - (ref - logp) - 1 = 1 - exp(ref - logp) = 1 - exp(-0.3), for
  # each token, times kl_coef / 15 tokens.
  np.testing.assert_allclose(g, np.full((3, 5), 0.5 * (1 - math.exp(-0.3)) / 15), rtol=1e-5)
  after, m_after, _ = _loss_and_grad(logp - 0.1 * g, logp, zeros_R, **kw)
  assert float(m_after["ref_kl"]) < float(m["ref_kl"]) and after < value


@pytest.mark.parametrize("kw,match", [
    (dict(ratio="seq"), "unknown importance ratio"),
    (dict(tis_cap=-1.0), "tis_cap must be 0"),
    (dict(kl_coef=-0.1), "kl_coef must be >= 0"),
    (dict(eps_low=1.0), "eps_low must be < 1"),
    (dict(kl_coef=float("nan")), "must be finite"),
    (dict(tis_cap=2.0), "needs sampling_logp_RxT"),
    (dict(kl_coef=0.1), "needs ref_logp_RxT"),
])
def test_bad_loss_options_are_clear_errors(kw, match):
  with pytest.raises(ValueError, match=match):
    _loss_and_grad([[0.0]], [[0.0]], [1.0], **kw)


@pytest.mark.parametrize("agg", loss_lib.AGGREGATIONS)
def test_sequence_ratio_and_tis_ignore_garbage_at_masked_positions_and_empty_rows(agg):
  # NaN / inf / huge values where the mask is 0 (and in an empty row) must change neither the
  # value nor the gradient: the same batch with benign values there gives the same numbers.
  rng = np.random.default_rng(2)
  R, T = 5, 6
  logp = -rng.uniform(0.1, 3.0, (R, T))
  old = logp + rng.normal(0.0, 0.4, (R, T))
  q = old + rng.normal(0.0, 0.6, (R, T))
  adv = rng.normal(0.0, 1.0, R)
  mask = np.arange(T)[None] < np.array([6, 2, 0, 4, 1])[:, None]
  garbage = np.resize(np.array([np.nan, np.inf, -np.inf, 1e30, -1e30]), (R, T))
  dirty = lambda x: jnp.asarray(np.where(mask, x, garbage), jnp.float32)
  clean = lambda x: jnp.asarray(np.where(mask, x, 0.0), jnp.float32)
  adv_dirty = adv.copy()
  adv_dirty[2] = np.nan  # the empty row's advantage
  kw = dict(ratio="sequence", tis_cap=2.0, agg=agg)
  out = {}
  for name, fill, a in (("dirty", dirty, adv_dirty), ("clean", clean, adv)):
    f = lambda lp: loss_lib.policy_loss(lp, fill(old), jnp.asarray(a, jnp.float32),
                                        jnp.asarray(mask, jnp.float32),
                                        sampling_logp_RxT=fill(q), **kw)
    (value, m), g = jax.value_and_grad(f, has_aux=True)(fill(logp))
    out[name] = (float(value), {k: float(v) for k, v in m.items()}, np.asarray(g))
  (v_d, m_d, g_d), (v_c, m_c, g_c) = out["dirty"], out["clean"]
  assert np.isfinite(v_d) and np.all(np.isfinite(g_d)) and np.all(g_d[~mask] == 0)
  np.testing.assert_allclose(v_d, v_c, rtol=1e-6)
  np.testing.assert_allclose(g_d, g_c, rtol=1e-6, atol=1e-9)
  assert m_d == pytest.approx(m_c, rel=1e-6)
  assert 0 < m_c["tis_capped_frac"] < 1  # the cap acted on some tokens, not all
