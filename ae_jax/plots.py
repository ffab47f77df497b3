"""The report's figures: the phase diagram over code size x depth and test MSE against code size."""

import collections

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

REGIMES = {"identity": "#d62728", "memorizing": "#9467bd", "structured": "#2ca02c", "mixed": "#bbbbbb"}
SHORT = {"identity": "ident.", "memorizing": "memo.", "structured": "struct."}
# metric key -> heading; `mse_over_pca`, `rank_frac`: per member test_mse/pca_mse, jac_rank/data_rank.
LABELS = {"train_mse": "train_mse", "test_mse": "test_mse", "test_fvu": "test_fvu", "pca_mse": "pca_mse",
          "mse_over_pca": "test_mse/pca_mse", "rank_frac": "jac_rank/r", "jac_trace": "jac_trace",
          "ood_fidelity": "ood_fidelity", "span_ood_fidelity": "span_ood_fidelity", "idempotence": "idempotence", "denoise_gain": "denoise_gain", "const_ratio": "const_ratio",
          "attractor_fraction": "attractor_fraction", "probe_acc": "probe_acc"}
PANELS = ("test_mse", "mse_over_pca", "rank_frac", "span_ood_fidelity", "ood_fidelity", "denoise_gain",
          "attractor_fraction", "regime")


def _mark_dims(ax, codes: list[int], dims: dict[str, int | None], categorical: bool) -> None:
    """Dashed line where the code size reaches D, dotted where it reaches r, labelled on top."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    firsts = {k: next((i for i, c in enumerate(codes) if v is not None and c >= v), None)
              for k, v in dims.items()}
    for (label, value), style, ha in zip(dims.items(), ("--", ":"), ("left", "right")):
        if value is None:
            continue
        x = value
        if categorical and firsts[label] is None:  # every code size is below it: say so at the right
            ax.text(len(codes) - 0.5, 1.01, f"{label}={value} →", transform=trans, ha="right", va="bottom",
                    fontsize=7)
            continue
        if categorical:
            # A dotted r line on top of the dashed D line would vanish: nudge it left.
            x = firsts[label] - 0.5 - (0.06 if label == "r" and firsts["r"] == firsts.get("D") else 0)
        ax.axvline(x, color="black", ls=style, lw=1.3)
        ax.text(x, 1.01, f" {label}={value} ", transform=trans, ha=ha, va="bottom", fontsize=7)


def plot_phase_diagram(cells: dict[tuple, dict], dims: dict, title: str) -> Figure:
    """Heatmaps over code size (columns) x depth (rows) of the main metrics and the regime."""
    codes = sorted({c for c, _ in cells})
    depths = sorted({d for _, d in cells})
    pw, ph = max(3.2, 0.42 * len(codes) + 1.3), max(1.9, 0.42 * len(depths) + 1.3)
    fig = Figure(figsize=(4 * pw, 2 * ph + 0.8), layout="constrained")
    axes = fig.subplots(2, 4, squeeze=False).ravel()
    for ax, key in zip(axes, PANELS):
        grid = np.full((len(depths), len(codes)), np.nan)
        text = np.full(grid.shape, "", dtype=object)
        for (c, d), s in cells.items():
            i, j = depths.index(d), codes.index(c)
            if s["n_ok"] == 0:
                text[i, j] = "diverged" if s["status"].get("diverged") else "error"
            elif key == "regime":
                text[i, j] = SHORT.get(s["regime"], s["regime"] or "?")
                grid[i, j] = list(REGIMES).index(s["regime"]) if s["regime"] in REGIMES else np.nan
                if s["votes"][0] < s["votes"][1]:
                    text[i, j] += f"\n{s['votes'][0]}/{s['votes'][1]}"
            elif s[key] is not None:
                grid[i, j] = s[key][0]
                text[i, j] = f"{s[key][0]:.3g}"
            else:
                text[i, j] = "—"
        if key == "regime":
            cmap, norm = ListedColormap(list(REGIMES.values())), Normalize(-0.5, len(REGIMES) - 0.5)
            cmap = cmap.with_extremes(bad="#eeeeee")
            ax.legend(handles=[Patch(color=v, label=k) for k, v in REGIMES.items()], fontsize=6,
                      loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
        else:
            cmap = colormaps["viridis"].with_extremes(bad="#eeeeee")
            finite = grid[np.isfinite(grid)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            log_scale = key == "test_mse" and lo > 0 and hi > lo
            # A constant panel gets a mid colour and no colour bar: its numbers say it all.
            norm = (LogNorm(lo, hi) if log_scale else Normalize(lo, hi) if hi > lo
                    else Normalize(lo - 1, lo + 1))
        im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm)
        for (i, j), t in np.ndenumerate(text):
            dark = key != "regime" and np.isfinite(grid[i, j]) and norm(grid[i, j]) < 0.55
            ax.text(j, i, t, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
        if key != "regime" and hi > lo:
            fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_xticks(range(len(codes)), [str(c) for c in codes], fontsize=7)
        ax.set_yticks(range(len(depths)), [str(d) for d in depths], fontsize=7)
        ax.set_xlabel("code size k", fontsize=8)
        ax.set_ylabel("depth", fontsize=8)
        ax.set_title(LABELS.get(key, key), fontsize=9, pad=12)
        _mark_dims(ax, codes, dims, categorical=True)
    fig.suptitle(title, fontsize=10)
    fig.text(0.5, 0.0, "pca_mse = PCA-k test MSE, k = min(code size, D); dashed: k = D, dotted: k = r; "
             "means over seeds", ha="center", va="bottom", fontsize=7)
    return fig


def plot_mse_vs_code(cells: dict[tuple, dict], dims: dict, title: str) -> Figure:
    """test_mse against code size, one line per depth, PCA-k dashed."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    codes = sorted({c for c, _ in cells})
    positive = True
    for depth in sorted({d for _, d in cells}):
        pts = [(c, *cells[c, depth]["test_mse"][:2]) for c in codes
               if (c, depth) in cells and cells[c, depth]["test_mse"] is not None]
        if pts:
            x, y, e = map(np.array, zip(*pts))
            positive &= bool((y > 0).all())
            ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=2, label=f"depth {depth}")
    pca = collections.defaultdict(list)
    for (c, _), s in cells.items():
        if s["pca_mse"] is not None:
            pca[c].append(s["pca_mse"][0])
    # On a log axis PCA-k's exact zeros (k >= r) cannot be drawn; the line stops there.
    x = [c for c in sorted(pca) if not positive or np.mean(pca[c]) > 0]
    if x:
        ax.plot(x, [np.mean(pca[c]) for c in x], "k--x", label="PCA-k, k = min(code, D)")
    ax.set_xscale("log", base=2)
    if positive:
        ax.set_yscale("log")
    ax.set_xticks(codes, [str(c) for c in codes])
    _mark_dims(ax, codes, dims, categorical=False)
    ax.set_xlabel("code size k")
    ax.set_ylabel("test MSE (mean ± std over seeds)")
    ax.set_title(title, fontsize=10, pad=12)
    ax.legend(fontsize=8, loc="best")
    return fig
