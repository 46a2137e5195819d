"""Sampler throughput: rlvr_jax.sampling vs transformers `generate`, same run.

SmolLM2-135M-Instruct (the embedded GGUF, dequantized to float32 by
rlvr_jax; transformers loads rlvr_jax's HF export of those same params),
temperature 1, top_p 0.95, no top-k, 128 new tokens with no early EOS
(rlvr_jax: no EOS ids, so rows never stop; transformers: min_new_tokens = 128),
chat-templated prompts of different lengths, left-padded. Both use the same
number of CPU threads. Tokens/s = batch * new tokens / wall time of the whole
call (prefill included), median over repeats after one warm-up call (which
compiles the JAX programs). The ceiling is the machine's fp32 matmul rate over
2 * (matmul parameters, the tied head included) FLOPs a token. Threads: the
process is pinned to --threads CPUs before jax starts; torch.set_num_threads
gets the same count.

  python benchmarks/sampler_bench.py --batches=1,16,64 --repeats=3
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_QUESTIONS = ["What is 2+2?", "Name three colors of the rainbow and explain where rainbows come from.",
              "Write a haiku about the sea.", "Why is the sky blue?",
              "Give me a short recipe for pancakes with milk, eggs and flour.",
              "What is the capital of France?", "Explain recursion to a child in two sentences.",
              "List the planets of the solar system in order from the sun."]


def _prompts(batch: int) -> list[str]:
  return [f"{_QUESTIONS[i % len(_QUESTIONS)]} (#{i})" for i in range(batch)]


def load_hf(params, cfg):
  """transformers' model on rlvr_jax's HF export of the same params, float32."""
  import tempfile

  import torch
  import transformers
  from rlvr_jax import checkpoints

  with tempfile.TemporaryDirectory() as directory:
    checkpoints.export_hf(params, cfg, directory)
    return transformers.AutoModelForCausalLM.from_pretrained(directory,
                                                             dtype=torch.float32).eval()


def run_hf(hf, tokens_BxP, mask_BxP, pad_id: int, new_tokens: int, seed: int) -> None:
  """transformers generate: temperature 1, top_p 0.95, exactly `new_tokens` new tokens."""
  import torch

  torch.manual_seed(seed)
  with torch.no_grad():
    out = hf.generate(torch.tensor(tokens_BxP, dtype=torch.long),
                      attention_mask=torch.tensor(mask_BxP, dtype=torch.long),
                      do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                      max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad_id)
  assert out.shape[1] - tokens_BxP.shape[1] == new_tokens


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--batches", default="1,16,64")
  ap.add_argument("--new_tokens", type=int, default=128)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  ap.add_argument("--gflops", type=float, default=65.0, help="measured fp32 matmul GFLOP/s")
  ap.add_argument("--skip_hf", action="store_true")
  args = ap.parse_args()

  # Both libraries get the same cores: the process is pinned to `threads` CPUs
  # before jax starts (XLA sizes its thread pool from the affinity mask), and
  # torch gets the same count.
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
  os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true"
  import jax
  import torch
  from rlvr_jax import checkpoints, sampling

  torch.set_num_threads(args.threads)
  cfg, params, tok = checkpoints.load_policy("smollm2_135m_instruct")
  hf = None if args.skip_hf else load_hf(params, cfg)
  # FLOPs a generated token: 2 per weight; the tied embedding counts once, as
  # the head (the lookup is free); norms are negligible; attention over the
  # cache is left out, so the ceiling is slightly generous.
  flops_per_token = 2 * cfg.num_params()
  ceiling = args.gflops * 1e9 / flops_per_token
  t_new = args.new_tokens
  results = []
  for batch in [int(b) for b in args.batches.split(",")]:
    tokens_BxP, mask_BxP = sampling.text.encode_prompts(tok, _prompts(batch), chat=True,
                                                        pad_id=cfg.pad_id)

    def run_jax(seed):
      out = sampling.sample(params, cfg, tokens_BxP, mask_BxP, jax.random.PRNGKey(seed),
                            num_samples=1, max_new_tokens=t_new, temperature=1.0, top_p=0.95,
                            eos_ids=())
      jax.block_until_ready(out)
      assert int(out.lengths_R.min()) == t_new

    def run_transformers(seed):
      run_hf(hf, tokens_BxP, mask_BxP, cfg.pad_id, t_new, seed)

    row = {"batch": batch, "prompt_len": int(tokens_BxP.shape[1])}
    for name, fn in (("rlvr_jax", run_jax), ("transformers", run_transformers)):
      if name == "transformers" and hf is None:
        continue
      t0 = time.perf_counter()
      fn(0)  # warm-up (JAX compiles here)
      row[f"{name}_warmup_s"] = round(time.perf_counter() - t0, 1)
      times = []
      for rep in range(args.repeats):
        t0 = time.perf_counter()
        fn(rep + 1)
        times.append(time.perf_counter() - t0)
      row[f"{name}_tok_s"] = round(batch * t_new / float(np.median(times)), 1)
      row[f"{name}_times_s"] = [round(t, 2) for t in times]
      print(f"  batch {batch} {name}: {row[f'{name}_tok_s']} tok/s", file=sys.stderr, flush=True)
    row["fraction_of_ceiling"] = round(row["rlvr_jax_tok_s"] / ceiling, 3)
    if hf is not None:
      row["ratio"] = round(row["rlvr_jax_tok_s"] / row["transformers_tok_s"], 2)
    results.append(row)
    print(json.dumps(row), flush=True)
  print(f"ceiling {ceiling:.0f} tok/s at {args.gflops} GFLOP/s, {flops_per_token / 1e6:.0f} "
        f"MFLOP/token, threads {args.threads}, load {os.getloadavg()}")


if __name__ == "__main__":
  main()
