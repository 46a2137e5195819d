"""The Maze task of the Pass@k Training paper (PAPERS.md section 3).

A maze is an n x n grid (odd n in 5..21) of `S` start, `E` end, `*` wall and
`.` free. Cells sit at odd (row, col); a random spanning tree over the
m x m cells (m = (n-1)/2, Kruskal on a random edge order) makes every cell
reachable, and a fraction `loop_prob` of the remaining walls between cells is
opened so that some mazes have several paths. S and E are two distinct cells.
The reference answer is a BFS shortest path.

Example dict: {'grid': rows joined by '\\n', 'size': n, 'solution': 'RRDD...'}.
"""

import collections
import functools

import numpy as np

from rlvr_jax.tasks import base, extract

TRAIN_SIZES = (9, 11, 13, 15)
TEST_SIZES = tuple(range(7, 22, 2))
MOVES = {"L": (0, -1), "R": (0, 1), "U": (-1, 0), "D": (1, 0)}

PROMPT = (
    "You need to solve the following maze. '*' denotes the wall that you cannot walk through, "
    "'.' denotes available area that you can walk through. 'S' denotes the starting point, "
    "'E' denotes the destination. There are four movement actions, including Left, Right, Up, "
    "Down. You need to use L to denote Left movement, R to denote Right movement, U to denote "
    "Up movement, D to denote Down movement. You can analysis the maze to find the correct "
    "path, and you should write the final path in the <answer> </answer>, e.g., "
    "<answer> LLRRDUL </answer>.\n## Maze\n{grid}\nNow try to analyze the maze and put the "
    "final path in the <answer> </answer>.")

# Every byte but L, R, U, D: deleted with bytes.translate, which is C speed on megabytes.
_NOT_MOVE = bytes(b for b in range(256) if b not in b"LRUD")
# Byte -> row / column step of a move character; other bytes never reach the walk.
_DR = np.zeros(256, np.int64)
_DC = np.zeros(256, np.int64)
for _ch, (_dr, _dc) in MOVES.items():
  _DR[ord(_ch)], _DC[ord(_ch)] = _dr, _dc


def check_size(n: int) -> None:
  if not (isinstance(n, (int, np.integer)) and 5 <= n <= 21 and n % 2 == 1):
    raise ValueError(f"maze size must be an odd int in [5, 21], got {n!r}")


@functools.lru_cache(maxsize=None)
def _edges(m: int) -> np.ndarray:
  """[E, 4] int: cell a, cell b, wall row, wall col of each pair of neighbouring cells."""
  out = []
  for i in range(m):
    for j in range(m):
      if j + 1 < m:
        out.append((i * m + j, i * m + j + 1, 2 * i + 1, 2 * j + 2))
      if i + 1 < m:
        out.append((i * m + j, (i + 1) * m + j, 2 * i + 2, 2 * j + 1))
  return np.asarray(out, np.int64)


def shortest_path(grid_WxW: np.ndarray) -> str | None:
  """BFS shortest move string from S to E over a uint8 grid; None if E is unreachable."""
  n = grid_WxW.shape[0]
  flat = grid_WxW.reshape(-1)
  start, end = int(np.flatnonzero(flat == ord("S"))[0]), int(np.flatnonzero(flat == ord("E"))[0])
  free = (flat != ord("*")).tolist()
  prev = {start: None}
  queue = collections.deque([start])
  while queue:
    p = queue.popleft()
    if p == end:
      break
    r, c = divmod(p, n)
    for q, ch, ok in ((p - 1, "L", c > 0), (p + 1, "R", c < n - 1),
                      (p - n, "U", r > 0), (p + n, "D", r < n - 1)):
      if ok and free[q] and q not in prev:
        prev[q] = (p, ch)
        queue.append(q)
  if end not in prev:
    return None
  path = []
  p = end
  while prev[p] is not None:
    p, ch = prev[p]
    path.append(ch)
  return "".join(reversed(path))


