"""TFDS builders of each task's examples, written as array_record (no TensorFlow needed).

    b = builders.for_task('maze', config.data, data_dir)   # a builder named by the config
    b.download_and_prepare()                               # a no-op once built
    source = b.as_data_source(split='train')               # what tfds.data_source returns

A builder's records are a pure function of its BuilderConfig, and the
config's name is a hash of everything the records depend on, so two configs
never share files and the same config reuses them:
- maze / countdown / arith: the split kwargs (`config.data.splits`) and the
  source of the task module that generates them (an edited generator builds
  anew); maze rows are `maze.make_splits(**splits)`, arith rows
  `arith.make_splits(**splits)`, countdown rows come from `countdown_splits`,
  the same examples the trainer drew before TFDS.
- math: the bytes of the train and eval jsonl files (a changed file builds
  anew; the same content under another path reuses the build).
Records keep the generator's order (`disable_shuffling`), so an eval set
capped at its first n examples is the same n examples as before.
"""

import abc
import dataclasses
import hashlib
import inspect
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from rlvr_jax.tasks import arith, countdown, math_task, maze

# TFDS derives a builder's source path through the optional `importlib_resources`
# package for builders inside packages; giving it directly avoids that dependency.
_CODE_PATH = epath.Path(__file__)
# Eval set names become TFDS split names (file names) and metric names.
_SET_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _digest(obj: Any) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _code_digest(*modules: Any) -> str:
  """Hash of the source of the modules that make a builder's records (this one included)."""
  h = hashlib.sha256()
  for module in (sys.modules[__name__], *modules):
    h.update(inspect.getsource(module).encode())
  return h.hexdigest()


@dataclasses.dataclass(eq=False)
class SplitsConfig(tfds.core.BuilderConfig):
  """Generated tasks: the keyword arguments of the task's split function, as JSON."""
  kwargs_json: str = "{}"


@dataclasses.dataclass(eq=False)
class MathConfig(tfds.core.BuilderConfig):
  """Math: the train file and the eval sets as a JSON list of [name, path]."""
  train_file: str = ""
  eval_files_json: str = "[]"


class _TaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What the task builders share: version, source path, one record a row of each split.

  A builder states its features (`_features`) and its splits' rows (`_split_rows`, from
  `self.builder_config`); records keep the row order.
  """

  VERSION = tfds.core.Version("1.0.0")
  code_path = _CODE_PATH

  @abc.abstractmethod
  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    """The record's fields."""

  @abc.abstractmethod
  def _split_rows(self) -> dict[str, list[dict]]:
    """Split name -> its rows (dicts with the `_features` keys)."""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self,
                                 features=tfds.features.FeaturesDict(self._features()),
                                 disable_shuffling=True)

  def _split_generators(self, dl_manager: Any) -> dict:
    return {name: self._generate_examples(rows) for name, rows in self._split_rows().items()}

  def _generate_examples(self, rows: list[dict]):
    for i, row in enumerate(rows):
      yield i, row


def countdown_splits(num_train: int, num_test: int, seed: int, **kwargs: Any) -> dict[str, list]:
  """Countdown train / test sets from `countdown.generate`: test first (RNG stream [seed, 0]),
  then train examples (stream [seed, 1]) whose numbers and target repeat a test one are dropped."""
  test = countdown.generate(num_test, np.random.default_rng([seed, 0]), **kwargs)
  key = lambda ex: repr(sorted((k, v) for k, v in ex.items() if k != "solution"))
  seen = {key(ex) for ex in test}
  train = [ex for ex in countdown.generate(2 * num_train, np.random.default_rng([seed, 1]), **kwargs)
           if key(ex) not in seen][:num_train]
  if len(train) < num_train:
    raise ValueError(f"could only draw {len(train)} distinct train examples of {num_train}")
  return {"train": train, "test": test}


class _GeneratedBuilder(_TaskBuilder, skip_registration=True):
  """A generated task: `_make_splits(**kwargs)` gives {'train': rows, 'test': rows}."""

  _task_module: Any = None  # the module whose code generates the rows

  @staticmethod
  @abc.abstractmethod
  def _make_splits(**kwargs: Any) -> dict[str, list[dict]]:
    """The task's split function."""

  def _split_rows(self) -> dict[str, list[dict]]:
    # JSON has no tuples; the split functions take tuples (sizes, number ranges).
    kwargs = {k: tuple(v) if isinstance(v, list) else v
              for k, v in json.loads(self.builder_config.kwargs_json).items()}
    splits = self._make_splits(**kwargs)
    return {"train": list(splits["train"]), "test": list(splits["test"])}


