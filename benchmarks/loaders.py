"""The grain loader against the device loader on a train set of a few hundred MB:
`python -m ae_jax.bench --stream`."""

import os
import statistics
import time
from typing import Any

import jax
import numpy as np

from ae_jax import stream, train
from benchmarks.common import Sizes, device_info, hparams, mlp_dims, small_config, sweep_settings


def run_stream(sizes: Sizes) -> dict:
    """steps/s of the same 16-member sweep fed by the grain loader and by the device loader, alternated;
    the grain loader at its default transfer size and at a smaller and a larger one."""
    load_before = os.getloadavg()
    x = np.random.default_rng(0).random((sizes.stream_examples, sizes.stream_dim), dtype=np.float32)
    c = small_config(sizes.stream_steps, sizes.batch)
    plan = train.plan_of(c, (sizes.stream_dim,), chunk=min(sizes.chunk, sizes.stream_steps))
    seeds, lrs = sweep_settings(sizes.members)
    hp = hparams(lrs)
    default = float(c.data.transfer_mb)
    variants = {mb: stream.Streamed(stream.ArraySource(x), x.min(0), x.max(0), c.data.read_threads,
                                    c.data.prefetch, mb) for mb in (default / 4, default, default * 4)}
    step_bytes = sizes.members * plan.batch_size * x.shape[1] * 4
    per = {mb: stream.steps_per_transfer(plan.chunk, step_bytes, mb) for mb in variants}
    steps = plan.n_chunks * plan.chunk

    def timed_fit(x_train) -> tuple[float, Any]:
        t0 = time.perf_counter()
        state, _ = train.fit(plan, seeds, hp, x_train)
        jax.block_until_ready(state.params)
        return time.perf_counter() - t0, state.params

    def timed_read(streamed) -> float:
        t0 = time.perf_counter()
        s = per[streamed.transfer_mb]
        for _ in stream.host_chunks(streamed, seeds, plan.batch_size, s, steps // s):
            pass
        return time.perf_counter() - t0

    for x_train in (x, *variants.values()):  # compiles every program before any timing
        timed_fit(x_train)
    t = {"device_fit_s": [], **{f"grain_{mb:g}mb_fit_s": [] for mb in variants}, "grain_reader_only_s": []}
    for _ in range(sizes.repeats):
        dt, p_device = timed_fit(x)
        t["device_fit_s"].append(dt)
        for mb, streamed in variants.items():
            dt, p_grain = timed_fit(streamed)
            t[f"grain_{mb:g}mb_fit_s"].append(dt)
            diff = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), p_device, p_grain)))
        t["grain_reader_only_s"].append(timed_read(variants[default]))
    rate = lambda key: steps / statistics.median(t[key])
    return {
        "grain_over_device_steps_per_s": rate(f"grain_{default:g}mb_fit_s") / rate("device_fit_s"),
        "device_steps_per_s": rate("device_fit_s"),
        "grain_steps_per_s": rate(f"grain_{default:g}mb_fit_s"),
        "grain_steps_per_s_by_transfer_mb": {f"{mb:g}": rate(f"grain_{mb:g}mb_fit_s") for mb in variants},
        "grain_reader_only_steps_per_s": rate("grain_reader_only_s"),
        "max_abs_param_difference_last_grain_run": diff,
        "train_set_mb": x.nbytes / 2**20,
        "device": {**device_info(), "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0]},
        "timings_s": t,
        "settings": {
            "data": f"{x.shape[0]}x{x.shape[1]} float32 uniform in [0, 1], host memory",
            "sweep": f"{sizes.members} members, {'-'.join(map(str, mlp_dims(plan.spec)))} ReLU, batch "
                     f"{plan.batch_size}, {steps} Adam steps, {plan.chunk} steps per chunk",
            "grain": f"read_threads={c.data.read_threads}, prefetch={c.data.prefetch}; transfers of (S, M, B, D) = "
                     f"(S, {sizes.members}, {plan.batch_size}, {x.shape[1]}) float32 with S = "
                     + ", ".join(f"{per[mb]} at transfer_mb={mb:g} ({per[mb] * step_bytes / 2**20:.0f} MB)"
                                 for mb in variants),
            "timing": "whole train.fit calls (every program compiled beforehand), device and grain alternated, "
                      f"{sizes.repeats} repeats, medians; reader_only: the grain pipeline alone at the default",
        },
    }
