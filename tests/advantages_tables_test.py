"""Per-(n_valid, n_pos) closed forms of the estimators against exact values."""

import math

import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.advantages import pkpo

N = 12


def _every_n_c():
  """One problem per (n, c) with 0 <= c <= n <= N: c ones, n - c zeros, N - n invalid."""
  rows = [(n, c) for n in range(N + 1) for c in range(n + 1)]
  col_N = np.arange(N)
  r = np.stack([(col_N < c) for _, c in rows]).astype(np.float32)
  v = np.stack([col_N < n for n, _ in rows])
  return rows, r, v


def test_bbg_with_each_base_is_weight_times_base():
  rows, r, v = _every_n_c()
  for base in ("grpo", "dr_grpo", "rloo"):
    adv, info = advantages.compute("bbg", r, v, k=8, tau=0.0, base=base)
    base_adv, _ = advantages.compute(base, r, v)
    zero = (info["num_pos"] == 0) & (info["num_valid"] > 0)
    want = np.where(zero[:, None] & v, -0.1, np.asarray(info["weight"])[:, None] * base_adv)
    np.testing.assert_allclose(adv, want, rtol=1e-6, atol=1e-7, err_msg=base)


@pytest.mark.parametrize("k", [1, 2, 5, N])
def test_pkpo_subset_weights_equal_exact_ratios(k):
  n_Nx1 = np.arange(N + 1, dtype=np.float32)[:, None]
  w = np.asarray(pkpo.subset_weight(n_Nx1, np.arange(N), k, N))
  for n in range(N + 1):
    for p in range(N):
      live = p < n and n >= k
      want = math.comb(p, k - 1) / math.comb(n, k) if live else 0.0
      np.testing.assert_allclose(w[n, p], want, rtol=1e-6, err_msg=f"n={n} p={p}")
