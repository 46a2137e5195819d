"""HF tensor names <-> the params tree, and tensor-by-tensor sharded assembly.

Checkpoint readers (safetensors, GGUF) expose a `TensorSource`: HF tensor names
and a `get(name)` that reads one tensor as numpy in HF layout. `assemble`
validates the names against the config (missing, extra, shapes), converts each
tensor to the params layout and writes it straight into its shard of the
stacked [L, ...] leaf, so the host holds one tensor at a time.

Letters: L layers, D model width, H heads, K KV heads, Dh head width, F MLP
width, V vocabulary.
"""

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from rlvr_jax import sharding
from rlvr_jax.models import ModelConfig, param_logical_axes, param_shapes

# Buffers older HF checkpoints carry that are recomputed, not learned.
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


class TensorSource(Protocol):
  def names(self) -> Iterable[str]: ...
  def get(self, name: str) -> np.ndarray: ...


def _hf_layer_names(cfg: ModelConfig) -> dict[str, str]:
  """Leaf name under params['layers'] -> HF name template (with {i})."""
  p = "model.layers.{i}."
  names = {
      "attn_norm": p + "input_layernorm.weight",
      "q": p + "self_attn.q_proj.weight", "k": p + "self_attn.k_proj.weight",
      "v": p + "self_attn.v_proj.weight", "o": p + "self_attn.o_proj.weight",
      "mlp_norm": p + "post_attention_layernorm.weight",
      "gate": p + "mlp.gate_proj.weight", "up": p + "mlp.up_proj.weight",
      "down": p + "mlp.down_proj.weight",
  }
  if cfg.qkv_bias:
    names.update(q_bias=p + "self_attn.q_proj.bias", k_bias=p + "self_attn.k_proj.bias",
                 v_bias=p + "self_attn.v_proj.bias")
  return names


def hf_names(cfg: ModelConfig) -> list[str]:
  """Every HF tensor name the config expects, in a fixed order."""
  names = ["model.embed_tokens.weight", "model.norm.weight"]
  if not cfg.tie_embeddings:
    names.append("lm_head.weight")
  for template in _hf_layer_names(cfg).values():
    names += [template.format(i=i) for i in range(cfg.num_layers)]
  return names


def hf_shape(cfg: ModelConfig, leaf: str) -> tuple[int, ...]:
  """HF layout of one layer's tensor (or a top-level one)."""
  d, h, k, dh, f, v = (cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                       cfg.mlp_dim, cfg.vocab_size)
  return {"embed": (v, d), "final_norm": (d,), "lm_head": (v, d), "attn_norm": (d,),
          "mlp_norm": (d,), "q": (h * dh, d), "k": (k * dh, d), "v": (k * dh, d),
          "o": (d, h * dh), "gate": (f, d), "up": (f, d), "down": (d, f),
          "q_bias": (h * dh,), "k_bias": (k * dh,), "v_bias": (k * dh,)}[leaf]


def to_params_layout(cfg: ModelConfig, leaf: str, w: np.ndarray) -> np.ndarray:
  """HF tensor -> params layout (einsum-friendly, heads split out)."""
  d, h, k, dh = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  if leaf in ("q", "k", "v"):
    n = h if leaf == "q" else k
    return w.reshape(n, dh, d).transpose(2, 0, 1)  # [n*Dh, D] -> [D, n, Dh]
  if leaf == "o":
    return w.reshape(d, h, dh).transpose(1, 2, 0)  # [D, H*Dh] -> [H, Dh, D]
  if leaf in ("q_bias", "k_bias", "v_bias"):
    return w.reshape(-1, dh)
  if leaf in ("gate", "up", "down", "lm_head"):
    return w.T
  return w


