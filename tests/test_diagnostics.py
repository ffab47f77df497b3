"""Every diagnostic against closed-form controls: identity, PCA-k, constant, scaled and nearest-neighbour maps."""

import json

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from ae_jax import diagnostics as dg
from ae_jax.config import base_config

KEYS = {"train_mse", "test_mse", "test_fvu", "train_fvu", "gen_gap", "pca_mse", "pca_kept_fvu", "kept_dims",
        "ood_fidelity", "span_ood_fidelity", "perturb_fidelity", "perturb_gain", "idempotence", "jac_rank",
        "jac_trace", "denoise_gain", "noise_gain", "noise_std", "const_ratio", "attractor_fraction",
        "snap_fraction", "probe_acc", "probe_acc_raw", "data_rank", "effective_rank", "regime", "input_dim"}


def linear(p, x_BD):
    """f(x) = c + (x - mu) W: every control below is one of these."""
    return p["c"] + (x_BD - p["mu"]) @ p["W"]


def raw_code(p, x_BD):
    return x_BD


def nearest_train(p, x_BD):
    """Outputs the closest training example: the extreme memoriser."""
    t = p["t"]
    d2 = jnp.sum(x_BD ** 2, 1)[:, None] - 2 * x_BD @ t.T + jnp.sum(t ** 2, 1)[None]
    return t[jnp.argmin(d2, axis=1)]


def diag_cfg(**kw):
    c = base_config().diagnostics
    c.update(kw)
    return c


def digits():
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split((x / 16).astype(np.float32), y, test_size=0.25, random_state=0)
    return x_tr, x_te, y_tr, y_te


def low_rank(n_train=200, n_test=80, d=20, rank=5):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n_train + n_test, rank))
    x = (z @ rng.normal(size=(rank, d)) + rng.normal(size=d)).astype(np.float32)
    y = (z[:, 0] + 0.5 * z[:, 1] > 0).astype(int)
    return x[:n_train], x[n_train:], y[:n_train], y[n_train:]


DATASETS = {"digits": digits, "low_rank": low_rank}


def controls(x_tr, r):
    """Named linear maps (params, code size): identity, PCA-k from sklearn, constants, scalings."""
    d = x_tr.shape[1]
    mu = x_tr.mean(0, dtype=np.float64)
    out = {"identity": (mu, np.eye(d), d)}
    for k in sorted({2, 8, r - 2} & set(range(1, r))):
        pca = PCA(n_components=k).fit(x_tr.astype(np.float64))
        out[f"pca{k}"] = (pca.mean_, pca.components_.T @ pca.components_, k)
    # docs/science.md's optimal linear denoiser C (C + s^2 I)^-1: per-direction gains lambda / (lambda + s^2)
    evals, evecs = np.linalg.eigh(np.cov(x_tr.T.astype(np.float64), bias=True))
    s2 = base_config().diagnostics.noise_std ** 2
    out["wiener"] = (mu, evecs @ np.diag(evals / (evals + s2)) @ evecs.T, d)
    out["span"] = (mu, dg.span_projector(x_tr)[0], d)  # the identity on the data span, zero off it
    out["const_mu"] = (mu, np.zeros((d, d)), d)
    for a in (0.3, 0.7, 1.3):
        out[f"scale{a}"] = (mu, a * np.eye(d), d)
    return out


@pytest.fixture(scope="module", params=sorted(DATASETS))
def case(request):
    """One stacked evaluate of every linear control on one dataset, with the float64 quantities to check."""
    x_tr, x_te, y_tr, y_te = DATASETS[request.param]()
    cfg = diag_cfg()
    _, r = dg.span_projector(x_tr)
    ctl = controls(x_tr, r)
    names = list(ctl)
    mu = x_tr.mean(0, dtype=np.float64)
    params = {
        "c": jnp.asarray(np.stack([ctl[n][0] for n in names]), jnp.float32),
        "mu": jnp.asarray(np.stack([ctl[n][0] if n.startswith("pca") else mu for n in names]), jnp.float32),
        "W": jnp.asarray(np.stack([ctl[n][1] for n in names]), jnp.float32),
    }
    res = dg.evaluate(linear, raw_code, params, x_tr, x_te, y_tr, y_te, [ctl[n][2] for n in names], cfg, seed=3)
    probes = dg.make_probes(x_tr, x_te, cfg, seed=3)
    return dict(name=request.param, x_tr=x_tr, x_te=x_te, y_tr=y_tr, y_te=y_te, cfg=cfg, r=r, mu=mu,
                ctl=ctl, res=dict(zip(names, res)), noise=np.float64(probes["noise"]),
                ood=np.float64(probes["ood"]), pert=np.float64(probes["pert"]))


