"""How well a warm-started policy inverts a worked solution into its problem (SvS's synthesis).

    python experiments/svs_tiny/inversion.py --params=/tmp/svs_exp/warmstart/warmstart

Shows the policy `configs/svs_tiny.py`'s synthesis prompt with the reference solutions of the
first `--problems` train problems, samples `--samples` problems from each (temperature 1) and
prints the fractions extracted, equal to the original problem, and whose value (Python's own
left-to-right evaluation) is the original answer.
"""

import argparse
import os
import runpy
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)


def main(argv=None) -> dict[str, float]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--params", required=True, help="warm-start params (orbax directory)")
  p.add_argument("--problems", type=int, default=64)
  p.add_argument("--samples", type=int, default=4)
  a = p.parse_args(argv)
  import jax
  from rlvr_jax import data as data_lib, sharding
  from rlvr_jax.rl import rollout, svs, train, warmstart
  c = runpy.run_path(os.path.join(ROOT, "configs", "svs_tiny.py"))["get_config"]("")
  mesh = sharding.make_mesh(c.mesh, jax.devices()[:1])
  cfg, params, tok = train.load_policy(c, mesh, None)
  with sharding.use_mesh(mesh, None):
    params = warmstart.load_params(a.params, params)
    train_set, _ = data_lib.load("arith", c.data)
    examples = [train_set[i] for i in range(a.problems)]
    prompts = [svs.synthesis_prompt(c.svs.prompt, ex["solution"]) for ex in examples]
    ro = rollout.sample(params, cfg, tok, prompts, jax.random.PRNGKey(0), num_samples=a.samples,
                        max_prompt_len=c.svs.max_synthesis_prompt_len,
                        max_new_tokens=c.rl.max_new_tokens, temperature=1.0, top_p=1.0,
                        chat=False, mesh=mesh)
  extracted = exact = same = 0
  for r, response in enumerate(ro.responses):
    ex, problem = examples[r // a.samples], svs.extract_problem(response)
    if problem is None:
      continue
    extracted += 1
    exact += problem == ex["problem"]
    # Only digits and + - reach eval: anything else is not an arith problem.
    if problem and set(problem) <= set("0123456789+-") and problem[0].isdigit():
      try:
        same += str(eval(problem)) == ex["answer"]  # noqa: S307 (digits and + - only)
      except SyntaxError:  # e.g. a trailing '+'
        pass
  n = len(ro.responses)
  out = {"samples": n, "extracted": extracted / n, "exact": exact / n, "same_answer": same / n}
  print(out)
  return out


if __name__ == "__main__":
  main()
