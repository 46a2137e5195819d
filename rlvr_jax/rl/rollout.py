"""Rollouts: prompts -> sampler -> responses -> verifier rewards -> a training batch.

Shape letters: B problems, N rollouts a problem, R = B * N rows (problem-major,
row b * N + n), P prompt tokens (left-padded), T response tokens, L = P + T.
Host-side (numpy) bookkeeping lives here; the device work is `sampling.sample`.
"""

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rlvr_jax import sampling, tasks
from rlvr_jax.sampling_text import left_pad

# Prompts are padded to a multiple of this: few distinct prompt lengths, so few compiles.
PROMPT_MULTIPLE = 16


def encode_prompt(task: Any, tokenizer: Any, example: Any, chat: bool) -> list[int]:
  """Token ids of one prompt: chat template for instruct policies, bos + text otherwise."""
  if chat:
    ids = tokenizer.apply_chat_template(task.messages(example), add_generation_prompt=True,
                                        tokenize=True)
    # Newer transformers return a BatchEncoding (a mapping, not a dict): list() of it would
    # be its keys.
    return [int(i) for i in (ids["input_ids"] if hasattr(ids, "keys") else ids)]
  return tokenizer.encode(task.prompt_text(example), add_bos=True)


def decode(tokenizer: Any, tokens_RxT: np.ndarray, lengths_R: np.ndarray,
           eos_ids: Sequence[int]) -> list[str]:
  """Response texts, cut at their length and without EOS / special tokens."""
  eos = set(int(e) for e in eos_ids)
  # The tiny model's embedding (128) is wider than the char vocabulary (99): a sampled id
  # with no character is text the policy wrote that reads as nothing, so it is dropped.
  vocab = int(getattr(tokenizer, "vocab_size", 1 << 62))
  texts = []
  for r in range(tokens_RxT.shape[0]):
    ids = [int(t) for t in tokens_RxT[r, :int(lengths_R[r])] if int(t) not in eos and int(t) < vocab]
    if hasattr(tokenizer, "convert_ids_to_tokens"):  # a transformers tokenizer
      texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    else:
      texts.append(tokenizer.decode(ids))
  return texts


@dataclasses.dataclass
class Rollouts:
  """B problems with N rollouts each, all as host numpy arrays."""
  examples: list
  prompt_BxP: np.ndarray
  prompt_mask_BxP: np.ndarray
  tokens_RxT: np.ndarray
  mask_RxT: np.ndarray
  logprobs_RxT: np.ndarray
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

  def select(self, idx_b: Sequence[int]) -> "Rollouts":
    """The problems `idx_b` (with all their rollouts), in that order."""
    n = self.num_samples
    rows = np.concatenate([np.arange(b * n, (b + 1) * n) for b in idx_b]).astype(np.int64)
    return Rollouts(
        examples=[self.examples[b] for b in idx_b],
        prompt_BxP=self.prompt_BxP[list(idx_b)], prompt_mask_BxP=self.prompt_mask_BxP[list(idx_b)],
        tokens_RxT=self.tokens_RxT[rows], mask_RxT=self.mask_RxT[rows],
        logprobs_RxT=self.logprobs_RxT[rows], entropy_RxT=self.entropy_RxT[rows],
        lengths_R=self.lengths_R[rows], finished_R=self.finished_R[rows],
        responses=[self.responses[r] for r in rows], rewards_BxN=self.rewards_BxN[list(idx_b)],
        verify_seconds=self.verify_seconds, verify_timeouts=self.verify_timeouts,
        verify_errors=self.verify_errors)


def concat(parts: Sequence[Rollouts]) -> Rollouts:
  fields = {}
  for f in dataclasses.fields(Rollouts):
    vals = [getattr(p, f.name) for p in parts]
    if isinstance(vals[0], list):
      fields[f.name] = sum(vals, [])
    elif isinstance(vals[0], np.ndarray):
      fields[f.name] = np.concatenate(vals)
    else:  # the verifier's time and counts add up
      fields[f.name] = sum(vals)
  return Rollouts(**fields)


def generate(params: Any, cfg: Any, task: Any, tokenizer: Any, examples: list, key: jax.Array, *,
             num_samples: int, max_prompt_len: int, max_new_tokens: int, temperature: float,
             top_p: float, chat: bool, pool: Any = None, mesh: Any = None,
             rules: Any = None) -> Rollouts:
  """Samples `num_samples` responses per example and scores them with the task's verifier."""
  ids_B = [encode_prompt(task, tokenizer, ex, chat) for ex in examples]
  prompt_BxP, mask_BxP = left_pad(ids_B, cfg.pad_id, multiple=PROMPT_MULTIPLE,
                                max_len=max_prompt_len)
  out = sampling.sample(params, cfg, prompt_BxP, mask_BxP, key, num_samples=num_samples,
                        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        eos_ids=tuple(cfg.eos_ids), pad_id=cfg.pad_id, mesh=mesh, rules=rules)
  host = {k: np.asarray(getattr(out, k) if hasattr(out, k) else out[k])
          for k in ("tokens", "mask", "logprobs", "entropy", "lengths", "finished")}
  responses = decode(tokenizer, host["tokens"], host["lengths"], cfg.eos_ids)
  rep_examples = [ex for ex in examples for _ in range(num_samples)]
  t0 = time.perf_counter()
  rewards_R, info = tasks.verify_batch(task, responses, rep_examples, pool=pool)
  verify_seconds = time.perf_counter() - t0
  rewards_BxN = np.asarray(rewards_R, np.float32).reshape(len(examples), num_samples)
  return Rollouts(examples=list(examples), prompt_BxP=prompt_BxP, prompt_mask_BxP=mask_BxP,
                  tokens_RxT=host["tokens"].astype(np.int32), mask_RxT=host["mask"].astype(np.int32),
                  logprobs_RxT=host["logprobs"].astype(np.float32),
                  entropy_RxT=host["entropy"].astype(np.float32),
                  lengths_R=host["lengths"].astype(np.int32), finished_R=host["finished"].astype(bool),
                  responses=responses, rewards_BxN=rewards_BxN, verify_seconds=verify_seconds,
                  verify_timeouts=int(info.get("timeouts", 0)),
                  verify_errors=int(info.get("errors", 0)))


def train_batch(ro: Rollouts, adv_BxN: np.ndarray, valid_BxN: np.ndarray) -> dict[str, np.ndarray]:
  """Rows for `step.train_step`: prompt + response tokens, masks, advantages (old log-probs later)."""
  n = ro.num_samples
  prompt_RxP = np.repeat(ro.prompt_BxP, n, axis=0)
  pmask_RxP = np.repeat(ro.prompt_mask_BxP, n, axis=0)
  valid_R = np.asarray(valid_BxN, bool).reshape(-1)
  return {
      "tokens_RxL": np.concatenate([prompt_RxP, ro.tokens_RxT], axis=1).astype(np.int32),
      "attn_mask_RxL": np.concatenate([pmask_RxP, ro.mask_RxT], axis=1).astype(np.int32),
      "loss_mask_RxT": (ro.mask_RxT * valid_R[:, None]).astype(np.float32),
      "adv_R": np.where(valid_R, np.asarray(adv_BxN, np.float32).reshape(-1), 0.0).astype(np.float32),
  }
