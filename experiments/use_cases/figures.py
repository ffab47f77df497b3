"""The use_cases analysis's three figures: before/after examples, denoise gain against s, t-SNE maps."""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter


def plot_examples(examples: dict) -> Figure:
    panels, shape = examples["panels"], examples["shape"]
    n_rows, n_cols = len(panels), len(next(iter(panels.values())))
    fig = Figure(figsize=(0.62 * n_cols + 2.2, 0.66 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, (name, imgs) in enumerate(panels.items()):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.imshow(np.clip(imgs[j], 0, 1).reshape(shape[:2]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("held-out test digits, fresh noise (clipped to [0, 1] for display)", fontsize=9)
    return fig


def plot_gains(den: dict) -> Figure:
    fig = Figure(figsize=(8.4, 4.2), layout="constrained")
    ax = fig.subplots()
    s = den["levels"]
    for j, (name, g) in enumerate(den["gains"].items()):
        style = {"identity": dict(color="k", ls="-", lw=1)}.get(name)
        if style is None:
            style = dict(ls="--" if name.startswith(("Wiener", "PCA")) else "-", marker="o", ms=4, color=f"C{j % 10}")
        ax.plot(s, g, label=name, **style)
    for t in den["train_levels"]:
        ax.axvline(t, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="held-out noise std s", ylabel="E||f(x+e)-x||² / E||e||²",
           title="denoise gain on test images (dotted: the DAEs' training s)")
    ax.set_xticks(s, [f"{v:g}" for v in s])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_tsne(dr: dict, y: np.ndarray, knn: int) -> Figure:
    """The first map of every input, coloured by digit, titled with that map's scores."""
    names = list(dr)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.0 * cols + 0.8, 3.1 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.set_axis_off()
    for ax, name in zip(axes, names):
        r, e = dr[name], dr[name]["embedding"]
        sc = ax.scatter(e[:, 0], e[:, 1], c=y, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        ax.set_title(f"t-SNE of {name} ({r['dims']}-d)\ntrust {r['trust_raw'][0]:.3f}, "
                     f"{knn}-NN CV {r['knn_cv'][0]:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, ticks=range(10), shrink=0.8, label="digit")
    return fig
