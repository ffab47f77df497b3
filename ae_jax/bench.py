"""`python -m ae_jax.bench [--quick] [--scaling|--stream]`: the benchmark, run from the repository root.

The benchmark itself lives in `benchmarks/` (benchmarks/README.md); this entry point only hands over to
it, and importing this module does nothing.
"""

import sys

if __name__ == "__main__":
    try:
        from benchmarks.bench import main
    except ModuleNotFoundError as e:
        if e.name != "benchmarks":
            raise
        print("error: benchmarks/: not found; run `python -m ae_jax.bench` from the repository root",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(prog="python -m ae_jax.bench"))
