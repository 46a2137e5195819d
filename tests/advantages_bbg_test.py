"""BBG (rlvr_jax/advantages/bbg.py) and the BBG paper's two simpler interventions, against
exact rational arithmetic and hand-derived closed forms.

Hand derivations used below (alpha = beta = 1, K = 256, tau = 0.01):

  u(m; n, K) = K prod_{j=1}^{K-1} (n - m + j) / (n + 1 + j)      (PAPERS.md section 5)
  u(0)       = K (n + 1) / (n + K)                                (the product telescopes)
  u(m + 1) / u(m) = (n - m) / (n - m + K - 1)                     (likewise)

so u(1) / u(0) = n / (n + K - 1), u(2) / u(1) = (n - 1) / (n + K - 2). The gates:
'n+1' gates u(m) < tau (n + 1), 'u0' gates u(m) < tau u(0). Working the products out
(the exact Fractions below agree):

  n = 8:  u(1) = 0.2655 >= 0.09,  u(2) = 0.00709 < 0.09   -> gated m >= 2 ('n+1')
          u(1)/u(0) = 8/263 = 0.0304 >= 0.01, u(2)/u(0) = 8.1e-4   -> gated m >= 2 ('u0')
  n = 16: u(1) = 0.945 >= 0.17,   u(2) = 0.0525 < 0.17    -> m >= 2 (both)
  n = 32: u(2) = 0.3545 >= 0.33,  u(3) = 0.0373           -> m >= 3 (both)
  n = 30: u(2) = 0.2983 < 0.31 ('n+1': gated) but >= tau u(0) = 0.2775 ('u0': kept),
          so the two gates differ there (m = 2), and likewise at n = 29.
"""

import fractions
import math

import jax
import numpy as np
import pytest

from rlvr_jax import advantages
from rlvr_jax.rl.defaults import advantage_block

K, TAU = 256, fractions.Fraction(1, 100)


def exact_u(m: int, n: int, k: int = K) -> fractions.Fraction:
  """u(m; n, k) for alpha = beta = 1 as an exact rational (the product of PAPERS.md)."""
  u = fractions.Fraction(k)
  for j in range(1, k):
    u *= fractions.Fraction(n - m + j, n + 1 + j)
  return u


def _rows(n: int, ms, N: int | None = None):
  """One problem per m: m successes then n - m failures, padded (invalid) to N columns."""
  N = N or n
  col = np.arange(N)
  r = np.stack([col < m for m in ms]).astype(np.float32)
  v = np.broadcast_to(col < n, r.shape).copy()
  return r, v


# The first gated bucket m, per (n, gate_norm) at K = 256, tau = 0.01, worked by hand (module
# docstring) and re-derived exactly in the test.
FIRST_GATED = {(8, "n+1"): 2, (8, "u0"): 2, (16, "n+1"): 2, (16, "u0"): 2,
               (32, "n+1"): 3, (32, "u0"): 3, (30, "n+1"): 2, (30, "u0"): 3}


@pytest.mark.parametrize("n", [8, 16, 32])
def test_utility_equals_the_exact_product(n):
  r, v = _rows(n, range(n + 1))
  _, info = advantages.compute("bbg", r, v, k=K)
  want = np.array([float(exact_u(m, n)) for m in range(n + 1)])
  # Closed forms of the hand derivation, checked on the exact values first.
  assert exact_u(0, n) == fractions.Fraction(K * (n + 1), n + K)
  assert exact_u(1, n) / exact_u(0, n) == fractions.Fraction(n, n + K - 1)
  # float32: K - 1 = 255 O(1) log factors, each rounded once: <= 255 * 2^-24 ~ 1.5e-5 relative.
  # u(31), u(32) at n = 32 (~1e-39) are below float32's normal range: the reported utility
  # is then at most that (the gate compares logs, see the gate test up to m = n).
  normal = want >= np.finfo(np.float32).tiny
  np.testing.assert_allclose(info["utility"][normal], want[normal], rtol=2e-5)
  assert np.all(info["utility"][~normal] <= np.finfo(np.float32).tiny)


