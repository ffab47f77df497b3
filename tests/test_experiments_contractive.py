"""experiments/contractive end to end at `:smoke`: the tied CAE's decoder is its encoder's transpose, the
untied ReLU CAE games its penalty by scale, each penalty lowers what it penalises, and the analysis is written."""

import importlib
from pathlib import Path

import numpy as np
import pytest

from ae_jax import store, sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("contractive")
    config, overrides, name = sweep.load_config_file(str(ROOT / "experiments/contractive/config.py") + ":smoke")
    config.wandb.mode = "disabled"
    records = sweep.run_sweep(config, overrides, workdir, sweep_name=name, report=False)
    assert len(records) == 5 and all(r["status"] == "ok" for r in records)
    analyze = importlib.import_module("experiments.contractive.analyze")
    return workdir, analyze, analyze.rows_of(store.load(workdir))


def test_tied_decoder_norm_is_the_encoder_norm_and_untied_relu_games_the_penalty_by_scale(smoke):
    _, _, table = smoke
    for w in (0.0, 0.1):
        (tied,) = table[("tied_sigmoid", w)]
        assert tied["dec_norm"] == pytest.approx(tied["enc_norm"], rel=1e-6)
    (plain,), (cae,) = table[("untied_relu", 0.0)], table[("untied_relu", 0.1)]
    # the penalty falls far more than the encoder could contract without a decoder making up the scale
    assert cae["enc_norm"] < 0.5 * plain["enc_norm"] and cae["dec_norm"] > 1.3 * plain["dec_norm"], (plain, cae)
    assert cae["enc_penalty"] < 0.1 * plain["enc_penalty"]
    (mapped,) = table[("map", 0.1)]
    assert mapped["map_penalty"] < 0.5 * plain["map_penalty"]
    assert table[("map", 0.0)] == table[("untied_relu", 0.0)]  # one shared baseline, trained once
    for row in (plain, cae, mapped):
        # the whole map's span Jacobian: its singular values are what jac_rank counts
        assert row["sv_top"] >= row["sv_median"] > 0 and np.isfinite(row["map_penalty"])


def test_analysis_reports_every_arm_and_its_findings(smoke):
    workdir, analyze, _ = smoke
    text = analyze.main(["analyze.py", str(workdir)]).read_text()
    assert "## Findings" in text
    for label in analyze.LABEL.values():
        assert f"**{label}**, weight 0 -> 0.1" in text
    assert "**untied ReLU CAE**" in text and "Scale-gamed (encoder shrinks" in text
    assert (workdir / "figures" / "contractive.png").stat().st_size > 10_000
