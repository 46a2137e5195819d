"""Compile the RL train step and the sampler for a TPU slice on a CPU host, and report HBM fit.

Needs `pip install -e ".[tpu]"` (libtpu); no TPU is used: the program is
compiled ahead of time for a topology description, with abstract weights, so
nothing is materialized. Example (the paper's Qwen2.5-7B mini-batch of 32
prompts x 32 rollouts, on a v5p slice of 32 chips):

    python benchmarks/tpu_fit.py --preset=qwen2_5_7b --topology=v5p:2x4x4 \
        --mesh=data=1,fsdp=-1,tensor=1 --rows=1024 --micro=16 --prompt_len=1024 \
        --resp_len=2048 --remat=full

With `--lora_rank` > 0 it compiles the LoRA train step instead (`models/lora.py`: the
base frozen, adapters on `--lora_targets`, `train_step(..., adapters_only=True)`, Adam
moments for the adapters alone), e.g. rank 16 on all seven projections on one v5p chip:

    python benchmarks/tpu_fit.py --preset=qwen2_5_7b --topology=v5p:1x1x1 \
        --mesh=data=1,fsdp=-1,tensor=1 --rows=1024 --micro=1024 --prompt_len=1024 \
        --resp_len=2048 --remat=full --attention=chunked --attention_chunk=1024 \
        --lora_rank=16 --lora_alpha=32

`--programs=train_step,prefill,decode` adds the sampler's two programs on the same slice
and the train state's own params (prefill of `--sample_prompts` prompts of `--prompt_len`
tokens repeated `--num_samples` times, and the decode loop of `--resp_len` new tokens over
its donated KV cache), e.g. the 7B math config's sampler (128 x 8 rows, 1024 + 8192):

    python benchmarks/tpu_fit.py --preset=qwen2_5_7b --topology=v5p:2x4x4 --rows=256 \
        --micro=8 --prompt_len=1024 --resp_len=8192 --attention=chunked \
        --attention_chunk=1024 --programs=train_step,prefill,decode

Prints one JSON line per compiled program: per-device bytes of arguments,
outputs, temporaries and the total against the chip's HBM, and the train state's
bytes per chip (`state_gib`: base params, adapters, optimizer state, step).
"""

import argparse
import functools
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the host compiles; it has no TPU
os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")  # no metadata server to ask: not on a TPU VM
# Only compiling: several processes may hold libtpu at once (tests run in parallel).
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import topologies  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from rlvr_jax import config_utils, models, multihost, sharding  # noqa: E402
from rlvr_jax.models import lora  # noqa: E402
from rlvr_jax.rl import objectives, optim, update as update_lib  # noqa: E402
from rlvr_jax.rl.batch import TrainBatch  # noqa: E402

# HBM per chip in GiB (Cloud TPU system architecture pages).
HBM_GIB = {"v4": 32, "v5e": 16, "v5 lite": 16, "v5p": 95, "v5": 95, "v6e": 32, "v6 lite": 32}
# Host bounds of one TPU VM: 4 chips in a 2x2 block (v4/v5p are 3-D, v5e/v6e 2-D).
_CHIPS_PER_HOST = {2: (2, 2, 1), 3: (2, 2, 1)}


def topology_devices(name: str) -> list:
  """Devices of a TPU slice, e.g. 'v5e:4x4' or 'v5p:2x2x4'."""
  gen, dims = name.split(":")
  shape = tuple(int(d) for d in dims.split("x"))
  chips = int(np.prod(shape))
  bounds = _CHIPS_PER_HOST[len(shape)] if chips >= 4 else (*shape, *([1] * (3 - len(shape))))
  desc = topologies.get_topology_desc(platform="tpu", topology_name=name, chip_config_name="default",
                                      chips_per_host_bounds=bounds, num_slices=1)
  del gen
  return list(desc.devices)


def hbm_bytes(device: jax.Device, topology: str) -> int:
  gen = topology.split(":")[0].lower()
  kind = device.device_kind.lower().replace("tpu ", "")
  for key in (gen, kind):
    if key in HBM_GIB:
      return HBM_GIB[key] * 2**30
  raise ValueError(f"HBM size of {device.device_kind!r} ({topology}) unknown; add it to HBM_GIB")


