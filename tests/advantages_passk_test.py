"""Pass@k estimators against float64 brute force and the PAPERS.md table."""

import itertools
import math
from fractions import Fraction

import jax
import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.advantages import passk_sampling, reference


def _enumerated_groups_adv(N, k, c):
  """Float64 brute force of the bootstrap over ALL C(N, k) groups.

  Rollouts 0..c-1 are correct. Group reward = max, normalized with the
  population mean / std over all groups. Returns (mean form, sum form) per rollout.
  """
  groups = np.array(list(itertools.combinations(range(N), k)))
  r = (np.arange(N) < c).astype(np.float64)
  g = r[groups].max(axis=1)
  std = g.std()
  g_adv = (g - g.mean()) / std if std > 0 else np.zeros_like(g)
  member = np.zeros((len(groups), N))
  np.put_along_axis(member, groups, 1.0, axis=1)
  total = member.T @ g_adv
  return total / member.sum(axis=0), total


def _rows(N_max, N, cs):
  """Rows of width N_max: the first N entries valid, the first c of them correct."""
  r = np.zeros((len(cs), N_max), np.float32)
  v = np.zeros((len(cs), N_max), bool)
  for i, c in enumerate(cs):
    r[i, :c] = 1
    v[i, :N] = True
  return r, v


def test_analytical_equals_brute_force_for_every_small_case():
  # Every N <= 12, k <= N and N_pos, as one masked batch per k (width 12):
  # this also checks that padding columns do not influence valid ones.
  N_max = 12
  for k in range(1, N_max + 1):
    cases = [(N, c) for N in range(k, N_max + 1) for c in range(N + 1)]
    r = np.zeros((len(cases), N_max), np.float32)
    v = np.zeros((len(cases), N_max), bool)
    for i, (N, c) in enumerate(cases):
      r[i, :c] = 1
      v[i, :N] = True
    r[~v] = 7.0  # garbage in padding must not matter
    adv, _ = advantages.compute("passk_analytical", r, v, k=k)
    adv = np.asarray(adv, np.float64)
    for i, (N, c) in enumerate(cases):
      mean_form, _ = _enumerated_groups_adv(N, k, c)
      np.testing.assert_allclose(adv[i, :N], mean_form, rtol=2e-6, atol=2e-7,
                                 err_msg=f"N={N} k={k} c={c}")
      assert np.all(adv[i, N:] == 0)


