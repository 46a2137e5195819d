"""The RL loop: a batch (rollouts -> rewards -> advantages -> loss mask), then clipped PG updates.

    python -m rlvr_jax.main --config=configs/maze_tiny.py:runlocal --workdir=/tmp/w

Shape letters: B problems a step, N rollouts a problem, R = B * N rows.
`run` is setup, then

    for step:  made = make_batch(...);  state, m = update(state, mini-batch) ...;
               log;  maybe save;  maybe evaluate

The kind of step is `config.algorithm`, a name in `BATCH_FNS`: a function
`(params, key, spec, next_examples, estimator, name) -> batch.MadeBatch`. A new
algorithm (SvS's synthesis and solve phases) is a new batch function composed
of the parts in `rl/batch.py`; the update, logging and checkpointing stay.
Metrics go to TensorBoard + metrics.jsonl, state to orbax checkpoints
(resumable exactly; SIGTERM saves and exits), PNG curves to <workdir>/plots at
the end (`config.plot_at_end`; or `python -m rlvr_jax.plot --workdir=...`).
"""

import functools
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import advantages, data as data_lib, models, multihost, sampling, sharding, tasks
from rlvr_jax.models import lora
from rlvr_jax.rl import adapters, batch as batch_lib, checkpointing, logger, loss as loss_lib
from rlvr_jax.rl import objectives, optim, skipping, stats, svs, update as update_lib, warmstart

BATCH_FNS = {"rlvr": batch_lib.make_batch, "svs": svs.make_batch}


def validate(config: ml_collections.ConfigDict, num_data_devices: int) -> None:
  """Fails before any compile on settings that cannot work."""
  rl = config.rl
  if config.algorithm not in BATCH_FNS:
    raise ValueError(f"unknown algorithm {config.algorithm!r}; known: {sorted(BATCH_FNS)}")
  # SvS packs its kept groups into mini-batches of mini_batch_prompts * num_samples rows,
  # however many that makes; RLVR splits the batch's problems.
  if config.algorithm != "svs" and rl.batch_prompts % rl.mini_batch_prompts:
    raise ValueError(f"rl.batch_prompts={rl.batch_prompts} is not a multiple of "
                     f"rl.mini_batch_prompts={rl.mini_batch_prompts}")
  rows = rl.mini_batch_prompts * rl.num_samples
  if rows % (rl.micro_batches * num_data_devices):
    raise ValueError(f"a mini-batch of {rows} rows does not split into {rl.micro_batches} micro-"
                     f"batches over {num_data_devices} data-parallel devices")
  procs = jax.process_count()
  if procs > 1:
    for name, b in (("rl.batch_prompts", rl.batch_prompts),
                    ("eval.batch_prompts", config.eval.batch_prompts)):
      if b % num_data_devices or b % procs:
        raise ValueError(f"{name}={b} does not split over the {num_data_devices} data-parallel "
                         f"devices of {procs} processes (each process samples its block)")
  if rl.max_sampling_tries < 1:
    raise ValueError(f"rl.max_sampling_tries must be >= 1, got {rl.max_sampling_tries}")
  stats.check_eval(config.eval)
  if config.model.source == "checkpoint" and not config.model.path:
    raise ValueError("model.source='checkpoint' needs model.path (an embedded policy name, "
                     "a .gguf file or an HF directory)")
  ls = config.loss
  loss_lib.check_settings(eps_low=ls.eps_low, eps_high=ls.eps_high, dual_clip=ls.dual_clip or None,
                          agg=ls.agg, ratio=ls.ratio, tis_cap=ls.tis_cap, kl_coef=ls.kl_coef,
                          entropy_coef=ls.entropy_coef)
  if config.algorithm == "svs":
    validate_svs(config)
  lora.from_config(config.lora)  # a bad LoRA block fails here
  advantages.from_config(config.advantage)  # unknown estimator names fail here
  if config.schedule.switch_at:
    advantages.from_config(config.schedule.advantage)


