"""The memorisation experiments (experiments/identity_crisis, experiments/attractors) and the fully
convolutional model they need: each `:smoke` through the one path (the sweep trains, `analyze.py` reads the
finished workdir), checked on the property it exists to show."""

import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import config as config_lib, data as data_lib, models, objectives, store, sweep, train
from ae_jax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"


def run_smoke(name: str, workdir: Path) -> list[dict]:
    """The `:smoke` sweep, then `python -m experiments.NAME.analyze WORKDIR`; returns the analysis' json."""
    config, overrides, sweep_name = sweep.load_config_file(f"{EXP / name / 'config.py'}:smoke")
    config.wandb.mode = "disabled"
    records = sweep.run_sweep(config, overrides, workdir, sweep_name=sweep_name, report=False)
    assert records and all(r["status"] == "ok" for r in records), [r["status"] for r in records]
    importlib.import_module(f"experiments.{name}.analyze").main(["analyze", str(workdir)])
    return json.loads((workdir / f"{name}.json").read_text())


def fullconv_config(depth=0, width=8, code_size=4):
    c = config_lib.base_config()
    c.model.kind, c.model.depth, c.model.width, c.model.code_size = "fullconv", depth, width, code_size
    c.model.code_activation = "linear"
    config_lib.validate(c)
    return c


def test_fullconv_keeps_the_image_size_and_can_be_the_identity():
    """Stride-1 convolutions only, no dense layer: with delta kernels the map is exactly the identity."""
    spec = models.model_spec(fullconv_config(), (8, 8, 1))
    params = models.init_params(spec, jax.random.key(0))
    assert set(params) == {"code", "out"} and params["code"]["kernel"].shape == (3, 3, 1, 4)
    delta_code = np.zeros((3, 3, 1, 4), np.float32)
    delta_code[1, 1, 0, 0] = 1.0
    delta_out = np.zeros((3, 3, 4, 1), np.float32)
    delta_out[1, 1, 0, 0] = 1.0
    ident = {"code": {"kernel": delta_code, "bias": np.zeros(4, np.float32)},
             "out": {"kernel": delta_out, "bias": np.zeros(1, np.float32)}}
    x = jax.random.uniform(jax.random.key(1), (5, 64))
    np.testing.assert_allclose(models.reconstruct(spec, ident, x), x, atol=1e-6)
    assert models.encode(spec, ident, x)["code"].shape == (5, 8 * 8 * 4)  # a feature map, not a vector
    with pytest.raises(ConfigError, match="image data"):
        models.model_spec(fullconv_config(), (64,))
    c = fullconv_config()
    c.vae.enabled = True
    with pytest.raises(ConfigError, match="fullconv"):
        models.model_spec(c, (8, 8, 1))


def test_fullconv_packed_member_trains_like_its_solo_self():
    """Channels beyond a member's own width / code size are masked: packed == solo, to float32 rounding."""
    x = np.asarray(jax.random.uniform(jax.random.key(2), (16, 64)), np.float32)
    hp = {k: np.zeros(1, np.float32) for k in train.traced_keys()}
    hp["train.learning_rate"] = np.full(1, 1e-2, np.float32)

    def fit(width, code_size, sizes):
        c = fullconv_config(depth=1, width=width, code_size=code_size)
        plan = train.Plan(models.model_spec(c, (8, 8, 1)), objectives.objective_spec(c), "adam",
                          "constant", 4, 20, 10)
        state, _ = train.fit(plan, np.array([3], np.uint32), hp, x, np.array([sizes], np.int32))
        net = jax.tree.map(lambda a: a[0], (state.params, state.masks))
        return np.asarray(models.reconstruct(plan.spec, net[0], jnp.asarray(x), net[1]))

    solo = fit(4, 2, (2, 4))
    packed = fit(8, 6, (2, 4))
    assert np.abs(solo - x).max() > 1e-3  # it trained to something, not the input
    np.testing.assert_allclose(packed, solo, atol=2e-5)


