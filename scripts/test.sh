#!/usr/bin/env bash
# The README's test command: set up, then run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_PLATFORMS=cpu
# Two workers, a module each at a time (module fixtures are built once); PYTEST_WORKERS=0 runs in-process.
.venv/bin/python -m pytest tests -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
