"""ae_jax.report on a synthetic results.jsonl: files, table values, regime majority, errors."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from ae_jax import report

CODES = [2, 4, 8, 16, 32, 64, 128, 256]
DEPTHS = [0, 1, 2]
SEEDS = [0, 1, 2]
D, R = 64, 61


def _metrics(k: int, depth: int, seed: int) -> dict:
    """Made-up but consistent: error falls with code size, wide codes approach the identity."""
    pca = 1.0 / (1 + min(k, D))
    mse = pca * (0.5 + 0.1 * depth) + 0.01 * seed
    identity = k >= D and depth == 0
    # At (16, 1) two seeds of three are structured; at (8, 2) all three disagree (a tie).
    regime = "identity" if identity else ("memorizing" if (k, depth, seed) == (16, 1, 0) else "structured")
    if (k, depth) == (8, 2):
        regime = ["memorizing", "structured", "identity"][seed]
    return {"train_mse": mse * 0.9, "test_mse": mse, "test_fvu": mse * 3, "pca_mse": pca,
            "ood_fidelity": 0.9 if identity else 0.2,
            "span_ood_fidelity": 0.95 if identity else 0.3, "jac_rank": min(k, R) * 1.0, "jac_trace": min(k, R) / R,
            "denoise_gain": 1.0 if identity else 0.5, "const_ratio": 1.0, "attractor_fraction": 0.0,
            "probe_acc": 0.9, "data_rank": R, "input_dim": D, "regime": regime, "l0": float(k) / 2}


def _lines(name: str = "quick", extra: dict | None = None) -> list[str]:
    lines, member = [], 0
    for k in CODES:
        for depth in DEPTHS:
            for seed in SEEDS:
                overrides = {"model.code_size": k, "model.depth": depth, "seed": seed, **(extra or {})}
                config = {"name": name, "data.name": "digits", "model.width": 128, "wandb.mode": "offline",
                          **overrides}
                rec = {"member": member, "name": f"m{member}", "overrides": overrides, "config": config,
                       "status": "ok", "metrics": _metrics(k, depth, seed)}
                if (k, depth, seed) == (256, 2, 1):
                    rec["status"], rec["metrics"] = "diverged", {"test_mse": float("nan")}
                lines.append(json.dumps(rec))
                member += 1
    return lines


def _workdir(tmp_path, lines, sub="run"):
    d = tmp_path / sub
    d.mkdir()
    (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    return d


def _table_row(md: str, k: int, depth: int) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and cells[:2] == [str(k), str(depth)]:
            return cells
    raise AssertionError(f"no row for k={k}, depth={depth}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report, shared by the read-only checks below (figures take a few seconds)."""
    tmp = tmp_path_factory.mktemp("report")
    lines = _lines()
    lines.insert(5, '{"member": 999, "name": "half a line", "metr')
    lines.insert(9, "[1, 2, 3]")
    d = _workdir(tmp, lines)
    path = report.write_report(d, wandb_mode="disabled")
    return d, path, path.read_text()


