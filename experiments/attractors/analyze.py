"""python -m experiments.attractors.analyze WORKDIR: are the training images attractors of z <- f(z)?

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/attractors/config.py`:
wide leaky-ReLU MLP autoencoders on a few digits or Fashion-MNIST images) through `ae_jax.store` and tests Radhakrishnan et al.'s
associative-memory claim on each trained map f:
  rho        spectral radius (largest |eigenvalue|) of J_f(x_i) at every training image x_i
             (all below 1: x_i is an attractor of the iteration z <- f(z))
  recovery   fraction of corrupted training images z = corrupt(x_i) (the first `attractors.points`) whose
             iterates f^T(z) end within `attractors.tolerance * |x_i|` of their own source image x_i, per
             corruption level (Gaussian noise of std s; masking: a fraction of the pixels set to 0)
  to_any     fraction ending that close to some training image (a wrong one counts here only)
  nn         fraction of corrupted images whose nearest training image is their source: what a
             nearest-neighbour lookup would retrieve, the reference for `recovery`
beside the library's own diagnostics (`attractor_fraction`, `regime`, ...) from each member's record.
The corruptions and iteration settings are the config's `attractors` block. Writes WORKDIR/analysis.md,
WORKDIR/attractors.json, WORKDIR/figures/attractors_{iterations,summary}.png and a W&B analysis run.
"""

import collections
import functools
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ae_jax import data as data_lib, models, store
from ae_jax.errors import ConfigError
from experiments import common

