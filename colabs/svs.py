# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # SvS: self-play with variational problem synthesis, one step by parts
#
# SvS (Liang et al., arXiv 2508.14029) keeps RLVR from collapsing onto a fixed
# problem set: from the correct solutions of problems the policy finds hard, the
# policy itself writes new problems whose answer must be the original one, and
# it is rewarded when those problems are neither too easy nor unsolvable.
# `rlvr_jax.rl.svs` is that step; `config.algorithm = "svs"` selects it.
#
# This notebook runs one step on the tiny arith task (`7+5-3+1`, answers shared
# by many problems) with the tiny character policy, part by part:
# 1. original rollouts and the contexts they give;
# 2. synthesis: the policy writes problems from a correct solution;
# 3. solving them, graded against the ORIGINAL answer, and the synthesis reward;
# 4. the whole step as the trainer makes it;
# 5. the curves of `experiments/svs_tiny` (SvS against plain RLVR).
#
# On a Colab CPU the warm start (800 steps) takes several minutes. In Colab, first
# install the repository (uncomment the line in the next cell).

# %%
# In Colab: !pip install -q "git+<rlvr_jax repository URL>"
import os
import sys
import tempfile

for root in (os.getcwd(), os.path.dirname(os.getcwd())):
  if os.path.isdir(os.path.join(root, "rlvr_jax")):
    sys.path.insert(0, root)
    ROOT = root
    break

import jax
import matplotlib.pyplot as plt
import numpy as np
import runpy
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import advantages, data as data_lib, sharding, tasks
from rlvr_jax.rl import rollout, svs, train, warmstart

# The test suite runs this notebook with a short warm start (SVS_COLAB_WARMSTART_STEPS).
WARMSTART_STEPS = os.environ.get("SVS_COLAB_WARMSTART_STEPS", "")  # '' = the config's (800)
config = runpy.run_path(os.path.join(ROOT, "configs", "svs_tiny.py"))["get_config"](
    "steps=0" + (f",warmstart_steps={WARMSTART_STEPS}" if WARMSTART_STEPS else ""))
config.num_devices, config.progress, config.plot_at_end = 1, False, False
config.eval.update(at_start=False, at_end=False)
print("synthesis prompt:", repr(config.svs.prompt))

# %% [markdown]
# ## The policy: a warm start on both formats
#
# A 0-step run of `configs/svs_tiny.py` is just its supervised warm start: half
# of each batch teaches `Problem: <p>\nSolution: ` -> the worked solution, the
# other half `Write the problem of: <solution>` -> a ```text block with the problem.

# %%
workdir = tempfile.mkdtemp(prefix="svs_colab_")
train.run(config, workdir)
mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
cfg, params, tokenizer = train.load_policy(config, mesh, None)
params = warmstart.load_params(os.path.join(workdir, "warmstart"), params)
task = tasks.get("arith")
train_set, _ = data_lib.load("arith", config.data)
rl, sv = config.rl, config.svs
gen = dict(max_prompt_len=rl.max_prompt_len, max_new_tokens=rl.max_new_tokens,
           temperature=rl.temperature, top_p=rl.top_p, chat=False, mesh=mesh)

# %% [markdown]
# ## 1. Original rollouts and contexts
#
# 8 rollouts of each of 8 problems. A problem whose accuracy is within
# [acc_low, acc_high] = [1/8, 1/2] is under-performing; each of its correct
# responses becomes a synthesis context.

# %%
examples = [train_set[i] for i in range(8)]
ro = rollout.generate(params, cfg, task, tokenizer, examples, jax.random.PRNGKey(0),
                      num_samples=rl.num_samples, **gen)
acc_B = ro.rewards_BxN.mean(-1)
for ex, a in zip(examples, acc_B):
  band = "context" if sv.acc_low <= a <= sv.acc_high else ""
  print(f"{ex['problem']:>10} = {ex['answer']:>3}   accuracy {a:.3f}  {band}")
ctx = svs.select_contexts(ro.rewards_BxN, np.ones_like(ro.rewards_BxN, bool), sv.acc_low,
                          sv.acc_high)
print(f"\n{len(ctx)} contexts")
if len(ctx):
  b, n = ctx[0]
  context_example, solution = examples[b], ro.responses[b * rl.num_samples + n]
else:  # a weak policy may solve nothing in the band: show the parts on a reference solution
  context_example = examples[0]
  solution = context_example["solution"]
print("context:", context_example["problem"], "->", repr(solution))

# %% [markdown]
# ## 2. Synthesis
#
# The policy sees the correct solution only (not the problem, not the answer)
# and writes 8 problems; `svs.extract_problem` reads the ```text block (after
# the last `</think>`, falling back to a bare fence).

