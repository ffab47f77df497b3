"""`python -m ae_jax.report DIR [--compare OTHER]`: the figures and tables of any sweep, laid out by the
axes it sweeps (a heatmap for two numeric axes, lines for one, small multiples over the rest)."""

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import os
import sys
from pathlib import Path

from ae_jax import plots, writers
from ae_jax.errors import ConfigError
from ae_jax.plots import LABELS, PANELS
from ae_jax import report_data
from ae_jax.report_data import REPLICATE_KEYS, Sweep, build, load_results, summarise, swept_axes
from ae_jax.report_render import Cell, render_html, render_markdown

COMPARED = ("test_mse", "mse_over_pca", "rank_frac", "jac_trace", "span_ood_fidelity", "ood_fidelity",
            "denoise_gain")
MORE_COLUMNS = 9  # metric columns per extra table at most: every column fits a 1366-px window

LABEL_TESTS = (
    "`identity`: copies what is not data (uniform and off-data inputs come back); "
    "`structured`: reconstructs held-out data as well as PCA keeping as many directions, generalises and "
    "shrinks off-data perturbations; `memorizing`: outputs snap to training examples or a large "
    "train/test gap; `collapsed`: a (near-)constant map that is not a training example; `underfit`: worse "
    "than the trivial controls (an untrained net); `unresolved`: no test passed, or tests conflict. "
    "The formulas and thresholds are in docs/regime.md.")


