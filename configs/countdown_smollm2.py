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
from rlvr_jax.rl.defaults import advantage_block, base_config

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.task.name = "countdown"
  c.data.splits = {"num_train": 8000, "num_test": 256, "seed": 1234, "num_numbers": (3, 4),
                   "max_number": 100, "max_target": 1000}
  c.model.update(source="checkpoint", path="smollm2_135m_instruct", chat=True,
                 dtype="bfloat16", param_dtype="float32")
  c.rl.update(steps=a.steps, batch_prompts=128, num_samples=32, mini_batch_prompts=32,
              micro_batches=8, max_prompt_len=256, max_new_tokens=1024, temperature=1.0,
              top_p=1.0)
  c.loss.update(eps_low=0.2, eps_high=0.28, agg="token-mean", kl_coef=0.0, entropy_coef=0.0)
  c.optimizer.update(lr=1e-6, warmup_steps=10)
  c.advantage = advantage_block(a.estimator, a.k)
  c.eval.update(every=20, num_samples=32, temperature=1.0, top_p=0.95, batch_prompts=32)
  c.checkpoint.update(every=20, keep=3, export_hf=True)
  if a.runlocal:
    c.data.splits.update(num_train=16, num_test=2)
    c.model.dtype = "float32"  # CPUs have no fast bfloat16
    c.rl.update(steps=min(a.steps, 1), batch_prompts=4, num_samples=2, mini_batch_prompts=4,
                micro_batches=1, max_new_tokens=16)
    c.eval.update(every=0, at_start=False, at_end=False)
    c.checkpoint.update(every=1, keep=1, export_hf=False)
  return c
