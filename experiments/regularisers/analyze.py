"""python -m experiments.regularisers.analyze WORKDIR: how far each regulariser pulls the map off the identity.

Reads WORKDIR/results.jsonl (from `python -m ae_jax.sweep --config=experiments/regularisers/config.py`),
writes WORKDIR/analysis.md: per data set every regulariser and strength over its seeds (mean and min-max)
with regime counts, convergence, steps and final loss, the whole-map Jacobian (jac_rank, kept_dims,
jac_trace), noise_gain and denoise_gain, the test-MSE cost against PCA; the Wiener filter
C (C + s^2 I)^-1, the closed-form linear denoiser, beside the Gaussian DAE at each s; and two separate
verdicts, one on the Jacobian rank and one on the noise gain. Figures: WORKDIR/figures/regulariser_paths.png
(each regulariser's path as its strength grows, against PCA-k and the Wiener family) and
jacobian_spectra.png (the mean singular values of the whole map's Jacobian on the span, seed 0).
`analyze WORKDIR LONGER_WORKDIR` (the same settings, or some of them, trained longer) adds the training-budget
control and every setting at the longest budget it was run for, read against its reference.
"""

import collections
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ae_jax import config as config_lib, data as data_lib, diagnostics, regime, store
from experiments import common

ORDER = ("plain", "gaussian", "mask", "l1", "kl", "topk", "contractive")
SHORT = {"plain": "plain", "gaussian": "Gaussian DAE", "mask": "masking DAE", "l1": "L1 sparse", "kl": "KL sparse",
         "topk": "top-k", "contractive": "contractive"}
LABEL = {"plain": "plain", "gaussian": "denoising (Gaussian, std)", "mask": "denoising (masking, fraction)",
         "l1": "L1 sparse (weight)", "kl": "KL sparse, sigmoid code (weight)", "topk": "top-k (k)",
         "contractive": "contractive (weight)"}
SPARSE = ("l1", "kl", "topk")
RANK_DROP = 0.5  # "pulled off the identity": at least half a span direction (mean over points) lost
STAT_KEYS = ("jac_rank", "kept_dims", "jac_trace", "noise_gain", "denoise_gain", "perturb_gain", "span_ood_fidelity",
             "test_mse", "train_mse", "final_total", "steps", "l0", "dead_fraction", "probe_acc", "probe_acc_init",
             "probe_acc_raw")
WIENER_GRID = np.geomspace(0.01, 1.0, 41)  # noise stds of the Wiener family drawn in the path figure
SPECTRUM_POINTS = 50  # test points whose Jacobian spectra are averaged in jacobian_spectra.png
SPECTRUM_DAE = 0.2  # the Gaussian DAE drawn there, beside the Wiener filter at the same s


def family(c: dict) -> tuple[str, float]:
    """(regulariser, strength) of one member's flat config."""
    kind = c["sparsity.kind"]
    if kind == "topk":
        return "topk", c["sparsity.k"]
    if kind in ("l1", "kl"):
        return kind, c["sparsity.weight"]
    if c["noise.kind"] != "none":
        return c["noise.kind"], c["noise.level"]
    if c["contractive.weight"] > 0:
        return "contractive", c["contractive.weight"]
    return "plain", 0.0


def cells(records: list[dict]) -> dict[tuple, dict]:
    """{(data, regulariser, strength): per metric (mean, min, max) over seeds, regime counts, converged
    count, seed count}."""
    groups = collections.defaultdict(list)
    for r in records:
        groups[(r["config"]["data.name"],) + family(r["config"])].append(r)
    out = {}
    for key, rs in groups.items():
        ms = [r["metrics"] for r in rs]
        cell = {k: float(np.mean([m[k] for m in ms])) for k in STAT_KEYS if k in ms[0]}
        cell["range"] = {k: (min(m[k] for m in ms), max(m[k] for m in ms)) for k in STAT_KEYS if k in ms[0]}
        cell.update(regimes=collections.Counter(m["regime"] for m in ms), n=len(ms),
                    converged=sum(bool(m.get("converged")) for m in ms), data_rank=ms[0]["data_rank"],
                    input_dim=ms[0]["input_dim"], code_size=rs[0]["config"]["model.code_size"],
                    noise_std=ms[0]["noise_std"], seeds=sorted(r["config"]["seed"] for r in rs))
        out[key] = cell
    return out