def validate_svs(config: ml_collections.ConfigDict) -> None:
  sv, rl = config.svs, config.rl
  for lo, hi in (("acc_low", "acc_high"), ("reward_low", "reward_high")):
    if not 0.0 <= sv[lo] <= sv[hi] <= 1.0:
      raise ValueError(f"svs.{lo}={sv[lo]} and svs.{hi}={sv[hi]} must satisfy 0 <= low <= "
                       "high <= 1")
  if sv.num_syntheses < 0 or sv.max_contexts < 1:
    raise ValueError(f"svs.num_syntheses={sv.num_syntheses} must be >= 0 (0: rl.num_samples) "
                     f"and svs.max_contexts={sv.max_contexts} >= 1")
  if sv.prompt and "{solution}" not in sv.prompt:
    raise ValueError("svs.prompt must contain the field {solution}")
  for block in (config.advantage, config.schedule.advantage):
    k = block.get("k")
    if k is not None and k > (sv.num_syntheses or rl.num_samples):
      raise ValueError(f"estimator {block.name} with k={k} cannot score synthesis groups of "
                       f"svs.num_syntheses={sv.num_syntheses or rl.num_samples}")


def schedule_index(config: ml_collections.ConfigDict, step: int) -> int:
  """0: `advantage` is in force at `step`, 1: `schedule.advantage` (each switch toggles)."""
  switches = [int(s) for s in str(config.schedule.switch_at).split(",") if s.strip()]
  return sum(step >= s for s in switches) % 2


def estimator_at(config: ml_collections.ConfigDict, step: int) -> ml_collections.ConfigDict:
  """The advantage config in force at `step`."""
  return (config.advantage, config.schedule.advantage)[schedule_index(config, step)]


def load_policy(config: ml_collections.ConfigDict, mesh: Any, rules: Any) -> tuple[Any, Any, Any]:
  """(model cfg, sharded params, tokenizer) from a preset (fresh init) or a checkpoint."""
  m = config.model
  if m.source == "preset":
    cfg = model_config(config)
    axes = models.param_logical_axes(cfg)
    init = lambda k: models.init_params(cfg, k)
    params = sharding.init_sharded(init, axes, mesh, rules, jax.random.PRNGKey(config.seed))
    return cfg, params, tasks.CharTokenizer()
  if m.source == "checkpoint":
    from rlvr_jax import checkpoints  # heavy imports only for pretrained policies
    cfg, params, tok = checkpoints.load_policy(m.path, mesh=mesh, rules=rules, dtype=m.dtype,
                                               param_dtype=m.param_dtype)
    return cfg.replace(**compute_options(m)), params, tok
  raise ValueError(f"model.source must be 'preset' or 'checkpoint', got {m.source!r}")


def model_config(config: ml_collections.ConfigDict) -> models.ModelConfig:
  """The architecture of a 'preset' policy with the config's dtypes and remat."""
  m = config.model
  return models.preset(m.preset, dtype=m.dtype, param_dtype=m.param_dtype, **compute_options(m))


def compute_options(m: ml_collections.ConfigDict) -> dict[str, Any]:
  """The `model` block's choices of how the policy computes (not what it is)."""
  return dict(remat=m.remat, attention=m.attention, attention_chunk=m.attention_chunk)


def initial_policy(config: ml_collections.ConfigDict, params: Any, warm_dir: str,
                   run_warmstart: Any, *, needed: bool, resuming: bool) -> Any:
  """The policy RL starts from: loaded, warm-started (saved, reused) or as given.

  `run_warmstart(params) -> (params, finished)` runs the warm start. Returns None
  when a SIGTERM stopped it. With `needed` False (a resumed run without a
  reference policy) nothing is loaded or run: the checkpoint holds the state.
  """
  ws = config.warmstart
  if not needed:
    return params
  if ws.load_dir:
    return warmstart.load_params(ws.load_dir, params)
  if ws.steps <= 0:
    return params
  if warmstart.saved(warm_dir):  # stopped after the warm start, or resumed: reuse it
    return warmstart.load_params(warm_dir, params)
  if resuming:
    raise ValueError(f"resuming with a reference policy needs the warm start in {warm_dir}")
  params, finished = run_warmstart(params)
  if not finished:
    return None
  warmstart.save_params(params, warm_dir)
  return params


