"""The time split of an RL step (sample / verify / old log-probs / update) with the update's
cost-cutting switches off and on, side by side in one run.

The switches: `rl.skip_zero_advantage` (rows of advantage 0 leave forward and backward,
rl/skipping.py) and `rl.trim_padding` (response columns stop at the batch's longest
response, bucketed). Off/off is the full-width, every-row update of before.

  maze_tiny: the README's main job's RL (16 prompts x 8 rollouts, 32 new tokens, 2 updates
    a step of 64 rows) from one shared 300-step warm start; for each seed, a run with both
    switches off and one with both on (same seed, same warm start), interleaved. Per-step
    times are medians over the steps after the first; with the switches on, a step whose
    mini-batch lands in a new bucket compiles that program too (a short run pays for them;
    no persistent compilation cache). The final metrics (train reward, eval pass@k at the
    end) show whether the two agree within seed noise.
  maze_updates: the update alone, as for smollm2 below, on one batch of the warm-started
    maze_tiny policy (needs maze_tiny's warm start in --outdir): the steady state of a long
    run, where every bucket's program is compiled.
  smollm2: SmolLM2-135M-Instruct (embedded GGUF) on math at a CPU size (8 prompts x 8
    rollouts x 128 new tokens): one real batch (sampler, verifier, estimator), then the
    update on that same batch with each of the four switch settings, interleaved, `repeats`
    times each (medians; the first of each setting compiles and is dropped). The untrained
    135M policy solves none of these problems, so every group is flat.
  smollm2_arith: the same update split on a batch with signal: SmolLM2-135M-Instruct after
    a short SFT warm start (--smollm2_warmstart_steps batches of 16 worked arith solutions,
    `7+5=12,12-3=9 \\boxed{9}`, cached in --outdir) on arith (2-3 single-digit operands,
    chat prompts), 8 prompts x 8 rollouts x 128 new tokens.

  python benchmarks/rl_step_bench.py --case=maze_tiny --seeds=0,1,2 --steps=12 --outdir=/tmp/b
  python benchmarks/rl_step_bench.py --case=maze_updates --repeats=5 --outdir=/tmp/b
  python benchmarks/rl_step_bench.py --case=smollm2 --repeats=3 --outdir=/tmp/b
  python benchmarks/rl_step_bench.py --case=smollm2_arith --repeats=2 --outdir=/tmp/b
"""

import argparse
import functools
import json
import os
import runpy
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPLIT = ("time_sample", "time_verify", "time_logprobs", "time_update", "time_step")
FINAL = ("reward_mean", "zero_var_frac", "eval/pass@1", "eval/pass@8")


def _records(workdir: str, phase: str = "train") -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [r for r in rows if r["phase"] == phase]


def _maze_config(seed: int, steps: int, switches: bool, warm_dir: str, warm_steps: int):
  c = runpy.run_path(os.path.join(ROOT, "configs", "maze_tiny.py"))["get_config"](
      f"seed={seed},steps={steps},warmstart_steps={warm_steps},warmstart_dir={warm_dir}")
  c.rl.skip_zero_advantage = c.rl.trim_padding = switches
  c.eval.update(every=0, at_start=False, at_end=True)
  c.checkpoint.update(every=10**6, keep=1)
  c.plot_at_end, c.progress = False, False
  return c


def _warm_start(workdir: str, config, steps: int) -> str:
  """The warm-started params' directory under `workdir`, made by `config` (RL steps 0) once."""
  from rlvr_jax.rl import train

  if not os.path.exists(os.path.join(workdir, "warmstart")):
    print(f"warm start ({steps} steps) -> {workdir}", flush=True)
    train.run(config, workdir)
  return os.path.join(workdir, "warmstart")


