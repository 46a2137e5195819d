"""Evaluation at large k (rlvr_jax/rl/stats.py `evaluate`), the kept base curve and its plot.

The sampler is replaced by one with forced outcomes: problem i of a set has exactly c_i
correct samples among its n, whatever the chunking, so the counts, the curve and the chunk
shapes can be checked against values fixed in advance.
"""

import json
import math
import os
from fractions import Fraction
from types import SimpleNamespace

import jax
import ml_collections
import numpy as np
import pytest

from rlvr_jax import metrics, plot
from rlvr_jax.rl import logger, stats


class ForcedSampler:
  """`rollout.generate` whose j-th call for an example returns its samples j*m .. (j+1)*m - 1,
  sample s correct iff s < the example's `c`."""

  def __init__(self):
    self.calls = []
    self.drawn = {}

  def __call__(self, params, cfg, task, tokenizer, examples, key, *, num_samples, **kw):
    self.calls.append((len(examples), num_samples, tuple(np.asarray(jax.random.key_data(key)))))
    rows, starts = [], {}
    for ex in examples:  # a padding copy of a problem in the same call repeats its rows
      if ex["id"] not in starts:
        starts[ex["id"]] = self.drawn.get(ex["id"], 0)
        self.drawn[ex["id"]] = starts[ex["id"]] + num_samples
      start = starts[ex["id"]]
      rows.append(np.arange(start, start + num_samples) < ex["c"])
    return SimpleNamespace(rewards_BxN=np.asarray(rows, np.float32))


def _cfg(n, chunk, batch_prompts=4, bootstrap=200):
  return ml_collections.ConfigDict(dict(num_samples=n, sample_chunk=chunk, bootstrap=bootstrap,
                                        batch_prompts=batch_prompts, temperature=1.0, top_p=0.95))


RL = ml_collections.ConfigDict(dict(max_prompt_len=8, max_new_tokens=4))


def _sets():
  # 6 problems in "a" (two chunks of 4 problems, the second padded), 3 in "b".
  a = [{"id": f"a{i}", "c": c} for i, c in enumerate([0, 1, 5, 64, 200, 256])]
  b = [{"id": f"b{i}", "c": c} for i, c in enumerate([0, 0, 128])]
  return {"a": a, "b": b}


def _evaluate(monkeypatch, cfg):
  sampler = ForcedSampler()
  monkeypatch.setattr(stats.rollout, "generate", sampler)
  out = stats.evaluate(None, None, None, None, _sets(), jax.random.PRNGKey(0), cfg, RL, False)
  return out, sampler


def test_n256_in_chunks_counts_every_sample_and_bounds_the_sampler_rows(monkeypatch):
  n, chunk = 256, 32
  out, sampler = _evaluate(monkeypatch, _cfg(n, chunk))
  # 3 problem chunks (a: 2, b: 1) x 8 sample chunks, each 4 prompts x 32 samples.
  assert len(sampler.calls) == 3 * (n // chunk)
  assert {(b, m) for b, m, _ in sampler.calls} == {(4, chunk)}
  assert len({k for _, _, k in sampler.calls}) == len(sampler.calls)  # a key per chunk
  ks = [1, 2, 4, 8, 16, 32, 64, 128, 256]
  exact = lambda c, k: 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
  for name, ex in _sets().items():
    for k in ks:
      want = sum(exact(e["c"], k) for e in ex) / len(ex)
      assert abs(out[f"{name}/pass@{k}"] - float(want)) <= 1e-6, (name, k)
      assert out[f"{name}/pass@{k}_lo"] <= out[f"{name}/pass@{k}"] <= out[f"{name}/pass@{k}_hi"]
  for k in ks:
    assert out[f"pass@{k}"] == pytest.approx((out[f"a/pass@{k}"] + out[f"b/pass@{k}"]) / 2,
                                             abs=1e-12)
    assert out[f"pass@{k}_lo"] < out[f"pass@{k}"] < out[f"pass@{k}_hi"]
  # The same counts sampled all at once: the same curve, one call a problem chunk.
  whole, sampler = _evaluate(monkeypatch, _cfg(n, 0))
  assert [m for _, m, _ in sampler.calls] == [n] * 3
  for k in ks:
    assert whole[f"pass@{k}"] == out[f"pass@{k}"]


def test_bad_eval_settings_are_clear_errors(monkeypatch):
  with pytest.raises(ValueError, match="sample_chunk=48 must be 0"):
    _evaluate(monkeypatch, _cfg(256, 48))
  with pytest.raises(ValueError, match="bootstrap must be >= 0"):
    stats.check_eval(_cfg(8, 0, bootstrap=-1))


def test_base_curve_is_kept_imported_and_plotted_under_every_later_curve(tmp_path, monkeypatch):
  base, _ = _evaluate(monkeypatch, _cfg(32, 8))
  src = tmp_path / "warmstart"
  src.mkdir()
  # A shared warm start's workdir: its step-0 eval is in metrics.jsonl only.
  with open(src / "metrics.jsonl", "w", encoding="utf-8") as f:
    f.write(json.dumps({"step": 0, "phase": "eval", **base}) + "\n")
  run = tmp_path / "run"
  run.mkdir()
  stats.import_base_eval(str(src), str(run))
  kept = json.load(open(run / stats.BASE_EVAL, encoding="utf-8"))
  assert kept == {**base, "step": 0, "phase": "eval"}
  # Kept once: a later import or keep does not replace it.
  stats.keep_base_eval(str(run), {"pass@1": 0.99})
  stats.import_base_eval(str(src), str(run))
  assert json.load(open(run / stats.BASE_EVAL, encoding="utf-8")) == kept
  with pytest.raises(ValueError, match="no base_eval.json and no step-0 eval"):
    stats.import_base_eval(str(tmp_path / "empty"), str(tmp_path / "other"))
  # Later evals of the run (no step 0 of its own), then the plot.
  with open(run / "metrics.jsonl", "w", encoding="utf-8") as f:
    for step, shift in ((5, 0.05), (10, 0.1)):
      rec = {k: (v + shift if k.startswith(("a/", "b/", "pass@")) else v) for k, v in base.items()}
      f.write(json.dumps({"step": step, "phase": "eval", **rec}) + "\n")
  paths = plot.plot_workdir(str(run))
  png = os.path.join(str(run), "plots", "passk_curve.png")
  assert png in paths and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  evals = [r for r in logger.read_jsonl(str(run / "metrics.jsonl")) if r["phase"] == "eval"]
  assert plot.base_record(str(run), evals) == kept
  parsed = plot.curves(kept)
  assert sorted(parsed) == ["a", "all", "b"]
  assert parsed["all"][32] == {"value": base["pass@32"], "lo": base["pass@32_lo"],
                               "hi": base["pass@32_hi"]}
  assert parsed["b"][1]["value"] == base["b/pass@1"]
  # The scalar grid leaves the intervals to the curve plot.
  assert "eval.png" in os.listdir(run / "plots")


def test_curve_values_by_hand():
  # n = 4: problems with 0 and 2 correct; pass@2 = (0 + (1 - C(2,2)/C(4,2))) / 2 = 5/12.
  out = metrics.pass_at_k_intervals(4, {"s": np.array([0, 2])}, num_boot=0)
  assert out["pass@2"] == pytest.approx(5 / 12, abs=1e-7)
  assert out["pass@4"] == pytest.approx(0.5, abs=1e-7)
