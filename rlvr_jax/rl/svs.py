"""SvS: self-play with variational problem synthesis (PAPERS.md section 4), a kind of RL step.

    config.algorithm = "svs"      # with the `svs` block of rl/defaults.py

Shape letters (beside B, N, R of rl/batch.py): C synthesis contexts (padded to
a bucket, the same on every process), V syntheses a context (`svs.num_syntheses`,
the paper's G_v), Q = C * V synthesized problems, each solved N times.

One step, from B original problems:
1. original rollouts, verified, with dynamic sampling as configured (RLVR's
   `batch.sample_groups`);
2. contexts: every correct response of a problem whose accuracy is within
   [acc_low, acc_high] (inclusive; 1/8 and 4/8 at N = 8), at most
   `max_contexts` a process (a random subset beyond it);
3. synthesis: the policy, shown the correct response alone, writes V problems
   a context in a fenced ```text block (`extract_problem`);
4. solving: N solutions a synthesized problem, graded against the original
   problem's reference answer (`Task.with_problem`);
5. synthesis reward: 1 when the problem was extracted, fits the prompt budget,
   does not contain the reference answer (the leak check) and its solve
   accuracy is within [reward_low, reward_high] (1 to 5 of 8), else 0;
6. one update on every original group, the synthesis groups with a positive
   member, and the solve groups with 0 < acc < 1; advantages by the configured
   estimator, each group on its own.

Where the authors' public code differs, and why we do not follow it:
- a synthesis response with no problem in it reuses the previous response's
  problem there (a bug); here it is a failed synthesis with reward 0;
- a step with no context is skipped there, originals included; here the
  originals are still updated on;
- the leak check is ours (on by default, `svs.leak_check`): the paper reports
  that rewarding solvability alone makes the policy write the answer into the
  problem. The solve groups of a leaked problem also leave the update (ours:
  a problem that states its answer teaches copying, not solving).
Synthesis and solve groups outside the update are not run through it at all;
the update's mini-batches are `batch.pack_groups` of the kept groups.
"""

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from rlvr_jax import multihost
from rlvr_jax.rl import batch as batch_lib, rollout

# Our synthesis prompt for instruct policies: the solution alone, never the problem.
PROMPT = (
    "Here is a complete, correct solution to a problem, ending with its final answer.\n\n"
    "{solution}\n\n"
    "Write the problem that this solution solves: a self-contained problem statement that "
    "would most plausibly lead a solver to exactly this solution and this final answer. Do "
    "not state the answer or the steps of the solution in the problem. Write the problem, "
    "and nothing else, inside a ```text fenced block.")

