"""`python -m ae_jax.report DIR [--compare OTHER]`: the figures and tables of any sweep, laid out by the
axes it sweeps (a heatmap for two numeric axes, lines for one, small multiples over the rest)."""

import argparse
import collections
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ae_jax import code_metrics, plots, workdir as workdir_lib, writers
from ae_jax.errors import ConfigError
from ae_jax.plots import LABELS, PANELS, Layout
from ae_jax.report_render import Cell, render_html, render_markdown

log = logging.getLogger(__name__)

REPLICATE_KEYS = ("seed", "data.split_seed")  # averaged over, like seeds
# never a reason to split a figure: names, logging, and what changes how a sweep runs, not its numbers
IGNORED = ("name", "train.log_every", *workdir_lib.NOT_IDENTITY)
PRIORITY = ("model.code_size", "model.depth", "model.width")  # x, then y, when they are swept
COMPARED = ("test_mse", "mse_over_pca", "rank_frac", "jac_trace", "span_ood_fidelity", "ood_fidelity",
            "denoise_gain")
NOT_SHOWN = ("input_dim", "data_rank", "steps", "regime")  # context, not a result to tabulate
# table columns when present: every registered code metric's keys
VARIANTS = tuple(k for metric in code_metrics.CODE_METRICS.values() for k in metric.keys if k != "code_mean")
MORE_COLUMNS = 9  # metric columns per extra table: every column fits a 1366-px window

LABEL_TESTS = (
    "`identity`: copies what is not data (uniform and off-data inputs come back); "
    "`structured`: reconstructs held-out data as well as PCA keeping as many directions, generalises and "
    "shrinks off-data perturbations; `memorizing`: outputs snap to training examples or a large "
    "train/test gap; `collapsed`: a (near-)constant map that is not a training example; `underfit`: worse "
    "than the trivial controls (an untrained net); `unresolved`: no test passed, or tests conflict. "
    "The formulas and thresholds are in docs/regime.md.")


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
    config = {k: _hashable(v) for k, v in {**(rec.get("config") or {}), **(rec.get("overrides") or {})}.items()}
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
    converged = raw.get("converged", rec.get("converged"))
    return {"member": rec.get("member"), "name": str(rec.get("name", "")), "config": config,
            "status": str(rec.get("status", "ok")), "metrics": m,
            "regime": regime if isinstance(regime, str) else None,
            "converged": bool(converged) if isinstance(converged, (bool, int)) else None,
            "wandb_run_id": rec.get("wandb_run_id"), "wandb_dir": rec.get("wandb_dir")}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def _order(v: Any) -> tuple:
    """A sort key for values of mixed types: numbers (numerically) before the rest."""
    if isinstance(v, tuple):
        return (2, 0, tuple(_order(x) for x in v))
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def swept_axes(records: list[dict]) -> dict[str, list]:
    """{config key: its sorted values} for every key whose value varies across members (seeds and
    settings that never change the numbers excluded), code size and depth first, then by value count."""
    keys = {k for r in records for k in r["config"]}
    keys = {k for k in keys if k not in REPLICATE_KEYS and not k.startswith(IGNORED)}
    values = {k: sorted({r["config"].get(k) for r in records}, key=_order) for k in keys}
    axes = [k for k in keys if len(values[k]) > 1]
    axes.sort(key=lambda k: (PRIORITY.index(k) if k in PRIORITY else len(PRIORITY), -len(values[k]), k))
    return {k: values[k] for k in axes}


def _group(records: list[dict], key) -> dict[tuple, list[dict]]:
    out = collections.defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return {k: out[k] for k in sorted(out, key=lambda t: tuple(_order(v) for v in t))}