def test_identity_crisis_smoke_deep_fc_memorises_shallow_cnn_copies(tmp_path):
    results = run_smoke("identity_crisis", tmp_path)
    by = {(r["kind"], r["layers"]): r for r in results}
    assert set(by) == {("mlp", 1), ("mlp", 5), ("fullconv", 1), ("fullconv", 5)}
    fc1, fc5, cnn1 = by["mlp", 1], by["mlp", 5], by["fullconv", 1]
    x_train = np.asarray(data_lib.load(store.load(tmp_path)[0].config.data).x_train)
    assert len(x_train) == 1
    for r in (fc1, fc5):
        assert r["final_loss"] < 1e-6, (r["name"], r["final_loss"])  # trained to ~0 on its one example
        # the analysis ran the trained map from the saved parameters: f(x) is the training digit
        np.testing.assert_allclose(r["train_out"], x_train[0], atol=1e-4)
    # deep FC: every unseen input comes out as the training digit
    assert fc5["noise/corr_train"] > 0.95 and fc5["noise/corr_in"] < 0.2, fc5
    assert fc5["digits/corr_train"] > fc5["digits/corr_in"] + 0.3
    # 1-layer FC: identity along the example's direction, no identity (but not flat) off it
    assert fc1["gain_x"] > 0.9 and abs(fc1["off_trace"]) < 0.2 and fc1["off_norm"] > 0.3, fc1
    # 1-layer CNN: copies inputs it never saw, noise included
    assert cnn1["noise/corr_in"] > 0.8 > 0.4 > cnn1["noise/corr_train"], cnn1
    text = (tmp_path / "analysis.md").read_text()
    assert "Verdict: **reproduced**" in text and "| FC | 5 | 1 |" in text
    for stem in ("identity_crisis_outputs", "identity_crisis_correlation"):
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 10_000


def fake_member(tmp_path, **flat) -> store.Member:
    """A recorded member with the given flat config keys over the defaults (no parameters needed)."""
    c = config_lib.flatten(config_lib.base_config().to_dict()) | flat
    return store.Member(0, "m0", "ok", store.config_from_flat(c), {}, {}, tmp_path)


def test_analyses_refuse_members_they_cannot_read(tmp_path):
    """A workdir from another sweep is one ConfigError naming the member, before any measurement."""
    ic = importlib.import_module("experiments.identity_crisis.analyze")
    at = importlib.import_module("experiments.attractors.analyze")
    with pytest.raises(ConfigError, match="'m0' has model.kind 'conv'"):
        ic.check([fake_member(tmp_path, **{"model.kind": "conv"})])
    with pytest.raises(ConfigError, match="'m0' is not a plain mlp"):
        at.check([fake_member(tmp_path, **{"model.code_size": 8, "model.width": 16})])
    with pytest.raises(ConfigError, match="no config.attractors block"):
        at.check([fake_member(tmp_path, **{"model.code_size": 16, "model.width": 16})])
    with pytest.raises(ConfigError, match="results.jsonl"):
        at.main(["analyze", str(tmp_path)])


def test_attractor_measures_on_a_known_contraction():
    """f(z) = x + a (z - x) around one stored image x: spectral radius a, every start recovered."""
    at = importlib.import_module("experiments.attractors.analyze")
    x = np.asarray(jax.random.uniform(jax.random.key(4), (1, 64)), np.float32)
    for a, recovered in ((0.5, 1.0), (1.2, 0.0)):
        def path(net, z):
            return net["x"] + net["a"] * (z - net["x"])
        net = {"x": x, "a": np.float32(a)}
        np.testing.assert_allclose(at.spectral_radii(path, net, x), [a], rtol=1e-5)
        z = x + 0.1 * np.asarray(jax.random.normal(jax.random.key(5), (6, 64)), np.float32)
        end, snaps = at.iterate(path, net, z, 30)
        np.testing.assert_allclose(snaps[1], x + a * (z - x), rtol=1e-5)  # snapshot t=1 is f(z)
        rec = at.recovery(end, np.zeros(6, int), z, x, 0.05)
        assert rec["recovery"] == recovered and rec["nn"] == 1.0


def test_attractors_smoke_training_images_are_attractors(tmp_path):
    results = run_smoke("attractors", tmp_path)
    assert sorted(r["n_train"] for r in results) == [1, 10]
    for r in results:
        assert r["final_loss"] < 1e-4, (r["name"], r["final_loss"])
        assert len(r["rho"]) == r["n_train"] and r["rho_max"] < 1.0, (r["name"], r["rho"])  # all attractors
        light = r["recovery"]["gauss 0.1"]
        assert light["recovery"] >= 0.9, (r["name"], r["recovery"])
    one = next(r for r in results if r["n_train"] == 1)
    assert all(v["recovery"] == 1.0 for v in one["recovery"].values()), one["recovery"]  # one memory: all return
    assert "Verdict: **reproduced**" in (tmp_path / "analysis.md").read_text()
    assert (tmp_path / "figures" / "attractors_iterations.png").stat().st_size > 10_000
