"""python -m experiments.linear_dynamics.run --config=experiments/linear_dynamics/config.py[:smoke] --workdir=DIR

Saxe et al.'s learning dynamics of a linear autoencoder: small initialisation, plain full-batch
gradient descent on the library's loss (`objectives.loss_fn`), snapshots of the end-to-end map
A = W_enc W_dec every `dynamics.record_every` steps. For this loss (per-example sum of squares), a
principal direction with covariance eigenvalue ev and strength s = u^T A u follows, from a small
balanced start s0, the logistic s(t) = 1 / (1 + (1/s0 - 1) exp(-4 lr ev t)): it reaches half strength at
t_half = ln(1/s0 - 1) / (4 lr ev), so directions are learned one at a time in eigenvalue order and
t_half * ev is the same for all of them. Writes DIR/figures/linear_dynamics.png, DIR/analysis.md,
DIR/linear_dynamics.json and DIR/trajectories.npz, and logs them to W&B.

Why not `ae_jax.train.fit`: it samples minibatches (SGD noise) and has no init-scale key; this loop is
the same model and loss with an init scale and exact gradient descent.
"""

import functools
import json
import sys
from pathlib import Path


import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ae_jax import config as config_lib, diagnostics, models, objectives, sweep as sweep_lib, train
from ae_jax.errors import ConfigError
from experiments import common

HALF = 0.5  # a direction counts as learned once its strength passes half its final value (~1)


def end_to_end(params: dict) -> tuple[jax.Array, jax.Array]:
    """(A, c) with f(x) = x A + c for a depth-0 linear AE."""
    a = params["code"]["kernel"] @ params["out"]["kernel"]
    return a, params["code"]["bias"] @ params["out"]["kernel"] + params["out"]["bias"]


@functools.partial(jax.jit, static_argnames=("spec", "obj", "schedule", "steps", "every"))
def descend(params_M: dict, hp_M: dict, x_ND: jax.Array, *, spec, obj, schedule: str, steps: int, every: int):
    """Full-batch gradient descent of every member (vmapped); returns (A, c, train loss) at steps
    0, every, 2 every, ..., each (M, T + 1, ...)."""
    lo, hi = x_ND.min(0), x_ND.max(0)

    def member(params, hp):
        def loss(p):
            return objectives.loss_fn(p, {}, None, x_ND, jax.random.key(0), hp, spec=spec, obj=obj,
                                      lo_D=lo, hi_D=hi)[0]

        opt = optax.sgd(lambda n: hp["learning_rate"] * train.SCHEDULES[schedule](n / steps))

        def step(carry, _):
            p, s = carry
            updates, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, updates), s), None

        def snapshot(carry, _):
            carry, _ = jax.lax.scan(step, carry, length=every)
            return carry, (*end_to_end(carry[0]), loss(carry[0]))

        first = (*end_to_end(params), loss(params))
        _, later = jax.lax.scan(snapshot, (params, opt.init(params)), length=steps // every)
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)

    return jax.vmap(member)(params_M, hp_M)


def initial_params(spec: models.ModelSpec, seeds: list[int], scale: float) -> dict:
    """The library's initialisation for each seed (as `train.fit` draws it), kernels times `scale`."""
    inits = [models.init_params(spec, jax.random.fold_in(jax.random.key(s), 0)) for s in seeds]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *inits)
    return jax.tree_util.tree_map_with_path(
        lambda path, a: a * scale if path[-1].key == "kernel" else a, stacked)


def half_time(steps: np.ndarray, s: np.ndarray, level: float) -> float:
    """First step (linearly interpolated between snapshots) where the trajectory s reaches `level`."""
    above = np.flatnonzero(s >= level)
    if len(above) == 0:
        return float("nan")
    j = above[0]
    if j == 0:
        return float(steps[0])
    return float(steps[j - 1] + (level - s[j - 1]) / (s[j] - s[j - 1]) * (steps[j] - steps[j - 1]))