_THINK_END = "</think>"
_TEXT_BLOCK = re.compile(r"```text[ \t]*\n(.*?)```", re.DOTALL)
_BARE_BLOCK = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)```", re.DOTALL)


def extract_problem(response: str) -> str | None:
  """The synthesized problem in a response, or None.

  After the last `</think>` if there is one: the first ```text block; failing
  that, the first bare ``` block (a language tag such as ```latex is dropped).
  An unterminated or empty block yields nothing.
  """
  text = response.rsplit(_THINK_END, 1)[-1]
  for pattern in (_TEXT_BLOCK, _BARE_BLOCK):
    match = pattern.search(text)
    if match:
      problem = match.group(1).strip()
      return problem or None
  return None


def select_contexts(rewards_BxN: np.ndarray, valid_BxN: np.ndarray, acc_low: float,
                    acc_high: float) -> np.ndarray:
  """[C, 2] (problem, rollout) of the correct valid rollouts of the problems whose accuracy
  over their valid rollouts lies within [acc_low, acc_high], both bounds included."""
  correct_BxN = (np.asarray(rewards_BxN) >= 1.0) & np.asarray(valid_BxN, bool)
  acc_B = correct_BxN.sum(-1) / np.maximum(np.asarray(valid_BxN).sum(-1), 1)
  band_B = within(acc_B, acc_low, acc_high) & np.asarray(valid_BxN).any(-1)
  return np.argwhere(correct_BxN & band_B[:, None]).astype(np.int64).reshape(-1, 2)


def within(acc: np.ndarray, low: float, high: float) -> np.ndarray:
  """low <= acc <= high, with 1e-9 of slack for bounds like 1/6 written as decimals."""
  return (acc >= low - 1e-9) & (acc <= high + 1e-9)


def leaks_answer(problem: str, answer: str) -> bool:
  """Whether `problem` states `answer`, whitespace inside either ignored (the verifier's
  normalization drops it).

  An answer that starts (ends) with a letter or digit must not be glued to one
  in the problem: answer 12 leaks from '12 - 0' and 'it is 12.' but not from '112 - 100'.
  """
  chars = "".join(str(answer).split())
  if not chars:
    return False
  head = r"(?<![0-9A-Za-z])" if chars[0].isalnum() else ""
  tail = r"(?![0-9A-Za-z])" if chars[-1].isalnum() else ""
  body = r"\s*".join(re.escape(ch) for ch in chars)
  return re.search(head + body + tail, problem) is not None


def synthesis_rewards(solve_rewards_QxN: np.ndarray, solve_valid_QxN: np.ndarray,
                      eligible_Q: np.ndarray, low: float, high: float
                      ) -> tuple[np.ndarray, np.ndarray]:
  """(reward_Q, solve_acc_Q): 1 for an eligible problem (extracted, fits, no leak) whose solve
  accuracy over its valid solutions is within [low, high], else 0."""
  valid_QxN = np.asarray(solve_valid_QxN, bool)
  acc_Q = ((np.asarray(solve_rewards_QxN) >= 1.0) & valid_QxN).sum(-1) / np.maximum(
      valid_QxN.sum(-1), 1)
  reward_Q = np.asarray(eligible_Q, bool) & valid_QxN.any(-1) & within(acc_Q, low, high)
  return reward_Q.astype(np.float32), acc_Q


def padded_contexts(count: int, max_contexts: int, multiple: int) -> int:
  """The number of context slots a step samples: 0 for none, else the next power of two
  (at most `max_contexts`), rounded up to `multiple`; a few compiled sampler shapes."""
  if count == 0:
    return 0
  slots = min(1 << (count - 1).bit_length(), max_contexts)
  return -(-slots // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class SvsSpec:
  """What an SvS step needs beside `batch.BatchSpec` (built from the `svs` config block).

  sample: (params, prompts, key, examples) -> Rollouts, V unscored responses a prompt at the
    synthesis temperature / top_p.
  prompt_len: (example) -> tokens of its solve prompt; synthesis_prompt_len: (text) -> tokens
    of a synthesis prompt (both ValueError when it cannot be encoded). A context whose
    synthesis prompt is over `max_synthesis_prompt_len` is not used; a problem whose solve
    prompt is over `max_prompt_len` is a failed synthesis.
  row_multiple: local rows a device (the null rows pad to it); context_multiple: contexts
    a process must sample in a multiple of (its data devices when there are several
    processes, else 1).
  """
  task: Any
  sample: Callable[..., rollout.Rollouts]
  prompt_len: Callable[[Any], int]
  synthesis_prompt_len: Callable[[str], int]
  template: str
  num_syntheses: int
  acc_low: float
  acc_high: float
  reward_low: float
  reward_high: float
  leak_check: bool
  max_contexts: int
  max_prompt_len: int
  max_synthesis_prompt_len: int
  pad_id: int
  row_multiple: int = 1
  context_multiple: int = 1


def synthesis_prompt(template: str, solution: str) -> str:
  """`template` with the solution in its {solution} field (no other field is read)."""
  return template.replace("{solution}", solution)


def fenced(problem: str) -> str:
  """A problem as the synthesis response writes it (what the warm start teaches)."""
  return f"```text\n{problem}\n```"


def fits(length: Callable[[Any], int], item: Any, budget: int) -> bool:
  """Whether `item` encodes to at most `budget` prompt tokens (False if it cannot be encoded)."""
  try:
    return length(item) <= budget
  except ValueError:  # a character the tokenizer cannot encode
    return False


def choose(rows: np.ndarray, limit: int, key: jax.Array) -> np.ndarray:
  """At most `limit` of `rows`, a random subset in their order."""
  if len(rows) <= limit:
    return rows
  pick = np.sort(np.asarray(jax.random.permutation(key, len(rows)))[:limit])
  return rows[pick]


def make_batch(params: Any, key: jax.Array, spec: batch_lib.BatchSpec,
               next_examples: Callable[[], list], estimator: Callable[..., Any],
               name: str = "estimator") -> batch_lib.MadeBatch:
  """One SvS step's training batch (module docstring); `made.rollouts` are the originals'."""
  sv: SvsSpec = spec.svs
  if sv is None:
    raise ValueError("algorithm 'svs' needs BatchSpec.svs")
  t0 = time.perf_counter()
  k_orig, k_ctx, k_syn, k_solve, k_adv = jax.random.split(key, 5)
  ro, valid_BxN, counts = batch_lib.sample_groups(params, k_orig, spec, next_examples)
  adv_BxN, info = batch_lib.estimate(estimator, ro, valid_BxN, jax.random.fold_in(k_adv, 0), name)
  b, n = ro.rewards_BxN.shape
  parts = [batch_lib.assemble(ro, adv_BxN, info["loss_mask_BxN"],
                              keep_sampling_logp=spec.keep_sampling_logp)]
  keep = [np.ones(b, bool)]  # every original group goes to the update, as in RLVR
  sizes = [(b, n)]

  t_orig = time.perf_counter() - t0
  ctx = select_contexts(ro.rewards_BxN, valid_BxN, sv.acc_low, sv.acc_high)
  band = len(np.unique(ctx[:, 0]))
  fits_C = np.asarray([fits(sv.synthesis_prompt_len, synthesis_prompt(sv.template,
                                                                       ro.responses[i * n + j]),
                            sv.max_synthesis_prompt_len) for i, j in ctx], bool)
  stats = dict(problems=float(b), band_problems=float(band), candidates=float(len(ctx)),
               too_long_contexts=float((~fits_C).sum()))
  ctx = choose(ctx[fits_C] if len(ctx) else ctx, sv.max_contexts, k_ctx)
  c = len(ctx)
  stats["contexts"] = float(c)
  c_pad = padded_contexts(multihost.max_over(c), sv.max_contexts, sv.context_multiple)
  t_syn = t_solve = 0.0
  if c_pad:  # every process samples the same number of slots (the sampler is collective)
    t1 = time.perf_counter()
    real_C = np.arange(c_pad) < c
    slot = np.where(real_C, np.arange(c_pad), 0)
    pairs = ctx[slot] if c else np.zeros((c_pad, 2), np.int64)  # padding: any row, out of loss
    ctx_examples = [ro.examples[i] for i, _ in pairs]
    syn = sv.sample(params, [synthesis_prompt(sv.template, ro.responses[i * n + j])
                             for i, j in pairs], k_syn, ctx_examples)
    v = sv.num_syntheses
    t_syn = time.perf_counter() - t1
    problems_Q = [extract_problem(r) for r in syn.responses]
    orig_Q = [ctx_examples[q // v] for q in range(c_pad * v)]
    real_Q = np.repeat(real_C, v)
    solve_examples = [sv.task.with_problem(ex, p) if p is not None else ex
                      for ex, p in zip(orig_Q, problems_Q)]
    extracted_Q = np.asarray([p is not None for p in problems_Q]) & real_Q
    fits_Q = extracted_Q & np.asarray([fits(sv.prompt_len, ex, sv.max_prompt_len)
                                       for ex in solve_examples], bool)
    leaked_Q = fits_Q & np.asarray(
        [sv.leak_check and p is not None and leaks_answer(p, sv.task.reference_answer(ex))
         for ex, p in zip(orig_Q, problems_Q)])
    ok_Q = fits_Q & ~leaked_Q
    # An unusable problem is solved as its original (one compiled shape), out of the loss.
    solve_examples = [ex if good else orig for ex, orig, good in
                      zip(solve_examples, orig_Q, fits_Q)]
    t1 = time.perf_counter()
    solve = spec.generate(params, solve_examples, k_solve)
    t_solve = time.perf_counter() - t1
    usable_QxN = batch_lib.rollout_validity(solve, spec.mask_truncated) & ok_Q[:, None]
    reward_Q, acc_Q = synthesis_rewards(solve.rewards_BxN, usable_QxN, ok_Q,
                                        sv.reward_low, sv.reward_high)
    syn.rewards_BxN = reward_Q.reshape(c_pad, v)
    syn_keep_C = real_C & (syn.rewards_BxN > 0).any(-1)
    syn_valid_CxV = np.repeat(syn_keep_C[:, None], v, 1)
    solve_keep_Q = ok_Q & batch_lib.varied_groups(solve, usable_QxN)
    solve_valid_QxN = usable_QxN & solve_keep_Q[:, None]
    for k, (part, valid) in enumerate(((syn, syn_valid_CxV), (solve, solve_valid_QxN)), 1):
      adv, part_info = batch_lib.estimate(estimator, part, valid, jax.random.fold_in(k_adv, k),
                                          name)
      parts.append(batch_lib.assemble(part, adv, part_info["loss_mask_BxN"],
                                      keep_sampling_logp=spec.keep_sampling_logp))
      keep.append(np.asarray(part_info["loss_mask_BxN"]).any(-1))
      sizes.append(part.rewards_BxN.shape)
    stats.update(
        syntheses=float(real_Q.sum()), extracted=float(extracted_Q.sum()),
        fits=float(fits_Q.sum()), leaked=float(leaked_Q.sum()), usable=float(ok_Q.sum()),
        positive=float(reward_Q[real_Q].sum()), solve_acc_sum=float(acc_Q[ok_Q].sum()),
        solve_correct=float(((solve.rewards_BxN >= 1) & usable_QxN).sum()),
        solve_rollouts=float(usable_QxN.sum()),
        synthesis_groups=float(syn_keep_C.sum()), solve_groups=float(solve_keep_Q.sum()),
        synthesis_tokens=float(syn.mask_RxT[np.repeat(real_C, v)].sum()),
        solve_tokens=float(solve.mask_RxT[np.repeat(real_Q, n)].sum()),
        solve_rows=float(real_Q.sum() * n),
        solve_truncated=float((~solve.finished_R[np.repeat(real_Q, n)]).sum()))
  t1 = time.perf_counter()
  row_multiple = sv.row_multiple
  train = batch_lib.concat_rows(parts, sv.pad_id, row_multiple)
  local_rows = train.tokens_RxS.shape[0]
  groups = global_groups(sizes, keep, local_rows)
  train = batch_lib.to_devices(params, spec, train)
  counts.update(time_sample=t_orig - counts["verify_seconds"],
                time_verify=counts.pop("verify_seconds"), time_synthesis=t_syn,
                time_solve=t_solve, time_logprobs=time.perf_counter() - t1)
  return batch_lib.MadeBatch(train, ro, valid_BxN, adv_BxN, info, counts, groups=groups,
                             pad_row=local_rows - 1, metrics=step_metrics(stats))


def global_groups(sizes: Sequence[tuple[int, int]], keep: Sequence[np.ndarray],
                  local_rows: int) -> list[np.ndarray]:
  """Global row indices of every kept group: the parts' groups lie one after the other in
  each process's block of `local_rows` rows, the same layout on every process."""
  keep_all = multihost.gather(np.concatenate(keep).astype(np.int8)).reshape(
      jax.process_count(), -1).astype(bool)
  starts, lengths, offset = [], [], 0
  for g, width in sizes:
    starts.extend(offset + width * np.arange(g))
    lengths.extend([width] * g)
    offset += g * width
  out = []
  for p, kept in enumerate(keep_all):
    for start, length, k in zip(starts, lengths, kept):
      if k:
        out.append(p * local_rows + start + np.arange(length, dtype=np.int64))
  return out


