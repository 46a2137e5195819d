"""Maze with Qwen2.5-7B-Instruct at the Pass@k Training paper's settings (TPU pod / GPU node).

    python -m rlvr_jax.main --workdir=gs://.../maze_qwen7b \\
        --config=configs/maze_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct,estimator=passk_analytical,k=8

`ckpt` is an HF safetensors directory (config.json, *.safetensors, tokenizer files); it is
required. Settings from PAPERS.md section 2 and the paper's appendix A.2: 128 prompts a step,
mini-batches of 32 prompts, 32 rollouts each, clip-higher eps 0.2 / 0.28 with the token-level
loss, lr 1e-6 with 10 warm-up steps, no KL and no entropy bonus; evaluation at temperature 1.0,
top_p 0.95, 32 samples a maze. The paper does not state the maze run's lengths; its appendix E
uses 4096 for both prompt and response, which `max_response_len` defaults to (a 21x21 maze
prompt is about 600 tokens, so prompts get 2048). bfloat16 compute over float32 master
weights and AdamW moments, FSDP (ZeRO-3) over every device, full rematerialization of each
layer: 7.6B params x (4 + 8) bytes = 91 GB of state, spread over the mesh. `runlocal`
shrinks batch, lengths and mesh to one step on one host (for a small checkpoint).
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import (advantage_block, base_config, paper_maze_data,
                                  paper_settings)

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, ckpt="", estimator="grpo", k=4, seed=0, steps=400, max_response_len=4096,
                micro_batches=16, tensor=1, runlocal=False)
  if not a.ckpt:
    raise ValueError("configs/maze_qwen2_5_7b.py needs the HF checkpoint directory: "
                     "--config=configs/maze_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct")
  c = base_config()
  c.seed = a.seed
  paper_maze_data(c, num_train=20000, runlocal=a.runlocal)
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path=a.ckpt, steps=a.steps, micro_batches=a.micro_batches,
                 max_prompt_len=2048, max_new_tokens=a.max_response_len, eval_every=25,
                 checkpoint_every=10, remat="full", runlocal=a.runlocal)
  c.rl.logprob_chunk = 256
  # Every device shards both the parameters (fsdp) and the rollout rows (data x fsdp).
  c.mesh.update(data=1, fsdp=-1, tensor=a.tensor)
  c.progress = False  # pod logs: one line a step is enough
  if a.runlocal:  # one small step on one host (pair it with a small ckpt, e.g. Qwen2.5-0.5B)
    c.mesh.update(data=-1, fsdp=1, tensor=1)
    c.rl.update(steps=1, logprob_chunk=16)
    c.progress = True
  return c
