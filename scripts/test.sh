#!/usr/bin/env bash
# The README's test command: set up, then run the whole test suite on the CPU.
# Extra arguments are pytest options (-x, -k EXPR, --durations=N); PYTEST_WORKERS=0 runs in-process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_PLATFORMS=cpu
# One process per sweep command: pytest already runs two workers on two cores (tests/test_workers.py
# checks the worker processes a command starts by default on a multi-core CPU).
export AE_JAX_WORKERS=1
# The modules that test how the engine shards members over devices run on 4 forced host devices; the
# rest on 1 (sharding costs every compiled program ~35% more CPU on 2 cores, tests/conftest.py). The
# CLI on 4 devices is also checked against 1 device in tests/test_reliability.py.
SHARDED=(tests/test_train.py tests/test_stream.py)
# Two workers, a module each at a time (module fixtures are built once), in the order tests/conftest.py
# gives (xdist would otherwise sort modules by their number of tests, leaving long modules of few tests last).
pytest=(.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder)
a=0; b=0
AE_JAX_TEST_DEVICES=4 "${pytest[@]}" "${SHARDED[@]}" "$@" || a=$?
"${pytest[@]}" tests "${SHARDED[@]/#/--ignore=}" "$@" || b=$?
# 5 is pytest's "no test collected": fine for one part under -k, an error for both.
if [ $a = 5 ] && [ $b = 5 ]; then exit 5; fi
for rc in $a $b; do [ $rc = 0 ] || [ $rc = 5 ] || exit $rc; done
