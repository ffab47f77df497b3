"""`python -m ae_jax.report DIR [--compare OTHER]`: phase diagram, curves and tables of a sweep."""

import argparse
import base64
import collections
import html
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ae_jax import code_metrics, workdir as workdir_lib, writers
from ae_jax.errors import ConfigError
from ae_jax.plots import LABELS, plot_mse_vs_code, plot_phase_diagram

log = logging.getLogger(__name__)

X_KEY, Y_KEY = "model.code_size", "model.depth"
REPLICATE_KEYS = ("seed", "data.split_seed")  # averaged over, like seeds
IGNORED = ("name", "train.log_every", "wandb.")  # never a reason to split a figure
COMPARED = ("test_mse", "mse_over_pca", "rank_frac", "jac_trace", "span_ood_fidelity", "ood_fidelity",
            "denoise_gain")
# table columns when present: every registered code metric's keys
VARIANTS = tuple(k for metric in code_metrics.CODE_METRICS.values() for k in metric.keys if k != "code_mean")

CAPTION = (
    "How to read it: each cell is one (code size k, depth) setting, averaged over seeds; columns are "
    "log2-spaced code sizes, rows depths. The dashed line marks where k reaches the input dimension D "
    "(columns to its right have k >= D), the dotted line where k reaches the data rank r. "
    "PCA-k (`pca_mse`) is the test MSE of PCA fitted on the training data with k = min(code size, D) "
    "components, the closed-form linear control: `test_mse/pca_mse` below 1 beats it (— where pca_mse "
    "is 0, i.e. PCA-k is exact). The identity map gives jac_rank/r = 1, jac_trace = 1, ood_fidelity = 1, "
    "span_ood_fidelity = 1 (the same uniform noise projected onto the data span), denoise_gain = 1 "
    "and attractor_fraction = 0. "
    "The regime panel shows the majority over seeds of each member's regime ('mixed' is a tie), by the "
    "rule of `classify_regime` in `ae_jax/diagnostics.py`: `memorizing` when noisy training points are "
    "carried back onto training examples (high attractor_fraction) or the map is nearly constant; "
    "`identity` when nearly every data direction passes (jac_rank/r near 1) and uniform noise within "
    "the data span is copied too (high span_ood_fidelity); `structured` otherwise.")


# ----------------------------------------------------------------------------- loading

def load_results(workdir: str | Path) -> list[dict]:
    """The members of DIR/results.jsonl (workdir.read_results: the last line of a member wins, torn or
    junk lines skipped with a warning), normalised for the tables; unusable records skipped with a warning."""
    path = Path(workdir) / "results.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run ae_jax.sweep first)")
    records = []
    for rec in workdir_lib.read_results(path):
        try:
            records.append(_normalise(rec))
        except (ValueError, TypeError, KeyError) as e:
            log.warning("%s: skipped member %s (%s)", path, rec.get("member"), e)
    if not records:
        raise ConfigError(f"{path}: no results in it (run ae_jax.sweep first)")
    return records


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
    # PCA-k is exact once k reaches the data rank; a ratio to its round-off would swamp the colours.
    var = m.get("test_mse", nan) / m["test_fvu"] if m.get("test_fvu", 0) > 0 else 0.0
    exact = not m.get("pca_mse", 0) > 1e-9 * (var if math.isfinite(var) else 0.0)
    m["mse_over_pca"] = nan if exact else m.get("test_mse", nan) / m["pca_mse"]
    m["rank_frac"] = m.get("jac_rank", nan) / m["data_rank"] if m.get("data_rank", 0) > 0 else nan
    regime = raw.get("regime")
    return {"member": rec.get("member"), "name": str(rec.get("name", "")), "config": config,
            "status": str(rec.get("status", "ok")), "metrics": m,
            "regime": regime if isinstance(regime, str) else None}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def _order(v: Any) -> tuple:
    """A sort key for values of mixed types: numbers (numerically) before the rest."""
    if isinstance(v, tuple):
        return (2, 0, tuple(_order(x) for x in v))
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


def _sweep_name(records: list[dict], workdir: Path) -> str:
    """config.name, else the name the sweep runner stored in DIR/sweep.json, else the directory's."""
    try:
        stored = json.loads((workdir / "sweep.json").read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        stored = None
    return str(_common(records, "name", "") or stored or workdir.resolve().name)


def _dims(records: list[dict]) -> dict[str, int | None]:
    """The input dimension D and the data rank r, as most members report them."""
    out = {"D": _common(records, "input_dim"), "r": _common(records, "data_rank")}
    return {k: int(v) if isinstance(v, (int, float)) and math.isfinite(v) else None for k, v in out.items()}


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


def write_report(workdir: str | Path, compare: str | Path | None = None,
                 wandb_mode: str | None = None) -> Path:
    """Writes DIR/report.md, DIR/report.html and DIR/figures/*.png; logs one W&B summary run."""
    workdir = Path(workdir)
    records = load_results(workdir)
    other = load_results(compare) if compare is not None else None
    sweep = _sweep_name(records, workdir)
    axes = setting_axes(records)
    metrics = [k for k in (*LABELS, *VARIANTS) if any(k in r["metrics"] for r in records)]
    status = collections.Counter(r["status"] for r in records)
    figdir = workdir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)

    data_names = sorted({str(_common([r], "data.name", "?")) for r in records})
    dims_all = _dims(records)
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
            dims = _dims(members)
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
                    ("p", "At a glance: majority regime, then jac_rank/r and span_ood_fidelity (seed means)."),
                    _glance_table(cells, dims),
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
        every = sorted({k for r in records for k in r["metrics"]})
        columns = ["member", "name", "status", X_KEY, Y_KEY, "seed", *axes, *every, "regime"]
        writer.table("members", columns, [
            [r["member"], r["name"], r["status"], *(r["config"].get(k) for k in columns[3:6 + len(axes)]),
             *(r["metrics"].get(k) for k in every), r["regime"]] for r in records])
        writer.summary({"members": len(records), **{f"members_{k}": v for k, v in status.items()}})
    finally:
        writer.close()
    # html first, md last and each written aside then renamed: report.md present means the report is whole
    _write_whole(workdir / "report.html", _html(doc, sweep))
    _write_whole(workdir / "report.md", _markdown(doc, workdir))
    return workdir / "report.md"


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _glance_table(cells: dict, dims: dict) -> tuple:
    """Depth rows x code-size columns of `regime rank/r ood`: the phase diagram as text."""
    codes = sorted({c for c, _ in cells})
    depths = sorted({d for _, d in cells})
    rows = []
    for d in depths:
        row = [str(d)]
        for c in codes:
            s = cells.get((c, d))
            if s is None:
                row.append("")
                continue
            mean = lambda k: s[k][0] if s.get(k) else float("nan")
            rank = mean("rank_frac")
            row.append(f"{s['regime']} {rank:.2f} {mean('span_ood_fidelity'):.2f}")
        rows.append(row)
    return ("table", ["depth \\ k"] + [str(c) for c in codes], rows)


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
    rows = [[str(v) for v in k] + [_delta(mine[k][m], theirs[k][m]) for m in COMPARED]
            + [f"{mine[k]['regime'] or '—'} / {theirs[k]['regime'] or '—'}"] for k in shared]
    out.append(("table", ["k", "depth", *axes, *(LABELS[m] for m in COMPARED), "regime"], rows))
    return out


def _delta(a: tuple | None, b: tuple | None) -> str:
    return f"{a[0]:.3g} / {b[0]:.3g} ({a[0] - b[0]:+.3g})" if a and b else "—"


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
