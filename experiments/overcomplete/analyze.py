"""python -m experiments.overcomplete.analyze WORKDIR: the overcomplete sweep's claim table and line plots.

Reads WORKDIR/results.jsonl (from `python -m ae_jax.sweep --config=experiments/overcomplete/config.py`;
the sweep itself writes the generic phase diagrams to WORKDIR/report.md), writes
WORKDIR/figures/overcomplete_lines.png (jac_rank / r, ood_fidelity and test_mse / PCA-k against code
size / D, one line per depth and width) and WORKDIR/analysis.md, and logs both to a W&B analysis run.
"""

import collections
import sys
from pathlib import Path


import numpy as np
from matplotlib.figure import Figure

from experiments import common

# docs/science.md's overcomplete row: at 4x overcomplete (depth 0, one hidden ReLU layer = the code) nearly
# every span direction has gain above 0.5 and uniform noise is reconstructed far better than at code 8.
NEARLY_EVERY = 0.85  # the regime rule's identity threshold on jac_rank / r (ae_jax.diagnostics)
METRICS = ("rank_frac", "ood_fidelity", "test_mse")
TITLES = {"rank_frac": "jac_rank / r (span directions with gain > 0.5)",
          "ood_fidelity": "ood_fidelity (uniform noise copied)", "test_mse": "test MSE"}
SHORT = {"identity": "ident", "memorizing": "memo", "structured": "struct"}


def cells(records: list[dict]) -> dict[tuple, dict]:
    """{(dataset, width, depth, code): seed-mean metrics and majority regime}."""
    groups = collections.defaultdict(list)
    for r in records:
        c = r["config"]
        groups[(c["data.name"], c["model.width"], c["model.depth"], c["model.code_size"])].append(r["metrics"])
    out = {}
    for key, ms in sorted(groups.items()):
        mean = lambda k: float(np.mean([m[k] for m in ms]))  # noqa: E731
        pca = mean("pca_mse")
        regimes = collections.Counter(m["regime"] for m in ms).most_common()
        out[key] = dict(rank_frac=mean("jac_rank") / ms[0]["data_rank"], ood_fidelity=mean("ood_fidelity"),
                        span_ood_fidelity=mean("span_ood_fidelity"), mse_over_pca=mean("test_mse") / pca if pca > 1e-12 else float("nan"),
                        test_mse=mean("test_mse"), pca_mse=pca, denoise_gain=mean("denoise_gain"),
                        const_ratio=mean("const_ratio"), attractor_fraction=mean("attractor_fraction"),
                        regime=regimes[0][0], data_rank=ms[0]["data_rank"], input_dim=ms[0]["input_dim"], n=len(ms))
    return out


