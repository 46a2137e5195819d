"""The typed batch (rlvr_jax/rl/batch.py): what the estimator takes out of the loss is out of it.

The central check: the update from a batch equals the update from the same batch with the
masked-out rollouts removed (same loss, same gradient), for bbg's gated problems (its default
gate, and zero_success_only), passk_full's N mod k left-overs, easy_threshold's easy problems
and mask_high_success's high buckets.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rlvr_jax import advantages, models, tasks
from rlvr_jax.rl import batch as batch_lib, loss as loss_lib, objectives, optim, rollout, stats
from rlvr_jax.rl import update as update_lib

CFG = models.preset("tiny")
B, N, P, T = 4, 6, 5, 7
LOSS = ml_collections.ConfigDict(dict(eps_low=0.2, eps_high=0.28, dual_clip=0.0, agg="token-mean",
                                      kl_coef=0.0, entropy_coef=0.0, ratio="token", tis_cap=0.0))


def _rollouts(rewards_BxN, seed=0, t=T, max_len=T) -> rollout.Rollouts:
  """Random prompts of P tokens and responses of 1..max_len tokens in t columns, with the
  given rewards (also the rows of tests/skipping_test.py)."""
  rng = np.random.default_rng(seed)
  r = np.asarray(rewards_BxN, np.float32)
  b, n = r.shape
  prompt_len_B = rng.integers(2, P + 1, b)
  prompt_mask_BxP = (np.arange(P)[None] >= P - prompt_len_B[:, None]).astype(np.int32)
  prompt_BxP = rng.integers(3, 99, (b, P)).astype(np.int32) * prompt_mask_BxP
  lengths_R = rng.integers(1, max_len + 1, b * n).astype(np.int32)
  mask_RxT = (np.arange(t)[None] < lengths_R[:, None]).astype(np.int32)
  tokens_RxT = (rng.integers(3, 99, (b * n, t)) * mask_RxT).astype(np.int32)
  logp_RxT = (rng.normal(-3.0, 0.5, (b * n, t)) * mask_RxT).astype(np.float32)
  return rollout.Rollouts(
      examples=list(range(b)), prompt_BxP=prompt_BxP, prompt_mask_BxP=prompt_mask_BxP,
      tokens_RxT=tokens_RxT, mask_RxT=mask_RxT, logprobs_RxT=logp_RxT,
      sampling_logprobs_RxT=logp_RxT, entropy_RxT=np.abs(logp_RxT),
      lengths_R=lengths_R, finished_R=np.ones(b * n, bool), responses=[""] * (b * n),
      rewards_BxN=r)


@functools.lru_cache(maxsize=1)
def _params():
  return models.init_params(CFG, jax.random.PRNGKey(0))


@functools.partial(jax.jit, static_argnames=("agg",))
def _loss_and_grad(params, train: batch_lib.TrainBatch, agg: str = "token-mean"):
  loss_cfg = ml_collections.ConfigDict(dict(LOSS.to_dict(), agg=agg))
  f = functools.partial(objectives.pg_loss_fn, cfg=CFG, loss_cfg=loss_cfg, chunk_size=8)
  denom = loss_lib.loss_denominator(train.loss_mask_RxT, agg)
  (loss, metrics), grads = jax.value_and_grad(f, has_aux=True)(params, train, denom)
  return loss, metrics, grads


def _without_masked_rollouts(ro, adv_BxN, keep_BxN):
  """The batch of only the kept rollouts, built from the rollouts alone (no estimator mask)."""
  n = ro.num_samples
  rows = np.flatnonzero(np.asarray(keep_BxN).reshape(-1))
  full = batch_lib.assemble(ro, adv_BxN, np.ones(adv_BxN.shape, bool))
  return full.rows(rows), rows // n


# Rewards chosen so that each estimator takes some rollouts out and leaves others in.
CASES = {
    # bbg (n = 6, K = 256, tau = 0.01; its gate u(m) < tau (n + 1) = 0.07 with u(1) = 0.157,
    # u(2) = 0.003): 4 and 5 successes of 6 are gated, 1 and 0 are kept (the m = 0 problem
    # through its signed REINFORCE term).
    "bbg": (dict(name="bbg"), [[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0],
                               [0, 0, 0, 0, 0, 0]]),
    # passk_full with k = 3 and N = 7: two groups of 3 a problem (their rewards standardized
    # against each other), 1 left-over.
    "passk_full": (dict(name="passk_full", k=3), [[1, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0, 0],
                                                  [0, 1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 1, 0, 0]]),
    # bbg restricted to zero-success problems: the 2/6 and 1/6 problems leave the loss, the
    # two 0/6 problems train on the signed REINFORCE term.
    "bbg_zero_only": (dict(name="bbg", zero_success_only=True),
                      [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0],
                       [0, 0, 0, 0, 0, 0]]),
    # grpo with high-success buckets masked (>= 0.75 by default; here >= 4/6 with 0.66):
    # 4/6 and 5/6 leave the loss, 1/6 and 3/6 stay.
    "high": (dict(name="grpo", mask_high_success=True, high_success_min=0.66),
             [[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]),
    # grpo without problems above 0.6 accuracy: 5/6 and 4/6 are easy.
    "easy": (dict(name="grpo", easy_threshold=0.6), [[1, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0],
                                                     [1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("agg", loss_lib.AGGREGATIONS)
def test_masked_out_rollouts_leave_the_update(case, agg):
  block, rewards = CASES[case]
  ro = _rollouts(rewards, seed=len(case))
  valid_BxN = np.ones(ro.rewards_BxN.shape, bool)
  adv_BxN, info = batch_lib.estimate(advantages.from_config(block), ro, valid_BxN,
                                     jax.random.PRNGKey(3))
  keep_BxN = info["loss_mask_BxN"]
  assert 0 < keep_BxN.sum() < keep_BxN.size, "the case must take some rollouts out and keep others"
  train = batch_lib.assemble(ro, adv_BxN, keep_BxN)
  # The ratio must not be 1 everywhere, or the clip never acts: old log-probs are the
  # current policy's, perturbed.
  rng = np.random.default_rng(7)
  params = _params()
  logp, _ = objectives.response_logprobs(params, CFG, train.tokens_RxS, train.attn_mask_RxS, T, 8)
  old = np.asarray(logp) + rng.normal(0, 0.2, logp.shape).astype(np.float32)
  train = train._replace(old_logp_RxT=old)
  reduced, _ = _without_masked_rollouts(ro, adv_BxN, keep_BxN)
  rows = np.flatnonzero(keep_BxN.reshape(-1))
  reduced = reduced._replace(old_logp_RxT=old[rows])
  loss_a, m_a, g_a = _loss_and_grad(params, train, agg)
  loss_b, m_b, g_b = _loss_and_grad(params, reduced, agg)
  assert float(loss_a) != 0.0
  np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-5, atol=1e-7)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7), g_a, g_b)
  for k in ("clip_frac_low", "clip_frac_high", "approx_kl", "entropy"):
    np.testing.assert_allclose(float(m_a[k]), float(m_b[k]), rtol=1e-5, atol=1e-7, err_msg=k)


def test_metrics_report_why_rollouts_left_the_loss_and_num_tokens_counts_only_kept_ones():
  none = dict(gated_frac=0.0, easy_frac=0.0, high_masked_frac=0.0, leftover_frac=0.0)
  for case, expect in (("bbg", dict(none, gated_frac=0.5)),
                       ("bbg_zero_only", dict(none, gated_frac=0.5)),
                       ("passk_full", dict(none, leftover_frac=1 / 7)),
                       ("easy", dict(none, easy_frac=0.5)),
                       ("high", dict(none, high_masked_frac=0.5))):
    block, rewards = CASES[case]
    ro = _rollouts(rewards, seed=len(case))
    ro.responses = ["<answer>R</answer>"] * ro.tokens_RxT.shape[0]
    spec = batch_lib.BatchSpec(generate=lambda p, ex, k, ro=ro: ro, batch_prompts=B)
    made = batch_lib.make_batch(None, jax.random.PRNGKey(0), spec, lambda: [None] * B,
                                advantages.from_config(block), case)
    scalars, _ = stats.batch_metrics(made, tasks.get("maze"))
    for k, v in expect.items():
      np.testing.assert_allclose(scalars[k], v, err_msg=f"{case} {k}")
    np.testing.assert_allclose(scalars["loss_frac"], 1.0 - sum(expect.values()), err_msg=case)
    keep_R = made.info["loss_mask_BxN"].reshape(-1)
    # Only the kept rollouts' response tokens are loss tokens; the update counts those.
    np.testing.assert_array_equal(made.train.loss_mask_RxT.sum(-1), ro.mask_RxT.sum(-1) * keep_R)
    optimizer = optim.make_optimizer(ml_collections.ConfigDict(dict(
        lr=1e-3, warmup_steps=0, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0, max_grad_norm=1.0)))
    state = {"params": _params(), "opt_state": optimizer.init(_params()), "step": jnp.int32(0)}
    loss_fn = functools.partial(objectives.pg_loss_fn, cfg=CFG, loss_cfg=LOSS, chunk_size=8)
    _, m = update_lib.train_step(state, made.train, loss_fn=loss_fn, optimizer=optimizer,
                               num_micro=1)
    assert int(m["num_tokens"]) == int(ro.mask_RxT.sum(-1)[keep_R].sum()) < int(ro.mask_RxT.sum())
    if case == "bbg":
      kept_weight = made.info["weight"][~made.info["gated"]]
      np.testing.assert_allclose(scalars["bbg_weight_mean"], kept_weight.mean(), rtol=1e-6)


def test_invalid_rollouts_and_fillers_leave_the_loss_even_if_the_estimator_keeps_them():
  ro = _rollouts([[1, 0, 0, 0, 0, 0]] * B)
  valid_BxN = np.ones((B, N), bool)
  valid_BxN[1] = False  # a dynamic-sampling filler
  valid_BxN[2, :3] = False  # truncated rollouts under mask_truncated
  adv_BxN, info = batch_lib.estimate(advantages.from_config({"name": "grpo"}), ro, valid_BxN,
                                     jax.random.PRNGKey(0))
  np.testing.assert_array_equal(info["loss_mask_BxN"], valid_BxN)
  train = batch_lib.assemble(ro, adv_BxN, info["loss_mask_BxN"])
  assert not train.loss_mask_RxT[N:2 * N].any() and not train.adv_R[N:2 * N].any()
  assert not train.loss_mask_RxT[2 * N:2 * N + 3].any()


def test_non_finite_advantages_are_an_error():
  ro = _rollouts([[1, 0, 0, 0, 0, 0]] * B)
  bad = lambda r, v, key=None, entropy_BxN=None: (np.full(r.shape, np.nan, np.float32),
                                                   {"loss_mask_BxN": v})
  with pytest.raises(FloatingPointError, match="non-finite advantages from mine"):
    batch_lib.estimate(bad, ro, np.ones((B, N), bool), jax.random.PRNGKey(0), "mine")
