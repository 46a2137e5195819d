"""Registry API: references, masking, jit, errors, properties, BBG, config."""

import functools
import math

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import ml_collections
import numpy as np
import pytest
import scipy.stats

from rlvr_jax import advantages
from rlvr_jax.advantages import reference

B, N = 6, 8
# Deterministic estimators with parameters that fit N = 8.
DETERMINISTIC = {
    "grpo": {}, "dr_grpo": {}, "rloo": {}, "passk_analytical": {"k": 3},
    "passk_combination": {"k": 3}, "passk_exceeding": {"k": 3}, "pkpo": {"k": 3},
    "bbg": {"k": 16, "tau": 0.2}, "grpo_passk": {},
}
PASSK_FAMILY = ["passk_analytical", "passk_combination", "passk_exceeding", "pkpo",
                "adaptive_entropy", "bbg", "grpo", "dr_grpo", "rloo"]


def _batch(seed, b=B, n=N, p_valid=0.8):
  rng = np.random.default_rng(seed)
  r = (rng.random((b, n)) < rng.random((b, 1))).astype(np.float32)
  v = rng.random((b, n)) < p_valid
  return r, v, rng.random((b, n)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC) + ["adaptive_entropy"])
def test_matches_per_problem_reference_with_masks(name):
  r, v, ent = _batch(0)
  r[~v] = np.nan  # padding content must not matter
  params = dict(DETERMINISTIC.get(name, {"k": 3}))
  extra = {"entropy_BxN": ent} if name == "adaptive_entropy" else {}
  adv, info = advantages.compute(name, r, v, **params, **extra)
  want = reference.batched(name, np.nan_to_num(r), v, **params, **extra)
  np.testing.assert_allclose(adv, want, rtol=2e-5, atol=2e-6)
  assert np.all(np.asarray(adv)[~v] == 0)
  np.testing.assert_array_equal(info["num_valid"], v.sum(1))
  np.testing.assert_array_equal(info["num_pos"], (np.nan_to_num(r) * v).sum(1))


# Every parameter of the deterministic estimators away from its default, so each one is
# checked against the float64 reference (which takes them all), not only the defaults.
NON_DEFAULT = [
    ("grpo", {"ddof": 1}),
    ("passk_combination", {"k": 3, "ddof": 1}),
    ("passk_exceeding", {"k": 2, "log_base": 10.0}),
    ("adaptive_entropy", {"k": 2, "ddof": 1, "fraction": 0.3}),
    ("bbg", {"k": 8, "tau": 0.3, "alpha": 2.0, "beta": 0.5, "zero_success_coef": 0.3,
             "base": "rloo", "gate_norm": "u0", "weight_norm": "u0"}),
    ("bbg", {"k": 32, "tau": 0.0, "alpha": 0.5, "beta": 3.0, "base": "dr_grpo",
             "weight_norm": "none"}),
    ("bbg", {"k": 4, "tau": 0.1, "base": "grpo", "ddof": 1}),
    ("bbg", {"k": 16, "tau": 0.0, "zero_success_only": True, "zero_success_coef": 0.2}),
]


@pytest.mark.parametrize("name,params", NON_DEFAULT)
def test_non_default_parameters_match_per_problem_reference(name, params):
  # 48 problems of 8 rollouts, accuracies 0..1, 80% valid; garbage at padding.
  r, v, ent = _batch(6, b=48)
  r[~v] = np.nan
  extra = {"entropy_BxN": ent} if name == "adaptive_entropy" else {}
  adv, info = advantages.compute(name, r, v, **params, **extra)
  want = reference.batched(name, np.nan_to_num(r), v, **params, **extra)
  np.testing.assert_allclose(adv, want, rtol=2e-5, atol=2e-6)
  if name == "bbg":
    # The utility by its definition, the posterior mean of d Pass@K / dp = K (1 - p)^(K-1)
    # under Beta(m + alpha, n - m + beta), integrated numerically (scipy quad).
    K, alpha, beta = params["k"], params.get("alpha", 1.0), params.get("beta", 1.0)
    m_B, n_B = np.asarray(info["num_pos"]), np.asarray(info["num_valid"])
    for m, n in set(zip(m_B[n_B > 0].tolist(), n_B[n_B > 0].tolist())):
      post = scipy.stats.beta(m + alpha, n - m + beta)
      want_u = post.expect(lambda p: K * (1 - p) ** (K - 1))
      got_u = np.asarray(info["utility"])[(m_B == m) & (n_B == n)]
      np.testing.assert_allclose(got_u, want_u, rtol=1e-5, err_msg=f"m={m} n={n}")
  if name == "bbg" and params["tau"] > 0:  # the gate is exercised both ways
    has_pos = np.asarray(info["num_pos"]) > 0
    gated = np.asarray(info["gated"])
    assert gated[has_pos].any() and not gated[has_pos].all()


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_masking_a_rollout_equals_removing_it(name):
  r, _, _ = _batch(1, n=N)
  v = np.ones_like(r, bool)
  v[:, [2, 5]] = False
  adv_masked, _ = advantages.compute(name, r, v, **DETERMINISTIC[name])
  adv_removed, _ = advantages.compute(name, r[:, v[0]], **DETERMINISTIC[name])
  np.testing.assert_allclose(np.asarray(adv_masked)[:, v[0]], adv_removed, rtol=1e-6,
                             atol=1e-7)