@pytest.mark.parametrize("n,gate_norm", sorted(FIRST_GATED))
def test_gate_against_exact_comparison(n, gate_norm):
  ms = list(range(n + 1))
  N = 32
  r, v = _rows(n, ms, N)
  _, info = advantages.compute("bbg", r, v, k=K, tau=float(TAU), gate_norm=gate_norm)
  norm = n + 1 if gate_norm == "n+1" else exact_u(0, n)
  exact = [exact_u(m, n) < TAU * norm for m in ms]
  first = FIRST_GATED[(n, gate_norm)]
  assert exact == [m >= first for m in ms]  # the hand derivation holds exactly
  assert np.asarray(info["gated"]).tolist() == exact
  assert not np.asarray(info["loss_mask_BxN"])[first:].any()
  np.testing.assert_array_equal(info["loss_mask_BxN"][:first], v[:first])


def test_the_two_gates_differ_where_the_thresholds_bracket_a_bucket():
  # n = 32, tau = 0.0115: 'n+1' threshold 0.3795, 'u0' threshold 0.0115 * 29.33 = 0.3373;
  # u(2) = 0.3545 lies between them.
  tau = fractions.Fraction(115, 10000)
  assert tau * exact_u(0, 32) < exact_u(2, 32) < tau * 33
  r, v = _rows(32, [1, 2, 3])
  _, a = advantages.compute("bbg", r, v, k=K, tau=float(tau), gate_norm="n+1")
  _, b = advantages.compute("bbg", r, v, k=K, tau=float(tau), gate_norm="u0")
  assert np.asarray(a["gated"]).tolist() == [False, True, True]
  assert np.asarray(b["gated"]).tolist() == [False, False, True]


def _grpo_closed_form(m: int, n: int) -> np.ndarray:
  """Population-std GRPO of m ones then n - m zeros: +sqrt((1-p)/p), -sqrt(p/(1-p))."""
  p = m / n
  return np.where(np.arange(n) < m, math.sqrt((1 - p) / p), -math.sqrt(p / (1 - p)))


@pytest.mark.parametrize("n", [8, 16, 32])
@pytest.mark.parametrize("weight_norm", ["u1", "u0", "none"])
def test_weights_of_kept_problems_for_each_normalizer(n, weight_norm):
  # tau = 0 keeps every bucket, so m = 1, 2 show the weight on the base (grpo) advantage.
  r, v = _rows(n, [0, 1, 2])
  adv, info = advantages.compute("bbg", r, v, k=K, tau=0.0, weight_norm=weight_norm,
                                 zero_success_coef=0.25)
  u10 = n / (n + K - 1)            # u(1) / u(0)
  u21 = (n - 1) / (n + K - 2)      # u(2) / u(1)
  want_w = {"u1": [1.0, 1.0, u21], "u0": [1.0, u10, u10 * u21], "none": [1.0, 1.0, 1.0]}
  np.testing.assert_allclose(info["weight"], want_w[weight_norm], rtol=2e-5)
  assert not np.asarray(info["gated"]).any()
  np.testing.assert_allclose(adv[0], -0.25)  # the m = 0 signed REINFORCE term, unweighted
  for i, m in ((1, 1), (2, 2)):
    np.testing.assert_allclose(adv[i], want_w[weight_norm][i] * _grpo_closed_form(m, n),
                               rtol=3e-5, atol=1e-7)


def test_defaults_are_the_cited_eq9_gate_and_u1_weights():
  d = advantages.defaults("bbg")
  assert (d["k"], d["tau"], d["gate_norm"], d["weight_norm"], d["zero_success_only"]) == (
      256, 0.01, "n+1", "u1", False)
  n = 8
  r, v = _rows(n, [0, 1, 2, 5, 8])
  adv, info = advantages.compute("bbg", r, v)
  assert np.asarray(info["gated"]).tolist() == [False, False, True, True, True]
  np.testing.assert_allclose(info["weight"][:2], [1.0, 1.0])
  np.testing.assert_allclose(adv[0], -0.1)
  np.testing.assert_allclose(adv[1], _grpo_closed_form(1, n), rtol=2e-6)
  assert np.all(np.asarray(adv)[2:] == 0)


