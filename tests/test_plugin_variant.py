"""A variant defined outside the library (tests/quantised_variant.py: a code stage, a loss term that
reads the stage's output, a code metric and a config block) trains through the sweep command, with no
edit to ae_jax/: the registries are the whole extension surface."""

import json
from pathlib import Path

import numpy as np
import pytest

from ae_jax import code_metrics, code_stages, config as config_lib, data as data_lib, objectives, store, sweep, train

CONFIG = str(Path(__file__).with_name("quantised_variant.py"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The variant's :smoke sweep (commitment weight 0 and 0.1) run by the CLI; registries restored after."""
    saved = (dict(config_lib.BLOCKS), dict(code_stages.CODE_STAGES), dict(objectives.LOSS_TERMS),
             dict(code_metrics.CODE_METRICS))
    workdir = tmp_path_factory.mktemp("quantised")
    traces = sum(train.TRACE_COUNTS.values())
    try:
        rc = sweep.main(["sweep", f"--config={CONFIG}:smoke", f"--workdir={workdir}",
                         "--config.wandb.mode=disabled", "--config.diagnostics.probe=False", "--report=False"])
        yield rc, workdir, sum(train.TRACE_COUNTS.values()) - traces, store.load(workdir)
    finally:
        for registry, old in zip((config_lib.BLOCKS, code_stages.CODE_STAGES, objectives.LOSS_TERMS,
                                  code_metrics.CODE_METRICS), saved):
            registry.clear()
            registry.update(old)


def test_the_plugin_variant_trains_in_one_program_and_reports_its_metric(finished):
    rc, workdir, traces, members = finished
    assert rc == 0
    assert [m.config.quant.weight for m in members] == [0.0, 0.1]
    assert traces == 1, "the commitment weight is traced: both members share one compiled program"
    for m in members:
        assert m.status == "ok"
        assert 1 <= m.metrics["levels_used"] <= 5  # 4 steps: the grid 0, 1/4, ..., 1 of a sigmoid code
    # its loss term is logged only where it is weighted
    assert "final_commitment" in members[1].metrics and "final_commitment" not in members[0].metrics
    lines = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
    assert lines[1]["config"]["quant.levels"] == 4


def test_the_plugin_code_stage_puts_every_code_on_its_grid(finished):
    """The stage's defining property, on the trained member loaded back from the workdir."""
    members = finished[3]
    x = data_lib.load(members[0].config.data).x_test[:50]
    for m in members:
        code = m.encode(x)[:, :m.config.model.code_size]
        np.testing.assert_allclose(code * 4, np.round(code * 4), atol=1e-6)
        assert m.spec.code_stage == "quantised" and m.spec.stage_arg("levels") == 4


def test_validation_reads_the_registries():
    """A registered name is allowed at once; an unknown one is refused naming the allowed ones."""
    assert "topk" in config_lib.allowed("sparsity.kind") and "l1" in config_lib.allowed("sparsity.kind")
    c = config_lib.base_config()
    c.model.kind = "transformer"
    with pytest.raises(config_lib.ConfigError, match="config.model.kind: must be one of 'mlp', 'conv', 'fullconv'"):
        config_lib.validate(c)
