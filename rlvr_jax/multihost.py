"""Several JAX processes (multi-controller runs: TPU pod slices, GPU clusters): start-up and the
host-side exchanges the RL loop needs.

Every process runs the same program on its own devices; an array a jitted step
works on is global (one array over every process's devices), and a process
reads only the rows its own devices hold. Rows are laid out process-major:
process p holds rows [p * R_local, (p + 1) * R_local) of a row-sharded array
(`global_rows` checks it). So a problem and its N rollouts stay on one host,
which samples, verifies and computes their advantages; only small per-problem
statistics and flags travel between hosts (`gather`, `any_process`, `max_over`).

With one process every function here is the identity (or a plain device_put),
so single-host code pays nothing.

    python -m rlvr_jax.main --config=... --workdir=... \
        --coordinator_address=HOST:PORT --num_processes=2 --process_id=0   # and =1

or under a launcher JAX detects (SLURM, Open MPI, a GKE TPU slice): see docs/LAUNCH.md.
"""

import logging
import os
import re
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

# A process that stops heartbeating (killed, machine gone) is declared dead after this long;
# the coordination service then stops every other process (no hang in a collective).
DEFAULT_HEARTBEAT_TIMEOUT_S = 30


def launcher_detected(environ: dict[str, str] | None = None) -> str | None:
  """The multi-process launcher this process runs under, or None.

  SLURM (more than one task), Open MPI (more than one rank) and GKE TPU slices
  (more than one worker host) are recognized from their environment variables;
  JAX's `jax.distributed.initialize()` then reads the coordinator and the
  process ids from the same variables. A GCE TPU VM pod slice sets no such
  variable: pass `--multihost` there (docs/LAUNCH.md).
  """
  env = os.environ if environ is None else environ
  if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "openmpi"
  # libtpu writes a warning sentence into this variable where it finds no workers: only a
  # list of host names counts.
  hosts = [h.strip() for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",")]
  if len(hosts) > 1 and all(re.fullmatch(r"[A-Za-z0-9.:_-]+", h) for h in hosts):
    return "gke-tpu"
  return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, force: bool = False,
               heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S) -> bool:
  """Starts JAX's distributed runtime when this is a multi-process run; True if it did.

  Explicit `coordinator_address` / `num_processes` / `process_id` (all three) start it
  as given; otherwise a detected launcher (or `force`) starts it with JAX's own cluster
  detection. Must run before anything touches a JAX device. On CPU the processes'
  collectives go through gloo.
  """
  given = [coordinator_address, num_processes, process_id]
  if any(v is not None for v in given) and not all(v is not None for v in given):
    raise ValueError("--coordinator_address, --num_processes and --process_id go together; got "
                     f"{coordinator_address!r}, {num_processes!r}, {process_id!r}")
  launcher = launcher_detected()
  if given[0] is None and launcher is None and not force:
    return False
  if num_processes is not None and not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id={process_id} is not in [0, --num_processes={num_processes})")
  if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             heartbeat_timeout_seconds=heartbeat_timeout_s)
  logging.info("process %d of %d (%s), %d local devices", jax.process_index(),
               jax.process_count(), launcher or "flags", jax.local_device_count())
  return True


def is_lead() -> bool:
  """True on the process that writes metrics, plots and exports (process 0)."""
  return jax.process_index() == 0


def row_blocks(sharding: NamedSharding, num_rows: int) -> dict[int, tuple[int, int]]:
  """{process index: [start, stop)}, the span of the rows each process's devices hold under
  a row sharding. Spans that are the consecutive blocks [p * R / P, (p + 1) * R / P) mean
  every process holds exactly its own block (a hole would be another process's rows)."""
  blocks: dict[int, tuple[int, int]] = {}
  for device, idx in sharding.devices_indices_map((num_rows,)).items():
    start, stop, _ = idx[0].indices(num_rows)
    lo, hi = blocks.get(device.process_index, (start, stop))
    blocks[device.process_index] = (min(lo, start), max(hi, stop))
  return blocks


def global_rows(local: Any, sharding: NamedSharding) -> Any:
  """A tree of this process's rows (numpy, leading dim R_local) -> global arrays of
  P * R_local rows sharded by `sharding` (None leaves stay None)."""
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)

  def one(x):
    x = np.asarray(x)
    rows = x.shape[0] * jax.process_count()
    start, stop = row_blocks(sharding, rows)[jax.process_index()]
    if (start, stop) != (jax.process_index() * x.shape[0], (jax.process_index() + 1) * x.shape[0]):
      raise ValueError(
          f"process {jax.process_index()}'s devices hold rows [{start}, {stop}) of {rows}, not "
          "its own block: the mesh must list each process's devices together along the batch "
          "axes (sharding.make_mesh does so for CPU and GPU hosts)")
    return jax.make_array_from_process_local_data(sharding, x, (rows,) + x.shape[1:])
  return jax.tree.map(one, local)


def from_host_replica(tree: Any, sharding: Any) -> Any:
  """Global arrays from host data that every process holds in full (the warm start's
  batch, a replicated table): each process places the slices its devices own."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  shardings = jax.tree.map(lambda _: sharding, tree) if isinstance(sharding, jax.sharding.Sharding) \
      else sharding
  return jax.tree.map(lambda x, s: jax.make_array_from_callback(
      np.shape(x), s, lambda idx, x=np.asarray(x): x[idx]), tree, shardings)


def local_rows(tree: Any) -> Any:
  """A tree of global arrays with process-major rows -> this process's block of rows, as
  numpy (read from its own devices; an array replicated over the batch axes is sliced)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  p, count = jax.process_index(), jax.process_count()

  def one(x):
    rows = x.shape[0] // count
    shards = {s.index[0].start or 0: s for s in x.addressable_shards}
    if len(shards) == 1 and x.addressable_shards[0].data.shape[0] == x.shape[0]:
      return np.asarray(x.addressable_shards[0].data)[p * rows:(p + 1) * rows]
    out = np.concatenate([np.asarray(shards[k].data) for k in sorted(shards)])
    if min(shards) != p * rows or out.shape[0] != rows:
      raise ValueError(f"process {p} holds rows from {min(shards)} ({out.shape[0]} of them), "
                       f"not its block [{p * rows}, {(p + 1) * rows})")
    return out
  return jax.tree.map(one, tree)


def gather(tree: Any) -> Any:
  """Host arrays with a leading per-process dim (equal shapes on every process) ->
  their concatenation over processes, in process order, on every process; global
  arrays (the params) -> their full value as numpy, on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def max_over(value: int) -> int:
  """The largest of every process's `value`."""
  if jax.process_count() == 1:
    return int(value)
  return int(np.max(multihost_utils.process_allgather(np.int64(value))))


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on any one (a stop request, say)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.bool_(flag))))


def sync(name: str) -> None:
  """Waits until every process reaches the barrier `name`."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
