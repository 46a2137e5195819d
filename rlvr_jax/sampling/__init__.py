"""Sampling from the policy: the jitted sampler and the parts it is made of.

  sampler.py   `sample`: bucketed prefill, a `lax.while_loop` decode, the donated cache
  decode.py    one decode step: `decoder.layer` over the model's KV cache (models/kv_cache.py)
  ops.py       per-token policy statistics, top-k / top-p filtering, the inverse-CDF draw
  text.py      the one text path: encode (chat template / BOS), left-pad to a `bucket_length`,
               batched decode of length-trimmed rows
"""

from rlvr_jax.sampling import decode, ops, text
from rlvr_jax.sampling.sampler import SampleOutput, bucket_length, sample

__all__ = ["SampleOutput", "bucket_length", "sample", "decode", "ops", "text"]
