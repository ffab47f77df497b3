"""python -m experiments.use_cases.analyze WORKDIR: denoising on held-out noise and t-SNE of codes.

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/use_cases/config.py`):
the plain and denoising autoencoders' trained maps and encoders (`ae_jax.store`), and measures the two
use cases on held-out data:
1. denoising: gain E||f(x+e)-x||^2 / E||e||^2 on test images with fresh Gaussian noise at several
   levels, against the identity (gain 1), the Wiener filter mu + C (C + s^2 I)^-1 (y - mu) (the optimal
   linear denoiser; its expected gain on the train distribution is tr(W)/D = mean_i ev_i/(ev_i + s^2))
   and the PCA-k projector (the optimal linear AE with code k);
2. dimensionality reduction: t-SNE to 2-D of the raw inputs, of PCA-k codes and of the AEs' codes with
   k < D; trustworthiness w.r.t. the raw inputs and w.r.t. each map's own input, and k-NN accuracy.
The evaluation settings are the config's `usecases.*` block, recorded with every member. Writes
WORKDIR/analysis.md, WORKDIR/use_cases.json and WORKDIR/figures/{denoise_examples,denoise_gain,tsne}.png,
and logs them to a W&B analysis run.
"""

import json
import sys
from pathlib import Path

import numpy as np

from ae_jax import data as data_lib, store
from ae_jax.errors import ConfigError
from experiments import common
from experiments.use_cases import figures

RAW = "raw"
WELL_BELOW = 0.5  # "denoise gain well below 1": at most half the noise energy survives


# ----------------------------------------------------------------------------- denoising


def covariance(x_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance normalised by N) of the train set, in float64."""
    x = np.asarray(x_ND, np.float64)
    mu = x.mean(0)
    return mu, (x - mu).T @ (x - mu) / len(x)


def wiener_filter(x_train_ND: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(mu, W) with W = C (C + s^2 I)^-1: f(y) = mu + (y - mu) W minimises E||f(x + e) - x||^2 over
    affine maps when e ~ N(0, s^2 I) and x has the train mean and covariance."""
    mu, c_DD = covariance(x_train_ND)
    # C and (C + s^2 I)^-1 commute, so solving from the left gives the same (symmetric) W.
    w_DD = np.linalg.solve(c_DD + s * s * np.eye(len(c_DD)), c_DD)
    return mu, 0.5 * (w_DD + w_DD.T)


def apply_linear(mu: np.ndarray, w_DD: np.ndarray, y_ND: np.ndarray) -> np.ndarray:
    return mu + (np.asarray(y_ND, np.float64) - mu) @ w_DD


def wiener_gain_closed_form(x_train_ND: np.ndarray, s: float) -> float:
    """tr(W)/D = mean_i ev_i / (ev_i + s^2): the Wiener filter's expected gain on the train distribution."""
    ev = np.linalg.eigvalsh(covariance(x_train_ND)[1]).clip(0.0)
    return float(np.mean(ev / (ev + s * s)))


def expected_linear_gain(x_ND: np.ndarray, mu: np.ndarray, w_DD: np.ndarray, s: float) -> float:
    """E_e ||mu + (x + e - mu) W - x||^2 / E||e||^2 averaged over the rows of x, the noise integrated
    out exactly: (mean ||(x - mu)(W - I)||^2 + s^2 ||W||_F^2) / (D s^2)."""
    x = np.asarray(x_ND, np.float64) - mu
    d = x.shape[1]
    bias = np.square(x @ (w_DD - np.eye(d))).sum(1).mean()
    return float((bias + s * s * np.square(w_DD).sum()) / (d * s * s))


def pca_projector(x_train_ND: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, P) with P the projector onto the top-k principal directions: PCA-k as a denoiser."""
    mu, c_DD = covariance(x_train_ND)
    _, vecs = np.linalg.eigh(c_DD)
    u = vecs[:, ::-1][:, :k]
    return mu, u @ u.T


def heldout_noise(shape: tuple[int, int], s: float, draws: int, seed: int) -> np.ndarray:
    """(draws, N, D) Gaussian noise of std s from a NumPy generator keyed by (seed, s): never the
    trainer's JAX keys, and the same draws for every model."""
    rng = np.random.default_rng([seed, int(round(s * 1e6))])
    return (s * rng.standard_normal((draws,) + tuple(shape))).astype(np.float32)


