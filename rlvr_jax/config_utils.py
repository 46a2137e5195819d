"""Helpers for `get_config(arg)` files in configs/.

A config file's argument is a comma-separated list of `key=value` pairs and
bare flags: `--config=configs/maze_tiny.py:estimator=passk_analytical,k=8,runlocal`.
`parse_arg` turns it into a ConfigDict typed by the defaults it is given, and
rejects keys it does not know, so a typo in a sweep fails at launch.
"""

from typing import Any

import ml_collections


def _convert(key: str, text: str, default: Any) -> Any:
  if isinstance(default, bool):
    if text.lower() in ("1", "true", "yes", ""):
      return True
    if text.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"config arg {key!r}: expected a boolean, got {text!r}")
  if isinstance(default, int):
    return int(text)
  if isinstance(default, float):
    return float(text)
  if default is None or isinstance(default, str):
    return text
  raise TypeError(f"config arg {key!r}: unsupported default type {type(default).__name__}")


class UnknownArgError(ValueError):
  """A config argument the file does not take; `known` lists the ones it does."""

  def __init__(self, message: str, known: tuple[str, ...]):
    super().__init__(message)
    self.known = known


_PROBE = "__which_args__"


def accepted_args(get_config: Any) -> tuple[str, ...]:
  """The argument names a config file's `get_config(arg)` accepts (it must parse its
  argument with `parse_arg` before anything else)."""
  try:
    get_config(_PROBE)
  except UnknownArgError as e:
    return e.known
  raise ValueError(f"{get_config.__module__}.get_config does not parse its argument with "
                   "config_utils.parse_arg")


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses `arg` ("a=1,b=x,flag") over `defaults`; unknown keys are an error.

  A bare name sets a boolean default to True. Values take the type of their
  default (bool, int, float or str).
  """
  result = ml_collections.ConfigDict(dict(defaults))
  if not arg:
    return result
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, has_value, text = item.partition("=")
    key = key.strip()
    if key not in defaults:
      known = ", ".join(sorted(defaults)) or "(none)"
      raise UnknownArgError(f"unknown config arg {key!r}; known args: {known}",
                            tuple(sorted(defaults)))
    if not has_value and not isinstance(defaults[key], bool):
      raise ValueError(f"config arg {key!r} needs a value ({key}=...)")
    try:
      result[key] = _convert(key, text.strip(), defaults[key])
    except ValueError as e:
      raise ValueError(f"config arg {key!r}: cannot parse {text!r}: {e}") from e
  return result