def analyse(c, steps: np.ndarray, a_MTDD: np.ndarray, c_MTD: np.ndarray, x_train: np.ndarray,
            x_test: np.ndarray, seeds: list[int]) -> dict:
    x = np.asarray(x_train, np.float64)
    evals, evecs = np.linalg.eigh((x - x.mean(0)).T @ (x - x.mean(0)) / len(x))
    evals, evecs = evals[::-1].clip(0.0), evecs[:, ::-1]
    n = c.dynamics.directions
    lr = c.train.learning_rate
    # Strength of every principal direction (the map in the eigenbasis, diagonal) and the singular values.
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

    # Early stopping as a bottleneck: at each snapshot, k_eff = directions past half strength; compare the
    # early-stopped map's test error with PCA-k_eff's.
    xt = np.asarray(x_test, np.float64)
    test_mse = np.array([[np.mean((xt - xt @ a_MTDD[m, t] - c_MTD[m, t]) ** 2) for t in range(len(steps))]
                         for m in range(len(seeds))])
    k_eff = (strengths >= HALF).sum(-1)
    pca = np.array([diagnostics.pca_mse(x_train, x_test, k) for k in range(x.shape[1] + 1)])
    stops = []
    for k in (1, 2, 3, 4, 6, 8, 12, 16, 24):
        hit = np.flatnonzero(k_eff[0] >= k)
        if len(hit):
            t = hit[0]
            stops.append(dict(k=k, step=int(steps[t]), k_eff=int(k_eff[0, t]), test_mse=float(test_mse[0, t]),
                              pca_k=float(pca[k]), pca_k_minus_1=float(pca[k - 1])))
    return dict(
        seeds=seeds, eigenvalues=evals.tolist(), t_half=t_half.tolist(), t_half_times_ev=product.tolist(),
        fitted_constant=const, fitted_s0=s0, predicted_t_half=(const / evals[:n]).tolist(),
        final_strength=final[:, :n].tolist(), order_ok=order_ok, inversions=inversions,
        spread_t_half_times_ev=float(np.nanstd(product) / np.nanmean(product)),
        final_k_eff=k_eff[:, -1].tolist(), final_test_mse=test_mse[:, -1].tolist(), stops=stops,
        _strengths=strengths, _svs=svs, _test_mse=test_mse, _k_eff=k_eff, _pca=pca)


