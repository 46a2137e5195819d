"""Math (boxed answers graded by math-verify) with SmolLM2-135M-Instruct, offline.

    python -m rlvr_jax.main --config=configs/math_smollm2.py --workdir=/tmp/math_smollm2 \\
        --config.data.train_file=$HOME/data/dapo17k.jsonl \\
        --config.data.eval_files=math500=$HOME/data/math500.jsonl,aime24=$HOME/data/aime24.jsonl
    python -m rlvr_jax.main --config=configs/math_smollm2.py:estimator=passk_analytical,k=8 ...
    python -m rlvr_jax.main --config=configs/math_smollm2.py:runlocal --workdir=/tmp/w   # CPU smoke

Data: jsonl files with `problem` and `answer` fields (MATH-500, AIME24/25, DAPO-17k exports;
see README "Your own math data"). Without `--config.data.*` the config reads the small hand-made
samples under tests/testdata, enough for a smoke run, not for research. The prompt is the
problem followed by the `\\boxed{}` instruction of the SvS code, in SmolLM2's chat template; the
last boxed answer is graded against the reference with math-verify in a time-limited process
pool. Training settings are PAPERS.md section 2's (128 prompts, mini-batch 32, 32 rollouts,
clip-higher 0.2 / 0.28, token-mean loss, lr 1e-6, 10 warm-up steps, no KL, no entropy bonus),
with responses up to 1024 tokens. `runlocal`: one CPU step of 4 prompts x 2 rollouts of 64
tokens, no evaluation.
"""

import os

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "testdata")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.task.name = "math"
  c.data.train_file = os.path.normpath(os.path.join(SAMPLES, "math_train_sample.jsonl"))
  c.data.eval_files = "sample=" + os.path.normpath(os.path.join(SAMPLES, "math_eval_sample.jsonl"))
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path="smollm2_135m_instruct", steps=a.steps, micro_batches=8,
                 max_prompt_len=512, max_new_tokens=1024, eval_every=20, checkpoint_every=20)
  if a.runlocal:
    local_math(c)
  return c


def local_math(c: ml_collections.ConfigDict) -> None:
  """One CPU step: 4 prompts x 2 rollouts of 64 tokens (room for a short boxed answer)."""
  c.model.update(dtype="float32", remat="none")  # CPUs have no fast bfloat16
  c.rl.update(steps=min(c.rl.steps, 1), batch_prompts=4, num_samples=2, mini_batch_prompts=4,
              micro_batches=1, max_new_tokens=64)
  c.eval.update(every=0, at_start=False, at_end=False, num_samples=2, batch_prompts=4)
  c.checkpoint.update(every=1, keep=1, export_hf=False)
