"""Metrics to TensorBoard event files and `metrics.jsonl`, plus a console progress bar.

Every call to `write(step, scalars)` appends one JSON line `{"step", "phase",
...scalars}` (the plot script reads it back) and the same scalars as
TensorBoard summaries under `<phase>/<name>`. Non-finite values are written
as they are (JSON `NaN`) so a diverging run is visible rather than hidden.
"""

import json
import math
import os
from typing import Any

import numpy as np
import tensorboardX
import tqdm


def _scalar(v: Any) -> float:
  return float(np.asarray(v))


class MetricWriter:
  """Writes where `enabled` (process 0 of a multi-process run); elsewhere `write` only
  returns the record, so every process's loop reads the same values."""

  def __init__(self, workdir: str, total_steps: int, initial_step: int = 0, progress: bool = True,
               enabled: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self._jsonl = open(self.path, "a", encoding="utf-8") if enabled else None
    self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard")) if enabled else None
    self._bar_args = dict(total=total_steps, initial=initial_step, disable=not progress,
                          dynamic_ncols=True, desc="rl")
    self._bar = None  # made when the RL loop starts, so warm start and compiles skew no ETA
    self.progress = progress

  def write(self, step: int, scalars: dict[str, Any], phase: str = "train",
            histograms: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    record = {k: _scalar(v) for k, v in sorted(scalars.items())}
    if not self.enabled:
      return record
    self._jsonl.write(json.dumps({"step": int(step), "phase": phase, **record}) + "\n")
    self._jsonl.flush()
    for k, v in record.items():  # TensorBoard tags may not hold '@'
      self._tb.add_scalar(f"{phase}/{k}".replace("@", "_at_"), v, step)
    for k, v in (histograms or {}).items():
      self._tb.add_histogram(f"{phase}/{k}", np.asarray(v), step)
    self._tb.flush()
    return record

  def start_progress(self) -> None:
    """Starts the RL progress bar (its clock and ETA count from here)."""
    if self._bar is None:
      self._bar = tqdm.tqdm(**self._bar_args)

  def advance(self, n: int = 1, **postfix: float) -> None:
    self.start_progress()
    shown = {k: f"{v:.3g}" for k, v in postfix.items() if isinstance(v, float) and math.isfinite(v)}
    self._bar.set_postfix(shown, refresh=False)
    self._bar.update(n)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def read_jsonl(path: str) -> list[dict[str, Any]]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
