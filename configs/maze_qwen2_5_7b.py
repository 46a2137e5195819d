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
from rlvr_jax.rl.defaults import advantage_block, base_config

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, ckpt="", estimator="grpo", k=4, seed=0, steps=400, max_response_len=4096,
                micro_batches=16, tensor=1, runlocal=False)
  if not a.ckpt:
    raise ValueError("configs/maze_qwen2_5_7b.py needs the HF checkpoint directory: "
                     "--config=configs/maze_qwen2_5_7b.py:ckpt=/ckpt/Qwen2.5-7B-Instruct")
  c = base_config()
  c.seed = a.seed
  c.task.name = "maze"
  c.data.splits = {"num_train": 20000, "num_test": 256, "seed": 1234, "loop_prob": 0.1,
                   "train_sizes": (9, 11, 13, 15), "test_sizes": tuple(range(7, 22, 2))}
  c.data.eval_group_key = "size"
  c.model.update(source="checkpoint", path=a.ckpt, chat=True, dtype="bfloat16",
                 param_dtype="float32", remat="full")
  # Every device shards both the parameters (fsdp) and the rollout rows (data x fsdp).
  c.mesh.update(data=1, fsdp=-1, tensor=a.tensor)
  c.rl.update(steps=a.steps, batch_prompts=128, num_samples=32, mini_batch_prompts=32,
              micro_batches=a.micro_batches, max_prompt_len=2048,
              max_new_tokens=a.max_response_len, temperature=1.0, top_p=1.0, logprob_chunk=256)
  c.loss.update(eps_low=0.2, eps_high=0.28, agg="token-mean", kl_coef=0.0, entropy_coef=0.0)
  c.optimizer.update(lr=1e-6, warmup_steps=10)
  c.advantage = advantage_block(a.estimator, a.k)
  c.eval.update(every=25, num_samples=32, temperature=1.0, top_p=0.95, batch_prompts=32)
  c.checkpoint.update(every=10, keep=3, async_save=True, export_hf=True)
  c.progress = False  # pod logs: one line a step is enough
  if a.runlocal:  # one small step on one host (pair it with a small ckpt, e.g. Qwen2.5-0.5B)
    c.data.splits.update(num_train=16, num_test=2, train_sizes=(5,), test_sizes=(5,))
    c.model.update(dtype="float32", remat="none")
    c.mesh.update(data=-1, fsdp=1, tensor=1)
    c.rl.update(steps=1, batch_prompts=4, num_samples=2, mini_batch_prompts=4, micro_batches=1,
                max_prompt_len=512, max_new_tokens=16, logprob_chunk=16)
    c.eval.update(every=0, at_start=False, at_end=False)
    c.checkpoint.update(every=1, keep=1, export_hf=False)
    c.progress = True
  return c