def maze_tiny(args) -> dict:
  from rlvr_jax.rl import train

  warm = _warm_start(os.path.join(args.outdir, "warm"),
                     _maze_config(0, 0, False, "", args.warmstart_steps), args.warmstart_steps)
  runs = {}
  for seed in args.seeds:
    for switches in (False, True):
      name = f"seed{seed}_{'on' if switches else 'off'}"
      work = os.path.join(args.outdir, name)
      t0 = time.perf_counter()
      last = train.run(_maze_config(seed, args.steps, switches, warm, 0), work)
      recs = _records(work)
      runs[name] = {"seed": seed, "switches": switches, "wall_s": time.perf_counter() - t0,
                    "steps": recs, "final": {k: last.get(k) for k in FINAL}}
      print(name, {k: round(statistics.median(r[k] for r in recs[1:]), 3) for k in SPLIT},
            flush=True)
  return runs


def summarize_maze(runs: dict) -> str:
  lines = ["| seed | switches | " + " | ".join(SPLIT) + " | update rows | " +
           " | ".join(FINAL) + " |", "|" + "---|" * (4 + len(SPLIT) + len(FINAL))]
  for name, r in runs.items():
    later = r["steps"][1:]
    med = {k: statistics.median(s[k] for s in later) for k in SPLIT}
    rows = statistics.median(s["update_rows"] for s in later)
    fin = [r["final"].get(k) for k in FINAL]
    lines.append(f"| {r['seed']} | {'on' if r['switches'] else 'off'} | " +
                 " | ".join(f"{med[k]:.3f}" for k in SPLIT) + f" | {rows:.0f} | " +
                 " | ".join("-" if v is None else f"{v:.3f}" for v in fin) + " |")
  ratios = []
  for k in ("time_update", "time_step"):
    per_seed = []
    for seed in sorted({r["seed"] for r in runs.values()}):
      off, on = runs[f"seed{seed}_off"]["steps"][1:], runs[f"seed{seed}_on"]["steps"][1:]
      per_seed.append(statistics.median(s[k] for s in off) /
                      statistics.median(s[k] for s in on))
    ratios.append(f"{k} off/on: median {statistics.median(per_seed):.2f}x "
                  f"(per seed {', '.join(f'{x:.2f}' for x in per_seed)})")
  return "\n".join(lines + [""] + ratios)


def smollm2(args) -> dict:
  c = runpy.run_path(os.path.join(ROOT, "configs", "math_smollm2.py"))["get_config"]("runlocal")
  c.rl.update(batch_prompts=8, num_samples=8, mini_batch_prompts=4, micro_batches=2,
              max_new_tokens=args.new_tokens)
  return update_split(c, args.repeats)


def _arith_smollm2_config(args, warm_dir: str, warm_steps: int):
  """SmolLM2-135M-Instruct on arith (2-3 single-digit operands, chat prompts, boxed answers)
  at the smollm2 case's size; `warm_steps` of SFT on the task's worked solutions first."""
  from rlvr_jax.rl.defaults import advantage_block, base_config, paper_settings

  c = base_config()
  c.task.name = "arith"
  c.data.splits = {"num_train": 512, "num_test": 8, "seed": 1234, "operands": (2, 3)}
  paper_settings(c, path="smollm2_135m_instruct", steps=0, micro_batches=2, max_prompt_len=96,
                 max_new_tokens=args.new_tokens, eval_every=0, checkpoint_every=10**6)
  c.model.update(dtype="float32", remat="none")  # CPUs have no fast bfloat16
  c.rl.update(batch_prompts=8, num_samples=8, mini_batch_prompts=4)
  c.advantage = advantage_block("grpo", 4)
  c.warmstart.update(steps=warm_steps, batch_size=16, log_every=5, load_dir=warm_dir,
                     optimizer=dict(lr=args.warmstart_lr, warmup_steps=5, b1=0.9, b2=0.99,
                                    eps=1e-8, weight_decay=0.0, max_grad_norm=1.0))
  c.eval.update(every=0, at_start=False, at_end=False)
  c.checkpoint.update(every=10**6, keep=1, export_hf=False)
  c.plot_at_end, c.progress = False, False
  return c


