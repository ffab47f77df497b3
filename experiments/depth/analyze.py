"""python -m experiments.depth.analyze WORKDIR: the depth sweep's claim table, heatmaps and verdict.

Reads WORKDIR/results.jsonl (from `python -m ae_jax.sweep --config=experiments/depth/config.py`; the sweep
itself writes the generic phase diagrams to WORKDIR/report.md), writes WORKDIR/figures/depth_heatmaps.png
(depth x width: jac_rank / r, span_ood_fidelity, const_ratio, attractor_fraction, one row per training-set
size, the majority regime written in every cell) and WORKDIR/analysis.md, and logs both to a W&B
analysis run.
"""

import collections
import sys
from pathlib import Path


import numpy as np
from matplotlib.figure import Figure

from experiments import common

METRICS = ("rank_frac", "span_ood_fidelity", "const_ratio", "attractor_fraction")
TITLES = {"rank_frac": "jac_rank / r", "span_ood_fidelity": "span_ood_fidelity",
          "const_ratio": "const_ratio (1 = output varies like the data)",
          "attractor_fraction": "attractor_fraction"}
SHORT = {"identity": "ident", "memorizing": "memo", "structured": "struct", "collapsed": "collapsed",
         "underfit": "underfit", "unresolved": "unres", "mixed": "mixed"}
MEAN_KEYS = ("rank_frac", "span_ood_fidelity", "ood_fidelity", "const_ratio", "attractor_fraction", "train_mse",
             "test_mse", "final_total", "denoise_gain")
SPREAD_KEYS = ("rank_frac", "span_ood_fidelity", "const_ratio", "attractor_fraction", "final_total")


def n_train_of(config: dict) -> int:
    """The training-set size key of a member (0 = the full split)."""
    return int(config.get("data.n_train", 0))


def cells(records: list[dict]) -> dict[tuple, dict]:
    """{(n_train, depth, width): seed means, seed min/max (`KEY_min`, `KEY_max`), regime counts, converged
    count, steps}."""
    groups = collections.defaultdict(list)
    for r in records:
        c = r["config"]
        m = r["metrics"]
        groups[(n_train_of(c), c["model.depth"], c["model.width"])].append(
            dict(m, rank_frac=m["jac_rank"] / m["data_rank"] if m["data_rank"] else float("nan")))
    out = {}
    for key, ms in sorted(groups.items()):
        cell = {k: float(np.mean([m[k] for m in ms])) for k in MEAN_KEYS}
        for k in SPREAD_KEYS:
            cell[f"{k}_min"] = float(np.min([m[k] for m in ms]))
            cell[f"{k}_max"] = float(np.max([m[k] for m in ms]))
        regimes = collections.Counter(m["regime"] for m in ms)
        cell.update(regimes=regimes, regime=majority(regimes), n=len(ms),
                    converged=sum(bool(m.get("converged")) for m in ms),
                    steps=sorted({int(m["steps"]) for m in ms}), data_rank=ms[0]["data_rank"])
        out[key] = cell
    return out


def spread(cell: dict, key: str, digits: int = 3) -> str:
    """`mean (min-max)` over the seeds of a cell."""
    return (f"{common.fmt(cell[key], digits)} ({common.fmt(cell[key + '_min'], 2)}-"
            f"{common.fmt(cell[key + '_max'], 2)})")


def below(lo: dict, hi: dict, key: str) -> bool:
    """lo's seeds all lie below hi's: a difference larger than the seed spread."""
    return lo[f"{key}_max"] < hi[f"{key}_min"]


def majority(regimes: collections.Counter) -> str:
    """The seeds' regime, or `mixed` when the seeds split evenly."""
    top = regimes.most_common(2)
    return "mixed" if len(top) == 2 and top[0][1] == top[1][1] else top[0][0]


def axes_of(table: dict[tuple, dict]) -> tuple[list[int], list[int], list[int]]:
    return (sorted({k[0] for k in table}), sorted({k[1] for k in table}), sorted({k[2] for k in table}))


