"""python -m experiments.linear_decay.run --config=experiments/linear_decay/config.py[:smoke] --workdir=DIR

Trains the config's weight-decay sweep of linear autoencoders with `ae_jax.train.fit` (one vmapped
program), then compares the learned end-to-end map A = W_enc W_dec with Kunin et al.'s closed form:
A* = sum_i (1 - lambda / eigenvalue_i)_+ u_i u_i^T over the eigenpairs of the centred train covariance
(normalised by N; the derivation for this loss convention is in the README). Writes
DIR/figures/linear_decay.png, DIR/analysis.md and DIR/linear_decay.json, and logs them to W&B.
"""

import json
import sys
from pathlib import Path


import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from ae_jax import objectives, sweep as sweep_lib, train
from ae_jax.errors import ConfigError
from experiments import common

ACTIVE = 1e-9  # eigenvalues at or below this (digits' constant pixels) are not data directions


def covariance_eigen(x_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues descending, eigenvectors as columns) of the train covariance, normalised by N:
    the expectation the per-example loss averages over."""
    x = np.asarray(x_ND, np.float64)
    mu = x.mean(0)
    evals, evecs = np.linalg.eigh((x - mu).T @ (x - mu) / len(x))
    return mu, evals[::-1].clip(0.0), evecs[:, ::-1]


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


def full_batch_loss_and_grad(plan: train.Plan, params: dict, x_ND: np.ndarray, lam: float) -> tuple[float, float]:
    """The library's own loss (objectives.loss_fn) on the whole training set, and its gradient norm."""
    hp = {k: jnp.float32(0.0) for k in train.traced_keys()}
    hp["train.weight_decay"] = jnp.float32(lam)
    x = jnp.asarray(x_ND)

    def loss(p):
        return objectives.loss_fn(p, {}, None, x, jax.random.key(0), hp, spec=plan.spec, obj=plan.obj,
                                  lo_D=x.min(0), hi_D=x.max(0))[0]

    value, grads = jax.value_and_grad(loss)(jax.tree.map(jnp.asarray, params))
    return float(value), float(optax.global_norm(grads))


def analyse_member(fit: dict, lam: float) -> dict:
    """Learned vs closed-form map of one trained member."""
    params, x = fit["params"], fit["dataset"].x_train
    mu, evals, evecs = covariance_eigen(x)
    a = params["code"]["kernel"].astype(np.float64) @ params["out"]["kernel"].astype(np.float64)
    learned = np.linalg.svd(a, compute_uv=False)
    closed = closed_form_weights(evals, lam)
    a_star = (evecs * closed) @ evecs.T
    # The map in the eigenbasis: diagonal = each principal direction's weight; off-diagonal = mixing.
    in_basis = evecs.T @ a @ evecs
    like = jax.tree.map(np.asarray, params)
    checks = {}
    for label, factor in (("closed form", 1.0), ("1/2-MSE convention (1 - 2 lambda/ev)", 2.0)):
        p = closed_form_params(like, mu, evecs, closed_form_weights(evals, lam, factor))
        checks[label] = full_batch_loss_and_grad(fit["plan"], p, x, lam)
    checks["learned"] = full_batch_loss_and_grad(fit["plan"], params, x, lam)
    return dict(
        weight_decay=lam, seed=fit["member"].config.seed, steps=fit["steps"],
        eigenvalues=evals.tolist(), closed_form=closed.tolist(), learned_sv=learned.tolist(),
        learned_diag=np.diag(in_basis).tolist(),
        sv_max_abs_error=float(np.abs(learned - np.sort(closed)[::-1]).max()),
        map_rel_error=float(np.linalg.norm(a - a_star) / np.linalg.norm(a_star)),
        active_closed=int((closed > 0).sum()), active_learned=int((learned > 0.01).sum()),
        loss_and_grad={k: {"loss": v[0], "grad_norm": v[1]} for k, v in checks.items()},
    )


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
    fig.suptitle("Weight-decayed overcomplete linear AE = shrunk PCA (Kunin et al. 2019)")
    return fig


