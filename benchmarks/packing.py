"""What packing costs: `python -m benchmarks.packing [--config=configs/quickstart.py] [--ratios=0,2,4,8,1e9]`.

Members whose code sizes and widths fall in the same power-of-`train.pack_ratio` bucket train as one masked
program at the bucket's largest sizes (ae_jax.groups.group_members): fewer programs to compile, more
multiply-adds spent on masked units. For each ratio this prints the number of training programs (groups),
of diagnostics programs, and the training work as multiply-adds per example summed over every member's
steps, padded (what the group runs) against own (what each member would run alone), from the parameter
shapes: exact for dense layers, where a kernel of n parameters costs n multiply-adds per example.
"""

import argparse
import json
import sys

import jax

from ae_jax import data as data_lib, groups, models, sweep


def macs(spec: models.ModelSpec) -> int:
    """Multiply-adds per example of one forward pass: the kernels' parameter count (dense layers)."""
    like = jax.eval_shape(lambda: models.init_params(spec, jax.random.key(0)))
    return sum(leaf.size for path, leaf in jax.tree_util.tree_leaves_with_path(like)
               if "kernel" in jax.tree_util.keystr(path))


def sweep_groups(base, grid: list[dict]) -> tuple[list[groups.Group], dict]:
    """The shape groups a sweep command would train for `base` x `grid`, and their datasets by data key."""
    members = sweep.expand(base, grid)
    datasets = {key: data_lib.load(data_config) for key, data_config in
                {sweep.data_key(m.config): m.config.data for m in members}.items()}
    return sweep.group_members(members, datasets), datasets


def packing_table(config_path: str, ratios: list[float]) -> list[dict]:
    """One row per pack ratio: programs and padded/own training work of the sweep `config_path` defines."""
    base, grid, _ = sweep.load_config_file(config_path)
    rows = []
    for ratio in ratios:
        grouped, datasets = sweep_groups(base, [{**o, "train.pack_ratio": ratio} for o in grid])
        padded = own = 0
        for g in grouped:
            for m in g.members:
                steps = m.config.train.steps * m.config.train.batch_size
                padded += steps * macs(g.plan.spec)
                own += steps * macs(models.model_spec(m.config, datasets[g.data].shape))
        rows.append({"pack_ratio": ratio, "training_programs": len(grouped),
                     "diagnostics_programs": len(set(groups.diagnostics_specs(grouped))),
                     "padded_over_own_work": padded / own, "own_tera_macs": own / 1e12})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.py")
    parser.add_argument("--ratios", default="0,2,4,8,1e9", help="comma-separated train.pack_ratio values")
    args = parser.parse_args(argv)
    print(json.dumps(packing_table(args.config, [float(r) for r in args.ratios.split(",")]), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
