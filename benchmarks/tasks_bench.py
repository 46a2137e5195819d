"""Maze generation speed and verify_batch throughput (in-process vs process pool).

    cd <repo> && python benchmarks/tasks_bench.py

Prints one line a measurement: median over repeats of wall time, plus CPU time
of this process where it is the only worker.
"""

import statistics
import time

import numpy as np

from rlvr_jax import tasks
from rlvr_jax.tasks import countdown, maze


def _verify_chunk(task, responses, examples):
  return [task.verify(r, e) for r, e in zip(responses, examples)]


def _median(fn, repeats):
  walls, cpus = [], []
  for _ in range(repeats):
    w, c = time.perf_counter(), time.process_time()
    fn()
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
  return statistics.median(walls), statistics.median(cpus)


def _rollouts(kind, rng, r):
  """R responses (half correct, half perturbed) with their examples."""
  if kind == "maze":
    exs = maze.make_splits(r // 8, 0, seed=0)["train"]
    sol = lambda e: e["solution"]
  else:
    exs = countdown.generate(r // 8, rng)
    sol = lambda e: e["solution"]
  rows = [e for e in exs for _ in range(8)]
  resp = [f"Let me think. <answer> {sol(e)} </answer>" if i % 2 else f"<answer>{sol(e)}L</answer>"
          for i, e in enumerate(rows)]
  return resp, rows


def main():
  rng = np.random.default_rng(0)
  wall, cpu = _median(lambda: maze.generate(15, 10_000, np.random.default_rng(0)), 3)
  print(f"maze.generate(15, 10000): wall {wall:.2f} s, cpu {cpu:.2f} s (median of 3)")
  wall, cpu = _median(lambda: maze.make_splits(20_000, 1_600, seed=0), 1)
  print(f"maze.make_splits(20000 train, 1600 test): wall {wall:.2f} s")

  r = 4096
  with tasks.VerifierPool(num_workers=2, timeout_s=30) as pool:
    for kind in ("maze", "countdown"):
      task = tasks.get(kind)
      resp, rows = _rollouts(kind, rng, r)
      wall, _ = _median(lambda: tasks.verify_batch(task, resp, rows), 5)
      print(f"verify_batch {kind} R={r} in-process: {wall * 1e3:.1f} ms "
            f"({r / wall:,.0f} responses/s)")
      per_item = [(task, x, e) for x, e in zip(resp, rows)]
      pool.map(task.verify, per_item[:4])  # warm the workers
      wall_p, _ = _median(lambda: pool.map(_verify_chunk, [([x], [e]) for x, e in zip(
          resp, rows)]), 3)
      print(f"  via 2-worker pool, one call a response: {wall_p * 1e3:.1f} ms "
            f"(x{wall_p / wall:.1f} the in-process time)")
      chunks = [(task, resp[i:i + 512], rows[i:i + 512]) for i in range(0, r, 512)]
      wall_c, _ = _median(lambda: pool.map(_verify_chunk, chunks), 3)
      print(f"  via 2-worker pool, chunks of 512: {wall_c * 1e3:.1f} ms "
            f"(x{wall_c / wall:.1f} the in-process time)")

  math_task = tasks.get("math")
  answers = ["\\frac{1}{2}", "3", "[1,2)", "2\\sqrt{2}", "x^2+1", "\\{1,2\\}", "0.25", "7"]
  preds = ["0.5", "4", "[1,2)", "\\sqrt{8}", "1+x^{2}", "\\{2,1\\}", "\\frac14", "seven"]
  rm = 512
  rows = [{"problem": "", "answer": answers[i % 8]} for i in range(rm)]
  resp = [f"... so \\boxed{{{preds[i % 8]}}}." for i in range(rm)]
  for workers in (1, 2):
    with tasks.VerifierPool(num_workers=workers, timeout_s=30,
                            preload=("rlvr_jax.tasks.math_task", "math_verify")) as pool:
      tasks.verify_batch(math_task, resp[:8], rows[:8], pool)  # warm sympy's caches
      wall, _ = _median(lambda: tasks.verify_batch(math_task, resp, rows, pool), 3)
      rewards, info = tasks.verify_batch(math_task, resp, rows, pool)
      print(f"verify_batch math R={rm}, {workers} worker(s): {wall:.2f} s "
            f"({rm / wall:,.0f} responses/s), mean reward {rewards.mean():.3f}, {info}")


if __name__ == "__main__":
  main()
