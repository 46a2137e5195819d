"""The data path: TFDS builds (no TensorFlow) named by the config, eval sets, the math
jsonl builder, and the Grain prompt iterator (sharding, epochs, exact resume via orbax)."""

import importlib.util
import json
import os
import shutil
import sys

import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlvr_jax import data, tasks
from rlvr_jax.rl.defaults import base_config
from rlvr_jax.tasks import countdown, math_task, maze

TESTDATA = os.path.join(os.path.dirname(__file__), "testdata")
MATH_TRAIN = os.path.join(TESTDATA, "math_train_sample.jsonl")
MATH_EVAL = os.path.join(TESTDATA, "math_eval_sample.jsonl")
# 20 test mazes over 3 sizes: make_splits draws 7 of size 5, 7 of size 7, 6 of size 9, in order.
MAZE = {"num_train": 48, "num_test": 20, "seed": 1234, "loop_prob": 0.1, "train_sizes": (7,),
        "test_sizes": (5, 7, 9)}
CD_KW = {"num_numbers": (3, 4), "max_number": 100, "max_target": 1000}
COUNTDOWN = {"num_train": 40, "num_test": 12, "seed": 7, **CD_KW}


def _cfg(data_dir, **kw) -> ml_collections.ConfigDict:
  """The trainer's default `data` block, pointed at `data_dir`."""
  c = base_config().data
  c.dir = str(data_dir)
  for key, value in kw.items():
    c[key] = value
  return c


def _all(source) -> list[dict]:
  return [source[i] for i in range(len(source))]


def _mtimes(root) -> dict[str, int]:
  return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
          for d, _, files in os.walk(root) for f in files}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def maze_splits(data_dir):
  return data.load("maze", _cfg(data_dir, splits=MAZE, eval_group_key="size", eval_limit=15))


def test_maze_records_equal_make_splits(maze_splits):
  train, evals = maze_splits
  expected = maze.make_splits(**MAZE)
  assert _all(train) == expected["train"]  # same examples, same order, plain Python values
  assert all(type(e["size"]) is int and type(e["grid"]) is str for e in _all(train))
  # eval_limit 15 keeps the first 15 test mazes (7 + 7 + 1 by size), then groups them by size.
  test = expected["test"]
  assert evals == {"size5": test[:7], "size7": test[7:14], "size9": test[14:15]}
  assert not {e["grid"] for e in _all(train)} & {e["grid"] for e in test}
  task = tasks.get("maze")
  assert all(task.verify(e["solution"], e) == 1.0 for e in _all(train) + test)


def test_countdown_records_follow_generate(data_dir):
  train, evals = data.load("countdown", _cfg(data_dir, splits=COUNTDOWN))
  # The test set is generate()'s first 12 problems of stream [seed, 0]; train the first 40
  # of stream [seed, 1] whose numbers and target are no test problem's.
  test = countdown.generate(12, np.random.default_rng([7, 0]), **CD_KW)
  assert evals == {"test": test}
  prompt = lambda e: (tuple(e["numbers"]), e["target"])
  drawn = countdown.generate(80, np.random.default_rng([7, 1]), **CD_KW)
  assert _all(train) == [e for e in drawn if prompt(e) not in set(map(prompt, test))][:40]
  task = tasks.get("countdown")
  for e in _all(train):
    assert type(e["numbers"]) is list and type(e["target"]) is int
    assert task.verify(f"<answer>{e['solution']}</answer>", e) == 1.0


def test_builds_are_named_by_config_and_reused(data_dir, maze_splits):
  cfg = _cfg(data_dir, splits=MAZE, eval_group_key="size", eval_limit=15)
  built = data.for_task("maze", cfg, str(data_dir))
  before = _mtimes(os.path.join(data_dir, "rlvr_maze"))
  assert len(before) >= 3  # the array_record files and dataset_info.json
  again = data.load("maze", cfg)  # built: opens the same files, writes nothing
  assert _mtimes(os.path.join(data_dir, "rlvr_maze")) == before
  assert _all(again.train) == _all(maze_splits.train)
  # The name is a function of the split kwargs only (key order and tuple vs list do not matter).
  reordered = dict(reversed([(k, list(v) if isinstance(v, tuple) else v) for k, v in MAZE.items()]))
  assert data.for_task("maze", _cfg(data_dir, splits=reordered), "").builder_config.name == \
      built.builder_config.name
  other = data.for_task("maze", _cfg(data_dir, splits={**MAZE, "seed": 1}), str(data_dir))
  assert other.builder_config.name != built.builder_config.name
  assert not os.path.exists(other.data_dir)


