"""Closed forms of the training data every metric is measured against: its PCA (the one eigendecomposition
the library uses), the PCA-k controls, the data's effective rank and span, and the logistic probe.

All in float64 NumPy on the host, cached on the arrays' content (a sweep asks for the same data's PCA once
per group).
"""

import hashlib
import warnings
from typing import Any, Callable

import numpy as np

# effective_rank: the fewest principal directions that leave at most this fraction of the train variance.
EFFECTIVE_RANK_TAIL = 0.01
PROBE_MAX_ITER = 200  # lbfgs on standardised codes converges in ~40 iterations on digits
PROBE_MAX_TRAIN = 10_000  # a fixed subset keeps the probe at seconds on MNIST-sized data
_CACHE_SIZE = 4


def finite(v: float) -> float:
    """`v` as a float, nan for any non-finite value (JSON-ready)."""
    v = float(v)
    return v if np.isfinite(v) else float("nan")


def safe_ratio(num: float, den: float) -> float:
    """num / den in float64; nan where it is not finite (a zero denominator)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return finite(np.float64(num) / np.float64(den))


def fingerprint(*arrays: np.ndarray) -> tuple:
    """A cheap content key: shape, dtype and a hash of the bytes."""
    key = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        key.append((a.shape, a.dtype.str, hashlib.blake2b(a.reshape(-1).view(np.uint8), digest_size=16).digest()))
    return tuple(key)


def cached(store: dict, key: tuple, make: Callable[[], Any]) -> Any:
    if key not in store:
        if len(store) >= _CACHE_SIZE:
            store.pop(next(iter(store)))
        store[key] = make()
    return store[key]


_TRAIN_CACHE: dict = {}
_PCA_CACHE: dict = {}
_RAW_PROBE_CACHE: dict = {}

def pca(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(mu_D, eigenvalues_D, eigenvectors_DD, rank) of the train data in float64; use this, not your own.

    Eigenvalues are those of the biased covariance (1/N) sum (x - mu)(x - mu)^T, descending and >= 0;
    eigenvector i is column i (orthonormal). rank is numpy.linalg.matrix_rank of the centred data at the
    input dtype's precision: directions beyond it are ones where the train data is exactly constant.
    Cached on the array's content; treat the returned arrays as read-only."""
    def make():
        x = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
        mu = x.mean(0)
        xc = x - mu
        # Gram eigenvalues cost N D^2 once; their float64 noise (~1e-8 of s_max after the square root)
        # sits far below the float32 rank tolerance used below.
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        evals, evecs = evals[::-1].clip(0.0), evecs[:, ::-1]
        s = np.sqrt(evals)
        dtype = np.asarray(x_train).dtype
        eps = np.finfo(dtype if dtype.kind == "f" else np.float64).eps
        tol = s[0] * max(x.shape) * eps if s.size else 0.0  # numpy.linalg.matrix_rank's default
        for a in (mu, evals, evecs):
            a.setflags(write=False)
        return mu, evals / max(len(x), 1), evecs, int(np.sum(s > tol))
    return cached(_TRAIN_CACHE, fingerprint(x_train), make)


def effective_rank(x_train: np.ndarray) -> int:
    """The fewest principal directions whose PCA leaves at most EFFECTIVE_RANK_TAIL of the train variance."""
    _, evals, _, r = pca(x_train)
    total = evals[:r].sum()
    if r == 0 or total <= 0:
        return 0
    tail = total - np.cumsum(evals[:r])  # tail[k - 1]: variance PCA-k leaves out
    return int(np.argmax(tail <= EFFECTIVE_RANK_TAIL * total) + 1)


def span_projector(x_train: np.ndarray) -> tuple[np.ndarray, int]:
    """(P_DD, r): the orthogonal projector onto the span of the centred train data and its rank."""
    _, _, evecs, r = pca(x_train)
    u = evecs[:, :r]
    return u @ u.T, r


def _pca_residual(x_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """residual[k]: the test set's squared distance to PCA-k's reconstruction, summed, for k = 0..D."""
    mu, _, evecs, _ = pca(x_train)

    def make():
        xc = np.asarray(x_test, np.float64) - mu
        coef2 = ((xc @ evecs) ** 2).sum(0)
        # residual[k] = energy outside the top k components; all k at once so every code size is O(1)
        kept = np.concatenate([[0.0], np.cumsum(coef2)])
        return np.maximum(kept[-1] - kept, 0.0)

    return cached(_PCA_CACHE, fingerprint(x_train, x_test), make)


def pca_mse(x_train: np.ndarray, x_test: np.ndarray, k: int) -> float:
    """Test MSE per entry of PCA with k components fitted on train (the linear AE optimum)."""
    residual = _pca_residual(x_train, x_test)
    n, d = np.shape(x_test)
    return float(residual[int(min(max(k, 0), d))] / (n * d))


def pca_fvu(x_train: np.ndarray, x_test: np.ndarray, k: float) -> float:
    """Test FVU (energy about the train mean) of PCA-k; a fractional k interpolates linearly between
    PCA-floor(k) and PCA-ceil(k), so a soft count of kept directions gets a soft control."""
    residual = _pca_residual(x_train, x_test)
    k = float(min(max(k, 0.0), len(residual) - 1))
    lo = int(np.floor(k))
    hi = min(lo + 1, len(residual) - 1)
    value = residual[lo] + (k - lo) * (residual[hi] - residual[lo])
    return safe_ratio(value, residual[0])


def probe_accuracy(c_train: np.ndarray, y_train: np.ndarray, c_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised features; nan if features are non-finite."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    c_train, c_test = np.asarray(c_train, np.float64), np.asarray(c_test, np.float64)
    if not (np.all(np.isfinite(c_train)) and np.all(np.isfinite(c_test))):
        return float("nan")
    if len(c_train) > PROBE_MAX_TRAIN:
        keep = np.random.default_rng(0).choice(len(c_train), PROBE_MAX_TRAIN, replace=False)
        c_train, y_train = c_train[keep], np.asarray(y_train)[keep]
    if len(np.unique(y_train)) < 2:
        return float(np.mean(np.asarray(y_test) == np.asarray(y_train)[0]))
    scaler = StandardScaler().fit(c_train)
    # One BLAS thread: these small lbfgs problems ran 10x slower with threads competing for 2 cores.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        # An unconverged probe after PROBE_MAX_ITER is still a fair, deterministic comparison.
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=PROBE_MAX_ITER).fit(scaler.transform(c_train), y_train)
        return float(clf.score(scaler.transform(c_test), y_test))


def raw_probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """`probe_accuracy` on the raw inputs, once per data set (every member of a sweep shares it)."""
    key = fingerprint(x_train, np.asarray(y_train), x_test, np.asarray(y_test))
    return cached(_RAW_PROBE_CACHE, key, lambda: probe_accuracy(x_train, y_train, x_test, y_test))
