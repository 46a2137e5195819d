"""The KV cache, one layout for prefill and decode: keys [R, K, Dh, S] and values [R, K, S, Dh]
a layer.

Letters: B prompts, N rows a prompt, R rows, P prompt tokens, S cache slots, L layers,
H query heads, K key/value heads, G = H / K, Dh head width.

Keys and values of layer l live in their own buffers (a tuple of L of each), so a decode
step reads them in place and writes one new slot with one in-place
`dynamic_update_slice` each; a stacked [L, ...] cache would be copied out of the loop
carry a layer a step. Both attention products batch over the leading R, K and contract
a buffer's second-minor dim with its minor dim free: keys are stored slot-minor
[R, K, Dh, S] (scores: [G, Dh] x [Dh, S]), values [R, K, S, Dh] ([G, S] x [S, Dh]). With
keys slot-major like the values, the score product contracted their minor dim, and at
64 rows x 176 slots the 30 layers' attention took 77 ms a step on the 2-core CPU against
54 ms slot-minor (benchmarks/RESULTS.md). `mask_RxS` marks the slots that hold real tokens. Prefill does not go through a cache at all: the
training forward returns each layer's keys and values of the prompt
(`decoder.forward_hidden(..., return_kv=True)`), and `from_prefill` lays them out.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlvr_jax.models.config import ModelConfig
from rlvr_jax.sharding import constrain

KEY_AXES = ("cache_batch", "kv_heads", "head_dim", "cache_seq")  # of each layer's keys
VALUE_AXES = ("cache_batch", "kv_heads", "cache_seq", "head_dim")  # and values
MASK_AXES = ("cache_batch", "cache_seq")


class KVCache(NamedTuple):
  keys: tuple[jax.Array, ...]  # L x [R, K, Dh, S], the compute dtype
  values: tuple[jax.Array, ...]  # L x [R, K, S, Dh]
  mask_RxS: jax.Array  # bool: slots holding a real token


def init(cfg: ModelConfig, rows: int, slots: int) -> KVCache:
  """An empty cache of `slots` slots for `rows` rows."""
  k, dh = cfg.num_kv_heads, cfg.head_dim
  zeros = lambda shape, axes: constrain(jnp.zeros(shape, cfg.jnp_dtype), axes)
  return KVCache(tuple(zeros((rows, k, dh, slots), KEY_AXES) for _ in range(cfg.num_layers)),
                 tuple(zeros((rows, k, slots, dh), VALUE_AXES) for _ in range(cfg.num_layers)),
                 constrain(jnp.zeros((rows, slots), jnp.bool_), MASK_AXES))


def from_prefill(keys_LxBxPxKxDh: jax.Array, values_LxBxPxKxDh: jax.Array,
                 mask_BxP: jax.Array, slots: int, repeat: int = 1) -> KVCache:
  """The prompts' keys and values in slots [0, P) of a `slots`-slot cache, each prompt's
  rows repeated `repeat` times (row b * repeat + n holds prompt b)."""
  _, b, p, _, _ = keys_LxBxPxKxDh.shape
  if slots < p:
    raise ValueError(f"a cache of {slots} slots cannot hold a {p}-token prompt")

  def keys_of(x_BxPxKxDh):
    x = jnp.repeat(jnp.transpose(x_BxPxKxDh, (0, 2, 3, 1)), repeat, axis=0)  # [R, K, Dh, P]
    return constrain(jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, slots - p))), KEY_AXES)

  def values_of(x_BxPxKxDh):
    x = jnp.repeat(jnp.swapaxes(x_BxPxKxDh, 1, 2), repeat, axis=0)  # [R, K, P, Dh]
    return constrain(jnp.pad(x, ((0, 0), (0, 0), (0, slots - p), (0, 0))), VALUE_AXES)

  mask = jnp.pad(jnp.repeat(mask_BxP.astype(jnp.bool_), repeat, axis=0), ((0, 0), (0, slots - p)))
  return KVCache(tuple(keys_of(k) for k in keys_LxBxPxKxDh),
                 tuple(values_of(v) for v in values_LxBxPxKxDh), constrain(mask, MASK_AXES))


def write(keys_RxKxDhxS: jax.Array, values_RxKxSxDh: jax.Array, k_Rx1xKxDh: jax.Array,
          v_Rx1xKxDh: jax.Array, slot: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One layer's buffers with one new token a row written at `slot` (in place under jit)."""
  k_RxKxDhx1 = jnp.transpose(k_Rx1xKxDh, (0, 2, 3, 1)).astype(keys_RxKxDhxS.dtype)
  v_RxKx1xDh = jnp.swapaxes(v_Rx1xKxDh, 1, 2).astype(values_RxKxSxDh.dtype)
  return (jax.lax.dynamic_update_slice(keys_RxKxDhxS, k_RxKxDhx1, (0, 0, 0, slot)),
          jax.lax.dynamic_update_slice(values_RxKxSxDh, v_RxKx1xDh, (0, 0, slot, 0)))


def attend(q_Rx1xHxDh: jax.Array, keys_RxKxDhxS: jax.Array, values_RxKxSxDh: jax.Array,
           allowed_RxS: jax.Array) -> jax.Array:
  """`layers.attention` for one query a row over one layer's buffers: [R, 1, H, Dh]."""
  r, _, h, dh = q_Rx1xHxDh.shape
  k_heads = keys_RxKxDhxS.shape[1]
  q_RxKxGxDh = q_Rx1xHxDh.reshape(r, k_heads, h // k_heads, dh)
  scores = jnp.einsum("rkgd,rkds->rkgs", q_RxKxGxDh, keys_RxKxDhxS.astype(q_Rx1xHxDh.dtype),
                      preferred_element_type=jnp.float32) / math.sqrt(dh)
  scores = jnp.where(allowed_RxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q_Rx1xHxDh.dtype)
  out = jnp.einsum("rkgs,rksd->rkgd", probs, values_RxKxSxDh.astype(q_Rx1xHxDh.dtype))
  return out.reshape(r, 1, h, dh)
