"""The shared row helpers of the advantage estimators against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax.advantages import _common

_SPECIAL = np.array([-np.inf, -3.5, -1e-45, -0.0, 0.0, 1e-45, 1.2e-38, 2.0, 3e38, np.inf],
                    np.float32)


def test_masked_range_and_varies_match_numpy_with_masks_and_empty_rows():
  rng = np.random.default_rng(0)
  x = (rng.standard_normal((64, 33)) * 10.0 ** rng.integers(-30, 30, (64, 1))).astype(np.float32)
  x[:4, :4] = _SPECIAL[:4]  # negative values, -0.0 and -inf at valid entries
  v = rng.random((64, 33)) < 0.7
  v[5] = False
  v[6] = [True] + [False] * 32
  lo, hi = jax.jit(_common.masked_range)(x, v)
  masked = np.ma.array(x, mask=~v)
  np.testing.assert_array_equal(hi, masked.max(axis=1).filled(-np.inf))
  np.testing.assert_array_equal(lo, masked.min(axis=1).filled(np.inf))
  live = np.asarray(jax.jit(_common.varies)(x, v))
  np.testing.assert_array_equal(live, np.asarray(hi, np.float64) - lo >= _common.EQUAL_SPREAD)
  assert not live[5] and not live[6]


def test_inverse_permutation_undoes_the_order():
  rng = np.random.default_rng(1)
  order = np.stack([rng.permutation(9) for _ in range(5)]).astype(np.int32)
  rank = np.asarray(_common.inverse_permutation(order))
  np.testing.assert_array_equal(np.take_along_axis(rank, order, axis=1),
                                np.broadcast_to(np.arange(9), (5, 9)))


@pytest.mark.parametrize("n", [1, 8, 64, 65, 150])  # counted comparisons up to 64, a sort beyond
def test_stable_ranks_are_a_stable_lexicographic_sort(n):
  rng = np.random.default_rng(n)
  # Few distinct values, so ties (broken by the second key, then by column) are everywhere.
  a = rng.integers(0, 3, (6, n)).astype(np.float32)
  b = rng.integers(0, 2, (6, n)).astype(np.int32)
  want = np.empty((6, n), np.int64)
  for r in range(6):
    order = sorted(range(n), key=lambda i: (a[r, i], b[r, i], i))  # Python's sort: the spec
    want[r, order] = np.arange(n)
  got = np.asarray(jax.jit(_common.stable_ranks)(jnp.asarray(a), jnp.asarray(b)))
  np.testing.assert_array_equal(got, want)
  one_key = np.asarray(_common.stable_ranks(jnp.asarray(a)))
  np.testing.assert_array_equal(one_key, np.argsort(np.argsort(a, axis=1, kind="stable"),
                                                    axis=1, kind="stable"))
