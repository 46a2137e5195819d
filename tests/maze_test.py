"""Maze: verifier semantics of PAPERS.md section 3, and the generator's properties."""

import time

import numpy as np
import pytest

from rlvr_jax import tasks
from rlvr_jax.tasks import maze

# Hand-made 7x7 maze. S=(1,1), E=(5,5); (5,6) is free and on the border, so a
# walk can leave the grid to the right without first hitting a wall.
GRID = "\n".join([
    "*******",
    "*S..*.*",
    "*.*.*.*",
    "*.*...*",
    "*.***.*",
    "*....E.",
    "*******",
])
EX = {"grid": GRID, "size": 7, "solution": "DDDDRRRR"}
TASK = tasks.get("maze")


def _bfs_lengths(grid: str) -> int | None:
  """Independent check of BFS: grow the reachable set from S one step at a time (numpy)."""
  arr = np.array([list(r) for r in grid.split("\n")])
  free = arr != "*"
  reach = arr == "S"
  for steps in range(arr.size):
    if (reach & (arr == "E")).any():
      return steps
    grown = reach.copy()
    grown[1:] |= reach[:-1]
    grown[:-1] |= reach[1:]
    grown[:, 1:] |= reach[:, :-1]
    grown[:, :-1] |= reach[:, 1:]
    reach = grown & free
  return None


@pytest.mark.parametrize("response,expected", [
    ("DDDDRRRR", 1.0),  # a shortest path: down the left column, along the bottom row
    ("RRDDRRDD", 1.0),  # the other shortest path, through (3,3)..(3,5)
    ("RRLLDDDDRRRR", 1.0),  # longer but valid: any path ending on E counts
    ("DDDDRRRRRL", 1.0),  # steps past E onto the free border cell (5,6) and back
    ("RRR", 0.0),  # third step enters the wall at (1,4)
    ("U", 0.0),  # (0,1) is a wall
    ("DDDDRRRRRR", 0.0),  # (5,6) then (5,7): leaves the grid
    ("DDDDRRRRRRLL", 0.0),  # leaves the grid and comes back to E: still 0
    ("DDDDRRR", 0.0),  # stops on (5,4), not on E
    ("DDDDRRRRR", 0.0),  # stops on (5,6), beyond E
    ("", 0.0),  # no move: S is not E
    ("ddddrrrr", 1.0),  # lowercase is upper-cased
    ("<answer> d-d-d-d, r r r r !! </answer>", 1.0),  # garbage inside tags ignored
    ("<answer>RRR</answer> no wait <answer>DDDDRRRR</answer>", 1.0),  # last tag wins
    ("<answer>DDDDRRRR</answer> no wait <answer>RRR</answer>", 0.0),
    # Both tags present: text after the LAST <answer> to the end (no closing tag after it).
    ("<answer>DDDDRRRR</answer> then <answer>DDDDRRRR", 1.0),
    ("Lots of LRUD talk first. \\boxed{DDDDRRRR}", 1.0),  # boxed fallback, not the whole text
    ("\\boxed{RRR} then \\boxed{DDDDRRRR}", 1.0),  # last boxed
    ("\\boxed{{DDDD}RRRR}", 1.0),  # braces matched; inner braces are ignored characters
    ("<answer>DDDDRRRR", 0.0),  # no </answer>: whole text, "<ANSWER>" adds an R -> (2,2) wall
    ("path: DDDDRRRR", 1.0),  # whole response; "PATH:" holds no move letter
])
def test_verifier_cases(response, expected):
  assert TASK.verify(response, EX) == expected


def test_reference_path_is_shortest_and_valid():
  arr = maze.parse_grid(GRID)
  path = maze.shortest_path(arr)
  assert len(path) == 8 == _bfs_lengths(GRID)
  assert TASK.verify(path, EX) == 1.0


def test_normalized_answer_and_prompts():
  assert TASK.normalized_answer("<answer> d d r </answer>") == "DDR"
  assert TASK.normalized_answer("no moves? 123") is None  # N, O, M, V, E, S: none is a move
  assert TASK.prompt_text(EX) == GRID + "\nPath:"
  (msg,) = TASK.messages(EX)
  assert msg["role"] == "user"
  # The paper's prompt, verbatim (PAPERS.md section 3).
  assert msg["content"] == (
      "You need to solve the following maze. '*' denotes the wall that you cannot walk through, "
      "'.' denotes available area that you can walk through. 'S' denotes the starting point, "
      "'E' denotes the destination. There are four movement actions, including Left, Right, Up, "
      "Down. You need to use L to denote Left movement, R to denote Right movement, U to denote "
      "Up movement, D to denote Down movement. You can analysis the maze to find the correct "
      "path, and you should write the final path in the <answer> </answer>, e.g., "
      "<answer> LLRRDUL </answer>.\n## Maze\n" + GRID + "\nNow try to analyze the maze and put "
      "the final path in the <answer> </answer>.")


