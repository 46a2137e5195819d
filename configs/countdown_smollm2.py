"""Countdown (reach a target with + - * / over given numbers) with SmolLM2-135M-Instruct.

    python -m rlvr_jax.main --config=configs/countdown_smollm2.py --workdir=/tmp/countdown_smollm2
    python -m rlvr_jax.main --config=configs/countdown_smollm2.py:estimator=passk_analytical,k=8 --workdir=...
    python -m rlvr_jax.main --config=configs/countdown_smollm2.py:runlocal --workdir=/tmp/w   # CPU smoke

The policy is the embedded SmolLM2-135M-Instruct (offline), prompted through its chat
template with the countdown task's instruction (answer in <answer> </answer>). Training
settings are PAPERS.md section 2's (128 prompts, mini-batch 32, 32 rollouts, clip-higher
0.2 / 0.28, token-mean loss, lr 1e-6, 10 warm-up steps); 3-4 numbers up to 100.
`runlocal` keeps the model and the prompt and shrinks everything else to one CPU step.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.task.name = "countdown"
  c.data.splits = {"num_train": 8000, "num_test": 256, "seed": 1234, "num_numbers": (3, 4),
                   "max_number": 100, "max_target": 1000}
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path="smollm2_135m_instruct", steps=a.steps, micro_batches=8,
                 max_prompt_len=256, max_new_tokens=1024, eval_every=20, checkpoint_every=20,
                 runlocal=a.runlocal)
  return c
