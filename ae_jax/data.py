"""Datasets as flat float32 arrays: sklearn digits, synthetic manifolds, npz files, prepared TFDS datasets.

A TFDS dataset also keeps its training split's `array_record` data source (`Dataset.train_source`), so
the grain loader (stream.py) can read training batches from disk instead of from `x_train`.
"""

import dataclasses
import functools
import os
import zipfile
from typing import Any, Callable

import ml_collections
import numpy as np

from ae_jax.config import MANIFOLD_KINDS, SCALES
from ae_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test examples flattened to (N, D) float32; `shape` is one example before flattening."""

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    shape: tuple[int, ...]
    # Random-access training rows (`len`, `rows(idx_K)`) equal to x_train's, read from where the data is
    # stored (TFDS array_record); None: the grain loader reads x_train itself.
    train_source: Any = None

    @property
    def dim(self) -> int:
        """D, the flat input dimension."""
        return int(self.x_train.shape[1])


Raw = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, ...]]


def load(data_cfg: ml_collections.ConfigDict) -> Dataset:
    """The dataset `config.data` names, subsetted and scaled; arrays are read-only."""
    name = data_cfg.name
    if not isinstance(name, str) or not name:
        raise ConfigError(f"config.data.name: must be a non-empty string, got {name!r}")
    rows = None
    if name in LOADERS:
        raw = LOADERS[name](data_cfg)
    elif name.startswith("npz:"):
        raw = _load_npz(name[len("npz:"):], data_cfg.scale)
    else:
        raw, rows = _load_tfds(name, data_cfg.tfds_dir, data_cfg.n_train)
    return _finish(name, raw, data_cfg, rows)


# ----------------------------------------------------------------------------- digits

def _digits(data_cfg: ml_collections.ConfigDict) -> Raw:
    return _digits_cached(float(data_cfg.test_fraction), int(data_cfg.split_seed))


@functools.lru_cache(maxsize=8)
def _digits_cached(test_fraction: float, split_seed: int) -> Raw:
    """sklearn's embedded 8x8 digits scaled to [0, 1], split by a seeded shuffle."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"config.data.test_fraction: must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    # Not stratified: stratification fails when the test set is smaller than the number of classes.
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=split_seed)
    return _frozen(x_tr), _frozen(x_te), _frozen(y_tr), _frozen(y_te), (8, 8, 1)


# ----------------------------------------------------------------------------- manifold

def _manifold(data_cfg: ml_collections.ConfigDict) -> Raw:
    m = data_cfg.manifold
    return _manifold_cached(m.kind, int(m.intrinsic_dim), int(m.ambient_dim), int(m.n_train),
                            int(m.n_test), float(m.noise), int(data_cfg.split_seed))


