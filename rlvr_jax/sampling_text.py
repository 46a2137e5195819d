"""Text in, text out: tokenize prompts, sample, decode the responses.

Works with a transformers tokenizer (chat template applied, `chat=True`) and
with any tokenizer exposing `encode(str) -> list[int]`, `decode(ids) -> str`,
`pad_id` and `eos_id` (the tasks' CharTokenizer), which gets plain text.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from rlvr_jax import models
from rlvr_jax.sampling import SampleOutput, sample

Messages = list[dict[str, str]]


def _is_hf(tokenizer: Any) -> bool:
  return hasattr(tokenizer, "apply_chat_template")


def left_pad(ids_B: Sequence[Sequence[int]], pad_id: int, *, multiple: int = 1,
             max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """[B, P] int32 ids and mask with each row flush right. P is the longest row rounded up to
  `multiple` (few distinct P, so few compiles), capped at `max_len`; a longer row is an error."""
  if not ids_B:
    raise ValueError("no prompts given")
  if multiple < 1:
    raise ValueError(f"multiple must be >= 1, got {multiple}")
  longest = max(len(x) for x in ids_B)
  if max_len is not None and longest > max_len:
    raise ValueError(f"a prompt has {longest} tokens, more than max_len={max_len} "
                     "(rl.max_prompt_len in a trainer config)")
  length = -(-longest // multiple) * multiple
  if max_len is not None:
    length = min(max_len, length)
  tokens_BxP = np.full((len(ids_B), length), pad_id, np.int32)
  mask_BxP = np.zeros((len(ids_B), length), np.int32)
  for b, ids in enumerate(ids_B):
    if ids:  # an empty row stays all padding
      tokens_BxP[b, length - len(ids):] = ids
      mask_BxP[b, length - len(ids):] = 1
  return tokens_BxP, mask_BxP


def encode_prompts(tokenizer: Any, prompts: Sequence[str | Messages], *, chat: bool,
                   pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded token ids and mask [B, P] for prompts (strings or chat message lists)."""
  if not prompts:
    raise ValueError("no prompts given")
  if chat and not _is_hf(tokenizer):
    raise ValueError(f"chat=True needs a tokenizer with a chat template, got {type(tokenizer)}")
  ids = []
  for i, prompt in enumerate(prompts):
    if chat:
      messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
      text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    elif isinstance(prompt, str):
      text = prompt
    else:
      raise ValueError(f"prompt {i} is a message list but chat=False")
    # The chat template already holds any special tokens it wants.
    row = (tokenizer.encode(text, add_special_tokens=False) if _is_hf(tokenizer)
           else tokenizer.encode(text))
    if not row:
      raise ValueError(f"prompt {i} encodes to no tokens")
    ids.append(row)
  return left_pad(ids, pad_id)


def decode_responses(tokenizer: Any, out: SampleOutput) -> list[str]:
  """Each row's generated text, without its EOS token."""
  tokens = np.asarray(out.tokens)
  lengths = np.asarray(out.lengths) - np.asarray(out.finished).astype(int)
  texts = []
  for row, n in zip(tokens, lengths):
    ids = row[:n].tolist()
    texts.append(tokenizer.decode(ids, skip_special_tokens=True) if _is_hf(tokenizer)
                 else tokenizer.decode(ids))
  return texts


def sample_text(params: Any, cfg: models.ModelConfig, tokenizer: Any,
                prompts: Sequence[str | Messages], key: jax.Array, *, chat: bool = True,
                num_samples: int = 1, max_new_tokens: int = 256,
                **sample_kwargs: Any) -> tuple[list[str], SampleOutput]:
  """Responses (R = len(prompts) * num_samples, problem-major) and the raw SampleOutput.

  `sample_kwargs` go to `sampling.sample` (temperature, top_p, top_k, greedy,
  eos_ids, mesh, ...); pad_id defaults to the model config's.
  """
  pad_id = sample_kwargs.pop("pad_id", cfg.pad_id)
  tokens_BxP, mask_BxP = encode_prompts(tokenizer, prompts, chat=chat, pad_id=pad_id)
  out = sample(params, cfg, tokens_BxP, mask_BxP, key, num_samples=num_samples,
               max_new_tokens=max_new_tokens, pad_id=pad_id, **sample_kwargs)
  return decode_responses(tokenizer, out), out
