"""Batched sampling with a KV cache: one prefill per prompt, a while-loop decode.

Letters: B prompts, N samples a prompt, R = B * N rows (problem-major: row
b * N + n samples prompt b), P prompt tokens (bucketed), S cache slots, T new
tokens (= max_new_tokens), V vocabulary.

Two compiled programs per shape bucket:
- prefill (B, P): runs each prompt once, repeats its cache rows N times and
  draws every row's first token from the shared last-position logits;
- decode (R, S, T): a `lax.while_loop` that feeds the last token, draws the
  next, stops a row at its first EOS and leaves the loop once every row has
  stopped. The cache is donated to it and lives in the loop carry, written in place
  (`models/kv_cache.py`, `decode.py`). Its T new slots are split into a few segments
  (`sample`'s `cache_segments`), and the loop runs once a segment: while it fills segment g,
  attention reads the prompt and segments 1..g only, not the slots still empty.
Prompt lengths are padded (on the left) to 16, 24, 32, 48, 64, 96, ... (see
`bucket_length`), so a run compiles a handful of programs rather than one per
batch.
"""

import contextlib
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from rlvr_jax import models, multihost, sharding
from rlvr_jax.models import kv_cache
from rlvr_jax.sampling import decode as decode_lib
from rlvr_jax.sampling.ops import StepOut, check_controls, sample_step

_MIN_BUCKET = 16


class SampleOutput(NamedTuple):
  """Rows R = B * num_samples, problem-major; columns T = max_new_tokens.

  tokens_RxT: int32, pad_id after the first EOS.
  mask_RxT: int32, 1 for generated tokens (the EOS included), 0 after.
  logprobs_RxT: float32, log pi(token) under the policy at temperature 1
    (softmax of the raw logits): what the trainer's importance ratio needs.
  sampling_logprobs_RxT: float32, log q(token) under the distribution
    actually sampled from (temperature, then top-k, then top-p, renormalized);
    0 for greedy (a point mass).
  entropy_RxT: float32, entropy of the policy at temperature 1.
  lengths_R: int32, generated tokens (the EOS included).
  finished_R: bool, True if the row produced an EOS, False if truncated.
  Masked positions of the log-probabilities and the entropy are 0.
  """
  tokens_RxT: jax.Array
  mask_RxT: jax.Array
  logprobs_RxT: jax.Array
  sampling_logprobs_RxT: jax.Array
  entropy_RxT: jax.Array
  lengths_R: jax.Array
  finished_R: jax.Array


def bucket_length(n: int, minimum: int = _MIN_BUCKET) -> int:
  """Smallest length >= n among minimum * {1, 1.5, 2, 3, 4, 6, 8, ...}.

  Two buckets an octave keep the padded share of a prompt batch below a third
  (a power of two alone wastes up to half of the prefill) while a run still
  compiles only a logarithmic number of programs.
  """
  length = minimum
  while length < n:
    length = length * 3 // 2 if length & (length - 1) == 0 else length * 4 // 3
  return length


def _controls(temperature: float, top_p: float, top_k: int, greedy: bool) -> dict[str, Any]:
  return dict(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
              greedy=bool(greedy))


def default_segments(max_new_tokens: int) -> int:
  """`sample`'s default decode segments of the cache (`models/kv_cache.py`): one per 32
  new tokens, at most 8.

  With n segments attention reads on average about P + T (n + 1) / (2 n) slots a step
  instead of P + T, but the decode loop is compiled n times. SmolLM2-135M, 128 new tokens,
  2-core CPU (benchmarks/RESULTS.md): 4 segments sample 4 % more tokens/s than 1 at 16
  and 64 rows (8: no more), and compile in 13.7 s instead of 5.4 s (8: 27.1 s).
  """
  return max(1, min(8, max_new_tokens // 32))


@functools.partial(jax.jit, static_argnames=("cfg", "num_samples", "cache_len", "segments",
                                             "controls", "mesh", "rules"))
def _prefill(params, tokens_BxP, mask_BxP, key, *, cfg, num_samples, cache_len, segments,
             controls, mesh, rules):
  """The KV cache with the prompts in slots [0, P) (rows repeated), first tokens, lengths."""
  with _maybe_mesh(mesh, rules):
    positions_BxP = jnp.maximum(jnp.cumsum(mask_BxP, axis=1) - 1, 0)
    hidden_BxPxD, (keys, values) = models.forward_hidden(params, cfg, tokens_BxP, positions_BxP,
                                                         mask_BxP, return_kv=True)
    cache = kv_cache.from_prefill(keys, values, mask_BxP, cache_len, num_samples, segments)
    # Left padding puts every prompt's last real token at column P - 1.
    logits_BxV = models.logits(params, cfg, hidden_BxPxD[:, -1:])[:, 0]
    rep = lambda x, axis: jnp.repeat(x, num_samples, axis=axis)
    logits_RxV = sharding.constrain(rep(logits_BxV, 0), ("batch", "act_vocab"))
    first = sample_step(jax.random.fold_in(key, 0), logits_RxV, **dict(controls))
    prompt_len_R = rep(jnp.sum(mask_BxP, axis=1, dtype=jnp.int32), 0)
    return cache, first, prompt_len_R


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "prompt_slots",
                                             "controls", "eos_ids", "pad_id", "mesh", "rules"),
                   donate_argnames=("cache",))
