"""The report's figures for any sweep: the layout follows the swept axes (a heatmap for two numeric axes,
lines for one, small multiples over the rest), the regime is a categorical colour map."""

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

# Okabe & Ito's colour-blind-safe palette, without its vermillion: no regime is an error, none is red.
REGIMES = {"identity": "#0072B2", "structured": "#009E73", "memorizing": "#CC79A7", "collapsed": "#E69F00",
           "underfit": "#F0E442", "unresolved": "#999999", "mixed": "#DDDDDD"}
OTHER_REGIME = "#BBBBBB"  # a label this palette does not know (an older or newer rule)
STATUS = {"diverged": "#4D4D4D", "error": "#4D4D4D"}  # a setting without a finished member
EMPTY = "#F4F4F4"  # a setting not run (yet)
SHORT = {"structured": "struct.", "memorizing": "memor.", "collapsed": "collap.", "unresolved": "unres."}
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# metric key -> heading; `mse_over_pca`, `rank_frac`: per member test_mse/pca_mse, jac_rank/data_rank.
LABELS = {"train_mse": "train_mse", "test_mse": "test_mse", "test_fvu": "test_fvu", "pca_mse": "pca_mse",
          "mse_over_pca": "test_mse/pca_mse", "rank_frac": "jac_rank/r", "jac_trace": "jac_trace",
          "ood_fidelity": "ood_fidelity", "span_ood_fidelity": "span_ood_fidelity",
          "idempotence": "idempotence", "noise_gain": "noise_gain", "denoise_gain": "denoise_gain",
          "const_ratio": "const_ratio", "attractor_fraction": "attractor_fraction", "probe_acc": "probe_acc",
          "probe_acc_init": "probe_acc_init", "probe_acc_raw": "probe_acc_raw"}
PANELS = ("test_mse", "mse_over_pca", "rank_frac", "span_ood_fidelity", "ood_fidelity", "noise_gain",
          "denoise_gain", "attractor_fraction")
LOG_METRICS = ("test_mse", "mse_over_pca", "train_mse", "pca_mse")
# Colour scales that always span [0, 1] (widened only by data outside it), so a colour reads the same
# value in every panel and every report; the identity map sits at one end.
UNIT_RANGE = ("rank_frac", "span_ood_fidelity", "ood_fidelity", "attractor_fraction", "denoise_gain",
              "noise_gain", "jac_trace", "const_ratio", "probe_acc", "probe_acc_init", "probe_acc_raw")
IDENTITY_VALUE = {"mse_over_pca": 1.0, "rank_frac": 1.0, "span_ood_fidelity": 1.0, "ood_fidelity": 1.0,
                  "noise_gain": 1.0, "denoise_gain": 1.0, "jac_trace": 1.0, "attractor_fraction": 0.0}
MIN_DECADES = 1.0  # a log colour scale spans at least a factor 10: 0.004 and 0.006 look alike
PX_PER_INCH = 100  # CSS pixels per figure inch in the HTML report: 8 points are 11 px
MAX_WIDTH = 13.0  # inches: at PX_PER_INCH the figure fits a 1366-px laptop window unscaled
CELL_W, CELL_H = 0.62, 0.42  # inches per heatmap cell: 8-point numbers (11 px) fit "0.00407"
FONT = 8  # points of cell and tick text


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the swept axes map onto figures: x (and y for a heatmap, or series for lines), then facets."""
    kind: str  # "single" (nothing swept), "lines" or "heatmap": what one panel draws
    x: str | None = None
    y: str | None = None  # heatmap rows, or one line per value for lines
    facets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "facets" if self.facets else self.kind

    @property
    def order(self) -> tuple[str, ...]:
        """The axes in the order a setting's key tuple lists them."""
        return tuple(a for a in (self.x, self.y) if a) + self.facets


