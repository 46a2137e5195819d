"""Host-side metrics of a rollout batch and the periodic pass@k evaluation.

Shape letters: B problems, N rollouts a problem, R = B * N rows, T tokens.
"""

import time
from typing import Any

import jax
import numpy as np

from rlvr_jax import metrics
from rlvr_jax.rl import batch as batch_lib, rollout


def batch_metrics(made: batch_lib.MadeBatch, task: Any
                  ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Scalars of one RL batch and histograms for TensorBoard.

  Rewards, accuracy and pass@k describe every sampled rollout; what the update
  saw is described by the loss mask: `loss_frac` (valid rollouts in the loss),
  and why the others left it: `gated_frac` (bbg), `easy_frac`
  (easy_threshold), `leftover_frac` (passk_full's N mod k), each a fraction of
  problems (left-overs: of valid rollouts); `bbg_weight_mean` over kept problems.
  """
  ro, info, valid_BxN = made.rollouts, made.info, np.asarray(made.valid_BxN, bool)
  r_BxN = ro.rewards_BxN
  b, n = r_BxN.shape
  c_B = (r_BxN >= 1.0).sum(-1)
  correct_valid_B = ((r_BxN >= 1.0) & valid_BxN).sum(-1)
  acc_B = correct_valid_B / np.maximum(valid_BxN.sum(-1), 1)
  in_loss_BxN = np.asarray(info["loss_mask_BxN"], bool)
  gated_B = np.asarray(info.get("gated", np.zeros(b, bool)), bool)
  easy_B = np.asarray(info["easy"], bool)
  leftover_BxN = valid_BxN & ~in_loss_BxN & ~(gated_B | easy_B)[:, None]
  out = {
      "reward_mean": float(r_BxN.mean()),
      "acc_mean": float(acc_B.mean()),
      "zero_var_frac": float(np.mean(~batch_lib.varied_groups(ro, valid_BxN))),
      "all_correct_frac": float(np.mean(c_B == n)),
      "all_wrong_frac": float(np.mean(c_B == 0)),
      "valid_frac": float(valid_BxN.mean()),
      "loss_frac": float(in_loss_BxN.sum() / max(valid_BxN.sum(), 1)),
      "gated_frac": float(gated_B.mean()),
      "easy_frac": float(easy_B.mean()),
      "leftover_frac": float(leftover_BxN.sum() / max(valid_BxN.sum(), 1)),
  }
  if "weight" in info and (~gated_B).any():
    out["bbg_weight_mean"] = float(np.asarray(info["weight"])[~gated_B].mean())
  for k, v in metrics.pass_at_k_curve(np.full(b, n), c_B).items():
    out[f"batch_pass@{k}"] = v
  lens_R = ro.lengths_R.astype(np.float64)
  mask_RxT = ro.mask_RxT.astype(bool)
  out["entropy_rollouts"] = float(ro.entropy_RxT[mask_RxT].mean()) if mask_RxT.any() else 0.0
  out["response_len_mean"] = float(lens_R.mean())
  out["response_len_max"] = float(lens_R.max())
  out["truncation_rate"] = float(1.0 - ro.finished_R.mean())
  answers = [[task.normalized_answer(ro.responses[i * n + j]) for j in range(n)] for i in range(b)]
  div_B, wrong_B = metrics.answer_diversity(answers, r_BxN, valid_BxN)
  out["wrong_answer_diversity"] = float(div_B[wrong_B > 0].mean()) if (wrong_B > 0).any() else 0.0
  out["eta_mean"] = float(np.asarray(metrics.eta(made.adv_BxN, in_loss_BxN)).mean())
  adv_in = np.abs(made.adv_BxN)[in_loss_BxN]
  out["adv_abs_mean"] = float(adv_in.mean()) if adv_in.size else 0.0
  return out, {"acc_per_problem": acc_B}


def evaluate(params: Any, cfg: Any, task: Any, tokenizer: Any, eval_sets: dict[str, list],
             key: jax.Array, eval_cfg: Any, rl_cfg: Any, chat: bool, mesh: Any = None,
             rules: Any = None) -> dict[str, float]:
  """pass@k (k = 1, 2, 4, ..., n) per eval set and averaged over sets."""
  t0 = time.perf_counter()
  out: dict[str, float] = {}
  per_set: dict[str, dict[int, float]] = {}
  n = eval_cfg.num_samples
  for s, (name, examples) in enumerate(sorted(eval_sets.items())):
    c_list = []
    for i in range(0, len(examples), eval_cfg.batch_prompts):
      chunk = examples[i:i + eval_cfg.batch_prompts]
      k = jax.random.fold_in(jax.random.fold_in(key, s), i)
      ro = rollout.generate(params, cfg, task, tokenizer, chunk, k, num_samples=n,
                            max_prompt_len=rl_cfg.max_prompt_len,
                            max_new_tokens=rl_cfg.max_new_tokens,
                            temperature=eval_cfg.temperature, top_p=eval_cfg.top_p, chat=chat,
                            mesh=mesh, rules=rules)
      c_list.append((ro.rewards_BxN >= 1.0).sum(-1))
    c_B = np.concatenate(c_list)
    per_set[name] = metrics.pass_at_k_curve(np.full(len(c_B), n), c_B)
    for k, v in per_set[name].items():
      out[f"{name}/pass@{k}"] = v
  for k in next(iter(per_set.values())):
    out[f"pass@{k}"] = float(np.mean([curve[k] for curve in per_set.values()]))
  out["time_eval"] = time.perf_counter() - t0
  return out
