#!/usr/bin/env bash
# The README's main job: set up, run the code size x depth sweep on digits, write the report.
# Usage: bash scripts/quickstart.sh [smoke] [extra --config.KEY=VALUE flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
arg=""; workdir=runs/quickstart
if [ "${1:-}" = "smoke" ]; then arg=":smoke"; workdir=runs/quickstart_smoke; shift; fi
export WANDB_SILENT=true WANDB_ERROR_REPORTING=false
# The sweep writes the report (and its one W&B report run) when its last member finishes; a rerun of a
# finished sweep writes it only if it is missing.
.venv/bin/python -m ae_jax.sweep --config=configs/quickstart.py$arg --workdir="$workdir" "$@"
echo "results: $workdir/results.jsonl  report: $workdir/report.md  figures: $workdir/figures/  W&B runs: $workdir/wandb/"
