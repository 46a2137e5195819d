"""Math RLVR with Qwen2.5-7B-Instruct at the papers' settings (TPU pod / GPU node).

    python -m rlvr_jax.main --workdir=gs://.../math_qwen7b \\
        --config=configs/math_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct,estimator=bbg \\
        --config.data.train_file=/data/dapo17k.jsonl \\
        --config.data.eval_files=math500=/data/math500.jsonl,aime24=/data/aime24.jsonl

`ckpt` (an HF safetensors directory) and `--config.data.train_file` are required; the data
are jsonl files with `problem` and `answer` (README "Your own math data"). Settings shared by
the SvS and Pass@k papers (PAPERS.md sections 2 and 4): clip-higher 0.2 / 0.28 with the
token-level loss, dual clip 3 (the SvS code), dynamic sampling, lr 1e-6 with 10 warm-up
steps, temperature 1.0, no KL, no entropy bonus; 128 prompts a step in mini-batches of 32.
From the SvS scripts: 8 rollouts a problem and responses up to 8192 tokens
(`max_response_len`); problems get 1024 prompt tokens (MATH / DAPO problems are far shorter;
SvS's 4096 is for synthesized ones). Evaluation: 32 samples a problem at temperature 1.0,
top_p 0.95 (pass@k up to 32). A mini-batch is 32 x 8 = 256 rows in 8 micro-batches (one
row a device and micro-batch on up to 32 devices; raise `micro_batches` for length, lower
it for more devices). bfloat16 compute over float32 master weights, FSDP over every
device, full rematerialization, as configs/maze_qwen2_5_7b.py.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, ckpt="", estimator="grpo", k=4, seed=0, steps=500, max_response_len=8192,
                micro_batches=8, tensor=1)
  if not a.ckpt:
    raise ValueError("configs/math_qwen2_5_7b.py needs the HF checkpoint directory: "
                     "--config=configs/math_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct")
  c = base_config()
  c.seed = a.seed
  c.task.name = "math"
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path=a.ckpt, steps=a.steps, micro_batches=a.micro_batches,
                 max_prompt_len=1024, max_new_tokens=a.max_response_len, eval_every=25,
                 checkpoint_every=10, remat="full")
  # Chunked attention: long responses' [T, S] scores never materialize whole
  # (benchmarks/RESULTS.md: the SvS update, 4096 + 8192 tokens, at 8 micro-batches needs
  # 11.4 GiB a v5p chip, not 33.6, and fits in 2).
  c.model.update(attention="chunked", attention_chunk=1024)
  c.rl.update(num_samples=8, dynamic_sampling=True, max_sampling_tries=3, logprob_chunk=256)
  c.loss.dual_clip = 3.0
  c.mesh.update(data=1, fsdp=-1, tensor=a.tensor)
  c.progress = False  # pod logs: one line a step is enough
  return c