def make_update(config: ml_collections.ConfigDict, cfg: models.ModelConfig, optimizer: Any,
                state_sh: Any, rows_sh: NamedSharding, repl: NamedSharding,
                adapters_only: bool = False) -> Any:
  """The jitted RL update `(state, TrainBatch, denom, M) -> (state, metrics)` over M
  micro-batches (static: one program per M, and per batch shape), state donated; with
  `adapters_only` (LoRA) only the adapter leaves train."""
  loss_fn = functools.partial(objectives.pg_loss_fn, cfg=cfg, loss_cfg=config.loss,
                              chunk_size=config.rl.logprob_chunk)
  step = functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                           agg=config.loss.agg, schedule=optim.lr_schedule(config.optimizer),
                           adapters_only=adapters_only)
  return jax.jit(lambda state, batch, denom, num_micro: step(state, batch, denom,
                                                             num_micro=num_micro),
                 in_shardings=(state_sh, rows_sh, repl), out_shardings=(state_sh, repl),
                 static_argnums=3, donate_argnums=0)


def make_logprobs(config: ml_collections.ConfigDict, cfg: models.ModelConfig, params_sh: Any,
                  rows_sh: NamedSharding) -> Any:
  """The jitted teacher-forced pass `(params, tokens_RxS, attn_mask_RxS, T) -> logp_RxT` of
  the last T tokens (T static: one program per response width)."""
  chunk = config.rl.logprob_chunk
  fn = lambda p, tok, am, t: objectives.response_logprobs(p, cfg, tok, am, t, chunk)[0]
  return jax.jit(fn, in_shardings=(params_sh, rows_sh, rows_sh), out_shardings=rows_sh,
                 static_argnums=3)


def batch_spec(config: ml_collections.ConfigDict, cfg: models.ModelConfig, task: Any,
               tokenizer: Any, mesh: Any, rules: Any, ref_logprobs: Any,
               logprobs: Any, rows_sh: NamedSharding | None = None) -> batch_lib.BatchSpec:
  """How `make_batch` samples, verifies and fills in log-probs, from the `rl` / `loss` blocks."""
  rl = config.rl
  generate = functools.partial(
      batch_lib.rollout.generate, cfg=cfg, task=task, tokenizer=tokenizer,
      num_samples=rl.num_samples, max_prompt_len=rl.max_prompt_len,
      max_new_tokens=rl.max_new_tokens, temperature=rl.temperature, top_p=rl.top_p,
      chat=config.model.chat, mesh=mesh, rules=rules)
  return batch_lib.BatchSpec(
      generate=lambda p, examples, key: generate(p, examples=examples, key=key),
      batch_prompts=rl.batch_prompts // jax.process_count(),  # this process's block
      dynamic_sampling=rl.dynamic_sampling,
      max_tries=rl.max_sampling_tries, mask_truncated=rl.mask_truncated,
      recompute_old_logp=rl.recompute_old_logp, logprobs=logprobs, ref_logprobs=ref_logprobs,
      keep_sampling_logp=config.loss.tis_cap > 0, rows_sharding=rows_sh,
      trim_responses=rl.trim_padding,
      svs=svs_spec(config, cfg, task, tokenizer, mesh, rules) if config.algorithm == "svs" else None)


