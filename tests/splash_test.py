"""The splash-attention path (models/splash.py) against `layers.attention`, in Pallas'
interpreter on the CPU: values and gradients with left padding and GQA, the decoder with
`attention='splash'`, and the shard_map path on a mesh of 8 fake devices. The TPU compile
of the same program is checked in tpu_fit_test.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import models, sharding
from rlvr_jax.models import layers, splash


def _inputs(b=2, t=40, h=4, k=2, dh=16, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  q = jax.random.normal(keys[0], (b, t, h, dh))
  kk = jax.random.normal(keys[1], (b, t, k, dh))
  v = jax.random.normal(keys[2], (b, t, k, dh))
  lengths = np.maximum(t - 13 * np.arange(b), 1)
  mask = jnp.asarray(np.arange(t)[None] >= t - lengths[:, None])  # left padding
  return q, kk, v, mask


def _reference(q, k, v, mask):
  t = q.shape[1]
  allowed = jnp.tril(jnp.ones((t, t), bool))[None] & mask[:, None, :]
  return layers.attention(q, k, v, allowed, "einsum")


def test_splash_equals_the_reference_attention_with_padding_and_gqa():
  q, k, v, mask = _inputs()
  with splash.interpret():
    got = np.asarray(splash.attention(q, k, v, mask))
  want = np.asarray(_reference(q, k, v, mask))
  real = np.asarray(mask)
  assert got.shape == want.shape == (2, 40, 4, 16)
  np.testing.assert_allclose(got[real], want[real], rtol=2e-5, atol=2e-5)


def test_splash_gradients_equal_the_reference_ones():
  q, k, v, mask = _inputs(seed=1)
  w = jax.random.normal(jax.random.PRNGKey(9), q.shape) * mask[:, :, None, None]
  loss = lambda fn: lambda q, k, v: jnp.sum(fn(q, k, v, mask) * w)
  with splash.interpret():
    got = jax.grad(loss(splash.attention), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(loss(_reference), argnums=(0, 1, 2))(q, k, v)
  real = np.asarray(mask)
  for name, g, r in zip(("dq", "dk", "dv"), got, want):
    assert np.abs(np.asarray(r)[real]).max() > 0, name
    np.testing.assert_allclose(np.asarray(g)[real], np.asarray(r)[real], rtol=1e-4, atol=1e-4,
                               err_msg=name)


def test_decoder_with_splash_attention_equals_einsum():
  base = models.preset("tiny")
  params = models.init_params(base, jax.random.PRNGKey(2))
  _, _, _, mask = _inputs(t=24)
  tokens = jnp.where(mask, jax.random.randint(jax.random.PRNGKey(3), mask.shape, 3, 100), 0)
  positions = jnp.maximum(jnp.cumsum(mask, 1) - 1, 0)
  want, _ = models.forward_hidden(params, base, tokens, positions, mask)
  with splash.interpret():
    got, _ = models.forward_hidden(params, base.replace(attention="splash"), tokens, positions,
                                   mask)
  real = np.asarray(mask)
  np.testing.assert_allclose(np.asarray(got)[real], np.asarray(want)[real], rtol=1e-4, atol=1e-4)


def test_splash_under_a_mesh_runs_in_shard_map_and_equals_one_device():
  assert jax.device_count() == 8
  q, k, v, mask = _inputs(b=4, seed=4)
  mesh = sharding.make_mesh(dict(data=2, fsdp=2, tensor=2))
  with splash.interpret():
    want = np.asarray(splash.attention(q, k, v, mask))
    with sharding.use_mesh(mesh):
      got = np.asarray(jax.jit(splash.attention)(q, k, v, mask))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_splash_refuses_cross_attention():
  q, k, v, mask = _inputs()
  with pytest.raises(ValueError, match="self-attention"):
    splash.attention(q, k[:, :20], v[:, :20], mask)
  with pytest.raises(ValueError, match="token mask"):
    layers.attention(q, k, v, mask[:, None, :], "splash")
