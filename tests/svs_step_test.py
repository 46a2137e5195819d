"""SvS steps end to end on the arith task with the tiny policy, every response forced.

The sampler really runs (its tokens, log-probs and lengths are the policy's); only the decoded
texts are replaced, by rules of the prompt, so rewards, contexts, syntheses and solve
accuracies are known in advance:
- an original or solve prompt `Problem: <p>\\nSolution: ` gets `COUNTS[p]` correct responses
  (rollouts 0 .. c-1 box the ORIGINAL problem's answer, the others box -99);
- a synthesis prompt (shown the correct response `<p> <n> \\boxed{a}`) gets SYNTHESES[p][v].
"""

import os
import runpy

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import sharding, tasks
from rlvr_jax.rl import batch as batch_lib, checkpointing, logger, rollout, svs, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = V = 4  # runlocal: 4 rollouts a problem, 4 syntheses a context
ORIGINALS = [{"problem": "1+2+3", "answer": "6"}, {"problem": "9-1-1", "answer": "7"},
             {"problem": "5+5-1", "answer": "9"}, {"problem": "2+2+2", "answer": "6"}]
LONG = "9" * 60  # its solve prompt is over rl.max_prompt_len = 48
COUNTS = {"1+2+3": 1, "9-1-1": 2, "5+5-1": 3, "2+2+2": 0,  # 1/4 and 2/4 are in [1/8, 1/2]
          "A1": 1, "3+3=6": 2, "B0": 4, "B1": 4, "B2": 4, "B3": 4,
          "C0": 0, "C1": 1, "C2": 2, "C3": 3}
SYNTHESES = {  # by (original problem, the context rollout)
    ("1+2+3", 0): ["```text\nA1\n```", "no fence here", "```text\n3+3=6\n```",
                   f"```text\n{LONG}\n```"],
    ("9-1-1", 0): ["```text\nB0\n```", "```text\nB1\n```", "```text\nB2\n```", "```text\nB3\n```"],
    ("9-1-1", 1): ["```text\nC0\n```", "```text\nC1\n```", "```text\nC2\n```", "```text\nC3\n```"],
}
ANSWERS = {ex["problem"]: ex["answer"] for ex in ORIGINALS}


FIXED_COUNT = None  # a test sets it to force one count everywhere


def correct_count(problem: str) -> int:
  """COUNTS, else a count by the digit sum (problems the data stream draws in `train.run`)."""
  if FIXED_COUNT is not None:
    return FIXED_COUNT
  if problem in COUNTS:
    return COUNTS[problem]
  return (1, 2, 1, 2, 3, 0, 4)[sum(int(ch) for ch in problem if ch.isdigit()) % 7]


def forced_text(prompt: str, examples: list, b: int, n: int) -> str:
  if prompt.startswith("Write the problem of: "):
    problem, rollout_n = prompt[len("Write the problem of: "):].split(" ")[:2]
    return SYNTHESES.get((problem, int(rollout_n)),
                         [f"```text\n{problem}v{v}\n```" for v in range(V)])[n]
  problem = prompt[len("Problem: "):].split("\n")[0]
  answer = examples[b]["answer"]  # the reference the row is graded against
  return f"{problem} {n} \\boxed{{{answer if n < correct_count(problem) else -99}}}"


@pytest.fixture
def forced(monkeypatch):
  original = rollout.sample

  def sample(params, cfg, tokenizer, prompts, key, *, num_samples, examples=None, **kw):
    ro = original(params, cfg, tokenizer, prompts, key, num_samples=num_samples,
                  examples=examples, **kw)
    ex = list(prompts if examples is None else examples)
    ro.responses = [forced_text(prompts[r // num_samples], ex, r // num_samples,
                                r % num_samples) for r in range(len(ro.responses))]
    return ro

  monkeypatch.setattr(rollout, "sample", sample)


def _config(**over):
  c = runpy.run_path(os.path.join(ROOT, "configs", "svs_tiny.py"))["get_config"]("runlocal")
  c.num_devices, c.progress, c.plot_at_end = 1, False, False
  for k, v in over.items():
    c[k] = v
  return c


def _made(config, num_devices=1):
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:num_devices])
  task = tasks.get("arith")
  cfg, params, tok = train.load_policy(config, mesh, None)
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  with sharding.use_mesh(mesh, None):
    spec = train.batch_spec(config, cfg, task, tok, mesh, None, None, None, rows_sh)
    from rlvr_jax import advantages
    est = advantages.from_config(config.advantage)
    return svs.make_batch(params, jax.random.PRNGKey(0), spec, lambda: list(ORIGINALS), est,
                          "grpo")