def test_keys_types_json(case):
    for m in case["res"].values():
        assert set(m) == KEYS
        assert all(type(v) in (float, int, str) for v in m.values())
        assert m["data_rank"] == case["r"] and m["input_dim"] == case["x_tr"].shape[1]
        json.dumps(m)


def test_span_projector_matches_matrix_rank(case):
    p, r = dg.span_projector(case["x_tr"])
    assert r == np.linalg.matrix_rank(case["x_tr"] - case["x_tr"].mean(0))
    assert r == {"digits": 61, "low_rank": 5}[case["name"]]
    np.testing.assert_allclose(p @ p, p, atol=1e-10)
    np.testing.assert_allclose(p, p.T, atol=1e-12)
    np.testing.assert_allclose(p @ (case["x_tr"] - case["mu"]).T, (case["x_tr"] - case["mu"]).T, atol=1e-4)


def test_identity(case):
    m = case["res"]["identity"]
    for k in ("train_mse", "test_mse", "test_fvu"):
        assert m[k] == pytest.approx(0.0, abs=1e-9)
    assert m["ood_fidelity"] == pytest.approx(1.0, abs=1e-6)
    assert m["span_ood_fidelity"] == pytest.approx(1.0, abs=1e-6)
    assert m["jac_rank"] == case["r"]
    assert m["jac_trace"] == pytest.approx(1.0, abs=1e-5)
    assert m["denoise_gain"] == pytest.approx(1.0, abs=1e-5)  # f(x + e) - x = e exactly
    assert m["noise_gain"] == pytest.approx(1.0, abs=1e-5)
    assert m["noise_std"] == case["cfg"].noise_std
    assert m["perturb_fidelity"] == pytest.approx(1.0, abs=1e-5)
    assert m["perturb_gain"] == pytest.approx(1.0, abs=1e-5)
    assert m["kept_dims"] == pytest.approx(case["r"], rel=1e-4)
    assert m["train_fvu"] == pytest.approx(0.0, abs=1e-9) and m["gen_gap"] == pytest.approx(0.0, abs=1e-9)
    assert m["snap_fraction"] < 0.5
    assert m["const_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert m["attractor_fraction"] == 0.0
    raw = dg.probe_accuracy(case["x_tr"], case["y_tr"], case["x_te"], case["y_te"])
    assert m["probe_acc"] == raw and m["probe_acc_raw"] == raw
    assert m["regime"] == "identity"


def linear_code(p, x_BD):
    return x_BD @ p["E"]


def test_probe_acc_init_is_the_probe_on_the_initial_codes():
    """probe_acc_init reads the codes of the parameters it is given as the start, not the trained ones;
    probe_acc_raw is the raw-input probe for every member; without labels neither is written."""
    x_tr, x_te, y_tr, y_te = digits()
    d = x_tr.shape[1]
    rng = np.random.default_rng(0)
    one_pixel = np.zeros((d, d), np.float32)
    one_pixel[20, 0] = 1.0  # a code that sees one pixel: far below the raw probe
    trained = {"E": jnp.asarray(np.stack([np.eye(d), rng.normal(size=(d, d))]), jnp.float32)}
    initial = {"E": jnp.asarray(np.stack([one_pixel, np.eye(d)]), jnp.float32)}
    f = lambda p, x: x  # noqa: E731 - the map itself does not matter to the probe
    cfg = diag_cfg(jac_points=10, ood_samples=200, attractor_points=10, attractor_iters=5)
    a, b = dg.evaluate(f, linear_code, trained, x_tr, x_te, y_tr, y_te, [d, d], cfg, init_params_M=initial)
    raw = dg.probe_accuracy(x_tr, y_tr, x_te, y_te)
    pixel = dg.probe_accuracy(x_tr @ one_pixel, y_tr, x_te @ one_pixel, y_te)
    assert a["probe_acc"] == raw and a["probe_acc_init"] == pixel < 0.5 < raw
    assert b["probe_acc_init"] == raw and b["probe_acc_raw"] == a["probe_acc_raw"] == raw
    (c,) = dg.evaluate(f, linear_code, jax.tree.map(lambda v: v[:1], trained), x_tr, x_te, y_tr, y_te, [d], cfg)
    assert "probe_acc_init" not in c and c["probe_acc_raw"] == raw
    (n,) = dg.evaluate(f, linear_code, jax.tree.map(lambda v: v[:1], trained), x_tr, x_te, None, None, [d], cfg,
                       init_params_M=jax.tree.map(lambda v: v[:1], initial))
    assert not {"probe_acc", "probe_acc_init", "probe_acc_raw"} & set(n)


def pca_parts(case, k):
    """(mu_k, P_k) of the PCA-k control, float64."""
    mu_k, w, _ = case["ctl"][f"pca{k}"]
    return mu_k, w


@pytest.mark.parametrize("which", ["small", "large"])
def test_pca(case, which):
    ks = sorted(int(n[3:]) for n in case["res"] if n.startswith("pca"))
    k = ks[0] if which == "small" else ks[-1]
    m, r, d = case["res"][f"pca{k}"], case["r"], case["x_tr"].shape[1]
    mu_k, p_k = pca_parts(case, k)
    x_te, x_tr, mu = np.float64(case["x_te"]), np.float64(case["x_tr"]), case["mu"]
    assert m["test_mse"] == pytest.approx(m["pca_mse"], abs=1e-5)
    assert m["pca_mse"] == pytest.approx(dg.pca_mse(case["x_tr"], case["x_te"], k))
    # Baldi & Hornik: the train error is the variance in the discarded directions
    evals = np.linalg.eigvalsh(np.cov(x_tr.T, bias=True))[::-1]
    assert m["train_mse"] == pytest.approx(evals[k:].sum() / d, rel=1e-4, abs=1e-7)
    assert m["test_fvu"] == pytest.approx(m["pca_mse"] * x_te.size / ((x_te - mu) ** 2).sum(), rel=1e-4)
    assert m["jac_rank"] == k
    assert m["jac_trace"] == pytest.approx(k / r, abs=1e-5)
    # f(x + e) - x = P_k e - (I - P_k)(x - mu): the cross term vanishes exactly (orthogonal ranges)
    e, resid = case["noise"], (x_te - mu_k) @ (np.eye(d) - p_k)
    exact = (((e @ p_k) ** 2).sum() + (resid ** 2).sum()) / (e ** 2).sum()
    assert m["denoise_gain"] == pytest.approx(exact, rel=1e-4)
    s = case["cfg"].noise_std
    expected = (k * s ** 2 + (resid ** 2).sum(1).mean()) / (d * s ** 2)
    assert m["denoise_gain"] == pytest.approx(expected, rel=0.05)
    z = case["ood"] - mu
    exact_ood = 1 - (((case["ood"] - mu_k) @ (np.eye(d) - p_k)) ** 2).sum() / (z ** 2).sum()
    assert m["ood_fidelity"] == pytest.approx(exact_ood, abs=1e-4)
    p_span, _ = dg.span_projector(case["x_tr"])
    s_c = (case["ood"] - mu) @ p_span  # the uniform points seen through the span, centred
    exact_span = 1 - (((s_c + mu - mu_k) @ (np.eye(d) - p_k)) ** 2).sum() / (s_c ** 2).sum()
    assert m["span_ood_fidelity"] == pytest.approx(exact_span, abs=1e-4)
    assert m["span_ood_fidelity"] >= m["ood_fidelity"] - 1e-4  # P_k lies inside the span
    # the uniform box's second moment about mu: diag((hi - lo)^2 / 12) + (mid - mu)(mid - mu)^T
    lo, hi = x_tr.min(0), x_tr.max(0)
    mom = np.diag((hi - lo) ** 2 / 12) + np.outer((hi + lo) / 2 - mu, (hi + lo) / 2 - mu)
    q = np.eye(d) - p_k
    assert m["ood_fidelity"] == pytest.approx(1 - np.trace(q @ mom @ q) / np.trace(mom), abs=0.05)
    cov = np.cov(x_te.T, bias=True)
    assert m["const_ratio"] == pytest.approx(np.trace(p_k @ cov @ p_k) / np.trace(cov), rel=1e-4)
    assert m["attractor_fraction"] == 0.0
    # the projection's own count of kept directions is k, so its PCA control is itself
    assert m["kept_dims"] == pytest.approx(k, rel=1e-4)
    assert m["pca_kept_fvu"] == pytest.approx(dg.pca_fvu(x_tr, x_te, min(k, m["effective_rank"])), rel=1e-6)
    if k <= m["effective_rank"]:
        assert m["pca_kept_fvu"] == pytest.approx(m["test_fvu"], rel=1e-4)
    # a projection passes exactly the part of each perturbation inside its range: gain = fidelity
    p = case["pert"]
    assert m["perturb_gain"] == pytest.approx(((p @ p_k) ** 2).sum() / (p ** 2).sum(), rel=1e-4)
    assert m["perturb_fidelity"] == pytest.approx(m["perturb_gain"], abs=1e-5)
    assert m["noise_gain"] == pytest.approx(((e @ p_k) ** 2).sum() / (e ** 2).sum(), rel=1e-4)
    assert m["noise_gain"] == pytest.approx(k / d, rel=0.3)  # its expectation, from 80 to 450 noise draws
    # train and test errors share one denominator, the held-out energy about the train mean
    energy = ((x_te - mu) ** 2).sum(1).mean()
    assert m["train_fvu"] == pytest.approx(m["train_mse"] * d / energy, rel=1e-6)
    assert m["gen_gap"] == pytest.approx(m["test_fvu"] - m["train_fvu"], abs=1e-12)


def test_span_projector_is_identity_on_the_span(case):
    """docs/science.md: identity is measured on the data span. The projector onto it copies every span direction
    and every span-projected uniform point, so it is `identity` even on rank-5 data in R^20, where it
    discards most of the full-space uniform noise (ood_fidelity far below the 0.9 bar)."""
    m, r = case["res"]["span"], case["r"]
    assert m["jac_rank"] == r
    assert m["span_ood_fidelity"] == pytest.approx(1.0, abs=1e-5)
    assert m["test_mse"] == pytest.approx(0.0, abs=1e-9)
    assert m["perturb_fidelity"] == pytest.approx(1.0, abs=1e-5)  # perturbations lie in the span
    assert m["regime"] == "identity"
    if case["name"] == "low_rank":
        assert m["ood_fidelity"] < 0.5
        assert m["noise_gain"] == pytest.approx(case["r"] / case["x_tr"].shape[1], rel=0.3)  # isotropic noise


def test_wiener_filter(case):
    """The linear reference of denoising: W = C (C + s^2 I)^-1 (C the train covariance) has gains
    g = lambda / (lambda + s^2) on the principal directions, so noise_gain = sum g^2 / D and, over the data
    it was fitted on, E||W(x + e) - x||^2 = sum lambda s^2 / (lambda + s^2), i.e. denoise_gain = sum g / D.
    No linear control denoises better; noise_gain is the noise alone, denoise_gain adds the error."""
    m, r, d = case["res"]["wiener"], case["r"], case["x_tr"].shape[1]
    evals = np.linalg.eigvalsh(np.cov(case["x_tr"].T.astype(np.float64), bias=True))[::-1][:r]
    s = case["cfg"].noise_std
    gains = evals / (evals + s ** 2)
    assert np.min(np.abs(gains - 0.5)) > 1e-3, "a gain at the threshold would make the count fragile"
    assert m["jac_rank"] == np.sum(gains > 0.5)
    assert m["jac_trace"] == pytest.approx(gains.mean(), abs=1e-5)
    assert m["kept_dims"] == pytest.approx((gains ** 2).sum() / gains.max() ** 2, rel=1e-3)
    _, w, _ = case["ctl"]["wiener"]
    e, x_te, mu = case["noise"], np.float64(case["x_te"]), case["mu"]
    assert m["noise_gain"] == pytest.approx(((e @ w) ** 2).sum() / (e ** 2).sum(), rel=1e-4)
    # expectations over the noise and the data the filter was fitted on; measured on held-out data
    assert m["noise_gain"] == pytest.approx((gains ** 2).sum() / d, rel=0.3)
    assert m["denoise_gain"] == pytest.approx(gains.sum() / d, rel=0.3)
    # denoise = noise + reconstruction error (+ a cross term that vanishes on average)
    recon = m["test_mse"] / s ** 2  # E||f(x) - x||^2 / E||e||^2 = (d test_mse) / (d s^2)
    assert m["denoise_gain"] == pytest.approx(m["noise_gain"] + recon, rel=0.05)
    # optimal in expectation; on rank-5 data its edge over the span projector (gains 1 where the filter
    # has lambda / (lambda + s^2) ~ 0.99) is below the sampling noise of 80 test points, hence the 1%
    worse = {k: v["denoise_gain"] for k, v in case["res"].items() if v["denoise_gain"] < 0.99 * m["denoise_gain"]}
    assert not worse, (m["denoise_gain"], worse)


def test_constant(case):
    m, mu = case["res"]["const_mu"], case["mu"]
    x_tr, x_te, d = np.float64(case["x_tr"]), np.float64(case["x_te"]), case["x_tr"].shape[1]
    assert m["train_mse"] == pytest.approx(np.var(x_tr, axis=0).sum() / d, rel=1e-5)
    assert m["test_mse"] == pytest.approx(((x_te - mu) ** 2).mean(), rel=1e-5)
    assert m["test_fvu"] == pytest.approx(1.0, abs=1e-6)  # the denominator uses the train mean too
    assert m["ood_fidelity"] == pytest.approx(0.0, abs=1e-6)
    assert m["jac_rank"] == 0 and m["jac_trace"] == 0
    assert m["const_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert m["denoise_gain"] == pytest.approx(((x_te - mu) ** 2).sum() / (case["noise"] ** 2).sum(), rel=1e-5)
    assert m["noise_gain"] == 0.0 and m["perturb_gain"] == 0.0 and m["kept_dims"] == 0.0
    assert m["perturb_fidelity"] == pytest.approx(0.0, abs=1e-6)
    assert m["attractor_fraction"] == 0.0 and m["snap_fraction"] == 0.0
    assert m["regime"] == "collapsed"  # the train mean is not a training example


def test_constant_at_test_mean_fvu():
    x_tr, x_te, _, _ = low_rank()
    mu, m_te = x_tr.mean(0, dtype=np.float64), x_te.mean(0, dtype=np.float64)
    d = x_tr.shape[1]
    p = {"c": jnp.asarray(m_te, jnp.float32)[None], "mu": jnp.asarray(mu, jnp.float32)[None],
         "W": jnp.zeros((1, d, d))}
    (m,) = dg.evaluate(linear, raw_code, p, x_tr, x_te, None, None, [d], diag_cfg(probe=False))
    ss = ((np.float64(x_te) - mu) ** 2).sum()
    assert m["test_fvu"] == pytest.approx(1 - len(x_te) * ((m_te - mu) ** 2).sum() / ss, rel=1e-5)
    assert "probe_acc" not in m and m["regime"] == "collapsed"


@pytest.mark.parametrize("a", [0.3, 0.7, 1.3])
def test_scaling(case, a):
    m, mu, r = case["res"][f"scale{a}"], case["mu"], case["r"]
    x_te = np.float64(case["x_te"])
    assert m["jac_trace"] == pytest.approx(a, abs=1e-5)
    assert m["jac_rank"] == (r if a > 0.5 else 0)
    assert m["const_ratio"] == pytest.approx(a ** 2, rel=1e-5)
    assert m["test_mse"] == pytest.approx((1 - a) ** 2 * ((x_te - mu) ** 2).mean(), rel=1e-4)
    assert m["ood_fidelity"] == pytest.approx(1 - (1 - a) ** 2, abs=1e-5)
    e = case["noise"]
    exact = ((a * e - (1 - a) * (x_te - mu)) ** 2).sum() / (e ** 2).sum()
    assert m["denoise_gain"] == pytest.approx(exact, rel=1e-4)
    assert m["noise_gain"] == pytest.approx(a ** 2, rel=1e-4)
    assert m["perturb_gain"] == pytest.approx(a ** 2, rel=1e-4)
    assert m["perturb_fidelity"] == pytest.approx(1 - (1 - a) ** 2, abs=1e-5)
    assert m["kept_dims"] == pytest.approx(r, rel=1e-4)  # scale-free: a scaling keeps every direction
    assert m["attractor_fraction"] == 0.0


@hypothesis.settings(max_examples=12, deadline=None, derandomize=True)
@hypothesis.given(a=st.floats(0.0, 1.5).filter(lambda a: abs(a - 0.5) > 1e-3))
def test_scaling_property(a):
    x_tr, x_te, _, _ = low_rank()
    d, mu = x_tr.shape[1], x_tr.mean(0)
    p = {"c": jnp.asarray(mu)[None], "mu": jnp.asarray(mu)[None],
         "W": jnp.asarray(a * np.eye(d), jnp.float32)[None]}
    (m,) = dg.evaluate(linear, raw_code, p, x_tr, x_te, None, None, [d], diag_cfg(probe=False))
    assert m["jac_trace"] == pytest.approx(a, abs=1e-5)
    assert m["jac_rank"] == (5 if a > 0.5 else 0)
    assert m["const_ratio"] == pytest.approx(a ** 2, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_nearest_neighbour_memorizes(dataset):
    x_tr, x_te, y_tr, y_te = DATASETS[dataset]()
    (m,) = dg.evaluate(nearest_train, raw_code, {"t": jnp.asarray(x_tr)[None]}, x_tr, x_te, None, None,
                       [x_tr.shape[1]], diag_cfg(probe=False))
    assert m["attractor_fraction"] == 1.0
    assert m["train_mse"] == pytest.approx(0.0, abs=1e-6)
    assert m["jac_rank"] == 0 and m["jac_trace"] == 0
    assert m["snap_fraction"] == 1.0  # its output for a held-out point is a training example
    assert m["gen_gap"] == pytest.approx(m["test_fvu"]) and m["train_fvu"] == pytest.approx(0.0, abs=1e-6)
    assert m["regime"] == "memorizing"


def test_non_finite_and_divergent_maps():
    x_tr, x_te, y_tr, y_te = low_rank()
    d, mu = x_tr.shape[1], x_tr.mean(0)
    # member 0 outputs NaN everywhere; member 1 (f = mu + 3 (x - mu)) blows up when iterated
    p = {"c": jnp.asarray(np.stack([np.full(d, np.nan), mu]), jnp.float32),
         "mu": jnp.asarray(np.stack([mu, mu])),
         "W": jnp.asarray(np.stack([np.full((d, d), np.nan), 3 * np.eye(d)]), jnp.float32)}
    cfg = diag_cfg(attractor_iters=200)
    nan_map, blow_up = dg.evaluate(linear, raw_code, p, x_tr, x_te, y_tr, y_te, [d, d], cfg)
    for k, v in nan_map.items():
        if k not in ("data_rank", "effective_rank", "input_dim", "regime", "attractor_fraction", "snap_fraction",
                     "probe_acc", "probe_acc_raw", "pca_mse", "noise_std"):
            assert np.isnan(v), k
    assert nan_map["attractor_fraction"] == 0.0 and nan_map["regime"] == "unresolved"
    assert blow_up["attractor_fraction"] == 0.0 and blow_up["jac_rank"] == 5
    json.dumps(nan_map)


def test_pca_mse_matches_sklearn():
    x_tr, x_te, _, _ = digits()
    for k in (8, 16, 32, 64, 100):
        pca = PCA(n_components=min(k, 64)).fit(x_tr.astype(np.float64))
        rec = pca.inverse_transform(pca.transform(x_te.astype(np.float64)))
        assert dg.pca_mse(x_tr, x_te, k) == pytest.approx(((rec - x_te) ** 2).mean(), rel=1e-6, abs=1e-12)
    # docs/science.md's reference values for the 1347/450 split
    for k, ref in ((8, 0.025), (16, 0.012), (32, 0.003)):
        assert dg.pca_mse(x_tr, x_te, k) == pytest.approx(ref, rel=0.15)


# ----------------------------------------------------------------------------- compiled groups

def mlp_reconstruct(p, x_BD):
    return jax.nn.relu(x_BD @ p["we"] + p["be"]) @ p["wd"] + p["bd"]


def mlp_encode(p, x_BD):
    return jax.nn.relu(x_BD @ p["we"] + p["be"])


def random_mlps(n, d=20, k=12, seed=0):
    ks = jax.random.split(jax.random.key(seed), 2)
    return {"we": jax.random.normal(ks[0], (n, d, k)) / np.sqrt(d), "be": jnp.full((n, k), 0.1),
            "wd": jax.random.normal(ks[1], (n, k, d)) / np.sqrt(k), "bd": jnp.zeros((n, d))}


def test_one_compile_per_group():
    x_tr, x_te, y_tr, y_te = low_rank()
    traces = {"n": 0}

    def counted(p, x_BD):
        traces["n"] += 1
        return mlp_reconstruct(p, x_BD)

    cfg = diag_cfg(probe=False)
    dg.evaluate(counted, mlp_encode, random_mlps(1), x_tr, x_te, y_tr, y_te, [12], cfg)
    per_program = traces["n"]
    traces["n"] = 0
    dg.evaluate(counted, mlp_encode, random_mlps(13, seed=1), x_tr, x_te, y_tr, y_te, [12] * 13, cfg)
    assert traces["n"] <= per_program, "tracing must not grow with the number of members"
    traces["n"] = 0
    dg.evaluate(counted, mlp_encode, random_mlps(13, seed=2), x_tr, x_te, y_tr, y_te, [12] * 13, cfg)
    assert traces["n"] == 0, "new parameter values of the same shapes must not recompile"


def test_stacked_equals_per_member():
    x_tr, x_te, y_tr, y_te = low_rank()
    params = random_mlps(3, seed=4)
    cfg = diag_cfg()
    stacked = dg.evaluate(mlp_reconstruct, mlp_encode, params, x_tr, x_te, y_tr, y_te, [12] * 3, cfg)
    for i, got in enumerate(stacked):
        (solo,) = dg.evaluate(mlp_reconstruct, mlp_encode, jax.tree.map(lambda a: a[i:i + 1], params),
                              x_tr, x_te, y_tr, y_te, [12], cfg)
        assert set(got) == set(solo)
        for k, v in solo.items():
            if isinstance(v, str):
                assert got[k] == v, k
            else:
                assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def test_chunked_sets_match_whole(monkeypatch):
    x_tr, x_te, y_tr, y_te = low_rank()
    params, cfg = random_mlps(2, seed=5), diag_cfg()
    whole = dg.evaluate(mlp_reconstruct, mlp_encode, params, x_tr, x_te, y_tr, y_te, [12] * 2, cfg)
    monkeypatch.setattr(dg, "EXAMPLE_CHUNK", 64)  # 200 train / 80 test rows become padded chunks
    chunked = dg.evaluate(mlp_reconstruct, mlp_encode, params, x_tr, x_te, y_tr, y_te, [12] * 2, cfg)
    for a, b in zip(whole, chunked):
        for k, v in a.items():
            assert b[k] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-5, abs=1e-7)), k


def train_relu_ae(x_tr, k, steps=2000, seed=0):
    """docs/science.md's 64-k-64 ReLU AE (Adam 1e-3, batch 128), stacked as a one-member group."""
    import optax

    d = x_tr.shape[1]
    ks = jax.random.split(jax.random.key(seed), 3)
    params = {"we": jax.random.normal(ks[0], (d, k)) * np.sqrt(2 / d), "be": jnp.zeros(k),
              "wd": jax.random.normal(ks[1], (k, d)) * np.sqrt(2 / k), "bd": jnp.zeros(d)}
    opt, x = optax.adam(1e-3), jnp.asarray(x_tr)

    def step(carry, i):
        p, s = carry
        xb = x[jax.random.randint(jax.random.fold_in(ks[2], i), (128,), 0, len(x))]
        g = jax.grad(lambda p: jnp.mean((mlp_reconstruct(p, xb) - xb) ** 2))(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), jnp.arange(steps)))(params)
    return jax.tree.map(lambda a: a[None], params)


