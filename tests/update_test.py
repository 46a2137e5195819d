"""The update against forced outcomes: its direction, the log-prob alignment with the sampler,
gradient accumulation, the rollout's grading and the checkpoint's PRNG key.

Each test fails on a specific wrong trainer that runs and agrees with itself: gradient ascent,
log-probs one position off, micro-batches that do not add up, responses graded against the
wrong problem, a fresh key after a restore.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from rlvr_jax import models, sampling, tasks
from rlvr_jax.rl import batch as batch_lib, checkpointing, loss as loss_lib, rollout
from rlvr_jax.rl import objectives, optim, update as update_lib

CFG = models.preset("tiny")
TOK = tasks.CharTokenizer()
LOSS = ml_collections.ConfigDict(dict(eps_low=0.2, eps_high=0.28, dual_clip=0.0, agg="token-mean",
                                      kl_coef=0.0, entropy_coef=0.0, ratio="token", tis_cap=0.0))


def _optimizer(lr: float):
  return optim.make_optimizer(ml_collections.ConfigDict(dict(
      lr=lr, warmup_steps=0, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0, max_grad_norm=1e9)))


def _state(params, optimizer):
  return {"params": params, "opt_state": optimizer.init(params), "step": jnp.int32(0)}


def _rows(prompts: list[str], responses: list[str], t: int) -> batch_lib.TrainBatch:
  """Char-tokenized prompt + response (+ EOS) rows, the response as loss tokens."""
  from rlvr_jax import sampling
  prompt_BxP, pmask_BxP = sampling.text.encode_prompts(TOK, prompts, chat=False, pad_id=0)
  resp_BxT = np.zeros((len(prompts), t), np.int32)
  rmask_BxT = np.zeros((len(prompts), t), np.int32)
  for i, r in enumerate(responses):
    ids = TOK.encode(r) + [TOK.eos_id]
    resp_BxT[i, :len(ids)], rmask_BxT[i, :len(ids)] = ids, 1
  return batch_lib.TrainBatch(np.concatenate([prompt_BxP, resp_BxT], 1),
                              np.concatenate([pmask_BxP, rmask_BxT], 1),
                              rmask_BxT.astype(np.float32))


def _seq_logp(params, train: batch_lib.TrainBatch) -> np.ndarray:
  logp, _ = objectives.response_logprobs(params, CFG, train.tokens_RxS, train.attn_mask_RxS,
                                       train.loss_mask_RxT.shape[1], 8)
  return np.asarray((logp * train.loss_mask_RxT).sum(-1))


def test_supervised_steps_lower_the_loss():
  train = _rows(["ab", "cd", "ef", "gh"], ["RRDD", "LU", "DDDL", "UR"], 8)
  optimizer = _optimizer(3e-3)
  loss_fn = functools.partial(objectives.sft_loss_fn, cfg=CFG, chunk_size=8)
  step = jax.jit(functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                   num_micro=1))
  state = _state(models.init_params(CFG, jax.random.PRNGKey(0)), optimizer)
  losses = []
  for _ in range(8):
    state, m = step(state, train)
    losses.append(float(m["loss"]))
  # The loss is measured before each update: every update lowers it (gradient descent on the
  # same batch with a small step), and 7 of them by a clear margin.
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < 0.8 * losses[0], losses


def test_rl_update_raises_positive_and_lowers_negative_advantage_responses():
  train = _rows(["maze"] * 2, ["RRDD", "LLUU"], 6)
  params = models.init_params(CFG, jax.random.PRNGKey(1))
  before = _seq_logp(params, train)
  old = np.asarray(objectives.response_logprobs(params, CFG, train.tokens_RxS, train.attn_mask_RxS,
                                              6, 8)[0])
  train = train._replace(adv_R=np.array([1.0, -1.0], np.float32), old_logp_RxT=old)
  optimizer = _optimizer(1e-3)
  loss_fn = functools.partial(objectives.pg_loss_fn, cfg=CFG, loss_cfg=LOSS, chunk_size=8)
  state, m = update_lib.train_step(_state(params, optimizer), train, loss_fn=loss_fn,
                                 optimizer=optimizer, num_micro=1)
  after = _seq_logp(state["params"], train)
  assert float(m["grad_norm"]) > 0
  assert after[0] > before[0] and after[1] < before[1], (before, after)


def test_first_minibatch_log_probs_equal_the_samplers():
  # On-policy (temperature 1, top_p 1, fp32): the trainer's teacher-forced log-probs of the
  # sampled tokens are the sampler's, so the ratio is 1, approx_kl 0 and nothing is clipped.
  params = models.init_params(CFG, jax.random.PRNGKey(2))
  task = tasks.get("maze")
  examples = [{"grid": "S.\n.E", "size": 2, "solution": "RD"},
              {"grid": "S..\n.*.\n..E", "size": 3, "solution": "RRDD"}]
  ro = rollout.generate(params, CFG, task, TOK, examples, jax.random.PRNGKey(0), num_samples=3,
                        max_prompt_len=512, max_new_tokens=12, temperature=1.0, top_p=1.0,
                        chat=False)
  adv_BxN = np.array([[1.0, -1.0, 0.5], [-0.5, 1.0, -1.0]], np.float32)
  train = batch_lib.assemble(ro, adv_BxN, np.ones((2, 3), bool))
  logp, _ = objectives.response_logprobs(params, CFG, train.tokens_RxS, train.attn_mask_RxS, 12, 8)
  mask = train.loss_mask_RxT > 0
  assert mask.sum() > 12
  np.testing.assert_allclose(np.asarray(logp)[mask], ro.logprobs_RxT[mask], atol=2e-5)
  _, m = loss_lib.policy_loss(logp, train.old_logp_RxT, train.adv_R, train.loss_mask_RxT)
  assert float(m["approx_kl"]) < 1e-9
  assert float(m["clip_frac_low"]) == float(m["clip_frac_high"]) == 0.0


@pytest.mark.parametrize("num_micro", [2, 4])
def test_micro_batches_equal_one_batch(num_micro):
  rng = np.random.default_rng(3)
  responses = ["".join(rng.choice(list("LRUD"), rng.integers(1, 7))) for _ in range(8)]
  train = _rows([f"p{i}" for i in range(8)], responses, 8)
  params = models.init_params(CFG, jax.random.PRNGKey(4))
  old = np.asarray(objectives.response_logprobs(params, CFG, train.tokens_RxS, train.attn_mask_RxS,
                                              8, 8)[0])
  old = old + rng.normal(0, 0.3, old.shape).astype(np.float32)  # ratios off 1: clips act
  train = train._replace(adv_R=rng.normal(0, 1, 8).astype(np.float32), old_logp_RxT=old)
  # An "optimizer" whose state is the accumulated gradient it was given (AdamW would turn float32
  # rounding of a near-zero gradient entry into a full-size step; params - lr * g loses the
  # gradient's low bits to the params' own rounding).
  keep = lambda g, s, p=None: (jax.tree.map(jnp.zeros_like, g), g)
  optimizer = optax.GradientTransformation(lambda p: jax.tree.map(jnp.zeros_like, p), keep)
  loss_fn = functools.partial(objectives.pg_loss_fn, cfg=CFG, loss_cfg=LOSS, chunk_size=8)
  run = lambda m: update_lib.train_step(_state(params, optimizer), train, loss_fn=loss_fn,
                                      optimizer=optimizer, num_micro=m)
  (s1, m1), (sm, mm) = run(1), run(num_micro)
  assert set(m1) == set(mm)
  for k in m1:
    np.testing.assert_allclose(float(mm[k]), float(m1[k]), rtol=2e-5, atol=1e-7, err_msg=k)
  assert float(m1["clip_frac_low"]) + float(m1["clip_frac_high"]) > 0
  grad_1, grad_m = s1["opt_state"], sm["opt_state"]
  # Summation order differs (M partial sums): float32 rounding relative to each leaf's scale.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max())), grad_m, grad_1)
  assert float(m1["grad_norm"]) > 0


def test_forced_correct_response_scores_its_own_problem_only(monkeypatch):
  task = tasks.get("maze")
  own = {"grid": "S..\n**.\nE..", "size": 3, "solution": "RRDDLL"}
  other = {"grid": "S*E\n.*.\n...", "size": 3, "solution": "DDRRUU"}
  forced = "<answer>RRDDLL</answer>"
  assert task.verify(forced, own) == 1.0 and task.verify(forced, other) == 0.0
  ids = TOK.encode(forced) + [TOK.eos_id]

  def sample(params, cfg, tokens_BxP, mask_BxP, key, *, num_samples, max_new_tokens, **kw):
    r = tokens_BxP.shape[0] * num_samples
    tokens = np.zeros((r, max_new_tokens), np.int32)
    tokens[:, :len(ids)] = ids
    mask = (tokens != 0).astype(np.int32)
    zeros = np.zeros((r, max_new_tokens), np.float32)
    return sampling.SampleOutput(tokens, mask, zeros, zeros, zeros,
                                 np.full(r, len(ids), np.int32), np.ones(r, bool))

  monkeypatch.setattr(sampling, "sample", sample)
  ro = rollout.generate(None, CFG, task, TOK, [own, other, other], jax.random.PRNGKey(0),
                        num_samples=2, max_prompt_len=512, max_new_tokens=32, temperature=1.0,
                        top_p=1.0, chat=False)
  assert ro.responses == [forced] * 6
  np.testing.assert_array_equal(ro.rewards_BxN, [[1, 1], [0, 0], [0, 0]])


@pytest.mark.parametrize("typed", [False, True])
def test_checkpoint_restores_the_saved_prng_key(tmp_path, typed):
  saved = jax.random.PRNGKey(1234)
  fresh = jax.random.PRNGKey(0)
  if typed:
    saved, fresh = jax.random.wrap_key_data(saved), jax.random.wrap_key_data(fresh)
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=1, async_save=False)
  state = {"w": jnp.arange(3.0)}
  ckpt.save(5, state, saved, {"rl_step": 5})
  restored_state, key, meta = ckpt.restore(5, state, fresh)
  ckpt.close()
  data = jax.random.key_data if typed else (lambda k: k)
  np.testing.assert_array_equal(np.asarray(data(key)), np.asarray(data(saved)))
  assert not np.array_equal(np.asarray(data(key)), np.asarray(data(fresh)))
  # The next draws are the saved run's, not a fresh run's.
  np.testing.assert_array_equal(jax.random.uniform(key, (4,)), jax.random.uniform(saved, (4,)))
  assert meta == {"rl_step": 5}
  np.testing.assert_array_equal(restored_state["w"], [0.0, 1.0, 2.0])


def test_reference_policy_is_a_frozen_copy_that_survives_the_donated_update():
  from rlvr_jax import sharding
  from rlvr_jax.rl import train
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
  params = models.init_params(CFG, jax.random.PRNGKey(5))
  values = jax.tree.map(np.array, params)
  ref = train.reference_params(params)
  optimizer = _optimizer(1e-2)
  state = optim.init_state(params, optimizer, mesh)
  train_batch = _rows(["ab", "cd"], ["RR", "LD"], 4)
  loss_fn = functools.partial(objectives.sft_loss_fn, cfg=CFG, chunk_size=8)
  step = jax.jit(functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                   num_micro=1), donate_argnums=0)
  state, _ = step(state, train_batch)
  # The policy moved; the reference still holds the initial values.
  assert any(np.any(np.asarray(a) != b) for a, b in
             zip(jax.tree.leaves(state["params"]), jax.tree.leaves(values)))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, ref), values)
