"""experiments/use_cases: the denoising controls in closed form, the t-SNE scores, and `:smoke` end to end
through the sweep CLI's path (`run_sweep`, then `python -m experiments.use_cases.analyze`)."""

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ae_jax import sweep
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments" / "use_cases"


@pytest.fixture(scope="module")
def run():
    return importlib.import_module("experiments.use_cases.analyze")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The `:smoke` sweep's workdir and records (trained once for the module)."""
    workdir = tmp_path_factory.mktemp("use_cases_smoke")
    config, overrides, name = sweep.load_config_file(str(EXP / "config.py") + ":smoke")
    config.wandb.mode = "disabled"
    return workdir, sweep.run_sweep(config, overrides, workdir, sweep_name=name, report=False)


def low_rank_data(n=600, d=12, seed=0):
    """Correlated data with two constant dimensions, like digits' blank pixels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)) @ rng.normal(size=(6, d)) * 0.3 + rng.normal(size=(n, d)) * 0.05
    x[:, :2] = 0.5
    return x.astype(np.float32)


def test_wiener_gain_is_its_closed_form_and_the_best_linear_denoiser(run):
    x = low_rank_data()
    gains = []
    for s in (0.05, 0.2, 0.6):
        mu, w = run.wiener_filter(x, s)
        closed = run.wiener_gain_closed_form(x, s)
        # The noise integrated out on the training set itself is exactly tr(W)/D.
        assert run.expected_linear_gain(x, mu, w, s) == pytest.approx(closed, rel=1e-9)
        assert closed == pytest.approx(np.trace(w) / x.shape[1], rel=1e-9)
        # Monte Carlo with fresh draws agrees with the exact expectation.
        e = run.heldout_noise(x.shape, s, 40, seed=7)
        measured = run.denoise_gain(lambda y: run.apply_linear(mu, w, y), x, e)
        assert measured == pytest.approx(closed, rel=0.03)
        # Optimal among linear denoisers: any symmetric perturbation of W, the identity and PCA do worse.
        rng = np.random.default_rng(1)
        for _ in range(5):
            p = rng.normal(size=w.shape) * 0.02
            assert run.expected_linear_gain(x, mu, w + p + p.T, s) > closed
        assert run.expected_linear_gain(x, mu, np.eye(x.shape[1]), s) == pytest.approx(1.0)
        mu_k, p_k = run.pca_projector(x, 6)
        assert run.expected_linear_gain(x, mu_k, p_k, s) > closed
        gains.append(closed)
    assert 1 > gains[0] > gains[1] > gains[2] > 0  # more noise, more of it removed


def test_identity_gain_is_one_and_heldout_noise_is_fresh_and_reproducible(run):
    x = low_rank_data()
    e = run.heldout_noise(x.shape, 0.3, 3, seed=5)
    assert e.shape == (3,) + x.shape and e.std() == pytest.approx(0.3, rel=0.02)
    assert run.denoise_gain(lambda y: y, x, e) == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(e, run.heldout_noise(x.shape, 0.3, 3, seed=5))
    assert not np.allclose(e[0], e[1])
    assert not np.allclose(e / 0.3, run.heldout_noise(x.shape, 0.2, 3, seed=5) / 0.2)  # levels draw apart
    # A map that returns the clean image whatever the noise has gain 0.
    assert run.denoise_gain(lambda y: x, x, e) == 0.0


def test_trustworthiness_and_knn_scores(run):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 10)) * 4
    y = np.repeat(np.arange(4), 50)
    x = centres[y] + rng.normal(size=(200, 10))
    is_test = np.arange(200) % 4 == 0
    assert run.trust(x, x, 5) == pytest.approx(1.0)
    z = x[:, :2] * 3.0 + 1.0  # a fixed 2-D map, scored twice
    assert run.trust(x, z, 5) == run.trust(x, z.copy(), 5)
    assert 0.0 <= run.trust(x, rng.normal(size=(200, 2)), 5) < run.trust(x, x[:, :5], 5) <= 1.0
    assert run.knn_heldout(x, y, is_test, 5) == 1.0
    assert run.knn_cv(rng.normal(size=(200, 2)), y, 5, 4) < 0.5  # chance is 0.25


def test_smoke_denoises_held_out_noise_and_embeds_codes(run, smoke):
    workdir, records = smoke
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [r["status"] for r in records]
    text = run.main(["analyze", str(workdir)]).read_text()
    out = json.loads((workdir / "use_cases.json").read_text())
    den, tsne = out["denoising"], out["tsne"]
    levels = den["levels"]
    g = {k: np.array(v) for k, v in den["gains"].items()}
    assert np.allclose(g["identity"], 1.0, atol=1e-6)
    seen = [i for i, s in enumerate(levels) if s >= max(den["train_levels"])]
    assert len(seen) >= 2 and any(s not in den["train_levels"] for s in np.array(levels)[seen])
    # Denoising: the DAE removes most held-out noise at and above its training level, the plain
    # overcomplete AE little of it (it is close to the identity).
    assert np.all(g["DAE s=0.2, code 256"][seen] < g["AE, code 256"][seen])
    assert np.all(g["AE, code 256"][seen] < 1.0)
    assert np.all(g["DAE s=0.2, code 256"][seen] < 0.5)
    # The Wiener filter fitted at each level is the best linear denoiser, and measures as its closed form.
    for k in ("Wiener (fitted at s=0.2)", "PCA-32 projector"):
        assert np.all(g["Wiener (fitted at each s)"] <= g[k] + 1e-9), k
    for c in den["wiener_checks"]:
        assert c["expected_train"] == pytest.approx(c["closed_form"], rel=1e-9)
        assert c["empirical_test"] == pytest.approx(c["expected_test"], rel=0.05)
    # t-SNE: scores in range; the raw map scored against the raw inputs twice gives the same number.
    assert set(tsne) == {"raw", "PCA-32", "AE, code 32", "DAE s=0.2, code 32"}
    for name, r in tsne.items():
        for key in ("trust_raw", "trust_own", "knn_heldout", "knn_cv"):
            assert all(0.0 <= v <= 1.0 for v in r[key]), (name, key)
        assert np.mean(r["trust_raw"]) > 0.8 and np.mean(r["knn_cv"]) > 0.5, name  # chance is 0.1
        assert r["dims"] == (64 if name == "raw" else 32)
    assert tsne["raw"]["trust_raw"] == tsne["raw"]["trust_own"]
    # Not exactly 1: digits has tied distances, and sklearn ranks ties by index.
    assert tsne["raw"]["code_trust_raw"][0] > 0.9999
    assert tsne["PCA-32"]["code_trust_raw"][0] > 0.99  # PCA-32 keeps 96.7% of digits' train variance
    # the stored encoders' codes (their own 32 units, not the group's padding) keep the raw neighbourhoods
    assert tsne["DAE s=0.2, code 32"]["code_trust_raw"][0] > 0.95
    assert "## Verdict" in text and "| Wiener (fitted at each s) |" in text
    for stem in ("denoise_examples", "denoise_gain", "tsne"):
        assert (workdir / "figures" / f"{stem}.png").stat().st_size > 10_000


def test_bad_usecases_key_is_one_line_naming_it(run, smoke, tmp_path):
    """The evaluation keys travel with the members' records; a bad one stops the analysis before it
    measures anything, naming the key, and leaves the workdir's files as they were."""
    workdir, _ = smoke
    results = (workdir / "results.jsonl").read_text()
    (tmp_path / "results.jsonl").write_text(results.replace('"usecases.trust_neighbors": 10,',
                                                            '"usecases.trust_neighbors": 400,'))
    shutil.copytree(workdir / "members", tmp_path / "members")
    with pytest.raises(ConfigError, match=r"config.usecases.trust_neighbors: must be in \[1, 200\)"):
        run.main(["analyze", str(tmp_path)])
    assert not (tmp_path / "analysis.md").exists() and not (tmp_path / "use_cases.json").exists()
