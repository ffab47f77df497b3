"""python -m experiments.contractive.analyze WORKDIR: the three contractive setups side by side, per weight.

Reads the finished sweep of `experiments/contractive/config.py` (results.jsonl and the saved members) and
writes WORKDIR/analysis.md and WORKDIR/figures/contractive.png (also to a W&B analysis run). Per member it
measures what results.jsonl lacks, on the first JAC_POINTS test examples:
  enc_norm, dec_norm   Frobenius norms of the encoder and decoder weight matrices (tied: equal by construction);
  enc_penalty          ||J_encoder(x)||_F^2, Rifai et al.'s penalty, mean over the points;
  map_penalty          ||P J_f(x) P||_F^2, the whole map's Jacobian on the data span (Alain & Bengio's penalty
                       seen on the span), mean over the points;
  sv_top, sv_median    the largest and the median singular value of P J_f(x) P, mean over the points.
Every number is the mean over seeds with the min-max beside it; a difference "exceeds the seed spread"
when the two min-max ranges do not overlap.
"""

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from ae_jax import diagnostics, models, objectives, store
from ae_jax.errors import ConfigError
from experiments import common
from experiments.contractive.config import ARMS, arm_of, weight_of

JAC_POINTS = 100
LABEL = {"tied_sigmoid": "tied sigmoid CAE (Rifai)", "untied_relu": "untied ReLU CAE", "map": "whole-map penalty"}
# Recorded metrics and measured quantities reported per (arm, weight).
COLUMNS = ("enc_norm", "dec_norm", "enc_penalty", "map_penalty", "sv_top", "sv_median", "jac_rank", "train_mse",
           "final_total")


def measure(m: store.Member) -> dict:
    """The norms, penalties and span singular values of one saved member."""
    x = np.asarray(m.dataset.x_test[:JAC_POINTS], np.float32).reshape(-1, m.spec.input_dim)
    params = m.params
    w_enc = np.asarray(params["code"]["kernel"])
    w_dec = w_enc.T if m.spec.tied else np.asarray(params["out"]["kernel"])
    fn, net = m.mean_path
    sv = diagnostics.jacobian_spectrum(fn, net, m.dataset.x_train, x)
    enc_pen = objectives.encoder_jacobian_sq_norm(m.spec, params, jnp.asarray(x), m.masks)
    return {"enc_norm": float(np.linalg.norm(w_enc)), "dec_norm": float(np.linalg.norm(w_dec)),
            "enc_penalty": float(np.mean(enc_pen)), "map_penalty": float(np.mean(np.square(sv).sum(1))),
            "sv_top": float(sv[:, 0].mean()), "sv_median": float(np.median(sv, axis=1).mean())}


def rows_of(members: list[store.Member]) -> dict[tuple[str, float], list[dict]]:
    """{(arm, weight): one dict per seed}; the untied ReLU AE at weight 0 is also the map arm's weight 0."""
    out: dict[tuple[str, float], list[dict]] = {}
    for m in members:
        c = m.record["config"]
        row = {**m.metrics, **measure(m), "seed": c["seed"], "steps": c["train.steps"]}
        arm, w = arm_of(c), weight_of(c)
        out.setdefault((arm, w), []).append(row)
        if arm == "untied_relu" and w == 0:
            out.setdefault(("map", 0.0), []).append(row)
    return out


def spread(rows: list[dict], key: str) -> tuple[float, float, float]:
    v = np.array([r[key] for r in rows], float)
    return float(v.mean()), float(v.min()), float(v.max())


def cell(rows: list[dict], key: str) -> str:
    mean, lo, hi = spread(rows, key)
    return f"{common.fmt(mean, 3)} ({common.fmt(lo, 3)}-{common.fmt(hi, 3)})" if len(rows) > 1 else common.fmt(mean, 3)


def apart(a: list[dict], b: list[dict], key: str) -> bool:
    """The two groups' min-max ranges do not overlap: the difference exceeds the seed spread."""
    _, lo_a, hi_a = spread(a, key)
    _, lo_b, hi_b = spread(b, key)
    return hi_a < lo_b or hi_b < lo_a


