"""The decoder as pure functions over a params pytree (layers stacked, scanned).

Letters: B batch rows, T tokens, S cache slots, D model width, V vocabulary,
L layers, H query heads, K key/value heads, Dh head width, F MLP width.

Params: {'embed': [V, D], 'layers': {...each with a leading L axis...},
'final_norm': [D], 'lm_head': [D, V] (untied only)}.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from rlvr_jax.models import layers
from rlvr_jax.models.config import ModelConfig
from rlvr_jax.sharding import constrain

Params = dict[str, Any]
INIT_STD = 0.02  # HF initializer_range for Llama and Qwen2


def layer_shapes(cfg: ModelConfig) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
  """Per-layer parameter shapes (without L) and logical axes."""
  d, h, k, dh, f = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
  shapes = {
      "attn_norm": ((d,), ("norm",)),
      "q": ((d, h, dh), ("embed", "heads", "head_dim")),
      "k": ((d, k, dh), ("embed", "kv_heads", "head_dim")),
      "v": ((d, k, dh), ("embed", "kv_heads", "head_dim")),
      "o": ((h, dh, d), ("heads", "head_dim", "embed")),
      "mlp_norm": ((d,), ("norm",)),
      "gate": ((d, f), ("embed", "mlp")),
      "up": ((d, f), ("embed", "mlp")),
      "down": ((f, d), ("mlp", "embed")),
  }
  if cfg.qkv_bias:
    shapes["q_bias"] = ((h, dh), ("heads", "head_dim"))
    shapes["k_bias"] = ((k, dh), ("kv_heads", "head_dim"))
    shapes["v_bias"] = ((k, dh), ("kv_heads", "head_dim"))
  return shapes


def param_logical_axes(cfg: ModelConfig) -> Params:
  """The params tree with a tuple of logical axis names at each leaf."""
  axes: Params = {
      "embed": ("vocab", "embed"),
      "layers": {n: ("layers",) + a for n, (_, a) in layer_shapes(cfg).items()},
      "final_norm": ("norm",),
  }
  if not cfg.tie_embeddings:
    axes["lm_head"] = ("embed", "vocab")
  return axes


def param_shapes(cfg: ModelConfig) -> Params:
  """The params tree with jax.ShapeDtypeStruct leaves."""
  dt = cfg.jnp_param_dtype
  sds = lambda s: jax.ShapeDtypeStruct(s, dt)
  shapes: Params = {
      "embed": sds((cfg.vocab_size, cfg.d_model)),
      "layers": {n: sds((cfg.num_layers,) + s) for n, (s, _) in layer_shapes(cfg).items()},
      "final_norm": sds((cfg.d_model,)),
  }
  if not cfg.tie_embeddings:
    shapes["lm_head"] = sds((cfg.d_model, cfg.vocab_size))
  return shapes


def init_params(cfg: ModelConfig, key: jax.Array) -> Params:
  """Random init: normal(0.02) weights, unit norms, zero biases (as HF)."""
  shapes = param_shapes(cfg)
  leaves, treedef = jax.tree.flatten_with_path(shapes)
  keys = jax.random.split(key, len(leaves))
  out = []
  for (path, sds), k in zip(leaves, keys):
    name = jax.tree_util.keystr(path)
    if "norm" in name:
      out.append(jnp.ones(sds.shape, sds.dtype))
    elif "bias" in name:
      out.append(jnp.zeros(sds.shape, sds.dtype))
    else:
      out.append((INIT_STD * jax.random.normal(k, sds.shape, jnp.float32)).astype(sds.dtype))
  return jax.tree.unflatten(treedef, out)


@functools.cache
def _adapter_equations(eq: str) -> tuple[str, str]:
  """A projection's einsum 'x,w->y' as its LoRA adapter's two: 'x,a->hr' and 'hr,b->y'.

  The weight's letters found in the input are its input dims (they come first); the
  rest are its output dims; 'r' is the adapter's rank.
  """
  inputs, out = eq.split("->")
  x, w = inputs.split(",")
  contracted = "".join(c for c in w if c in x)
  produced = "".join(c for c in w if c not in x)
  if "r" in eq or w != contracted + produced:
    raise ValueError(f"projection einsum {eq!r}: needs the weight's input dims first and no 'r'")
  hidden = "".join(c for c in x if c not in w) + "r"
  return f"{x},{contracted}r->{hidden}", f"{hidden},r{produced}->{out}"


def project(cfg: ModelConfig, x: jax.Array, p: Params, name: str, eq: str) -> jax.Array:
  """`einsum(eq, x, p[name])` in the compute dtype, plus `lora_scale * (x @ A) @ B` where
  `p` holds the projection's LoRA adapters (`models/lora.py`)."""
  dt = cfg.jnp_dtype
  y = jnp.einsum(eq, x, p[name].astype(dt))
  if name + "_lora_a" in p:
    eq_a, eq_b = _adapter_equations(eq)
    low = jnp.einsum(eq_a, x, p[name + "_lora_a"].astype(dt))
    y = y + cfg.lora_scale * jnp.einsum(eq_b, low, p[name + "_lora_b"].astype(dt))
  return y


