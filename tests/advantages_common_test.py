"""The vectorized row helpers of the advantage estimators against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlvr_jax.advantages import _common

_SPECIAL = np.array([-np.inf, -3.5, -1e-45, -0.0, 0.0, 1e-45, 1.2e-38, 2.0, 3e38, np.inf],
                    np.float32)


def test_order_key_orders_as_the_floats_and_inverts():
  key = np.asarray(_common.order_key(jnp.asarray(_SPECIAL)))
  assert key.dtype == np.int32
  assert np.all(np.diff(key) > 0)  # -0.0 just below 0.0, subnormals kept apart
  back = np.asarray(_common.from_order_key(jnp.asarray(key)))
  np.testing.assert_array_equal(back.view(np.int32), _SPECIAL.view(np.int32))


def test_row_stats_match_numpy_with_masks_and_empty_rows():
  rng = np.random.default_rng(0)
  x = (rng.standard_normal((64, 33)) * 10.0 ** rng.integers(-30, 30, (64, 1))).astype(np.float32)
  x[:4, :4] = _SPECIAL[:4]  # negative values, -0.0 and -inf at valid entries
  v = rng.random((64, 33)) < 0.7
  v[5] = False
  v[6] = [True] + [False] * 32
  total, hi, lo, live = jax.jit(_common.row_stats)(x, v)
  masked = np.ma.array(x, mask=~v)
  np.testing.assert_array_equal(hi, masked.max(axis=1).filled(-np.inf))
  np.testing.assert_array_equal(lo, masked.min(axis=1).filled(np.inf))
  want_sum = masked.astype(np.float64).sum(axis=1).filled(0.0)
  finite = np.isfinite(want_sum)
  assert np.all(np.asarray(total)[~finite] == -np.inf)  # the row holding -inf
  scale = np.abs(masked).astype(np.float64).sum(axis=1).filled(0.0)[finite]
  err = np.abs(np.asarray(total, np.float64)[finite] - want_sum[finite])
  np.testing.assert_array_less(err, 1e-6 * scale + 1e-30)
  np.testing.assert_array_equal(live, np.asarray(hi, np.float64) - lo >= _common.EQUAL_SPREAD)
  assert not live[5] and not live[6]


def test_row_sum_keeps_float32_precision():
  # Default-precision float32 products on TPU / GPU round to bfloat16 / TF32;
  # row_sum asks for HIGHEST, which this checks wherever the suite runs.
  x = np.full((4, 32), 1.0 + 2.0 ** -20, np.float32)
  np.testing.assert_allclose(_common.row_sum(jnp.asarray(x)), 32 * (1.0 + 2.0 ** -20),
                             rtol=1e-7)


_first_in_order = jax.jit(_common.first_in_order)


@settings(deadline=None)
@given(hnp.arrays(np.float32, 64,
                  elements=st.sampled_from([-2.0, -0.0, 0.0, 1.2e-38, 0.5, 1.0, np.inf])),
       st.integers(0, 70))
def test_first_in_order_is_the_head_of_a_stable_sort(x, count):
  got = np.asarray(_first_in_order(x, count))
  want = np.zeros(x.shape, bool)
  want[np.argsort(x, kind="stable")[:count]] = True
  np.testing.assert_array_equal(got, want)


def test_first_in_order_on_distinct_random_values_under_jit():
  rng = np.random.default_rng(1)
  x = rng.standard_normal(4096).astype(np.float32)
  fn = jax.jit(_common.first_in_order)
  for count in (0, 1, 2047, 4095, 4096):
    want = np.zeros(4096, bool)
    want[np.argsort(x, kind="stable")[:count]] = True
    np.testing.assert_array_equal(fn(x, count), want)