@pytest.mark.parametrize("N,k", [(5, 2), (8, 4), (9, 3), (10, 5), (12, 6)])
def test_bootstrap_over_all_groups_equals_sum_form(N, k):
  # Sum form over all C(N, k) groups = C(N-1, k-1) * analytical (each rollout is
  # in C(N-1, k-1) groups and the mean over them is the analytical advantage).
  groups = np.array(list(itertools.combinations(range(N), k)), np.int32)
  r, v = _rows(N, N, range(N + 1))
  groups_BxGxK = np.broadcast_to(groups, (N + 1,) + groups.shape)
  adv_sum = passk_sampling.bootstrap_from_groups(r, v, groups_BxGxK, "sum")
  adv_mean = passk_sampling.bootstrap_from_groups(r, v, groups_BxGxK, "mean")
  analytical, _ = advantages.compute("passk_analytical", r, v, k=k)
  for c in range(N + 1):
    mean_form, sum_form = _enumerated_groups_adv(N, k, c)
    np.testing.assert_allclose(adv_sum[c], sum_form, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(adv_mean[c], mean_form, rtol=2e-5, atol=2e-6)
  np.testing.assert_allclose(adv_sum, math.comb(N - 1, k - 1) * np.asarray(analytical),
                             rtol=2e-5, atol=2e-5)


# PAPERS.md reference table: (N, k, N_pos, R, A_pos, A_neg).
TABLE = [
    (8, 4, 1, 0.500000, 1.000000, -0.142857),
    (8, 4, 2, 0.785714, 0.522233, -0.174078),
    (8, 4, 4, 0.985714, 0.120386, -0.120386),
    (8, 4, 5, 1.0, 0.0, 0.0), (8, 4, 6, 1.0, 0.0, 0.0), (8, 4, 7, 1.0, 0.0, 0.0),
    (8, 4, 8, 1.0, 0.0, 0.0),
    (32, 8, 1, 0.250000, 1.732051, -0.055873),
    (32, 8, 8, 0.930077, 0.274189, -0.091396),
    (32, 4, 1, 0.125000, 2.645751, -0.085347),
    (32, 4, 8, 0.704505, 0.647639, -0.215880),
]


@pytest.mark.parametrize("N,k,c,R,a_pos,a_neg", TABLE)
def test_reference_table(N, k, c, R, a_pos, a_neg):
  r, _ = _rows(N, N, [c])
  adv, info = advantages.compute("passk_analytical", r, k=k)
  # The table has 6 decimals, so it is met to half a unit of the 6th decimal.
  np.testing.assert_allclose(float(info["group_reward"][0]), R, atol=1e-5)
  np.testing.assert_allclose(float(adv[0, 0]), a_pos, atol=1e-5)
  if c < N:
    np.testing.assert_allclose(float(adv[0, -1]), a_neg, atol=1e-5)


def test_analytical_n1024_k512_float32_exact():
  # Exact rationals (math.comb) against the float32 path for every N_pos.
  # Log-space evaluation loses ~eps * |log A| * (a few terms) relatively, so
  # values >= 1e-3 are met to 2e-6 and everything to 1e-7 absolute.
  N, k = 1024, 512
  r, _ = _rows(N, N, range(N + 1))
  adv, _ = advantages.compute("passk_analytical", r, k=k)
  adv = np.asarray(adv, np.float64)
  assert np.all(np.isfinite(adv))
  for c in range(0, N + 1, 7):
    if c == 0 or N - c < k:
      assert np.all(adv[c] == 0)
      continue
    ratio = Fraction(math.comb(N - c, k), math.comb(N, k))
    q = Fraction(math.comb(N - c - 1, k - 1), math.comb(N - 1, k - 1))
    sig = math.sqrt(float((1 - ratio) * ratio))
    want_pos, want_neg = float(ratio) / sig, -float(Fraction(c, N) * q) / sig
    for got, want in ((adv[c, 0], want_pos), (adv[c, -1], want_neg)):
      assert abs(got - want) <= max(1e-7 if abs(want) < 1e-3 else 0, 2e-6 * abs(want)), (
          c, got, want)


def test_k1_equals_grpo_ddof0():
  rng = np.random.default_rng(0)
  r = (rng.random((64, 16)) < rng.random((64, 1))).astype(np.float32)
  v = rng.random((64, 16)) < 0.8
  a1, _ = advantages.compute("passk_analytical", r, v, k=1)
  g, _ = advantages.compute("grpo", r, v, ddof=0)
  np.testing.assert_allclose(a1, g, rtol=1e-5, atol=1e-6)


def test_combination_and_exceeding_formulas():
  N, k = 16, 4
  r, _ = _rows(N, N, range(N + 1))
  a_k, _ = advantages.compute("passk_analytical", r, k=k)
  a_1, _ = advantages.compute("grpo", r)
  comb, _ = advantages.compute("passk_combination", r, k=k)
  exc, _ = advantages.compute("passk_exceeding", r, k=k)
  exc2, _ = advantages.compute("passk_exceeding", r, k=k, log_base=2.0)
  c = np.arange(N + 1)[:, None]
  np.testing.assert_allclose(comb, (c / N) * a_k + (1 - c / N) * a_1, rtol=1e-6, atol=1e-7)
  f_e = np.where(c > 0, 0.4 / np.log(np.maximum(c, 1) + 0.5), 0.0)
  f_2 = np.where(c > 0, 0.4 / np.log2(np.maximum(c, 1) + 0.5), 0.0)
  np.testing.assert_allclose(exc, f_e * a_k, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(exc2, f_2 * a_k, rtol=1e-6, atol=1e-7)


def test_bootstrap_monte_carlo_converges_with_shrinking_standard_error():
  # Mean over keys of the bootstrap -> (G k / N) * analytical (sum form) and
  # analytical (mean form), up to the O(1/G) relative bias of normalizing by
  # the mean / std of G sampled groups (a ratio estimator). Delta method, N=8,
  # k=4, c=1: the correct rollout's sum is G sqrt(g (1-g)) with g the fraction
  # of groups holding it, whose mean is G/2 - 1/4 + O(1/G): 0.05% below target.
  # So the tolerance is 4.5 standard errors plus 2/G relative.
  N, k, G = 8, 4, 1024
  r, _ = _rows(N, N, [1, 2, 3])
  analytical = np.asarray(advantages.compute("passk_analytical", r, k=k)[0], np.float64)
  fn = jax.jit(lambda key: advantages.compute("passk_bootstrap", r, k=k, key=key,
                                              num_groups=G)[0])
  fn_mean = jax.jit(lambda key: advantages.compute("passk_bootstrap", r, k=k, key=key,
                                                   num_groups=G, reduce="mean")[0])
  keys = jax.random.split(jax.random.key(0), 1024)
  draws = np.stack([np.asarray(fn(key), np.float64) for key in keys])
  draws_mean = np.stack([np.asarray(fn_mean(key), np.float64) for key in keys])
  target = G * k / N * analytical
  ses = []
  for M in (64, 256, 1024):
    mean, se = draws[:M].mean(0), draws[:M].std(0, ddof=1) / math.sqrt(M)
    assert np.all(np.abs(mean - target) <= 4.5 * se + 2 / G * np.abs(target)), (M, mean, target)
    ses.append(se.mean())
  # 4x the draws halves the standard error (within sampling noise of the std).
  assert 1.6 < ses[0] / ses[1] < 2.5 and 1.6 < ses[1] / ses[2] < 2.5, ses
  m_mean = draws_mean.mean(0)
  se_mean = draws_mean.std(0, ddof=1) / math.sqrt(len(keys))
  assert np.all(np.abs(m_mean - analytical) <= 4.5 * se_mean + 2 / G * np.abs(analytical))
  # The check has power: an estimator off by 5% would fail it.
  assert np.any(np.abs(draws.mean(0) - 1.05 * target) > 4.5 * ses[2] + 2 / G * np.abs(target))


# Two widths, N = 10 and N = 80 (once two code paths; one now, checked at both sizes).
@pytest.mark.parametrize("N", [10, 80])
def test_full_sampling_groups_and_leftovers(N):
  k = 3
  rng = np.random.default_rng(3)
  r = (rng.random((32, N)) < 0.3).astype(np.float32)
  v = np.ones((32, N), bool)
  v[:8, N - 2:] = False  # N - 2 valid: (N - 2) // 3 groups, 2 left over
  adv, info = advantages.compute("passk_full", r, v, k=k, key=jax.random.key(0))
  adv, used = np.asarray(adv), np.asarray(info["loss_mask_BxN"])
  n = v.sum(1)
  assert np.all(used.sum(1) == (n // k) * k)
  assert np.all(adv[~used] == 0)
  for b in range(32):
    # Members of one group share an advantage: at most n // k distinct values, and
    # the advantages of the used rollouts are GRPO-normalized group rewards.
    vals = adv[b, used[b]]
    assert len(np.unique(np.round(vals, 5))) <= n[b] // k
    assert abs(vals.sum()) < 1e-4
    # A correct rollout's group has reward 1, the maximum: its advantage is maximal.
    correct = used[b] & (r[b] == 1)
    if correct.any():
      assert np.all(adv[b, correct] >= vals.max() - 1e-6)


def test_adaptive_entropy_picks_high_entropy_problems_for_grpo():
  rng = np.random.default_rng(4)
  r = (rng.random((10, 8)) < 0.4).astype(np.float32)
  ent = np.repeat(np.arange(10, dtype=np.float32)[:, None], 8, axis=1)
  adv, info = advantages.compute("adaptive_entropy", r, k=4, entropy_BxN=ent, fraction=0.3)
  g, _ = advantages.compute("grpo", r)
  a4, _ = advantages.compute("passk_analytical", r, k=4)
  high = np.asarray(info["high_entropy"])
  assert high.tolist() == [False] * 7 + [True] * 3
  np.testing.assert_allclose(np.asarray(adv)[high], np.asarray(g)[high])
  np.testing.assert_allclose(np.asarray(adv)[~high], np.asarray(a4)[~high])


@pytest.mark.parametrize("k", [2, 3, 17])
def test_sample_groups_uniform_over_valid_subsets(k):
  # Row 0: 6 valid of 8 columns (scattered); row 1: all N valid. Every group has k
  # distinct valid columns, and each k-subset of row 0's valid columns appears with
  # frequency 1 / C(6, k) (within 5 standard errors of a binomial count).
  N = 8 if k < 6 else 20
  v = np.ones((2, N), bool)
  v[0, [1, 4]] = False
  G = 6000 if k < 6 else 64
  groups = np.asarray(passk_sampling.sample_groups(jax.random.key(k), v, G, k))
  assert groups.shape == (2, G, k)
  for b in range(2):
    assert np.all(v[b][groups[b]])
    assert all(len(set(g)) == k for g in groups[b].tolist())
  if k < 6:
    n = 6
    counts = {}
    for g in groups[0].tolist():
      counts[tuple(sorted(g))] = counts.get(tuple(sorted(g)), 0) + 1
    p = 1 / math.comb(n, k)
    assert len(counts) == math.comb(n, k)
    se = math.sqrt(G * p * (1 - p))
    assert max(abs(c - G * p) for c in counts.values()) < 5 * se, counts


def test_full_sampling_random_order_is_uniform():
  # passk_full's random order (N <= 64): invalid columns rank last in column
  # order, and the order of the valid ones is uniform over all 6! = 720
  # permutations (each count within 5 standard errors of its binomial mean).
  rows, N = 36000, 8
  v = np.ones((rows, N), bool)
  v[:, [2, 5]] = False
  ranks = np.asarray(jax.jit(passk_sampling._random_ranks)(jax.random.key(3), v))
  np.testing.assert_array_equal(ranks[:, [2, 5]], np.broadcast_to([6, 7], (rows, 2)))
  valid_ranks = ranks[:, v[0]]
  assert np.all(np.sort(valid_ranks, axis=1) == np.arange(6))
  codes = valid_ranks @ (6 ** np.arange(6))
  _, counts = np.unique(codes, return_counts=True)
  p = 1 / math.factorial(6)
  assert len(counts) == math.factorial(6)
  se = math.sqrt(rows * p * (1 - p))
  assert np.max(np.abs(counts - rows * p)) < 5 * se, (counts.min(), counts.max())


class _FixedRng:
  """Stands in for the NumPy Generator of `reference.passk_full` / `passk_bootstrap`.

  Hands out given permutations / groups in order, so the reference computes its
  advantage for one chosen random draw.
  """

  def __init__(self, draws):
    self.draws = list(draws)

  def permutation(self, n):
    perm = np.asarray(self.draws.pop(0))
    assert sorted(perm.tolist()) == list(range(n))
    return perm

  def choice(self, n, k, replace=True):
    assert not replace
    group = np.asarray(self.draws.pop(0))
    assert len(set(group.tolist())) == k and group.max() < n
    return group


def _check_frequencies(got_BxD, draws_MxD):
  """The rows of got_BxD (an estimator's outcomes) against the M equally likely reference
  outcomes draws_MxD of one random draw each: every row must match one distinct reference
  outcome (to 1e-5; distinct outcomes differ by far more in these cases, which the test
  checks), and each outcome must come up with its exact probability (its count within 5
  binomial standard errors)."""
  # Distinct reference outcomes (float64: equal ones agree to ~1e-15, far inside 1e-8).
  reps_ExD, draws_E = np.unique(np.round(draws_MxD, 8), axis=0, return_counts=True)
  probs_E = draws_E / len(draws_MxD)
  gaps_ExE = np.max(np.abs(reps_ExD[:, None, :] - reps_ExD[None, :, :]), axis=-1)
  assert np.all(gaps_ExE[~np.eye(len(reps_ExD), dtype=bool)] > 1e-3)
  uniq_UxD, counts_U = np.unique(got_BxD, axis=0, return_counts=True)
  dist_UxE = np.max(np.abs(uniq_UxD[:, None, :] - reps_ExD[None, :, :]), axis=-1)
  match_U = np.argmin(dist_UxE, axis=1)
  assert np.all(dist_UxE[np.arange(len(uniq_UxD)), match_U] < 1e-5), uniq_UxD[
      dist_UxE.min(axis=1) >= 1e-5][:3]
  rows = len(got_BxD)
  count_E = np.bincount(match_U, weights=counts_U, minlength=len(reps_ExD))
  for rep, p, count in zip(reps_ExD, probs_E, count_E):
    se = math.sqrt(rows * p * (1 - p))
    assert abs(count - rows * p) < 5 * se, (rep, count, rows * p)


# (rewards, valid, k): one problem each, its row repeated FULL_ROWS times in one call. All
# are 7 wide, so the estimator compiles once a k (here and in the key test below).
FULL_ROWS = 12000
FULL_CASES = [
    # 5 valid of 7 (columns 2 and 6 padding, garbage rewards): 2 pairs and 1 left over, 15
    # equally likely splits, distinct rewards so that every split has its own advantages.
    ([0.1, 0.7, np.nan, 0.3, 0.9, 0.5, 4.0], [1, 1, 0, 1, 1, 1, 0], 2),
    # Binary with ties, 6 valid: the two correct rollouts share a group (prob 2/5: adv +-1)
    # or not (both groups reward 1: all 0).
    ([1, 1, 0, 0, 0, 0, 1], [1] * 6 + [0], 3),
    # 7 valid, k = 3: 70 splits into two triples and a left-over.
    ([0.2, -1.0, 0.5, 3.0, 0.0, 1.5, 0.8], [1] * 7, 3),
]


@pytest.mark.parametrize("rewards,valid,k", FULL_CASES)
def test_full_sampling_distribution_equals_reference_over_all_permutations(rewards, valid, k):
  # Brute force: every permutation of the valid rollouts, through reference.passk_full,
  # gives the exact distribution of (advantages, loss mask). Each of the estimator's rows
  # must be one of those outcomes, and each outcome must come up with its exact
  # probability (counts within 5 binomial standard errors over `rows` draws).
  r = np.array(rewards, np.float32)
  v = np.array(valid, bool)
  n = int(v.sum())
  idx = np.flatnonzero(v)
  draws = []  # (advantages, loss mask) of each permutation
  for perm in itertools.permutations(range(n)):
    adv = np.zeros(len(r))
    adv[idx] = reference.passk_full(r[v].astype(np.float64), k, _FixedRng([perm]))
    used = np.zeros(len(r))
    used[idx[list(perm[:(n // k) * k])]] = 1
    draws.append(np.concatenate([adv, used]))
  adv, info = advantages.compute("passk_full", np.tile(r, (FULL_ROWS, 1)),
                                 np.tile(v, (FULL_ROWS, 1)), k=k, key=jax.random.key(17))
  _check_frequencies(np.concatenate([adv, info["loss_mask_BxN"]], axis=1, dtype=np.float64),
                     np.stack(draws))


# Two widths, N = 10 and N = 80 (once two code paths; one now, checked at both sizes).
@pytest.mark.parametrize("N", [10, 80])
def test_full_sampling_equals_reference_for_the_split_it_made(N):
  # With distinct rewards, distinct groups have distinct maxima and so distinct
  # advantages: the rollouts sharing an advantage value are exactly one group, which
  # recovers the split. It must hold n // k groups of exactly k valid rollouts, the
  # n mod k others out of the loss with advantage 0, and its advantages must be the
  # reference's (GRPO over the group maxima, reference.grpo) for that split.
  k = 3
  rng = np.random.default_rng(5)
  B = 32  # the shapes of test_full_sampling_groups_and_leftovers: one compilation
  r = np.stack([rng.permutation(N) / N - 0.5 for _ in range(B)]).astype(np.float32)
  v = np.ones((B, N), bool)
  for b in range(B):
    v[b, rng.choice(N, size=b % 5, replace=False)] = False  # 0..4 padding rollouts
  v[-1, 2:] = False  # 2 valid < k: no group at all
  r[~v] = np.nan
  adv, info = advantages.compute("passk_full", r, v, k=k, key=jax.random.key(1))
  adv, used = np.asarray(adv, np.float64), np.asarray(info["loss_mask_BxN"])
  for b in range(B):
    n = int(v[b].sum())
    assert np.all(adv[b][~used[b]] == 0)
    assert not np.any(used[b] & ~v[b]) and used[b].sum() == (n // k) * k
    values, members = np.unique(adv[b][used[b]], return_inverse=True)
    cols = np.flatnonzero(used[b])
    groups = [cols[members == g] for g in range(len(values))]
    assert len(groups) == n // k and all(len(g) == k for g in groups), (b, adv[b])
    if groups:
      want = reference.grpo(np.array([r[b, g].max() for g in groups], np.float64))
      np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6)


def test_full_sampling_split_is_uniform_on_the_sort_path():
  # N = 80 (the brute-force test above covers a small width). Over
  # many problems with the same 78 valid rollouts, k = 4 (19 groups, 2 left over), two
  # valid rollouts share a group with probability g k (k - 1) / (n (n - 1)) (of the
  # n (n - 1) ordered position pairs, g k (k - 1) lie in one group), and one is left
  # over with probability (n - g k) / n. Co-grouping is read off equal advantages of
  # distinct rewards, as above. Every frequency must be within 5 standard errors.
  N, k, rows = 80, 4, 3000
  v = np.ones((rows, N), bool)
  v[:, [7, 50]] = False
  r = np.tile((np.arange(N) / N).astype(np.float32), (rows, 1))
  adv, info = advantages.compute("passk_full", r, v, k=k, key=jax.random.key(2))
  adv, used = np.asarray(adv), np.asarray(info["loss_mask_BxN"])
  cols = np.flatnonzero(v[0])
  n, g = len(cols), len(cols) // k
  a, u = adv[:, cols], used[:, cols]
  same = (a[:, :, None] == a[:, None, :]) & u[:, :, None] & u[:, None, :]
  freq = same.mean(0)[~np.eye(n, dtype=bool)]
  p = g * k * (k - 1) / (n * (n - 1))
  assert np.max(np.abs(freq - p)) < 5 * math.sqrt(p * (1 - p) / rows), (freq.min(), freq.max())
  left = (~u).mean(0)
  q = (n - g * k) / n
  assert np.max(np.abs(left - q)) < 5 * math.sqrt(q * (1 - q) / rows), (left.min(), left.max())


def test_full_sampling_split_depends_on_the_key():
  r = np.tile((np.arange(7) / 7).astype(np.float32), (FULL_ROWS, 1))
  a1 = np.asarray(advantages.compute("passk_full", r, k=2, key=jax.random.key(0))[0])
  a1_again = np.asarray(advantages.compute("passk_full", r, k=2, key=jax.random.key(0))[0])
  a2 = np.asarray(advantages.compute("passk_full", r, k=2, key=jax.random.key(1))[0])
  np.testing.assert_array_equal(a1, a1_again)
  # Problem 0 alone has 105 splits: two keys agree on it with prob 1/105, on all 12000
  # problems with prob ~105^-12000.
  assert not np.array_equal(a1, a2)


# (rewards, valid, k, num_groups, reduce, rows); k = 17 is a large group.
BOOTSTRAP_CASES = [
    ([0.3, -1.0, 2.0, np.nan, 0.9], [1, 1, 1, 0, 1], 2, 2, "sum", 7200),  # 36 draws
    ([0.3, -1.0, 2.0, np.nan, 0.9], [1, 1, 1, 0, 1], 2, 2, "mean", 7200),
    ([1, 0, 0, 1, 0, 0], [1] * 6, 3, 2, "mean", 8000),  # binary, ties: 400 draws
    (np.arange(19) / 19 - 0.3, [1] * 9 + [0] + [1] * 9, 17, 2, "sum", 16000),  # 18^2 draws
]


@pytest.mark.parametrize("rewards,valid,k,num_groups,reduce,rows", BOOTSTRAP_CASES)
def test_bootstrap_distribution_equals_reference_over_all_group_draws(
    rewards, valid, k, num_groups, reduce, rows):
  # Brute force: every sequence of num_groups k-subsets of the valid rollouts, through
  # reference.passk_bootstrap, gives the exact distribution of the advantages (each
  # sequence has probability C(n, k)^-num_groups). Every row of the estimator must be one
  # of those outcomes, each with its exact frequency (within 5 binomial standard errors).
  r = np.array(rewards, np.float32)
  v = np.array(valid, bool)
  n, idx = int(v.sum()), np.flatnonzero(v)
  subsets = list(itertools.combinations(range(n), k))
  draws = list(itertools.product(subsets, repeat=num_groups))
  want = np.zeros((len(draws), len(r)))
  for i, draw in enumerate(draws):
    want[i, idx] = reference.passk_bootstrap(r[v].astype(np.float64), k, _FixedRng(draw),
                                             num_groups=num_groups, reduce=reduce)
  adv, _ = advantages.compute("passk_bootstrap", np.tile(r, (rows, 1)), np.tile(v, (rows, 1)),
                              k=k, num_groups=num_groups, reduce=reduce, key=jax.random.key(3))
  _check_frequencies(np.asarray(adv, np.float64), want)
