"""GGUF files (llama.cpp): metadata -> ModelConfig, dequantized weights, tokenizer.

Weights are dequantized with `gguf`, one tensor at a time from the memory-mapped
file. llama.cpp's converter permutes the rows of q/k projections of `llama`
models (interleaved rotary pairs); `_unpermute` restores the HF layout that the
decoder's `rotate_half` RoPE expects. Qwen2 GGUFs keep the HF layout.
"""

import os
from collections.abc import Iterable
from typing import Any

import gguf
import jax
import numpy as np

from rlvr_jax.checkpoints import convert
from rlvr_jax.models import ModelConfig

ARCHITECTURES = ("llama", "qwen2")
_TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight",
              "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
}


def open_gguf(path: str) -> gguf.GGUFReader:
  """A reader over `path`; a ValueError names the file if it is not a valid GGUF."""
  if not os.path.isfile(path):
    raise ValueError(f"{path}: no such GGUF file")
  try:
    return gguf.GGUFReader(path)
  except Exception as e:  # gguf raises ValueError/struct errors/IndexError on bad bytes
    raise ValueError(f"{path}: corrupt or unreadable GGUF file ({type(e).__name__}: {e})") from e


def _field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
  field = reader.fields.get(key)
  if field is None:
    if default is None:
      raise ValueError(f"GGUF metadata lacks {key!r}")
    return default
  return field.contents()


def hf_name(gguf_name: str) -> str | None:
  """HF tensor name for a GGUF tensor name (None if it has no HF counterpart)."""
  if gguf_name in _TOP_NAMES:
    return _TOP_NAMES[gguf_name]
  parts = gguf_name.split(".", 2)
  if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_NAMES:
    return f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}"
  return None


def config_from_gguf(reader: gguf.GGUFReader, param_dtype: str = "float32",
                     dtype: str | None = None) -> ModelConfig:
  """ModelConfig from GGUF metadata (architectures llama and qwen2)."""
  arch = _field(reader, "general.architecture")
  if arch not in ARCHITECTURES:
    raise ValueError(f"GGUF: unknown architecture {arch!r}; supported: {ARCHITECTURES}")
  names = {t.name for t in reader.tensors}
  if "rope_freqs.weight" in names:
    raise ValueError("GGUF: rope_freqs.weight (Llama 3.1 rope scaling in GGUF) is not supported;"
                     " load the HF safetensors checkpoint instead")
  heads = int(_field(reader, f"{arch}.attention.head_count"))
  d = int(_field(reader, f"{arch}.embedding_length"))
  vocab = _field(reader, f"{arch}.vocab_size", -1)
  if vocab == -1:
    vocab = len(_field(reader, "tokenizer.ggml.tokens"))
  eos = reader.fields.get("tokenizer.ggml.eos_token_id")
  bos = reader.fields.get("tokenizer.ggml.bos_token_id")
  pad = reader.fields.get("tokenizer.ggml.padding_token_id")
  eos_ids = (int(eos.contents()),) if eos is not None else ()
  return ModelConfig(
      vocab_size=int(vocab), num_layers=int(_field(reader, f"{arch}.block_count")),
      d_model=d, num_heads=heads,
      num_kv_heads=int(_field(reader, f"{arch}.attention.head_count_kv", heads)),
      head_dim=int(_field(reader, f"{arch}.attention.key_length", d // heads)),
      mlp_dim=int(_field(reader, f"{arch}.feed_forward_length")),
      rope_base=float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
      rms_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
      qkv_bias="blk.0.attn_q.bias" in names, tie_embeddings="output.weight" not in names,
      param_dtype=param_dtype, dtype=dtype or param_dtype,
      bos_id=int(bos.contents()) if bos is not None else None, eos_ids=eos_ids,
      pad_id=int(pad.contents()) if pad is not None else (eos_ids[0] if eos_ids else 0))


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Inverse of llama.cpp's `permute`: per head, (Dh/2, 2) pairs back to (2, Dh/2)."""
  return (w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


class GGUFSource:
  """HF-named, dequantized float32 tensors of a GGUF file, read one at a time."""

  def __init__(self, reader: gguf.GGUFReader, cfg: ModelConfig, path: str):
    self._arch = _field(reader, "general.architecture")
    self._cfg, self._path = cfg, path
    self._tensors = {}
    for t in reader.tensors:
      name = hf_name(t.name)
      if name is None:
        raise ValueError(f"{path}: unexpected tensor {t.name!r} in GGUF")
      self._tensors[name] = t

  def names(self) -> Iterable[str]:
    return self._tensors.keys()

  def get(self, name: str) -> np.ndarray:
    t = self._tensors[name]
    try:
      w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    except Exception as e:
      raise ValueError(f"{self._path}: cannot dequantize {t.name} ({e})") from e
    if self._arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
      n = self._cfg.num_heads if "q_proj" in name else self._cfg.num_kv_heads
      w = _unpermute(w, n)
    return w


def load_gguf(path: str, mesh: jax.sharding.Mesh | None = None, rules: Any = None,
              param_dtype: str = "float32", dtype: str | None = None
              ) -> tuple[ModelConfig, dict[str, Any]]:
  """(cfg, params) from a GGUF file, dequantized, sharded on `mesh` if given."""
  reader = open_gguf(path)
  cfg = config_from_gguf(reader, param_dtype, dtype)
  params = convert.assemble(cfg, GGUFSource(reader, cfg, path), path, mesh, rules)
  return cfg, params


def load_gguf_tokenizer(path: str) -> Any:
  """The HF fast tokenizer (with chat template) that transformers builds from GGUF metadata.

  The metadata is read with `gguf` and handed to transformers' GGUF tokenizer
  converter: transformers' own GGUF reader imports torch, which rlvr_jax avoids.
  """
  # Imported here: transformers is slow to import and only tokenizers need it.
  from transformers.integrations.gguf.gguf_tokenizer_mapping import (
      GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)
  from transformers.tokenization_utils_tokenizers import TokenizersBackend

  reader = open_gguf(path)
  meta = {k: reader.fields[k].contents() for k in reader.fields if k.startswith("tokenizer.")}
  if "tokenizer.ggml.tokens" not in meta:
    raise ValueError(f"{path}: GGUF has no tokenizer vocabulary (tokenizer.ggml.tokens)")
  grouped = {group: {name: meta[f"tokenizer.{key}"] for key, name in renames.items()
                     if f"tokenizer.{key}" in meta}
             for group, renames in GGUF_TOKENIZER_MAPPING.items()}
  tok_dict, tok_config = grouped["tokenizer"], grouped["tokenizer_config"]
  if tok_dict.get("tokenizer_type") == "llama":
    tok_config.setdefault("add_bos_token", True)  # llama.cpp's default for sentencepiece
  tokens = tok_dict["tokens"]
  for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                    ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
    token_id = meta.get(f"tokenizer.ggml.{key}")
    tok_config[name] = tokens[token_id] if token_id is not None else None
  backend, extra = convert_gguf_tokenizer(_field(reader, "general.architecture"), tok_dict)
  return TokenizersBackend(tokenizer_object=backend, **tok_config, **extra)
