"""The typed training batch, and the one function that turns prompts into it.

Shape letters: B problems, N rollouts a problem, R = B * N rows (problem-major,
row b * N + n), P prompt tokens, T response tokens, S = P + T.

    made = make_batch(params, key, spec, next_examples, estimator)   # next_examples() -> B examples
    made.train        # TrainBatch: what the update reads
    made.rollouts     # the Rollouts it came from (texts, rewards, entropies)
    made.info         # the estimator's per-problem info (host arrays)

One step of RLVR: sample B prompts x N rollouts (dynamic sampling refills
groups whose rewards are all equal, up to `max_tries` draws), verify, compute
advantages with the estimator, then the loss mask

    loss_mask_RxT = response token  AND  valid rollout  AND  info['loss_mask_BxN']

where a rollout is valid when it is not a dynamic-sampling filler and (with
`mask_truncated`) it finished. The estimator's mask takes out what it says
leaves the loss: bbg-gated and easy-masked problems, passk_full's N mod k
left-over rollouts. Every loss term, its denominator, the clip fractions and
the entropy bonus see only those tokens. Old log-probabilities come from the
sampler or from a teacher-forced pass of the current parameters; reference
log-probabilities (KL term) from the frozen reference policy.

Several processes: each makes the batch of its own block of problems (its
prompts, their rollouts, rewards and advantages, all host-local), and
`spec.rows_sharding` turns the rows into global arrays (`multihost.global_rows`)
before the teacher-forced passes and the update. Dynamic sampling refills until
every process has its B_local varied groups (the processes agree on the number
of draws); randomized estimators draw per process.
"""

import dataclasses
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from rlvr_jax import advantages, multihost, sampling
from rlvr_jax.rl import rollout


class TrainBatch(NamedTuple):
  """Rows for `update.train_step`; a field left None is not used by the loss.

  tokens_RxS, attn_mask_RxS: left-padded prompt then response (int32).
  loss_mask_RxT: the response tokens that count in every loss term (float32).
  adv_R: each row's advantage, 0 outside the loss mask.
  old_logp_RxT: log-probs of the policy that sampled (the ratio's denominator).
  ref_logp_RxT: log-probs of the reference policy (KL term), or None.
  sampling_logp_RxT: log-probs under the sampler's distribution (TIS), or None.
  """
  tokens_RxS: Any
  attn_mask_RxS: Any
  loss_mask_RxT: Any
  adv_R: Any = None
  old_logp_RxT: Any = None
  ref_logp_RxT: Any = None
  sampling_logp_RxT: Any = None

  def rows(self, idx_R: Any) -> "TrainBatch":
    return jax.tree.map(lambda x: x[idx_R], self)


class MadeBatch(NamedTuple):
  """What `make_batch` returns: the training rows and what the metrics need."""
  train: TrainBatch
  rollouts: rollout.Rollouts
  valid_BxN: np.ndarray  # rollouts the estimator saw as real
  adv_BxN: np.ndarray
  info: dict[str, np.ndarray]  # the estimator's per-problem info, loss_mask_BxN included
  counts: dict[str, float]  # sampling tries, filled groups, time split, verifier counts
  # The update's groups as global row indices (None: every problem's N rows, the RLVR
  # layout) and a row outside the loss that pads the last mini-batch (see `pack_groups`).
  groups: list[np.ndarray] | None = None
  pad_row: int | None = None
  metrics: dict[str, float] = {}  # the kind of step's own metrics, already global


@dataclasses.dataclass(frozen=True)
class BatchSpec:
  """How to make a batch (from the `rl` and `loss` config blocks and the compiled parts).

  generate: (params, examples, key) -> Rollouts (sampler + verifier).
  logprobs: (params, tokens_RxS, attn_mask_RxS, T) -> logp_RxT of the last T tokens, a
    teacher-forced pass; used for old log-probs when `recompute_old_logp`, and for the
    reference.
  ref_logprobs: (params, tokens_RxS, attn_mask_RxS, T) -> logp_RxT under the frozen
    reference policy when the loss has a KL term, else None; `params` are the current
    ones (a LoRA reference is their base, `models.lora.base`).
  rows_sharding: where the training rows go (global arrays; None keeps host numpy).
  trim_responses: cut the response columns at the batch's longest response (`trim_responses`).
  svs: the synthesis settings of an SvS step (`rl/svs.py`), None for RLVR.
  """
  generate: Callable[..., rollout.Rollouts]
  batch_prompts: int
  dynamic_sampling: bool = False
  max_tries: int = 1
  mask_truncated: bool = False
  recompute_old_logp: bool = False
  logprobs: Callable[..., Any] | None = None
  ref_logprobs: Callable[..., Any] | None = None
  keep_sampling_logp: bool = False
  rows_sharding: Any = None
  trim_responses: bool = False
  svs: Any = None