def denoise_gain(f, x_ND: np.ndarray, e_RND: np.ndarray) -> float:
    """sum ||f(x + e) - x||^2 / sum ||e||^2 over every image and draw."""
    num = 0.0
    for e_ND in e_RND:
        num += float(np.square(np.asarray(f(x_ND + e_ND), np.float64) - x_ND).sum())
    return num / float(np.square(e_RND.astype(np.float64)).sum())


def code_fn(m: store.Member):
    """The member's code (its own units only: `encode` pads to the group's largest code with zeros)."""
    return lambda x: m.encode(x)[:, :m.config.model.code_size]


def label_of(m: store.Member) -> str:
    c = m.config
    kind = f"DAE s={c.noise.level:g}" if c.noise.kind != "none" and c.noise.level > 0 else "AE"
    deep = f" depth {c.model.depth}" if c.model.depth else ""
    return f"{kind}, code {c.model.code_size}{deep}"


def by_label(members: list[store.Member]) -> dict[str, list[store.Member]]:
    """{label: the members that differ only in their seed}, in member order."""
    out: dict[str, list[store.Member]] = {}
    for m in members:
        out.setdefault(label_of(m), []).append(m)
    return out


def denoising(members: list[store.Member], ds: data_lib.Dataset, uc) -> dict:
    """Held-out denoise gains of every member (seed mean per label) and of the linear controls."""
    x_tr, x_te = ds.x_train, ds.x_test
    train_levels = sorted({m.config.noise.level for m in members if m.config.noise.level > 0})
    codes_below = sorted({m.config.model.code_size for m in members if m.config.model.code_size < ds.dim})
    fns = {name: [m.f for m in ms] for name, ms in by_label(members).items()}
    rows = {"identity": [], "Wiener (fitted at each s)": []}
    rows.update({f"Wiener (fitted at s={t:g})": [] for t in train_levels})
    rows.update({f"PCA-{k} projector": [] for k in codes_below})
    rows.update({name: [] for name in fns})
    per_seed = {name: [] for name in fns}
    checks = []
    for s in uc.eval_noise:
        e = heldout_noise(x_te.shape, s, uc.noise_draws, uc.eval_seed)
        rows["identity"].append(denoise_gain(lambda y: y, x_te, e))
        mu, w = wiener_filter(x_tr, s)
        rows["Wiener (fitted at each s)"].append(denoise_gain(lambda y: apply_linear(mu, w, y), x_te, e))
        checks.append(dict(s=s, closed_form=wiener_gain_closed_form(x_tr, s),
                           expected_train=expected_linear_gain(x_tr, mu, w, s),
                           expected_test=expected_linear_gain(x_te, mu, w, s),
                           empirical_test=rows["Wiener (fitted at each s)"][-1]))
        for t in train_levels:
            mu_t, w_t = wiener_filter(x_tr, t)
            rows[f"Wiener (fitted at s={t:g})"].append(denoise_gain(lambda y: apply_linear(mu_t, w_t, y), x_te, e))
        for k in codes_below:
            mu_k, p_k = pca_projector(x_tr, k)
            rows[f"PCA-{k} projector"].append(denoise_gain(lambda y: apply_linear(mu_k, p_k, y), x_te, e))
        for name, fs in fns.items():
            per_seed[name].append([denoise_gain(f, x_te, e) for f in fs])
            rows[name].append(float(np.mean(per_seed[name][-1])))
    return dict(levels=list(uc.eval_noise), train_levels=train_levels, gains=rows, gains_per_seed=per_seed,
                wiener_checks=checks,
                clean_test_mse={name: [float(np.square(f(x_te) - x_te).mean()) for f in fs] for name, fs in fns.items()})


def example_images(members: list[store.Member], ds: data_lib.Dataset, uc) -> dict:
    """One test image per class: clean, noisy at `figure_noise`, and every denoiser's output."""
    x_te = ds.x_test
    if ds.y_test is not None:
        idx = [int(np.flatnonzero(ds.y_test == c)[0]) for c in np.unique(ds.y_test)][:10]
    else:
        idx = list(range(min(10, len(x_te))))
    x = x_te[idx]
    s = uc.figure_noise
    y = x + heldout_noise(x_te.shape, s, 1, uc.eval_seed + 1)[0][idx]
    mu, w = wiener_filter(ds.x_train, s)
    panels = {"clean": x, f"noisy s={s:g}": y}
    panels.update({name: ms[0].f(y) for name, ms in by_label(members).items()})
    panels[f"Wiener (s={s:g})"] = apply_linear(mu, w, y)
    return dict(panels=panels, shape=ds.shape)


