"""Calibration suite: maps whose regime is known get exactly that label on three datasets.

The thresholds of ae_jax/regime.py were chosen on these maps (docs/regime.md has the table, made by
`python tests/test_calibration.py`). Datasets: sklearn digits (64-d, 3 constant pixels); a synthetic
3-d manifold (sines of a uniform latent) spanning a 10-d subspace of R^64, so 54 directions are exactly
constant; and 784-d synthetic 28x28 images (two Gaussian blobs centred in the middle 12x12, N(0, 0.05^2)
noise on the central 20x20 pixels and N(0, 0.01^2) on the 4-pixel border: 368 near-constant pixels,
none exactly constant). The closed-form maps
go through `diagnostics.evaluate` as parameters of one function; networks are untrained (`models`) or
trained by `sweep.run_sweep` on the same data saved as an npz file.
"""

import functools
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import data as data_lib, diagnostics as dg, models, regime, sweep
from ae_jax.config import base_config


# ----------------------------------------------------------------------------- datasets


@functools.lru_cache(maxsize=None)
def digits():
    ds = data_lib.load(base_config().data)
    return ds.x_train, ds.x_test, (8, 8, 1)


@functools.lru_cache(maxsize=None)
def manifold(n_train=1347, n_test=450, seed=1):
    # digits' sizes and shape: programs compiled for one are reused for the other
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1.0, 1.0, (n_train + n_test, 3))
    a, b = 1.5 * rng.normal(size=(3, 10)), rng.uniform(0.0, 2 * np.pi, 10)
    q, _ = np.linalg.qr(rng.normal(size=(64, 10)))
    x = (np.sin(z @ a + b) @ q.T).astype(np.float32)
    return x[:n_train], x[n_train:], (8, 8, 1)


@functools.lru_cache(maxsize=None)
def images784(n_train=1000, n_test=300, seed=2):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    yy, xx = np.mgrid[0:28, 0:28]
    img = np.zeros((n, 28, 28))
    for _ in range(2):
        cy, cx = rng.uniform(8, 20, (2, n, 1, 1))
        width, amp = rng.uniform(1.5, 3.5, (n, 1, 1)), rng.uniform(0.3, 1.0, (n, 1, 1))
        img += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
    std = np.full((28, 28), 0.01)  # the 4-pixel border: near-constant, near zero
    std[4:24, 4:24] = 0.05
    x = (img + std * rng.normal(size=img.shape)).reshape(n, 784).astype(np.float32)
    return x[:n_train], x[n_train:], (28, 28, 1)


DATASETS = {"digits": digits, "manifold": manifold, "images784": images784}

# The cases below cost most of this module's CPU time (compiling the diagnostics of convolutional nets,
# training a 784-d linear autoencoder); they run when this variable is set to 1, and are skipped with a
# message otherwise.
FULL = os.environ.get("AE_JAX_FULL_CALIBRATION") == "1"
full_only = pytest.mark.skipif(not FULL, reason="heavy calibration case: set AE_JAX_FULL_CALIBRATION=1")


def low_rank_plus_noise(x_tr, x_te, k=6, noise_share=1e-4, seed=3):
    """The data projected onto its top k principal directions, plus isotropic noise holding `noise_share`
    of the total variance: rank k signal, full-rank span, effective rank k."""
    mu, ev, u, _ = dg.pca(x_tr)
    p = u[:, :k] @ u[:, :k].T
    sigma = math.sqrt(noise_share * ev[:k].sum() / x_tr.shape[1])
    rng = np.random.default_rng(seed)
    noisy = lambda x: (mu + (x - mu) @ p + sigma * rng.normal(size=x.shape)).astype(np.float32)
    return noisy(x_tr), noisy(x_te)


def diag_cfg(d):
    """The base diagnostics, lighter: Jacobians of 784-d maps cost D forward passes per point."""
    c = base_config().diagnostics
    c.probe = False
    c.jac_points = 8 if d <= 100 else 1
    c.attractor_iters, c.attractor_points, c.ood_samples = 20, 64, 512
    return c


