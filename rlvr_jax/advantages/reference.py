"""Per-problem float64 reference implementations (slow; for tests and benchmarks).

Written the straightforward way the papers' public code computes advantages:
a Python loop over problems, NumPy / math.comb on each problem's valid
rewards. `batched(name, rewards_BxN, valid_BxN, **params)` loops over
problems and returns [B, N] float64 advantages (invalid rollouts 0).
Random estimators take a NumPy Generator `rng` instead of a JAX key.
"""

import itertools
import math

import numpy as np

# Same rule as rlvr_jax.advantages._common.EQUAL_SPREAD: rewards closer than
# float32's smallest normal number count as equal.
EQUAL_SPREAD = float(np.finfo(np.float32).tiny)


def _constant(r):
  return r.max() - r.min() < EQUAL_SPREAD


def grpo(r, ddof=0, eps=0.0):
  if _constant(r) or len(r) - ddof <= 0:
    return np.zeros_like(r)
  return (r - r.mean()) / (r.std(ddof=ddof) + eps)


def grpo_passk(r, ddof=1, eps=0.0, normalize=True):
  """verl's grpo_passk: the best response gets max - second max, the others 0."""
  adv = np.zeros_like(r)
  if len(r) < 2 or _constant(r):
    return adv
  best, second = np.argsort(-r, kind="stable")[:2]
  adv[best] = r[best] - r[second]
  if normalize:
    adv[best] /= r.std(ddof=ddof) + eps
  return adv


def dr_grpo(r):
  return np.zeros_like(r) if _constant(r) else r - r.mean()


def rloo(r):
  n = len(r)
  if n < 2 or _constant(r):
    return np.zeros_like(r)
  return r - (r.sum() - r) / (n - 1)


def passk_analytical(r, k):
  n, c = len(r), int(r.sum())
  if n < k or c == 0 or n - c < k:
    return np.zeros_like(r)
  big_r = 1 - math.comb(n - c, k) / math.comb(n, k)
  sig = math.sqrt(big_r * (1 - big_r))
  a_pos = (1 - big_r) / sig
  a_neg = (1 - big_r - math.comb(n - c - 1, k - 1) / math.comb(n - 1, k - 1)) / sig
  return np.where(r > 0, a_pos, a_neg)


def passk_combination(r, k, ddof=0):
  acc = r.mean()
  return acc * passk_analytical(r, k) + (1 - acc) * grpo(r, ddof)


def passk_exceeding(r, k, log_base=math.e):
  c = r.sum()
  f = 0.4 / math.log(c + 0.5, log_base) if c > 0 else 0.0
  return f * passk_analytical(r, k)


def passk_full(r, k, rng):
  n = len(r)
  perm = rng.permutation(n)
  g = n // k
  adv = np.zeros_like(r)
  if g == 0:
    return adv
  groups = perm[:g * k].reshape(g, k)
  g_adv = grpo(r[groups].max(axis=1))
  for j in range(g):
    adv[groups[j]] = g_adv[j]
  return adv


def passk_bootstrap(r, k, rng, num_groups=None, reduce="sum"):
  n = len(r)
  G = n if num_groups is None else num_groups
  if n < k:
    return np.zeros_like(r)
  groups = np.stack([rng.choice(n, k, replace=False) for _ in range(G)])
  g_adv = grpo(r[groups].max(axis=1))
  total, count = np.zeros(n), np.zeros(n)
  for j in range(G):
    total[groups[j]] += g_adv[j]
    count[groups[j]] += 1
  if reduce == "mean":
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)
  return total


def bbg(r, k=256, tau=0.01, alpha=1.0, beta=1.0, zero_success_coef=0.1, base="grpo",
        ddof=0, gate_norm="n+1", weight_norm="u1", zero_success_only=False):
  n, m = len(r), int(r.sum())

  def log_u(m):  # log u(m; n, k) by lgamma, in float64
    return (math.log(k) + math.lgamma(n - m + beta + k - 1) - math.lgamma(n - m + beta)
            - math.lgamma(n + alpha + beta + k - 1) + math.lgamma(n + alpha + beta))
  norm = math.log(n + 1) if gate_norm == "n+1" else log_u(0)
  if (tau > 0 and log_u(m) < math.log(tau) + norm) or (zero_success_only and m > 0):
    return np.zeros_like(r)
  if m == 0:
    return np.full_like(r, -zero_success_coef)
  w = 1.0 if weight_norm == "none" else math.exp(log_u(m) - log_u(1 if weight_norm == "u1" else 0))
  base_adv = {"grpo": lambda: grpo(r, ddof), "dr_grpo": lambda: dr_grpo(r),
              "rloo": lambda: rloo(r)}[base]()
  return w * base_adv


