"""HF checkpoint directories: config.json <-> ModelConfig, safetensors in and out.

Reads a single `model.safetensors` or a sharded set listed in
`model.safetensors.index.json`, one tensor at a time (memory-mapped), and
writes directories that `transformers` loads (`AutoModelForCausalLM`).
"""

import json
import os
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
import safetensors
import safetensors.numpy

from rlvr_jax.checkpoints import convert
from rlvr_jax.models import ModelConfig, RopeScaling, lora

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_HF_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _rope(hf: dict[str, Any]) -> tuple[float, RopeScaling | None]:
  """(base, scaling) from either transformers-5 `rope_parameters` or v4 fields."""
  params = dict(hf.get("rope_parameters") or {})
  scaling = dict(hf.get("rope_scaling") or {})
  base = params.get("rope_theta", hf.get("rope_theta", 10000.0))
  kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
  if kind == "default":
    return float(base), None
  if kind != "llama3":
    raise ValueError(f"config.json: rope scaling type {kind!r} is not supported "
                     "(supported: default, llama3)")
  src = params if params.get("rope_type") == "llama3" else scaling
  return float(base), RopeScaling(
      factor=float(src["factor"]), low_freq_factor=float(src["low_freq_factor"]),
      high_freq_factor=float(src["high_freq_factor"]),
      original_max_position_embeddings=int(src["original_max_position_embeddings"]))


def config_from_hf(hf: dict[str, Any], param_dtype: str | None = None,
                   dtype: str | None = None) -> ModelConfig:
  """ModelConfig from a parsed HF `config.json` (Llama, Qwen2, SmolLM2)."""
  kind = hf.get("model_type")
  if kind not in ARCHITECTURES:
    raise ValueError(f"config.json: unknown architecture model_type={kind!r}; "
                     f"supported: {sorted(ARCHITECTURES)}")
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"config.json: hidden_act={hf['hidden_act']!r}; only silu is supported")
  if hf.get("mlp_bias"):
    raise ValueError("config.json: mlp_bias=true is not supported")
  if hf.get("use_sliding_window"):
    raise ValueError("config.json: use_sliding_window=true is not supported")
  heads = int(hf["num_attention_heads"])
  base, scaling = _rope(hf)
  eos = hf.get("eos_token_id")
  eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
  saved = hf.get("dtype") or hf.get("torch_dtype") or "float32"
  param_dtype = param_dtype or _HF_DTYPES.get(saved, "float32")
  pad = hf.get("pad_token_id")
  return ModelConfig(
      vocab_size=int(hf["vocab_size"]), num_layers=int(hf["num_hidden_layers"]),
      d_model=int(hf["hidden_size"]), num_heads=heads,
      num_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or hf["hidden_size"] // heads),
      mlp_dim=int(hf["intermediate_size"]), rope_base=base, rope_scaling=scaling,
      rms_eps=float(hf.get("rms_norm_eps", 1e-6)),
      # Qwen2 always has q/k/v biases; Llama has them when attention_bias is set.
      qkv_bias=kind == "qwen2" or bool(hf.get("attention_bias", False)),
      tie_embeddings=bool(hf.get("tie_word_embeddings", kind == "qwen2")),
      param_dtype=param_dtype, dtype=dtype or param_dtype,
      bos_id=hf.get("bos_token_id"), eos_ids=eos_ids,
      pad_id=int(pad) if pad is not None else (eos_ids[0] if eos_ids else 0))


