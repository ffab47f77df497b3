"""python -m experiments.linear_decay.analyze WORKDIR: the learned map of each weight-decayed linear AE
against Kunin et al.'s closed form.

Reads the finished sweep in WORKDIR (`python -m ae_jax.sweep --config=experiments/linear_decay/config.py`):
each member's parameters give its end-to-end map A = W_enc W_dec, compared with
A* = sum_i (1 - lambda / eigenvalue_i)_+ u_i u_i^T over the eigenpairs of the centred train covariance
(normalised by N; the derivation for this loss convention is in the README). Writes
WORKDIR/figures/linear_decay.png, WORKDIR/analysis.md and WORKDIR/linear_decay.json, and logs them to W&B.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from ae_jax import config as config_lib, data as data_lib, diagnostics, store
from ae_jax.errors import ConfigError
from experiments import common

ACTIVE = 1e-9  # eigenvalues at or below this (digits' constant pixels) are not data directions
TOLERANCE = 0.02  # "reproduced": every learned singular value within this of the closed form


def covariance_eigen(x_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues descending, eigenvectors as columns) of the train covariance, normalised by N:
    the expectation the per-example loss averages over."""
    mu, evals, evecs, _ = diagnostics.pca(x_ND)
    return mu, evals, evecs


def closed_form_weights(evals: np.ndarray, lam: float, factor: float = 1.0) -> np.ndarray:
    """(1 - factor * lambda / eigenvalue)_+ per direction; 0 where there is no variance."""
    with np.errstate(divide="ignore"):
        w = 1.0 - factor * lam / np.where(evals > ACTIVE, evals, np.inf)
    return np.where(evals > ACTIVE, w, 0.0).clip(0.0)


def closed_form_params(like: dict, mu: np.ndarray, evecs: np.ndarray, weights: np.ndarray) -> dict:
    """Balanced factors of A* (W_enc = U sqrt(w), W_dec = sqrt(w) U^T; the decay's optimum is balanced),
    shaped like the model's params, with the decoder bias that reproduces the data mean."""
    d, k = like["code"]["kernel"].shape
    n = min(int((weights > 0).sum()), k)
    enc = np.zeros((d, k))
    enc[:, :n] = evecs[:, :n] * np.sqrt(weights[:n])
    a = enc @ enc.T
    return {"code": {"kernel": enc.astype(np.float32), "bias": np.zeros(k, np.float32)},
            "out": {"kernel": enc.T.astype(np.float32), "bias": (mu - mu @ a).astype(np.float32)}}


def decay_loss(params: dict, x_ND: jax.Array, lam: float) -> tuple[jax.Array, jax.Array]:
    """(total, reconstruction) of a depth-0 linear AE on all of x, in the library's convention (README):
    per-example sum of squared errors averaged over examples, plus lam * (||W_enc||^2 + ||W_dec||^2)."""
    code, out = params["code"], params["out"]
    f = (x_ND @ code["kernel"] + code["bias"]) @ out["kernel"] + out["bias"]
    recon = jnp.square(x_ND - f).sum(-1).mean()
    return recon + lam * (jnp.square(code["kernel"]).sum() + jnp.square(out["kernel"]).sum()), recon


def loss_and_grad_norm(params: dict, x_ND: np.ndarray, lam: float) -> tuple[float, float]:
    """The full-batch loss at `params` and the norm of its gradient (0 at a stationary point)."""
    loss = lambda p: decay_loss(p, jnp.asarray(x_ND, jnp.float32), lam)[0]
    value, grads = jax.value_and_grad(loss)(jax.tree.map(jnp.asarray, params))
    return float(value), float(optax.global_norm(grads))


def check_member(m: store.Member) -> None:
    """The closed form is for a plain linear depth-0 AE with a linear output; anything else is refused."""
    mc = m.config.model
    # the saved spec too: a plug-in code stage (e.g. linear_dynamics' small_init) is unknown here
    if config_lib.variant_of(m.config) != ["mlp", "plain"] or (mc.depth, mc.activation, mc.output) != (
            0, "linear", "linear") or mc.code_activation not in ("", "linear") or m.spec.code_stage != "plain":
        raise ConfigError(f"linear_decay: member {m.name!r} is not a plain linear AE (model.kind mlp, depth 0, "
                          f"activation and output linear, no noise / sparsity / contractive / vae)")


