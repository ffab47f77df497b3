"""experiments/manifold: the manifold geometry against known cases, and `:smoke` end to end."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from experiments import common

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments" / "manifold"


@pytest.fixture(scope="module")
def run():
    return importlib.import_module("experiments.manifold.run")


def test_manifold_distance_and_normal_probes_match_the_generator(run):
    """Clean points lie on the estimated manifold; normal probes sit exactly PROBE_NORM off it; the
    sphere's centre projection is at distance radius, a point on a sphere of radius 1.5 at 0.5."""
    from ae_jax import config as config_lib

    for kind, d in (("sphere", 3), ("linear", 4)):
        c = config_lib.base_config()
        c.data.name, c.data.manifold.kind, c.data.manifold.intrinsic_dim = "manifold", kind, d
        c.data.manifold.noise = 0.05
        clean = run.clean_data(c.data)
        man = run.Manifold(kind, d, clean.x_train)
        assert man.distance(clean.x_test).max() < 1e-5
        # the noisy data set is the clean one plus the noise (same basis, same z)
        from ae_jax import data as data_lib
        noisy = data_lib.load(c.data)
        assert 0.5 < np.std(noisy.x_test - clean.x_test) / 0.05 < 1.5
        x = np.asarray(clean.x_test[:50], np.float64)
        for name, y in run.probes(man, x, seed=0).items():
            dist = man.distance(y)
            if name == "normal":
                np.testing.assert_allclose(dist, run.PROBE_NORM, rtol=1e-4)
            assert (dist > 0.5 * run.PROBE_NORM).all() and (dist <= run.PROBE_NORM + 1e-6).all()
        if kind == "sphere":
            assert abs(man.radius - 1.0) < 1e-4
            centre = man.mu + man.centre_K @ man.basis_DK.T
            assert abs(man.distance(centre[None])[0] - 1.0) < 1e-4
            assert np.allclose(man.distance(centre + 1.5 * (x - centre)), 0.5, atol=1e-4)


def test_manifold_smoke_dae_finds_dimension_and_pulls_in(run, tmp_path):
    rows = run.main(["run.py", f"--config={EXP / 'config.py'}:smoke", f"--workdir={tmp_path}",
                     "--config.wandb.mode=disabled"])
    by = {(r["code"], r["dae"]): r for r in rows}
    dae = by[(32, 0.1)]
    assert abs(dae["jac_rank"] - 2) <= 1, dae  # a d=2 sphere: about two span directions pass
    assert dae["pull_ratio/isotropic"] < 0.5 and dae["pull_ratio/normal"] < 0.5, dae
    # projecting onto a densely sampled 2-d manifold is structure, not memorisation (the attractor radius
    # is capped by the data's own spacing; the fixed radius alone called this member memorizing)
    assert dae["regime"] == "structured", dae
    # a code below d leaves an error floor far above the overcomplete code's
    assert by[(1, 0.0)]["test_mse"] > 10 * by[(32, 0.0)]["test_mse"]
    assert json.loads((tmp_path / "manifold.json").read_text())[0]["kind"] == "sphere"
    text = (tmp_path / "analysis.md").read_text()
    assert "Verdict: **" in text and "| sphere | 2 | 32 | 0.1 |" in text
    assert (tmp_path / "figures" / "manifold_jac_rank.png").stat().st_size > 0
