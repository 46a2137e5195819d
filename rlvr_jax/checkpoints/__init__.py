"""Weights in and out: HF safetensors directories, GGUF files, the embedded policy, and
LoRA adapters in PEFT's layout."""

from rlvr_jax.checkpoints.gguf_io import config_from_gguf, load_gguf, load_gguf_tokenizer
from rlvr_jax.checkpoints.hf import config_from_hf, config_to_hf, export_hf, load_hf
from rlvr_jax.checkpoints.peft_io import export_peft
from rlvr_jax.checkpoints.policy import DEFAULT_POLICY, embedded_gguf_path, load_policy

__all__ = ["config_from_gguf", "load_gguf", "load_gguf_tokenizer", "config_from_hf",
           "config_to_hf", "export_hf", "export_peft", "load_hf", "DEFAULT_POLICY",
           "embedded_gguf_path", "load_policy"]
