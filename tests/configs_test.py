"""configs/maze_qwen2_5_7b.py: the paper's settings build, validate, and the 7B train step
compiles for an FSDP mesh of the 8 fake CPU devices, from abstract shapes only (no weights)."""

import re
import runpy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import models, sharding
from rlvr_jax.rl import optim, train
from rlvr_jax.rl.batch import TrainBatch

QWEN = "configs/maze_qwen2_5_7b.py"


def _qwen(arg: str = "ckpt=/ckpt/Qwen2.5-7B-Instruct"):
  return runpy.run_path(QWEN)["get_config"](arg)


def test_qwen_config_has_the_paper_settings_and_validates():
  c = _qwen()
  assert (c.model.source, c.model.path, c.model.chat) == ("checkpoint", "/ckpt/Qwen2.5-7B-Instruct",
                                                          True)
  assert (c.model.dtype, c.model.param_dtype) == ("bfloat16", "float32")
  assert (c.rl.batch_prompts, c.rl.mini_batch_prompts, c.rl.num_samples) == (128, 32, 32)
  assert (c.optimizer.lr, c.optimizer.warmup_steps) == (1e-6, 10)
  assert (c.loss.eps_low, c.loss.eps_high, c.loss.agg) == (0.2, 0.28, "token-mean")
  assert (c.loss.kl_coef, c.loss.entropy_coef) == (0.0, 0.0)
  assert c.rl.max_new_tokens == 4096 and (c.eval.temperature, c.eval.top_p) == (1.0, 0.95)
  assert (c.mesh.data, c.mesh.fsdp) == (1, -1)
  # A mini-batch is 32 prompts x 32 rollouts = 1024 rows in 16 micro-batches: any
  # power-of-two device count up to 64 divides it; 3 devices do not.
  for devices in (8, 64):
    train.validate(c, devices)
  with pytest.raises(ValueError, match="micro-batches over 3 data-parallel"):
    train.validate(c, 3)
  assert _qwen("ckpt=/x,estimator=passk_analytical,k=8").advantage.to_dict() == {
      "name": "passk_analytical", "k": 8, "easy_threshold": None, "mask_high_success": False,
      "high_success_min": 0.75}
  with pytest.raises(ValueError, match="HF checkpoint directory"):
    _qwen(None)
  c.model.path = ""
  with pytest.raises(ValueError, match="needs model.path"):
    train.validate(c, 8)
  local = _qwen("ckpt=/x,runlocal")
  train.validate(local, 1)
  assert local.rl.steps == 1 and local.model.path == "/x"


def test_qwen_7b_train_step_compiles_fsdp_from_abstract_shapes():
  c = _qwen()
  c.model.update(source="preset", preset="qwen2_5_7b")  # the same architecture, no checkpoint
  c.rl.update(micro_batches=2, logprob_chunk=64)  # a small batch: 16 rows of 64 + 64 tokens
  cfg = train.model_config(c)
  assert (cfg.dtype, cfg.param_dtype, cfg.remat) == ("bfloat16", "float32", "full")
  mesh = sharding.make_mesh(c.mesh, jax.devices())
  assert dict(mesh.shape) == {"data": 1, "fsdp": 8, "tensor": 1}
  train.validate(c, 8)
  shapes = jax.eval_shape(lambda k: models.init_params(cfg, k), jax.random.PRNGKey(0))
  param_sh = sharding.logical_sharding(models.param_logical_axes(cfg), mesh, None, shapes)
  repl = NamedSharding(mesh, PartitionSpec())
  optimizer = optim.make_optimizer(c.optimizer)
  abstract = lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh)
  opt_shapes = jax.eval_shape(optimizer.init, jax.tree.map(abstract, shapes, param_sh))
  # Adam's moments take their parameter's sharding, its counters are replicated.
  opt_sh = optax.tree_map_params(optimizer, lambda _, sh: sh, opt_shapes, param_sh,
                                 transform_non_params=lambda _: repl)
  state_sh = {"params": param_sh, "opt_state": opt_sh, "step": repl}
  state = jax.tree.map(abstract, {"params": shapes, "opt_state": opt_shapes,
                                  "step": jax.ShapeDtypeStruct((), jnp.int32)}, state_sh)
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  r, p, t = 16, 64, 64
  batch = {"tokens_RxS": ((r, p + t), jnp.int32), "attn_mask_RxS": ((r, p + t), jnp.int32),
           "loss_mask_RxT": ((r, t), jnp.float32), "old_logp_RxT": ((r, t), jnp.float32),
           "adv_R": ((r,), jnp.float32)}
  batch = TrainBatch(**{k: jax.ShapeDtypeStruct(s, d, sharding=rows_sh)
                        for k, (s, d) in batch.items()})
  update = train.make_update(c, cfg, optimizer, state_sh, rows_sh, repl)
  with sharding.use_mesh(mesh, None):
    denom = jax.ShapeDtypeStruct((), jnp.float32, sharding=repl)  # the mini-batch's normalizer
    compiled = update.lower(state, batch, denom, c.rl.micro_batches).compile()
  num_params = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  assert 7.5e9 < num_params < 7.7e9  # Qwen2.5-7B: 7.62B
  # float32 params + two float32 Adam moments = 12 bytes a parameter, split over 8 devices
  # (FSDP); what is not split (norm scales, counters, the batch) adds well under 0.1%.
  mem = compiled.memory_analysis()
  per_device = 12 * num_params / 8
  assert per_device <= mem.argument_size_in_bytes < 1.001 * per_device
  # The state is donated: its buffers are reused for the new state.
  assert mem.alias_size_in_bytes > 0.999 * per_device


