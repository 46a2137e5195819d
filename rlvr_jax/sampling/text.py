"""Text in, text out: tokenize and left-pad prompts, decode the sampled responses.

Works with a transformers tokenizer (chat template applied, `chat=True`) and
with any tokenizer exposing `encode(str) -> list[int]`, `decode(ids) -> str`,
`pad_id` and `eos_id` (the tasks' CharTokenizer), which gets plain text.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlvr_jax.sampling.sampler import SampleOutput, bucket_length

Messages = list[dict[str, str]]


def _is_hf(tokenizer: Any) -> bool:
  return hasattr(tokenizer, "apply_chat_template")


def left_pad(ids_B: Sequence[Sequence[int]], pad_id: int, *,
             max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """[B, P] int32 ids and mask with each row flush right.

  P is `sampling.bucket_length` of the longest row, the one padding rule of the
  project (sampler, rollouts, warm start, evaluation), so a run compiles a few
  programs, not one per batch. A row longer than `max_len` is an error.
  """
  if not ids_B:
    raise ValueError("no prompts given")
  longest = max(len(x) for x in ids_B)
  if max_len is not None and longest > max_len:
    raise ValueError(f"a prompt has {longest} tokens, more than max_len={max_len} "
                     "(rl.max_prompt_len in a trainer config)")
  length = bucket_length(longest)
  tokens_BxP = np.full((len(ids_B), length), pad_id, np.int32)
  mask_BxP = np.zeros((len(ids_B), length), np.int32)
  for b, ids in enumerate(ids_B):
    if len(ids):  # an empty row stays all padding
      tokens_BxP[b, length - len(ids):] = ids
      mask_BxP[b, length - len(ids):] = 1
  return tokens_BxP, mask_BxP


def encode(tokenizer: Any, prompt: str | Messages, *, chat: bool) -> list[int]:
  """Token ids of one prompt.

  chat: the tokenizer's chat template (it holds the special tokens it wants).
  Plain text: a transformers tokenizer adds its own special tokens; the
  character tokenizer prepends BOS, the format the tiny policy is trained on.
  """
  if chat:
    if not _is_hf(tokenizer):
      raise ValueError(f"chat=True needs a tokenizer with a chat template, got {type(tokenizer)}")
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)
  if not isinstance(prompt, str):
    raise ValueError("a message list needs chat=True")
  return tokenizer.encode(prompt) if _is_hf(tokenizer) else tokenizer.encode(prompt, add_bos=True)


def encode_prompts(tokenizer: Any, prompts: Sequence[str | Messages], *, chat: bool,
                   pad_id: int, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded token ids and mask [B, P] for prompts (strings or chat message lists)."""
  if not prompts:
    raise ValueError("no prompts given")
  ids = []
  for i, prompt in enumerate(prompts):
    try:
      row = encode(tokenizer, prompt, chat=chat)
    except ValueError as e:
      raise ValueError(f"prompt {i}: {e}") from e
    if not row:
      raise ValueError(f"prompt {i} encodes to no tokens")
    ids.append(row)
  return left_pad(ids, pad_id, max_len=max_len)


def decode(tokenizer: Any, tokens_RxT: Any, lengths_R: Any, finished_R: Any) -> list[str]:
  """Each row's generated text: its first `length` tokens less the final EOS, in one batch.

  Ids the tokenizer has no entry for are dropped: the tiny model's embedding
  (128) is wider than the character vocabulary (99), and such an id is text the
  policy wrote that reads as nothing.
  """
  tokens_RxT = np.asarray(tokens_RxT)
  keep_R = np.asarray(lengths_R) - np.asarray(finished_R).astype(np.int64)
  vocab = len(tokenizer) if _is_hf(tokenizer) else tokenizer.vocab_size
  rows = [row[:n][row[:n] < vocab].tolist() for row, n in zip(tokens_RxT, keep_R)]
  if _is_hf(tokenizer):
    return tokenizer.batch_decode(rows, skip_special_tokens=True)
  return [tokenizer.decode(ids) for ids in rows]


def decode_responses(tokenizer: Any, out: SampleOutput) -> list[str]:
  """`decode` of a SampleOutput's rows."""
  return decode(tokenizer, out.tokens_RxT, out.lengths_R, out.finished_R)
