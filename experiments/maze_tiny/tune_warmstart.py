"""Measures eval pass@k along the supervised warm start of `configs/maze_tiny.py`.

    python experiments/maze_tiny/tune_warmstart.py --arg=warmstart_steps=400 --every=100 \
        --save_dir=/tmp/ws   # params at each evaluation, usable as run.py --warmstart_dir

Used to pick the warm-start length so that pass@1 starts between 10% and 50%.
Prints one line per evaluation: warm-start step, loss, pass@1 / pass@8 per size.
"""

import argparse
import functools
import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from rlvr_jax import sharding, tasks  # noqa: E402
from rlvr_jax import data as data_lib  # noqa: E402
from rlvr_jax.rl import objectives, optim, stats, train, warmstart  # noqa: E402
from rlvr_jax.rl import update as update_lib  # noqa: E402


def load_config(arg: str):
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "maze_tiny.py")
  spec = importlib.util.spec_from_file_location("maze_tiny_config", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--arg", default="")
  p.add_argument("--every", type=int, default=100)
  p.add_argument("--eval_from", type=int, default=0, help="no evaluation before this step")
  p.add_argument("--save_dir", default="", help="save params at each evaluation to <dir>/step<N>")
  a = p.parse_args()
  config = load_config(a.arg)
  mesh = sharding.make_mesh(config.mesh, None)
  rows_sh = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
  task = tasks.get(config.task.name)
  train_ex, eval_sets = data_lib.load(config.task.name, config.data)
  cfg, params, tok = train.load_policy(config, mesh, None)
  ws = config.warmstart
  opt = optim.make_optimizer(ws.optimizer)
  loss_fn = functools.partial(objectives.sft_loss_fn, cfg=cfg, chunk_size=config.rl.logprob_chunk)
  with sharding.use_mesh(mesh, None):
    state = optim.init_state(params, opt, mesh)
    fn = jax.jit(functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=opt,
                                   num_micro=ws.micro_batches), donate_argnums=0)
    stream = data_lib.warmstart_iterator(train_ex, ws.batch_size, config.seed)
    t0 = time.time()
    for i in range(ws.steps):
      batch = warmstart.sft_batch(task, tok, next(stream),
                                  target_field=ws.target_field, chat=False,
                                  max_prompt_len=config.rl.max_prompt_len,
                                  max_new_tokens=config.rl.max_new_tokens, pad_id=cfg.pad_id,
                                  eos_id=cfg.eos_ids[0])
      state, m = fn(state, jax.device_put(batch, rows_sh))
      if ((i + 1) % a.every == 0 and i + 1 >= a.eval_from) or i + 1 == ws.steps:
        if a.save_dir:
          warmstart.save_params(state["params"], os.path.join(a.save_dir, f"step{i + 1}"))
        ev = stats.evaluate(state["params"], cfg, task, tok, eval_sets, jax.random.PRNGKey(i),
                            config.eval, config.rl, False, mesh, None)
        sizes = sorted(k.split("/")[0] for k in ev if k.endswith("/pass@1"))
        per = " ".join(f"{s}:{ev[s + '/pass@1']:.2f}/{ev[s + '/pass@8']:.2f}" for s in sizes)
        print(f"ws_step={i + 1} loss={float(m['loss']):.3f} t={time.time() - t0:.0f}s "
              f"pass@1={ev['pass@1']:.3f} pass@8={ev['pass@8']:.3f} [{per}]", flush=True)


if __name__ == "__main__":
  main()