def plot(c, steps: np.ndarray, r: dict) -> Figure:
    n, lr = c.dynamics.directions, c.train.learning_rate
    evals = np.array(r["eigenvalues"])
    fig = Figure(figsize=(16, 4.4), layout="constrained")
    ax_s, ax_sv, ax_t, ax_mse = fig.subplots(1, 4)
    cmap = colormaps["viridis"]
    norm = LogNorm(evals[n - 1], evals[0])
    t = np.maximum(steps, 1)
    for i in range(n):
        color = cmap(norm(evals[i]))
        ax_s.plot(t, r["_strengths"][0, :, i], color=color, lw=1.6)
        theory = 1.0 / (1.0 + (1.0 / r["fitted_s0"] - 1.0) * np.exp(-4 * lr * evals[i] * steps))
        ax_s.plot(t, theory, color=color, lw=1, ls="--")
    ax_s.plot([], [], "k-", label="learned u_i^T A u_i (seed 0)")
    ax_s.plot([], [], "k--", label="logistic, t_half = C / eigenvalue")
    left = 0.3 * np.nanmin(r["t_half"])
    ax_s.set(xscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
             ylabel="strength of principal direction i",
             title=f"top {n} directions, coloured by eigenvalue")
    ax_s.legend(fontsize=7, loc="upper left")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax_s, label="eigenvalue")
    for j in range(r["_svs"].shape[-1]):
        ax_sv.plot(t, r["_svs"][0, :, j], color="C0", lw=0.8, alpha=0.7)
    ax_sv.set(xscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
              ylabel="singular values of W_enc W_dec",
              title="all singular values (seed 0): a staircase")
    th = np.array(r["t_half"])
    for m, seed in enumerate(r["seeds"]):
        ax_t.plot(1.0 / evals[:n], th[m], "o", mfc="none", label=f"seed {seed}")
    grid = np.linspace(0, 1.05 / evals[n - 1], 50)
    ax_t.plot(grid, r["fitted_constant"] * grid, "k--", lw=1, label=f"t_half = {r['fitted_constant']:.1f} / ev")
    ax_t.set(xlabel="1 / eigenvalue", ylabel="step at half strength", title="Saxe et al.: t_half ∝ 1 / eigenvalue")
    ax_t.legend(fontsize=7)
    ax_mse.plot(t, r["_test_mse"][0], "C0-", label="early-stopped map (seed 0)")
    ax_mse.plot(t, r["_pca"][r["_k_eff"][0]], "k--", lw=1,
                label="PCA-k, k = directions past half strength")
    ax_mse.set(xscale="log", yscale="log", xlim=(left, steps[-1]), xlabel="gradient-descent step",
               ylabel="test MSE per entry", title="early stopping acts as a bottleneck")
    ax_mse.legend(fontsize=7)
    fig.suptitle(f"Linear AE from a small init ({c.dynamics.init_scale:g} x default), full-batch GD, lr {lr:g}: "
                 "directions learned one at a time, largest eigenvalue first (Saxe et al. 2014)")
    return fig


def markdown(name: str, c, r: dict, figure: str, elapsed: str) -> str:
    n = c.dynamics.directions
    evals = np.array(r["eigenvalues"])
    th = np.array(r["t_half"])
    prod = np.array(r["t_half_times_ev"])
    head = ["i", "eigenvalue", "t_half (mean over seeds)", "t_half per seed", "predicted C / eigenvalue",
            "t_half x eigenvalue", "final strength"]
    rows = [[i + 1, f"{evals[i]:.4f}", f"{np.mean(th[:, i]):.0f}", " / ".join(f"{v:.0f}" for v in th[:, i]),
             f"{r['predicted_t_half'][i]:.0f}", f"{np.mean(prod[:, i]):.1f}",
             f"{np.mean(np.array(r['final_strength'])[:, i]):.3f}"] for i in range(n)]
    stop_head = ["stop at step", "directions past half strength", "test MSE", "PCA-k test MSE", "PCA-(k-1)"]
    stop_rows = [[s["step"], s["k_eff"], f"{s['test_mse']:.4f}", f"{s['pca_k']:.4f}", f"{s['pca_k_minus_1']:.4f}"]
                 for s in r["stops"]]
    all_ok = all(r["order_ok"])
    verdict = "reproduced" if all_ok and r["spread_t_half_times_ev"] < 0.1 else (
        "partly reproduced" if sum(r["inversions"]) <= len(r["seeds"]) else "not reproduced")
    return "\n".join([
        f"# {name}: learning dynamics of a linear AE from a small initialisation", "",
        f"Depth-0 linear AE, code {c.model.code_size} on {c.data.name} (D = {len(evals)}, centred: "
        f"{c.dynamics.center}); init scale {c.dynamics.init_scale:g}; full-batch gradient descent, lr "
        f"{c.train.learning_rate:g}, {c.train.steps} steps; seeds {r['seeds']}; wall time {elapsed}.", "",
        f"![dynamics]({figure})", "",
        f"Half-strength step of the top {n} principal directions (half of each one's final strength; "
        f"C = median of t_half x eigenvalue = {r['fitted_constant']:.1f}, i.e. a fitted start s0 = "
        f"{r['fitted_s0']:.2g} in t_half = ln(1/s0 - 1) / (4 lr ev)):", "",
        common.md_table(head, rows), "",
        f"Order matches the eigenvalue order: {r['order_ok']} (per seed; inverted pairs {r['inversions']}). "
        f"Spread of t_half x eigenvalue: {100 * r['spread_t_half_times_ev']:.1f}% (std / mean).", "",
        "Early stopping as a bottleneck (seed 0): the first snapshot at which k directions are past half "
        "strength, against PCA-k.", "",
        common.md_table(stop_head, stop_rows), "",
        f"After {c.train.steps} steps: {r['final_k_eff']} directions past half strength, test MSE "
        f"{', '.join(f'{v:.4g}' for v in r['final_test_mse'])}.", "",
        f"Verdict: **{verdict}**.", ""])


