"""python -m experiments.fashion_mnist.analyze WORKDIR: the Fashion-MNIST replication tables and verdicts.

Reads a finished sweep of `experiments/fashion_mnist/config.py` (any of its parts) and writes
WORKDIR/analysis.md, with one section per result whose members the workdir holds:
  overcomplete  ReLU AEs without regulariser, per depth and code: regime, jac_rank / r,
                span_ood_fidelity, test MSE against PCA-k (figures/fashion_mnist_overcomplete.png);
  linear        the linear AE's test MSE against the closed-form PCA-k test MSE, and its train MSE
                against PCA-k's on the training images (the least any rank-k linear map reaches);
  regularisers  code-3136 AEs, plain against each regulariser;
  vae           active units (Burda et al.'s threshold, and experiments/vae's `informative` count from
                the saved members), KL and test ELBO against latent size;
  tsne          experiments/use_cases' t-SNE protocol on the members with a `usecases` block
                (figures/tsne.png), with AE against raw and PCA paired by seed.
Every number is a seed mean with the min-max over seeds, beside the steps, the final train loss and how
many seeds converged (`converged`, docs/regime.md).
"""

import collections
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ae_jax import closed_forms, data as data_lib, store
from experiments import common
from experiments.fashion_mnist import config
from experiments.use_cases import analyze as use_cases, figures as use_case_figures
from experiments.vae import analyze as vae_analysis

NEARLY_EVERY = 0.85  # experiments/overcomplete's bar: jac_rank / r of the identity-like 4x code
SMALL_CODE = 16  # the claim's "far better than at a small code": the overcomplete part's smallest code
PCA_MATCH = 1.05  # a linear AE "reaches PCA-k" when its test MSE is within 5% of the closed form


def kind(c: dict) -> str:
    """Which result a member belongs to, from its flat config."""
    if c.get("vae.enabled"):
        return "vae"
    if c.get("model.activation") == "linear":
        return "linear"
    # the tsne part's AEs: plain ones are its Gaussian corruption at level 0, so they share one program
    if "usecases.tsne_points" in c and c["noise.kind"] == "gaussian" and c["model.code_size"] == config.TSNE_CODE:
        return "tsne"
    if c["noise.kind"] != "none" and c["noise.level"] > 0 or c["sparsity.kind"] != "none":
        return "regularised"
    return "plain"


def regulariser(c: dict) -> str:
    if c["noise.kind"] != "none" and c["noise.level"] > 0:
        return f"{c['noise.kind']} {c['noise.level']:g}"
    if c["sparsity.kind"] == "topk":
        return f"top-k {c['sparsity.k']}"
    if c["sparsity.kind"] != "none":
        return f"{c['sparsity.kind']} {c['sparsity.weight']:g}"
    return "plain"


def stat(ms: list[dict], key: str) -> tuple[float, float, float]:
    v = np.array([m[key] for m in ms], np.float64)
    return float(v.mean()), float(v.min()), float(v.max())


def span(t: tuple[float, float, float], digits: int = 3) -> str:
    """mean (min-max) over seeds."""
    f = lambda v: common.fmt(v, digits)  # noqa: E731
    return f(t[0]) if t[1] == t[2] else f"{f(t[0])} ({f(t[1])}-{f(t[2])})"


def grouped(records: list[dict], key) -> dict:
    """{key(config): [metrics of each seed]}, sorted by key."""
    out = collections.defaultdict(list)
    for r in records:
        out[key(r["config"])].append(r["metrics"])
    return dict(sorted(out.items()))


def training(ms: list[dict]) -> list[str]:
    """steps, final train loss (min-max) and converged seeds: the columns beside every number."""
    steps = "/".join(sorted({str(m["steps"]) for m in ms}))
    return [steps, span(stat(ms, "final_total"), 4), f"{sum(bool(m['converged']) for m in ms)}/{len(ms)}"]


def regimes(ms: list[dict]) -> str:
    return ", ".join(f"{k} {n}" for k, n in collections.Counter(m["regime"] for m in ms).most_common())


TRAIN_HEAD = ["steps", "final train loss", "converged"]