def svs_spec(config: ml_collections.ConfigDict, cfg: models.ModelConfig, task: Any,
             tokenizer: Any, mesh: Any, rules: Any) -> svs.SvsSpec:
  """The synthesis half of an SvS step, from the `svs` block (rl/defaults.py)."""
  sv, rl, chat = config.svs, config.rl, config.model.chat
  if type(task).with_problem is tasks.Task.with_problem:
    raise ValueError(f"algorithm 'svs' needs a task with a problem text and a reference answer "
                     f"(Task.with_problem: math, arith); {task.name!r} has none")
  v = sv.num_syntheses or rl.num_samples
  syn_len = sv.max_synthesis_prompt_len or rl.max_prompt_len + rl.max_new_tokens
  sample = functools.partial(
      batch_lib.rollout.sample, cfg=cfg, tokenizer=tokenizer, num_samples=v,
      max_prompt_len=syn_len, max_new_tokens=rl.max_new_tokens,
      temperature=rl.temperature if sv.temperature < 0 else sv.temperature,
      top_p=rl.top_p if sv.top_p < 0 else sv.top_p, chat=chat, mesh=mesh, rules=rules)
  encode = lambda p: len(sampling.text.encode(tokenizer, p, chat=chat))
  local_devices = mesh.shape["data"] * mesh.shape["fsdp"] // jax.process_count()
  return svs.SvsSpec(
      task=task, sample=lambda p, prompts, key, examples: sample(p, prompts=prompts, key=key,
                                                                 examples=examples),
      prompt_len=lambda ex: encode(batch_lib.rollout.prompt(task, ex, chat)),
      synthesis_prompt_len=encode, template=sv.prompt or svs.PROMPT, num_syntheses=v,
      acc_low=sv.acc_low, acc_high=sv.acc_high, reward_low=sv.reward_low,
      reward_high=sv.reward_high, leak_check=sv.leak_check, max_contexts=sv.max_contexts,
      max_prompt_len=rl.max_prompt_len, max_synthesis_prompt_len=syn_len, pad_id=cfg.pad_id,
      row_multiple=local_devices,
      context_multiple=local_devices if jax.process_count() > 1 else 1)


def make_take_rows(rows_sh: NamedSharding, repl: NamedSharding, agg: str) -> Any:
  """The jitted `(TrainBatch, rows_mb, idx, live) -> (TrainBatch, denom)`: a device-side
  gather of rows `idx` (a mini-batch of problems from every process never passes through a
  host), their loss mask and advantage zeroed where `live` is False, and the loss
  denominator of the whole mini-batch `rows_mb` (`rl/skipping.py`)."""
  def take(train, rows_mb, idx, live):
    denom = loss_lib.loss_denominator(train.loss_mask_RxT[rows_mb], agg)
    packed = train.rows(idx)
    live = live.astype(jnp.float32)
    return packed._replace(loss_mask_RxT=packed.loss_mask_RxT * live[:, None],
                           adv_R=packed.adv_R * live), denom
  return jax.jit(take, out_shardings=(rows_sh, repl))


@jax.jit
def _row_summary(train: batch_lib.TrainBatch) -> tuple[jax.Array, jax.Array]:
  return train.adv_R, train.loss_mask_RxT.sum(-1)


def minibatch_rows(made: batch_lib.MadeBatch, key: jax.Array, rl: ml_collections.ConfigDict
                   ) -> list[np.ndarray]:
  """Global row indices of each mini-batch of `rl.mini_batch_prompts * rl.num_samples` rows.

  RLVR: whole problems, shuffled over the global batch. A step that lists its groups
  (SvS): `batch.pack_groups` of them, as many mini-batches as they fill.
  """
  n = rl.num_samples
  if made.groups is not None:
    return batch_lib.pack_groups(made.groups, key, rl.mini_batch_prompts * n, made.pad_row)
  order_B = np.asarray(jax.random.permutation(key, rl.batch_prompts))
  return [(order_B[i:i + rl.mini_batch_prompts, None] * n + np.arange(n)).reshape(-1)
          .astype(np.int32) for i in range(0, rl.batch_prompts, rl.mini_batch_prompts)]


# Update metrics that are not token means over the update's rows: averaged over mini-batches.
_PER_UPDATE = ("loss", "pg_loss", "grad_norm", "update_norm", "lr")


