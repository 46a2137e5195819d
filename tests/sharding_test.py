"""Sharding on 8 fake CPU devices: meshes from config, params created sharded,
sharded forward (with and without KV cache) equal to the single-device one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from rlvr_jax import checkpoints, models, sharding

# Every sharded dimension divides 8 except the 2 KV heads, which must fall back
# to replication on a tensor axis of 4 or 8 (as SmolLM2's 3 KV heads would).
CFG = models.ModelConfig(vocab_size=128, num_layers=2, d_model=32, num_heads=8, num_kv_heads=2,
                         head_dim=8, mlp_dim=64, qkv_bias=True, tie_embeddings=False)
# XLA:CPU compiles the rbg generator in a fraction of threefry's time; the
# model takes any key.
_key = lambda seed: jax.random.key(seed, impl="rbg")
MESHES = [dict(data=8, fsdp=1, tensor=1), dict(data=2, fsdp=2, tensor=2),
          dict(data=1, fsdp=1, tensor=8)]


def _batch(b=8, t=6, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, size=b)
  mask = (np.arange(t)[None] >= t - lengths[:, None])
  tokens = np.where(mask, rng.integers(3, CFG.vocab_size, (b, t)), 0).astype(np.int32)
  return jnp.asarray(tokens), jnp.asarray(np.cumsum(mask, 1) - 1), jnp.asarray(mask)


def test_mesh_shape_fills_and_validates():
  assert sharding.mesh_shape(dict(data=-1, fsdp=2, tensor=1), 8) == (4, 2, 1)
  assert sharding.mesh_shape(dict(tensor=-1), 8) == (1, 1, 8)
  with pytest.raises(ValueError, match="at most one"):
    sharding.mesh_shape(dict(data=-1, fsdp=-1), 8)
  with pytest.raises(ValueError, match="not divisible"):
    sharding.mesh_shape(dict(data=-1, fsdp=3), 8)
  with pytest.raises(ValueError, match="needs 4 devices"):
    sharding.mesh_shape(dict(data=2, fsdp=2), 8)


def test_logical_to_spec_rules():
  mesh = sharding.make_mesh(dict(data=2, fsdp=2, tensor=2))
  assert sharding.logical_to_spec(("batch", "length", "act_embed"), mesh=mesh) == P(
      ("data", "fsdp"), None, None)
  # 3 KV heads do not split over 2 devices: that dimension is replicated.
  assert sharding.logical_to_spec(("embed", "kv_heads", "head_dim"), None, (32, 3, 8),
                                  mesh) == P("fsdp", None, None)
  # A mesh axis is used once per array: the second 'batch' gets nothing.
  assert sharding.logical_to_spec(("batch", "batch"), mesh=mesh) == P(("data", "fsdp"), None)
  custom = [("embed", "tensor"), ("mlp", "fsdp")]
  assert sharding.logical_to_spec(("embed", "mlp"), custom, mesh=mesh) == P("tensor", "fsdp")
  with pytest.raises(ValueError, match="no sharding rule"):
    sharding.logical_to_spec(("embed", "mystery"), custom)


@jax.jit
def _logits(params, tokens, positions, mask):
  h, _ = models.forward_hidden(params, CFG, tokens, positions, mask)
  return models.logits(params, CFG, h)


def _single_device_logits(params, tokens, positions, mask):
  put = lambda x: jax.device_put(x, jax.devices()[0])
  return np.asarray(_logits(*jax.tree.map(put, (params, tokens, positions, mask))))


@pytest.mark.parametrize("mesh_cfg", MESHES, ids=lambda m: "x".join(map(str, m.values())))
def test_sharded_params_and_forward_match_single_device(mesh_cfg):
  assert jax.device_count() == 8
  mesh = sharding.make_mesh(mesh_cfg)
  axes = models.param_logical_axes(CFG)
  params = sharding.init_sharded(lambda k: models.init_params(CFG, k), axes, mesh, None,
                                 _key(0))
  d, f, t = mesh_cfg["data"], mesh_cfg["fsdp"], mesh_cfg["tensor"]
  # The shardings are the ones the rules ask for, and shards really are split.
  q = params["layers"]["q"]  # [L, D, H, Dh]: embed -> fsdp, heads -> tensor
  assert q.sharding.spec == P(None, "fsdp", "tensor", None)
  assert q.addressable_shards[0].data.shape == (2, 32 // f, 8 // t, 8)
  head = params["lm_head"]  # [D, V]
  assert head.addressable_shards[0].data.shape == (32 // f, 128 // t)
  kv = params["layers"]["k"]  # 2 KV heads: split over tensor only if it divides 2
  assert kv.addressable_shards[0].data.shape[2] == (1 if t == 2 else 2)
  # Same values as an unsharded (jitted: eager rounds differently) init.
  ref_params = jax.jit(models.init_params, static_argnums=0)(CFG, _key(0))
  jax.tree.map(np.testing.assert_array_equal, params, ref_params)

  tokens, positions, mask = _batch()
  batch_sharding = NamedSharding(mesh, P(("data", "fsdp")))
  args = [jax.device_put(x, batch_sharding) for x in (tokens, positions, mask)]
  with sharding.use_mesh(mesh):
    @jax.jit
    def fwd(p, tok, pos, m):
      h, _ = models.forward_hidden(p, CFG, tok, pos, m)
      return h, models.logits(p, CFG, h)
    h, out = fwd(params, *args)
  # The activation constraint kept the hidden states batch-sharded.
  assert h.addressable_shards[0].data.shape == (8 // (d * f), 6, 32)
  ref = _single_device_logits(ref_params, tokens, positions, mask)
  real = np.asarray(mask)
  np.testing.assert_allclose(np.asarray(out)[real], ref[real], atol=1e-5, rtol=0)


def test_sharded_kv_cache_decode_matches_single_device():
  """Prefill 5 tokens into the cache, decode the 6th, on a data x fsdp x tensor mesh: each
  layer's buffers ([R, K, Dh, S_g] keys) have rows over (data, fsdp) and KV heads over tensor, and
  the logits are the single-device full forward's."""
  from rlvr_jax.models import kv_cache
  from rlvr_jax.sampling import decode
  mesh = sharding.make_mesh(dict(data=2, fsdp=2, tensor=2))
  params = sharding.init_sharded(lambda k: models.init_params(CFG, k),
                                 models.param_logical_axes(CFG), mesh, None, _key(1))
  tokens, positions, mask = _batch(seed=1)
  mask = mask.at[:, 5].set(True)  # the decoded token is real in every row
  positions = jnp.cumsum(mask, 1) - 1
  spec4 = lambda x: tuple(x.sharding.spec) + (None,) * (4 - len(x.sharding.spec))
  want_spec = (("data", "fsdp"), "tensor", None, None)
  with sharding.use_mesh(mesh):

    @jax.jit
    def run(p, tok, pos, m):
      h, (k, v) = models.forward_hidden(p, CFG, tok[:, :5], pos[:, :5], m[:, :5], return_kv=True)
      cache = kv_cache.from_prefill(k, v, m[:, :5], 8)
      cache = cache._replace(mask_RxS=cache.mask_RxS.at[:, 5].set(True))
      h2, cache = decode.step(p, decode.split_layers(p), CFG, tok[:, 5], pos[:, 5], cache, 5, 1)
      return jnp.concatenate([h, h2[:, None]], 1), cache

    h, cache = run(params, tokens, positions, mask)
  # The prompt's segment and the empty one decoding wrote into, both sharded the same way.
  assert [spec4(k) for k in cache.keys[0]] == [want_spec, want_spec]
  out = np.asarray(models.logits(params, CFG, h))
  ref = _single_device_logits(jax.device_get(params), tokens, positions, mask)
  real = np.asarray(mask)
  np.testing.assert_allclose(out[real], ref[real], atol=1e-5, rtol=0)


def test_checkpoint_loads_straight_onto_mesh(tmp_path):
  params = models.init_params(CFG, _key(2))
  checkpoints.export_hf(params, CFG, str(tmp_path))
  mesh = sharding.make_mesh(dict(data=1, fsdp=2, tensor=4))
  cfg, loaded = checkpoints.load_hf(str(tmp_path), mesh=mesh)
  assert cfg == CFG
  assert loaded["layers"]["gate"].sharding.spec == P(None, "fsdp", "tensor")
  assert loaded["embed"].sharding.spec == P("tensor", "fsdp")
  assert loaded["layers"]["gate"].addressable_shards[0].data.shape == (2, 16, 16)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