def rollout_validity(ro: rollout.Rollouts, mask_truncated: bool) -> np.ndarray:
  """[B, N] rollouts that count as real: all of them, or (mask_truncated) the finished ones."""
  if mask_truncated:
    return ro.finished_R.reshape(ro.rewards_BxN.shape).copy()
  return np.ones(ro.rewards_BxN.shape, bool)


def varied_groups(ro: rollout.Rollouts, valid_BxN: np.ndarray) -> np.ndarray:
  """[B] problems whose valid rewards are not all equal (the one group-variance rule)."""
  return np.asarray(advantages.dynamic_sampling_mask(ro.rewards_BxN, valid_BxN))


def sample_groups(params: Any, key: jax.Array, spec: BatchSpec,
                  next_examples: Callable[[], list]) -> tuple[rollout.Rollouts, np.ndarray, dict]:
  """B groups of N rollouts with their validity [B, N], and sampling counts.

  With dynamic sampling, up to `max_tries` draws of B prompts; groups with reward
  variance come first and the batch is filled up with flat ones marked invalid
  (so they carry no loss and no advantage), as DAPO's refill bounded in cost.
  """
  b = spec.batch_prompts
  parts, valid, varied = [], [], []
  for attempt in range(spec.max_tries if spec.dynamic_sampling else 1):
    ro = spec.generate(params, next_examples(), jax.random.fold_in(key, attempt))
    parts.append(ro)
    valid.append(rollout_validity(ro, spec.mask_truncated))
    varied.append(varied_groups(ro, valid[-1]))
    enough = sum(int(v.sum()) for v in varied) >= b
    if not multihost.any_process(not enough):  # the draws are collective: all stop together
      break
  ro, valid_BxN, varied_B = rollout.concat(parts), np.concatenate(valid), np.concatenate(varied)
  filled = 0
  if spec.dynamic_sampling:
    chosen = np.concatenate([np.flatnonzero(varied_B), np.flatnonzero(~varied_B)])[:b]
    ro, valid_BxN = ro.select(chosen), valid_BxN[chosen]
    filled = int((~varied_B[chosen]).sum())
    valid_BxN[~varied_B[chosen]] = False
  counts = {"sampling_tries": len(parts), "dyn_filled_groups": filled,
            "verify_seconds": ro.verify_seconds, "verify_timeouts": ro.verify_timeouts,
            "verify_errors": ro.verify_errors}
  return ro, valid_BxN, counts


def estimate(estimator: Callable[..., Any], ro: rollout.Rollouts, valid_BxN: np.ndarray,
             key: jax.Array, name: str = "estimator") -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """(adv_BxN, info) on the host; FloatingPointError for a non-finite advantage."""
  if jax.process_count() > 1:  # each process's problems draw their own random groups
    key = jax.random.fold_in(key, jax.process_index())
  adv_BxN, info = estimator(ro.rewards_BxN, valid_BxN, key=key,
                            entropy_BxN=ro.mean_entropy_BxN())
  adv_BxN, info = jax.device_get((adv_BxN, info))
  adv_BxN = np.asarray(adv_BxN, np.float32)
  if not np.isfinite(adv_BxN).all():
    raise FloatingPointError(f"non-finite advantages from {name}")
  info = {k: np.asarray(v) for k, v in info.items()}
  info["loss_mask_BxN"] = info["loss_mask_BxN"] & valid_BxN
  return adv_BxN, info


def assemble(ro: rollout.Rollouts, adv_BxN: np.ndarray, loss_mask_BxN: np.ndarray, *,
             keep_sampling_logp: bool = False) -> TrainBatch:
  """TrainBatch rows of `ro` with the sampler's log-probs as the old ones (see module doc)."""
  n = ro.num_samples
  in_loss_R = np.asarray(loss_mask_BxN, bool).reshape(-1)
  return TrainBatch(
      tokens_RxS=np.concatenate([np.repeat(ro.prompt_BxP, n, 0), ro.tokens_RxT], 1).astype(np.int32),
      attn_mask_RxS=np.concatenate([np.repeat(ro.prompt_mask_BxP, n, 0), ro.mask_RxT],
                                   1).astype(np.int32),
      loss_mask_RxT=(ro.mask_RxT * in_loss_R[:, None]).astype(np.float32),
      adv_R=np.where(in_loss_R, np.asarray(adv_BxN, np.float32).reshape(-1), 0.0).astype(np.float32),
      old_logp_RxT=ro.logprobs_RxT,
      sampling_logp_RxT=ro.sampling_logprobs_RxT if keep_sampling_logp else None)


