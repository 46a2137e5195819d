"""Math RLVR with Qwen2.5-7B-Instruct and LoRA on one accelerator (one v5p chip, one 80 GB GPU).

    python -m rlvr_jax.main --workdir=/tmp/math_qwen7b_lora \\
        --config=configs/math_qwen2_5_7b_lora.py:ckpt=/ckpt/Qwen2.5-7B-Instruct,estimator=bbg \\
        --config.data.train_file=/data/dapo17k.jsonl \\
        --config.data.eval_files=math500=/data/math500.jsonl

configs/math_qwen2_5_7b.py (the SvS code's settings: dual clip 3, clip-higher 0.2 / 0.28,
dynamic sampling, temperature 1, no KL) with what one chip holds instead of a pod's
batch, all of it checked by compiling for a single v5p chip (benchmarks/RESULTS.md, "A 7B
LoRA run on one chip"):
- LoRA rank `lora` (16) with alpha 2 x rank on all seven projections; the base frozen in
  bfloat16 (14.2 GiB; the adapters keep float32 weights and AdamW state, 0.45 GiB);
- 16 prompts x 8 rollouts a step, one update of all 128 rows in 16 micro-batches;
  responses up to 4096 tokens (a cache of 1024 + 4096 slots a row; 8192 would need 2x);
- evaluation 16 prompts at a time, 8 samples a sampler call (32 in all);
- lr 1e-5 (ours: adapters start at B = 0 and need a larger step than full fine-tuning's
  1e-6; no paper gives a LoRA value for this setting).
Compiled for v5p:1x1x1: the update takes 35.2 GiB a chip, the sampler's prefill 52.3 GiB
and its decode loop 61.8 GiB (of 95).
"""

import os
import runpy

import ml_collections

from rlvr_jax.config_utils import parse_arg

_FULL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "math_qwen2_5_7b.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, ckpt="", estimator="grpo", k=4, seed=0, steps=500, lora=16,
                max_response_len=4096)
  if a.lora <= 0:
    raise ValueError(f"configs/math_qwen2_5_7b_lora.py: lora={a.lora} must be a positive rank "
                     "(full fine-tuning is configs/math_qwen2_5_7b.py)")
  if not a.ckpt:
    raise ValueError("configs/math_qwen2_5_7b_lora.py needs the HF checkpoint directory: "
                     "--config=configs/math_qwen2_5_7b_lora.py:ckpt=/ckpt/Qwen2.5-7B-Instruct")
  full_arg = (f"ckpt={a.ckpt},estimator={a.estimator},k={a.k},seed={a.seed},steps={a.steps},"
              f"max_response_len={a.max_response_len},micro_batches=16")
  c = runpy.run_path(_FULL)["get_config"](full_arg)
  c.lora.update(rank=a.lora, alpha=2.0 * a.lora, targets="q,k,v,o,gate,up,down")
  c.model.param_dtype = "bfloat16"  # the frozen base; adapters stay float32
  c.rl.update(batch_prompts=16, mini_batch_prompts=16)
  c.optimizer.lr = 1e-5
  c.eval.update(batch_prompts=16, sample_chunk=8)
  c.mesh.update(data=1, fsdp=-1, tensor=1)
  return c
