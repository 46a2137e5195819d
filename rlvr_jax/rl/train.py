"""The RL loop: rollouts -> rewards -> advantages -> clip-higher PG updates.

    python -m rlvr_jax.main --config=configs/maze_tiny.py:runlocal --workdir=/tmp/w

Shape letters: B problems a step, N rollouts a problem, R = B * N rows,
T response tokens. One step (DESIGN.md "Data flow of one RL step"): sample N
responses for B prompts, verify them, compute advantages with the estimator
the schedule selects, recompute old log-probs, then one AdamW update per
mini-batch of prompts. Metrics go to TensorBoard + metrics.jsonl, state to
orbax checkpoints (resumable exactly; SIGTERM saves and exits), PNG curves to
<workdir>/plots at the end (`config.plot_at_end`; or `python -m rlvr_jax.plot --workdir=...`).
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

from rlvr_jax import advantages, models, sharding, tasks
from rlvr_jax.rl import checkpointing, data as data_lib, logger, rollout, stats
from rlvr_jax.rl import step as step_lib, warmstart


def validate(config: ml_collections.ConfigDict, num_data_devices: int) -> None:
  """Fails before any compile on settings that cannot work."""
  rl = config.rl
  if rl.batch_prompts % rl.mini_batch_prompts:
    raise ValueError(f"rl.batch_prompts={rl.batch_prompts} is not a multiple of "
                     f"rl.mini_batch_prompts={rl.mini_batch_prompts}")
  rows = rl.mini_batch_prompts * rl.num_samples
  if rows % (rl.micro_batches * num_data_devices):
    raise ValueError(f"a mini-batch of {rows} rows does not split into {rl.micro_batches} micro-"
                     f"batches over {num_data_devices} data-parallel devices")
  if rl.max_sampling_tries < 1:
    raise ValueError(f"rl.max_sampling_tries must be >= 1, got {rl.max_sampling_tries}")
  if config.model.source == "checkpoint" and not config.model.path:
    raise ValueError("model.source='checkpoint' needs model.path (an embedded policy name, "
                     "a .gguf file or an HF directory)")
  advantages.from_config(config.advantage)  # unknown estimator names fail here
  if config.schedule.switch_at:
    advantages.from_config(config.schedule.advantage)


def estimator_at(config: ml_collections.ConfigDict, step: int) -> ml_collections.ConfigDict:
  """The advantage config in force at `step`: each step in `schedule.switch_at` toggles."""
  switches = [int(s) for s in str(config.schedule.switch_at).split(",") if s.strip()]
  toggles = sum(step >= s for s in switches)
  return config.schedule.advantage if toggles % 2 else config.advantage


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
    return cfg.replace(remat=m.remat), params, tok
  raise ValueError(f"model.source must be 'preset' or 'checkpoint', got {m.source!r}")


def model_config(config: ml_collections.ConfigDict) -> models.ModelConfig:
  """The architecture of a 'preset' policy with the config's dtypes and remat."""
  m = config.model
  return models.preset(m.preset, dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat)


def make_update(config: ml_collections.ConfigDict, cfg: models.ModelConfig, optimizer: Any,
                state_sh: Any, rows_sh: NamedSharding, repl: NamedSharding) -> Any:
  """The jitted RL update `(state, batch) -> (state, metrics)`, state donated."""
  loss_fn = functools.partial(step_lib.pg_loss_fn, cfg=cfg, loss_cfg=config.loss,
                              chunk_size=config.rl.logprob_chunk)
  return jax.jit(functools.partial(step_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                   num_micro=config.rl.micro_batches, agg=config.loss.agg),
                 in_shardings=(state_sh, rows_sh), out_shardings=(state_sh, repl),
                 donate_argnums=0)


def _pick_groups(parts: list[rollout.Rollouts], b: int, dynamic: bool
                 ) -> tuple[rollout.Rollouts, np.ndarray, int]:
  """B groups: those with reward variance first (dynamic sampling), fillers marked invalid."""
  allro = rollout.concat(parts)
  if not dynamic:
    return allro, np.ones_like(allro.rewards_BxN, bool), 0
  r = allro.rewards_BxN
  varied = np.nonzero(r.max(-1) > r.min(-1))[0].tolist()
  flat = np.nonzero(r.max(-1) <= r.min(-1))[0].tolist()
  chosen = (varied + flat)[:b]
  valid_BxN = np.zeros((b, r.shape[1]), bool)
  valid_BxN[:min(len(varied), b)] = True
  return allro.select(chosen), valid_BxN, max(0, b - len(varied))


