"""SvS's parts against hand-worked cases: contexts, extraction, rewards, the leak check."""

import jax
import numpy as np
import pytest

from rlvr_jax.rl import batch as batch_lib, svs


def test_contexts_are_the_correct_rollouts_of_problems_at_the_inclusive_accuracy_bounds():
  # N = 8: accuracies 0/8, 1/8 (= acc_low), 2/8, 4/8 (= acc_high), 5/8, 8/8.
  r = np.zeros((6, 8), np.float32)
  for b, c in enumerate((0, 1, 2, 4, 5, 8)):
    r[b, 8 - c:] = 1.0
  ctx = svs.select_contexts(r, np.ones_like(r, bool), 0.125, 0.5)
  want = [(1, 7), (2, 6), (2, 7), (3, 4), (3, 5), (3, 6), (3, 7)]
  assert [tuple(x) for x in ctx] == want


def test_contexts_count_accuracy_over_valid_rollouts_only_and_skip_invalid_correct_ones():
  r = np.array([[1, 1, 0, 0, 0, 0, 0, 0]], np.float32)
  valid = np.array([[True, False, True, True, True, True, True, True]])
  # Accuracy 1/7 over the valid rollouts (in the band); the invalid correct rollout is no context.
  assert [tuple(x) for x in svs.select_contexts(r, valid, 0.125, 0.5)] == [(0, 0)]
  # The same rewards, all valid: 2/8 is still in the band, both correct rollouts are contexts.
  assert len(svs.select_contexts(r, np.ones_like(valid), 0.125, 0.5)) == 2
  # A filler group (all invalid) has no contexts.
  assert len(svs.select_contexts(r, np.zeros_like(valid), 0.0, 1.0)) == 0


@pytest.mark.parametrize("response, want", [
    ("```text\nWhat is 3+4?\n```", "What is 3+4?"),
    ("I think.</think>\nHere:\n```text\n  2+2  \n```\nDone", "2+2"),
    ("<think>```text\nwrong\n```</think>```text\nright\n```", "right"),  # after the last </think>
    ("a</think>b</think>```text\nlast\n```", "last"),
    ("```latex\n\\frac{1}{2} + x\n```", "\\frac{1}{2} + x"),  # bare fence, language tag dropped
    ("```\nplain\n```", "plain"),
    ("```python\nfirst\n```\n```text\nsecond\n```", "second"),  # a text block beats a bare one
    ("```text\none\n```\n```text\ntwo\n```", "one"),  # two text blocks: the first
    ("no fence at all", None),
    ("```text\nunterminated", None),
    ("```text\n   \n```", None),  # empty
    ("<think>```text\nonly inside\n```</think> nothing after", None),
])
def test_extraction(response, want):
  assert svs.extract_problem(response) == want


def test_synthesis_reward_at_0_1_5_6_of_8_correct_solves():
  solve = np.zeros((4, 8), np.float32)
  for q, c in enumerate((0, 1, 5, 6)):
    solve[q, :c] = 1.0
  reward, acc = svs.synthesis_rewards(solve, np.ones_like(solve, bool), np.ones(4, bool),
                                      0.125, 0.625)
  np.testing.assert_array_equal(reward, [0, 1, 1, 0])
  np.testing.assert_array_equal(acc, [0, 1 / 8, 5 / 8, 6 / 8])
  # Ineligible problems (failed extraction, too long, leaked) score 0 whatever their solves.
  reward, _ = svs.synthesis_rewards(solve, np.ones_like(solve, bool),
                                    np.array([True, False, False, True]), 0.125, 0.625)
  np.testing.assert_array_equal(reward, [0, 0, 0, 0])
  # Accuracy over valid solves: 1 correct of 2 valid is 1/2 (rewarded); no valid solve scores 0.
  valid = np.zeros((2, 8), bool)
  valid[0, :2] = True
  reward, acc = svs.synthesis_rewards(np.ones((2, 8)) * (np.arange(8) < 1), valid,
                                      np.ones(2, bool), 0.125, 0.625)
  np.testing.assert_array_equal(reward, [1, 0])
  assert acc[0] == 0.5


@pytest.mark.parametrize("problem, answer, leaks", [
    ("12-0", "12", True),
    ("112-100", "12", False),
    ("What is 5 + 7? (It is 12.)", "12", True),
    ("x = 1 2", "12", True),  # whitespace is ignored, as the verifier's normalization does
    ("\\frac{1}{2}+\\frac{1}{2}", "\\frac{1}{2}", True),
    ("Compute 3/4 of 8", "6", False),
    ("7-13", "-13", True),
    ("3+4", "", False),
])
def test_leak_check(problem, answer, leaks):
  assert svs.leaks_answer(problem, answer) == leaks


def test_context_slots_are_powers_of_two_capped_and_rounded_to_the_process_multiple():
  assert [svs.padded_contexts(c, 32, 1) for c in (0, 1, 2, 3, 5, 17, 32)] == [0, 1, 2, 4, 8, 32, 32]
  assert svs.padded_contexts(5, 6, 1) == 6
  assert svs.padded_contexts(3, 32, 4) == 4 and svs.padded_contexts(1, 32, 4) == 4


def test_groups_are_packed_whole_into_fixed_size_minibatches_padded_with_the_null_row():
  groups = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 10), np.arange(20, 24)]
  mbs = batch_lib.pack_groups(groups, jax.random.PRNGKey(3), rows=6, pad_row=99)
  assert all(len(m) == 6 for m in mbs) and len(mbs) == 3
  flat = np.concatenate(mbs)
  assert sorted(flat[flat != 99].tolist()) == sorted(np.concatenate(groups).tolist())
  assert (flat == 99).sum() == 18 - 14 and (flat[-4:] == 99).all()
  # Each group's rows stay consecutive in the packed order.
  for g in groups:
    pos = np.flatnonzero(np.isin(flat, g))
    assert (np.diff(pos) == 1).all()