def test_regime_separates_trained_relu_aes():
    x_tr, x_te, _, _ = digits()
    cfg = diag_cfg(probe=False)
    got = {}
    for k in (8, 256):
        params = train_relu_ae(x_tr, k)
        (got[k],) = dg.evaluate(mlp_reconstruct, mlp_encode, params, x_tr, x_te, None, None, [k], cfg)
    assert got[256]["regime"] == "identity", got[256]
    assert got[8]["regime"] != "identity", got[8]
    assert got[256]["ood_fidelity"] > got[8]["ood_fidelity"] + 0.5  # docs/science.md: noise copied far better


def test_jacobian_spectrum_of_linear_controls(case):
    """The logged spectrum (W&B per member): all ones for the identity, k ones then zeros for PCA-k,
    lambda / (lambda + s^2) for the Wiener filter; its count above 0.5 is jac_rank."""
    x_tr, x_te, r, ctl = case["x_tr"], case["x_te"], case["r"], case["ctl"]
    evals = np.linalg.eigvalsh(np.cov(x_tr.T.astype(np.float64), bias=True))[::-1][:r]
    k = sorted(int(n[3:]) for n in ctl if n.startswith("pca"))[-1]
    s2 = case["cfg"].noise_std ** 2
    expected = {"identity": np.ones(r), f"pca{k}": np.r_[np.ones(k), np.zeros(r - k)], "wiener": evals / (evals + s2)}
    for name, want in expected.items():
        c, w, _ = ctl[name]
        p = {"c": jnp.asarray(c, jnp.float32), "mu": jnp.asarray(c, jnp.float32), "W": jnp.asarray(w, jnp.float32)}
        sv = dg.jacobian_spectrum(linear, p, x_tr, x_te[:5])
        assert sv.shape == (5, r)
        np.testing.assert_allclose(sv, np.broadcast_to(want, sv.shape), atol=2e-4, err_msg=name)
        assert (sv[0] > dg.JAC_GAIN).sum() == case["res"][name]["jac_rank"]


