# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The reasoning boundary: BBG's utility and gate, pass@k up to 256, per-problem history
#
# 1. BBG's boundary utility u(m; n, K) and its gate for n = 8, 16, 32 rollouts, with
#    both gate normalizers (`gate_norm`: the cited Eq. 9's `n+1`, or `u0`).
# 2. pass@k for k = 1..256 with its 95 % bootstrap interval over problems, for a
#    simulated base policy and a simulated "sharpened" one (higher pass@1, lower
#    pass@256), drawn the way `plots/passk_curve.png` draws a run against its base.
# 3. The per-problem history (`rlvr_jax.rl.history`) of a simulated run: problems
#    ever solved, unsolved at first visit and solved later, per first-visit bucket.
# 4. The measured pass@k curves of the tiny-maze experiment (experiments/boundary_tiny).
#
# Sections 1-3 are simulated from chosen success rates (no training), so they run on
# CPU in seconds; a run's real curves come from its workdir (`rlvr_jax.plot`), the
# experiment's from experiments/boundary_tiny/run.py, whose plot section 4 shows.

# %%
# In Colab: !pip install -q "git+<rlvr_jax repository URL>"
import os
import sys

# In a checkout (run from the repository root or from colabs/), use that copy.
for root in (os.getcwd(), os.path.dirname(os.getcwd())):
  if os.path.isdir(os.path.join(root, "rlvr_jax")):
    sys.path.insert(0, root)
    break

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from rlvr_jax import advantages, metrics
from rlvr_jax.rl import history

# %% [markdown]
# ## 1. The utility and the gate
#
# With m successes of n and a Beta(1, 1) prior, u(m) = E[K (1 - p)^(K-1)] under
# the posterior Beta(m + 1, n - m + 1): the expected marginal gain in Pass@K of
# raising p. It falls by a factor (n - m) / (n - m + K - 1) per extra success, so at
# K = 256 one success already makes a problem ~30x less useful for Pass@256.
# A problem is gated when u(m) < tau (n + 1) (`n+1`, the default) or
# u(m) / u(0) < tau (`u0`); the two thresholds are drawn dashed.

