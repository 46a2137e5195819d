"""The update's cost follows the tokens with gradient (rl/skipping.py, batch.trim_responses):
the same update, fewer rows and columns.

The checks: parameters and AdamW state after the updates of a step with zero-advantage rows
left out equal those of the full update (grpo, passk_analytical and bbg batches); a KL or
entropy term turns skipping off; a batch cut at its longest response has the loss and
gradient of the full-width one. The packing rule is checked against hand-worked shapes.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlvr_jax import advantages, models
from rlvr_jax.rl import batch as batch_lib, loss as loss_lib, objectives, optim, rollout
from rlvr_jax.rl import skipping, train as train_lib

import batch_test  # noqa: E402 (the shared random rows; pytest puts tests/ on the path)

CFG = models.preset("tiny")
N, P = 4, batch_test.P


def _rollouts(rewards_BxN, t: int, max_len: int, seed: int = 0) -> rollout.Rollouts:
  """tests/batch_test.py's random rows (prompts of P = 5 tokens) in t response columns."""
  return batch_test._rollouts(rewards_BxN, seed=seed, t=t, max_len=max_len)


def test_packed_shapes_are_the_hand_worked_buckets():
  # One micro-batch of 64 rows on one device: the bucket_length ladder from 8.
  one = lambda k, d=1: skipping.packed_shape(k, 64, 1, d)
  assert [one(k) for k in (0, 1, 8, 9, 13, 17, 25, 40, 49, 64)] == [
      (8, 1), (8, 1), (8, 1), (12, 1), (16, 1), (24, 1), (32, 1), (48, 1), (64, 1), (64, 1)]
  # Rounded up to 8 data-parallel devices: 12 -> 16, 24 stays.
  assert one(9, 8) == (16, 1) and one(20, 8) == (24, 1) and one(0, 8) == (8, 1)
  # Four micro-batches of 16: a power of two of full micro-batches past the first.
  four = lambda k: skipping.packed_shape(k, 16, 4, 1)
  assert [four(k) for k in (5, 16, 17, 32, 33, 64)] == [
      (8, 1), (16, 1), (32, 2), (32, 2), (64, 4), (64, 4)]
  # Three micro-batches: never more than M.
  assert skipping.packed_shape(33, 16, 3, 1) == (48, 3)
  # A micro-batch smaller than the ladder's start.
  assert skipping.packed_shape(3, 4, 2, 1) == (4, 1) and skipping.packed_shape(0, 4, 2, 2) == (4, 1)
  with pytest.raises(ValueError, match="do not fit"):
    skipping.packed_shape(65, 16, 4, 1)


def test_pack_puts_kept_rows_first_and_fills_with_skipped_rows_marked_dead():
  keep_R = np.zeros(40, bool)
  keep_R[[3, 7, 21, 30, 31, 35, 36, 38, 39]] = True
  rows_mb = np.arange(20, 40)  # 7 kept: 21, 30, 31, 35, 36, 38, 39
  idx, live, micro = skipping.pack(rows_mb, keep_R, 20, 1, 1)
  # 7 kept rows -> a bucket of 8: the kept in order, then the first skipped row (20).
  np.testing.assert_array_equal(idx, [21, 30, 31, 35, 36, 38, 39, 20])
  np.testing.assert_array_equal(live, [True] * 7 + [False])
  assert micro == 1
  # Everything kept: the mini-batch as it is, in M micro-batches.
  idx, live, micro = skipping.pack(rows_mb, np.ones(40, bool), 10, 2, 1)
  np.testing.assert_array_equal(idx, rows_mb)
  assert live.all() and micro == 2


def test_only_the_pg_term_alone_allows_skipping():
  assert skipping.applies(0.0, 0.0)
  assert not skipping.applies(0.01, 0.0) and not skipping.applies(0.0, 1e-3)
  np.testing.assert_array_equal(
      skipping.kept_rows(np.array([0.0, 0.5, -0.2, 0.3]), np.array([3, 2, 0, 1])),
      [False, True, False, True])


# Rewards with all-equal groups (advantage 0 for grpo and passk_analytical; bbg gates the
# high-success ones and keeps the 0/4 problems with a negative advantage).
REWARDS = [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0],
           [0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0]]
ESTIMATORS = {"grpo": dict(name="grpo"), "passk_analytical": dict(name="passk_analytical", k=2),
              "bbg": dict(name="bbg")}


def _loss_config(**kw):
  return ml_collections.ConfigDict(dict(dict(
      eps_low=0.2, eps_high=0.28, dual_clip=0.0, agg="token-mean", kl_coef=0.0,
      entropy_coef=0.0, ratio="token", tis_cap=0.0), **kw))


