"""`python -m ae_jax.report DIR [--compare OTHER]`: phase diagram, curves and tables from DIR/results.jsonl."""

import argparse
import base64
import collections
import html
import json
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ae_jax import writers
from ae_jax.errors import ConfigError

log = logging.getLogger(__name__)

X_KEY, Y_KEY = "model.code_size", "model.depth"
REPLICATE_KEYS = ("seed", "data.split_seed")  # averaged over, like seeds
IGNORED = ("name", "train.log_every", "wandb.")  # never a reason to split a figure
REGIMES = {"identity": "#d62728", "memorizing": "#9467bd", "structured": "#2ca02c", "mixed": "#bbbbbb"}
SHORT = {"identity": "ident.", "memorizing": "memo.", "structured": "struct."}
# (key, heading); `mse_over_pca` and `rank_frac` are per member test_mse/pca_mse and jac_rank/data_rank.
LABELS = {"train_mse": "train_mse", "test_mse": "test_mse", "test_fvu": "test_fvu", "pca_mse": "pca_mse",
          "mse_over_pca": "test_mse/pca_mse", "rank_frac": "jac_rank/r", "jac_trace": "jac_trace",
          "ood_fidelity": "ood_fidelity", "denoise_gain": "denoise_gain", "const_ratio": "const_ratio",
          "attractor_fraction": "attractor_fraction", "probe_acc": "probe_acc"}
PANELS = ("test_mse", "mse_over_pca", "rank_frac", "jac_trace", "ood_fidelity", "denoise_gain",
          "attractor_fraction", "regime")
COMPARED = ("test_mse", "mse_over_pca", "rank_frac", "jac_trace", "ood_fidelity", "denoise_gain")
NOT_IN_TABLE = {"jac_rank", "data_rank", "input_dim"}

CAPTION = (
    "How to read it: each cell is one (code size k, depth) setting, averaged over seeds; columns are "
    "log2-spaced code sizes, rows depths. The dashed line marks where k reaches the input dimension D "
    "(columns to its right have k >= D), the dotted line where k reaches the data rank r. "
    "PCA-k (`pca_mse`) is the test MSE of PCA fitted on the training data with k = min(code size, D) "
    "components, the closed-form linear control: `test_mse/pca_mse` below 1 beats it. The identity map "
    "gives jac_rank/r = 1, jac_trace = 1, ood_fidelity = 1, denoise_gain = 1 and attractor_fraction = 0; "
    "a structured map keeps the data but contracts off-data directions (jac_rank/r and denoise_gain "
    "below 1, ood_fidelity low); memorizing maps pull noisy inputs onto training examples "
    "(high attractor_fraction). The regime panel shows the majority over seeds of each member's "
    "regime, decided by the rule documented in `ae_jax/diagnostics.py`; 'mixed' is a tie.")


# ----------------------------------------------------------------------------- loading

def load_results(workdir: str | Path) -> list[dict]:
    """The members of DIR/results.jsonl, malformed lines skipped with a warning."""
    path = Path(workdir) / "results.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run ae_jax.sweep first)")
    by_member: dict[Any, dict] = {}
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = _normalise(json.loads(line))
        except (ValueError, TypeError, KeyError) as e:
            log.warning("%s:%d: skipped a malformed line (%s)", path, i, e)
            continue
        by_member[rec["member"] if rec["member"] is not None else f"line{i}"] = rec  # a resume's repeat wins
    if not by_member:
        raise ConfigError(f"{path}: no results in it (run ae_jax.sweep first)")
    return list(by_member.values())