# %%
K, TAU = 256, 0.01
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
for ax, n in zip(axes, (8, 16, 32)):
  r = (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(np.float32)
  gates = {}
  for norm in ("n+1", "u0"):
    _, info = advantages.compute("bbg", r, k=K, tau=TAU, gate_norm=norm)
    gates[norm] = np.asarray(info["gated"])
  u = np.asarray(info["utility"])
  ax.semilogy(np.arange(n + 1), np.maximum(u, 1e-30), marker=".", label="u(m)")
  ax.axhline(TAU * (n + 1), color="C1", ls="--", lw=1, label="tau (n + 1)")
  ax.axhline(TAU * u[0], color="C2", ls=":", lw=1, label="tau u(0)")
  ax.set(xlabel="m (successes)", title=f"n = {n}", ylim=(1e-12, 100))
  ax.grid(alpha=0.3)
  print(f"n = {n}: gated from m = {int(np.argmax(gates['n+1']))} ('n+1'), "
        f"m = {int(np.argmax(gates['u0']))} ('u0')")
axes[0].set_ylabel("boundary utility")
axes[0].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. pass@k up to 256 with bootstrap intervals
#
# A base policy whose per-problem success rates are spread (p ~ Beta(0.3, 2)) and a
# "sharpened" one that concentrates on the problems it already solves (p^0.4 where
# p > 0.1, p / 4 elsewhere): pass@1 rises, pass@256 falls, the pattern of claim 1.
# `metrics.pass_at_k_intervals` gives each curve and its 95 % percentile-bootstrap
# band over the 96 problems.

# %%
rng = np.random.default_rng(0)
n_samples, num_problems = 256, 96
p_base = rng.beta(0.3, 2.0, num_problems)
p_sharp = np.where(p_base > 0.1, p_base ** 0.4, p_base / 4)
fig, ax = plt.subplots(figsize=(6, 4))
for label, p, style in (("base", p_base, dict(color="black", ls="--")),
                        ("sharpened", p_sharp, dict(color="C0"))):
  c = rng.binomial(n_samples, p)
  out = metrics.pass_at_k_intervals(n_samples, {"sim": c}, num_boot=500)
  ks = metrics.default_ks(n_samples)
  ax.plot(ks, [out[f"pass@{k}"] for k in ks], marker=".", label=label, **style)
  ax.fill_between(ks, [out[f"pass@{k}_lo"] for k in ks], [out[f"pass@{k}_hi"] for k in ks],
                  color=style["color"], alpha=0.15)
  print(f"{label}: pass@1 {out['pass@1']:.3f} [{out['pass@1_lo']:.3f}, {out['pass@1_hi']:.3f}]"
        f", pass@256 {out['pass@256']:.3f} [{out['pass@256_lo']:.3f}, {out['pass@256_hi']:.3f}]")
ax.set_xscale("log", base=2)
ax.set(xlabel="k", ylabel="pass@k", title="simulated: a policy against its base")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 3. The per-problem history of a simulated run
#
# 200 training problems with base success rates as above, batches of 16 problems x 8
# rollouts for 60 steps; each problem's success rate grows a little each time it is
# visited with a success (a crude stand-in for learning). `ProblemHistory.update` is
# what the trainer calls after every step with `made.rollouts`.

# %%
num_train, batch, rollouts, steps = 200, 16, 8, 60
p_train = rng.beta(0.3, 2.0, num_train)
examples = [{"id": i} for i in range(num_train)]
h = history.ProblemHistory()
curve = []
for step in range(1, steps + 1):
  idx = rng.choice(num_train, batch, replace=False)
  rewards = (rng.random((batch, rollouts)) < p_train[idx, None]).astype(np.float32)
  h.update(step, SimpleNamespace(examples=[examples[i] for i in idx], rewards_BxN=rewards))
  p_train[idx] = np.where(rewards.sum(1) > 0, np.minimum(1.0, p_train[idx] * 1.3 + 0.01),
                          p_train[idx])
  curve.append(h.metrics())
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.6))
for key in ("hist/ever_solved_frac", "hist/unsolved_first_frac", "hist/later_solved_frac",
            "hist/revisited_frac"):
  ax.plot(range(1, steps + 1), [m[key] for m in curve], label=key.split("/")[1])
ax.set(xlabel="RL step", ylabel="fraction", title="history metrics over the run")
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
last = curve[-1]
buckets = range(rollouts + 1)
bx.bar(buckets, [last[f"hist/bucket{m}_frac"] for m in buckets], color="C0", alpha=0.6,
       label="problems starting in bucket")
bx.plot(buckets, [last[f"hist/bucket{m}_later_solved_frac"] for m in buckets], "o-", color="C3",
        label="revisited: solved later")
bx.set(xlabel="successes of 8 at the first visit", title=f"per first-visit bucket, step {steps}")
bx.legend(fontsize=7)
bx.grid(alpha=0.3)
fig.tight_layout()
plt.show()
a, b = h.posterior()
print(f"{len(h)} problems seen; posterior mean success rate of the first five: "
      f"{np.round(a[:5] / (a[:5] + b[:5]), 3).tolist()}")

# %% [markdown]
# ## 4. The experiment's curves (measured, not simulated)
#
# `experiments/boundary_tiny/results/curves.png`, drawn by the experiment's runner from
# its `results.csv`: the final pass@k of each arm (7 arms x 3 seeds, 16 RL steps from one
# warm start), the mean over seeds with the min..max band, the warm start dashed; its
# README states the claims and their tests. The file comes with a checkout of the
# repository, not with a pip install.

# %%
from IPython.display import Image, display

curves_png = os.path.join(root, "experiments", "boundary_tiny", "results", "curves.png")
if not os.path.exists(curves_png):
  raise FileNotFoundError(f"{curves_png} not found: clone the repository to read the "
                          "experiment's results, or run experiments/boundary_tiny/run.py")
display(Image(filename=curves_png))
