"""python -m experiments.failure_cases.analyze WORKDIR [WORKDIR ...]: the seed's three failure cases, one number each.

Reads the finished members of every WORKDIR given (`ae_jax.store.load`: configs, metrics, and the linear
members' trained maps; the parts may have run in one workdir or in one each), splits them on
`failure.part` and writes (into the first WORKDIR) analysis.md, WORKDIR/figures/failure_linear.png,
failure_length.png and failure_depth.png, and logs them to a W&B analysis run. Every cell reports the
seed mean with the seed min-max, the steps, the final train loss and how many seeds converged.
"""

import collections
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ae_jax import data as data_lib, diagnostics, store
from ae_jax.errors import ConfigError
from experiments import common
from experiments.failure_cases import variant  # noqa: F401 (registers the model kinds and the `failure` block)

GAIN_LEARNED = 0.9  # a span direction counts as copied when the linear map keeps at least this fraction of it


def rows_of(records: list[dict], part: str) -> list[dict]:
    """Flat config + metrics (+ jac_rank / r) of the members of one part."""
    out = []
    for r in records:
        if r["config"].get("failure.part") == part:
            m = r["metrics"]
            out.append({**r["config"], **m, "rank_frac": m["jac_rank"] / m["data_rank"],
                        "member": (r["workdir"], r["member"])})
    return out


def spread(values) -> str:
    v = np.asarray(list(values), float)
    return f"{v.mean():.3g} ({v.min():.3g}-{v.max():.3g})"


def regimes(group: list[dict]) -> str:
    counts = collections.Counter(g["regime"] for g in group)
    return ", ".join(f"{k} {c}/{len(group)}" for k, c in counts.most_common())


def conv(group: list[dict]) -> str:
    return f"{sum(bool(g['converged']) for g in group)}/{len(group)}"


