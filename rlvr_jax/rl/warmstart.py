"""Supervised warm start: teach a fresh policy the answer format (and some skill).

With `warmstart.synthesis_frac` > 0 a part of each batch teaches SvS's synthesis
format (shown a solution, write its problem; rl/svs.py). For the tiny character policy on mazes, a few hundred steps of next-token
cross-entropy on `prompt -> reference solution` (the task's BFS path) bring
pass@1 into the range where RL has signal (neither 0 nor 1). Runs before RL on
a fresh workdir only; its params are saved under `<workdir>/warmstart` so
several RL runs can start from the same warm-started policy.
"""

import functools
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from jax.sharding import NamedSharding, PartitionSpec

from rlvr_jax import data as data_lib, multihost, sampling
from rlvr_jax.rl import objectives, optim, rollout, svs, update as update_lib
from rlvr_jax.rl.batch import TrainBatch


def sft_batch(task: Any, tokenizer: Any, examples: list, *, target_field: str, chat: bool,
              max_prompt_len: int, max_new_tokens: int, pad_id: int, eos_id: int,
              synthesis_rows: int = 0, synthesis_template: str = "") -> TrainBatch:
  """Rows prompt + target + EOS, the target (and EOS) as loss tokens.

  The first `synthesis_rows` rows teach SvS's other format instead (rl/svs.py): shown the
  reference solution in `synthesis_template`, write the example's problem in a ```text block.
  """
  prompts, targets = [], []
  for i, ex in enumerate(examples):
    if i < synthesis_rows:
      if "problem" not in ex:
        raise ValueError(f"warmstart.synthesis_frac needs examples with a 'problem' field; "
                         f"task {task.name!r} gives {sorted(ex)}")
      prompts.append(svs.synthesis_prompt(synthesis_template, str(ex[target_field])))
      targets.append(svs.fenced(ex["problem"]))
    else:
      prompts.append(rollout.prompt(task, ex, chat))
      targets.append(str(ex[target_field]))
  prompt_BxP, pmask_BxP = sampling.text.encode_prompts(tokenizer, prompts, chat=chat,
                                                       pad_id=pad_id, max_len=max_prompt_len)
  b = len(examples)
  resp_BxT = np.full((b, max_new_tokens), pad_id, np.int32)
  rmask_BxT = np.zeros((b, max_new_tokens), np.int32)
  for i, target in enumerate(targets):
    tgt = list(tokenizer.encode(target)) + [eos_id]
    if len(tgt) > max_new_tokens:
      raise ValueError(f"warm-start target of {len(tgt)} tokens exceeds max_new_tokens="
                       f"{max_new_tokens}")
    resp_BxT[i, :len(tgt)] = tgt
    rmask_BxT[i, :len(tgt)] = 1
  return TrainBatch(tokens_RxS=np.concatenate([prompt_BxP, resp_BxT], 1),
                    attn_mask_RxS=np.concatenate([pmask_BxP, rmask_BxT], 1),
                    loss_mask_RxT=rmask_BxT.astype(np.float32))


def run(params: Any, cfg: Any, task: Any, tokenizer: Any, train: list, config: ml_collections.ConfigDict,
        mesh: Any, batch_sharding: NamedSharding, writer: Any, stop: Any = False
        ) -> tuple[Any, bool]:
  """(params, finished): `config.warmstart.steps` updates of AdamW on SFT.

  A set `stop` (SIGTERM) ends it at the next step boundary with finished False;
  the warm start keeps no optimizer checkpoint, so it starts over on resume.
  """
  ws = config.warmstart
  optimizer = optim.make_optimizer(ws.optimizer)
  loss_fn = functools.partial(objectives.sft_loss_fn, cfg=cfg, chunk_size=config.rl.logprob_chunk)
  state = optim.init_state(params, optimizer, mesh)
  state_sh = jax.tree.map(lambda x: x.sharding, state)
  fn = jax.jit(functools.partial(update_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                 num_micro=ws.micro_batches, agg="token-mean"),
               in_shardings=(state_sh, batch_sharding),
               out_shardings=(state_sh, NamedSharding(mesh, PartitionSpec())), donate_argnums=0)
  stream = data_lib.warmstart_iterator(train, ws.batch_size, config.seed)
  chat = config.model.chat
  if not 0.0 <= ws.synthesis_frac <= 1.0:
    raise ValueError(f"warmstart.synthesis_frac={ws.synthesis_frac} must be within [0, 1]")
  synthesis_rows = int(round(ws.synthesis_frac * ws.batch_size))
  syn_len = config.svs.max_synthesis_prompt_len or config.rl.max_prompt_len + config.rl.max_new_tokens
  bar = tqdm.tqdm(total=ws.steps, desc="warm start", disable=not writer.progress,
                  dynamic_ncols=True, leave=False)
  for i in range(ws.steps):
    if stop:
      bar.close()
      return state["params"], False
    batch = sft_batch(task, tokenizer, next(stream), target_field=ws.target_field, chat=chat,
                      max_prompt_len=syn_len if synthesis_rows else config.rl.max_prompt_len,
                      max_new_tokens=config.rl.max_new_tokens, pad_id=cfg.pad_id,
                      eos_id=cfg.eos_ids[0], synthesis_rows=synthesis_rows,
                      synthesis_template=config.svs.prompt or svs.PROMPT)
    state, m = fn(state, multihost.from_host_replica(batch, batch_sharding))  # same on every process
    if (i + 1) % max(1, ws.log_every) == 0 or i + 1 == ws.steps:
      rec = writer.write(i + 1, {k: m[k] for k in ("loss", "entropy", "grad_norm")},
                         phase="warmstart")
      bar.set_postfix(loss=f"{rec['loss']:.3g}", refresh=False)
    bar.update(1)
  bar.close()
  return state["params"], True


def save_params(params: Any, directory: str) -> None:
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.abspath(directory), params, force=True)
  multihost.sync("warmstart_saved")
  # Written once the save has completed, so a save cut off midway never counts.
  if multihost.is_lead():
    with open(_done_marker(directory), "w") as f:
      f.write("done\n")
  multihost.sync("warmstart_marked")


def saved(directory: str) -> bool:
  """True when `save_params` finished writing `directory`."""
  return os.path.exists(_done_marker(directory))


def _done_marker(directory: str) -> str:
  return os.path.abspath(directory).rstrip("/") + ".done"


def load_params(directory: str, abstract_params: Any) -> Any:
  if not os.path.isdir(directory):
    raise ValueError(f"warmstart.load_dir {directory!r} is not a directory")
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(os.path.abspath(directory), abstract_params)
