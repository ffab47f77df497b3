"""Properties of every data source: split sizes, ranges, ranks, round trips and one-line errors."""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ae_jax import data
from ae_jax.config import base_config
from ae_jax.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cfg(**overrides):
    """config.data with flat `a.b` overrides."""
    c = base_config().data
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def manifold(kind, d=3, dim=10, noise=0.0, n_train=300, n_test=50, seed=0):
    return data.load(cfg(**{"name": "manifold", "split_seed": seed, "manifold.kind": kind,
                            "manifold.intrinsic_dim": d, "manifold.ambient_dim": dim,
                            "manifold.noise": noise, "manifold.n_train": n_train, "manifold.n_test": n_test}))


def rank(x, tol=1e-4):
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return int((s > tol * s[0]).sum())


def assert_one_line_error(fn, *needles):
    with pytest.raises(ConfigError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


# ----------------------------------------------------------------------------- digits

def test_digits_split_range_labels():
    ds = data.load(cfg())
    assert ds.x_train.shape == (1347, 64) and ds.x_test.shape == (450, 64)
    assert ds.shape == (8, 8, 1) and ds.dim == 64 and ds.name == "digits"
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() == 0.0 and x.max() == 1.0
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (1347,) and ds.y_test.shape == (450,)
    assert set(np.unique(ds.y_train)) == set(range(10)) and set(np.unique(ds.y_test)) <= set(range(10))
    # Train and test partition sklearn's 1797 digits.
    from sklearn.datasets import load_digits
    both = np.concatenate([ds.x_train, ds.x_test])
    full = (load_digits().data / 16.0).astype(np.float32)
    np.testing.assert_array_equal(np.unique(both, axis=0), np.unique(full, axis=0))
    assert len(both) == 1797


def test_digits_deterministic_read_only_and_seeded():
    a, b = data.load(cfg()), data.load(cfg())
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    with pytest.raises(ValueError):
        a.x_train[0, 0] = 5.0
    c = data.load(cfg(split_seed=1))
    assert not np.array_equal(a.x_train, c.x_train)
    d = data.load(cfg(test_fraction=0.5))
    assert len(d.x_test) == 899 and len(d.x_train) == 898


# ----------------------------------------------------------------------------- manifold

def test_manifold_linear_has_rank_d():
    ds = manifold("linear", d=3, dim=10)
    assert ds.x_train.shape == (300, 10) and ds.x_test.shape == (50, 10) and ds.shape == (10,)
    assert ds.y_train is None and ds.y_test is None
    assert rank(ds.x_train) == 3 and rank(np.concatenate([ds.x_train, ds.x_test])) == 3


def test_manifold_sphere_unit_norm_rank_d_plus_1():
    ds = manifold("sphere", d=3, dim=10)
    x = np.concatenate([ds.x_train, ds.x_test])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert rank(x) == 4
    # The d+1-dim span is a subspace through the origin: projecting onto it changes nothing.
    u = np.linalg.svd(x, full_matrices=False)[2][:4]
    np.testing.assert_allclose(x @ u.T @ u, x, atol=1e-5)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_manifold_swiss_roll_rank_and_scale(d):
    ds = manifold("swiss_roll", d=d, dim=8)
    assert rank(ds.x_train) == d + 1
    assert np.abs(ds.x_train).max() <= np.sqrt(d + 1) + 1e-5  # O(1): every latent coordinate in [-1, 1]


def test_manifold_noise_fills_ambient_space_and_seed_matters():
    assert rank(manifold("linear", d=2, dim=10, noise=0.05).x_train) == 10
    assert rank(manifold("sphere", d=2, dim=10, noise=0.05).x_train) == 10
    a, b = manifold("sphere", seed=0), manifold("sphere", seed=1)
    assert not np.array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_train, manifold("sphere", seed=0).x_train)


def test_manifold_too_small_ambient_dim_is_a_config_error():
    assert_one_line_error(lambda: manifold("sphere", d=4, dim=4), "config.data.manifold.ambient_dim")


# ----------------------------------------------------------------------------- npz

