"""One decode step (one new token a row) over per-layer caches, for the sampler loop.

Letters: R rows, S cache slots, D model width, H query heads, K key/value
heads, G = H / K, Dh head width, L layers.

Same math as `models.forward_hidden` with a cache and T = 1 (the tests check
tokens and log-probabilities against it); written apart for speed, because a
layer scan over the stacked [L, R, S, K, Dh] cache copies each layer's keys
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
from rlvr_jax.models import layers
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


def step(params: dict[str, Any], layer_params: list[dict[str, jax.Array]],
         cfg: models.ModelConfig, tokens_R: jax.Array, positions_R: jax.Array,
         allowed_RxS: jax.Array, caches: LayerCaches, slot: jax.Array
         ) -> tuple[jax.Array, LayerCaches]:
  """Final-norm hidden [R, D] of one token a row, written to cache `slot`.

  `allowed_RxS` marks the slots each row attends to (its own slot included).
  """
  dt = cfg.jnp_dtype
  r = tokens_R.shape[0]
  k_heads, g, dh = cfg.num_kv_heads, cfg.num_heads // cfg.num_kv_heads, cfg.head_dim
  cos, sin = layers.rope_angles(positions_R[:, None], cfg)  # [R, 1, Dh/2]
  rope = lambda x_RxNxDh: layers.apply_rope(x_RxNxDh[:, None], cos, sin)[:, 0]
  x = constrain(params["embed"].astype(dt)[tokens_R], ("batch", "act_embed"))
  keys, values = list(caches[0]), list(caches[1])
  for l, p in enumerate(layer_params):
    w = lambda name, p=p: p[name].astype(dt)
    h = layers.rms_norm(x, p["attn_norm"], cfg.rms_eps)
    q = jnp.einsum("rd,dhk->rhk", h, w("q"))
    k = jnp.einsum("rd,dhk->rhk", h, w("k"))
    v = jnp.einsum("rd,dhk->rhk", h, w("v"))
    if cfg.qkv_bias:
      q, k, v = q + w("q_bias"), k + w("k_bias"), v + w("v_bias")
    q = constrain(rope(q), ("batch", "act_heads", None))
    k = constrain(rope(k), ("batch", "act_kv_heads", None))
    ck = jax.lax.dynamic_update_slice(keys[l], k[:, :, None].astype(keys[l].dtype),
                                      (0, 0, slot, 0))
    cv = jax.lax.dynamic_update_slice(values[l], v[:, :, None].astype(values[l].dtype),
                                      (0, 0, slot, 0))
    keys[l], values[l] = ck, cv
    scores = jnp.einsum("rkgd,rksd->rkgs", q.reshape(r, k_heads, g, dh), ck.astype(dt),
                        preferred_element_type=jnp.float32) / math.sqrt(dh)
    scores = jnp.where(allowed_RxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(dt)
    a = jnp.einsum("rkgs,rksd->rkgd", probs, cv.astype(dt)).reshape(r, k_heads * g, dh)
    x = constrain(x + jnp.einsum("rhk,hkd->rd", a, w("o")), ("batch", "act_embed"))
    h = layers.rms_norm(x, p["mlp_norm"], cfg.rms_eps)
    m = jax.nn.silu(jnp.einsum("rd,df->rf", h, w("gate"))) * jnp.einsum("rd,df->rf", h, w("up"))
    m = constrain(m, ("batch", "act_mlp"))
    x = constrain(x + jnp.einsum("rf,fd->rd", m, w("down")), ("batch", "act_embed"))
  x = layers.rms_norm(x, params["final_norm"], cfg.rms_eps)
  return x, (tuple(keys), tuple(values))
