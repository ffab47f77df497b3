"""experiments/manifold: the manifold geometry and the pull against known maps, and `:smoke` end to end
through the sweep CLI's path (`run_sweep`, then `python -m experiments.manifold.analyze`)."""

import importlib
import json
import types
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from ae_jax import config as config_lib, data as data_lib, sweep
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments" / "manifold"


@pytest.fixture(scope="module")
def analyze():
    return importlib.import_module("experiments.manifold.analyze")


def manifold_config(kind: str, d: int, noise: float = 0.05) -> ml_collections.ConfigDict:
    c = config_lib.base_config()
    c.data.name, c.data.manifold.kind, c.data.manifold.intrinsic_dim = "manifold", kind, d
    c.data.manifold.noise = noise
    return c


def projection(man, y_ND: np.ndarray) -> np.ndarray:
    """The exact nearest point on the estimated manifold: drop the off-span part, and on the sphere
    rescale the in-span part to the radius."""
    a, _ = man.split(y_ND)
    if man.kind == "sphere":
        a = man.radius * a / np.linalg.norm(a, axis=1, keepdims=True)
    return man.mu + (a + man.centre_K) @ man.basis_DK.T


def test_manifold_distance_and_normal_probes_match_the_generator(analyze):
    """Clean points lie on the estimated manifold; normal probes sit exactly PROBE_NORM off it; the
    sphere's centre projection is at distance radius, a point on a sphere of radius 1.5 at 0.5."""
    for kind, d in (("sphere", 3), ("linear", 4)):
        c = manifold_config(kind, d)
        clean = analyze.clean_data(c.data)
        man = analyze.Manifold(kind, d, clean.x_train)
        assert man.distance(clean.x_test).max() < 1e-5
        # the noisy data set is the clean one plus the noise (same basis, same z)
        noisy = data_lib.load(c.data)
        assert 0.5 < np.std(noisy.x_test - clean.x_test) / 0.05 < 1.5
        x = np.asarray(clean.x_test[:50], np.float64)
        for name, y in analyze.probes(man, x, seed=0).items():
            dist = man.distance(y)
            if name == "normal":
                np.testing.assert_allclose(dist, analyze.PROBE_NORM, rtol=1e-4)
            assert (dist > 0.5 * analyze.PROBE_NORM).all() and (dist <= analyze.PROBE_NORM + 1e-6).all()
        if kind == "sphere":
            assert abs(man.radius - 1.0) < 1e-4
            centre = man.mu + man.centre_K @ man.basis_DK.T
            assert abs(man.distance(centre[None])[0] - 1.0) < 1e-4
            assert np.allclose(man.distance(centre + 1.5 * (x - centre)), 0.5, atol=1e-4)


def test_pull_is_one_for_the_identity_and_zero_for_the_projection(analyze):
    """The pull's closed-form controls: f = identity leaves every probe where it was (ratio 1), the exact
    projection onto the manifold puts it on it (ratio 0); a map halfway between gives one half."""
    for kind, d in (("sphere", 2), ("linear", 3)):
        clean = analyze.clean_data(manifold_config(kind, d).data)
        man = analyze.Manifold(kind, d, clean.x_train)
        x = np.asarray(clean.x_test[:100], np.float64)
        probe = analyze.probes(man, x, seed=1)
        same = analyze.pull(lambda y: np.asarray(y, np.float64), man, x, probe)
        onto = analyze.pull(lambda y: projection(man, y), man, x, probe)
        half = analyze.pull(lambda y: 0.5 * (y + projection(man, y)), man, x, probe)
        for name in ("isotropic", "normal"):
            assert same[f"pull_ratio/{name}"] == pytest.approx(1.0, abs=1e-6)
            assert onto[f"pull_ratio/{name}"] < 1e-5
            # halfway to its nearest point a probe keeps that nearest point: exactly half as far
            assert half[f"pull_ratio/{name}"] == pytest.approx(0.5, abs=1e-4)
        assert same["dist_f_clean"] < 1e-5 and onto["dist_f_clean"] < 1e-5


def test_manifold_smoke_dae_finds_dimension_and_pulls_in(analyze, tmp_path):
    config, overrides, name = sweep.load_config_file(str(EXP / "config.py") + ":smoke")
    config.wandb.mode = "disabled"
    records = sweep.run_sweep(config, overrides, tmp_path, sweep_name=name, report=False)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [r["status"] for r in records]
    text = analyze.main(["analyze", str(tmp_path)]).read_text()
    rows = json.loads((tmp_path / "manifold.json").read_text())
    by = {(r["code"], r["dae"]): r for r in rows}
    assert set(by) == {(1, 0.0), (32, 0.0), (1, 0.1), (32, 0.1)}
    dae, plain = by[(32, 0.1)], by[(32, 0.0)]
    assert abs(dae["jac_rank"] - 2) <= 1, dae  # a d=2 sphere: about two span directions pass
    assert dae["pull_ratio/isotropic"] < 0.5 and dae["pull_ratio/normal"] < 0.5, dae
    # the pull is measured on the stored map: denoising pulls off-manifold points in further than the
    # plain AE with the same spare code, which keeps more of the 32 noisy directions
    assert dae["pull_ratio/isotropic"] < 0.8 * plain["pull_ratio/isotropic"], (dae, plain)
    assert dae["jac_rank"] < plain["jac_rank"]
    # a code below d leaves an error floor far above the overcomplete code's
    assert by[(1, 0.0)]["test_mse"] > 10 * plain["test_mse"]
    # the library's metrics are the records', not recomputed
    recorded = {r["name"]: r["metrics"] for r in records}
    assert all(r["jac_rank"] == recorded[r["member"]]["jac_rank"] for r in rows)
    assert "Verdict: **" in text and "| sphere | 2 | 32 | 0.1 |" in text
    for stem in ("manifold_jac_rank", "manifold_test_mse", "manifold_pull"):
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 10_000


def test_manifold_analysis_refuses_data_it_cannot_measure(analyze):
    """The pull needs the generator's own points: other data, or rescaled or subsampled manifold data,
    is a one-line error naming the key."""
    def member(**data):
        c = manifold_config("sphere", 2)
        c.data.update(data)
        return types.SimpleNamespace(name="m", config=c)

    analyze.check_members([member()])
    with pytest.raises(ConfigError, match="data.manifold.kind"):
        analyze.check_members([member(name="digits")])
    with pytest.raises(ConfigError, match="data.scale, data.n_train"):
        analyze.check_members([member(n_train=100)])
