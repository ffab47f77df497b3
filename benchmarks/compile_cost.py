"""What a training program's compile is made of: `python -m benchmarks.compile_cost [--code=4 --depth=0]`.

Compiles nested parts of one quickstart group's training program (6 members of the given code size and
depth), each from scratch, and prints the seconds and the number of fused kernels XLA made of each: the
loss and its gradient, one member's whole step (adds Adam, the keep-or-freeze selects, the keys and batch
indices), one member's chunk of steps (the scan and the per-chunk means) and the group's chunk (members
mapped one at a time, `sharding.over_members`: what the sweep compiles). Prints one JSON object.
"""

import argparse
import functools
import json
import sys
import time

import jax

from ae_jax import groups, models, objectives, sharding, sweep, train
from benchmarks.packing import sweep_groups


def compiled_cost(fn, *args) -> dict:
    """Seconds to lower and compile `fn` for `args`, and the fused kernels of the result."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return {"compile_s": time.perf_counter() - t0, "fusions": compiled.as_text().count(" fusion(")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=int, default=4)
    parser.add_argument("--depth", type=int, default=0)
    args = parser.parse_args(argv)
    base, _, _ = sweep.load_config_file("configs/quickstart.py")
    (group,), datasets = sweep_groups(base, [{"model.code_size": c, "model.depth": args.depth, "seed": s}
                                             for c in (args.code, max(args.code // 2, 1)) for s in (0, 1, 2)])
    seeds, hp, sizes, _, x_train = groups._group_inputs(group, datasets[group.data])
    plan = group.plan
    with models.matmul_precision(plan.spec):
        _, state, hp_M, data, _ = train._start(plan, seeds, hp, x_train, sizes)
        one_state, one_hp = jax.tree.map(lambda a: a[0], (state, hp_M))

        def loss_and_grad(s, h, d):
            return jax.value_and_grad(objectives.loss_fn, has_aux=True)(
                s.params, s.stats, s.masks, d.x_ND[:plan.batch_size], s.key, h, spec=plan.spec, obj=plan.obj,
                lo_D=d.lo_D, hi_D=d.hi_D)

        parts = {
            "loss_and_gradient": compiled_cost(loss_and_grad, one_state, one_hp, data),
            "one_member_step": compiled_cost(functools.partial(train.train_step, plan=plan), one_state, one_hp, data),
            "one_member_chunk": compiled_cost(functools.partial(train.train_chunk, plan=plan), one_state, one_hp, data),
            "group_chunk": compiled_cost(sharding.over_members(functools.partial(train.train_chunk, plan=plan),
                                                               (0, 0, None), None), state, hp_M, data),
        }
    print(json.dumps({"code_size": args.code, "depth": args.depth, "members": len(group.members), "parts": parts},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
