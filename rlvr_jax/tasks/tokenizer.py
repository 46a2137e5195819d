"""Character tokenizer for the tiny policy: printable ASCII plus newline.

Ids: 0 pad, 1 bos, 2 eos, then '\n' and the 95 printable characters ' '..'~'.
"""

from collections.abc import Iterable

_CHARS = "\n" + "".join(chr(c) for c in range(32, 127))


class CharTokenizer:
  """Maps characters to ids and back; a character outside the vocabulary is a ValueError."""

  pad_id: int = 0
  bos_id: int = 1
  eos_id: int = 2

  def __init__(self) -> None:
    self._offset = 3
    self._char_to_id = {c: i + self._offset for i, c in enumerate(_CHARS)}
    self.vocab_size = self._offset + len(_CHARS)

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Ids of `text`, optionally framed by bos / eos."""
    ids = [self.bos_id] if add_bos else []
    for pos, ch in enumerate(text):
      i = self._char_to_id.get(ch)
      if i is None:
        raise ValueError(f"CharTokenizer: character {ch!r} at position {pos} is outside the "
                         "vocabulary (printable ASCII and newline)")
      ids.append(i)
    if add_eos:
      ids.append(self.eos_id)
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids` up to the first eos; pad and bos are skipped."""
    out = []
    for i in ids:
      i = int(i)
      if i == self.eos_id:
        break
      if i in (self.pad_id, self.bos_id):
        continue
      if not self._offset <= i < self.vocab_size:
        raise ValueError(f"CharTokenizer: id {i} is outside [0, {self.vocab_size})")
      out.append(_CHARS[i - self._offset])
    return "".join(out)