def to_hf_layout(cfg: ModelConfig, leaf: str, w: np.ndarray) -> np.ndarray:
  """Inverse of `to_params_layout`."""
  if leaf in ("q", "k", "v"):
    return w.transpose(1, 2, 0).reshape(-1, cfg.d_model)
  if leaf == "o":
    return w.transpose(2, 0, 1).reshape(cfg.d_model, -1)
  if leaf in ("q_bias", "k_bias", "v_bias"):
    return w.reshape(-1)
  if leaf in ("gate", "up", "down", "lm_head"):
    return w.T
  return w


def check_names(cfg: ModelConfig, available: Iterable[str], where: str) -> None:
  """Raises ValueError listing missing and unexpected tensors."""
  available = set(available)
  expected = set(hf_names(cfg))
  allowed_extra = {"lm_head.weight"} if cfg.tie_embeddings else set()
  missing = sorted(expected - available)
  extra = sorted(n for n in available - expected - allowed_extra
                 if not n.endswith(IGNORED_SUFFIXES))
  if missing or extra:
    def show(names):
      return ", ".join(names[:8]) + (f" ... ({len(names)} in all)" if len(names) > 8 else "")
    raise ValueError(f"{where}: tensors do not match the model config"
                     + (f"; missing: {show(missing)}" if missing else "")
                     + (f"; unexpected: {show(extra)}" if extra else ""))


def _placer(shape: tuple[int, ...], dtype: Any, sharding_: jax.sharding.Sharding | None
            ) -> Callable[[np.ndarray], jax.Array]:
  """numpy -> device array with the given sharding (each device gets its slice)."""
  def place(x: np.ndarray) -> jax.Array:
    x = np.asarray(x).astype(dtype, copy=False)
    if sharding_ is None:
      return jnp.asarray(x)
    return jax.make_array_from_callback(shape, sharding_, lambda idx: x[idx])
  return place


def assemble(cfg: ModelConfig, source: TensorSource, where: str,
             mesh: jax.sharding.Mesh | None = None, rules: sharding.Rules | None = None
             ) -> dict[str, Any]:
  """Builds params from `source`, one HF tensor at a time, on `mesh` if given."""
  check_names(cfg, source.names(), where)
  shapes = param_shapes(cfg)
  dtype = np.dtype(cfg.jnp_param_dtype)
  if mesh is not None:
    shardings = sharding.logical_sharding(param_logical_axes(cfg), mesh, rules, shapes)
  else:
    shardings = jax.tree.map(lambda _: None, shapes)

  def read(name: str, leaf: str) -> np.ndarray:
    w = source.get(name)
    if tuple(w.shape) != hf_shape(cfg, leaf):
      raise ValueError(f"{where}: tensor {name} has shape {tuple(w.shape)}, the config "
                       f"expects {hf_shape(cfg, leaf)}")
    if not np.isfinite(w).all():
      raise ValueError(f"{where}: tensor {name} contains NaN or inf")
    return to_params_layout(cfg, leaf, w)

  params: dict[str, Any] = {}
  top = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight"}
  if not cfg.tie_embeddings:
    top["lm_head"] = "lm_head.weight"
  for leaf, name in top.items():
    params[leaf] = _placer(shapes[leaf].shape, dtype, shardings[leaf])(read(name, leaf))

  params["layers"] = {}
  for leaf, template in _hf_layer_names(cfg).items():
    sds, shard = shapes["layers"][leaf], shardings["layers"][leaf]
    # One layer's slice carries the leaf's sharding minus the L axis.
    layer_shard = None if shard is None else jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(*shard.spec[1:]))
    place = _placer(sds.shape[1:], dtype, layer_shard)
    stacked = jax.jit(lambda: jnp.zeros(sds.shape, sds.dtype), out_shardings=shard)()
    for i in range(cfg.num_layers):
      stacked = _set_layer(stacked, place(read(template.format(i=i), leaf)), i)
    params["layers"][leaf] = stacked
  return params


# Donating the stack lets XLA write the layer in place (no second [L, ...] copy).
_set_layer = jax.jit(lambda stacked, x, i: jax.lax.dynamic_update_index_in_dim(stacked, x, i, 0),
                     donate_argnums=0)