def test_malformed_example_scores_zero_not_raise():
  assert TASK.verify("DDDD", {"grid": "**\n*S"}) == 0.0
  assert TASK.verify("DDDD", {}) == 0.0
  with pytest.raises(ValueError, match="exactly one S"):
    maze.parse_grid("***\n*.*\n***")


@pytest.mark.parametrize("size", list(range(5, 22, 2)))
def test_generated_mazes_are_solvable_and_well_formed(size):
  rows = maze.generate(size, 40, np.random.default_rng(size))
  for ex in rows:
    arr = maze.parse_grid(ex["grid"])
    assert arr.shape == (size, size) and ex["size"] == size
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    assert (border == ord("*")).all()
    assert len(ex["solution"]) == _bfs_lengths(ex["grid"])  # BFS is shortest
    assert TASK.verify(ex["solution"], ex) == 1.0
    assert TASK.verify(f"<answer>{ex['solution']}</answer>", ex) == 1.0


def test_bad_sizes_rejected():
  for bad in (4, 6, 3, 23, 8.0):
    with pytest.raises(ValueError, match="odd int"):
      maze.generate(bad, 1, np.random.default_rng(0))


def test_splits_disjoint_deterministic_and_sized():
  a = maze.make_splits(num_train=200, num_test=80, seed=7)
  b = maze.make_splits(num_train=200, num_test=80, seed=7)
  c = maze.make_splits(num_train=200, num_test=80, seed=8)
  assert a == b
  assert a["train"] != c["train"]
  train, test = {e["grid"] for e in a["train"]}, {e["grid"] for e in a["test"]}
  assert len(train) == 200 and len(test) == 80  # no duplicates inside a split
  assert not train & test
  assert sorted({e["size"] for e in a["train"]}) == [9, 11, 13, 15]
  assert sorted({e["size"] for e in a["test"]}) == list(range(7, 22, 2))
  assert [e["size"] for e in a["test"]].count(7) == 10


def test_splits_dedup_with_overlapping_sizes():
  # 5x5 mazes come in few shapes (4 cells), so train and test drawn at the same size
  # collide often: the dedup must still give disjoint, duplicate-free splits.
  # At most 5 wall layouts (4 spanning trees of the 2x2 cell cycle, or all open) times
  # 12 (S, E) placements = 60 grids; 20 + 20 fit, 40 + 40 cannot.
  s = maze.make_splits(num_train=20, num_test=20, seed=0, train_sizes=(5,), test_sizes=(5,))
  train, test = [e["grid"] for e in s["train"]], [e["grid"] for e in s["test"]]
  assert len(set(train)) == 20 and len(set(test)) == 20 and not set(train) & set(test)
  with pytest.raises(ValueError, match="distinct 5x5"):
    maze.make_splits(num_train=40, num_test=40, seed=0, train_sizes=(5,), test_sizes=(5,))


def test_generation_speed_10k_15x15():
  # Issue 5: 10,000 mazes of 15x15 in under 5 s. CPU time of this process, which
  # other jobs on the shared machine do not inflate the way they inflate wall time.
  start = time.process_time()
  rows = maze.generate(15, 10_000, np.random.default_rng(0))
  elapsed = time.process_time() - start
  assert len(rows) == 10_000
  assert elapsed < 5.0, elapsed


def _reference_walk(moves: str, grid: str) -> float:
  """The verifier's walk, written plainly: per-step bounds and wall checks."""
  rows = grid.split("\n")
  r, c = next((i, row.index("S")) for i, row in enumerate(rows) if "S" in row)
  for ch in moves:
    r, c = r + {"U": -1, "D": 1}.get(ch, 0), c + {"L": -1, "R": 1}.get(ch, 0)
    if not (0 <= r < len(rows) and 0 <= c < len(rows)) or rows[r][c] == "*":
      return 0.0
  return float(rows[r][c] == "E")