def test_data_dir_default(monkeypatch, tmp_path):
  monkeypatch.setenv("RLVR_JAX_DATA_DIR", str(tmp_path / "env"))
  assert data.data_dir("") == str(tmp_path / "env")
  assert data.data_dir(str(tmp_path / "cfg")) == str(tmp_path / "cfg")
  monkeypatch.delenv("RLVR_JAX_DATA_DIR")
  assert data.data_dir("") == os.path.expanduser("~/.cache/rlvr_jax/tfds")


def test_unknown_task_and_misplaced_keys(tmp_path):
  with pytest.raises(ValueError, match="task 'sudoku' has no dataset builder"):
    data.for_task("sudoku", _cfg(tmp_path), str(tmp_path))
  with pytest.raises(ValueError, match="are for the math task, not 'maze'"):
    data.for_task("maze", _cfg(tmp_path, splits=MAZE, train_file=MATH_TRAIN), str(tmp_path))


def _jsonl_rows(path: str) -> list[dict]:
  rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
  return [{"problem": r["problem"], "answer": str(r["answer"])} for r in rows]


def test_math_reads_sample_files(data_dir):
  cfg = _cfg(data_dir, train_file=MATH_TRAIN,
             eval_files=f"sample={MATH_EVAL}, again={MATH_TRAIN}", eval_limit=2)
  train, evals = data.load("math", cfg)
  rows = _all(train)
  assert len(rows) == 8 and rows == _jsonl_rows(MATH_TRAIN)  # file order, blank line skipped
  assert rows[1] == {"problem": "Compute $\\frac{2}{3} - \\frac{1}{6}$.", "answer": "\\frac{1}{2}"}
  assert rows[2]["answer"] == "6"  # a JSON number becomes the string math-verify parses
  assert list(evals) == ["sample", "again"]  # one set a file, in the config's order
  assert evals == {"sample": _jsonl_rows(MATH_EVAL)[:2], "again": rows[:2]}
  # The task adds the SvS prompt suffix; every sample answer is one math-verify accepts.
  assert math_task.INSTRUCTION.endswith("put your final answer within \\boxed{}.")
  assert tasks.get("math").messages(rows[0])[0]["content"] == \
      f"{rows[0]['problem']}\n{math_task.INSTRUCTION}"
  assert all(math_task.equivalent(e["answer"], e["answer"]) for e in rows + _jsonl_rows(MATH_EVAL))
  # eval_files as a mapping (a ConfigDict of name -> path) names the same sets.
  mapped = data.load("math", ml_collections.ConfigDict(
      {"dir": str(data_dir), "train_file": MATH_TRAIN, "eval_files": {"sample": MATH_EVAL},
       "eval_limit": 2}))
  assert mapped.evals == {"sample": evals["sample"]}


BAD_FILES = [
    ('{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": \n', r"bad\.jsonl:2: not a JSON line"),
    ('{"problem": "a", "solution": "1"}\n', r"bad\.jsonl:1: no 'answer' field"),
    ('{"question": "a", "answer": "1"}\n', r"bad\.jsonl:1: no 'problem' field"),
    ('{"problem": "a", "answer": null}\n', r"bad\.jsonl:1: 'answer' must be a non-empty string"),
    ('{"problem": " ", "answer": "1"}\n', r"bad\.jsonl:1: 'problem' must be a non-empty string"),
    ('["a", "1"]\n', r"bad\.jsonl:1: a line must be a JSON object"),
    ("\n\n", r"bad\.jsonl: no examples"),
]


