"""ae_jax.report on synthetic results.jsonl: layout per swept axes, palette, k of N, table markup, values."""

import colorsys
import json
import math
import re

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from ae_jax import plots, report, report_data

CODES = [2, 8, 64, 256]
DEPTHS = [0, 1, 2]
SEEDS = [0, 1, 2]
D, R = 64, 61


def _metrics(k: int, depth: int, seed: int) -> dict:
    """Made-up but consistent: error falls with code size, wide shallow codes are the identity."""
    pca = 1.0 / (1 + min(k, D))
    mse = pca * (0.5 + 0.1 * depth) + 0.01 * seed
    identity = k >= D and depth == 0
    regime = "identity" if identity else ("memorizing" if (k, depth, seed) == (8, 1, 0) else "structured")
    if (k, depth) == (2, 2):  # all three seeds disagree: a tie
        regime = ["collapsed", "structured", "underfit"][seed]
    return {"train_mse": mse * 0.9, "test_mse": mse, "test_fvu": mse * 3, "pca_mse": pca,
            "ood_fidelity": 0.9 if identity else 0.2, "span_ood_fidelity": 0.95 if identity else 0.3,
            "jac_rank": min(k, R) * 1.0, "denoise_gain": 1.0 if identity else 0.5, "attractor_fraction": 0.0,
            "data_rank": R, "input_dim": D, "regime": regime, "l0": float(k) / 2,
            "converged": not (depth == 2 and seed == 0)}


def _record(member: int, overrides: dict, metrics: dict, name: str = "quick") -> dict:
    config = {"name": name, "data.name": "digits", "model.width": 128, "model.code_size": 32, "model.depth": 1,
              "train.learning_rate": 1e-3, "seed": 0, "wandb.mode": "offline", **overrides}
    return {"member": member, "name": f"m{member}", "overrides": overrides, "config": config, "status": "ok",
            "metrics": metrics}


def _lines(name: str = "quick", extra: dict | None = None) -> list[str]:
    lines = []
    for k in CODES:
        for depth in DEPTHS:
            for seed in SEEDS:
                rec = _record(len(lines), {"model.code_size": k, "model.depth": depth, "seed": seed, **(extra or {})},
                              _metrics(k, depth, seed), name)
                if (k, depth, seed) == (256, 2, 1):
                    rec["status"], rec["metrics"] = "diverged", {"test_mse": float("nan")}
                rec["wandb_run_id"], rec["wandb_dir"] = f"run{len(lines)}", f"wandb/offline-run-x-run{len(lines)}"
                lines.append(json.dumps(rec))
    return lines


def _workdir(tmp_path, lines, sub="run", expected: int | None = None):
    d = tmp_path / sub
    d.mkdir()
    (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    if expected is not None:
        (d / "sweep.json").write_text(json.dumps({"name": "stored", "members": expected, "sha256": "ab" * 32}))
    return d


def _rows(md: str, head_start: str) -> tuple[list[str], list[list[str]]]:
    """The heading and rows of the first markdown table whose heading starts with `head_start`."""
    lines = md.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(head_start))
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(split(line))
    return split(lines[i]), rows