def test_one_forced_svs_batch_has_the_hand_worked_contexts_rewards_groups_and_loss_mask(forced):
  made = _made(_config())
  m = made.metrics
  # Contexts: 1+2+3 (1/4) gives rollout 0, 9-1-1 (2/4) rollouts 0 and 1; 5+5-1 (3/4), 2+2+2 (0/4)
  # are out of the band. 3 contexts take 4 slots; 12 real syntheses.
  assert m["svs/contexts"] == 3 and m["svs/syntheses"] == 12
  assert m["svs/context_problem_frac"] == 0.5
  assert m["svs/extract_frac"] == 11 / 12  # 'no fence here'
  assert m["svs/fits_frac"] == 10 / 12  # and the over-long problem
  assert m["svs/leak_frac"] == 1 / 10  # '3+3=6' states its answer 6
  # Rewarded (solve accuracy in [1/8, 5/8]): A1 (1/4), C1 (1/4), C2 (2/4); not B* (4/4), C0
  # (0/4), C3 (3/4), nor the leaked one whatever its accuracy.
  assert m["svs/synthesis_reward_mean"] == 3 / 12
  assert m["svs/solve_acc_mean"] == pytest.approx((0.25 + 4 * 1.0 + 0 + 0.25 + 0.5 + 0.75) / 9)
  # Solves are graded against the original answer: B* box 7 (9-1-1's) and all score 1.
  assert m["svs/synthesis_groups"] == 2  # contexts 0 and 2; context 1 has no positive member
  assert m["svs/solve_groups"] == 4  # A1, C1, C2, C3: 0 < acc < 1 and usable

  # Row layout: originals 0..15, syntheses 16..31 (slot s at 16 + 4 s), solves 32..95
  # (problem q at 32 + 4 q, q = 4 s + v), then one null row.
  starts = sorted(int(g[0]) for g in made.groups)
  assert starts == [0, 4, 8, 12, 16, 24, 32, 32 + 4 * 9, 32 + 4 * 10, 32 + 4 * 11]
  assert all(len(g) == 4 for g in made.groups) and made.pad_row == 96
  loss_R = np.asarray(made.train.loss_mask_RxT).sum(-1) > 0
  adv_R = np.asarray(made.train.adv_R)
  kept = np.zeros(97, bool)
  kept[np.concatenate(made.groups)] = True
  assert not loss_R[~kept].any()  # every row outside the kept groups is out of the loss
  assert loss_R[16:20].all() and loss_R[24:28].all() and loss_R[32:36].all()
  # Synthesis group 0 has rewards [1, 0, 0, 0]: a positive advantage, and three equal
  # negative ones summing to minus it (any mean-centred, scaled estimator).
  a = adv_R[16:20]
  assert a[0] > 0 and np.allclose(a[1:], a[1]) and a[1] < 0
  np.testing.assert_allclose(a.sum(), 0.0, atol=1e-5)
  # Solve group A1 (rows 32..35): rollout 0 correct, advantage positive.
  assert adv_R[32] > 0 and (adv_R[33:36] < 0).all()


def _run(workdir, config, stop=None):
  return train.run(config, str(workdir), stop=stop)


def test_svs_runs_end_to_end_and_on_8_devices_gives_the_same_rewards_and_loss(tmp_path, forced):
  out = {}
  for d in (1, 8):
    c = _config(num_devices=d)
    c.rl.steps = 1
    c.eval.at_start = c.eval.at_end = False
    out[d] = _run(tmp_path / f"d{d}", c)
  one, eight = out[1], out[8]
  assert one["svs/syntheses"] > 0 and one["svs/extract_frac"] >= 0.0
  assert np.isfinite(one["loss"]) and one["updates"] >= 1
  for k in ("reward_mean", "svs/contexts", "svs/syntheses", "svs/synthesis_reward_mean",
            "svs/solve_acc_mean", "num_tokens", "updates"):
    assert one[k] == eight[k], k
  for k in ("grad_norm", "entropy_rollouts"):
    np.testing.assert_allclose(one[k], eight[k], rtol=1e-5, err_msg=k)
  # The loss is a mean of O(1) terms that nearly cancel (group advantages sum to 0): ~7e-4
  # here, so its float32 rounding over 8 shards is absolute (2e-8 measured), not relative.
  np.testing.assert_allclose(one["loss"], eight["loss"], rtol=1e-5, atol=1e-7)


def test_a_step_without_contexts_still_updates_on_its_original_groups(tmp_path, monkeypatch,
                                                                      forced):
  monkeypatch.setitem(globals(), "FIXED_COUNT", 3)
  c = _config()
  c.rl.steps = 1
  c.eval.at_start = c.eval.at_end = False
  made = {}
  original = svs.make_batch

  def keep(*a, **kw):
    made["m"] = original(*a, **kw)
    return made["m"]

  monkeypatch.setitem(train.BATCH_FNS, "svs", keep)
  last = _run(tmp_path / "w", c)
  assert last["svs/contexts"] == 0 and last["svs/syntheses"] == 0
  assert last["reward_mean"] == 0.75  # 3 of 4 correct everywhere: accuracy above the band
  # Both mini-batches of the 4 original groups ran, with a real gradient.
  assert last["updates"] == 2 and last["grad_norm"] > 0
  assert sorted(int(g[0]) for g in made["m"].groups) == [0, 4, 8, 12]


def test_sigterm_mid_run_then_resume_continues_identically(tmp_path, forced):
  c = _config()
  c.rl.steps = 3
  c.eval.at_start = c.eval.at_end = False
  c.checkpoint.update(every=10, async_save=False)
  straight = _run(tmp_path / "straight", c)
  stop = checkpointing.StopFlag()
  original_write = logger.MetricWriter.write

  def write(self, step, scalars, phase="train", histograms=None):
    out = original_write(self, step, scalars, phase, histograms)
    if phase == "train" and step == 1:
      stop.set()
    return out

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(logger.MetricWriter, "write", write)
    first = _run(tmp_path / "resumed", c, stop=stop)
  assert first["prompt_batches"] == 1  # stopped after step 1 (one batch of prompts read)
  resumed = _run(tmp_path / "resumed", c)
  assert straight["svs/contexts"] > 0
  for k, v in straight.items():
    assert resumed[k] == v or k.startswith("time") or k == "tokens_per_sec", (k, v, resumed[k])
