"""Decoder-only transformer (Llama / Qwen2 / SmolLM2) as pure JAX functions."""

from rlvr_jax.models import kv_cache, lora
from rlvr_jax.models.config import ModelConfig, RopeScaling, preset, preset_names
from rlvr_jax.models.decoder import (forward_hidden, init_params, logits, param_logical_axes,
                                     param_shapes, token_logprobs)

__all__ = ["ModelConfig", "RopeScaling", "preset", "preset_names", "forward_hidden",
           "init_params", "kv_cache", "logits", "lora", "param_logical_axes", "param_shapes",
           "token_logprobs"]
