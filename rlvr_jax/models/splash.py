"""Causal self-attention through the Pallas splash-attention kernel (TPU), with left padding.

Letters: B rows, T tokens (self-attention: the keys are the same T), H query heads, K
key/value heads, G = H / K, Dh head width.

The kernel's multi-query form takes one row's G query heads of a KV head, [G, T, Dh],
with that head's keys and values, [T, Dh]; it is mapped over the K heads and the B rows.
Left padding is a segment: real tokens are segment 1, padding segment 0, so with the
causal mask a real token attends to the real tokens at or before it, as `layers.attention`
with `allowed = causal & mask`, and a pad only to pads (never an empty row; its output is
never used). T is padded on the right to the kernel's 128-token blocks, as segment 0.
Under a mesh (`sharding.use_mesh`) the kernel runs inside a `shard_map` over the rows'
batch axes and the KV heads' tensor axis: XLA cannot partition a Pallas call itself.

The kernel compiles for TPU only. `interpret()` switches to Pallas' interpreter for the
code traced inside it, which is how the CPU tests check it against `layers.attention`.
"""

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as kernel_lib
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as mask_lib

from rlvr_jax import sharding

BLOCK = 128  # the kernel's query and key block (its defaults)
_INTERPRET = contextvars.ContextVar("rlvr_jax_splash_interpret", default=False)


@contextlib.contextmanager
def interpret() -> Iterator[None]:
  """Runs the splash kernel in Pallas' interpreter (any backend) for code traced inside."""
  token = _INTERPRET.set(True)
  try:
    yield
  finally:
    _INTERPRET.reset(token)


@functools.cache
def _kernel(t: int, g: int, interpreted: bool):
  mask = mask_lib.MultiHeadMask([mask_lib.CausalMask((t, t))] * g)
  return kernel_lib.make_splash_mqa_single_device(
      mask, block_sizes=kernel_lib.BlockSizes.get_default(), interpret=interpreted)


def attention(q_BxTxHxDh: jax.Array, k_BxTxKxDh: jax.Array, v_BxTxKxDh: jax.Array,
              mask_BxT: jax.Array) -> jax.Array:
  """Causal softmax attention of T tokens over themselves, keys where `mask_BxT` is 0 left
  out: [B, T, H, Dh], the queries' dtype."""
  b, t, h, dh = q_BxTxHxDh.shape
  k_heads = k_BxTxKxDh.shape[2]
  if k_BxTxKxDh.shape[1] != t:
    raise ValueError(f"splash attention is self-attention: {t} queries, "
                     f"{k_BxTxKxDh.shape[1]} keys")
  g = h // k_heads
  tp = -(-t // BLOCK) * BLOCK
  pad = lambda x: jnp.pad(x, ((0, 0), (0, tp - t)) + ((0, 0),) * (x.ndim - 2))
  q = pad((q_BxTxHxDh.astype(jnp.float32) / math.sqrt(dh)).astype(q_BxTxHxDh.dtype))
  q_BxKxGxTxDh = q.reshape(b, tp, k_heads, g, dh).transpose(0, 2, 3, 1, 4)
  k_BxKxTxDh = pad(k_BxTxKxDh).transpose(0, 2, 1, 3)
  v_BxKxTxDh = pad(v_BxTxKxDh).transpose(0, 2, 1, 3)
  seg_BxT = pad(mask_BxT.astype(jnp.int32))
  kernel = _kernel(tp, g, _INTERPRET.get())

  def rows(q_bkgtd, k_bktd, v_bktd, seg_bt):
    def row(q_KxGxTxDh, k_KxTxDh, v_KxTxDh, seg_T):
      ids = kernel_lib.SegmentIds(q=seg_T, kv=seg_T)
      return jax.vmap(lambda qq, kk, vv: kernel(qq, kk, vv, segment_ids=ids))(
          q_KxGxTxDh, k_KxTxDh, v_KxTxDh)
    return jax.vmap(row)(q_bkgtd, k_bktd, v_bktd, seg_bt)

  active = sharding.active()
  if active is not None:
    mesh, rules = active
    spec = lambda axes, x: sharding.logical_to_spec(axes, rules, x.shape, mesh)
    q_spec = spec(("batch", "act_kv_heads", None, None, None), q_BxKxGxTxDh)
    kv_spec = spec(("batch", "act_kv_heads", None, None), k_BxKxTxDh)
    seg_spec = jax.sharding.PartitionSpec(q_spec[0], None)
    rows = jax.shard_map(rows, mesh=mesh, in_specs=(q_spec, kv_spec, kv_spec, seg_spec),
                         out_specs=q_spec, check_vma=False)
  out_BxKxGxTxDh = rows(q_BxKxGxTxDh, k_BxKxTxDh, v_BxKxTxDh, seg_BxT)
  return out_BxKxGxTxDh.transpose(0, 3, 1, 2, 4).reshape(b, tp, h, dh)[:, :t]