def main(argv: list[str]) -> dict:
    clock = common.Clock()
    config, overrides, name, workdir = common.parse_run_flags(argv, __doc__)
    members = sweep_lib.expand(config, overrides)
    c = members[0].config
    base = config_lib.flatten(c.to_dict())
    for m in members:
        diff = {k for k, v in config_lib.flatten(m.config.to_dict()).items() if base.get(k) != v} - {"seed"}
        if diff:
            raise ConfigError(f"linear_dynamics: members may differ only in seed, not in {sorted(diff)}")
    mc = c.model
    if (mc.kind, mc.depth, mc.activation) != ("mlp", 0, "linear") or c.train.optimizer != "sgd":
        raise ConfigError("linear_dynamics: needs a linear depth-0 mlp trained with train.optimizer='sgd'")
    if c.train.steps % c.dynamics.record_every:
        raise ConfigError("config.dynamics.record_every: must divide train.steps")
    dataset = common.load_datasets(members[:1])[sweep_lib.data_key(c)]
    if c.dynamics.directions > dataset.dim:
        raise ConfigError(f"config.dynamics.directions: at most the input dimension {dataset.dim}")
    mu = dataset.x_train.mean(0) if c.dynamics.center else np.zeros(dataset.dim, np.float32)
    x_train, x_test = dataset.x_train - mu, dataset.x_test - mu
    plan = sweep_lib.plan_of(c, dataset, contractive=False)
    seeds = [m.config.seed for m in members]
    hp = {k: jnp.full(len(seeds), common.get_key(c, key), jnp.float32) for k, key in train.HPARAMS.items()}
    params = initial_params(plan.spec, seeds, c.dynamics.init_scale)
    a, bias, loss = jax.device_get(descend(params, hp, jnp.asarray(x_train), spec=plan.spec, obj=plan.obj,
                                           schedule=c.train.schedule, steps=c.train.steps,
                                           every=c.dynamics.record_every))
    steps = np.arange(0, c.train.steps + 1, c.dynamics.record_every)
    r = analyse(c, steps, np.asarray(a, np.float64), np.asarray(bias, np.float64), x_train, x_test, seeds)
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(workdir / "trajectories.npz", steps=steps, strengths=r["_strengths"], singular_values=r["_svs"],
                        test_mse=r["_test_mse"], train_loss=np.asarray(loss), eigenvalues=r["eigenvalues"])
    (workdir / "linear_dynamics.json").write_text(json.dumps({k: v for k, v in r.items() if not k.startswith("_")},
                                                            indent=1))
    with common.analysis(c.wandb, workdir, name, c) as (writer, doc):
        path = common.save_figure(plot(c, steps, r), workdir, "linear_dynamics", writer)
        doc.append(markdown(name, c, r, f"figures/{path.name}", str(clock)))
        writer.table("half_times", ["direction", "eigenvalue"] + [f"t_half seed {s}" for s in seeds],
                     [[i + 1, r["eigenvalues"][i], *np.array(r["t_half"])[:, i]] for i in range(c.dynamics.directions)])
        writer.summary({"order_ok": all(r["order_ok"]), "t_half_times_ev": r["fitted_constant"],
                        "spread_t_half_times_ev": r["spread_t_half_times_ev"]})
    return r


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
