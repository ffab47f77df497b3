"""Post-training diagnostics: every metric of a trained map f that the regime rule (ae_jax/regime.py) reads.

All metrics are measured on the deterministic mean path f, one compiled program per group of same-shape
members (`evaluate`); docs/regime.md defines each results.jsonl key with its formula. What the probes
are, in short (mu: train mean; P: projector onto the span of the centred train data, rank r; w: each
input coordinate's train range max - min):
  reconstruction  train/test error, both as FVU against the held-out energy about mu (`train_fvu`,
                  `test_fvu`, `gen_gap`), beside PCA controls (`pca_mse` at the code size, `pca_kept_fvu`
                  at the map's own kept count capped by the data's `effective_rank`);
  copying         uniform points in the train box seen through the span (`span_ood_fidelity`) and
                  range-weighted perturbations p = P (PERTURB_FRACTION w * n) of test points
                  (`perturb_fidelity`, `perturb_gain`): each input coordinate weighs by its range, and
                  directions where the train data is exactly constant are projected out;
  local map       Jacobian on the span: `jac_rank`, `jac_trace`, `kept_dims` (its stable rank);
  noise           `denoise_gain` and `noise_gain` at s = `noise_std` (isotropic, every coordinate);
  memorisation    `attractor_fraction` (training points moved along the data's effective directions,
                  iterated through f, end on a training example), `snap_fraction` (f of a test point
                  lands on a training example);
  constancy       `const_ratio` (output spread over input spread);
  probe           with labels, `probe_acc` (a logistic regression on the codes) beside its two references:
                  `probe_acc_init` (the same probe on the codes of the member's untrained initial
                  parameters: what the architecture gives before any training) and `probe_acc_raw` (on
                  the raw inputs: what the identity map gives).
Beyond the contract, every member also gets each metric in MAP_METRICS (a plug-in registry: one function of
the map and the data); `idempotence` tells a projection (0) from a shrinkage ((1 - a)^2). The closed forms
they are measured against (`pca`, the PCA-k controls, the probe) live in `ae_jax/closed_forms.py`.
"""

import contextlib
import functools
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ae_jax import regime, sharding
from ae_jax.closed_forms import finite as _finite, safe_ratio as _ratio
from ae_jax.closed_forms import (cached, effective_rank, fingerprint, pca, pca_fvu, pca_mse, probe_accuracy,  # noqa: F401
                                 raw_probe_accuracy, span_projector)  # (re-exported: the metrics' closed forms)

# The attractor radius is attractor_radius * noise_std * sqrt(D), but never more than this fraction of
# the median distance from a held-out example to its nearest training example (over up to
# ATTRACTOR_SPACING_POINTS of them): on a densely sampled low-d manifold the fixed radius exceeds the
# sampling resolution, and a map that merely projects onto the manifold would count as memorising.
ATTRACTOR_SPACING_FRACTION = 0.5
ATTRACTOR_SPACING_POINTS = 512
# Identity perturbations: std PERTURB_FRACTION x the coordinate's train range, so every coordinate is
# probed at the scale the data spans there (not at its variance, and not at one absolute level).
PERTURB_FRACTION = 0.1

JAC_GAIN = 0.5  # a span direction "passes" when its singular value exceeds this (contract)
EXAMPLE_CHUNK = 2048  # rows per forward pass, bounds activation memory on large datasets
MEMBER_BATCH = 8  # members vmapped together inside lax.map; bounds Jacobian memory
JAC_POINT_BATCH = 25  # Jacobian points vmapped together (each costs r forward-mode passes) ...
JAC_TANGENTS = 2048  # ... but at most this many tangents at once, so MNIST-sized spans stay in memory

Metrics = dict[str, float | int | str]
_PROBE_CACHE: dict = {}  # make_probes' inputs, by data content and settings


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
    key = fingerprint(x_train, x_test) + (cfg, int(seed), EXAMPLE_CHUNK, PERTURB_FRACTION)
    return cached(_PROBE_CACHE, key, lambda: _make_probes(x_train, x_test, *cfg, seed))