def load_data(records: list[dict]) -> dict[str, data_lib.Dataset]:
    """The data sets the members were trained on, rebuilt from their recorded `data.*` keys."""
    out = {}
    for r in records:
        name = r["config"]["data.name"]
        if name not in out:
            keys = {k: v for k, v in r["config"].items() if k.startswith("data.")}
            out[name] = data_lib.load(config_lib.apply_overrides(config_lib.base_config(), keys).data)
    return out


def pca_frontier(ds: data_lib.Dataset, noise_std: float, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA-k for k = 0 .. r: test MSE, denoise_gain, noise_gain and span_ood_fidelity, the closed-form
    reference a map of Jacobian rank k is read against (a projector has exactly k span gains of 1)."""
    x_tr, x_te = np.asarray(ds.x_train, np.float64), np.asarray(ds.x_test, np.float64)
    mu, _, evecs, r = diagnostics.pca(ds.x_train)
    rng = np.random.default_rng(seed)
    e = noise_std * rng.standard_normal(x_te.shape)
    lo, hi = x_tr.min(0), x_tr.max(0)
    z = rng.uniform(lo, hi, (1000, x_tr.shape[1]))
    u = evecs[:, :r]
    z_span = mu + (z - mu) @ u @ u.T
    ks = np.arange(r + 1)
    out = dict(k=ks, test_mse=[], denoise_gain=[], noise_gain=[], span_ood_fidelity=[])
    for k in ks:
        p = evecs[:, :k] @ evecs[:, :k].T
        f = lambda a: mu + (a - mu) @ p  # noqa: E731
        out["test_mse"].append(float(np.mean((x_te - f(x_te)) ** 2)))
        out["denoise_gain"].append(float(np.sum((f(x_te + e) - x_te) ** 2) / np.sum(e ** 2)))
        out["noise_gain"].append(float(np.sum((e @ p) ** 2) / np.sum(e ** 2)))
        out["span_ood_fidelity"].append(1.0 - float(np.sum((z_span - f(z_span)) ** 2) / np.sum((z_span - mu) ** 2)))
    return {k: np.asarray(v) for k, v in out.items()}


def wiener(ds: data_lib.Dataset, s: float, noise_std: float, seed: int = 0) -> dict[str, float]:
    """The Wiener filter W = C (C + s^2 I)^-1 (C: the biased train covariance), the best linear denoiser
    for noise of std s, measured as the sweep measures a member: `jac_rank` (span gains above 0.5, i.e.
    eigenvalues above s^2), `kept_dims` (stable rank of the gains), test MSE on clean data, and
    `noise_gain` / `denoise_gain` under noise of std `noise_std`."""
    x_te = np.asarray(ds.x_test, np.float64)
    mu, evals, evecs, r = diagnostics.pca(ds.x_train)
    gains = np.zeros(len(evals))
    gains[:r] = evals[:r] / (evals[:r] + s ** 2)  # beyond the span the data is constant: nothing passes
    w = evecs @ np.diag(gains) @ evecs.T
    e = noise_std * np.random.default_rng(seed).standard_normal(x_te.shape)
    f = lambda a: mu + (a - mu) @ w  # noqa: E731
    return dict(s=s, jac_rank=int(np.sum(gains[:r] > diagnostics.JAC_GAIN)),
                kept_dims=float(np.sum(gains ** 2) / np.max(gains ** 2)),
                jac_trace=float(np.sum(gains) / r), test_mse=float(np.mean((x_te - f(x_te)) ** 2)),
                noise_gain=float(np.sum((e @ w) ** 2) / np.sum(e ** 2)),
                denoise_gain=float(np.sum((f(x_te + e) - x_te) ** 2) / np.sum(e ** 2)), data_rank=r)


def spread(v: dict, key: str, digits: int = 3) -> str:
    """'mean (min-max)' over a cell's seeds; the mean alone for one seed."""
    lo, hi = v["range"][key]
    return common.fmt(v[key], digits) + (f" ({common.fmt(lo, digits)}-{common.fmt(hi, digits)})" if v["n"] > 1 else "")


def regime_text(v: dict) -> str:
    return ", ".join(f"{k} {n}/{v['n']}" for k, n in v["regimes"].most_common())


def strengths_of(table: dict, data: str, name: str) -> list[float]:
    return sorted(s for d, f, s in table if d == data and f == name)


HEAD = ["regulariser", "strength", "seeds", "regime", "converged", "steps", "final loss", "jac_rank",
        "kept_dims", "jac_trace", "noise_gain", "denoise_gain", "perturb_gain", "span_ood_fidelity", "test_mse",
        "x PCA", "l0"]


def rows_of(table: dict, data: str, datasets: dict) -> list[list[str]]:
    """One markdown row per (regulariser, strength) of a data set, in the order of ORDER."""
    rows = []
    for name in ORDER:
        for strength in strengths_of(table, data, name):
            v = table[(data, name, strength)]
            k_eff = int(round(v["jac_rank"]))
            pca_k = diagnostics.pca_mse(datasets[data].x_train, datasets[data].x_test, k_eff)
            rows.append([SHORT[name], f"{strength:g}", str(v["n"]), regime_text(v), f"{v['converged']}/{v['n']}",
                         f"{v['steps']:.0f}", spread(v, "final_total"), spread(v, "jac_rank"),
                         spread(v, "kept_dims"), f"{v['jac_trace']:.2f}", spread(v, "noise_gain"),
                         spread(v, "denoise_gain"), spread(v, "perturb_gain"), f"{v['span_ood_fidelity']:.3f}",
                         spread(v, "test_mse"),
                         common.fmt(v["test_mse"] / pca_k, 3) + f" (k={k_eff})" if pca_k > 0 else "—",
                         common.fmt(v.get("l0"), 3)])
    return rows


def below(a: dict, b: dict, key: str, margin: float = 0.0) -> bool:
    """a's every seed lies below b's every seed by more than `margin`: a difference beyond the seed spread."""
    return a["range"][key][1] < b["range"][key][0] - margin


def reference(table: dict, data: str, name: str) -> dict:
    """What a regulariser is read against: the plain AE; for KL, its own weight-0 sigmoid-code AE."""
    return table[(data, "kl", 0.0)] if name == "kl" and (data, "kl", 0.0) in table else table[(data, "plain", 0.0)]


def on_settings(table: dict, data: str, name: str) -> list[tuple[float, dict]]:
    """(strength, cell) of a regulariser switched on, weakest first (top-k: largest k first)."""
    ss = [s for s in strengths_of(table, data, name) if not (name == "kl" and s == 0.0)]
    if name == "topk":
        ss = ss[::-1]
    return [(s, table[(data, name, s)]) for s in ss]


def verdicts(table: dict, data: str, wiener_measure: dict) -> tuple[list[list[str]], dict[str, dict[str, bool]]]:
    """Per regulariser: does its strongest setting lower jac_rank beyond the seed spread (and by at least
    RANK_DROP), and does its best setting lower noise_gain beyond the seed spread; with the best
    noise_gain against the Wiener filter's at the measurement noise."""
    rows, ok = [], {}
    for name in ORDER[1:]:
        on = on_settings(table, data, name)
        if not on:
            continue
        ref = reference(table, data, name)
        strongest = on[-1][1]
        rank_falls = below(strongest, ref, "jac_rank", RANK_DROP)
        best_s, best = min(on, key=lambda sv: sv[1]["noise_gain"])
        gain_falls = below(best, ref, "noise_gain")
        rises = [f"{s:g}" for s, v in on if v["range"]["noise_gain"][0] > ref["range"]["noise_gain"][1]]
        ok[name] = {"rank": rank_falls, "noise": gain_falls}
        rows.append([SHORT[name], spread(ref, "jac_rank", 3), spread(strongest, "jac_rank", 3),
                     "yes" if rank_falls else "**no**", spread(ref, "noise_gain"),
                     f"{spread(best, 'noise_gain')} at {best_s:g}", "yes" if gain_falls else "**no**",
                     ", ".join(rises) or "none", f"{wiener_measure['noise_gain']:.3f}",
                     "yes" if best["range"]["noise_gain"][1] <= wiener_measure["noise_gain"] else "no"])
    return rows, ok


def failed_tests(records: list[dict]) -> dict[tuple, collections.Counter]:
    """{(data, regulariser, strength): how many of its `unresolved` members fail each of the structured
    label's conditions, or pass another label's test (docs/regime.md)} for cells with unresolved members."""
    out = collections.defaultdict(collections.Counter)
    for r in records:
        m = r["metrics"]
        if m["regime"] != "unresolved":
            continue
        fails = {"test_fvu > PCA control": not m["test_fvu"] <= (1 + regime.PCA_SLACK) * m["pca_kept_fvu"]
                 + regime.FVU_SLACK, "gen_gap > 0.1": not m["gen_gap"] <= regime.SMALL_GAP,
                 f"perturb_gain > {regime.CONTRACTION:g}": not m["perturb_gain"] <= regime.CONTRACTION,
                 "const_ratio < 0.05": not m["const_ratio"] >= regime.CONSTANT}
        passed = [f"passes {label}" for label, ok in regime.evidence(m).items() if ok]  # a conflict, if any
        out[(r["config"]["data.name"],) + family(r["config"])].update([k for k, bad in fails.items() if bad] + passed)
    return out


def budget_rows(table: dict, long_table: dict) -> list[list[str]]:
    """The same settings at the sweep's steps and at the long run's: does a number move beyond the seed
    spread (the two seed ranges do not overlap) when training runs longer?"""
    rows = []
    for key in sorted(long_table, key=lambda k: (k[0], ORDER.index(k[1]), k[2])):
        if key not in table:
            continue
        a, b = table[key], long_table[key]
        moved = [k for k in ("jac_rank", "noise_gain", "perturb_gain", "test_mse")
                 if below(a, b, k) or below(b, a, k)]
        rows.append([key[0], SHORT[key[1]], f"{key[2]:g}", f"{a['steps']:.0f} / {b['steps']:.0f}",
                     f"{a['converged']}/{a['n']} / {b['converged']}/{b['n']}",
                     f"{spread(a, 'final_total')} / {spread(b, 'final_total')}",
                     f"{regime_text(a)} / {regime_text(b)}", f"{spread(a, 'jac_rank')} / {spread(b, 'jac_rank')}",
                     f"{spread(a, 'noise_gain')} / {spread(b, 'noise_gain')}",
                     f"{spread(a, 'perturb_gain')} / {spread(b, 'perturb_gain')}",
                     f"{spread(a, 'test_mse')} / {spread(b, 'test_mse')}", ", ".join(moved) or "none"])
    return rows


SETTLED_HEAD = ["regulariser", "strength", "steps", "converged", "final loss", "regime", "jac_rank", "kept_dims",
                "noise_gain", "perturb_gain", "test_mse", "rank vs reference", "noise_gain vs reference"]


def settled_rows(table: dict, long_table: dict, data: str) -> list[list[str]]:
    """Every setting of a data set at the longest budget it was run for (the longer sweep's cell where that
    sweep has it, this sweep's otherwise), each read against its reference (the plain AE; KL: its weight-0
    sigmoid AE) at that reference's longest budget: `falls` when every seed's jac_rank lies more than
    RANK_DROP below every reference seed's; noise_gain `lower` / `higher` when every seed lies below / above
    every reference seed, `overlaps` otherwise."""
    merged = {k: long_table.get(k, v) for k, v in table.items()}
    rows = []
    for name in ORDER:
        for strength in strengths_of(merged, data, name):
            v = merged[(data, name, strength)]
            is_ref = name == "plain" or (name == "kl" and strength == 0.0)
            ref = reference(merged, data, name)
            rank = "—" if is_ref else "falls" if below(v, ref, "jac_rank", RANK_DROP) else "**no**"
            noise = "—" if is_ref else "lower" if below(v, ref, "noise_gain") else (
                "**higher**" if below(ref, v, "noise_gain") else "overlaps")
            rows.append([SHORT[name], f"{strength:g}", f"{v['steps']:.0f}", f"{v['converged']}/{v['n']}",
                         spread(v, "final_total"), regime_text(v), spread(v, "jac_rank"), spread(v, "kept_dims"),
                         spread(v, "noise_gain"), spread(v, "perturb_gain"), spread(v, "test_mse"), rank, noise])
    return rows


def probe_rows(table: dict) -> list[list[str]]:
    """probe_acc beside its references (the same probe on the untrained initial codes, and on the raw
    inputs) for the cells that recorded them."""
    return [[k[0], SHORT[k[1]], f"{k[2]:g}", spread(v, "probe_acc"), spread(v, "probe_acc_init"),
             spread(v, "probe_acc_raw")]
            for k, v in sorted(table.items(), key=lambda kv: (kv[0][0], ORDER.index(kv[0][1]), kv[0][2]))
            if "probe_acc_init" in v]


def topk_bound(records: list[dict]) -> tuple[bool, str]:
    """jac_rank <= k and l0 <= k for every top-k member (by construction of the code)."""
    tops = [r for r in records if r["config"]["sparsity.kind"] == "topk"]
    bad = [r["name"] for r in tops if r["metrics"]["jac_rank"] > r["config"]["sparsity.k"] + 1e-6
           or r["metrics"]["l0"] > r["config"]["sparsity.k"] + 1e-6]
    by_k = collections.defaultdict(list)
    for r in tops:
        by_k[(r["config"]["data.name"], r["config"]["sparsity.k"])].append(r["metrics"]["jac_rank"])
    text = ", ".join(f"{d} k={k}: {max(v):.1f}" for (d, k), v in sorted(by_k.items()))
    return (not bad and bool(tops)), text


def spectra(workdir: Path, records: list[dict], data: str, ds: data_lib.Dataset) -> dict[str, np.ndarray]:
    """Mean singular values (largest first) of the whole map's Jacobian on the span, over SPECTRUM_POINTS
    test points: seed 0 of the plain AE, the Gaussian DAE at SPECTRUM_DAE, the KL reference (weight 0) and
    every sparse regulariser's strongest setting."""
    wanted = {("plain", 0.0), ("gaussian", SPECTRUM_DAE), ("kl", 0.0)}
    table = cells([r for r in records if r["config"]["data.name"] == data])
    for name in SPARSE:
        on = on_settings(table, data, name)
        if on:
            wanted.add((name, on[-1][0]))
    members = {m.index: m for m in store.load(workdir)}
    points = np.asarray(ds.x_test[:SPECTRUM_POINTS])
    out = {}
    for r in records:
        key = family(r["config"])
        if r["config"]["data.name"] == data and r["config"]["seed"] == 0 and key in wanted:
            fn, net = members[r["member"]].mean_path
            out[f"{SHORT[key[0]]} {key[1]:g}"] = diagnostics.jacobian_spectrum(fn, net, ds.x_train, points).mean(0)
    return out


def plot_paths(table: dict, frontiers: dict, wiener_family: dict) -> Figure:
    datasets = sorted({k[0] for k in table})
    panels = (("test_mse", "test MSE (log)"), ("noise_gain", "noise_gain"), ("span_ood_fidelity", "span_ood_fidelity"))
    fig = Figure(figsize=(15, 4.6 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(panels), squeeze=False)
    for i, data in enumerate(datasets):
        plain = table[(data, "plain", 0.0)]
        r = plain["data_rank"]
        fr, wf = frontiers[data], wiener_family[data]
        for j, (metric, title) in enumerate(panels):
            ax = axes[i, j]
            floor = (lambda y: np.maximum(y, 1e-7)) if metric == "test_mse" else (lambda y: y)
            ax.plot(fr["k"] / r, floor(fr[metric]), "k--", lw=1, label="PCA-k (k / r on x)")
            if metric != "span_ood_fidelity":
                ax.plot([w["jac_rank"] / r for w in wf], floor(np.array([w[metric] for w in wf])), "k:", lw=1.2,
                        label="Wiener filter, s = 0.01 .. 1")
            for c, name in enumerate(ORDER[1:]):
                on = on_settings(table, data, name)
                path = [reference(table, data, name)] + [v for _, v in on]
                xs = [v["jac_rank"] / r for v in path]
                ys = floor(np.array([v[metric] for v in path]))
                ax.plot(xs, ys, "-o", color=f"C{c}", ms=4, lw=1.3, label=LABEL[name])
                ax.plot(xs[-1:], ys[-1:], "s", color=f"C{c}", ms=7)  # the strongest setting
            ax.plot([plain["jac_rank"] / r], floor(np.array([plain[metric]])), "*", color="k", ms=14, label="plain AE")
            if metric == "test_mse":
                ax.set_yscale("log")
            ax.set(xlabel="jac_rank / r", title=f"{data} (D = {plain['input_dim']}, r = {r}, code "
                                                f"{plain['code_size']}): {title}")
        axes[i, 0].legend(fontsize=7)
    fig.suptitle("Paths from each regulariser's reference (star: plain AE) as strength grows (square: strongest), "
                 "seed means; dashed: PCA-k; dotted: Wiener filter")
    return fig


def plot_spectra(curves: dict[str, dict[str, np.ndarray]], wiener_at: dict[str, dict]) -> Figure:
    fig = Figure(figsize=(6.5 * len(curves), 4.4), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (data, by_name) in zip(axes, sorted(curves.items())):
        for c, (label, sv) in enumerate(by_name.items()):
            ax.plot(np.arange(1, len(sv) + 1), sv, "-", color=f"C{c}", lw=1.4, label=label)
        g = wiener_at[data]["gains"]
        ax.plot(np.arange(1, len(g) + 1), g, "k:", lw=1.4, label=f"Wiener filter, s = {wiener_at[data]['s']:g}")
        ax.axhline(diagnostics.JAC_GAIN, color="grey", lw=0.8)
        ax.set(xlabel="singular value index (on the data span)", ylabel="mean singular value",
               title=f"{data}: whole-map Jacobian spectra (seed 0, {SPECTRUM_POINTS} test points)")
        ax.legend(fontsize=7)
    return fig


def wiener_gains(ds: data_lib.Dataset, s: float) -> np.ndarray:
    _, evals, _, r = diagnostics.pca(ds.x_train)
    return evals[:r] / (evals[:r] + s ** 2)


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str],
            long_records: list[dict] | None = None) -> None:
    """Fills WORKDIR/analysis.md, WORKDIR/figures/regulariser_paths.png and jacobian_spectra.png;
    `long_records` (a longer sweep: `:long`, or the series at more steps) adds the training-budget control and
    every setting at its longest budget."""
    table = cells(records)
    if not any(k[1] == "plain" for k in table):
        raise common.ConfigError(f"{workdir}/results.jsonl: no plain autoencoder to compare against")
    datasets = load_data(records)
    first = records[0]["config"]
    s_measure = first["diagnostics.noise_std"]
    frontiers = {d: pca_frontier(ds, s_measure) for d, ds in datasets.items()}
    wiener_family = {d: [wiener(ds, s, s_measure) for s in WIENER_GRID] for d, ds in datasets.items()}
    path = common.save_figure(plot_paths(table, frontiers, wiener_family), workdir, "regulariser_paths", writer)
    curves, wiener_at = {}, {}
    for d, ds in datasets.items():
        curves[d] = spectra(workdir, records, d, ds)
        wiener_at[d] = {"s": SPECTRUM_DAE, "gains": wiener_gains(ds, SPECTRUM_DAE)}
    spec_path = common.save_figure(plot_spectra(curves, wiener_at), workdir, "jacobian_spectra", writer)
    topk_ok, topk_text = topk_bound(records)
    seeds = sorted({r["config"]["seed"] for r in records})
    lines += [f"# {name}: regularisers pull a 4x overcomplete AE off the identity", "",
              f"Depth-0 ReLU AEs (code = 4 x D), Adam {first['train.learning_rate']:g}, {first['train.steps']} "
              f"steps of batch {first['train.batch_size']}; {len(records)} members, seeds {seeds}. Each cell: "
              "the seed mean and (min-max over seeds). `final loss`: the training objective (summed over "
              "dimensions, with its penalty) over the last logged chunk; `converged`: members whose loss had "
              "stopped falling (docs/regime.md). jac_rank / kept_dims / jac_trace: the whole map's Jacobian "
              "on the data span (gains above 0.5 / stable rank / mean gain). noise_gain = "
              "E||f(x + e) - f(x)||^2 / E||e||^2 and denoise_gain = E||f(x + e) - x||^2 / E||e||^2 at "
              f"s = {s_measure:g}. `x PCA`: test_mse over PCA keeping round(jac_rank) components.", "",
              f"![paths](figures/{path.name})", "", f"![spectra](figures/{spec_path.name})", ""]
    summary = {"topk_bound": topk_ok}
    for data in sorted(datasets):
        ds = datasets[data]
        rows = rows_of(table, data, datasets)
        writer.table(f"regularisers_{data}", HEAD, rows)
        plain = table[(data, "plain", 0.0)]
        measure = wiener(ds, s_measure, s_measure)
        lines += [f"## {data} (D = {plain['input_dim']}, data rank r = {plain['data_rank']}, code "
                  f"{plain['code_size']})", "", common.md_table(HEAD, rows), ""]
        dae_rows = []
        for s in strengths_of(table, data, "gaussian"):
            v, w = table[(data, "gaussian", s)], wiener(ds, s, s_measure)
            dae_rows.append([f"{s:g}", spread(v, "jac_rank", 3), str(w["jac_rank"]), spread(v, "kept_dims", 3),
                             f"{w['kept_dims']:.1f}", spread(v, "noise_gain"), f"{w['noise_gain']:.3f}",
                             spread(v, "test_mse"), f"{w['test_mse']:.3g}"])
        lines += ["### Gaussian DAE against the Wiener filter C (C + s^2 I)^-1 at its training s", "",
                  "The Wiener filter is the best linear denoiser for noise of std s; it keeps the principal "
                  "directions with variance above s^2 at gain above 0.5. Its noise_gain and test MSE are "
                  f"measured exactly as the members' (noise s = {s_measure:g} on the test set).", "",
                  common.md_table(["s", "DAE jac_rank", "Wiener jac_rank", "DAE kept_dims", "Wiener kept_dims",
                                   "DAE noise_gain", "Wiener noise_gain", "DAE test_mse", "Wiener test_mse"],
                                  dae_rows), ""]
        v_rows, ok = verdicts(table, data, measure)
        lines += ["### Verdicts: Jacobian rank and noise gain, separately", "",
                  f"Rank falls: every seed of the strongest setting (top-k: smallest k) has jac_rank more than "
                  f"{RANK_DROP:g} below every seed of the reference (the plain AE; KL: its weight-0 sigmoid "
                  "AE). Noise gain falls: every seed of the setting with the lowest mean noise_gain lies below "
                  "every seed of the reference. `rises at`: settings whose every seed passes MORE noise than "
                  f"every reference seed. Wiener: the filter at s = {s_measure:g}, the measurement noise.", "",
                  common.md_table(["regulariser", "ref jac_rank", "strongest jac_rank", "rank falls",
                                   "ref noise_gain", "lowest noise_gain", "noise gain falls", "noise gain rises at",
                                   "Wiener noise_gain", "<= Wiener"], v_rows), ""]
        why = failed_tests(records)
        why_rows = [[SHORT[k[1]], f"{k[2]:g}", f"{table[k]['regimes']['unresolved']}/{table[k]['n']}",
                     ", ".join(f"{t} ({n})" for t, n in why[k].most_common())]
                    for k in sorted(why, key=lambda k: (ORDER.index(k[1]), k[2])) if k[0] == data]
        if why_rows:
            lines += ["### Why members are `unresolved`", "",
                      "The structured test's conditions each such member fails, and any label test it passes "
                      "(members in brackets); with no `passes`, the member passed no label's test.", "",
                      common.md_table(["regulariser", "strength", "unresolved", "failed structured conditions"],
                                      why_rows), ""]
        sv_rows = [[label, f"{sv[0]:.2f}", str(int(np.sum(sv > 1.0))), str(int(np.sum(sv > diagnostics.JAC_GAIN))),
                    f"{np.sum(sv ** 2) / sv[0] ** 2:.1f}"] for label, sv in curves[data].items()]
        w_g = wiener_at[data]["gains"]
        sv_rows.append([f"Wiener filter {wiener_at[data]['s']:g}", f"{w_g[0]:.2f}", str(int(np.sum(w_g > 1.0))),
                        str(int(np.sum(w_g > diagnostics.JAC_GAIN))), f"{np.sum(w_g ** 2) / w_g[0] ** 2:.1f}"])
        lines += ["### The whole map's Jacobian (seed 0, mean spectrum over "
                  f"{SPECTRUM_POINTS} test points)", "",
                  common.md_table(["map", "largest singular value", "# above 1", "# above 0.5",
                                   "stable rank of the mean spectrum"], sv_rows), ""]
        counts = collections.Counter()
        unconverged = sum(v["n"] - v["converged"] for k, v in table.items() if k[0] == data)
        for k, v in table.items():
            if k[0] == data:
                counts.update(v["regimes"])
        rank_yes = [SHORT[n] for n, o in ok.items() if o["rank"]]
        noise_yes = [SHORT[n] for n, o in ok.items() if o["noise"]]
        lines += [f"- Rank verdict ({data}): the Jacobian rank falls beyond the seed spread for "
                  f"**{len(rank_yes)} of {len(ok)}** regularisers ({', '.join(rank_yes) or 'none'}).",
                  f"- Noise-gain verdict ({data}): the noise gain falls beyond the seed spread for "
                  f"**{len(noise_yes)} of {len(ok)}** ({', '.join(noise_yes) or 'none'}).",
                  f"- Regimes ({data}, all members): " + ", ".join(f"{k} {n}" for k, n in counts.most_common())
                  + f"; members not converged: {unconverged}.", ""]
        summary[f"{data}/rank_falls"] = len(rank_yes)
        summary[f"{data}/noise_gain_falls"] = len(noise_yes)
    lines += [f"- Top-k: jac_rank <= k and l0 <= k for every top-k member: **{topk_ok}** (largest seed per k: "
              f"{topk_text})", ""]
    if long_records:
        long_table = cells(long_records)
        lines += ["## Training-budget control: the same settings trained longer", "",
                  "Each cell: this sweep / the longer sweep (same seeds). `moved`: metrics whose seed ranges "
                  "do not overlap between the two budgets.", "",
                  common.md_table(["data", "regulariser", "strength", "steps", "converged", "final loss", "regime",
                                   "jac_rank", "noise_gain", "perturb_gain", "test_mse", "moved"],
                                  budget_rows(table, long_table)), ""]
        for data in sorted({k[0] for k in table}):
            lines += [f"## Every setting at its longest budget ({data})", "",
                      "Each setting's cell from the longer sweep where it has one, from this sweep otherwise, "
                      "read against its reference at the reference's longest budget (the plain AE; KL: its "
                      f"weight-0 sigmoid AE). `rank vs reference`: falls = every seed more than {RANK_DROP:g} "
                      "below every reference seed; `noise_gain vs reference`: lower / higher = every seed "
                      "below / above every reference seed.", "",
                      common.md_table(SETTLED_HEAD, settled_rows(table, long_table, data)), ""]
    probes = probe_rows(cells(long_records)) if long_records else probe_rows(table)
    if probes:
        lines += ["## Probe accuracy beside its references", "",
                  "A logistic regression on the codes (`probe_acc`), on the codes of each member's own untrained "
                  "initial parameters (`probe_acc_init`) and on the raw inputs (`probe_acc_raw`); members that "
                  "recorded all three (the longer sweep's, when given).", "",
                  common.md_table(["data", "regulariser", "strength", "probe_acc", "probe_acc_init", "probe_acc_raw"],
                                  probes), ""]
    writer.summary(summary)


def main(argv: list[str]) -> Path:
    """`analyze WORKDIR [LONG_WORKDIR]`: writes WORKDIR/analysis.md and its figures; returns its path."""
    if len(argv) == 3:
        long_records = common.sweep_results(argv[::2], "experiments.regularisers.analyze")[1]
        return common.analysis_command(argv[:2], "experiments.regularisers.analyze",
                                       lambda *a: analyse(*a, long_records=long_records))
    return common.analysis_command(argv, "experiments.regularisers.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
