"""SvS (self-play with variational problem synthesis, rl/svs.py) on math with SmolLM2-135M-Instruct.

    python -m rlvr_jax.main --config=configs/svs_math_smollm2.py --workdir=/tmp/svs_smollm2 \\
        --config.data.train_file=$HOME/data/math12k.jsonl \\
        --config.data.eval_files=math500=$HOME/data/math500.jsonl,aime24=$HOME/data/aime24.jsonl
    python -m rlvr_jax.main --config=configs/svs_math_smollm2.py:runlocal --workdir=/tmp/w  # CPU smoke

configs/math_smollm2.py (the same data path, prompt and grading), with `algorithm='svs'`
and the SvS paper's settings (PAPERS.md section 4): 8 rollouts a problem, 8 syntheses a
context, contexts from problems with accuracy in [1/8, 4/8], synthesis reward for a solve
accuracy in [1/8, 5/8], the leak check on; GRPO advantages, clip-higher 0.2 / 0.28,
token-mean loss, dual clip 3 (the SvS code), dynamic sampling, lr 1e-6, temperature 1, no
KL, no entropy bonus. Synthesized problems get the original problems' prompt budget (512
tokens here); a synthesis prompt holds a whole response (up to 1024 tokens) and our prompt.
`runlocal`: one CPU step of 4 prompts x 2 rollouts of 64 tokens, 2 syntheses a context.
"""

import os

import ml_collections

from rlvr_jax.config_utils import parse_arg
from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "testdata")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  a = parse_arg(arg, estimator="grpo", k=4, seed=0, steps=200, max_contexts=32, runlocal=False)
  c = base_config()
  c.seed = a.seed
  c.algorithm = "svs"
  c.task.name = "math"
  c.data.train_file = os.path.normpath(os.path.join(SAMPLES, "math_train_sample.jsonl"))
  c.data.eval_files = "sample=" + os.path.normpath(os.path.join(SAMPLES, "math_eval_sample.jsonl"))
  c.advantage = advantage_block(a.estimator, a.k)
  paper_settings(c, path="smollm2_135m_instruct", steps=a.steps, micro_batches=8,
                 max_prompt_len=512, max_new_tokens=1024, eval_every=20, checkpoint_every=20)
  c.rl.update(num_samples=8, dynamic_sampling=True, max_sampling_tries=3)
  c.loss.dual_clip = 3.0
  c.svs.update(num_syntheses=8, max_contexts=a.max_contexts, max_synthesis_prompt_len=1536)
  if a.runlocal:
    c.model.update(dtype="float32", remat="none")  # CPUs have no fast bfloat16
    c.rl.update(steps=min(c.rl.steps, 1), batch_prompts=4, num_samples=2, mini_batch_prompts=4,
                micro_batches=1, max_new_tokens=64, dynamic_sampling=False)
    c.svs.update(num_syntheses=2, max_contexts=2, max_synthesis_prompt_len=512)
    c.eval.update(every=0, at_start=False, at_end=False, num_samples=2, batch_prompts=4)
    c.checkpoint.update(every=1, keep=1, export_hf=False)
  return c
