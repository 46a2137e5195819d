"""The attention implementations (layers.attention: einsum, dot_product, chunked) against a
float64 numpy reference, with left padding, causality and GQA, their gradients, the decoder
with each (training pass, KV-cache prefill), and the sharded forward on 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import models, sharding
from rlvr_jax.models import layers

IMPLS = ("einsum", "dot_product", "chunked")


def _inputs(b=3, t=11, s=11, h=4, k=2, dh=8, seed=0):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(b, t, h, dh)).astype(np.float32)
  key = rng.normal(size=(b, s, k, dh)).astype(np.float32)
  v = rng.normal(size=(b, s, k, dh)).astype(np.float32)
  pad_B = np.array([0, 3, 6])[:b]  # left padding of each row
  real_BxS = np.arange(s)[None] >= pad_B[:, None]
  causal_TxS = np.arange(s)[None, :] <= np.arange(t)[:, None] + (s - t)
  allowed = causal_TxS[None] & real_BxS[:, None, :]
  return q, key, v, allowed


def _reference(q, k, v, allowed):
  """float64 softmax attention, each query head on its KV head h // G."""
  b, t, h, dh = q.shape
  g = h // k.shape[2]
  out = np.zeros((b, t, h, dh))
  for hh in range(h):
    s = np.einsum("btd,bsd->bts", q[:, :, hh].astype(np.float64),
                  k[:, :, hh // g].astype(np.float64)) / np.sqrt(dh)
    s = np.where(allowed, s, -1e30)  # a query with no allowed key: uniform, as the code
    p = np.exp(s - s.max(-1, keepdims=True))
    out[:, :, hh] = np.einsum("bts,bsd->btd", p / p.sum(-1, keepdims=True), v[:, :, hh // g])
  return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("chunk", [4, 64])
def test_attention_equals_the_float64_reference(impl, chunk):
  q, k, v, allowed = _inputs()
  out = np.asarray(layers.attention(q, k, v, allowed, impl, chunk))
  live_BxT = allowed.any(-1)  # left-pad queries attend to nothing: their output is unused
  assert not live_BxT.all()
  np.testing.assert_allclose(out[live_BxT], _reference(q, k, v, allowed)[live_BxT],
                             rtol=1e-5, atol=1e-5)
  assert np.isfinite(out).all()


@pytest.mark.parametrize("impl", ["dot_product", "chunked"])
def test_attention_gradients_equal_the_einsum_ones(impl):
  q, k, v, allowed = _inputs(seed=1)
  w = np.random.default_rng(2).normal(size=q.shape).astype(np.float32)
  w = w * allowed.any(-1)[:, :, None, None]  # only the used outputs carry a loss

  def loss(q, k, v, which):
    return (layers.attention(q, k, v, allowed, which, 4) * w).sum()

  want = jax.grad(loss, argnums=(0, 1, 2))(q, k, v, "einsum")
  got = jax.grad(loss, argnums=(0, 1, 2))(q, k, v, impl)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_unknown_implementations_fail():
  with pytest.raises(ValueError, match="attention"):
    models.preset("tiny", attention="flash")
  with pytest.raises(ValueError, match="attention_chunk"):
    models.preset("tiny", attention_chunk=0)
  q, k, v, allowed = _inputs()
  with pytest.raises(ValueError, match="unknown attention"):
    layers.attention(q, k, v, allowed, "flash")


def _padded_batch(b=3, t=13, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, 60, (b, t)).astype(np.int32)
  mask = (np.arange(t)[None] >= np.array([0, 4, 9])[:b, None]).astype(np.int32)
  positions = np.maximum(np.cumsum(mask, -1) - 1, 0).astype(np.int32)
  return tokens * mask, positions, mask


@pytest.mark.parametrize("impl", ["dot_product", "chunked"])
def test_decoder_with_each_attention_matches_einsum_in_training_and_prefill(impl):
  # GQA (4 query heads on 2 KV heads in the tiny preset) and left padding.
  base = models.preset("tiny")
  cfg = base.replace(attention=impl, attention_chunk=5)
  assert base.num_heads > base.num_kv_heads
  params = models.init_params(base, jax.random.PRNGKey(0))
  tokens, positions, mask = _padded_batch()
  live = mask.astype(bool)
  want, _ = models.forward_hidden(params, base, tokens, positions, mask)
  got, _ = models.forward_hidden(params, cfg, tokens, positions, mask)
  np.testing.assert_allclose(np.asarray(got)[live], np.asarray(want)[live], rtol=1e-5, atol=1e-5)
  # Prefill: the keys and values every layer returns for the KV cache.
  _, (want_k, want_v) = models.forward_hidden(params, base, tokens, positions, mask,
                                              return_kv=True)
  _, (got_k, got_v) = models.forward_hidden(params, cfg, tokens, positions, mask, return_kv=True)
  np.testing.assert_allclose(np.asarray(got_k), np.asarray(want_k), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(got_v), np.asarray(want_v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["dot_product", "chunked"])
def test_sharded_forward_equals_single_device(impl):
  assert len(jax.devices()) == 8
  cfg = models.preset("tiny", attention=impl, attention_chunk=4)
  params = models.init_params(cfg, jax.random.PRNGKey(1))
  tokens, positions, mask = _padded_batch(b=2, t=12, seed=3)
  tokens, positions, mask = (np.concatenate([x] * 2) for x in (tokens, positions, mask))
  want, _ = models.forward_hidden(params, models.preset("tiny"), tokens, positions, mask)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  axes = models.param_logical_axes(cfg)
  sharded = jax.device_put(params, sharding.logical_sharding(axes, mesh, shapes=params))
  with sharding.use_mesh(mesh, None):
    fwd = jax.jit(lambda p, t, pos, m: models.forward_hidden(p, cfg, t, pos, m)[0])
    got = fwd(sharded, tokens, positions, mask)
  live = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(got)[live], np.asarray(want)[live], rtol=1e-5, atol=1e-5)
