"""configs/math_smollm2.py:runlocal end to end: real SmolLM2-135M-Instruct, real math-verify in the
verifier pool, the Grain data stream through a stop and a resume.

The 64-token runlocal responses of a 135M model almost never reach a boxed answer, so the test
forces the decoded text of each problem's two rollouts: rollout 0 boxes the problem's own
reference answer, rollout 1 a wrong one. The pool must grade them 1 and 0 against the row's
own problem, and grpo then gives a real gradient through the 30-layer update.
"""

import os
import runpy

import jax
import numpy as np
import pytest

from rlvr_jax import data as data_lib, sampling
from rlvr_jax.rl import checkpointing, logger, rollout, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(steps: int):
  c = runpy.run_path(os.path.join(ROOT, "configs", "math_smollm2.py"))["get_config"]("runlocal")
  c.rl.steps = steps  # runlocal makes it one step
  c.num_devices = 1
  c.progress = False
  c.plot_at_end = False
  c.checkpoint.every = 10  # only the stop and the last step save
  return c


def test_math_runlocal_grades_with_math_verify_and_resumes_the_data_stream(
    tmp_path, monkeypatch, compile_cache):
  c = _config(steps=2)
  assert c.rl.steps == 2 and c.task.name == "math"
  train.validate(c, 1)
  drawn: list[list[dict]] = []  # the examples of each generate call
  original_generate, original_decode = rollout.generate, sampling.text.decode_responses
  stop = checkpointing.StopFlag()

  def generate(params, cfg, task, tokenizer, examples, key, **kw):
    drawn.append(list(examples))
    return original_generate(params, cfg, task, tokenizer, examples, key, **kw)

  def decode_responses(tokenizer, out):
    texts = original_decode(tokenizer, out)
    n = c.rl.num_samples
    ex = drawn[-1]
    return [f"{t}\nSo the answer is \\boxed{{{ex[r // n]['answer'] if r % n == 0 else '-12345'}}}."
            for r, t in enumerate(texts)]

  monkeypatch.setattr(rollout, "generate", generate)
  monkeypatch.setattr(sampling.text, "decode_responses", decode_responses)
  work = str(tmp_path / "w")
  # Step 1, then a stop (as SIGTERM would set it): saved at step 1, run() returns.
  original_write = logger.MetricWriter.write

  def write(self, step, scalars, phase="train", histograms=None):
    out = original_write(self, step, scalars, phase, histograms)
    if phase == "train" and step == 1:
      stop.set()
    return out

  with monkeypatch.context() as m:
    m.setattr(logger.MetricWriter, "write", write)
    train.run(c, work, stop=stop)
  assert os.listdir(os.path.join(work, "checkpoints")) == ["1"]
  train.run(_config(steps=2), work)  # resumes at step 2
  recs = [r for r in logger.read_jsonl(os.path.join(work, "metrics.jsonl")) if r["phase"] == "train"]
  assert [r["step"] for r in recs] == [1, 2]
  for r in recs:
    # Each problem's boxed reference answer scored 1, the wrong one 0: every group varies.
    assert (r["reward_mean"], r["acc_mean"], r["zero_var_frac"]) == (0.5, 0.5, 0.0)
    assert r["verify_timeouts"] == 0 and r["verify_errors"] == 0 and r["time_verify"] > 0
    assert np.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["num_tokens"] > 0
  # The data stream: step 1's and the resumed step 2's prompts are the first two batches of
  # the iterator an uninterrupted run draws.
  train_set, _ = data_lib.load("math", c.data)
  expected = data_lib.prompt_iterator(train_set, c.rl.batch_prompts, seed=c.seed)
  assert drawn == [next(expected), next(expected)]
  assert drawn[0] != drawn[1]
