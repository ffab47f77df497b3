"""Post-training diagnostics: where a trained map f sits between identity, memorisation and structure.

Every metric of the contract's table is computed on the deterministic mean path f, one compiled
program per group of same-shape members (`evaluate`). The regime rule, applied in this order:

1. `memorizing` if attractor_fraction >= MEMORIZING_ATTRACTORS (noisy training points are carried back
   onto training examples: closer than attractor_radius * noise_std * sqrt(D), and than half the median
   distance from a held-out example to its nearest training example), or if f is (near) constant on the
   test set: const_ratio < CONSTANT_RATIO and jac_rank < CONSTANT_JAC_RANK (not one span direction keeps
   a gain above 0.5; with a single training example the span is {0} and this part is the constant test
   alone).
2. `identity` if jac_rank >= IDENTITY_RANK_FRACTION * data_rank (nearly every span direction passes
   with gain above 0.5) and span_ood_fidelity >= IDENTITY_OOD_FIDELITY (uniform noise, seen through the
   data span, is copied too). Identity is judged on the span (SCIENCE.md: input directions the data never
   move can never be learned), so an AE that copies everything the data span can hold is `identity`
   on a 5-d manifold in R^32 as on digits; `ood_fidelity` (full-space noise) stays reported beside it.
3. `structured` otherwise. A non-finite metric fails every test it appears in.
Beyond the contract, every member also gets each metric in MAP_METRICS (a plug-in registry: one
function of the map and the data); `idempotence` tells a projection (0) from a shrinkage ((1 - a)^2).

Calibration (digits/16, seeded 1347/450 split, r = 61; tests/test_diagnostics.py checks the controls).
On digits span_ood_fidelity equals ood_fidelity to 0.01 (the three off-span pixels are constant).
  map                        jac_rank  span_ood  const_ratio  attractor  regime
  identity                       61        1.00         1.00        0.00     identity
  PCA-59 (r - 2) / PCA-52        59/52     1.00/0.98    1.00        0.00     identity
  PCA-51 / PCA-48                51/48     0.98/0.94    1.00        0.00     structured
  PCA-32 / PCA-8                 32/8      0.67/0.11    0.96/0.66   0.00     structured
  mu + a (x - mu), a = 0.7/0.6   61        0.91/0.84    0.49/0.36   0.00     identity/structured
  mu + 0.3 (x - mu)               0        0.51         0.09        0.00     structured
  train mean (constant)           0        0.00         0.00        0.00     memorizing
  nearest training example        0       -0.09         0.97        1.00     memorizing
A dense 2-d plane in R^32 (2000 points, noise 0.02; held-out examples lie 0.15 from a training example):
the projection PCA-2 carries 100 noisy training points within the fixed radius 0.14 of some training
example (attractor >= 0.5, `memorizing` by the fixed radius alone), none within the capped 0.075
(`structured`); the nearest-training-example map stays at 1.00 (tests/test_diagnostics.py).
Rank-5 Gaussian data in R^20: the span projector PCA-5 has ood_fidelity 0.31 but span_ood 1.00 and is
`identity`; PCA-4 / PCA-3 (rank 4 / 3 < 0.85 r, span_ood 0.87 / 0.65) are `structured`.
Trained 64-K-64 ReLU AEs (Adam 1e-3, batch 128, 2000 steps, 2 seeds): K = 8 -> rank 0.8-2.0,
ood 0.00-0.03 (structured); K = 128 -> rank 49-50, ood 0.91-0.93 (structured); K = 256 (4x) -> rank
55.7-56.9, ood 0.97-0.99 (identity); K = 512 -> rank 56.8, ood 0.97-0.98 (identity). The rank fraction
0.85 (not 0.9) leaves the 4x net a margin of four directions; the fidelity bar 0.9 keeps mere shrinkage
(a < 0.68) out of identity.
"""

import functools
import hashlib
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

