"""SvS on math with Qwen2.5-7B-Instruct at the SvS paper's settings (TPU pod / GPU node).

    python -m rlvr_jax.main --workdir=gs://.../svs_qwen7b \\
        --config=configs/svs_math_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct \\
        --config.data.train_file=/data/math12k.jsonl \\
        --config.data.eval_files=aime24=/data/aime24.jsonl,aime25=/data/aime25.jsonl

configs/math_qwen2_5_7b.py (data path, prompt, sharding, 128 problems a step in mini-batches
of 32, 8 rollouts) with `algorithm='svs'` and PAPERS.md section 4: prompts up to 4096 tokens
and responses up to 8192 (the SvS scripts), 8 syntheses a context, contexts from accuracy in
[1/8, 4/8], synthesis reward for solve accuracy in [1/8, 5/8], the leak check on, GRPO,
clip-higher 0.2 / 0.28, dual clip 3, token-mean loss, dynamic sampling, lr 1e-6,
temperature 1, no KL, no entropy bonus. MATH-12k is the paper's data for 3B / 8B models.
A synthesis prompt holds the whole correct response and, as in the public scripts (which pad
every prompt to 4096 tokens), must fit the 4096-token prompt budget; ours: a longer context
is skipped and counted in `svs/too_long_context_frac`, never truncated. At most
`max_contexts` (default 64) contexts a process a step, a random subset beyond it, which
bounds a step's solve rollouts at 64 x 8 x 8 a process.
The update is RLVR's program on mini-batches of 32 x 8 = 256 rows of S = 4096 + 8192 tokens, in
8 micro-batches (one row a device and micro-batch on 32 chips); benchmarks/RESULTS.md has its
fit on v5p.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, ckpt="", estimator="grpo", k=4, seed=0, steps=500, max_contexts=64,
                micro_batches=8, tensor=1)
  if not a.ckpt:
    raise ValueError("configs/svs_math_qwen2_5_7b.py needs the HF checkpoint directory: "
                     "--config=configs/svs_math_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct")
  c = base_config()
  c.seed = a.seed
  c.algorithm = "svs"
  c.task.name = "math"
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path=a.ckpt, steps=a.steps, micro_batches=a.micro_batches,
                 max_prompt_len=4096, max_new_tokens=8192, eval_every=25, checkpoint_every=10,
                 remat="full")
  c.rl.update(num_samples=8, dynamic_sampling=True, max_sampling_tries=3, logprob_chunk=256)
  c.loss.dual_clip = 3.0
  # Chunked attention: the 8192-token responses' [T, S] scores never materialize whole
  # (benchmarks/RESULTS.md: this update at 8 micro-batches needs 11.4 GiB a v5p chip, not
  # 33.6, and fits in 2).
  c.model.update(attention="chunked", attention_chunk=1024)
  c.svs.update(num_syntheses=8, max_contexts=a.max_contexts, max_synthesis_prompt_len=4096)
  c.mesh.update(data=1, fsdp=-1, tensor=a.tensor)
  c.progress = False  # pod logs: one line a step is enough
  return c
