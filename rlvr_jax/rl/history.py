"""Per-problem success history over training: which problems were ever solved, and when.

Shape letters: B problems, N rollouts a problem, U the training problems seen so far.

    history = ProblemHistory(alpha=1.0, beta=1.0)
    history.update(step, made.rollouts)     # after each RL step
    scalars.update(history.metrics())       # hist/... (every process's problems)
    ckpt.save(..., history=history)         # saved and restored with the checkpoint

For every training problem seen (keyed by a hash of its example's content, so the
same problem drawn again in a later epoch is the same row) it keeps: its rollouts
and successes so far (a success is a reward >= 1, as for pass@k), the step it was
first seen and first solved, its first and latest visit (rollouts, successes,
step) and the number of visits. Its Beta posterior is Beta(alpha + successes,
beta + failures) (`posterior`). Every rollout of `made.rollouts` counts: dynamic
sampling's flat filler groups and truncated rollouts too (they were sampled and
scored); the draws dynamic sampling dropped are not in `made.rollouts`.

Metrics (`metrics`, over every process's problems):
  hist/problems_seen, hist/ever_solved_frac: problems with a success in any visit,
  hist/unsolved_first_frac: problems with no success at their first visit,
  hist/later_solved_frac: of those, the fraction solved at a later visit (the BBG
    paper's "initially unsolvable problems become solvable"),
  hist/revisited_frac: problems visited more than once,
and per first-visit accuracy bucket m (m successes at the first visit, m = 0..N):
  hist/bucket{m}_frac: the problems that started there,
  hist/bucket{m}_later_solved_frac: of those revisited, solved at a later visit,
  hist/bucket{m}_last_acc: of those revisited, the mean accuracy of the latest visit.
Buckets are reported for m = 0..N of this run's N rollouts a problem.

Several processes: each keeps the problems of its own batches (its block of every
global batch) and saves them in its own file of the checkpoint (Grain's
one-JSON-file-a-process handler, as the prompt iterator's state); a problem that two
processes drew in different epochs has a partial row on each. The metrics add up
every process's counts.
"""

import hashlib
import json
from typing import Any

import grain
import numpy as np

from rlvr_jax import multihost

# The columns of a problem's row, int64.
FIELDS = ("rollouts", "successes", "visits", "first_step", "first_solved_step",
          "first_rollouts", "first_successes", "last_step", "last_rollouts", "last_successes")
_COL = {f: i for i, f in enumerate(FIELDS)}


def _plain(x: Any) -> Any:
  """JSON-able form of an example's values (numpy, bytes) for a stable key."""
  if isinstance(x, dict):
    return {str(k): _plain(v) for k, v in sorted(x.items())}
  if isinstance(x, (list, tuple)):
    return [_plain(v) for v in x]
  if isinstance(x, np.ndarray):
    return _plain(x.tolist())
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, bytes):
    return x.decode("utf-8", "replace")
  return x


