"""The full set of trainer settings with defaults (PAPERS.md section 2); configs/ override them.

Every key the trainer reads is here, so `--config.rl.lr=...` typos fail at
launch (configs are locked) and a config file only states what differs.
"""

from typing import Any

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  # The kind of RL step: a name in rlvr_jax.rl.train.BATCH_FNS ('rlvr': sample, verify, advantages).
  c.algorithm = "rlvr"
  c.progress = True  # tqdm bar with ETA on the console
  c.plot_at_end = True  # PNG curves in <workdir>/plots when training ends (rlvr_jax.plot)
  c.task = ml_collections.ConfigDict({"name": "maze", "kwargs": {}})
  # Keyword args of rlvr_jax.tasks.<name>.make_splits (or generate); eval sets are split by
  # eval_group_key (e.g. one set per maze size); eval_limit caps test examples (0 = all).
  # dir: where the TFDS builds go ('' = $RLVR_JAX_DATA_DIR, else ~/.cache/rlvr_jax/tfds).
  # math only: train_file, a jsonl of {problem, answer}; eval_files 'name=path,name=path'
  # (or a mapping), one eval set a file, each capped at eval_limit (rlvr_jax.data).
  c.data = ml_collections.ConfigDict({"dir": "", "splits": {}, "eval_group_key": "",
                                      "eval_limit": 0, "train_file": "", "eval_files": ""})
  # source 'preset' (fresh init of models.preset(preset), char tokenizer) or 'checkpoint'
  # (checkpoints.load_policy(path)); chat=True prompts through the chat template. dtype is
  # the compute dtype, param_dtype the stored (master) weights'; remat: none | full | dots.
  c.model = ml_collections.ConfigDict({"source": "preset", "preset": "tiny", "path": "",
                                       "dtype": "float32", "param_dtype": "float32",
                                       "remat": "none", "chat": False,
                                       # models.ModelConfig.attention: einsum | dot_product
                                       # (cuDNN flash on GPU) | chunked (long sequences) |
                                       # splash (Pallas kernel, TPU only)
                                       "attention": "einsum", "attention_chunk": 512})
  # LoRA (models/lora.py): rank > 0 trains adapters on the `targets` projections (any of
  # q,k,v,o,gate,up,down) with scale alpha / rank, the base frozen; the KL reference is then
  # the base itself. rank 0 (the default) is full fine-tuning. dropout: only 0.
  c.lora = ml_collections.ConfigDict(dict(rank=0, alpha=16.0, dropout=0.0,
                                          targets="q,k,v,o,gate,up,down"))
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.num_devices = 0  # 0: all of jax.devices(); n: the first n (tests compare 1 vs 8)
  c.logical_axis_rules = ()  # empty: sharding.DEFAULT_RULES
  c.rl = ml_collections.ConfigDict(dict(
      steps=100, batch_prompts=128, num_samples=32, mini_batch_prompts=32, micro_batches=1,
      max_prompt_len=1024, max_new_tokens=1024, temperature=1.0, top_p=1.0,
      dynamic_sampling=False, max_sampling_tries=3, mask_truncated=False,
      recompute_old_logp=True, logprob_chunk=128,
      # The update's cost follows the tokens with gradient: rows of advantage 0 skip forward
      # and backward when no KL or entropy term touches them (rl/skipping.py), and response
      # columns stop at the batch's longest response, bucketed (batch.trim_responses).
      # Either off reproduces the full-width, every-row update (for comparison).
      skip_zero_advantage=True, trim_padding=True))
  # ratio: 'token' (PPO / DAPO) or 'sequence' (GSPO); tis_cap > 0: truncated importance sampling
  # against the sampler's distribution (verl uses 2); kl_coef > 0 keeps a frozen reference policy
  # (the policy RL starts from) and adds the k3 KL estimate (see rl/loss.py).
  c.loss = ml_collections.ConfigDict(dict(
      eps_low=0.2, eps_high=0.28, dual_clip=0.0, agg="token-mean", kl_coef=0.0,
      entropy_coef=0.0, ratio="token", tis_cap=0.0))
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
      load_dir="", synthesis_frac=0.0,
      optimizer=dict(lr=1e-3, warmup_steps=20, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0,
                     max_grad_norm=1.0)))
  # Evaluation: pass@k for k = 1, 2, 4, ..., num_samples with 95% bootstrap intervals over
  # problems (`bootstrap` replicates; 0: none). sample_chunk: samples a problem per sampler call
  # (0: all num_samples at once). On the tiny policy, 32 mazes x 256 samples took 12 s and
  # 1.2 GB in chunks of 32, 23 s and 2.3 GB at once (experiments/boundary_tiny/README.md).
  # The step-0 eval is kept as <workdir>/base_eval.json; base_curve: a base_eval.json or a
  # workdir to take it from when this run does not evaluate step 0 (a shared warm start's).
  c.eval = ml_collections.ConfigDict(dict(
      every=0, at_start=True, at_end=True, num_samples=32, temperature=1.0, top_p=0.95,
      batch_prompts=32, sample_chunk=0, bootstrap=1000, base_curve=""))
  # The per-problem history's Beta prior (rl/history.py: its posterior of each problem).
  c.history = ml_collections.ConfigDict(dict(alpha=1.0, beta=1.0))
  c.checkpoint = ml_collections.ConfigDict(dict(every=10, keep=3, async_save=True,
                                                export_hf=False))
  # algorithm='svs' (rl/svs.py, PAPERS.md section 4). num_syntheses: problems written a context
  # (the paper's G_v; 0 = rl.num_samples); contexts: correct responses of problems with accuracy
  # in [acc_low, acc_high]; synthesis reward 1 for a solve accuracy in [reward_low, reward_high];
  # temperature / top_p of the synthesis (negative = the rollout's); prompt: the synthesis
  # prompt with a {solution} field ('' = svs.PROMPT); max_synthesis_prompt_len 0 = rl.max_prompt_len
  # + rl.max_new_tokens; max_contexts a process a step.
  c.svs = ml_collections.ConfigDict(dict(
      num_syntheses=0, acc_low=0.125, acc_high=0.5, reward_low=0.125, reward_high=0.625,
      leak_check=True, temperature=-1.0, top_p=-1.0, prompt="", max_synthesis_prompt_len=0,
      max_contexts=32))
  return c