def test_short_and_long_walks_agree_with_reference():
  # walk_score uses a Python loop below 256 moves and numpy above: both must match.
  rng = np.random.default_rng(1)
  checked = {0.0: 0, 1.0: 0}
  for ex in maze.generate(11, 30, rng):
    for length in (5, 100, 255, 256, 257, 600):
      for _ in range(6):
        # Mostly back-and-forth along the solution so that many walks stay valid.
        sol = ex["solution"]
        walk = "".join(rng.choice(list("LRUD"), size=length // 2 if rng.random() < 0.5 else 0))
        inv = {"L": "R", "R": "L", "U": "D", "D": "U"}
        wiggle = (sol[0] + inv[sol[0]]) * (length // 2)
        for moves in (walk, wiggle + sol, walk + sol, wiggle):
          expected = _reference_walk(moves, ex["grid"])
          assert maze.walk_score(moves, ex["grid"]) == expected
          checked[expected] += 1
  assert checked[0.0] > 100 and checked[1.0] > 100


# Hand-made 7x7 maze with a free cell on every border: (0,1) top, (6,1) bottom, (1,0)
# left, (1,6) right. Stepping off the top at column 1 or off the left at row 1 lands,
# if negative indices wrapped around, on the free cells (6,1) / (1,6): a verifier that
# forgot the lower bound would see free cells there. S=(1,1), E=(5,5); the wall (5,4)
# separates E from the bottom row's left part.
BORDER_GRID = "\n".join([
    "*.*****",
    ".S.....",
    "*.***.*",
    "*.*...*",
    "*.*.*.*",
    "*...*E*",
    "*.*****",
])
BORDER_SOLUTION = "RRRRDDDD"  # along row 1 to (1,5), down column 5 to E

# (bad walk part, its repaired twin). Each bad part starts at S; "loop" parts return to S
# when repaired, so they go before the solution; "final" parts are the walk's ending.
LOOPS = [
    ("DDDDRRRLLLUUUU", "DDDDRRLLUUUU"),    # third R enters the wall (5,4), then back to S
    ("UUDD", "UD"),                        # off the top: (-1,1), which wraps to (6,1)
    ("LLRR", "LR"),                        # off the left: (1,-1), which wraps to (1,6)
    ("DDDDDDUUUUUU", "DDDDDUUUUU"),        # off the bottom: (7,1)
    ("RRRRRRLLLLLL", "RRRRRLLLLL"),        # off the right: (1,7)
]
FINALS = [
    ("DDDDRRRR", BORDER_SOLUTION),         # through the wall (5,4) and onto E
    ("RRRRDDD", BORDER_SOLUTION),          # stops on (4,5), one short of E
    ("RRRRDDDDU", BORDER_SOLUTION + "UD"),  # reaches E, then leaves it for (4,5)
    ("", BORDER_SOLUTION),                 # stops on S
]


def _long_walks(length):
  """(bad, repaired) walks of `length` or `length` + 1 moves, bad step at the start, middle, end.

  A back-and-forth "RL" next to S pads each walk; walks from S to E have even length.
  """
  def pad(m):
    return "RL" * max((m + 1) // 2, 0)

  out = []
  for bad, good in LOOPS:
    room = length - len(bad) - len(BORDER_SOLUTION)
    for before in (0, room // 4 * 2, room // 2 * 2):  # the bad part first, in the middle, last
      out.append(tuple(pad(before) + part + pad(length - len(BORDER_SOLUTION) - before - len(part))
                       + BORDER_SOLUTION for part in (bad, good)))
  for bad, good in FINALS:
    out.append(tuple(pad(length - len(part)) + part for part in (bad, good)))
  return out


@pytest.mark.parametrize("length", [200, 254, 256, 257, 1000, 100_000])
def test_walks_through_walls_off_the_grid_or_ending_off_e_score_0_at_any_length(length):
  # walk_score takes a Python loop below 256 moves (lengths 200, 254: walks of at most 255)
  # and numpy from 256 on (the other lengths: walks of at least 256); every response
  # form (bare, tags, boxed, lower case with separators) reaches the walk with the same
  # moves. A bad walk must score 0 on every path and its repaired twin 1 (so each bad
  # walk is a near-miss of the right length, not trivially wrong).
  ex = {"grid": BORDER_GRID, "size": 7, "solution": BORDER_SOLUTION}
  assert maze.shortest_path(maze.parse_grid(BORDER_GRID)) == BORDER_SOLUTION
  forms = [lambda m: m, lambda m: f"So: <answer> {m} </answer>", lambda m: f"\\boxed{{{m}}}",
           lambda m: "<answer>" + " ".join(m.lower()) + "</answer>"]
  walks = _long_walks(length)
  for bad, good in walks:
    assert len(bad) in (length, length + 1) and len(good) in (length, length + 1)
    assert maze.walk_score(bad, BORDER_GRID) == 0.0, (len(bad), bad[:12], bad[-16:])
    assert maze.walk_score(good, BORDER_GRID) == 1.0, (len(good), good[:12], good[-16:])
    if length <= 1000:
      for form in forms:
        assert TASK.verify(form(bad), ex) == 0.0, (len(bad), bad[-16:])
        assert TASK.verify(form(good), ex) == 1.0, (len(good), good[-16:])


@pytest.mark.parametrize("pad", ["", "RL" * 150])  # short and long walk
def test_moves_are_read_after_upper_casing(pad):
  # PAPERS.md: upper-case the answer, then walk its L/R/U/D. Upper-casing can turn a
  # non-ASCII character into move letters: the ligatures '\ufb02' -> 'FL' and
  # '\ufb04' -> 'FFL' end the walk with an L, here the step from (5,6) back onto E.
  for tail in ("\ufb02", "\ufb04"):
    assert tail.upper().endswith("L")
    assert TASK.verify(f"<answer>{pad}DDDDRRRRR{tail}</answer>", EX) == 1.0
    assert maze.extract_moves(f"{pad}ddddrrrrr{tail}") == pad + "DDDDRRRRRL"
  assert TASK.verify(f"<answer>{pad}DDDDRRRRR</answer>", EX) == 0.0  # without it: on (5,6)
