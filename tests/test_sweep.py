"""The sweep runner end to end: expansion, grouping, results.jsonl, resume, and the science it must show."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ae_jax import config as config_lib, regime, sweep
from ae_jax.config import product, sweep as axis, zipped
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_METRICS = {"train_mse", "test_mse", "test_fvu", "pca_mse", "ood_fidelity", "jac_rank", "jac_trace",
                    "denoise_gain", "noise_gain", "const_ratio", "attractor_fraction", "probe_acc", "data_rank",
                    "effective_rank", "regime", "converged"}


def tiny(steps=40, **overrides):
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.train.steps, c.train.log_every, c.train.batch_size = steps, 20, 64
    c.diagnostics.attractor_iters, c.diagnostics.jac_points = 5, 10
    return config_lib.apply_overrides(c, overrides)


def read(workdir):
    return [json.loads(line) for line in (Path(workdir) / "results.jsonl").read_text().splitlines()]


def test_product_and_zip_grammar():
    grid = product(axis("model.code_size", [4, 8]), zipped(axis("seed", [0, 1]), axis("train.learning_rate", [1e-3, 1e-2])))
    assert grid == [{"model.code_size": 4, "seed": 0, "train.learning_rate": 1e-3},
                    {"model.code_size": 4, "seed": 1, "train.learning_rate": 1e-2},
                    {"model.code_size": 8, "seed": 0, "train.learning_rate": 1e-3},
                    {"model.code_size": 8, "seed": 1, "train.learning_rate": 1e-2}]
    with pytest.raises(ConfigError, match="different lengths"):
        zipped(axis("seed", [0, 1]), axis("model.depth", [0]))
    assert sweep.member_name({"model.code_size": 8, "train.learning_rate": 0.001}) == "code_size=8,learning_rate=0.001"


def test_members_group_by_depth_and_pack_code_sizes_and_widths():
    c = tiny()
    members = sweep.expand(c, product(axis("model.code_size", [5, 16]), axis("model.depth", [0, 1]),
                                      axis("model.width", [20, 32]), axis("seed", [0, 1])))
    from ae_jax import data as data_lib
    datasets = {sweep.data_key(c): data_lib.load(c.data)}
    groups = sweep.group_members(members, datasets)
    assert len(groups) == 2  # one per depth: 5 and 16 share a power-of-4 bucket, so do 20 and 32
    assert {(g.plan.spec.code_size, g.plan.spec.width) for g in groups} == {(16, 32)}
    c.train.pack_ratio = 2.0
    assert len(sweep.group_members(sweep.expand(c, product(axis("model.code_size", [4, 16]))), datasets)) == 2
    c.train.pack_ratio = 0.0
    assert len(sweep.group_members(sweep.expand(c, product(axis("model.code_size", [3, 4]))), datasets)) == 2


def test_sweep_writes_every_member_once_with_the_contract_keys_and_resumes(tmp_path):
    c = tiny()
    grid = product(axis("model.code_size", [4, 96]), axis("seed", [0, 1]))
    records = sweep.run_sweep(c, grid, tmp_path, sweep_name="t", report=False)
    assert len(records) == 4
    lines = read(tmp_path)
    assert sorted(r["member"] for r in lines) == [0, 1, 2, 3]
    for r in lines:
        assert {"member", "name", "overrides", "status", "metrics"} <= set(r)
        assert r["status"] == "ok"
        assert CONTRACT_METRICS <= set(r["metrics"])
        assert r["metrics"]["regime"] in regime.LABELS
        assert isinstance(r["metrics"]["converged"], bool)
    assert sweep.run_sweep(c, grid, tmp_path, sweep_name="t", report=False) == []
    assert len(read(tmp_path)) == 4
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_packed_member_equals_a_solo_run_of_its_own_size(tmp_path):
    c = tiny(steps=60)
    grid = axis("model.code_size", [6, 24])
    packed = {r["name"]: r["metrics"] for r in sweep.run_sweep(c, grid, tmp_path / "a", report=False)}
    c.train.pack_ratio = 0.0
    solo = {r["name"]: r["metrics"] for r in sweep.run_sweep(c, grid, tmp_path / "b", report=False)}
    for name in packed:
        for key in ("train_mse", "test_mse", "jac_trace", "ood_fidelity"):
            np.testing.assert_allclose(packed[name][key], solo[name][key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_a_workdir_of_another_sweep_is_refused_untouched(tmp_path):
    sweep.run_sweep(tiny(), [{}], tmp_path, sweep_name="one", report=False)
    before = (tmp_path / "results.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="different sweep"):
        sweep.run_sweep(tiny(steps=20), [{}], tmp_path, sweep_name="two", report=False)
    assert (tmp_path / "results.jsonl").read_bytes() == before


def sweep_cli(workdir, cache):
    """`python -m ae_jax.sweep` of configs/ae.py:smoke (one member, 40 steps) with compilation cache `cache`;
    returns the cache's files after it."""
    env = {**os.environ, "WANDB_MODE": "disabled", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",
           "AE_JAX_CACHE_MIN_COMPILE_S": "0"}  # every program cached, however fast it compiled
    out = subprocess.run([sys.executable, "-m", "ae_jax.sweep", "--config=configs/ae.py:smoke",
                          "--config.train.steps=40", "--config.model.code_size=8", "--config.wandb.mode=disabled",
                          f"--compilation_cache={cache}", f"--workdir={workdir}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def first_cli_run(tmp_path_factory):
    """(workdir, cache, the cache's files) of the first command on an empty cache."""
    workdir, cache = tmp_path_factory.mktemp("cli"), tmp_path_factory.mktemp("cache")
    return workdir, cache, sweep_cli(workdir, cache)


def test_cli_runs_a_config_file_and_writes_the_report(first_cli_run):
    workdir, _, _ = first_cli_run
    (record,) = read(workdir)
    assert record["config"]["model.code_size"] == 8 and record["metrics"]["steps"] == 40
    assert (workdir / "report.md").exists()


def test_a_repeated_sweep_loads_its_programs_from_the_persistent_cache(first_cli_run, tmp_path):
    _, cache, first = first_cli_run
    assert any("train_chunk" in name for name in first), first
    # Every program the first command compiled is in the cache, so the second compiles none.
    assert set(sweep_cli(tmp_path, cache)) == set(first)


# ----------------------------------------------------------------------------- the science it must show


def linear_ae(steps=8000, **overrides):
    c = tiny(steps=steps, **{"model.activation": "linear", "model.depth": 0, "train.learning_rate": 1e-2,
                             "train.batch_size": 256, "train.schedule": "cosine", **overrides})
    c.train.log_every = 500
    return c


@pytest.mark.parametrize("data, codes", [
    ({"data.name": "digits"}, [2, 8, 16, 32, 48]),
    ({"data.name": "manifold", "data.manifold.kind": "linear", "data.manifold.intrinsic_dim": 6,
      "data.manifold.ambient_dim": 16}, [1, 2, 3, 4, 5]),
    ({"data.name": "manifold", "data.manifold.kind": "sphere", "data.manifold.intrinsic_dim": 3,
      "data.manifold.ambient_dim": 12}, [1, 2, 3]),
])
def test_linear_autoencoder_matches_pca_k(tmp_path, data, codes):
    records = sweep.run_sweep(linear_ae(**data), axis("model.code_size", codes), tmp_path, report=False)
    for r in records:
        m = r["metrics"]
        assert r["config"]["model.code_size"] < m["data_rank"]
        assert abs(m["test_mse"] - m["pca_mse"]) <= 0.1 * m["pca_mse"], (r["name"], m["test_mse"], m["pca_mse"])


def test_linear_autoencoder_matches_pca_k_on_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    scales = np.array([3, 2, 1.5, 1, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05])
    x = (rng.normal(size=(700, 10)) * scales) @ basis.T + 1.0
    path = tmp_path / "user.npz"
    np.savez(path, x_train=x[:500].reshape(500, 2, 5), x_test=x[500:].reshape(200, 2, 5))
    records = sweep.run_sweep(linear_ae(**{"data.name": f"npz:{path}"}), axis("model.code_size", [1, 3, 6, 9]),
                              tmp_path / "w", report=False)
    for r in records:
        m = r["metrics"]
        assert abs(m["test_mse"] - m["pca_mse"]) <= 0.1 * m["pca_mse"], (r["name"], m)


def test_overcomplete_relu_autoencoder_is_identity_and_an_8_unit_one_is_not(tmp_path):
    c = tiny(steps=2000, **{"model.depth": 0, "model.activation": "relu", "train.batch_size": 128})
    c.train.log_every = 500
    c.diagnostics.jac_points = 50
    records = {r["config"]["model.code_size"]: r["metrics"]
               for r in sweep.run_sweep(c, axis("model.code_size", [8, 256]), tmp_path, report=False)}
    assert records[256]["regime"] == "identity", records[256]
    assert records[8]["regime"] != "identity", records[8]
    assert records[256]["jac_rank"] > 0.85 * records[256]["data_rank"] > records[8]["jac_rank"]


def test_a_member_driven_to_nan_is_recorded_diverged_and_its_group_mates_are_unaffected(tmp_path):
    c = tiny(steps=40)
    calm = sweep.run_sweep(c, axis("seed", [0, 2]), tmp_path / "calm", report=False)
    grid = zipped(axis("seed", [0, 1, 2]), axis("train.learning_rate", [1e-3, 1e30, 1e-3]))
    c.train.learning_rate = 1e-3
    mixed = {r["name"]: r for r in sweep.run_sweep(c, grid, tmp_path / "mixed", report=False)}
    bad = mixed["seed=1,learning_rate=1e+30"]
    assert bad["status"] == "diverged" and 0 <= bad["diverged_at"] < 40
    for r in calm:
        twin = mixed[f"seed={r['config']['seed']},learning_rate=0.001"]
        assert twin["status"] == "ok"
        for k in ("train_mse", "test_mse", "jac_trace", "ood_fidelity"):
            np.testing.assert_allclose(twin["metrics"][k], r["metrics"][k], rtol=1e-5, err_msg=k)


def test_loader_settings_do_not_change_the_sweep_identity():
    """A sweep started on the device loader may resume on grain (same numbers), but not with other sizes."""
    from ae_jax import workdir

    base = config_lib.flatten(config_lib.base_config().to_dict())
    other_loader = {**base, "data.loader": "grain", "data.transfer_mb": 4.0, "wandb.mode": "disabled"}
    other_model = {**base, "model.code_size": base["model.code_size"] + 1}
    ident = lambda cfg: workdir.sweep_identity("s", [("m", cfg)])  # noqa: E731
    assert ident(base) == ident(other_loader)
    assert ident(base) != ident(other_model)


def test_an_in_process_cli_call_leaves_the_persistent_cache_off():
    """conftest sets AE_JAX_COMPILATION_CACHE='': a CLI call inside pytest must not switch the whole test
    process onto the user's cache (shared with other processes), which JAX would then read for every test."""
    import jax

    assert sweep.default_compilation_cache() == ""
    assert sweep.main(["ae_jax.sweep", "--config=configs/ae.py:smoke", "--dry_run"]) == 0
    assert not jax.config.jax_compilation_cache_dir


def test_members_differing_below_six_digits_keep_distinct_names():
    """`:g` names would call 1e-3 and 1.0000001e-3 the same member and refuse the sweep."""
    members = sweep.expand(config_lib.base_config(), axis("train.learning_rate", [1e-3, 1.0000001e-3]))
    assert [m.name for m in members] == ["learning_rate=0.001", "learning_rate=0.0010000001"]


def test_a_shard_or_only_run_pads_its_members_to_the_whole_sweeps_bucket(tmp_path, capsys):
    """Groups form over the whole sweep before a shard (or --only) takes its members, so a packed member
    trains the same program (bucket sizes, objective) in a shard as in the full sweep."""
    cfg = tiny()
    cfg.train.pack_ratio = 4.0  # codes 5 and 8 share one bucket, padded to 8
    members = axis("model.code_size", [5, 8])
    for kwargs in ({}, {"shard": (0, 2)}, {"only": "code_size=5"}):
        sweep.run_sweep(cfg, members, tmp_path / "wd", dry_run=True, report=False, **kwargs)
        out = capsys.readouterr().out
        assert "code<=8" in out and "code<=5" not in out, (kwargs, out)