def problem_key(example: Any) -> str:
  """A problem's identity: 16 hex digits of the SHA-1 of its example's canonical JSON."""
  text = json.dumps(_plain(example), sort_keys=True, default=str)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class ProblemHistory(grain.DatasetIterator):
  """The per-problem table (module docstring). A grain.DatasetIterator only so that Grain's
  orbax handler can save and restore its state (`get_state` / `set_state`, JSON)."""

  def __init__(self, alpha: float = 1.0, beta: float = 1.0):
    super().__init__()
    if not (alpha > 0 and beta > 0):
      raise ValueError(f"history prior needs alpha > 0 and beta > 0, got {alpha}, {beta}")
    self.alpha, self.beta = float(alpha), float(beta)
    self.keys: list[str] = []
    self._index: dict[str, int] = {}
    self.table_UxF = np.zeros((0, len(FIELDS)), np.int64)
    self.num_samples = 0  # N of the batches seen (the buckets' range)

  def __next__(self):
    raise TypeError("a ProblemHistory is not an iterator")

  def __len__(self) -> int:
    return len(self.keys)

  def column(self, field: str) -> np.ndarray:
    return self.table_UxF[:, _COL[field]]

  def row(self, key: str) -> dict[str, int]:
    return dict(zip(FIELDS, self.table_UxF[self._index[key]].tolist()))

  def posterior(self) -> tuple[np.ndarray, np.ndarray]:
    """Each problem's Beta posterior (alpha + successes, beta + failures), [U] each."""
    s, n = self.column("successes"), self.column("rollouts")
    return self.alpha + s, self.beta + (n - s)

  def update(self, step: int, ro: Any) -> None:
    """Adds `ro.examples`' rollouts (`ro.rewards_BxN`) as visits at RL step `step`."""
    rewards_BxN = np.asarray(ro.rewards_BxN)
    if rewards_BxN.ndim != 2 or len(ro.examples) != rewards_BxN.shape[0]:
      raise ValueError(f"history: {len(ro.examples)} examples for rewards of shape "
                       f"{rewards_BxN.shape}")
    n = rewards_BxN.shape[1]
    self.num_samples = max(self.num_samples, n)
    succ_B = (rewards_BxN >= 1.0).sum(-1)
    keys_B = [problem_key(example) for example in ro.examples]
    new = [k for k in dict.fromkeys(keys_B) if k not in self._index]
    if new:  # one concatenation a step for the problems seen for the first time
      rows = np.zeros((len(new), len(FIELDS)), np.int64)
      rows[:, _COL["first_solved_step"]] = -1
      self._index.update({k: len(self.keys) + j for j, k in enumerate(new)})
      self.keys += new
      self.table_UxF = np.concatenate([self.table_UxF, rows])
    for key, succ in zip(keys_B, succ_B.tolist()):
      r = self.table_UxF[self._index[key]]  # a view: updated in place
      if r[_COL["visits"]] == 0:
        r[_COL["first_step"]], r[_COL["first_rollouts"]], r[_COL["first_successes"]] = (
            step, n, succ)
      r[_COL["rollouts"]] += n
      r[_COL["successes"]] += succ
      r[_COL["visits"]] += 1
      if succ and r[_COL["first_solved_step"]] < 0:
        r[_COL["first_solved_step"]] = step
      r[_COL["last_step"]], r[_COL["last_rollouts"]], r[_COL["last_successes"]] = step, n, succ

  def local_counts(self, num_buckets: int) -> np.ndarray:
    """This process's counts for `metrics`, float64 [5 + 4 * num_buckets]."""
    seen = len(self)
    first_s, first_n = self.column("first_successes"), self.column("first_rollouts")
    revisited = self.column("visits") > 1
    later_solved = revisited & (self.column("successes") > first_s)
    unsolved_first = first_s == 0
    out = [seen, (self.column("successes") > 0).sum(), unsolved_first.sum(),
           (unsolved_first & later_solved).sum(), revisited.sum()]
    # A first visit with fewer rollouts than N (a different N) is placed by its accuracy.
    bucket = np.rint(first_s * (num_buckets - 1) / np.maximum(first_n, 1)).astype(np.int64)
    last_acc = self.column("last_successes") / np.maximum(self.column("last_rollouts"), 1)
    for m in range(num_buckets):
      inb = bucket == m
      out += [inb.sum(), (inb & revisited).sum(), (inb & later_solved).sum(),
              last_acc[inb & revisited].sum()]
    return np.asarray(out, np.float64)

  def metrics(self) -> dict[str, float]:
    """The hist/ metrics (module docstring), summed over every process (a collective)."""
    num_buckets = multihost.max_over(self.num_samples) + 1
    c = multihost.gather(self.local_counts(num_buckets)[None]).sum(0)
    seen, solved, unsolved_first, later, revisited = c[:5]
    frac = lambda a, b: float(a / b) if b else 0.0
    out = {"hist/problems_seen": float(seen), "hist/ever_solved_frac": frac(solved, seen),
           "hist/unsolved_first_frac": frac(unsolved_first, seen),
           "hist/later_solved_frac": frac(later, unsolved_first),
           "hist/revisited_frac": frac(revisited, seen)}
    for m in range(num_buckets):
      count, rev, later_m, acc_sum = c[5 + 4 * m: 9 + 4 * m]
      out[f"hist/bucket{m}_frac"] = frac(count, seen)
      out[f"hist/bucket{m}_later_solved_frac"] = frac(later_m, rev)
      out[f"hist/bucket{m}_last_acc"] = frac(acc_sum, rev)
    return out

  def snapshot(self) -> "ProblemHistory":
    """A copy of the table as it is now (an async save writes it while training goes on)."""
    copy = ProblemHistory(self.alpha, self.beta)
    copy.set_state(self.get_state())
    return copy

  def get_state(self) -> dict[str, Any]:
    return {"fields": list(FIELDS), "alpha": self.alpha, "beta": self.beta,
            "num_samples": self.num_samples, "keys": list(self.keys),
            "rows": self.table_UxF.tolist()}

  def set_state(self, state: dict[str, Any]) -> None:
    if list(state["fields"]) != list(FIELDS):
      raise ValueError(f"history state has fields {state['fields']}, expected {list(FIELDS)}")
    if (state["alpha"], state["beta"]) != (self.alpha, self.beta):
      raise ValueError(f"history state has prior Beta({state['alpha']}, {state['beta']}), "
                       f"this run Beta({self.alpha}, {self.beta})")
    self.keys = list(state["keys"])
    self._index = {k: i for i, k in enumerate(self.keys)}
    self.table_UxF = np.asarray(state["rows"], np.int64).reshape(len(self.keys), len(FIELDS))
    self.num_samples = int(state["num_samples"])
