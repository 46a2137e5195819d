"""Model configuration: one frozen dataclass for Llama, Qwen2/2.5 and SmolLM2.

The config is hashable so it can be a static argument of `jax.jit`. Presets
name the published architectures plus a tiny character-vocabulary model.
"""

import dataclasses
from typing import Any

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
REMAT_POLICIES = ("none", "full", "dots")
ATTENTION_IMPLS = ("einsum", "dot_product", "chunked", "splash")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """Llama-3 style frequency-dependent RoPE scaling (`rope_type: llama3`)."""
  factor: float = 8.0
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Decoder-only transformer hyperparameters (HF names in comments)."""
  vocab_size: int
  num_layers: int  # num_hidden_layers
  d_model: int  # hidden_size
  num_heads: int  # num_attention_heads
  num_kv_heads: int  # num_key_value_heads
  head_dim: int
  mlp_dim: int  # intermediate_size
  rope_base: float = 10000.0  # rope_theta
  rope_scaling: RopeScaling | None = None
  rms_eps: float = 1e-5
  qkv_bias: bool = False  # Qwen2 has biases on q, k, v projections
  tie_embeddings: bool = True
  param_dtype: str = "float32"
  dtype: str = "float32"  # compute dtype of activations and matmuls
  remat: str = "none"  # rematerialization of each layer: none | full | dots
  # Attention without a cache (training, prefill), `layers.ATTENTION`: einsum (scores
  # [T, S] materialized), dot_product (jax.nn.dot_product_attention: cuDNN flash attention on
  # GPU, XLA elsewhere) or chunked (query blocks of `attention_chunk`, rematerialized: memory
  # [chunk, S] a head in forward and backward) or splash (the Pallas splash-attention kernel,
  # TPU only: `models/splash.py`).
  attention: str = "einsum"
  attention_chunk: int = 512
  # Multiplier of the LoRA adapters' product, alpha / rank (`models/lora.py`); used only
  # where the params hold adapters.
  lora_scale: float = 1.0
  bos_id: int | None = None
  eos_ids: tuple[int, ...] = ()
  pad_id: int = 0

  def __post_init__(self):
    for name in ("vocab_size", "num_layers", "d_model", "num_heads", "num_kv_heads",
                 "head_dim", "mlp_dim"):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                       f"num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")
    for name in ("param_dtype", "dtype"):
      if getattr(self, name) not in _DTYPES:
        raise ValueError(f"ModelConfig.{name}={getattr(self, name)!r}; "
                         f"expected one of {sorted(_DTYPES)}")
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"ModelConfig.remat={self.remat!r}; expected one of {REMAT_POLICIES}")
    if self.attention not in ATTENTION_IMPLS:
      raise ValueError(f"ModelConfig.attention={self.attention!r}; expected one of "
                       f"{ATTENTION_IMPLS}")
    if self.attention_chunk <= 0:
      raise ValueError(f"ModelConfig.attention_chunk must be positive, got {self.attention_chunk}")
    if not 0 <= self.pad_id < self.vocab_size:
      raise ValueError(f"pad_id={self.pad_id} outside vocabulary of {self.vocab_size}")
    if not isinstance(self.eos_ids, tuple):
      raise ValueError(f"eos_ids must be a tuple (hashable), got {type(self.eos_ids).__name__}")

  @property
  def jnp_param_dtype(self) -> Any:
    return _DTYPES[self.param_dtype]

  @property
  def jnp_dtype(self) -> Any:
    return _DTYPES[self.dtype]

  def replace(self, **changes: Any) -> "ModelConfig":
    return dataclasses.replace(self, **changes)

  def num_params(self) -> int:
    """Parameter count (embeddings counted once when tied)."""
    d, f, dh = self.d_model, self.mlp_dim, self.head_dim
    attn = d * dh * (self.num_heads * 2 + self.num_kv_heads * 2)
    if self.qkv_bias:
      attn += dh * (self.num_heads + 2 * self.num_kv_heads)
    layer = attn + 3 * d * f + 2 * d
    head = 0 if self.tie_embeddings else d * self.vocab_size
    return self.vocab_size * d + self.num_layers * layer + d + head


# The character tokenizer (rlvr_jax.tasks.CharTokenizer) has 128 ids: pad, bos,
# eos, newline and printable ASCII; a tiny model on it trains in CPU minutes.
_PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        vocab_size=128, num_layers=4, d_model=128, num_heads=4, num_kv_heads=2,
        head_dim=32, mlp_dim=512, rope_base=10000.0, rms_eps=1e-5,
        tie_embeddings=True, bos_id=1, eos_ids=(2,), pad_id=0),
    "smollm2_135m": ModelConfig(
        vocab_size=49152, num_layers=30, d_model=576, num_heads=9, num_kv_heads=3,
        head_dim=64, mlp_dim=1536, rope_base=100000.0, rms_eps=1e-5,
        tie_embeddings=True, bos_id=1, eos_ids=(2,), pad_id=2),
    "qwen2_5_0_5b": ModelConfig(
        vocab_size=151936, num_layers=24, d_model=896, num_heads=14, num_kv_heads=2,
        head_dim=64, mlp_dim=4864, rope_base=1000000.0, rms_eps=1e-6, qkv_bias=True,
        tie_embeddings=True, bos_id=None, eos_ids=(151645, 151643), pad_id=151643),
    "qwen2_5_7b": ModelConfig(
        vocab_size=152064, num_layers=28, d_model=3584, num_heads=28, num_kv_heads=4,
        head_dim=128, mlp_dim=18944, rope_base=1000000.0, rms_eps=1e-6, qkv_bias=True,
        tie_embeddings=False, bos_id=None, eos_ids=(151645, 151643), pad_id=151643,
        param_dtype="bfloat16", dtype="bfloat16"),
    "llama3_8b": ModelConfig(
        vocab_size=128256, num_layers=32, d_model=4096, num_heads=32, num_kv_heads=8,
        head_dim=128, mlp_dim=14336, rope_base=500000.0, rms_eps=1e-5,
        tie_embeddings=False, bos_id=128000, eos_ids=(128001, 128009), pad_id=128001,
        param_dtype="bfloat16", dtype="bfloat16"),
    "llama3_1_8b": ModelConfig(
        vocab_size=128256, num_layers=32, d_model=4096, num_heads=32, num_kv_heads=8,
        head_dim=128, mlp_dim=14336, rope_base=500000.0, rope_scaling=RopeScaling(),
        rms_eps=1e-5, tie_embeddings=False, bos_id=128000, eos_ids=(128001, 128008, 128009),
        pad_id=128001, param_dtype="bfloat16", dtype="bfloat16"),
}


def preset_names() -> list[str]:
  return sorted(_PRESETS)


def preset(name: str, **overrides: Any) -> ModelConfig:
  """A named architecture; keyword overrides replace fields (e.g. dtype='bfloat16')."""
  if name not in _PRESETS:
    raise ValueError(f"unknown model preset {name!r}; known: {', '.join(preset_names())}")
  return _PRESETS[name].replace(**overrides)