def _decode(params, cache, first: StepOut, prompt_len_R, key, *, cfg, max_new_tokens,
            prompt_slots, controls, eos_ids, pad_id, mesh, rules):
  """The decode loop from the first drawn tokens; returns (SampleOutput, cache).

  The final cache is returned only so the donated input buffer is aliased to
  it and the loop updates that buffer in place.
  """
  with _maybe_mesh(mesh, rules):
    r, t = first.tokens_R.shape[0], max_new_tokens
    layer_params = decode_lib.split_layers(params)
    eos_E = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)
    is_eos = lambda tok_R: jnp.any(tok_R[:, None] == eos_E[None, :], axis=1)

    def write(bufs, i, out: StepOut, live_R):
      toks, mask, lp, slp, ent = bufs
      col = lambda buf, x: jax.lax.dynamic_update_slice(buf, x[:, None].astype(buf.dtype), (0, i))
      zero = lambda x: jnp.where(live_R, x, 0.0)
      return (col(toks, jnp.where(live_R, out.tokens_R, pad_id)), col(mask, live_R),
              col(lp, zero(out.logprobs_R)), col(slp, zero(out.sampling_logprobs_R)),
              col(ent, zero(out.entropy_R)))

    batch = lambda x: sharding.constrain(x, ("batch", "length"))
    bufs = (batch(jnp.full((r, t), pad_id, jnp.int32)), batch(jnp.zeros((r, t), jnp.int32)),
            batch(jnp.zeros((r, t), jnp.float32)), batch(jnp.zeros((r, t), jnp.float32)),
            batch(jnp.zeros((r, t), jnp.float32)))
    live_R = jnp.ones((r,), jnp.bool_)
    bufs = write(bufs, 0, first, live_R)
    done_R = is_eos(first.tokens_R)

    def body(c, segment):
      i, cache, last_R, done_R, bufs = c
      # Token i - 1 sits at position len + i - 1 and goes to cache slot P + i - 1.
      live_R = ~done_R
      slot = prompt_slots + i - 1
      mask_RxS = jax.lax.dynamic_update_slice(cache.mask_RxS, live_R[:, None], (0, slot))
      # Slots past `slot` are still unwritten (mask 0), so the mask alone is causal.
      hidden_RxD, cache = decode_lib.step(params, layer_params, cfg, last_R,
                                          prompt_len_R + i - 1, cache._replace(mask_RxS=mask_RxS),
                                          slot, segment)
      logits_RxV = models.logits(params, cfg, hidden_RxD[:, None])[:, 0]
      out = sample_step(jax.random.fold_in(key, i), logits_RxV, **dict(controls))
      bufs = write(bufs, i, out, live_R)
      tok_R = jnp.where(live_R, out.tokens_R, pad_id)
      return i + 1, cache, tok_R, done_R | (live_R & is_eos(out.tokens_R)), bufs

    carry = (jnp.int32(1), cache, first.tokens_R, done_R, bufs)
    # Step i feeds token i - 1 into slot P + i - 1: segment g takes the steps whose slot
    # lies in it, one while_loop a segment (each leaves at once when every row is done).
    ends = kv_cache.segment_ends(cache)
    for segment in range(1, len(ends)):
      last_i = min(t, ends[segment] - prompt_slots + 1)  # one past the segment's last step
      cond = lambda c, last_i=last_i: (c[0] < last_i) & ~jnp.all(c[3])
      carry = jax.lax.while_loop(cond, functools.partial(body, segment=segment), carry)
    _, cache, _, done_R, bufs = carry
    toks, mask, lp, slp, ent = bufs
    return SampleOutput(toks, mask, lp, slp, ent, jnp.sum(mask, axis=1, dtype=jnp.int32),
                        done_R), cache


def _maybe_mesh(mesh: Mesh | None, rules: Any) -> Any:
  return sharding.use_mesh(mesh, rules) if mesh is not None else contextlib.nullcontext()


def _left_padded_lengths(mask_BxP: np.ndarray) -> np.ndarray:
  """Real lengths of left-padded rows; ValueError if a row is not left-padded."""
  lengths_B = mask_BxP.sum(axis=1)
  p = mask_BxP.shape[1]
  expected = np.arange(p)[None, :] >= (p - lengths_B)[:, None]
  if not np.array_equal(mask_BxP.astype(bool), expected):
    raise ValueError("prompt_mask_BxP must be 0/1 and left-padded (zeros, then ones)")
  if (lengths_B == 0).any():
    raise ValueError(f"prompt rows {np.flatnonzero(lengths_B == 0).tolist()} are empty")
  return lengths_B


