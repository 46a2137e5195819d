"""benchmarks/tpu_fit.py compiles the train step for a TPU slice on this CPU host.

libtpu (the `[tpu]` extra, installed by the test command) holds the TPU
compiler; no TPU is needed. A subprocess keeps this process on the CPU backend.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "tpu_fit.py")


def _run_all(*args: str) -> list[dict]:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return [json.loads(line) for line in proc.stdout.strip().splitlines()]


def _run(*args: str) -> dict:
  return _run_all(*args)[-1]


def test_tiny_policy_train_step_compiles_for_a_v5e_slice_and_fits():
  out = _run("--preset=tiny", "--topology=v5e:2x2", "--mesh=data=2,fsdp=2,tensor=1",
             "--rows=16", "--micro=2", "--prompt_len=32", "--resp_len=32", "--remat=none")
  assert out["chips"] == 4 and out["device_kind"].startswith("TPU v5")
  assert out["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
  assert out["hbm_gib"] == 16.0 and out["fits"]
  # Donated state: the updated params and Adam moments alias the inputs. With
  # fp32 master weights that state is 3 x 4 bytes a parameter, split over fsdp=2
  # (the norm scales and biases that fsdp cannot split add a little).
  b = out["bytes"]
  state = 12 * out["num_params"]
  assert b["aliased"] >= state / 2
  assert state / 2 <= b["arguments"] <= state * 0.6


def test_lora_train_step_keeps_optimizer_state_for_the_adapters_alone():
  out = _run("--preset=tiny", "--topology=v5e:2x2", "--mesh=data=2,fsdp=2,tensor=1",
             "--rows=16", "--micro=2", "--prompt_len=32", "--resp_len=32", "--remat=none",
             "--lora_rank=4", "--lora_alpha=8", "--lora_targets=q,v,down")
  assert out["lora"]["targets"] == ["q", "v", "down"] and out["fits"]
  s, n = out["state_bytes"], out["lora"]["num_params"]
  # float32 adapters, some of their dims split over fsdp=2; Adam's two moments (and its
  # step counts) for them alone; the frozen base is its fp32 weights, no moments.
  assert 4 * n / 2 <= s["adapters"] <= 4 * n
  assert 2 * s["adapters"] <= s["opt_state"] <= 2 * s["adapters"] + 64
  assert 4 * out["num_params"] / 2 <= s["params"] <= 4 * out["num_params"] * 0.6
  assert s["total"] == s["params"] + s["adapters"] + s["opt_state"] + s["step"]
  assert out["bytes"]["aliased"] >= s["total"] - s["step"]


def test_sampler_programs_compile_on_the_same_slice_with_the_cache_donated():
  outs = _run_all("--preset=tiny", "--topology=v5e:2x2", "--mesh=data=2,fsdp=2,tensor=1",
                  "--rows=16", "--micro=2", "--prompt_len=32", "--resp_len=32", "--remat=none",
                  "--programs=train_step,prefill,decode", "--sample_prompts=8", "--num_samples=2")
  assert [o["program"] for o in outs] == ["train_step", "prefill", "decode"]
  assert all(o["fits"] for o in outs)
  prefill, decode = outs[1], outs[2]
  assert decode["cache_slots"] == 64
  # The KV cache by hand: 4 layers x (keys, values) x 16 rows x 2 KV heads x 64 slots x 32
  # wide, bfloat16, rows split over the 4 chips; plus the [16, 64] bool slot mask.
  cache = 4 * 2 * 16 * 2 * 64 * 32 * 2 // 4 + 16 * 64 // 4
  assert prefill["bytes"]["outputs"] >= cache
  assert decode["bytes"]["arguments"] >= cache
  assert decode["bytes"]["aliased"] >= cache  # the loop updates the donated cache in place


def test_train_step_with_splash_attention_compiles_for_tpu():
  # The Pallas splash kernel (Mosaic) inside the train step's shard_map, forward and backward.
  plain = _run("--preset=tiny", "--topology=v5e:2x2", "--mesh=data=2,fsdp=2,tensor=1",
               "--rows=16", "--micro=2", "--prompt_len=64", "--resp_len=64", "--remat=full")
  out = _run("--preset=tiny", "--topology=v5e:2x2", "--mesh=data=2,fsdp=2,tensor=1",
             "--rows=16", "--micro=2", "--prompt_len=64", "--resp_len=64", "--remat=full",
             "--attention=splash")
  assert out["attention"] == "splash" and out["fits"]
  assert out["bytes"]["arguments"] == plain["bytes"]["arguments"]  # the same state and batch


def test_bad_arguments_are_refused():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, SCRIPT, "--preset=tiny", "--topology=v5e:2x2",
                         "--rows=10", "--micro=3"], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=600)
  assert proc.returncode != 0 and "not divisible by --micro=3" in proc.stderr


def test_multi_host_slice_compiles_with_each_host_holding_its_own_rows():
  # v5p:2x2x2 is 8 chips on 2 hosts of 4: the layout a 2-process run feeds and reads.
  out = _run("--preset=tiny", "--topology=v5p:2x2x2", "--mesh=data=-1,fsdp=1,tensor=1",
             "--rows=16", "--micro=2", "--prompt_len=32", "--resp_len=32", "--remat=none")
  assert out["chips"] == 8 and out["hosts"] == 2
  assert out["rows_process_major"] and out["fits"]


def test_host_row_check_catches_interleaved_hosts():
  # jax.make_mesh orders a TPU slice's chips by its physical topology, host 0, 1, 0, 1, ...
  # along the data axis; sharding.make_mesh regroups them host by host.
  code = (
      "import sys; sys.path.insert(0, 'benchmarks'); import tpu_fit, json, jax\n"
      "from rlvr_jax import sharding\n"
      "d = tpu_fit.topology_devices('v5p:2x2x2')\n"
      "physical = jax.make_mesh((8, 1, 1), sharding.MESH_AXES, devices=d)\n"
      "ours = sharding.make_mesh({'data': -1, 'fsdp': 1, 'tensor': 1}, d)\n"
      "for mesh in (ours, physical):\n"
      "  print(json.dumps(tpu_fit.host_row_blocks(mesh, 16)))\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", TPU_SKIP_MDS_QUERY="1",
             ALLOW_MULTIPLE_LIBTPU_LOAD="1")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  ours, physical = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
  assert ours == {"hosts": 2, "rows_process_major": True}
  assert physical == {"hosts": 2, "rows_process_major": False}
