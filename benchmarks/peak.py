"""Achieved FLOP/s of the engine on a compute-bound autoencoder against the machine's measured matmul FLOP/s."""

import dataclasses
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import train
from benchmarks.common import Sizes, dense_train_flops, hparams, mlp_dims, small_config, sweep_settings, time_matmul


def xla_step_flops(plan: train.Plan, x_ND: np.ndarray) -> float:
    """XLA's cost-analysis FLOPs of one engine step of one member (all ops, not just matmuls)."""
    one = dataclasses.replace(plan, steps=1, chunk=1)
    seeds, lrs = sweep_settings(1)
    init, chunk = train.compile_plan(one)
    sizes = np.array([[one.spec.code_size, one.spec.width]], np.int32)
    hp = hparams(lrs)
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), train.init_params(one, seeds, sizes))
    state = jax.eval_shape(init, params, seeds, hp, sizes)
    x = jnp.asarray(x_ND)
    lowered = chunk.lower(state, hp, train.Data(x, x.min(0), x.max(0)))
    # Some backends (the GPU in jax 0.11) answer only for the compiled program, some as a list per module.
    cost = lowered.cost_analysis() or lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return float(cost["flops"]) if cost and "flops" in cost else float("nan")


def peak_plan(sizes: Sizes, steps: int) -> train.Plan:
    c = small_config(steps, sizes.peak_batch)
    c.model.depth, c.model.width, c.model.code_size = 1, sizes.peak_width, sizes.peak_width
    return train.plan_of(c, (784,), chunk=sizes.peak_steps)


def run_peak(sizes: Sizes) -> dict:
    """Achieved FLOP/s of the engine on a compute-bound AE over measured matmul FLOP/s, interleaved."""
    plan = peak_plan(sizes, steps=10 * sizes.peak_steps * (sizes.peak_repeats + 1))
    x = np.random.default_rng(0).uniform(size=(2 * sizes.peak_batch, 784)).astype(np.float32)
    flops_step = dense_train_flops(plan.batch_size, mlp_dims(plan.spec))
    xla_flops = xla_step_flops(plan, x)
    seeds, lrs = sweep_settings(1)
    init, chunk = train.compile_plan(plan)
    sizes_1 = np.array([[plan.spec.code_size, plan.spec.width]], np.int32)
    hp = hparams(lrs)
    state = init(train.init_params(plan, seeds, sizes_1), seeds, hp, sizes_1)
    xj = jnp.asarray(x)
    data = train.Data(xj, xj.min(0), xj.max(0))
    t0 = time.perf_counter()
    state = jax.block_until_ready(chunk(state, hp, data))[0]
    first = time.perf_counter() - t0
    mm_flops = 2 * sizes.matmul_n ** 3
    chunk_s, mm_s, fractions = [], [], []
    for _ in range(sizes.peak_repeats):
        # Like with like: the matmul at the precision the engine's matmuls run at (model.matmul_precision).
        before = time_matmul(sizes.matmul_n, plan.spec.matmul_precision)
        t0 = time.perf_counter()
        state = jax.block_until_ready(chunk(state, hp, data))[0]
        chunk_s.append(time.perf_counter() - t0)
        mm_s.append((before + time_matmul(sizes.matmul_n, plan.spec.matmul_precision)) / 2)
        fractions.append((plan.chunk * flops_step / chunk_s[-1]) / (mm_flops / mm_s[-1]))
    return {
        "peak_fraction": statistics.median(fractions),
        "timings": {"peak_compile_and_first_chunk_s": first, "peak_chunk_s": chunk_s, "matmul_s": mm_s},
        "flops": {
            "model": f"{'-'.join(map(str, mlp_dims(plan.spec)))} ReLU, batch {plan.batch_size}, float32",
            "per_step_analytic": flops_step,
            "per_step_xla_cost_analysis": xla_flops,
            "steps_per_timed_chunk": plan.chunk,
            "achieved_gflops_median": statistics.median(plan.chunk * flops_step / t for t in chunk_s) / 1e9,
            "matmul": f"{sizes.matmul_n}x{sizes.matmul_n} float32, precision {plan.spec.matmul_precision}",
            "matmul_gflops_median": statistics.median(mm_flops / t for t in mm_s) / 1e9,
        },
    }
