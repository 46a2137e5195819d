"""configs/maze_smollm2.py and configs/countdown_smollm2.py with the embedded SmolLM2-135M-Instruct.

Default suite: both configs build and validate, and with the real policy one runlocal rollout
(chat-template prompt -> sampler -> verifier -> advantages -> training rows) runs for each.
`-m slow`: a full runlocal training step of each through `train.run` (minutes on 2 CPU cores:
compiling the 30-layer update dominates).
"""

import os
import runpy

import jax
import numpy as np
import pytest

from rlvr_jax import advantages, sharding, tasks
from rlvr_jax import data as data_lib
from rlvr_jax.rl import batch as batch_lib, logger, rollout, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("maze_smollm2", "countdown_smollm2")


def _config(name: str, arg: str | None = "runlocal"):
  return runpy.run_path(os.path.join(ROOT, "configs", f"{name}.py"))["get_config"](arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_with_paper_settings_and_validates(name):
  c = _config(name, None)
  assert (c.model.source, c.model.path, c.model.chat) == ("checkpoint", "smollm2_135m_instruct",
                                                          True)
  assert (c.rl.batch_prompts, c.rl.mini_batch_prompts, c.rl.num_samples) == (128, 32, 32)
  assert (c.optimizer.lr, c.loss.eps_low, c.loss.eps_high) == (1e-6, 0.2, 0.28)
  for devices in (1, 8):
    train.validate(c, devices)
  local = _config(name)
  train.validate(local, 1)
  train.validate(local, 8)  # 4 prompts x 2 rollouts = 8 rows: also splits over 8 devices
  assert local.model.path == c.model.path and local.rl.steps == 1
  assert _config(name, "runlocal,estimator=passk_analytical,k=2").advantage.to_dict() == {
      "name": "passk_analytical", "k": 2, "easy_threshold": None, "mask_high_success": False,
      "high_success_min": 0.75}


def test_one_runlocal_rollout_verify_advantage_each_config():
  configs = {name: _config(name) for name in CONFIGS}
  first = configs["maze_smollm2"]
  mesh = sharding.make_mesh(first.mesh, jax.devices()[:1])
  with sharding.use_mesh(mesh, None):
    cfg, params, tokenizer = train.load_policy(first, mesh, None)  # once, for both configs
    assert cfg.num_layers == 30 and cfg.vocab_size == 49152
    for name, c in configs.items():
      task = tasks.get(c.task.name, **c.task.kwargs.to_dict())
      train_set, _ = data_lib.load(c.task.name, c.data)
      examples = next(data_lib.prompt_iterator(train_set, c.rl.batch_prompts, seed=c.seed))
      rl = c.rl
      ro = rollout.generate(params, cfg, task, tokenizer, examples, jax.random.PRNGKey(0),
                            num_samples=rl.num_samples, max_prompt_len=rl.max_prompt_len,
                            max_new_tokens=rl.max_new_tokens, temperature=rl.temperature,
                            top_p=rl.top_p, chat=c.model.chat, mesh=mesh)
      b, n = rl.batch_prompts, rl.num_samples
      # The prompt is the task's message in SmolLM2's chat template, ready for the answer.
      prompt = tokenizer.decode([int(t) for t, m in zip(ro.prompt_BxP[0], ro.prompt_mask_BxP[0])
                                 if m])
      assert task.messages(examples[0])[0]["content"] in prompt, name
      assert prompt.rstrip().endswith("<|im_start|>assistant"), prompt[-80:]
      if name == "maze_smollm2":
        assert "You need to solve the following maze." in prompt
      assert ro.rewards_BxN.shape == (b, n) and set(np.unique(ro.rewards_BxN)) <= {0.0, 1.0}
      # The rewards are the verifier's on the decoded responses.
      again = [task.verify(ro.responses[i], examples[i // n]) for i in range(b * n)]
      np.testing.assert_array_equal(ro.rewards_BxN.reshape(-1), again)
      assert ro.tokens_RxT.shape == (b * n, rl.max_new_tokens)
      assert np.all(ro.lengths_R >= 1) and np.all(np.isfinite(ro.logprobs_RxT))
      adv_BxN, info = advantages.from_config(c.advantage)(ro.rewards_BxN,
                                                          np.ones((b, n), bool))
      adv_BxN = np.asarray(adv_BxN)
      assert adv_BxN.shape == (b, n) and np.all(np.isfinite(adv_BxN))
      np.testing.assert_array_equal(np.asarray(info["num_pos"]), ro.rewards_BxN.sum(-1))
      batch = batch_lib.assemble(ro, adv_BxN, np.ones((b, n), bool))
      assert batch.tokens_RxS.shape == (b * n, ro.prompt_BxP.shape[1] + rl.max_new_tokens)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_runlocal_trains_one_step(name, tmp_path):
  c = _config(name)
  c.num_devices = 1
  c.progress = False
  last = train.run(c, str(tmp_path))
  recs = [r for r in logger.read_jsonl(str(tmp_path / "metrics.jsonl")) if r["phase"] == "train"]
  assert [r["step"] for r in recs] == [1] and np.isfinite(last["loss"])
  assert last["num_tokens"] > 0 and last["response_len_mean"] > 0
  assert os.listdir(tmp_path / "checkpoints") == ["1"]
  assert os.path.getsize(tmp_path / "plots" / "train.png") > 1000
