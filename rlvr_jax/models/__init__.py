"""Decoder-only transformer (Llama / Qwen2 / SmolLM2) as pure JAX functions."""

from rlvr_jax.models.config import ModelConfig, RopeScaling, preset, preset_names
from rlvr_jax.models.decoder import (CACHE_AXES, forward_hidden, init_cache, init_params,
                                     logits, param_logical_axes, param_shapes, token_logprobs)

__all__ = ["ModelConfig", "RopeScaling", "preset", "preset_names", "CACHE_AXES",
           "forward_hidden", "init_cache", "init_params", "logits", "param_logical_axes",
           "param_shapes", "token_logprobs"]
