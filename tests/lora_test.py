"""LoRA (models/lora.py) against independent references: the base model (B = 0), the merged
weights W + scale * A @ B (forward, gradients by the chain rule, greedy sampling), and a
supervised problem the adapters alone must learn.

Each test names the wrong code it catches: an adapter added with the wrong scale or shape,
gradients or optimizer moments that reach the base, a decode step that drops the adapters,
a reference policy that keeps them.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import models, sampling, sharding
from rlvr_jax.models import lora
from rlvr_jax.rl import objectives, optim, train, update as update_lib

CFG = models.preset("tiny")
SPEC = lora.LoraSpec(rank=4, alpha=8.0)
ACFG = CFG.replace(lora_scale=SPEC.scale)


def _params(seed: int, b_std: float = 0.0, spec: lora.LoraSpec = SPEC):
  """Base params and adapters; B ~ normal(b_std) (0: the init, the base exactly)."""
  base = models.init_params(CFG, jax.random.PRNGKey(seed))
  ad = lora.init_adapters(CFG, spec, jax.random.PRNGKey(seed + 100))
  if b_std:
    keys = iter(jax.random.split(jax.random.PRNGKey(seed + 200), len(ad["layers"])))
    ad = {"layers": {n: (b_std * jax.random.normal(next(keys), x.shape) if n.endswith("_lora_b")
                         else x) for n, x in ad["layers"].items()}}
  return base, lora.join(ad, base)


def _rows(seed: int, r: int = 4, s: int = 12):
  tok = jax.random.randint(jax.random.PRNGKey(seed), (r, s), 3, CFG.vocab_size)
  mask = jnp.ones((r, s), jnp.int32).at[0, :3].set(0)  # one left-padded row
  pos = jnp.maximum(jnp.cumsum(mask, 1) - 1, 0)
  return tok, pos, mask


def _logits(params, cfg, tok, pos, mask):
  return models.logits(params, cfg, models.forward_hidden(params, cfg, tok, pos, mask)[0])


def test_spec_from_config_and_bad_blocks():
  block = lambda **kw: ml_collections.ConfigDict(
      dict(dict(rank=8, alpha=16.0, dropout=0.0, targets="q, v,down"), **kw))
  spec = lora.from_config(block())
  assert (spec.rank, spec.scale, spec.targets) == (8, 2.0, ("q", "v", "down"))
  assert lora.from_config(block(rank=0)) is None
  with pytest.raises(ValueError, match="dropout"):
    lora.from_config(block(dropout=0.1))
  with pytest.raises(ValueError, match="qproj"):
    lora.from_config(block(targets="qproj"))
  with pytest.raises(ValueError, match="twice"):
    lora.from_config(block(targets="q,q"))
  with pytest.raises(ValueError, match="rank"):
    lora.from_config(block(rank=-2))


def test_adapter_shapes_axes_and_count():
  _, params = _params(0)
  d, h, k, dh, f, l, r = 128, 4, 2, 32, 512, 4, 4
  layers = params["layers"]
  assert layers["q_lora_a"].shape == (l, d, r) and layers["q_lora_b"].shape == (l, r, h, dh)
  assert layers["k_lora_b"].shape == (l, r, k, dh)
  assert layers["o_lora_a"].shape == (l, h, dh, r) and layers["o_lora_b"].shape == (l, r, d)
  assert layers["down_lora_a"].shape == (l, f, r) and layers["up_lora_b"].shape == (l, r, f)
  counted = sum(x.size for n, x in layers.items() if lora.is_adapter(n))
  # Hand count: r * (in + out) a projection and layer.
  by_hand = l * r * ((d + h * dh) + 2 * (d + k * dh) + (h * dh + d) + 2 * (d + f) + (f + d))
  assert counted == lora.num_params(CFG, SPEC) == by_hand
  bf16 = lora.init_adapters(CFG.replace(param_dtype="bfloat16"), SPEC, jax.random.PRNGKey(0))
  assert {x.dtype for x in jax.tree.leaves(bf16)} == {jnp.dtype(jnp.float32)}
  axes = lora.logical_axes(CFG, SPEC)["layers"]
  assert axes["q_lora_a"] == ("layers", "embed", None)
  assert axes["o_lora_b"] == ("layers", None, "embed")
  assert axes["gate_lora_b"] == ("layers", None, "mlp")


def test_zero_b_is_the_base_to_the_bit_and_nonzero_b_is_the_merged_model():
  base, adapted = _params(1)
  tok, pos, mask = _rows(0)
  ref = _logits(base, CFG, tok, pos, mask)
  np.testing.assert_array_equal(_logits(adapted, ACFG, tok, pos, mask), ref)
  _, adapted = _params(1, b_std=0.05)
  out = _logits(adapted, ACFG, tok, pos, mask)
  merged = _logits(lora.merge(adapted, SPEC.scale), CFG, tok, pos, mask)
  assert float(jnp.abs(out - ref).max()) > 0.1  # the adapters do change the model
  np.testing.assert_allclose(out, merged, rtol=1e-4, atol=2e-5)
  # The scale is applied once: alpha / rank.
  wrong = _logits(lora.merge(adapted, 2 * SPEC.scale), CFG, tok, pos, mask)
  assert float(jnp.abs(out - wrong).max()) > 0.05


def _sft_batch(seed: int):
  tok, _, mask = _rows(seed, r=4, s=12)
  from rlvr_jax.rl.batch import TrainBatch
  return TrainBatch(tok, mask, jnp.ones((4, 6), jnp.float32))


def test_adapter_gradients_equal_the_chain_rule_through_the_merged_weights():
  _, adapted = _params(2, b_std=0.05)
  batch = _sft_batch(3)
  denom = jnp.float32(batch.loss_mask_RxT.sum())
  loss = lambda p, cfg: objectives.sft_loss_fn(p, batch, denom, cfg=cfg, chunk_size=4)[0]
  ad, base = lora.split(adapted)
  g_ad = jax.grad(lambda a: loss(lora.join(a, base), ACFG))(ad)["layers"]
  g_w = jax.grad(lambda p: loss(p, CFG))(lora.merge(adapted, SPEC.scale))["layers"]
  s = SPEC.scale
  for name in SPEC.targets:
    a = np.asarray(ad["layers"][name + "_lora_a"], np.float64)
    b = np.asarray(ad["layers"][name + "_lora_b"], np.float64)
    gw = np.asarray(g_w[name], np.float64)
    l, r = a.shape[0], a.shape[-1]
    a2, b2 = a.reshape(l, -1, r), b.reshape(l, r, -1)
    gw2 = gw.reshape(l, a2.shape[1], b2.shape[2])
    # W = W0 + s A B  =>  dL/dA = s dL/dW B^T,  dL/dB = s A^T dL/dW.
    want_a = s * np.einsum("lio,lro->lir", gw2, b2).reshape(a.shape)
    want_b = s * np.einsum("lir,lio->lro", a2, gw2).reshape(b.shape)
    for got, want in ((g_ad[name + "_lora_a"], want_a), (g_ad[name + "_lora_b"], want_b)):
      scale = np.abs(want).max()
      assert scale > 0, name
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-4 * scale,
                                 err_msg=name)


def test_adapters_alone_train_and_the_base_stays_bitwise():
  base, adapted = _params(4)
  batch = _sft_batch(5)
  optimizer = optim.make_optimizer(ml_collections.ConfigDict(dict(
      lr=1e-2, warmup_steps=0, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0,
      max_grad_norm=1e9)))
  mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
  state = optim.init_state(adapted, optimizer, mesh, adapters_only=True)
  # Adam moments exist for the adapters alone: twice their size, plus the step counters.
  moments = sum(x.size for x in jax.tree.leaves(state["opt_state"]) if x.ndim > 0)
  assert moments == 2 * lora.num_params(CFG, SPEC)
  loss_fn = functools.partial(objectives.sft_loss_fn, cfg=ACFG, chunk_size=4)
  step = jax.jit(functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                   num_micro=2, adapters_only=True))
  losses = []
  for _ in range(10):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.7 * losses[0], losses
  new_ad, new_base = lora.split(state["params"])
  jax.tree.map(np.testing.assert_array_equal, new_base, base)
  old_ad = lora.split(adapted)[0]["layers"]
  for name, x in new_ad["layers"].items():
    assert np.any(np.asarray(x) != np.asarray(old_ad[name])), name


def test_greedy_sampling_with_adapters_is_the_merged_models_token_for_token():
  base, adapted = _params(6, b_std=0.08)
  prompts = np.array([[0, 0, 5, 9, 11], [4, 7, 8, 3, 6]], np.int32)
  pmask = (prompts > 0).astype(np.int32)
  draw = lambda p, cfg: np.asarray(sampling.sample(
      p, cfg, prompts, pmask, jax.random.PRNGKey(0), num_samples=1, max_new_tokens=16,
      greedy=True, eos_ids=()).tokens_RxT)
  got = draw(adapted, ACFG)
  np.testing.assert_array_equal(got, draw(lora.merge(adapted, SPEC.scale), CFG))
  assert np.any(got != draw(base, CFG))  # the adapters change what is sampled


def test_the_kl_reference_is_the_base_without_a_copy():
  base, adapted = _params(7, b_std=0.05)
  mesh = sharding.make_mesh({"data": 1}, jax.devices()[:1])
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  config = ml_collections.ConfigDict({"rl": {"logprob_chunk": 4}})
  params_sh = jax.tree.map(lambda x: NamedSharding(mesh, PartitionSpec()), adapted)
  policy_lp = train.make_logprobs(config, ACFG, params_sh, rows_sh)
  ref_lp = train.reference_logprobs(config, ACFG, policy_lp, params_sh, rows_sh, None)
  tok, _, mask = _rows(8)
  got = np.asarray(ref_lp(adapted, tok, mask, 6))
  want = np.asarray(objectives.response_logprobs(base, CFG, tok, mask, 6, 4)[0])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  policy = np.asarray(policy_lp(adapted, tok, mask, 6))
  assert np.abs(policy - want).max() > 1e-3  # the policy itself is adapted
  # The base of the params is their own arrays, not copies.
  assert all(x is y for x, y in zip(jax.tree.leaves(lora.base(adapted)), jax.tree.leaves(base)))