def smollm2_arith(args) -> dict:
  """The update alone on one batch of SmolLM2 warm-started on arith: groups with signal."""
  steps = args.smollm2_warmstart_steps
  warm = _warm_start(os.path.join(args.outdir, "warm_smollm2_arith"),
                     _arith_smollm2_config(args, "", steps), steps)
  return update_split(_arith_smollm2_config(args, warm, 0), args.repeats)


def maze_updates(args) -> dict:
  """The update alone on one batch of the warm-started maze_tiny policy (compiles excluded)."""
  c = _maze_config(0, 1, True, os.path.join(args.outdir, "warm", "warmstart"), 0)
  return update_split(c, args.repeats)


def update_split(c, repeats: int) -> dict:
  """One real batch of config `c` (sampled, verified, scored), then the update on it with each
  of the four switch settings, interleaved, `repeats` + 1 times each (the first compiles)."""
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  from rlvr_jax import advantages, data as data_lib, multihost, sharding, tasks
  from rlvr_jax.rl import batch as batch_lib, optim, train, warmstart

  t_start = time.perf_counter()
  say = lambda msg: print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)
  c.rl.trim_padding = False  # the batch at full width; the trimmed copy is cut from it
  mesh = sharding.make_mesh(c.mesh, None)
  rows_sh, repl = NamedSharding(mesh, PartitionSpec(("data", "fsdp"))), NamedSharding(mesh, PartitionSpec())
  task = tasks.get(c.task.name, **c.task.kwargs.to_dict())
  train_set, _ = data_lib.load(c.task.name, c.data)
  say("data loaded")
  out = {}
  with sharding.use_mesh(mesh, None):
    cfg, params, tok = train.load_policy(c, mesh, None)
    if c.warmstart.load_dir:
      params = warmstart.load_params(c.warmstart.load_dir, params)
    say("policy loaded")
    optimizer = optim.make_optimizer(c.optimizer)
    state = optim.init_state(params, optimizer, mesh)
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    logprobs = train.make_logprobs(c, cfg, state_sh["params"], rows_sh)
    spec = train.batch_spec(c, cfg, task, tok, mesh, None, None, logprobs, rows_sh)
    prompts = data_lib.prompt_iterator(train_set, batch_size=c.rl.batch_prompts, seed=0)
    t0 = time.perf_counter()
    made = batch_lib.make_batch(state["params"], jax.random.PRNGKey(0), spec,
                                functools.partial(next, prompts),
                                advantages.from_config(c.advantage), c.advantage.name)
    out["batch_s"] = time.perf_counter() - t0
    say(f"batch made (compiles included): {made.counts}")
    out["counts"] = {k: float(v) for k, v in made.counts.items()}
    rewards = made.rollouts.rewards_BxN
    out["rewards"] = rewards.tolist()
    out["zero_var_frac"] = float((rewards.std(-1) == 0).mean())
    out["longest_response"] = int(made.rollouts.mask_RxT.sum(-1).max())
    host = jax.device_get(made.train)
    variants = {False: made.train,
                True: multihost.global_rows(batch_lib.trim_responses(host), rows_sh)}
    out["widths"] = {str(k): int(v.loss_mask_RxT.shape[1]) for k, v in variants.items()}
    # The old log-probs pass at both widths (what trimming saves before the update).
    for trim, tb in variants.items():
      times = []
      for _ in range(repeats + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(logprobs(state["params"], tb.tokens_RxS, tb.attn_mask_RxS,
                                       tb.loss_mask_RxT.shape[1]))
        times.append(time.perf_counter() - t0)
      out[f"logprobs_trim={trim}"] = times
    say("old log-probs timed")
    update = train.make_update(c, cfg, optimizer, state_sh, rows_sh, repl)
    take_rows = train.make_take_rows(rows_sh, repl, c.loss.agg)
    minibatches = train.minibatch_rows(made, jax.random.PRNGKey(1), c.rl)
    copy = jax.jit(lambda s: jax.tree.map(lambda x: x + 0, s), out_shardings=state_sh)
    settings = [(s, t) for s in (False, True) for t in (False, True)]
    for rep in range(repeats + 1):
      for skip, trim in settings:
        fresh = jax.block_until_ready(copy(state))
        t0 = time.perf_counter()
        _, m = train.update_minibatches(update, take_rows, fresh, variants[trim], minibatches,
                                        skip=skip, num_micro=c.rl.micro_batches,
                                        row_multiple=mesh.shape["data"] * mesh.shape["fsdp"])
        dt = time.perf_counter() - t0
        key = f"update_skip={skip}_trim={trim}"
        out.setdefault(key, []).append(dt)
        out.setdefault(key + "_metrics", m)
        say(f"repeat {rep} skip={skip} trim={trim}: {dt:.2f} s "
            f"({m['update_rows']:.0f} rows, {m['update_tokens']:.0f} tokens)")
  return out


def summarize_updates(out: dict) -> str:
  med = lambda k: statistics.median(out[k][1:])
  base = med("update_skip=False_trim=False")
  lines = [f"batch: zero_var_frac {out['zero_var_frac']:.2f}, longest response "
           f"{out['longest_response']} of {out['widths']['False']} columns (trimmed to "
           f"{out['widths']['True']}); making it took {out['batch_s']:.1f} s "
           f"(sample {out['counts']['time_sample']:.1f}, verify {out['counts']['time_verify']:.1f}, "
           f"old log-probs {out['counts']['time_logprobs']:.1f})",
           f"old log-probs pass: full {med('logprobs_trim=False'):.2f} s, trimmed "
           f"{med('logprobs_trim=True'):.2f} s", "",
           "| skip | trim | update s (median) | off/on | rows | tokens |", "|---|---|---|---|---|---|"]
  for skip in (False, True):
    for trim in (False, True):
      k = f"update_skip={skip}_trim={trim}"
      m = out[k + "_metrics"]
      lines.append(f"| {skip} | {trim} | {med(k):.2f} | {base / med(k):.2f}x | "
                   f"{m['update_rows']:.0f} | {m['update_tokens']:.0f} |")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--case", choices=("maze_tiny", "maze_updates", "smollm2", "smollm2_arith"),
                 required=True)
  p.add_argument("--outdir", required=True)
  p.add_argument("--seeds", default="0,1,2", help="maze_tiny: comma-separated seeds")
  p.add_argument("--steps", type=int, default=12, help="maze_tiny: RL steps a run")
  p.add_argument("--warmstart_steps", type=int, default=300, help="maze_tiny: shared warm start")
  p.add_argument("--repeats", type=int, default=3,
                 help="smollm2, maze_updates: timed updates a setting")
  p.add_argument("--new_tokens", type=int, default=128, help="smollm2: max_new_tokens")
  p.add_argument("--smollm2_warmstart_steps", type=int, default=30,
                 help="smollm2_arith: SFT steps (16 worked solutions each) before the batch")
  p.add_argument("--warmstart_lr", type=float, default=5e-5, help="smollm2_arith: SFT peak lr")
  args = p.parse_args()
  args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  os.makedirs(args.outdir, exist_ok=True)
  if args.case == "maze_tiny":
    out = maze_tiny(args)
    text = summarize_maze(out)
  else:
    out = {"smollm2": smollm2, "smollm2_arith": smollm2_arith,
           "maze_updates": maze_updates}[args.case](args)
    text = summarize_updates(out)
  with open(os.path.join(args.outdir, f"{args.case}.json"), "w") as f:
    json.dump(out, f, indent=1, default=float)
  with open(os.path.join(args.outdir, f"{args.case}.md"), "w") as f:
    f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
