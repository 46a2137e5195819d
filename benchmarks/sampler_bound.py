"""Upper bound on sampler throughput on this machine, from its measured parts.

For each batch, with the sampler benchmark's prompts and settings
(`sampler_bench.py`: SmolLM2-135M-Instruct fp32, chat-templated prompts, 128
new tokens):

- prefill: wall time of `sampling.sample` with one new token (the prompt's
  forward pass over all layers, plus one decode step), median of --repeats;
- weights-only decode step: one token a row through every weight matmul of the
  model (q, k, v, o, gate, up, down in each layer, then the tied head) and
  nothing else: no attention, norms, RoPE or sampling. Timed two ways, XLA
  (jit, layers unrolled in a `fori_loop`, as the sampler's decode loop) and
  NumPy's BLAS, and the faster one is used.

    bound = batch * new_tokens / (prefill + new_tokens * weights-only step)

is the most any sampler built from these matmuls could reach here: it leaves
out attention over the cache and sampling entirely. With --hf it also times
transformers `generate` (as sampler_bench.py does) and prints 2.5x that, the
issue's target, next to the bound.

  python benchmarks/sampler_bound.py --batches=16,64 --hf
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up (compiles)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def _matmul_weights(params: dict, cfg) -> list[np.ndarray]:
  """Every weight matrix a decode step multiplies by, as 2-D float32 [in, out]."""
  d = cfg.d_model
  mats = []
  for l in range(cfg.num_layers):
    p = {n: np.asarray(w[l], np.float32) for n, w in params["layers"].items()}
    mats += [p["q"].reshape(d, -1), p["k"].reshape(d, -1), p["v"].reshape(d, -1),
             p["o"].reshape(-1, d), p["gate"], p["up"], p["down"]]
  head = params["lm_head"] if "lm_head" in params else np.asarray(params["embed"]).T
  return mats + [np.asarray(head, np.float32)]


def weights_only_step_xla(mats: list[np.ndarray], rows: int, steps: int, repeats: int) -> float:
  """Seconds a step of the XLA weights-only chain (`steps` steps a call).

  Each layer: q, k, v from x; o from q; gate and up from x; down from
  silu(gate) * up; k and v are kept live through a zero-weighted term.
  """
  import jax
  import jax.numpy as jnp

  ws = [jnp.asarray(w) for w in mats]

  @jax.jit
  def run(ws, x):
    def body(_, x):
      for l in range(len(ws) // 7):
        wq, wk, wv, wo, wg, wu, wd = ws[7 * l:7 * l + 7]
        q, k, v = x @ wq, x @ wk, x @ wv
        x = x + q @ wo + 0.0 * (k[:, :1] + v[:, :1])
        x = x + (jax.nn.silu(x @ wg) * (x @ wu)) @ wd
      return x + 1e-9 * (x @ ws[-1])[:, :x.shape[1]]
    return jax.lax.fori_loop(0, steps, body, x)

  x0 = jnp.full((rows, mats[0].shape[0]), 0.01, jnp.float32)
  return _median_seconds(lambda: jax.block_until_ready(run(ws, x0)), repeats) / steps


def weights_only_step_blas(mats: list[np.ndarray], rows: int, repeats: int) -> float:
  """Seconds a step of the same products in NumPy (its BLAS)."""
  width = max(w.shape[0] for w in mats)
  x = np.full((rows, width), 0.01, np.float32)
  inputs = [np.ascontiguousarray(x[:, :w.shape[0]]) for w in mats]
  return _median_seconds(lambda: [a @ w for a, w in zip(inputs, mats)], repeats)


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--batches", default="16,64")
  ap.add_argument("--new_tokens", type=int, default=128)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--hf", action="store_true", help="also time transformers generate")
  args = ap.parse_args()
  import jax
  import sampler_bench
  from rlvr_jax import checkpoints, sampling

  cfg, params, tok = checkpoints.load_policy("smollm2_135m_instruct")
  mats = _matmul_weights(params, cfg)
  hf = sampler_bench.load_hf(params, cfg) if args.hf else None
  for batch in [int(b) for b in args.batches.split(",")]:
    tokens_BxP, mask_BxP = sampling.text.encode_prompts(tok, sampler_bench._prompts(batch),
                                                        chat=True, pad_id=cfg.pad_id)
    prefill_s = _median_seconds(lambda: jax.block_until_ready(sampling.sample(
        params, cfg, tokens_BxP, mask_BxP, jax.random.PRNGKey(0), num_samples=1,
        max_new_tokens=1, temperature=1.0, top_p=0.95, eos_ids=())), args.repeats)
    xla_s = weights_only_step_xla(mats, batch, 16, args.repeats)
    blas_s = weights_only_step_blas(mats, batch, args.repeats)
    step_s = min(xla_s, blas_s)
    flops = 2 * sum(w.size for w in mats) * batch
    row = {"batch": batch, "prompt_len": int(tokens_BxP.shape[1]),
           "prefill_s": round(prefill_s, 2),
           "weights_only_step_ms": {"xla": round(1e3 * xla_s, 1), "blas": round(1e3 * blas_s, 1)},
           "weights_only_gflops": {"xla": round(flops / xla_s / 1e9, 1),
                                   "blas": round(flops / blas_s / 1e9, 1)},
           "bound_tok_s": round(batch * args.new_tokens / (prefill_s + args.new_tokens * step_s),
                                1)}
    if hf is not None:
      hf_s = _median_seconds(lambda: sampler_bench.run_hf(hf, tokens_BxP, mask_BxP, cfg.pad_id,
                                                          args.new_tokens, seed=0), args.repeats)
      row["transformers_tok_s"] = round(batch * args.new_tokens / hf_s, 1)
      row["target_tok_s"] = round(2.5 * row["transformers_tok_s"], 1)
    print(json.dumps(row), flush=True)
  print(f"load {os.getloadavg()}")


if __name__ == "__main__":
  main()