MATH_QWEN = "configs/math_qwen2_5_7b.py"


@pytest.mark.parametrize("path", ["configs/maze_tiny.py", "configs/maze_smollm2.py",
                                  "configs/countdown_smollm2.py", QWEN, "configs/math_smollm2.py",
                                  MATH_QWEN])
def test_every_config_takes_k_only_for_estimators_that_have_one(path):
  get_config = runpy.run_path(path)["get_config"]
  ckpt = "ckpt=/c," if path in (QWEN, MATH_QWEN) else ""
  # The block names every parameter (so flags and sweeps can set each one): the estimator's
  # own and the common modifiers, at their defaults.
  assert get_config(ckpt + "estimator=passk_analytical,k=8").advantage.to_dict() == {
      "name": "passk_analytical", "k": 8, "easy_threshold": None, "mask_high_success": False,
      "high_success_min": 0.75}
  assert get_config(ckpt + "estimator=pkpo,k=2").advantage.k == 2
  assert get_config(ckpt + "estimator=bbg,k=8").advantage.k == 8  # bbg's Pass@K is k too
  assert "k" not in get_config(ckpt + "estimator=grpo,k=8").advantage
  with pytest.raises(ValueError, match="unknown advantage estimator 'passk'"):
    get_config(ckpt + "estimator=passk")


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
  return out


# What each config passes to defaults.paper_settings, and what its runlocal adds on top.
PAPER_CONFIGS = {
    "configs/maze_smollm2.py": ("", dict(eval=20, ckpt=20, prompt=1024, prompt_local=512),
                                {"data.splits.train_sizes": (5,), "data.splits.test_sizes": (5,)}),
    "configs/countdown_smollm2.py": ("", dict(eval=20, ckpt=20, prompt=256, prompt_local=256), {}),
    QWEN: ("ckpt=/c,", dict(eval=25, ckpt=10, prompt=2048, prompt_local=512),
           {"data.splits.train_sizes": (5,), "data.splits.test_sizes": (5,), "model.remat": "none",
            "rl.logprob_chunk": 16, "mesh.data": -1, "mesh.fsdp": 1, "progress": True}),
}