class RlvrMaze(_GeneratedBuilder):
  """The Maze task: `maze.make_splits(**config.data.splits)`, no grid in both splits."""

  name = "rlvr_maze"
  _task_module = maze
  _make_splits = staticmethod(maze.make_splits)

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"grid": tfds.features.Text(), "size": tfds.features.Scalar(np.int32),
            "solution": tfds.features.Text()}


class RlvrCountdown(_GeneratedBuilder):
  """Countdown problems: `countdown_splits(**config.data.splits)`."""

  name = "rlvr_countdown"
  _task_module = countdown
  _make_splits = staticmethod(countdown_splits)

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"numbers": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "target": tfds.features.Scalar(np.int32), "solution": tfds.features.Text()}


class RlvrArith(_GeneratedBuilder):
  """Single-digit sums and differences: `arith.make_splits(**config.data.splits)`."""

  name = "rlvr_arith"
  _task_module = arith
  _make_splits = staticmethod(arith.make_splits)

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"problem": tfds.features.Text(), "answer": tfds.features.Text(),
            "solution": tfds.features.Text(), "operands": tfds.features.Scalar(np.int32)}


class RlvrMath(_TaskBuilder):
  """Math problems from jsonl files: split 'train' and one split an eval set."""

  name = "rlvr_math"

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"problem": tfds.features.Text(), "answer": tfds.features.Text()}

  def _split_rows(self) -> dict[str, list[dict]]:
    c = self.builder_config
    rows = {"train": math_task.load_jsonl(c.train_file)}
    for name, path in json.loads(c.eval_files_json):
      rows[name] = math_task.load_jsonl(path)
    return rows


def _file_digest(path: str, key: str) -> str:
  if not path:
    raise ValueError(f"the math task needs {key} (a jsonl file of 'problem' and 'answer' fields)")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{key}: no such file: {path}")
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def eval_files(spec: str | Mapping[str, str]) -> list[tuple[str, str]]:
  """[(name, path)] of `config.data.eval_files`: a mapping or 'name=path,name=path'."""
  if isinstance(spec, ml_collections.ConfigDict):
    spec = spec.to_dict()
  if isinstance(spec, str):
    pairs = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
      name, sep, path = item.partition("=")
      if not sep or not path.strip():
        raise ValueError(f"data.eval_files: {item!r} is not name=path")
      pairs.append((name.strip(), path.strip()))
  else:
    pairs = list(spec.items())
  names = [name for name, _ in pairs]
  for name in names:
    if not _SET_NAME.match(name) or name.lower() in ("train", "all"):
      raise ValueError(f"data.eval_files: eval set name {name!r} must be letters, digits and _ "
                       "(and not 'train' or 'all')")
  if len(set(names)) != len(names):
    raise ValueError(f"data.eval_files: repeated eval set name in {names}")
  return [(name, os.path.abspath(os.path.expanduser(path))) for name, path in pairs]


_GENERATED = {"maze": RlvrMaze, "countdown": RlvrCountdown, "arith": RlvrArith}
TASKS = (*_GENERATED, "math")


def for_task(task_name: str, data_cfg: ml_collections.ConfigDict, data_dir: str
             ) -> tfds.core.GeneratorBasedBuilder:
  """The array_record builder of `task_name`'s examples under `data_dir`, named by the config."""
  train_file = data_cfg.get("train_file", "")
  evals = eval_files(data_cfg.get("eval_files", ""))
  if task_name == "math":
    train_file = os.path.abspath(os.path.expanduser(train_file)) if train_file else ""
    content = {"code": _code_digest(math_task), "train": _file_digest(train_file, "data.train_file"),
               "eval": [(name, _file_digest(path, f"data.eval_files[{name!r}]"))
                        for name, path in evals]}
    config = MathConfig(name=_digest(content), train_file=train_file,
                        eval_files_json=json.dumps(evals),
                        description=f"train {train_file}; eval {dict(evals)}")
    return RlvrMath(data_dir=data_dir, config=config, file_format="array_record")
  if task_name not in _GENERATED:
    raise ValueError(f"task {task_name!r} has no dataset builder; known: {list(TASKS)}")
  if train_file or evals:
    raise ValueError(f"data.train_file / data.eval_files are for the math task, not {task_name!r}"
                     " (its examples come from data.splits)")
  cls = _GENERATED[task_name]
  kwargs = data_cfg.splits.to_dict() if isinstance(data_cfg.splits, ml_collections.ConfigDict) \
      else dict(data_cfg.splits)
  kwargs_json = json.dumps(kwargs, sort_keys=True)  # tuples become lists
  # The generating code is part of the name: an edited generator must not reuse old files.
  config = SplitsConfig(name=_digest({"kwargs": json.loads(kwargs_json),
                                      "code": _code_digest(cls._task_module)}),
                        kwargs_json=kwargs_json, description=f"splits {kwargs_json}")
  return cls(data_dir=data_dir, config=config, file_format="array_record")
