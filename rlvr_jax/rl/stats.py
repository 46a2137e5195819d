"""Host-side metrics of a rollout batch and the periodic pass@k evaluation.

Shape letters: B problems, N rollouts a problem, R = B * N rows, T tokens.
"""

import time
from typing import Any

import jax
import numpy as np

from rlvr_jax import metrics
from rlvr_jax.rl import rollout


def batch_metrics(ro: rollout.Rollouts, task: Any, adv_BxN: np.ndarray,
                  valid_BxN: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Scalars of one RL batch (issue 6's list) and histograms for TensorBoard."""
  r_BxN = ro.rewards_BxN
  valid_BxN = np.asarray(valid_BxN, bool)
  b, n = r_BxN.shape
  nv_B = valid_BxN.sum(-1)
  correct_BxN = (r_BxN >= 1.0) & valid_BxN
  c_B = correct_BxN.sum(-1)
  acc_B = c_B / np.maximum(nv_B, 1)
  # Zero reward variance among the valid rollouts (no GRPO signal).
  rmax = np.where(valid_BxN, r_BxN, -np.inf).max(-1)
  rmin = np.where(valid_BxN, r_BxN, np.inf).min(-1)
  out = {
      "reward_mean": float(r_BxN.mean()),
      "acc_mean": float(acc_B.mean()),
      "zero_var_frac": float(np.mean(rmax <= rmin)),
      "all_correct_frac": float(np.mean(c_B == n)),
      "all_wrong_frac": float(np.mean(c_B == 0)),
      "valid_frac": float(valid_BxN.mean()),
  }
  for k, v in metrics.pass_at_k_curve(np.full(b, n), (r_BxN >= 1.0).sum(-1)).items():
    out[f"batch_pass@{k}"] = v
  lens_R = ro.lengths_R.astype(np.float64)
  mask_RxT = ro.mask_RxT.astype(bool)
  out["entropy"] = float(ro.entropy_RxT[mask_RxT].mean()) if mask_RxT.any() else 0.0
  out["response_len_mean"] = float(lens_R.mean())
  out["response_len_max"] = float(lens_R.max())
  out["truncation_rate"] = float(1.0 - ro.finished_R.mean())
  answers = [[task.answer_key(ro.responses[i * n + j]) for j in range(n)] for i in range(b)]
  div_B, wrong_B = metrics.answer_diversity(answers, r_BxN, valid_BxN)
  out["wrong_answer_diversity"] = float(div_B[wrong_B > 0].mean()) if (wrong_B > 0).any() else 0.0
  out["eta_mean"] = float(np.asarray(metrics.eta(adv_BxN, valid_BxN)).mean())
  out["adv_abs_mean"] = float(np.abs(adv_BxN)[valid_BxN].mean()) if valid_BxN.any() else 0.0
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
