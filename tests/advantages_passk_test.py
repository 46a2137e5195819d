"""Pass@k estimators against float64 brute force and the PAPERS.md table."""

import itertools
import math
from fractions import Fraction

import jax
import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.advantages import passk_sampling


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


# N = 10 takes the pairwise-rank path, N = 80 the sort path (PAIRWISE_MAX_N = 64).
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


@pytest.mark.parametrize("k", [2, 3, 17])  # k = 17 takes the top_k path
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
