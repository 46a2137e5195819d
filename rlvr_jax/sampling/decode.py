"""One decode step (one new token a row) over the model's KV cache, for the sampler loop.

Letters: R rows, S cache slots, D model width, L layers.

The layer math is the model's own (`models.decoder.layer`) and the cache its layout
(`models/kv_cache.py`: buffers a layer and segment, read and written in place).
What is particular to decoding is the loop structure, for speed:
- weights come as a list of per-layer dicts (split once a call, `split_layers`), so no
  layer's weights are sliced out of the stacked [L, ...] leaves inside the loop;
- the L layers are unrolled inside the decode `while_loop`.
"""

from typing import Any

import jax

from rlvr_jax import models
from rlvr_jax.models import decoder, kv_cache, layers
from rlvr_jax.sharding import constrain


def split_layers(params: dict[str, Any]) -> list[dict[str, jax.Array]]:
  """Per-layer weight dicts (copies of the stacked [L, ...] leaves); call inside jit."""
  n = jax.tree.leaves(params["layers"])[0].shape[0]
  return [jax.tree.map(lambda x, l=l: x[l], params["layers"]) for l in range(n)]


def step(params: dict[str, Any], layer_params: list[dict[str, jax.Array]],
         cfg: models.ModelConfig, tokens_R: jax.Array, positions_R: jax.Array,
         cache: kv_cache.KVCache, slot: jax.Array, segment: int
         ) -> tuple[jax.Array, kv_cache.KVCache]:
  """Final-norm hidden [R, D] of one token a row, its key and value written to cache slot
  `slot`, which lies in decode segment `segment` (static, >= 1).

  Attention reads segments 0..`segment` only. `cache.mask_RxS` marks the slots each row
  attends to, its own `slot` included (the caller sets it: slots past `slot` are
  unwritten, so the mask alone is causal).
  """
  ends = kv_cache.segment_ends(cache)
  if not 1 <= segment < len(ends):
    raise ValueError(f"decode segment {segment} of a cache whose segments end at {ends}")
  start, end = ends[segment - 1], ends[segment]
  allowed_RxS = cache.mask_RxS[:, :end]
  cos, sin = layers.rope_angles(positions_R[:, None], cfg)  # [R, 1, Dh/2]
  x = params["embed"].astype(cfg.jnp_dtype)[tokens_R][:, None]
  x = constrain(x, ("batch", "length", "act_embed"))
  keys, values = [list(k) for k in cache.keys], [list(v) for v in cache.values]
  for l, p in enumerate(layer_params):

    def attend(q, k, v, l=l):
      ck, cv = kv_cache.write(keys[l][segment], values[l][segment], k, v, slot - start)
      out = kv_cache.attend(q, keys[l][:segment] + [ck], values[l][:segment] + [cv], allowed_RxS)
      return out, (ck, cv)

    x, (keys[l][segment], values[l][segment]) = decoder.layer(cfg, x, p, cos, sin, attend)
  x = layers.rms_norm(x[:, 0], params["final_norm"], cfg.rms_eps)
  return x, kv_cache.KVCache(tuple(tuple(k) for k in keys), tuple(tuple(v) for v in values),
                             cache.mask_RxS)
