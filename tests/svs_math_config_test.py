"""configs/svs_math_smollm2.py:runlocal, one SvS step end to end: real SmolLM2-135M-Instruct, its
chat template, real math-verify in the verifier pool.

The 64-token responses of a 135M model almost never box an answer, so the decoded texts are
forced: each problem's two rollouts box its reference answer, then a wrong one (accuracy 1/2,
in the context band); every synthesis writes a ```text block without the answer; each
synthesized problem's two solutions box the ORIGINAL answer, then a wrong one (accuracy 1/2,
in the reward band). What is real: the policy's tokens and log-probs, the prompts, the
extraction, math-verify's grading, the leak check, the 30-layer update.
"""

import os
import runpy

import numpy as np

from rlvr_jax.rl import rollout, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHESIZED = "A shop sells pens. How many pens are asked for in the original question?"


def test_svs_math_runlocal_one_step_with_forced_texts(tmp_path, monkeypatch, compile_cache):
  c = runpy.run_path(os.path.join(ROOT, "configs", "svs_math_smollm2.py"))["get_config"]("runlocal")
  assert (c.algorithm, c.task.name, c.rl.steps) == ("svs", "math", 1)
  c.num_devices, c.progress, c.plot_at_end = 1, False, False
  train.validate(c, 1)
  calls = []
  original = rollout.sample

  def sample(params, cfg, tokenizer, prompts, key, *, num_samples, examples=None, **kw):
    ro = original(params, cfg, tokenizer, prompts, key, num_samples=num_samples,
                  examples=examples, **kw)
    synthesis = isinstance(prompts[0], str)  # solve and original prompts are chat messages
    calls.append(("synthesis" if synthesis else "solve", list(prompts)))
    texts = []
    for r in range(len(ro.responses)):
      b, n = divmod(r, num_samples)
      if synthesis:
        texts.append(f"Here it is.\n```text\n{SYNTHESIZED}\n```")
      else:
        texts.append(f"So \\boxed{{{examples[b]['answer'] if n == 0 else '-12345'}}}.")
    ro.responses = texts
    return ro

  monkeypatch.setattr(rollout, "sample", sample)
  last = train.run(c, str(tmp_path / "w"))
  kinds = [k for k, _ in calls]
  assert kinds == ["solve", "synthesis", "solve"]  # originals, syntheses, solves
  originals = calls[0][1]
  # The synthesis prompt shows a correct response and nothing of the problem.
  for p in calls[1][1]:
    assert "\\boxed{" in p and "-12345" not in p
    assert not any(o[0]["content"].split("\n")[0] in p for o in originals)
  # Solve prompts pose the synthesized problem with math's boxed instruction.
  assert all(m[0]["content"].startswith(SYNTHESIZED) and "\\boxed{}" in m[0]["content"]
             for m in calls[2][1])
  assert last["reward_mean"] == 0.5 and last["verify_errors"] == 0
  assert last["svs/contexts"] == 2  # 4 correct responses, capped at svs.max_contexts = 2
  assert last["svs/syntheses"] == 4 and last["svs/extract_frac"] == 1.0
  assert last["svs/leak_frac"] == 0.0
  # Graded by math-verify against the original answers: 1 of 2 correct, reward 1 each.
  assert last["svs/solve_reward_mean"] == 0.5 and last["svs/synthesis_reward_mean"] == 1.0
  assert last["svs/synthesis_groups"] == 2 and last["svs/solve_groups"] == 4
  assert np.isfinite(last["loss"]) and last["grad_norm"] > 0