def test_zero_success_only_keeps_only_the_m0_term():
  n = 8
  r, v = _rows(n, [0, 1, 4, 0, 8])
  v[3, 5:] = False  # an m = 0 problem with 5 valid rollouts
  adv, info = advantages.compute("bbg", r, v, tau=0.0, zero_success_only=True,
                                 zero_success_coef=0.5)
  assert np.asarray(info["gated"]).tolist() == [False, True, True, False, True]
  want = np.zeros((5, n))
  want[0] = -0.5
  want[3, :5] = -0.5
  np.testing.assert_array_equal(adv, want)
  np.testing.assert_array_equal(info["loss_mask_BxN"], v & np.array([1, 0, 0, 1, 0], bool)[:, None])


@pytest.mark.parametrize("name,params", [("grpo", {}), ("bbg", {"tau": 0.0}),
                                         ("passk_analytical", {"k": 2})])
def test_high_success_buckets_are_masked_inclusively(name, params):
  n = 8
  ms = list(range(n + 1))
  r, v = _rows(n, ms)
  base, _ = advantages.compute(name, r, v, **params)
  adv, info = advantages.compute(name, r, v, mask_high_success=True, **params)
  # Default 6/8: buckets 6, 7, 8 leave the loss (6/8 = 0.75 itself included).
  high = np.array([m >= 6 for m in ms])
  assert np.asarray(info["high_masked"]).tolist() == high.tolist()
  np.testing.assert_array_equal(adv[~high], base[~high])
  assert np.all(np.asarray(adv)[high] == 0)
  np.testing.assert_array_equal(info["loss_mask_BxN"], v & ~high[:, None])
  # Another bucket edge, and the valid count is the denominator: 3 of 5 valid is 0.6 >= 0.6.
  r2, v2 = _rows(5, [2, 3], N=8)
  _, info2 = advantages.compute(name, r2, v2, mask_high_success=True, high_success_min=0.6,
                                **params)
  assert np.asarray(info2["high_masked"]).tolist() == [False, True]
  # easy_threshold is strict: 0.75 masks 7/8 and 8/8 only.
  _, easy = advantages.compute(name, r, v, easy_threshold=0.75, **params)
  assert np.asarray(easy["easy"]).tolist() == [m >= 7 for m in ms]


def test_modifiers_under_jit_equal_op_by_op():
  r, v = _rows(8, range(9))
  fn = lambda r, v: advantages.compute("bbg", r, v, tau=0.0, mask_high_success=True,
                                       gate_norm="u0", weight_norm="u0")
  adv_jit, info_jit = jax.jit(fn)(r, v)
  adv, info = fn(r, v)
  np.testing.assert_allclose(adv_jit, adv, rtol=1e-6)
  np.testing.assert_array_equal(info_jit["loss_mask_BxN"], info["loss_mask_BxN"])


@pytest.mark.parametrize("params,match", [
    ({"gate_norm": "n"}, "gate_norm must be one of"),
    ({"weight_norm": "u2"}, "weight_norm must be one of"),
    ({"zero_success_only": 1}, "zero_success_only must be a bool"),
    ({"mask_high_success": "yes"}, "mask_high_success must be a bool"),
    ({"high_success_min": 0.0}, "high_success_min must be > 0"),
    ({"high_success_min": 1.5}, "high_success_min must be <= 1"),
])
def test_bad_values_are_clear_errors(params, match):
  r, v = _rows(8, [1, 2])
  with pytest.raises(ValueError, match=match):
    advantages.compute("bbg", r, v, **params)
  with pytest.raises(ValueError, match=match):
    advantage_block("bbg", 256, **params)


def test_every_option_is_a_field_of_the_config_block():
  block = advantage_block("bbg", 256)
  block.lock()
  block.gate_norm, block.weight_norm, block.mask_high_success = "u0", "none", True
  block.easy_threshold = 0.9  # a typed placeholder: settable on a locked block
  fn = advantages.from_config(block)
  r, v = _rows(8, [0, 1, 6])
  adv, info = fn(r, v)
  want, want_info = advantages.compute("bbg", r, v, gate_norm="u0", weight_norm="none",
                                       mask_high_success=True, easy_threshold=0.9)
  np.testing.assert_array_equal(adv, want)
  assert np.asarray(info["high_masked"]).tolist() == [False, False, True]
  with pytest.raises(ValueError, match="takes no parameter"):
    advantage_block("grpo", 4, tau=0.1)
  g = advantage_block("grpo", 4)
  assert "k" not in g and g.mask_high_success is False and g.high_success_min == 0.75