def test_concat_rows_left_pads_prompts_and_appends_null_rows_outside_the_loss():
  a = batch_lib.TrainBatch(tokens_RxS=np.array([[5, 6, 7]]), attn_mask_RxS=np.ones((1, 3), int),
                           loss_mask_RxT=np.ones((1, 1), np.float32), adv_R=np.ones(1, np.float32))
  b = batch_lib.TrainBatch(tokens_RxS=np.array([[4, 5, 6, 7, 8], [1, 2, 3, 4, 5]]),
                           attn_mask_RxS=np.ones((2, 5), int),
                           loss_mask_RxT=np.ones((2, 1), np.float32),
                           adv_R=np.array([2, 3], np.float32))
  out = batch_lib.concat_rows([a, b], pad_id=0, row_multiple=4)
  assert out.tokens_RxS.shape == (4, 5)
  np.testing.assert_array_equal(out.tokens_RxS[0], [0, 0, 5, 6, 7])
  np.testing.assert_array_equal(out.attn_mask_RxS[0], [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(out.loss_mask_RxT[:, 0], [1, 1, 1, 0])  # the null row
  np.testing.assert_array_equal(out.adv_R, [1, 2, 3, 0])
  np.testing.assert_array_equal(out.tokens_RxS[3], out.tokens_RxS[0])  # a copy of row 0
  # Exactly a multiple already: one more block of null rows (there is always one).
  assert batch_lib.concat_rows([b, b], pad_id=0, row_multiple=4).tokens_RxS.shape[0] == 8


def test_warm_start_rows_teach_the_synthesis_format_first_then_solving():
  from rlvr_jax import tasks
  from rlvr_jax.rl import warmstart
  tok = tasks.CharTokenizer()
  exs = [{"problem": "7+5-3", "answer": "9", "solution": "7+5=12,12-3=9 \\boxed{9}"},
         {"problem": "1+1", "answer": "2", "solution": "1+1=2 \\boxed{2}"}]
  b = warmstart.sft_batch(tasks.get("arith"), tok, exs, target_field="solution", chat=False,
                          max_prompt_len=64, max_new_tokens=24, pad_id=0, eos_id=2,
                          synthesis_rows=1, synthesis_template="Write the problem of: {solution}\n")
  p = b.tokens_RxS.shape[1] - 24
  text = lambda r, cols, m: tok.decode(b.tokens_RxS[r, cols][m[r, cols] > 0])
  assert text(0, slice(0, p), b.attn_mask_RxS) == "Write the problem of: 7+5=12,12-3=9 \\boxed{9}\n"
  assert tok.decode(b.tokens_RxS[0, p:][b.loss_mask_RxT[0] > 0]) == "```text\n7+5-3\n```"
  assert text(1, slice(0, p), b.attn_mask_RxS) == "Problem: 1+1\nSolution: "
  assert tok.decode(b.tokens_RxS[1, p:]) == "1+1=2 \\boxed{2}"
  assert svs.extract_problem(svs.fenced("7+5-3")) == "7+5-3"


def test_warm_start_run_passes_the_synthesis_share_of_each_batch(monkeypatch, tmp_path):
  import os
  import runpy
  from rlvr_jax import data as data_lib, sharding, tasks
  from rlvr_jax.rl import logger, train, warmstart
  from jax.sharding import NamedSharding, PartitionSpec
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  c = runpy.run_path(os.path.join(root, "configs", "svs_tiny.py"))["get_config"]("runlocal")
  c.warmstart.update(steps=2, batch_size=8, synthesis_frac=0.25)
  seen = []
  real = warmstart.sft_batch

  def spy(*a, **kw):
    seen.append(kw["synthesis_rows"])
    return real(*a, **kw)

  monkeypatch.setattr(warmstart, "sft_batch", spy)
  mesh = sharding.make_mesh(c.mesh, jax.devices()[:1])
  cfg, params, tok = train.load_policy(c, mesh, None)
  trainset, _ = data_lib.load("arith", c.data)
  writer = logger.MetricWriter(str(tmp_path), 0, 0, progress=False)
  with sharding.use_mesh(mesh, None):
    warmstart.run(params, cfg, tasks.get("arith"), tok, trainset, c, mesh,
                  NamedSharding(mesh, PartitionSpec(("data", "fsdp"))), writer)
  writer.close()
  assert seen == [2, 2]


def test_global_groups_offset_each_process_block_and_keep_only_its_kept_groups(monkeypatch):
  from rlvr_jax import multihost
  # Two processes with the same layout: 2 originals of 4 rows, 1 synthesis group of 2 rows,
  # 2 solve groups of 4 rows = 18 rows, padded to a block of 20 local rows.
  keep_p0 = [np.array([True, True]), np.array([False]), np.array([True, False])]
  keep_p1 = np.array([1, 0, 1, 0, 1], np.int8)  # what process 1 holds
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(multihost, "gather",
                      lambda x: np.concatenate([np.asarray(x), keep_p1]))
  groups = svs.global_groups([(2, 4), (1, 2), (2, 4)], keep_p0, local_rows=20)
  got = [g.tolist() for g in groups]
  assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [10, 11, 12, 13],  # process 0
                 [20, 21, 22, 23], [28, 29], [34, 35, 36, 37]]  # process 1: offset 20
