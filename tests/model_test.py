"""Tests of the decoder core: shapes, masking, KV cache, chunked log-probs, RoPE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import models
from rlvr_jax.models import layers


# XLA:CPU compiles the rbg generator much faster than threefry; the model
# takes any key.
_key = lambda seed: jax.random.key(seed, impl="rbg")


def _cfg(**kw):
  base = dict(vocab_size=61, num_layers=2, d_model=32, num_heads=4, num_kv_heads=2,
              head_dim=8, mlp_dim=48, rope_base=10000.0, qkv_bias=True, tie_embeddings=False)
  base.update(kw)
  return models.ModelConfig(**base)


def _left_padded(lengths, t, vocab, seed=0):
  """Random tokens, left-padded to t; positions cumsum(mask) - 1."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, vocab, size=(len(lengths), t)).astype(np.int32)
  mask = np.zeros((len(lengths), t), bool)
  for i, n in enumerate(lengths):
    mask[i, t - n:] = True
  tokens = np.where(mask, tokens, 0)
  positions = np.cumsum(mask, axis=1) - 1
  return jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask)


def _full_logits(params, cfg, tokens, positions, mask):
  h, cache = models.forward_hidden(params, cfg, tokens, positions, mask)
  assert cache is None
  return models.logits(params, cfg, h)


@pytest.mark.parametrize("name", models.preset_names())
def test_presets_are_valid_and_counted(name):
  cfg = models.preset(name)
  shapes = models.param_shapes(cfg)
  n = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  assert n == cfg.num_params()
  # The axes tree mirrors the params tree, one name per dimension.
  axes = models.param_logical_axes(cfg)
  jax.tree.map(lambda a, s: None if len(a) == len(s.shape) else pytest.fail(f"{a} vs {s}"),
               axes, shapes, is_leaf=lambda x: isinstance(x, tuple))


def test_published_parameter_counts():
  # Published totals: SmolLM2-135M has 134,515,008 parameters (tied embeddings),
  # Qwen2.5-0.5B 494,032,768 (tied), Qwen2.5-7B 7,615,616,512, Llama-3-8B 8,030,261,248.
  assert models.preset("smollm2_135m").num_params() == 134_515_008
  assert models.preset("qwen2_5_0_5b").num_params() == 494_032_768
  assert models.preset("qwen2_5_7b").num_params() == 7_615_616_512
  assert models.preset("llama3_8b").num_params() == 8_030_261_248


def test_tiny_preset_matches_character_vocabulary():
  cfg = models.preset("tiny")
  assert cfg.vocab_size == 128
  params = models.init_params(cfg, _key(0))
  tokens, positions, mask = _left_padded([5, 3], 6, cfg.vocab_size)
  out = _full_logits(params, cfg, tokens, positions, mask)
  assert out.shape == (2, 6, 128) and out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()


def test_bad_config_and_inputs_raise():
  with pytest.raises(ValueError, match="num_kv_heads"):
    _cfg(num_heads=4, num_kv_heads=3)
  with pytest.raises(ValueError, match="dtype"):
    _cfg(dtype="float8")
  with pytest.raises(ValueError, match="unknown model preset"):
    models.preset("gpt5")
  cfg = _cfg()
  params = models.init_params(cfg, _key(0))
  tokens, positions, mask = _left_padded([3], 4, cfg.vocab_size)
  with pytest.raises(ValueError, match="same"):
    models.forward_hidden(params, cfg, tokens, positions[:, :3], mask)
  keys = jnp.zeros((2, 1, 5, 2, 8))
  with pytest.raises(ValueError, match="cannot hold"):
    models.kv_cache.from_prefill(keys, keys, jnp.ones((1, 5)), slots=5)


def test_left_padding_does_not_change_real_tokens():
  # A row's logits must not depend on how much left padding it has.
  cfg = _cfg()
  params = models.init_params(cfg, _key(1))
  tokens, positions, mask = _left_padded([4], 4, cfg.vocab_size, seed=3)
  ref = _full_logits(params, cfg, tokens, positions, mask)
  pad = 3
  tokens_p = jnp.pad(tokens, ((0, 0), (pad, 0)), constant_values=7)  # junk in padding
  positions_p = jnp.pad(positions, ((0, 0), (pad, 0)), constant_values=-1)
  mask_p = jnp.pad(mask, ((0, 0), (pad, 0)))
  out = _full_logits(params, cfg, tokens_p, positions_p, mask_p)
  np.testing.assert_allclose(out[:, pad:], ref, atol=1e-5, rtol=0)


