#!/usr/bin/env bash
# One sweep split over a Slurm job array: task i of n runs the members whose index is i mod n, and all
# tasks append to the same workdir (per-shard locks, whole-line appends). The last task to finish
# writes the report; rerunning the array resumes whatever was killed.
#
#   sbatch --array=0-7 scripts/slurm_array.sh configs/quickstart.py runs/quickstart [--config.KEY=VALUE ...]
#
#SBATCH --job-name=ae_jax
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
cfg=${1:?config file}; workdir=${2:?workdir}; shift 2
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
bash scripts/setup.sh
exec .venv/bin/python -m ae_jax.sweep --config="$cfg" --workdir="$workdir" \
  --shard="${SLURM_ARRAY_TASK_ID:-0}/${SLURM_ARRAY_TASK_COUNT:-1}" "$@"
