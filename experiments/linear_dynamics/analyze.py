"""python -m experiments.linear_dynamics.analyze WORKDIR: Saxe et al.'s learning dynamics of a linear AE,
read from the snapshots of a finished sweep.

Each member of `experiments/linear_dynamics/config.py` is one (seed, train.steps) snapshot; its map is
A = W_enc W_dec. For this loss (per-example sum of squares), a principal direction with covariance
eigenvalue ev and strength s = u^T A u follows, from a small balanced start s0, the logistic
s(t) = 1 / (1 + (1/s0 - 1) exp(-4 lr ev t)): it reaches half strength at t_half = ln(1/s0 - 1) / (4 lr ev),
so directions are learned one at a time in eigenvalue order and t_half * ev is the same for all of them.
Writes WORKDIR/figures/linear_dynamics.png, WORKDIR/analysis.md, WORKDIR/linear_dynamics.json and
WORKDIR/trajectories.npz, and logs them to W&B.
"""

import collections
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ae_jax import config as config_lib, data as data_lib, diagnostics, store
from ae_jax.errors import ConfigError
from experiments import common
from experiments.linear_dynamics import variant  # noqa: F401 (registers the dataset and the code stage)

HALF = 0.5  # a direction counts as learned once its strength passes half its final value (~1)
STOP_KS = (1, 2, 3, 4, 6, 8, 12, 16, 24)  # early-stopping table: first snapshot with k directions learned
FREE = {"seed", "train.steps"}  # the only keys snapshot members may differ in


def check_members(members: list[store.Member]) -> None:
    """Snapshots of one run per seed: same settings otherwise, a linear depth-0 AE, constant-rate SGD."""
    base = config_lib.flatten(members[0].config.to_dict())
    for m in members:
        diff = {k for k, v in config_lib.flatten(m.config.to_dict()).items() if base.get(k) != v} - FREE
        if diff:
            raise ConfigError(f"linear_dynamics: snapshot members may differ only in seed and train.steps; "
                              f"{m.name!r} also differs in {sorted(diff)}")
    c = members[0].config
    if (c.model.kind, c.model.depth, c.model.activation) != ("mlp", 0, "linear"):
        raise ConfigError("linear_dynamics: needs a linear depth-0 mlp (model.kind, model.depth, model.activation)")
    if (c.train.optimizer, c.train.schedule) != ("sgd", "constant"):
        raise ConfigError("linear_dynamics: needs train.optimizer='sgd' and train.schedule='constant' (only then "
                          "is a shorter member the start of a longer one)")
    by_seed = collections.defaultdict(set)
    for m in members:
        by_seed[int(m.config.seed)].add(int(m.config.train.steps))
    if len({frozenset(s) for s in by_seed.values()}) > 1:
        raise ConfigError(f"linear_dynamics: every seed needs the same snapshots; got {dict(by_seed)}")