def _settings(md: str) -> dict[tuple, dict]:
    head, rows = _rows(md, "| regime | model.code_size | model.depth |")
    return {(int(r[1]), int(r[2])): dict(zip(head, r)) for r in rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One code size x depth report (the quickstart's shape), shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("report")
    lines = _lines()
    lines.insert(5, '{"member": 999, "name": "half a line", "metr')
    lines.insert(9, "[1, 2, 3]")
    d = _workdir(tmp, lines, expected=len(CODES) * len(DEPTHS) * len(SEEDS))
    path = report.write_report(d, wandb_mode="disabled")
    return d, path, path.read_text()


# ----------------------------------------------------------------------------- layout

def test_layout_follows_the_swept_axes():
    lr = {"train.learning_rate": [1e-4, 1e-3, 1e-2]}
    assert plots.choose_layout({}).name == "single"
    assert plots.choose_layout(lr) == plots.Layout("lines", "train.learning_rate")
    assert plots.choose_layout({"model.code_size": [2, 4], "model.depth": [0, 1]}) == \
        plots.Layout("heatmap", "model.code_size", "model.depth")
    # one numeric and one categorical axis: lines over the numeric one, one line per category
    assert plots.choose_layout({"model.activation": ["relu", "tanh"], **lr}) == \
        plots.Layout("lines", "train.learning_rate", "model.activation")
    three = plots.choose_layout({"model.code_size": [2, 4], "model.depth": [0, 1], "model.width": [64, 128]})
    assert three.name == "facets" and three.kind == "heatmap" and three.facets == ("model.width",)


def test_axes_exclude_seeds_and_settings_that_change_no_number():
    recs = [report_data.normalise(_record(i, {"seed": s, "train.learning_rate": lr, "wandb.mode": m}, {}))
            for i, (s, lr, m) in enumerate([(0, 1e-3, "offline"), (1, 1e-2, "disabled")])]
    assert report_data.swept_axes(recs) == {"train.learning_rate": [1e-3, 1e-2]}


def test_quickstart_shape_is_a_heatmap(built):
    d, _, md = built
    assert "Layout: heatmaps of `model.code_size` (columns) by `model.depth` (rows)" in md
    assert sorted(p.name for p in (d / "figures").iterdir()) == ["phase_diagram.png", "test_mse_vs_code_size.png"]
    for name in ("phase_diagram.png", "test_mse_vs_code_size.png"):
        with Image.open(d / "figures" / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    assert md.count("How to read it") == 1
    assert not (d / "wandb").exists()  # disabled means no W&B files at all


def test_learning_rate_sweep_is_lines_and_three_axes_are_facets(tmp_path):
    lr = [json.dumps(_record(i, {"train.learning_rate": lr, "seed": s}, _metrics(32, 1, s)))
          for i, (lr, s) in enumerate((lr, s) for lr in (1e-4, 1e-3, 1e-2) for s in SEEDS)]
    md = report.write_report(_workdir(tmp_path, lr, "lr"), wandb_mode="disabled").read_text()
    assert "Layout: lines against `train.learning_rate`." in md
    assert md.count("How to read it") == 1 and md.count("![") == 1
    three = [json.dumps(_record(i, {"model.code_size": k, "model.depth": dp, "model.width": w}, _metrics(k, dp, 0)))
             for i, (k, dp, w) in enumerate((k, dp, w) for k in (8, 64) for dp in (0, 1) for w in (64, 128))]
    d = _workdir(tmp_path, three, "three")
    md = report.write_report(d, wandb_mode="disabled").read_text()
    assert "small multiples over `model.width`" in md and md.count("How to read it") == 1
    figures = {p.name for p in (d / "figures").iterdir()}
    assert {"phase_diagram.png", "metric_test_mse.png", "metric_rank_frac.png"} <= figures


# ----------------------------------------------------------------------------- colours

def test_regime_palette_is_distinct_and_never_red():
    labels = ["identity", "structured", "memorizing", "collapsed", "underfit", "unresolved", "mixed"]
    assert set(labels) <= set(plots.REGIMES)
    colours = [plots.REGIMES[k] for k in labels]
    assert len(set(colours)) == len(colours)
    for label, colour in zip(labels, colours):
        h, _, s = colorsys.rgb_to_hls(*to_rgb(colour))
        red = (h < 20 / 360 or h > 340 / 360) and s > 0.4
        assert not red, f"{label} is drawn in a red ({colour}): no regime is an error"
    assert plots.REGIMES["identity"] == "#0072B2"  # Okabe-Ito blue


def test_regime_cells_are_painted_in_their_colour_and_unconverged_ones_hatched(built):
    d, _, _ = built
    sweep = report.build(d, report.load_results(d))
    ax = Figure().subplots()
    plots.draw_heatmap(ax, sweep.cells, CODES, DEPTHS, "regime", None)
    rgba = np.asarray(ax.collections[0].get_array()).reshape(len(DEPTHS), len(CODES), 4)
    assert np.allclose(rgba[0, CODES.index(64), :3], to_rgb(plots.REGIMES["identity"]))
    assert np.allclose(rgba[1, CODES.index(2), :3], to_rgb(plots.REGIMES["structured"]))
    hatched = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches if p.get_hatch()}
    assert hatched == {(j, DEPTHS.index(2)) for j in range(len(CODES))}  # seed 0 of depth 2 never converged
    # drawn over the cell colours, not hidden under them
    assert all(p.zorder > ax.collections[0].zorder for p in ax.patches if p.get_hatch())


def test_colour_scales_do_not_stretch_small_differences():
    norm = plots.metric_norm("test_mse", [0.00407, 0.00627])
    assert norm.vmax / norm.vmin >= 10 - 1e-9
    assert abs(norm(0.00627) - norm(0.00407)) < 0.2
    unit = plots.metric_norm("span_ood_fidelity", [0.3, 0.31])
    assert (unit.vmin, unit.vmax) == (0.0, 1.0)


# ----------------------------------------------------------------------------- counts and values

def test_header_says_k_of_n_and_how_many_diverged_or_unconverged(built):
    _, _, md = built
    n = len(CODES) * len(DEPTHS) * len(SEEDS)
    unconverged = len(CODES) - 0  # seed 0 of every depth-2 setting, all ok
    assert f"{n} of {n} members: {n - 1} ok, 1 diverged, 0 error; {unconverged} of {n - 1} ok members unconverged" in md
    assert "D = 64" in md and "r = 61" in md and "`digits`" in md


def test_a_partial_sweep_says_k_of_n(tmp_path, monkeypatch):
    titles, title = [], plots._title
    monkeypatch.setattr(plots, "_title", lambda fig, text, handles: (titles.append(text), title(fig, text, handles)))
    d = _workdir(tmp_path, _lines()[:5], expected=36)
    md = report.write_report(d, wandb_mode="disabled").read_text()
    assert "5 of 36 members (partial: 31 not finished yet)" in md
    assert "The 5 of 36 members finished so far, each with its W&B run" in md  # the member table's count too
    assert titles and all("(5 of 36 members)" in t for t in titles), titles  # and every figure's title
    (d / "sweep.json").unlink()  # no stored identity: the count alone
    assert "\n5 members: " in "\n" + report.write_report(d, wandb_mode="disabled").read_text().split("\n", 2)[2]


def test_an_only_run_says_k_of_n_and_how_to_get_the_partial_report(tmp_path, capsys):
    from ae_jax import sweep
    config = tmp_path / "two.py"
    config.write_text("from ae_jax import config as config_lib\n"
                      "def get_config(arg=None):\n"
                      "    c = config_lib.base_config()\n"
                      "    c.train.steps, c.train.log_every, c.model.code_size, c.model.width = 20, 10, 4, 8\n"
                      "    c.diagnostics.probe, c.diagnostics.jac_points, c.diagnostics.attractor_iters = False, 3, 3\n"
                      "    c.wandb.mode = 'disabled'\n"
                      "    return c\n"
                      "def get_sweep(arg=None):\n"
                      "    return config_lib.sweep('seed', [0, 1])\n")
    d = tmp_path / "run"
    assert sweep.main(["sweep", f"--config={config}", f"--workdir={d}", "--only=seed=1"]) == 0
    out = capsys.readouterr().out
    assert f"1 of 2 members finished in {d}; report not written" in out and f"python -m ae_jax.report {d}" in out
    assert not (d / "report.md").exists()
    md = report.write_report(d).read_text()
    assert "1 of 2 members (partial: 1 not finished yet)" in md and "The 1 of 2 members finished so far" in md


def test_settings_table_values_and_regime_majority(built):
    _, _, md = built
    rows = _settings(md)
    assert len(rows) == len(CODES) * len(DEPTHS)
    row = rows[8, 1]
    mses = [_metrics(8, 1, s)["test_mse"] for s in SEEDS]
    assert float(row["test_mse"].split(" ± ")[0]) == pytest.approx(np.mean(mses), rel=1e-2)
    assert float(row["test_mse"].split(" ± ")[1]) == pytest.approx(np.std(mses, ddof=1), rel=1e-1)
    assert row["n ok/all"] == "3/3" and row["regime"] == "structured (2/3)"
    assert rows[2, 2]["regime"] == "mixed (1/3) †"
    assert rows[64, 0]["regime"] == "identity" and rows[64, 2]["unconverged"] == "1"
    # the diverged seed is left out of the means and counted
    assert rows[256, 2]["n ok/all"] == "2/3"
    ok = [_metrics(256, 2, s)["test_mse"] for s in (0, 2)]
    assert float(rows[256, 2]["test_mse"].split(" ± ")[0]) == pytest.approx(np.mean(ok), rel=1e-2)
    assert float(rows[8, 0]["jac_rank/r"].split(" ± ")[0]) == pytest.approx(8 / R, rel=1e-2)
    assert "l0" in md  # a variant's metric lands in the extra tables


# ----------------------------------------------------------------------------- HTML

def test_html_tables_are_sortable_regime_first_and_self_contained(built):
    d, _, _ = built
    page = (d / "report.html").read_text()
    assert page.count("<table class='sortable'>") >= 3 and "addEventListener('click'" in page
    for head in re.findall(r"<thead><tr>(.*?)</tr></thead>", page)[1:]:  # after the at-a-glance grid
        assert re.match(r"<th[^>]*>regime</th>", head), head
    assert re.search(r"<td data-v='0\.\d+'>0\.\d+", page)  # numbers sort by value, not text
    assert page.count("src='data:image/png;base64,") == 2
    assert "http" not in page.replace("http-equiv", "") and "figures/" not in page
    # figures are shown no wider than a 1366-px laptop window leaves, and never upscaled
    assert all(int(w) <= 1320 for w in re.findall(r"<img [^>]*width='(\d+)'", page))
    assert plots.FONT * plots.PX_PER_INCH / 72 >= 10  # heatmap numbers are at least 10 px at 100%


def test_member_table_links_wandb_runs_and_tolerates_their_absence(built, tmp_path):
    d, _, md = built
    page = (d / "report.html").read_text()
    assert "<a href='wandb/offline-run-x-run0'>run0</a>" in page
    assert "[run0](wandb/offline-run-x-run0)" in md
    bare = [json.dumps({k: v for k, v in json.loads(line).items() if not k.startswith("wandb_")})
            for line in _lines()[:3]]
    md = report.write_report(_workdir(tmp_path, bare), wandb_mode="disabled").read_text()
    head, rows = _rows(md, "| regime | member |")
    assert len(rows) == 3 and "wandb_run" not in head  # W&B was off: no empty column


# ----------------------------------------------------------------------------- errors, comparison, W&B

def test_malformed_lines_are_skipped_with_a_warning(tmp_path, capsys):
    lines = _lines()[:4] + ['{"member": 7, "metrics": ', "not json", '{"member": 8, "metrics": {}}']
    records = report.load_results(_workdir(tmp_path, lines))
    assert len(records) == 4
    assert "skipped 3 line(s) that are not member records (line 5, 6, 7)" in capsys.readouterr().err


def test_compare_section(tmp_path):
    a = _workdir(tmp_path, _lines(), "a")
    other = [json.loads(line) for line in _lines("other")]
    for rec in other:
        rec["config"]["noise.level"] = 0.1
        if "test_mse" in rec["metrics"] and math.isfinite(rec["metrics"]["test_mse"]):
            rec["metrics"]["test_mse"] += 0.5
    b = _workdir(tmp_path, [json.dumps(r) for r in other], "b")
    assert report.main([str(a), "--compare", str(b), "--wandb_mode=disabled"]) == 0
    section = (a / "report.md").read_text().split("## Comparison with")[1]
    assert "`noise.level`: None vs 0.1" in section
    head, rows = _rows(section, "| regime | model.code_size")
    row = next(r for r in rows if r[1:3] == ["8", "1"])
    assert row[head.index("test_mse")].endswith("(-0.5)")


def test_missing_results_is_one_line_and_exit_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nowhere' / 'results.jsonl'}: no such file (run ae_jax.sweep first)\n"


def test_summary_run_keeps_the_member_table_and_a_stable_id(tmp_path, monkeypatch):
    from ae_jax import writers
    logged = []

    class Recorder(writers.NullWriter):
        def table(self, name, columns, rows):
            logged.append(("table", name))

        def summary(self, values):
            logged.append(("summary", *values))

    opened = []
    monkeypatch.setattr(writers, "open_writer", lambda *a, **kw: opened.append(kw) or Recorder())
    d = _workdir(tmp_path, _lines()[:6], expected=36)
    report.write_report(d)
    report.write_report(d)
    assert ("table", "members") in logged
    assert all("members" not in entry[1:] for entry in logged if entry[0] == "summary")
    assert "member_count" in logged[1] and "members_unconverged" in logged[1]
    ids = [kw["run_id"] for kw in opened]
    assert ids[0] == ids[1] and re.fullmatch(r"report-[0-9a-f]{16}", ids[0])
    other = _workdir(tmp_path, _lines()[:6], "elsewhere", expected=36)
    assert report.report_run_id(other, {"sha256": "ab" * 32}, []) != ids[0]  # one run per workdir


def test_a_rerun_updates_the_one_offline_report_run(tmp_path, monkeypatch):
    from ae_jax import writers
    monkeypatch.setattr(writers, "_off_reason", None)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(key, "")  # restored after the test
        monkeypatch.delenv(key)
    lines = [line for line in _lines() if json.loads(line)["config"]["model.code_size"] in (8, 64)]
    d = _workdir(tmp_path, lines)
    report.write_report(d)  # the mode comes from the results' config: offline
    report.write_report(d)
    (run,) = list((d / "wandb").glob("offline-run-*"))
    assert run.name.endswith(report.report_run_id(d, {}, report.load_results(d)))
    media = run / "files" / "media"
    for stem in ("phase_diagram", "test_mse_vs_code_size"):
        assert len(list((media / "images").glob(f"{stem}_*.png"))) == 1
    (table,) = (media / "table").glob("members_*.table.json")
    assert len(json.loads(table.read_text())["data"]) == len(lines)