def update_minibatches(update: Any, take_rows: Any, state: dict, train: batch_lib.TrainBatch,
                       minibatches: list[np.ndarray], *, skip: bool, num_micro: int,
                       row_multiple: int) -> tuple[dict, dict[str, float]]:
  """One update a mini-batch of rows; the metrics read back once.

  With `skip`, each update runs on the mini-batch's rows with gradient only, packed
  (`rl/skipping.py`); without, on all of them in `num_micro` micro-batches.
  num_tokens counts the mini-batches' loss tokens, update_tokens those that went through
  the update (equal without skipping), update_rows its rows (fillers included), grad_rows
  the rows with a nonzero advantage and a loss token.
  """
  if not minibatches:
    raise ValueError("a step with no mini-batch to update on")
  adv_R, tokens_R = multihost.gather(_row_summary(train))
  grad_R = skipping.kept_rows(adv_R, tokens_R)
  keep_R = grad_R if skip else np.ones(len(adv_R), bool)
  micro_rows = len(minibatches[0]) // num_micro
  per_mini, update_rows = [], 0
  for rows in minibatches:
    idx, live, micro = skipping.pack(rows, keep_R, micro_rows, num_micro, row_multiple)
    state, m = update(state, *take_rows(train, rows, idx, live), micro)
    per_mini.append(m)
    update_rows += len(idx)
  per_mini = jax.device_get(per_mini)  # the step's one host sync of the update
  tok_U = np.array([m["num_tokens"] for m in per_mini])
  w_U = tok_U / max(tok_U.sum(), 1.0)
  out = {k: float(np.mean([m[k] for m in per_mini])) if k in _PER_UPDATE
         else float(sum(w * m[k] for w, m in zip(w_U, per_mini))) for k in per_mini[0]}
  all_rows = np.concatenate(minibatches)
  out.update(num_tokens=float(tokens_R[all_rows].sum()), update_tokens=float(tok_U.sum()),
             update_rows=float(update_rows), grad_rows=float(grad_R[all_rows].sum()),
             updates=float(len(per_mini)))
  return state, out


def skips_zero_advantage(config: ml_collections.ConfigDict) -> bool:
  """Whether the update leaves zero-advantage rows out: asked for, and no KL or entropy term
  (which has a gradient on every row; logged when it overrides the switch)."""
  if not config.rl.skip_zero_advantage:
    return False
  if skipping.applies(config.loss.kl_coef, config.loss.entropy_coef):
    return True
  logging.info("rl.skip_zero_advantage is off: loss.kl_coef=%s / loss.entropy_coef=%s put a "
               "gradient on every row", config.loss.kl_coef, config.loss.entropy_coef)
  return False


def reference_params(params: Any) -> Any:
  """A frozen copy of `params` on the same shardings (the update donates the originals)."""
  shardings = jax.tree.map(lambda x: x.sharding, params)
  return jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=shardings)(params)


def reference_logprobs(config: ml_collections.ConfigDict, cfg: models.ModelConfig,
                       logprobs: Any, params_sh: Any, rows_sh: NamedSharding,
                       ref_params: Any) -> Any:
  """`(params, tokens_RxS, attn_mask_RxS, T) -> logp_RxT` under the KL reference, the policy
  RL starts from: the frozen copy `ref_params` through the policy's `logprobs` program, or,
  with `ref_params` None (LoRA), the current params' base: adapters off, no copy."""
  if ref_params is not None:
    return lambda _, tok, am, t: logprobs(ref_params, tok, am, t)
  base_logprobs = make_logprobs(config, cfg, lora.base(params_sh), rows_sh)
  return lambda p, tok, am, t: base_logprobs(lora.base(p), tok, am, t)


