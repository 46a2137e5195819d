"""TFDS builders for the generated tasks, written as array_record (no TensorFlow needed).

    builder = data.builder('rlvr_maze', data_dir, config='tiny')   # or a MazeConfig(...)
    builder.download_and_prepare()
    source = tfds.data_source('rlvr_maze/tiny', data_dir=data_dir, split='train')

The records are a pure function of the config (seed included): maze splits
come from `maze.make_splits` (train/test disjoint by grid), countdown from
`countdown.generate` with one RNG stream a split. Records come back as dicts
of bytes / numpy values; `to_example` turns one into the task's plain dict.
"""

import abc
import dataclasses
from typing import Any

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from rlvr_jax.tasks import countdown, maze


# TFDS derives a builder's source path through the optional `importlib_resources`
# package for builders inside packages; giving it directly avoids that dependency.
_CODE_PATH = epath.Path(__file__)


@dataclasses.dataclass(eq=False)
class MazeConfig(tfds.core.BuilderConfig):
  num_train: int = 20_000
  num_test: int = 1_600  # 200 a test size (7..21)
  seed: int = 0
  loop_prob: float = 0.1


@dataclasses.dataclass(eq=False)
class CountdownConfig(tfds.core.BuilderConfig):
  num_train: int = 20_000
  num_test: int = 1_000
  seed: int = 0
  min_numbers: int = 3
  max_numbers: int = 4


class _TaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What the task builders share: version, source path, and one record a row of each split.

  A builder states its features (`_features`) and its splits' rows (`_split_rows`, from
  `self.builder_config`); the record keys are the row indices.
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
                                 features=tfds.features.FeaturesDict(self._features()))

  def _split_generators(self, dl_manager: Any) -> dict:
    return {name: self._generate_examples(rows) for name, rows in self._split_rows().items()}

  def _generate_examples(self, rows: list[dict]):
    for i, row in enumerate(rows):
      yield i, row


class RlvrMaze(_TaskBuilder):
  """The Maze task: train sizes 9..15, test sizes 7..21, no grid in both splits."""

  name = "rlvr_maze"
  BUILDER_CONFIGS = [MazeConfig(name="default"),
                     MazeConfig(name="tiny", num_train=64, num_test=16)]

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"grid": tfds.features.Text(), "size": tfds.features.Scalar(np.int32),
            "solution": tfds.features.Text()}

  def _split_rows(self) -> dict[str, list[dict]]:
    c = self.builder_config
    return maze.make_splits(c.num_train, c.num_test, c.seed, c.loop_prob)


class RlvrCountdown(_TaskBuilder):
  """Countdown problems: 3-4 numbers in 1..100, a reachable target in 1..1000."""

  name = "rlvr_countdown"
  BUILDER_CONFIGS = [CountdownConfig(name="default"),
                     CountdownConfig(name="tiny", num_train=64, num_test=16)]

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"numbers": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "target": tfds.features.Scalar(np.int32), "solution": tfds.features.Text()}

  def _split_rows(self) -> dict[str, list[dict]]:
    c = self.builder_config
    # One RNG stream a split, so the test set does not depend on num_train.
    return {name: countdown.generate(num, np.random.default_rng([c.seed, split_id]),
                                     (c.min_numbers, c.max_numbers))
            for split_id, (name, num) in enumerate((("train", c.num_train),
                                                    ("test", c.num_test)))}


_BUILDERS = {"rlvr_maze": RlvrMaze, "rlvr_countdown": RlvrCountdown}


def builder(name: str, data_dir: str, config: str | tfds.core.BuilderConfig = "default"
            ) -> tfds.core.GeneratorBasedBuilder:
  """An array_record builder of `name` ('rlvr_maze' or 'rlvr_countdown') under `data_dir`."""
  if name not in _BUILDERS:
    raise ValueError(f"unknown dataset {name!r}; known: {sorted(_BUILDERS)}")
  return _BUILDERS[name](data_dir=data_dir, config=config, file_format="array_record")


def to_example(record: dict) -> dict:
  """A decoded TFDS record as plain Python values (str, int, list[int])."""
  out = {}
  for key, value in record.items():
    if isinstance(value, bytes):
      out[key] = value.decode("utf-8")
    elif isinstance(value, np.ndarray) and value.ndim > 0:
      out[key] = [int(v) for v in value]
    elif isinstance(value, (np.integer, int)):
      out[key] = int(value)
    else:
      out[key] = value.item() if isinstance(value, np.generic) else value
  return out