@pytest.mark.parametrize("name", advantages.names())
def test_jit_equals_op_by_op(name):
  r, v, ent = _batch(2)
  params = dict(DETERMINISTIC.get(name, {"k": 3}))
  kw = dict(key=jax.random.key(0), entropy_BxN=ent, easy_threshold=0.7)
  fn = functools.partial(advantages.compute, name, **params, **kw)
  adv_jit, info_jit = jax.jit(fn)(r, v)
  with jax.disable_jit():
    adv, info = fn(r, v)
  np.testing.assert_allclose(adv_jit, adv, rtol=1e-5, atol=1e-6)
  assert set(info) == set(info_jit)
  assert np.all(np.isfinite(np.asarray(adv_jit)))


def test_easy_threshold_modifier():
  r = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], np.float32)
  for name, params in (("grpo", {}), ("passk_analytical", {"k": 2}), ("pkpo", {"k": 2})):
    base, _ = advantages.compute(name, r, **params)
    adv, info = advantages.compute(name, r, easy_threshold=0.6, **params)
    # Accuracies 0.6, 0.2, 0.8: only the last is above 0.6 (strictly).
    assert info["easy"].tolist() == [False, False, True]
    np.testing.assert_array_equal(adv[:2], base[:2])
    assert np.all(adv[2] == 0) and not np.any(info["loss_mask_BxN"][2])


def test_bbg_weights_gating_and_zero_success_as_first_read():
  # PAPERS.md's first reading (gate and weight by u(0); the defaults are the cited Eq. 9 and
  # u(1), tests/advantages_bbg_test.py). alpha = beta = 1: u(m)/u(0) has the closed form
  # n / (n + K - 1) for m = 1 and n (n-1) / ((n+K-1)(n+K-2)) for m = 2.
  n, K = 8, 256
  r = (np.arange(n)[None, :] < np.array([0, 1, 2, 8])[:, None]).astype(np.float32)
  adv, info = advantages.compute("bbg", r, k=K, tau=0.01, zero_success_coef=0.25,
                                 gate_norm="u0", weight_norm="u0")
  w1, w2 = n / (n + K - 1), n * (n - 1) / ((n + K - 1) * (n + K - 2))
  w8 = math.exp(math.lgamma(K) + math.lgamma(n + 1) - math.lgamma(n + K))  # m = n
  # float32 lgamma near 264 is ~1.2e3, so log weights carry ~1e-4 absolute error.
  np.testing.assert_allclose(info["weight"], [1.0, w1, w2, w8], rtol=3e-4)
  assert info["gated"].tolist() == [False, False, True, True]  # w2 = 8e-4 < 0.01
  np.testing.assert_allclose(adv[0], -0.25)
  g, _ = advantages.compute("grpo", r)
  np.testing.assert_allclose(adv[1], w1 * np.asarray(g[1]), rtol=3e-4)
  assert np.all(adv[2:] == 0) and not np.any(info["loss_mask_BxN"][2:])
  # u(0) = K (n+1) / (n+K) by telescoping.
  np.testing.assert_allclose(info["utility"][0], K * (n + 1) / (n + K), rtol=1e-4)


