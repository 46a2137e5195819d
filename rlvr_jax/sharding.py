"""Device mesh and logical-axis sharding, both driven by config data.

Model code names array dimensions with logical axes ('embed', 'heads', ...);
`logical_axis_rules` maps each to mesh axes ('data', 'fsdp', 'tensor'), so a
new layout is a config change. Parameters are created already sharded: the
init function is traced with `jax.eval_shape`, its output shardings computed
from the logical axes, and `jax.jit(init, out_shardings=...)` materializes each
shard on its own device.
"""

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
Rules = Sequence[tuple[str, str | Sequence[str] | None]]

# MaxText-style defaults: batch over data+fsdp, weights' model dim over fsdp
# (ZeRO-3), heads/mlp/vocab over tensor (Megatron). Activations' feature dims
# stay unsharded between layers.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("head_dim", None),
    ("layers", None),
    ("norm", None),
    ("cache_batch", ("data", "fsdp")),
    ("cache_seq", None),
)


def mesh_shape(mesh_config: Mapping[str, int] | Any, num_devices: int) -> tuple[int, ...]:
  """Axis sizes for (data, fsdp, tensor); one size may be -1 (fills the rest)."""
  sizes = [int(_get(mesh_config, name, 1)) for name in MESH_AXES]
  if sum(s == -1 for s in sizes) > 1:
    raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: at most one axis may be -1")
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: sizes must be positive or -1")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not "
                       f"divisible by the fixed axes' product {known}")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                     f"have {num_devices}")
  return tuple(sizes)


def _get(cfg: Any, name: str, default: Any) -> Any:
  if isinstance(cfg, Mapping):
    return cfg.get(name, default)
  return getattr(cfg, name, default)


def make_mesh(mesh_config: Mapping[str, int] | Any,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ('data', 'fsdp', 'tensor') mesh over `devices` (default: all).

  JAX orders the devices by the slice's physical topology, which on a TPU pod
  interleaves the hosts (v5p:2x2x2 lists host 0, 1, 0, 1, ...). Devices of several
  processes are then regrouped host by host (the physical order kept within a host),
  so each process's devices hold one block of consecutive batch rows: the layout
  `multihost` feeds and reads (benchmarks/tpu_fit.py reports it for a slice).
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_config, len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  mesh = jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)
  if len({d.process_index for d in devices}) > 1:
    by_host = sorted(mesh.devices.flat, key=lambda d: d.process_index)  # stable
    mesh = Mesh(np.array(by_host).reshape(shape), MESH_AXES, axis_types=auto)
  return mesh


def logical_to_spec(axes: Sequence[str | None], rules: Rules | None = None,
                    shape: Sequence[int] | None = None,
                    mesh: Mesh | None = None) -> PartitionSpec:
  """PartitionSpec for one array's logical axes.

  With `shape` and `mesh`, a mesh axis that does not divide its dimension is
  left out (that dimension is replicated over it): e.g. SmolLM2's 3 KV heads
  cannot split over 8 tensor devices. A mesh axis is used at most once.
  """
  rule_map = dict(DEFAULT_RULES if rules is None else rules)
  used: set[str] = set()
  spec = []
  for i, name in enumerate(axes):
    if name is None:
      spec.append(None)
      continue
    if name not in rule_map:
      raise ValueError(f"logical axis {name!r} has no sharding rule; rules cover "
                       f"{sorted(rule_map)}")
    target = rule_map[name]
    targets = () if target is None else (target,) if isinstance(target, str) else tuple(target)
    kept = []
    size = 1
    for mesh_axis in targets:
      if mesh_axis in used:
        continue
      if mesh is not None:
        if mesh_axis not in mesh.shape:
          raise ValueError(f"rule {name!r} -> {mesh_axis!r}: mesh has axes {tuple(mesh.shape)}")
        n = mesh.shape[mesh_axis]
        if shape is not None and shape[i] % (size * n):
          continue
        size *= n
      kept.append(mesh_axis)
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*spec)


def _is_axes(x: Any) -> bool:
  return isinstance(x, tuple) and all(a is None or isinstance(a, str) for a in x)


def logical_sharding(axes_tree: Any, mesh: Mesh, rules: Rules | None = None,
                     shapes: Any = None) -> Any:
  """NamedShardings for a tree of logical-axis tuples (optionally with shapes)."""
  if shapes is None:
    return jax.tree.map(lambda a: NamedSharding(mesh, logical_to_spec(a, rules, mesh=mesh)),
                        axes_tree, is_leaf=_is_axes)
  return jax.tree.map(
      lambda a, s: NamedSharding(mesh, logical_to_spec(a, rules, np.shape(s), mesh)),
      axes_tree, shapes, is_leaf=_is_axes)


# Activation constraints: model code calls `constrain(x, names)`; it is a no-op
# unless a mesh is active through `use_mesh`.
_ACTIVE: contextvars.ContextVar[tuple[Mesh, Rules | None] | None] = contextvars.ContextVar(
    "rlvr_jax_mesh", default=None)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Rules | None = None) -> Iterator[Mesh]:
  """Activates `mesh` and `rules` for `constrain` while tracing model code."""
  token = _ACTIVE.set((mesh, rules))
  try:
    yield mesh
  finally:
    _ACTIVE.reset(token)


def active() -> tuple[Mesh, Rules | None] | None:
  """The (mesh, rules) `use_mesh` activated, or None outside it."""
  return _ACTIVE.get()


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
  """`with_sharding_constraint` by logical axis names (no-op without a mesh)."""
  active = _ACTIVE.get()
  if active is None:
    return x
  mesh, rules = active
  spec = logical_to_spec(axes, rules, x.shape, mesh)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def init_sharded(init_fn: Any, axes_tree: Any, mesh: Mesh, rules: Rules | None = None,
                 *args: Any) -> Any:
  """Runs `init_fn(*args)` so each output leaf is created directly on its shards."""
  shapes = jax.eval_shape(init_fn, *args)
  shardings = logical_sharding(axes_tree, mesh, rules, shapes)
  return jax.jit(init_fn, out_shardings=shardings)(*args)