def abstract_state(cfg: models.ModelConfig, optimizer, mesh, rules,
                   spec: lora.LoraSpec | None = None):
  """ShapeDtypeStructs with shardings for {params, opt_state, step}: nothing allocated.

  With a LoRA `spec` the params carry its adapter leaves and the optimizer state is the
  adapters' alone (`optim.init_state(..., adapters_only=True)`)."""
  init = lambda k: models.init_params(cfg, k)
  axes = models.param_logical_axes(cfg)
  if spec is not None:
    init = lambda k: lora.join(lora.init_adapters(cfg, spec, k), models.init_params(cfg, k))
    axes = lora.join(lora.logical_axes(cfg, spec), axes)
  param_shapes = jax.eval_shape(init, jax.random.key(0))
  param_sh = sharding.logical_sharding(axes, mesh, rules, param_shapes)
  params = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        param_shapes, param_sh)
  # Optimizer moments are shaped like the params and take their shardings; counts replicate.
  opt_shapes = jax.eval_shape(optimizer.init, optim.trainable(params, spec is not None))
  repl = NamedSharding(mesh, PartitionSpec())
  by_shape = {}
  for s, sh in zip(jax.tree.leaves(param_shapes), jax.tree.leaves(param_sh)):
    by_shape.setdefault((s.shape, str(s.dtype)), sh)
  opt = jax.tree.map(lambda s: jax.ShapeDtypeStruct(
      s.shape, s.dtype, sharding=by_shape.get((s.shape, str(s.dtype)), repl) if s.ndim else repl),
      opt_shapes)
  return {"params": params, "opt_state": opt,
          "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=repl)}


def state_bytes(state: dict) -> dict:
  """Bytes per chip of the train state's parts: each leaf's shard on one device."""
  def per_chip(tree) -> int:
    return sum(int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
               for x in jax.tree.leaves(tree))
  adapters, base = lora.split(state["params"])
  parts = {"params": per_chip(base), "adapters": per_chip(adapters),
           "opt_state": per_chip(state["opt_state"]), "step": per_chip(state["step"])}
  return dict(parts, total=sum(parts.values()))


def abstract_batch(rows: int, prompt_len: int, resp_len: int, mesh, rules) -> TrainBatch:
  rows_sh = NamedSharding(mesh, sharding.logical_to_spec(("batch",), rules, (rows,), mesh))
  spec2 = sharding.logical_to_spec(("batch", None), rules, (rows, 1), mesh)
  sh2 = NamedSharding(mesh, spec2)
  s = prompt_len + resp_len
  sds = lambda shape, dtype, sh: jax.ShapeDtypeStruct(shape, dtype, sharding=sh)
  return TrainBatch(tokens_RxS=sds((rows, s), jnp.int32, sh2),
                    attn_mask_RxS=sds((rows, s), jnp.bool_, sh2),
                    loss_mask_RxT=sds((rows, resp_len), jnp.bool_, sh2),
                    adv_R=sds((rows,), jnp.float32, rows_sh),
                    old_logp_RxT=sds((rows, resp_len), jnp.float32, sh2))


def host_row_blocks(mesh, rows: int, rules=None) -> dict:
  """How a slice's hosts hold the training rows: {'hosts', 'rows_process_major'}.

  A multi-process run (rlvr_jax/multihost.py) has each host feed and read its own rows, so
  host h's devices must hold one block of consecutive rows, the h-th (what
  `jax.make_array_from_process_local_data` is given). Checked on the slice's own devices,
  so a mesh that interleaves hosts along the batch axes is caught before a pod job.
  """
  rows_sh = NamedSharding(mesh, sharding.logical_to_spec(("batch",), rules, (rows,), mesh))
  blocks = multihost.row_blocks(rows_sh, rows)
  hosts = sorted(blocks)
  per_host = rows // len(hosts)
  ok = rows % len(hosts) == 0 and all(
      blocks[h] == (rank * per_host, (rank + 1) * per_host) for rank, h in enumerate(hosts))
  return {"hosts": len(hosts), "rows_process_major": bool(ok)}


def lower_train_step(cfg, mesh, rules, args, spec: lora.LoraSpec | None = None):
  """(lowered train step, its abstract train state); LoRA's adapters-only step with `spec`."""
  opt_cfg = ml_collections.ConfigDict(dict(lr=1e-6, warmup_steps=10, max_grad_norm=1.0, b1=0.9,
                                           b2=0.999, eps=1e-8, weight_decay=0.01))
  loss_cfg = ml_collections.ConfigDict(dict(eps_low=0.2, eps_high=0.28, dual_clip=0.0,
                                            agg="token-mean", kl_coef=0.0, entropy_coef=0.0,
                                            ratio="token", tis_cap=0.0))
  optimizer = optim.make_optimizer(opt_cfg)
  loss_fn = functools.partial(objectives.pg_loss_fn, cfg=cfg, loss_cfg=loss_cfg,
                              chunk_size=args.logprob_chunk)
  fn = functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                         num_micro=args.micro, agg="token-mean", adapters_only=spec is not None)
  with sharding.use_mesh(mesh, rules):
    state = abstract_state(cfg, optimizer, mesh, rules, spec)
    batch = abstract_batch(args.rows, args.prompt_len, args.resp_len, mesh, rules)
    state_sh = jax.tree.map(lambda s: s.sharding, state)
    lowered = jax.jit(fn, out_shardings=(state_sh, None), donate_argnums=0).lower(state, batch)
  return lowered, state


