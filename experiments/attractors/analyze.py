"""python -m experiments.attractors.analyze WORKDIR: are the training images attractors of z <- f(z)?

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/attractors/config.py`:
wide leaky-ReLU MLP autoencoders on a few digits) through `ae_jax.store` and tests Radhakrishnan et al.'s
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
        name=m.name, n_train=len(x), depth=c.model.depth, width=c.model.width, layers=2 * c.model.depth + 2,
        steps=m.metrics["steps"], final_loss=m.metrics["final_recon"], train_mse=m.metrics["train_mse"],
        rho_max=float(rho.max()), rho_mean=float(rho.mean()), rho_below_1=float((rho < 1).mean()),
        rho=rho.tolist(), recovery=rec,
        library={k: m.metrics.get(k) for k in LIBRARY_KEYS},
        show=show, snapshots=[t for t in SNAPSHOTS if t < c.attractors.iters] + [c.attractors.iters],
    )


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
    fig.suptitle(f"z <- f(z) from corrupted training digits ({r['name']}; max spectral radius "
                 f"{r['rho_max']:.3f})", fontsize=8)
    return fig


def plot_summary(results: list[dict]) -> Figure:
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax_rho, ax_rec = fig.subplots(1, 2)
    ns = sorted({r["n_train"] for r in results})
    levels = list(results[0]["recovery"])
    for j, (depth, width) in enumerate(sorted({(r["depth"], r["width"]) for r in results})):
        rs = sorted((r for r in results if (r["depth"], r["width"]) == (depth, width)), key=lambda r: r["n_train"])
        label = f"{2 * depth + 2} layers, width {width}"
        ax_rho.plot([r["n_train"] for r in rs], [r["rho_max"] for r in rs], "o-", color=f"C{j}", label=f"{label}: max")
        ax_rho.plot([r["n_train"] for r in rs], [r["rho_mean"] for r in rs], "s--", color=f"C{j}", ms=3,
                    label=f"{label}: mean")
        for li, level in enumerate(levels):
            ax_rec.plot([r["n_train"] for r in rs], [r["recovery"][level]["recovery"] for r in rs],
                        color=f"C{j}", ms=3, marker="os^vd"[li % 5], ls=LEVEL_STYLES[li % len(LEVEL_STYLES)],
                        label=f"{label}, {level}" if j == 0 or li == 0 else None)
    ax_rho.axhline(1.0, color="k", lw=0.8, ls=":")
    ax_rho.set(xscale="log", yscale="log", xlabel="training images n", ylabel="spectral radius of J_f(x_i)",
               title="spectral radius at the training images (< 1: attractor)")
    ax_rec.set(xscale="log", xlabel="training images n", ylabel="fraction recovered", ylim=(-0.03, 1.03),
               title="iterating f from corrupted training images: back to the source")
    ax_rho.legend(fontsize=6)
    ax_rec.legend(fontsize=6, ncol=2)
    ax_rho.set_xticks(ns, [str(n) for n in ns])
    ax_rec.set_xticks(ns, [str(n) for n in ns])
    return fig


def claim(results: list[dict]) -> tuple[str, str]:
    """Every training image an attractor (rho < 1) and most lightly corrupted images recovered."""
    light = next(iter(results[0]["recovery"]))
    attract = [r for r in results if r["rho_below_1"] == 1.0]
    recovered = [r for r in results if r["recovery"][light]["recovery"] >= 0.9]
    text = (f"{len(attract)}/{len(results)} nets have spectral radius < 1 at every training image; "
            f"{len(recovered)}/{len(results)} recover >= 90% of the images corrupted by {light}")
    if len(attract) == len(results) and len(recovered) == len(results):
        return "reproduced", text
    return ("partly reproduced" if attract or recovered else "not reproduced"), text


def table(results: list[dict]) -> tuple[list[str], list[list]]:
    levels = list(results[0]["recovery"])
    head = (["n", "layers", "width", "steps", "final loss", "rho max", "rho mean", "rho < 1"]
            + [f"{k}: recovered / nn" for k in levels] + ["lib attractor", "regime", "const_ratio", "ood_fid",
                                                           "span_ood_fid", "jac_rank / r"])
    rows = []
    for r in sorted(results, key=lambda r: (r["n_train"], r["depth"], r["width"])):
        lib = r["library"]
        rows.append([r["n_train"], r["layers"], r["width"], r["steps"], f"{r['final_loss']:.1e}",
                     f"{r['rho_max']:.3f}", f"{r['rho_mean']:.3f}", f"{r['rho_below_1']:.2f}"]
                    + [f"{r['recovery'][k]['recovery']:.2f} / {r['recovery'][k]['nn']:.2f}" for k in levels]
                    + [common.fmt(lib["attractor_fraction"], 2), lib["regime"], common.fmt(lib["const_ratio"], 2),
                       common.fmt(lib["ood_fidelity"], 2), common.fmt(lib["span_ood_fidelity"], 2),
                       f"{common.fmt(lib['jac_rank'], 3)} / {lib['data_rank']}"])
    return head, rows


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md, WORKDIR/attractors.json and the two figures."""
    clock = common.Clock()
    members = store.load(workdir)
    check(members)
    datasets = {m.name: m.dataset for m in members}
    results = [measure(m, datasets[m.name]) for m in members]
    (Path(workdir) / "attractors.json").write_text(json.dumps(results))
    # the figure's net: the most training images up to 10, then the deepest and widest
    pick = max(range(len(results)), key=lambda i: (results[i]["n_train"] <= 10, results[i]["n_train"],
                                                   results[i]["depth"], results[i]["width"]))
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
    by_n = sorted(results, key=lambda r: (r["n_train"], r["depth"], r["width"]))
    lines += [
        f"# {name}: training images as attractors of z <- f(z)", "",
        f"digits (8x8), first n training images; {c.model.activation} MLP (every layer but the output), code as "
        f"wide as the hidden layers; {c.train.optimizer} {c.train.learning_rate:g}, {c.train.schedule} schedule, "
        f"{'/'.join(map(str, sorted({r['steps'] for r in results})))} steps of batch n; {a.repeats} corruptions "
        f"per image and level, {a.iters} iterations, recovered = within {a.tolerance:g} x |x_i| of the source "
        f"image; {len(results)} members; analysis wall time {clock}.", "",
        *[f"![{p.stem}](figures/{p.name})" for p in paths], "",
        "rho: spectral radius of J_f at the training images. recovered / nn: fraction of corrupted images "
        "that iterating f returns to their own source image / whose nearest training image is the source "
        "(a nearest-neighbour lookup's score). lib attractor, regime ... jac_rank: the library's metrics from "
        f"`results.jsonl` (`attractor_fraction`: Gaussian noise std {c.diagnostics.noise_std:g}, "
        f"{c.diagnostics.attractor_iters} iterations, radius {c.diagnostics.attractor_radius:g} x the noise norm). "
        "final loss: the recorded `final_recon` (per-example sum of squares).", "",
        common.md_table(head, rows), "",
        "Where the wrongly recovered ones go (fraction ending at any training image, own or not):", "",
        common.md_table(["n", "layers", "width"] + levels,
                        [[r["n_train"], r["layers"], r["width"]] + [f"{r['recovery'][k]['to_any']:.2f}" for k in levels]
                         for r in by_n]), "",
        f"Verdict: **{verdict}**: {text}."]


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md, its figures and attractors.json; returns the analysis path."""
    return common.analysis_command(argv, "experiments.attractors.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