# ----------------------------------------------------------------------------- closed-form maps


def closed_form(p, x_BD):
    """c + (x - mu) W + b * (the nearest training example): every closed-form map below is one of these."""
    t = p["t"]
    d2 = jnp.sum(x_BD ** 2, 1)[:, None] - 2 * x_BD @ t.T + jnp.sum(t ** 2, 1)[None]
    return p["c"] + (x_BD - p["mu"]) @ p["W"] + p["b"] * t[jnp.argmin(d2, axis=1)]


def raw_code(p, x_BD):
    return x_BD


# name: (expected regime, why)
EXPECTED = {
    "identity": "identity",
    "span_projector": "identity",  # the identity on every direction the data varies in
    "pca2": "structured",
    "shrink0.9": "identity",  # mu + 0.9 (x - mu): copies everything at 90%
    "shrink0.1": "collapsed",  # mu + 0.1 (x - mu): outputs within 10% of the spread around the mean
    "wiener": "structured",
    "nearest_train": "memorizing",
    "train_mean": "collapsed",
}


def closed_form_maps(x_tr):
    """{name: (c, mu, W, b)} in float64; b = 1 only for the nearest-training-example map."""
    mu, ev, u, r = dg.pca(x_tr)
    d = x_tr.shape[1]
    eff = dg.effective_rank(x_tr)
    lin = lambda w: (mu, mu, w, 0.0)
    # C (C + s^2 I)^-1 at the noise level s^2 = lambda_ceil(eff/2): it passes half of the effective
    # directions at gain above 1/2 and damps the rest, whatever the data's scale
    s2 = ev[max(1, math.ceil(eff / 2)) - 1]
    return {
        "identity": lin(np.eye(d)),
        "span_projector": lin(u[:, :r] @ u[:, :r].T),
        "pca2": lin(u[:, :2] @ u[:, :2].T),
        "shrink0.9": lin(0.9 * np.eye(d)),
        "shrink0.1": lin(0.1 * np.eye(d)),
        "wiener": lin(u @ np.diag(ev / (ev + s2)) @ u.T),
        "nearest_train": (np.zeros(d), mu, np.zeros((d, d)), 1.0),
        "train_mean": lin(np.zeros((d, d))),
    }


def evaluate_closed_form(x_tr, x_te, maps):
    """{name: metrics}, every map one member of a single `evaluate` group."""
    names = list(maps)
    stack = lambda i: jnp.asarray(np.stack([np.asarray(maps[n][i], np.float64) for n in names]), jnp.float32)
    params = {"c": stack(0), "mu": stack(1), "W": stack(2), "b": stack(3),
              "t": jnp.broadcast_to(jnp.asarray(x_tr), (len(names),) + x_tr.shape)}
    res = dg.evaluate(closed_form, raw_code, params, x_tr, x_te, None, None, [x_tr.shape[1]] * len(names),
                      diag_cfg(x_tr.shape[1]), seed=3)
    return dict(zip(names, res))


def summary(m):
    keys = ("test_fvu", "gen_gap", "pca_kept_fvu", "span_ood_fidelity", "perturb_fidelity", "perturb_gain",
            "const_ratio", "attractor_fraction", "snap_fraction")
    passed = [k for k, v in regime.evidence(m).items() if v]
    return f"{m['regime']} (passed {passed}): " + ", ".join(f"{k}={m[k]:.3g}" for k in keys)


@pytest.fixture(scope="module", params=sorted(DATASETS))
def closed(request):
    x_tr, x_te, _ = DATASETS[request.param]()
    return request.param, evaluate_closed_form(x_tr, x_te, closed_form_maps(x_tr))