def test_causality():
  # Changing a later token leaves earlier logits untouched.
  cfg = _cfg()
  params = models.init_params(cfg, _key(2))
  tokens, positions, mask = _left_padded([6, 6], 6, cfg.vocab_size)
  a = _full_logits(params, cfg, tokens, positions, mask)
  b = _full_logits(params, cfg, tokens.at[:, 4].set(5), positions, mask)
  np.testing.assert_array_equal(a[:, :4], b[:, :4])
  assert np.abs(np.asarray(a[:, 4:] - b[:, 4:])).max() > 1e-4


@pytest.mark.parametrize("tie,segments", [(True, 1), (False, 1), (True, 3)])
def test_kv_cache_prefill_and_decode_match_full_forward(tie, segments):
  """The prompt's keys and values from the training forward, laid out by
  `kv_cache.from_prefill` (each prompt's row repeated twice), then one decode step a token
  (each into the segment that holds its slot): the same logits as one full forward over
  prompt + tokens."""
  from rlvr_jax.models import kv_cache
  from rlvr_jax.sampling import decode
  cfg = _cfg(tie_embeddings=tie)
  params = models.init_params(cfg, _key(3))
  lengths, p, new, repeat = [5, 2, 7], 7, 5, 2
  tokens, positions, mask = _left_padded(lengths, p + new, cfg.vocab_size, seed=4)
  # Make the last `new` tokens real for every row: a left-padded prompt of
  # length `p` followed by `new` generated tokens.
  mask = mask.at[:, p:].set(True)
  tokens = jnp.where(mask, tokens, 0)
  positions = jnp.cumsum(mask, axis=1) - 1
  full = _full_logits(params, cfg, tokens, positions, mask)

  h, (keys, values) = models.forward_hidden(params, cfg, tokens[:, :p], positions[:, :p],
                                            mask[:, :p], return_kv=True)
  assert keys.shape == (cfg.num_layers, 3, p, cfg.num_kv_heads, cfg.head_dim)
  slots = p + new + 3
  cache = kv_cache.from_prefill(keys, values, mask[:, :p], slots, repeat, segments)
  sizes = kv_cache.segment_sizes(p, slots, segments)
  assert sizes == ((7, 8) if segments == 1 else (7, 3, 3, 2))
  assert len(cache.keys) == cfg.num_layers
  assert [k.shape for k in cache.keys[0]] == [
      (3 * repeat, cfg.num_kv_heads, cfg.head_dim, s) for s in sizes]
  assert [v.shape for v in cache.values[0]] == [
      (3 * repeat, cfg.num_kv_heads, s, cfg.head_dim) for s in sizes]
  rep = lambda x: jnp.repeat(x, repeat, axis=0)
  step_logits = [rep(models.logits(params, cfg, h))]
  step = jax.jit(lambda c, tok, pos, slot, g: decode.step(params, decode.split_layers(params),
                                                          cfg, tok, pos, c, slot, g),
                 static_argnums=4)
  ends = np.cumsum(sizes)
  for i in range(p, p + new):
    cache = cache._replace(mask_RxS=cache.mask_RxS.at[:, i].set(True))
    g = int(np.searchsorted(ends, i, side="right"))  # the segment holding slot i
    h, cache = step(cache, rep(tokens[:, i]), rep(positions[:, i]), i, g)
    step_logits.append(models.logits(params, cfg, h[:, None]))
  inc = jnp.concatenate(step_logits, axis=1)
  real = np.asarray(rep(mask))
  np.testing.assert_allclose(np.asarray(inc)[real], np.asarray(rep(full))[real], atol=2e-5,
                             rtol=0)
  np.testing.assert_array_equal(np.asarray(cache.mask_RxS)[:, :p + new], real)
  assert not np.asarray(cache.mask_RxS)[:, p + new:].any()
  # Every written slot holds its token's key; the unwritten ones are still zero.
  keys_all = np.concatenate([np.asarray(k) for k in cache.keys[0]], axis=-1)
  values_all = np.concatenate([np.asarray(v) for v in cache.values[0]], axis=2)
  assert np.abs(keys_all[..., p:p + new]).min(axis=(1, 2)).max() > 0
  assert not keys_all[..., p + new:].any()
  assert not values_all[:, :, p + new:].any()


def test_kv_cache_segments_and_decode_step_reject_bad_splits():
  from rlvr_jax.models import kv_cache
  assert kv_cache.segment_sizes(4, 14, 3) == (4, 4, 3, 3)
  assert kv_cache.segment_sizes(4, 6, 5) == (4, 1, 1)  # no more segments than slots
  for bad in ((0, 8, 1), (8, 8, 1), (4, 8, 0)):
    with pytest.raises(ValueError, match="cannot be split"):
      kv_cache.segment_sizes(*bad)


