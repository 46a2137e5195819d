"""Rollouts: prompts -> sampler -> responses -> verifier rewards.

Shape letters: B problems, N rollouts a problem, R = B * N rows (problem-major,
row b * N + n), P prompt tokens (left-padded to a `sampling.bucket_length`), T
response tokens. Host-side (numpy) bookkeeping lives here; the device work is
`sampling.sample`, the text work `sampling.text`.
"""

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rlvr_jax import multihost, sampling, tasks


def prompt(task: Any, example: Any, chat: bool) -> Any:
  """What the policy is shown: chat messages for instruct policies, plain text otherwise."""
  return task.messages(example) if chat else task.prompt_text(example)


@dataclasses.dataclass
class Rollouts:
  """B problems with N rollouts each, all as host numpy arrays (see `sampling.SampleOutput`)."""
  examples: list
  prompt_BxP: np.ndarray
  prompt_mask_BxP: np.ndarray
  tokens_RxT: np.ndarray
  mask_RxT: np.ndarray
  logprobs_RxT: np.ndarray
  sampling_logprobs_RxT: np.ndarray
  entropy_RxT: np.ndarray
  lengths_R: np.ndarray
  finished_R: np.ndarray
  responses: list[str]
  rewards_BxN: np.ndarray
  # Of the generate() call(s) that made these rollouts: verifier wall time and counts.
  verify_seconds: float = 0.0
  verify_timeouts: int = 0
  verify_errors: int = 0

  @property
  def num_samples(self) -> int:
    return self.rewards_BxN.shape[1]

  def mean_entropy_BxN(self) -> np.ndarray:
    """Each response's mean token entropy (adaptive_entropy's input)."""
    tokens_R = np.maximum(self.mask_RxT.sum(-1), 1)
    return ((self.entropy_RxT * self.mask_RxT).sum(-1) / tokens_R).reshape(self.rewards_BxN.shape)

  def select(self, idx_b: Sequence[int]) -> "Rollouts":
    """The problems `idx_b` (with all their rollouts), in that order."""
    n, idx_b = self.num_samples, np.asarray(idx_b, np.int64)
    rows = (idx_b[:, None] * n + np.arange(n)).reshape(-1)
    per_problem = {"prompt_BxP", "prompt_mask_BxP", "rewards_BxN"}
    fields = {}
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if f.name == "examples":
        v = [v[b] for b in idx_b]
      elif f.name == "responses":
        v = [v[r] for r in rows]
      elif isinstance(v, np.ndarray):
        v = v[idx_b] if f.name in per_problem else v[rows]
      fields[f.name] = v
    return Rollouts(**fields)


def concat(parts: Sequence[Rollouts]) -> Rollouts:
  """The problems of `parts`, one after the other (prompts re-padded to one width)."""
  width = max(p.prompt_BxP.shape[1] for p in parts)
  pad = lambda x: np.pad(x, ((0, 0), (width - x.shape[1], 0)))
  fields = {}
  for f in dataclasses.fields(Rollouts):
    vals = [getattr(p, f.name) for p in parts]
    if f.name in ("prompt_BxP", "prompt_mask_BxP"):
      # Left padding with mask 0: those columns never reach attention or the loss.
      vals = [pad(v) for v in vals]
    if isinstance(vals[0], list):
      fields[f.name] = sum(vals, [])
    elif isinstance(vals[0], np.ndarray):
      fields[f.name] = np.concatenate(vals)
    else:  # the verifier's time and counts add up
      fields[f.name] = sum(vals)
  return Rollouts(**fields)


def sample(params: Any, cfg: Any, tokenizer: Any, prompts: Sequence[Any], key: jax.Array, *,
           num_samples: int, max_prompt_len: int, max_new_tokens: int, temperature: float,
           top_p: float, chat: bool, examples: list | None = None, mesh: Any = None,
           rules: Any = None) -> Rollouts:
  """`num_samples` responses to each prompt (text or chat messages), not yet scored.

  The rewards are zeros and `examples` (default: the prompts) is carried along;
  `generate` adds the verifier. In a multi-process run `prompts` are this
  process's block of the global batch; they are padded to the widest over all
  processes (one width for the global arrays), and the rollouts are those of
  this process's rows.
  """
  prompt_BxP, mask_BxP = sampling.text.encode_prompts(tokenizer, prompts, chat=chat,
                                                      pad_id=cfg.pad_id, max_len=max_prompt_len)
  width = multihost.max_over(prompt_BxP.shape[1])
  if width > prompt_BxP.shape[1]:  # left padding with mask 0: never seen by attention or loss
    pad = ((0, 0), (width - prompt_BxP.shape[1], 0))
    prompt_BxP = np.pad(prompt_BxP, pad, constant_values=cfg.pad_id)
    mask_BxP = np.pad(mask_BxP, pad)
  out = sampling.sample(params, cfg, prompt_BxP, mask_BxP, key, num_samples=num_samples,
                        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        eos_ids=tuple(cfg.eos_ids), pad_id=cfg.pad_id, mesh=mesh, rules=rules)
  out = sampling.SampleOutput(*multihost.local_rows(tuple(out)))
  return Rollouts(examples=list(prompts if examples is None else examples), prompt_BxP=prompt_BxP,
                  prompt_mask_BxP=mask_BxP, tokens_RxT=out.tokens_RxT.astype(np.int32),
                  mask_RxT=out.mask_RxT.astype(np.int32),
                  logprobs_RxT=out.logprobs_RxT.astype(np.float32),
                  sampling_logprobs_RxT=out.sampling_logprobs_RxT.astype(np.float32),
                  entropy_RxT=out.entropy_RxT.astype(np.float32),
                  lengths_R=out.lengths_R.astype(np.int32), finished_R=out.finished_R.astype(bool),
                  responses=sampling.text.decode_responses(tokenizer, out),
                  rewards_BxN=np.zeros((len(prompts), num_samples), np.float32))


def generate(params: Any, cfg: Any, task: Any, tokenizer: Any, examples: list, key: jax.Array, *,
             num_samples: int, max_prompt_len: int, max_new_tokens: int, temperature: float,
             top_p: float, chat: bool, pool: Any = None, mesh: Any = None,
             rules: Any = None) -> Rollouts:
  """Samples `num_samples` responses per example and scores them with the task's verifier
  (`sample` of the task's prompts; in a multi-process run, this process's block)."""
  ro = sample(params, cfg, tokenizer, [prompt(task, ex, chat) for ex in examples], key,
              num_samples=num_samples, max_prompt_len=max_prompt_len,
              max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, chat=chat,
              examples=examples, mesh=mesh, rules=rules)
  rep_examples = [ex for ex in examples for _ in range(num_samples)]
  t0 = time.perf_counter()
  rewards_R, info = tasks.verify_batch(task, ro.responses, rep_examples, pool=pool)
  ro.rewards_BxN = np.asarray(rewards_R, np.float32).reshape(len(examples), num_samples)
  ro.verify_seconds = time.perf_counter() - t0
  ro.verify_timeouts = int(info.get("timeouts", 0))
  ro.verify_errors = int(info.get("errors", 0))
  return ro