def _global_prompts(tokens_BxP: np.ndarray, mask_BxP: np.ndarray, mesh: Mesh | None,
                    rules: Any) -> tuple[jax.Array, jax.Array]:
  """This process's prompt rows -> the global [B, P] arrays, rows over the batch axes."""
  if mesh is None:
    raise ValueError("sampling in a multi-process run needs the mesh")
  b = tokens_BxP.shape[0] * jax.process_count()
  spec = sharding.logical_to_spec(("batch", "length"), rules, (b, tokens_BxP.shape[1]), mesh)
  if spec[0] is None:
    raise ValueError(f"{b} prompts over {jax.process_count()} processes do not split over the "
                     f"mesh's batch axes {dict(mesh.shape)}: make the prompt batch a multiple "
                     "of the data-parallel device count")
  return multihost.global_rows((tokens_BxP, mask_BxP), NamedSharding(mesh, spec))


def sample(params: Any, cfg: models.ModelConfig, prompt_tokens_BxP: Any, prompt_mask_BxP: Any,
           key: jax.Array, *, num_samples: int, max_new_tokens: int, temperature: float = 1.0,
           top_p: float = 1.0, top_k: int = 0, greedy: bool = False,
           eos_ids: Sequence[int] | None = None, pad_id: int | None = None,
           mesh: Mesh | None = None, rules: Any = None, cache_segments: int | None = None
           ) -> SampleOutput:
  """Samples `num_samples` continuations of each left-padded prompt.

  See SampleOutput for which distribution each returned quantity belongs to.
  `eos_ids` / `pad_id` default to the model config's. With `mesh`, prompts and
  rows are split over its batch axes and heads over 'tensor' (logical rules
  `rules`, default `sharding.DEFAULT_RULES`); params should already be placed
  on it. The same key gives the same tokens on any mesh.

  In a multi-process run each process passes its own prompts (its block of the
  global batch, equal counts) and gets back global arrays whose rows it reads
  with `multihost.local_rows`; prompts are bucketed to the longest over all
  processes, and the global batch must split over the mesh's batch axes.

  `cache_segments`: the parts the cache's new slots are split into (see the module
  docstring); None takes `default_segments(max_new_tokens)`. It changes the cost only.
  """
  check_controls(temperature, top_p, top_k, greedy)
  tokens_BxP = np.asarray(prompt_tokens_BxP)
  mask_BxP = np.asarray(prompt_mask_BxP)
  if tokens_BxP.ndim != 2 or tokens_BxP.shape != mask_BxP.shape:
    raise ValueError(f"prompt tokens {tokens_BxP.shape} and mask {mask_BxP.shape} must be the "
                     "same [B, P] shape")
  if cache_segments is not None and (int(cache_segments) != cache_segments
                                     or cache_segments < 1):
    raise ValueError(f"cache_segments must be a positive integer or None, got {cache_segments}")
  if num_samples < 1 or max_new_tokens < 1:
    raise ValueError(f"num_samples ({num_samples}) and max_new_tokens ({max_new_tokens}) "
                     "must be >= 1")
  eos_ids = tuple(int(e) for e in (cfg.eos_ids if eos_ids is None else eos_ids))
  pad_id = int(cfg.pad_id if pad_id is None else pad_id)
  for name, ids in (("eos_ids", eos_ids), ("pad_id", (pad_id,))):
    if any(not 0 <= i < cfg.vocab_size for i in ids):
      raise ValueError(f"{name} {ids} outside the vocabulary of {cfg.vocab_size}")
  if tokens_BxP.size and (tokens_BxP.min() < 0 or tokens_BxP.max() >= cfg.vocab_size):
    raise ValueError(f"prompt token ids outside [0, {cfg.vocab_size})")
  lengths_B = _left_padded_lengths(mask_BxP)
  # Drop all-padding columns, then left-pad to the bucket (of the longest prompt anywhere).
  p = bucket_length(multihost.max_over(int(lengths_B.max())))
  keep = min(p, tokens_BxP.shape[1])
  tokens_BxP, mask_BxP = tokens_BxP[:, -keep:], mask_BxP[:, -keep:]
  widths = ((0, 0), (p - keep, 0))
  tokens_BxP = np.pad(tokens_BxP, widths, constant_values=pad_id).astype(np.int32)
  mask_BxP = np.pad(mask_BxP, widths).astype(np.int32)
  if jax.process_count() > 1:
    tokens_BxP, mask_BxP = _global_prompts(tokens_BxP, mask_BxP, mesh, rules)

  controls = tuple(_controls(temperature, top_p, top_k, greedy).items())
  rules = None if rules is None else tuple((a, tuple(m) if isinstance(m, list) else m)
                                           for a, m in rules)
  # Slot P + T - 2 holds the last fed token; the last drawn one is never fed.
  cache_len = p + max_new_tokens
  cache, first, prompt_len_R = _prefill(params, tokens_BxP, mask_BxP, key, cfg=cfg,
                                        num_samples=num_samples, cache_len=cache_len,
                                        segments=int(cache_segments or
                                                     default_segments(max_new_tokens)),
                                        controls=controls, mesh=mesh, rules=rules)
  out, _ = _decode(params, cache, first, prompt_len_R, key, cfg=cfg,
                   max_new_tokens=max_new_tokens, prompt_slots=p, controls=controls,
                   eos_ids=eos_ids, pad_id=pad_id, mesh=mesh, rules=rules)
  return out