def test_closed_form_maps(closed):
    name, res = closed
    wrong = {k: summary(m) for k, m in res.items() if m["regime"] != EXPECTED[k]}
    assert not wrong, f"{name}: {wrong}"


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_low_rank_plus_noise_signal_projection_is_structured_identity_is_identity(dataset):
    """The projection onto the signal subspace removes the noise, copies every direction of an
    effective span of 6, and must stay `structured`; the identity beside it copies the noise too."""
    x_tr, x_te = low_rank_plus_noise(*DATASETS[dataset]()[:2])
    mu, _, u, r = dg.pca(x_tr)
    assert dg.effective_rank(x_tr) == 6 and r > 6
    res = evaluate_closed_form(x_tr, x_te, {"identity": (mu, mu, np.eye(len(mu)), 0.0),
                                            "signal": (mu, mu, u[:, :6] @ u[:, :6].T, 0.0)})
    assert res["identity"]["regime"] == "identity", summary(res["identity"])
    assert res["signal"]["regime"] == "structured", summary(res["signal"])
    assert res["signal"]["kept_dims"] == pytest.approx(6.0, abs=1e-3)


# ----------------------------------------------------------------------------- networks


def untrained(kind, shape, x_tr, x_te, seed=0):
    """Metrics of a freshly initialised autoencoder of `kind`, as small as the kind allows: compiling the
    diagnostics of a convolutional net costs seconds per layer on a loaded CPU."""
    c = base_config()
    c.model.kind = kind
    c.model.depth, c.model.width, c.model.code_size = {"mlp": (1, 128, 32), "conv": (0, 0, 16),
                                                        "fullconv": (1, 8, 2)}[kind]
    c.model.channels = (8,)
    spec = models.model_spec(c, shape)
    params = jax.tree.map(lambda a: a[None], models.init_params(spec, jax.random.key(seed)))
    (m,) = dg.evaluate(lambda p, x: models.reconstruct(spec, p, x), lambda p, x: models.encode(spec, p, x)["code"],
                       params, x_tr, x_te, None, None, [c.model.code_size], diag_cfg(x_tr.shape[1]))
    return m


UNTRAINED = [(d, "mlp") for d in sorted(DATASETS)] + [("digits", "conv"), ("digits", "fullconv")] + [
    pytest.param(d, k, marks=full_only) for d in ("images784", "manifold") for k in ("conv", "fullconv")]


@pytest.mark.parametrize("dataset, kind", UNTRAINED)
def test_untrained_network_is_underfit(dataset, kind):
    x_tr, x_te, shape = DATASETS[dataset]()
    m = untrained(kind, shape, x_tr, x_te)
    assert m["regime"] == "underfit", summary(m)


# Trained with the sweep on the dataset saved as npz; few steps on small nets (seconds each on a CPU).
TRAINED = {
    # Baldi & Hornik: with code = D and no weight decay the optimum is the identity
    "linear_code_D": ("identity", {"model.depth": 0, "model.activation": "linear", "model.code_size": "D",
                                   "train.steps": 3000, "train.batch_size": 64, "train.learning_rate": 3e-3,
                                   "train.schedule": "cosine"}),
    "dae": ("structured", {"model.depth": 0, "model.activation": "relu", "model.code_size": "4D<=256",
                           "noise.kind": "gaussian", "noise.level": 0.2, "train.steps": 600,
                           "train.batch_size": 64, "train.learning_rate": 3e-3}),
    # Zhang et al. 2020: a deep fully connected net trained on one example outputs it for every input
    "deep_fc_one_example": ("memorizing", {"data.n_train": 1, "model.depth": 3, "model.width": 32,
                                           "model.code_size": 32, "train.steps": 300, "train.batch_size": 1}),
}


