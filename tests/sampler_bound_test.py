"""benchmarks/sampler_bound.py counts every weight matmul and its chains run (so it cannot rot)."""

import os
import sys

import jax
import numpy as np

from rlvr_jax import models

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import sampler_bound as bound  # noqa: E402


def test_weights_only_chain_holds_every_matmul_weight_and_runs():
  cfg = models.preset("tiny")
  params = models.init_params(cfg, jax.random.key(0))
  mats = bound._matmul_weights(params, cfg)
  assert len(mats) == 7 * cfg.num_layers + 1
  norms = cfg.d_model * (2 * cfg.num_layers + 1)
  # The embedding lookup is free and, tied, the head is the same matrix: all
  # parameters but the norms are multiplied once a token.
  assert sum(w.size for w in mats) == cfg.num_params() - norms
  assert all(w.dtype == np.float32 and w.ndim == 2 for w in mats)
  for seconds in (bound.weights_only_step_xla(mats, rows=4, steps=2, repeats=1),
                  bound.weights_only_step_blas(mats, rows=4, repeats=1)):
    assert 0 < seconds < 10
