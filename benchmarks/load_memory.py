"""Peak host memory of loading a policy (default: the embedded SmolLM2 GGUF).

    python benchmarks/load_memory.py [--policy smollm2_135m_instruct] [--tokens in.npz --out out.npz]

Prints one JSON line: resident-set peak (ru_maxrss) after imports and after
`load_policy`, and the float32 model size. With --tokens (npz with `tokens`,
`mask`), also writes the float32 logits of that left-padded batch to --out,
so a test can compare them with another implementation in another process.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reset_peak() -> None:
  # A child forked from a big process (e.g. pytest with torch loaded) inherits
  # its high-water mark; writing 5 to clear_refs resets it (Linux >= 4.0).
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")


def _peak_mib() -> float:
  """Peak resident set size (VmHWM) of this process so far."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024  # kB
  raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--policy", default="smollm2_135m_instruct")
  ap.add_argument("--tokens", default=None)
  ap.add_argument("--out", default=None)
  args = ap.parse_args()
  _reset_peak()

  import jax
  import jax.numpy as jnp
  import numpy as np
  import transformers  # noqa: F401  (imported before the baseline: the tokenizer needs it)

  from rlvr_jax import checkpoints, models
  after_imports = _peak_mib()
  start = time.perf_counter()
  cfg, params, tok = checkpoints.load_policy(args.policy)
  jax.block_until_ready(params)
  seconds = time.perf_counter() - start
  after_load = _peak_mib()
  fp32_mib = cfg.num_params() * 4 / 2**20
  result = {"policy": args.policy, "num_params": cfg.num_params(),
            "fp32_model_mib": round(fp32_mib, 1), "peak_rss_after_imports_mib": round(after_imports, 1),
            "peak_rss_after_load_mib": round(after_load, 1),
            "peak_over_fp32": round(after_load / fp32_mib, 3), "load_seconds": round(seconds, 1),
            "torch_imported": "torch" in sys.modules, "tokenizer_vocab": len(tok)}
  if args.tokens:
    data = np.load(args.tokens)
    tokens, mask = jnp.asarray(data["tokens"]), jnp.asarray(data["mask"])
    positions = jnp.cumsum(mask, axis=1) - 1
    fwd = jax.jit(lambda p, t, pos, m: models.logits(p, cfg, models.forward_hidden(
        p, cfg, t, pos, m)[0]))
    np.savez(args.out, logits=np.asarray(fwd(params, tokens, positions, mask)))
  print(json.dumps(result))


if __name__ == "__main__":
  main()