# ----------------------------------------------------------------------------- t-SNE


def tsne_inputs(members: list[store.Member], ds: data_lib.Dataset,
                uc) -> tuple[dict[str, list[np.ndarray]], np.ndarray, np.ndarray]:
    """({name: [(N, K) representation per net seed]}, labels, is_test) over train + test (or a fixed
    subset of them); codes come from nets and PCA fitted on the train split only."""
    if ds.y_train is None or ds.y_test is None:
        raise ConfigError(f"config.data.name: {ds.name} has no labels; the t-SNE half needs them")
    x = np.concatenate([ds.x_train, ds.x_test]).astype(np.float32)
    y = np.concatenate([ds.y_train, ds.y_test])
    is_test = np.arange(len(x)) >= len(ds.x_train)
    if uc.tsne_points:
        keep = np.sort(np.random.default_rng(0).permutation(len(x))[:uc.tsne_points])
        x, y, is_test = x[keep], y[keep], is_test[keep]
    reps = {RAW: [x]}
    groups = by_label(members)
    for k in sorted({m.config.model.code_size for m in members if m.config.model.code_size < ds.dim}):
        mu, c_DD = covariance(ds.x_train)
        _, vecs = np.linalg.eigh(c_DD)
        reps[f"PCA-{k}"] = [((x - mu) @ vecs[:, ::-1][:, :k]).astype(np.float32)]
        for name, ms in groups.items():
            if ms[0].config.model.code_size == k:
                reps[name] = [code_fn(m)(x) for m in ms]
    return reps, y, is_test


def knn_heldout(z_NK: np.ndarray, y: np.ndarray, is_test: np.ndarray, k: int) -> float:
    """Accuracy on the test points of a k-NN classifier fitted on the train points' positions."""
    from sklearn.neighbors import KNeighborsClassifier
    return float(KNeighborsClassifier(k).fit(z_NK[~is_test], y[~is_test]).score(z_NK[is_test], y[is_test]))