def analyse_member(m: store.Member, ds: data_lib.Dataset) -> dict:
    """Learned vs closed-form map of one trained member."""
    lam = float(m.config.train.weight_decay)
    params, x = m.params, ds.x_train
    mu, evals, evecs = covariance_eigen(x)
    a = params["code"]["kernel"].astype(np.float64) @ params["out"]["kernel"].astype(np.float64)
    learned = np.linalg.svd(a, compute_uv=False)
    closed = closed_form_weights(evals, lam)
    a_star = (evecs * closed) @ evecs.T
    checks = {}
    for label, factor in (("closed form", 1.0), ("1/2-MSE convention (1 - 2 lambda/ev)", 2.0)):
        p = closed_form_params(params, mu, evecs, closed_form_weights(evals, lam, factor))
        checks[label] = loss_and_grad_norm(p, x, lam)
    checks["learned"] = loss_and_grad_norm(params, x, lam)
    # Our restated loss against the library's own number for the same member: the recorded train_mse
    # (mean over examples and dimensions) times D is its reconstruction term.
    recon = float(decay_loss(jax.tree.map(jnp.asarray, params), jnp.asarray(x), lam)[1])
    return dict(
        member=m.name, weight_decay=lam, seed=int(m.config.seed), steps=int(m.metrics["steps"]),
        final_loss=float(m.metrics["final_total"]), converged=bool(m.metrics.get("converged")),
        regime=m.metrics.get("regime", "—"),
        eigenvalues=evals.tolist(), closed_form=closed.tolist(), learned_sv=learned.tolist(),
        # the map in the eigenbasis: its diagonal is each principal direction's weight
        learned_diag=np.diag(evecs.T @ a @ evecs).tolist(),
        sv_max_abs_error=float(np.abs(learned - np.sort(closed)[::-1]).max()),
        map_rel_error=float(np.linalg.norm(a - a_star) / np.linalg.norm(a_star)),
        active_closed=int((closed > 0).sum()), active_learned=int((learned > 0.01).sum()),
        # the sweep's jac_rank counts the map's span gains above 0.5: the closed form predicts how many
        jac_rank=float(m.metrics["jac_rank"]), closed_above_half=int((closed > 0.5).sum()),
        loss_and_grad={k: {"loss": v[0], "grad_norm": v[1]} for k, v in checks.items()},
        recon_over_library=recon / (ds.dim * m.metrics["train_mse"]),
    )


def by_lambda(results: list[dict]) -> list[dict]:
    """One entry per lambda: the first seed's result with `learned_sv` the seed mean and
    `sv_max_abs_error` the worst seed's, for the figure and the per-direction table."""
    out = []
    for lam in sorted({r["weight_decay"] for r in results}):
        rs = [r for r in results if r["weight_decay"] == lam]
        out.append(dict(rs[0], learned_sv=np.mean([r["learned_sv"] for r in rs], 0).tolist(),
                        sv_max_abs_error=max(r["sv_max_abs_error"] for r in rs), seeds=len(rs)))
    return out


def plot(results: list[dict]) -> Figure:
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_i, ax_ev, ax_xy = fig.subplots(1, 3)
    evals = np.array(results[0]["eigenvalues"])
    n_show = min(len(evals), max(r["active_closed"] for r in results) + 4)
    idx = np.arange(1, n_show + 1)
    lo = 0.3 * min(r["weight_decay"] for r in results)  # below it every weight is 0: not worth the axis
    grid = np.geomspace(lo, evals.max() * 1.5, 300)
    keep = evals[:n_show] >= lo
    for j, r in enumerate(results):
        color = f"C{j}"
        lam = r["weight_decay"]
        ax_i.plot(idx, r["closed_form"][:n_show], "-", color=color, lw=1.5, label=f"closed form, λ={lam:g}")
        ax_i.plot(idx, r["learned_sv"][:n_show], "o", color=color, mfc="none", ms=6)
        ax_ev.plot(grid, np.clip(1 - lam / grid, 0, None), "-", color=color, lw=1.5, label=f"1 - λ/ev, λ={lam:g}")
        ax_ev.plot(evals[:n_show][keep], np.array(r["learned_sv"][:n_show])[keep], "o", color=color, mfc="none", ms=6)
        ax_xy.plot(r["closed_form"][:n_show], r["learned_sv"][:n_show], "o", color=color, mfc="none",
                   label=f"λ={lam:g}: max |err| {r['sv_max_abs_error']:.3f}")
    ax_i.plot([], [], "ko", mfc="none", label="learned singular values")
    ax_i.set(xlabel="principal direction i (eigenvalue order)", ylabel="weight of direction i",
             title="learned singular values of W_enc W_dec (o) vs closed form (—)")
    ax_ev.set(xscale="log", xlabel="covariance eigenvalue (normalised by N)", ylabel="weight",
              title="weight = (1 - λ / eigenvalue)_+")
    ax_xy.plot([0, 1], [0, 1], "k--", lw=1)
    ax_xy.set(xlabel="closed form", ylabel="learned", title="learned vs closed form", aspect="equal")
    for ax in (ax_i, ax_ev, ax_xy):
        ax.legend(fontsize=7)
    fig.suptitle("Weight-decayed overcomplete linear AE = shrunk PCA (Kunin et al. 2019); learned: seed mean, "
                 "error: worst seed")
    return fig