def test_dynamic_sampling_mask():
  r = np.array([[1, 1, 1], [0, 0, 0], [0, 1, 0], [0.3, 0.3, 0.3], [1, 0, 1]], np.float32)
  v = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 1]], bool)
  assert advantages.dynamic_sampling_mask(r, v).tolist() == [False, False, True, False, False]


def test_from_config():
  cfg = ml_collections.ConfigDict({"name": "passk_analytical", "k": 4})
  fn = advantages.from_config(cfg)
  r, v, _ = _batch(3)
  adv, _ = fn(r, v, key=jax.random.key(0))
  np.testing.assert_array_equal(adv, advantages.compute("passk_analytical", r, v, k=4)[0])
  adv_jit, _ = jax.jit(fn)(r, v, jax.random.key(0))
  np.testing.assert_allclose(adv_jit, adv, rtol=1e-6)
  with pytest.raises(ValueError, match="unknown parameter"):
    advantages.from_config({"name": "grpo", "k": 4})
  with pytest.raises(ValueError, match="unknown advantage estimator 'gpro'"):
    advantages.from_config({"name": "gpro"})
  with pytest.raises(ValueError, match="needs a 'name'"):
    advantages.from_config({"k": 4})
  with pytest.raises(ValueError, match="k must be >= 1"):
    advantages.from_config({"name": "pkpo", "k": 0})


@pytest.mark.parametrize("call, match", [
    (lambda r: advantages.compute("nope", r), "unknown advantage estimator"),
    (lambda r: advantages.compute("passk_analytical", r, k=9), "k=9 exceeds N=8"),
    (lambda r: advantages.compute("passk_analytical", r, k=0), "k must be >= 1"),
    (lambda r: advantages.compute("passk_analytical", r), "k is required"),
    (lambda r: advantages.compute("passk_analytical", r, k=2.0), "k must be an int"),
    (lambda r: advantages.compute("grpo", r, ddof=2), "ddof must be in"),
    (lambda r: advantages.compute("grpo", r, k=2), "unknown parameter"),
    (lambda r: advantages.compute("grpo", r[0]), "must be a non-empty \\[B, N\\]"),
    (lambda r: advantages.compute("grpo", r, r[:, :4] > 0), "valid_BxN shape"),
    (lambda r: advantages.compute("passk_analytical", r + 0.5, k=2), "must be in \\{0, 1\\}"),
    (lambda r: advantages.compute("grpo", r * np.nan), "must be finite"),
    (lambda r: advantages.compute("passk_full", r, k=2), "needs key"),
    (lambda r: advantages.compute("adaptive_entropy", r, k=2), "needs entropy_BxN"),
    (lambda r: advantages.compute("adaptive_entropy", r, k=2, entropy_BxN=r[:, :4]),
     "entropy_BxN shape"),
    (lambda r: advantages.compute("adaptive_entropy", r, k=2,
                                  entropy_BxN=np.full_like(r, np.inf)),
     "entropy_BxN has non-finite"),
    (lambda r: advantages.compute("pkpo", r, k=9), "k=9 exceeds N=8"),
    (lambda r: advantages.compute("passk_analytical", r.astype(str), k=2), "numeric"),
    (lambda r: advantages.compute("passk_bootstrap", r, k=2, key=jax.random.key(0),
                                  reduce="max"), "reduce must be"),
    (lambda r: advantages.compute("grpo", r, easy_threshold=1.5), "easy_threshold"),
    (lambda r: advantages.compute("bbg", r, tau=-1.0), "tau must be >= 0"),
    (lambda r: advantages.compute("passk_exceeding", r, k=2, log_base=1), "log_base"),
    (lambda r: advantages.compute("pkpo", r, k=2, baseline="mean"), "baseline must be"),
])
def test_errors(call, match):
  r, _, _ = _batch(4)
  with pytest.raises(ValueError, match=match):
    call(r)


def test_bad_rewards_under_jit_become_nan():
  r, _, _ = _batch(5)
  r[1, 0] = 0.5
  adv, _ = jax.jit(lambda r: advantages.compute("passk_analytical", r, k=2))(r)
  adv = np.asarray(adv)
  assert np.all(np.isnan(adv[1])) and np.all(np.isfinite(np.delete(adv, 1, axis=0)))