def lower_sampler(cfg, mesh, rules, params, args):
  """(lowered prefill, lowered decode) of `sampling.sample` for `--sample_prompts` prompts x
  `--num_samples` rows each, prompts of `--prompt_len` and `--resp_len` new tokens, on the
  train state's own params (the sampler reads them where they live)."""
  from rlvr_jax.sampling import sampler
  b, n = args.sample_prompts, args.num_samples
  p, t = args.prompt_len, args.resp_len
  prompt_sh = NamedSharding(mesh, sharding.logical_to_spec(("batch", "length"), rules, (b, p),
                                                           mesh))
  repl = NamedSharding(mesh, PartitionSpec())
  tokens = jax.ShapeDtypeStruct((b, p), jnp.int32, sharding=prompt_sh)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=repl)
  controls = tuple(dict(temperature=1.0, top_p=1.0, top_k=0, greedy=False).items())
  static = dict(cfg=cfg, controls=controls, mesh=mesh, rules=rules)
  prefill = sampler._prefill.lower(params, tokens, tokens, key, num_samples=n,
                                   cache_len=p + t, segments=sampler.default_segments(t),
                                   **static)
  cache, first, prompt_len = prefill.out_info
  as_input = lambda info: jax.tree.map(
      lambda i: jax.ShapeDtypeStruct(i.shape, i.dtype, sharding=i.sharding), info)
  decode = sampler._decode.lower(params, as_input(cache), as_input(first), as_input(prompt_len),
                                 key, max_new_tokens=t, prompt_slots=p, eos_ids=tuple(cfg.eos_ids),
                                 pad_id=cfg.pad_id, **static)
  return prefill, decode


def report(name: str, compiled, hbm: int, extra: dict) -> dict:
  m = compiled.memory_analysis()
  total = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
           + m.temp_size_in_bytes)
  gib = lambda b: round(b / 2**30, 3)
  out = {"program": name, **extra, "arguments_gib": gib(m.argument_size_in_bytes),
         "outputs_gib": gib(m.output_size_in_bytes), "aliased_gib": gib(m.alias_size_in_bytes),
         "temporaries_gib": gib(m.temp_size_in_bytes), "total_gib": gib(total),
         "hbm_gib": gib(hbm), "fits": total <= hbm,
         "bytes": {"arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
                   "aliased": m.alias_size_in_bytes, "temporaries": m.temp_size_in_bytes}}
  print(json.dumps(out), flush=True)
  return out


