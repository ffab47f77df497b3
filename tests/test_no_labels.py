"""Seed Q1, the autoencoder is self-supervised: labels never reach training. The same sweep on an npz with
its labels, with them permuted and without them trains bit-identical parameters and gives every metric
but the probe's; while a group trains, reading the labels at all is an error."""

import dataclasses
import threading

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from ae_jax import config as config_lib, data as data_lib, store, sweep

PROBE_KEYS = {"probe_acc", "probe_acc_init", "probe_acc_raw"}
# Denoisers (training draws batches and noise from its seed), one compiled group: a test of seconds.
MEMBERS = [{"seed": 0, "noise.kind": "gaussian", "noise.level": 0.1},
           {"seed": 1, "noise.kind": "gaussian", "noise.level": 0.3}]


def write_npz(path, labels: str):
    """Digits as an npz: `labels` is "true", "permuted" (each split's labels shuffled) or "none"."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    arrays = {"x_train": x[:400], "x_test": x[400:600]}
    if labels != "none":
        rng = np.random.default_rng(0)
        y_tr, y_te = y[:400], y[400:600]
        arrays.update(y_train=rng.permutation(y_tr) if labels == "permuted" else y_tr,
                      y_test=rng.permutation(y_te) if labels == "permuted" else y_te)
    np.savez(path, **arrays)
    return path


def run(tmp_path, labels: str) -> list[store.Member]:
    npz = write_npz(tmp_path / f"{labels}.npz", labels)
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.data.name = f"npz:{npz}"
    c.model.code_size, c.model.depth = 16, 0
    c.train.steps, c.train.log_every, c.train.batch_size = 60, 20, 64
    c.diagnostics.jac_points, c.diagnostics.ood_samples = 10, 200
    c.diagnostics.attractor_points, c.diagnostics.attractor_iters = 10, 5
    workdir = tmp_path / labels
    sweep.run_sweep(c, MEMBERS, workdir, sweep_name="labels", report=False)
    return store.load(workdir)


class Tripwire:
    """Set while a group trains: a label read in that window raises."""

    training = threading.Event()


@dataclasses.dataclass(frozen=True)
class GuardedDataset(data_lib.Dataset):
    """A Dataset whose labels cannot be read while Tripwire.training is set."""

    def __getattribute__(self, name):
        if name in ("y_train", "y_test") and Tripwire.training.is_set():
            raise AssertionError(f"dataset.{name} read while training")
        return super().__getattribute__(name)


@pytest.fixture
def guarded(monkeypatch):
    """Datasets come back guarded; the window runs from a group's start until its training returns."""
    load, run_group, fit = data_lib.load, sweep.run_group, sweep.train.fit

    def guarded_load(data_cfg):
        ds = load(data_cfg)
        return GuardedDataset(**{f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)})

    def guarded_group(*args, **kwargs):
        Tripwire.training.set()
        try:
            return run_group(*args, **kwargs)
        finally:
            Tripwire.training.clear()

    def guarded_fit(*args, **kwargs):
        out = fit(*args, **kwargs)
        Tripwire.training.clear()  # trained: from here on the probe may read the labels
        return out

    monkeypatch.setattr(data_lib, "load", guarded_load)
    monkeypatch.setattr(sweep, "run_group", guarded_group)
    monkeypatch.setattr(sweep.train, "fit", guarded_fit)
    yield


def test_tripwire_catches_a_label_read():
    """The guard itself: a read inside the window fails, outside it passes."""
    ds = GuardedDataset("d", np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros(2), (1,))
    Tripwire.training.set()
    try:
        with pytest.raises(AssertionError, match="y_train read while training"):
            ds.y_train
    finally:
        Tripwire.training.clear()
    assert ds.y_train.shape == (2,)


def test_labels_never_reach_training(tmp_path, guarded):
    runs = {labels: run(tmp_path, labels) for labels in ("true", "permuted", "none")}
    ref = runs["true"]
    assert len(ref) == len(MEMBERS) and all(m.status == "ok" for m in ref)
    for labels in ("permuted", "none"):
        for a, b in zip(ref, runs[labels]):
            assert a.name == b.name
            for pa, pb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
                np.testing.assert_array_equal(pa, pb, err_msg=f"{labels}: {a.name}")
            assert {k: v for k, v in a.metrics.items() if k not in PROBE_KEYS} == \
                   {k: v for k, v in b.metrics.items() if k not in PROBE_KEYS}, (labels, a.name)
    # The labels did reach the probe: true labels are read, permuted ones are noise, none means no probe.
    for m in ref:
        assert m.metrics["probe_acc"] > 0.4 and m.metrics["probe_acc_raw"] > 0.8  # chance: 0.1
        assert 0.0 < m.metrics["probe_acc_init"] <= 1.0
    assert all(m.metrics["probe_acc"] < 0.3 for m in runs["permuted"])
    assert not any(PROBE_KEYS & set(m.metrics) for m in runs["none"])

