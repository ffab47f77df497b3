"""python -m experiments.manifold.analyze WORKDIR: jac_rank, error floor and pull onto the manifold.

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/manifold/config.py`):
each member's library metrics (`jac_rank` on the data span, `test_mse`, `pca_mse`, `regime`, ...) from
its record, and its trained map `f` (`ae_jax.store`) for the pull onto the manifold: for probes x + e off
the noise-free test points x (e isotropic in R^D, or normal to the manifold at x, of norm PROBE_NORM), the
distance to the manifold before and after f. The manifold is estimated from noise-free points generated
with the same split_seed (same basis and same z): PCA for the linear kind, PCA plus a least-squares sphere
fit for the sphere. Writes WORKDIR/manifold.json, WORKDIR/figures/manifold_*.png and WORKDIR/analysis.md,
and logs them to a W&B analysis run.
"""

import collections
import json
import sys
from pathlib import Path

import ml_collections
import numpy as np
from matplotlib.figure import Figure

from ae_jax import data as data_lib, store, sweep as sweep_lib
from ae_jax.errors import ConfigError
from experiments import common

PROBE_NORM = 0.3  # ||e|| of the off-manifold probes: 15x the data noise's per-coordinate std, 0.3 radii
PROBE_POINTS = 500
RANK_TOL = 1.0  # "jac_rank about d": within one direction
PULLED = 0.5  # a model "pulls onto the manifold" when it at least halves the probes' distance
FLOOR_FACTOR = 5.0  # "an error floor below d": test_mse at code < d at least this many times code >= 2d's