def _normalise(rec: Any) -> dict:
    if not isinstance(rec, dict) or not isinstance(rec.get("metrics", {}), dict):
        raise ValueError("not a results object")
    config = {**(rec.get("config") or {}), **(rec.get("overrides") or {})}
    for key in (X_KEY, Y_KEY):
        if not isinstance(config.get(key), int):
            raise ValueError(f"no integer {key}")
    raw = rec.get("metrics") or {}
    m = {k: float(v) if v is not None else math.nan for k, v in raw.items()
         if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
    nan = math.nan
    m["mse_over_pca"] = m.get("test_mse", nan) / m["pca_mse"] if m.get("pca_mse", 0) > 0 else nan
    m["rank_frac"] = m.get("jac_rank", nan) / m["data_rank"] if m.get("data_rank", 0) > 0 else nan
    regime = raw.get("regime")
    return {"member": rec.get("member"), "name": str(rec.get("name", "")), "config": config,
            "status": str(rec.get("status", "ok")), "metrics": m,
            "regime": regime if isinstance(regime, str) else None}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def _order(v: Any) -> tuple:
    """A sort key for values of mixed types (numbers first)."""
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def setting_axes(records: list[dict]) -> list[str]:
    """Config keys that vary among members sharing (code size, depth): each value gets its own figure."""
    keys = {k for r in records for k in r["config"]}
    keys = {k for k in keys if k not in (X_KEY, Y_KEY, *REPLICATE_KEYS) and not k.startswith(IGNORED)}
    seen: dict[tuple, set] = collections.defaultdict(set)
    for r in records:
        cell = (r["config"][X_KEY], r["config"][Y_KEY])
        for k in keys:
            seen[cell + (k,)].add(_hashable(r["config"].get(k)))
    return sorted({key[-1] for key, values in seen.items() if len(values) > 1})


def _group(records: list[dict], key) -> dict[tuple, list[dict]]:
    out = collections.defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return {k: out[k] for k in sorted(out, key=lambda t: tuple(_order(v) for v in t))}


def summarise(records: list[dict], metrics: list[str]) -> dict:
    """Mean, sample std and count over the ok members; the majority regime and its votes."""
    ok = [r for r in records if r["status"] == "ok"]
    out: dict[str, Any] = {"n_ok": len(ok), "n": len(records),
                           "status": collections.Counter(r["status"] for r in records)}
    for k in metrics:
        vals = np.array([r["metrics"].get(k, math.nan) for r in ok], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals)) \
            if len(vals) else None
    votes = collections.Counter(r["regime"] for r in ok if r["regime"])
    top = votes.most_common()
    winners = [name for name, c in top if c == top[0][1]] if top else []
    out["regime"] = None if not winners else winners[0] if len(winners) == 1 else "mixed"
    out["votes"] = (top[0][1] if top else 0, sum(votes.values()))
    return out


def _common(records: list[dict], key: str, default: Any = None) -> Any:
    values = collections.Counter(_hashable(v) for r in records if (v := _get(r, key)) is not None)
    return values.most_common(1)[0][0] if values else default


def _get(r: dict, key: str) -> Any:
    return r["metrics"].get(key) if key in ("input_dim", "data_rank") else r["config"].get(key)


def _int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# ----------------------------------------------------------------------------- figures