def snapshots(members: list[store.Member]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(seeds, steps T, maps A (M, T, D, D), recorded test_mse (M, T)) in seed and step order."""
    seeds = sorted({int(m.config.seed) for m in members})
    steps = np.array(sorted({int(m.config.train.steps) for m in members}))
    at = {(int(m.config.seed), int(m.config.train.steps)): m for m in members}
    a = np.array([[end_to_end(at[s, t].params) for t in steps] for s in seeds])
    mse = np.array([[at[s, t].metrics["test_mse"] for t in steps] for s in seeds])
    return seeds, steps, a, mse


def end_to_end(params: dict) -> np.ndarray:
    """A with f(x) = x A + c for a depth-0 linear AE."""
    return params["code"]["kernel"].astype(np.float64) @ params["out"]["kernel"].astype(np.float64)


def half_time(steps: np.ndarray, s: np.ndarray, level: float) -> float:
    """First step where the trajectory s reaches `level`, interpolated between the bracketing snapshots
    in logit(s / (2 level)) (linear in t for the logistic, so exact for the predicted curve); linear
    where the logit is undefined. NaN if s never reaches it."""
    above = np.flatnonzero(s >= level)
    if len(above) == 0:
        return float("nan")
    j = above[0]
    if j == 0:
        return float(steps[0])
    y0, y1 = s[j - 1] / (2 * level), s[j] / (2 * level)
    if 0 < y0 < 1 and 0 < y1 < 1:
        l0, l1 = np.log(y0 / (1 - y0)), np.log(y1 / (1 - y1))
        return float(steps[j - 1] + (0.0 - l0) / (l1 - l0) * (steps[j] - steps[j - 1]))
    return float(steps[j - 1] + (level - s[j - 1]) / (s[j] - s[j - 1]) * (steps[j] - steps[j - 1]))


def analyse_dynamics(c, seeds: list[int], steps: np.ndarray, a_MTDD: np.ndarray, test_mse: np.ndarray,
                     ds: data_lib.Dataset) -> dict:
    _, evals, evecs, _ = diagnostics.pca(ds.x_train)
    n = c.dynamics.directions
    if not 1 <= n <= ds.dim:
        raise ConfigError(f"config.dynamics.directions: must be between 1 and the input dimension {ds.dim}, got {n}")
    lr = c.train.learning_rate
    # Strength of every principal direction (the map's diagonal in the eigenbasis) and the singular values.
    strengths = np.einsum("di,mtde,ei->mti", evecs, a_MTDD, evecs)
    svs = np.linalg.svd(a_MTDD, compute_uv=False)
    final = strengths[:, -1, :]
    t_half = np.array([[half_time(steps, strengths[m, :, i], HALF * final[m, i]) for i in range(n)]
                       for m in range(len(seeds))])
    # Saxe's law t_half * ev = ln(1/s0 - 1) / (4 lr): one constant, fitted as the median over directions.
    product = t_half * evals[:n]
    const = float(np.nanmedian(product))
    s0 = 1.0 / (1.0 + np.exp(4 * lr * const))
    order_ok = [bool(np.all(np.diff(t_half[m]) > 0)) for m in range(len(seeds))]
    inversions = [int(sum(t_half[m, i] > t_half[m, j] for i in range(n) for j in range(i + 1, n)))
                  for m in range(len(seeds))]
    # Early stopping as a bottleneck: k_eff = directions past half strength at a snapshot; the recorded
    # test error of that early-stopped map against PCA-k_eff's.
    k_eff = (strengths >= HALF).sum(-1)
    pca = np.array([diagnostics.pca_mse(ds.x_train, ds.x_test, k) for k in range(ds.dim + 1)])
    stops = {}
    for k in STOP_KS:
        hit = np.flatnonzero(k_eff[0] >= k)
        if len(hit) and int(steps[hit[0]]) not in stops:
            t = hit[0]
            j = int(k_eff[0, t])
            stops[int(steps[t])] = dict(k=k, step=int(steps[t]), k_eff=j, test_mse=float(test_mse[0, t]),
                                        pca_k=float(pca[j]), pca_k_minus_1=float(pca[j - 1]),
                                        pca_k_plus_1=float(pca[min(j + 1, ds.dim)]))
    # The bottleneck in one test: each early-stopped map is worse than keeping one more direction and
    # better than keeping one fewer.
    bracketed = all(s["pca_k_plus_1"] <= s["test_mse"] <= s["pca_k_minus_1"] for s in stops.values())
    return dict(
        seeds=seeds, steps=steps.tolist(), eigenvalues=evals.tolist(), t_half=t_half.tolist(),
        t_half_times_ev=product.tolist(), fitted_constant=const, fitted_s0=s0,
        predicted_t_half=(const / evals[:n]).tolist(), final_strength=final[:, :n].tolist(),
        order_ok=order_ok, inversions=inversions,
        spread_t_half_times_ev=float(np.nanstd(product) / np.nanmean(product)),
        final_k_eff=k_eff[:, -1].tolist(), final_test_mse=test_mse[:, -1].tolist(), stops=list(stops.values()),
        stops_bracketed=bracketed,
        _strengths=strengths, _svs=svs, _test_mse=test_mse, _k_eff=k_eff, _pca=pca)


def verdict_of(r: dict) -> str:
    if all(r["order_ok"]) and r["spread_t_half_times_ev"] < 0.1:
        return "reproduced"
    return "partly reproduced" if sum(r["inversions"]) <= len(r["seeds"]) else "not reproduced"


def plot(c, r: dict) -> Figure:
    n, lr = c.dynamics.directions, c.train.learning_rate
    steps = np.array(r["steps"])
    evals = np.array(r["eigenvalues"])
    fig = Figure(figsize=(16, 4.4), layout="constrained")
    ax_s, ax_sv, ax_t, ax_mse = fig.subplots(1, 4)
    cmap = colormaps["viridis"]
    norm = LogNorm(evals[n - 1], evals[0])
    grid = np.geomspace(steps[0], steps[-1], 400)
    for i in range(n):
        color = cmap(norm(evals[i]))
        ax_s.plot(steps, r["_strengths"][0, :, i], "o-", color=color, lw=1.2, ms=3)
        theory = 1.0 / (1.0 + (1.0 / r["fitted_s0"] - 1.0) * np.exp(-4 * lr * evals[i] * grid))
        ax_s.plot(grid, theory, color=color, lw=1, ls="--")
    ax_s.plot([], [], "ko-", ms=3, label="learned u_i^T A u_i (seed 0, snapshots)")
    ax_s.plot([], [], "k--", label="logistic, t_half = C / eigenvalue")
    left = min(steps[0], 0.5 * np.nanmin(r["t_half"]))
    ax_s.set(xscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
             ylabel="strength of principal direction i", title=f"top {n} directions, coloured by eigenvalue")
    ax_s.legend(fontsize=7, loc="upper left")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax_s, label="eigenvalue")
    for j in range(r["_svs"].shape[-1]):
        ax_sv.plot(steps, r["_svs"][0, :, j], color="C0", lw=0.8, alpha=0.7)
    ax_sv.set(xscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
              ylabel="singular values of W_enc W_dec", title="all singular values (seed 0): a staircase")
    th = np.array(r["t_half"])
    for m, seed in enumerate(r["seeds"]):
        ax_t.plot(1.0 / evals[:n], th[m], "o", mfc="none", label=f"seed {seed}")
    line = np.linspace(0, 1.05 / evals[n - 1], 50)
    ax_t.plot(line, r["fitted_constant"] * line, "k--", lw=1, label=f"t_half = {r['fitted_constant']:.1f} / ev")
    ax_t.set(xlabel="1 / eigenvalue", ylabel="step at half strength", title="Saxe et al.: t_half ∝ 1 / eigenvalue")
    ax_t.legend(fontsize=7)
    ax_mse.plot(steps, r["_test_mse"][0], "C0o-", ms=3, label="early-stopped map (seed 0)")
    ax_mse.plot(steps, r["_pca"][r["_k_eff"][0]], "k--", lw=1, label="PCA-k, k = directions past half strength")
    ax_mse.set(xscale="log", yscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
               ylabel="test MSE per entry", title="early stopping acts as a bottleneck")
    ax_mse.legend(fontsize=7)
    fig.suptitle(f"Linear AE from a small init ({c.dynamics.init_scale:g} x default), SGD with batch "
                 f"{c.train.batch_size}, lr {lr:g}: directions learned one at a time, largest eigenvalue first "
                 "(Saxe et al. 2014)")
    return fig


def markdown(name: str, c, r: dict, figure: str, dim: int) -> list[str]:
    n = c.dynamics.directions
    evals = np.array(r["eigenvalues"])
    th = np.array(r["t_half"])
    prod = np.array(r["t_half_times_ev"])
    head = ["i", "eigenvalue", "t_half (mean over seeds)", "t_half per seed", "predicted C / eigenvalue",
            "t_half x eigenvalue", "final strength"]
    rows = [[i + 1, f"{evals[i]:.4f}", f"{np.mean(th[:, i]):.0f}", " / ".join(f"{v:.0f}" for v in th[:, i]),
             f"{r['predicted_t_half'][i]:.0f}", f"{np.mean(prod[:, i]):.1f}",
             f"{np.mean(np.array(r['final_strength'])[:, i]):.3f}"] for i in range(n)]
    stop_head = ["stop at step", "directions past half strength (k)", "test MSE", "PCA-(k+1)", "PCA-k test MSE",
                 "PCA-(k-1)"]
    stop_rows = [[s["step"], s["k_eff"], f"{s['test_mse']:.4f}", f"{s['pca_k_plus_1']:.4f}", f"{s['pca_k']:.4f}",
                  f"{s['pca_k_minus_1']:.4f}"] for s in r["stops"]]
    return [
        f"# {name}: learning dynamics of a linear AE from a small initialisation", "",
        f"Depth-0 linear AE, code {c.model.code_size} on {c.data.name} (D = {dim}); init scale "
        f"{c.dynamics.init_scale:g}; SGD with batch {c.train.batch_size}, lr {c.train.learning_rate:g}, "
        f"{c.train.schedule}; {len(r['steps'])} snapshots from step {r['steps'][0]} to {r['steps'][-1]}; "
        f"seeds {r['seeds']}.", "",
        f"![dynamics]({figure})", "",
        f"Half-strength step of the top {n} principal directions (half of each one's final strength, "
        f"interpolated between snapshots in logit space; C = median of t_half x eigenvalue = "
        f"{r['fitted_constant']:.1f}, i.e. a fitted start s0 = {r['fitted_s0']:.2g} in "
        f"t_half = ln(1/s0 - 1) / (4 lr ev)):", "",
        common.md_table(head, rows), "",
        f"Order matches the eigenvalue order: {r['order_ok']} (per seed; inverted pairs {r['inversions']}). "
        f"Spread of t_half x eigenvalue: {100 * r['spread_t_half_times_ev']:.1f}% (std / mean).", "",
        "Early stopping as a bottleneck (seed 0): the first snapshot at which k directions are past half "
        "strength, its recorded test MSE against PCA with as many components.", "",
        common.md_table(stop_head, stop_rows), "",
        f"Every early-stopped test MSE lies between PCA-(k+1)'s and PCA-(k-1)'s: {r['stops_bracketed']}.", "",
        f"After {r['steps'][-1]} steps: {r['final_k_eff']} directions past half strength, test MSE "
        f"{', '.join(f'{v:.4g}' for v in r['final_test_mse'])}.", "",
        f"Verdict: **{verdict_of(r)}**.", ""]


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md, linear_dynamics.json, trajectories.npz and figures/linear_dynamics.png."""
    members = store.load(workdir)
    check_members(members)
    c = members[0].config
    ds = data_lib.load(c.data)
    seeds, steps, a, test_mse = snapshots(members)
    r = analyse_dynamics(c, seeds, steps, a, test_mse, ds)
    np.savez_compressed(workdir / "trajectories.npz", steps=steps, strengths=r["_strengths"],
                        singular_values=r["_svs"], test_mse=r["_test_mse"], eigenvalues=r["eigenvalues"])
    (workdir / "linear_dynamics.json").write_text(
        json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, indent=1))
    path = common.save_figure(plot(c, r), workdir, "linear_dynamics", writer)
    lines += markdown(name, c, r, f"figures/{path.name}", ds.dim)
    writer.table("half_times", ["direction", "eigenvalue"] + [f"t_half seed {s}" for s in seeds],
                 [[i + 1, r["eigenvalues"][i], *np.array(r["t_half"])[:, i]] for i in range(c.dynamics.directions)])
    writer.summary({"order_ok": all(r["order_ok"]), "t_half_times_ev": r["fitted_constant"],
                    "spread_t_half_times_ev": r["spread_t_half_times_ev"], "verdict": verdict_of(r)})


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.linear_dynamics.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