def test_npz_round_trip_keeps_image_shape_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(6, 5, 4, 3)) * 7, rng.normal(size=(3, 5, 4, 3))
    y_train, y_test = np.arange(6, dtype=np.int64), np.array([2, 0, 1], dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    ds = data.load(cfg(name=f"npz:{path}"))
    assert ds.shape == (5, 4, 3) and ds.dim == 60 and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train.reshape(x_train.shape), x_train, rtol=1e-6)  # used as given
    np.testing.assert_allclose(ds.x_test.reshape(x_test.shape), x_test, rtol=1e-6)
    assert ds.y_train.dtype == np.int32 and list(ds.y_train) == list(y_train) and list(ds.y_test) == [2, 0, 1]


def test_npz_without_labels_and_1d_examples(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=np.arange(4.0), x_test=np.arange(2, dtype=np.int16))
    ds = data.load(cfg(name=f"npz:{path}"))
    assert ds.y_train is None and ds.y_test is None and ds.shape == (1,) and ds.x_train.shape == (4, 1)


NPZ_ERRORS = {
    "missing x_test": (dict(x_train=np.zeros((3, 2))), "x_test"),
    "missing x_train": (dict(x_test=np.zeros((3, 2))), "x_train"),
    "shape mismatch": (dict(x_train=np.zeros((3, 2, 2)), x_test=np.zeros((3, 4))), "shape"),
    "strings": (dict(x_train=np.array([["a", "b"]] * 3), x_test=np.zeros((3, 2))), "non-numeric"),
    "complex": (dict(x_train=np.zeros((3, 2), complex), x_test=np.zeros((3, 2))), "non-numeric"),
    "nan": (dict(x_train=np.array([[0.0, np.nan]] * 3), x_test=np.zeros((3, 2))), "NaN"),
    "inf": (dict(x_train=np.zeros((3, 2)), x_test=np.array([[np.inf, 0.0]])), "inf"),
    "one example": (dict(x_train=np.zeros((1, 2)), x_test=np.zeros((3, 2))), "at least 2"),
    "only y_train": (dict(x_train=np.zeros((3, 2)), x_test=np.zeros((3, 2)), y_train=np.zeros(3, int)),
                     "both"),
    "float labels": (dict(x_train=np.zeros((3, 2)), x_test=np.zeros((2, 2)), y_train=np.zeros(3),
                          y_test=np.zeros(2)), "integer"),
    "2-D labels": (dict(x_train=np.zeros((3, 2)), x_test=np.zeros((2, 2)), y_train=np.zeros((3, 1), int),
                        y_test=np.zeros(2, int)), "1-D"),
    "label count": (dict(x_train=np.zeros((3, 2)), x_test=np.zeros((2, 2)), y_train=np.zeros(3, int),
                         y_test=np.zeros(5, int)), "5 labels"),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_npz_errors_are_one_line_and_name_the_path(tmp_path, case):
    arrays, needle = NPZ_ERRORS[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{path}")), str(path), needle, "config.data.name")


def test_npz_uint8_needs_an_explicit_scale(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "pixels.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8),
             x_test=rng.integers(0, 256, (5, 4, 4), dtype=np.uint8))
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{path}")), str(path), "'x_train'", "uint8",
                          "config.data.scale")
    ds = data.load(cfg(name=f"npz:{path}", scale="minmax"))  # asked for: scaled, fitted on train
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, x_train=np.zeros((3, 2), np.float32) + np.arange(3)[:, None], x_test=np.zeros((2, 2), np.uint8))
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{mixed}")), str(mixed), "'x_test'", "uint8")


def test_npz_float64_beyond_float32_range_is_refused(tmp_path):
    path = tmp_path / "huge.npz"
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.savez(path, x_train=x, x_test=np.array([[1e39, 0.0, 0.0]]))
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{path}")), str(path), "'x_test'", "float32 range")
    np.savez(path, x_train=x * 1e38, x_test=x[:1])  # large but representable: used as given
    np.testing.assert_allclose(data.load(cfg(name=f"npz:{path}")).x_train, x * 1e38, rtol=1e-6)