def config_to_hf(cfg: ModelConfig, architecture: str | None = None) -> dict[str, Any]:
  """config.json contents for `cfg` (qwen2 when it has q/k/v biases, else llama)."""
  kind = architecture or ("qwen2" if cfg.qkv_bias else "llama")
  if kind not in ARCHITECTURES:
    raise ValueError(f"unknown architecture {kind!r}; supported: {sorted(ARCHITECTURES)}")
  if kind == "qwen2" and not cfg.qkv_bias:
    raise ValueError("qwen2 always has q/k/v biases; export this config as llama")
  rope = {"rope_theta": cfg.rope_base, "rope_type": "default"}
  if cfg.rope_scaling is not None:
    sc = cfg.rope_scaling
    rope.update(rope_type="llama3", factor=sc.factor, low_freq_factor=sc.low_freq_factor,
                high_freq_factor=sc.high_freq_factor,
                original_max_position_embeddings=sc.original_max_position_embeddings)
  hf = {
      "architectures": [ARCHITECTURES[kind]], "model_type": kind,
      "vocab_size": cfg.vocab_size, "num_hidden_layers": cfg.num_layers,
      "hidden_size": cfg.d_model, "num_attention_heads": cfg.num_heads,
      "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
      "intermediate_size": cfg.mlp_dim, "hidden_act": "silu", "rms_norm_eps": cfg.rms_eps,
      "tie_word_embeddings": cfg.tie_embeddings, "rope_theta": cfg.rope_base,
      "rope_parameters": rope, "dtype": cfg.param_dtype,
      "bos_token_id": cfg.bos_id, "pad_token_id": cfg.pad_id,
      "eos_token_id": list(cfg.eos_ids) if len(cfg.eos_ids) != 1 else cfg.eos_ids[0],
      "max_position_embeddings": 32768,
  }
  if kind == "llama":
    hf.update(attention_bias=cfg.qkv_bias, mlp_bias=False)
  return hf


class SafetensorsSource:
  """HF tensor names -> files; reads one tensor at a time, memory-mapped."""

  def __init__(self, directory: str):
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.exists(index):
      try:
        with open(index) as f:
          weight_map = json.load(f)["weight_map"]
      except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{index}: not a valid safetensors index ({e})") from e
      files = sorted(set(weight_map.values()))
    elif os.path.exists(single):
      files, weight_map = ["model.safetensors"], None
    else:
      raise ValueError(f"{directory}: no model.safetensors or model.safetensors.index.json")
    self._handles = {}
    self._where: dict[str, str] = {}
    for name in files:
      path = os.path.join(directory, name)
      try:
        handle = safetensors.safe_open(path, framework="numpy")
      except Exception as e:  # safetensors raises its own error types for bad headers
        raise ValueError(f"{path}: corrupt or unreadable safetensors file ({e})") from e
      self._handles[name] = handle
      for key in handle.keys():
        if weight_map is not None and weight_map.get(key) != name:
          raise ValueError(f"{path}: tensor {key} is not listed for this file in the index")
        self._where[key] = name
    if weight_map is not None:
      lost = sorted(set(weight_map) - set(self._where))
      if lost:
        raise ValueError(f"{index}: lists tensors absent from their files: {lost[:8]}")
    self.directory = directory

  def names(self) -> Iterable[str]:
    return self._where.keys()

  def get(self, name: str) -> np.ndarray:
    try:
      return self._handles[self._where[name]].get_tensor(name)
    except Exception as e:
      raise ValueError(f"{self.directory}/{self._where[name]}: cannot read tensor {name} "
                       f"({e})") from e