@pytest.mark.parametrize("path", sorted(PAPER_CONFIGS))
def test_paper_configs_hold_the_paper_settings_and_one_runlocal_shrink(path):
  ckpt, n, local_extra = PAPER_CONFIGS[path]
  get_config = runpy.run_path(path)["get_config"]
  full, local = _flat(get_config(ckpt).to_dict()), _flat(get_config(ckpt + "runlocal").to_dict())
  # PAPERS.md section 2: the Pass@k Training paper's RL and evaluation settings.
  paper = {"rl.batch_prompts": 128, "rl.mini_batch_prompts": 32, "rl.num_samples": 32,
           "rl.temperature": 1.0, "rl.top_p": 1.0, "loss.eps_low": 0.2, "loss.eps_high": 0.28,
           "loss.agg": "token-mean", "loss.kl_coef": 0.0, "loss.entropy_coef": 0.0,
           "optimizer.lr": 1e-6, "optimizer.warmup_steps": 10, "eval.num_samples": 32,
           "eval.temperature": 1.0, "eval.top_p": 0.95}
  ours = {"model.source": "checkpoint", "model.chat": True, "model.dtype": "bfloat16",
          "model.param_dtype": "float32", "rl.max_prompt_len": n["prompt"],
          "eval.every": n["eval"], "eval.batch_prompts": 32, "checkpoint.every": n["ckpt"],
          "checkpoint.keep": 3, "checkpoint.export_hf": True}
  assert {k: full[k] for k in {**paper, **ours}} == {**paper, **ours}
  if "maze" in path:  # PAPERS.md section 3: train sizes 9..15, test sizes 7..21 (odd)
    assert (full["data.splits.train_sizes"], full["data.splits.test_sizes"],
            full["data.eval_group_key"]) == ((9, 11, 13, 15), (7, 9, 11, 13, 15, 17, 19, 21), "size")
  # runlocal changes exactly these keys and nothing else.
  shrink = {"data.splits.num_train": 16, "data.splits.num_test": 2, "model.dtype": "float32",
            "rl.steps": 1, "rl.batch_prompts": 4, "rl.num_samples": 2, "rl.mini_batch_prompts": 4,
            "rl.micro_batches": 1, "rl.max_prompt_len": n["prompt_local"], "rl.max_new_tokens": 16,
            "eval.every": 0, "eval.at_start": False, "eval.at_end": False, "checkpoint.every": 1,
            "checkpoint.keep": 1, "checkpoint.export_hf": False, **local_extra}
  assert local.keys() == full.keys()
  assert {k: v for k, v in local.items() if full[k] != v} == {
      k: v for k, v in shrink.items() if full[k] != v}


def test_math_qwen_config_has_the_svs_code_settings_and_validates():
  get_config = runpy.run_path(MATH_QWEN)["get_config"]
  with pytest.raises(ValueError, match="needs the HF checkpoint directory"):
    get_config("")
  c = get_config("ckpt=/c")
  flat = _flat(c.to_dict())
  # PAPERS.md section 4 (the SvS code): 8 rollouts, 8192-token responses, dual clip 3,
  # clip-higher 0.2 / 0.28, token-mean, dynamic sampling, lr 1e-6, temperature 1, no KL.
  assert {k: flat[k] for k in ("task.name", "rl.num_samples", "rl.max_new_tokens",
                               "loss.dual_clip", "loss.eps_low", "loss.eps_high", "loss.agg",
                               "rl.dynamic_sampling", "optimizer.lr", "rl.temperature",
                               "loss.kl_coef", "loss.entropy_coef", "model.remat")} == {
      "task.name": "math", "rl.num_samples": 8, "rl.max_new_tokens": 8192, "loss.dual_clip": 3.0,
      "loss.eps_low": 0.2, "loss.eps_high": 0.28, "loss.agg": "token-mean",
      "rl.dynamic_sampling": True, "optimizer.lr": 1e-6, "rl.temperature": 1.0,
      "loss.kl_coef": 0.0, "loss.entropy_coef": 0.0, "model.remat": "full"}
  for devices in (1, 8, 32):
    train.validate(c, devices)