def summarise(records: list[dict], metrics: list[str]) -> dict:
    """Mean, sample std and count over the ok members, each ok member's (value, converged); the majority
    regime and its votes; how many ok members did not converge."""
    ok = [r for r in records if r["status"] == "ok"]
    out: dict[str, Any] = {"n_ok": len(ok), "n": len(records), "each": {},
                           "status": collections.Counter(r["status"] for r in records),
                           "n_unconverged": sum(r["converged"] is False for r in ok)}
    for k in metrics:
        each = [(r["metrics"][k], r["converged"]) for r in ok if math.isfinite(r["metrics"].get(k, math.nan))]
        vals = np.array([v for v, _ in each], dtype=float)
        out["each"][k] = each
        out[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals)) \
            if len(vals) else None
    votes = collections.Counter(r["regime"] for r in ok if r["regime"])
    top = votes.most_common()
    winners = [name for name, c in top if c == top[0][1]] if top else []
    out["regime"] = None if not winners else winners[0] if len(winners) == 1 else "mixed"
    out["votes"] = (top[0][1] if top else 0, sum(votes.values()))
    return out


def _common(records: list[dict], key: str, default: Any = None) -> Any:
    values = collections.Counter(v for r in records if (v := _get(r, key)) is not None)
    return values.most_common(1)[0][0] if values else default


def _get(r: dict, key: str) -> Any:
    return r["metrics"].get(key) if key in ("input_dim", "data_rank") else r["config"].get(key)


