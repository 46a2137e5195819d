"""LoRA export: the merged HF model and the PEFT adapter, both against transformers + peft.

torch and peft are imported only here (test-only dependencies, the `[torch]` extra).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from checkpoints_test import _max_err_real, _torch_logits  # noqa: E402 (tests/ is on the path)
from rlvr_jax import checkpoints, models  # noqa: E402
from rlvr_jax.checkpoints import peft_io  # noqa: E402
from rlvr_jax.models import lora  # noqa: E402

_key = lambda seed: jax.random.key(seed, impl="rbg")  # XLA:CPU compiles rbg fast
PARITY_ATOL = 1e-3  # checkpoints_test's bar: max |JAX - torch| over all real positions
PROMPTS = [[5, 9, 11, 3, 7, 40, 41, 8, 13], [17, 4, 90], [33, 21, 22, 60, 61, 62]]
# PROMPTS left-padded with 0 to 12 tokens: [B, P] ids and mask.
TOKENS_BxP = np.array([[0] * (12 - len(p)) + p for p in PROMPTS], np.int32)
MASK_BxP = np.array([[0] * (12 - len(p)) + [1] * len(p) for p in PROMPTS], np.int32)
ALL = lora.TARGETS


def _adapted(targets, qkv_bias=True, tie=False):
  """(cfg, spec, params): a tiny random model with random A and nonzero random B, float32."""
  cfg = models.ModelConfig(vocab_size=97, num_layers=2, d_model=32, num_heads=4, num_kv_heads=2,
                           head_dim=8, mlp_dim=48, rope_base=5000.0, qkv_bias=qkv_bias,
                           tie_embeddings=tie, bos_id=1, eos_ids=(2,), pad_id=0)
  spec = lora.LoraSpec(rank=4, alpha=8.0, targets=targets)  # scale 2: a wrong scale shows
  cfg = cfg.replace(lora_scale=spec.scale)
  base = models.init_params(cfg, _key(0))
  base = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(_key(1), x.shape), base)
  adapters = lora.init_adapters(cfg, spec, _key(2))
  keys = iter(jax.random.split(_key(3), len(adapters["layers"])))
  adapters = {"layers": {n: (0.1 * jax.random.normal(next(keys), x.shape)
                             if n.endswith("_lora_b") else x)
                         for n, x in adapters["layers"].items()}}
  return cfg, spec, lora.join(adapters, base)


def _jax_logits(params, cfg, tokens, mask):
  positions = jnp.cumsum(mask, axis=1) - 1
  h, _ = models.forward_hidden(params, cfg, jnp.asarray(tokens), positions, jnp.asarray(mask))
  return np.asarray(models.logits(params, cfg, h))


def _load(directory):
  return transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()


@pytest.mark.parametrize("targets", [ALL, ("q", "v", "down")])
def test_merged_export_loads_in_transformers_with_the_adapted_logits(tmp_path, targets):
  cfg, _, params = _adapted(targets)
  out = str(tmp_path / "merged")
  checkpoints.export_hf(params, cfg, out)
  tensors = safetensors.numpy.load_file(os.path.join(out, "model.safetensors"))
  assert not any("lora" in n for n in tensors)
  tokens, mask = TOKENS_BxP, MASK_BxP
  ours = _jax_logits(params, cfg, tokens, mask)
  # The adapters matter: the base alone is far from the adapted model.
  assert _max_err_real(ours, _jax_logits(lora.base(params), cfg, tokens, mask), mask) > 0.1
  err = _max_err_real(ours, _torch_logits(_load(out), tokens, mask), mask)
  print(f"merged LoRA export max abs logit diff {err:.2e}")
  assert err <= PARITY_ATOL


@pytest.mark.parametrize("targets,qkv_bias,tie",
                         [(ALL, True, False), (("q", "o", "up"), False, True)])
def test_peft_export_loads_on_the_base_with_the_adapted_logits(tmp_path, targets, qkv_bias, tie):
  cfg, spec, params = _adapted(targets, qkv_bias, tie)
  base_dir, adapter_dir, merged_dir = (str(tmp_path / n) for n in ("base", "adapter", "merged"))
  checkpoints.export_hf(lora.base(params), cfg, base_dir)
  checkpoints.export_peft(params, cfg, spec, adapter_dir, base_model="tiny-base")
  checkpoints.export_hf(params, cfg, merged_dir)

  with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
    config = json.load(f)
  hf_names = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj",
              "up": "up_proj", "down": "down_proj"}
  assert config["target_modules"] == [hf_names[t] for t in targets]
  assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 8)
  assert config["base_model_name_or_path"] == "tiny-base"

  model = peft.PeftModel.from_pretrained(_load(base_dir), adapter_dir).eval()
  loaded = model.peft_config["default"]
  assert loaded.r == 4 and loaded.lora_alpha == 8 and not loaded.use_rslora
  tokens, mask = TOKENS_BxP, MASK_BxP
  err = _max_err_real(_jax_logits(params, cfg, tokens, mask), _torch_logits(model, tokens, mask),
                      mask)
  print(f"PEFT LoRA export max abs logit diff {err:.2e}")
  assert err <= PARITY_ATOL

  # Independently of the logits: PEFT's own merge of our A and B is our merged export,
  # tensor by tensor (a transposed or mis-flattened B would not be).
  merged = safetensors.numpy.load_file(os.path.join(merged_dir, "model.safetensors"))
  state = {k: v.numpy() for k, v in model.merge_and_unload().state_dict().items()}
  for t in targets:
    for i in range(cfg.num_layers):
      name = peft_io.hf_module(cfg, t).format(i=i) + ".weight"
      np.testing.assert_allclose(state[name], merged[name], rtol=0, atol=1e-6, err_msg=name)


def test_peft_tensor_names_and_shapes_are_peft_s():
  cfg, spec, params = _adapted(ALL)
  tensors = peft_io.peft_tensors(params, cfg, spec)
  d, r, f, q_out, kv_out = 32, 4, 48, 4 * 8, 2 * 8
  io = {"self_attn.q_proj": (d, q_out), "self_attn.k_proj": (d, kv_out),
        "self_attn.v_proj": (d, kv_out), "self_attn.o_proj": (q_out, d),
        "mlp.gate_proj": (d, f), "mlp.up_proj": (d, f), "mlp.down_proj": (f, d)}
  expected = {}
  for i in range(cfg.num_layers):
    for module, (n_in, n_out) in io.items():
      prefix = f"base_model.model.model.layers.{i}.{module}"
      expected[prefix + ".lora_A.weight"] = (r, n_in)
      expected[prefix + ".lora_B.weight"] = (n_out, r)
  assert {n: t.shape for n, t in tensors.items()} == expected
  # Host arrays export the same tensors as device arrays.
  on_host = jax.tree.map(np.asarray, params)
  for n, t in peft_io.peft_tensors(on_host, cfg, spec).items():
    np.testing.assert_array_equal(t, tensors[n])


def test_peft_export_refuses_adapters_that_do_not_match(tmp_path):
  cfg, spec, params = _adapted(("q", "v"))
  with pytest.raises(ValueError, match=r"missing: \['o_lora_a', 'o_lora_b'\]"):
    checkpoints.export_peft(params, cfg, lora.LoraSpec(4, 8.0, ("q", "v", "o")), str(tmp_path))
  with pytest.raises(ValueError, match=r"unexpected: \['v_lora_a', 'v_lora_b'\]"):
    checkpoints.export_peft(params, cfg, lora.LoraSpec(4, 8.0, ("q",)), str(tmp_path))
  with pytest.raises(ValueError, match="not rank-8 adapters"):
    checkpoints.export_peft(params, cfg.replace(lora_scale=1.0), lora.LoraSpec(8, 8.0, ("q", "v")),
                            str(tmp_path))
  with pytest.raises(ValueError, match="cfg.lora_scale=1.0"):
    checkpoints.export_peft(params, cfg.replace(lora_scale=1.0), spec, str(tmp_path))
  with pytest.raises(ValueError, match="no LoRA adapters"):
    checkpoints.export_peft(lora.base(params), cfg, spec, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_merged_export_refuses_an_adapter_without_its_other_half(tmp_path):
  cfg, _, params = _adapted(("q",))
  del params["layers"]["q_lora_b"]
  with pytest.raises(ValueError, match=r"adapters of \['q'\] lack their A or B"):
    checkpoints.export_hf(params, cfg, str(tmp_path / "out"))
