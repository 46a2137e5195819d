#!/bin/bash
# One rlvr_jax run on a Cloud TPU VM pod slice: the same command on every worker.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/maze_qwen2_5_7b.py:ckpt=/gcs/ckpt \
#       --workdir=/gcs/runs/maze_7b
#
# The repository must be at ~/rlvr_jax on every worker with `pip install -e .[tpu]` done
# (SETUP=1 copies this checkout there and installs it); --workdir and the checkpoint must be on a filesystem
# every worker mounts (gcsfuse, Filestore). `--multihost` starts JAX's distributed runtime
# with its GCE TPU detection (the metadata server names the workers).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE MAIN_ARGS..." >&2
  exit 2
fi
name=$1 zone=$2
shift 2
args=$(printf '%q ' "$@")
if [[ "${SETUP:-0}" == 1 ]]; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
  gcloud compute tpus tpu-vm scp --recurse "$repo" "$name":~/rlvr_jax --zone="$zone" --worker=all
  gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all \
    --command="cd ~/rlvr_jax && pip install -q -e '.[tpu]'"
fi
gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all \
  --command="cd ~/rlvr_jax && python -m rlvr_jax.main --multihost $args"
