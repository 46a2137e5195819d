"""Entry point: `python -m rlvr_jax.main --config=configs/maze_tiny.py:runlocal --workdir=/tmp/w`.

Multi-process runs (one process a host: TPU pod slices, GPU clusters; several on one
machine for tests) start JAX's distributed runtime first: under a launcher JAX detects
(SLURM, Open MPI, GKE TPU slices), with `--multihost` (a GCE TPU VM pod slice), or with
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I`. docs/LAUNCH.md has
the commands.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from rlvr_jax import multihost

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (metrics, checkpoints, plots).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0, for a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")
_MULTIHOST = flags.DEFINE_bool("multihost", False,
                               "Start the distributed runtime with JAX's own cluster detection "
                               "(a GCE TPU VM pod slice); launchers with environment variables "
                               "are detected without it.")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout_s", multihost.DEFAULT_HEARTBEAT_TIMEOUT_S,
                                  "A process silent this long counts as dead and every other "
                                  "process stops with an error.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO; keep the bar readable
    logging.set_verbosity(logging.WARNING)
  # Before anything touches a device: the distributed runtime must come first.
  multihost.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                       force=_MULTIHOST.value, heartbeat_timeout_s=_HEARTBEAT.value)
  from rlvr_jax.rl import train  # noqa: E402 (imports jax-using modules after initialize)
  train.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