def _mark_dims(ax, codes: list[int], dims: dict[str, int | None], categorical: bool) -> None:
    """Dashed line where the code size reaches D, dotted where it reaches r, labelled on top."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for (label, value), style, ha in zip(dims.items(), ("--", ":"), ("left", "right")):
        if value is None:
            continue
        if categorical:
            first = _first_at_least(codes, value)
            if first is None:  # every code size is below it: say so at the right edge
                ax.text(len(codes) - 0.5, 1.01, f"{label}={value} →", transform=trans, ha="right",
                        va="bottom", fontsize=7)
                continue
            # A dotted r line on top of the dashed D line would vanish: nudge it left.
            x = first - 0.5 - (0.06 if style == ":" and first == _first_at_least(codes, dims.get("D")) else 0)
        else:
            x = value
        ax.axvline(x, color="black", ls=style, lw=1.3)
        ax.text(x, 1.01, f" {label}={value} ", transform=trans, ha=ha, va="bottom", fontsize=7)


def _first_at_least(codes: list[int], value: int | None) -> int | None:
    return None if value is None else next((i for i, c in enumerate(codes) if c >= value), None)


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
        if key == "regime":
            cmap, norm = ListedColormap(list(REGIMES.values())), Normalize(-0.5, len(REGIMES) - 0.5)
            cmap = cmap.with_extremes(bad="#eeeeee")
            ax.legend(handles=[Patch(color=v, label=k) for k, v in REGIMES.items()], fontsize=6,
                      loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, frameon=False)
        else:
            cmap = colormaps["viridis"].with_extremes(bad="#eeeeee")
            finite = grid[np.isfinite(grid)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            log_scale = key == "test_mse" and lo > 0 and hi > lo
            # A constant panel gets a mid colour and no colour bar: its numbers say it all.
            norm = LogNorm(lo, hi) if log_scale else Normalize(lo, hi) if hi > lo else Normalize(lo - 1, lo + 1)
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
    pca = [(c, np.mean([s["pca_mse"][0] for (cc, _), s in cells.items() if cc == c and s["pca_mse"]]))
           for c in codes if any(cc == c and s["pca_mse"] for (cc, _), s in cells.items())]
    if pca:
        x, y = map(np.array, zip(*pca))
        positive &= bool((y > 0).all())
        ax.plot(x, y, "k--", label="PCA-k, k = min(code, D)")
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


# ----------------------------------------------------------------------------- the report

def _fmt(s: dict, key: str) -> str:
    v = s.get(key)
    if v is None:
        return "—"
    std = v[1] if v[1] > 1e-9 * abs(v[0]) else 0.0  # float noise of equal values reads as 0
    return f"{v[0]:.3g} ± {std:.2g}" if v[2] > 1 else f"{v[0]:.3g}"


def _regime_cell(s: dict) -> str:
    if s["regime"] is None:
        return "—"
    won, total = s["votes"]
    return s["regime"] if won == total else f"{s['regime']} ({won}/{total})"


def _slug(setting: tuple) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{k}={v}") for k, v in setting)


def write_report(workdir: str | Path, compare: str | Path | None = None, wandb_mode: str | None = None) -> Path:
    """Writes DIR/report.md, DIR/report.html and DIR/figures/*.png; logs one W&B summary run."""
    workdir = Path(workdir)
    records = load_results(workdir)
    other = load_results(compare) if compare is not None else None
    sweep = str(_common(records, "name", "") or workdir.resolve().name)
    axes = setting_axes(records)
    known = [k for k in LABELS if any(k in r["metrics"] for r in records)]
    extras = sorted({k for r in records for k in r["metrics"]} - set(LABELS) - NOT_IN_TABLE)
    metrics = known + extras
    status = collections.Counter(r["status"] for r in records)
    figdir = workdir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)

    data_names = sorted({str(_common([r], "data.name", "?")) for r in records})
    dims_all = {"D": _int_or_none(_common(records, "input_dim")), "r": _int_or_none(_common(records, "data_rank"))}
    doc: list[tuple] = [
        ("h1", f"Sweep `{sweep}`"),
        ("p", f"Data: `{', '.join(data_names)}`, input dimension D = {dims_all['D']}, data rank r = "
              f"{dims_all['r']}. Members: {len(records)} ({status['ok']} ok, {status['diverged']} diverged, "
              f"{status['error']} error)." + (f" Settings that split the figures: `{', '.join(axes)}`."
                                             if axes else "")),
    ]
    mode = wandb_mode or str(_common(records, "wandb.mode", "offline"))
    writer = writers.open_writer(
        {"mode": mode, "project": _common(records, "wandb.project", "ae_jax"),
         "entity": _common(records, "wandb.entity", "")},
        workdir=str(workdir), name=f"{sweep}/report", group=sweep, job_type="report", tags=("report",),
        config={"sweep": sweep, "axes": axes, "data": data_names, "members": len(records)})
    try:
        for setting, members in _group(records, lambda r: tuple((k, _hashable(r["config"].get(k)))
                                                                for k in axes)).items():
            cells = {cell: summarise(rs, metrics) for cell, rs in _group(
                members, lambda r: (r["config"][X_KEY], r["config"][Y_KEY])).items()}
            dims = {"D": _int_or_none(_common(members, "input_dim")),
                    "r": _int_or_none(_common(members, "data_rank"))}
            label = ", ".join(f"{k}={v}" for k, v in setting)
            suffix = f"__{_slug(setting)}" if setting else ""
            title = f"{sweep}" + (f" ({label})" if label else "") + f": D={dims['D']}, r={dims['r']}"
            paths = {}
            for stem, plot in (("phase_diagram", plot_phase_diagram), ("mse_vs_code", plot_mse_vs_code)):
                fig = plot(cells, dims, title)
                paths[stem] = figdir / f"{stem}{suffix}.png"
                fig.savefig(paths[stem], dpi=130)
                writer.figure(f"{stem}{suffix}", fig)
            doc += [("h2", "Phase diagram" + (f": {label}" if label else "")),
                    ("img", paths["phase_diagram"], "phase diagram"), ("p", CAPTION),
                    ("img", paths["mse_vs_code"], "test MSE vs code size"),
                    ("p", "Test MSE against code size, one line per depth (mean ± std over seeds); the "
                          "dashed black line is PCA-k, the closed-form linear control."),
                    ("h3", "Results" + (f": {label}" if label else "")),
                    ("p", "Mean ± sample std over the ok seeds of each setting; n is ok/all members."),
                    ("table", ["k", "depth", "n"] + [LABELS.get(k, k) for k in metrics] + ["regime"],
                     [[str(c), str(d), f"{s['n_ok']}/{s['n']}"] + [_fmt(s, k) for k in metrics]
                      + [_regime_cell(s)] for (c, d), s in cells.items()])]
        if other is not None:
            doc += _compare_section(records, other, Path(compare))
        columns = ["member", "name", "status", X_KEY, Y_KEY, "seed", *axes, *metrics, "regime"]
        writer.table("members", columns, [
            [r["member"], r["name"], r["status"], *(r["config"].get(k) for k in columns[3:6 + len(axes)]),
             *(r["metrics"].get(k) for k in metrics), r["regime"]] for r in records])
        writer.summary({"members": len(records), **{f"members_{k}": v for k, v in status.items()}})
    finally:
        writer.close()
    (workdir / "report.md").write_text(_markdown(doc, workdir))
    (workdir / "report.html").write_text(_html(doc, sweep))
    return workdir / "report.md"


def _compare_section(records: list[dict], other: list[dict], other_dir: Path) -> list[tuple]:
    """Metric deltas (this − other) on the (code size, depth, setting) cells both workdirs have."""
    axes = sorted(set(setting_axes(records)) | set(setting_axes(other)))

    def key(r):
        return (r["config"][X_KEY], r["config"][Y_KEY], *(_hashable(r["config"].get(k)) for k in axes))

    mine = {k: summarise(rs, list(COMPARED)) for k, rs in _group(records, key).items()}
    theirs = {k: summarise(rs, list(COMPARED)) for k, rs in _group(other, key).items()}
    shared = [k for k in mine if k in theirs]
    out = [("h2", f"Comparison with `{other_dir}`")]
    diffs = []
    for k in sorted({k for r in records + other for k in r["config"]}):
        if k in axes or k in (X_KEY, Y_KEY, *REPLICATE_KEYS) or k.startswith(IGNORED):
            continue
        a, b = _common(records, k), _common(other, k)
        if a != b:
            diffs.append(f"`{k}`: {a} vs {b}")
    out.append(("p", f"{len(shared)} settings in common; cells read `this / other (this − other)`. "
                     "Config differences: " + ("; ".join(diffs) if diffs else "none") + "."))
    if not shared:
        return out
    rows = []
    for k in shared:
        a, b = mine[k], theirs[k]
        row = [str(v) for v in k]
        for m in COMPARED:
            if a[m] is None or b[m] is None:
                row.append("—")
            else:
                row.append(f"{a[m][0]:.3g} / {b[m][0]:.3g} ({a[m][0] - b[m][0]:+.3g})")
        rows.append(row + [f"{a['regime'] or '—'} / {b['regime'] or '—'}"])
    out.append(("table", ["k", "depth", *axes, *(LABELS[m] for m in COMPARED), "regime"], rows))
    return out


def _markdown(doc: list[tuple], workdir: Path) -> str:
    lines = []
    for kind, *body in doc:
        if kind in ("h1", "h2", "h3"):
            lines.append("#" * int(kind[1]) + " " + body[0])
        elif kind == "p":
            lines.append(body[0])
        elif kind == "img":
            lines.append(f"![{body[1]}]({body[0].relative_to(workdir).as_posix()})")
        elif kind == "table":
            head, rows = body
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _html(doc: list[tuple], title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "</style></head><body>"]
    for kind, *body in doc:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{_inline(body[0])}</{kind}>")
        elif kind == "img":
            data = base64.b64encode(body[0].read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(body[1])}' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            head, rows = body
            parts.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (2 and one line on stderr for a bad path)."""
    parser = argparse.ArgumentParser(prog="python -m ae_jax.report", description=__doc__)
    parser.add_argument("workdir", help="a sweep's workdir holding results.jsonl")
    parser.add_argument("--compare", default=None, help="another workdir to compare with")
    parser.add_argument("--wandb_mode", choices=("offline", "online", "disabled"), default=None,
                        help="overrides the results' config.wandb.mode for the summary run")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.workdir, compare=args.compare, wandb_mode=args.wandb_mode)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path} (and {path.with_suffix('.html')}); figures: {path.parent / 'figures'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
