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
# # Advantage estimators for RLVR, in pictures
#
# `rlvr_jax.advantages` turns the rewards of N rollouts of each of B problems
# into advantages, `adv_BxN, info = advantages.compute(name, rewards_BxN,
# valid_BxN, **params)`. This notebook shows what the estimators do to one
# problem as its number of correct rollouts N_pos changes:
#
# 1. GRPO and the analytical Pass@k advantage: A_pos, A_neg and
#    eta = sum |A| against N_pos.
# 2. The unbiased pass@k metric behind them.
# 3. Bootstrap sampling of groups converges to the analytical form.
# 4. Bayesian Boundary Gating (BBG) weights and gates.
# 5. PKPO: unbiased pass@k gradient weights for binary and continuous rewards.
#
# Runs on CPU in well under a minute. In Colab, first install the repository
# (uncomment the line in the next cell and put in the repository's URL).

# %%
# In Colab: !pip install -q "git+<rlvr_jax repository URL>"
import os
import sys

# In a checkout (run from the repository root or from colabs/), use that copy.
for root in (os.getcwd(), os.path.dirname(os.getcwd())):
  if os.path.isdir(os.path.join(root, "rlvr_jax")):
    sys.path.insert(0, root)
    break

import jax
import matplotlib.pyplot as plt
import numpy as np

from rlvr_jax import advantages
from rlvr_jax import metrics

print("estimators:", ", ".join(advantages.names()))

# %% [markdown]
# ## 1. Advantage curves: GRPO vs Pass@k
#
# One row per N_pos = 0..N: row c holds c correct (reward 1) and N - c wrong
# rollouts. Column 0 is always a correct response (when there is one), the last
# column a wrong one, so `adv[:, 0]` is A_pos and `adv[:, -1]` is A_neg.
#
# GRPO (= Pass@1) gives the problems with half the rollouts right the largest
# total update (eta peaks at N_pos = N/2). The analytical Pass@k advantage
# (group reward = max over k members, averaged exactly over all groups) moves
# the peak to harder problems: N_pos = N/(2k) for the examples here.

# %%
N = 32
n_pos = np.arange(N + 1)
rewards_rows = (np.arange(N)[None, :] < n_pos[:, None]).astype(np.float32)

curve_set = [
    ("grpo (Pass@1)", "grpo", {}),
    ("Pass@4 analytical", "passk_analytical", {"k": 4}),
    ("Pass@8 analytical", "passk_analytical", {"k": 8}),
    ("combination k=4", "passk_combination", {"k": 4}),
    ("Pass@4, easy > 0.6 masked", "passk_analytical", {"k": 4, "easy_threshold": 0.6}),
]

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for label, name, params in curve_set:
  adv, _ = advantages.compute(name, rewards_rows, **params)
  adv = np.asarray(adv)
  a_pos = np.where(n_pos > 0, adv[:, 0], np.nan)
  a_neg = np.where(n_pos < N, adv[:, -1], np.nan)
  eta = np.asarray(metrics.eta(adv))
  for ax, y in zip(axes, (a_pos, a_neg, eta)):
    ax.plot(n_pos, y, marker=".", label=label)
  print(f"{label:28s} eta is largest at N_pos = {int(np.argmax(eta))}")
for ax, title in zip(axes, ("A_pos", "A_neg", "eta = sum |A|")):
  ax.set(title=f"{title} (N = {N})", xlabel="N_pos")
  ax.grid(alpha=0.3)
axes[2].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. pass@k: the quantity Pass@k training maximizes
#
# `metrics.pass_at_k(n, c, k)` is the unbiased estimate
# 1 - C(n - c, k) / C(n, k), computed as a product in log space so that it stays
# exact in float32 even for n = 1024, k = 512. The analytical Pass@k advantage
# standardizes group rewards whose mean is exactly this number.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for k in (1, 2, 4, 8, 16):
  ax.plot(n_pos, np.asarray(metrics.pass_at_k(N, n_pos, k)), label=f"k = {k}")