def test_files_exist_and_pngs_are_images(built):
    d, path, _ = built
    assert path == d / "report.md"
    for name in ("phase_diagram.png", "mse_vs_code.png"):
        with Image.open(d / "figures" / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 200
    assert not (d / "wandb").exists()  # disabled means no W&B files at all


def test_markdown_header_counts_and_links(built):
    _, _, md = built
    assert md.startswith("# Sweep `quick`")
    assert "`digits`" in md and "D = 64" in md and "r = 61" in md
    assert f"{len(CODES) * len(DEPTHS) * len(SEEDS)} (71 ok, 1 diverged, 0 error)" in md
    assert "![phase diagram](figures/phase_diagram.png)" in md
    assert "![test MSE vs code size](figures/mse_vs_code.png)" in md
    assert "PCA-k" in md and "ae_jax/diagnostics.py" in md


def test_table_rows_and_averages(built):
    _, _, md = built
    header = next(line for line in md.splitlines() if line.startswith("| k | depth"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for name in ("test_mse", "test_mse/pca_mse", "jac_rank/r", "ood_fidelity", "denoise_gain", "l0"):
        assert name in columns
    assert columns[-1] == "regime"
    rows = [line for line in md.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    assert len(rows) == len(CODES) * len(DEPTHS)
    row = dict(zip(columns, _table_row(md, 16, 1)))
    mses = [_metrics(16, 1, s)["test_mse"] for s in SEEDS]
    mean, std = row["test_mse"].split(" ± ")
    assert float(mean) == pytest.approx(np.mean(mses), rel=1e-2)
    assert float(std) == pytest.approx(np.std(mses, ddof=1), rel=1e-1)
    assert row["n"] == "3/3"
    # The diverged seed is left out of the means, and counted.
    row = dict(zip(columns, _table_row(md, 256, 2)))
    assert row["n"] == "2/3"
    ok = [_metrics(256, 2, s)["test_mse"] for s in (0, 2)]
    assert float(row["test_mse"].split(" ± ")[0]) == pytest.approx(np.mean(ok), rel=1e-2)
    rank_frac = dict(zip(columns, _table_row(md, 4, 0)))["jac_rank/r"].split(" ± ")[0]
    assert float(rank_frac) == pytest.approx(4 / R, rel=1e-2)


def test_regime_majority(built):
    _, _, md = built
    regime = {(k, d): _table_row(md, k, d)[-1] for k in CODES for d in DEPTHS}
    assert regime[64, 0] == "identity" and regime[256, 0] == "identity"
    assert regime[32, 0] == "structured"
    assert regime[16, 1] == "structured (2/3)"
    assert regime[8, 2] == "mixed (1/3)"
    assert regime[256, 2] == "structured"  # only the ok seed votes


def test_html_is_self_contained(built):
    d, _, _ = built
    page = (d / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 2
    assert "figures/" not in page and "<table>" in page


def test_malformed_lines_are_skipped_with_a_warning(tmp_path, capsys):
    lines = _lines()[:4] + ['{"member": 7, "metrics": ', "not json", '{"member": 8, "metrics": {}}']
    d = _workdir(tmp_path, lines)
    records = report.load_results(d)
    assert len(records) == 4
    assert "skipped 3 line(s) that are not member records (line 5, 6, 7)" in capsys.readouterr().err


def test_other_settings_split_figures(tmp_path):
    lines = [line for w in (64, 128) for line in _lines(extra={"model.width": w})]
    lines = [json.dumps({**json.loads(line), "member": i, "name": f"m{i}"}) for i, line in enumerate(lines)]
    d = _workdir(tmp_path, lines)
    md = report.write_report(d, wandb_mode="disabled").read_text()
    figures = sorted(p.name for p in (d / "figures").iterdir())
    assert figures == ["mse_vs_code__model.width=128.png", "mse_vs_code__model.width=64.png",
                       "phase_diagram__model.width=128.png", "phase_diagram__model.width=64.png"]
    assert md.count("| k | depth") == 2


def test_single_code_size_and_depth_named_by_sweep_json(tmp_path):
    lines = [line for line in _lines(name="") if json.loads(line)["config"]["model.code_size"] == 8
             and json.loads(line)["config"]["model.depth"] == 0]
    d = _workdir(tmp_path, lines)
    (d / "sweep.json").write_text(json.dumps({"name": "from_runner", "members": 3}))
    md = report.write_report(d, wandb_mode="disabled").read_text()
    assert md.startswith("# Sweep `from_runner`")
    assert (d / "figures" / "phase_diagram.png").stat().st_size > 0
    assert len([line for line in md.splitlines() if line.startswith("| 8 | 0 |")]) == 1


def test_compare_section(tmp_path):
    a = _workdir(tmp_path, _lines(), "a")
    other = [json.loads(line) for line in _lines("other")]
    for rec in other:
        rec["config"]["noise.level"] = 0.1
        if "test_mse" in rec["metrics"] and math.isfinite(rec["metrics"]["test_mse"]):
            rec["metrics"]["test_mse"] += 0.5
    b = _workdir(tmp_path, [json.dumps(r) for r in other], "b")
    assert report.main([str(a), "--compare", str(b), "--wandb_mode=disabled"]) == 0
    md = (a / "report.md").read_text()
    section = md.split("## Comparison with")[1]
    assert "`noise.level`: None vs 0.1" in section
    row = _table_row(section, 16, 1)
    assert row[2].endswith("(-0.5)")


def test_missing_results_is_one_line_and_exit_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'nowhere' / 'results.jsonl'}: no such file (run ae_jax.sweep first)\n"


def test_summary_run_goes_to_wandb_offline(tmp_path, monkeypatch):
    from ae_jax import writers
    monkeypatch.setattr(writers, "_off_reason", None)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(key, "")  # restored after the test
        monkeypatch.delenv(key)
    lines = [line for line in _lines() if json.loads(line)["config"]["model.code_size"] in (8, 64)]
    d = _workdir(tmp_path, lines)
    report.write_report(d)  # the mode comes from the results' config: offline
    runs = list((d / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    for stem in ("phase_diagram", "mse_vs_code"):
        assert len(list((media / "images").glob(f"{stem}_*.png"))) == 1
    (table,) = (media / "table").glob("members_*.table.json")
    assert len(json.loads(table.read_text())["data"]) == len(lines)
