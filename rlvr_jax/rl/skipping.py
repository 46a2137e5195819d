"""Zero-advantage rows out of the update: which rows go through forward and backward, packed
into a handful of static shapes.

Shape letters: R rows of the step's batch, R_mb rows of a mini-batch, M micro-batches.

A row whose advantage is exactly 0 adds exactly 0 to the clipped PG loss's gradient (both
branches of the clip are -0 * ratio), whatever its ratio, its TIS weight or its dual clip.
So when no other term of the loss touches it (no KL penalty, no entropy bonus), leaving it
out of forward and backward changes nothing but the cost, provided the loss keeps the full
mini-batch's denominator (its token or sequence count, `loss.loss_denominator`). In a
typical step 30-70 % of the groups have all-equal rewards, so their rows have advantage 0.

The kept rows are packed into a bucketed shape, so a run compiles a handful of update
programs, not one per count:

  more kept rows than one micro-batch holds: the smallest power-of-two number of full
      micro-batches that holds them (at most M);
  otherwise one micro-batch of `sampling.bucket_length` rows (8, 12, 16, 24, 32, ...),
      rounded up to the data-parallel devices, at most a full micro-batch.

The room left is filled with skipped rows of the same mini-batch with their loss mask
zeroed (there are always enough: a bucket never exceeds R_mb). The update's metrics other
than `num_tokens` (clip fractions, approx_kl, entropy) are then token means over the kept
rows only.
"""

import math

import numpy as np

from rlvr_jax import sampling

_MIN_ROWS = 8  # the smallest packed mini-batch, before rounding to the data devices


def applies(kl_coef: float, entropy_coef: float) -> bool:
  """True when a zero-advantage row has no gradient: no loss term but the PG one."""
  return kl_coef == 0.0 and entropy_coef == 0.0


def kept_rows(adv_R: np.ndarray, tokens_R: np.ndarray) -> np.ndarray:
  """[R] rows with gradient: a nonzero advantage and at least one loss token."""
  return (np.asarray(adv_R) != 0) & (np.asarray(tokens_R) > 0)


def packed_shape(num_kept: int, micro_rows: int, num_micro: int, row_multiple: int
                 ) -> tuple[int, int]:
  """(rows, micro-batches) of the update that takes `num_kept` rows (module docstring)."""
  if num_kept > micro_rows * num_micro:
    raise ValueError(f"{num_kept} kept rows do not fit {num_micro} micro-batches of "
                     f"{micro_rows} rows")
  if num_kept > micro_rows:
    m = min(2 ** math.ceil(math.log2(-(-num_kept // micro_rows))), num_micro)
    return m * micro_rows, m
  rows = sampling.bucket_length(num_kept, minimum=min(_MIN_ROWS, micro_rows))
  rows = -(-rows // row_multiple) * row_multiple
  return min(rows, micro_rows), 1


def pack(rows_mb: np.ndarray, keep_R: np.ndarray, micro_rows: int, num_micro: int,
         row_multiple: int) -> tuple[np.ndarray, np.ndarray, int]:
  """(row indices, live flags, micro-batches) of the packed update of mini-batch `rows_mb`.

  The indices are the kept rows of `rows_mb` in their order, then skipped rows of it up to
  the packed size; live is False on those fillers (their loss mask is to be zeroed).
  """
  keep = keep_R[rows_mb]
  kept, skipped = rows_mb[keep], rows_mb[~keep]
  rows, micro = packed_shape(len(kept), micro_rows, num_micro, row_multiple)
  idx = np.concatenate([kept, skipped[:rows - len(kept)]]).astype(np.int32)
  live = np.arange(rows) < len(kept)
  return idx, live, micro