def step_metrics(stats: dict[str, float]) -> dict[str, float]:
  """The `svs/*` metrics of a step, over every process."""
  keys = ("problems", "band_problems", "contexts", "syntheses", "extracted", "fits", "leaked",
          "usable", "positive", "solve_acc_sum", "solve_correct", "solve_rollouts",
          "synthesis_groups", "solve_groups", "synthesis_tokens", "solve_tokens",
          "solve_rows", "solve_truncated", "candidates", "too_long_contexts")
  g = multihost.gather(np.asarray([stats.get(k, 0.0) for k in keys], np.float64)).reshape(
      -1, len(keys)).sum(0)
  s = dict(zip(keys, g))
  frac = lambda a, b: float(a / b) if b else 0.0
  return {
      "svs/context_problem_frac": frac(s["band_problems"], s["problems"]),
      "svs/contexts": s["contexts"],
      "svs/syntheses": s["syntheses"],
      "svs/extract_frac": frac(s["extracted"], s["syntheses"]),
      "svs/fits_frac": frac(s["fits"], s["syntheses"]),
      "svs/leak_frac": frac(s["leaked"], s["fits"]),
      "svs/synthesis_reward_mean": frac(s["positive"], s["syntheses"]),
      "svs/solve_acc_mean": frac(s["solve_acc_sum"], s["usable"]),
      "svs/solve_reward_mean": frac(s["solve_correct"], s["solve_rollouts"]),
      "svs/synthesis_groups": s["synthesis_groups"],
      "svs/solve_groups": s["solve_groups"],
      "svs/synthesis_tokens": s["synthesis_tokens"],
      "svs/solve_tokens": s["solve_tokens"],
      "svs/solve_truncation_rate": frac(s["solve_truncated"], s["solve_rows"]),
      "svs/too_long_context_frac": frac(s["too_long_contexts"], s["candidates"]),
  }
