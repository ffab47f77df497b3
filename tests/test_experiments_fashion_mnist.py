"""experiments/fashion_mnist: the config's parts, the analysis's verdicts on made-up records (no dataset),
and `:smoke` end to end (sweep, then `python -m experiments.fashion_mnist.analyze`) when the real
dataset is installed."""

import importlib
import os
from pathlib import Path

import pytest

from ae_jax import fashion_mnist, sweep
from ae_jax.config import apply_overrides
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "fashion_mnist" / "config.py"


@pytest.fixture(scope="module")
def run():
    return importlib.import_module("experiments.fashion_mnist.analyze")


@pytest.fixture(scope="module")
def cfg():
    return importlib.import_module("experiments.fashion_mnist.config")


def test_parts_are_what_the_readme_says(cfg):
    for part, n in (("overcomplete", 24), ("regularisers", 15), ("tsne", 6), ("vae", 12), ("linear", 9), ("converged", 9),
                    ("vae_long", 12)):
        config, overrides, _ = sweep.load_config_file(f"{CONFIG}:{part}")
        assert len(overrides) == n, part
        for o in overrides:
            apply_overrides(config, o)  # every member is a valid config (locked keys, checked values)
        assert config.data.n_train == cfg.N_TRAIN and ("usecases" in config) == (part == "tsne")
    full, overrides, _ = sweep.load_config_file(f"{CONFIG}:overcomplete,full")
    assert full.data.n_train == 0 and {o["model.depth"] for o in overrides if "model.depth" in o} == {0, 1, 2, 3}
    assert max(o["model.code_size"] for o in overrides) == 4 * 784
    with pytest.raises(ConfigError, match="unknown argument 'overcomplet'"):
        sweep.load_config_file(f"{CONFIG}:overcomplet")


def record(config: dict, **metrics) -> dict:
    base = {"noise.kind": "none", "noise.level": 0.0, "sparsity.kind": "none", "sparsity.k": 0,
            "sparsity.weight": 0.0, "model.activation": "relu", "model.depth": 0, "train.steps": 100,
            "vae.enabled": False, "vae.beta": 1.0, "data.n_train": 100}
    m = {"steps": 100, "final_total": 1.0, "converged": True, "regime": "structured", "input_dim": 784,
         "data_rank": 700, "jac_rank": 70.0, "span_ood_fidelity": 0.1, "perturb_fidelity": 0.1, "test_mse": 0.02,
         "pca_mse": 0.01, "kept_dims": 10.0, "denoise_gain": 0.5, "noise_gain": 0.4, "perturb_gain": 0.3}
    return {"config": dict(base, **config), "metrics": dict(m, **metrics)}


def test_kind_sorts_members_into_results(run):
    assert run.kind(record({})["config"]) == "plain"
    assert run.kind(record({"model.activation": "linear"})["config"]) == "linear"
    assert run.kind(record({"vae.enabled": True})["config"]) == "vae"
    assert run.kind(record({"sparsity.kind": "topk", "sparsity.k": 32})["config"]) == "regularised"
    assert run.kind(record({"noise.kind": "mask", "noise.level": 0.5})["config"]) == "regularised"
    tsne = {"usecases.tsne_points": 10, "noise.kind": "gaussian", "model.code_size": 32}
    assert run.kind(record(tsne)["config"]) == run.kind(record(dict(tsne, **{"noise.level": 0.2}))["config"]) == "tsne"
    assert run.regulariser(record({"sparsity.kind": "topk", "sparsity.k": 32})["config"]) == "top-k 32"


def test_linear_verdict_follows_the_worst_seed(run):
    close = [record({"model.code_size": 16}, test_mse=0.0102 + 0.0001 * s) for s in range(3)]
    lines, ver = run.linear(close)
    assert ver["ok"] and "1.0" in lines[0]
    far = close[:2] + [record({"model.code_size": 16}, test_mse=0.013)]  # one seed 30% above PCA-16
    assert not run.linear(far)[1]["ok"]


