"""Entry point: `python -m rlvr_jax.main --config=configs/maze_tiny.py:runlocal --workdir=/tmp/w`."""

from absl import app, flags, logging
from ml_collections import config_flags

from rlvr_jax.rl import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (metrics, checkpoints, plots).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO; keep the bar readable
    logging.set_verbosity(logging.WARNING)
  train.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
