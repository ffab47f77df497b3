"""The linear and overcomplete experiments (experiments/*/): each `:smoke` end to end, and the closed forms."""

import importlib
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from ae_jax import config as config_lib, models, objectives, sweep, train
from experiments import common

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"


def smoke_sweep(name: str, workdir: Path) -> list[dict]:
    config, overrides, sweep_name = sweep.load_config_file(str(EXP / name / "config.py") + ":smoke")
    config.wandb.mode = "disabled"
    return sweep.run_sweep(config, overrides, workdir, sweep_name=sweep_name)


def run_main(name: str, workdir: Path, *flags: str):
    run = importlib.import_module(f"experiments.{name}.run")
    return run.main(["run.py", f"--config={EXP / name / 'config.py'}:smoke", f"--workdir={workdir}",
                     "--config.wandb.mode=disabled", *flags])


def test_linear_pca_smoke_matches_pca_k(tmp_path):
    records = smoke_sweep("linear_pca", tmp_path)
    assert {r["config"]["data.name"] for r in records} == {"digits", "manifold"}
    for r in records:
        m = r["metrics"]
        assert r["config"]["model.code_size"] < m["data_rank"]
        assert abs(m["test_mse"] / m["pca_mse"] - 1) < 0.1, (r["name"], m["test_mse"], m["pca_mse"])
    importlib.import_module("experiments.linear_pca.analyze").main(["analyze.py", str(tmp_path)])
    text = (tmp_path / "analysis.md").read_text()
    assert "| 16 | " in text and "Verdict" in text
    assert (tmp_path / "figures" / "linear_pca.png").stat().st_size > 0
    assert (tmp_path / "report.md").exists()


def test_linear_decay_closed_form_is_a_stationary_point_of_the_library_loss():
    """The derivation in experiments/linear_decay/README.md, checked on the library's own loss_fn: the
    balanced factorisation of sum_i (1 - lambda/ev_i)_+ u_i u_i^T (covariance normalised by N, any mean)
    has zero gradient; the 1/2-MSE convention's weights (1 - 2 lambda/ev) do not."""
    run = importlib.import_module("experiments.linear_decay.run")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 6)) * [2.0, 1.5, 1.0, 0.6, 0.3, 0.1] + 3.0).astype(np.float32)
    c = config_lib.base_config()
    c.model.activation, c.model.depth, c.model.code_size = "linear", 0, 8
    plan = train.Plan(models.model_spec(c, (6,)), objectives.objective_spec(c), "adam", "constant", 8, 1, 1)
    like = jax.tree.map(np.asarray, models.init_params(plan.spec, jax.random.key(0)))
    mu, evals, evecs = run.covariance_eigen(x)
    lam = 0.5
    good = run.closed_form_params(like, mu, evecs, run.closed_form_weights(evals, lam))
    bad = run.closed_form_params(like, mu, evecs, run.closed_form_weights(evals, lam, factor=2.0))
    assert 0 < (run.closed_form_weights(evals, lam) > 0).sum() < 6  # some directions switched off
    loss_good, grad_good = run.full_batch_loss_and_grad(plan, good, x, lam)
    loss_bad, grad_bad = run.full_batch_loss_and_grad(plan, bad, x, lam)
    assert grad_good < 1e-4 < 0.1 < grad_bad
    assert loss_good < loss_bad


def test_linear_decay_smoke_learns_one_minus_lambda_over_eigenvalue(tmp_path):
    results = run_main("linear_decay", tmp_path)
    assert len(results) == 2
    for r in results:
        closed, learned = np.array(r["closed_form"]), np.array(r["learned_sv"])
        assert np.abs(learned[:24] - closed[:24]).max() < 0.05, (r["weight_decay"], learned[:12], closed[:12])
        assert r["loss_and_grad"]["closed form"]["grad_norm"] < 1e-4
        assert r["loss_and_grad"]["closed form"]["loss"] <= r["loss_and_grad"]["learned"]["loss"] + 1e-4
    assert json.loads((tmp_path / "linear_decay.json").read_text())[0]["weight_decay"] == 0.05
    assert (tmp_path / "figures" / "linear_decay.png").exists() and (tmp_path / "analysis.md").exists()


def test_linear_dynamics_smoke_learns_directions_in_eigenvalue_order(tmp_path):
    r = run_main("linear_dynamics", tmp_path)
    t_half = np.array(r["t_half"])[0]
    assert np.all(np.diff(t_half) > 0), t_half  # largest eigenvalue first
    # Saxe et al.: t_half = ln(1/s0 - 1) / (4 lr ev), the same t_half * ev for every direction
    assert r["spread_t_half_times_ev"] < 0.1, r["t_half_times_ev"]
    assert [s["k"] for s in r["stops"]][:3] == [1, 2, 3]
    assert (tmp_path / "figures" / "linear_dynamics.png").exists()
    assert np.load(tmp_path / "trajectories.npz")["strengths"].shape[-1] == 64


def test_linear_dynamics_refuses_members_that_differ_in_more_than_the_seed(tmp_path):
    with pytest.raises(common.ConfigError):
        run_main("linear_dynamics", tmp_path, "--config.train.optimizer=adam")


def test_overcomplete_smoke_runs_and_the_wide_code_copies_more(tmp_path):
    records = smoke_sweep("overcomplete", tmp_path)
    by = {(r["config"]["model.depth"], r["config"]["model.code_size"]): r["metrics"] for r in records}
    assert len(by) == 4
    assert by[(0, 256)]["ood_fidelity"] > by[(0, 8)]["ood_fidelity"]
    assert by[(0, 256)]["jac_rank"] > by[(0, 8)]["jac_rank"]
    importlib.import_module("experiments.overcomplete.analyze").main(["analyze.py", str(tmp_path)])
    assert "Verdict" in (tmp_path / "analysis.md").read_text()
    assert (tmp_path / "figures" / "overcomplete_lines.png").exists()
    assert any(p.name.startswith("phase_diagram") for p in (tmp_path / "figures").iterdir())
