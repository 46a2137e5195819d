"""The full set of trainer settings with defaults (PAPERS.md section 2); configs/ override them.

Every key the trainer reads is here, so `--config.rl.lr=...` typos fail at
launch (configs are locked) and a config file only states what differs.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.progress = True  # tqdm bar with ETA on the console
  c.plot_at_end = True  # PNG curves in <workdir>/plots when training ends (rlvr_jax.plot)
  c.task = ml_collections.ConfigDict({"name": "maze", "kwargs": {}})
  # Keyword args of rlvr_jax.tasks.<name>.make_splits (or generate); eval sets are split by
  # eval_group_key (e.g. one set per maze size); eval_limit caps test examples (0 = all).
  c.data = ml_collections.ConfigDict({"splits": {}, "eval_group_key": "", "eval_limit": 0})
  # source 'preset' (fresh init of models.preset(preset), char tokenizer) or 'checkpoint'
  # (checkpoints.load_policy(path)); chat=True prompts through the chat template. dtype is
  # the compute dtype, param_dtype the stored (master) weights'; remat: none | full | dots.
  c.model = ml_collections.ConfigDict({"source": "preset", "preset": "tiny", "path": "",
                                       "dtype": "float32", "param_dtype": "float32",
                                       "remat": "none", "chat": False})
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.num_devices = 0  # 0: all of jax.devices(); n: the first n (tests compare 1 vs 8)
  c.logical_axis_rules = ()  # empty: sharding.DEFAULT_RULES
  c.rl = ml_collections.ConfigDict(dict(
      steps=100, batch_prompts=128, num_samples=32, mini_batch_prompts=32, micro_batches=1,
      max_prompt_len=1024, max_new_tokens=1024, temperature=1.0, top_p=1.0,
      dynamic_sampling=False, max_sampling_tries=3, mask_truncated=False,
      recompute_old_logp=True, logprob_chunk=128))
  c.loss = ml_collections.ConfigDict(dict(
      eps_low=0.2, eps_high=0.28, dual_clip=0.0, agg="token-mean", kl_coef=0.0,
      entropy_coef=0.0))
  c.optimizer = ml_collections.ConfigDict(dict(
      lr=1e-6, warmup_steps=10, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01,
      max_grad_norm=1.0))
  # Consumed by advantages.from_config: name + that estimator's parameters.
  c.advantage = ml_collections.ConfigDict({"name": "grpo"})
  # Estimator schedule: at each step in switch_at ("30" or "30,60,90") the estimator toggles
  # between `advantage` and `schedule.advantage` (Pass@k training then Pass@1 training).
  c.schedule = ml_collections.ConfigDict({"switch_at": "",
                                          "advantage": {"name": "grpo"}})
  c.warmstart = ml_collections.ConfigDict(dict(
      steps=0, batch_size=32, micro_batches=1, target_field="solution", log_every=10,
      load_dir="",
      optimizer=dict(lr=1e-3, warmup_steps=20, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0,
                     max_grad_norm=1.0)))
  c.eval = ml_collections.ConfigDict(dict(
      every=0, at_start=True, at_end=True, num_samples=32, temperature=1.0, top_p=0.95,
      batch_prompts=32))
  c.checkpoint = ml_collections.ConfigDict(dict(every=10, keep=3, async_save=True,
                                                export_hf=False))
  return c


def advantage_block(estimator: str, k: int) -> ml_collections.ConfigDict:
  """The `advantage` block for `estimator`, with `k` where the estimator takes one."""
  from rlvr_jax import advantages  # the registry says which estimators take k
  block = ml_collections.ConfigDict({"name": estimator})
  if "k" in advantages.defaults(estimator):
    block.k = k
  return block