def _make_probes(x_train, x_test, s, jac_points, ood_samples, attractor_points, attractor_iters,
                 attractor_radius, seed) -> dict[str, Any]:
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    n_train, d = x_train.shape
    mu, _, evecs, r = pca(x_train)
    basis = evecs[:, :r]
    key = jax.random.key(seed)
    k_ood, k_noise, k_jac, k_att_idx, k_att_noise, k_held, k_pert = (jax.random.fold_in(key, i) for i in range(7))
    lo, hi = x_train.min(0), x_train.max(0)
    ood = np.asarray(jax.random.uniform(k_ood, (ood_samples, d), minval=lo, maxval=hi), np.float32)
    noise = s * np.asarray(jax.random.normal(k_noise, x_test.shape), np.float32)
    # range-weighted, span-projected: every coordinate at the scale the data spans there, nothing along
    # directions where the train data is exactly constant (unlearnable, so not asked of the identity)
    raw = PERTURB_FRACTION * np.float64(hi - lo) * np.asarray(jax.random.normal(k_pert, x_test.shape), np.float64)
    pert = ((raw @ basis) @ basis.T).astype(np.float32)
    jac_idx = np.sort(np.asarray(jax.random.permutation(k_jac, len(x_test))[:jac_points]))
    att_idx = np.sort(np.asarray(jax.random.permutation(k_att_idx, n_train)[:attractor_points]))
    # Attractor starts move along the data's effective directions only: isotropic noise in high D lies
    # mostly off them, and any map onto the data (PCA-k, a denoiser) removes it and lands back near the
    # training example without having memorised it. With no such direction (one example): isotropic.
    eff = effective_rank(x_train)
    along = evecs[:, :eff] if eff else np.eye(d)
    att_noise = np.asarray(jax.random.normal(k_att_noise, (len(att_idx), along.shape[1])), np.float64)
    att_start = (x_train[att_idx] + s * att_noise @ along.T).astype(np.float32)
    # Test rows go to the device in a seeded order (sums do not care): the first rows of the first chunk
    # are then a random held-out sample, the snap points.
    order = np.asarray(jax.random.permutation(k_held, len(x_test)))
    spacing = median_nearest_distance(x_train, x_test[order[:ATTRACTOR_SPACING_POINTS]])
    att_radius = min(attractor_radius * s * np.sqrt(along.shape[1]), ATTRACTOR_SPACING_FRACTION * spacing)

    train_x, train_w = _chunk(x_train)
    test_x, test_w = _chunk(x_test[order])
    noise_x, _ = _chunk(noise[order])
    pert_x, _ = _chunk(pert[order])
    ood_x, ood_w = _chunk(ood)
    # the same uniform points seen only through the data span: what identity-on-the-span must copy
    span_ood = (mu + (np.float64(ood) - mu) @ basis @ basis.T).astype(np.float32)
    span_x, _ = _chunk(span_ood)
    x64, z64, s64 = np.float64(x_test) - mu, np.float64(ood) - mu, np.float64(span_ood) - mu
    arrays = dict(
        mu=np.float32(mu), basis=np.float32(basis),
        test_x=test_x, test_w=test_w, noise_x=noise_x, pert_x=pert_x,
        ood_x=ood_x, ood_w=ood_w, span_x=span_x, jac_x=x_test[jac_idx], att_x=att_start,
        att_iters=np.int32(attractor_iters),
    )
    return dict(
        arrays=arrays, train_x=train_x, train_w=train_w,  # host: streamed through `_train_pass`
        test_order=order, n_snap=min(attractor_points, test_x.shape[1]),
        d=d, r=r, n_train=n_train, n_test=len(x_test), noise=noise, ood=ood, pert=pert, noise_std=s,
        att_radius2=float(att_radius ** 2), effective_rank=eff,
        test_ss=float((x64 ** 2).sum()), noise_ss=float((np.float64(noise) ** 2).sum()),
        pert_ss=float((np.float64(pert) ** 2).sum()), ood_ss=float((z64 ** 2).sum()),
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
    _, _, evecs, r = pca(np.asarray(x_train, np.float32))
    if r == 0:
        return np.zeros((len(x_points), 0), np.float32)
    basis = jnp.asarray(evecs[:, :r], jnp.float32)
    return np.asarray(_spectrum(reconstruct, params, basis, jnp.asarray(x_points, jnp.float32)))


@functools.partial(jax.jit, static_argnames=("reconstruct",))
def _spectrum(reconstruct: Callable, params: Any, basis_Dr: jax.Array, x_PD: jax.Array) -> jax.Array:
    f = lambda x_BD: reconstruct(params, x_BD)
    return jax.vmap(lambda x: _span_jacobian(f, basis_Dr, x)[0])(x_PD)


def _member_stats(reconstruct: Callable, params: Any, a: dict[str, jax.Array],
                  n_snap: int) -> dict[str, jax.Array]:
    """Everything one member contributes, as per-example or per-chunk arrays (summed on the host in float64).

    Each call of f inlines the whole network into the program, so inputs that can share a call do
    (clean, noisy and perturbed test rows; uniform points and their span projections): compile time
    grows with the number of calls, not with the rows."""
    f = lambda x_BD: reconstruct(params, x_BD)

    def test_chunk(xepw):
        x, e, p, w = xepw
        b = x.shape[0]
        keep = lambda v: jnp.where(w > 0, v, 0.0)
        out = f(jnp.concatenate([x, x + e, x + p]))
        fx, fxe, fxp = out[:b], out[b:2 * b], out[2 * b:]
        n = jnp.sum(w)
        mean = jnp.sum(jnp.where(w[:, None] > 0, fx, 0.0), 0) / n
        # per-chunk (n, mean, M2) merge exactly on the host: no cancellation for near-constant maps
        m2 = jnp.sum(keep(_sq(fx - mean)))
        return dict(se=keep(_sq(x - fx)), denoise=keep(_sq(fxe - x)), noise_out=keep(_sq(fxe - fx)),
                    pert_out=keep(_sq(fxp - fx)), pert_err=keep(_sq(fxp - fx - p)), n=n, mean=mean, m2=m2,
                    head=fx[:n_snap])

    def ood_chunk(zsw):
        z, zs, w = zsw
        b = z.shape[0]
        out = f(jnp.concatenate([z, zs]))
        return jnp.where(w > 0, _sq(z - out[:b]), 0.0), jnp.where(w > 0, _sq(zs - out[b:]), 0.0)

    out = dict(test=jax.lax.map(test_chunk, (a["test_x"], a["noise_x"], a["pert_x"], a["test_w"])))
    out["ood_se"], out["span_se"] = jax.lax.map(ood_chunk, (a["ood_x"], a["span_x"], a["ood_w"]))
    out["snap_end"] = out["test"].pop("head")[0]  # f of the first (random) held-out rows

    basis = a["basis"]  # (D, r): P = U U^T, so the spectrum of P J P is that of U^T J U (r x r)
    if basis.shape[1] > 0:
        def jac_point(x_D):
            sv, trace = _span_jacobian(f, basis, x_D)
            rank = jnp.sum(sv > JAC_GAIN).astype(jnp.float32)
            # stable rank ||J||_F^2 / ||J||_2^2: k for a rank-k projection, r for any isotropic scaling
            top = jnp.max(sv) ** 2
            stable = jnp.where(top > 0, jnp.sum(sv ** 2) / jnp.where(top > 0, top, 1.0), 0.0)
            finite = jnp.isfinite(trace)
            return jnp.where(finite, rank, jnp.nan), trace, jnp.where(finite, stable, jnp.nan)
        points = max(1, min(JAC_POINT_BATCH, JAC_TANGENTS // basis.shape[1]))
        out["jac_rank"], out["jac_trace"], out["kept"] = jax.lax.map(jac_point, a["jac_x"], batch_size=points)

    out["att_end"] = jax.lax.fori_loop(0, a["att_iters"], lambda _, x: f(x).astype(x.dtype), a["att_x"])
    return out


@functools.partial(jax.jit, static_argnames=("reconstruct", "batch"))
def _train_chunk_stats(reconstruct: Callable, params_M: Any, end_MAD: jax.Array, x_BD: jax.Array,
                       w_B: jax.Array, mu_D: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
    """One chunk of the train set against every member: (squared errors (M, B), each end point's
    smallest squared distance to the chunk's examples (M, A)). The train set streams through here a
    chunk at a time, so it never has to fit on the device whole."""
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
    """(train squared error sum (M,), nearest-train squared distance of each end point (M, A))."""
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
    # One member at a time on the CPU: a vmapped batch's reductions round by its size (sharding.member_invariant).
    batch = 1 if sharding.member_invariant() else min(MEMBER_BATCH, n_members)
    pad = -n_members % batch
    if pad:
        # Repeating the last member keeps one traced body: a remainder batch would be a second compile.
        tree = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), tree)
    return batch, tree


@functools.partial(jax.jit, static_argnames=("reconstruct", "batch", "n_snap"))
def _group_stats(reconstruct: Callable, params_M: Any, arrays: dict[str, jax.Array],
                 batch: int, n_snap: int) -> dict[str, jax.Array]:
    """All members of one shape group in one program; lax.map vmaps `batch` members at a time."""
    return jax.lax.map(lambda p: _member_stats(reconstruct, p, arrays, n_snap), params_M, batch_size=batch)


@functools.partial(jax.jit, static_argnames=("reconstruct", "n_snap"))
def _one_member_stats(reconstruct: Callable, params: Any, arrays: dict[str, jax.Array], n_snap: int) -> dict:
    return _member_stats(reconstruct, params, arrays, n_snap)


def _stats(reconstruct: Callable, params_M: Any, host_params_M: Any, arrays: dict[str, jax.Array],
           n_members: int, n_snap: int) -> dict:
    """Host copies of every member's statistics, members padded to whole batches."""
    if sharding.member_invariant():
        # One member per call on the CPU, sliced outside the program, so the program never sees the group
        # (sharding.member_invariant); a lax.map over members around the chunk maps hung XLA:CPU.
        each = [jax.device_get(_one_member_stats(reconstruct, jax.tree.map(lambda a, m=m: a[m], host_params_M),
                                                 arrays, n_snap)) for m in range(n_members)]
        return jax.tree.map(lambda *v: np.stack(v), *each)
    batch, params_M = _pad_members(params_M, n_members)
    stats = jax.device_get(_group_stats(reconstruct, params_M, arrays, batch, n_snap))
    return jax.tree.map(lambda v: v[:n_members], stats)


@functools.partial(jax.jit, static_argnames=("encode",))
def _member_codes(encode: Callable, params_M: Any, m: jax.Array, x_CBD: jax.Array) -> jax.Array:
    """Member m's codes for chunked inputs; m is traced so every member reuses one program."""
    params = jax.tree.map(lambda p: jax.lax.dynamic_index_in_dim(p, m, keepdims=False), params_M)
    return jax.lax.map(lambda x: encode(params, x), x_CBD)


# ----------------------------------------------------------------------------- evaluate


class _Clock:
    """Wall seconds per named part, added into `timings` (nothing when it is None)."""

    def __init__(self, timings: dict | None):
        self.timings, self._part, self._t0 = timings, None, 0.0

    def start(self, part: str) -> None:
        self._part, self._t0 = part, time.perf_counter()

    def stop(self) -> None:
        if self.timings is not None:
            self.timings[self._part] = self.timings.get(self._part, 0.0) + time.perf_counter() - self._t0

    @contextlib.contextmanager
    def __call__(self, part: str):
        self.start(part)
        try:
            yield
        finally:
            self.stop()

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
             diag_cfg: ml_collections.ConfigDict, seed: int = 0, init_params_M: Any = None,
             timings: dict | None = None) -> list[Metrics]:
    """One flat, JSON-ready metrics dict per member of a same-shape group (docs/regime.md lists the keys);
    `init_params_M`, the members' untrained initial parameters (same structure), adds `probe_acc_init`.
    `timings`, if given, accumulates wall seconds per part (compiles included): `diagnostics_probes_s`
    (the probe inputs), `diagnostics_map_s` (the test, off-data, Jacobian and attractor program),
    `diagnostics_train_pass_s`, `diagnostics_probe_s` (the logistic probes) and `diagnostics_plugins_s`."""
    clock = _Clock(timings)
    with clock("diagnostics_probes_s"):
        probes = make_probes(x_train, x_test, diag_cfg, seed)
    d, r, eff = probes["d"], probes["r"], probes["effective_rank"]
    n_members = jax.tree.leaves(params_M)[0].shape[0]
    if len(code_sizes) != n_members:
        raise ValueError(f"evaluate: {len(code_sizes)} code sizes for {n_members} members")
    # One member's parameters are sliced on the host (slicing device arrays compiles a program per leaf
    # shape); the stacked ones go to the device once, for the programs that index members themselves.
    host_params_M = jax.device_get(params_M)
    arrays, params_M, init_params_M = jax.device_put((probes["arrays"], params_M, init_params_M))
    with clock("diagnostics_map_s"):
        stats = _stats(reconstruct, params_M, host_params_M, arrays, n_members, probes["n_snap"])
    ends = np.concatenate([stats["att_end"], stats["snap_end"]], axis=1)  # one pass over the train set
    with clock("diagnostics_train_pass_s"):
        train_se_M, end_d2_MA = _train_pass(reconstruct, params_M, ends, probes["train_x"],
                                            probes["train_w"], probes["arrays"]["mu"], n_members)
    captured_MA = np.all(np.isfinite(ends), axis=-1) & (np.maximum(end_d2_MA, 0.0) <= probes["att_radius2"])
    n_att = stats["att_end"].shape[1]

    train_keep = probes["train_w"].reshape(-1) > 0
    test_keep = probes["arrays"]["test_w"].reshape(-1) > 0
    ood_keep = probes["arrays"]["ood_w"].reshape(-1) > 0
    with_probe = y_train is not None and y_test is not None and diag_cfg.get("probe", True)
    energy = probes["test_ss"] / probes["n_test"]  # held-out energy about the train mean, per example

    results = []
    for m in range(n_members):
        t = jax.tree.map(lambda v: np.asarray(v[m], np.float64), stats["test"])
        total = lambda name: t[name].reshape(-1)[test_keep].sum()
        test_se = total("se")
        ood_se = stats["ood_se"][m].reshape(-1)[ood_keep].astype(np.float64).sum()
        span_se = stats["span_se"][m].reshape(-1)[ood_keep].astype(np.float64).sum()
        # Chan et al.'s merge of per-chunk (n, mean, M2): total M2 = sum M2_c + sum n_c |mean_c - mean|^2
        mean = (t["n"][:, None] * t["mean"]).sum(0) / t["n"].sum()
        m2 = t["m2"].sum() + (t["n"] * ((t["mean"] - mean) ** 2).sum(-1)).sum()
        if r > 0:
            jac_rank = _finite(np.mean(stats["jac_rank"][m].astype(np.float64)))
            jac_trace = _ratio(np.mean(stats["jac_trace"][m].astype(np.float64)), r)
            kept = _finite(np.mean(stats["kept"][m].astype(np.float64)))
        else:
            jac_rank = jac_trace = kept = float("nan")
        train_fvu = _ratio(train_se_M[m] / probes["n_train"], energy)
        test_fvu = _ratio(test_se, probes["test_ss"])
        metrics: Metrics = dict(
            train_mse=_ratio(train_se_M[m], probes["n_train"] * d),
            test_mse=_ratio(test_se, probes["n_test"] * d),
            test_fvu=test_fvu,
            train_fvu=train_fvu,
            gen_gap=_finite(test_fvu - train_fvu),
            pca_mse=pca_mse(x_train, x_test, min(int(code_sizes[m]), d)),
            pca_kept_fvu=pca_fvu(x_train, x_test, min(kept, eff)) if np.isfinite(kept) else float("nan"),
            kept_dims=kept,
            ood_fidelity=_finite(1.0 - _ratio(ood_se, probes["ood_ss"])),
            span_ood_fidelity=_finite(1.0 - _ratio(span_se, probes["span_ss"])),
            perturb_fidelity=_finite(1.0 - _ratio(total("pert_err"), probes["pert_ss"])),
            perturb_gain=_ratio(total("pert_out"), probes["pert_ss"]),
            jac_rank=jac_rank,
            jac_trace=jac_trace,
            denoise_gain=_ratio(total("denoise"), probes["noise_ss"]),
            noise_gain=_ratio(total("noise_out"), probes["noise_ss"]),
            noise_std=float(probes["noise_std"]),
            const_ratio=_ratio(m2 / probes["n_test"], probes["test_cov_trace"]),
            attractor_fraction=float(np.mean(captured_MA[m, :n_att])),
            snap_fraction=float(np.mean(captured_MA[m, n_att:])),
        )
        if with_probe:
            clock.start("diagnostics_probe_s")
            # a chunk at a time: the train set need not fit on the device
            codes = lambda p_M, xs, keep: np.concatenate([np.asarray(_member_codes(
                encode, p_M, jnp.int32(m), x[None]))[0] for x in xs]).reshape(keep.size, -1)[keep]
            probe = lambda p_M: probe_accuracy(codes(p_M, probes["train_x"], train_keep), y_train,
                                               codes(p_M, arrays["test_x"], test_keep),
                                               np.asarray(y_test)[probes["test_order"]])
            metrics["probe_acc"] = probe(params_M)
            if init_params_M is not None:
                metrics["probe_acc_init"] = probe(init_params_M)
            metrics["probe_acc_raw"] = raw_probe_accuracy(x_train, y_train, x_test, y_test)
            clock.stop()
        member_f = _chunked(reconstruct, jax.tree.map(lambda p: p[m], host_params_M))
        with clock("diagnostics_plugins_s"):
            for name, metric in MAP_METRICS.items():
                metrics[name] = _finite(metric(member_f, x_train, x_test))
        metrics["data_rank"] = int(r)
        metrics["effective_rank"] = int(eff)
        metrics["input_dim"] = int(d)
        metrics["regime"] = regime.classify(metrics)
        results.append(metrics)
    return results
