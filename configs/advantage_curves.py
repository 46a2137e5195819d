"""Advantage curves: A_pos, A_neg and eta against N_pos (Pass@k training, Fig. 'advantage curves').

    python experiments/advantage_curves/run.py --out=/tmp/curves \
        --config=configs/advantage_curves.py:estimator=pkpo,k=8

The paper's estimator set is always drawn; the `advantage` block adds one more
curve (any registry name), the same block the trainer hands to
`rlvr_jax.advantages.from_config`.
"""

import ml_collections

from rlvr_jax import config_utils


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = config_utils.parse_arg(arg, n=32, estimator="passk_analytical", k=4, runlocal=False)
  config = ml_collections.ConfigDict()
  config.n = arg.n if not arg.runlocal else 8
  config.advantage = ml_collections.ConfigDict({"name": arg.estimator})
  if arg.estimator not in ("grpo", "dr_grpo", "rloo", "bbg"):
    config.advantage.k = min(arg.k, config.n)
  return config