def test_constant_data_is_refused_but_one_kept_example_is_not(tmp_path):
    path = tmp_path / "constant.npz"
    np.savez(path, x_train=np.full((6, 3), 0.5), x_test=np.full((2, 3), 0.5))
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{path}")), f"npz:{path}", "constant", "6 training")
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{path}", scale="standardize")), "constant")
    assert data.load(cfg(n_train=1)).x_train.shape == (1, 64)  # memorising one digit is a real experiment


def test_npz_missing_file_and_invalid_file(tmp_path):
    missing = tmp_path / "nope.npz"
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{missing}")), str(missing), "does not exist")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all\n" * 10)
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{garbage}")), str(garbage), "not a valid")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))  # a .npy payload behind an .npz name
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{npy}")), str(npy), "not a valid")
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x_train=np.array([{}, {}], dtype=object), x_test=np.zeros((1, 1)))
    assert_one_line_error(lambda: data.load(cfg(name=f"npz:{pickled}")), str(pickled), "non-numeric")


# ----------------------------------------------------------------------------- n_train and scale

def test_n_train_keeps_the_first_examples():
    full, part = data.load(cfg()), data.load(cfg(n_train=100))
    np.testing.assert_array_equal(part.x_train, full.x_train[:100])
    np.testing.assert_array_equal(part.y_train, full.y_train[:100])
    np.testing.assert_array_equal(part.x_test, full.x_test)
    assert_one_line_error(lambda: data.load(cfg(n_train=5000)), "config.data.n_train", "1347")