def plot(table: dict[tuple, dict], records: list[dict]) -> Figure:
    datasets = sorted({k[0] for k in table})
    widths = sorted({k[1] for k in table})
    depths = sorted({k[2] for k in table})
    fig = Figure(figsize=(15, 4.2 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(METRICS), squeeze=False)
    styles = dict(zip(widths, ("-", "--", ":", "-.")))
    for i, data in enumerate(datasets):
        d = next(v["input_dim"] for k, v in table.items() if k[0] == data)
        zero = depth0(records, data)
        for j, metric in enumerate(METRICS):
            ax = axes[i, j]
            # depth 0 has no hidden layer: its widths are seeds of one net, drawn as their mean
            ax.plot([row["code"] / d for row in zero], [row[metric][0] for row in zero], "-", color="C0",
                    marker="o", ms=3, lw=2.5, label=f"depth 0 (mean of {zero[0]['n']} seeds)")
            for depth in depths:
                for width in widths:
                    pts = sorted((k[3], v[metric]) for k, v in table.items() if k[:3] == (data, width, depth))
                    if depth == 0 or not pts:
                        continue
                    ax.plot([p[0] / d for p in pts], [p[1] for p in pts], styles[width], color=f"C{depth}",
                            marker="o", ms=3, lw=1.2, label=f"depth {depth}, width {width}")
            if metric == "test_mse":
                ax.plot([row["code"] / d for row in zero], [max(row["pca_mse"], 1e-7) for row in zero], "k--",
                        lw=1, label="PCA-k (floored at 1e-7)")
                ax.set_yscale("log")
            elif metric == "rank_frac":
                ax.axhline(NEARLY_EVERY, color="grey", lw=0.8, ls=":")
            ax.axvline(1.0, color="k", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set(xlabel="code size / D", title=f"{data}: {TITLES[metric]}")
        axes[i, -1].legend(fontsize=6, ncol=2)
    fig.suptitle("Overcomplete ReLU autoencoders: towards the identity as the code grows (colour = depth, "
                 "line style = width; dashed vertical line: code = D)")
    return fig


def depth0(records: list[dict], data: str) -> list[dict]:
    """Depth-0 members of one dataset by code size: (mean, min, max) over seeds of each metric."""
    by_code = collections.defaultdict(list)
    for r in records:
        c = r["config"]
        if c["data.name"] == data and c["model.depth"] == 0:
            m = r["metrics"]
            by_code[c["model.code_size"]].append(dict(m, rank_frac=m["jac_rank"] / m["data_rank"]))
    rows = []
    for code, ms in sorted(by_code.items()):
        stat = lambda k: (float(np.mean([m[k] for m in ms])), float(np.min([m[k] for m in ms])),  # noqa: E731
                          float(np.max([m[k] for m in ms])))
        rows.append(dict(code=code, n=len(ms), input_dim=ms[0]["input_dim"], data_rank=ms[0]["data_rank"],
                         pca_mse=ms[0]["pca_mse"],
                         regimes=collections.Counter(m["regime"] for m in ms),
                         **{k: stat(k) for k in ("rank_frac", "ood_fidelity", "test_mse", "denoise_gain")}))
    return rows


def glance(table: dict[tuple, dict], data: str, width: int) -> str:
    codes = sorted({k[3] for k in table if k[0] == data})
    depths = sorted({k[2] for k in table if k[0] == data})
    rows = []
    for depth in depths:
        row = [str(depth)]
        for code in codes:
            v = table.get((data, width, depth, code))
            row.append("" if v is None else f"{SHORT.get(v['regime'], v['regime'])} {v['rank_frac']:.2f} "
                                            f"{v['span_ood_fidelity']:.2f}")
        rows.append(row)
    return common.md_table(["depth \\ code"] + [str(c) for c in codes], rows)


def claim_rows(rows: list[dict]) -> list[list[str]]:
    span = lambda v: f"{v[0]:.3f} ({v[1]:.2f}-{v[2]:.2f})"  # noqa: E731
    return [[str(r["code"]), f"{r['code'] / r['input_dim']:g}",
             ", ".join(f"{k} {n}/{r['n']}" for k, n in r["regimes"].most_common()), span(r["rank_frac"]),
             span(r["ood_fidelity"]), f"{r['test_mse'][0]:.3g}", f"{r['pca_mse']:.3g}", f"{r['denoise_gain'][0]:.3f}"]
            for r in rows]


def claim(records: list[dict]) -> tuple[str, str]:
    """docs/science.md's overcomplete row (digits, depth 0): the verdict and the numbers behind it."""
    rows = {r["code"]: r for r in depth0(records, "digits")}
    if not rows:
        return "not measured (no depth-0 digits members)", ""
    d = next(iter(rows.values()))["input_dim"]
    small, big = rows.get(8), rows.get(4 * d)
    if small is None or big is None:
        return "not measured (needs codes 8 and 4 D at depth 0 on digits)", ""
    ok = big["rank_frac"][1] >= NEARLY_EVERY and big["ood_fidelity"][1] > small["ood_fidelity"][2] + 0.5
    text = (f"at code {4 * d} (4x) jac_rank / r = {big['rank_frac'][0]:.3f} (every seed >= {NEARLY_EVERY}: "
            f"{big['rank_frac'][1] >= NEARLY_EVERY}) and ood_fidelity = {big['ood_fidelity'][0]:.3f}, against "
            f"{small['rank_frac'][0]:.3f} and {small['ood_fidelity'][0]:.3f} at code 8 (seed means)")
    return ("reproduced" if ok else "not reproduced"), text


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and WORKDIR/figures/overcomplete_lines.png."""
    table = cells(records)
    first = records[0]["config"]
    path = common.save_figure(plot(table, records), workdir, "overcomplete_lines", writer)
    verdict, text = claim(records)
    head = ["code", "code / D", "regimes", "jac_rank / r (min-max)", "ood_fidelity (min-max)", "test_mse",
            "PCA-k", "denoise_gain"]
    writer.summary({"verdict": verdict})
    lines += [f"# {name}: overcomplete ReLU autoencoders", "",
              f"ReLU MLP AEs, Adam {first['train.learning_rate']:g}, {first['train.steps']} steps of batch "
             f"{first['train.batch_size']}; {len(records)} members. Phase diagrams: `report.md`.", "",
             f"![lines](figures/{path.name})", "",
             "## The claim: depth 0 (one hidden ReLU layer, the code), seed means", ""]
    for data in sorted({k[0] for k in table}):
        rows = depth0(records, data)
        if rows:
            table_rows = claim_rows(rows)
            writer.table(f"depth0_{data}", head, table_rows)
            lines += [f"### {data} (D = {rows[0]['input_dim']}, data rank {rows[0]['data_rank']})", "",
                      common.md_table(head, table_rows), ""]
    lines += [f"Verdict (digits): **{verdict}**: {text}.", "",
             "## At a glance: regime, jac_rank / r, span_ood_fidelity (depth rows x code columns)", ""]
    for data in sorted({k[0] for k in table}):
        for width in sorted({k[1] for k in table if k[0] == data}):
            lines += [f"### {data}, width {width}", "", glance(table, data, width), ""]


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.overcomplete.analyze", analyse)

if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