def overcomplete(records: list[dict]) -> tuple[list[str], dict]:
    """The code sweep's table per depth, and the verdict numbers at depth 0."""
    cells = grouped(records, lambda c: (c["model.depth"], c["model.code_size"]))
    head = ["depth", "code", "code / D", "seeds"] + TRAIN_HEAD + [
        "regimes", "jac_rank / r", "span_ood_fidelity", "perturb_fidelity", "test MSE", "PCA-k test MSE"]
    rows = []
    for (depth, code), ms in cells.items():
        for m in ms:
            m["rank_frac"] = m["jac_rank"] / m["data_rank"]
        rows.append([depth, code, f"{code / ms[0]['input_dim']:.3g}", len(ms)] + training(ms) + [
            regimes(ms), span(stat(ms, "rank_frac")), span(stat(ms, "span_ood_fidelity")),
            span(stat(ms, "perturb_fidelity")), span(stat(ms, "test_mse"), 3), common.fmt(ms[0]["pca_mse"], 3)])
    zero = {code: ms for (depth, code), ms in cells.items() if depth == 0}
    ver = {}
    if len(zero) >= 2:
        d = next(iter(zero.values()))[0]["input_dim"]
        small, big = zero[min(zero)], zero.get(4 * d)
        if big is not None and min(zero) > SMALL_CODE:  # e.g. the `converged` part alone: codes 256 and up
            conv = sum(bool(m["converged"]) for m in big)
            ver = dict(text=(
                f"depth 0, code {4 * d} (4x D): jac_rank / r {span(stat(big, 'rank_frac'))}, span_ood_fidelity "
                f"{span(stat(big, 'span_ood_fidelity'))} ({regimes(big)}; {conv}/{len(big)} seeds converged); "
                f"the claim's verdict is not made here: it compares noise copying against a code of at most "
                f"{SMALL_CODE}, which this workdir does not have (the `overcomplete` part does)"))
        elif big is not None:
            rank, fid, fid_small = stat(big, "rank_frac"), stat(big, "span_ood_fidelity"), stat(small, "span_ood_fidelity")
            ok = rank[1] >= NEARLY_EVERY and fid[1] > fid_small[2] + 0.5
            codes = sorted(zero)
            # every larger code above the next smaller one in every seed: a trend beyond the seed spread
            trend = all(stat(zero[b], k)[1] > stat(zero[a], k)[2] for a, b in zip(codes, codes[1:])
                        for k in ("rank_frac", "span_ood_fidelity"))
            conv = sum(bool(m["converged"]) for m in big)
            ver = dict(ok=ok, trend=trend, text=(
                f"jac_rank / r and span_ood_fidelity rise with the code at every step of codes {codes}, in "
                f"every seed: **{trend}**. At the end point, "
                f"depth 0, code {4 * d} (4x D): jac_rank / r {span(rank)}, span_ood_fidelity {span(fid)} "
                f"({regimes(big)}), against span_ood_fidelity {span(fid_small)} at code {min(zero)}; the digits "
                f"claim (every seed jac_rank / r >= {NEARLY_EVERY}, and noise copied far better than at the "
                f"smallest code) is **{'reproduced' if ok else 'not reproduced'}** here ({conv}/{len(big)} seeds "
                "converged at 4x D)"))
    return [common.md_table(head, rows)], dict(ver, cells=cells)


def plot_overcomplete(cells: dict) -> Figure:
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for depth in sorted({k[0] for k in cells}):
        pts = sorted((code, ms) for (dp, code), ms in cells.items() if dp == depth)
        d = pts[0][1][0]["input_dim"]
        x = [code / d for code, _ in pts]
        for ax, key in zip(axes, ("rank_frac", "span_ood_fidelity", "test_mse")):
            s = np.array([stat(ms, key) for _, ms in pts])
            ax.errorbar(x, s[:, 0], yerr=[s[:, 0] - s[:, 1], s[:, 2] - s[:, 0]], marker="o", ms=3, capsize=2,
                        label=f"depth {depth}")
        if depth == 0:
            axes[2].plot(x, [max(ms[0]["pca_mse"], 1e-7) for _, ms in pts], "k--", lw=1, label="PCA-k (floor 1e-7)")
    ratios = sorted({code / ms[0]["input_dim"] for (_, code), ms in cells.items()})
    for ax, title in zip(axes, ("jac_rank / r", "span_ood_fidelity (noise copied)", "test MSE")):
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="code size / D", title=title)
        ax.set_xticks(ratios, [f"{r:.2g}" for r in ratios])  # the codes run, not log-axis minor ticks
        ax.minorticks_off()
    axes[0].axhline(NEARLY_EVERY, color="grey", lw=0.8, ls=":")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=7)
    fig.suptitle("Fashion-MNIST (D = 784): ReLU AEs against code size (seed mean, bars: min-max)")
    return fig