def is_numeric(values: Sequence[Any]) -> bool:
    """Whether every value is a number (bools are switches, not numbers)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def choose_layout(values: dict[str, list]) -> Layout:
    """Swept axes (in priority order, each with its sorted values) -> the layout of the figures."""
    axes = list(values)
    numeric = [a for a in axes if is_numeric(values[a])]
    if not axes:
        return Layout("single")
    if len(numeric) >= 2:
        x, y = numeric[:2]
        return Layout("heatmap", x, y, tuple(a for a in axes if a not in (x, y)))
    x = numeric[0] if numeric else axes[0]
    rest = [a for a in axes if a != x]
    return Layout("lines", x, rest[0] if rest else None, tuple(rest[1:]))


# ----------------------------------------------------------------------------- colour scales

def metric_norm(key: str, values: Sequence[float]) -> Normalize:
    """One colour scale for a metric over every panel that shows it."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if key in LOG_METRICS and v.size and lo > 0:
        if key == "mse_over_pca":  # 1 (as good as PCA-k) is always on the scale
            lo, hi = min(lo, 1.0), max(hi, 1.0)
        short = MIN_DECADES - math.log10(hi / lo)
        if short > 0:
            lo, hi = lo / 10 ** (short / 2), hi * 10 ** (short / 2)
        return LogNorm(lo, hi)
    if key in UNIT_RANGE:
        return Normalize(min(lo, 0.0), max(hi, 1.0))
    return Normalize(lo, hi) if hi > lo else Normalize(lo - 1, lo + 1)


def regime_colour(label: str | None) -> str:
    return REGIMES.get(label, OTHER_REGIME) if label else EMPTY


def _text_colour(rgb) -> str:
    r, g, b = to_rgb(rgb)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


# ----------------------------------------------------------------------------- one panel

def _regime_text(s: dict) -> tuple[str, str]:
    """(cell text, colour) of one setting's regime cell."""
    if s["n_ok"] == 0:
        status = "diverged" if s["status"].get("diverged") else "error"
        return status, STATUS[status]
    label = s["regime"]
    text = SHORT.get(label, label or "?")
    if s["votes"][0] < s["votes"][1]:
        text += f"\n{s['votes'][0]}/{s['votes'][1]}"
    return text + (" †" if s["n_unconverged"] else ""), regime_colour(label)


def draw_heatmap(ax, cells: dict, xs: list, ys: list, key: str, norm: Normalize | None):
    """Cells over x (columns) and y (rows; [None] for one row) of one metric or of the regime."""
    cmap = colormaps["viridis"]
    rgba = np.ones((len(ys), len(xs), 4))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            s = cells.get((x, y))
            if s is None:
                colour, text = EMPTY, "not run"
            elif key == "regime" or s["n_ok"] == 0:
                text, colour = _regime_text(s)
            elif s.get(key) is None:
                colour, text = EMPTY, "—"
            else:
                colour, text = cmap(norm(s[key][0])), f"{s[key][0]:.3g}"
            rgba[i, j] = (*to_rgb(colour), 1.0)
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT, color=_text_colour(colour),
                    linespacing=1.0)
            if key == "regime" and s is not None and s["n_unconverged"]:
                # above the cell colours (pcolormesh, added below, would otherwise hide it), under the text
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                                       edgecolor=(0, 0, 0, 0.45), zorder=2))
    # vector quads, not imshow: an image resampled at print resolution costs seconds per figure
    ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, rgba)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    ax.set_xticks(range(len(xs)), [tick(v) for v in xs], fontsize=FONT)
    ax.set_yticks(range(len(ys)), [tick(v) for v in ys] if ys != [None] else [""], fontsize=FONT)
    if ys == [None]:
        ax.tick_params(axis="y", length=0)