def test_scale_minmax_and_standardize_fit_on_train(tmp_path):
    rng = np.random.default_rng(1)
    x_train = np.column_stack([rng.normal(3.0, 2.0, 50), np.full(50, 7.0), rng.uniform(-5, 1, 50)])
    x_test = x_train[:10] + 1.0
    path = tmp_path / "s.npz"
    np.savez(path, x_train=x_train, x_test=x_test)
    mm = data.load(cfg(name=f"npz:{path}", scale="minmax"))
    np.testing.assert_allclose(mm.x_train.min(axis=0), [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(mm.x_train.max(axis=0), [1, 0, 1], atol=1e-6)  # constant dim -> 0
    lo, span = x_train.min(axis=0), np.ptp(x_train, axis=0)
    np.testing.assert_allclose(mm.x_test[:, [0, 2]], (x_test - lo)[:, [0, 2]] / span[[0, 2]], rtol=1e-5)
    st = data.load(cfg(name=f"npz:{path}", scale="standardize"))
    np.testing.assert_allclose(st.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(st.x_train.std(axis=0), [1, 0, 1], atol=1e-5)  # constant dim: std taken as 1
    np.testing.assert_allclose(st.x_test[:, 1], 1.0, atol=1e-6)
    for ds in (mm, st):
        assert ds.x_train.dtype == np.float32 and not ds.x_train.flags.writeable
    # Fitted after n_train: the kept subset spans [0, 1] exactly.
    sub = data.load(cfg(name=f"npz:{path}", scale="minmax", n_train=10))
    np.testing.assert_allclose(sub.x_train[:, 0].min(), 0.0, atol=1e-6)
    np.testing.assert_allclose(sub.x_train[:, 0].max(), 1.0, atol=1e-6)


def test_digits_cache_is_not_corrupted_by_scaling():
    before = data.load(cfg()).x_train.copy()
    data.load(cfg(scale="standardize"))
    np.testing.assert_array_equal(data.load(cfg()).x_train, before)


# ----------------------------------------------------------------------------- TFDS

def test_tensorflow_datasets_is_imported_only_for_tfds_names():
    code = ("import sys; from ae_jax import data, config; c = config.base_config().data; data.load(c); "
            "c.name = 'manifold'; data.load(c); assert 'tensorflow_datasets' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_unknown_and_unprepared_tfds_names(tmp_path):
    assert_one_line_error(lambda: data.load(cfg(name="mnist", tfds_dir=str(tmp_path))),
                          "'mnist'", str(tmp_path), "prepare_tfds", "config.data.name")
    assert_one_line_error(lambda: data.load(cfg(name="no_such_dataset_xyz", tfds_dir=str(tmp_path))),
                          "'no_such_dataset_xyz'", str(tmp_path), "prepare_tfds",
                          "digits, manifold, npz:PATH")


def test_tfds_mnist_offline_with_mock_data(tmp_path):
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=12):
        ds = data.load(cfg(name="mnist", tfds_dir=str(tmp_path), n_train=10, scale="none"))
    assert ds.shape == (28, 28, 1) and ds.x_train.shape == (10, 784) and ds.x_test.shape == (12, 784)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (10,) and ds.y_test.max() < 10


class AeJaxTinyImages(tfds.core.GeneratorBasedBuilder):
    """A tiny builder that prepares offline and without TensorFlow (uint8 tensors, not encoded images)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(4, 3, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 9), "test": self._generate_examples(9, 4)}

    def _generate_examples(self, start, n):
        for i in range(start, start + n):
            yield i, {"image": np.full((4, 3, 1), 20 * i, np.uint8), "label": i % 3}


def test_prepare_script_then_real_tfds_source(tmp_path, capsys):
    prepare = _prepare_script()
    assert prepare.main(["ae_jax_tiny_images", "--data_dir", str(tmp_path)]) == 0
    assert str(tmp_path) in capsys.readouterr().out
    ds = data.load(cfg(name="ae_jax_tiny_images", tfds_dir=str(tmp_path)))
    assert ds.shape == (4, 3, 1) and ds.x_train.shape == (9, 12) and ds.x_test.shape == (4, 12)
    # The builder shuffles on disk, so compare as sets keyed by label-consistent pixel values.
    got = sorted(zip(np.round(ds.x_train[:, 0] * 255).astype(int), ds.y_train))
    assert got == [(20 * i, i % 3) for i in range(9)]
    assert sorted(np.round(ds.x_test[:, 0] * 255).astype(int)) == [180, 200, 220, 240]


def test_tfds_n_train_beyond_the_split_is_refused(tmp_path):
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=12):
        assert_one_line_error(lambda: data.load(cfg(name="mnist", tfds_dir=str(tmp_path), n_train=13)),
                              "config.data.n_train", "12 training examples")


class AeJaxUnreachable(tfds.core.GeneratorBasedBuilder):
    """A builder whose one file sits on a host that cannot be reached."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "x": tfds.features.Tensor(shape=(2,), dtype=np.float32)}))

    def _split_generators(self, dl_manager):
        path = dl_manager.download("https://unreachable.invalid/data.npy")
        return {"train": self._generate_examples(path)}

    def _generate_examples(self, path):
        yield 0, {"x": np.load(path)}


def test_prepare_script_offline_fails_fast_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import socket
    import time

    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)  # no real network is touched
    (tmp_path / "other_dataset").mkdir()
    (tmp_path / "other_dataset" / "kept.txt").write_text("prepared earlier")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    prepare = _prepare_script()
    start = time.monotonic()
    assert prepare.main(["ae_jax_unreachable", "--data_dir", str(tmp_path)]) == 2
    assert time.monotonic() - start < 20  # TFDS alone retries for 205 s offline
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'ae_jax_unreachable'" in err and "needs the network" in err and "nothing it wrote was kept" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no partial download


def _prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_tfds", ROOT / "scripts" / "prepare_tfds.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    return prepare


@pytest.mark.parametrize("scale", ["none", "standardize"])
def test_tfds_train_source_rows_equal_x_train_bit_for_bit(tmp_path, scale):
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=12):
        ds = data.load(cfg(name="mnist", tfds_dir=str(tmp_path), n_train=10, scale=scale))
        src = ds.train_source
        assert len(src) == 10
        idx = np.array([9, 0, 3, 3, 7])
        np.testing.assert_array_equal(src.rows(idx), ds.x_train[idx])
        with pytest.raises(IndexError):
            src.rows(np.array([10]))  # beyond n_train, though the split holds 12
    assert data.load(cfg()).train_source is None  # in-memory data: the grain loader reads x_train