def main(argv: list[str] | None = None) -> list[dict]:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--preset", default="qwen2_5_7b", choices=models.preset_names())
  ap.add_argument("--topology", default="v5p:2x4x4", help="TPU slice, e.g. v5e:4x4, v5p:2x2x4")
  ap.add_argument("--mesh", default="data=1,fsdp=-1,tensor=1")
  ap.add_argument("--rows", type=int, default=1024, help="responses in one mini-batch update")
  ap.add_argument("--micro", type=int, default=16, help="micro-batches of gradient accumulation")
  ap.add_argument("--prompt_len", type=int, default=1024)
  ap.add_argument("--resp_len", type=int, default=2048)
  ap.add_argument("--remat", default="full", choices=models.config.REMAT_POLICIES)
  ap.add_argument("--param_dtype", default="float32", help="master weights (compute stays bf16)")
  ap.add_argument("--logprob_chunk", type=int, default=512)
  ap.add_argument("--attention", default="einsum", choices=models.config.ATTENTION_IMPLS,
                  help="ModelConfig.attention of the training pass")
  ap.add_argument("--attention_chunk", type=int, default=512, help="query block of 'chunked'")
  ap.add_argument("--programs", default="train_step",
                  help="comma list of train_step, prefill, decode (the sampler's two programs)")
  ap.add_argument("--sample_prompts", type=int, default=128,
                  help="prompts of one sampler call (prefill, decode)")
  ap.add_argument("--num_samples", type=int, default=8, help="rollouts a prompt (sampler)")
  ap.add_argument("--lora_rank", type=int, default=0,
                  help="LoRA adapters of this rank, the base frozen; 0: full fine-tuning")
  ap.add_argument("--lora_alpha", type=float, default=16.0, help="LoRA scale is alpha / rank")
  ap.add_argument("--lora_targets", default=",".join(lora.TARGETS),
                  help="projections LoRA adapts, of " + ",".join(lora.TARGETS))
  args = ap.parse_args(argv)

  if args.rows % args.micro:
    raise ValueError(f"--rows={args.rows} is not divisible by --micro={args.micro}")
  devices = topology_devices(args.topology)
  mesh_cfg = config_utils.parse_arg(args.mesh, data=1, fsdp=-1, tensor=1)
  mesh = sharding.make_mesh(mesh_cfg.to_dict(), devices)
  cfg = models.preset(args.preset, remat=args.remat, param_dtype=args.param_dtype,
                      dtype="bfloat16", attention=args.attention,
                      attention_chunk=args.attention_chunk)
  spec = lora.from_config(ml_collections.ConfigDict(dict(
      rank=args.lora_rank, alpha=args.lora_alpha, dropout=0.0, targets=args.lora_targets)))
  if spec is not None:
    cfg = cfg.replace(lora_scale=spec.scale)
  extra = {"preset": args.preset, "topology": args.topology, "chips": len(devices),
           "device_kind": devices[0].device_kind, "mesh": dict(mesh.shape), "rows": args.rows,
           "micro": args.micro, "prompt_len": args.prompt_len, "resp_len": args.resp_len,
           "remat": args.remat, "param_dtype": args.param_dtype, "attention": args.attention,
           "attention_chunk": args.attention_chunk,
           "num_params": cfg.num_params(), **host_row_blocks(mesh, args.rows),
           "lora_rank": args.lora_rank,
           "lora": None if spec is None else {"alpha": spec.alpha, "targets": list(spec.targets),
                                              "num_params": lora.num_params(cfg, spec)}}
  hbm = hbm_bytes(devices[0], args.topology)
  programs = [p.strip() for p in args.programs.split(",") if p.strip()]
  unknown = sorted(set(programs) - {"train_step", "prefill", "decode"})
  if unknown or not programs:
    raise ValueError(f"--programs {args.programs!r}: each must be train_step, prefill or decode")
  lowered, state = lower_train_step(cfg, mesh, None, args, spec)
  state_b = state_bytes(state)
  extra["state_gib"] = {k: round(v / 2**30, 3) for k, v in state_b.items()}
  extra["state_bytes"] = state_b
  reports = []
  if "train_step" in programs:
    reports.append(compile_and_report("train_step", lowered, hbm, extra))
  if "prefill" in programs or "decode" in programs:
    sample_extra = dict(extra, sample_prompts=args.sample_prompts, num_samples=args.num_samples,
                        cache_slots=args.prompt_len + args.resp_len)
    prefill, decode = lower_sampler(cfg, mesh, None, state["params"], args)
    for name, low in (("prefill", prefill), ("decode", decode)):
      if name in programs:
        reports.append(compile_and_report(name, low, hbm, sample_extra))
  return reports


def compile_and_report(name: str, lowered, hbm: int, extra: dict) -> dict:
  """Compiles `lowered` for the slice; a program the TPU compiler refuses for HBM is
  reported as not fitting, with the compiler's message."""
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    # The TPU compiler refuses programs that cannot fit: that is the answer sought.
    out = {"program": name, **extra, "hbm_gib": round(hbm / 2**30, 3), "fits": False,
           "compiler": str(e).splitlines()[0][:300]}
    print(json.dumps(out), flush=True)
    return out
  return report(name, compiled, hbm, extra)


if __name__ == "__main__":
  main()
