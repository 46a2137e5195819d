"""sampling_text.left_pad: the one left-padding helper of the text sampler and the trainer."""

import numpy as np
import pytest

from rlvr_jax import sampling_text


def test_left_pad_puts_rows_flush_right_with_a_mask():
  tokens_BxP, mask_BxP = sampling_text.left_pad([[5, 6, 7], [8], []], pad_id=0)
  np.testing.assert_array_equal(tokens_BxP, [[5, 6, 7], [0, 0, 8], [0, 0, 0]])
  np.testing.assert_array_equal(mask_BxP, [[1, 1, 1], [0, 0, 1], [0, 0, 0]])
  assert tokens_BxP.dtype == mask_BxP.dtype == np.int32


def test_left_pad_buckets_to_a_multiple_capped_at_max_len():
  rows = [list(range(1, 18)), [4, 5, 6]]  # 17 and 3 tokens
  tokens_BxP, mask_BxP = sampling_text.left_pad(rows, 9, multiple=16, max_len=40)
  assert tokens_BxP.shape == (2, 32)  # 17 rounded up to 32
  np.testing.assert_array_equal(mask_BxP.sum(1), [17, 3])
  np.testing.assert_array_equal(tokens_BxP[0, 15:], rows[0])
  assert np.all(tokens_BxP[0, :15] == 9) and np.all(tokens_BxP[1, :29] == 9)
  assert sampling_text.left_pad(rows, 9, multiple=16, max_len=20)[0].shape == (2, 20)
  assert sampling_text.left_pad(rows, 9, multiple=16, max_len=17)[0].shape == (2, 17)
  with pytest.raises(ValueError, match="17 tokens, more than max_len=16"):
    sampling_text.left_pad(rows, 9, multiple=16, max_len=16)
  with pytest.raises(ValueError, match="no prompts"):
    sampling_text.left_pad([], 0)
  with pytest.raises(ValueError, match="multiple must be >= 1"):
    sampling_text.left_pad(rows, 0, multiple=0)
