"""The float64 tables of the estimators (per n_valid, n_pos or sorted position) against exact values."""

import math

import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.advantages import _common, pkpo

N = 12


def _every_n_c():
  """One problem per (n, c) with 0 <= c <= n <= N: c ones, n - c zeros, N - n invalid."""
  rows = [(n, c) for n in range(N + 1) for c in range(n + 1)]
  col_N = np.arange(N)
  r = np.stack([(col_N < c) for _, c in rows]).astype(np.float32)
  v = np.stack([col_N < n for n, _ in rows])
  return rows, r, v


@pytest.mark.parametrize("base,ddof", [("grpo", 0), ("grpo", 1), ("dr_grpo", 0), ("rloo", 0)])
def test_binary_baseline_table_equals_the_real_valued_estimator(base, ddof):
  # The closed forms in (n, c) must give what grpo / dr_grpo / rloo compute from
  # the rewards themselves (float32 rounding apart), including every 0 case.
  rows, r, v = _every_n_c()
  want, _ = advantages.compute(base, r, v, **({"ddof": ddof} if base == "grpo" else {}))
  a_pos_NxN, a_neg_NxN = _common.binary_baseline_table(base, N, ddof)
  for i, (n, c) in enumerate(rows):
    got = np.where(r[i] == 1, a_pos_NxN[n, c], a_neg_NxN[n, c]) * v[i]
    np.testing.assert_allclose(got, want[i], rtol=1e-6, atol=1e-7, err_msg=f"n={n} c={c}")


def test_bbg_with_each_base_is_weight_times_base():
  rows, r, v = _every_n_c()
  for base in ("grpo", "dr_grpo", "rloo"):
    adv, info = advantages.compute("bbg", r, v, K=8, tau=0.0, base=base)
    base_adv, _ = advantages.compute(base, r, v)
    zero = (info["num_pos"] == 0) & (info["num_valid"] > 0)
    want = np.where(zero[:, None] & v, -0.1, np.asarray(info["weight"])[:, None] * base_adv)
    np.testing.assert_allclose(adv, want, rtol=1e-6, atol=1e-7, err_msg=base)


@pytest.mark.parametrize("k", [1, 2, 5, N])
def test_pkpo_weight_tables_equal_exact_ratios(k):
  w, w_top = pkpo._weight_tables(k, N)
  for n in range(N + 1):
    for p in range(N):
      live = p < n and n >= k
      want = math.comb(p, k - 1) / math.comb(n, k) if live else 0.0
      want_top = (math.comb(p - 1, k - 2) / math.comb(n, k)
                  if live and p >= 1 and k >= 2 else 0.0)
      np.testing.assert_allclose(w[n, p], want, rtol=1e-6, err_msg=f"n={n} p={p}")
      np.testing.assert_allclose(w_top[n, p], want_top, rtol=1e-6, err_msg=f"n={n} p={p}")
