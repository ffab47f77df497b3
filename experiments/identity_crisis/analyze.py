"""python -m experiments.identity_crisis.analyze WORKDIR: identity or memorisation, member by member.

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/identity_crisis/config.py`;
one or a few training digits, fully connected vs fully convolutional, L layers) through `ae_jax.store` and
asks Zhang et al.'s question of each trained map f: on inputs it never saw, does it copy the input (identity)
or output a training example (memorisation)? Writes WORKDIR/analysis.md, WORKDIR/identity_crisis.json,
WORKDIR/figures/identity_crisis_{outputs,correlation}.png and logs them to a W&B analysis run.

Per member, on 100 unseen test digits and 100 uniform-noise images z (`make_probes`):
  corr_in     mean Pearson correlation over pixels of f(z) with z                    (identity: 1)
  corr_train  mean over z of the largest correlation of f(z) with a training example (memorising: 1)
  base        the same largest correlation for z itself: what the identity map scores on corr_train
and the Jacobian J of f at the (first) training example x, with u = x / |x| and P = I - u u^T:
  gain_x      u^T J u                      (1 = identity along the example's direction)
  off_trace   tr(P J P) / (D - 1)          (1 = identity off it, 0 = no identity there)
  off_norm    |J P|_F / sqrt(D - 1)        (0 = flat off it: constant; ~1 with off_trace ~0: random)
beside the library's own diagnostics and `regime` from each member's record (not recomputed).
"""

import collections
import functools
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ae_jax import data as data_lib, models, store
from ae_jax.errors import ConfigError
from experiments import common

N_PROBES = 100
KIND_LABEL = {"mlp": "FC", "fullconv": "CNN"}
SHOW = 5  # probe images per family in the outputs figure
LIBRARY_KEYS = ("regime", "attractor_fraction", "const_ratio", "ood_fidelity", "span_ood_fidelity", "jac_rank",
                "data_rank", "denoise_gain", "test_mse")


def layers(depth: int) -> int:
    """Weight layers of the map: depth hidden layers per side, the code layer and the output layer, where
    the linear code layer composes with the next one into a single layer."""
    return 2 * depth + 1


