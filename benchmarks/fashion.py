"""A Fashion-MNIST-sized sweep: 784-d inputs, members wide enough that their GEMMs are compute-bound,
against the PyTorch peer and the machine's matmul peak, in one process."""

import statistics

import numpy as np

from ae_jax import train
from benchmarks import torch_peer
from benchmarks.common import (Sizes, dense_train_flops, hparams, mlp_dims, seconds, small_config, sweep_settings,
                               time_matmul, torch_device)
from benchmarks.sequential import engine_setup, fit_cold

INPUT_DIM = 784  # 28 x 28, as Fashion-MNIST


def fashion_config(sizes: Sizes):
    c = small_config(sizes.fashion_steps, sizes.fashion_batch)
    c.model.depth, c.model.width, c.model.code_size = 1, sizes.fashion_width, sizes.fashion_code
    return c


def fashion_plan(sizes: Sizes) -> train.Plan:
    return train.plan_of(fashion_config(sizes), (INPUT_DIM,), chunk=min(sizes.fashion_chunk, sizes.fashion_steps))


def run_fashion(sizes: Sizes, use_torch: bool) -> dict:
    """The sweep through `train.fit` (compile included, and its chunks alone), its FLOP/s against a matmul
    timed right before and after, and the same members trained by the PyTorch peer one after another."""
    plan = fashion_plan(sizes)
    # Synthetic pixels in [0, 1]: the timing depends on the shapes only.
    x = np.random.default_rng(0).uniform(size=(sizes.fashion_examples, INPUT_DIM)).astype(np.float32)
    seeds, lrs = sweep_settings(sizes.fashion_members)
    hp = hparams(lrs, fashion_config(sizes))
    dims = mlp_dims(plan.spec)
    cold_s, _ = fit_cold(plan, x, seeds, hp)
    fresh_state, run = engine_setup(plan, seeds, hp, x)
    run(fresh_state())  # pays the first run's allocations
    precision = plan.spec.matmul_precision
    before = time_matmul(sizes.matmul_n, precision)
    steady_s = seconds(run, fresh_state())
    mm_s = (before + time_matmul(sizes.matmul_n, precision)) / 2
    work = sizes.fashion_members * plan.n_chunks * plan.chunk * dense_train_flops(plan.batch_size, dims)
    achieved, matmul = work / steady_s, 2 * sizes.matmul_n ** 3 / mm_s
    out = {
        "fashion_peak_fraction": achieved / matmul,
        "fashion_over_pytorch": None,
        "fashion_over_pytorch_steady": None,
        "timings": {"fashion_fit_cold_s": cold_s, "fashion_engine_run_s": steady_s, "fashion_matmul_s": mm_s},
        "flops": {"fashion_achieved_gflops": achieved / 1e9, "fashion_matmul_gflops": matmul / 1e9,
                  "fashion_per_member_step_analytic": dense_train_flops(plan.batch_size, dims)},
        "settings": (f"{sizes.fashion_members} members, {'-'.join(map(str, dims))} ReLU on synthetic "
                     f"{x.shape[0]}x{INPUT_DIM} pixels in [0, 1], batch {plan.batch_size}, {plan.steps} Adam "
                     f"steps, {plan.chunk} per dispatch, learning rates {lrs[0]:.1e}..{lrs[-1]:.1e}; peak: a "
                     f"{sizes.matmul_n}x{sizes.matmul_n} float32 matmul timed right before and after the "
                     "engine's chunks; fit_cold and PyTorch once each"),
    }
    if use_torch:
        device = torch_device()
        threads, probe = torch_peer.torch_threads(x, dims, plan.steps, plan.batch_size, device)
        per_member = [torch_peer.torch_train(x, dims, plan.steps, plan.batch_size, float(lr), int(s), threads,
                                             device) for s, lr in zip(seeds, lrs)]
        torch_s = sum(per_member)
        out.update(fashion_over_pytorch=torch_s / cold_s, fashion_over_pytorch_steady=torch_s / steady_s)
        out["timings"].update(fashion_torch_sweep_s=torch_s, fashion_torch_model_s=statistics.median(per_member),
                              fashion_torch_threads=threads)
        out["flops"]["fashion_torch_gflops"] = work / torch_s / 1e9
    return out