def pkpo(r, k, baseline="loo_minus_one"):
  """Sums over sorted ranks with math.comb weights (see rlvr_jax.advantages.pkpo)."""
  n = len(r)
  if n < k:
    return np.zeros_like(r)
  order = np.argsort(r, kind="stable")
  f = r[order]
  total = math.comb(n, k)
  # 0-based sorted position i is rank i + 1.
  w_top = np.array([math.comb(i, k - 1) / total for i in range(n)])        # max at i
  if baseline == "none":
    w_up = np.array([math.comb(j - 1, k - 2) / total if k >= 2 and j >= 1 else 0.0
                     for j in range(n)])                                    # max at j > i
    above = np.cumsum((w_up * f)[::-1])[::-1] - w_up * f
    s = w_top * f + above
  elif baseline == "sloo":
    # s_i minus k / (n - 1) times the max@k estimate of the others (by subsets).
    s = pkpo(r, k, "none")[order]
    if n > k:
      for i in range(n):
        others = np.delete(f, i)
        rho = np.mean([max(others[list(S)]) for S in itertools.combinations(range(n - 1), k)])
        s[i] -= k * rho / (n - 1)
  elif k == 1:
    s = (f - (f.sum() - f) / (n - 1)) / n if n > 1 else np.zeros(n)
  else:
    # a_i = sum_{j<i} C(j, k-2) (f_i - f_j) / C(n, k)
    w = np.array([math.comb(j, k - 2) / total for j in range(n)])
    cw = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    cwf = np.concatenate([[0.0], np.cumsum(w * f)[:-1]])
    s = f * cw - cwf
  adv = np.zeros(n)
  adv[order] = s
  return adv


def adaptive_entropy_batch(rewards_BxN, valid_BxN, entropy_BxN, k, fraction=0.5, ddof=0):
  B = rewards_BxN.shape[0]
  has = valid_BxN.any(axis=1)
  ent = np.array([entropy_BxN[b][valid_BxN[b]].mean() if has[b] else -np.inf
                  for b in range(B)])
  order = sorted(range(B), key=lambda b: (-ent[b], b))
  num_high = math.floor(fraction * has.sum() + 0.5)
  high = set(order[:num_high])
  out = np.zeros(rewards_BxN.shape)
  for b in range(B):
    r = rewards_BxN[b][valid_BxN[b]].astype(np.float64)
    if len(r):
      out[b, valid_BxN[b]] = grpo(r, ddof) if b in high else passk_analytical(r, k)
  return out


PER_PROBLEM = {
    "grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo, "passk_analytical": passk_analytical,
    "passk_combination": passk_combination, "passk_exceeding": passk_exceeding,
    "passk_full": passk_full, "passk_bootstrap": passk_bootstrap, "bbg": bbg, "pkpo": pkpo,
    "grpo_passk": grpo_passk,
}


def batched(name, rewards_BxN, valid_BxN=None, **params):
  """Loops over problems; [B, N] float64 advantages, 0 at invalid rollouts."""
  rewards_BxN = np.asarray(rewards_BxN, np.float64)
  valid_BxN = (np.ones(rewards_BxN.shape, bool) if valid_BxN is None
               else np.asarray(valid_BxN, bool))
  if name == "adaptive_entropy":
    entropy_BxN = np.asarray(params.pop("entropy_BxN"), np.float64)
    return adaptive_entropy_batch(rewards_BxN, valid_BxN, entropy_BxN, **params)
  fn = PER_PROBLEM[name]
  out = np.zeros(rewards_BxN.shape)
  for b in range(rewards_BxN.shape[0]):
    r = rewards_BxN[b][valid_BxN[b]]
    if len(r):
      out[b, valid_BxN[b]] = fn(r, **params)
  return out
