"""Tests of rlvr_jax.sampling: exactness against references, distributions, EOS, sharding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rlvr_jax import models, sampling, sharding

TINY = models.preset("tiny")


@pytest.fixture(scope="module")
def tiny_params():
  # Random init gives near-uniform logits; scaling the matrices makes the
  # policy peaked enough that top-p / top-k sets are small and tests have power.
  params = models.init_params(TINY, jax.random.PRNGKey(0))
  return jax.tree.map(lambda x: x * 5 if x.ndim > 1 else x, params)


def _prompts():
  # Two left-padded prompts of lengths 3 and 5.
  tokens = np.array([[0, 0, 5, 6, 7], [9, 10, 11, 12, 13]], np.int32)
  mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], np.int32)
  return tokens, mask


@functools.partial(jax.jit, static_argnames=("cfg",))
def _uncached_forward(params, seq_1xT, *, cfg):
  pos = jnp.arange(seq_1xT.shape[1])[None]
  h, _ = models.forward_hidden(params, cfg, seq_1xT, pos, jnp.ones_like(seq_1xT))
  lp, ent = models.token_logprobs(params, cfg, h[:, :-1], seq_1xT[:, 1:])
  return lp[0], ent[0], models.logits(params, cfg, h[:, :-1])[0]


def _teacher_forced(params, cfg, prompt, gen):
  """Policy log p, entropy and logits at each generated token, from one uncached forward pass."""
  seq = jnp.asarray(np.concatenate([prompt, gen])[None], jnp.int32)
  lp, ent, logits = _uncached_forward(params, seq, cfg=cfg)
  n = len(gen)
  return np.asarray(lp[-n:]), np.asarray(ent[-n:]), np.asarray(logits[-n:], np.float64)


@pytest.mark.parametrize("controls", [dict(temperature=1.0), dict(temperature=0.7, top_p=0.8),
                                      dict(temperature=1.3, top_k=10)])
def test_logprobs_match_teacher_forced(tiny_params, controls):
  tokens, mask = _prompts()
  out = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(3), num_samples=2,
                        max_new_tokens=12, eos_ids=(), **controls)
  assert out.tokens_RxT.shape == (4, 12) and bool(jnp.all(out.mask_RxT == 1))
  for r in range(4):
    b = r // 2  # problem-major rows
    gen = np.asarray(out.tokens_RxT[r])
    lp, ent, logits = _teacher_forced(tiny_params, TINY, tokens[b][mask[b] == 1], gen)
    np.testing.assert_allclose(np.asarray(out.logprobs_RxT[r]), lp, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out.entropy_RxT[r]), ent, atol=1e-4)
    # Sampling distribution: temperature, then top-k, then top-p, in float64.
    z = logits / controls.get("temperature", 1.0)
    keep = _allowed_sets(z, controls.get("top_k", 0), controls.get("top_p", 1.0))
    z = np.where(keep, z, -np.inf)
    ref = z[np.arange(12), gen] - np.log(np.sum(np.exp(z - z.max(1, keepdims=True)), 1)) - z.max(1)
    np.testing.assert_allclose(np.asarray(out.sampling_logprobs_RxT[r]), ref, atol=1e-4)


def _allowed_sets(z_TxV, top_k, top_p):
  """Tokens of the top-k set then the top-p nucleus, by sorting (float64 reference).

  Ties at the boundary are all allowed (the sampler keeps them all).
  """
  keep = np.ones_like(z_TxV, bool)
  if top_k:
    kth = np.sort(z_TxV, axis=1)[:, -top_k]
    keep &= z_TxV >= kth[:, None]
  if top_p < 1.0:
    p = np.where(keep, np.exp(z_TxV - z_TxV.max(1, keepdims=True)), 0.0)
    p /= p.sum(1, keepdims=True)
    for t in range(len(p)):
      order = np.argsort(-p[t])
      cum = np.cumsum(p[t][order])
      n = int(np.searchsorted(cum, top_p)) + 1  # smallest prefix with mass >= top_p
      keep[t] &= p[t] >= p[t][order[min(n, len(order)) - 1]]
  return keep


def test_greedy_is_argmax_of_teacher_forced(tiny_params):
  tokens, mask = _prompts()
  out = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(0), num_samples=2,
                        max_new_tokens=16, greedy=True, eos_ids=())
  for r in range(4):
    b = r // 2
    gen = np.asarray(out.tokens_RxT[r])
    _, _, logits = _teacher_forced(tiny_params, TINY, tokens[b][mask[b] == 1], gen)
    np.testing.assert_array_equal(gen, logits.argmax(1))
  assert float(jnp.abs(out.sampling_logprobs_RxT).max()) == 0.0  # a point mass


def test_decode_across_cache_segments_matches_teacher_forced(tiny_params):
  # 100 new tokens: by default the cache's new slots form 3 segments, so the decode loop
  # crosses two segment boundaries, attending over more segments after each; then 5.
  assert sampling.sampler.default_segments(100) == 3
  tokens, mask = _prompts()
  for greedy, segments in ((False, None), (True, None), (False, 5)):
    out = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(7), num_samples=2,
                          max_new_tokens=100, greedy=greedy, eos_ids=(), cache_segments=segments)
    assert bool(jnp.all(out.mask_RxT == 1))
    for r in range(4):
      b = r // 2
      gen = np.asarray(out.tokens_RxT[r])
      lp, ent, logits = _teacher_forced(tiny_params, TINY, tokens[b][mask[b] == 1], gen)
      np.testing.assert_allclose(np.asarray(out.logprobs_RxT[r]), lp, atol=1e-4)
      np.testing.assert_allclose(np.asarray(out.entropy_RxT[r]), ent, atol=1e-4)
      if greedy:
        np.testing.assert_array_equal(gen, logits.argmax(1))


def test_first_token_distribution_chi_square(tiny_params):
  # 20000 draws of the first token of one prompt at temperature 1 against the
  # softmax of the uncached forward pass. Power check: draws at temperature
  # 0.8 must be rejected by the same test.
  prompt = np.array([[5, 6, 7, 8]], np.int32)
  h, _ = models.forward_hidden(tiny_params, TINY, jnp.asarray(prompt), jnp.arange(4)[None],
                               jnp.ones((1, 4), jnp.int32))
  logits = np.asarray(models.logits(tiny_params, TINY, h)[0, -1], np.float64)
  p = np.exp(logits - logits.max())
  p /= p.sum()
  n = 20000

  def pvalue(temperature):
    out = sampling.sample(tiny_params, TINY, prompt, np.ones_like(prompt), jax.random.PRNGKey(7),
                          num_samples=n, max_new_tokens=1, temperature=temperature, eos_ids=())
    counts = np.bincount(np.asarray(out.tokens_RxT[:, 0]), minlength=TINY.vocab_size)
    expected = n * p
    big = expected >= 5  # pool the rare tokens into one bin, as chi-square needs
    obs, exp = counts[big], expected[big]
    if not big.all():
      obs, exp = np.append(obs, counts[~big].sum()), np.append(exp, expected[~big].sum())
    return stats.chisquare(obs, exp).pvalue

  assert p.max() > 0.05 and (n * p >= 5).sum() >= 10  # a non-trivial distribution
  assert pvalue(1.0) > 1e-3
  assert pvalue(0.8) < 1e-6


@pytest.mark.parametrize("top_k,top_p", [(5, 1.0), (0, 0.6), (8, 0.7)])
def test_top_k_top_p_never_leave_their_set(tiny_params, top_k, top_p):
  tokens, mask = _prompts()
  out = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(11), num_samples=64,
                        max_new_tokens=6, top_k=top_k, top_p=top_p, eos_ids=())
  for r in range(out.tokens_RxT.shape[0]):
    b = r // 64
    gen = np.asarray(out.tokens_RxT[r])
    _, _, logits = _teacher_forced(tiny_params, TINY, tokens[b][mask[b] == 1], gen)
    keep = _allowed_sets(logits, top_k, top_p)
    assert keep[np.arange(6), gen].all(), f"row {r} left the allowed set"
    assert keep.sum(1).max() < TINY.vocab_size  # the filters did remove tokens


def test_nucleus_threshold_matches_sort_on_both_paths():
  # Peaked rows start with <= 256 weights in the bracket (no bisection: 17-167
  # here); flat rows with all 1000 (bisection first).
  key1, key2 = jax.random.split(jax.random.PRNGKey(0))
  peaked = jax.random.normal(key1, (4, 1000)) * 4
  flat = jax.random.normal(key2, (4, 1000)) * 0.3
  for logits in (peaked, flat, jnp.concatenate([peaked, flat])):
    e = jnp.exp(logits - logits.max(1, keepdims=True))
    for top_p in (0.5, 0.9, 0.95):
      t = sampling.ops.nucleus_threshold(e, top_p)
      ref = _allowed_sets(np.asarray(logits, np.float64), 0, top_p)
      np.testing.assert_array_equal(np.asarray(e >= t[:, None]), ref)


def test_nucleus_threshold_keeps_ties_whole():
  # A uniform row keeps everything; tied top weights are kept or dropped together.
  uniform = jnp.ones((1, 1000))
  tied = jnp.concatenate([jnp.full((1, 300), 1.0), jnp.full((1, 700), 1e-3)], axis=1)
  for e, top_p, kept in ((uniform, 0.5, 1000), (tied, 0.5, 300), (tied, 0.999, 1000)):
    t = sampling.ops.nucleus_threshold(e, top_p)
    assert int(jnp.sum(e >= t[:, None])) == kept, (top_p, kept)


def test_first_argmax_is_numpy_argmax_with_ties_infinities_and_nans():
  z = np.array([[1, 3, 3, 2], [np.nan, 1, np.nan, 0], [0, 0, 0, 0], [-np.inf, -np.inf, 5, np.inf],
                [-np.inf] * 4, [2, np.nan, 7, 7]], np.float32)
  rand = np.random.default_rng(0).integers(-3, 3, (64, 300)).astype(np.float32)  # many ties
  for x in (z, rand):
    got = np.asarray(sampling.ops.first_argmax(jnp.asarray(x)))
    np.testing.assert_array_equal(got, np.argmax(x, axis=-1))
    assert got.dtype == np.int32


def test_inverse_cdf_only_returns_positive_weights():
  w = jnp.zeros((3, 700)).at[0, 5].set(1.0).at[1, 699].set(2.0).at[2, 300].set(0.5)
  w = w.at[2, 301].set(0.5)
  u = jnp.array([0.0, 0.999999, 0.75])
  np.testing.assert_array_equal(np.asarray(sampling.ops.inverse_cdf(u, w)), [5, 699, 301])
  u1 = jnp.full((3,), jnp.nextafter(jnp.float32(1), jnp.float32(0)))
  assert np.asarray(w[jnp.arange(3), sampling.ops.inverse_cdf(u1, w)] > 0).all()


def test_eos_stops_rows_independently(tiny_params):
  # Reference run without EOS; then declare a token that row 0 emits at step 4
  # the EOS. With the same key every row's draws are unchanged while it is
  # alive, so each row must stop exactly at its first occurrence of that token.
  tokens, mask = _prompts()
  kw = dict(num_samples=3, max_new_tokens=20, temperature=1.0)
  ref = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(5), eos_ids=(), **kw)
  ref_tok = np.asarray(ref.tokens_RxT)
  eos = int(ref_tok[0, 4])
  pad = 1
  out = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(5), eos_ids=(eos,),
                        pad_id=pad, **kw)
  hits = [np.flatnonzero(row == eos) for row in ref_tok]
  assert any(len(h) == 0 for h in hits) or len({h[0] for h in hits}) > 1  # rows differ
  for r, h in enumerate(hits):
    n = h[0] + 1 if len(h) else 20
    np.testing.assert_array_equal(np.asarray(out.tokens_RxT[r, :n]), ref_tok[r, :n])
    assert (np.asarray(out.tokens_RxT[r, n:]) == pad).all()
    np.testing.assert_array_equal(np.asarray(out.mask_RxT[r]), np.arange(20) < n)
    for field in (out.logprobs_RxT, out.sampling_logprobs_RxT, out.entropy_RxT):
      assert (np.asarray(field[r, n:]) == 0).all()
    np.testing.assert_allclose(np.asarray(out.logprobs_RxT[r, :n]), np.asarray(ref.logprobs_RxT[r, :n]),
                               atol=1e-5)
    assert int(out.lengths_R[r]) == n and bool(out.finished_R[r]) == bool(len(h))


def test_same_key_same_tokens_and_bucketing(tiny_params):
  tokens, mask = _prompts()
  kw = dict(num_samples=2, max_new_tokens=8, top_p=0.9, eos_ids=())
  a = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(1), **kw)
  # Extra all-padding columns fall in the same bucket and change nothing.
  wide_t = np.pad(tokens, ((0, 0), (4, 0)))
  wide_m = np.pad(mask, ((0, 0), (4, 0)))
  before = sampling.sampler._prefill._cache_size()
  b = sampling.sample(tiny_params, TINY, wide_t, wide_m, jax.random.PRNGKey(1), **kw)
  assert sampling.sampler._prefill._cache_size() == before  # no new program
  np.testing.assert_array_equal(np.asarray(a.tokens_RxT), np.asarray(b.tokens_RxT))
  c = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(2), **kw)
  assert not np.array_equal(np.asarray(a.tokens_RxT), np.asarray(c.tokens_RxT))
  buckets = [sampling.bucket_length(n) for n in (3, 16, 17, 25, 33, 48, 49, 97, 129)]
  assert buckets == [16, 16, 24, 32, 48, 48, 64, 128, 192]


def test_sharded_equals_single_device(tiny_params):
  assert len(jax.devices()) == 8
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  axes = models.param_logical_axes(TINY)
  sharded = jax.device_put(tiny_params, sharding.logical_sharding(axes, mesh, shapes=tiny_params))
  tokens, mask = _prompts()
  kw = dict(num_samples=4, max_new_tokens=10, top_p=0.9, top_k=20, eos_ids=(2,))
  one = sampling.sample(tiny_params, TINY, tokens, mask, jax.random.PRNGKey(4), **kw)
  many = sampling.sample(sharded, TINY, tokens, mask, jax.random.PRNGKey(4), mesh=mesh, **kw)
  assert len(many.tokens_RxT.sharding.device_set) == 8
  np.testing.assert_array_equal(np.asarray(one.tokens_RxT), np.asarray(many.tokens_RxT))
  np.testing.assert_array_equal(np.asarray(one.mask_RxT), np.asarray(many.mask_RxT))
  # Tensor parallelism (2-way) splits the heads' and the MLP's contractions, so the float32
  # sums run in another order: log-probs of magnitude ~3 after 4 layers and 10 decode steps
  # differ by up to ~1e-5 (1.14e-5 measured with the 2026-12-02 wheels), a few ulp a layer.
  np.testing.assert_allclose(np.asarray(one.logprobs_RxT), np.asarray(many.logprobs_RxT),
                             rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise(tiny_params):
  tokens, mask = _prompts()
  call = lambda **kw: sampling.sample(tiny_params, TINY, kw.pop("t", tokens), kw.pop("m", mask),
                                      jax.random.PRNGKey(0), **{"num_samples": 1,
                                                                "max_new_tokens": 2, **kw})
  with pytest.raises(ValueError, match="left-padded"):
    call(m=mask[:, ::-1].copy())
  with pytest.raises(ValueError, match="temperature"):
    call(temperature=0.0)
  with pytest.raises(ValueError, match="top_p"):
    call(top_p=0.0)
  with pytest.raises(ValueError, match="top_k"):
    call(top_k=-1)
  with pytest.raises(ValueError, match="cache_segments"):
    call(cache_segments=0)
  with pytest.raises(ValueError, match="num_samples"):
    call(num_samples=0)
  with pytest.raises(ValueError, match="eos_ids"):
    call(eos_ids=(TINY.vocab_size,))
  with pytest.raises(ValueError, match="outside"):
    call(t=tokens + TINY.vocab_size)


# --- SmolLM2-135M-Instruct against transformers ---------------------------------------------

_QUESTIONS = ["What is 2+2?", "Write a long story about a dragon who learns to bake bread.",
              "Explain, step by step, how a bicycle works."]


@pytest.fixture(scope="module")
def smollm(tmp_path_factory):
  """(cfg, params, tokenizer, torch model) from the same dequantized float32 weights.

  The torch model is built from rlvr_jax's own HF export of the loaded params,
  so both sides compute with bit-identical weights.
  """
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from rlvr_jax import checkpoints
  cfg, params, tok = checkpoints.load_policy("smollm2_135m_instruct")
  directory = str(tmp_path_factory.mktemp("smollm2_hf"))
  checkpoints.export_hf(params, cfg, directory)
  hf = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
  return cfg, params, tok, hf


def test_greedy_equals_transformers_generate(smollm):
  import torch
  from rlvr_jax import sampling
  cfg, params, tok, hf = smollm
  t_new = 64
  tokens, mask = sampling.text.encode_prompts(tok, _QUESTIONS, chat=True, pad_id=cfg.pad_id)
  lengths = mask.sum(1)
  assert len(set(lengths.tolist())) == len(_QUESTIONS)  # prompts of different lengths
  out = sampling.sample(params, cfg, tokens, mask, jax.random.PRNGKey(0), num_samples=1,
                        max_new_tokens=t_new, greedy=True)
  with torch.no_grad():
    ref = hf.generate(torch.tensor(tokens, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long), do_sample=False,
                      num_beams=1, max_new_tokens=t_new, eos_token_id=list(cfg.eos_ids),
                      pad_token_id=cfg.pad_id)
  ref = ref[:, tokens.shape[1]:].numpy()
  # transformers stops when every row has ended; the rest is padding.
  ref = np.pad(ref, ((0, 0), (0, t_new - ref.shape[1])), constant_values=cfg.pad_id)
  got = np.asarray(out.tokens_RxT)
  np.testing.assert_array_equal(got, ref)
  assert int(np.asarray(out.lengths_R).max()) == t_new  # at least one row ran all 64 tokens

  # Log-probabilities of the decoded tokens against one teacher-forced forward pass.
  for r in range(len(_QUESTIONS)):
    n = int(out.lengths_R[r])
    lp, _, logits = _teacher_forced(params, cfg, tokens[r][mask[r] == 1], got[r, :n])
    np.testing.assert_allclose(np.asarray(out.logprobs_RxT[r, :n]), lp, atol=1e-4)
    # Entropy sums over 49152 tokens, so it amplifies the float32 difference
    # between cached and uncached logits: measured ~2.4e-4 against the float64
    # entropy of the teacher-forced logits (the tiny-model tests hold 1e-4).
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ent64 = -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=1)
    np.testing.assert_allclose(np.asarray(out.entropy_RxT[r, :n]), ent64, atol=1e-3)