def layer(cfg: ModelConfig, x_BxTxD: jax.Array, p: Params, cos: jax.Array, sin: jax.Array,
          attend: Any) -> tuple[jax.Array, Any]:
  """One pre-norm layer, the only copy of its math (training, prefill and decode).

  `attend(q_BxTxHxDh, k_BxTxKxDh, v_BxTxKxDh)` (after RoPE) stores the new keys
  and values wherever its caller keeps them and returns the attention output
  [B, T, H, Dh] and an aux value (e.g. the updated cache), passed through. The
  projections carry LoRA adapters where `p` has them (`project`).
  """
  dt = cfg.jnp_dtype
  proj = functools.partial(project, cfg, p=p)
  h = layers.rms_norm(x_BxTxD, p["attn_norm"], cfg.rms_eps)
  q = proj(h, name="q", eq="btd,dhk->bthk")
  k = proj(h, name="k", eq="btd,dhk->bthk")
  v = proj(h, name="v", eq="btd,dhk->bthk")
  if cfg.qkv_bias:
    q, k, v = (q + p["q_bias"].astype(dt), k + p["k_bias"].astype(dt),
               v + p["v_bias"].astype(dt))
  q = constrain(layers.apply_rope(q, cos, sin), ("batch", "length", "act_heads", None))
  k = constrain(layers.apply_rope(k, cos, sin), ("batch", "length", "act_kv_heads", None))
  a, aux = attend(q, k, v)
  x = x_BxTxD + proj(a, name="o", eq="bthk,hkd->btd")
  x = constrain(x, ("batch", "length", "act_embed"))
  h = layers.rms_norm(x, p["mlp_norm"], cfg.rms_eps)
  g = proj(h, name="gate", eq="btd,df->btf")
  u = proj(h, name="up", eq="btd,df->btf")
  m = constrain(jax.nn.silu(g) * u, ("batch", "length", "act_mlp"))
  x = x + proj(m, name="down", eq="btf,fd->btd")
  return constrain(x, ("batch", "length", "act_embed")), aux


