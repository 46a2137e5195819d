"""Data: TFDS array_record builders for the generated tasks and the prompt pipeline."""

from rlvr_jax.data.builders import (CountdownConfig, MazeConfig, RlvrCountdown, RlvrMaze,
                                    builder, to_example)
from rlvr_jax.data.pipeline import PromptBatches, repeat_examples

__all__ = ["CountdownConfig", "MazeConfig", "PromptBatches", "RlvrCountdown", "RlvrMaze",
           "builder", "repeat_examples", "to_example"]