def plot(table: dict[tuple, dict]) -> Figure:
    sizes, depths, widths = axes_of(table)
    fig = Figure(figsize=(4.2 * len(METRICS), 3.6 * len(sizes)), layout="constrained")
    axes = fig.subplots(len(sizes), len(METRICS), squeeze=False)
    for i, n in enumerate(sizes):
        for j, metric in enumerate(METRICS):
            ax = axes[i, j]
            grid = np.array([[table[(n, d, w)][metric] if (n, d, w) in table else np.nan for w in widths]
                             for d in depths])
            lo, hi = (-0.2, 1.0) if metric == "span_ood_fidelity" else (0.0, 1.0)
            im = ax.imshow(grid, vmin=lo, vmax=hi, cmap="viridis", aspect="auto", origin="upper")
            for a, d in enumerate(depths):
                for b, w in enumerate(widths):
                    v = table.get((n, d, w))
                    if v is not None:
                        ax.text(b, a, f"{v[metric]:.2f}\n{SHORT.get(v['regime'], v['regime'])}", ha="center",
                                va="center", fontsize=7, color="w" if grid[a, b] < 0.6 * hi else "k")
            ax.set_xticks(range(len(widths)), [str(w) for w in widths])
            ax.set_yticks(range(len(depths)), [str(d) for d in depths])
            ax.set(xlabel="hidden width", ylabel="depth (hidden layers per side)",
                   title=f"{'all train' if n == 0 else f'n_train={n}'}: {TITLES[metric]}")
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("ReLU MLP AEs on digits, code 64 = D: depth x width (cell: seed mean, majority regime)")
    return fig


def table_rows(table: dict[tuple, dict], n: int) -> list[list[str]]:
    rows = []
    for (size, depth, width), v in table.items():
        if size != n:
            continue
        regimes = ", ".join(f"{SHORT.get(k, k)} {c}/{v['n']}" for k, c in v["regimes"].most_common())
        rows.append([str(depth), str(width), regimes, f"{v['converged']}/{v['n']}", spread(v, "rank_frac"),
                     spread(v, "span_ood_fidelity"), spread(v, "const_ratio"), spread(v, "attractor_fraction", 2),
                     f"{v['train_mse']:.4g}", f"{v['test_mse']:.4g}", spread(v, "final_total"),
                     "/".join(map(str, v["steps"]))])
    return rows


def trends(table: dict[tuple, dict], n: int) -> dict:
    """Depth and width effects at one training-set size, counting only differences beyond the seed spread
    (every seed of one cell on the far side of every seed of the other): (widths where the deepest net has a
    lower jac_rank / r and const_ratio, a higher attractor_fraction than the shallowest) and (depths where
    the widest has a higher jac_rank / r than the narrowest)."""
    _, depths, widths = axes_of(table)
    get = lambda d, w: table[(n, d, w)]  # noqa: E731
    shallow, deep, narrow, wide = depths[0], depths[-1], widths[0], widths[-1]
    return dict(
        depth_lowers_rank=sum(below(get(deep, w), get(shallow, w), "rank_frac") for w in widths),
        depth_lowers_const=sum(below(get(deep, w), get(shallow, w), "const_ratio") for w in widths),
        depth_raises_attr=sum(below(get(shallow, w), get(deep, w), "attractor_fraction") for w in widths),
        width_raises_rank=sum(below(get(d, narrow), get(d, wide), "rank_frac") for d in depths),
        n_widths=len(widths), n_depths=len(depths),
        deep_narrow=table[(n, deep, narrow)], shallow_wide=table[(n, shallow, wide)],
        memo_cells=[(d, w) for d in depths for w in widths if table[(n, d, w)]["regime"] == "memorizing"],
        ident_cells=[(d, w) for d in depths for w in widths if table[(n, d, w)]["regime"] == "identity"],
        converged=sum(v["converged"] for k, v in table.items() if k[0] == n),
        members=sum(v["n"] for k, v in table.items() if k[0] == n))


