"""The benchmark: its JSON has every key, its two sweeps do the same work, its FLOP count is right, and
importing the library has no side effects.

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

from ae_jax import config as config_lib, data as data_lib, train
from benchmarks import common, peak, quickstart, sequential, suite

ROOT = Path(__file__).resolve().parents[1]


def positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def one_device_env() -> dict:
    """As a user runs it: one device (scripts/test.sh forces 4 for the sharding modules)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    return {**os.environ, "XLA_FLAGS": " ".join(flags), "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def digits():
    return data_lib.load(config_lib.base_config().data)


def test_quick_run_prints_one_json_object_with_every_key():
    out = subprocess.run([sys.executable, "-m", "ae_jax.bench", "--quick"], cwd=ROOT, env=one_device_env(),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(suite.CONTRACT_KEYS) <= set(result)
    for key in ("vectorized_over_sequential", "vectorized_over_sequential_steady", "peak_fraction",
                f"memory_{common.QUICK.memory_members}_members_mib", "fashion_peak_fraction",
                "quickstart_end_to_end_s", "quickstart_diagnostics_fraction", "live_logging_overhead",
                "wandb_sweep_overhead"):
        assert positive(result[key]), (key, result[key])
    torch_keys = ("over_pytorch", "over_pytorch_steady", "over_pytorch_sweep", "over_pytorch_sweep_steady",
                  "fashion_over_pytorch", "fashion_over_pytorch_steady", "quickstart_over_pytorch",
                  "quickstart_over_pytorch_end_to_end", "quickstart_over_pytorch_train_only")
    if result["device"]["torch"] is None:
        assert all(result[k] is None for k in torch_keys) and "PyTorch" in result["note"]
    else:
        for key in torch_keys:
            assert positive(result[key]), (key, result[key])
        # Against the same members: the peer trained as many as the quickstart did.
        assert positive(result["quickstart"]["torch_ms_per_step"])
    split = result["quickstart_split"]
    assert set(split) == {"startup_s", "compile_s", "train_s", "train_with_compile_core_s", "diagnostics_core_s",
                          "diagnostics_compile_s", "diagnostics_parts_core_s", "write_core_s", "report_s", "workers",
                          "other_s"}
    parts = split.pop("diagnostics_parts_core_s")
    assert {"diagnostics_map_s", "diagnostics_train_pass_s", "diagnostics_probe_s"} <= set(parts)
    assert sum(parts.values()) <= split["diagnostics_core_s"]
    # one member is one group, so one worker process, which lets the compile spans be seen
    assert split["workers"] == 1
    assert all(positive(v) for k, v in split.items() if k != "other_s"), split
    # The parts are disjoint slices of the end-to-end wall time (other_s is what is left over).
    assert split["other_s"] > -0.05 * result["quickstart_end_to_end_s"], split
    assert split["diagnostics_compile_s"] <= split["diagnostics_core_s"]
    assert split["compile_s"] + split["train_s"] == pytest.approx(split["train_with_compile_core_s"])
    qs = result["quickstart"]
    assert qs["members"] == 1 and qs["member_steps"] == common.QUICK.quickstart_steps
    assert qs["cores"] == len(os.sched_getaffinity(0)) and qs["workers"] == 1
    # the offline side really logged: every member's curve, chunk by chunk
    chunks = common.QUICK.wandb_members * common.QUICK.wandb_steps // common.QUICK.wandb_log_every
    assert result["timings_s"]["wandb_chunk_logs"] == [chunks] * common.QUICK.repeats
    device = result["device"]
    assert device["platform"] == "cpu" and device["device_count"] == 1 and device["jax"] == jax.__version__
    for name, values in result["timings_s"].items():
        if name.endswith("_s"):
            assert all(positive(v) for v in np.atleast_1d(values)), (name, values)


def test_importing_the_library_changes_no_environment_variable():
    """Every ae_jax module imported in a fresh process: os.environ is the same after, and `ae_jax.bench`
    alone imports neither JAX nor the benchmarks."""
    script = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
import ae_jax.bench
heavy = sorted(m for m in ("jax", "numpy", "torch", "benchmarks") if m in sys.modules)
import ae_jax
names = [m.name for m in pkgutil.iter_modules(ae_jax.__path__, "ae_jax.")]
for name in names:
    importlib.import_module(name)
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "heavy": heavy, "modules": names}))
"""
    env = one_device_env()
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the benchmark used to set these on import
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "ae_jax.bench" in result["modules"] and "ae_jax.train" in result["modules"]
    assert result["changed"] == [], f"importing ae_jax changed environment variables: {result['changed']}"
    assert result["heavy"] == [], f"importing ae_jax.bench imported {result['heavy']}"


def test_benchmarks_entry_point_rejects_a_bad_precision_naming_the_flag():
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--matmul_precision=fast"], cwd=ROOT,
                         env=one_device_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "--matmul_precision" in out.stderr and "highest" in out.stderr, out.stderr


def test_compile_spans_are_counted_once_where_they_nest_or_overlap():
    # A trace inside a trace, an overlap, and a gap: 0-3 (nested 1-2), 2.5-4 overlaps, 10-11 apart.
    assert quickstart.union_seconds([(1, 2), (0, 3), (2.5, 4), (10, 11)]) == pytest.approx(5.0)
    assert quickstart.union_seconds([]) == 0.0


def test_quickstart_peer_trains_the_member_the_sweep_trained():
    flat = config_lib.flatten(config_lib.base_config().to_dict())
    flat.update({"model.depth": 2, "model.width": 128, "model.code_size": 8, "seed": 3})
    m = quickstart.peer_member(flat, 64)
    assert m["dims"] == [64, 128, 128, 8, 128, 128, 64] and m["seed"] == 3
    assert (m["steps"], m["batch"], m["lr"]) == (flat["train.steps"], flat["train.batch_size"],
                                                 flat["train.learning_rate"])
    with pytest.raises(ValueError, match="ReLU MLPs"):
        quickstart.peer_member({**flat, "model.activation": "tanh"}, 64)


def test_member_trained_by_hand_ends_where_the_engine_member_ends(digits):
    """The sequential baseline does the engine's work: same init, batches and Adam steps, same params."""
    plan = common.small_plan(common.Sizes(steps=30, chunk=10, batch=32))
    seeds, lrs = common.sweep_settings(3)
    _, by_hand = sequential.run_sequential(plan, digits.x_train, seeds, lrs)
    state, _ = train.fit(plan, seeds, common.hparams(lrs), digits.x_train)
    for i, params in enumerate(by_hand):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5), params,
                     state.params)
    moved = np.abs(np.asarray(state.params["code"]["kernel"][0]) - np.asarray(
        sequential.hand_program(plan, digits.x_train, 0, 1e-3)[1]["code"]["kernel"])).max()
    assert moved > 1e-3, "the members did not train: the comparison would be vacuous"


def test_flop_count_matches_a_hand_count_and_xla_cost_analysis(digits):
    # 64-32-64 at batch 128: forward 2*128*(2048 + 2048), weight grads the same, input grad of layer 2 only.
    assert common.dense_train_flops(128, [64, 32, 64]) == 2 * 128 * (4096 + 4096 + 2048)
    small = common.small_plan(common.Sizes(batch=256, steps=10, chunk=10))
    assert common.mlp_dims(small.spec) == [64, 32, 64]
    # XLA also counts bias adds, ReLU, the loss and Adam: a few percent at this size.
    ratio = peak.xla_step_flops(small, digits.x_train) / common.dense_train_flops(256, [64, 32, 64])
    assert 1.0 <= ratio < 1.15, ratio
    big = peak.peak_plan(common.FULL, steps=10)
    assert common.mlp_dims(big.spec) == [784, 1024, 1024, 1024, 784]
    x = np.zeros((16, 784), np.float32)
    ratio = peak.xla_step_flops(big, x) / common.dense_train_flops(big.batch_size, common.mlp_dims(big.spec))
    assert 1.0 <= ratio < 1.01, ratio
