"""Measures the training engine side by side in one run: `python -m benchmarks.bench [--quick] [--scaling|--stream]`
(`python -m ae_jax.bench` is the same command).

Prints one JSON object with the contract keys (benchmarks/README.md) and the raw timings behind each
ratio. The machine may be shared, so the two sides of every ratio are timed alternately in the same run,
and medians are divided. `--scaling` instead prints (and writes to benchmarks/scaling.md) member-steps/s
against the number of members and of forced host devices. `--stream` instead times the grain loader
against the device loader on a train set of a few hundred MB. PyTorch is optional
(requirements-bench.txt): without it the `*over_pytorch*` keys are null.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pin_threads() -> None:
    """OpenMP/MKL pools sized to this process's cores (the same loop read 14 and 220 steps/s minutes apart on a shared 2-core machine), before NumPy or torch start them."""
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])


def main(argv=None, prog: str = "python -m benchmarks.bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute on 2 cores")
    parser.add_argument("--scaling", action="store_true",
                        help="print the scaling tables and write them to benchmarks/scaling.md")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--stream", action="store_true",
                        help="time the grain loader against the device loader on a few hundred MB")
    parser.add_argument("--matmul_precision",
                        help="the engine's model.matmul_precision (and the peak matmul's; default: the base "
                             "config's); `default` lets a GPU use TF32")
    parser.add_argument("--parts", default="engine,peak,memory,fashion,quickstart,wandb",
                        help="comma-separated parts to run (default: all, which every contract key needs)")
    parser.add_argument("--quickstart_cores", type=int, help="cores each side of the quickstart part is "
                        "pinned to; the sweep runs one worker process per core (default: all)")
    parser.add_argument("--quickstart_steps", type=int, help="train.steps of the quickstart part (default: "
                        "the config's)")
    parser.add_argument("--quickstart_only", help="run only the quickstart members matching this glob")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pin_threads()
    if args.child:
        from benchmarks import child

        job = json.loads(args.child)
        if job["kind"] != "torch_members":  # that child imports no JAX (benchmarks/torch_peer.py)
            _set_precision(parser, args.matmul_precision)
        print(json.dumps(child.child_main(job)))
        return 0
    _set_precision(parser, args.matmul_precision)
    import jax

    from benchmarks import common

    sizes = common.QUICK if args.quick else common.FULL if jax.default_backend() == "cpu" else common.ACCELERATOR
    sizes = _with_quickstart_flags(parser, args, sizes)
    if args.stream:
        from benchmarks import loaders

        print(json.dumps(loaders.run_stream(sizes), indent=1))
        return 0
    if args.scaling:
        from benchmarks import scaling

        table = scaling.run_scaling(sizes)
        print(table)
        if not args.quick:
            out = ROOT / "benchmarks" / "scaling.md"
            out.write_text(table)
            print(f"written: {out}", file=sys.stderr)
        return 0
    from benchmarks import suite

    parts = tuple(p for p in args.parts.split(",") if p)
    unknown = sorted(set(parts) - set(suite.PARTS))
    if unknown or not parts:
        parser.error(f"--parts: {','.join(unknown) or 'empty'}: allowed are {','.join(suite.PARTS)}")
    print(json.dumps(suite.run(sizes, with_torch=not args.no_torch, parts=parts), indent=1))
    return 0


def _with_quickstart_flags(parser: argparse.ArgumentParser, args, sizes):
    import dataclasses

    cores = args.quickstart_cores or sizes.quickstart_cores or len(os.sched_getaffinity(0))
    if not 1 <= cores <= len(os.sched_getaffinity(0)):
        parser.error(f"--quickstart_cores: {cores}: this process may use 1 to {len(os.sched_getaffinity(0))}")
    if args.quickstart_steps is not None and args.quickstart_steps < 1:
        parser.error(f"--quickstart_steps: {args.quickstart_steps}: must be at least 1")
    return dataclasses.replace(
        sizes, quickstart_cores=cores, quickstart_steps=args.quickstart_steps or sizes.quickstart_steps,
        quickstart_only=sizes.quickstart_only if args.quickstart_only is None else args.quickstart_only)


def _set_precision(parser: argparse.ArgumentParser, precision: str | None) -> None:
    from ae_jax import config as config_lib
    from benchmarks import common

    if precision is None:
        return
    if precision not in config_lib.MATMUL_PRECISIONS:
        parser.error(f"--matmul_precision: {precision!r} is not one of {', '.join(config_lib.MATMUL_PRECISIONS)}")
    common.MATMUL_PRECISION = precision


if __name__ == "__main__":
    sys.exit(main())