@pytest.mark.parametrize("content,error", BAD_FILES)
def test_math_rejects_bad_files(tmp_path, content, error):
  bad = tmp_path / "bad.jsonl"
  bad.write_text(content)
  with pytest.raises(ValueError, match=error):
    data.load("math", _cfg(tmp_path, train_file=str(bad)))
  with pytest.raises(ValueError, match=error):  # an eval file is checked the same way
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN, eval_files=f"e={bad}"))


def test_math_config_errors(tmp_path):
  with pytest.raises(ValueError, match="needs data.train_file"):
    data.load("math", _cfg(tmp_path))
  with pytest.raises(FileNotFoundError, match="data.train_file: no such file: .*nope.jsonl"):
    data.load("math", _cfg(tmp_path, train_file=str(tmp_path / "nope.jsonl")))
  with pytest.raises(FileNotFoundError, match=r"data.eval_files\['x'\]: no such file"):
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN, eval_files="x=/no/such.jsonl"))
  with pytest.raises(ValueError, match="'a-b' must be letters, digits and _"):
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN, eval_files=f"a-b={MATH_EVAL}"))
  with pytest.raises(ValueError, match="'aime24' is not name=path"):
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN, eval_files="aime24"))
  with pytest.raises(ValueError, match="repeated eval set name"):
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN,
                           eval_files=f"e={MATH_EVAL},e={MATH_TRAIN}"))
  with pytest.raises(ValueError, match="eval_group_key does not apply to math"):
    data.load("math", _cfg(tmp_path, train_file=MATH_TRAIN, eval_group_key="level"))


def test_math_rebuilds_when_content_changes(tmp_path):
  path = tmp_path / "train.jsonl"
  path.write_text('{"problem": "1+1?", "answer": "2"}\n')
  cfg = _cfg(tmp_path / "tfds", train_file=str(path))
  first = data.load("math", cfg)
  assert _all(first.train) == [{"problem": "1+1?", "answer": "2"}]
  path.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": "4"}\n')
  second = data.load("math", cfg)  # same path, new content: a new build, not the old records
  assert [e["answer"] for e in _all(second.train)] == ["2", "4"]
  builds = lambda: sorted(os.listdir(tmp_path / "tfds" / "rlvr_math"))
  assert len(builds()) == 2
  copy = tmp_path / "copy.jsonl"
  shutil.copy(path, copy)  # the same content elsewhere reuses the second build
  third = data.load("math", _cfg(tmp_path / "tfds", train_file=str(copy)))
  assert len(builds()) == 2 and _all(third.train) == _all(second.train)


def test_no_tensorflow(maze_splits):
  assert importlib.util.find_spec("tensorflow") is None
  assert "tensorflow" not in sys.modules


# 27 examples and global batches of 8: epochs end inside batches 3, 6, 10, 13, ...
SOURCE = [{"id": i} for i in range(27)]


def _ids(it, steps: int) -> list[list[int]]:
  return [[e["id"] for e in next(it)] for _ in range(steps)]


def test_shards_partition_global_batches_and_epochs():
  one = _ids(data.prompt_iterator(SOURCE, 8, seed=3, process_index=0, process_count=1), 14)
  two = [_ids(data.prompt_iterator(SOURCE, 4, seed=3, process_index=p, process_count=2), 14)
         for p in range(2)]
  for t in range(14):
    assert len(two[0][t]) == len(two[1][t]) == 4
    # Process p holds elements 4p .. 4p + 3 of global batch t: the two shards, process 0's
    # first, are exactly the batch one process of 8 draws, row for row (so the stream, and
    # the global row each example lands in, do not depend on P).
    assert two[0][t] + two[1][t] == one[t]
  stream = [i for batch in one for i in batch]  # 112 examples: 4 whole epochs and a bit
  epochs = [stream[e * 27:(e + 1) * 27] for e in range(4)]
  assert all(sorted(ep) == list(range(27)) for ep in epochs)  # every example once an epoch
  assert len({tuple(ep) for ep in epochs}) == 4  # each epoch shuffled anew
  assert epochs[0] != list(range(27))
  for t in (0, 1, 4, 7, 8):  # batches inside one epoch: the shards are disjoint
    assert not set(two[0][t]) & set(two[1][t])