def draw_lines(ax, cells: dict, xs: list, series: list, key: str, x_key: str, log_x: bool) -> None:
    """A metric against x: one line per series value, the mean over seeds, its min-max band and each
    seed as a dot (hollow when unconverged)."""
    numeric = is_numeric(xs)
    pos = {x: (x if numeric else i) for i, x in enumerate(xs)}
    colours = _series_colours(series)
    for y, colour, marker in zip(series, colours, "osD^v<>p" * 4):
        pts = [(pos[x], cells[x, y]) for x in xs if (x, y) in cells and cells[x, y].get(key)]
        if not pts:
            continue
        px = np.array([p for p, _ in pts], float)
        mean = np.array([s[key][0] for _, s in pts])
        each = [s["each"].get(key, []) for _, s in pts]
        lo = np.array([min(v for v, _ in e) if e else m for e, m in zip(each, mean)])
        hi = np.array([max(v for v, _ in e) if e else m for e, m in zip(each, mean)])
        ax.plot(px, mean, marker=marker, ms=4, lw=1.6, color=colour, label=tick(y) if y is not None else None)
        if (hi > lo).any():
            ax.fill_between(px, lo, hi, color=colour, alpha=0.18, lw=0)
        for p, e in zip(px, each):
            for v, conv in e:
                ax.plot([p], [v], ".", ms=5, color=colour, mfc="none" if conv is False else colour,
                        alpha=0.75)
    ref = IDENTITY_VALUE.get(key)
    if ref is not None:
        ax.axhline(ref, color="0.4", ls=":", lw=1)
    if key == "test_mse" and x_key == "model.code_size":
        pca = {x: [s["pca_mse"][0] for (cx, _), s in cells.items() if cx == x and s.get("pca_mse")] for x in xs}
        pca = {x: float(np.mean(v)) for x, v in pca.items() if v and np.mean(v) > 0}
        if pca:
            (line,) = ax.plot([pos[x] for x in pca], list(pca.values()), "k--", lw=1, label="PCA-k")
            ax.legend(handles=[line], fontsize=FONT - 1, loc="best")
    if log_x:
        ax.set_xscale("log")
    if key in LOG_METRICS and all(v > 0 for s in cells.values() if s.get(key) for v, _ in s["each"][key]):
        ax.set_yscale("log")
    if key in UNIT_RANGE:  # as on the heatmaps: 0 to 1 always in view, so a flat 0 reads as 0, not as noise
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, -0.04), max(hi, 1.04))
    ax.set_xticks([pos[x] for x in xs], [tick(x) for x in xs], fontsize=FONT)
    ax.xaxis.set_minor_locator(NullLocator())  # the swept values are the ticks
    if ax.get_yscale() == "log":
        lo, hi = ax.get_ylim()
        _log_labels(ax.yaxis, math.log10(hi / lo))
    ax.tick_params(which="both", labelsize=FONT)
    ax.grid(alpha=0.3)


def _series_colours(series: list) -> list:
    if len(series) > 1 and is_numeric(series):  # ordered values: an ordered (and colour-blind-safe) map
        return [colormaps["viridis"](0.85 * i / (len(series) - 1)) for i in range(len(series))]
    return [SERIES[i % len(SERIES)] for i in range(len(series))]


def tick(v: Any) -> str:
    """An axis value as a label: floats without trailing zeros."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def mark_dims(ax, xs: list, dims: dict[str, int | None]) -> None:
    """On a code-size heatmap: dashed where the code size reaches D, dotted where it reaches r."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    firsts = {k: next((i for i, c in enumerate(xs) if v is not None and c >= v), None) for k, v in dims.items()}
    for (label, value), style, ha in zip(dims.items(), ("--", ":"), ("left", "right")):
        if value is None or firsts[label] is None:
            continue
        # A dotted r line on top of the dashed D line would vanish: nudge it left.
        x = firsts[label] - 0.5 - (0.06 if label == "r" and firsts["r"] == firsts.get("D") else 0)
        ax.axvline(x, color="black", ls=style, lw=1.3)
        ax.text(x, 1.01, f" {label}={value} ", transform=trans, ha=ha, va="bottom", fontsize=FONT - 1)


# ----------------------------------------------------------------------------- whole figures

def _panel_size(layout: Layout, nx: int, ny: int) -> tuple[float, float]:
    if layout.kind == "heatmap":
        return max(2.6, CELL_W * nx + 1.3), max(1.7, CELL_H * ny + 1.1)
    return 4.1, 2.9


