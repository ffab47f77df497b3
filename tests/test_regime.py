"""The regime rule on data sets other than digits (issue 4): a 4x overcomplete plain AE is `identity`, the
denoising and top-k AEs at the same size are `structured`, a deep net trained on one example is
`memorizing`, on a user's own npz file and on a synthetic manifold, not only where it was calibrated."""

import numpy as np
import pytest

from ae_jax import config as config_lib, sweep

PLAIN, DAE, TOPK = {}, {"noise.kind": "gaussian", "noise.level": 0.2}, {"sparsity.kind": "topk", "sparsity.k": 8}


def user_npz(path):
    """What a user might bring: a 3-d nonlinear manifold in R^24 plus 5% isotropic noise (full rank)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 3))
    a, b = rng.normal(size=(3, 24)), rng.uniform(0, 2 * np.pi, 24)
    x = (np.sin(z @ a + b) + 0.05 * rng.normal(size=(2000, 24))).astype(np.float32)
    np.savez(path, x_train=x[:1500], x_test=x[1500:])
    return f"npz:{path}", 24


def sphere(_):
    return "manifold", 32  # the 4-sphere in R^32 of the base config: data rank 5, intrinsic dimension 4


def regimes(data_name, dim, tmp_path, members, **overrides):
    c = config_lib.base_config()
    c.name, c.wandb.mode, c.data.name = "regime", "disabled", data_name
    c.model.code_size, c.model.depth, c.model.activation = 4 * dim, 0, "relu"
    c.train.steps, c.train.learning_rate, c.train.log_every = 4000, 3e-3, 1000
    c.diagnostics.attractor_iters = 20
    c = config_lib.apply_overrides(c, {k.replace("__", "."): v for k, v in overrides.items()})
    records = sweep.run_sweep(c, members, tmp_path / "run", sweep_name="regime")
    return [r["metrics"] for r in records]


@pytest.mark.parametrize("make_data", [user_npz, sphere])
def test_overcomplete_is_identity_regularised_are_structured(make_data, tmp_path):
    data_name, dim = make_data(tmp_path / "user.npz")
    plain, dae, topk = regimes(data_name, dim, tmp_path, [PLAIN, DAE, TOPK])
    summary = {k: (m["regime"], round(m["jac_rank"], 1), m["data_rank"], round(m["span_ood_fidelity"], 2))
               for k, m in zip(("plain", "dae", "topk"), (plain, dae, topk))}
    assert plain["regime"] == "identity", summary
    assert dae["regime"] == "structured" and topk["regime"] == "structured", summary
    assert dae["jac_rank"] < plain["jac_rank"] and topk["jac_rank"] <= 8 + 1e-6, summary


def test_deep_net_on_one_example_is_memorizing(tmp_path):
    data_name, dim = user_npz(tmp_path / "user.npz")
    (m,) = regimes(data_name, dim, tmp_path, [{}], data__n_train=1, model__depth=6, model__width=64,
                   model__code_size=dim, train__steps=500, train__learning_rate=1e-3)
    assert m["train_mse"] < 1e-3 and m["regime"] == "memorizing", m
