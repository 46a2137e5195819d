"""One decode step (one new token a row) over per-layer caches, for the sampler loop.

Letters: R rows, S cache slots, D model width, H query heads, K key/value
heads, G = H / K, Dh head width, L layers.

The layer math is the model's own (`models.decoder.layer`); what differs from
`models.forward_hidden` with a cache is where keys and values live, for speed.
A layer scan over the stacked [L, R, S, K, Dh] cache copies each layer's keys
and values out of the carry every step, and slices each layer's weights. Here:
- weights come as a list of per-layer dicts (split once a call, `split_layers`);
- each layer's cache is its own buffer laid out [R, K, S, Dh], so both
  attention dots read it in place (batch dims R, K leading) and the new key
  and value go in with one in-place `dynamic_update_slice`;
- the L layers are unrolled inside the decode `while_loop`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp

from rlvr_jax import models
from rlvr_jax.models import decoder, layers
from rlvr_jax.sharding import constrain

LayerCaches = tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]  # (keys, values), each [R,K,S,Dh]
_CACHE_AXES = ("cache_batch", "kv_heads", "cache_seq", "head_dim")


def split_layers(params: dict[str, Any]) -> list[dict[str, jax.Array]]:
  """Per-layer weight dicts (copies of the stacked [L, ...] leaves); call inside jit."""
  n = jax.tree.leaves(params["layers"])[0].shape[0]
  return [jax.tree.map(lambda x, l=l: x[l], params["layers"]) for l in range(n)]


def to_layer_caches(cache: dict[str, jax.Array]) -> LayerCaches:
  """The model's [L, R, S, K, Dh] cache as per-layer [R, K, S, Dh] buffers."""
  split = lambda c: tuple(constrain(jnp.swapaxes(c[l], 1, 2), _CACHE_AXES)
                          for l in range(c.shape[0]))
  return split(cache["k"]), split(cache["v"])


def _cached_attention(q_Rx1xHxDh: jax.Array, keys_RxKxSxDh: jax.Array,
                      values_RxKxSxDh: jax.Array, allowed_RxS: jax.Array) -> jax.Array:
  """`layers.attention` for one query a row over a [R, K, S, Dh] cache."""
  r, _, h, dh = q_Rx1xHxDh.shape
  k_heads = keys_RxKxSxDh.shape[1]
  q_RxKxGxDh = q_Rx1xHxDh.reshape(r, k_heads, h // k_heads, dh)
  scores = jnp.einsum("rkgd,rksd->rkgs", q_RxKxGxDh, keys_RxKxSxDh.astype(q_Rx1xHxDh.dtype),
                      preferred_element_type=jnp.float32) / math.sqrt(dh)
  scores = jnp.where(allowed_RxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q_Rx1xHxDh.dtype)
  out = jnp.einsum("rkgs,rksd->rkgd", probs, values_RxKxSxDh.astype(q_Rx1xHxDh.dtype))
  return out.reshape(r, 1, h, dh)


def step(params: dict[str, Any], layer_params: list[dict[str, jax.Array]],
         cfg: models.ModelConfig, tokens_R: jax.Array, positions_R: jax.Array,
         allowed_RxS: jax.Array, caches: LayerCaches, slot: jax.Array
         ) -> tuple[jax.Array, LayerCaches]:
  """Final-norm hidden [R, D] of one token a row, written to cache `slot`.

  `allowed_RxS` marks the slots each row attends to (its own slot included).
  """
  cos, sin = layers.rope_angles(positions_R[:, None], cfg)  # [R, 1, Dh/2]
  x = params["embed"].astype(cfg.jnp_dtype)[tokens_R][:, None]
  x = constrain(x, ("batch", "length", "act_embed"))
  keys, values = list(caches[0]), list(caches[1])
  for l, p in enumerate(layer_params):

    def attend(q, k, v, ck=keys[l], cv=values[l]):
      # [R, 1, K, Dh] -> [R, K, 1, Dh], written at `slot` in place.
      put = lambda c, x: jax.lax.dynamic_update_slice(
          c, jnp.swapaxes(x, 1, 2).astype(c.dtype), (0, 0, slot, 0))
      ck, cv = put(ck, k), put(cv, v)
      return _cached_attention(q, ck, cv, allowed_RxS), (ck, cv)

    x, (keys[l], values[l]) = decoder.layer(cfg, x, p, cos, sin, attend)
  x = layers.rms_norm(x[:, 0], params["final_norm"], cfg.rms_eps)
  return x, (tuple(keys), tuple(values))