def make_batch(params: Any, key: jax.Array, spec: BatchSpec, next_examples: Callable[[], list],
               estimator: Callable[..., Any], name: str = "estimator") -> MadeBatch:
  """Prompts -> a complete training batch (module docstring)."""
  t0 = time.perf_counter()
  k_sample, k_adv = jax.random.split(key)
  ro, valid_BxN, counts = sample_groups(params, k_sample, spec, next_examples)
  adv_BxN, info = estimate(estimator, ro, valid_BxN, k_adv, name)
  train = assemble(ro, adv_BxN, info["loss_mask_BxN"], keep_sampling_logp=spec.keep_sampling_logp)
  t1 = time.perf_counter()
  train = to_devices(params, spec, train)
  counts.update(time_sample=t1 - t0 - counts["verify_seconds"],
                time_verify=counts.pop("verify_seconds"), time_logprobs=time.perf_counter() - t1)
  return MadeBatch(train, ro, valid_BxN, adv_BxN, info, counts)


def to_devices(params: Any, spec: BatchSpec, train: TrainBatch) -> TrainBatch:
  """The host rows (trimmed with `spec.trim_responses`) as global arrays, with the
  teacher-forced old / reference log-probs."""
  if spec.trim_responses:
    train = trim_responses(train)
  if spec.rows_sharding is not None:
    train = multihost.global_rows(train, spec.rows_sharding)
  resp_len = train.loss_mask_RxT.shape[1]
  if spec.recompute_old_logp:
    train = train._replace(old_logp_RxT=spec.logprobs(params, train.tokens_RxS,
                                                      train.attn_mask_RxS, resp_len))
  if spec.ref_logprobs is not None:
    train = train._replace(ref_logp_RxT=spec.ref_logprobs(params, train.tokens_RxS,
                                                          train.attn_mask_RxS, resp_len))
  return jax.block_until_ready(train)  # so time_logprobs is the passes', not the update's


def trim_responses(train: TrainBatch) -> TrainBatch:
  """Host rows whose response columns stop at the longest response of the batch (of every
  process's batch), rounded up to `sampling.bucket_length` from the power of two at or
  below max(16, T / 8): the columns cut held padding only, which no loss term and no
  attention reads, so the loss and its gradient stay the same at a fraction of the cost
  (responses are often far shorter than max_new_tokens). The floor bounds the widths a
  run compiles its passes for at 7 (16, 24, 32 for T = 32; 1024, 1536, ..., 8192 for
  T = 8192).
  """
  t = train.loss_mask_RxT.shape[1]
  used_T = np.asarray(train.attn_mask_RxS)[:, -t:].any(0)
  longest = int(np.flatnonzero(used_T)[-1]) + 1 if used_T.any() else 1
  floor = 2 ** int(np.log2(max(16, t // 8)))
  width = min(t, sampling.bucket_length(multihost.max_over(longest), minimum=floor))
  if width == t:
    return train

  def cut(name, x):
    if x is None or name.endswith("_R"):
      return x
    return x[:, :width] if name.endswith("_RxT") else x[:, :x.shape[1] - (t - width)]
  return TrainBatch(**{name: cut(name, x) for name, x in train._asdict().items()})


def concat_rows(parts: list[TrainBatch], pad_id: int, row_multiple: int = 1) -> TrainBatch:
  """The rows of `parts` one after the other, then copies of row 0 outside the loss up to a
  multiple of `row_multiple` rows, at least one (the row `pack_groups` pads with).

  Prompts of different widths are left-padded to the widest (mask 0: never attended to).
  """
  width = max(p.tokens_RxS.shape[1] for p in parts)
  left = lambda x, fill: np.pad(x, ((0, 0), (width - x.shape[1], 0)), constant_values=fill)
  parts = [p._replace(tokens_RxS=left(p.tokens_RxS, pad_id), attn_mask_RxS=left(p.attn_mask_RxS, 0))
           for p in parts]
  rows = sum(p.tokens_RxS.shape[0] for p in parts)
  null = parts[0].rows(np.zeros(-(-(rows + 1) // row_multiple) * row_multiple - rows, np.int64))
  null = null._replace(loss_mask_RxT=np.zeros_like(null.loss_mask_RxT),
                       adv_R=np.zeros_like(null.adv_R))
  fields = {}
  for name in TrainBatch._fields:
    vals = [getattr(p, name) for p in parts + [null]]
    if any(v is None for v in vals):
      if not all(v is None for v in vals):
        raise ValueError(f"TrainBatch field {name} is set in some parts only")
      fields[name] = None
    else:
      fields[name] = np.concatenate(vals)
  return TrainBatch(**fields)


def pack_groups(groups: list[np.ndarray], key: jax.Array, rows: int, pad_row: int
                ) -> list[np.ndarray]:
  """Mini-batches of `rows` row indices: the groups in a random order, their rows one after
  the other, the last mini-batch filled up with `pad_row` (a row outside the loss).

  A group may straddle two mini-batches; its advantages were computed before, so they do
  not change.
  """
  if not groups:
    return []
  order = np.asarray(jax.random.permutation(key, len(groups)))
  flat = np.concatenate([groups[i] for i in order])
  flat = np.concatenate([flat, np.full(-len(flat) % rows, pad_row, flat.dtype)])
  return [flat[i:i + rows].astype(np.int32) for i in range(0, len(flat), rows)]
