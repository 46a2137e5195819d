"""LoRA as a transform of the params tree: adapter leaves beside the projections they adapt.

A targeted projection `W` of `params['layers']` (q, k, v, o, gate, up, down) gets two
stacked leaves, `<name>_lora_a` and `<name>_lora_b`, scanned with the base weights like
any other layer leaf. `decoder.layer` adds `scale * (h @ A) @ B` to the projection's
output wherever both are present (training, prefill and decode: the sampler samples the
adapted policy), with `scale = alpha / rank` carried by `ModelConfig.lora_scale`.

Shapes (without the leading L): A takes the projection's input dims to the rank, B the
rank to its output dims, so each shards like its base along the dims they share
(`W` [D, H, Dh]: A [D, rank], B [rank, H, Dh]; o [H, Dh, D]: A [H, Dh, rank], B [rank, D]);
the rank dim is replicated.

With B = 0 at init (A uniform in +-1/sqrt(fan_in), as PEFT) the adapted model is the
base exactly. `split` / `join` separate the adapter leaves from the base, so the train
step differentiates the adapters alone with the base closed over, the optimizer state
exists for the adapters only, and the KL reference is `base(params)`: the same arrays
without their adapters, not a second copy.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from rlvr_jax.models import decoder
from rlvr_jax.models.config import ModelConfig

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
# How many leading dims of each target are its input (contracted with the activations).
_INPUT_DIMS = {"q": 1, "k": 1, "v": 1, "o": 2, "gate": 1, "up": 1, "down": 1}
_SUFFIXES = ("_lora_a", "_lora_b")
Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LoraSpec:
  """rank > 0 adapters on `targets` with scale alpha / rank (dropout is not implemented)."""
  rank: int
  alpha: float
  targets: tuple[str, ...] = TARGETS

  def __post_init__(self):
    if self.rank <= 0:
      raise ValueError(f"lora rank must be positive, got {self.rank}")
    if self.alpha <= 0:
      raise ValueError(f"lora alpha must be positive, got {self.alpha}")
    unknown = sorted(set(self.targets) - set(TARGETS))
    if unknown or not self.targets:
      raise ValueError(f"lora targets {list(self.targets)}: each must be one of {TARGETS}")
    if len(set(self.targets)) != len(self.targets):
      raise ValueError(f"lora targets {list(self.targets)} name a projection twice")

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def from_config(lora_cfg: Any) -> LoraSpec | None:
  """The `lora` config block (rl/defaults.py) as a LoraSpec; None when rank is 0 (off)."""
  if int(lora_cfg.rank) == 0:
    return None
  if float(lora_cfg.dropout) != 0.0:
    raise ValueError(f"lora.dropout={lora_cfg.dropout}: adapter dropout is not implemented "
                     "(only 0 is supported)")
  targets = tuple(t.strip() for t in str(lora_cfg.targets).split(",") if t.strip())
  return LoraSpec(rank=int(lora_cfg.rank), alpha=float(lora_cfg.alpha), targets=targets)


def is_adapter(name: str) -> bool:
  return name.endswith(_SUFFIXES)


def _adapter_shapes(cfg: ModelConfig, spec: LoraSpec
                    ) -> dict[str, tuple[tuple[int, ...], tuple[Any, ...]]]:
  """Adapter leaf -> (shape without L, logical axes without 'layers')."""
  base = decoder.layer_shapes(cfg)
  out = {}
  for name in spec.targets:
    shape, axes = base[name]
    n = _INPUT_DIMS[name]
    out[name + "_lora_a"] = (shape[:n] + (spec.rank,), axes[:n] + (None,))
    out[name + "_lora_b"] = ((spec.rank,) + shape[n:], (None,) + axes[n:])
  return out


def logical_axes(cfg: ModelConfig, spec: LoraSpec) -> Params:
  """{'layers': {adapter leaf: logical axes}}, the adapters' half of the params' axes."""
  return {"layers": {n: ("layers",) + a for n, (_, a) in _adapter_shapes(cfg, spec).items()}}


def init_adapters(cfg: ModelConfig, spec: LoraSpec, key: jax.Array) -> Params:
  """{'layers': {...}}: A uniform in +-1/sqrt(fan_in) (PEFT's default), B zero.

  Adapters keep float32 master weights whatever the base's `param_dtype` (a bfloat16
  base is the memory saver; the adapters are small, and bfloat16 Adam steps on them
  would round away); the layer casts them to the compute dtype like every weight.
  """
  shapes = _adapter_shapes(cfg, spec)
  keys = jax.random.split(key, len(spec.targets))
  layers: Params = {}
  for name, k in zip(spec.targets, keys):
    a_shape, _ = shapes[name + "_lora_a"]
    b_shape, _ = shapes[name + "_lora_b"]
    bound = 1.0 / math.sqrt(math.prod(a_shape[:-1]))
    a = jax.random.uniform(k, (cfg.num_layers,) + a_shape, jnp.float32, -bound, bound)
    layers[name + "_lora_a"] = a
    layers[name + "_lora_b"] = jnp.zeros((cfg.num_layers,) + b_shape, jnp.float32)
  return {"layers": layers}


def split(params: Params) -> tuple[Params, Params]:
  """(adapters, base): the adapter leaves as {'layers': {...}} and the rest of the tree."""
  layers = params["layers"]
  adapters = {"layers": {n: x for n, x in layers.items() if is_adapter(n)}}
  base = dict(params, layers={n: x for n, x in layers.items() if not is_adapter(n)})
  return adapters, base


def join(adapters: Params, base: Params) -> Params:
  """The inverse of `split`."""
  return dict(base, layers={**base["layers"], **adapters["layers"]})


def base(params: Params) -> Params:
  """The params without their adapters: the policy LoRA started from (shares the arrays)."""
  return split(params)[1]


def merge(params: Params, scale: float) -> Params:
  """The base tree with each adapted weight replaced by W + scale * A @ B (float32 product,
  cast to W's dtype): the plain model an export writes."""
  adapters, merged = split(params)
  layers = dict(merged["layers"])
  for name in sorted({n[:-len("_lora_a")] for n in adapters["layers"] if n.endswith("_lora_a")}):
    a = adapters["layers"][name + "_lora_a"].astype(jnp.float32)
    b = adapters["layers"][name + "_lora_b"].astype(jnp.float32)
    w = layers[name]
    rank = a.shape[-1]
    a2 = a.reshape(a.shape[0], -1, rank)  # [L, in, rank]
    b2 = b.reshape(b.shape[0], rank, -1)  # [L, rank, out]
    delta = jnp.einsum("lir,lro->lio", a2, b2).reshape(w.shape)
    layers[name] = (w.astype(jnp.float32) + scale * delta).astype(w.dtype)
  return dict(merged, layers=layers)


def num_params(cfg: ModelConfig, spec: LoraSpec) -> int:
  """Trainable parameter count of the adapters."""
  return cfg.num_layers * sum(math.prod(s) for s, _ in _adapter_shapes(cfg, spec).values())