def grouped(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out = collections.defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(sorted(out.items()))


def all_identity(group: list[dict]) -> bool:
    return all(g["regime"] == "identity" and g["converged"] for g in group)


# ----------------------------------------------------------------------------- 1. linear, code >= D

def span_gains(rows: list[dict]) -> tuple[np.ndarray, dict[tuple, np.ndarray], dict[tuple, np.ndarray]]:
    """(train eigenvalues on the span, {member: u_i^T A u_i per principal direction}, {member: singular values
    of the map on the span}) for the linear depth-0 members, A the end-to-end matrix of f(x) = x A + c."""
    wanted = {r["member"] for r in rows}
    members = [m for d in sorted({w for w, _ in wanted}) for m in store.load(d) if (d, m.index) in wanted]
    if not members:
        return np.zeros(0), {}, {}
    ds = data_lib.load(members[0].config.data)
    _, evals, evecs, rank = diagnostics.pca(ds.x_train)
    u = evecs[:, :rank]
    gains, svals = {}, {}
    for m in members:
        a = np.asarray(m.params["code"]["kernel"], np.float64) @ np.asarray(m.params["out"]["kernel"], np.float64)
        span = u.T @ a @ u
        gains[(m.workdir, m.index)] = np.diag(span)
        svals[(m.workdir, m.index)] = np.linalg.svd(span, compute_uv=False)
    return evals[:rank], gains, svals


def linear_section(workdir: Path, rows: list[dict], writer, lines: list[str]) -> dict:
    evals, gains, svals = span_gains(rows)
    head = ["code", "Adam lr", "steps", "regimes", "converged", "span_ood_fidelity", "perturb_fidelity",
            "jac_rank / r", "min span singular value", "directions kept < 0.9", "final train loss", "train_mse"]
    table, cells = [], grouped(rows, ("model.code_size", "train.learning_rate", "train.steps"))
    for (code, lr, steps), g in cells.items():
        weak = [int((gains[m["member"]] < GAIN_LEARNED).sum()) for m in g]
        table.append([code, f"{lr:g}", steps, regimes(g), conv(g), spread(m["span_ood_fidelity"] for m in g),
                      spread(m["perturb_fidelity"] for m in g), spread(m["rank_frac"] for m in g),
                      spread(svals[m["member"]].min() for m in g), spread(weak),
                      spread(m["final_total"] for m in g), spread(m["train_mse"] for m in g)])
    holds = {code: sorted((steps, lr) for (c, lr, steps), g in cells.items() if c == code and all_identity(g))
             for code in sorted({k[0] for k in cells})}
    path = common.save_figure(linear_figure(evals, gains, cells), workdir, "failure_linear", writer)
    writer.table("linear", head, table)
    lines += ["## 1. A linear AE with code = D and code > D (no weight decay)", "",
              f"Depth-0 linear AEs, Adam at constant rate, batch {rows[0]['train.batch_size']}; r = "
              f"{rows[0]['data_rank']}. Columns: seed mean (min-max) over {len(next(iter(cells.values())))} seeds. "
              f"`directions kept < 0.9`: principal directions i of the train data whose gain u_i^T A u_i is below "
              f"{GAIN_LEARNED} (A the end-to-end matrix); `min span singular value`: the smallest singular value "
              f"of U^T A U, the map's Jacobian on the span.", "",
              common.md_table(head, table), "", f"![linear](figures/{path.name})", ""]
    for code, ok in holds.items():
        lines.append(f"- code {code}: every seed `identity` and converged at (steps, lr) = "
                     f"{', '.join(f'({s}, {lr:g})' for s, lr in ok) if ok else 'none'}.")
    lines.append("")
    return holds


def linear_figure(evals: np.ndarray, gains: dict, cells: dict) -> Figure:
    """Per-direction gain against the direction's eigenvalue: one panel per (code, lr), one colour per length."""
    codes, lrs = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    fig = Figure(figsize=(4.6 * len(lrs), 3.6 * len(codes)), layout="constrained")
    axes = fig.subplots(len(codes), len(lrs), squeeze=False, sharey=True)
    colours = ("tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple")
    for (i, code), (j, lr) in ((a, b) for a in enumerate(codes) for b in enumerate(lrs)):
        ax = axes[i, j]
        steps = sorted(k[2] for k in cells if k[:2] == (code, lr))
        for t, colour in zip(steps, colours):
            g = np.array([gains[m["member"]] for m in cells[(code, lr, t)]])
            ax.plot(evals, g.mean(0), "o", ms=3, color=colour, label=f"{t} steps")
            ax.vlines(evals, g.min(0), g.max(0), color=colour, lw=0.8)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set(xscale="log", ylim=(-0.1, 1.2), title=f"linear AE, code {code}, Adam {lr:g}",
               xlabel="train eigenvalue of the direction" if i == len(codes) - 1 else None,
               ylabel="gain u^T A u (seed mean, min-max)" if j == 0 else None)
        ax.legend(fontsize=7, loc="lower right")
    return fig


# ----------------------------------------------------------------------------- 2. ReLU code = D vs length

def code_units(rows: list[dict]) -> tuple[dict[tuple, tuple[int, int]], int]:
    """({member: (code units never active on the train set, units active on every train example)}, train size)."""
    wanted = {r["member"] for r in rows}
    out, n = {}, 0
    for d in sorted({w for w, _ in wanted}):
        for m in store.load(d):
            if (d, m.index) in wanted:
                active = m.encode(m.dataset.x_train)[:, :m.config.model.code_size] > 0
                out[(d, m.index)], n = (int((~active.any(0)).sum()), int(active.all(0).sum())), len(active)
    return out, n


def length_section(workdir: Path, rows: list[dict], writer, lines: list[str]) -> dict:
    units, n_train = code_units(rows)
    head = ["Adam lr", "steps", "regimes", "converged", "jac_rank / r", "span_ood_fidelity", "perturb_fidelity",
            "kept_dims", "dead code units", "always-on code units", "final train loss", "train_mse", "test_mse"]
    cells = grouped(rows, ("train.learning_rate", "train.steps"))
    table = [[f"{lr:g}", steps, regimes(g), conv(g), spread(m["rank_frac"] for m in g),
              spread(m["span_ood_fidelity"] for m in g), spread(m["perturb_fidelity"] for m in g),
              spread(m["kept_dims"] for m in g), spread(units[m["member"]][0] for m in g),
              spread(units[m["member"]][1] for m in g), spread(m["final_total"] for m in g),
              spread(m["train_mse"] for m in g), spread(m["test_mse"] for m in g)] for (lr, steps), g in cells.items()]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    lrs = sorted({k[0] for k in cells})
    colours = dict(zip(lrs, ("tab:green", "tab:blue", "tab:red", "tab:purple")))
    for ax, key, title in zip(fig.subplots(1, 2), ("rank_frac", "span_ood_fidelity"),
                              ("jac_rank / r", "span_ood_fidelity")):
        for lr in lrs:
            snaps = {k[1]: g for k, g in cells.items() if k[0] == lr}
            for steps, g in snaps.items():
                ax.plot([steps] * len(g), [m[key] for m in g], "o", color=colours[lr], ms=4,
                        mfc=colours[lr] if all(m["converged"] for m in g) else "none")
            ax.plot(list(snaps), [np.mean([m[key] for m in g]) for g in snaps.values()], "-", color=colours[lr],
                    label=f"Adam {lr:g}")
        ax.axhline(0.9 if key == "span_ood_fidelity" else 1.0, color="k", lw=0.6, ls=":")
        ax.set(xscale="log", xlabel="training steps (constant rate)", title=f"ReLU depth 0, code 64: {title}")
        ticks = sorted({k[1] for k in cells})
        ax.set_xticks(ticks, [f"{t / 1000:g}k" for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    path = common.save_figure(fig, workdir, "failure_length", writer)
    writer.table("length", head, table)
    first = rows[0]
    lines += ["## 2. A ReLU AE with code = D against training length", "",
              f"Depth-0 ReLU AE, code {first['model.code_size']}, Adam at constant rate, batch "
              f"{first['train.batch_size']}; each length is its own member (the first t steps of the longest run "
              f"with its seed and rate). Dead / always-on code units: never / always positive on the "
              f"{n_train} training images. Figure: hollow "
              f"dots are unconverged seeds.", "",
              common.md_table(head, table), "", f"![length](figures/{path.name})", ""]
    return cells


# ----------------------------------------------------------------------------- 3. depth at matched loss

def matched(rows: list[dict]) -> tuple[float, dict[tuple, list[dict]]]:
    """The common target (the highest of the nets' best seed-mean train_mse: a loss every net reached) and,
    per (kind, depth), each seed's snapshot whose train_mse is closest to it in ratio."""
    nets = grouped(rows, ("model.kind", "model.depth"))
    best = [min(np.mean([m["train_mse"] for m in g]) for g in grouped(ms, ("train.steps",)).values())
            for ms in nets.values()]
    target = float(max(best))
    picked = {}
    for key, ms in nets.items():
        picked[key] = [min(g, key=lambda m: abs(np.log(m["train_mse"] / target)))
                       for g in grouped(ms, ("seed",)).values()]
    return target, picked


MATCHED_HEAD = ["kind", "depth", "steps picked", "train_mse", "regimes", "converged", "span_ood_fidelity",
                "perturb_fidelity", "jac_rank / r", "dead code units", "const_ratio", "attractor_fraction", "test_mse"]


def matched_rows(picked: dict[tuple, list[dict]], units: dict) -> list[list]:
    return [[kind, depth, "/".join(str(m["train.steps"]) for m in g), spread(m["train_mse"] for m in g), regimes(g),
             conv(g), spread(m["span_ood_fidelity"] for m in g), spread(m["perturb_fidelity"] for m in g),
             spread(m["rank_frac"] for m in g), spread(units[m["member"]][0] for m in g),
             spread(m["const_ratio"] for m in g), spread(m["attractor_fraction"] for m in g),
             spread(m["test_mse"] for m in g)]
            for (kind, depth), g in picked.items()]


def depth_section(workdir: Path, rows: list[dict], writer, lines: list[str]) -> dict:
    target, picked = matched(rows)
    kinds = sorted({r["model.kind"] for r in rows})
    per_kind = {kind: matched([r for r in rows if r["model.kind"] == kind]) for kind in kinds}
    last = max(r["train.steps"] for r in rows)
    at_end = grouped([r for r in rows if r["train.steps"] == last], ("model.kind", "model.depth"))
    end_table = [[kind, depth, spread(m["train_mse"] for m in g), regimes(g), conv(g),
                  spread(m["span_ood_fidelity"] for m in g), spread(m["rank_frac"] for m in g)]
                 for (kind, depth), g in at_end.items()]
    units, _ = code_units([m for _, p in [(target, picked), *per_kind.values()] for g in p.values() for m in g])
    path = common.save_figure(depth_figure(rows, target), workdir, "failure_depth", writer)
    writer.table("depth_matched", MATCHED_HEAD, matched_rows(picked, units))
    first = rows[0]
    lines += ["## 3. Depth at matched train loss", "",
              f"ReLU `mlp` and residual `resmlp_ln` AEs, width {first['model.width']}, "
              f"code {first['model.code_size']}, "
              f"Adam {first['train.learning_rate']:g} constant, batch {first['train.batch_size']}, snapshots at "
              f"{sorted({r['train.steps'] for r in rows})} steps. Per net and seed the snapshot whose train MSE is "
              f"closest (in ratio) to a target: the highest of the nets' lowest seed-mean train MSE, a loss every "
              f"net compared reached. Dead code units: never positive on the training set.", "",
              f"### All nets at train MSE {target:.4g}", "", common.md_table(MATCHED_HEAD, matched_rows(picked, units)), ""]
    for kind, (t, p) in per_kind.items():
        lines += [f"### `{kind}` alone at train MSE {t:.4g}", "", common.md_table(MATCHED_HEAD, matched_rows(p, units)), ""]
    lines += [f"![depth](figures/{path.name})", "", f"At equal steps ({last}), for comparison:", "",
              common.md_table(["kind", "depth", "train_mse", "regimes", "converged", "span_ood_fidelity",
                               "jac_rank / r"], end_table), ""]
    return {"all": (target, picked), **per_kind}


def depth_figure(rows: list[dict], target: float) -> Figure:
    fig = Figure(figsize=(11, 4.0), layout="constrained")
    axes = fig.subplots(1, 2)
    depths = sorted({r["model.depth"] for r in rows})
    colours = dict(zip(depths, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")))
    for (kind, depth), ms in grouped(rows, ("model.kind", "model.depth")).items():
        snaps = grouped(ms, ("train.steps",))
        x = [np.mean([m["train_mse"] for m in g]) for g in snaps.values()]
        for ax, key in zip(axes, ("span_ood_fidelity", "rank_frac")):
            ax.plot(x, [np.mean([m[key] for m in g]) for g in snaps.values()], "-o" if kind == "mlp" else "--s",
                    ms=3, color=colours[depth], label=f"{kind} depth {depth}")
    for ax, title in zip(axes, ("span_ood_fidelity", "jac_rank / r")):
        ax.axvline(target, color="k", lw=0.6, ls=":")
        ax.set(xscale="log", xlabel="train MSE (seed mean per snapshot; training runs right to left)",
               title=f"{title} against train loss (dotted: matched target)")
    axes[0].set_ylim(-0.5, 1.05)
    axes[1].legend(fontsize=7, ncol=2)
    return fig


# ----------------------------------------------------------------------------- verdicts

def apart(a: list[float], b: list[float]) -> bool:
    """Whether two seed sets' min-max ranges do not overlap (a difference beyond the seed spread)."""
    return max(a) < min(b) or max(b) < min(a)


def verdicts(linear: dict, length: dict, depth: dict) -> list[str]:
    out = []
    if linear:
        ok = all(linear.values())
        cond = "; ".join(f"code {c}: from {min(v)[0]} steps (Adam lr {min(v)[1]:g})" for c, v in linear.items() if v)
        out.append(f"**Linear, code = D and code > D copies**: {'holds' if ok else 'does not hold for every code'}"
                   f"{' under ' + cond if cond else ''}.")
    if length:
        copies = [k for k, g in length.items() if all_identity(g)]
        longest = max(k[1] for k in length)
        at_end = "; ".join(f"Adam {lr:g}: {regimes(g)}, converged {conv(g)}, span_ood_fidelity "
                           f"{spread(m['span_ood_fidelity'] for m in g)}"
                           for (lr, t), g in length.items() if t == longest)
        out.append(f"**ReLU, code = D copies**: at {longest} steps {at_end}. Every seed identity and converged at "
                   f"(lr, steps) = {', '.join(f'({lr:g}, {t})' for lr, t in copies) if copies else 'none tried'}.")
    for name, (target, picked) in depth.items():
        for kind in sorted({k[0] for k in picked}):
            ds = sorted(d for k, d in picked if k == kind)
            if len(ds) < 2:
                continue
            lo, hi = picked[(kind, ds[0])], picked[(kind, ds[-1])]
            f_lo, f_hi = [m["span_ood_fidelity"] for m in lo], [m["span_ood_fidelity"] for m in hi]
            sign = "higher" if np.mean(f_hi) > np.mean(f_lo) else "lower"
            out.append(f"**Depth ({kind}{', all nets matched' if name == 'all' else ''})** at train MSE "
                       f"{target:.3g}: depth {ds[-1]} has {sign} span_ood_fidelity than depth {ds[0]} ({spread(f_hi)} "
                       f"vs {spread(f_lo)}), {'beyond' if apart(f_lo, f_hi) else 'within'} the seed spread.")
    return out


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and WORKDIR/figures/failure_*.png with every part the workdir holds."""
    lines += [f"# {name}: the seed's failure cases (Goodfellow et al. ch. 14.1) on digits", ""]
    found = {}
    for part, section in (("linear", linear_section), ("length", length_section), ("depth", depth_section)):
        rows = rows_of(records, part)
        found[part] = section(workdir, rows, writer, lines) if rows else {}
    lines += ["## Verdict", ""] + [f"- {v}" for v in verdicts(found["linear"], found["length"], found["depth"])]
    writer.summary({"parts": ",".join(p for p, v in found.items() if v)})


def main(argv: list[str]) -> Path:
    """Writes the first WORKDIR's analysis.md and figures from every WORKDIR's members; returns its path."""
    if len(argv) < 2:
        raise ConfigError("usage: python -m experiments.failure_cases.analyze WORKDIR [WORKDIR ...]")
    dirs = [Path(a) for a in argv[1:]]
    # A member run in two workdirs (the same config) counts once: the later workdir's.
    unique = {json.dumps({k: v for k, v in m.record["config"].items() if not k.startswith("wandb.")},
                         sort_keys=True, default=str): dict(m.record, workdir=d) for d in dirs for m in store.load(d)}
    records = list(unique.values())
    if not records:
        raise ConfigError(f"{', '.join(map(str, dirs))}: no finished (ok) member to analyse")
    name = records[0]["config"].get("name") or "failure_cases"
    run_config = {"sweep": name, "members": len(records), "workdirs": [str(d) for d in dirs]}
    with common.analysis(common.wandb_of_results(records), dirs[0], name, run_config) as (writer, lines):
        analyse(dirs[0], records, name, writer, lines)
    return dirs[0] / "analysis.md"


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