_rewards = hnp.arrays(np.float32, (B, N), elements=st.sampled_from([0.0, 1.0]))
_masks = hnp.arrays(bool, (B, N))


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(r=_rewards, v=_masks, seed=st.integers(0, 2**16))
def test_property_correct_never_below_wrong(r, v, seed):
  ent = np.random.default_rng(seed).random((B, N)).astype(np.float32)
  for name in PASSK_FAMILY:
    params = dict(DETERMINISTIC.get(name, {"k": 3}))
    adv, _ = advantages.compute(name, r, v, entropy_BxN=ent, **params)
    adv = np.asarray(adv)
    for b in range(B):
      pos, neg = adv[b][v[b] & (r[b] == 1)], adv[b][v[b] & (r[b] == 0)]
      if len(pos) and len(neg):
        assert pos.min() >= neg.max() - 1e-7, (name, b, r[b], v[b], adv[b])


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(value=st.sampled_from([0.0, 1.0]), v=_masks, seed=st.integers(0, 2**16))
def test_property_all_equal_rewards_give_zero(value, v, seed):
  r = np.full((B, N), value, np.float32)
  key = jax.random.key(seed)
  ent = np.random.default_rng(seed).random((B, N)).astype(np.float32)
  for name in advantages.names():
    params = dict(DETERMINISTIC.get(name, {"k": 3}))
    adv, _ = advantages.compute(name, r, v, key=key, entropy_BxN=ent, **params)
    if name == "bbg" and value == 0.0:
      # BBG's signed REINFORCE term: every failed valid response gets -coef.
      np.testing.assert_allclose(np.asarray(adv)[v], -0.1, rtol=1e-6)
    else:
      assert np.all(np.asarray(adv) == 0), name


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(r=hnp.arrays(np.float32, (B, N), elements=st.floats(-2, 2, width=32)),
                  v=_masks)
def test_property_masking_continuous_rewards(r, v):
  # Real-valued estimators against the reference on each problem's valid rewards.
  for name, params in (("grpo", {"ddof": 1}), ("rloo", {}), ("dr_grpo", {}),
                       ("pkpo", {"k": 3})):
    adv, _ = advantages.compute(name, r, v, **params)
    want = reference.batched(name, r, v, **params)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(adv, want, rtol=1e-4, atol=1e-5 * scale)
    assert math.isfinite(float(np.abs(np.asarray(adv)).sum()))


def test_standardize_tiny_and_nearly_equal_rewards():
  # Rows hypothesis and review found: a lone minimum-normal reward (subnormal
  # mean), and 1 vs 1 + 1 ulp (cancels in a float32 mean). GRPO is shift- and
  # scale-free, so both must give the {1 of 8 correct} advantages:
  # (1 - 1/8) / sqrt(7/64) = sqrt(7) for the odd one, -1/sqrt(7) for the rest.
  one_up = np.nextafter(np.float32(1), np.float32(2))
  r = np.array([[1.1754944e-38] + [0] * 7, [1, one_up] + [1] * 6], np.float32)
  adv, _ = advantages.compute("grpo", r)
  want = np.full((2, 8), -1 / math.sqrt(7))
  want[0, 0] = want[1, 1] = math.sqrt(7)
  np.testing.assert_allclose(adv, want, rtol=1e-5)


def test_rewards_closer_than_float32_tiny_count_as_equal():
  # CI's hypothesis run found [1e-45, 0, ...]: a subnormal spread that the CPU
  # flushed to 0 while the float64 reference standardized it to +-2.47. Rows
  # whose max - min is below float32's smallest normal count as constant on
  # every platform; the reference applies the same rule.
  tiny = np.finfo(np.float32).tiny
  r = np.zeros((3, 8), np.float32)
  r[0, 0] = 1e-45                                        # subnormal reward
  r[1, :] = tiny
  r[1, 0] = np.nextafter(tiny, np.float32(1))            # normal rewards, subnormal gap
  r[2, 0] = tiny                                         # gap exactly tiny: live
  for name, params in (("grpo", {"ddof": 1}), ("grpo", {"ddof": 0}), ("rloo", {}),
                       ("dr_grpo", {})):
    adv = np.asarray(advantages.compute(name, r, **params)[0])
    want = reference.batched(name, r, **params)
    assert np.all(adv[:2] == 0) and np.all(want[:2] == 0), name
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-30)
  assert advantages.dynamic_sampling_mask(r).tolist() == [False, False, True]


# Peer conventions, each against values worked out by hand.


