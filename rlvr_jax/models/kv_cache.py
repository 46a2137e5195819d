"""The KV cache, one layout for prefill and decode: keys [R, K, Dh, S_g] and values
[R, K, S_g, Dh] a layer and segment.

Letters: B prompts, N rows a prompt, R rows, P prompt tokens, S cache slots, L layers,
H query heads, K key/value heads, G = H / K, Dh head width, S_g the slots of segment g.

Keys and values of layer l live in their own buffers, so a decode step reads them in
place and writes one new slot with one in-place `dynamic_update_slice` each; a stacked
[L, ...] cache would be copied out of the loop carry a layer a step. Both attention
products batch over the leading R, K and contract a buffer's second-minor dim with its
minor dim free: keys are stored slot-minor [R, K, Dh, S_g] (scores: [G, Dh] x [Dh, S_g]),
values [R, K, S_g, Dh] ([G, S_g] x [S_g, Dh]). With keys slot-major like the values, the
score product contracted their minor dim, and at 64 rows x 176 slots the 30 layers'
attention took 77 ms a step on the 2-core CPU against 54 ms slot-minor
(benchmarks/RESULTS.md).

The S slots of a layer are split into segments, each its own buffer: segment 0 holds the
P prompt slots, segments 1..n split the S - P slots decoding writes, in order
(`segment_sizes`). A decode step writing segment g attends over segments 0..g only, so
the slots not yet written are never read: reading the cache is what attention costs at
decode (memory-bound), and a slice of one long buffer would be a copy (XLA:CPU makes one).
`mask_RxS` marks the slots that hold real tokens, over all segments in order. Prefill does
not go through a cache at all: the training forward returns each layer's keys and values
of the prompt (`decoder.forward_hidden(..., return_kv=True)`), and `from_prefill` lays
them out.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlvr_jax.sharding import constrain

KEY_AXES = ("cache_batch", "kv_heads", "head_dim", "cache_seq")  # of each layer's keys
VALUE_AXES = ("cache_batch", "kv_heads", "cache_seq", "head_dim")  # and values
MASK_AXES = ("cache_batch", "cache_seq")


class KVCache(NamedTuple):
  keys: tuple[tuple[jax.Array, ...], ...]  # L x segments x [R, K, Dh, S_g], compute dtype
  values: tuple[tuple[jax.Array, ...], ...]  # L x segments x [R, K, S_g, Dh]
  mask_RxS: jax.Array  # bool: slots holding a real token, all segments in order


def segment_sizes(prompt_slots: int, slots: int, segments: int) -> tuple[int, ...]:
  """(P, S_1, ..., S_n): the prompt's slots, then the other S - P in `segments` parts of
  near-equal size (the first ones larger), as many as there are slots at most."""
  rest = slots - prompt_slots
  if prompt_slots < 1 or rest < 1 or segments < 1:
    raise ValueError(f"a cache of {slots} slots with {prompt_slots} prompt slots cannot be "
                     f"split into {segments} decode segments")
  n = min(segments, rest)
  return (prompt_slots,) + tuple(rest // n + (g < rest % n) for g in range(n))


def segment_ends(cache: KVCache) -> tuple[int, ...]:
  """One past the last slot of each segment of `cache` (static: read off its buffers)."""
  ends, end = [], 0
  for keys in cache.keys[0]:
    end += keys.shape[-1]
    ends.append(end)
  return tuple(ends)


def from_prefill(keys_LxBxPxKxDh: jax.Array, values_LxBxPxKxDh: jax.Array,
                 mask_BxP: jax.Array, slots: int, repeat: int = 1, segments: int = 1
                 ) -> KVCache:
  """The prompts' keys and values as segment 0 (slots [0, P)) of a `slots`-slot cache whose
  other slots form `segments` empty segments; each prompt's rows repeated `repeat` times
  (row b * repeat + n holds prompt b)."""
  _, b, p, k, dh = keys_LxBxPxKxDh.shape
  if slots <= p:
    raise ValueError(f"a cache of {slots} slots cannot hold a {p}-token prompt and a new token")
  sizes = segment_sizes(p, slots, segments)
  rows, dtype = b * repeat, keys_LxBxPxKxDh.dtype
  empty_keys = lambda s: constrain(jnp.zeros((rows, k, dh, s), dtype), KEY_AXES)
  empty_values = lambda s: constrain(jnp.zeros((rows, k, s, dh), dtype), VALUE_AXES)

  def layer(k_BxPxKxDh, v_BxPxKxDh):
    # [B, P, K, Dh] -> keys [R, K, Dh, P] and values [R, K, P, Dh]
    keys = constrain(jnp.repeat(jnp.transpose(k_BxPxKxDh, (0, 2, 3, 1)), repeat, axis=0), KEY_AXES)
    values = constrain(jnp.repeat(jnp.swapaxes(v_BxPxKxDh, 1, 2), repeat, axis=0), VALUE_AXES)
    return ((keys,) + tuple(empty_keys(s) for s in sizes[1:]),
            (values,) + tuple(empty_values(s) for s in sizes[1:]))

  keys, values = zip(*(layer(kl, vl) for kl, vl in zip(keys_LxBxPxKxDh, values_LxBxPxKxDh)))
  mask = jnp.pad(jnp.repeat(mask_BxP.astype(jnp.bool_), repeat, axis=0), ((0, 0), (0, slots - p)))
  return KVCache(tuple(keys), tuple(values), constrain(mask, MASK_AXES))


def write(keys_RxKxDhxS: jax.Array, values_RxKxSxDh: jax.Array, k_Rx1xKxDh: jax.Array,
          v_Rx1xKxDh: jax.Array, slot: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One segment's buffers with one new token a row written at `slot` of the segment
  (in place under jit)."""
  k_RxKxDhx1 = jnp.transpose(k_Rx1xKxDh, (0, 2, 3, 1)).astype(keys_RxKxDhxS.dtype)
  v_RxKx1xDh = jnp.swapaxes(v_Rx1xKxDh, 1, 2).astype(values_RxKxSxDh.dtype)
  return (jax.lax.dynamic_update_slice(keys_RxKxDhxS, k_RxKxDhx1, (0, 0, 0, slot)),
          jax.lax.dynamic_update_slice(values_RxKxSxDh, v_RxKx1xDh, (0, 0, slot, 0)))


def attend(q_Rx1xHxDh: jax.Array, keys: Sequence[jax.Array], values: Sequence[jax.Array],
           allowed_RxS: jax.Array) -> jax.Array:
  """`layers.attention` for one query a row over one layer's first segments: [R, 1, H, Dh].

  `keys` / `values` are those segments' buffers in order, `allowed_RxS` the mask over
  their slots. The scores of each segment are joined for one softmax, and the value
  products of the segments summed, so no buffer is copied.
  """
  r, _, h, dh = q_Rx1xHxDh.shape
  k_heads = keys[0].shape[1]
  q_RxKxGxDh = q_Rx1xHxDh.reshape(r, k_heads, h // k_heads, dh)
  scores = jnp.concatenate(
      [jnp.einsum("rkgd,rkds->rkgs", q_RxKxGxDh, k.astype(q_Rx1xHxDh.dtype),
                  preferred_element_type=jnp.float32) for k in keys], axis=-1) / math.sqrt(dh)
  scores = jnp.where(allowed_RxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q_Rx1xHxDh.dtype)
  out, start = 0.0, 0
  for v in values:
    size = v.shape[2]
    out = out + jnp.einsum("rkgs,rksd->rkgd", probs[..., start:start + size],
                           v.astype(q_Rx1xHxDh.dtype))
    start += size
  return out.reshape(r, 1, h, dh)