def plot(table: dict) -> Figure:
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    weights = sorted({w for _, w in table})
    xs = np.arange(len(weights))
    panels = (("jac_rank", "whole-map jac_rank (span sv > 0.5)"), ("sv_median", "median span singular value"),
              ("enc_norm", "weight norms: encoder (solid), decoder (dashed)"))
    for ax, (key, title) in zip(axes, panels):
        for i, arm in enumerate(ARMS):
            pts = [(j, spread(table[(arm, w)], key)) for j, w in enumerate(weights) if (arm, w) in table]
            if not pts:  # a sweep of one arm (`:converged,tied`)
                continue
            j, s = zip(*pts)
            mean, lo, hi = map(np.array, zip(*s))
            ax.errorbar(j, mean, yerr=[mean - lo, hi - mean], fmt="-o", color=f"C{i}", capsize=3, label=LABEL[arm])
            if key == "enc_norm":
                dec = [spread(table[(arm, w)], "dec_norm")[0] for w in weights if (arm, w) in table]
                ax.plot(j, dec, "--s", color=f"C{i}")
        ax.set_xticks(xs, [f"{w:g}" for w in weights])
        ax.set(xlabel="penalty weight", title=title)
        if key == "enc_norm":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("Contractive penalties at code 256 on digits: mean over seeds, bars = min-max")
    return fig


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and the figure."""
    members = [m for m in store.load(workdir) if m.config.model.kind == "mlp" and m.config.model.depth == 0]
    if not members:
        raise ConfigError(f"{workdir}/results.jsonl: no depth-0 MLP members to analyse")
    table = rows_of(members)
    weights = sorted({w for _, w in table})
    fig = common.save_figure(plot(table), workdir, "contractive", writer)
    c0 = members[0].config
    seeds = sorted({r["seed"] for rows in table.values() for r in rows})
    lines += [f"# {name}: contractive penalties, tied vs untied vs whole map", "",
              f"{len(members)} members, seeds {seeds}; code {c0.model.code_size} on {c0.data.name}, Adam "
              f"{c0.train.learning_rate:g} ({c0.train.schedule}), {c0.train.steps} steps of batch {c0.train.batch_size}. "
              f"Cells: mean over seeds (min-max). Norms are Frobenius; penalties and singular values are on the "
              f"first {JAC_POINTS} test examples.", "", f"![contractive](figures/{fig.name})", ""]
    head = ["arm", "weight", "regime (per seed)", "converged", *COLUMNS]
    rows = []
    for arm in ARMS:
        for w in weights:
            if (arm, w) not in table:
                continue
            rs = sorted(table[(arm, w)], key=lambda r: r["seed"])
            rows.append([LABEL[arm], f"{w:g}", "/".join(r["regime"] for r in rs),
                         f"{sum(bool(r['converged']) for r in rs)}/{len(rs)}", *(cell(rs, k) for k in COLUMNS)])
    writer.table("contractive", head, rows)
    lines += [common.md_table(head, rows), ""]

    verdict, summary = [], {}
    top = max(w for w in weights if w > 0) if any(w > 0 for w in weights) else None
    if top is not None:
        for arm in ARMS:
            base, pen = table.get((arm, 0.0)), table.get((arm, top))
            if not base or not pen:
                continue
            enc0, dec0, encw, decw = (spread(r, k)[0] for r, k in ((base, "enc_norm"), (base, "dec_norm"),
                                                                     (pen, "enc_norm"), (pen, "dec_norm")))
            rank0, rankw = spread(base, "jac_rank")[0], spread(pen, "jac_rank")[0]
            gamed = encw < enc0 and decw > dec0 and apart(base, pen, "enc_norm") and apart(base, pen, "dec_norm")
            lowered = rankw < rank0 and apart(base, pen, "jac_rank")
            summary[f"{arm}/gamed_by_scale"], summary[f"{arm}/lowers_rank"] = gamed, lowered
            verdict.append(
                f"- **{LABEL[arm]}**, weight 0 -> {top:g}: encoder norm {enc0:.3g} -> {encw:.3g}, decoder norm "
                f"{dec0:.3g} -> {decw:.3g}, encoder penalty {spread(base, 'enc_penalty')[0]:.3g} -> "
                f"{spread(pen, 'enc_penalty')[0]:.3g}, whole-map jac_rank {rank0:.3g} -> {rankw:.3g}, median span "
                f"singular value {spread(base, 'sv_median')[0]:.3g} -> {spread(pen, 'sv_median')[0]:.3g}. "
                f"Scale-gamed (encoder shrinks, decoder grows, both beyond the seed spread): **{gamed}**; "
                f"whole-map rank lowered beyond the seed spread: **{lowered}**.")
    lines += ["## Findings (largest weight against weight 0, means over seeds)", "", *verdict, ""]
    writer.summary(summary)


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figure; returns the analysis path."""
    return common.analysis_command(argv, "experiments.contractive.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
