"""metrics: pass@k against exact rationals, curves, eta, answer diversity."""

import math
from fractions import Fraction

import jax
import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax import metrics


def test_pass_at_k_exact_small():
  # Every n <= 12, c <= n, k <= n in one broadcast call, against math.comb.
  triples = np.array([(n, c, k) for n in range(1, 13) for c in range(n + 1)
                      for k in range(1, n + 1)], np.float32)
  got = np.asarray(metrics.pass_at_k(*triples.T, max_c=12))
  want = [1 - math.comb(int(n - c), int(k)) / math.comb(int(n), int(k)) for n, c, k in triples]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_pass_at_k_n1024_relative_accuracy():
  # The product form keeps float32 exactness where C(1024, 512) ~ 1e307
  # overflows float32 and lgamma differences lose ~1e-4. 1 - pass@k is checked
  # relatively (it spans 1 down to 1e-300, flushed to 0 below 1e-38).
  n, k = 1024, 512
  c = np.arange(0, 513)
  got = 1 - np.asarray(metrics.pass_at_k(np.full(c.shape, n), c, k), np.float64)
  got_direct = np.exp(np.asarray(metrics.log_comb_ratio(n, c, k, 1024), np.float64))
  for ci in range(0, 513, 11):
    want = float(Fraction(math.comb(n - ci, k), math.comb(n, k)))
    if want > 1e-6:
      assert abs(got[ci] - want) <= 1e-6, ci
    if want > 1e-30:
      assert abs(got_direct[ci] - want) <= 2e-5 * want, ci


def test_pass_at_k_jit_and_errors():
  f = jax.jit(lambda n, c: metrics.pass_at_k(n, c, 4, max_c=16))
  np.testing.assert_allclose(f(np.array([16.0, 8.0]), np.array([1.0, 8.0])),
                             [4 / 16, 1.0], rtol=1e-6)
  assert np.isnan(float(f(np.array([4.0]), np.array([5.0]))[0]))  # c > n under jit
  with pytest.raises(ValueError, match="k <= n"):
    metrics.pass_at_k(3, 1, 4)
  with pytest.raises(ValueError, match="c <= n"):
    metrics.pass_at_k(3, 4, 1)
  with pytest.raises(ValueError, match="max_c"):
    jax.jit(lambda n: metrics.pass_at_k(n, 1, 1))(4)


def test_pass_at_k_curve():
  assert metrics.default_ks(32) == [1, 2, 4, 8, 16, 32]
  assert metrics.default_ks(12) == [1, 2, 4, 8, 12]
  curve = metrics.pass_at_k_curve([8, 8], [0, 2])
  assert list(curve) == [1, 2, 4, 8]
  want = {k: 0.5 * (1 - math.comb(6, k) / math.comb(8, k)) for k in (1, 2, 4, 8)}
  for k in curve:
    np.testing.assert_allclose(curve[k], want[k], rtol=1e-6)


def test_eta_argmax_moves_to_harder_problems():
  # PAPERS.md: for N = 32, argmax over N_pos of eta is 16 (k=1), 8 (k=4), 4 (k=8).
  N = 32
  r = (np.arange(N)[None, :] < np.arange(N + 1)[:, None]).astype(np.float32)
  for k, want in ((1, 16), (4, 8), (8, 4)):
    adv, info = advantages.compute("passk_analytical", r, k=k)
    eta = np.asarray(metrics.eta(adv))
    assert int(np.argmax(eta)) == want, (k, eta)
    # eta = N_pos |A_pos| + N_neg |A_neg| for binary rewards.
    c = np.arange(N + 1)
    np.testing.assert_allclose(eta, c * np.abs(adv[:, 0]) + (N - c) * np.abs(adv[:, -1]),
                               rtol=1e-6)


def test_eta_masked():
  adv = np.array([[1.0, -2.0, 3.0]])
  assert float(metrics.eta(adv, np.array([[True, False, True]]))[0]) == 4.0
  with pytest.raises(ValueError, match="shape"):
    metrics.eta(adv, np.ones((1, 2), bool))


def test_answer_diversity():
  answers = [["a", "b", "a", None, "c"], ["x", "x", "x", "x", "x"]]
  rewards = np.array([[0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], np.float32)
  valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool)
  div, wrong = metrics.answer_diversity(answers, rewards, valid)
  # Problem 0: wrong answers a, b, a, None -> 3 distinct / 4 wrong. Problem 1: none wrong.
  np.testing.assert_allclose(div, [0.75, 0.0])
  assert wrong.tolist() == [4, 0]
  with pytest.raises(ValueError, match="rows"):
    metrics.answer_diversity(answers[:1], rewards, valid)


# Every way an (n, c, k) entry can break 0 <= c <= n, 1 <= k <= n.
BAD_NCK = [(4, -1, 1), (4, 5, 1), (4, 5, 5), (4, 2, 0), (4, 2, -1), (4, 2, 5), (4, 0, 5),
           (4, 4, 5), (4, 1, 5), (0, 0, 1), (3, 3, 4)]


