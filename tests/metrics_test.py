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
