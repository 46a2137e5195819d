"""The data path: TFDS array_record builds of each task's examples, read through Grain.

    train, evals = data.load(config.task.name, config.data)
    it = data.prompt_iterator(train, batch_size=B, seed=config.seed)   # this process's share
    ws = data.warmstart_iterator(train, batch_size=32, seed=config.seed)
    ocp.args.Composite(..., data=data.iterator_save_args(it))           # into a checkpoint
"""

from rlvr_jax.data.builders import (TASKS, RlvrArith, RlvrCountdown, RlvrMath, RlvrMaze,
                                    countdown_splits, for_task)
from rlvr_jax.data.iterators import (PromptIterator, iterator_restore_args, iterator_save_args,
                                     prompt_iterator, warmstart_iterator)
from rlvr_jax.data.sources import Examples, Splits, data_dir, load, to_example

__all__ = ["TASKS", "Examples", "PromptIterator", "RlvrArith", "RlvrCountdown", "RlvrMath",
           "RlvrMaze", "Splits", "countdown_splits", "data_dir", "for_task",
           "iterator_restore_args", "iterator_save_args", "load", "prompt_iterator", "to_example",
           "warmstart_iterator"]