def run(config: ml_collections.ConfigDict, workdir: str,
        stop: checkpointing.StopFlag | None = None) -> dict[str, float]:
  """Trains per `config` in `workdir` (resuming if it has a checkpoint); returns last metrics."""
  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()[:config.num_devices] if config.num_devices > 0 else None
  mesh = sharding.make_mesh(config.mesh, devices)
  rules = tuple(tuple(r) for r in config.logical_axis_rules) if config.get("logical_axis_rules") else None
  validate(config, mesh.shape["data"] * mesh.shape["fsdp"])
  rl = config.rl
  task = tasks.get(config.task.name, **config.task.kwargs.to_dict())
  # Process 0 builds the data first (once, on a filesystem every host shares), then the rest.
  if multihost.is_lead():
    train, eval_sets = data_lib.load(config.task.name, config.data)
  multihost.sync("data_built")
  if not multihost.is_lead():
    train, eval_sets = data_lib.load(config.task.name, config.data)
  cfg, params, tokenizer = load_policy(config, mesh, rules)
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  repl = NamedSharding(mesh, PartitionSpec())
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=config.checkpoint.keep, async_save=config.checkpoint.async_save)
  latest = ckpt.latest_step()
  lead = multihost.is_lead()  # metrics, plots and exports come from process 0 alone
  writer = logger.MetricWriter(workdir, rl.steps, latest or 0, progress=config.progress and lead,
                               enabled=lead)
  own_stop = stop is None
  local_stop = checkpointing.StopFlag().install() if own_stop else stop
  stop = checkpointing.AnyProcess(local_stop)  # every process stops at the same step
  last: dict[str, float] = {}
  try:
    with sharding.use_mesh(mesh, rules):
      run_warmstart = lambda p: warmstart.run(p, cfg, task, tokenizer, train, config, mesh,
                                              rows_sh, writer, stop)
      kl = config.loss.kl_coef > 0
      lora_spec = lora.from_config(config.lora)  # None: full fine-tuning
      # A LoRA run needs its base on resume too: the checkpoint holds only the adapters.
      params = initial_policy(config, params, os.path.join(workdir, "warmstart"), run_warmstart,
                              needed=latest is None or kl or lora_spec is not None,
                              resuming=latest is not None)
      if params is None:
        logging.warning("SIGTERM during the warm start: stopping; it starts over on resume")
        return {}
      ref_params = reference_params(params) if kl and lora_spec is None else None
      if lora_spec is not None:
        adapters.check_base(workdir, config, params)
        cfg, params = adapters.add(params, cfg, lora_spec, mesh, rules,
                                   jax.random.PRNGKey(config.seed + 3))
        logging.info("LoRA rank %d on %s: %d trainable parameters", lora_spec.rank,
                     ",".join(lora_spec.targets), lora.num_params(cfg, lora_spec))
      optimizer = optim.make_optimizer(config.optimizer)
      state = optim.init_state(params, optimizer, mesh, adapters_only=lora_spec is not None)
      rng, rl_step = jax.random.PRNGKey(config.seed + 1), 0
      prompts = data_lib.prompt_iterator(train, batch_size=rl.batch_prompts // jax.process_count(),
                                         seed=config.seed)  # this process's block of each batch
      from rlvr_jax.rl import history as history_lib  # noqa: PLC0415 (one user, here)
      history = history_lib.ProblemHistory(**config.history)  # this process's problems
      if latest is not None:
        loaded, rng, meta = ckpt.restore(latest, adapters.saved(state, lora_spec), rng,
                                         prompts, history)
        state = adapters.restored(state, loaded, lora_spec)
        rl_step = int(meta["rl_step"])
      state_sh = jax.tree.map(lambda x: x.sharding, state)
      update = make_update(config, cfg, optimizer, state_sh, rows_sh, repl,
                           adapters_only=lora_spec is not None)
      logprobs = make_logprobs(config, cfg, state_sh["params"], rows_sh)
      ref_logprobs = (reference_logprobs(config, cfg, logprobs, state_sh["params"], rows_sh,
                                         ref_params) if kl else None)
      spec = batch_spec(config, cfg, task, tokenizer, mesh, rules, ref_logprobs, logprobs,
                        rows_sh)
      take_rows = make_take_rows(rows_sh, repl, config.loss.agg)
      update_mbs = functools.partial(update_minibatches, skip=skips_zero_advantage(config),
                                     num_micro=rl.micro_batches,
                                     row_multiple=mesh.shape["data"] * mesh.shape["fsdp"])
      blocks = (config.advantage, config.schedule.advantage)
      estimators = [advantages.from_config(b) for b in blocks]  # built once, schedule included
      make_batch = BATCH_FNS[config.algorithm]
      eval_key = jax.random.PRNGKey(config.seed + 2)
      evaluate = lambda s: writer.write(s, stats.evaluate(
          state["params"], cfg, task, tokenizer, eval_sets, jax.random.fold_in(eval_key, s),
          config.eval, rl, config.model.chat, mesh, rules), phase="eval")
      if rl_step == 0 and config.eval.at_start:  # the base policy's curve, kept in the workdir
        stats.keep_base_eval(workdir, evaluate(0), lead)
      stats.import_base_eval(config.eval.base_curve, workdir, lead)
      writer.start_progress()
      stopping = bool(stop)  # read once a step: one agreement among the processes
      while rl_step < rl.steps and not stopping:
        t0 = time.perf_counter()
        rng, k_batch, k_perm = jax.random.split(rng, 3)
        which = schedule_index(config, rl_step)
        made = make_batch(state["params"], k_batch, spec, functools.partial(next, prompts),
                          estimators[which], blocks[which].name)
        t1 = time.perf_counter()
        state, upd = update_mbs(update, take_rows, state, made.train,
                                minibatch_rows(made, k_perm, rl))
        t_update = time.perf_counter() - t1
        rl_step += 1
        history.update(rl_step, made.rollouts)
        scalars, hists = stats.batch_metrics(made, task)
        scalars.update(history.metrics())
        total = time.perf_counter() - t0
        scalars.update(upd, **stats.global_counts(made.counts), time_update=t_update,
                       time_step=total, tokens_per_sec=scalars["rollout_tokens"] / max(total, 1e-9),
                       estimator_index=float(which), **made.metrics,
                       prompt_batches=prompts.get_state()["grain"]["next_index"])
        last = writer.write(rl_step, scalars, histograms=hists)
        writer.advance(1, reward=last["reward_mean"], loss=last["loss"])
        stopping = bool(stop)
        if rl_step % config.checkpoint.every == 0 or rl_step == rl.steps or stopping:
          ckpt.save(rl_step, adapters.saved(state, lora_spec), rng, {"rl_step": rl_step}, prompts,
                    history=history)
        if config.eval.every and rl_step % config.eval.every == 0 and rl_step < rl.steps:
          evaluate(rl_step)
      if stopping:
        return last
      if config.eval.at_end and rl.steps > 0:
        last.update({f"eval/{k}": v for k, v in evaluate(rl_step).items()})
  finally:
    ckpt.close()
    writer.close()
    if own_stop:
      local_stop.uninstall()
  if config.checkpoint.export_hf:
    from rlvr_jax import checkpoints
    # The char tokenizer has no HF form; pretrained policies' tokenizers are saved alongside.
    tok = tokenizer if hasattr(tokenizer, "save_pretrained") else None
    # With LoRA: the merged weights (W + scale * A @ B) as a plain HF model, and the adapters
    # alone in PEFT's layout beside it.
    params = multihost.gather(state["params"])  # a collective: every process takes part
    if lead:
      checkpoints.export_hf(params, cfg, os.path.join(workdir, "hf_export"), tok)
      if lora_spec is not None:
        checkpoints.export_peft(params, cfg, lora_spec, os.path.join(workdir, "lora_export"),
                                base_model=config.model.path or config.model.preset)
    multihost.sync("export_hf")
  if config.plot_at_end and lead:
    from rlvr_jax import plot
    plot.plot_workdir(workdir)
  return last
