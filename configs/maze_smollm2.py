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
from rlvr_jax.rl.defaults import (advantage_block, base_config, paper_maze_data,
                                  paper_settings)

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, runlocal=False)
  c = base_config()
  c.seed = a.seed
  paper_maze_data(c, num_train=8000, runlocal=a.runlocal)
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path="smollm2_135m_instruct", steps=a.steps, micro_batches=8,
                 max_prompt_len=1024, max_new_tokens=1024, eval_every=20, checkpoint_every=20,
                 runlocal=a.runlocal)
  return c