def load_hf(directory: str, mesh: jax.sharding.Mesh | None = None, rules: Any = None,
            param_dtype: str | None = None, dtype: str | None = None
            ) -> tuple[ModelConfig, dict[str, Any]]:
  """(cfg, params) from an HF directory; params sharded on `mesh` if given."""
  path = os.path.join(directory, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{directory}: no config.json")
  try:
    with open(path) as f:
      hf = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: invalid JSON ({e})") from e
  cfg = config_from_hf(hf, param_dtype, dtype)
  params = convert.assemble(cfg, SafetensorsSource(directory), directory, mesh, rules)
  return cfg, params


def _host(x: Any) -> np.ndarray:
  return np.asarray(jax.device_get(x))


def _host_device() -> jax.Device | None:
  """The CPU device where there is one (None: the default device)."""
  try:
    return jax.devices("cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS leaves the CPU backend out
    return None


def _merged_layer(layers: dict[str, Any], leaf: str, i: int, scale: float) -> np.ndarray:
  """Layer i of `leaf` with its LoRA adapters merged in (`lora.merge`), on the host CPU:
  one layer's weight at a time, never the whole merged model on an accelerator."""
  names = (leaf, leaf + "_lora_a", leaf + "_lora_b")
  one = {"layers": {n: _host(layers[n][i:i + 1]) for n in names}}
  with jax.default_device(_host_device()):
    return _host(lora.merge(one, scale)["layers"][leaf])[0]


def _hf_tensors(cfg: ModelConfig, params: dict[str, Any]) -> Iterable[tuple[str, np.ndarray]]:
  """(HF name, numpy array) pairs, one leaf on the host at a time; a LoRA-adapted leaf
  with its adapters merged in (W + cfg.lora_scale * A @ B), layer by layer."""
  top = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight"}
  if not cfg.tie_embeddings:
    top["lm_head"] = "lm_head.weight"
  for leaf, name in top.items():
    yield name, np.ascontiguousarray(convert.to_hf_layout(cfg, leaf, _host(params[leaf])))
  layers = params["layers"]
  for leaf, template in convert._hf_layer_names(cfg).items():
    adapted = leaf + "_lora_a" in layers
    stacked = None if adapted else _host(layers[leaf])
    for i in range(cfg.num_layers):
      w = _merged_layer(layers, leaf, i, cfg.lora_scale) if adapted else stacked[i]
      yield template.format(i=i), np.ascontiguousarray(convert.to_hf_layout(cfg, leaf, w))


def export_hf(params: dict[str, Any], cfg: ModelConfig, directory: str, tokenizer: Any = None,
              architecture: str | None = None, max_shard_bytes: int = 2 << 30) -> None:
  """Writes config.json + safetensors (sharded with an index past `max_shard_bytes`).

  `params` may be device or host arrays. Params with LoRA adapters (`models/lora.py`)
  are written merged, each adapted weight as `lora.merge` makes it (W + cfg.lora_scale
  * A @ B, the product in float32 on the host), so the directory is a plain HF model
  that transformers loads; `export_peft` writes the adapters alone.
  """
  layers = set(params["layers"])
  adapted = {n.rsplit("_lora_", 1)[0] for n in layers if lora.is_adapter(n)}
  unpaired = sorted(t for t in adapted if not {t + "_lora_a", t + "_lora_b"} <= layers)
  if unpaired:
    raise ValueError(f"export_hf: LoRA adapters of {unpaired} lack their A or B leaf")
  os.makedirs(directory, exist_ok=True)
  hf = config_to_hf(cfg, architecture)
  shards: list[dict[str, np.ndarray]] = [{}]
  size = 0
  weight_map = {}
  for name, w in _hf_tensors(cfg, params):
    if size and size + w.nbytes > max_shard_bytes:
      _write(directory, shards, weight_map)
      shards.append({})
      size = 0
    shards[-1][name] = w
    size += w.nbytes
  _write(directory, shards, weight_map, last=True)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(hf, f, indent=2)
  if tokenizer is not None:
    tokenizer.save_pretrained(directory)


def _write(directory: str, shards: list[dict[str, np.ndarray]], weight_map: dict[str, str],
           last: bool = False) -> None:
  """Flushes the newest shard; on the last one names files and writes the index."""
  n = len(shards)
  name = f"model-{n:05d}.safetensors"
  safetensors.numpy.save_file(shards[-1], os.path.join(directory, name),
                              metadata={"format": "pt"})
  weight_map.update({k: name for k in shards[-1]})
  shards[-1] = {k: None for k in shards[-1]}  # free the arrays, keep the names
  if not last:
    return
  if n == 1:
    os.replace(os.path.join(directory, name), os.path.join(directory, "model.safetensors"))
    return
  for i in range(1, n + 1):
    old = os.path.join(directory, f"model-{i:05d}.safetensors")
    new = f"model-{i:05d}-of-{n:05d}.safetensors"
    os.replace(old, os.path.join(directory, new))
    for k, v in list(weight_map.items()):
      if v == f"model-{i:05d}.safetensors":
        weight_map[k] = new
  with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
