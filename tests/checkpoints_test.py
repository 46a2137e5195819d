"""Weights: parity with transformers (PyTorch fp32), export round trip, bad input.

torch is imported only here (test-only dependency); rlvr_jax never imports it.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rlvr_jax import checkpoints, models, sampling  # noqa: E402
from rlvr_jax.checkpoints import gguf_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA:CPU compiles the rbg generator much faster than threefry; the model
# takes any key.
_key = lambda seed: jax.random.key(seed, impl="rbg")
PARITY_ATOL = 1e-3  # the bar: max |JAX - torch| over all real positions


def _jax_logits(params, cfg, tokens, mask):
  positions = jnp.cumsum(mask, axis=1) - 1
  h, _ = models.forward_hidden(params, cfg, jnp.asarray(tokens), positions, jnp.asarray(mask))
  return np.asarray(models.logits(params, cfg, h))


def _torch_logits(model, tokens, mask):
  # HF positions of a left-padded row, as in `generate`: cumsum(mask) - 1.
  positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
  with torch.no_grad():
    out = model(input_ids=torch.tensor(tokens, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                position_ids=torch.tensor(positions, dtype=torch.long))
  return out.logits.float().numpy()


def _max_err_real(a, b, mask):
  return float(np.abs(a - b)[mask.astype(bool)].max())


def _random_hf_model(kind, tmp_path, **overrides):
  """A tiny transformers model with every weight perturbed (biases, norms too)."""
  common = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
  common.update(overrides)
  if kind == "qwen2":
    config = transformers.Qwen2Config(tie_word_embeddings=True, rope_theta=10000.0, **common)
    model = transformers.Qwen2ForCausalLM(config)
  else:
    config = transformers.LlamaConfig(tie_word_embeddings=False, **common)
    model = transformers.LlamaForCausalLM(config)
  torch.manual_seed(0)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  model.eval()
  path = str(tmp_path / kind)
  model.save_pretrained(path)
  return model, path


PROMPTS_TINY = [[5, 9, 11, 3, 7, 40, 41, 8, 13], [17, 4, 90], [33, 21, 22, 60, 61, 62]]


def test_tiny_qwen2_parity_with_transformers(tmp_path):
  model, path = _random_hf_model("qwen2", tmp_path)
  cfg, params, _ = checkpoints.load_policy(path, tokenizer=False)
  assert cfg.qkv_bias and cfg.tie_embeddings and "lm_head" not in params
  tokens, mask = sampling.text.left_pad(PROMPTS_TINY, 0)
  err = _max_err_real(_jax_logits(params, cfg, tokens, mask), _torch_logits(model, tokens, mask),
                      mask)
  print(f"tiny qwen2 max abs logit diff {err:.2e}")
  assert err <= PARITY_ATOL


def test_tiny_llama_parity_with_transformers_with_llama3_rope(tmp_path):
  # Untied head; Llama-3 rope scaling with a short original context so that
  # all three frequency bands occur at head_dim 8.
  rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
  model, path = _random_hf_model("llama", tmp_path, rope_parameters=rope)
  cfg, params, _ = checkpoints.load_policy(path, tokenizer=False)
  assert not cfg.tie_embeddings and not cfg.qkv_bias and "lm_head" in params
  assert cfg.rope_scaling == models.RopeScaling(4.0, 1.0, 4.0, 64)
  tokens, mask = sampling.text.left_pad(PROMPTS_TINY, 0)
  err = _max_err_real(_jax_logits(params, cfg, tokens, mask), _torch_logits(model, tokens, mask),
                      mask)
  print(f"tiny llama max abs logit diff {err:.2e}")
  assert err <= PARITY_ATOL


@pytest.mark.parametrize("shard_bytes", [2 << 30, 20_000])
def test_export_round_trip_through_transformers(tmp_path, shard_bytes):
  # Random JAX params -> HF directory -> transformers -> same logits; then
  # back into JAX -> identical params. 20 kB shards force a sharded index.
  cfg = models.ModelConfig(vocab_size=97, num_layers=2, d_model=32, num_heads=4, num_kv_heads=2,
                           head_dim=8, mlp_dim=48, rope_base=5000.0, qkv_bias=True,
                           tie_embeddings=False, bos_id=1, eos_ids=(2,), pad_id=0)
  params = models.init_params(cfg, _key(0))
  params = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(_key(1), x.shape), params)
  out = str(tmp_path / "export")
  checkpoints.export_hf(params, cfg, out, max_shard_bytes=shard_bytes)
  sharded = os.path.exists(os.path.join(out, "model.safetensors.index.json"))
  assert sharded == (shard_bytes < 1 << 20)
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  tokens, mask = sampling.text.left_pad(PROMPTS_TINY, 0)
  err = _max_err_real(_jax_logits(params, cfg, tokens, mask), _torch_logits(model, tokens, mask),
                      mask)
  assert err <= PARITY_ATOL
  cfg2, params2, _ = checkpoints.load_policy(out, tokenizer=False)
  assert cfg2 == cfg
  jax.tree.map(np.testing.assert_array_equal, params2, params)


def test_smollm2_gguf_parity_memory_and_tokenizer(tmp_path):
  path = checkpoints.embedded_gguf_path()
  tok = gguf_io.load_gguf_tokenizer(path)
  texts = ["What is 12 * 7?", "Hello!", "Solve the maze:\n#.#\n..S"]
  prompts = [tok(t).input_ids for t in texts]
  tokens, mask = sampling.text.left_pad(prompts, 2)
  assert len(set(len(p) for p in prompts)) == 3

  # JAX side in a fresh process (run while torch loads here): its peak RSS is
  # the loading cost, and it must never import torch.
  np.savez(tmp_path / "in.npz", tokens=tokens, mask=mask)
  cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "load_memory.py"),
         "--tokens", str(tmp_path / "in.npz"), "--out", str(tmp_path / "out.npz")]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=ROOT)

  # The tokenizer we build from the GGUF metadata equals transformers' own.
  ref_tok = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                       gguf_file=os.path.basename(path))
  for text in texts:
    assert tok(text).input_ids == ref_tok(text).input_ids
  chat = [{"role": "user", "content": texts[0]}]
  assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
      ref_tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
  model = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
  ref = _torch_logits(model, tokens, mask)

  stdout, stderr = proc.communicate(timeout=600)
  assert proc.returncode == 0, stderr[-3000:]
  report = json.loads(stdout.strip().splitlines()[-1])
  print("SmolLM2 load:", report)
  assert not report["torch_imported"]
  assert report["num_params"] == 134_515_008
  assert report["peak_rss_after_load_mib"] < 3 * report["fp32_model_mib"]
  ours = np.load(tmp_path / "out.npz")["logits"]
  err = _max_err_real(ours, ref, mask)
  print(f"SmolLM2 GGUF max abs logit diff {err:.2e} (logit scale {np.abs(ref).max():.1f})")
  assert err <= PARITY_ATOL


# --- bad input -------------------------------------------------------------


def _tiny_export(tmp_path, **kw):
  cfg = models.ModelConfig(vocab_size=31, num_layers=2, d_model=16, num_heads=2, num_kv_heads=1,
                           head_dim=8, mlp_dim=24, **kw)
  out = str(tmp_path / "ckpt")
  checkpoints.export_hf(models.init_params(cfg, _key(0)), cfg, out)
  return cfg, out


def _rewrite(out, fn):
  path = os.path.join(out, "model.safetensors")
  tensors = safetensors.numpy.load_file(path)
  fn(tensors)
  safetensors.numpy.save_file(tensors, path)


def test_missing_tensor_is_named(tmp_path):
  _, out = _tiny_export(tmp_path)
  _rewrite(out, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(ValueError, match=r"missing: model\.layers\.1\.mlp\.up_proj\.weight"):
    checkpoints.load_hf(out)


def test_extra_tensor_is_named(tmp_path):
  _, out = _tiny_export(tmp_path)
  _rewrite(out, lambda t: t.update({"model.layers.5.foo": np.zeros(3, np.float32)}))
  with pytest.raises(ValueError, match=r"unexpected: model\.layers\.5\.foo"):
    checkpoints.load_hf(out)


def test_shape_mismatch_is_named(tmp_path):
  _, out = _tiny_export(tmp_path)
  _rewrite(out, lambda t: t.update({"model.norm.weight": np.ones(17, np.float32)}))
  with pytest.raises(ValueError, match=r"model\.norm\.weight has shape \(17,\).*\(16,\)"):
    checkpoints.load_hf(out)


def test_nan_weights_rejected(tmp_path):
  _, out = _tiny_export(tmp_path)
  _rewrite(out, lambda t: t["model.norm.weight"].__setitem__(0, np.nan))
  with pytest.raises(ValueError, match="NaN"):
    checkpoints.load_hf(out)


def test_unknown_architecture(tmp_path):
  _, out = _tiny_export(tmp_path)
  with open(os.path.join(out, "config.json")) as f:
    hf = json.load(f)
  hf["model_type"] = "gpt2"
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(hf, f)
  with pytest.raises(ValueError, match="unknown architecture model_type='gpt2'"):
    checkpoints.load_hf(out)


def test_corrupt_files(tmp_path):
  _, out = _tiny_export(tmp_path)
  with open(os.path.join(out, "model.safetensors"), "r+b") as f:
    f.write(b"\xff" * 64)  # clobber the header length and JSON
  with pytest.raises(ValueError, match="corrupt"):
    checkpoints.load_hf(out)
  bad_gguf = tmp_path / "bad.gguf"
  with open(checkpoints.embedded_gguf_path(), "rb") as f:
    bad_gguf.write_bytes(f.read(4096))  # truncated inside the metadata
  with pytest.raises(ValueError, match="corrupt"):
    checkpoints.load_gguf(str(bad_gguf))
  with pytest.raises(ValueError, match="no config.json"):
    checkpoints.load_hf(str(tmp_path))
  with pytest.raises(ValueError, match="neither an embedded policy"):
    checkpoints.load_policy("smollm3_huge")


def test_gguf_unpermute_inverts_llama_cpp_permute():
  # llama.cpp's convert script: w.reshape(n, 2, Dh/2, D).swapaxes(1, 2).reshape(w.shape).
  n, dh, d = 3, 8, 5
  w = np.arange(n * dh * d, dtype=np.float32).reshape(n * dh, d)
  permuted = w.reshape(n, 2, dh // 2, d).swapaxes(1, 2).reshape(w.shape)
  np.testing.assert_array_equal(gguf_io._unpermute(permuted, n), w)