def _stored_identity(workdir: Path) -> dict:
    """DIR/sweep.json as the sweep runner wrote it (name, member count, sha256), or {}."""
    try:
        stored = json.loads((workdir / workdir_lib.IDENTITY).read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _dims(records: list[dict]) -> dict[str, int | None]:
    """The input dimension D and the data rank r, as most members report them."""
    out = {"D": _common(records, "input_dim"), "r": _common(records, "data_rank")}
    return {k: int(v) if isinstance(v, (int, float)) and math.isfinite(v) else None for k, v in out.items()}


def report_run_id(workdir: Path, identity: dict, records: list[dict]) -> str:
    """The report's W&B run id: the same for every report of this sweep in this workdir, so a rerun
    updates its run; from the stored sweep identity, else from the member names."""
    basis = identity.get("sha256") or hashlib.sha256(
        json.dumps(sorted(r["name"] for r in records)).encode()).hexdigest()
    return "report-" + hashlib.sha256(f"{basis}:{workdir.resolve()}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- the report

@dataclasses.dataclass
class Sweep:
    """What the sections of the report share."""
    workdir: Path
    name: str
    records: list[dict]
    layout: Layout
    values: dict[str, list]
    metrics: list[str]
    cells: dict[tuple, dict]  # (x, y or None, *facets) -> summary

    def key(self, r: dict) -> tuple:
        lay = self.layout
        if lay.kind == "single":
            return (None, None)
        return (r["config"].get(lay.x), r["config"].get(lay.y) if lay.y else None,
                *(r["config"].get(a) for a in lay.facets))


def build(workdir: Path, records: list[dict]) -> Sweep:
    """The layout and the per-setting summaries of a sweep's records."""
    values = swept_axes(records)
    layout = plots.choose_layout(values)
    metrics = [k for k in (*LABELS, *VARIANTS) if any(k in r["metrics"] for r in records)]
    metrics += sorted({k for r in records for k in r["metrics"]} - set(metrics) - set(NOT_SHOWN))
    name = str(_common(records, "name", "") or _stored_identity(workdir).get("name") or workdir.resolve().name)
    sweep = Sweep(workdir, name, records, layout, values, metrics, {})
    sweep.cells = {k: summarise(rs, metrics) for k, rs in _group(records, sweep.key).items()}
    return sweep


def write_report(workdir: str | Path, compare: str | Path | None = None,
                 wandb_mode: str | None = None) -> Path:
    """Writes DIR/report.md, DIR/report.html and DIR/figures/*.png; logs one W&B summary run per sweep."""
    workdir = Path(workdir)
    records = load_results(workdir)
    other = load_results(compare) if compare is not None else None
    sweep = build(workdir, records)
    identity = _stored_identity(workdir)
    figdir = workdir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    status = collections.Counter(r["status"] for r in records)
    expected = identity.get("members") if isinstance(identity.get("members"), int) else None
    unconverged = sum(r["converged"] is False for r in records if r["status"] == "ok")
    mode = wandb_mode or str(_common(records, "wandb.mode", "offline"))
    run_id = report_run_id(workdir, identity, records)
    wandb_root = workdir / "wandb"
    before = set(wandb_root.glob(f"offline-run-*-{run_id}")) if wandb_root.is_dir() else set()
    writer = writers.open_writer(
        {"mode": mode, "project": _common(records, "wandb.project", "ae_jax"),
         "entity": _common(records, "wandb.entity", "")},
        workdir=str(workdir), name=f"{sweep.name}/report", group=sweep.name, job_type="report",
        tags=("report",), run_id=run_id,
        config={"sweep": sweep.name, "axes": list(sweep.values), "layout": sweep.layout.name,
                "data": sorted({str(r["config"].get("data.name", "?")) for r in records}),
                "member_count": len(records), "member_expected": expected})
    try:
        doc = _header(sweep, status, expected, unconverged)
        doc += _figures(sweep, figdir, writer)
        doc += _tables(sweep)
        if other is not None:
            doc += _compare_section(records, other, Path(compare))
        columns, rows = _member_rows(sweep, html=False)
        writer.table("members", columns, rows)
        # `members` is the table's key: a scalar of the same name would replace the table in the summary
        writer.summary({"member_count": len(records), "member_expected": expected,
                        "members_unconverged": unconverged, **{f"members_{k}": v for k, v in status.items()}})
    finally:
        writer.close()
    _drop_superseded(wandb_root, run_id, before)
    # html first, md last and each written aside then renamed: report.md present means the report is whole
    _write_whole(workdir / "report.html", render_html(doc, f"Sweep {sweep.name}"))
    _write_whole(workdir / "report.md", render_markdown(doc, workdir))
    return workdir / "report.md"


def _drop_superseded(root: Path, run_id: str, before: set[Path]) -> None:
    """A rerun's offline report run supersedes the older local copies of the same run (same id, so
    a sync updates one run on the server): the workdir keeps one report run."""
    runs = sorted(root.glob(f"offline-run-*-{run_id}")) if root.is_dir() else []
    if runs and runs[-1] not in before:
        for old in runs[:-1]:
            shutil.rmtree(old, ignore_errors=True)


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _header(sweep: Sweep, status: collections.Counter, expected: int | None, unconverged: int) -> list[tuple]:
    recs, dims = sweep.records, _dims(sweep.records)
    data = ", ".join(sorted({str(r["config"].get("data.name", "?")) for r in recs}))
    k = len(recs)
    count = f"{k} of {expected} members" if expected else f"{k} members"
    if expected and k < expected:
        count += f" (partial: {expected - k} not finished yet)"
    known = sum(r["converged"] is not None for r in recs if r["status"] == "ok")
    conv = (f"; {unconverged} of {status['ok']} ok members unconverged" if known
            else "; convergence not recorded")
    seeds = collections.Counter(len(rs) for rs in _group(recs, sweep.key).values())
    axes = "; ".join(f"`{a}` ({len(v)} values)" for a, v in sweep.values.items()) or "none"
    lay = sweep.layout
    shape = {"single": "one setting, no figure",
             "heatmap": f"heatmaps of `{lay.x}` (columns) by `{lay.y}` (rows)",
             "lines": f"lines against `{lay.x}`" + (f", one per `{lay.y}`" if lay.y else "")}[lay.kind]
    if lay.facets:
        shape += ", small multiples over " + " x ".join(f"`{a}`" for a in lay.facets)
    return [("h1", f"Sweep `{sweep.name}`"),
            ("p", f"{count}: {status['ok']} ok, {status['diverged']} diverged, {status['error']} error{conv}. "
                  f"Data: `{data}`, input dimension D = {dims['D']}, data rank r = {dims['r']}."),
            ("p", f"Swept: {axes}; members per setting: "
                  f"{', '.join(str(n) for n in sorted(seeds))} (seeds). Layout: {shape}.")]


def _how_to_read(sweep: Sweep) -> list[str]:
    """The one "how to read it" text, for this sweep's layout."""
    lay = sweep.layout
    if lay.kind == "heatmap":
        shape = (f"Each cell is one setting, `{lay.x}` in columns and `{lay.y}` in rows; its number is the mean "
                 "over seeds (the tables give the spread).")
    else:
        shape = (f"Each panel plots a metric against `{lay.x}`" + (f", one line per `{lay.y}`" if lay.y else "")
                 + "; the line is the mean over seeds, the band spans the seeds' lowest to highest value and "
                   "each dot is one seed (hollow: unconverged). The regime panel is a strip of the settings.")
    if lay.facets:
        shape += (" Small multiples: one panel per value of " + " x ".join(f"`{a}`" for a in lay.facets)
                  + "; all panels of a figure share one colour scale.")
    if lay.x == "model.code_size":
        shape += (" On code-size axes the dashed line marks where the code size k reaches the input dimension D, "
                  "the dotted line where it reaches the data rank r.")
    return [
        shape,
        "Regime colours (colour-blind-safe; no label is an error): the majority label over the ok seeds of a "
        "setting; `mixed` is a tie and `2/3` the winning votes when seeds disagree; a dark cell has no "
        "finished member (diverged or error); `not run` has no results yet. Hatching and † mark a setting "
        "with a member whose training loss was still falling (`converged: false`): its label may move with "
        "more steps.",
        LABEL_TESTS,
        "Metrics: `test_mse/pca_mse` below 1 beats PCA-k, the test MSE of PCA with k = min(code size, D) "
        "components, the closed-form linear control (— where PCA-k is exact). The identity map gives "
        "jac_rank/r = 1, span_ood_fidelity = ood_fidelity = 1, noise_gain = denoise_gain = 1 and "
        "attractor_fraction = 0 (dotted lines on line plots). Colour scales of fractions and gains always "
        "span 0 to 1; test_mse and test_mse/pca_mse are logarithmic over at least a factor 10, so small "
        "differences look small.",
    ]


def _figures(sweep: Sweep, figdir: Path, writer) -> list[tuple]:
    lay, cells, vals = sweep.layout, sweep.cells, sweep.values
    if lay.kind == "single":
        return []
    title = f"{sweep.name}: D={_dims(sweep.records)['D']}, r={_dims(sweep.records)['r']}"
    panels = [k for k in PANELS if any(s.get(k) for s in cells.values())]
    figs = []
    if not lay.facets:
        figs.append(("phase_diagram", "regimes and metrics",
                     plots.plot_overview(cells, lay, vals, _dims(sweep.records), title, panels)))
    else:
        def dims_of(facet):
            return _dims([r for r in sweep.records if sweep.key(r)[2:] == facet])
        figs.append(("phase_diagram", "regimes", plots.plot_facets(cells, lay, vals, dims_of, title, "regime")))
        figs += [(f"metric_{k}", LABELS.get(k, k), plots.plot_facets(cells, lay, vals, dims_of, title, k))
                 for k in panels]
    if lay.kind == "heatmap" and not lay.facets and "test_mse" in panels:
        figs.append((f"test_mse_vs_{lay.x.rsplit('.', 1)[-1]}", "test MSE",
                     plots.plot_test_mse(cells, lay, vals, _dims(sweep.records), title)))
    doc: list[tuple] = [("h2", "Regimes and metrics")]
    for i, (stem, alt, fig) in enumerate(figs):
        path = figdir / f"{stem}.png"
        fig.savefig(path, dpi=2 * plots.PX_PER_INCH)  # twice the CSS pixels: sharp on every screen
        writer.figure(stem, fig)
        doc.append(("img", path, alt, fig.get_size_inches()[0] * plots.PX_PER_INCH))
        if i == 0:
            doc += [("h3", "How to read it"), ("ul", _how_to_read(sweep))]
    return doc


# ----------------------------------------------------------------------------- tables

def _mean_cell(s: dict, key: str) -> Cell:
    v = s.get(key)
    if v is None:
        return Cell("—")
    std = v[1] if v[1] > 1e-9 * abs(v[0]) else 0.0  # float noise of equal values reads as 0
    return Cell(f"{v[0]:.3g}", sort=v[0], sd=f"± {std:.2g}" if v[2] > 1 else None)


def _regime_cell(s: dict) -> Cell:
    if s["n_ok"] == 0:
        return Cell("diverged" if s["status"].get("diverged") else "error", regime="")
    if s["regime"] is None:
        return Cell("—")
    won, total = s["votes"]
    text = s["regime"] if won == total else f"{s['regime']} ({won}/{total})"
    return Cell(text + (" †" if s["n_unconverged"] else ""), regime=s["regime"])


def _setting_cells(sweep: Sweep, key: tuple) -> list[Cell]:
    """The setting's values in the order of layout.order (the key holds None for a missing y)."""
    values = [] if sweep.layout.kind == "single" else [key[0], *key[1:2] * bool(sweep.layout.y), *key[2:]]
    return [Cell(plots.tick(v), sort=v if isinstance(v, (int, float)) else None) for v in values]


def _tables(sweep: Sweep) -> list[tuple]:
    lay, cells = sweep.layout, sweep.cells
    axes = list(lay.order)
    key_metrics = [k for k in PANELS if k in sweep.metrics]
    more = [k for k in sweep.metrics if k not in key_metrics]
    conv = any(r["converged"] is not None for r in sweep.records)
    head = ["regime", *axes, "n ok/all"] + (["unconverged"] if conv else [])

    def lead(s, key):
        return ([_regime_cell(s), *_setting_cells(sweep, key), Cell(f"{s['n_ok']}/{s['n']}", sort=s["n_ok"])]
                + ([Cell(str(s["n_unconverged"]), sort=s["n_unconverged"])] if conv else []))

    doc: list[tuple] = []
    if lay.kind == "heatmap":
        doc += [("h3", "At a glance"),
                ("p", "The phase diagram as text: majority regime, then jac_rank/r and span_ood_fidelity "
                      "(seed means)."), _glance_table(sweep)]
    doc += [("h2", "Settings"),
             ("p", "One row per setting: mean over its ok seeds (± sample std below); n is ok/all members; "
                   "† marks a setting with an unconverged member. Click a heading to sort.")]
    doc.append(("table", head + [LABELS.get(k, k) for k in key_metrics],
                [lead(s, key) + [_mean_cell(s, k) for k in key_metrics] for key, s in cells.items()]))
    for i in range(0, len(more), MORE_COLUMNS):
        chunk = more[i:i + MORE_COLUMNS]
        part = f" ({i // MORE_COLUMNS + 1})" if len(more) > MORE_COLUMNS else ""
        doc += [("h3", "More metrics" + part),
                ("table", head + [LABELS.get(k, k) for k in chunk],
                 [lead(s, key) + [_mean_cell(s, k) for k in chunk] for key, s in cells.items()],
                 f"{', '.join(chunk)}: show the table")]
    columns, rows = _member_rows(sweep, html=True)
    doc += [("h2", "Members"),
            ("p", "Every member with its W&B run (when W&B was on); `converged` is whether its training loss "
                  "had stopped falling."), ("table", columns, rows)]
    return doc


def _member_rows(sweep: Sweep, html: bool) -> tuple[list[str], list[list]]:
    """The members table: Cells for the report (html) or plain values for W&B."""
    axes = list(sweep.values)
    seeds = [k for k in REPLICATE_KEYS if any(k in r["config"] for r in sweep.records)]
    metrics = [k for k in ("test_mse", *PANELS[1:]) if k in sweep.metrics]
    if html:
        metrics = metrics[:2]  # the full rows are the tables above and the W&B table
    columns = ["regime", "member", "name", "status", "converged", *axes, *seeds, *metrics, "wandb_run"]
    rows = []
    for r in sweep.records:
        conv = {True: "yes", False: "no", None: "—"}[r["converged"]]
        values = [r["config"].get(k) for k in (*axes, *seeds)]
        ms = [r["metrics"].get(k) for k in metrics]
        if not html:
            rows.append([r["regime"], r["member"], r["name"], r["status"], r["converged"], *values, *ms,
                         r["wandb_run_id"]])
            continue
        rows.append([Cell(r["regime"] or r["status"], regime=r["regime"] or ""),
                     Cell(str(r["member"]), sort=r["member"]), Cell(r["name"], text_kind=True),
                     Cell(r["status"], text_kind=True), Cell(conv + (" †" if r["converged"] is False else ""),
                                                             text_kind=True),
                     *(Cell(plots.tick(v) if v is not None else "—", sort=v if isinstance(v, (int, float)) else None)
                       for v in values),
                     *(Cell(f"{v:.3g}" if v is not None and math.isfinite(v) else "—",
                            sort=v if v is not None and math.isfinite(v) else None) for v in ms),
                     _run_cell(sweep.workdir, r)])
    return columns, rows


def _run_cell(workdir: Path, r: dict) -> Cell:
    run_id, folder = r.get("wandb_run_id"), r.get("wandb_dir")
    if not run_id and not folder:
        return Cell("—")
    href = None
    if folder:
        path = Path(folder) if Path(folder).is_absolute() else workdir / folder
        try:
            href = path.resolve().relative_to(workdir.resolve()).as_posix()
        except ValueError:  # outside the workdir: an absolute link
            href = path.resolve().as_uri()
    return Cell(str(run_id or Path(folder).name), href=href, text_kind=True)


def _glance_table(sweep: Sweep) -> tuple:
    """(facets, y) rows x x-value columns of `regime rank ood`: the phase diagram as text."""
    lay, cells = sweep.layout, sweep.cells
    xs = sweep.values[lay.x]
    rows = []
    for row_key in sorted({k[1:] for k in cells}, key=lambda t: tuple(_order(v) for v in (*t[1:], t[0]))):
        row = [Cell(plots.tick(v), text_kind=True) for v in row_key[1:] + row_key[:1]]
        for x in xs:
            s = cells.get((x, *row_key))
            if s is None:
                row.append(Cell(""))
                continue
            mean = lambda k: s[k][0] if s.get(k) else float("nan")
            regime = _regime_cell(s)
            row.append(dataclasses.replace(regime, sd=f"{mean('rank_frac'):.2f} {mean('span_ood_fidelity'):.2f}"))
        rows.append(row)
    leaf = lambda key: key.rsplit(".", 1)[-1]  # a narrow first column leaves room for the cells
    head = [*map(leaf, lay.facets), f"{leaf(lay.y)} \\ {leaf(lay.x)}"] + [plots.tick(x) for x in xs]
    return ("table", head, rows)


def _compare_section(records: list[dict], other: list[dict], other_dir: Path) -> list[tuple]:
    """Metric deltas (this − other) on the settings both workdirs have."""
    axes = sorted(set(swept_axes(records)) | set(swept_axes(other)))

    def key(r):
        return tuple(r["config"].get(k) for k in axes)

    mine = {k: summarise(rs, list(COMPARED)) for k, rs in _group(records, key).items()}
    theirs = {k: summarise(rs, list(COMPARED)) for k, rs in _group(other, key).items()}
    shared = [k for k in mine if k in theirs]
    out = [("h2", f"Comparison with `{other_dir}`")]
    diffs = []
    for k in sorted({k for r in records + other for k in r["config"]}):
        if k in axes or k in REPLICATE_KEYS or k.startswith(IGNORED):
            continue
        a, b = _common(records, k), _common(other, k)
        if a != b:
            diffs.append(f"`{k}`: {a} vs {b}")
    out.append(("p", f"{len(shared)} settings in common; cells read `this / other (this − other)`. "
                     "Config differences: " + ("; ".join(diffs) if diffs else "none") + "."))
    if not shared:
        return out
    rows = [[Cell(f"{mine[k]['regime'] or '—'} / {theirs[k]['regime'] or '—'}", text_kind=True),
             *(Cell(plots.tick(v)) for v in k)]
            + [Cell(_delta(mine[k][m], theirs[k][m])) for m in COMPARED] for k in shared]
    out.append(("table", ["regime", *axes, *(LABELS[m] for m in COMPARED)], rows))
    return out


def _delta(a: tuple | None, b: tuple | None) -> str:
    return f"{a[0]:.3g} / {b[0]:.3g} ({a[0] - b[0]:+.3g})" if a and b else "—"


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