def _grid(n: int, pw: float) -> tuple[int, int]:
    cols = max(1, min(n, int(MAX_WIDTH // pw)))
    return math.ceil(n / cols), cols


def _regime_handles(cells: dict) -> list:
    """Legend entries: the regime colours present in `cells`, hatching when a member did not converge."""
    labels = sorted({s["regime"] for s in cells.values() if s["n_ok"] and s["regime"]},
                    key=lambda r: (list(REGIMES).index(r) if r in REGIMES else 99, r))
    handles = [Patch(facecolor=regime_colour(r), label=r) for r in labels]
    if any(s["n_ok"] == 0 for s in cells.values()):
        handles.append(Patch(facecolor=STATUS["diverged"], label="no finished member"))
    if any(s["n_unconverged"] for s in cells.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="† unconverged member"))
    return handles


def _series_handles(layout: Layout, ys: list) -> list:
    if layout.kind != "lines" or not layout.y:
        return []
    return [Line2D([], [], color=c, marker=m, label=f"{layout.y}={tick(v)}")
            for v, c, m in zip(ys, _series_colours(ys), "osD^v<>p" * 4)]


def _title(fig: Figure, title: str, handles: list) -> None:
    """The figure's title, with its legend right below it (a legend beside a title would overlap it)."""
    if not handles:
        fig.suptitle(title, fontsize=FONT + 3)
        return
    # as many columns as fit the figure's width (a wider legend is cut off at both sides): a swatch and gap
    # of about 0.35 inch, then the label at about 0.6 em per character
    widest = max(0.35 + 0.6 * FONT / 72 * len(h.get_label()) for h in handles)
    ncol = max(1, min(8, len(handles), int(fig.get_figwidth() // widest)))
    legend = fig.legend(handles=handles, loc="outside upper center", ncol=ncol, fontsize=FONT,
                        frameon=False, title=title, title_fontsize=FONT + 3)
    legend.get_title().set_fontweight("normal")


def plot_overview(cells: dict, layout: Layout, values: dict, dims: dict, title: str,
                  metrics: Sequence[str]) -> Figure:
    """One figure: the regime panel, then one panel per metric (heatmaps or lines, no facets)."""
    xs = values[layout.x]
    ys = values[layout.y] if layout.y else [None]
    keys = ["regime", *metrics]
    pw, ph = _panel_size(layout, len(xs), len(ys))
    rows, cols = _grid(len(keys), pw)
    fig = Figure(figsize=(cols * pw, rows * ph + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    log_x = _log_axis(xs)
    for ax, key in zip(axes, keys):
        if key == "regime" or layout.kind == "heatmap":
            draw_heatmap(ax, cells, xs, ys, key, None if key == "regime" else
                         metric_norm(key, [s[key][0] for s in cells.values() if s.get(key)]))
            if key != "regime":
                _colourbar(fig, ax, key, cells)
            if layout.x == "model.code_size":
                mark_dims(ax, xs, dims)
            ax.set_ylabel(layout.y or "", fontsize=FONT + 1)
        else:
            draw_lines(ax, cells, xs, ys, key, layout.x, log_x)
        ax.set_xlabel(layout.x, fontsize=FONT + 1)
        ax.set_title(LABELS.get(key, key), fontsize=FONT + 2, pad=10 if layout.x == "model.code_size" else 4)
    for ax in axes[len(keys):]:
        ax.set_axis_off()
    _title(fig, title, _regime_handles(cells) + _series_handles(layout, ys))
    return fig


def _colourbar(fig: Figure, ax, key: str, cells: dict) -> None:
    norm = metric_norm(key, [s[key][0] for s in cells.values() if s.get(key)])
    _bar_ticks(fig.colorbar(_mappable(norm), ax=ax, shrink=0.9, pad=0.02))


def _bar_ticks(bar) -> None:
    if isinstance(bar.norm, LogNorm):
        _log_labels(bar.ax.yaxis, math.log10(bar.norm.vmax / bar.norm.vmin))
    bar.ax.tick_params(which="both", labelsize=FONT - 1)


def _log_labels(axis, decades: float) -> None:
    """Plain numbers on a log axis (0.004, not 4 x 10^-3); the ticks between powers of ten get labels too
    when the axis spans less than one decade (all of them) or two (2x and 5x)."""
    shown = range(1, 10) if decades < 1 else (2, 5) if decades < 2 else ()
    lead = lambda v: round(v / 10 ** math.floor(math.log10(v) + 1e-9))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.2g}" if v > 0 and lead(v) in shown else ""))


def _mappable(norm: Normalize):
    from matplotlib.cm import ScalarMappable
    return ScalarMappable(norm=norm, cmap=colormaps["viridis"])


def _log_axis(xs: list) -> bool:
    return is_numeric(xs) and min(xs) > 0 and max(xs) / min(xs) >= 8


def plot_facets(cells: dict, layout: Layout, values: dict, dims_of, title: str, key: str) -> Figure:
    """Small multiples of one metric (or the regime) over the facet axes, on one shared scale."""
    xs = values[layout.x]
    ys = values[layout.y] if layout.y else [None]
    facets = [f for f in _product([values[a] for a in layout.facets])
              if any(k[2:] == f for k in cells)]
    pw, ph = _panel_size(layout, len(xs), len(ys))
    pw -= 0.6 if layout.kind == "heatmap" else 0  # one shared colour bar, not one per panel
    rows, cols = _grid(len(facets), pw)
    fig = Figure(figsize=(cols * pw + 0.9, rows * ph + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=layout.kind == "lines").ravel()
    norm = None if key == "regime" else metric_norm(key, [s[key][0] for s in cells.values() if s.get(key)])
    log_x = _log_axis(xs)
    for ax, f in zip(axes, facets):
        sub = {k[:2]: s for k, s in cells.items() if k[2:] == f}
        if layout.kind == "heatmap" or key == "regime":
            # each panel shows the settings its facet ran (datasets may sweep different code sizes)
            fx = [x for x in xs if any(k[0] == x for k in sub)]
            fy = [y for y in ys if any(k[1] == y for k in sub)]
            draw_heatmap(ax, sub, fx, fy, key, norm)
            if layout.x == "model.code_size":
                mark_dims(ax, fx, dims_of(f))
            ax.set_ylabel(layout.y or "", fontsize=FONT + 1)
        else:
            draw_lines(ax, sub, xs, ys, key, layout.x, log_x)
        ax.set_xlabel(layout.x, fontsize=FONT + 1)
        ax.set_title("\n".join(f"{a}={tick(v)}" for a, v in zip(layout.facets, f)), fontsize=FONT + 1,
                     pad=10 if layout.x == "model.code_size" else 4)
    for ax in axes[len(facets):]:
        ax.set_axis_off()
    if norm is not None and (layout.kind == "heatmap"):
        _bar_ticks(fig.colorbar(_mappable(norm), ax=list(axes[:len(facets)]), shrink=0.8, pad=0.01))
    handles = _regime_handles(cells) if key == "regime" else _series_handles(layout, ys)
    _title(fig, f"{title}: {LABELS.get(key, key)}", handles)
    return fig


def _product(lists: list[list]) -> list[tuple]:
    out = [()]
    for values in lists:
        out = [t + (v,) for t in out for v in values]
    return out


def plot_test_mse(cells: dict, layout: Layout, values: dict, dims: dict, title: str) -> Figure:
    """test_mse against the heatmap's x axis, one line per row value, seeds as spread, PCA-k dashed."""
    xs, ys = values[layout.x], values[layout.y]
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.subplots()
    draw_lines(ax, cells, xs, ys, "test_mse", layout.x, _log_axis(xs))
    if layout.x == "model.code_size":
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        for (label, value), style, ha in zip(dims.items(), ("--", ":"), ("left", "right")):
            if value is not None and min(xs) <= value <= max(xs):
                ax.axvline(value, color="black", ls=style, lw=1)
                ax.text(value, 1.01, f" {label}={value} ", transform=trans, fontsize=FONT - 1, va="bottom", ha=ha)
    ax.set_xlabel(layout.x, fontsize=FONT + 1)
    ax.set_ylabel("test MSE (mean, seed min-max band)", fontsize=FONT + 1)
    ax.legend(fontsize=FONT, title=layout.y, title_fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 2, pad=12)
    return fig