def linear(records: list[dict], x_train: np.ndarray | None = None) -> tuple[list[str], dict]:
    """Test MSE against PCA-k's, and (given the training images) train MSE against PCA-k's on them: the
    least train MSE any rank-k linear map reaches (Eckart-Young), so its gap is the optimisation left."""
    cells = grouped(records, lambda c: c["model.code_size"])
    head = ["code k", "seeds"] + TRAIN_HEAD + ["test MSE", "PCA-k test MSE", "ratio (min-max)"]
    if x_train is not None:
        head += ["train MSE", "PCA-k train MSE (optimum)", "train gap (min-max)"]
    rows, worst, worst_gap = [], 0.0, 0.0
    for code, ms in cells.items():
        for m in ms:
            m["pca_ratio"] = m["test_mse"] / m["pca_mse"]
        ratio = stat(ms, "pca_ratio")
        worst = max(worst, ratio[2])
        row = [code, len(ms)] + training(ms) + [span(stat(ms, "test_mse"), 4), common.fmt(ms[0]["pca_mse"], 4),
                                                fixed(ratio)]
        if x_train is not None:
            optimum = closed_forms.pca_mse(x_train, x_train, code)
            for m in ms:
                m["train_gap"] = m["train_mse"] / optimum - 1.0
            gap = stat(ms, "train_gap")
            worst_gap = max(worst_gap, gap[2])
            row += [span(stat(ms, "train_mse"), 4), common.fmt(optimum, 4),
                    pct(gap)]
        rows.append(row)
    ok = worst <= PCA_MATCH
    conv = sum(bool(m["converged"]) for ms in cells.values() for m in ms)
    n = sum(len(ms) for ms in cells.values())
    text = (f"worst seed's test MSE / PCA-k = {worst:.4f}: the linear AE = PCA-k control is "
            f"**{'reproduced' if ok else 'not reproduced'}** (tolerance {PCA_MATCH:g})"
            + (f"; worst seed's train MSE {100 * worst_gap:.2f}% above the PCA-k train optimum"
               if x_train is not None else "")
            + f"; {conv}/{n} members pass the convergence test on their train-loss curve")
    return [common.md_table(head, rows)], dict(ok=ok, worst=worst, worst_gap=worst_gap if x_train is not None
                                               else None, converged=conv, text=text)


def fixed(t: tuple[float, float, float]) -> str:
    """A seed mean (min-max) of ratios near 1, to 4 decimals (4 significant digits would print 1.0001 as 1)."""
    return f"{t[0]:.4f}" if t[1] == t[2] else f"{t[0]:.4f} ({t[1]:.4f}-{t[2]:.4f})"


def pct(t: tuple[float, float, float]) -> str:
    """A seed mean (min-max) of fractions, as percentages to 0.01."""
    return f"{100 * t[0]:.2f}%" if t[1] == t[2] else f"{100 * t[0]:.2f}% ({100 * t[1]:.2f}-{100 * t[2]:.2f}%)"


def train_images(records: list[dict]) -> np.ndarray | None:
    """The (N, D) training images the records' members trained on, or None if their data configs differ."""
    datas = {tuple(sorted((k, repr(v)) for k, v in r["config"].items() if k.startswith("data."))) for r in records}
    if len(datas) != 1:
        return None
    x = np.asarray(data_lib.load(store.config_from_flat(records[0]["config"]).data).x_train)
    return x.reshape(len(x), -1)


