"""A process pool for verifiers that can hang: per-call time limit, worker recycling.

Symbolic equivalence (sympy) can run for minutes on adversarial text, and a
thread cannot be interrupted, so each call runs in a worker process; a call
over `timeout_s` gets its worker killed and replaced, and counts as a
time-out. Workers are also replaced after `max_calls_per_worker` calls, since
sympy's caches grow without bound. Workers are spawned (not forked): the
trainer process holds JAX threads, which fork does not copy safely.
"""

import atexit
import collections
import importlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing import connection
from typing import Any


def _worker_main(conn: connection.Connection, preload: tuple[str, ...]) -> None:
  for name in preload:
    importlib.import_module(name)
  conn.send(("ready",))
  while True:
    try:
      msg = conn.recv()
    except EOFError:
      return
    if msg is None:
      return
    index, fn, args = msg
    try:
      conn.send((index, True, fn(*args)))
    except BaseException as e:  # report, keep serving: one bad call must not kill the pool
      conn.send((index, False, repr(e)[:500]))


class _Worker:

  def __init__(self, ctx: Any, preload: tuple[str, ...]):
    self.conn, child = ctx.Pipe()
    self.proc = ctx.Process(target=_worker_main, args=(child, preload), daemon=True)
    self.proc.start()
    child.close()
    self.started = time.monotonic()
    self.ready = False
    self.calls = 0
    self.job: tuple[int, float] | None = None  # (item index, deadline)

  def stop(self, kill: bool) -> None:
    if kill:
      self.proc.kill()
    else:
      try:
        self.conn.send(None)
      except OSError:
        self.proc.kill()
    self.proc.join(timeout=5)
    if self.proc.is_alive():
      self.proc.kill()
      self.proc.join()
    self.conn.close()


class VerifierPool:
  """`map(fn, args_list)` over worker processes; `fn` must be a picklable module-level function."""

  def __init__(self, num_workers: int | None = None, timeout_s: float = 5.0,
               max_calls_per_worker: int = 1000, preload: Sequence[str] = (),
               startup_timeout_s: float = 120.0):
    if timeout_s <= 0 or max_calls_per_worker < 1:
      raise ValueError("timeout_s must be > 0 and max_calls_per_worker >= 1")
    self.num_workers = num_workers or max(1, min(4, os.cpu_count() or 1))
    self.timeout_s = timeout_s
    self.max_calls = max_calls_per_worker
    self.preload = tuple(preload)
    self.startup_timeout_s = startup_timeout_s
    self._ctx = mp.get_context("spawn")
    self._workers = [_Worker(self._ctx, self.preload) for _ in range(self.num_workers)]
    self.restarts = 0

  def _replace(self, k: int, kill: bool) -> None:
    self._workers[k].stop(kill)
    self._workers[k] = _Worker(self._ctx, self.preload)
    self.restarts += 1

  def map(self, fn: Callable[..., Any], args_list: Sequence[tuple]) -> tuple[list[Any], dict]:
    """Results in order (None for a call that timed out or raised) and counts of both."""
    if self._workers is None:
      raise ValueError("VerifierPool is closed")
    results: list[Any] = [None] * len(args_list)
    info = {"timeouts": 0, "errors": 0}
    pending = collections.deque(range(len(args_list)))
    while pending or any(w.job for w in self._workers):
      for w in self._workers:
        if w.ready and w.job is None and pending:
          i = pending.popleft()
          w.conn.send((i, fn, args_list[i]))
          w.job = (i, time.monotonic() + self.timeout_s)
          w.calls += 1
      now = time.monotonic()
      waits = [w.job[1] - now for w in self._workers if w.job]
      waits += [w.started + self.startup_timeout_s - now for w in self._workers if not w.ready]
      ready = connection.wait([w.conn for w in self._workers], timeout=max(0.0, min(waits)))
      for k, w in enumerate(self._workers):
        if w.conn not in ready:
          continue
        try:
          msg = w.conn.recv()
        except (EOFError, OSError):  # the worker died (e.g. out of memory)
          if w.job:
            info["errors"] += 1
          self._replace(k, kill=True)
          continue
        if msg == ("ready",):
          w.ready = True
          continue
        index, ok, value = msg
        w.job = None
        if ok:
          results[index] = value
        else:
          info["errors"] += 1
        if w.calls >= self.max_calls:
          self._replace(k, kill=False)
      now = time.monotonic()
      for k, w in enumerate(self._workers):
        if w.job and now > w.job[1]:
          info["timeouts"] += 1
          self._replace(k, kill=True)
        elif not w.ready and now > w.started + self.startup_timeout_s:
          raise RuntimeError(f"verifier worker did not start within {self.startup_timeout_s} s")
    return results, info

  def close(self) -> None:
    if self._workers is not None:
      for w in self._workers:
        w.stop(kill=False)
      self._workers = None

  def __enter__(self) -> "VerifierPool":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


_DEFAULT: VerifierPool | None = None


def default_pool() -> VerifierPool:
  """A shared pool (preloading math-verify), started on first use and closed at exit."""
  global _DEFAULT
  if _DEFAULT is None:
    _DEFAULT = VerifierPool(preload=("rlvr_jax.tasks.math_task",))
    atexit.register(_DEFAULT.close)
  return _DEFAULT