def test_seeds_give_different_orders():
  first = lambda it: [i for b in _ids(it, 27) for i in b][:54]  # two epochs of batch 2
  a = first(data.prompt_iterator(SOURCE, 2, seed=0, process_index=0, process_count=1))
  b = first(data.prompt_iterator(SOURCE, 2, seed=1, process_index=0, process_count=1))
  again = first(data.prompt_iterator(SOURCE, 2, seed=0, process_index=0, process_count=1))
  warm = first(data.warmstart_iterator(SOURCE, 2, seed=0))
  assert a == again and a != b and warm != a
  # Grain reseeds epoch e with seed + e; mixed seeds keep seed 1's first epoch from being
  # seed 0's second.
  assert b[:27] != a[27:54]


def test_exact_resume_from_state():
  make = lambda: data.prompt_iterator(SOURCE, 4, seed=1, process_index=1, process_count=2)
  expected = _ids(make(), 20)
  for cut in (0, 3, 4, 6, 7, 13, 19):  # before, at and after the batches that straddle epochs
    it = make()
    _ids(it, cut)
    state = json.loads(json.dumps(it.get_state()))  # through JSON, as the checkpoint stores it
    fresh = make()
    _ids(fresh, 2)  # restoring also rewinds an iterator that moved on
    fresh.set_state(state)
    assert _ids(fresh, 20 - cut) == expected[cut:]


def test_iterator_errors():
  it = data.prompt_iterator(SOURCE, 4, seed=1, process_index=0, process_count=1)
  state = it.get_state()
  with pytest.raises(ValueError, match="saved state has seed=1, this iterator seed=2"):
    data.prompt_iterator(SOURCE, 4, seed=2, process_index=0, process_count=1).set_state(state)
  with pytest.raises(ValueError, match="batch_size=4, this iterator batch_size=2"):
    data.prompt_iterator(SOURCE, 2, seed=1, process_index=0, process_count=1).set_state(state)
  with pytest.raises(ValueError, match="num_examples=27, this iterator num_examples=20"):
    data.prompt_iterator(SOURCE[:20], 4, seed=1, process_index=0, process_count=1).set_state(state)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    data.prompt_iterator(SOURCE, 14, seed=0, process_index=0, process_count=2)
  with pytest.raises(ValueError, match="process_index 2 not in"):
    data.prompt_iterator(SOURCE, 4, seed=0, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    data.prompt_iterator(SOURCE, 0, seed=0, process_index=0, process_count=1)


def test_orbax_save_restore(tmp_path):
  make = lambda: data.prompt_iterator(SOURCE, 4, seed=5, process_index=0, process_count=1)
  expected = _ids(make(), 12)
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                         enable_async_checkpointing=True)
  it = make()
  _ids(it, 5)
  with ocp.CheckpointManager(str(tmp_path), options=options) as mngr:
    mngr.save(5, args=ocp.args.Composite(
        tree=ocp.args.StandardSave({"w": np.arange(3.0)}), meta=ocp.args.JsonSave({"rl_step": 5}),
        data=data.iterator_save_args(it)))
    _ids(it, 2)  # the loop goes on while orbax writes: the checkpoint keeps step 5's position
    mngr.wait_until_finished()
  saved = json.loads((tmp_path / "5" / "data" / "process_0-of-1.json").read_text())
  assert saved["grain"] == {"next_index": 5}
  with ocp.CheckpointManager(str(tmp_path), options=options) as mngr:
    fresh = make()
    out = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
        meta=ocp.args.JsonRestore(), data=data.iterator_restore_args(fresh)))
  assert out.data is fresh and out.meta == {"rl_step": 5}
  assert _ids(fresh, 7) == expected[5:]  # across the epoch boundary inside batch 6


def test_tfds_source_through_iterator(maze_splits):
  it = data.prompt_iterator(maze_splits.train, batch_size=16, seed=0)  # jax's process layout
  batch = next(it)
  assert len(batch) == 16 and all(type(e["grid"]) is str for e in batch)
  rewards, _ = tasks.verify_batch(tasks.get("maze"), [e["solution"] for e in batch], batch)
  assert rewards.tolist() == [1.0] * 16
  warm = next(data.warmstart_iterator(maze_splits.train, batch_size=8, seed=0))
  assert len(warm) == 8 and warm != batch[:8]
