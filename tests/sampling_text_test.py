"""sampling.text: the one text path (encode, left-pad to a bucket, decode) of sampler and trainer."""

import numpy as np
import pytest

from rlvr_jax import sampling, tasks


def test_left_pad_puts_rows_flush_right_with_a_mask_at_the_bucket_width():
  tokens_BxP, mask_BxP = sampling.text.left_pad([[5, 6, 7], [8], []], pad_id=0)
  # The smallest bucket is 16 columns: 13 pads, then the row.
  assert tokens_BxP.shape == (3, 16) and tokens_BxP.dtype == mask_BxP.dtype == np.int32
  np.testing.assert_array_equal(tokens_BxP[:, -3:], [[5, 6, 7], [0, 0, 8], [0, 0, 0]])
  np.testing.assert_array_equal(mask_BxP.sum(1), [3, 1, 0])
  assert not tokens_BxP[:, :13].any() and not mask_BxP[:, :13].any()


@pytest.mark.parametrize("longest,width", [(1, 16), (16, 16), (17, 24), (24, 24), (25, 32),
                                           (33, 48), (49, 64), (65, 96), (97, 128)])
def test_left_pad_width_is_the_samplers_bucket(longest, width):
  # Buckets 16, 24, 32, 48, 64, 96, 128: two an octave (sampling.bucket_length).
  tokens_BxP, mask_BxP = sampling.text.left_pad([list(range(1, longest + 1)), [4]], 9)
  assert tokens_BxP.shape == (2, width) == (2, sampling.bucket_length(longest))
  np.testing.assert_array_equal(tokens_BxP[0, width - longest:], np.arange(1, longest + 1))
  assert np.all(tokens_BxP[1, :-1] == 9) and mask_BxP[1].sum() == 1


def test_left_pad_errors():
  rows = [list(range(1, 18)), [4, 5, 6]]
  assert sampling.text.left_pad(rows, 9, max_len=17)[0].shape == (2, 24)
  with pytest.raises(ValueError, match="17 tokens, more than max_len=16"):
    sampling.text.left_pad(rows, 9, max_len=16)
  with pytest.raises(ValueError, match="no prompts"):
    sampling.text.left_pad([], 0)


def test_char_prompts_get_bos_and_chat_needs_a_template():
  tok = tasks.CharTokenizer()
  tokens_BxP, mask_BxP = sampling.text.encode_prompts(tok, ["ab", "c"], chat=False, pad_id=0)
  np.testing.assert_array_equal(tokens_BxP[:, -3:], [[tok.bos_id] + tok.encode("ab"),
                                                     [0, tok.bos_id] + tok.encode("c")])
  with pytest.raises(ValueError, match="chat template"):
    sampling.text.encode_prompts(tok, ["ab"], chat=True, pad_id=0)
  with pytest.raises(ValueError, match="prompt 1: .*outside the vocabulary"):
    sampling.text.encode_prompts(tok, ["ab", "\u00e9"], chat=False, pad_id=0)


def test_decode_cuts_each_row_at_its_length_drops_the_eos_and_unknown_ids():
  tok = tasks.CharTokenizer()
  a, b = tok.encode("RDL"), tok.encode("UU")
  eos = tok.eos_id
  tokens_RxT = np.array([a + [eos, 0, 0], b + [120, 5, 5, 5], a + b + [7]], np.int32)
  # Row 0 finished (EOS counted in its length), row 1 truncated at 4 tokens with an id (120)
  # the char vocabulary (99) lacks, row 2 ran all 6 columns unfinished.
  texts = sampling.text.decode(tok, tokens_RxT, lengths_R=[4, 4, 6],
                               finished_R=[True, False, False])
  assert texts == ["RDL", "UU" + tok.decode([5]), "RDLUU" + tok.decode([7])]
