"""Maze with SmolLM2-135M-Instruct (embedded, offline) and the Pass@k paper's prompt and settings.

    python -m rlvr_jax.main --config=configs/maze_smollm2.py --workdir=/tmp/maze_smollm2
    python -m rlvr_jax.main --config=configs/maze_smollm2.py:estimator=passk_analytical,k=8 --workdir=...
    python -m rlvr_jax.main --config=configs/maze_smollm2.py:runlocal --workdir=/tmp/w   # CPU smoke

The policy reads the paper's maze prompt (PAPERS.md section 3) through its chat template.
Train sizes 9-15, test sizes 7-21; PAPERS.md section 2's training setup: 128 prompts a step,
mini-batches of 32, 32 rollouts each, clip-higher 0.2 / 0.28, token-mean loss, lr 1e-6 with
10 warm-up steps, no KL, no entropy bonus; evaluation at temperature 1.0, top_p 0.95, 32
samples a problem. bfloat16 compute over float32 master weights. `runlocal` keeps the model
and the prompt but shrinks everything else to one CPU step of a few rollouts.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.task.name = "maze"
  c.data.splits = {"num_train": 8000, "num_test": 256, "seed": 1234, "loop_prob": 0.1,
                   "train_sizes": (9, 11, 13, 15), "test_sizes": tuple(range(7, 22, 2))}
  c.data.eval_group_key = "size"
  c.model.update(source="checkpoint", path="smollm2_135m_instruct", chat=True,
                 dtype="bfloat16", param_dtype="float32")
  c.rl.update(steps=a.steps, batch_prompts=128, num_samples=32, mini_batch_prompts=32,
              micro_batches=8, max_prompt_len=1024, max_new_tokens=1024, temperature=1.0,
              top_p=1.0)
  c.loss.update(eps_low=0.2, eps_high=0.28, agg="token-mean", kl_coef=0.0, entropy_coef=0.0)
  c.optimizer.update(lr=1e-6, warmup_steps=10)
  c.advantage = advantage_block(a.estimator, a.k)
  c.eval.update(every=20, num_samples=32, temperature=1.0, top_p=0.95, batch_prompts=32)
  c.checkpoint.update(every=20, keep=3, export_hf=True)
  if a.runlocal:
    c.data.splits.update(num_train=16, num_test=2, train_sizes=(5,), test_sizes=(5,))
    c.model.dtype = "float32"  # CPUs have no fast bfloat16
    c.rl.update(steps=min(a.steps, 1), batch_prompts=4, num_samples=2, mini_batch_prompts=4,
                micro_batches=1, max_prompt_len=512, max_new_tokens=16)
    c.eval.update(every=0, at_start=False, at_end=False)
    c.checkpoint.update(every=1, keep=1, export_hf=False)
  return c