def markdown(name: str, record: dict, results: list[dict], figure: str) -> list[str]:
    c = record["config"]
    evals = np.array(results[0]["eigenvalues"])
    n_show = min(len(evals), max(r["active_closed"] for r in results) + 2)
    means = by_lambda(results)
    head = ["i", "eigenvalue"] + [f"λ={r['weight_decay']:g} {part}" for r in means
                                  for part in ("closed", "learned")]
    rows = [[i + 1, f"{evals[i]:.4f}"] + [f"{r[key][i]:.3f}" for r in means
                                          for key in ("closed_form", "learned_sv")] for i in range(n_show)]
    summary_head = ["λ", "seed", "steps", "final train loss", "converged", "regime",
                    "directions on (closed / learned > 0.01)", "closed form > 0.5 / sweep's jac_rank",
                    "max |sv error|", "‖A - A*‖/‖A*‖",
                    "loss learned", "loss closed form", "grad norm closed form", "grad norm, 1/2-MSE form"]
    summary = [[f"{r['weight_decay']:g}", r["seed"], r["steps"], f"{r['final_loss']:.5f}",
                "yes" if r["converged"] else "no", r["regime"], f"{r['active_closed']} / {r['active_learned']}",
                f"{r['closed_above_half']} / {r['jac_rank']:g}", f"{r['sv_max_abs_error']:.4f}", f"{r['map_rel_error']:.4f}",
                f"{r['loss_and_grad']['learned']['loss']:.5f}",
                f"{r['loss_and_grad']['closed form']['loss']:.5f}",
                f"{r['loss_and_grad']['closed form']['grad_norm']:.2e}",
                f"{r['loss_and_grad']['1/2-MSE convention (1 - 2 lambda/ev)']['grad_norm']:.2e}"] for r in results]
    worst = max(r["sv_max_abs_error"] for r in results)
    verdict = "reproduced" if worst <= TOLERANCE else "not reproduced"
    gap = max(abs(r["recon_over_library"] - 1) for r in results)
    return [
        f"# {name}: weight-decayed linear AE vs (1 - λ/eigenvalue)_+", "",
        f"Linear AE, depth 0, code {c['model.code_size']} on {c['data.name']} (D = {len(evals)}); "
        f"{c['train.optimizer']} {c['train.learning_rate']:g}, {c['train.schedule']} schedule, "
        f"{c['train.steps']} steps of batch {c['train.batch_size']}.", "",
        f"![learned vs closed form]({figure})", "",
        common.md_table(summary_head, summary), "",
        "Loss and gradient norm are the full-batch loss in the library's convention (per-example sum of "
        "squares averaged over the training set + λ (‖W_enc‖² + ‖W_dec‖²)): the closed form is a stationary "
        "point (gradient at float32 round-off) and its loss is at most the learned one's; the same "
        "construction with the 1/2-MSE convention's weights is not stationary. The reconstruction term "
        f"matches the sweep's own train_mse x D to within {gap:.1e} (relative) for every member.", "",
        "Per direction (eigenvalue order; learned = singular values of W_enc W_dec, sorted, mean over the "
        f"{means[0]['seeds']} seeds):", "",
        common.md_table(head, rows), "",
        f"Verdict: **{verdict}**: largest |learned singular value - closed form| over every λ and seed is "
        f"{worst:.4f} (tolerance {TOLERANCE}); {sum(r['converged'] for r in results)}/{len(results)} members "
        f"converged.", ""]


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md, WORKDIR/linear_decay.json and WORKDIR/figures/linear_decay.png."""
    members = sorted(store.load(workdir), key=lambda m: (m.config.train.weight_decay, m.config.seed))
    for m in members:
        check_member(m)
    datasets: dict[str, data_lib.Dataset] = {}
    results = []
    for m in members:
        key = json.dumps(m.config.data.to_dict(), sort_keys=True)
        ds = datasets.setdefault(key, data_lib.load(m.config.data))
        results.append(analyse_member(m, ds))
    if len(datasets) > 1:
        raise ConfigError(f"{workdir}: linear_decay compares members on one dataset, found {len(datasets)}")
    (workdir / "linear_decay.json").write_text(json.dumps(results, indent=1))
    path = common.save_figure(plot(by_lambda(results)), workdir, "linear_decay", writer)
    lines += markdown(name, records[0], results, f"figures/{path.name}")
    evals = results[0]["eigenvalues"]
    writer.table("directions", ["i", "eigenvalue", "weight_decay", "closed_form", "learned_sv"],
                 [[i + 1, evals[i], r["weight_decay"], r["closed_form"][i], r["learned_sv"][i]]
                  for r in by_lambda(results) for i in range(len(evals))])
    writer.summary({f"sv_max_abs_error/lambda={r['weight_decay']:g}": r["sv_max_abs_error"]
                    for r in by_lambda(results)})


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.linear_decay.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
