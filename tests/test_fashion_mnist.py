"""Fashion-MNIST from IDX files: the converter on tiny files written here, its errors, the preset, and
the real dataset end to end whenever Debian's dataset-fashion-mnist is installed."""

import gzip
import hashlib
import importlib.util
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ae_jax import data, fashion_mnist, sweep
from ae_jax.config import apply_overrides, base_config, validate
from ae_jax.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "fashion_mnist.py"


def write_idx(path, array, magic_type=0x08):
    """array (uint8) as an IDX file, gzipped when the name ends in .gz."""
    header = bytes([0, 0, magic_type, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def tiny_images(n, offset):
    """n distinct 28x28 images: image i is a gradient plus a bright pixel at a place that encodes i."""
    images = np.tile(np.arange(28, dtype=np.uint8)[None, None, :] * 3, (n, 28, 1))
    for i in range(n):
        images[i, (offset + i) // 28, (offset + i) % 28] = 255
    return images


@pytest.fixture
def idx_dir(tmp_path):
    """A folder laid out like Debian's package: 12 training and 5 test images."""
    d = tmp_path / "idx"
    d.mkdir()
    for split, n, offset in (("train", 12, 0), ("test", 5, 100)):
        images, labels = fashion_mnist.FILES[split]
        write_idx(d / images, tiny_images(n, offset))
        write_idx(d / labels, (np.arange(n) * 7 % 10).astype(np.uint8))
    return d


def row_hashes(x_ND):
    return [hashlib.sha1(np.ascontiguousarray(r).tobytes()).hexdigest() for r in x_ND]


def rows(x_ND):
    """The rows as a multiset of pixel bytes, order-free: TFDS shuffles examples on disk."""
    return sorted(row_hashes(x_ND))


def data_cfg(**kw):
    c = base_config().data
    for key, value in kw.items():
        c[key] = value
    return c


# ----------------------------------------------------------------------------- the converter

def test_idx_round_trip_gzipped_and_plain(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.gz", "a"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(fashion_mnist.read_idx(str(tmp_path / name)), a)


def test_converter_writes_what_tfds_fashion_mnist_reads(tmp_path, idx_dir):
    out = tmp_path / "tfds"
    where, written = fashion_mnist.prepare(str(out), str(idx_dir))
    assert written and where == str(out / "fashion_mnist" / "3.0.1")
    assert fashion_mnist.prepare(str(out), str(idx_dir)) == (where, False)  # a second run is a no-op
    assert not (out / "downloads").exists()  # nothing was downloaded, no download folder left behind

    # TFDS's own registered builder reads it: same features (PNG images, named classes) and splits.
    src = tfds.data_source("fashion_mnist", split="train", data_dir=str(out), download=False,
                           builder_kwargs={"file_format": "array_record"})
    assert len(src) == 12
    assert isinstance(src.dataset_info.features["image"], tfds.features.Image)
    assert src.dataset_info.features["label"].names[9] == "Ankle boot"
    examples = [src[i] for i in range(12)]
    got = {int(np.argmax(e["image"][..., 0].ravel() == 255)): int(e["label"]) for e in examples}
    assert got == {i: i * 7 % 10 for i in range(12)}  # each image kept its own label
    assert all(e["image"].shape == (28, 28, 1) and e["image"].dtype == np.uint8 for e in examples)

    ds = data.load(data_cfg(name="fashion_mnist", tfds_dir=str(out)))
    assert ds.shape == (28, 28, 1) and ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert rows(ds.x_train) == rows(tiny_images(12, 0).reshape(12, -1) / np.float32(255))
    assert rows(ds.x_test) == rows(tiny_images(5, 100).reshape(5, -1) / np.float32(255))
    assert sorted(ds.y_test.tolist()) == sorted((np.arange(5) * 7 % 10).tolist())
    # n_train reads only the first rows, in the order the full read gives.
    part = data.load(data_cfg(name="fashion_mnist", tfds_dir=str(out), n_train=4))
    np.testing.assert_array_equal(part.x_train, ds.x_train[:4])
    np.testing.assert_array_equal(part.y_train, ds.y_train[:4])


def test_prepare_tfds_script_prepares_fashion_mnist_offline(tmp_path, idx_dir, monkeypatch, capsys):
    monkeypatch.setattr(fashion_mnist, "IDX_DIR", str(idx_dir))
    spec = importlib.util.spec_from_file_location("prepare_tfds", ROOT / "scripts" / "prepare_tfds.py")
    prepare_tfds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_tfds)
    assert prepare_tfds.main(["fashion_mnist", "--data_dir", str(tmp_path / "tfds")]) == 0
    assert "prepared fashion_mnist" in capsys.readouterr().out
    assert len(data.load(data_cfg(name="fashion_mnist", tfds_dir=str(tmp_path / "tfds"))).x_train) == 12


BAD_IDX = {
    "float type": (lambda p: write_idx(p, np.zeros((3, 28, 28), np.uint8), magic_type=0x0D), "unsigned-byte"),
    "truncated": (lambda p: p.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + np.asarray([3, 28, 28], ">u4")
                                                        .tobytes() + bytes(100))), "bytes of data"),
    "not gzip": (lambda p: p.write_bytes(b"plain text, not gzip"), "cannot read"),
    "wrong size": (lambda p: write_idx(p, np.zeros((3, 27, 28), np.uint8)), "(28, 28)"),
}


@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_bad_idx_files_are_one_line_errors_naming_the_file(tmp_path, idx_dir, capsys, case):
    corrupt, needle = BAD_IDX[case]
    target = idx_dir / fashion_mnist.FILES["train"][0]
    corrupt(target)
    assert fashion_mnist.main(["--data_dir", str(tmp_path / "tfds"), "--idx_dir", str(idx_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(target) in err and needle in err, err
    assert not list((tmp_path / "tfds").glob("fashion_mnist/*"))  # nothing half-written is left


def test_label_count_mismatch_and_missing_files(tmp_path, idx_dir, capsys):
    write_idx(idx_dir / fashion_mnist.FILES["test"][1], np.zeros(4, np.uint8))
    with pytest.raises(fashion_mnist.IdxError, match="4,.* labels for 5 images"):
        fashion_mnist.read_split("test", str(idx_dir))
    os.remove(idx_dir / fashion_mnist.FILES["test"][1])
    assert fashion_mnist.main(["--data_dir", str(tmp_path / "tfds"), "--idx_dir", str(idx_dir)]) == 2
    assert "t10k-labels-idx1-ubyte.gz does not exist" in capsys.readouterr().err


def test_unprepared_or_uninstalled_fashion_mnist_says_the_one_command(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError) as info:
        data.load(data_cfg(name="fashion_mnist", tfds_dir=str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message and f"`python -m ae_jax.fashion_mnist --data_dir {tmp_path}`" in message, message
    monkeypatch.setattr(fashion_mnist, "IDX_DIR", str(tmp_path / "not_installed"))
    with pytest.raises(ConfigError) as info:
        data.load(data_cfg(name="fashion_mnist", tfds_dir=str(tmp_path)))
    assert "`apt-get update && apt-get install -y dataset-fashion-mnist`" in str(info.value)
    assert fashion_mnist.main(["--data_dir", str(tmp_path / "fresh")]) == 2
    err = capsys.readouterr().err
    assert "as root: `apt-get update && apt-get install -y dataset-fashion-mnist`" in err and "\n" not in err.strip()


def test_sweep_cli_on_unprepared_fashion_mnist_stops_in_one_line(tmp_path, capsys):
    code = sweep.main(["ae_jax.sweep", f"--config={PRESET}:smoke", f"--config.data.tfds_dir={tmp_path}",
                       f"--workdir={tmp_path / 'wd'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "python -m ae_jax.fashion_mnist" in err and not (tmp_path / "wd").exists()


# ----------------------------------------------------------------------------- the preset

def test_preset_expands_validates_and_refuses_unknown_arguments():
    spec = importlib.util.spec_from_file_location("fashion_mnist_preset", PRESET)
    preset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preset)
    assert preset.__doc__.startswith("python -m ae_jax.sweep --config=configs/fashion_mnist.py")
    for arg, n_members in (("", 96), (":smoke", 4)):
        config, overrides, _ = sweep.load_config_file(f"{PRESET}{arg}")
        assert config.data.name == "fashion_mnist" and len(overrides) == n_members
        for m in sweep.expand(config, overrides):
            validate(m.config)
    smoke, _, _ = sweep.load_config_file(f"{PRESET}:smoke")
    assert 0 < smoke.data.n_train <= 1000 and smoke.train.steps <= 300
    with pytest.raises(ConfigError, match="unknown argument 'smok'"):
        sweep.load_config_file(f"{PRESET}:smok")


# ----------------------------------------------------------------------------- the real dataset

INSTALLED = not fashion_mnist.missing_files()


@pytest.fixture(scope="module")
def real_data_dir(tmp_path_factory):
    """TFDS's default data dir when scripts/setup.sh prepared it there, else a fresh one (~30 s)."""
    if fashion_mnist.builder().is_prepared():  # needs no IDX files
        return ""
    out = tmp_path_factory.mktemp("fashion_mnist")
    fashion_mnist.prepare(str(out))
    return str(out)


@pytest.mark.skipif(not INSTALLED, reason="Debian's dataset-fashion-mnist is not installed "
                    f"({fashion_mnist.INSTALL}, as root)")
def test_real_fashion_mnist_official_split_through_tfds(real_data_dir):
    for split, n in (("train", 60_000), ("test", 10_000)):
        src = tfds.data_source("fashion_mnist", split=split, data_dir=real_data_dir or None, download=False,
                               builder_kwargs={"file_format": "array_record"})
        assert len(src) == n
    ds = data.load(data_cfg(name="fashion_mnist", tfds_dir=real_data_dir, n_train=300))
    assert ds.x_train.shape == (300, 784) and ds.x_test.shape == (10_000, 784) and ds.shape == (28, 28, 1)
    assert ds.x_test.dtype == np.float32 and ds.x_test.min() == 0.0 and ds.x_test.max() == 1.0
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    idx = np.array([299, 0, 17, 17])  # the streaming loader's rows decode to the same pixels
    np.testing.assert_array_equal(ds.train_source.rows(idx), ds.x_train[idx])
    # The prepared test split is the package's test file, image for image with its labels.
    images, labels = fashion_mnist.read_split("test")
    pairs = lambda x, y: sorted(zip(row_hashes(x), y.tolist()))  # noqa: E731
    assert pairs(np.round(ds.x_test * 255).astype(np.uint8), ds.y_test) == \
        pairs(images.reshape(len(images), -1), labels)


@pytest.mark.skipif(not INSTALLED, reason="Debian's dataset-fashion-mnist is not installed "
                    f"({fashion_mnist.INSTALL}, as root)")
def test_real_fashion_mnist_trains_through_the_preset(real_data_dir, tmp_path):
    config, overrides, name = sweep.load_config_file(f"{PRESET}:smoke")
    config = apply_overrides(config, {"data.tfds_dir": real_data_dir, "data.n_train": 200, "train.steps": 150,
                                      "diagnostics.jac_points": 5, "diagnostics.attractor_iters": 5,
                                      "wandb.mode": "disabled"})
    assert overrides[1] == {"model.code_size": 32, "model.depth": 1}
    (record,) = sweep.run_sweep(config, overrides[1:2], tmp_path, sweep_name=name, report=False)
    assert record["status"] == "ok", record
    metrics = record["metrics"]
    ds = data.load(config.data)
    trivial = float(np.mean((ds.x_test - ds.x_train.mean(axis=0)) ** 2))  # predicting the mean image
    assert 0.0 < metrics["test_mse"] < 0.7 * trivial, (metrics["test_mse"], trivial)
    assert 0 < metrics["data_rank"] <= 199  # 200 centred training images
    assert 0.4 < metrics["probe_acc"] <= 1.0  # the labels came through: far better than chance (0.1)
