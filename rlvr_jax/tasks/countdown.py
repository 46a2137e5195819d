"""Countdown: combine the given numbers with + - * / and parentheses to hit a target.

Each number may be used at most once (unused ones are fine). The answer is
parsed by a small recursive-descent parser (no `eval`) with exact Fraction
arithmetic and hard bounds: at most `MAX_CHARS` characters, `MAX_DEPTH`
nesting, `MAX_DIGITS` digits a literal, intermediate values below 10**30.
Division by zero, a bound exceeded, or any syntax error scores 0.
`^` / `**` are rejected unless `allow_power=True`; then exponents must be
integers with |e| <= `MAX_EXPONENT`, so an absurd exponent scores 0 instead
of hanging. An answer may end in `= <target>`.

Example dict: {'numbers': [int, ...], 'target': int, 'solution': str}.
"""

import collections
import re
from fractions import Fraction

import numpy as np

from rlvr_jax.tasks import base, extract

MAX_CHARS = 256
MAX_DEPTH = 32
MAX_DIGITS = 9
MAX_EXPONENT = 16
MAX_MAGNITUDE = 10**30
_TOKEN = re.compile(r"\s*(?:(\d+)|(\*\*|[-+*/^()]))")
_NORMALIZE = str.maketrans({"×": "*", "÷": "/", "−": "-", "·": "*"})


class _Reject(Exception):
  """The answer is not a valid expression within the bounds."""