def _close_at_leaf_scale(a, b, frac: float = 1e-4):
  """|a - b| <= frac * max |a| entrywise: float32 rounding of sums, at the leaf's scale."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  np.testing.assert_array_less(np.abs(a - b), frac * np.abs(a).max() + 1e-12)


def _step(train, minibatches, *, skip, agg, num_micro):
  """The trainer's own update path (make_update, make_take_rows, update_minibatches) on one
  device, from the same initial state: returns (state, metrics)."""
  config = ml_collections.ConfigDict(dict(
      loss=_loss_config(agg=agg), rl=dict(logprob_chunk=8),
      optimizer=dict(lr=1e-3, warmup_steps=0, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.01,
                     max_grad_norm=1e9)))
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  rows_sh, repl = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
  optimizer = optim.make_optimizer(config.optimizer)
  params = models.init_params(CFG, jax.random.PRNGKey(0))
  state = {"params": params, "opt_state": optimizer.init(params), "step": jnp.int32(0)}
  state = jax.device_put(state, repl)
  update = train_lib.make_update(config, CFG, optimizer, jax.tree.map(lambda _: repl, state),
                                 rows_sh, repl)
  take_rows = train_lib.make_take_rows(rows_sh, repl, agg)
  train = jax.device_put(train, rows_sh)
  return train_lib.update_minibatches(update, take_rows, state, train, minibatches, skip=skip,
                                      num_micro=num_micro, row_multiple=1)


@pytest.mark.parametrize("estimator,agg,num_micro", [("grpo", "token-mean", 1),
                                                    ("passk_analytical", "seq-mean-token-mean", 2),
                                                    ("bbg", "seq-mean-token-sum", 2)])
def test_skipping_zero_advantage_rows_gives_the_same_update(estimator, agg, num_micro):
  ro = _rollouts(REWARDS, t=12, max_len=12, seed=1)
  valid_BxN = np.ones(ro.rewards_BxN.shape, bool)
  adv_BxN, info = batch_lib.estimate(advantages.from_config(ESTIMATORS[estimator]), ro,
                                     valid_BxN, jax.random.PRNGKey(3))
  train = batch_lib.assemble(ro, adv_BxN, info["loss_mask_BxN"])
  # Old log-probs off the current policy, so the clip acts on some tokens.
  logp, _ = objectives.response_logprobs(models.init_params(CFG, jax.random.PRNGKey(0)), CFG,
                                         train.tokens_RxS, train.attn_mask_RxS, 12, 8)
  noise = np.random.default_rng(7).normal(0, 0.3, logp.shape).astype(np.float32)
  train = train._replace(old_logp_RxT=np.asarray(logp) + noise)
  # Two mini-batches of 4 problems (16 rows): two optimizer steps.
  minibatches = [np.arange(16, dtype=np.int32), np.arange(16, 32, dtype=np.int32)]
  grad_R = skipping.kept_rows(train.adv_R, train.loss_mask_RxT.sum(-1))
  assert 0 < grad_R.sum() < 24, "the case needs rows with and without gradient"
  full, m_full = _step(train, minibatches, skip=False, agg=agg, num_micro=num_micro)
  kept, m_kept = _step(train, minibatches, skip=True, agg=agg, num_micro=num_micro)
  assert m_full["update_rows"] == 32 and m_kept["update_rows"] < 32
  assert m_kept["grad_rows"] == m_full["grad_rows"] == grad_R.sum()
  assert m_kept["num_tokens"] == m_full["num_tokens"] == m_full["update_tokens"]
  # (bbg's gated rows are out of the loss already; grpo's flat groups are in it with
  # advantage 0: their tokens count in the denominator and skip the update.)
  assert m_kept["update_tokens"] == train.loss_mask_RxT[grad_R].sum()
  init = models.init_params(CFG, jax.random.PRNGKey(0))
  moved = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(full["params"]),
                                                          jax.tree.leaves(init)))
  assert moved > 1e-4, "the updates must move the parameters"
  # The gradients are the same sums taken in another order (packed rows, fewer micro-
  # batches): the moments agree to float32 rounding of each leaf's scale, and the losses and
  # gradient norms (which a wrong denominator or a dropped row would change) to 1e-5. AdamW
  # divides each gradient entry by its own root mean square, so an entry that is a nearly
  # cancelling sum carries its rounding into the parameters: measured up to 8e-6 (passk,
  # 2 micro-batches; exactly 0 for grpo in 1), against steps of lr = 1e-3.
  jax.tree.map(_close_at_leaf_scale, full["opt_state"], kept["opt_state"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=2e-5),
               full["params"], kept["params"])
  for k in ("loss", "grad_norm", "pg_loss"):
    np.testing.assert_allclose(m_kept[k], m_full[k], rtol=1e-5, err_msg=k)


def test_the_denominator_is_the_whole_mini_batch_s():
  # A packed mini-batch must be normalized by every loss token of the mini-batch, the
  # skipped rows' too: the alternative (the kept rows' tokens only) is a bigger step.
  ro = _rollouts(REWARDS, t=12, max_len=12, seed=2)
  adv_BxN, info = batch_lib.estimate(advantages.from_config(ESTIMATORS["grpo"]), ro,
                                     np.ones((8, N), bool), jax.random.PRNGKey(3))
  train = batch_lib.assemble(ro, adv_BxN, info["loss_mask_BxN"])
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  rows_sh, repl = NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
  rows_mb = np.arange(16, dtype=np.int32)
  keep_R = skipping.kept_rows(train.adv_R, train.loss_mask_RxT.sum(-1))
  idx, live, _ = skipping.pack(rows_mb, keep_R, 16, 1, 1)
  for agg, want in (("token-mean", train.loss_mask_RxT[:16].sum()),
                    ("seq-mean-token-mean", (train.loss_mask_RxT[:16].sum(-1) > 0).sum())):
    packed, denom = train_lib.make_take_rows(rows_sh, repl, agg)(
        jax.device_put(train, rows_sh), rows_mb, idx, live)
    assert float(denom) == float(want)
    # Fillers are out of the loss.
    np.testing.assert_array_equal(np.asarray(packed.loss_mask_RxT).sum(-1)[~live], 0)
    np.testing.assert_array_equal(np.asarray(packed.adv_R)[~live], 0)


def test_kl_or_entropy_turns_skipping_off_in_the_trainer():
  config = ml_collections.ConfigDict(dict(rl=dict(skip_zero_advantage=True),
                                          loss=_loss_config()))
  assert train_lib.skips_zero_advantage(config)
  for kw in (dict(kl_coef=0.05), dict(entropy_coef=1e-3)):
    config.loss = _loss_config(**kw)
    assert not train_lib.skips_zero_advantage(config)
  config.loss, config.rl.skip_zero_advantage = _loss_config(), False
  assert not train_lib.skips_zero_advantage(config)


@functools.partial(jax.jit, static_argnames=("agg",))
def _loss_and_grad(params, train: batch_lib.TrainBatch, agg: str):
  f = functools.partial(objectives.pg_loss_fn, cfg=CFG, loss_cfg=_loss_config(agg=agg),
                        chunk_size=8)
  denom = loss_lib.loss_denominator(train.loss_mask_RxT, agg)
  return jax.value_and_grad(f, has_aux=True)(params, train, denom)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_trimmed_batch_has_the_loss_and_gradient_of_the_full_width_one(agg):
  # Responses of at most 11 tokens in 40 columns: cut at bucket_length(11) = 16.
  ro = _rollouts(REWARDS, t=40, max_len=11, seed=3)
  adv_BxN, info = batch_lib.estimate(advantages.from_config(ESTIMATORS["grpo"]), ro,
                                     np.ones((8, N), bool), jax.random.PRNGKey(3))
  full = batch_lib.assemble(ro, adv_BxN, info["loss_mask_BxN"], keep_sampling_logp=True)
  trimmed = batch_lib.trim_responses(full)
  assert trimmed.loss_mask_RxT.shape == (32, 16) and trimmed.tokens_RxS.shape == (32, P + 16)
  assert trimmed.sampling_logp_RxT.shape == (32, 16) and trimmed.adv_R.shape == (32,)
  np.testing.assert_array_equal(trimmed.tokens_RxS, full.tokens_RxS[:, :P + 16])
  params = models.init_params(CFG, jax.random.PRNGKey(0))
  # Old log-probs off the policy (the clip acts), the same values in both layouts.
  logp, _ = objectives.response_logprobs(params, CFG, full.tokens_RxS, full.attn_mask_RxS, 40, 8)
  old = np.asarray(logp) + np.random.default_rng(5).normal(0, 0.3, logp.shape).astype(np.float32)
  full = full._replace(old_logp_RxT=old)
  trimmed = trimmed._replace(old_logp_RxT=old[:, :16])
  (loss_f, m_f), g_f = _loss_and_grad(params, full, agg)
  (loss_t, m_t), g_t = _loss_and_grad(params, trimmed, agg)
  assert float(loss_f) != 0.0
  np.testing.assert_allclose(float(loss_t), float(loss_f), rtol=1e-5, atol=1e-8)
  # Float32 sums over other widths: equal to rounding at each leaf's scale (one entry of
  # 1.4e-5, a nearly cancelling sum, differed by 1.1e-8 where the leaf's largest is 1e-3).
  jax.tree.map(_close_at_leaf_scale, g_f, g_t)
  for k in ("clip_frac_low", "clip_frac_high", "approx_kl", "entropy"):
    np.testing.assert_allclose(float(m_t[k]), float(m_f[k]), rtol=1e-5, atol=1e-8, err_msg=k)


def test_trimming_keeps_a_batch_whose_longest_response_fills_the_width():
  ro = _rollouts(REWARDS, t=12, max_len=12, seed=4)
  ro.mask_RxT[0] = 1  # one response of the full 12 tokens
  full = batch_lib.assemble(ro, np.zeros((8, N), np.float32), np.ones((8, N), bool))
  assert batch_lib.trim_responses(full) is full
  # 17 tokens in 40 columns: the bucket after 16 is 24.
  ro = _rollouts(REWARDS, t=40, max_len=3, seed=4)
  ro.mask_RxT[5, :17] = 1
  full = batch_lib.assemble(ro, np.zeros((8, N), np.float32), np.ones((8, N), bool))
  assert batch_lib.trim_responses(full).loss_mask_RxT.shape == (32, 24)