def knn_cv(z_NK: np.ndarray, y: np.ndarray, k: int, folds: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    return float(cross_val_score(KNeighborsClassifier(k), z_NK, y, cv=cv).mean())


def trust(x_NK: np.ndarray, z_NJ: np.ndarray, k: int) -> float:
    """sklearn's trustworthiness: 1 - penalty for 2-D neighbours that were not neighbours in x."""
    from sklearn.manifold import trustworthiness
    return float(trustworthiness(np.asarray(x_NK, np.float64), np.asarray(z_NJ, np.float64), n_neighbors=k))


def embed(z_NK: np.ndarray, seed: int, uc) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    # One OpenMP thread: on a loaded 2-core machine sklearn's Barnes-Hut threads spin-wait on each other
    # (500 points took 25 s with 2 threads, 1.2 s with 1); the map does not depend on the thread count.
    with threadpool_limits(limits=1):
        return TSNE(n_components=2, perplexity=uc.perplexity, init=uc.tsne_init, learning_rate="auto",
                    max_iter=uc.tsne_iter, random_state=seed).fit_transform(np.asarray(z_NK, np.float64))


def tsne_runs(zs: list[np.ndarray], seeds: tuple[int, ...]) -> list[tuple[np.ndarray, int]]:
    """(representation, t-SNE seed) pairs: a fixed input gets every seed; the nets' seeds are paired
    with the t-SNE seeds in turn, so each map is a fresh draw of both and the cost stays one map per net."""
    if len(zs) == 1:
        return [(zs[0], seed) for seed in seeds]
    return [(z, seeds[i % len(seeds)]) for i, z in enumerate(zs)]


def dimensionality_reduction(reps: dict[str, list[np.ndarray]], y: np.ndarray, is_test: np.ndarray, uc) -> dict:
    """Per representation: how well the code itself keeps the raw neighbourhoods and labels, and the same
    for its t-SNE maps (one per (net seed, t-SNE seed) run)."""
    raw, k = reps[RAW][0], uc.trust_neighbors
    out = {}
    for name, zs in reps.items():
        runs = [(z, embed(z, seed, uc)) for z, seed in tsne_runs(zs, tuple(uc.tsne_seeds))]
        out[name] = dict(
            dims=int(zs[0].shape[1]), maps=len(runs), nets=len(zs),
            code_trust_raw=[trust(raw, z, k) for z in zs], code_knn=[knn_heldout(z, y, is_test, uc.knn) for z in zs],
            trust_raw=[trust(raw, m, k) for _, m in runs], trust_own=[trust(z, m, k) for z, m in runs],
            knn_heldout=[knn_heldout(m, y, is_test, uc.knn) for _, m in runs],
            knn_cv=[knn_cv(m, y, uc.knn, uc.cv_folds) for _, m in runs],
            embedding=runs[0][1])
    return out


# ----------------------------------------------------------------------------- verdicts and text


def spread(v: list[float], fmt: str = ".3f") -> str:
    """mean ± half the range over seeds (just the value when there is one)."""
    v = np.asarray(v)
    return f"{v.mean():{fmt}}" if len(v) == 1 else f"{v.mean():{fmt}} ± {np.ptp(v) / 2:{fmt}}"


def verdicts(den: dict, dr: dict) -> dict:
    """The two claims, checked against the numbers."""
    out = {}
    levels = np.array(den["levels"])
    dae = {n: np.array(g) for n, g in den["gains"].items() if n.startswith("DAE")}
    out["denoising"] = {n: dict(below_1=levels[g < 1].tolist(), well_below=levels[g <= WELL_BELOW].tolist(),
                                best=float(g.min()))
                        for n, g in dae.items()}
    raw = dr[RAW]
    tol = lambda a, b: 0.5 * (np.ptp(a) + np.ptp(b))  # seed noise: the half-ranges of both, added
    out["tsne"] = {}
    for name, r in dr.items():
        if name == RAW:
            continue
        d_trust = float(np.mean(r["trust_raw"]) - np.mean(raw["trust_raw"]))
        d_knn = float(np.mean(r["knn_cv"]) - np.mean(raw["knn_cv"]))
        out["tsne"][name] = dict(
            d_trust=d_trust, d_knn_cv=d_knn, tol_trust=float(tol(r["trust_raw"], raw["trust_raw"])),
            tol_knn_cv=float(tol(r["knn_cv"], raw["knn_cv"])),
            trust_ok=bool(d_trust >= -tol(r["trust_raw"], raw["trust_raw"])),
            knn_ok=bool(d_knn >= -tol(r["knn_cv"], raw["knn_cv"])))
    return out


def markdown(name: str, members: list[store.Member], ds: data_lib.Dataset, den: dict, dr: dict, ver: dict,
             elapsed: str, not_ok: list[store.Member]) -> list[str]:
    c = members[0].config
    uc = c.usecases
    train_rows = [[label, len(ms), "/".join(sorted({str(m.metrics["steps"]) for m in ms})),
                   f"{sum(bool(m.metrics.get('converged')) for m in ms)}/{len(ms)}",
                   spread([m.metrics["final_recon"] for m in ms], ".3g"), spread(den["clean_test_mse"][label], ".2e")]
                  for label, ms in by_label(members).items()]
    seen = set(den["train_levels"])
    head = ["denoiser"] + [f"s={s:g}" + (" (trained)" if s in seen else "") for s in den["levels"]]
    gain_rows = [[n] + ([spread(v) for v in den["gains_per_seed"][n]] if n in den["gains_per_seed"]
                        else [f"{v:.3f}" for v in g]) for n, g in den["gains"].items()]
    check_rows = [[f"{r['s']:g}", f"{r['closed_form']:.5f}", f"{r['expected_train']:.5f}",
                   f"{r['expected_test']:.5f}", f"{r['empirical_test']:.5f}"] for r in den["wiener_checks"]]
    tsne_rows = [[n, r["dims"], r["maps"], spread(r["code_trust_raw"]), spread(r["code_knn"]), spread(r["trust_raw"]),
                  spread(r["trust_own"]), spread(r["knn_heldout"]), spread(r["knn_cv"])] for n, r in dr.items()]
    n_pts = len(dr[RAW]["embedding"])
    lines = [
        f"# {name}: denoising and t-SNE of autoencoder codes", "",
        f"{c.data.name} (D = {ds.dim}, {len(ds.x_train)} train / {len(ds.x_test)} test); ReLU MLP AEs (hidden width "
        f"{c.model.width} where depth > 0), {c.train.optimizer} {c.train.learning_rate:g}, {c.train.steps} steps of batch "
        f"{c.train.batch_size}, trained on Gaussian noise of std 0 (plain) or {', '.join(f'{t:g}' for t in den['train_levels'])}; "
        f"analysis wall time {elapsed}."
        + (f" Not analysed (status not ok): {', '.join(f'{m.name} ({m.status})' for m in not_ok)}." if not_ok else ""),
        "",
        common.md_table(["net", "seeds", "steps", "converged", "final train loss (sum over pixels)", "clean test MSE per pixel"],
                        train_rows), "",
        "## Denoising on held-out noise", "",
        f"Denoise gain sum ||f(x+e) - x||² / sum ||e||² over the {len(ds.x_test)} test images x {uc.noise_draws} "
        f"fresh draws of e ~ N(0, s² I) per level (NumPy generator seed {uc.eval_seed}; the nets were trained "
        "with JAX keys). Identity = 1; below 1 the output is closer to the clean image than the input was. "
        "Nets with several seeds: mean ± half-range over seeds.", "",
        "![gain](figures/denoise_gain.png)", "",
        common.md_table(head, gain_rows), "",
        "Wiener filter W = C (C + s² I)^-1 (C: train covariance normalised by N): closed-form expected gain "
        "tr(W)/D, the same with the noise integrated out exactly on the train and test images, and the "
        "measured gain on the held-out draws above:", "",
        common.md_table(["s", "tr(W)/D", "exact, train", "exact, test", "measured, test"], check_rows), "",
        f"![examples](figures/denoise_examples.png)", "",
        "## t-SNE of codes", "",
        f"{n_pts} images (train + test), t-SNE to 2-D (perplexity {uc.perplexity:g}, {uc.tsne_init} init, {uc.tsne_iter} "
        f"iterations), t-SNE seeds {list(uc.tsne_seeds)}: every seed for raw and PCA, net seed i paired with "
        f"t-SNE seed i for the AEs ('maps' = t-SNE runs; mean ± half-range over them). Trustworthiness with "
        f"k = {uc.trust_neighbors}; kNN = {uc.knn}-NN accuracy, held-out (train points' positions classify "
        f"the test points) and {uc.cv_folds}-fold CV over all points. 'code' columns: the representation "
        "itself before t-SNE.", "",
        "![tsne](figures/tsne.png)", "",
        common.md_table(["input to t-SNE", "dims", "maps", "code trust vs raw", "code kNN", "2-D trust vs raw",
                         "2-D trust vs own input", "2-D kNN held-out", "2-D kNN CV"], tsne_rows), "",
        "## Verdict", ""]
    for n, v in ver["denoising"].items():
        lines.append(f"- {n}: gain below 1 at s = {v['below_1'] or 'none'}; at most {WELL_BELOW} at "
                     f"s = {v['well_below'] or 'none'}; best {v['best']:.3f}.")
    judge = lambda ok, tol: (f"at least as good (seed noise ±{tol:.4f})" if ok
                             else f"worse, beyond seed noise ±{tol:.4f}")
    for n, v in ver["tsne"].items():
        lines.append(f"- t-SNE of {n} vs raw (difference of means): trust {v['d_trust']:+.4f}, "
                     f"{judge(v['trust_ok'], v['tol_trust'])}; kNN CV {v['d_knn_cv']:+.4f}, "
                     f"{judge(v['knn_ok'], v['tol_knn_cv'])}.")
    return lines


def check_usecases(uc, n_points: int) -> None:
    """The experiment's own keys, checked before any training."""
    def bad(key, msg):
        raise ConfigError(f"config.usecases.{key}: {msg}")
    if not uc.eval_noise or any(not isinstance(s, (int, float)) or s <= 0 for s in uc.eval_noise):
        bad("eval_noise", f"must be a non-empty tuple of positive stds, got {uc.eval_noise!r}")
    if uc.figure_noise <= 0:
        bad("figure_noise", f"must be positive, got {uc.figure_noise}")
    if uc.noise_draws < 1:
        bad("noise_draws", f"must be at least 1, got {uc.noise_draws}")
    if not uc.tsne_seeds or any(not isinstance(s, int) or s < 0 for s in uc.tsne_seeds):
        bad("tsne_seeds", f"must be a non-empty tuple of non-negative integers, got {uc.tsne_seeds!r}")
    n = uc.tsne_points or n_points
    if uc.tsne_points < 0 or n > n_points:
        bad("tsne_points", f"must be in [0, {n_points}], got {uc.tsne_points}")
    if not 1 <= uc.trust_neighbors < n / 2:
        bad("trust_neighbors", f"must be in [1, {n / 2:g}) (sklearn's trustworthiness), got {uc.trust_neighbors}")
    if not 0 < uc.perplexity < n:
        bad("perplexity", f"must be in (0, {n}), got {uc.perplexity}")
    if uc.tsne_init not in ("pca", "random"):
        bad("tsne_init", f"must be 'pca' or 'random', got {uc.tsne_init!r}")
    if uc.tsne_iter < 250:
        bad("tsne_iter", f"must be at least 250 (sklearn's TSNE), got {uc.tsne_iter}")
    if uc.knn < 1 or uc.cv_folds < 2:
        bad("knn" if uc.knn < 1 else "cv_folds", "knn must be >= 1 and cv_folds >= 2")


def check_members(members: list[store.Member]) -> tuple[data_lib.Dataset, object]:
    """(the one dataset, the `usecases` block) of the sweep, or a ConfigError naming the key."""
    for m in members:
        c = m.config
        if "usecases" not in c:
            raise ConfigError(f"config.usecases: member {m.name!r} has none; start from experiments/use_cases/config.py")
        if c.model.kind != "mlp" or c.noise.kind not in ("none", "gaussian") or c.vae.enabled:
            raise ConfigError(f"model.kind, noise.kind, vae.enabled: member {m.name!r}: every member must be an MLP AE "
                              "trained plain or on Gaussian noise (mlp, none|gaussian, False)")
    first = members[0].config
    for key in ("data", "usecases"):
        odd = next((m for m in members if m.config[key].to_dict() != first[key].to_dict()), None)
        if odd is not None:
            raise ConfigError(f"config.{key}: member {odd.name!r} differs from {members[0].name!r}; "
                              f"every member must share one {key} block")
    ds = data_lib.load(first.data)
    check_usecases(first.usecases, len(ds.x_train) + len(ds.x_test))
    return ds, first.usecases


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> dict:
    """Fills WORKDIR/use_cases.json, the three figures and the analysis.md lines; returns the json's dict."""
    clock = common.Clock()
    everyone = store.load(workdir, status=None)
    members = [m for m in everyone if m.status == "ok"]
    ds, uc = check_members(members)
    den = denoising(members, ds, uc)
    examples = example_images(members, ds, uc)
    reps, y, is_test = tsne_inputs(members, ds, uc)
    dr = dimensionality_reduction(reps, y, is_test, uc)
    ver = verdicts(den, dr)
    result = dict(denoising=den, tsne={n: {k: v for k, v in r.items() if k != "embedding"} for n, r in dr.items()},
                  verdicts=ver)
    (Path(workdir) / "use_cases.json").write_text(json.dumps(result, indent=1))
    common.save_figure(figures.plot_examples(examples), workdir, "denoise_examples", writer)
    common.save_figure(figures.plot_gains(den), workdir, "denoise_gain", writer)
    common.save_figure(figures.plot_tsne(dr, y, uc.knn), workdir, "tsne", writer)
    writer.table("denoise_gain", ["denoiser"] + [f"s={s:g}" for s in den["levels"]],
                 [[n] + list(g) for n, g in den["gains"].items()])
    writer.table("tsne", ["input", "dims", "trust_raw", "trust_own", "knn_heldout", "knn_cv"],
                 [[n, r["dims"], float(np.mean(r["trust_raw"])), float(np.mean(r["trust_own"])),
                   float(np.mean(r["knn_heldout"])), float(np.mean(r["knn_cv"]))] for n, r in dr.items()])
    summary = {f"denoise_gain/{n}/s={s:g}": g[i] for n, g in den["gains"].items() for i, s in enumerate(den["levels"])}
    summary.update({f"tsne_trust/{n}": float(np.mean(r["trust_raw"])) for n, r in dr.items()})
    summary.update({f"tsne_knn_cv/{n}": float(np.mean(r["knn_cv"])) for n, r in dr.items()})
    writer.summary(summary)
    lines += markdown(name, members, ds, den, dr, ver, str(clock), [m for m in everyone if m.status != "ok"])
    return result


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md, use_cases.json and the figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.use_cases.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