def test_idempotence_of_projections_and_shrinkage(case):
    """MAP_METRICS["idempotence"]: 0 for the identity, PCA-k, the span projector and the constant map (all
    projections: f(f(x)) = f(x)), (1 - a)^2 for the shrinkage mu + a (x - mu)."""
    res = case["res"]
    for name in [n for n in res if n.startswith("pca")] + ["identity", "span", "const_mu"]:
        assert res[name]["idempotence"] == pytest.approx(0.0, abs=1e-5), name
    for a in (0.3, 0.7, 1.3):
        assert res[f"scale{a}"]["idempotence"] == pytest.approx((1 - a) ** 2, rel=1e-4)


def test_device_probe_arrays_do_not_grow_with_the_train_set():
    """Only the train set's chunks stream to the device (`_train_pass`); what is put there once for a
    group is the same size for 200 or 2000 training rows (a streamed train set never lands whole)."""
    _, x_te, _, _ = low_rank()
    small, large = low_rank(n_train=200)[0], low_rank(n_train=2000)[0]
    a, b = (dg.make_probes(x, x_te, diag_cfg(), seed=1)["arrays"] for x in (small, large))
    assert {k: np.shape(v) for k, v in a.items()} == {k: np.shape(v) for k, v in b.items()}


def dense_plane():
    """2000 points on a 2-d plane in R^32 with 0.02 noise on every axis: held-out examples lie ~0.15
    from a training example, about the fixed attractor radius 0.25 * 0.1 * sqrt(32) = 0.14."""
    from ae_jax import data as data_lib

    c = base_config()
    c.data.name, c.data.manifold.kind, c.data.manifold.intrinsic_dim = "manifold", "linear", 2
    c.data.manifold.ambient_dim, c.data.manifold.noise = 32, 0.02
    ds = data_lib.load(c.data)
    return ds.x_train, ds.x_test