ax.set(xlabel="N_pos (of N = 32)", ylabel="pass@k", title="Unbiased pass@k estimate")
ax.legend()
ax.grid(alpha=0.3)
plt.show()
print("float32 pass@512 with n = 1024, c = 1:",
      float(metrics.pass_at_k(1024, 1, 512)), "(exact: 0.5)")

# %% [markdown]
# ## 3. Bootstrap sampling vs the analytical advantage
#
# `passk_bootstrap` draws `num_groups` = G random groups of k rollouts,
# standardizes the group rewards and gives each rollout the sum of its groups'
# advantages. Each rollout sits in G k / N groups on average, so the mean over
# PRNG keys approaches (G k / N) times the analytical advantage. It is not
# unbiased for finite G: the groups are normalized by their own sample mean and
# std, and near N_pos = N - k a group with no correct member is rare (1 in
# C(N, k)), so many draws contain none and give all-zero advantages. Below,
# N = 8, k = 4: the ratio of the Monte-Carlo mean over 256 keys to the target,
# with 2-standard-error bars, for a small and a large G.

# %%
N_small, k = 8, 4
# 0 < N_pos <= N - k: above that every group of 4 holds a correct rollout, all zeros.
c_small = np.arange(1, N_small - k + 1)
r_small = (np.arange(N_small)[None, :] < c_small[:, None]).astype(np.float32)
analytical, _ = advantages.compute("passk_analytical", r_small, k=k)
keys = jax.random.split(jax.random.key(0), 256)

fig, ax = plt.subplots(figsize=(6, 4))
for G, shift in ((16, -0.06), (256, 0.06)):
  target = np.asarray(analytical) * G * k / N_small
  bootstrap = jax.jit(jax.vmap(lambda key, G=G: advantages.compute(
      "passk_bootstrap", r_small, k=k, key=key, num_groups=G)[0]))
  draws = np.asarray(bootstrap(keys))
  mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
  for col, label, marker in ((0, "A_pos", "o"), (N_small - 1, "A_neg", "s")):
    ratio = mean[:, col] / target[:, col]
    ax.errorbar(c_small + shift, ratio, yerr=2 * se[:, col] / np.abs(target[:, col]),
                fmt=marker, capsize=3, label=f"G = {G}, {label}")
    print(f"G = {G:3d} {label}: bootstrap mean / target = {np.round(ratio, 3)}")
ax.axhline(1.0, color="k", lw=1)
ax.set(xlabel="N_pos (of N = 8)", ylabel="bootstrap mean / ((G k / N) x analytical)",
       title=f"Bootstrap vs analytical, k = {k}", xticks=c_small)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 4. Bayesian Boundary Gating (our reading of the paper)
#
# With a Beta(alpha, beta) prior and m successes out of n, BBG's utility u(m)
# is the posterior mean of d pass@K / dp. Problems below a threshold are gated
# out of the loss (`info["gated"]`); unsolved problems (m = 0) get a small signed
# REINFORCE term instead of GRPO's zero. Larger K concentrates the update on the
# hardest solved problems. The defaults follow the cited Eq. 9, gate
# u(m) < tau (n + 1), and weight kept problems by u(m) / u(1); this plot uses
# the first reading, gate and weight by u(m) / u(0) (`gate_norm="u0"`,
# `weight_norm="u0"`; rlvr_jax/advantages/bbg.py).

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for K in (4, 16, 64, 256):
  _, info = advantages.compute("bbg", rewards_rows, k=K, tau=0.01, gate_norm="u0",
                              weight_norm="u0")
  weight, gated = np.asarray(info["weight"]), np.asarray(info["gated"])
  ax.semilogy(n_pos, np.maximum(weight, 1e-12), marker=".", label=f"K = {K}")
  print(f"K = {K:3d}: problems with N_pos >= {int(np.argmax(gated))} are gated"
        if gated.any() else f"K = {K:3d}: nothing gated")
