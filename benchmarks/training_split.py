"""Where a sweep's training time goes, group by group: `python -m benchmarks.training_split [--config=...]`.

Runs each group of the sweep (default: the quickstart) the way a worker does, in this one process, and
times its parts separately: compiling the training program (`train.warm`, from an empty in-memory
cache: pass no persistent cache), initialising the members (`train.init_params`: one small program per
new leaf shape), the first `train.fit` (the group's small init and staging programs, then training) and a
second, steady `fit` of the same members (training alone). With the multiply-adds of each member at its
own sizes (`benchmarks.packing.macs`) the steady fit gives the training FLOP rate. Pin it to one core
(`taskset -c 0`) to read the numbers as one core's; prints one JSON object.
"""

import argparse
import json
import sys
import time

import jax
import numpy as np

from ae_jax import data as data_lib, groups, models, sweep, train
from benchmarks.packing import macs, sweep_groups


def group_split(group: groups.Group, dataset: data_lib.Dataset) -> dict:
    """Seconds of one group's compile, init, first and steady fit, and its own training FLOPs."""
    seeds, hp, sizes, _, x_train = groups._group_inputs(group, dataset)
    with models.matmul_precision(group.plan.spec):  # as `run_group`: the same programs, no recompile
        t0 = time.perf_counter()
        train.warm(group.plan, len(group.members), np.shape(x_train))
        t1 = time.perf_counter()
        params = train.init_params(group.plan, seeds, sizes)
        t2 = time.perf_counter()
        timed_fits = []
        for _ in range(2):
            start = time.perf_counter()
            state, _ = train.fit(group.plan, seeds, hp, x_train, sizes, params_M=params)
            jax.block_until_ready(state.params)
            timed_fits.append(time.perf_counter() - start)
    c = group.members[0].config.train
    flops = 6 * c.steps * c.batch_size * sum(macs(models.model_spec(m.config, dataset.shape)) for m in group.members)
    return {"spec": f"depth {group.plan.spec.depth} code {group.plan.spec.code_size} width {group.plan.spec.width}",
            "members": len(group.members), "compile_s": t1 - t0, "init_s": t2 - t1, "first_fit_s": timed_fits[0],
            "steady_fit_s": timed_fits[1], "own_gflop": flops / 1e9, "steady_gflop_per_s": flops / 1e9 / timed_fits[1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.py")
    args = parser.parse_args(argv)
    base, grid, _ = sweep.load_config_file(args.config)
    grouped, datasets = sweep_groups(base, grid)
    rows = []
    for group in grouped:
        rows.append(group_split(group, datasets[group.data]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("compile_s", "init_s", "first_fit_s", "steady_fit_s", "own_gflop")}
    # what a cold sweep pays for training: compile + init + the first fit
    total["training_s"] = total["compile_s"] + total["init_s"] + total["first_fit_s"]
    total["steady_gflop_per_s"] = total["own_gflop"] / total["steady_fit_s"]
    print(json.dumps({"config": args.config, "groups": rows, "total": total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