def claim(table: dict[tuple, dict]) -> tuple[str, list[str]]:
    """docs/science.md's depth row, judged per training-set size; returns (verdict, one line per finding).
    Reproduced needs depth to lower jac_rank / r at every width and width to raise it at every depth (beyond
    the seed spread), and the deepest narrowest net to be `memorizing` where the shallowest widest is not."""
    sizes, depths, widths = axes_of(table)
    if len(depths) < 2 or len(widths) < 2 or any((n, d, w) not in table for n in sizes for d in depths
                                                   for w in widths):
        return "not measured (needs a full depth x width grid)", []
    lines, depth_ok, width_ok, memo_ok = [], True, True, False
    for n in sizes:
        t = trends(table, n)
        dn, sw = t["deep_narrow"], t["shallow_wide"]
        label = "all training images" if n == 0 else f"n_train = {n}"
        lines.append(
            f"{label}: the deepest net has a lower jac_rank / r than the shallowest at {t['depth_lowers_rank']}/"
            f"{t['n_widths']} widths, a lower const_ratio at {t['depth_lowers_const']}/{t['n_widths']} and a higher "
            f"attractor_fraction at {t['depth_raises_attr']}/{t['n_widths']}; the "
            f"widest beats the narrowest at {t['width_raises_rank']}/{t['n_depths']} depths. Depth {depths[-1]} "
            f"width {widths[0]}: {dn['regime']}, jac_rank / r {dn['rank_frac']:.3f}, const_ratio "
            f"{dn['const_ratio']:.3f}, attractor_fraction {dn['attractor_fraction']:.2f}; depth {depths[0]} width "
            f"{widths[-1]}: {sw['regime']}, {sw['rank_frac']:.3f}, {sw['const_ratio']:.3f}, "
            f"{sw['attractor_fraction']:.2f}. Memorising cells (depth, width): {t['memo_cells'] or 'none'}; "
            f"identity cells: {t['ident_cells'] or 'none'}; converged members {t['converged']}/{t['members']}.")
        depth_ok &= t["depth_lowers_rank"] == t["n_widths"]
        width_ok &= t["width_raises_rank"] == t["n_depths"]
        # memorisation counts as a depth / narrowness effect only where the shallow wide net does not memorise
        memo_ok |= dn["regime"] == "memorizing" and sw["regime"] != "memorizing"
    if depth_ok and width_ok and memo_ok:
        verdict = "reproduced"
    elif depth_ok or width_ok:
        verdict = "partly reproduced"
    else:
        verdict = "not reproduced"
    lines.append(f"Depth lowers jac_rank / r beyond the seed spread at every width and size: {depth_ok}; width "
                 f"raises it beyond the spread at every depth and size: {width_ok}; the deepest narrowest net is "
                 f"`memorizing` where the shallowest widest is not, at some size: {memo_ok}.")
    return verdict, lines


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and WORKDIR/figures/depth_heatmaps.png."""
    table = cells(records)
    first = records[0]["config"]
    head = ["depth", "width", "regimes", "converged", "jac_rank / r", "span_ood_fidelity", "const_ratio",
            "attractor_fraction", "train_mse", "test_mse", "final train loss", "steps"]
    path = common.save_figure(plot(table), workdir, "depth_heatmaps", writer)
    verdict, findings = claim(table)
    writer.summary({"verdict": verdict})
    lines += [f"# {name}: depth x width of ReLU MLP autoencoders", "",
              f"digits, code {first['model.code_size']}, ReLU, {first['train.optimizer']} "
              f"{first['train.learning_rate']:g}, {first['train.steps']} steps of batch "
              f"{first['train.batch_size']}, weight decay {first['train.weight_decay']:g}; {len(records)} "
              f"members. Cells are seed means with the seed min-max in brackets; `converged` counts the members whose "
              f"loss had stopped falling (`regime.converged`); `final train loss` is the training loss (squared "
              f"error summed over the 64 pixels, mean over the batch) averaged over the last "
              f"{first['train.log_every']} steps, Adam's spikes included. Phase diagrams: `report.md`.", "",
              f"![heatmaps](figures/{path.name})", ""]
    for n in axes_of(table)[0]:
        rows = table_rows(table, n)
        label = "all training images" if n == 0 else f"n_train = {n}"
        rank = next(v["data_rank"] for k, v in table.items() if k[0] == n)
        writer.table(f"cells_n{n}", head, rows)
        lines += [f"## {label} (data rank r = {rank})", "", common.md_table(head, rows), ""]
    lines += ["## Verdict", "", f"**{verdict}**", ""] + [f"- {f}" for f in findings]


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.depth.analyze", analyse)

if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
