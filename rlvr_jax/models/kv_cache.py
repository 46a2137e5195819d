"""The KV cache, one layout for prefill and decode: a buffer a layer, [R, K, S, Dh].

Letters: B prompts, N rows a prompt, R rows, P prompt tokens, S cache slots, L layers,
H query heads, K key/value heads, G = H / K, Dh head width.

Keys and values of layer l live in their own [R, K, S, Dh] buffers (a tuple of L of
each), so a decode step reads them in place (both attention dots batch over the leading
R, K) and writes one new slot with one in-place `dynamic_update_slice`; a stacked
[L, ...] cache would be copied out of the loop carry a layer a step. `mask_RxS` marks
the slots that hold real tokens. Prefill does not go through a cache at all: the
training forward returns each layer's keys and values of the prompt
(`decoder.forward_hidden(..., return_kv=True)`), and `from_prefill` lays them out.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlvr_jax.models.config import ModelConfig
from rlvr_jax.sharding import constrain

AXES = ("cache_batch", "kv_heads", "cache_seq", "head_dim")  # of each layer's buffer
MASK_AXES = ("cache_batch", "cache_seq")


class KVCache(NamedTuple):
  keys: tuple[jax.Array, ...]  # L x [R, K, S, Dh], the compute dtype
  values: tuple[jax.Array, ...]  # L x [R, K, S, Dh]
  mask_RxS: jax.Array  # bool: slots holding a real token


def init(cfg: ModelConfig, rows: int, slots: int) -> KVCache:
  """An empty cache of `slots` slots for `rows` rows."""
  zeros = lambda: constrain(jnp.zeros((rows, cfg.num_kv_heads, slots, cfg.head_dim),
                                      cfg.jnp_dtype), AXES)
  return KVCache(tuple(zeros() for _ in range(cfg.num_layers)),
                 tuple(zeros() for _ in range(cfg.num_layers)),
                 constrain(jnp.zeros((rows, slots), jnp.bool_), MASK_AXES))


def from_prefill(keys_LxBxPxKxDh: jax.Array, values_LxBxPxKxDh: jax.Array,
                 mask_BxP: jax.Array, slots: int, repeat: int = 1) -> KVCache:
  """The prompts' keys and values in slots [0, P) of a `slots`-slot cache, each prompt's
  rows repeated `repeat` times (row b * repeat + n holds prompt b)."""
  _, b, p, _, _ = keys_LxBxPxKxDh.shape
  if slots < p:
    raise ValueError(f"a cache of {slots} slots cannot hold a {p}-token prompt")

  def lay_out(x_BxPxKxDh):
    x = jnp.repeat(jnp.swapaxes(x_BxPxKxDh, 1, 2), repeat, axis=0)  # [R, K, P, Dh]
    return constrain(jnp.pad(x, ((0, 0), (0, 0), (0, slots - p), (0, 0))), AXES)

  mask = jnp.pad(jnp.repeat(mask_BxP.astype(jnp.bool_), repeat, axis=0), ((0, 0), (0, slots - p)))
  return KVCache(tuple(lay_out(k) for k in keys_LxBxPxKxDh),
                 tuple(lay_out(v) for v in values_LxBxPxKxDh), constrain(mask, MASK_AXES))


def write(keys_RxKxSxDh: jax.Array, values_RxKxSxDh: jax.Array, k_Rx1xKxDh: jax.Array,
          v_Rx1xKxDh: jax.Array, slot: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One layer's buffers with one new token a row written at `slot` (in place under jit)."""
  put = lambda buf, x: jax.lax.dynamic_update_slice(
      buf, jnp.swapaxes(x, 1, 2).astype(buf.dtype), (0, 0, slot, 0))
  return put(keys_RxKxSxDh, k_Rx1xKxDh), put(values_RxKxSxDh, v_Rx1xKxDh)


def attend(q_Rx1xHxDh: jax.Array, keys_RxKxSxDh: jax.Array, values_RxKxSxDh: jax.Array,
           allowed_RxS: jax.Array) -> jax.Array:
  """`layers.attention` for one query a row over one layer's buffers: [R, 1, H, Dh]."""
  r, _, h, dh = q_Rx1xHxDh.shape
  k_heads = keys_RxKxSxDh.shape[1]
  q_RxKxGxDh = q_Rx1xHxDh.reshape(r, k_heads, h // k_heads, dh)
  scores = jnp.einsum("rkgd,rksd->rkgs", q_RxKxGxDh, keys_RxKxSxDh.astype(q_Rx1xHxDh.dtype),
                      preferred_element_type=jnp.float32) / math.sqrt(dh)
  scores = jnp.where(allowed_RxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q_Rx1xHxDh.dtype)
  out = jnp.einsum("rkgs,rksd->rkgd", probs, values_RxKxSxDh.astype(q_Rx1xHxDh.dtype))
  return out.reshape(r, 1, h, dh)
