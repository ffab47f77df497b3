"""The benchmark: its JSON has the contract keys, its two sweeps do the same work, its FLOP count is right.

No timing is asserted: timings depend on the machine and its load; `python -m ae_jax.bench` reports them.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from ae_jax import bench, config as config_lib, data as data_lib, train

ROOT = Path(__file__).resolve().parents[1]


def positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@pytest.fixture(scope="module")
def digits():
    return data_lib.load(config_lib.base_config().data)


def test_quick_run_prints_one_json_object_with_every_contract_key():
    # One device, as a user runs it (scripts/test.sh forces 4 for the sharding modules).
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env = {**os.environ, "XLA_FLAGS": " ".join(flags), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "ae_jax.bench", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(bench.CONTRACT_KEYS) <= set(result)
    for key in ("vectorized_over_sequential", "vectorized_over_sequential_steady", "peak_fraction",
                f"memory_{bench.QUICK.memory_members}_members_mib"):
        assert positive(result[key]), (key, result[key])
    if result["device"]["torch"] is None:
        assert result["over_pytorch"] is None and "PyTorch" in result["note"]
    else:
        for key in ("over_pytorch", "over_pytorch_steady", "over_pytorch_sweep", "over_pytorch_sweep_steady"):
            assert positive(result[key]), (key, result[key])
    device = result["device"]
    assert device["platform"] == "cpu" and device["device_count"] == 1 and device["jax"] == jax.__version__
    for name, values in result["timings_s"].items():
        if name.endswith("_s"):
            assert all(positive(v) for v in np.atleast_1d(values)), (name, values)


def test_member_trained_by_hand_ends_where_the_engine_member_ends(digits):
    """The sequential baseline does the engine's work: same init, batches and Adam steps, same params."""
    sizes = bench.Sizes(steps=30, chunk=10, batch=32)
    plan = bench.small_plan(sizes)
    seeds, lrs = bench.sweep_settings(3)
    _, by_hand = bench.run_sequential(plan, digits.x_train, seeds, lrs)
    state, _ = train.fit(plan, seeds, bench.hparams(lrs), digits.x_train)
    for i, params in enumerate(by_hand):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5), params,
                     state.params)
    moved = np.abs(np.asarray(state.params["code"]["kernel"][0]) - np.asarray(
        bench.hand_program(plan.spec, digits.x_train, 0, 1e-3, 1, 32)[1]["code"]["kernel"])).max()
    assert moved > 1e-3, "the members did not train: the comparison would be vacuous"


def test_flop_count_matches_a_hand_count_and_xla_cost_analysis(digits):
    # 64-32-64 at batch 128: forward 2*128*(2048 + 2048), weight grads the same, input grad of layer 2 only.
    assert bench.dense_train_flops(128, [64, 32, 64]) == 2 * 128 * (4096 + 4096 + 2048)
    small = bench.small_plan(bench.Sizes(batch=256, steps=10, chunk=10))
    assert bench.mlp_dims(small.spec) == [64, 32, 64]
    # XLA also counts bias adds, ReLU, the loss and Adam: a few percent at this size.
    ratio = bench.xla_step_flops(small, digits.x_train) / bench.dense_train_flops(256, [64, 32, 64])
    assert 1.0 <= ratio < 1.15, ratio
    big = bench.peak_plan(bench.FULL, steps=10)
    assert bench.mlp_dims(big.spec) == [784, 1024, 1024, 1024, 784]
    x = np.zeros((16, 784), np.float32)
    ratio = bench.xla_step_flops(big, x) / bench.dense_train_flops(big.batch_size, bench.mlp_dims(big.spec))
    assert 1.0 <= ratio < 1.01, ratio
