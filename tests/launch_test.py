"""launch/: the SLURM and TPU-pod scripts, checked without a cluster or a cloud account.

Stand-ins for `srun` and `gcloud` record what the scripts would run; the recorded
`python -m rlvr_jax.main` arguments are then parsed by rlvr_jax.main's own flags (the config
file loaded, the overrides applied), so a script that mangles its arguments fails here.
"""

import os
import shlex
import stat
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDER = """#!/bin/bash
printf '%s\\0' "$(basename "$0")" "$@" >> "$RECORD"
printf '\\n' >> "$RECORD"
"""
ARGS = ["--config=configs/maze_tiny.py:estimator=passk_analytical,k=8",
        "--workdir=/shared/runs/a dir with spaces", "--config.rl.steps=7"]


def _fake_bin(tmp_path, *names: str) -> str:
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name in names:
    path = bin_dir / name
    path.write_text(RECORDER)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return str(bin_dir)


def _calls(record: str) -> list[list[str]]:
  with open(record) as f:
    return [line.strip("\0").split("\0") for line in f.read().split("\n") if line.strip("\0")]


def _parses(main_args: list[str]) -> dict:
  """rlvr_jax.main's flags over `main_args`: what the run would get (no run)."""
  code = ("import sys, json\nfrom absl import flags\nimport rlvr_jax.main as m\n"
          "flags.FLAGS(['main'] + sys.argv[1:])\n"
          "c = flags.FLAGS.config\n"
          "print(json.dumps({'workdir': flags.FLAGS.workdir, 'steps': c.rl.steps,"
          " 'estimator': c.advantage.name, 'k': c.advantage.k,"
          " 'multihost': flags.FLAGS.multihost}))\n")
  proc = subprocess.run([sys.executable, "-c", code, *main_args], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  import json
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_scripts_are_valid_bash():
  for name in ("slurm_gpu.sbatch", "tpu_pod.sh"):
    subprocess.run(["bash", "-n", os.path.join(ROOT, "launch", name)], check=True)


def test_slurm_script_runs_main_under_srun_with_the_arguments_intact(tmp_path):
  record = str(tmp_path / "calls")
  env = dict(os.environ, PATH=_fake_bin(tmp_path, "srun") + ":" + os.environ["PATH"],
             RECORD=record)
  subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm_gpu.sbatch"), *ARGS], env=env,
                 check=True, cwd=ROOT)
  (call,) = _calls(record)
  assert call[:4] == ["srun", "python", "-m", "rlvr_jax.main"]
  assert call[4:] == ARGS
  got = _parses(call[4:])
  assert got == {"workdir": "/shared/runs/a dir with spaces", "steps": 7,
                 "estimator": "passk_analytical", "k": 8, "multihost": False}


def test_tpu_pod_script_runs_the_same_command_on_every_worker(tmp_path):
  record = str(tmp_path / "calls")
  env = dict(os.environ, PATH=_fake_bin(tmp_path, "gcloud") + ":" + os.environ["PATH"],
             RECORD=record, SETUP="1")
  subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh"), "my-v5p", "us-east5-a",
                  *ARGS], env=env, check=True, cwd=ROOT)
  scp, install, run = _calls(record)
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in scp
  assert install[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "--worker=all" in install
  assert run[5] == "my-v5p" and "--zone=us-east5-a" in run and "--worker=all" in run
  (command,) = [a[len("--command="):] for a in run if a.startswith("--command=")]
  words = shlex.split(command)  # what each worker's shell runs
  assert words[:2] == ["cd", "~/rlvr_jax"] and words[2] == "&&"
  assert words[3:7] == ["python", "-m", "rlvr_jax.main", "--multihost"]
  assert words[7:] == ARGS
  assert _parses(words[6:])["multihost"] is True
  bad = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh"), "only-a-name"],
                       env=env, cwd=ROOT, capture_output=True, text=True)
  assert bad.returncode == 2 and "usage" in bad.stderr
