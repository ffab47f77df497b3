"""ae_jax.writers: image grids, the null writer, W&B failures that never stop training, offline runs."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from matplotlib.figure import Figure

from ae_jax import writers

from conftest import WANDB_DIRS


def test_image_grid_tiles_row_by_row():
    x = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3) / 30
    grid = writers.image_grid(x, ncols=2, pad=1, pad_value=-1)
    assert grid.shape == (3 * 2 + 2, 2 * 3 + 1)
    np.testing.assert_array_equal(grid[0:2, 0:3], x[0])
    np.testing.assert_array_equal(grid[0:2, 4:7], x[1])
    np.testing.assert_array_equal(grid[6:8, 0:3], x[4])
    assert (grid[6:8, 4:7] == -1).all() and (grid[2] == -1).all()
    rgb = writers.image_grid(np.ones((3, 4, 4, 3)), ncols=8)
    assert rgb.shape == (4, 3 * 4 + 2, 3)
    with pytest.raises(ValueError):
        writers.image_grid(np.ones((0, 4, 4)), ncols=2)


def test_disabled_needs_no_wandb(fresh, tmp_path):
    fresh.setitem(sys.modules, "wandb", None)  # any `import wandb` now fails
    for cfg in ({"mode": "disabled"}, ml_collections.ConfigDict({"mode": "disabled", "project": "p"})):
        w = writers.open_writer(cfg, workdir=str(tmp_path), name="n", group="g", config={})
        assert isinstance(w, writers.NullWriter)
    fig = Figure()
    w.scalars(0, {"a": 1.0})
    w.images(0, {"x": np.zeros((4, 4))})
    w.figure("f", fig)
    w.table("t", ["a"], [[1]])
    w.summary({"a": 1})
    w.close()
    assert not (tmp_path / "wandb").exists()
    # The user's WANDB_MODE=disabled also wins over a config that says offline.
    fresh.setenv("WANDB_MODE", "disabled")
    assert isinstance(writers.open_writer({"mode": "offline"}, workdir=str(tmp_path), name="n", group="g",
                                          config={}), writers.NullWriter)


def test_failing_init_warns_once_and_training_goes_on(fresh, tmp_path, caplog):
    import wandb

    def broken_init(**kwargs):
        raise RuntimeError("no W&B here")

    fresh.setattr(wandb, "init", broken_init)
    for _ in range(3):
        w = writers.open_writer({"mode": "offline"}, workdir=str(tmp_path), name="n", group="g", config={})
        assert isinstance(w, writers.NullWriter)
        w.scalars(0, {"loss": 1.0})
        w.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "W&B logging is off" in warnings[0].getMessage() and "no W&B here" in warnings[0].getMessage()


def test_failing_log_turns_the_writer_off(fresh, caplog):
    class BrokenRun:
        finished_with = None

        def log(self, values):
            raise OSError("disk full")

        def finish(self, exit_code=0):
            self.finished_with = exit_code

    run = BrokenRun()
    w = writers.WandbWriter(run)
    for step in range(3):
        w.scalars(step, {"loss": 1.0})
    w.summary({"a": 1})
    w.close()
    assert w.run is None and run.finished_with == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "W&B logging is off for the rest of this process (OSError: disk full); training goes on without it"]
    assert isinstance(writers.open_writer({"mode": "offline"}, workdir="unused", name="n", group="g",
                                          config={}), writers.NullWriter)


def test_offline_run_round_trips_through_wandbs_reader(fresh, tmp_path):
    config = ml_collections.ConfigDict({"model": {"code_size": 8}, "seed": 3})
    w = writers.open_writer({"mode": "offline", "project": "ae_jax_test", "entity": ""},
                            workdir=str(tmp_path), name="member-0", group="quick", config=config, tags=("test",))
    assert isinstance(w, writers.WandbWriter)
    for key in WANDB_DIRS:  # nothing of W&B's goes to ~/
        assert str(tmp_path) in os.environ[key]
    w.scalars(0, {"loss/recon": 1.0})
    w.scalars(10, {"loss/recon": np.float32(0.5)})
    w.images(10, {"recon": writers.image_grid(np.random.rand(6, 8, 8), ncols=3),
                  "rgb": np.random.rand(8, 8, 3)})
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    w.figure("curve", fig)
    w.table("members", ["member", "test_mse"], [[0, 0.125], [1, np.float64(0.25)]])
    w.summary({"test_mse": 0.125, "regime": "identity"})
    w.close()
    w.close()  # a second close is harmless

    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json", str(runs[0])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    got = json.loads(out)
    assert got["state"] == "finished" and got["name"] == "member-0" and got["tags"] == ["test"]
    assert got["config"]["model"] == {"code_size": 8} and got["config"]["seed"] == 3
    assert got["summary"]["test_mse"] == 0.125 and got["summary"]["regime"] == "identity"
    assert got["summary"]["train/step"] == 10 and got["summary"]["loss/recon"] == 0.5
    assert got["summary"]["recon"]["_type"] == "image-file"


def test_member_spectrum_is_logged_as_a_table_and_figure(tmp_path):
    """A member's W&B run gets its span-Jacobian spectrum, sorted, one row per span direction; a linear
    AE through an 8-unit code has at most 8 non-zero singular values, trained or not."""
    import jax
    from ae_jax import config as config_lib, data, member_log, models

    class Recorder(writers.NullWriter):
        def __init__(self):
            self.tables, self.figures = {}, {}

        def table(self, name, columns, rows):
            self.tables[name] = (columns, rows)

        def figure(self, name, fig):
            self.figures[name] = fig

    c = config_lib.base_config()
    c.model.code_size, c.model.activation = 8, "linear"
    ds = data.load(c.data)
    spec = models.model_spec(c, ds.shape)
    params = models.init_params(spec, jax.random.key(0))
    w = Recorder()
    sv = member_log.log_spectrum(w, spec, params, models.size_masks(spec, 8, c.model.width), ds)
    assert sv.shape == (member_log.N_SPECTRUM, 61)
    columns, rows = w.tables["jacobian_spectrum_values"]
    assert columns[:2] == ["index", "singular_value"] and len(rows) == 61
    means = [row[1] for row in rows]
    assert all(np.isfinite(means)) and means == sorted(means, reverse=True)
    assert sum(m > 1e-4 for m in means) <= 8  # a linear map through an 8-unit code has rank <= 8
    assert "jacobian_spectrum" in w.figures