def regularisers(records: list[dict]) -> tuple[list[str], dict]:
    cells = grouped(records, regulariser)
    head = ["regulariser (code 3136)", "seeds"] + TRAIN_HEAD + [
        "regimes", "jac_rank", "kept_dims", "denoise_gain", "noise_gain", "span_ood_fidelity", "perturb_gain",
        "test MSE", "l0"]
    rows = []
    for name, ms in cells.items():
        l0 = span(stat(ms, "l0"), 3) if all("l0" in m for m in ms) else "—"
        rows.append([name, len(ms)] + training(ms) + [
            regimes(ms), span(stat(ms, "jac_rank"), 3), span(stat(ms, "kept_dims"), 3), span(stat(ms, "denoise_gain")),
            span(stat(ms, "noise_gain")),
            span(stat(ms, "span_ood_fidelity")), span(stat(ms, "perturb_gain")), span(stat(ms, "test_mse"), 3), l0])
    lines, verdicts = [common.md_table(head, rows), ""], {}
    plain = cells.get("plain")
    if plain:
        p_rank = stat(plain, "jac_rank")
        for name, ms in cells.items():
            if name == "plain":
                continue
            rank = stat(ms, "jac_rank")
            below = rank[2] < p_rank[1]  # every seed below every plain seed: beyond the seed spread
            verdicts[name] = below
            lines.append(f"- {name}: jac_rank {span(rank, 3)} vs plain {span(p_rank, 3)}: "
                         + ("lower in every seed (beyond the spread)" if below else "not lower beyond the seed spread"))
    return lines, dict(pulled_off=verdicts)


def vae(records: list[dict], workdir: Path | None = None) -> tuple[list[str], dict]:
    """Active units, KL and ELBO per (beta, latent); with the workdir's saved members, also experiments/vae's
    `informative` count (units carrying at least 10% of the largest unit's KL: no absolute threshold)."""
    if workdir is not None:
        members = {m.index: m for m in store.load(workdir)}
        for r in records:
            m = members[r["member"]]
            r["metrics"]["informative"] = vae_analysis.informative(vae_analysis.unit_stats(m, m.dataset.x_test)["kl"])
    cells = grouped(records, lambda c: (c["vae.beta"], c["model.code_size"]))
    counts = ["active_units"] + (["informative"] if workdir is not None else [])
    head = (["beta", "latent", "seeds"] + TRAIN_HEAD + [k.replace("_", " ") for k in counts]
            + ["KL (nats)", "test ELBO", "test MSE"])
    rows = [[beta, code, len(ms)] + training(ms) + [span(stat(ms, k), 3) for k in counts]
            + [span(stat(ms, "kl"), 3), span(stat(ms, "test_elbo"), 4), span(stat(ms, "test_mse"), 3)]
            for (beta, code), ms in cells.items()]
    units = {k: stat(ms, "active_units") for k, ms in cells.items()}
    return [common.md_table(head, rows)], dict(units=units)


def tsne(workdir: Path, writer) -> tuple[list[str], dict]:
    """experiments/use_cases' t-SNE protocol on this workdir's code-32 AEs, paired by seed."""
    members = [m for m in store.load(workdir) if kind(m.record["config"]) == "tsne"]
    ds = data_lib.load(members[0].config.data)
    uc = members[0].config.usecases
    use_cases.check_usecases(uc, len(ds.x_train) + len(ds.x_test))
    reps, y, is_test = use_cases.tsne_inputs(members, ds, uc)
    dr = use_cases.dimensionality_reduction(reps, y, is_test, uc)
    common.save_figure(use_case_figures.plot_tsne(dr, y, uc.knn), workdir, "tsne", writer)
    head = ["input to t-SNE", "dims", "maps", "2-D trust vs raw", "2-D kNN held-out", "2-D kNN CV", "code kNN held-out"]
    rows = [[n, r["dims"], r["maps"], span(stat_list(r["trust_raw"])), span(stat_list(r["knn_heldout"])),
             span(stat_list(r["knn_cv"])), span(stat_list(r["code_knn"]))] for n, r in dr.items()]
    lines = [f"sklearn Barnes-Hut t-SNE of {len(y)} images (a fixed subsample of train + test), perplexity "
             f"{uc.perplexity:g}, {uc.tsne_iter} iterations, random init, t-SNE seeds {list(uc.tsne_seeds)}; trust "
             f"k = {uc.trust_neighbors}, {uc.knn}-NN accuracy. Net seed i is paired with t-SNE seed i.", "",
             common.md_table(head, rows), "", "Paired differences against t-SNE of raw pixels (map i vs raw map i):", ""]
    paired = {}
    for name, r in dr.items():
        if name == use_cases.RAW or len(r["trust_raw"]) != len(dr[use_cases.RAW]["trust_raw"]):
            continue
        d_trust = np.subtract(r["trust_raw"], dr[use_cases.RAW]["trust_raw"])
        d_knn = np.subtract(r["knn_heldout"], dr[use_cases.RAW]["knn_heldout"])
        paired[name] = dict(trust=d_trust.tolist(), knn=d_knn.tolist())
        lines.append(f"- {name}: trust {sign_text(d_trust)}; kNN held-out {sign_text(d_knn)}")
    recon = [[label, len(ms)] + training([m.metrics for m in ms])
             + [span(stat([m.metrics for m in ms], "test_mse"), 4), common.fmt(ms[0].metrics["pca_mse"], 4)]
             for label, ms in use_cases.by_label(members).items()]
    lines += ["", "Held-out reconstruction of the 32-d codes against PCA-32 (test MSE per pixel):", "",
              common.md_table(["net", "seeds"] + TRAIN_HEAD + ["test MSE", "PCA-32 test MSE"], recon)]
    return lines, dict(paired=paired)


