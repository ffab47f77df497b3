"""The failure-cases experiment (experiments/failure_cases): its `:smoke` sweep end to end through
`run_sweep`, the defining property of the linear case (a linear AE with code = D copies the data's span),
the residual model kinds registered from the experiment folder, and its analysis."""

import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import sweep
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments" / "failure_cases"


def test_failure_cases_smoke_linear_code_d_copies_and_residual_nets_train(tmp_path):
    config, overrides, name = sweep.load_config_file(str(EXP / "config.py") + ":smoke")
    config.wandb.mode = "disabled"
    records = sweep.run_sweep(config, overrides, tmp_path, sweep_name=name, report=False)
    assert all(r["status"] == "ok" for r in records), [r["status"] for r in records]
    part = lambda p: [r for r in records if r["config"]["failure.part"] == p]  # noqa: E731
    linear, length, depth = part("linear"), part("length"), part("depth")
    assert len(linear) == 3 and len(length) == 3 and len(depth) == 6
    # The seed: a linear AE whose code is as wide as the input copies (no weight decay, 400 Adam steps).
    for r in linear:
        m = r["metrics"]
        assert m["regime"] == "identity", (r["config"]["seed"], m["regime"])
        assert m["span_ood_fidelity"] > 0.9 and m["perturb_fidelity"] > 0.9 and m["test_fvu"] < 0.01
    # The residual kinds train through the sweep like the plain MLP: both learn the data (FVU well below the
    # train mean's 1) and record their steps and final loss.
    kinds = {r["config"]["model.kind"] for r in depth}
    assert kinds == {"mlp", "resmlp_ln"}
    assert all(r["metrics"]["test_fvu"] < 0.8 and r["metrics"]["steps"] == 200 for r in depth)

    analyze = importlib.import_module("experiments.failure_cases.analyze")
    text = analyze.main(["analyze.py", str(tmp_path)]).read_text()
    for heading in ("## 1. A linear AE", "## 2. A ReLU AE", "## 3. Depth at matched train loss", "## Verdict"):
        assert heading in text
    assert "| 64 | 0.01 | 400 | identity 3/3 |" in text  # code 64, lr, steps, every seed identity
    for stem in ("failure_linear", "failure_length", "failure_depth"):
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 10_000


def test_masked_layer_norm_is_layer_norm_of_the_live_units():
    """Packing: a member's own hidden units are normalised as in its solo net, padding stays exactly 0."""
    variant = importlib.import_module("experiments.failure_cases.variant")
    import flax.linen as nn

    h = jax.random.normal(jax.random.key(0), (5, 8)) * 3.0 + 1.0
    live = jnp.array([1.0] * 6 + [0.0] * 2)
    ln = variant.MaskedLayerNorm()
    params = ln.init(jax.random.key(1), h, {"hidden": live})
    out = ln.apply(params, h * live, {"hidden": live})
    ref = nn.LayerNorm(epsilon=1e-6).apply({"params": {"scale": jnp.ones(6), "bias": jnp.zeros(6)}}, h[:, :6])
    np.testing.assert_allclose(out[:, :6], ref, atol=1e-5)
    assert np.all(np.asarray(out[:, 6:]) == 0.0)


def test_failure_cases_bad_argument_is_a_config_error():
    config = importlib.import_module("experiments.failure_cases.config")
    with pytest.raises(ConfigError, match="unknown argument 'deep'"):
        config.get_sweep("deep")
    analyze = importlib.import_module("experiments.failure_cases.analyze")
    with pytest.raises(ConfigError, match="usage"):
        analyze.main(["analyze.py"])
