"""Maze with the tiny character-vocabulary policy: supervised warm start on BFS paths, then RL.

    python -m rlvr_jax.main --config=configs/maze_tiny.py --workdir=/tmp/maze_tiny
    python -m rlvr_jax.main --config=configs/maze_tiny.py:estimator=passk_analytical,k=4 --workdir=...
    python -m rlvr_jax.main --config=configs/maze_tiny.py:runlocal --workdir=/tmp/w   # seconds-scale smoke

Small mazes (train 7x7; test 5x5, 7x7, 9x9) so that a 4-layer d=128 model on 2 CPU cores reaches a
pass@1 where RL has signal within minutes. Measured (experiments/maze_tiny/warmstart_tuning.log,
eval 8 samples x 32 mazes a size, temperature 1, top_p 0.95): 300 warm-start steps of 32 BFS
paths give pass@1 12.9% averaged over the sizes (5x5 11%, 7x7 25%, 9x9 2%) and pass@8 43%;
100 steps 2.9%, 200 steps 4.2%. An evaluation with another sampling key of the same policy gave
9.6% (5x5 9%, 7x7 20%, 9x9 0.4%): 32 mazes a size leave a few points of noise.
Time on the shared (load ~10) 2-core machine: warm start ~2.6 s a step, an RL step of
16 prompts x 8 rollouts ~13 s (with the old-logp recompute), of 8 prompts ~6.5 s (without),
an evaluation 9-15 s, compiles ~40-70 s a process (a persistent XLA cache removes most).
The train sizes stay (7,): there are only a few dozen distinct 5x5 mazes, too few for a train set.
"""

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=40, warmstart_steps=300, batch_prompts=16,
                warmstart_dir="", runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.task.name = "maze"
  c.data.splits = {"num_train": 2000, "num_test": 96, "seed": 1234, "loop_prob": 0.1,
                   "train_sizes": (7,), "test_sizes": (5, 7, 9)}
  c.data.eval_group_key = "size"
  c.model.preset = "tiny"
  # Two updates a step. The update (forward + backward over B * N rows) dominates a step on
  # CPU; the sampler's log-probs are the policy's own (temperature 1, top_p 1, fp32), so the
  # extra forward pass that recomputes them is skipped.
  c.rl.update(steps=a.steps, batch_prompts=a.batch_prompts, num_samples=8,
              mini_batch_prompts=max(1, a.batch_prompts // 2), micro_batches=1, max_prompt_len=96,
              max_new_tokens=32, temperature=1.0, top_p=1.0, logprob_chunk=64,
              recompute_old_logp=False)
  c.optimizer.update(lr=1e-4, warmup_steps=5)  # tiny model from scratch: far above the 7B's 1e-6
  c.advantage = advantage_block(a.estimator, a.k)
  c.warmstart.update(steps=a.warmstart_steps, batch_size=32, log_every=25, load_dir=a.warmstart_dir)
  c.eval.update(every=20, num_samples=8, batch_prompts=32)
  c.checkpoint.update(every=10, keep=2)
  if a.runlocal:
    c.data.splits.update(num_train=64, num_test=6)
    c.rl.update(steps=min(a.steps, 3), batch_prompts=4, num_samples=4, mini_batch_prompts=2)
    c.warmstart.update(steps=min(a.warmstart_steps, 4), batch_size=8, log_every=2)
    c.eval.update(every=0, num_samples=4, batch_prompts=8)
    c.checkpoint.update(every=1, keep=2)
  return c