def report_run_id(workdir: Path, identity: dict, records: list[dict]) -> str:
    """The report's W&B run id: the same for every report of this sweep in this workdir, so a rerun
    updates its run; from the stored sweep identity, else from the member names."""
    basis = identity.get("sha256") or hashlib.sha256(
        json.dumps(sorted(r["name"] for r in records)).encode()).hexdigest()
    return "report-" + hashlib.sha256(f"{basis}:{workdir.resolve()}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- the report

def write_report(workdir: str | Path, compare: str | Path | None = None,
                 wandb_mode: str | None = None) -> Path:
    """Writes DIR/report.md, DIR/report.html and DIR/figures/*.png; logs one W&B summary run per sweep."""
    workdir = Path(workdir)
    records = load_results(workdir)
    other = load_results(compare) if compare is not None else None
    sweep = build(workdir, records)
    identity = report_data.stored_identity(workdir)
    figdir = workdir / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    status = collections.Counter(r["status"] for r in records)
    expected = identity.get("members") if isinstance(identity.get("members"), int) else None
    unconverged = sum(r["converged"] is False for r in records if r["status"] == "ok")
    mode = wandb_mode or str(report_data.common(records, "wandb.mode", "offline"))
    run_id = report_run_id(workdir, identity, records)
    writer = writers.open_writer(
        {"mode": mode, "project": report_data.common(records, "wandb.project", "ae_jax"),
         "entity": report_data.common(records, "wandb.entity", "")},
        workdir=str(workdir), name=f"{sweep.name}/report", group=sweep.name, job_type="report",
        tags=("report",), run_id=run_id,
        config={"sweep": sweep.name, "axes": list(sweep.values), "layout": sweep.layout.name,
                "data": sorted({str(r["config"].get("data.name", "?")) for r in records}),
                "member_count": len(records), "member_expected": expected})
    try:
        doc = _header(sweep, status, expected, unconverged)
        partial = f"{len(records)} of {expected} members" if expected and len(records) < expected else ""
        doc += _figures(sweep, figdir, writer, partial)
        doc += _tables(sweep, partial)
        if other is not None:
            doc += _compare_section(records, other, Path(compare))
        writer.table("members", *_wandb_members(sweep))
        # `members` is the table's key: a scalar of the same name would replace the table in the summary
        writer.summary({"member_count": len(records), "member_expected": expected,
                        "members_unconverged": unconverged, **{f"members_{k}": v for k, v in status.items()}})
    finally:
        writer.close()
    # html first, md last and each written aside then renamed: report.md present means the report is whole
    _write_whole(workdir / "report.html", render_html(doc, f"Sweep {sweep.name}"))
    _write_whole(workdir / "report.md", render_markdown(doc, workdir))
    return workdir / "report.md"


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _header(sweep: Sweep, status: collections.Counter, expected: int | None, unconverged: int) -> list[tuple]:
    recs, dims = sweep.records, report_data.dims(sweep.records)
    data = ", ".join(sorted({str(r["config"].get("data.name", "?")) for r in recs}))
    k = len(recs)
    count = f"{k} of {expected} members" if expected else f"{k} members"
    if expected and k < expected:
        count += f" (partial: {expected - k} not finished yet)"
    known = sum(r["converged"] is not None for r in recs if r["status"] == "ok")
    conv = (f"; {unconverged} of {status['ok']} ok members unconverged" if known
            else "; convergence not recorded")
    seeds = collections.Counter(len(rs) for rs in report_data.group(recs, sweep.key).values())
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


def _figures(sweep: Sweep, figdir: Path, writer, partial: str = "") -> list[tuple]:
    """The figures; `partial` ("k of N members", for an unfinished sweep) goes into every title."""
    lay, cells, vals = sweep.layout, sweep.cells, sweep.values
    if lay.kind == "single":
        return []
    dims = report_data.dims(sweep.records)
    # D and r in the title only when every member shares them; facets over datasets mark their own
    shared = len({(r["metrics"].get("input_dim"), r["metrics"].get("data_rank")) for r in sweep.records}) == 1
    title = sweep.name + (f": D={dims['D']}, r={dims['r']}" if shared else "") + (f" ({partial})" if partial else "")
    panels = [k for k in PANELS if any(s.get(k) for s in cells.values())]
    figs = []
    if not lay.facets:
        figs.append(("phase_diagram", "regimes and metrics",
                     plots.plot_overview(cells, lay, vals, dims, title, panels)))
    else:
        def dims_of(facet):
            return report_data.dims([r for r in sweep.records if sweep.key(r)[2:] == facet])
        figs.append(("phase_diagram", "regimes", plots.plot_facets(cells, lay, vals, dims_of, title, "regime")))
        figs += [(f"metric_{k}", LABELS.get(k, k), plots.plot_facets(cells, lay, vals, dims_of, title, k))
                 for k in panels]
    if lay.kind == "heatmap" and not lay.facets and "test_mse" in panels:
        figs.append((f"test_mse_vs_{lay.x.rsplit('.', 1)[-1]}", "test MSE",
                     plots.plot_test_mse(cells, lay, vals, dims, title)))
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


def _tables(sweep: Sweep, partial: str = "") -> list[tuple]:
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
    size = math.ceil(len(more) / math.ceil(len(more) / MORE_COLUMNS)) if more else 1  # even parts
    for i in range(0, len(more), size):
        chunk = more[i:i + size]
        part = f" ({i // size + 1})" if len(more) > size else ""
        doc += [("h3", "More metrics" + part),
                ("table", head + [LABELS.get(k, k) for k in chunk],
                 [lead(s, key) + [_mean_cell(s, k) for k in chunk] for key, s in cells.items()],
                 f"{', '.join(chunk)}: show the table")]
    columns, rows = _member_table(sweep)
    doc += [("h2", "Members"),
            ("p", (f"The {partial} finished so far" if partial else "Every member")
                  + (", each with its W&B run" if "wandb_run" in columns else "") + "; `converged` is "
                  "whether its training loss had stopped falling."), ("table", columns, rows)]
    return doc


def _wandb_members(sweep: Sweep) -> tuple[list[str], list[list]]:
    """Every member with every metric, for W&B's own tables, grouping and parallel coordinates."""
    keys = [*sweep.values, *_seed_keys(sweep)]
    columns = ["regime", "member", "name", "status", "converged", *keys, *sweep.metrics, "wandb_run_id",
               "wandb_dir"]
    return columns, [[r["regime"], r["member"], r["name"], r["status"], r["converged"],
                      *(r["config"].get(k) for k in keys), *(r["metrics"].get(k) for k in sweep.metrics),
                      r["wandb_run_id"], r["wandb_dir"]] for r in sweep.records]


def _seed_keys(sweep: Sweep) -> list[str]:
    """The replicate keys that tell members apart (a split seed every member shares is no column)."""
    return [k for k in REPLICATE_KEYS if len({r["config"].get(k) for r in sweep.records}) > 1]


def _member_table(sweep: Sweep) -> tuple[list[str], list[list[Cell]]]:
    """One row per member: regime, status, convergence, setting, two key metrics and its W&B run."""
    keys = [*sweep.values, *_seed_keys(sweep)]
    metrics = [k for k in ("test_mse", "mse_over_pca") if k in sweep.metrics]
    runs = any(r["wandb_run_id"] or r["wandb_dir"] for r in sweep.records)  # no empty column when W&B was off
    columns = (["regime", "member", "name", "status", "converged", *keys, *(LABELS.get(k, k) for k in metrics)]
               + ["wandb_run"] * runs)
    number = lambda v: v if isinstance(v, (int, float)) and math.isfinite(v) else None
    rows = []
    for r in sweep.records:
        conv = {True: "yes", False: "no †", None: "—"}[r["converged"]]
        rows.append([Cell(r["regime"] or r["status"], regime=r["regime"] or ""),
                     Cell(str(r["member"]), sort=r["member"]), Cell(r["name"], text_kind=True),
                     Cell(r["status"], text_kind=True), Cell(conv, text_kind=True),
                     *(Cell(plots.tick(v) if v is not None else "—", sort=number(v))
                       for v in (r["config"].get(k) for k in keys)),
                     *(Cell(f"{v:.3g}" if number(v) is not None else "—", sort=number(v))
                       for v in (r["metrics"].get(k) for k in metrics))]
                    + [_run_cell(sweep.workdir, r)] * runs)
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
    facets_first = lambda t: tuple(report_data.value_order(v) for v in (*t[1:], t[0]))
    for row_key in sorted({k[1:] for k in cells}, key=facets_first):
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

    mine = {k: summarise(rs, list(COMPARED)) for k, rs in report_data.group(records, key).items()}
    theirs = {k: summarise(rs, list(COMPARED)) for k, rs in report_data.group(other, key).items()}
    shared = [k for k in mine if k in theirs]
    out = [("h2", f"Comparison with `{other_dir}`")]
    diffs = []
    for k in sorted({k for r in records + other for k in r["config"]}):
        if k in axes or k in REPLICATE_KEYS or k.startswith(report_data.IGNORED):
            continue
        a, b = report_data.common(records, k), report_data.common(other, k)
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