class _Parser:

  def __init__(self, text: str, allow_power: bool):
    self.tokens = self._tokenize(text)
    self.pos = 0
    self.allow_power = allow_power
    self.literals: list[int] = []

  @staticmethod
  def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
      m = _TOKEN.match(text, pos)
      if m is None:
        raise _Reject(f"bad character at {pos}")
      if m.group(1) is not None and len(m.group(1)) > MAX_DIGITS:
        raise _Reject("literal too long")
      tokens.append(m.group(1) or m.group(2))
      pos = m.end()
    return tokens

  def peek(self) -> str | None:
    return self.tokens[self.pos] if self.pos < len(self.tokens) else None

  def take(self) -> str:
    tok = self.peek()
    if tok is None:
      raise _Reject("unexpected end")
    self.pos += 1
    return tok

  def parse(self) -> Fraction:
    value = self.expr(0)
    if self.peek() is not None:
      raise _Reject(f"trailing token {self.peek()!r}")
    return value

  def expr(self, depth: int) -> Fraction:
    value = self.term(depth)
    while self.peek() in ("+", "-"):
      op = self.take()
      rhs = self.term(depth)
      value = _bounded(value + rhs if op == "+" else value - rhs)
    return value

  def term(self, depth: int) -> Fraction:
    value = self.unary(depth)
    while self.peek() in ("*", "/"):
      op = self.take()
      rhs = self.unary(depth)
      if op == "/" and rhs == 0:
        raise _Reject("division by zero")
      value = _bounded(value * rhs if op == "*" else value / rhs)
    return value

  def unary(self, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
      raise _Reject("nested too deeply")
    if self.peek() in ("+", "-"):
      sign = -1 if self.take() == "-" else 1
      return sign * self.unary(depth + 1)
    value = self.atom(depth)
    if self.peek() in ("^", "**"):
      if not self.allow_power:
        raise _Reject("exponentiation is not allowed")
      self.take()
      exponent = self.unary(depth + 1)  # right associative
      if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        raise _Reject("exponent must be an integer of size <= MAX_EXPONENT")
      if value == 0 and exponent < 0:
        raise _Reject("division by zero")
      value = _bounded(value**int(exponent))
    return value

  def atom(self, depth: int) -> Fraction:
    tok = self.take()
    if tok == "(":
      value = self.expr(depth + 1)
      if self.take() != ")":
        raise _Reject("missing )")
      return value
    if tok.isdigit():
      self.literals.append(int(tok))
      return Fraction(int(tok))
    raise _Reject(f"unexpected token {tok!r}")


def _bounded(x: Fraction) -> Fraction:
  if abs(x.numerator) > MAX_MAGNITUDE or x.denominator > MAX_MAGNITUDE:
    raise _Reject("value out of bounds")
  return x


def evaluate(expression: str, allow_power: bool = False) -> tuple[Fraction, list[int]]:
  """Exact value and literals of `expression`; ValueError if it is not valid within the bounds."""
  if len(expression) > MAX_CHARS:
    raise ValueError(f"expression longer than {MAX_CHARS} characters")
  parser = _Parser(expression.translate(_NORMALIZE), allow_power)
  try:
    return parser.parse(), parser.literals
  except (_Reject, RecursionError) as e:
    raise ValueError(f"invalid countdown expression: {e}") from None


def extract_expression(response: str) -> str:
  """Tagged / boxed answer (else the whole response), with an optional `= value` suffix split off."""
  text = extract.tagged_or_boxed(response)
  return (response if text is None else text).strip()


def score(response: str, numbers: list[int], target: int, allow_power: bool = False) -> float:
  text = extract_expression(response)
  if len(text) > MAX_CHARS:
    return 0.0
  if text.count("=") == 1:
    text, rhs = text.split("=")
    if rhs.strip() != str(target):
      return 0.0
  try:
    value, literals = evaluate(text, allow_power)
  except ValueError:
    return 0.0
  if collections.Counter(literals) - collections.Counter(numbers):
    return 0.0  # a number used more often than given, or not given at all
  return float(value == target)


def generate(count: int, rng: np.random.Generator, num_numbers: tuple[int, int] = (3, 4),
             max_number: int = 100, max_target: int = 1000) -> list[dict]:
  """Problems whose target is reached by a random expression over all their numbers."""
  out = []
  while len(out) < count:
    k = int(rng.integers(num_numbers[0], num_numbers[1] + 1))
    numbers = [int(x) for x in rng.integers(1, max_number + 1, size=k)]
    items = [(Fraction(x), str(x)) for x in numbers]
    while len(items) > 1:
      i, j = (int(x) for x in rng.choice(len(items), 2, replace=False))
      (a, sa), (b, sb) = items[i], items[j]
      op = "+-*/"[int(rng.integers(4))]
      if op == "/" and b == 0:
        op = "+"
      value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]
      items = [it for n, it in enumerate(items) if n not in (i, j)] + [(value, f"({sa} {op} {sb})")]
    value, expr = items[0]
    if value.denominator == 1 and 1 <= value <= max_target:
      out.append({"numbers": numbers, "target": int(value), "solution": expr[1:-1]})
  return out


@base.register("countdown")
class CountdownTask(base.Task):
  """Countdown with answers in <answer> tags (or boxed, or the bare expression)."""

  def __init__(self, allow_power: bool = False):
    self.allow_power = allow_power

  def messages(self, example: dict) -> list[dict[str, str]]:
    nums = ", ".join(str(x) for x in example["numbers"])
    content = (f"Using the numbers [{nums}], write an arithmetic expression that equals "
               f"{example['target']}. You may use +, -, *, / and parentheses, and each number at "
               "most once. Think it through, then give only the expression in <answer> </answer> "
               "tags, for example <answer> (1 + 2) * 3 </answer>.")
    return [{"role": "user", "content": content}]

  def prompt_text(self, example: dict) -> str:
    nums = " ".join(str(x) for x in example["numbers"])
    return f"numbers: {nums}\ntarget: {example['target']}\nexpression:"

  def verify(self, response: str, example: dict) -> float:
    try:
      return score(response, example["numbers"], example["target"], self.allow_power)
    except Exception:
      return 0.0

  def normalized_answer(self, response: str) -> str | None:
    try:
      text = "".join(extract_expression(response).split())
      return text[:MAX_CHARS] or None
    except Exception:
      return None