def generate(size: int, count: int, rng: np.random.Generator,
             loop_prob: float = 0.1) -> list[dict]:
  """`count` random solvable mazes of side `size`, drawn from `rng`."""
  check_size(size)
  if not 0.0 <= loop_prob <= 1.0:
    raise ValueError(f"loop_prob must be in [0, 1], got {loop_prob}")
  m = (size - 1) // 2
  edges = _edges(m)
  num_edges = len(edges)
  # All randomness drawn in bulk: per-maze Python work is only union-find + BFS.
  order_CxE = np.argsort(rng.random((count, num_edges)), axis=1)
  loop_CxE = rng.random((count, num_edges)) < loop_prob
  ends_Cx2 = np.argsort(rng.random((count, m * m)), axis=1)[:, :2]
  base_grid = np.full((size, size), ord("*"), np.uint8)
  base_grid[1::2, 1::2] = ord(".")
  a_list, b_list = edges[:, 0].tolist(), edges[:, 1].tolist()
  out = []
  for c in range(count):
    parent = list(range(m * m))

    def find(x: int) -> int:
      while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
      return x

    opened = loop_CxE[c].copy()
    for e in order_CxE[c].tolist():
      ra, rb = find(a_list[e]), find(b_list[e])
      if ra != rb:
        parent[ra] = rb
        opened[e] = True
    grid = base_grid.copy()
    grid[edges[opened, 2], edges[opened, 3]] = ord(".")
    s, t = ends_Cx2[c].tolist()
    grid[2 * (s // m) + 1, 2 * (s % m) + 1] = ord("S")
    grid[2 * (t // m) + 1, 2 * (t % m) + 1] = ord("E")
    out.append({"grid": to_text(grid), "size": size, "solution": shortest_path(grid)})
  return out


def to_text(grid_WxW: np.ndarray) -> str:
  return "\n".join(row.tobytes().decode("ascii") for row in grid_WxW)


def parse_grid(grid: str) -> np.ndarray:
  """uint8 [n, n] array of a grid text; ValueError if it is not a well-formed maze."""
  rows = grid.split("\n")
  n = len(rows)
  if any(len(r) != n for r in rows) or set(grid) - set("SE*.\n"):
    raise ValueError(f"maze grid must be n lines of n characters from 'SE*.', got {grid!r:.80}")
  arr = np.frombuffer(grid.replace("\n", "").encode("ascii"), np.uint8).reshape(n, n)
  if (arr == ord("S")).sum() != 1 or (arr == ord("E")).sum() != 1:
    raise ValueError("maze grid must hold exactly one S and one E")
  return arr


def make_splits(num_train: int, num_test: int, seed: int, loop_prob: float = 0.1,
                train_sizes: tuple[int, ...] = TRAIN_SIZES,
                test_sizes: tuple[int, ...] = TEST_SIZES) -> dict[str, list[dict]]:
  """Train and test sets, spread evenly over their sizes, with no grid in both.

  The test set is drawn first; train mazes whose grid is in it (or repeats an
  earlier train grid) are dropped and redrawn, so both splits are duplicate-free.
  """
  seen: set[str] = set()
  splits = {}
  for split_id, (name, num, sizes) in enumerate(
      (("test", num_test, test_sizes), ("train", num_train, train_sizes))):
    rows = []
    for k, size in enumerate(sizes):
      want = num // len(sizes) + (k < num % len(sizes))
      rng = np.random.default_rng([seed, split_id, size])
      got = []
      for _ in range(50):
        if len(got) == want:
          break
        for ex in generate(size, max(2 * (want - len(got)), 16), rng, loop_prob):
          if ex["grid"] not in seen and len(got) < want:
            seen.add(ex["grid"])
            got.append(ex)
      if len(got) < want:
        raise ValueError(f"could not draw {want} distinct {size}x{size} mazes for {name}")
      rows += got
    splits[name] = rows
  return splits


@functools.lru_cache(maxsize=4096)
def _parsed(grid: str) -> tuple[np.ndarray, list[str], int, int]:
  """Cached parse of a grid: rollouts of one problem share it (N verifications, one parse)."""
  arr = parse_grid(grid)
  arr.setflags(write=False)
  (sr,), (sc,) = np.nonzero(arr == ord("S"))
  return arr, grid.split("\n"), int(sr), int(sc)


def walk_score(moves: str, grid: str) -> float:
  """1.0 if the L/R/U/D walk from S stays on free cells inside the grid and ends on E."""
  arr, rows_text, r, c = _parsed(grid)
  n = arr.shape[0]
  if not moves:
    return 0.0
  if len(moves) < 256:  # short walks: a Python loop beats numpy's per-call overhead
    for ch in moves:
      dr, dc = MOVES[ch]
      r, c = r + dr, c + dc
      if not (0 <= r < n and 0 <= c < n) or rows_text[r][c] == "*":
        return 0.0
    return float(rows_text[r][c] == "E")
  b = np.frombuffer(moves.encode("ascii"), np.uint8)
  rows = r + np.cumsum(_DR[b])
  cols = c + np.cumsum(_DC[b])
  if rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n:
    return 0.0
  if (arr[rows, cols] == ord("*")).any():
    return 0.0
  return float(arr[rows[-1], cols[-1]] == ord("E"))


def extract_moves(response: str) -> str:
  """The move string the verifier walks: tagged / boxed / whole text, upper-cased, L/R/U/D only."""
  text = extract.tagged_or_boxed(response)
  if text is None:
    text = response
  # After upper-casing, every move letter is ASCII ('\ufb02'.upper() == 'FL'), so
  # dropping non-ASCII characters first loses none.
  return text.upper().encode("ascii", "ignore").translate(None, _NOT_MOVE).decode("ascii")


@base.register("maze")
class MazeTask(base.Task):
  """The paper's maze. `prompt_text` (tiny policy) is the grid then a line `Path:`;

  the tiny policy answers with the bare move string (the verifier walks the
  whole response when it has no tags, ignoring non-move characters).
  """

  def messages(self, example: dict) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(grid=example["grid"])}]

  def prompt_text(self, example: dict) -> str:
    return example["grid"] + "\nPath:"

  def verify(self, response: str, example: dict) -> float:
    try:
      return walk_score(extract_moves(response), example["grid"])
    except Exception:  # never raise on policy text; bad examples are caught by tests
      return 0.0

  def normalized_answer(self, response: str) -> str | None:
    try:
      return extract_moves(response) or None
    except Exception:
      return None
