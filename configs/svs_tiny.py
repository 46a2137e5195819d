"""SvS against plain RLVR on the arith task with the tiny character policy (experiments/svs_tiny).

    python -m rlvr_jax.main --config=configs/svs_tiny.py --workdir=/tmp/svs_tiny            # SvS
    python -m rlvr_jax.main --config=configs/svs_tiny.py:algorithm=rlvr --workdir=/tmp/rlvr  # GRPO
    python -m rlvr_jax.main --config=configs/svs_tiny.py:runlocal --workdir=/tmp/w          # smoke

The CPU analogue of SvS on math: arith problems (`7+5-3`, tasks/arith.py) share their
answers, so a problem the policy writes from a worked solution can be graded against the
original answer. The warm start (800 steps) teaches both formats: half of each batch is
`Write the problem of: <solution>` -> a ```text block with the problem, the rest
`Problem: <p>\\nSolution: ` -> the worked solution. Then RL with the SvS paper's loss settings
(GRPO, clip-higher 0.2 / 0.28, token-mean, dynamic sampling, no KL, no entropy bonus) at the
tiny policy's learning rate, 8 problems x 8 rollouts a step, 8 syntheses a context and at most
8 contexts a step. `algorithm=rlvr` is the same run without synthesis (the baseline).
Measured on 4-operand problems (experiments/svs_tiny, 256 test problems x 32 samples): 300
warm-start steps with a quarter of synthesis rows give pass@1 14.4 %, pass@32 87.5 %, but
problems written from a solution are the original in 0 % of samples (same answer 7 %, chance);
800 steps with half give 97 % exact inversions.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config

PROMPT = "Write the problem of: {solution}\n"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, algorithm="svs", estimator="grpo", k=4, seed=0, steps=30,
                warmstart_steps=800, warmstart_dir="", max_contexts=8, operands="4",
                runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.algorithm = a.algorithm
  c.task.name = "arith"
  c.data.splits = {"num_train": 2000, "num_test": 256, "seed": 1234,
                   "operands": tuple(int(x) for x in str(a.operands).split("+"))}
  c.data.eval_group_key = "operands"
  c.model.preset = "tiny"
  c.rl.update(steps=a.steps, batch_prompts=8, num_samples=8, mini_batch_prompts=4,
              micro_batches=1, max_prompt_len=48, max_new_tokens=40, temperature=1.0, top_p=1.0,
              logprob_chunk=64, recompute_old_logp=False, dynamic_sampling=True,
              max_sampling_tries=2)
  c.optimizer.update(lr=1e-4, warmup_steps=5)  # the tiny model's, as configs/maze_tiny.py
  c.advantage = advantage_block(a.estimator, a.k)
  c.svs.update(num_syntheses=8, max_contexts=a.max_contexts, prompt=PROMPT,
               max_synthesis_prompt_len=64)
  c.warmstart.update(steps=a.warmstart_steps, batch_size=32, log_every=25,
                     load_dir=a.warmstart_dir, synthesis_frac=0.5)
  c.eval.update(every=10, num_samples=32, batch_prompts=32)
  c.checkpoint.update(every=10, keep=2)
  if a.runlocal:
    c.data.splits.update(num_train=64, num_test=8)
    c.rl.update(steps=min(a.steps, 2), batch_prompts=4, num_samples=4, mini_batch_prompts=2,
                dynamic_sampling=False)
    c.svs.update(num_syntheses=4, max_contexts=4)
    c.warmstart.update(steps=min(a.warmstart_steps, 4), batch_size=8, log_every=2)
    c.eval.update(every=0, num_samples=4, batch_prompts=8)
    c.checkpoint.update(every=1, keep=2)
  return c
