"""PKPO: subset brute force, binary closed forms, and unbiasedness on a toy policy."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.advantages import reference


def _brute_force(f, k, baseline):
  """Float64 average over all size-k subsets S of the per-sample gradient weights."""
  n = len(f)
  s = np.zeros(n)
  for S in itertools.combinations(range(n), k):
    top = max(f[j] for j in S)
    for i in S:
      rest = [f[j] for j in S if j != i]
      s[i] += top - (max(rest) if (baseline == "loo_minus_one" and rest) else 0.0)
  s /= math.comb(n, k)
  if baseline == "sloo" and n > k:
    # Eq. 29: minus the mean over j != i of s_j on the n - 1 samples without i.
    for i in range(n):
      others = np.delete(f, i)
      s[i] -= np.mean(_brute_force(others, k, "none"))
  return s


def test_matches_subset_brute_force_continuous_with_ties_and_masks():
  rng = np.random.default_rng(0)
  N = 8
  # Continuous rewards with ties (rounded), negative values, and masked slots.
  r = np.round(rng.normal(size=(24, N)), 1).astype(np.float32)
  v = rng.random((24, N)) < 0.85
  v[:, :3] = True
  for k in (2, 3):
    for baseline in ("none", "loo_minus_one"):
      adv, _ = advantages.compute("pkpo", r, v, k=k, baseline=baseline)
      adv = np.asarray(adv, np.float64)
      for b in range(24):
        f = r[b][v[b]].astype(np.float64)
        want = _brute_force(f, k, baseline) if len(f) >= k else np.zeros(len(f))
        np.testing.assert_allclose(adv[b][v[b]], want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"k={k} {baseline} row {b}")
        np.testing.assert_allclose(adv[b][v[b]], reference.pkpo(f, k, baseline)
                                   if len(f) >= k else 0.0, rtol=1e-5, atol=1e-6)
        assert np.all(adv[b][~v[b]] == 0)


def test_binary_closed_forms():
  # Correct: k/n ("none") and C(n-c, k-1)/C(n, k) (loo-1); wrong: (k/n) rho(n-1, c, k-1)
  # ("none", the paper's form) and exactly 0 (loo-1).
  N, k = 12, 4
  r = (np.arange(N)[None, :] < np.arange(N + 1)[:, None]).astype(np.float32)
  none, info = advantages.compute("pkpo", r, k=k, baseline="none")
  loo1, _ = advantages.compute("pkpo", r, k=k)
  for c in range(N + 1):
    if c > 0:
      np.testing.assert_allclose(none[c, 0], k / N, rtol=1e-6)
      np.testing.assert_allclose(loo1[c, 0], math.comb(N - c, k - 1) / math.comb(N, k),
                                 rtol=1e-5, atol=1e-7)
    if c < N:
      rho = 1 - math.comb(N - 1 - c, k - 1) / math.comb(N - 1, k - 1)
      np.testing.assert_allclose(none[c, -1], k / N * rho, rtol=1e-5, atol=1e-7)
      assert loo1[c, -1] == 0
    np.testing.assert_allclose(info["maxg_at_k"][c], 1 - math.comb(N - c, k) / math.comb(N, k),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("binary", [True, False])
def test_unbiased_gradient_on_toy_categorical_policy(binary):
  # Policy: softmax(theta) over M answers with rewards f_m. Exact objective
  # J(theta) = E[max of k iid draws] = sum_m f_(m) (F_m^k - F_{m-1}^k) over
  # answers sorted by reward (F = cdf); its gradient by autodiff. The estimator
  # sum_i a_i grad log pi(y_i), grad log pi(y) = onehot(y) - pi, averaged over
  # T independent problems (batch rows) must match it within 4.5 standard errors.
  M, n, k, T = 6, 8, 3, 100_000
  theta = jnp.array([0.5, -0.3, 0.1, 0.8, -1.0, 0.2], jnp.float32)
  f = (jnp.array([0, 1, 0, 0, 1, 0.0]) if binary
       else jnp.array([0.1, 0.9, 0.4, 0.0, 0.7, 0.4]))

  def objective(theta):
    p = jax.nn.softmax(theta)
    order = jnp.argsort(f)
    cdf = jnp.cumsum(p[order])
    below = jnp.concatenate([jnp.zeros(1), cdf[:-1]])
    return jnp.sum(f[order] * (cdf ** k - below ** k))

  true_grad = np.asarray(jax.grad(objective)(theta), np.float64)
  p = jax.nn.softmax(theta)
  y = jax.random.categorical(jax.random.key(1), theta, shape=(T, n))
  rewards = f[y]
  onehot = jax.nn.one_hot(y, M)
  for baseline in ("loo_minus_one", "none"):
    adv, _ = advantages.compute("pkpo", rewards, k=k, baseline=baseline)
    g_TxM = np.asarray(jnp.einsum("tn,tnm->tm", adv, onehot - p), np.float64)
    mean, se = g_TxM.mean(0), g_TxM.std(0, ddof=1) / math.sqrt(T)
    assert np.all(np.abs(mean - true_grad) <= 4.5 * se), (baseline, mean, true_grad, se)
    # Power: the standard errors are small next to the gradient, so a 10% bias fails.
    assert np.any(np.abs(1.1 * mean - true_grad) > 4.5 * se)
  # The baseline only removes variance: loo-1 has the smaller spread.
  adv_1, _ = advantages.compute("pkpo", rewards, k=k)
  adv_0, _ = advantages.compute("pkpo", rewards, k=k, baseline="none")
  var = [np.asarray(jnp.einsum("tn,tnm->tm", a, onehot - p)).var(0).sum() for a in (adv_1, adv_0)]
  assert var[0] < var[1]


def test_n1024_weights_exact():
  # loo-1 correct weight C(n-c, k-1) / C(n, k) at n = 1024, k = 512 against
  # exact rationals, where log-gamma differences in float32 err by ~1e-3.
  N, k = 1024, 512
  cs = np.array([1, 2, 5, 20, 100, 300, 500])
  r = (np.arange(N)[None, :] < cs[:, None]).astype(np.float32)
  adv, _ = advantages.compute("pkpo", r, k=k)
  for i, c in enumerate(cs):
    want = math.comb(N - c, k - 1) / math.comb(N, k)
    got = float(adv[i, 0])
    # Below float32's smallest normal (1.2e-38) the value is flushed to 0.
    assert abs(got - want) <= (2e-5 * want if want > 1e-37 else 1e-37), (c, got, want)


@pytest.mark.parametrize("N", [40, 80])
def test_both_rank_paths_match_reference(N):
  # N = 40 and N = 80 (once two rank paths, split at 64; one sort now).
  # reference.pkpo is itself checked against the subset brute force above.
  rng = np.random.default_rng(N)
  r = np.round(rng.normal(size=(6, N)), 1).astype(np.float32)  # ties
  v = rng.random((6, N)) < 0.8
  v[5, 3:] = False  # 3 valid rollouts: fewer than k = 5 gives all zeros
  for k in (1, 2, 5):
    for baseline in ("none", "loo_minus_one"):
      adv, _ = advantages.compute("pkpo", r, v, k=k, baseline=baseline)
      for b in range(6):
        f = r[b][v[b]].astype(np.float64)
        want = reference.pkpo(f, k, baseline) if len(f) >= k else np.zeros(len(f))
        np.testing.assert_allclose(adv[b][v[b]], want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"N={N} k={k} {baseline} row {b}")
        assert np.all(np.asarray(adv[b])[~v[b]] == 0)


def test_rank_paths_agree_across_the_switch():
  # 64 columns and 65 (once two rank paths, split at 64): one masked column changes nothing.
  rng = np.random.default_rng(7)
  r = np.round(rng.normal(size=(8, 64)), 1).astype(np.float32)
  v = rng.random((8, 64)) < 0.9
  r65 = np.concatenate([r, np.full((8, 1), 5.0, np.float32)], axis=1)
  v65 = np.concatenate([v, np.zeros((8, 1), bool)], axis=1)
  for baseline in ("none", "loo_minus_one"):
    a64, _ = advantages.compute("pkpo", r, v, k=4, baseline=baseline)
    a65, _ = advantages.compute("pkpo", r65, v65, k=4, baseline=baseline)
    np.testing.assert_allclose(a65[:, :64], a64, rtol=1e-5, atol=1e-7)


def test_sloo_matches_subset_brute_force_and_binary_closed_form():
  # Continuous rewards with ties and masks, against the brute force over subsets.
  rng = np.random.default_rng(11)
  r = np.round(rng.normal(size=(16, 7)), 1).astype(np.float32)
  v = rng.random((16, 7)) < 0.85
  v[:, :4] = True
  for k in (1, 2, 3):
    adv, _ = advantages.compute("pkpo", r, v, k=k, baseline="sloo")
    for b in range(16):
      f = r[b][v[b]].astype(np.float64)
      want = _brute_force(f, k, "sloo") if len(f) >= k else np.zeros(len(f))
      np.testing.assert_allclose(np.asarray(adv)[b][v[b]], want, rtol=1e-5, atol=1e-6,
                                 err_msg=f"k={k} row {b}")
  # Binary, by hand: a correct sample's s is k/n and the others' max@k estimate is
  # 1 - C(n-c, k) / C(n-1, k); a wrong one's s is (k/n) (1 - C(n-c-1, k-1) / C(n-1, k-1))
  # and the others' estimate 1 - C(n-1-c, k) / C(n-1, k). a = s - k / (n-1) * estimate.
  N, k = 10, 3
  r = (np.arange(N)[None, :] < np.arange(N + 1)[:, None]).astype(np.float32)
  adv, _ = advantages.compute("pkpo", r, k=k, baseline="sloo")
  for c in range(N + 1):
    if c > 0:
      rho = 1 - math.comb(N - c, k) / math.comb(N - 1, k)
      np.testing.assert_allclose(adv[c, 0], k / N - k / (N - 1) * rho, rtol=1e-5, atol=1e-7)
    if c < N:
      s = k / N * (1 - math.comb(N - c - 1, k - 1) / math.comb(N - 1, k - 1))
      rho = 1 - math.comb(N - 1 - c, k) / math.comb(N - 1, k)
      np.testing.assert_allclose(adv[c, -1], s - k / (N - 1) * rho, rtol=1e-5, atol=1e-7)
  # n = k: no k-subset of the others, so sloo is the unbaselined s.
  r = np.array([[0.5, 0.1, 0.9]], np.float32)
  np.testing.assert_allclose(advantages.compute("pkpo", r, k=3, baseline="sloo")[0],
                             advantages.compute("pkpo", r, k=3, baseline="none")[0], rtol=1e-6)