def run(config: ml_collections.ConfigDict, workdir: str,
        stop: checkpointing.StopFlag | None = None) -> dict[str, float]:
  """Trains per `config` in `workdir` (resuming if it has a checkpoint); returns last metrics."""
  os.makedirs(workdir, exist_ok=True)
  devices = jax.devices()[:config.num_devices] if config.num_devices > 0 else None
  mesh = sharding.make_mesh(config.mesh, devices)
  rules = tuple(tuple(r) for r in config.logical_axis_rules) if config.get("logical_axis_rules") else None
  dp = mesh.shape["data"] * mesh.shape["fsdp"]
  validate(config, dp)
  rl = config.rl
  task = tasks.get(config.task.name, **config.task.kwargs.to_dict())
  train, eval_sets = data_lib.load_splits(config.task.name, config.data)
  cfg, params, tokenizer = load_policy(config, mesh, rules)
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  repl = NamedSharding(mesh, PartitionSpec())
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=config.checkpoint.keep, async_save=config.checkpoint.async_save)
  latest = ckpt.latest_step()
  writer = logger.MetricWriter(workdir, rl.steps, latest or 0, progress=config.progress)
  own_stop = stop is None
  stop = checkpointing.StopFlag().install() if own_stop else stop

  def close():
    ckpt.close()
    writer.close()
    if own_stop:
      stop.uninstall()

  warm_dir = os.path.join(workdir, "warmstart")
  with sharding.use_mesh(mesh, rules):
    if latest is None and config.warmstart.load_dir:
      params = warmstart.load_params(config.warmstart.load_dir, params)
    elif latest is None and config.warmstart.steps > 0 and warmstart.saved(warm_dir):
      # Stopped after the warm start but before the first checkpoint: reuse it.
      params = warmstart.load_params(warm_dir, params)
    elif latest is None and config.warmstart.steps > 0:
      params, finished = warmstart.run(params, cfg, task, tokenizer, train, config, mesh,
                                       rows_sh, writer, stop)
      if not finished:
        logging.warning("SIGTERM during the warm start: stopping; it starts over on resume")
        close()
        return {}
      warmstart.save_params(params, warm_dir)
    optimizer = step_lib.make_optimizer(config.optimizer)
    state = step_lib.init_state(params, optimizer, mesh)
    rng = jax.random.PRNGKey(config.seed + 1)
    rl_step, data_pos = 0, 0
    if latest is not None:
      state, rng, meta = ckpt.restore(latest, state, rng)
      rl_step, data_pos = int(meta["rl_step"]), int(meta["data_pos"])
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    update = make_update(config, cfg, optimizer, state_sh, rows_sh, repl)
    old_logp = jax.jit(lambda p, tok, am, t: step_lib.response_logprobs(
        p, cfg, tok, am, t, rl.logprob_chunk)[0], static_argnums=3,
                       in_shardings=(state_sh["params"], rows_sh, rows_sh), out_shardings=rows_sh)
    lr_fn = step_lib.lr_schedule(config.optimizer)
    stream = data_lib.Stream(train, seed=config.seed, position=data_pos)
    eval_key = jax.random.PRNGKey(config.seed + 2)
    gen = functools.partial(rollout.generate, task=task, tokenizer=tokenizer,
                            num_samples=rl.num_samples, max_prompt_len=rl.max_prompt_len,
                            max_new_tokens=rl.max_new_tokens, temperature=rl.temperature,
                            top_p=rl.top_p, chat=config.model.chat, mesh=mesh, rules=rules)
    do_eval = lambda s: writer.write(s, stats.evaluate(
        state["params"], cfg, task, tokenizer, eval_sets, jax.random.fold_in(eval_key, s),
        config.eval, rl, config.model.chat, mesh, rules), phase="eval")
    if rl_step == 0 and config.eval.at_start:
      do_eval(0)
    last: dict[str, float] = {}
    writer.start_progress()
    while rl_step < rl.steps and not stop:
      t0 = time.perf_counter()
      rng, k_sample, k_adv, k_perm = jax.random.split(rng, 4)
      parts = []
      for attempt in range(rl.max_sampling_tries if rl.dynamic_sampling else 1):
        ro = gen(state["params"], cfg, examples=stream.take(rl.batch_prompts),
                 key=jax.random.fold_in(k_sample, attempt))
        parts.append(ro)
        n_varied = sum(int((p.rewards_BxN.max(-1) > p.rewards_BxN.min(-1)).sum()) for p in parts)
        if n_varied >= rl.batch_prompts:
          break
      ro, valid_BxN, filled = _pick_groups(parts, rl.batch_prompts, rl.dynamic_sampling)
      if rl.mask_truncated:
        valid_BxN &= ro.finished_R.reshape(valid_BxN.shape)
      t_sample = time.perf_counter() - t0
      adv_cfg = estimator_at(config, rl_step)
      ent_BxN = (ro.entropy_RxT * ro.mask_RxT).sum(-1) / np.maximum(ro.mask_RxT.sum(-1), 1)
      adv_BxN, _ = advantages.from_config(adv_cfg)(
          jnp.asarray(ro.rewards_BxN), jnp.asarray(valid_BxN), key=k_adv,
          entropy_BxN=jnp.asarray(ent_BxN.reshape(valid_BxN.shape)))
      adv_BxN = np.asarray(adv_BxN, np.float32)
      if not np.isfinite(adv_BxN).all():
        raise FloatingPointError(f"non-finite advantages from {adv_cfg.name} at step {rl_step}")
      batch = rollout.train_batch(ro, adv_BxN, valid_BxN)
      t1 = time.perf_counter()
      if rl.recompute_old_logp:
        batch["old_logp_RxT"] = np.asarray(old_logp(state["params"], batch["tokens_RxL"],
                                                    batch["attn_mask_RxL"], rl.max_new_tokens))
      else:
        batch["old_logp_RxT"] = ro.logprobs_RxT
      n = rl.num_samples
      order = np.asarray(jax.random.permutation(k_perm, rl.batch_prompts))
      upd = []
      for i in range(0, rl.batch_prompts, rl.mini_batch_prompts):
        rows = (order[i:i + rl.mini_batch_prompts, None] * n + np.arange(n)).reshape(-1)
        lr = float(lr_fn(int(state["step"])))
        state, m = update(state, jax.device_put({k: v[rows] for k, v in batch.items()}, rows_sh))
        upd.append(dict(jax.device_get(m), lr=lr))
      t_update = time.perf_counter() - t1
      rl_step += 1
      scalars, hists = stats.batch_metrics(ro, task, adv_BxN, valid_BxN)
      scalars.update({k: float(np.mean([u[k] for u in upd])) for k in upd[0]})
      total = time.perf_counter() - t0
      t_verify = sum(p.verify_seconds for p in parts)
      scalars.update(time_sample=t_sample - t_verify, time_verify=t_verify, time_update=t_update,
                     time_step=total, verify_timeouts=sum(p.verify_timeouts for p in parts),
                     verify_errors=sum(p.verify_errors for p in parts),
                     tokens_per_sec=float(ro.lengths_R.sum()) / max(total, 1e-9),
                     sampling_tries=len(parts), dyn_filled_groups=filled,
                     estimator_index=float(adv_cfg is not config.advantage),
                     data_pos=stream.position)
      last = writer.write(rl_step, scalars, histograms=hists)
      writer.advance(1, reward=last["reward_mean"], loss=last["loss"])
      meta = {"rl_step": rl_step, "data_pos": stream.position}
      if rl_step % config.checkpoint.every == 0 or rl_step == rl.steps or stop:
        ckpt.save(rl_step, state, rng, meta)
      if config.eval.every and rl_step % config.eval.every == 0 and rl_step < rl.steps:
        do_eval(rl_step)
    if stop:
      close()
      return last
    if config.eval.at_end and rl.steps > 0:
      last.update({f"eval/{k}": v for k, v in do_eval(rl_step).items()})
  close()
  if config.checkpoint.export_hf:
    from rlvr_jax import checkpoints
    # The char tokenizer has no HF form; pretrained policies' tokenizers are saved alongside.
    tok = tokenizer if hasattr(tokenizer, "save_pretrained") else None
    checkpoints.export_hf(jax.device_get(state["params"]), cfg, os.path.join(workdir, "hf_export"),
                          tok)
  if config.plot_at_end:
    from rlvr_jax import plot
    plot.plot_workdir(workdir)
  return last
