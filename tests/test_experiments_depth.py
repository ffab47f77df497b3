"""The depth experiment (experiments/depth): its `:smoke` sweep end to end, and the claim's defining
property on its output: the deep narrow net is further from the identity than the shallow wide one."""

import importlib
from pathlib import Path

from ae_jax import sweep
from experiments import common

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments" / "depth"


def test_depth_smoke_deep_narrow_is_further_from_identity_than_shallow_wide(tmp_path):
    config, overrides, name = sweep.load_config_file(str(EXP / "config.py") + ":smoke")
    config.wandb.mode = "disabled"
    records = sweep.run_sweep(config, overrides, tmp_path, sweep_name=name, report=False)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [r["status"] for r in records]
    by = {(r["config"]["model.depth"], r["config"]["model.width"]): r["metrics"] for r in records}
    deep_narrow, shallow_wide = by[(4, 16)], by[(1, 128)]
    assert all(m["steps"] == 400 and m["final_recon"] > 0 for m in by.values())  # steps and loss are recorded
    # Zhang et al.: depth and narrowness pull the map off the identity, towards a constant output.
    assert deep_narrow["jac_rank"] < 0.5 * shallow_wide["jac_rank"], (deep_narrow["jac_rank"], shallow_wide["jac_rank"])
    assert deep_narrow["const_ratio"] < shallow_wide["const_ratio"] - 0.3
    assert deep_narrow["test_mse"] > shallow_wide["test_mse"]
    # Width pushes towards the identity at either depth.
    for depth in (1, 4):
        assert by[(depth, 128)]["jac_rank"] > by[(depth, 16)]["jac_rank"], depth

    analyze = importlib.import_module("experiments.depth.analyze")
    text = analyze.main(["analyze.py", str(tmp_path)]).read_text()
    assert "## Verdict" in text and "## all training images (data rank r = 61)" in text
    assert "Depth lowers jac_rank / r beyond the seed spread at every width and size: True" in text
    assert "| converged |" in text and "final train loss" in text
    assert (tmp_path / "figures" / "depth_heatmaps.png").stat().st_size > 10_000


def test_depth_verdict_rule_and_bad_argument():
    """The verdict needs all three parts of the claim; an unknown config argument is a ConfigError."""
    import collections

    import pytest

    from ae_jax.errors import ConfigError

    analyze = importlib.import_module("experiments.depth.analyze")
    config = importlib.import_module("experiments.depth.config")
    with pytest.raises(ConfigError, match="unknown argument 'deep'"):
        config.get_config("deep")

    def cell(rank, regime, spread=0.0):
        keys = dict(rank_frac=rank, const_ratio=rank, attractor_fraction=0.0)
        bounds = {f"{k}_{end}": v + sign * spread for k, v in keys.items() for end, sign in (("min", -1), ("max", 1))}
        return dict(keys, **bounds, regime=regime, regimes=collections.Counter({regime: 1}), n=1, converged=1)

    table = {(0, 1, 16): cell(0.3, "structured"), (0, 1, 256): cell(0.9, "identity"),
             (0, 8, 16): cell(0.0, "memorizing"), (0, 8, 256): cell(0.5, "structured")}
    assert analyze.claim(table)[0] == "reproduced"
    table[(0, 8, 16)] = cell(0.1, "structured")
    assert analyze.claim(table)[0] == "partly reproduced"
    table[(0, 8, 16)] = cell(0.0, "memorizing")
    table[(0, 1, 256)] = cell(0.9, "memorizing")  # every net memorises: not an effect of depth
    assert analyze.claim(table)[0] == "partly reproduced"
    table[(0, 1, 256)] = cell(0.9, "identity")
    table[(0, 8, 16)] = cell(0.0, "memorizing", spread=0.35)  # its seeds overlap the shallow net's
    assert analyze.claim(table)[0] == "partly reproduced"  # a difference within the seed spread does not count
    table[(0, 8, 16)] = cell(0.1, "structured")
    table[(0, 8, 256)] = cell(0.95, "identity")  # depth no longer lowers the rank at width 256
    table[(0, 1, 256)] = cell(0.2, "structured")  # nor does width raise it at depth 1
    assert analyze.claim(table)[0] == "not reproduced"