def test_grpo_eps_is_added_to_the_group_std():
  # r = (1, 0, 0, 0): mean 1/4; ddof 1: var = (3/4)^2 + 3 (1/4)^2) / 3 = 1/4, std 1/2.
  r = np.array([[1, 0, 0, 0]], np.float32)
  for eps in (1e-6, 1e-4):  # verl; TRL and Tunix
    adv, _ = advantages.compute("grpo", r, ddof=1, eps=eps)
    np.testing.assert_allclose(adv[0], np.array([0.75, -0.25, -0.25, -0.25]) / (0.5 + eps),
                               rtol=1e-6)
  # eps does not revive a constant group.
  adv, _ = advantages.compute("grpo", np.ones((1, 4), np.float32), ddof=1, eps=1e-4)
  assert np.all(np.asarray(adv) == 0)


def test_grpo_batch_scale_divides_by_the_std_of_the_whole_batch():
  # Valid rewards {1, 0 | 1, 1, 1}: batch mean 4/5, ddof 1 var = (4 (1/5)^2 + (4/5)^2) / 4
  # = 1/5. Problem 0 is centred on its own mean 1/2; problem 1 is constant: 0.
  r = np.array([[1, 0, 7], [1, 1, 1]], np.float32)
  v = np.array([[1, 1, 0], [1, 1, 1]], bool)
  adv, _ = advantages.compute("grpo", r, v, ddof=1, eps=1e-4, scale="batch")
  std = math.sqrt(1 / 5)
  np.testing.assert_allclose(adv, [[0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0], [0, 0, 0]],
                             rtol=1e-6)
  adv0, _ = advantages.compute("grpo", r, v, scale="batch")  # ddof 0: var = 4/25
  np.testing.assert_allclose(adv0[0, :2], [0.5 / 0.4, -0.5 / 0.4], rtol=1e-6)
  with pytest.raises(ValueError, match="scale must be one of"):
    advantages.compute("grpo", r, scale="token")


def test_grpo_passk_pushes_only_the_best_response():
  # Row 0: best 0.9 at column 1, second 0.7: gap 0.2; ddof-1 std of (0.2, 0.9, 0.5, 0.7):
  # mean 0.575, squared deviations sum to 0.2675. Row 1: two tied maxima, gap 0. Row 2:
  # the best valid reward (0.4) beats 0.1; the invalid 5.0 is ignored. Row 3: one valid.
  r = np.array([[0.2, 0.9, 0.5, 0.7], [1, 0, 1, 0], [0.1, 5.0, 0.4, 0.1],
                [0.3, 0, 0, 0]], np.float32)
  v = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 1, 1], [1, 0, 0, 0]], bool)
  adv, _ = advantages.compute("grpo_passk", r, v)
  std0 = math.sqrt(0.2675 / 3)
  std2 = float(np.std([0.1, 0.4, 0.1], ddof=1))  # 0.1732...
  want = np.zeros((4, 4))
  want[0, 1], want[2, 2] = 0.2 / std0, 0.3 / std2
  np.testing.assert_allclose(adv, want, rtol=2e-6, atol=1e-7)
  raw, _ = advantages.compute("grpo_passk", r, v, normalize=False)
  want_raw = np.zeros((4, 4))
  want_raw[0, 1], want_raw[2, 2] = 0.2, 0.3
  np.testing.assert_allclose(raw, want_raw, rtol=2e-6, atol=1e-7)
  verl, _ = advantages.compute("grpo_passk", r, v, eps=1e-6)
  np.testing.assert_allclose(verl[0, 1], 0.2 / (std0 + 1e-6), rtol=2e-6)


def test_bbg_K_still_works_with_a_deprecation_warning():
  r, v, _ = _batch(7)
  with pytest.warns(DeprecationWarning, match="'K' is renamed 'k'"):
    old, _ = advantages.compute("bbg", r, v, K=16)
  new, _ = advantages.compute("bbg", r, v, k=16)
  np.testing.assert_array_equal(old, new)
  with pytest.warns(DeprecationWarning):
    fn = advantages.from_config({"name": "bbg", "K": 16})
  np.testing.assert_array_equal(fn(r, v)[0], new)
  with pytest.raises(ValueError, match="both 'K'"):
    advantages.compute("bbg", r, v, K=16, k=16)