ax.axhline(0.01, color="k", ls="--", lw=1, label="tau = 0.01")
ax.set(xlabel="N_pos (of N = 32)", ylabel="weight u(m) / u(0)", ylim=(1e-8, 2),
       title="BBG boundary weight")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 5. PKPO: unbiased pass@k gradients for any reward
#
# PKPO (Walder & Karkhanis, 2025) gives per-sample weights a_i such that
# sum_i a_i grad log pi(y_i) is an unbiased estimate of grad E[max of k
# samples]. The rewards need not be binary. With the leave-one-out baseline
# (`baseline="loo_minus_one"`, the default) a sample's weight is the average,
# over the size-k subsets containing it, of how much it raises the subset's
# maximum: the lowest-ranked sample gets 0 and the weights grow with rank.
#
# Below: weights of N = 16 continuous rewards for several k. Larger k puts
# nearly all the weight on the top few samples.

# %%
rng = np.random.default_rng(0)
f = np.sort(rng.normal(size=16)).astype(np.float32)[None, :]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for k in (1, 2, 4, 8):
  for ax, baseline in zip(axes, ("none", "loo_minus_one")):
    adv, _ = advantages.compute("pkpo", f, k=k, baseline=baseline)
    ax.plot(f[0], np.asarray(adv)[0], marker="o", label=f"k = {k}")
for ax, baseline in zip(axes, ("none", "loo_minus_one")):
  ax.set(xlabel="reward", ylabel="weight a_i", title=f"PKPO weights, baseline = {baseline}")
  ax.legend()
  ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# **Unbiasedness on a toy policy.** A softmax policy over M = 4 answers with
# rewards (0, 0.3, 0.7, 1). The exact objective is J(theta) = E[max of k draws],
# whose gradient autodiff gives us. Sampling n = 8 answers for each of 20,000
# independent problems and averaging sum_i a_i (onehot(y_i) - pi) recovers it.

# %%
M, n, k, T = 4, 8, 3, 20_000
theta = np.array([0.5, -0.2, 0.1, -0.6], np.float32)
f_M = np.array([0.0, 0.3, 0.7, 1.0], np.float32)


def expected_max(theta):
  # rewards are sorted ascending: P(max of k = f_m) = F_m^k - F_{m-1}^k.
  cdf = jax.numpy.cumsum(jax.nn.softmax(theta))
  prev = jax.numpy.concatenate([jax.numpy.zeros(1), cdf[:-1]])
  return jax.numpy.sum(f_M * (cdf ** k - prev ** k))


exact = np.asarray(jax.grad(expected_max)(theta))
p = np.asarray(jax.nn.softmax(theta))
y_TxN = np.asarray(jax.random.categorical(jax.random.key(1), np.log(p), shape=(T, n)))
a_TxN, _ = advantages.compute("pkpo", f_M[y_TxN], k=k)
per_problem_TxM = np.einsum("tn,tnm->tm", np.asarray(a_TxN), np.eye(M)[y_TxN] - p)
estimate = per_problem_TxM.mean(0)
se = per_problem_TxM.std(0, ddof=1) / np.sqrt(T)
print("exact grad      ", np.round(exact, 4))
print("PKPO estimate   ", np.round(estimate, 4))
print("standard error  ", np.round(se, 4))
print("|estimate - exact| / standard error", np.round(np.abs(estimate - exact) / se, 1))

# %% [markdown]
# ## Masks and jit
#
# Every estimator takes a validity mask (problems may have different numbers of
# valid rollouts; masked entries get 0 and do not affect the others) and runs
# under `jax.jit` with its parameters static.

# %%
r = np.array([[1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], np.float32)
valid = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)
fn = jax.jit(lambda r, v: advantages.compute("passk_analytical", r, v, k=2)[0])
print(np.round(np.asarray(fn(r, valid)), 3))
print(np.round(np.asarray(advantages.compute("passk_analytical", r[1:, :4], k=2)[0]), 3),
      "<- second problem with the masked rollouts removed")