def stat_list(v: list[float]) -> tuple[float, float, float]:
    return float(np.mean(v)), float(np.min(v)), float(np.max(v))


def sign_text(d: np.ndarray) -> str:
    """The paired differences, and whether every pair has the same sign (a sign test's only evidence)."""
    vals = ", ".join(f"{v:+.4f}" for v in d)
    same = "all higher" if (d > 0).all() else "all lower" if (d < 0).all() else "mixed signs"
    return f"{vals} ({same}, {len(d)} pairs)"


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> dict:
    """Fills WORKDIR/analysis.md with a section per result present; returns the verdict numbers."""
    by_kind = collections.defaultdict(list)
    for r in records:
        by_kind[kind(r["config"])].append(r)
    first = records[0]["config"]
    lines += [f"# {name}: Fashion-MNIST replication", "",
              f"{len(records)} members; {first['data.n_train'] or 'all'} training images (TFDS's fixed shuffle), "
              "all 10,000 test images. Seed mean (min-max); steps, final train loss (sum over pixels per image, "
              "the training objective) and converged seeds beside every row.", ""]
    out = {}
    plain = by_kind["plain"]
    if plain:
        steps = collections.Counter(r["config"]["train.steps"] for r in plain)
        sweep_steps = steps.most_common(1)[0][0]
        code_sweep = [r for r in plain if r["config"]["train.steps"] == sweep_steps]
        table, out["overcomplete"] = overcomplete(code_sweep)
        lines += ["## Overcomplete: ReLU AEs against code size", ""] + table + [""]
        if len({k[1] for k in out["overcomplete"]["cells"]}) > 1:
            path = common.save_figure(plot_overcomplete(out["overcomplete"]["cells"]), workdir,
                                      "fashion_mnist_overcomplete", writer)
            lines += [f"![overcomplete](figures/{path.name})", ""]
        if "text" in out["overcomplete"]:
            lines += [f"Verdict: {out['overcomplete']['text']}.", ""]
    if by_kind["linear"]:
        table, out["linear"] = linear(by_kind["linear"], train_images(by_kind["linear"]))
        lines += ["## Linear AE against PCA-k", ""] + table + ["", f"Verdict: {out['linear']['text']}.", ""]
    if by_kind["regularised"]:
        reg_steps = {r["config"]["train.steps"] for r in by_kind["regularised"]}
        ref = [r for r in plain if r["config"]["train.steps"] in reg_steps
               and r["config"]["model.code_size"] in {q["config"]["model.code_size"] for q in by_kind["regularised"]}]
        table, out["regularisers"] = regularisers(ref + by_kind["regularised"])
        lines += ["## Regularisers at the same code, steps and batch", ""] + table + [""]
    if by_kind["vae"]:
        table, out["vae"] = vae(by_kind["vae"], workdir)
        lines += ["## VAE: active units against latent size", ""] + table + [""]
    if by_kind["tsne"]:
        table, out["tsne"] = tsne(workdir, writer)
        lines += ["## t-SNE of 784-d pixels, PCA-32 and 32-d codes", ""] + table + [""]
    writer.summary({k: v.get("ok") for k, v in out.items() if isinstance(v, dict) and "ok" in v})
    return out


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.fashion_mnist.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