def markdown(name: str, config, results: list[dict], figure: str, elapsed: str) -> str:
    evals = np.array(results[0]["eigenvalues"])
    n_show = min(len(evals), max(r["active_closed"] for r in results) + 2)
    head = ["i", "eigenvalue"] + [f"λ={r['weight_decay']:g} {part}" for r in results
                                  for part in ("closed", "learned")]
    rows = [[i + 1, f"{evals[i]:.4f}"] + [f"{r[key][i]:.3f}" for r in results
                                          for key in ("closed_form", "learned_sv")] for i in range(n_show)]
    summary_head = ["λ", "directions on (closed / learned > 0.01)", "max |sv error|", "‖A - A*‖/‖A*‖",
                    "loss learned", "loss closed form", "grad norm closed form", "grad norm, 1/2-MSE form"]
    summary = [[f"{r['weight_decay']:g}", f"{r['active_closed']} / {r['active_learned']}",
                f"{r['sv_max_abs_error']:.4f}", f"{r['map_rel_error']:.4f}",
                f"{r['loss_and_grad']['learned']['loss']:.5f}",
                f"{r['loss_and_grad']['closed form']['loss']:.5f}",
                f"{r['loss_and_grad']['closed form']['grad_norm']:.2e}",
                f"{r['loss_and_grad']['1/2-MSE convention (1 - 2 lambda/ev)']['grad_norm']:.2e}"] for r in results]
    worst = max(r["sv_max_abs_error"] for r in results)
    verdict = "reproduced" if worst <= 0.02 else "not reproduced"
    c = config
    return "\n".join([
        f"# {name}: weight-decayed linear AE vs (1 - λ/eigenvalue)_+", "",
        f"Linear AE, depth 0, code {c.model.code_size} on {c.data.name} (D = {len(evals)}); "
        f"{c.train.optimizer} {c.train.learning_rate:g}, {c.train.schedule} schedule, {c.train.steps} steps of "
        f"batch {c.train.batch_size}; wall time {elapsed}.", "",
        f"![learned vs closed form]({figure})", "",
        common.md_table(summary_head, summary), "",
        "Loss and gradient norm are the library's own `objectives.loss_fn` on the whole training set: the "
        "closed form is a stationary point (gradient at float32 round-off) and its loss is at most the "
        "learned one's; the same construction with the 1/2-MSE convention's weights is not stationary.", "",
        "Per direction (eigenvalue order; learned = singular values of W_enc W_dec, sorted):", "",
        common.md_table(head, rows), "",
        f"Verdict: **{verdict}**: largest |learned singular value - closed form| is {worst:.4f} "
        "(tolerance 0.02).", ""])


def main(argv: list[str]) -> list[dict]:
    clock = common.Clock()
    config, overrides, name, workdir = common.parse_run_flags(argv, __doc__)
    members = sweep_lib.expand(config, overrides)
    for m in members:
        mc = m.config.model
        if (mc.kind, mc.depth, mc.activation) != ("mlp", 0, "linear") or m.config.noise.kind != "none" \
                or m.config.sparsity.kind != "none" or m.config.vae.enabled or m.config.contractive.weight:
            raise ConfigError("linear_decay: every member must be a plain linear AE (mlp, depth 0, linear, "
                              "no noise / sparsity / contractive / vae)")
    datasets = common.load_datasets(members)
    fits = common.fit_members(members, datasets)
    results = [analyse_member(f, f["member"].config.train.weight_decay) for f in fits]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "linear_decay.json").write_text(json.dumps(results, indent=1))
    with common.analysis(config.wandb, workdir, name, config) as (writer, doc):
        path = common.save_figure(plot(results), workdir, "linear_decay", writer)
        doc.append(markdown(name, config, results, f"figures/{path.name}", str(clock)))
        evals = results[0]["eigenvalues"]
        writer.table("directions", ["i", "eigenvalue", "weight_decay", "closed_form", "learned_sv"],
                     [[i + 1, evals[i], r["weight_decay"], r["closed_form"][i], r["learned_sv"][i]]
                      for r in results for i in range(len(evals))])
        writer.summary({f"sv_max_abs_error/lambda={r['weight_decay']:g}": r["sv_max_abs_error"] for r in results})
    return results


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