IDENTITY_RANK_FRACTION = 0.85
IDENTITY_OOD_FIDELITY = 0.9
MEMORIZING_ATTRACTORS = 0.5
# The attractor radius is attractor_radius * noise_std * sqrt(D), but never more than this fraction of
# the median distance from a held-out example to its nearest training example (over up to
# ATTRACTOR_SPACING_POINTS of them): on a densely sampled low-d manifold the fixed radius exceeds the
# sampling resolution, and a map that merely projects onto the manifold would count as memorising.
ATTRACTOR_SPACING_FRACTION = 0.5
ATTRACTOR_SPACING_POINTS = 512
CONSTANT_RATIO = 0.05
CONSTANT_JAC_RANK = 1.0

JAC_GAIN = 0.5  # a span direction "passes" when its singular value exceeds this (contract)
EXAMPLE_CHUNK = 2048  # rows per forward pass, bounds activation memory on large datasets
MEMBER_BATCH = 8  # members vmapped together inside lax.map; bounds Jacobian memory
JAC_POINT_BATCH = 25  # Jacobian points vmapped together (each costs r forward-mode passes) ...
JAC_TANGENTS = 2048  # ... but at most this many tangents at once, so MNIST-sized spans stay in memory
PROBE_MAX_ITER = 200  # lbfgs on standardised codes converges in ~40 iterations on digits
PROBE_MAX_TRAIN = 10_000  # a fixed subset keeps the probe at seconds on MNIST-sized data
_CACHE_SIZE = 4

Metrics = dict[str, float | int | str]


# ----------------------------------------------------------------------------- closed forms (numpy)

def _fingerprint(*arrays: np.ndarray) -> tuple:
    """A cheap content key: shape, dtype and a hash of the bytes."""
    key = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        key.append((a.shape, a.dtype.str, hashlib.blake2b(a.reshape(-1).view(np.uint8), digest_size=16).digest()))
    return tuple(key)


def _cached(store: dict, key: tuple, make: Callable[[], Any]) -> Any:
    if key not in store:
        if len(store) >= _CACHE_SIZE:
            store.pop(next(iter(store)))
        store[key] = make()
    return store[key]


_TRAIN_CACHE: dict = {}
_PCA_CACHE: dict = {}
_PROBE_CACHE: dict = {}


