"""Per-step sampling primitives, jit-friendly (static shapes, no sort).

Letters: R rows, V vocabulary.

Two distributions appear at every decode step:
- the *policy* at temperature 1: softmax(logits). The trainer's importance
  ratio needs its log-probabilities; its entropy is the exploration signal.
- the *sampling* distribution: softmax(logits / temperature) restricted to the
  top-k tokens and then to the top-p nucleus, renormalized. Tokens are drawn
  from it; its log-probabilities are what an off-policy correction needs.

Everything works on unnormalized weights `e = exp(z - max z)` in (0, 1], so the
vocabulary is exponentiated once per distribution and never sorted:
- top-k: the k-th largest logit from `lax.top_k`, then a threshold;
- top-p: the nucleus threshold comes from a bisection over float32 bit
  patterns, stopped once few weights remain in the bracket and finished by
  `lax.top_k` on those (see `nucleus_threshold`), instead of an O(V log V) sort;
- drawing: inverse CDF with one uniform a row, over block sums then within one
  block, instead of V Gumbel variates a row (random bits are the costly part
  on CPU).
Ties at a threshold are all kept (a sort would keep an arbitrary subset).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

_BLOCK = 256  # vocabulary block of the two-level inverse CDF
_FINISH_K = 256  # nucleus: bisect until this many weights remain, then lax.top_k


class StepOut(NamedTuple):
  tokens_R: jax.Array  # int32
  logprobs_R: jax.Array  # policy at temperature 1
  sampling_logprobs_R: jax.Array  # the filtered distribution sampled from
  entropy_R: jax.Array  # policy at temperature 1


def check_controls(temperature: float, top_p: float, top_k: int, greedy: bool) -> None:
  """Raises ValueError for sampling controls outside their domain."""
  if not greedy and not temperature > 0:
    raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"top_p must be in (0, 1], got {top_p}")
  if top_k < 0 or int(top_k) != top_k:
    raise ValueError(f"top_k must be a non-negative integer (0 = off), got {top_k}")


def first_argmax(z_RxV: jax.Array) -> jax.Array:
  """`jnp.argmax` over the last axis (the first index on ties, the first NaN if any), int32.

  A max, then the smallest index that reaches it: two plain reductions, where XLA:CPU's
  variadic argmax reduction over [64, 49152] float32 took 5 ms against 2.2 (RESULTS.md).
  """
  v = z_RxV.shape[-1]
  hit_RxV = (z_RxV == jnp.max(z_RxV, axis=-1, keepdims=True)) | jnp.isnan(z_RxV)
  return jnp.min(jnp.where(hit_RxV, jnp.arange(v, dtype=jnp.int32), v), axis=-1)


def top_k_mask(z_RxV: jax.Array, top_k: int) -> jax.Array:
  """True for the tokens whose logit is at least the k-th largest of its row."""
  kth_R = jax.lax.top_k(z_RxV, top_k)[0][:, -1]
  return z_RxV >= kth_R[:, None]


def nucleus_threshold(e_RxV: jax.Array, top_p: float) -> jax.Array:
  """Largest t with sum(e[e >= t]) >= top_p * sum(e), per row (e >= 0).

  The kept set {e >= t} is the smallest top set holding top_p of the mass.
  A bracket lo <= t* < hi, kept with mass(e >= lo) >= target > mass(e >= hi), is
  narrowed by bisection over float32 bit patterns (positive floats order like
  their bits) until at most `_FINISH_K` weights lie strictly inside it; those
  are then sorted by `lax.top_k` and t* read off their cumulative sum.
  lo starts at (1 - top_p) * sum(e) / V, a valid lower end (the weights below
  it hold at most V times it), so a peaked policy needs no bisection at all,
  and a flat one a few passes over V rather than one a bit.
  """
  r, v = e_RxV.shape
  k = min(_FINISH_K, v)
  bits = lambda x: jax.lax.bitcast_convert_type(x, jnp.int32)
  floats = lambda b: jax.lax.bitcast_convert_type(b, jnp.float32)
  total_R = jnp.sum(e_RxV, axis=-1)
  target_R = top_p * total_R
  mass_at = lambda b_R: jnp.sum(jnp.where(e_RxV >= floats(b_R)[:, None], e_RxV, 0.0), axis=-1)
  inside = lambda lo_R, hi_R: ((e_RxV > floats(lo_R)[:, None])
                               & (e_RxV < floats(hi_R)[:, None]))
  lo_R = bits((1.0 - top_p) * total_R / v)
  lo_R = jnp.where(mass_at(lo_R) >= target_R, lo_R, 0)  # float rounding: fall back to 0
  hi_R = bits(jnp.max(e_RxV, axis=-1)) + 1               # mass above the max is 0
  mass_hi_R = jnp.zeros((r,), jnp.float32)

  def active(lo_R, hi_R):
    return (jnp.sum(inside(lo_R, hi_R), axis=-1) > k) & (hi_R - lo_R > 1)

  def body(c):
    lo_R, hi_R, mass_hi_R, active_R = c
    mid_R = lo_R + (hi_R - lo_R) // 2
    mass_mid_R = mass_at(mid_R)
    ok_R = mass_mid_R >= target_R
    lo_R = jnp.where(active_R & ok_R, mid_R, lo_R)
    hi_R = jnp.where(active_R & ~ok_R, mid_R, hi_R)
    mass_hi_R = jnp.where(active_R & ~ok_R, mass_mid_R, mass_hi_R)
    return lo_R, hi_R, mass_hi_R, active_R & active(lo_R, hi_R)

  init = (lo_R, hi_R, mass_hi_R, active(lo_R, hi_R))
  lo_R, hi_R, mass_hi_R, _ = jax.lax.while_loop(lambda c: jnp.any(c[3]), body, init)
  # At most k weights strictly inside (lo, hi): sort them, descending.
  vals_RxK = jax.lax.top_k(jnp.where(inside(lo_R, hi_R), e_RxV, 0.0), k)[0]
  cum_RxK = mass_hi_R[:, None] + jnp.cumsum(vals_RxK, axis=-1)
  j_R = jnp.sum(cum_RxK < target_R[:, None], axis=-1)
  # The first j with mass_hi + v_0 + ... + v_j >= target gives t* = v_j; if even
  # all of them fall short, every t in (lo, hi] does, and t* = lo.
  t_R = jnp.take_along_axis(vals_RxK, jnp.minimum(j_R, k - 1)[:, None], axis=-1)[:, 0]
  return jnp.where((j_R < k) & (t_R > 0), t_R, floats(lo_R))


def inverse_cdf(u_R: jax.Array, w_RxV: jax.Array) -> jax.Array:
  """Index i with cumsum(w)[i-1] <= u * sum(w) < cumsum(w)[i]; w >= 0, u in [0, 1).

  Two levels (the sums of Q blocks of C entries, then one block) keep it O(V) with
  small cumsums. Only entries with w > 0 can be returned, also when rounding puts u
  past the end.
  """
  r, v = w_RxV.shape
  nb = -(-v // _BLOCK)
  w_RxQxC = jnp.pad(w_RxV, ((0, 0), (0, nb * _BLOCK - v))).reshape(r, nb, _BLOCK)
  bsum_RxQ = jnp.sum(w_RxQxC, axis=-1)
  bcum_RxQ = jnp.cumsum(bsum_RxQ, axis=-1)
  x_R = u_R * bcum_RxQ[:, -1]
  last_block_R = nb - 1 - jnp.argmax((bsum_RxQ > 0)[:, ::-1], axis=-1)
  block_R = jnp.minimum(jnp.sum(bcum_RxQ <= x_R[:, None], axis=-1), last_block_R)
  before_R = jnp.take_along_axis(bcum_RxQ - bsum_RxQ, block_R[:, None], axis=-1)[:, 0]
  w_RxC = jnp.take_along_axis(w_RxQxC, block_R[:, None, None], axis=1)[:, 0]
  cum_RxC = jnp.cumsum(w_RxC, axis=-1)
  last_R = _BLOCK - 1 - jnp.argmax((w_RxC > 0)[:, ::-1], axis=-1)
  inner_R = jnp.minimum(jnp.sum(cum_RxC <= (x_R - before_R)[:, None], axis=-1), last_R)
  return (block_R * _BLOCK + inner_R).astype(jnp.int32)


def sample_step(key: jax.Array, logits_RxV: jax.Array, *, temperature: float, top_p: float,
                top_k: int, greedy: bool) -> StepOut:
  """Draws one token a row; controls are static Python values.

  Greedy: argmax (first index on ties), sampling log-probability 0 (the
  distribution sampled from is a point mass).
  """
  logits_RxV = logits_RxV.astype(jnp.float32)
  r, v = logits_RxV.shape
  m_R = jnp.max(logits_RxV, axis=-1)
  d_RxV = logits_RxV - m_R[:, None]
  e_RxV = jnp.exp(d_RxV)
  s_R = jnp.sum(e_RxV, axis=-1)
  log_s_R = jnp.log(s_R)
  entropy_R = log_s_R - jnp.sum(e_RxV * d_RxV, axis=-1) / s_R

  if greedy:
    tokens_R = first_argmax(logits_RxV)
    samp_lp_R = jnp.zeros((r,), jnp.float32)
  else:
    if temperature == 1.0:
      z_RxV, w_RxV = d_RxV, e_RxV  # reuse the policy's exponentials
    else:
      z_RxV = d_RxV / temperature  # max stays 0, so w = exp(z) is in (0, 1]
      w_RxV = jnp.exp(z_RxV)
    if top_k and top_k < v:
      w_RxV = jnp.where(top_k_mask(z_RxV, top_k), w_RxV, 0.0)
    if top_p < 1.0:
      t_R = nucleus_threshold(w_RxV, top_p)
      w_RxV = jnp.where(w_RxV >= t_R[:, None], w_RxV, 0.0)
    u_R = jax.random.uniform(key, (r,), jnp.float32)
    tokens_R = inverse_cdf(u_R, w_RxV)
    z_tok_R = jnp.take_along_axis(z_RxV, tokens_R[:, None], axis=-1)[:, 0]
    samp_lp_R = z_tok_R - jnp.log(jnp.sum(w_RxV, axis=-1))

  d_tok_R = jnp.take_along_axis(d_RxV, tokens_R[:, None], axis=-1)[:, 0]
  return StepOut(tokens_R, d_tok_R - log_s_R, samp_lp_R, entropy_R)