# The type of each estimator parameter whose default is None (float unless listed).
_NONE_TYPES = {"num_groups": int}


def advantage_block(estimator: str, k: int, **options: Any) -> ml_collections.ConfigDict:
  """The `advantage` block for `estimator`: its name and every parameter it takes (its own
  and the modifiers every estimator takes, `advantages.COMMON_DEFAULTS`) at their defaults,
  `k` where the estimator takes one, then `options`.

  Every parameter is a typed field, so a locked config takes `--config.advantage.tau=0.02`,
  `--config.advantage.mask_high_success=True` or a sweep's `--grid=advantage.gate_norm=n+1,u0`;
  a parameter the estimator does not take, or a bad value, fails at once (ValueError).
  """
  from ml_collections import config_dict
  from rlvr_jax import advantages  # the registry says which parameters an estimator takes
  params = {**advantages.defaults(estimator), **advantages.COMMON_DEFAULTS}
  if "k" in params:
    params["k"] = k
  unknown = set(options) - set(params)
  if unknown:
    raise ValueError(f"advantage_block: {estimator} takes no parameter(s) {sorted(unknown)}; "
                     f"known: {', '.join(sorted(params))}")
  params.update(options)
  advantages.from_config({"name": estimator, **params})  # bad values fail here
  block = ml_collections.ConfigDict({"name": estimator})
  for key, value in params.items():
    # A None default (easy_threshold, num_groups: off) is a typed placeholder, so a flag can
    # set it.
    block[key] = (config_dict.placeholder(_NONE_TYPES.get(key, float)) if value is None
                  else value)
  return block


def paper_maze_data(c: ml_collections.ConfigDict, *, num_train: int,
                    runlocal: bool = False) -> None:
  """The paper's Maze data (PAPERS.md section 3) on `c`, in place: train sizes 9..15, test sizes
  7..21 (odd), evaluation per size; 256 test mazes, seed 1234, 10% loops are ours. `runlocal`:
  5x5 mazes only."""
  from rlvr_jax.tasks import maze
  c.task.name = "maze"
  c.data.splits = {"num_train": num_train, "num_test": 256, "seed": 1234, "loop_prob": 0.1,
                   "train_sizes": maze.TRAIN_SIZES, "test_sizes": maze.TEST_SIZES}
  c.data.eval_group_key = "size"
  if runlocal:
    c.data.splits.update(train_sizes=(5,), test_sizes=(5,))


def paper_settings(c: ml_collections.ConfigDict, *, path: str, steps: int, micro_batches: int,
                   max_prompt_len: int, max_new_tokens: int, eval_every: int,
                   checkpoint_every: int, remat: str = "none", runlocal: bool = False) -> None:
  """Sets the Pass@k Training paper's settings (PAPERS.md section 2) on `c`, in place.

  The paper: 128 prompts a step, mini-batches of 32 prompts, 32 rollouts each at temperature
  1.0, clip-higher eps 0.2 / 0.28, token-mean loss, no KL, no entropy bonus, lr 1e-6 with 10
  warm-up steps; evaluation of 32 samples a problem at temperature 1.0, top_p 0.95. Ours around
  it: the policy is the checkpoint at `path` with its chat template, bfloat16 compute over
  float32 master weights; keep 3 checkpoints and export the last as HF. `runlocal` shrinks it
  to one CPU step of 4 prompts x 2 rollouts of 16 tokens (prompts up to 512), 16 train and 2
  test examples, no evaluation; call it after setting `c.data.splits`.
  """
  c.model.update(source="checkpoint", path=path, chat=True, dtype="bfloat16",
                 param_dtype="float32", remat=remat)
  c.rl.update(steps=steps, batch_prompts=128, num_samples=32, mini_batch_prompts=32,
              micro_batches=micro_batches, max_prompt_len=max_prompt_len,
              max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0)
  c.loss.update(eps_low=0.2, eps_high=0.28, agg="token-mean", kl_coef=0.0, entropy_coef=0.0)
  c.optimizer.update(lr=1e-6, warmup_steps=10)
  c.eval.update(every=eval_every, num_samples=32, temperature=1.0, top_p=0.95, batch_prompts=32)
  c.checkpoint.update(every=checkpoint_every, keep=3, export_hf=True)
  if runlocal:
    c.data.splits.update(num_train=16, num_test=2)
    c.model.update(dtype="float32", remat="none")  # CPUs have no fast bfloat16
    c.rl.update(steps=min(steps, 1), batch_prompts=4, num_samples=2, mini_batch_prompts=4,
                micro_batches=1, max_prompt_len=min(max_prompt_len, 512), max_new_tokens=16)
    c.eval.update(every=0, at_start=False, at_end=False)
    c.checkpoint.update(every=1, keep=1, export_hf=False)
