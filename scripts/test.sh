#!/usr/bin/env bash
# The README's test command: set up, then run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_PLATFORMS=cpu
.venv/bin/python -m pytest tests "$@"
