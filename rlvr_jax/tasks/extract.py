"""Answer extraction shared by the verifiers: `<answer>` tags and the last `\\boxed{...}`.

Both run in time linear in the response length (numpy over bytes, no recursion),
so megabyte-long or deeply nested responses cost milliseconds.
"""

import numpy as np

_BOXED = "\\boxed{"
_OPEN_TAG = "<answer>"
_CLOSE_TAG = "</answer>"


def answer_tag(text: str) -> str | None:
  """Text after the last `<answer>` up to the next `</answer>` (or the end).

  None unless the response holds both `<answer>` and `</answer>` somewhere.
  """
  if _OPEN_TAG not in text or _CLOSE_TAG not in text:
    return None
  start = text.rfind(_OPEN_TAG) + len(_OPEN_TAG)
  end = text.find(_CLOSE_TAG, start)
  return text[start:] if end < 0 else text[start:end]


def last_boxed(text: str) -> str | None:
  """Content of the last `\\boxed{...}`, braces matched; None if absent or unclosed."""
  start = text.rfind(_BOXED)
  if start < 0:
    return None
  # '{' and '}' are single UTF-8 bytes, so byte positions of braces are character
  # boundaries and the slice decodes cleanly.
  tail = text[start + len(_BOXED) - 1:].encode("utf-8", "surrogatepass")
  b = np.frombuffer(tail, dtype=np.uint8)
  step = (b == ord("{")).astype(np.int64) - (b == ord("}"))
  depth = np.cumsum(step)
  closed = np.flatnonzero(depth == 0)
  if closed.size == 0:
    return None
  return tail[1:closed[0]].decode("utf-8", "surrogatepass")


def tagged_or_boxed(text: str) -> str | None:
  """`<answer>` content if tagged, else the last boxed content, else None."""
  tagged = answer_tag(text)
  return tagged if tagged is not None else last_boxed(text)
