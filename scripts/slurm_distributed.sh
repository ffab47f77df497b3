#!/usr/bin/env bash
# One sweep over several nodes as one jax.distributed job: every process joins the job
# (jax.distributed.initialize() reads Slurm's environment), takes the shard
# process_index/process_count of the members and trains it on its local devices (GPUs or CPU cores).
#
#   sbatch --nodes=4 --ntasks-per-node=1 --gpus-per-node=8 scripts/slurm_distributed.sh configs/quickstart.py runs/qs
#
#SBATCH --job-name=ae_jax_dist
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
cfg=${1:?config file}; workdir=${2:?workdir}; shift 2
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
bash scripts/setup.sh
srun .venv/bin/python -m ae_jax.sweep --config="$cfg" --workdir="$workdir" --distributed "$@"
