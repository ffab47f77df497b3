"""The grain loader: the device loader's trajectory from host batches, exact resume, TFDS offline, config."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ae_jax import checkpoint, config as config_lib, data as data_lib, sharding, stream, sweep, train
from ae_jax.config import sweep as axis
from ae_jax.errors import ConfigError
from engine_setup import hparams, make_plan


@pytest.fixture(scope="module")
def digits():
    return data_lib.load(config_lib.base_config().data)


def streamed(x, threads=2, prefetch=2, transfer_mb=64.0):
    return stream.Streamed(stream.ArraySource(x), x.min(0), x.max(0), threads, prefetch, transfer_mb)


def assert_same_states(a, b, curves_a, curves_b):
    # Float tolerance, not bits: the two programs are compiled separately (on this CPU they agree bit for bit).
    jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7), a.params, b.params)
    np.testing.assert_array_equal(np.asarray(a.step), np.asarray(b.step))
    np.testing.assert_array_equal(np.asarray(a.diverged_at), np.asarray(b.diverged_at))
    assert sorted(curves_a) == sorted(curves_b)
    for k in curves_a:
        np.testing.assert_allclose(curves_a[k], curves_b[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_grain_loader_gives_the_device_loaders_trajectory(digits):
    # Salt-and-pepper noise reads the train range; 50 steps leave the last chunk part-filled; one member diverges.
    plan = make_plan(steps=50, noise="salt_pepper", code_size=16, depth=1, width=16)
    seeds, hp = np.array([0, 1, 2]), hparams(3, learning_rate=[1e-3, 1e30, 3e-3], noise_level=[0.1, 0.2, 0.0])
    on_device = train.fit(plan, seeds, hp, digits.x_train)
    streamed_run = train.fit(plan, seeds, hp, streamed(digits.x_train))
    assert_same_states(*on_device[:1], *streamed_run[:1], on_device[1], streamed_run[1])
    diverged = np.asarray(streamed_run[0].diverged_at)
    assert diverged[0] == diverged[2] == -1 and diverged[1] >= 0
    # Reading in the main thread, and transfers of 5 steps (a quarter chunk), change nothing either.
    step_mb = 4 * 32 * 64 * 4 / 2**20  # 3 members padded to 4 host devices, batch 32, D 64
    assert stream.steps_per_transfer(plan.chunk, 4 * 32 * 64 * 4, 5.5 * step_mb) == 5
    serial = train.fit(plan, seeds, hp, streamed(digits.x_train, threads=0, prefetch=1, transfer_mb=5.5 * step_mb))
    assert_same_states(streamed_run[0], serial[0], streamed_run[1], serial[1])


def test_streamed_group_compiles_once(digits):
    plan = make_plan(steps=20, chunk=10, code_size=12)
    x = streamed(digits.x_train)
    train.fit(plan, np.array([0, 1]), hparams(2, learning_rate=[1e-3, 1e-2]), x)
    before = train.TRACE_COUNTS[plan]
    train.fit(plan, np.array([5, 7]), hparams(2, learning_rate=[3e-4, 3e-2]), x)
    assert train.TRACE_COUNTS[plan] == before, "a new hyperparameter value recompiled the streamed chunk"


def test_host_batches_are_the_sampled_rows_and_restart_at_any_chunk():
    x = np.arange(37 * 3, dtype=np.float32).reshape(37, 3)
    seeds = np.array([4, 9], np.uint32)
    sampler = stream.MemberSampler(seeds, 5, len(x))
    full = list(stream.host_chunks(streamed(x), seeds, batch=5, chunk=4, n_chunks=3))
    assert [c.shape for c in full] == [(4, 2, 5, 3)] * 3
    for c, block in enumerate(full):
        for t in range(4):
            np.testing.assert_array_equal(block[t], x[sampler(4 * c + t)])
    tail = list(stream.host_chunks(streamed(x), seeds, batch=5, chunk=4, n_chunks=3, start_chunk=2))
    assert len(tail) == 1
    np.testing.assert_array_equal(tail[0], full[2])


def test_steps_per_transfer_divide_the_chunk_and_fit_the_budget():
    mb = 2**20
    assert stream.steps_per_transfer(100, mb, 64.0) == 50  # 64 fit; 50 is the largest divisor of 100
    assert stream.steps_per_transfer(100, mb, 1000.0) == 100
    assert stream.steps_per_transfer(100, 10 * mb, 1.0) == 1  # one step is over budget: still 1
    assert stream.steps_per_transfer(97, mb, 64.0) == 1  # prime chunk


def test_sampler_is_seeded_per_member_and_uniform_with_replacement():
    seeds = np.array([0, 1, 0], np.uint32)
    sampler = stream.MemberSampler(seeds, 64, 10)
    idx = np.stack([sampler(t) for t in range(200)])  # (T, M, B)
    assert idx.dtype.kind == "i" and idx.min() == 0 and idx.max() == 9
    np.testing.assert_array_equal(idx[:, 0], idx[:, 2])  # same seed, same order
    assert (idx[:, 0] != idx[:, 1]).mean() > 0.8  # different seed, different order
    assert not np.array_equal(idx[0], idx[1])  # steps differ
    counts = np.bincount(idx[:, 0].ravel(), minlength=10) / idx[:, 0].size
    np.testing.assert_allclose(counts, 0.1, atol=0.01)  # 12,800 draws: 4 sigma is 0.0106 ... of 0.1
    assert any(len(set(b)) < len(b) for b in idx[:, 0])  # with replacement: repeats within a batch


def test_resume_from_a_checkpoint_mid_stream_is_exact(digits, tmp_path):
    plan = make_plan(steps=80, chunk=20, code_size=8)
    seeds, hp = np.array([3, 4]), hparams(2, learning_rate=[1e-3, 3e-3])
    whole = train.fit(plan, seeds, hp, streamed(digits.x_train))

    class Killed(Exception):
        pass

    def kill_after_chunk_2(i, n):
        if i == 2:
            raise Killed

    ckpt = checkpoint.GroupCheckpoint(tmp_path / "ckpt")
    with pytest.raises(Killed):
        train.fit(plan, seeds, hp, streamed(digits.x_train), on_chunk=kill_after_chunk_2, checkpoint=ckpt,
                  checkpoint_seconds=0.0)
    # saved after chunks 0 and 1; chunk 2 is lost with the "kill"
    assert [p.name for p in ckpt._files()] == ["chunk-000002.ckpt"]
    resumed = train.fit(plan, seeds, hp, streamed(digits.x_train), checkpoint=checkpoint.GroupCheckpoint(
        tmp_path / "ckpt"), checkpoint_seconds=0.0)
    assert_same_states(whole[0], resumed[0], whole[1], resumed[1])


def test_loader_keys_are_validated_and_auto_streams_above_the_threshold():
    c = config_lib.base_config()
    config_lib.validate(c)
    for key, bad in [("data.loader", "gpu"), ("data.prefetch", 0), ("data.read_threads", -1),
                     ("data.stream_above_mb", -1.0), ("data.transfer_mb", 0.0)]:
        with pytest.raises(ConfigError, match=f"config.{key}"):
            config_lib.validate(config_lib.apply_overrides(c, {key: bad}))
    c.data.stream_above_mb = 1.0
    assert stream.choose_loader(c.data, 2**20) == "device"
    assert stream.choose_loader(c.data, 2**20 + 1) == "grain"
    c.data.loader = "device"
    assert stream.choose_loader(c.data, 2**40) == "device"
    c.data.loader = "grain"
    assert stream.choose_loader(c.data, 1) == "grain"


def tiny_mnist(tfds_dir, loader):
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.data.name, c.data.tfds_dir, c.data.n_train, c.data.scale = "mnist", str(tfds_dir), 30, "standardize"
    c.data.loader = loader
    c.model.code_size, c.model.width = 8, 16
    c.train.steps, c.train.log_every, c.train.batch_size = 30, 10, 8
    c.diagnostics.attractor_iters, c.diagnostics.jac_points, c.diagnostics.ood_samples = 3, 4, 50
    return c


def test_tiny_tfds_sweep_through_grain_offline_matches_the_device_loader(tmp_path, capsys, monkeypatch):
    read_rows = []
    original = data_lib.TfdsRows.rows
    monkeypatch.setattr(data_lib.TfdsRows, "rows", lambda self, idx: read_rows.append(len(idx)) or original(self, idx))
    grid = axis("seed", [0, 1])
    out = {}
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=40):
        for loader in ("grain", "device"):
            sweep.run_sweep(tiny_mnist(tmp_path / "tfds", loader), grid, tmp_path / loader, "mnist_tiny",
                            report=False)
            out[loader] = {r["name"]: r for r in map(json.loads, (tmp_path / loader / "results.jsonl")
                                                      .read_text().splitlines())}
    printed = capsys.readouterr().out
    assert printed.count("(grain loader)") == 1 and printed.count("(device loader)") == 1
    # 30 steps x 2 members (padded to the device count) x 8 rows, from the mocked array_record source.
    assert sum(read_rows) == 30 * sharding.padded_size(2, sharding.member_mesh()) * 8
    assert sorted(out["grain"]) == sorted(out["device"]) and len(out["grain"]) == 2
    for name, rec in out["grain"].items():
        assert rec["status"] == "ok" and rec["config"]["data.loader"] == "grain"
        for k, v in rec["metrics"].items():
            ref = out["device"][name]["metrics"][k]
            if isinstance(v, str):
                assert v == ref, (name, k)
            else:
                np.testing.assert_allclose(v, ref, rtol=1e-5, atol=1e-7, err_msg=f"{name} {k}")
