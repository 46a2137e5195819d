"""LoRA adapters out in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors`.

`peft.PeftModel.from_pretrained(base, directory)` loads them on top of the base model
(the params without their adapters, exported with `export_hf(lora.base(params), ...)`).

PEFT names a layer's adapter by its module, without the adapter name ("default"):
`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` [r, in_features] and
`...lora_B.weight` [out_features, r], so that the update is W + (alpha / r) * B @ A in
HF's [out, in] layout. Our A [in dims..., r] and B [r, out dims...] flatten their
in / out dims in order (heads-major: [H, Dh] -> H * Dh), the order `convert.to_hf_layout`
gives a projection's rows (q, k, v) and columns (o). (r is the adapters' rank, L the
layers.)
"""

import json
import os
from typing import Any

import jax
import numpy as np
import safetensors.numpy

from rlvr_jax.checkpoints import convert
from rlvr_jax.models import ModelConfig, lora

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."  # PeftModel wraps the CausalLM: base_model (LoraModel).model


def hf_module(cfg: ModelConfig, target: str) -> str:
  """A target's HF module path with {i}, e.g. 'model.layers.{i}.self_attn.q_proj'."""
  return convert._hf_layer_names(cfg)[target].removesuffix(".weight")


def hf_module_name(cfg: ModelConfig, target: str) -> str:
  """A target's HF module name, PEFT's `target_modules` entry: 'q' -> 'q_proj'."""
  return hf_module(cfg, target).rsplit(".", 1)[-1]


def adapter_config(cfg: ModelConfig, spec: lora.LoraSpec, base_model: str = "") -> dict[str, Any]:
  """`adapter_config.json` contents: plain LoRA (no rsLoRA, DoRA, dropout or bias)."""
  alpha = int(spec.alpha) if float(spec.alpha).is_integer() else float(spec.alpha)
  return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": spec.rank, "lora_alpha": alpha,
          "target_modules": [hf_module_name(cfg, t) for t in spec.targets],
          "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
          "use_dora": False, "inference_mode": True,
          "base_model_name_or_path": base_model or None}


def _check(params: dict[str, Any], cfg: ModelConfig, spec: lora.LoraSpec) -> dict[str, Any]:
  """The adapter leaves, after checking they are exactly `spec`'s and `cfg` scales them so."""
  adapters = lora.split(params)[0]["layers"]
  if not adapters:
    raise ValueError("export_peft: the params have no LoRA adapters (models/lora.py)")
  expected = {t + s for t in spec.targets for s in ("_lora_a", "_lora_b")}
  missing, extra = sorted(expected - set(adapters)), sorted(set(adapters) - expected)
  if missing or extra:
    raise ValueError(f"export_peft: the params' adapters do not match the spec (targets "
                     f"{list(spec.targets)})" + (f"; missing: {missing}" if missing else "")
                     + (f"; unexpected: {extra}" if extra else ""))
  for t in spec.targets:
    a, b = adapters[t + "_lora_a"], adapters[t + "_lora_b"]
    if a.shape[0] != cfg.num_layers or a.shape[-1] != spec.rank or b.shape[1] != spec.rank:
      raise ValueError(f"export_peft: {t}_lora_a {tuple(a.shape)} / {t}_lora_b "
                       f"{tuple(b.shape)} are not rank-{spec.rank} adapters of "
                       f"{cfg.num_layers} layers")
  if not np.isclose(cfg.lora_scale, spec.scale, rtol=1e-6, atol=0.0):
    raise ValueError(f"export_peft: cfg.lora_scale={cfg.lora_scale} but the spec's "
                     f"alpha / rank = {spec.alpha} / {spec.rank} = {spec.scale}; PEFT "
                     "scales by lora_alpha / r")
  return adapters


def to_peft_layout(a: np.ndarray, b: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
  """Layer i's (lora_A.weight [r, in], lora_B.weight [out, r]) from our stacked A, B.

  A is [L, input dims..., r] and B [L, r, output dims...]; each flattens its
  projection's dims in order, as `convert.to_hf_layout` flattens the weight.
  """
  r = a.shape[-1]
  a_hf = a[i].reshape(-1, r).T
  b_hf = b[i].reshape(r, -1).T
  return np.ascontiguousarray(a_hf), np.ascontiguousarray(b_hf)


def peft_tensors(params: dict[str, Any], cfg: ModelConfig, spec: lora.LoraSpec
                 ) -> dict[str, np.ndarray]:
  """PEFT tensor name -> numpy array, for every adapted projection of every layer."""
  adapters = _check(params, cfg, spec)
  out = {}
  for t in spec.targets:
    a = np.asarray(jax.device_get(adapters[t + "_lora_a"]))
    b = np.asarray(jax.device_get(adapters[t + "_lora_b"]))
    module = _PREFIX + hf_module(cfg, t)
    for i in range(cfg.num_layers):
      w_a, w_b = to_peft_layout(a, b, i)
      out[module.format(i=i) + ".lora_A.weight"] = w_a
      out[module.format(i=i) + ".lora_B.weight"] = w_b
  return out


def export_peft(params: dict[str, Any], cfg: ModelConfig, spec: lora.LoraSpec, directory: str,
                base_model: str = "") -> None:
  """Writes the adapters of `params` alone, as PEFT saves a LoRA adapter.

  `params` (device or host arrays) hold the adapters `spec` describes; `cfg.lora_scale`
  must be its alpha / rank. `base_model` goes to `base_model_name_or_path` (the base
  the adapters apply to; the adapter is loaded on top of a base model given explicitly,
  so it may stay empty).
  """
  tensors = peft_tensors(params, cfg, spec)
  os.makedirs(directory, exist_ok=True)
  safetensors.numpy.save_file(tensors, os.path.join(directory, ADAPTER_WEIGHTS),
                              metadata={"format": "pt"})
  with open(os.path.join(directory, ADAPTER_CONFIG), "w") as f:
    json.dump(adapter_config(cfg, spec, base_model), f, indent=2)