@pytest.mark.parametrize("chunk", [1, 3, 5, 64])
def test_token_logprobs_match_dense_log_softmax(chunk):
  cfg = _cfg(vocab_size=97)
  params = models.init_params(cfg, _key(7))
  tokens, positions, mask = _left_padded([5, 3], 5, cfg.vocab_size, seed=8)
  h, _ = models.forward_hidden(params, cfg, tokens, positions, mask)
  targets = jnp.roll(tokens, -1, axis=1)
  logp, ent = models.token_logprobs(params, cfg, h, targets, chunk_size=chunk)
  # Reference in float64 numpy from the dense logits.
  z = np.asarray(models.logits(params, cfg, h), np.float64)
  z = z - z.max(-1, keepdims=True)
  logp_ref = z - np.log(np.exp(z).sum(-1, keepdims=True))
  ref = np.take_along_axis(logp_ref, np.asarray(targets)[..., None], -1)[..., 0]
  ent_ref = -(np.exp(logp_ref) * logp_ref).sum(-1)
  np.testing.assert_allclose(logp, ref, atol=1e-5, rtol=0)
  np.testing.assert_allclose(ent, ent_ref, atol=1e-5, rtol=0)


def test_token_logprobs_gradient_matches_dense():
  cfg = _cfg(vocab_size=97)
  params = models.init_params(cfg, _key(9))
  tokens, positions, mask = _left_padded([5, 4], 5, cfg.vocab_size, seed=10)
  targets = jnp.roll(tokens, -1, axis=1)

  def chunked(p):
    h, _ = models.forward_hidden(p, cfg, tokens, positions, mask)
    logp, ent = models.token_logprobs(p, cfg, h, targets, chunk_size=2)
    return jnp.sum(logp * mask) + 0.1 * jnp.sum(ent * mask)

  def dense(p):
    h, _ = models.forward_hidden(p, cfg, tokens, positions, mask)
    lp = jax.nn.log_softmax(models.logits(p, cfg, h), -1)
    logp = jnp.take_along_axis(lp, targets[..., None], -1)[..., 0]
    ent = -jnp.sum(jnp.exp(lp) * lp, -1)
    return jnp.sum(logp * mask) + 0.1 * jnp.sum(ent * mask)

  ga, gb = jax.grad(chunked)(params), jax.grad(dense)(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4), ga, gb)


def test_rope_matches_rotation_and_llama3_scaling():
  # Rotating by position p then taking dot products depends only on p_q - p_k.
  cfg = _cfg()
  x = jax.random.normal(_key(11), (1, 2, 1, cfg.head_dim))
  def rot(pos):
    cos, sin = layers.rope_angles(jnp.array([[pos, pos]]), cfg)
    return layers.apply_rope(x, cos, sin)
  d1 = jnp.sum(rot(3)[0, 0] * rot(7)[0, 1])
  d2 = jnp.sum(rot(10)[0, 0] * rot(14)[0, 1])
  np.testing.assert_allclose(d1, d2, atol=1e-5)
  # Llama 3 scaling, derived by hand at three wavelengths for factor 8,
  # low/high factors 1/4, original length 8192: long waves (> 8192) are
  # divided by 8, short waves (< 2048) kept, in between interpolated.
  sc = models.RopeScaling()
  inv = layers.rope_inv_freq(128, 500000.0, None)
  scaled = layers.rope_inv_freq(128, 500000.0, sc)
  wavelen = 2 * np.pi / inv
  np.testing.assert_allclose(scaled[wavelen < 2048], inv[wavelen < 2048])
  np.testing.assert_allclose(scaled[wavelen > 8192], inv[wavelen > 8192] / 8)
  mid = (wavelen >= 2048) & (wavelen <= 8192)
  assert mid.any()
  s = (8192 / wavelen[mid] - 1) / 3
  np.testing.assert_allclose(scaled[mid], (1 - s) * inv[mid] / 8 + s * inv[mid])


def test_bfloat16_compute_close_to_float32():
  cfg32 = _cfg()
  cfg16 = cfg32.replace(param_dtype="bfloat16", dtype="bfloat16")
  params = models.init_params(cfg32, _key(12))
  p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  tokens, positions, mask = _left_padded([6, 3], 6, cfg32.vocab_size, seed=13)
  a = _full_logits(params, cfg32, tokens, positions, mask)
  h16, _ = models.forward_hidden(p16, cfg16, tokens, positions, mask)
  assert h16.dtype == jnp.bfloat16
  b = models.logits(p16, cfg16, h16)
  assert b.dtype == jnp.float32
  real = np.asarray(mask)
  err = np.abs(np.asarray(a) - np.asarray(b))[real].max()
  # Logits are O(0.1) here; bf16 keeps 8 mantissa bits (relative 4e-3).
  assert err < 0.02, err