# %%
prompt = svs.synthesis_prompt(sv.prompt, solution)
syn = rollout.sample(params, cfg, tokenizer, [prompt], jax.random.PRNGKey(1),
                     num_samples=sv.num_syntheses, max_prompt_len=sv.max_synthesis_prompt_len,
                     max_new_tokens=rl.max_new_tokens, temperature=rl.temperature,
                     top_p=rl.top_p, chat=False, mesh=mesh)
problems = [svs.extract_problem(r) for r in syn.responses]
for r, p in zip(syn.responses, problems):
  print(f"{r!r:>34}  ->  {p!r}")

# %% [markdown]
# ## 3. Solving, graded against the original answer; the synthesis reward
#
# Each usable problem is solved 8 times; a solution is correct when it boxes
# the ORIGINAL problem's answer. The synthesis earns 1 when 1 to 5 of the 8
# solves are correct (accuracy in [1/8, 5/8]) and the problem does not state
# the answer (our leak check).

# %%
answer = task.reference_answer(context_example)
usable = [p is not None for p in problems]
leaked = [p is not None and svs.leaks_answer(p, answer) for p in problems]
solve_examples = [task.with_problem(context_example, p) if p else context_example
                  for p in problems]
solve = rollout.generate(params, cfg, task, tokenizer, solve_examples, jax.random.PRNGKey(2),
                         num_samples=rl.num_samples, **gen)
eligible = np.array(usable) & ~np.array(leaked)
valid = np.ones_like(solve.rewards_BxN, bool)
reward_Q, acc_Q = svs.synthesis_rewards(solve.rewards_BxN, valid, eligible, sv.reward_low,
                                        sv.reward_high)
print(f"original answer: {answer}")
for p, a, lk, r in zip(problems, acc_Q, leaked, reward_Q):
  print(f"{p!r:>14}  solve accuracy {a:.3f}  leak {lk!s:>5}  reward {r:.0f}")

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(range(len(acc_Q)), acc_Q, color=["tab:green" if r else "tab:gray" for r in reward_Q])
ax.axhspan(sv.reward_low, sv.reward_high, color="tab:green", alpha=0.1)
ax.set(xlabel="synthesized problem", ylabel="solve accuracy",
       title="green: rewarded (accuracy in [1/8, 5/8], no leak)")
plt.show()

# %% [markdown]
# ## 4. The step as the trainer makes it
#
# `svs.make_batch` does all of the above for a batch (contexts capped at
# `svs.max_contexts`, a random subset beyond it), then the advantages (GRPO
# here) of every original group, the synthesis groups with a positive member
# and the solve groups with 0 < acc < 1, and the rows of one update.

# %%
rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
with sharding.use_mesh(mesh, None):
  spec = train.batch_spec(config, cfg, task, tokenizer, mesh, None, None, None, rows_sh)
  made = svs.make_batch(params, jax.random.PRNGKey(3), spec, lambda: examples,
                        advantages.from_config(config.advantage), "grpo")
for k, v in made.metrics.items():
  print(f"{k:32s} {v:.3f}")
print(f"groups in the update: {len(made.groups)}, rows {sum(len(g) for g in made.groups)}")

# %% [markdown]
# ## 5. SvS against plain RLVR (experiments/svs_tiny)
#
# The committed results of `python experiments/svs_tiny/run.py`: from one warm
# start, SvS and GRPO for the same number of RL steps, 3 seeds each. Left:
# held-out pass@k at the end; right: entropy of the original-problem rollouts.
# See experiments/svs_tiny/README.md for the numbers and their tests.

# %%
import csv

res_dir = os.path.join(ROOT, "experiments", "svs_tiny", "results")
read = lambda name: list(csv.DictReader(open(os.path.join(res_dir, name), encoding="utf-8")))
ev, tr = read("results.csv"), read("train.csv")
last = max(int(r["step"]) for r in ev)
ks = [int(k[len("pass@"):]) for k in ev[0] if k.startswith("pass@")]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for alg, style in (("warmstart", "k--"), ("svs", "-"), ("rlvr", "-")):
  sel = [r for r in ev if r["algorithm"] == alg and (alg == "warmstart" or int(r["step"]) == last)]
  axes[0].plot(ks, [100 * np.mean([float(r[f"pass@{k}"]) for r in sel]) for k in ks], style,
               marker=".", label=alg if alg == "warmstart" else f"{alg} step {last}")
  steps = sorted({int(r["step"]) for r in tr if r["algorithm"] == alg})
  if steps:
    axes[1].plot(steps, [np.mean([float(r["entropy_rollouts"]) for r in tr
                                  if r["algorithm"] == alg and int(r["step"]) == t])
                         for t in steps], label=alg)
axes[0].set(xscale="log", xlabel="k", ylabel="pass@k (%)", title="held-out pass@k (mean of seeds)")
axes[1].set(xlabel="RL step", ylabel="nats / token", title="entropy, original problems")
for ax in axes:
  ax.legend()
plt.show()