def _remat(cfg: ModelConfig, fn: Any) -> Any:
  if cfg.remat == "full":
    return jax.checkpoint(fn)
  if cfg.remat == "dots":
    return jax.checkpoint(fn, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
  return fn


def forward_hidden(params: Params, cfg: ModelConfig, tokens_BxT: jax.Array,
                   positions_BxT: jax.Array, mask_BxT: jax.Array, return_kv: bool = False
                   ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
  """Final-norm hidden states [B, T, D] (compute dtype); token i attends to real tokens
  j <= i. With `return_kv`, also every layer's keys (after RoPE) and values,
  [L, B, T, K, Dh] each: what prefill puts in the KV cache (`models/kv_cache.py`).
  """
  if tokens_BxT.ndim != 2 or positions_BxT.shape != tokens_BxT.shape or (
      mask_BxT.shape != tokens_BxT.shape):
    raise ValueError(f"tokens {tokens_BxT.shape}, positions {positions_BxT.shape} and mask "
                     f"{mask_BxT.shape} must all be the same [B, T] shape")
  t = tokens_BxT.shape[1]
  mask_BxT = mask_BxT.astype(jnp.bool_)
  x = params["embed"].astype(cfg.jnp_dtype)[tokens_BxT]
  x = constrain(x, ("batch", "length", "act_embed"))
  cos, sin = layers.rope_angles(positions_BxT, cfg)
  if cfg.attention == "splash":  # the kernel takes the causal structure and the token mask
    from rlvr_jax.models import splash  # noqa: PLC0415 (Pallas' TPU ops, only when asked for)
    attention = lambda q, k, v: splash.attention(q, k, v, mask_BxT)
  else:
    causal_TxT = jnp.tril(jnp.ones((t, t), jnp.bool_))
    allowed = causal_TxT[None] & mask_BxT[:, None, :]
    attention = lambda q, k, v: layers.attention(q, k, v, allowed, cfg.attention,
                                                 cfg.attention_chunk)

  def step(x, p):
    attend = lambda q, k, v: (attention(q, k, v), (k, v) if return_kv else None)
    return layer(cfg, x, p, cos, sin, attend)

  x, kv = jax.lax.scan(_remat(cfg, step), x, params["layers"])
  return layers.rms_norm(x, params["final_norm"], cfg.rms_eps), kv


def _head(params: Params, cfg: ModelConfig) -> jax.Array:
  """Output projection [D, V] in the compute dtype."""
  if cfg.tie_embeddings:
    return params["embed"].astype(cfg.jnp_dtype).T
  return params["lm_head"].astype(cfg.jnp_dtype)


def logits(params: Params, cfg: ModelConfig, hidden_BxTxD: jax.Array) -> jax.Array:
  """Float32 logits [B, T, V]."""
  out = jnp.einsum("btd,dv->btv", hidden_BxTxD.astype(cfg.jnp_dtype), _head(params, cfg),
                   preferred_element_type=jnp.float32)
  return constrain(out, ("batch", "length", "act_vocab"))


def token_logprobs(params: Params, cfg: ModelConfig, hidden_BxTxD: jax.Array,
                   targets_BxT: jax.Array, chunk_size: int = 128
                   ) -> tuple[jax.Array, jax.Array]:
  """log p(target) and full-softmax entropy, both [B, T] float32.

  Runs over Q chunks of C tokens of T with a rematerialized scan body, so forward
  and backward hold at most one [B, C, V] float32 logits tensor.
  """
  if chunk_size <= 0:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}")
  b, t, d = hidden_BxTxD.shape
  if targets_BxT.shape != (b, t):
    raise ValueError(f"targets {targets_BxT.shape} do not match hidden {hidden_BxTxD.shape}")
  c = min(chunk_size, t)
  q = -(-t // c)
  pad = q * c - t
  h = jnp.pad(hidden_BxTxD, ((0, 0), (0, pad), (0, 0)))
  y = jnp.pad(targets_BxT, ((0, 0), (0, pad)))
  h_QxBxCxD = h.reshape(b, q, c, d).swapaxes(0, 1)
  y_QxBxC = y.reshape(b, q, c).swapaxes(0, 1)

  @jax.checkpoint
  def chunk(h_BxCxD, y_BxC):
    logits_BxCxV = logits(params, cfg, h_BxCxD)
    logp_BxCxV = jax.nn.log_softmax(logits_BxCxV, axis=-1)
    logp_BxC = jnp.take_along_axis(logp_BxCxV, y_BxC[..., None], axis=-1)[..., 0]
    entropy_BxC = -jnp.sum(jnp.exp(logp_BxCxV) * logp_BxCxV, axis=-1)
    return logp_BxC, entropy_BxC

  _, (logp, ent) = jax.lax.scan(lambda _, xs: (None, chunk(*xs)), None, (h_QxBxCxD, y_QxBxC))
  logp_BxT = logp.swapaxes(0, 1).reshape(b, q * c)[:, :t]
  ent_BxT = ent.swapaxes(0, 1).reshape(b, q * c)[:, :t]
  return logp_BxT, ent_BxT