def _train_pca(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(mu, eigenvalues descending, eigenvectors as columns, rank) of the centred train data, float64."""
    def make():
        x = np.asarray(x_train, np.float64)
        xc = x - x.mean(0)
        # Gram eigenvalues cost N D^2 once; their float64 noise (~1e-8 of s_max after the square root)
        # sits far below the float32 rank tolerance used below.
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        evals, evecs = evals[::-1].clip(0.0), evecs[:, ::-1]
        s = np.sqrt(evals)
        dtype = np.asarray(x_train).dtype
        eps = np.finfo(dtype if dtype.kind == "f" else np.float64).eps
        tol = s[0] * max(x.shape) * eps if s.size else 0.0  # numpy.linalg.matrix_rank's default
        return x.mean(0), evals, evecs, int(np.sum(s > tol))
    return _cached(_TRAIN_CACHE, _fingerprint(x_train), make)


def span_projector(x_train: np.ndarray) -> tuple[np.ndarray, int]:
    """(P_DD, r): the orthogonal projector onto the span of the centred train data and its rank."""
    _, _, evecs, r = _train_pca(x_train)
    u = evecs[:, :r]
    return u @ u.T, r


def pca_mse(x_train: np.ndarray, x_test: np.ndarray, k: int) -> float:
    """Test MSE per entry of PCA with k components fitted on train (the linear AE optimum)."""
    mu, _, evecs, _ = _train_pca(x_train)

    def make():
        xc = np.asarray(x_test, np.float64) - mu
        coef2 = ((xc @ evecs) ** 2).sum(0)
        # residual[k] = energy outside the top k components; all k at once so every code size is O(1)
        kept = np.concatenate([[0.0], np.cumsum(coef2)])
        return kept[-1] - kept

    residual = _cached(_PCA_CACHE, _fingerprint(x_train, x_test), make)
    n, d = np.shape(x_test)
    k = int(min(max(k, 0), d))
    return float(max(residual[k], 0.0) / (n * d))


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


def classify_regime(metrics: dict) -> str:
    """`identity`, `memorizing` or `structured` by the rule in the module docstring."""
    def get(key):
        v = metrics.get(key, float("nan"))
        return float(v) if v is not None else float("nan")

    # With one training example the span is {0}: no direction can pass, so the rank is 0, not unknown.
    rank = 0.0 if metrics.get("data_rank") == 0 else get("jac_rank")
    if get("attractor_fraction") >= MEMORIZING_ATTRACTORS or (
            get("const_ratio") < CONSTANT_RATIO and rank < CONSTANT_JAC_RANK):
        return "memorizing"
    if (get("jac_rank") >= IDENTITY_RANK_FRACTION * get("data_rank")
            and get("span_ood_fidelity") >= IDENTITY_OOD_FIDELITY):
        return "identity"
    return "structured"


# ----------------------------------------------------------------------------- pluggable map metrics


def idempotence(f: Callable[[np.ndarray], np.ndarray], x_train: np.ndarray, x_test: np.ndarray) -> float:
    """E||f(f(x)) - f(x)||^2 / E||f(x) - mu||^2 on the test set: 0 for every projection (the identity,
    PCA-k, a map onto a manifold, a constant), (1 - a)^2 for the shrinkage mu + a (x - mu)."""
    mu = np.asarray(x_train, np.float64).mean(0)
    fx = np.asarray(f(x_test), np.float64)
    ffx = np.asarray(f(fx.astype(np.float32)), np.float64)
    return _ratio(((ffx - fx) ** 2).sum(), ((fx - mu) ** 2).sum())


# A metric of the trained map is one function (f, x_train, x_test) -> float and one line here; f takes
# any (N, D) float32 array to the member's mean-path outputs. Every member of every sweep gets it.
MAP_METRICS: dict[str, Callable[[Callable, np.ndarray, np.ndarray], float]] = {
    "idempotence": idempotence,
}


# ----------------------------------------------------------------------------- probe inputs

def _chunk(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_CBD, w_CB): rows padded with zeros to whole chunks, and a 0/1 weight per row."""
    n = len(x)
    b = min(EXAMPLE_CHUNK, max(n, 1))
    c = -(-n // b)
    pad = np.zeros((c * b - n,) + x.shape[1:], np.float32)
    xs = np.concatenate([np.asarray(x, np.float32), pad]).reshape((c, b) + x.shape[1:])
    w = (np.arange(c * b) < n).astype(np.float32).reshape(c, b)
    return xs, w


def median_nearest_distance(x_train: np.ndarray, x_query: np.ndarray) -> float:
    """Median over the query points of the distance to their nearest training example (inf if none)."""
    if len(x_query) == 0 or len(x_train) == 0:
        return float("inf")
    q = np.float64(x_query)
    best = np.full(len(q), np.inf)
    for start in range(0, len(x_train), EXAMPLE_CHUNK):
        t = np.float64(x_train[start:start + EXAMPLE_CHUNK])
        d2 = (q ** 2).sum(1)[:, None] - 2 * q @ t.T + (t ** 2).sum(1)[None]
        best = np.minimum(best, d2.min(1))
    return float(np.median(np.sqrt(np.maximum(best, 0.0))))


def make_probes(x_train: np.ndarray, x_test: np.ndarray, diag_cfg: ml_collections.ConfigDict,
                seed: int = 0) -> dict[str, Any]:
    """The inputs every member is evaluated on (seeded, shared by all members) and their host constants."""
    cfg = (float(diag_cfg.noise_std), int(diag_cfg.jac_points), int(diag_cfg.ood_samples),
           int(diag_cfg.attractor_points), int(diag_cfg.attractor_iters), float(diag_cfg.attractor_radius))
    key = _fingerprint(x_train, x_test) + (cfg, int(seed), EXAMPLE_CHUNK)
    return _cached(_PROBE_CACHE, key, lambda: _make_probes(x_train, x_test, *cfg, seed))


def _make_probes(x_train, x_test, s, jac_points, ood_samples, attractor_points, attractor_iters,
                 attractor_radius, seed) -> dict[str, Any]:
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    n_train, d = x_train.shape
    mu, _, evecs, r = _train_pca(x_train)
    key = jax.random.key(seed)
    k_ood, k_noise, k_jac, k_att_idx, k_att_noise = (jax.random.fold_in(key, i) for i in range(5))
    lo, hi = x_train.min(0), x_train.max(0)
    ood = np.asarray(jax.random.uniform(k_ood, (ood_samples, d), minval=lo, maxval=hi), np.float32)
    noise = s * np.asarray(jax.random.normal(k_noise, x_test.shape), np.float32)
    jac_idx = np.sort(np.asarray(jax.random.permutation(k_jac, len(x_test))[:jac_points]))
    att_idx = np.sort(np.asarray(jax.random.permutation(k_att_idx, n_train)[:attractor_points]))
    att_start = x_train[att_idx] + s * np.asarray(
        jax.random.normal(k_att_noise, (len(att_idx), d)), np.float32)
    held_out = np.asarray(jax.random.permutation(jax.random.fold_in(key, 5), len(x_test)))
    spacing = median_nearest_distance(x_train, x_test[held_out[:ATTRACTOR_SPACING_POINTS]])
    att_radius = min(attractor_radius * s * np.sqrt(d), ATTRACTOR_SPACING_FRACTION * spacing)

    train_x, train_w = _chunk(x_train)
    test_x, test_w = _chunk(x_test)
    noise_x, _ = _chunk(noise)
    ood_x, ood_w = _chunk(ood)
    # the same uniform points seen only through the data span: what identity-on-the-span must copy
    basis = evecs[:, :r]
    span_ood = (mu + (np.float64(ood) - mu) @ basis @ basis.T).astype(np.float32)
    span_x, _ = _chunk(span_ood)
    x64, e64, z64 = np.float64(x_test) - mu, np.float64(noise), np.float64(ood) - mu
    s64 = np.float64(span_ood) - mu
    arrays = dict(
        mu=np.float32(mu), basis=np.float32(evecs[:, :r]),
        test_x=test_x, test_w=test_w, noise_x=noise_x,
        ood_x=ood_x, ood_w=ood_w, span_x=span_x, jac_x=x_test[jac_idx], att_x=att_start,
        att_iters=np.int32(attractor_iters),
        att_radius2=np.float32(att_radius ** 2),
    )
    return dict(
        arrays=arrays, train_x=train_x, train_w=train_w,  # host: streamed through `_train_pass`
        d=d, r=r, n_train=n_train, n_test=len(x_test), noise=noise, ood=ood,
        test_ss=float((x64 ** 2).sum()), noise_ss=float((e64 ** 2).sum()), ood_ss=float((z64 ** 2).sum()),
        span_ss=float((s64 ** 2).sum()),
        test_cov_trace=float(((x64 - x64.mean(0)) ** 2).sum() / len(x_test)),
    )


# ----------------------------------------------------------------------------- per-member statistics (jitted)

def _sq(a: jax.Array) -> jax.Array:
    return jnp.sum(a * a, axis=-1)


def _span_jacobian(f: Callable, basis_Dr: jax.Array, x_D: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(singular values, trace) of U^T J_f(x) U, the Jacobian seen on the data span; NaN if not finite."""
    g = lambda v: f(v[None])[0]
    ju_rD = jax.vmap(lambda u: jax.jvp(g, (x_D,), (u,))[1])(basis_Dr.T)  # forward mode on span only
    a_rr = ju_rD @ basis_Dr
    ok = jnp.all(jnp.isfinite(a_rr))
    sv = jnp.linalg.svd(jnp.where(ok, a_rr, 0.0), compute_uv=False)
    return jnp.where(ok, sv, jnp.nan), jnp.where(ok, jnp.trace(a_rr), jnp.nan)


def jacobian_spectrum(reconstruct: Callable, params: Any, x_train: np.ndarray, x_points: np.ndarray) -> np.ndarray:
    """(points, r) singular values, largest first, of one member's Jacobian on the train data span.

    `reconstruct(params, x_BD)` is a static argument: pass the same function object for every member
    of a model spec and they all share one compiled program."""
    _, _, evecs, r = _train_pca(np.asarray(x_train, np.float32))
    if r == 0:
        return np.zeros((len(x_points), 0), np.float32)
    basis = jnp.asarray(evecs[:, :r], jnp.float32)
    return np.asarray(_spectrum(reconstruct, params, basis, jnp.asarray(x_points, jnp.float32)))


@functools.partial(jax.jit, static_argnames=("reconstruct",))
def _spectrum(reconstruct: Callable, params: Any, basis_Dr: jax.Array, x_PD: jax.Array) -> jax.Array:
    f = lambda x_BD: reconstruct(params, x_BD)
    return jax.vmap(lambda x: _span_jacobian(f, basis_Dr, x)[0])(x_PD)


def _member_stats(reconstruct: Callable, params: Any, a: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Everything one member contributes, as per-example or per-chunk arrays (summed on the host in float64)."""
    f = lambda x_BD: reconstruct(params, x_BD)

    def test_chunk(xew):
        x, e, w = xew
        fx = f(x)
        n = jnp.sum(w)
        mean = jnp.sum(jnp.where(w[:, None] > 0, fx, 0.0), 0) / n
        # per-chunk (n, mean, M2) merge exactly on the host: no cancellation for near-constant maps
        m2 = jnp.sum(jnp.where(w > 0, _sq(fx - mean), 0.0))
        return dict(se=jnp.where(w > 0, _sq(x - fx), 0.0), denoise=jnp.where(w > 0, _sq(f(x + e) - x), 0.0),
                    n=n, mean=mean, m2=m2)

    def ood_chunk(zw):
        z, w = zw
        return jnp.where(w > 0, _sq(z - f(z)), 0.0)

    out = dict(
        test=jax.lax.map(test_chunk, (a["test_x"], a["noise_x"], a["test_w"])),
        ood_se=jax.lax.map(ood_chunk, (a["ood_x"], a["ood_w"])),
        span_se=jax.lax.map(ood_chunk, (a["span_x"], a["ood_w"])),
    )

    basis = a["basis"]  # (D, r): P = U U^T, so the spectrum of P J P is that of U^T J U (r x r)
    if basis.shape[1] > 0:
        def jac_point(x_D):
            sv, trace = _span_jacobian(f, basis, x_D)
            rank = jnp.sum(sv > JAC_GAIN).astype(jnp.float32)
            return jnp.where(jnp.isfinite(trace), rank, jnp.nan), trace
        points = max(1, min(JAC_POINT_BATCH, JAC_TANGENTS // basis.shape[1]))
        out["jac_rank"], out["jac_trace"] = jax.lax.map(jac_point, a["jac_x"], batch_size=points)

    out["att_end"] = jax.lax.fori_loop(0, a["att_iters"], lambda _, x: f(x).astype(x.dtype), a["att_x"])
    return out


@functools.partial(jax.jit, static_argnames=("reconstruct", "batch"))
def _train_chunk_stats(reconstruct: Callable, params_M: Any, end_MAD: jax.Array, x_BD: jax.Array,
                       w_B: jax.Array, mu_D: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """One chunk of the train set against every member: (squared errors (M, B), each attractor end
    point's smallest squared distance to the chunk's examples (M, A)). The train set streams through
    here a chunk at a time, so it never has to fit on the device whole."""
    t_c = x_BD - mu_D  # centring keeps the expanded squared distance free of cancellation

    def one(p_end):
        params, end = p_end
        se = jnp.where(w_B > 0, _sq(x_BD - reconstruct(params, x_BD)), 0.0)
        end_c = end - mu_D
        d2 = _sq(end_c)[:, None] - 2.0 * end_c @ t_c.T + _sq(t_c)[None, :]
        return se, jnp.min(jnp.where(w_B[None, :] > 0, d2, jnp.inf), axis=1)

    return jax.lax.map(one, (params_M, end_MAD), batch_size=batch)


def _train_pass(reconstruct: Callable, params_M: Any, end_MAD: np.ndarray, train_x: np.ndarray,
                train_w: np.ndarray, mu_D: np.ndarray, n_members: int) -> tuple[np.ndarray, np.ndarray]:
    """(train squared error sum (M,), nearest-train squared distance of each attractor end (M, A))."""
    batch, params_M = _pad_members(params_M, n_members)
    end_MAD = _pad_members(jnp.asarray(end_MAD), n_members)[1]
    se_sum = np.zeros(len(end_MAD), np.float64)
    d2_min = np.full(end_MAD.shape[:2], np.inf)
    for x_BD, w_B in zip(train_x, train_w):
        se, d2 = jax.device_get(_train_chunk_stats(reconstruct, params_M, end_MAD, x_BD, w_B, mu_D, batch))
        se_sum += se.astype(np.float64).sum(1)
        d2_min = np.minimum(d2_min, d2)
    return se_sum[:n_members], d2_min[:n_members]


def _pad_members(tree: Any, n_members: int) -> tuple[int, Any]:
    """(batch, tree with members padded to whole batches by repeating the last one)."""
    batch = min(MEMBER_BATCH, n_members)
    pad = -n_members % batch
    if pad:
        # Repeating the last member keeps one traced body: a remainder batch would be a second compile.
        tree = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), tree)
    return batch, tree


@functools.partial(jax.jit, static_argnames=("reconstruct", "batch"))
def _group_stats(reconstruct: Callable, params_M: Any, arrays: dict[str, jax.Array],
                 batch: int) -> dict[str, jax.Array]:
    """All members of one shape group in one program; lax.map vmaps `batch` members at a time."""
    return jax.lax.map(lambda p: _member_stats(reconstruct, p, arrays), params_M, batch_size=batch)


def _stats(reconstruct: Callable, params_M: Any, arrays: dict[str, jax.Array], n_members: int) -> dict:
    """Host copies of every member's statistics, members padded to whole batches."""
    batch, params_M = _pad_members(params_M, n_members)
    stats = jax.device_get(_group_stats(reconstruct, params_M, arrays, batch))
    return jax.tree.map(lambda v: v[:n_members], stats)


@functools.partial(jax.jit, static_argnames=("encode",))
def _member_codes(encode: Callable, params_M: Any, m: jax.Array, x_CBD: jax.Array) -> jax.Array:
    """Member m's codes for chunked inputs; m is traced so every member reuses one program."""
    params = jax.tree.map(lambda p: jax.lax.dynamic_index_in_dim(p, m, keepdims=False), params_M)
    return jax.lax.map(lambda x: encode(params, x), x_CBD)


# ----------------------------------------------------------------------------- evaluate

def _finite(v: float) -> float:
    v = float(v)
    return v if np.isfinite(v) else float("nan")


def _ratio(num: float, den: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finite(np.float64(num) / np.float64(den))


@functools.partial(jax.jit, static_argnames=("reconstruct",))
def _apply(reconstruct: Callable, params: Any, x_BD: jax.Array) -> jax.Array:
    return reconstruct(params, x_BD)


def _chunked(reconstruct: Callable, params: Any) -> Callable[[np.ndarray], np.ndarray]:
    """x_ND -> f(x_ND) on the host, EXAMPLE_CHUNK rows per call (bounded memory on large test sets)."""
    def f(x_ND):
        x_ND = np.asarray(x_ND, np.float32)
        return np.concatenate([np.asarray(_apply(reconstruct, params, x_ND[i:i + EXAMPLE_CHUNK]))
                               for i in range(0, len(x_ND), EXAMPLE_CHUNK)])
    return f


def evaluate(reconstruct: Callable, encode: Callable, params_M: Any, x_train: np.ndarray, x_test: np.ndarray,
             y_train: np.ndarray | None, y_test: np.ndarray | None, code_sizes: Sequence[int],
             diag_cfg: ml_collections.ConfigDict, seed: int = 0) -> list[Metrics]:
    """One flat, JSON-ready metrics dict per member of a same-shape group (the contract's table)."""
    probes = make_probes(x_train, x_test, diag_cfg, seed)
    d, r = probes["d"], probes["r"]
    n_members = jax.tree.leaves(params_M)[0].shape[0]
    if len(code_sizes) != n_members:
        raise ValueError(f"evaluate: {len(code_sizes)} code sizes for {n_members} members")
    # on device once: the probe's per-member calls would otherwise re-send host arrays every time
    arrays, params_M = jax.device_put((probes["arrays"], params_M))
    stats = _stats(reconstruct, params_M, arrays, n_members)
    train_se_M, att_d2_MA = _train_pass(reconstruct, params_M, stats["att_end"], probes["train_x"],
                                        probes["train_w"], probes["arrays"]["mu"], n_members)
    captured_MA = np.all(np.isfinite(stats["att_end"]), axis=-1) & (
        np.maximum(att_d2_MA, 0.0) <= probes["arrays"]["att_radius2"])

    train_keep = probes["train_w"].reshape(-1) > 0
    test_keep = probes["arrays"]["test_w"].reshape(-1) > 0
    ood_keep = probes["arrays"]["ood_w"].reshape(-1) > 0
    with_probe = y_train is not None and y_test is not None and diag_cfg.get("probe", True)

    results = []
    for m in range(n_members):
        t = jax.tree.map(lambda v: np.asarray(v[m], np.float64), stats["test"])
        train_se = train_se_M[m]
        test_se = t["se"].reshape(-1)[test_keep].sum()
        denoise = t["denoise"].reshape(-1)[test_keep].sum()
        ood_se = stats["ood_se"][m].reshape(-1)[ood_keep].astype(np.float64).sum()
        span_se = stats["span_se"][m].reshape(-1)[ood_keep].astype(np.float64).sum()
        # Chan et al.'s merge of per-chunk (n, mean, M2): total M2 = sum M2_c + sum n_c |mean_c - mean|^2
        mean = (t["n"][:, None] * t["mean"]).sum(0) / t["n"].sum()
        m2 = t["m2"].sum() + (t["n"] * ((t["mean"] - mean) ** 2).sum(-1)).sum()
        if r > 0:
            jac_rank = _finite(np.mean(stats["jac_rank"][m].astype(np.float64)))
            jac_trace = _ratio(np.mean(stats["jac_trace"][m].astype(np.float64)), r)
        else:
            jac_rank = jac_trace = float("nan")
        metrics: Metrics = dict(
            train_mse=_ratio(train_se, probes["n_train"] * d),
            test_mse=_ratio(test_se, probes["n_test"] * d),
            test_fvu=_ratio(test_se, probes["test_ss"]),
            pca_mse=pca_mse(x_train, x_test, min(int(code_sizes[m]), d)),
            ood_fidelity=_finite(1.0 - _ratio(ood_se, probes["ood_ss"])),
            span_ood_fidelity=_finite(1.0 - _ratio(span_se, probes["span_ss"])),
            jac_rank=jac_rank,
            jac_trace=jac_trace,
            denoise_gain=_ratio(denoise, probes["noise_ss"]),
            const_ratio=_ratio(m2 / probes["n_test"], probes["test_cov_trace"]),
            attractor_fraction=float(np.mean(captured_MA[m])),
        )
        if with_probe:
            # a chunk at a time: the train set need not fit on the device
            codes = lambda xs, keep: np.concatenate([np.asarray(_member_codes(
                encode, params_M, jnp.int32(m), x[None]))[0] for x in xs]).reshape(keep.size, -1)[keep]
            metrics["probe_acc"] = probe_accuracy(codes(probes["train_x"], train_keep), y_train,
                                                  codes(arrays["test_x"], test_keep), y_test)
        member_f = _chunked(reconstruct, jax.tree.map(lambda p: p[m], params_M))
        for name, metric in MAP_METRICS.items():
            metrics[name] = _finite(metric(member_f, x_train, x_test))
        metrics["data_rank"] = int(r)
        metrics["input_dim"] = int(d)
        metrics["regime"] = classify_regime(metrics)
        results.append(metrics)
    return results