def trained(dataset, tmp_path, which=tuple(TRAINED)):
    """{name: metrics} of the TRAINED members on `dataset`, one sweep."""
    x_tr, x_te, shape = DATASETS[dataset]()
    d = x_tr.shape[1]
    npz = os.path.join(tmp_path, f"{dataset}.npz")
    np.savez(npz, x_train=x_tr.reshape((-1,) + shape), x_test=x_te.reshape((-1,) + shape))
    c = base_config()
    c.name, c.wandb.mode, c.data.name = "calibration", "disabled", f"npz:{npz}"
    c.train.log_every, c.train.pack_ratio = 50, 0.0
    c.diagnostics = diag_cfg(d)
    sizes = {"D": d, "4D<=256": min(4 * d, 256)}
    grid = [{k: sizes.get(v, v) for k, v in TRAINED[name][1].items()} for name in which]
    records = sweep.run_sweep(c, grid, os.path.join(tmp_path, dataset), report=False)
    return {name: r["metrics"] for name, r in zip(which, sorted(records, key=lambda r: r["member"]))}


@pytest.mark.parametrize("dataset", ["digits", "manifold", pytest.param("images784", marks=full_only)])
def test_trained_networks(dataset, tmp_path):
    res = trained(dataset, tmp_path)
    wrong = {k: summary(m) for k, m in res.items() if m["regime"] != TRAINED[k][0]}
    assert not wrong, f"{dataset}: {wrong}"
    assert res["linear_code_D"]["train_fvu"] < 0.01  # trained close to its optimum, the identity


# ----------------------------------------------------------------------------- the docs table

COLUMNS = ("span_ood_fidelity", "perturb_fidelity", "perturb_gain", "test_fvu", "pca_kept_fvu", "gen_gap",
           "const_ratio", "attractor_fraction", "snap_fraction")


def table(tmp_path):
    """Print docs/regime.md's calibration tables: labels per dataset, then the metrics the rule reads."""
    rows, times = {}, {}
    for name in DATASETS:
        x_tr, x_te, shape = DATASETS[name]()
        t0 = time.time()
        for k, m in evaluate_closed_form(x_tr, x_te, closed_form_maps(x_tr)).items():
            rows.setdefault((k, EXPECTED[k]), {})[name] = m
        lr = low_rank_plus_noise(x_tr, x_te)
        mu, _, u, _ = dg.pca(lr[0])
        signal = u[:, :6] @ u[:, :6].T
        res = evaluate_closed_form(*lr, {"low-rank + noise: identity": (mu, mu, np.eye(len(mu)), 0.0),
                                         "low-rank + noise: signal projection": (mu, mu, signal, 0.0)})
        for k, m in res.items():
            rows.setdefault((k, "identity" if k.endswith("identity") else "structured"), {})[name] = m
        for kind in ("mlp", "conv", "fullconv"):
            rows.setdefault((f"untrained {kind}", "underfit"), {})[name] = untrained(kind, shape, x_tr, x_te)
        for k, m in trained(name, tmp_path).items():
            rows.setdefault((f"trained {k}", TRAINED[k][0]), {})[name] = m
        times[name] = time.time() - t0
    names = list(DATASETS)
    print("| map | expected | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for (k, expected), by in rows.items():
        print(f"| {k} | {expected} | " + " | ".join(by[n]["regime"] for n in names) + " |")
    print()
    print("| map | dataset | " + " | ".join(COLUMNS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
    for (k, _), by in rows.items():
        for n in names:
            print(f"| {k} | {n} | " + " | ".join(f"{by[n][c]:.3g}" for c in COLUMNS) + " |")
    print()
    print("seconds per dataset:", {k: round(v) for k, v in times.items()})
    x_tr, x_te, _ = digits()
    mu, ev, u, _ = dg.pca(x_tr)
    s2 = base_config().diagnostics.noise_std ** 2
    outside = {f"mu + {a} (x - mu)": (mu, mu, a * np.eye(64), 0.0) for a in (0.2, 0.3, 0.5, 0.7)}
    outside["Wiener at s = noise_std"] = (mu, mu, u @ np.diag(ev / (ev + s2)) @ u.T, 0.0)
    print("\n| map (digits) | regime | " + " | ".join(COLUMNS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
    for k, m in evaluate_closed_form(x_tr, x_te, outside).items():
        print(f"| {k} | {m['regime']} | " + " | ".join(f"{m[c]:.3g}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    import tempfile

    table(tempfile.mkdtemp())
