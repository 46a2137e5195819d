"""Host-side metrics of a rollout batch and the periodic pass@k evaluation.

Shape letters: B problems, N rollouts a problem, R = B * N rows, T tokens.
"""

import json
import os
import time
from typing import Any

import jax
import numpy as np

from rlvr_jax import metrics, multihost
from rlvr_jax.rl import batch as batch_lib, rollout


def batch_metrics(made: batch_lib.MadeBatch, task: Any
                  ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Scalars of one RL batch (over every process's rollouts) and histograms for TensorBoard.

  Rewards, accuracy and pass@k describe every sampled rollout; what the update
  saw is described by the loss mask: `loss_frac` (valid rollouts in the loss),
  and why the others left it: `gated_frac` (bbg), `easy_frac`
  (easy_threshold), `high_masked_frac` (mask_high_success), `leftover_frac`
  (passk_full's N mod k), each a fraction of problems (left-overs: of valid
  rollouts); `bbg_weight_mean` over kept problems.
  Each process reduces its rollouts to per-problem and per-row arrays (answers
  are texts, read where they were verified); those are gathered and reduced.
  """
  ro, info = made.rollouts, made.info
  b, n = ro.rewards_BxN.shape
  valid_BxN = np.asarray(made.valid_BxN, bool)
  answers = [[task.normalized_answer(ro.responses[i * n + j]) for j in range(n)]
             for i in range(b)]
  div_B, wrong_B = metrics.answer_diversity(answers, ro.rewards_BxN, valid_BxN)
  in_loss_BxN = np.asarray(info["loss_mask_BxN"], bool)
  mask_RxT = ro.mask_RxT.astype(bool)
  g = multihost.gather(dict(
      r_BxN=ro.rewards_BxN, valid_BxN=valid_BxN, in_loss_BxN=in_loss_BxN,
      varied_B=batch_lib.varied_groups(ro, valid_BxN),
      gated_B=np.asarray(info.get("gated", np.zeros(b, bool)), bool),
      easy_B=np.asarray(info["easy"], bool),
      high_B=np.asarray(info.get("high_masked", np.zeros(b, bool)), bool),
      weight_B=np.asarray(info.get("weight", np.full(b, np.nan)), np.float64),
      div_B=div_B, wrong_B=wrong_B, adv_BxN=np.asarray(made.adv_BxN),
      eta_B=np.asarray(metrics.eta(made.adv_BxN, in_loss_BxN)),
      lengths_R=ro.lengths_R.astype(np.float64), finished_R=ro.finished_R,
      entropy_sum_R=(ro.entropy_RxT.astype(np.float64) * mask_RxT).sum(-1),
      tokens_R=mask_RxT.sum(-1)))
  r_BxN, valid_BxN, in_loss_BxN = g["r_BxN"], g["valid_BxN"], g["in_loss_BxN"]
  gated_B, easy_B, high_B = g["gated_B"], g["easy_B"], g["high_B"]
  c_B = (r_BxN >= 1.0).sum(-1)
  acc_B = ((r_BxN >= 1.0) & valid_BxN).sum(-1) / np.maximum(valid_BxN.sum(-1), 1)
  leftover_BxN = valid_BxN & ~in_loss_BxN & ~(gated_B | easy_B | high_B)[:, None]
  out = {
      "reward_mean": float(r_BxN.mean()),
      "acc_mean": float(acc_B.mean()),
      "zero_var_frac": float(np.mean(~g["varied_B"])),
      "all_correct_frac": float(np.mean(c_B == n)),
      "all_wrong_frac": float(np.mean(c_B == 0)),
      "valid_frac": float(valid_BxN.mean()),
      "loss_frac": float(in_loss_BxN.sum() / max(valid_BxN.sum(), 1)),
      "gated_frac": float(gated_B.mean()),
      "easy_frac": float(easy_B.mean()),
      "high_masked_frac": float(high_B.mean()),
      "leftover_frac": float(leftover_BxN.sum() / max(valid_BxN.sum(), 1)),
  }
  if "weight" in info and (~gated_B).any():
    out["bbg_weight_mean"] = float(g["weight_B"][~gated_B].mean())
  for k, v in metrics.pass_at_k_curve(np.full(len(c_B), n), c_B).items():
    out[f"batch_pass@{k}"] = v
  tokens = g["tokens_R"].sum()
  out["entropy_rollouts"] = float(g["entropy_sum_R"].sum() / tokens) if tokens else 0.0
  out["response_len_mean"] = float(g["lengths_R"].mean())
  out["response_len_max"] = float(g["lengths_R"].max())
  out["rollout_tokens"] = float(g["lengths_R"].sum())
  out["truncation_rate"] = float(1.0 - g["finished_R"].mean())
  wrong_B = g["wrong_B"]
  out["wrong_answer_diversity"] = (float(g["div_B"][wrong_B > 0].mean()) if (wrong_B > 0).any()
                                   else 0.0)
  out["eta_mean"] = float(g["eta_B"].mean())
  adv_in = np.abs(g["adv_BxN"])[in_loss_BxN]
  out["adv_abs_mean"] = float(adv_in.mean()) if adv_in.size else 0.0
  return out, {"acc_per_problem": acc_B}


def global_counts(counts: dict[str, float]) -> dict[str, float]:
  """`make_batch`'s counts over every process: groups and verifier failures add up, the
  times are the slowest process's (the step waits for it)."""
  summed = ("dyn_filled_groups", "verify_timeouts", "verify_errors")
  vals = multihost.gather({k: np.asarray([v], np.float64) for k, v in counts.items()})
  return {k: float(v.sum() if k in summed else v.max()) for k, v in vals.items()}


def check_eval(eval_cfg: Any) -> None:
  """ValueError for evaluation settings that cannot work (train.validate calls it)."""
  n, chunk = eval_cfg.num_samples, eval_cfg.get("sample_chunk", 0)
  if n < 1:
    raise ValueError(f"eval.num_samples must be >= 1, got {n}")
  if chunk < 0 or (chunk and n % chunk):
    raise ValueError(f"eval.sample_chunk={chunk} must be 0 (all at once) or divide "
                     f"eval.num_samples={n}")
  if eval_cfg.get("bootstrap", 0) < 0:
    raise ValueError(f"eval.bootstrap must be >= 0 (0: no interval), got {eval_cfg.bootstrap}")


def eval_correct_counts(params: Any, cfg: Any, task: Any, tokenizer: Any,
                        eval_sets: dict[str, list], key: jax.Array, eval_cfg: Any, rl_cfg: Any,
                        chat: bool, mesh: Any = None, rules: Any = None) -> dict[str, np.ndarray]:
  """Each eval set's problems' correct counts out of `eval.num_samples`, every process's problems.

  Problems go `eval.batch_prompts` at a time (each process samples its block); their
  samples `eval.sample_chunk` at a time (0: all at once), each chunk its own key, so the
  sampler holds batch_prompts x sample_chunk rows whatever num_samples is (n = 256 on CPU).
  """
  check_eval(eval_cfg)
  n = eval_cfg.num_samples
  chunk = eval_cfg.get("sample_chunk", 0) or n
  g, procs, p = eval_cfg.batch_prompts, jax.process_count(), jax.process_index()
  if g % procs:
    raise ValueError(f"eval.batch_prompts={g} does not split over {procs} processes")
  out: dict[str, np.ndarray] = {}
  for s, (name, examples) in enumerate(sorted(eval_sets.items())):
    c_list = []
    for i in range(0, len(examples), g):
      # Every chunk is G problems (the last one padded with copies of its last problem,
      # dropped from the counts): one compiled shape, and each process samples its block.
      chunk_ex = examples[i:i + g]
      real = len(chunk_ex)
      chunk_ex = chunk_ex + [chunk_ex[-1]] * (g - real)
      k = jax.random.fold_in(jax.random.fold_in(key, s), i)
      c_B = 0
      for j in range(n // chunk):
        # All samples at once keep the key of an unchunked evaluation (same draws as before).
        kj = k if chunk == n else jax.random.fold_in(k, j)
        ro = rollout.generate(params, cfg, task, tokenizer,
                              chunk_ex[p * g // procs:(p + 1) * g // procs], kj,
                              num_samples=chunk, max_prompt_len=rl_cfg.max_prompt_len,
                              max_new_tokens=rl_cfg.max_new_tokens,
                              temperature=eval_cfg.temperature, top_p=eval_cfg.top_p, chat=chat,
                              mesh=mesh, rules=rules)
        c_B = c_B + (ro.rewards_BxN >= 1.0).sum(-1)
      c_list.append(multihost.gather(np.asarray(c_B))[:real])
    out[name] = np.concatenate(c_list)
  return out


def evaluate(params: Any, cfg: Any, task: Any, tokenizer: Any, eval_sets: dict[str, list],
             key: jax.Array, eval_cfg: Any, rl_cfg: Any, chat: bool, mesh: Any = None,
             rules: Any = None) -> dict[str, float]:
  """pass@k (k = 1, 2, 4, ..., n) per eval set and averaged over sets, with 95 % bootstrap
  intervals over problems (`pass@k_lo`, `pass@k_hi`; `eval.bootstrap` replicates, 0: none;
  metrics.pass_at_k_intervals), from `eval_correct_counts`."""
  t0 = time.perf_counter()
  correct = eval_correct_counts(params, cfg, task, tokenizer, eval_sets, key, eval_cfg, rl_cfg,
                                chat, mesh, rules)
  out = metrics.pass_at_k_intervals(eval_cfg.num_samples, correct,
                                    num_boot=eval_cfg.get("bootstrap", 0))
  out["time_eval"] = time.perf_counter() - t0
  return out


BASE_EVAL = "base_eval.json"


def keep_base_eval(workdir: str, record: dict[str, Any], enabled: bool = True) -> None:
  """Keeps the base policy's evaluation (RL step 0, `evaluate`'s metrics) as
  `<workdir>/base_eval.json`, the curve every later one is plotted against (rlvr_jax.plot);
  an existing one is kept. `enabled` False (not the lead process) does nothing."""
  path = os.path.join(workdir, BASE_EVAL)
  if enabled and not os.path.exists(path):
    with open(path, "w", encoding="utf-8") as f:
      json.dump({**dict(record), "step": 0, "phase": "eval"}, f)


def import_base_eval(source: str, workdir: str, enabled: bool = True) -> None:
  """Copies a base evaluation into `workdir` (`eval.base_curve`; '' does nothing): `source` is
  a base_eval.json or a workdir holding one, or a workdir whose metrics.jsonl has an eval at
  step 0 (a shared warm start's)."""
  if not source or not enabled or os.path.exists(os.path.join(workdir, BASE_EVAL)):
    return
  path = os.path.join(source, BASE_EVAL) if os.path.isdir(source) else source
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  else:
    from rlvr_jax.rl import logger
    jsonl = os.path.join(source, "metrics.jsonl")
    found = ([r for r in logger.read_jsonl(jsonl) if r["phase"] == "eval" and r["step"] == 0]
             if os.path.isfile(jsonl) else [])
    if not found:
      raise ValueError(f"eval.base_curve={source!r}: no {BASE_EVAL} and no step-0 eval in "
                       "its metrics.jsonl")
    record = {k: v for k, v in found[-1].items() if k not in ("step", "phase")}
  keep_base_eval(workdir, record)
