"""Building blocks: RMSNorm, rotary embeddings, grouped-query attention.

Letters: B batch rows, T new tokens, S key slots (T without a cache, cache
length with one), D model width, H query heads, K key/value heads, G = H / K
query heads per KV head, Dh head width.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from rlvr_jax.models.config import ModelConfig, RopeScaling


def rms_norm(x_BxTxD: jax.Array, scale_D: jax.Array, eps: float) -> jax.Array:
  """RMSNorm computed in float32 (as HF does), cast back to the input dtype."""
  x = x_BxTxD.astype(jnp.float32)
  x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)
  return x.astype(x_BxTxD.dtype) * scale_D.astype(x_BxTxD.dtype)


def rope_inv_freq(head_dim: int, base: float, scaling: RopeScaling | None) -> np.ndarray:
  """Inverse frequencies [Dh/2] in float64 numpy; Llama-3 scaling if given."""
  inv_freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
  if scaling is None:
    return inv_freq
  # Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and
  # the band in between interpolated smoothly.
  old_len = scaling.original_max_position_embeddings
  low_wavelen = old_len / scaling.low_freq_factor
  high_wavelen = old_len / scaling.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  smooth = (old_len / wavelen - scaling.low_freq_factor) / (
      scaling.high_freq_factor - scaling.low_freq_factor)
  mid = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
  return np.where(wavelen > low_wavelen, inv_freq / scaling.factor,
                  np.where(wavelen < high_wavelen, inv_freq, mid))


def rope_angles(positions_BxT: jax.Array, cfg: ModelConfig) -> tuple[jax.Array, jax.Array]:
  """cos, sin of shape [B, T, Dh/2] in float32."""
  inv_freq = jnp.asarray(rope_inv_freq(cfg.head_dim, cfg.rope_base, cfg.rope_scaling),
                         jnp.float32)
  angles = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x_BxTxNxDh: jax.Array, cos_BxTxF: jax.Array, sin_BxTxF: jax.Array) -> jax.Array:
  """Rotates pairs (i, i + Dh/2): the HF `rotate_half` layout."""
  x = x_BxTxNxDh.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  cos, sin = cos_BxTxF[:, :, None, :], sin_BxTxF[:, :, None, :]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxNxDh.dtype)


def attention(q_BxTxHxDh: jax.Array, k_BxSxKxDh: jax.Array, v_BxSxKxDh: jax.Array,
              allowed_BxTxS: jax.Array, impl: str = "einsum", chunk: int = 512) -> jax.Array:
  """Softmax attention with GQA; scores and softmax in float32.

  `impl` (ModelConfig.attention): einsum materializes the [B, H, T, S] scores;
  dot_product is `jax.nn.dot_product_attention` (cuDNN's fused kernel on GPU where it
  applies, XLA elsewhere); chunked runs query blocks of `chunk` rows through a
  rematerialized scan, so forward and backward hold [B, H, chunk, S] at a time. A
  query with no allowed key (a left-pad position) gets a uniform average rather
  than NaN in all three; its output is never used.
  """
  if impl == "einsum":
    return _einsum_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_BxTxS)
  if impl == "dot_product":
    return jax.nn.dot_product_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh,
                                        mask=allowed_BxTxS[:, None])
  if impl == "chunked":
    return _chunked_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_BxTxS, chunk)
  if impl == "splash":
    raise ValueError("splash attention takes the token mask, not an [B, T, S] one: it is "
                     "models/splash.attention, which decoder.forward_hidden calls")
  raise ValueError(f"unknown attention implementation {impl!r}; expected einsum, dot_product "
                   "or chunked")


def _einsum_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_BxTxS):
  b, t, h, dh = q_BxTxHxDh.shape
  k = k_BxSxKxDh.shape[2]
  q_BxTxKxGxDh = q_BxTxHxDh.reshape(b, t, k, h // k, dh)
  scores = jnp.einsum("btkgd,bskd->bkgts", q_BxTxKxGxDh, k_BxSxKxDh,
                      preferred_element_type=jnp.float32) / math.sqrt(dh)
  scores = jnp.where(allowed_BxTxS[:, None, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v_BxSxKxDh.dtype)
  out = jnp.einsum("bkgts,bskd->btkgd", probs, v_BxSxKxDh)
  return out.reshape(b, t, h, dh)


def _chunked_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_BxTxS, chunk):
  """Q blocks of C queries (the last one padded), each through `_einsum_attention`."""
  b, t, h, dh = q_BxTxHxDh.shape
  c = min(chunk, t)
  q_blocks = -(-t // c)
  pad = q_blocks * c - t
  q = jnp.pad(q_BxTxHxDh, ((0, 0), (0, pad), (0, 0), (0, 0)))
  allowed = jnp.pad(allowed_BxTxS, ((0, 0), (0, pad), (0, 0)))
  q_QxBxCxHxDh = q.reshape(b, q_blocks, c, h, dh).swapaxes(0, 1)
  allowed_QxBxCxS = allowed.reshape(b, q_blocks, c, -1).swapaxes(0, 1)

  @jax.checkpoint
  def block(q_BxCxHxDh, allowed_BxCxS):
    return _einsum_attention(q_BxCxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_BxCxS)

  out_QxBxCxHxDh = jax.lax.map(lambda xs: block(*xs), (q_QxBxCxHxDh, allowed_QxBxCxS))
  return out_QxBxCxHxDh.swapaxes(0, 1).reshape(b, q_blocks * c, h, dh)[:, :t]