@functools.lru_cache(maxsize=8)
def _manifold_cached(kind: str, d: int, dim: int, n_train: int, n_test: int, noise: float, seed: int) -> Raw:
    """Points on a d-dimensional manifold in R^dim, i.i.d., plus N(0, noise^2) on every coordinate.

    linear:     z ~ N(0, I_d), x = Q z with Q a random orthonormal (dim, d) basis; centred rank d.
    sphere:     z uniform on the unit d-sphere in R^(d+1) (normalised Gaussians), x = Q z with Q
                orthonormal (dim, d+1); every noise-free point has norm 1, centred rank d+1.
    swiss_roll: t ~ U(1.5 pi, 4.5 pi) traces the spiral (t cos t, t sin t) / 4.5 pi (the d=1 case);
                for d >= 2 a height ~ U(-1, 1) makes sklearn's swiss roll and d-2 flat U(-1, 1)
                coordinates follow; the d+1 coordinates are rotated into R^dim by an orthonormal Q.
    Coordinates of the noise-free points are O(1) (|x_i| <= 1 except the Gaussian `linear` kind).
    """
    _check_choice("manifold.kind", kind, MANIFOLD_KINDS)
    if d < 1 or n_train < 2 or n_test < 1 or noise < 0:
        raise ConfigError(f"config.data.manifold: need intrinsic_dim >= 1, n_train >= 2, n_test >= 1 and "
                          f"noise >= 0, got {d}, {n_train}, {n_test}, {noise}")
    extra = 0 if kind == "linear" else 1
    if dim < d + extra:
        raise ConfigError(f"config.data.manifold.ambient_dim: {kind} with intrinsic_dim={d} needs at "
                          f"least {d + extra}, got {dim}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, d + extra)))
    q *= np.sign(np.diag(r))  # sign fix makes Q Haar-distributed
    n = n_train + n_test
    if kind == "linear":
        z = rng.standard_normal((n, d))
    elif kind == "sphere":
        g = rng.standard_normal((n, d + 1))
        z = g / np.linalg.norm(g, axis=1, keepdims=True)
    else:
        t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
        spiral = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (4.5 * np.pi)
        z = np.concatenate([spiral, rng.uniform(-1.0, 1.0, (n, d - 1))], axis=1)
    x = (z @ q.T + noise * rng.standard_normal((n, dim))).astype(np.float32)
    return _frozen(x[:n_train]), _frozen(x[n_train:]), None, None, (dim,)


# ----------------------------------------------------------------------------- npz

def _load_npz(path: str, scale: str) -> Raw:
    full = os.path.expanduser(path)

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"config.data.name: npz file {path!r} {problem}")

    if not os.path.isfile(full):
        raise fail("does not exist")
    try:
        archive = np.load(full, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise fail("is not a valid .npz file (write it with numpy.savez)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise fail("is not a valid .npz file (write it with numpy.savez)")
    with archive:
        keys = set(archive.files)
        for key in ("x_train", "x_test"):
            if key not in keys:
                raise fail(f"has no '{key}' array (it holds: {', '.join(sorted(keys)) or 'nothing'})")
        if ("y_train" in keys) != ("y_test" in keys):
            raise fail("has only one of y_train and y_test: give both or neither")
        arrays = {}
        for key in ("x_train", "x_test", "y_train", "y_test"):
            if key in keys:
                try:
                    arrays[key] = archive[key]
                except (OSError, ValueError, EOFError, zipfile.BadZipFile):
                    raise fail(f"has an unreadable or non-numeric '{key}' array") from None
    xs = [_check_x(arrays[k], k, fail) for k in ("x_train", "x_test")]
    for key, x in zip(("x_train", "x_test"), xs):
        # Almost always 0..255 pixels, which the TFDS path divides by 255; used as given, the net sees
        # values up to 255 where every other dataset here is O(1) (test_mse in the thousands).
        if x.dtype == np.uint8 and scale == "none":
            raise fail(f"has uint8 '{key}' (0..255 pixels?), which config.data.scale=none would use "
                       "unscaled; save it as float32 (e.g. x / 255) or set config.data.scale=minmax or "
                       "standardize")
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise fail(f"has x_train examples of shape {xs[0].shape[1:]} but x_test ones of {xs[1].shape[1:]}")
    if len(xs[0]) < 2:
        raise fail(f"has {len(xs[0])} training example(s) in x_train; need at least 2")
    if len(xs[1]) < 1:
        raise fail("has no test examples in x_test; need at least 1")
    ys = [_check_y(arrays[k], k, len(x), fail) if k in arrays else None
          for k, x in zip(("y_train", "y_test"), xs)]
    shape = tuple(int(s) for s in xs[0].shape[1:])
    flat = [x.reshape(len(x), -1).astype(np.float32) for x in xs]
    return flat[0], flat[1], ys[0], ys[1], shape


def _check_x(x: np.ndarray, key: str, fail: Callable[[str], ConfigError]) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise fail(f"has a non-numeric '{key}' array (dtype {x.dtype})")
    if x.ndim == 0:
        raise fail(f"has a scalar '{key}'; need examples along the first axis")
    if x.ndim == 1:
        x = x[:, None]  # N scalars are N one-dimensional examples
    if int(np.prod(x.shape[1:])) == 0:
        raise fail(f"has a '{key}' array with empty examples (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise fail(f"has NaN or inf values in '{key}'")
    if x.dtype.kind == "f" and x.dtype.itemsize > 4 and x.size:
        biggest = float(np.abs(x).max())
        if biggest > float(np.finfo(np.float32).max):  # would become inf in float32 and "diverge" at once
            raise fail(f"has values in '{key}' beyond the float32 range (|x| up to {biggest:.3g}); "
                       "rescale it before saving")
    return x


def _check_y(y: np.ndarray, key: str, n: int, fail: Callable[[str], ConfigError]) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise fail(f"has a '{key}' that is not a 1-D integer array (shape {y.shape}, dtype {y.dtype})")
    if len(y) != n:
        raise fail(f"has {len(y)} labels in '{key}' for {n} examples")
    if len(y) and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise fail(f"has labels in '{key}' outside the int32 range")
    return y.astype(np.int32)


# ----------------------------------------------------------------------------- TFDS

def _load_tfds(name: str, tfds_dir: str, n_train: int) -> tuple[Raw, "TfdsRows"]:
    """The test split whole, the training split's first n_train rows (all if 0): decoding is the cost
    (~0.1 ms of CPU a PNG image: 5 s for Fashion-MNIST's 70,000)."""
    import tensorflow_datasets as tfds  # slow and heavy: only imported on this path
    shown_dir = tfds_dir or tfds.core.constants.DATA_DIR
    prepare = (f"run `python scripts/prepare_tfds.py {name} --data_dir {shown_dir}` on a connected machine, "
               f"then copy that dir here and set config.data.tfds_dir (nothing is downloaded at run time)")
    if name in LOCAL_TFDS:
        prepare = LOCAL_TFDS[name](tfds_dir)

    def source(split: str):
        return tfds.data_source(name, split=split, data_dir=tfds_dir or None, download=False,
                                builder_kwargs={"file_format": "array_record"})

    try:
        train = source("train")
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError(f"config.data.name: {name!r} is not digits, manifold, npz:PATH or a TFDS dataset "
                          f"prepared in {shown_dir}; for a TFDS catalog dataset {prepare}") from None
    except KeyError:  # tfds: "`splits` is empty", the dataset was never generated in this dir
        raise ConfigError(f"config.data.name: TFDS dataset {name!r} is not prepared in {shown_dir}; "
                          f"{prepare}") from None
    except (ValueError, OSError) as e:
        raise ConfigError(f"config.data.name: cannot open TFDS dataset {name!r} in {shown_dir}: "
                          f"{_first_line(e)}") from None
    test = None
    for split in ("test", "validation"):
        try:
            test = source(split)
            break
        except (KeyError, ValueError):
            continue
    if test is None:
        raise ConfigError(f"config.data.name: TFDS dataset {name!r} in {shown_dir} has no 'test' or "
                          "'validation' split")

    features = train.dataset_info.features
    image_key = "image" if "image" in features else next(
        (k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    if image_key is None:
        raise ConfigError(f"config.data.name: TFDS dataset {name!r} has no image feature "
                          f"(it has: {', '.join(features.keys())})")
    label_key = "label" if "label" in features else None
    _check_n_train(n_train, len(train), name)
    x_tr, y_tr = _read_all(train, image_key, label_key, n_train or len(train))
    x_te, y_te = _read_all(test, image_key, label_key, len(test))
    shape = tuple(int(s) for s in x_tr.shape[1:])
    raw = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1), y_tr, y_te, shape
    return raw, TfdsRows(train, image_key, len(x_tr))


class TfdsRows:
    """Training rows read from a TFDS data source on demand, decoded, flattened, cut to `n` and scaled
    exactly as `load` does the whole split: row i equals `x_train[i]` bit for bit."""

    def __init__(self, src, image_key: str, n: int, scale: tuple[np.ndarray, np.ndarray] | None = None):
        self.src, self.image_key, self.n, self.scale = src, image_key, n, scale

    def __len__(self) -> int:
        return self.n

    def rows(self, idx_K: np.ndarray) -> np.ndarray:
        if len(idx_K) and (np.min(idx_K) < 0 or np.max(idx_K) >= self.n):
            raise IndexError(f"TFDS rows: indices outside [0, {self.n})")
        x = _images(_read(self.src, [int(i) for i in idx_K]), self.image_key)
        x = x.reshape(len(x), -1)
        return x if self.scale is None else _apply_scale(x, self.scale)


def _read(src, indices: list[int]) -> list[dict]:
    """The examples at `indices`, in order."""
    try:
        return list(src.__getitems__(indices))
    except (TypeError, AttributeError, NotImplementedError):
        # Batched reads are much faster, but mocked sources (tfds.testing.mock_data) only support ds[i].
        return [src[i] for i in indices]


def _images(examples: list[dict], image_key: str) -> np.ndarray:
    """Images as float32, scaled to [0, 1] if uint8."""
    images = np.stack([np.asarray(e[image_key]) for e in examples])
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


def _read_all(src, image_key: str, label_key: str | None, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first n examples of a TFDS data source as (images scaled to [0, 1] if uint8, int32 labels)."""
    chunk, examples = 4096, []
    for start in range(0, n, chunk):
        examples.extend(_read(src, list(range(start, min(n, start + chunk)))))
    x = _images(examples, image_key)
    y = None
    if label_key is not None:
        labels = np.asarray([e[label_key] for e in examples])
        y = labels.astype(np.int32) if labels.ndim == 1 and labels.dtype.kind in "iu" else None
    return x, y


def _fashion_mnist_hint(tfds_dir: str) -> str:
    from ae_jax import fashion_mnist

    where = f" --data_dir {tfds_dir}" if tfds_dir else ""
    hint = f"run `{fashion_mnist.PREPARE}{where}` (offline, under a minute)"
    if fashion_mnist.missing_files():
        hint = f"{fashion_mnist.install_hint()}, then {hint}"
    return hint


# TFDS names prepared from local files rather than downloaded: name -> fn(tfds_dir) -> how, in one line.
LOCAL_TFDS: dict[str, Callable[[str], str]] = {"fashion_mnist": _fashion_mnist_hint}


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0].rstrip(" :") if lines else type(e).__name__


# ----------------------------------------------------------------------------- common

# name -> fn(config.data) -> (x_train, x_test, y_train, y_test, shape), before n_train and scale apply.
LOADERS: dict[str, Callable[[ml_collections.ConfigDict], Raw]] = {"digits": _digits, "manifold": _manifold}


def _finish(name: str, raw: Raw, data_cfg: ml_collections.ConfigDict, rows: TfdsRows | None = None) -> Dataset:
    x_tr, x_te, y_tr, y_te, shape = raw
    n_train = data_cfg.n_train
    _check_n_train(n_train, len(x_tr), name)
    # Before the n_train cut: one kept example (a memorisation run) is fine, a constant dataset is not.
    if len(x_tr) > 1 and (x_tr == x_tr[0]).all():
        raise ConfigError(f"config.data.name: dataset {name!r} is constant: its {len(x_tr)} training examples "
                          "are identical (zero variance), so there is nothing to learn")
    if n_train:
        x_tr = x_tr[:n_train]
        y_tr = None if y_tr is None else y_tr[:n_train]
    scale = _scale_params(x_tr, data_cfg.scale)
    if scale is not None:
        x_tr, x_te = _apply_scale(x_tr, scale), _apply_scale(x_te, scale)
    if rows is not None:
        rows = TfdsRows(rows.src, rows.image_key, len(x_tr), scale)
    return Dataset(name=name, x_train=_frozen(x_tr), x_test=_frozen(x_te), y_train=_frozen(y_tr),
                   y_test=_frozen(y_te), shape=tuple(shape), train_source=rows)


def _check_n_train(n_train: Any, available: int, name: str) -> None:
    if not isinstance(n_train, int) or n_train < 0:
        raise ConfigError(f"config.data.n_train: must be an integer >= 0 (0 = all), got {n_train!r}")
    if n_train > available:
        raise ConfigError(f"config.data.n_train: {n_train} exceeds the {available} training examples of {name}")


def _scale_params(x_tr: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(shift, div) in float64, fitted on the training examples only (test data never leaks into the
    inputs); None for `none`."""
    _check_choice("scale", scale, SCALES)
    if scale == "none":
        return None
    lo, hi = x_tr.min(axis=0).astype(np.float64), x_tr.max(axis=0).astype(np.float64)
    constant = hi == lo  # exact, unlike a tolerance on a float std
    if scale == "minmax":
        shift, div = lo, np.where(constant, 1.0, hi - lo)
    else:
        shift = x_tr.mean(axis=0, dtype=np.float64)
        div = np.where(constant, 1.0, x_tr.std(axis=0, dtype=np.float64))
    return shift, div


def _apply_scale(x: np.ndarray, scale: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Row by row the same float64 arithmetic for the whole split and for streamed rows."""
    shift, div = scale
    return ((x - shift) / div).astype(np.float32)


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"config.data.{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    """A C-contiguous read-only array, so cached data cannot be corrupted by a caller."""
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a