def make_probes(x_test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Unseen test digits and uniform noise in [0, 1] (the digits' range), `N_PROBES` of each."""
    rng = np.random.default_rng(seed)
    return {"digits": np.asarray(x_test[:N_PROBES], np.float32),
            "noise": rng.uniform(0.0, 1.0, (N_PROBES, x_test.shape[1])).astype(np.float32)}


def pearson(a_PD: np.ndarray, b_QD: np.ndarray) -> np.ndarray:
    """(P, Q) Pearson correlations over the last axis; 0 where a row is constant."""
    a = a_PD - a_PD.mean(-1, keepdims=True)
    b = b_QD - b_QD.mean(-1, keepdims=True)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a @ b.T) / np.outer(na, nb)
    return np.nan_to_num(c)


def correlations(out_PD: np.ndarray, z_PD: np.ndarray, x_train_ND: np.ndarray) -> dict[str, float]:
    """corr_in, corr_train and base (module docstring) averaged over the probes."""
    z, out, xt = (np.asarray(a, np.float64) for a in (z_PD, out_PD, x_train_ND))
    return {"corr_in": float(np.diag(pearson(out, z)).mean()),
            "corr_train": float(pearson(out, xt).max(1).mean()),
            "base": float(pearson(z, xt).max(1).mean())}


@functools.partial(jax.jit, static_argnums=0)
def jacobian(path, net, x_D: jax.Array) -> jax.Array:
    """J[i, j] = d f_i / d x_j at x for f = path(net, .); compiled once per (hashable) mean path, i.e. per
    model spec, not per member."""
    return jax.jacfwd(lambda v: path(net, v[None])[0])(x_D)


def jacobian_gains(jac: np.ndarray, x_D: np.ndarray) -> dict[str, float]:
    """gain_x, off_trace, off_norm (module docstring) of the Jacobian `jac` of f at x."""
    d = len(x_D)
    u = np.asarray(x_D, np.float64) / np.linalg.norm(x_D)
    p = np.eye(d) - np.outer(u, u)
    return {"gain_x": float(u @ jac @ u), "off_trace": float(np.trace(p @ jac @ p) / (d - 1)),
            "off_norm": float(np.linalg.norm(jac @ p) / np.sqrt(d - 1))}


def check(members: list[store.Member]) -> None:
    """The analysis assumes the experiment's families: an mlp or fullconv map on digits."""
    for m in members:
        if m.config.model.kind not in KIND_LABEL or m.config.data.name != "digits":
            raise ConfigError(f"identity_crisis: member {m.name!r} has model.kind {m.config.model.kind!r} on "
                              f"data.name {m.config.data.name!r}; the analysis needs 'mlp' or 'fullconv' on 'digits'")


def measure(m: store.Member, data: data_lib.Dataset) -> dict:
    """The experiment's own measurements of one trained member, plus its recorded library metrics."""
    c = m.config
    probes = make_probes(data.x_test, c.diagnostics.seed)
    x0 = np.asarray(data.x_train[0], np.float32)
    out = m.f(np.concatenate([*probes.values(), x0[None]]))
    outputs = dict(zip(probes, np.split(out[:-1], len(probes))))
    jac = np.asarray(jacobian(models.MeanPath(m.spec), (m.params, m.masks), jnp.asarray(x0)), np.float64)
    return dict(
        name=m.name, kind=c.model.kind, depth=c.model.depth, layers=layers(c.model.depth),
        width=c.model.width, n_train=len(data.x_train), seed=c.seed, steps=m.metrics["steps"],
        final_loss=m.metrics["final_total"], train_mse=m.metrics["train_mse"],
        converged=bool(m.metrics.get("converged")),
        **{f"{name}/{k}": v for name in probes
           for k, v in correlations(outputs[name], probes[name], data.x_train).items()},
        **jacobian_gains(jac, x0),
        library={k: m.metrics[k] for k in LIBRARY_KEYS if k in m.metrics},
        panel={name: outputs[name][:SHOW].tolist() for name in probes},
        train_out=out[-1].tolist(),
    )


SPREAD_KEYS = ("final_loss", "digits/corr_in", "digits/corr_train", "digits/base", "noise/corr_in",
               "noise/corr_train", "noise/base", "gain_x", "off_trace", "off_norm")
LIBRARY_MEANS = ("attractor_fraction", "const_ratio", "ood_fidelity", "span_ood_fidelity")


def cells(results: list[dict]) -> list[dict]:
    """One dict per (n_train, kind, layers) over its seeds: each SPREAD_KEYS entry the seed mean with
    `KEY_min` / `KEY_max`, the library's numbers as seed means, regimes counted, `converged` and
    `memorising` the number of seeds that converged / output the training example for noise."""
    grouped = collections.defaultdict(list)
    for r in results:
        grouped[(r["n_train"], r["kind"], r["layers"])].append(r)
    out = []
    for (n, kind, depth), rs in sorted(grouped.items()):
        cell = dict(n_train=n, kind=kind, layers=depth, n=len(rs), steps=sorted({r["steps"] for r in rs}),
                    converged=sum(r["converged"] for r in rs), memorising=sum(memorises(r) for r in rs),
                    regimes=collections.Counter(r["library"].get("regime", "—") for r in rs))
        for k in SPREAD_KEYS:
            v = np.array([r[k] for r in rs], float)
            cell.update({k: float(v.mean()), f"{k}_min": float(v.min()), f"{k}_max": float(v.max())})
        cell.update({k: float(np.mean([r["library"].get(k, np.nan) for r in rs])) for k in LIBRARY_MEANS})
        out.append(cell)
    return out


def spread(cell: dict, key: str, digits: int = 2) -> str:
    """`mean (min-max)` over the seeds of a cell."""
    f = common.fmt
    return f"{f(cell[key], digits)} ({f(cell[key + '_min'], digits)}-{f(cell[key + '_max'], digits)})"


def plot_outputs(results: list[dict], probes: dict[str, np.ndarray], x_train: np.ndarray, shape) -> Figure:
    """Rows: the inputs, then one row per depth; columns: the training example, then unseen inputs.
    Top block fully connected, bottom block convolutional (single-example members of the first seed only)."""
    first = min(r["seed"] for r in results)
    single = [r for r in results if r["n_train"] == 1 and r["seed"] == first]
    kinds = [k for k in KIND_LABEL if any(r["kind"] == k for r in single)]
    depths = sorted({r["layers"] for r in single})
    inputs = [x_train[0]] + [z for name in probes for z in probes[name][:SHOW]]
    cols = len(inputs)
    fig = Figure(figsize=(0.85 * cols + 0.6, (0.9 * (len(depths) + 1) + 0.4) * len(kinds)), layout="constrained")
    subs = fig.subfigures(len(kinds), 1, squeeze=False)[:, 0]
    for sub, kind in zip(subs, kinds):
        axes = sub.subplots(len(depths) + 1, cols, squeeze=False)
        rows = [("input", inputs)]
        for depth in depths:
            r = next((r for r in single if r["kind"] == kind and r["layers"] == depth), None)
            if r is not None:
                rows.append((f"L={depth}", [r["train_out"]] + [o for name in probes for o in r["panel"][name]]))
        for i, (label, images) in enumerate(rows):
            for j, img in enumerate(images):
                ax = axes[i, j]
                ax.imshow(np.asarray(img).reshape(shape[:2]), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(label, fontsize=8)
                if i == 0:
                    ax.set_title("train" if j == 0 else ("digit" if j <= SHOW else "noise"), fontsize=7)
        for ax in axes[len(rows):].flat:
            ax.set_axis_off()
        sub.suptitle(f"{KIND_LABEL[kind]}: f(input), one training example", fontsize=9)
    return fig


def plot_correlation(results: list[dict]) -> Figure:
    """Seed means of corr(f(z), z) and corr(f(z), train) against L, with the seed min-max as error bars."""
    table = cells(results)
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    styles = {1: "-", 2: "--", 10: "-.", 100: ":"}
    for ax, probe in zip(axes, ("digits", "noise")):
        for j, kind in enumerate(KIND_LABEL):
            for n in sorted({r["n_train"] for r in results}):
                rs = sorted((c for c in table if c["kind"] == kind and c["n_train"] == n), key=lambda c: c["layers"])
                if not rs:
                    continue
                xs = [r["layers"] for r in rs]
                lw = 2.0 if n == 1 else 1.0
                for key, marker, colour, what in (("corr_in", "o", f"C{2 * j}", "z"),
                                                  ("corr_train", "s", f"C{2 * j + 1}", "train")):
                    k = f"{probe}/{key}"
                    mean = np.array([r[k] for r in rs])
                    err = [mean - [r[k + "_min"] for r in rs], [r[k + "_max"] for r in rs] - mean]
                    ax.errorbar(xs, mean, yerr=err, fmt=styles.get(n, "-"), color=colour, marker=marker, ms=3, lw=lw,
                                capsize=2, label=f"{KIND_LABEL[kind]} n={n}: corr(f(z), {what})")
        ones = [r[f"{probe}/base"] for r in table if r["n_train"] == 1]
        if ones:
            ax.axhline(np.mean(ones), color="grey", lw=0.8, ls=":", label="corr(z, train), n=1")
        ax.set(xlabel="layers L", ylabel="correlation", ylim=(-0.2, 1.05),
               title=f"unseen {'test digits' if probe == 'digits' else 'uniform noise'} z")
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=5, fontsize=7)
    fig.suptitle("Identity (output ~ input) or memorisation (output ~ training example), by depth "
                 "(seed mean, bars: min-max)")
    return fig


def memorises(r: dict) -> bool:
    """f(noise) is closer to the training example than to the noise itself (noise is uncorrelated with x)."""
    return r["noise/corr_train"] > r["noise/corr_in"]


def claim(results: list[dict]) -> tuple[str, list[str]]:
    """The README's claim, checked on the single-example cells, every seed: (verdict, one line per part)."""
    one = {(c["kind"], c["layers"]): c for c in cells(results) if c["n_train"] == 1}
    fc = [one[k] for k in sorted(one) if k[0] == "mlp"]
    cnn = [one[k] for k in sorted(one) if k[0] == "fullconv"]
    if not fc or not cnn:
        return "not measured (needs FC and CNN members with one training example)", []
    parts = []
    f1 = fc[0]
    ok1 = (f1["layers"] == 1 and f1["gain_x_min"] > 0.9 and max(-f1["off_trace_min"], f1["off_trace_max"]) < 0.2
           and f1["off_norm_min"] > 0.2)
    parts.append((ok1, f"FC L={f1['layers']} ({f1['n']} seeds): gain along the example {spread(f1, 'gain_x', 3)}, "
                       f"off it trace {spread(f1, 'off_trace', 3)} and norm {spread(f1, 'off_norm', 3)} (identity "
                       f"on x, random elsewhere, in every seed: {'yes' if ok1 else 'no'})"))
    deep_fc = [c for c in fc if c["layers"] > 1]
    ok2 = bool(deep_fc) and all(c["memorising"] == c["n"] for c in deep_fc)
    parts.append((ok2, "FC L>1 output the training example for noise inputs (seeds doing so; corr with train vs "
                       "with the input): " + (", ".join(
                           f"L={c['layers']} {c['memorising']}/{c['n']}, {spread(c, 'noise/corr_train')} vs "
                           f"{spread(c, 'noise/corr_in')}" for c in deep_fc) or "no member")))
    shallow = [c for c in cnn if c["memorising"] == 0]
    ok3 = cnn[0]["memorising"] == 0 and cnn[-1]["memorising"] == cnn[-1]["n"]
    parts.append((ok3, f"CNN copies the input in every seed up to L={max((c['layers'] for c in shallow), default=0)}"
                       f" and outputs the training image in every seed at L={cnn[-1]['layers']}: " + ", ".join(
                           f"L={c['layers']} in {spread(c, 'noise/corr_in')} / train {spread(c, 'noise/corr_train')}"
                           f" ({c['memorising']}/{c['n']} memorising)" for c in cnn)))
    n_ok = sum(ok for ok, _ in parts)
    verdict = "reproduced" if n_ok == len(parts) else ("partly reproduced" if n_ok else "not reproduced")
    return verdict, [text for _, text in parts]


def table(results: list[dict]) -> tuple[list[str], list[list]]:
    head = ["kind", "L", "n", "regimes", "converged", "steps", "final train loss", "digits: corr in / train (base)",
            "noise: corr in", "noise: corr train (base)", "gain_x", "off_trace", "off_norm", "attractor",
            "const_ratio", "ood_fid", "span_ood_fid"]
    rows = []
    for c in sorted(cells(results), key=lambda c: (c["n_train"], c["kind"], c["layers"])):
        rows.append([KIND_LABEL[c["kind"]], c["layers"], c["n_train"],
                     ", ".join(f"{k} {v}/{c['n']}" for k, v in c["regimes"].most_common()),
                     f"{c['converged']}/{c['n']}", "/".join(map(str, c["steps"])),
                     f"{c['final_loss']:.2e} ({c['final_loss_min']:.1e}-{c['final_loss_max']:.1e})",
                     f"{c['digits/corr_in']:.2f} / {c['digits/corr_train']:.2f} ({c['digits/base']:.2f})",
                     spread(c, "noise/corr_in"), f"{spread(c, 'noise/corr_train')} ({c['noise/base']:.2f})",
                     spread(c, "gain_x", 3), f"{c['off_trace']:.3f}", spread(c, "off_norm", 3),
                     common.fmt(c["attractor_fraction"], 2), common.fmt(c["const_ratio"], 2),
                     common.fmt(c["ood_fidelity"], 2), common.fmt(c["span_ood_fidelity"], 2)])
    return head, rows


def setting(members: list[store.Member]) -> str:
    """One line on what was trained, read from the members' configs."""
    c = members[0].config
    width = {k: sorted({m.config.model.width for m in members if m.config.model.kind == k}) for k in KIND_LABEL}
    kernel = sorted({m.config.model.kernel_size for m in members if m.config.model.kind == "fullconv"})
    return (f"digits (8x8); FC = mlp width {'/'.join(map(str, width['mlp'])) or '—'}, CNN = fullconv "
            f"{'/'.join(f'{k}x{k}' for k in kernel) or '—'} SAME convolutions with "
            f"{'/'.join(map(str, width['fullconv'])) or '—'} channels; linear code layer as wide as the hidden "
            f"layers; {c.train.optimizer} {c.train.learning_rate:g}, {c.train.schedule} schedule, "
            f"{'/'.join(map(str, sorted({m.metrics['steps'] for m in members})))} steps, batch "
            f"{'/'.join(map(str, sorted({m.config.train.batch_size for m in members})))}; {len(members)} members.")


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md, WORKDIR/identity_crisis.json and the two figures."""
    clock = common.Clock()
    members = store.load(workdir)
    check(members)
    datasets = {m.name: m.dataset for m in members}
    results = [measure(m, datasets[m.name]) for m in members]
    (Path(workdir) / "identity_crisis.json").write_text(json.dumps(results, indent=1))
    shown = next((m for m in members if len(datasets[m.name].x_train) == 1), members[0])
    data = datasets[shown.name]
    probes = make_probes(data.x_test, shown.config.diagnostics.seed)
    paths = [common.save_figure(plot_outputs(results, probes, data.x_train, data.shape), workdir,
                                "identity_crisis_outputs", writer),
             common.save_figure(plot_correlation(results), workdir, "identity_crisis_correlation", writer)]
    head, rows = table(results)
    verdict, parts = claim(results)
    writer.table("members", head, rows)
    writer.summary({"verdict": verdict})
    lines += [f"# {name}: identity or memorisation from a single training example", "",
              f"{setting(members)} Analysis wall time {clock}.", "",
              *[f"![{p.stem}](figures/{p.name})" for p in paths], "",
              "Every cell: seed mean, the seed min-max in brackets. corr in / train: mean correlation of f(z) with z "
              "/ with the nearest training example, over 100 unseen z; base = the nearest-example correlation of z "
              "itself (what the identity scores on 'train'). gain_x, off_trace, off_norm: the Jacobian at the "
              "training example along / off its direction. final train loss: the recorded `final_total` "
              "(per-example sum of squares, mean of the last logging chunk); converged: seeds whose loss had "
              "stopped falling (`regime.converged`); regimes, attractor ... span_ood_fid: the library's metrics "
              "from `results.jsonl` (seed means).", "",
              common.md_table(head, rows), "",
              f"Verdict: **{verdict}**", "", *[f"- {p}" for p in parts]]


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md, its figures and identity_crisis.json; returns the analysis path."""
    return common.analysis_command(argv, "experiments.identity_crisis.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