def test_projection_onto_a_dense_manifold_is_not_memorising_but_the_nearest_example_is():
    """Attractor starts move along the data's effective directions, so a projection onto a densely sampled
    plane keeps the perturbation and lands nowhere near a training example; the nearest-example map does."""
    x_tr, x_te = dense_plane()
    pca = PCA(n_components=2).fit(np.float64(x_tr))
    params = {"c": jnp.asarray(pca.mean_, jnp.float32)[None], "mu": jnp.asarray(pca.mean_, jnp.float32)[None],
              "W": jnp.asarray(pca.components_.T @ pca.components_, jnp.float32)[None]}
    (proj,) = dg.evaluate(linear, raw_code, params, x_tr, x_te, None, None, [2], diag_cfg(probe=False))
    (memo,) = dg.evaluate(nearest_train, raw_code, {"t": jnp.asarray(x_tr)[None]}, x_tr, x_te, None, None,
                          [32], diag_cfg(probe=False))
    assert memo["attractor_fraction"] == 1.0 and memo["snap_fraction"] == 1.0 and memo["regime"] == "memorizing"
    assert proj["effective_rank"] == 2 and proj["jac_rank"] == 2 and proj["test_mse"] < 2 * 0.02 ** 2
    assert proj["attractor_fraction"] == 0.0 and proj["snap_fraction"] < 0.5 and proj["regime"] == "structured"


def test_attractor_noise_lies_along_the_effective_directions():
    """Isotropic noise in 784-d lies almost wholly off a rank-6 signal: projecting onto the signal would
    remove it and land back on the training example. The starts move only along the effective span."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 784))
    x = (z + 1e-3 * rng.normal(size=z.shape)).astype(np.float32)
    probes = dg.make_probes(x[:200], x[200:], diag_cfg(), seed=0)
    mu, _, u, _ = dg.pca(x[:200])
    idx = np.sort(np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(0), 3), 200)[:100]))
    step = np.float64(probes["arrays"]["att_x"]) - x[:200][idx]
    off = step - step @ u[:, :6] @ u[:, :6].T
    assert dg.effective_rank(x[:200]) == 6
    assert np.linalg.norm(off) < 1e-3 * np.linalg.norm(step)  # isotropic noise would give ~1 (778 of 784 dims)
    s = diag_cfg().noise_std
    assert np.sqrt(probes["att_radius2"]) <= diag_cfg().attractor_radius * s * np.sqrt(6) + 1e-9