def test_pass_at_k_bad_entries_are_nan_under_jit_and_errors_outside():
  # The docstring's contract: concrete bad input raises ValueError; under jit each bad
  # entry is NaN (so it cannot pass silently) and the good entries of the same call keep
  # their exact value 1 - C(n - c, k) / C(n, k).
  good = [(4, 1, 2), (4, 4, 4), (4, 0, 4), (8, 3, 6), (1, 1, 1)]
  triples = np.array(BAD_NCK + good, np.float32)
  f = jax.jit(lambda n, c, k: metrics.pass_at_k(n, c, k, max_c=8))
  got = np.asarray(f(*triples.T))
  assert np.all(np.isnan(got[:len(BAD_NCK)])), got[:len(BAD_NCK)]
  want = [1 - math.comb(n - c, k) / math.comb(n, k) for n, c, k in good]
  np.testing.assert_allclose(got[len(BAD_NCK):], want, rtol=1e-6)
  for n, c, k in BAD_NCK:
    # One bad entry alone, and hidden among good ones, is NaN under jit ...
    assert np.isnan(float(f(np.float32(n), np.float32(c), np.float32(k)))), (n, c, k)
    # ... and a ValueError outside jit, alone or in a batch.
    with pytest.raises(ValueError, match="pass_at_k needs"):
      metrics.pass_at_k(n, c, k)
    with pytest.raises(ValueError, match="pass_at_k needs"):
      metrics.pass_at_k(np.array([8, n]), np.array([1, c]), np.array([2, k]))


def test_pass_at_k_n256_against_exact_rationals():
  # Every c = 0..256 of n = 256 samples, k = 1, 2, 4, ..., 256, against math.comb fractions;
  # and the curve (mean over problems) against the exact rational mean.
  n = 256
  ks = metrics.default_ks(n)
  assert ks == [1, 2, 4, 8, 16, 32, 64, 128, 256]
  c = np.arange(n + 1)
  exact = [[1 - Fraction(math.comb(n - ci, k), math.comb(n, k)) for k in ks] for ci in c]
  got = metrics.pass_at_k_table(np.full(n + 1, n), c, ks)
  np.testing.assert_allclose(got, np.array(exact, np.float64), rtol=0, atol=1e-6)
  curve = metrics.pass_at_k_intervals(n, {"set": c}, num_boot=0)
  for j, k in enumerate(ks):
    want = sum(row[j] for row in exact) / len(exact)
    assert abs(curve[f"pass@{k}"] - float(want)) <= 1e-6, k
    assert curve[f"set/pass@{k}"] == curve[f"pass@{k}"]
  assert not any(key.endswith(("_lo", "_hi")) for key in curve)


def test_bootstrap_interval_by_hand():
  # One set of two problems with pass@1 a and b: a replicate's mean is a, (a+b)/2 or b with
  # probabilities 1/4, 1/2, 1/4, so the 2.5 and 97.5 percentiles are a and b.
  # (pass@k is 1 - a float32 ratio: exact to ~1 float32 ulp of 1, hence abs 1e-7.)
  out = metrics.pass_at_k_intervals(4, {"s": [1, 3]}, ks=[1], num_boot=4000, seed=3)
  eq = lambda x: pytest.approx(x, abs=1e-7)
  assert out["pass@1"] == eq(0.5) and out["s/pass@1"] == eq(0.5)
  assert (out["pass@1_lo"], out["pass@1_hi"]) == (eq(0.25), eq(0.75))
  assert (out["s/pass@1_lo"], out["s/pass@1_hi"]) == (eq(0.25), eq(0.75))
  # Identical problems: no spread. Two sets: the mean is over sets, not pooled problems.
  out = metrics.pass_at_k_intervals(8, {"a": [4, 4, 4], "b": [0]}, ks=[1, 8], num_boot=200)
  for key, want in (("a/pass@1", 0.5), ("a/pass@1_lo", 0.5), ("a/pass@1_hi", 0.5),
                    ("pass@1", 0.25), ("pass@1_lo", 0.25), ("pass@1_hi", 0.25), ("pass@8", 0.5)):
    assert out[key] == eq(want), key
  with pytest.raises(ValueError, match="level"):
    metrics.pass_at_k_intervals(8, {"a": [1]}, level=1.0)
  with pytest.raises(ValueError, match="num_boot"):
    metrics.bootstrap_means([np.zeros((2, 1))], 0)


def test_bootstrap_interval_covers_the_true_pass_at_k_at_the_nominal_rate():
  # A simulated policy: each eval problem's success rate p ~ Beta(0.3, 2) (mostly hard, as
  # the mazes at large k), 96 problems a draw (maze_tiny's 3 x 32), n = 64 samples each. Its
  # true pass@k is E[1 - (1 - p)^k] = 1 - B(0.3, 2 + k) / B(0.3, 2). Over 400 simulated
  # evaluations the
  # 95 % interval must cover it 95 % of the time, within 3 binomial standard errors
  # (sqrt(0.95 * 0.05 / 400) = 1.1 %): [91.7 %, 98.3 %].
  a, b, n, num_problems, sims = 0.3, 2.0, 64, 96, 400
  ks = [1, 8, 64]
  log_beta = lambda x, y: math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
  truth = {k: 1 - math.exp(log_beta(a, b + k) - log_beta(a, b)) for k in ks}
  rng = np.random.default_rng(0)
  covered = {k: 0 for k in ks}
  for s in range(sims):
    p = rng.beta(a, b, num_problems)
    c = rng.binomial(n, p)
    out = metrics.pass_at_k_intervals(n, {"sim": c}, ks=ks, num_boot=400, seed=s)
    for k in ks:
      covered[k] += out[f"pass@{k}_lo"] <= truth[k] <= out[f"pass@{k}_hi"]
  for k in ks:
    assert 0.917 <= covered[k] / sims <= 0.983, (k, covered[k] / sims)
