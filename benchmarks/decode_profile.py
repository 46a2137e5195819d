"""Where a decode step's time goes: the real sampler with its parts switched off one at a time.

SmolLM2-135M-Instruct fp32 on the sampler benchmark's chat prompts (`sampler_bench.py`),
no early EOS. A decode step's time is (sample(T new tokens) - sample(1 new token)) /
(T - 1), medians of --repeats calls, for each variant of the same decode loop:

  full          as shipped (temperature 1, top_p 0.95)
  greedy        argmax draw: no nucleus threshold, no inverse CDF
  no_attention  attention over the cache replaced by its query (keys and values still
                written to the cache): what the layer math costs without the cache reads
  no_attention_greedy  both

plus the weights-only matmul chain of `sampler_bound.py` (the floor). The differences
give attention over the cache (full - no_attention) and the draw (full - greedy).

  python benchmarks/decode_profile.py --batches=16,64 --new_tokens=33
"""

import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def _without_attention():
  """kv_cache.attend -> the query itself (same shape), so no cache read happens."""
  from rlvr_jax.models import kv_cache
  original = kv_cache.attend
  kv_cache.attend = lambda q, keys, values, allowed: q
  try:
    yield
  finally:
    kv_cache.attend = original


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--batches", default="16")
  ap.add_argument("--new_tokens", type=int, default=33)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--variants", default="full,greedy,no_attention,no_attention_greedy")
  args = ap.parse_args()
  import jax
  import sampler_bench
  import sampler_bound
  from sampler_bound import _median_seconds
  from rlvr_jax import checkpoints, sampling

  cfg, params, tok = checkpoints.load_policy("smollm2_135m_instruct")
  mats = sampler_bound._matmul_weights(params, cfg)
  for batch in [int(b) for b in args.batches.split(",")]:
    tokens_BxP, mask_BxP = sampling.text.encode_prompts(tok, sampler_bench._prompts(batch),
                                                        chat=True, pad_id=cfg.pad_id)
    row = {"batch": batch, "prompt_len": int(tokens_BxP.shape[1]), "new_tokens": args.new_tokens}

    def call(new_tokens, greedy):
      out = sampling.sample(params, cfg, tokens_BxP, mask_BxP, jax.random.PRNGKey(0),
                            num_samples=1, max_new_tokens=new_tokens, temperature=1.0,
                            top_p=0.95, greedy=greedy, eos_ids=())
      jax.block_until_ready(out)

    for variant in args.variants.split(","):
      greedy = variant.endswith("greedy")
      ctx = _without_attention() if variant.startswith("no_attention") else contextlib.nullcontext()
      with ctx:
        jax.clear_caches()  # the patched attention must be traced anew
        one = _median_seconds(lambda: call(1, greedy), args.repeats)
        many = _median_seconds(lambda: call(args.new_tokens, greedy), args.repeats)
      jax.clear_caches()
      row[f"{variant}_step_ms"] = round(1e3 * (many - one) / (args.new_tokens - 1), 1)
      print(f"  batch {batch} {variant}: {row[f'{variant}_step_ms']} ms a step", file=sys.stderr,
            flush=True)
    row["weights_only_step_ms"] = round(
        1e3 * sampler_bound.weights_only_step_xla(mats, batch, 16, args.repeats), 1)
    if "full_step_ms" in row:
      if "no_attention_step_ms" in row:
        row["attention_ms"] = round(row["full_step_ms"] - row["no_attention_step_ms"], 1)
      if "greedy_step_ms" in row:
        row["draw_ms"] = round(row["full_step_ms"] - row["greedy_step_ms"], 1)
    print(json.dumps(row), flush=True)
  print(f"load {os.getloadavg()}")


if __name__ == "__main__":
  main()