class Manifold:
    """The noise-free manifold, estimated from clean train points: an affine d-subspace (linear) or a
    d-sphere in an affine (d+1)-subspace (sphere); `distance` is the exact Euclidean distance to it."""

    def __init__(self, kind: str, d: int, clean_ND: np.ndarray):
        x = np.asarray(clean_ND, np.float64)
        self.kind, self.d = kind, d
        self.mu = x.mean(0)
        _, s, vt = np.linalg.svd(x - self.mu, full_matrices=False)
        k = d if kind == "linear" else d + 1
        self.basis_DK = vt[:k].T
        self.span_residual = float(s[k] / s[0]) if len(s) > k else 0.0  # ~1e-7: the clean data's rank is k
        self.centre_K, self.radius, self.fit_residual = np.zeros(k), 0.0, 0.0
        if kind == "sphere":
            a_NK = (x - self.mu) @ self.basis_DK
            # ||a - c||^2 = r^2 is linear in (c, r^2 - ||c||^2): 2 a.c + q = ||a||^2
            lhs = np.concatenate([2 * a_NK, np.ones((len(a_NK), 1))], axis=1)
            sol = np.linalg.lstsq(lhs, (a_NK ** 2).sum(1), rcond=None)[0]
            self.centre_K = sol[:k]
            self.radius = float(np.sqrt(sol[k] + self.centre_K @ self.centre_K))
            self.fit_residual = float(np.abs(np.linalg.norm(a_NK - self.centre_K, axis=1) - self.radius).max())

    def split(self, y_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(in-span coordinates relative to the centre, off-span component) of each point."""
        v = np.asarray(y_ND, np.float64) - self.mu
        a = v @ self.basis_DK
        return a - self.centre_K, v - a @ self.basis_DK.T

    def distance(self, y_ND: np.ndarray) -> np.ndarray:
        a, w = self.split(y_ND)
        off = np.linalg.norm(w, axis=1)
        if self.kind == "linear":
            return off
        return np.sqrt(off ** 2 + (np.linalg.norm(a, axis=1) - self.radius) ** 2)

    def normal(self, x_ND: np.ndarray, g_ND: np.ndarray) -> np.ndarray:
        """The part of each g normal to the manifold at the (on-manifold) point x."""
        tangent = (g_ND @ self.basis_DK) @ self.basis_DK.T
        if self.kind == "sphere":
            a, _ = self.split(x_ND)
            radial = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ self.basis_DK.T
            tangent -= (g_ND * radial).sum(1, keepdims=True) * radial
        return g_ND - tangent


def clean_data(data_cfg: ml_collections.ConfigDict) -> data_lib.Dataset:
    """The same points without the noise: the generator draws Q, z, then the noise, from one seeded rng."""
    c = ml_collections.ConfigDict(data_cfg.to_dict())
    c.manifold.noise = 0.0
    return data_lib.load(c)


def probes(manifold: Manifold, x_ND: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Off-manifold probes of norm PROBE_NORM around the clean points: isotropic and normal."""
    g = np.random.default_rng(seed).standard_normal(x_ND.shape)
    unit = lambda e: PROBE_NORM * e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
    return {"isotropic": x_ND + unit(g), "normal": x_ND + unit(manifold.normal(x_ND, g))}


def pull(f, manifold: Manifold, clean_ND: np.ndarray, probe: dict[str, np.ndarray]) -> dict:
    """Mean distance to the manifold of the probes before and after the map f, and of f(clean points)."""
    out = {"dist_f_clean": float(manifold.distance(f(clean_ND)).mean())}
    for name, y in probe.items():
        before = manifold.distance(y).mean()
        after = manifold.distance(f(y.astype(np.float32))).mean()
        out[f"dist_before/{name}"] = float(before)
        out[f"dist_after/{name}"] = float(after)
        out[f"pull_ratio/{name}"] = float(after / before)
    return out


def check_members(members: list[store.Member]) -> None:
    """The pull compares f with the generator's noise-free points, so the data must be as generated."""
    for m in members:
        d = m.config.data
        if d.name != "manifold" or d.manifold.kind not in ("linear", "sphere"):
            raise ConfigError(f"data.manifold.kind: member {m.name!r}: the manifold experiment measures linear "
                              f"and sphere data (data.name=manifold), got {d.name} / {d.manifold.kind}")
        if d.scale != "none" or d.n_train:
            raise ConfigError(f"data.scale, data.n_train: member {m.name!r}: must stay none / 0 (the clean copy "
                              f"is compared as generated), got {d.scale} / {d.n_train}")


LIBRARY_KEYS = ("jac_rank", "test_mse", "train_mse", "pca_mse", "data_rank", "denoise_gain", "regime", "jac_trace",
                "attractor_fraction", "const_ratio")


def measure(members: list[store.Member]) -> list[dict]:
    """One row per member: settings, the library's metrics (from its record) and the pull onto the manifold."""
    geometry = {}
    rows = []
    for m in members:
        c, man_cfg = m.config, m.config.data.manifold
        key = sweep_lib.data_key(c)
        if key not in geometry:
            clean = clean_data(c.data)
            man = Manifold(man_cfg.kind, man_cfg.intrinsic_dim, clean.x_train)
            x = np.asarray(clean.x_test[:PROBE_POINTS], np.float64)
            geometry[key] = (man, x.astype(np.float32), probes(man, x, c.diagnostics.seed))
        man, x, probe = geometry[key]
        rows.append(dict(
            member=m.name, kind=man_cfg.kind, d=man_cfg.intrinsic_dim, ambient=man_cfg.ambient_dim,
            data_noise=man_cfg.noise, code=c.model.code_size, seed=c.seed,
            dae=float(c.noise.level) if c.noise.kind != "none" else 0.0,
            steps=m.metrics["steps"], final_loss=m.metrics["final_total"],
            converged=bool(m.metrics.get("converged")),
            span_residual=man.span_residual, sphere_fit_residual=man.fit_residual, radius=man.radius,
            clean_dist=float(man.distance(x).mean()), probe_points=len(x),
            noise_floor=man_cfg.noise ** 2 * (man_cfg.ambient_dim - man_cfg.intrinsic_dim) / man_cfg.ambient_dim,
            **{k: m.metrics[k] for k in LIBRARY_KEYS},
            **pull(m.f, man, x, probe)))
    return rows


def claim(rows: list[dict]) -> tuple[str, list[str]]:
    """The README's claim, checked on every (kind, d): the verdict and one line per check."""
    lines, passed = [], []
    for (kind, d), group in sorted(groups(rows).items()):
        extra = 1 if kind == "sphere" else 0
        structured = [r for r in group if (r["dae"] > 0 and r["code"] >= d + extra)
                      or (r["dae"] == 0 and d + extra <= r["code"] <= 2 * d)]
        rank_ok = [r for r in structured if abs(r["jac_rank"] - d) <= RANK_TOL]
        pull_ok = [r for r in structured if r["pull_ratio/isotropic"] <= PULLED]
        below = [r["test_mse"] for r in group if r["code"] < d and r["dae"] == 0]
        above = [r["test_mse"] for r in group if r["code"] >= 2 * d and r["dae"] == 0]
        floor_ok = bool(below) and bool(above) and min(below) >= FLOOR_FACTOR * max(above)
        # a check with no member to judge fails: a sweep without the codes the claim names measured nothing
        passed += [bool(structured) and len(rank_ok) == len(structured),
                   bool(structured) and len(pull_ok) == len(structured), floor_ok]
        lines.append(
            f"- {kind}, d = {d}: jac_rank within {RANK_TOL:g} of d for {len(rank_ok)}/{len(structured)} "
            f"structured members (every seed) (DAE with code >= {d + extra}; plain with {d + extra} <= code <= {2 * d}); "
            f"isotropic probes pulled in (ratio <= {PULLED:g}) for {len(pull_ok)}/{len(structured)}; "
            + (f"plain test_mse below d: min {min(below):.3g} vs code >= 2d: max {max(above):.3g} "
               f"(floor x{min(below) / max(above):.0f}, needs >= {FLOOR_FACTOR:g})" if below and above
               else "no plain members both below d and at >= 2d: the error floor is not measured")
            + "".join(f"; {'misses' if i == 0 else 'and'}: {'DAE' if r['dae'] else 'plain'} code {r['code']} "
                      f"seed {r['seed']} (jac_rank {r['jac_rank']:.2f}, pull {r['pull_ratio/isotropic']:.2f})"
                      for i, r in enumerate(r for r in structured if r not in rank_ok or r not in pull_ok)))
    share = sum(passed) / len(passed)
    verdict = "reproduced" if share == 1 else "partly reproduced" if share >= 0.5 else "not reproduced"
    return verdict, lines


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out = collections.defaultdict(list)
    for r in rows:
        out[(r["kind"], r["d"])].append(r)
    return out


SPREAD_KEYS = ("jac_rank", "test_mse", "pca_mse", "pull_ratio/isotropic", "pull_ratio/normal", "dist_f_clean",
               "denoise_gain", "attractor_fraction", "const_ratio", "final_loss")


def cells(rows: list[dict]) -> list[dict]:
    """One dict per (kind, d, code, DAE level) over its seeds: each SPREAD_KEYS entry the seed mean, with
    `KEY_min` / `KEY_max`; `regimes` counted, `converged` the number of converged seeds, `n` the seeds."""
    grouped = collections.defaultdict(list)
    for r in rows:
        grouped[(r["kind"], r["d"], r["code"], r["dae"])].append(r)
    out = []
    for key, rs in sorted(grouped.items()):
        cell = {k: rs[0][k] for k in ("kind", "d", "code", "dae", "ambient", "noise_floor", "data_rank")}
        for k in SPREAD_KEYS:
            v = np.array([r[k] for r in rs], float)
            cell.update({k: float(v.mean()), f"{k}_min": float(v.min()), f"{k}_max": float(v.max())})
        cell.update(n=len(rs), converged=sum(r["converged"] for r in rs), steps=sorted({r["steps"] for r in rs}),
                    regimes=collections.Counter(r["regime"] for r in rs))
        out.append(cell)
    return out


def spread(cell: dict, key: str, digits: int = 3) -> str:
    """`mean (min-max)` over the seeds of a cell."""
    f = common.fmt
    return f"{f(cell[key], digits)} ({f(cell[key + '_min'], 2)}-{f(cell[key + '_max'], 2)})"


def plot(rows: list[dict]) -> dict[str, Figure]:
    """{stem: figure}: seed means of jac_rank, test_mse and pull ratio against code size, one panel per kind."""
    kinds = sorted({r["kind"] for r in rows}, reverse=True)
    dims = sorted({r["d"] for r in rows})
    specs = {"manifold_jac_rank": ("jac_rank", "jac_rank (span gains > 0.5)"),
             "manifold_test_mse": ("test_mse", "test MSE"),
             "manifold_pull": ("pull_ratio/isotropic", f"dist(f(x+e)) / dist(x+e), ||e|| = {PROBE_NORM:g}")}
    figs = {}
    for stem, (metric, title) in specs.items():
        fig = Figure(figsize=(5.2 * len(kinds), 4.0), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(kinds)))
        for ax, kind in zip(axes, kinds):
            for i, d in enumerate(dims):
                if not any((r["kind"], r["d"]) == (kind, d) for r in rows):
                    continue  # a workdir of some cells only (an --only run) need not have every d of every kind
                for dae, style in ((0.0, "-o"), (max(r["dae"] for r in rows), "--s")):
                    pts = sorted((r["code"], r[metric]) for r in rows if (r["kind"], r["d"], r["dae"]) == (kind, d, dae))
                    if pts:
                        ax.plot(*zip(*pts), style, color=f"C{i}", ms=4, mfc="none" if dae else None,
                                label=f"d={d} {'DAE s=%g' % dae if dae else 'plain'}")
                if metric == "jac_rank":
                    ax.axhline(d, color=f"C{i}", lw=0.8, ls=":")
                elif metric == "test_mse":
                    floor = next(r["noise_floor"] for r in rows if (r["kind"], r["d"]) == (kind, d))
                    ax.axhline(floor, color=f"C{i}", lw=0.8, ls=":")
                if metric != "pull_ratio/isotropic":
                    ax.axvline(d, color=f"C{i}", lw=0.6, ls="-.", alpha=0.5)
            if metric == "test_mse":
                ax.set_yscale("log")
            if metric.startswith("pull"):
                ax.axhline(1.0, color="k", lw=0.8, ls=":")
                ax.set_ylim(bottom=0)
            ax.set_xscale("log", base=2)
            ax.set(xlabel="code size", title=f"{kind}: {title}")
            ax.legend(fontsize=6, ncol=2)
        note = {"jac_rank": "dotted: jac_rank = d; dash-dot: code = d",
                "test_mse": "dotted: noise floor s^2 (D-d)/D of an exact projection; dash-dot: code = d",
                "pull_ratio/isotropic": "dotted: the identity (ratio 1); 0 = projection onto the manifold"}[metric]
        fig.suptitle(f"Manifolds of dimension d in R^{rows[0]['ambient']}\n{note}", fontsize=9)
        figs[stem] = fig
    return figs