def test_math_qwen_lora_config_is_the_math_config_sized_for_one_chip():
  """The one-accelerator LoRA config differs from the pod config in exactly the sizes that
  benchmarks/RESULTS.md compiled for one v5p chip, and validates on one device."""
  get_lora = runpy.run_path("configs/math_qwen2_5_7b_lora.py")["get_config"]
  with pytest.raises(ValueError, match="needs the HF checkpoint directory"):
    get_lora("")
  with pytest.raises(ValueError, match="positive rank"):
    get_lora("ckpt=/c,lora=0")
  full = _flat(runpy.run_path(MATH_QWEN)["get_config"]("ckpt=/c").to_dict())
  lora = _flat(get_lora("ckpt=/c,estimator=grpo").to_dict())
  assert {k: v for k, v in lora.items() if full[k] != v} == {
      "lora.rank": 16, "lora.alpha": 32.0, "model.param_dtype": "bfloat16",
      "rl.batch_prompts": 16, "rl.mini_batch_prompts": 16, "rl.micro_batches": 16,
      "rl.max_new_tokens": 4096, "optimizer.lr": 1e-5, "eval.batch_prompts": 16,
      "eval.sample_chunk": 8}
  train.validate(get_lora("ckpt=/c"), 1)


SVS_QWEN = "configs/svs_math_qwen2_5_7b.py"


@pytest.mark.parametrize("path", ["configs/svs_tiny.py", "configs/svs_math_smollm2.py", SVS_QWEN])
def test_svs_configs_hold_the_svs_paper_settings_and_validate(path):
  get_config = runpy.run_path(path)["get_config"]
  ckpt = "ckpt=/c" if path == SVS_QWEN else ""
  c = get_config(ckpt)
  flat = _flat(c.to_dict())
  # PAPERS.md section 4: 8 rollouts, 8 syntheses a context, contexts at accuracy [1/8, 1/2],
  # reward at solve accuracy [1/8, 5/8], GRPO, clip-higher 0.2 / 0.28, token-mean, dynamic
  # sampling, temperature 1, no KL, no entropy bonus; the leak check (ours) on.
  assert {k: flat[k] for k in (
      "algorithm", "rl.num_samples", "svs.num_syntheses", "svs.acc_low", "svs.acc_high",
      "svs.reward_low", "svs.reward_high", "svs.leak_check", "advantage.name", "loss.eps_low",
      "loss.eps_high", "loss.agg", "rl.dynamic_sampling", "rl.temperature", "loss.kl_coef",
      "loss.entropy_coef")} == {
      "algorithm": "svs", "rl.num_samples": 8, "svs.num_syntheses": 8, "svs.acc_low": 0.125,
      "svs.acc_high": 0.5, "svs.reward_low": 0.125, "svs.reward_high": 0.625,
      "svs.leak_check": True, "advantage.name": "grpo", "loss.eps_low": 0.2,
      "loss.eps_high": 0.28, "loss.agg": "token-mean", "rl.dynamic_sampling": True,
      "rl.temperature": 1.0, "loss.kl_coef": 0.0, "loss.entropy_coef": 0.0}
  for devices in (1, 8):
    train.validate(c, devices)
  if path == SVS_QWEN:  # the public scripts' lengths and the SvS code's dual clip, lr 1e-6
    assert (c.rl.max_prompt_len, c.rl.max_new_tokens, c.svs.max_synthesis_prompt_len) == (
        4096, 8192, 4096)
    assert (c.loss.dual_clip, c.optimizer.lr) == (3.0, 1e-6)
    train.validate(c, 32)
  else:
    local = get_config("runlocal")
    assert local.algorithm == "svs" and local.rl.steps <= 2
    train.validate(local, 1)
  assert get_config(ckpt + ("," if ckpt else "") + "estimator=passk_analytical,k=4"
                    ).advantage.k == 4


def test_svs_validation_names_the_bad_setting():
  c = runpy.run_path("configs/svs_tiny.py")["get_config"]("")
  for field, value, match in (("acc_low", 0.6, "svs.acc_low=0.6"),
                              ("reward_high", 1.5, "svs.reward_high=1.5"),
                              ("max_contexts", 0, "svs.max_contexts=0"),
                              ("prompt", "no field", "{solution}")):
    bad = c.copy_and_resolve_references()
    bad.svs[field] = value
    with pytest.raises(ValueError, match=re.escape(match)):
      train.validate(bad, 1)
  bad = c.copy_and_resolve_references()
  bad.advantage = ml_collections.ConfigDict({"name": "passk_analytical", "k": 16})
  with pytest.raises(ValueError, match="k=16 cannot score synthesis groups"):
    train.validate(bad, 1)