SNAPSHOTS = (0, 1, 2, 5, 10, 30, 100)  # iterations drawn in the figure (plus the last)
LEVEL_STYLES = ("-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)))  # one per corruption level
LIBRARY_KEYS = ("regime", "attractor_fraction", "const_ratio", "ood_fidelity", "span_ood_fidelity", "jac_rank",
                "data_rank", "denoise_gain", "test_mse")


def corruptions(x_ND: np.ndarray, cfg, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{level name: (z_KD corrupted images, src_K index of each one's source image)}, seeded."""
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(min(len(x_ND), cfg.points)), cfg.repeats)
    x = np.asarray(x_ND, np.float32)[idx]
    out = {}
    for s in cfg.gaussian:
        out[f"gauss {s:g}"] = ((x + s * rng.standard_normal(x.shape)).astype(np.float32), idx)
    for p in cfg.mask:
        out[f"mask {p:g}"] = (np.where(rng.random(x.shape) < p, 0.0, x).astype(np.float32), idx)
    return out


@functools.partial(jax.jit, static_argnums=0)
def _jacobians(path, net, x_ND: jax.Array) -> jax.Array:
    return jax.vmap(jax.jacfwd(lambda v: path(net, v[None])[0]))(x_ND)


def spectral_radii(path, net, x_ND: np.ndarray) -> np.ndarray:
    """Largest |eigenvalue| of J_f at each row of x, f = path(net, .) (square: f maps R^D to R^D). `path` is
    hashable (a `models.MeanPath`): one compiled program per model spec, not per member."""
    jac = _jacobians(path, net, jnp.asarray(x_ND))
    return np.abs(np.linalg.eigvals(np.asarray(jac, np.float64))).max(-1)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _iterate(path, net, z_KD: jax.Array, iters: int):
    keep = [t for t in SNAPSHOTS if t < iters]  # the last iterate is returned on its own

    def body(t, carry):
        z, snaps = carry
        z = path(net, z)
        hit = jnp.asarray(keep) == t + 1
        return z, jnp.where(hit[:, None, None], z[None], snaps)

    snaps = jnp.broadcast_to(z_KD[None], (len(keep),) + z_KD.shape)
    return jax.lax.fori_loop(0, iters, body, (z_KD, snaps))


def iterate(path, net, z_KD: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """(f^iters(z), snapshots at SNAPSHOTS) for every row of z, f = path(net, .), in one compiled loop."""
    end, snaps = _iterate(path, net, jnp.asarray(z_KD), iters)
    return np.asarray(end), np.asarray(snaps)


def recovery(end_KD: np.ndarray, src_K: np.ndarray, z_KD: np.ndarray, x_ND: np.ndarray, tol: float) -> dict:
    """recovery, to_any and nn (module docstring) of one corruption level."""
    x = np.asarray(x_ND, np.float64)
    d_end = np.linalg.norm(end_KD[:, None, :] - x[None], axis=-1)  # (K, N)
    d_start = np.linalg.norm(z_KD[:, None, :] - x[None], axis=-1)
    radius = tol * np.linalg.norm(x, axis=-1)  # (N,)
    close = d_end <= radius[None]
    finite = np.all(np.isfinite(end_KD), -1)
    own = close[np.arange(len(src_K)), src_K] & finite
    return {"recovery": float(own.mean()), "to_any": float((close.any(1) & finite).mean()),
            "nn": float((d_start.argmin(1) == src_K).mean())}


def check(members: list[store.Member]) -> None:
    """The analysis assumes a plain square MLP map with the config's `attractors` block."""
    for m in members:
        c, mc = m.config, m.config.model
        if mc.kind != "mlp" or c.noise.kind != "none" or c.sparsity.kind != "none" or c.vae.enabled \
                or mc.code_size != mc.width:
            raise ConfigError(f"attractors: member {m.name!r} is not a plain mlp with model.code_size == "
                              f"model.width")
        if "attractors" not in c:
            raise ConfigError(f"attractors: member {m.name!r} has no config.attractors block (train it with "
                              f"experiments/attractors/config.py)")


def measure(m: store.Member, data: data_lib.Dataset) -> dict:
    """The experiment's own measurements of one trained member, plus its recorded library metrics."""
    c = m.config
    path, net = models.MeanPath(m.spec), (m.params, m.masks)
    x = np.asarray(data.x_train, np.float32)
    rho = spectral_radii(path, net, x)
    levels = corruptions(x, c.attractors, c.seed)
    names = list(levels)
    z_all = np.concatenate([levels[k][0] for k in names])
    end_all, snaps_all = iterate(path, net, z_all, c.attractors.iters)
    sizes = np.cumsum([len(levels[k][0]) for k in names])[:-1]
    rec = {k: recovery(end, levels[k][1], z, x, c.attractors.tolerance)
           for k, end, z in zip(names, np.split(end_all, sizes), np.split(z_all, sizes))}
    first = np.cumsum([0] + [len(levels[k][0]) for k in names])[:-1]
    show = {k: dict(start=z_all[i0:i0 + 2].tolist(), snaps=snaps_all[:, i0:i0 + 2].tolist(),
                    end=end_all[i0:i0 + 2].tolist(), src=levels[k][1][:2].tolist()) for k, i0 in zip(names, first)}
    return dict(
        name=m.name, data=c.data.name, dim=x.shape[1], n_train=len(x), depth=c.model.depth, width=c.model.width,
        layers=2 * c.model.depth + 2, seed=c.seed, steps=m.metrics["steps"], final_loss=m.metrics["final_total"],
        train_mse=m.metrics["train_mse"], converged=bool(m.metrics.get("converged")),
        rho_max=float(rho.max()), rho_mean=float(rho.mean()), rho_below_1=float((rho < 1).mean()),
        rho=rho.tolist(), recovery=rec,
        library={k: m.metrics.get(k) for k in LIBRARY_KEYS},
        show=show, snapshots=[t for t in SNAPSHOTS if t < c.attractors.iters] + [c.attractors.iters],
    )


def cells(results: list[dict]) -> list[dict]:
    """One dict per (data, n, depth, width) over its seeds: `KEY` the seed mean and `KEY_min` / `KEY_max`
    for the final loss, the spectral radii, rho < 1 and every level's `recovery/LEVEL` and `nn/LEVEL`;
    regimes counted; `converged` the converged seeds; the library's attractor_fraction as a seed mean."""
    grouped = collections.defaultdict(list)
    for r in results:
        grouped[(r["dim"], r["data"], r["n_train"], r["depth"], r["width"])].append(r)
    out = []
    for (dim, data, n, depth, width), rs in sorted(grouped.items()):
        flat = [dict(r, **{f"{what}/{k}": v[what] for k, v in r["recovery"].items() for what in ("recovery", "nn")},
                     lib_attractor=r["library"]["attractor_fraction"]) for r in rs]
        keys = ["final_loss", "rho_max", "rho_mean", "rho_below_1", "lib_attractor"] + [
            k for k in flat[0] if k.startswith(("recovery/", "nn/"))]
        cell = dict(data=data, dim=dim, n_train=n, depth=depth, width=width, layers=rs[0]["layers"], n=len(rs),
                    steps=sorted({r["steps"] for r in rs}), converged=sum(r["converged"] for r in rs),
                    regimes=collections.Counter(r["library"]["regime"] for r in rs),
                    levels=list(rs[0]["recovery"]))
        for k in keys:
            v = np.array([f[k] for f in flat], float)
            cell.update({k: float(v.mean()), f"{k}_min": float(v.min()), f"{k}_max": float(v.max())})
        out.append(cell)
    return out


def spread(cell: dict, key: str, digits: int = 3) -> str:
    """`mean (min-max)` over the seeds of a cell."""
    f = common.fmt
    return f"{f(cell[key], digits)} ({f(cell[key + '_min'], digits)}-{f(cell[key + '_max'], digits)})"


def plot_iterations(r: dict, x_ND: np.ndarray, shape) -> Figure:
    """Rows: corrupted inputs (two per corruption level); columns: iterates of f, then the source image."""
    rows = [(k, j) for k in r["show"] for j in range(len(r["show"][k]["src"]))]
    cols = r["snapshots"]
    fig = Figure(figsize=(0.9 * (len(cols) + 1) + 0.8, 0.95 * len(rows) + 0.7), layout="constrained")
    axes = fig.subplots(len(rows), len(cols) + 1, squeeze=False)
    for i, (k, j) in enumerate(rows):
        s = r["show"][k]
        images = [np.asarray(s["snaps"])[t, j] for t in range(len(cols) - 1)] + [s["end"][j], x_ND[s["src"][j]]]
        for col, img in enumerate(images):
            ax = axes[i, col]
            ax.imshow(np.clip(np.asarray(img).reshape(shape[:2]), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("source" if col == len(cols) else f"t={cols[col]}", fontsize=7)
            if col == 0:
                ax.set_ylabel(k, fontsize=7)
    fig.suptitle(f"z <- f(z) from corrupted training images ({r['data']}, {r['name']}; max spectral radius "
                 f"{r['rho_max']:.3f})", fontsize=8)
    return fig


def plot_summary(results: list[dict]) -> Figure:
    """Seed means against n / D (bars: seed min-max): the largest spectral radius and the recovery rate."""
    table = cells(results)
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax_rho, ax_rec = fig.subplots(1, 2)
    levels = table[0]["levels"]
    nets = sorted({(c["data"], c["dim"], c["depth"], c["width"]) for c in table})
    for j, (data, dim, depth, width) in enumerate(nets):
        cs = sorted((c for c in table if (c["data"], c["dim"], c["depth"], c["width"]) == (data, dim, depth, width)),
                    key=lambda c: c["n_train"])
        xs = [c["n_train"] / dim for c in cs]
        label = f"{data} (D={dim}), {2 * depth + 2} layers x {width}"

        def bars(key):
            mean = np.array([c[key] for c in cs])
            return [mean - [c[key + "_min"] for c in cs], [c[key + "_max"] for c in cs] - mean]

        ax_rho.errorbar(xs, [c["rho_max"] for c in cs], yerr=bars("rho_max"), fmt="o-", color=f"C{j}", capsize=2,
                        label=label)
        for li, level in enumerate(levels):
            key = f"recovery/{level}"
            ax_rec.errorbar(xs, [c[key] for c in cs], yerr=bars(key), color=f"C{j}", ms=3, capsize=2,
                            marker="os^vd"[li % 5], ls=LEVEL_STYLES[li % len(LEVEL_STYLES)],
                            label=f"{label}, {level}" if j == 0 or li == 0 else None)
    ax_rho.axhline(1.0, color="k", lw=0.8, ls=":")
    ax_rho.set(xscale="log", xlabel="training images / input dimension (n / D)",
               ylabel="max spectral radius of J_f(x_i)", title="spectral radius at the training images (< 1: attractor)")
    ax_rec.set(xscale="log", xlabel="n / D", ylabel="fraction recovered", ylim=(-0.03, 1.03),
               title="iterating f from corrupted training images: back to the source")
    ax_rho.legend(fontsize=6)
    ax_rec.legend(fontsize=5, ncol=2)
    fig.suptitle("seed means, bars: seed min-max", fontsize=8)
    return fig


def claim(results: list[dict]) -> tuple[str, str]:
    """Every training image an attractor (rho < 1) and most lightly corrupted images recovered, in every
    member (every seed)."""
    light = next(iter(results[0]["recovery"]))
    attract = [r for r in results if r["rho_below_1"] == 1.0]
    recovered = [r for r in results if r["recovery"][light]["recovery"] >= 0.9]
    per_data = []
    for data in sorted({r["data"] for r in results}):
        rs = [r for r in results if r["data"] == data]
        per_data.append(f"{data}: {sum(r in attract for r in rs)}/{len(rs)} and "
                        f"{sum(r in recovered for r in rs)}/{len(rs)}")
    per_data = "; ".join(per_data)
    text = (f"{len(attract)}/{len(results)} nets have spectral radius < 1 at every training image; "
            f"{len(recovered)}/{len(results)} recover >= 90% of the images corrupted by {light} ({per_data})")
    if len(attract) == len(results) and len(recovered) == len(results):
        return "reproduced", text
    return ("partly reproduced" if attract or recovered else "not reproduced"), text


def table(results: list[dict]) -> tuple[list[str], list[list]]:
    table_cells = cells(results)
    levels = table_cells[0]["levels"]
    head = (["data", "n", "layers", "width", "converged", "steps", "final train loss", "rho max", "rho mean",
             "rho < 1"] + [f"{k}: recovered / nn" for k in levels] + ["lib attractor", "regimes"])
    rows = []
    for c in table_cells:
        rows.append([f"{c['data']} (D={c['dim']})", c["n_train"], c["layers"], c["width"], f"{c['converged']}/{c['n']}",
                     "/".join(map(str, c["steps"])),
                     f"{c['final_loss']:.1e} ({c['final_loss_min']:.0e}-{c['final_loss_max']:.0e})",
                     spread(c, "rho_max"), f"{c['rho_mean']:.3f}", spread(c, "rho_below_1", 2)]
                    + [f"{spread(c, f'recovery/{k}', 2)} / {c[f'nn/{k}']:.2f}" for k in levels]
                    + [spread(c, "lib_attractor", 2),
                       ", ".join(f"{k} {v}/{c['n']}" for k, v in c["regimes"].most_common())])
    return head, rows


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md, WORKDIR/attractors.json and the two figures."""
    clock = common.Clock()
    members = store.load(workdir)
    check(members)
    datasets = {m.name: m.dataset for m in members}
    results = [measure(m, datasets[m.name]) for m in members]
    (Path(workdir) / "attractors.json").write_text(json.dumps(results))
    # the figure's net: the largest input dimension (n << D), the most training images up to 30, then the
    # deepest and widest, first seed
    pick = max(range(len(results)), key=lambda i: (results[i]["dim"], results[i]["n_train"] <= 30,
                                                   results[i]["n_train"], results[i]["depth"], results[i]["width"],
                                                   -results[i]["seed"]))
    data = datasets[members[pick].name]
    paths = [common.save_figure(plot_iterations(results[pick], data.x_train, data.shape), workdir,
                                "attractors_iterations", writer),
             common.save_figure(plot_summary(results), workdir, "attractors_summary", writer)]
    head, rows = table(results)
    verdict, text = claim(results)
    writer.table("members", head, rows)
    writer.summary({"verdict": verdict})
    c, a = members[0].config, members[0].config.attractors
    levels = list(results[0]["recovery"])
    table_cells = cells(results)
    lines += [
        f"# {name}: training images as attractors of z <- f(z)", "",
        f"{' and '.join(sorted({r['data'] for r in results}))}, first n training images; {len(results)} members "
        f"({len(table_cells)} cells x seeds {sorted({r['seed'] for r in results})}, "
        f"{sum(r['converged'] for r in results)} converged); {c.model.activation} MLP (every layer but the output), code as "
        f"wide as the hidden layers; {c.train.optimizer} {c.train.learning_rate:g}, {c.train.schedule} schedule, "
        f"{'/'.join(map(str, sorted({r['steps'] for r in results})))} steps of batch n; {a.repeats} corruptions "
        f"per image and level, {a.iters} iterations, recovered = within {a.tolerance:g} x |x_i| of the source "
        f"image; analysis wall time {clock}.", "",
        *[f"![{p.stem}](figures/{p.name})" for p in paths], "",
        "rho: spectral radius of J_f at the training images. recovered / nn: fraction of corrupted images "
        "that iterating f returns to their own source image / whose nearest training image is the source "
        "(a nearest-neighbour lookup's score). lib attractor, regime ... jac_rank: the library's metrics from "
        f"`results.jsonl` (`attractor_fraction`: Gaussian noise std {c.diagnostics.noise_std:g}, "
        f"{c.diagnostics.attractor_iters} iterations, radius {c.diagnostics.attractor_radius:g} x the noise norm). "
        "final train loss: the recorded `final_total` (per-example sum of squares, last logging chunk); "
        "converged: seeds whose loss had stopped falling (`regime.converged`). Cells: seed mean (min-max).", "",
        common.md_table(head, rows), "",
        "Where the wrongly recovered ones go (fraction ending at any training image, own or not):", "",
        common.md_table(["data", "n", "layers", "width", "seed"] + levels,
                        [[r["data"], r["n_train"], r["layers"], r["width"], r["seed"]]
                         + [f"{r['recovery'][k]['to_any']:.2f}" for k in levels]
                         for r in sorted(results, key=lambda r: (r["dim"], r["n_train"], r["depth"], r["seed"]))]), "",
        f"Verdict: **{verdict}**: {text}."]


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md, its figures and attractors.json; returns the analysis path."""
    return common.analysis_command(argv, "experiments.attractors.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