def test_linear_train_gap_is_against_the_pca_k_train_optimum(run):
    import numpy as np
    x = np.random.default_rng(0).normal(size=(200, 20)) * np.linspace(2.0, 0.1, 20)
    optimum = float(np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[:-4].sum() / 20)  # PCA-4's train MSE
    ms = [record({"model.code_size": 4}, train_mse=optimum * (1.0 + g), converged=c)
          for g, c in ((0.01, True), (0.02, True), (0.03, False))]
    lines, ver = run.linear(ms, x)
    assert abs(ver["worst_gap"] - 0.03) < 1e-9 and ver["converged"] == 2
    assert "2.00% (1.00-3.00%)" in lines[0] and "2/3 members pass" in ver["text"]


def test_overcomplete_verdict_needs_every_seed_identity_like_at_4x(run):
    small = [record({"model.code_size": 16}, jac_rank=5.0, span_ood_fidelity=-0.1) for _ in range(3)]
    big = [record({"model.code_size": 3136}, jac_rank=650.0, span_ood_fidelity=0.95) for _ in range(3)]
    assert run.overcomplete(small + big)[1]["ok"]
    one_off = big[:2] + [record({"model.code_size": 3136}, jac_rank=500.0, span_ood_fidelity=0.95)]
    assert not run.overcomplete(small + one_off)[1]["ok"]  # 500 / 700 < 0.85 in one seed
    wide_only = [record({"model.code_size": 256}) for _ in range(3)] + big  # no small code: no verdict
    assert "ok" not in run.overcomplete(wide_only)[1] and "not made" in run.overcomplete(wide_only)[1]["text"]


def test_regulariser_counts_as_pulled_off_only_beyond_the_seed_spread(run):
    plain = [record({"model.code_size": 3136}, jac_rank=r) for r in (600.0, 610.0, 620.0)]
    dae = [record({"model.code_size": 3136, "noise.kind": "gaussian", "noise.level": 0.2}, jac_rank=r)
           for r in (100.0, 120.0, 130.0)]
    l1 = [record({"model.code_size": 3136, "sparsity.kind": "l1", "sparsity.weight": 0.01}, jac_rank=r, l0=5.0)
          for r in (590.0, 605.0, 640.0)]
    _, ver = run.regularisers(plain + dae + l1)
    assert ver["pulled_off"] == {"gaussian 0.2": True, "l1 0.01": False}


@pytest.mark.skipif(os.environ.get("AE_JAX_SLOW_TESTS") != "1",
                    reason="the 784-d smoke takes minutes on 2 cores: set AE_JAX_SLOW_TESTS=1 (the reader's own "
                           "end-to-end test on the real dataset is in tests/test_fashion_mnist.py)")
@pytest.mark.skipif(bool(fashion_mnist.missing_files()) and not fashion_mnist.builder().is_prepared(),
                    reason=f"Fashion-MNIST is neither installed nor prepared ({fashion_mnist.INSTALL}, as root)")
def test_smoke_end_to_end(run, tmp_path):
    if not fashion_mnist.builder().is_prepared():
        fashion_mnist.prepare(str(tmp_path / "tfds"))
        data_dir = str(tmp_path / "tfds")
    else:
        data_dir = ""
    config, overrides, name = sweep.load_config_file(f"{CONFIG}:smoke")
    config = apply_overrides(config, {"wandb.mode": "disabled", "data.tfds_dir": data_dir})
    workdir = tmp_path / "smoke"
    records = sweep.run_sweep(config, overrides, workdir, sweep_name=name, report=False)
    assert [r["status"] for r in records] == ["ok"] * len(overrides)
    text = run.main(["analyze", str(workdir)]).read_text()
    for section in ("## Overcomplete", "## Linear AE against PCA-k", "## Regularisers", "## VAE", "## t-SNE"):
        assert section in text, section
    assert (workdir / "figures" / "tsne.png").exists()  # one plain code outside the t-SNE pair: no code-sweep figure


def test_overcomplete_trend_must_exceed_the_seed_spread(run):
    rows = []
    for code, ranks in ((16, (5.0, 6.0, 7.0)), (64, (6.5, 20.0, 30.0)), (3136, (650.0, 660.0, 670.0))):
        rows += [record({"model.code_size": code}, jac_rank=r, span_ood_fidelity=r / 700) for r in ranks]
    assert not run.overcomplete(rows)[1]["trend"]  # code 64's worst seed is below code 16's best
    rows[3] = record({"model.code_size": 64}, jac_rank=8.0, span_ood_fidelity=8.0 / 700)
    assert run.overcomplete(rows)[1]["trend"]
