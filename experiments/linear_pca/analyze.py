"""python -m experiments.linear_pca.analyze WORKDIR: the linear AE's test MSE against PCA-k, per dataset.

Reads WORKDIR/results.jsonl (from `python -m ae_jax.sweep --config=experiments/linear_pca/config.py`),
writes WORKDIR/figures/linear_pca.png and WORKDIR/analysis.md, and logs both to a W&B analysis run.
"""

import collections
import sys
from pathlib import Path


import ml_collections
import numpy as np
from matplotlib.figure import Figure

from ae_jax import config as config_lib, data as data_lib, diagnostics
from experiments import common

# docs/science.md: PCA-k test MSE per pixel on digits' 1347/450 split.
SCIENCE_DIGITS = {8: 0.025, 16: 0.012, 32: 0.003}
TOLERANCE = 0.02  # "equals PCA-k": every member's test_mse within 2% of its pca_mse


def dataset_label(config: dict) -> str:
    if config["data.name"] != "manifold":
        return config["data.name"]
    return (f"manifold {config['data.manifold.kind']} d={config['data.manifold.intrinsic_dim']} in "
            f"R^{config['data.manifold.ambient_dim']}, noise {config['data.manifold.noise']:g}")


def pca_train_mse(config: dict, k: int) -> float:
    """PCA-k's error on the training set itself: the optimum a linear AE's train_mse can only approach."""
    c = config_lib.apply_overrides(config_lib.base_config(), {
        key: v for key, v in config.items() if key.startswith("data.")})
    ds = data_lib.load(ml_collections.ConfigDict(c.data.to_dict()))
    return diagnostics.pca_mse(ds.x_train, ds.x_train, min(k, ds.dim))


def summarise(records: list[dict]) -> dict[str, list[dict]]:
    """{dataset: rows sorted by k}, each row the seed mean and spread of test_mse, its pca_mse and ratio."""
    cells = collections.defaultdict(list)
    for r in records:
        cells[(dataset_label(r["config"]), r["config"]["model.code_size"])].append(r)
    out = collections.defaultdict(list)
    for (label, k), rs in sorted(cells.items()):
        ms = [r["metrics"] for r in rs]
        ours = np.array([m["test_mse"] for m in ms])
        pca = ms[0]["pca_mse"]
        ratios = ours / pca
        train = float(np.mean([m["train_mse"] for m in ms]))
        pca_train = pca_train_mse(rs[0]["config"], k)
        out[label].append(dict(k=k, ours=float(ours.mean()), ours_min=float(ours.min()), ours_max=float(ours.max()),
                               pca=pca, ratio=float(ratios.mean()), worst=float(np.abs(ratios - 1).max()),
                               n=len(ms), data_rank=ms[0]["data_rank"], input_dim=ms[0]["input_dim"],
                               train_mse=train, pca_train=pca_train, train_ratio=train / pca_train,
                               science=SCIENCE_DIGITS.get(k) if label == "digits" else None))
    return dict(out)


def plot(summary: dict[str, list[dict]], records: list[dict]) -> Figure:
    fig = Figure(figsize=(5.2 * len(summary), 6.2), layout="constrained")
    axes = fig.subplots(2, len(summary), squeeze=False, sharex="col", height_ratios=(2, 1))
    for j, (label, rows) in enumerate(summary.items()):
        ks = [row["k"] for row in rows]
        top, bottom = axes[0, j], axes[1, j]
        top.plot(ks, [row["pca"] for row in rows], "k--", lw=1.5, label="PCA-k (closed form)")
        mine = [r for r in records if dataset_label(r["config"]) == label]
        top.plot([r["config"]["model.code_size"] for r in mine], [r["metrics"]["test_mse"] for r in mine],
                 "o", color="C0", mfc="none", ms=8, label="linear AE (each seed)")
        if label == "digits":
            top.plot(list(SCIENCE_DIGITS), list(SCIENCE_DIGITS.values()), "x", color="C3", ms=9,
                     label="docs/science.md")
        top.set_yscale("log")
        top.set_ylabel("test MSE per entry")
        top.set_title(label, fontsize=10)
        top.legend(fontsize=8)
        bottom.axhline(1.0, color="k", ls="--", lw=1)
        bottom.plot([r["config"]["model.code_size"] for r in mine],
                    [r["metrics"]["test_mse"] / r["metrics"]["pca_mse"] for r in mine], "o", color="C0", mfc="none")
        bottom.set_ylabel("test_mse / pca_mse")
        bottom.set_xlabel("code size k")
        bottom.set_xscale("log", base=2)
        bottom.set_xticks(ks, [str(k) for k in ks])
    fig.suptitle("Linear autoencoder vs PCA-k (Baldi & Hornik 1989)")
    return fig


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and WORKDIR/figures/linear_pca.png."""
    summary = summarise(records)
    first = records[0]["config"]
    path = common.save_figure(plot(summary, records), workdir, "linear_pca", writer)
    worst = max(row["worst"] for rows in summary.values() for row in rows)
    verdict = "reproduced" if worst <= TOLERANCE else "not reproduced"
    lines += [f"# {name}: linear autoencoder vs PCA-k", "",
             f"Adam {first['train.learning_rate']:g}, {first['train.schedule']} schedule, "
             f"{first['train.steps']} steps of batch {first['train.batch_size']}; {len(records)} members.", "",
             f"![linear AE vs PCA-k](figures/{path.name})", ""]
    head = ["k", "ours (test_mse)", "PCA-k (pca_mse)", "ours / PCA-k", "docs/science.md", "train_mse",
            "PCA-k on train", "train ratio", "seeds"]
    for label, rows in summary.items():
        table = [[row["k"], common.fmt(row["ours"]), common.fmt(row["pca"]), f"{row['ratio']:.4f}",
                  common.fmt(row["science"], 2) if row["science"] else "", common.fmt(row["train_mse"]),
                  common.fmt(row["pca_train"]), f"{row['train_ratio']:.4f}", row["n"]] for row in rows]
        lines += [f"## {label} (D = {rows[0]['input_dim']}, data rank {rows[0]['data_rank']})", "",
                  common.md_table(head, table), ""]
        writer.table(f"table/{label.split()[0]}", head, table)
    worst_train = max(row["train_ratio"] for rows in summary.values() for row in rows)
    lines += ["Columns are seed means. `train ratio` compares the AE's training error with PCA-k's on the "
              "training set, the true optimum (it cannot go below 1 beyond float error); the test ratio "
              "can, since PCA-k is fitted on train too.", "",
              f"Verdict: **{verdict}**: the largest |test_mse / pca_mse - 1| over all members is "
              f"{worst:.4f} (tolerance {TOLERANCE}); the largest train ratio is {worst_train:.4f}."]
    writer.summary({"worst_relative_gap": worst, "worst_train_ratio": worst_train, "verdict": verdict})


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.linear_pca.analyze", analyse)

if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