TABLE_HEAD = ["kind", "d", "code", "DAE s", "regimes", "converged", "jac_rank", "test_mse", "PCA-k", "pull iso",
              "pull normal", "dist f(clean)", "denoise_gain", "attractor", "final train loss", "steps"]


def table_rows(table: list[dict]) -> list[list[str]]:
    f = common.fmt
    return [[c["kind"], c["d"], c["code"], f"{c['dae']:g}",
             ", ".join(f"{k} {v}/{c['n']}" for k, v in c["regimes"].most_common()), f"{c['converged']}/{c['n']}",
             spread(c, "jac_rank"), spread(c, "test_mse"), f(c["pca_mse"], 3), spread(c, "pull_ratio/isotropic"),
             f"{c['pull_ratio/normal']:.3f}", f"{c['dist_f_clean']:.3f}", f"{c['denoise_gain']:.3f}",
             f"{c['attractor_fraction']:.2f}", spread(c, "final_loss"), "/".join(map(str, c["steps"]))]
            for c in sorted(table, key=lambda c: (c["kind"] != "sphere", c["d"], c["dae"], c["code"]))]


def glance(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per (kind, d), seed means with the jac_rank's seed min-max: jac_rank and pull ratio of the tightest
    working bottleneck, the largest plain code and the largest DAE code; the plain error floor below d over
    every seed (the smallest test_mse below d against the largest at >= 2d)."""
    top = max(r["code"] for r in rows)
    head = ["kind", "d", "data rank", "plain code d (+1 sphere): rank / pull", f"plain code {top}: rank / pull",
            f"DAE code {top}: rank / pull", "plain test_mse code < d (min) / code >= 2d (max)", "noise floor"]
    out = []
    table = cells(rows)
    for (kind, d), group in sorted(groups(rows).items(), reverse=True):
        at = {(c["code"], c["dae"] > 0): c for c in table if (c["kind"], c["d"]) == (kind, d)}
        tight = at.get((d + (kind == "sphere"), False))
        rp = lambda c: ("—" if c is None else  # noqa: E731
                        f"{spread(c, 'jac_rank', 3)} / {c['pull_ratio/isotropic']:.2f}")
        below = min((r["test_mse"] for r in group if r["code"] < d and r["dae"] == 0), default=np.nan)
        above = max((r["test_mse"] for r in group if r["code"] >= 2 * d and r["dae"] == 0), default=np.nan)
        out.append([kind, d, group[0]["data_rank"], rp(tight), rp(at.get((top, False))), rp(at.get((top, True))),
                     f"{common.fmt(below, 3)} / {common.fmt(above, 3)}", f"{group[0]['noise_floor']:.2g}"])
    return head, out


def markdown(name: str, c: ml_collections.ConfigDict, rows: list[dict], figures: list[str],
             not_ok: list[store.Member]) -> list[str]:
    verdict, lines = claim(rows)
    geo = sorted({(r["kind"], r["d"], r["span_residual"], r["sphere_fit_residual"], r["radius"], r["clean_dist"])
                  for r in rows})
    steps = sorted({r["steps"] for r in rows})
    skipped = (f" Not analysed (status not ok): {', '.join(f'{m.name} ({m.status})' for m in not_ok)}."
               if not_ok else "")
    return [
        f"# {name}: autoencoders on d-dimensional manifolds in R^{rows[0]['ambient']}", "",
        f"ReLU MLP, depth {c.model.depth}, width {c.model.width}; {c.train.optimizer} {c.train.learning_rate:g}, "
        f"{'/'.join(map(str, steps))} steps of batch {c.train.batch_size}; data noise std {rows[0]['data_noise']:g}; "
        f"{len(rows)} members ({len(cells(rows))} cells x seeds {sorted({r['seed'] for r in rows})}, "
        f"{sum(r['converged'] for r in rows)} converged).{skipped} Probes: {rows[0]['probe_points']} noise-free test points "
        f"+ e, ||e|| = {PROBE_NORM:g}; pull = mean distance to the manifold after f / before.", "",
        *[f"![{Path(p).stem}]({p})" for p in figures], "",
        "Manifold estimates from the noise-free train points (kind, d, s_(k+1)/s_1 of the clean data, max "
        "|sphere fit residual|, fitted radius, mean distance of the clean test points):", "",
        common.md_table(["kind", "d", "rank residual", "sphere fit residual", "radius", "clean dist"],
                        [[k, d, f"{a:.1e}", f"{b:.1e}" if k == "sphere" else "—", f"{rad:.4f}" if k == "sphere" else "—",
                         f"{cd:.1e}"] for k, d, a, b, rad, cd in geo]),
        "",
        "## At a glance", "", common.md_table(*glance(rows)), "",
        "## Every cell", "",
        "Seed means, the seed min-max in brackets; `converged`: seeds whose loss had stopped falling "
        "(`regime.converged`); `final train loss`: the last logged training loss (squared error summed over "
        "the coordinates, mean over the batch).", "",
        common.md_table(TABLE_HEAD, table_rows(cells(rows))), "",
        "## The claim", "", *lines, "", f"Verdict: **{verdict}**."]


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> list[dict]:
    """Fills WORKDIR/manifold.json, WORKDIR/figures/manifold_*.png and the analysis.md lines."""
    everyone = store.load(workdir, status=None)
    members = [m for m in everyone if m.status == "ok"]
    check_members(members)
    rows = measure(members)
    (Path(workdir) / "manifold.json").write_text(json.dumps(rows, indent=1))
    paths = [common.save_figure(fig, workdir, stem, writer) for stem, fig in plot(cells(rows)).items()]
    lines += markdown(name, members[0].config, rows, [f"figures/{p.name}" for p in paths],
                      [m for m in everyone if m.status != "ok"])
    writer.table("cells", TABLE_HEAD, table_rows(cells(rows)))
    writer.summary({"verdict": claim(rows)[0]})
    return rows


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md, manifold.json and the figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.manifold.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
