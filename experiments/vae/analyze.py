"""python -m experiments.vae.analyze WORKDIR: active units and KL of VAEs against latent size and beta.

Reads WORKDIR/results.jsonl and the saved members (from `python -m ae_jax.sweep
--config=experiments/vae/config.py`) and the prior samples the sweep wrote to WORKDIR/samples/, and writes
WORKDIR/analysis.md (latent x beta tables of active units, KL, test MSE and convergence per family, each
cell the mean over seeds with the min-max; the linear VAE beside its closed form: active units, KL, the
loss gap and the per-unit variances; per-unit variances and KLs beside the thresholded count; the claim
checks and the verdict) and four figures under WORKDIR/figures/ (vae_active_units.png, vae_kl.png,
vae_units.png, vae_samples.png), all also logged to a W&B analysis run.

The linear VAE's closed form (Lucas et al. 2019, for this library's loss; derivation in the README):
the loss sum_d (x_d - f_d(z))^2 + beta KL is 2 sigma^2 times the negative ELBO of the Gaussian decoder
N(W z + b, sigma^2 I) with sigma^2 = beta / 2, whose optimum is probabilistic PCA with that fixed noise:
unit i (eigenpair lambda_i, u_i of the train covariance, normalised by N) is kept iff lambda_i > sigma^2,
with mean code sqrt(lambda_i - sigma^2) / lambda_i u_i^T (x - mu) and posterior variance sigma^2 / lambda_i,
so Var_x E_q[z_i] = (1 - sigma^2 / lambda_i) u_i^T C u_i / lambda_i and KL_i = 1/2 log(lambda_i / sigma^2)
on the training data. At most `latent size` units are kept (the largest eigenvalues). The loss of a
linear VAE has an exact expectation over q (`expected_linear_loss`), so the learned members and the
closed form are compared without Monte Carlo noise.
"""

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ae_jax import config as config_lib, data as data_lib, diagnostics, member_log, models, store
from experiments import common

TITLE = {"digits": "digits, Bernoulli decoder, ReLU 256", "manifold": "4-sphere in R^32, Gaussian decoder, ReLU 128",
         "linear": "linear VAE on digits, Gaussian decoder"}
FAMILIES = ("digits", "manifold", "linear")
SATURATION_SLACK = 2  # active units at the largest latent may exceed those at the next one by this much
KL_RELATIVE = 0.1  # "informative units": per-unit KL at least this fraction of the largest unit's
KL_FLOOR = 0.1  # nats: below this total KL the code carries nothing and no unit counts as informative
TOP_VARIANCES = 4  # per-unit variances listed beside the count


def family(c: dict) -> str:
    return "linear" if c["model.activation"] == "linear" else c["data.name"]


def cells(records: list[dict]) -> dict[tuple, list[dict]]:
    """{(family, latent, beta): [metrics (with the record's config and name) per seed, by seed]}."""
    out: dict[tuple, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["config"]["seed"]):
        c = r["config"]
        out.setdefault((family(c), c["model.code_size"], c["vae.beta"]), []).append(
            dict(r["metrics"], config=c, name=r["name"], member=r["member"]))
    return out


def spread(rows: list[dict], key: str) -> tuple[float, float, float]:
    v = np.array([r[key] for r in rows], float)
    return float(v.mean()), float(v.min()), float(v.max())


def cell(rows: list[dict], key: str, fmt=lambda v: f"{v:.3g}") -> str:
    mean, lo, hi = spread(rows, key)
    return fmt(mean) if lo == hi else f"{fmt(mean)} ({fmt(lo)}-{fmt(hi)})"


def load_data(c: dict) -> data_lib.Dataset:
    keys = {k: v for k, v in c.items() if k.startswith("data.")}
    return data_lib.load(config_lib.apply_overrides(config_lib.base_config(), keys).data)


def linear_closed_form(ds: data_lib.Dataset, latent: int, beta: float, threshold: float) -> dict:
    """The linear VAE optimum's active units, KL and per-unit variances (module docstring), on train and test."""
    x_te = np.asarray(ds.x_test, np.float64)
    mu, evals, evecs, _ = diagnostics.pca(ds.x_train)
    sigma2 = beta / 2.0
    kept = np.flatnonzero(evals > sigma2)[:latent]  # eigh sorts, so these are the largest
    lam, u = evals[kept], evecs[:, kept]
    # train: Var E_q[z_i] = 1 - sigma^2 / lambda_i
    active_train = int(np.sum(1.0 - sigma2 / lam > threshold))
    mean_code = (x_te - mu) @ u * (np.sqrt(lam - sigma2) / lam)  # test examples' mean codes
    post_var = sigma2 / lam
    kl_test = 0.5 * ((mean_code ** 2).mean(0) + post_var - 1.0 - np.log(post_var)).sum()
    return dict(sigma2=sigma2, kept=len(kept), active_train=active_train,
                active_test=int(np.sum(mean_code.var(0) > threshold)),
                unit_var=np.sort(mean_code.var(0))[::-1] if len(kept) else np.zeros(0),
                kl_train=float(0.5 * np.log(lam / sigma2).sum()), kl_test=float(kl_test))


def closed_form_params(like: dict, x_train: np.ndarray, beta: float, noise_factor: float = 0.5) -> dict:
    """The linear VAE optimum as the library's depth-0 params (shaped like `like`): encoder mean
    sqrt(lambda - s2) / lambda u^T (x - mu), log-variance log(s2 / lambda), decoder sqrt(lambda - s2) u + mu,
    with s2 = noise_factor * beta (0.5 is this library's convention; the tests use 1 as the wrong one)."""
    mu, evals, evecs, _ = diagnostics.pca(x_train)
    d, k = like["code"]["kernel"].shape
    s2 = noise_factor * beta
    n = min(int(np.sum(evals > s2)), k)
    lam, u = evals[:n], evecs[:, :n]
    enc, dec, logvar = np.zeros((d, k)), np.zeros((k, d)), np.zeros(k)
    enc[:, :n] = u * (np.sqrt(lam - s2) / lam)
    dec[:n] = (u * np.sqrt(lam - s2)).T
    logvar[:n] = np.log(s2 / lam)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return {"code": {"kernel": f32(enc), "bias": f32(-mu @ enc)},
            "code_logvar": {"kernel": f32(np.zeros((d, k))), "bias": f32(logvar)},
            "out": {"kernel": f32(dec), "bias": f32(mu)}}


def expected_linear_loss(params: dict, x: np.ndarray, beta: float) -> float:
    """E_q[sum_d (x_d - f_d(z))^2] + beta KL per example, exactly, for a depth-0 linear VAE:
    E_q ||x - W z - b||^2 = ||x - W m - b||^2 + sum_k exp(logvar_k) ||W_k||^2 (W_k: unit k's decoder row)."""
    p = {k: {n: np.asarray(v, np.float64) for n, v in layer.items()} for k, layer in params.items()}
    x = np.asarray(x, np.float64)
    mean = x @ p["code"]["kernel"] + p["code"]["bias"]
    logvar = x @ p["code_logvar"]["kernel"] + p["code_logvar"]["bias"]
    w = p["out"]["kernel"]
    recon = np.square(x - mean @ w - p["out"]["bias"]).sum(1) + np.exp(logvar) @ np.square(w).sum(1)
    kl = 0.5 * (np.square(mean) + np.exp(logvar) - 1.0 - logvar).sum(1)
    return float((recon + beta * kl).mean())


def unit_stats(m: store.Member, x: np.ndarray) -> dict:
    """Per code unit of a member's own units, on x: Var_x E_q[z] and KL (nats), sorted by variance."""
    enc = models.encode(m.spec, m.params, np.asarray(x, np.float32), m.masks)
    own = m.config.model.code_size
    mean, logvar = np.asarray(enc["mean"], np.float64)[:, :own], np.asarray(enc["logvar"], np.float64)[:, :own]
    var = mean.var(0)
    kl = 0.5 * (np.square(mean) + np.exp(logvar) - 1.0 - logvar).mean(0)
    order = np.argsort(var)[::-1]
    return {"var": var[order], "kl": kl[order]}


def informative(kl: np.ndarray) -> int:
    """Units whose KL is at least KL_RELATIVE of the largest unit's (0 when the total is below KL_FLOOR):
    a count relative to the code's own scale, with no absolute variance threshold."""
    if kl.sum() < KL_FLOOR:
        return 0
    return int((kl >= KL_RELATIVE * kl.max()).sum())


def add_unit_stats(table: dict, workdir: Path) -> None:
    """Adds per-unit stats, `informative` and (linear) the exact loss to every row, from the saved members."""
    members = {m.index: m for m in store.load(workdir)}
    for (fam, latent, beta), rows in table.items():
        for row in rows:
            m = members[row["member"]]
            ds = m.dataset
            row["units"] = unit_stats(m, ds.x_test)
            row["informative"] = informative(row["units"]["kl"])
            if fam == "linear":
                row["exact_loss"] = expected_linear_loss(m.params, ds.x_train, beta)


def grid(table: dict, fam: str, key: str, fmt=lambda v: f"{v:.3g}") -> tuple[list[str], list[list[str]]]:
    latents = sorted({k[1] for k in table if k[0] == fam})
    betas = sorted({k[2] for k in table if k[0] == fam})
    rows = [[str(latent)] + [cell(table[(fam, latent, b)], key, fmt) if (fam, latent, b) in table else ""
                             for b in betas] for latent in latents]
    return ["latent \\ beta"] + [f"{b:g}" for b in betas], rows


def _errorbar(ax, xs, rows_list, key, **kw):
    mean, lo, hi = map(np.array, zip(*(spread(rows, key) for rows in rows_list)))
    ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], capsize=3, **kw)


def plot_against_beta(table: dict, closed: dict, key: str, ylabel: str, closed_key: str) -> Figure:
    fams = [f for f in FAMILIES if any(k[0] == f for k in table)]
    fig = Figure(figsize=(5.2 * len(fams), 4.2), layout="constrained")
    axes = fig.subplots(1, len(fams), squeeze=False)[0]
    for ax, fam in zip(axes, fams):
        betas = sorted({k[2] for k in table if k[0] == fam})
        for i, latent in enumerate(sorted({k[1] for k in table if k[0] == fam})):
            bs = [b for b in betas if (fam, latent, b) in table]
            _errorbar(ax, bs, [table[(fam, latent, b)] for b in bs], key, fmt="-o", color=f"C{i}",
                      label=f"latent {latent}")
            if fam == "linear":
                ax.plot(bs, [max(closed[(latent, b)][closed_key], 1e-3) for b in bs], "x--", color=f"C{i}", ms=9,
                        lw=0.8, label=f"closed form, latent {latent}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=1) if key == "active_units" else ax.set_yscale("log")
        ax.set(xlabel="beta", ylabel=ylabel, title=TITLE[fam])
        ax.legend(fontsize=7)
    fig.suptitle(f"{ylabel} against beta: mean over seeds, bars = min-max; linear VAE: crosses = closed form")
    return fig


def example_cells(table: dict) -> list[tuple]:
    """The cells whose units are drawn: the largest latent at beta 1 of each family (else the first beta)."""
    out = []
    for fam in FAMILIES:
        keys = [k for k in table if k[0] == fam]
        if keys:
            latent = max(k[1] for k in keys)
            betas = sorted(k[2] for k in keys if k[1] == latent)
            out.append((fam, latent, 1.0 if 1.0 in betas else betas[0]))
    return out


def plot_units(table: dict, threshold: float) -> Figure:
    """Per-unit log10 Var_x E_q[z] and KL of one seed per example cell, with the active threshold."""
    picks = example_cells(table)
    fig = Figure(figsize=(5.0 * len(picks), 7.0), layout="constrained")
    axes = fig.subplots(2, len(picks), squeeze=False)
    for j, key in enumerate(picks):
        row = table[key][0]
        var, kl = row["units"]["var"], row["units"]["kl"]
        axes[0, j].hist(np.log10(np.maximum(var, 1e-12)), bins=40, color="C0")
        axes[0, j].axvline(np.log10(threshold), color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
        axes[0, j].set(xlabel="log10 Cov_x(E_q[z_i])", ylabel="units",
                       title=f"{key[0]}, latent {key[1]}, beta {key[2]:g}, seed {row['config']['seed']}: "
                             f"{row['active_units']} active")
        axes[0, j].legend(fontsize=7)
        axes[1, j].hist(np.log10(np.maximum(kl, 1e-6)), bins=40, color="C1")
        axes[1, j].set(xlabel="log10 KL_i (nats, test)", ylabel="units",
                       title=f"{row['informative']} units with KL >= {KL_RELATIVE:g} x the largest "
                             f"(total {kl.sum():.2f} nats)")
    fig.suptitle("Per unit: the thresholded count against what each unit carries")
    return fig


def plot_samples(table: dict, workdir: Path) -> Figure | None:
    """Prior samples and interpolations of the digits VAEs (seed 0) at one latent size, one column per beta."""
    import matplotlib.image

    digits = sorted({k[1] for k in table if k[0] == "digits"})
    if not digits:
        return None
    latent = 32 if 32 in digits else digits[-1]
    betas = sorted({k[2] for k in table if k[0] == "digits" and k[1] == latent})
    images = []
    for beta in betas:
        folder = workdir / "samples" / member_log._safe(table[("digits", latent, beta)][0]["name"])
        if not (folder / "prior_samples.png").is_file():
            return None  # the sweep ran with wandb.images off
        images.append([matplotlib.image.imread(folder / f"{k}.png") for k in ("prior_samples", "interpolation")])
    fig = Figure(figsize=(3.4 * len(betas), 5.2), layout="constrained")
    axes = fig.subplots(2, len(betas), squeeze=False, height_ratios=[1, 2])
    for j, (beta, (prior, line)) in enumerate(zip(betas, images)):
        m = table[("digits", latent, beta)][0]
        for i, (img, what) in enumerate(((prior, "prior samples"), (line, "interpolations"))):
            axes[i, j].imshow(img, cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
            axes[i, j].set_title(f"beta {beta:g}: {what}" + (f" ({m['active_units']} active)" if i == 0 else ""),
                                 fontsize=9)
    fig.suptitle(f"digits VAE, latent {latent}, seed 0: samples from the prior (top) and mean-code interpolations "
                 "between test pairs (bottom)")
    return fig


def checks(table: dict) -> tuple[list[list[str]], dict[str, bool]]:
    """Per family, on seed means: saturation with latent size (per beta), KL and active units against beta."""
    rows, ok = [], {}
    mean = lambda key, k: spread(table[k], key)[0]  # noqa: E731
    for fam in FAMILIES:
        latents = sorted({k[1] for k in table if k[0] == fam})
        betas = sorted({k[2] for k in table if k[0] == fam})
        if len(latents) < 2 or len(betas) < 2:
            continue
        big, second = latents[-1], latents[-2]
        sat = [mean("active_units", (fam, big, b)) <= mean("active_units", (fam, second, b)) + SATURATION_SLACK
               and mean("active_units", (fam, big, b)) < big for b in betas]
        kl_falls = [all(mean("kl", (fam, n, b1)) > mean("kl", (fam, n, b2)) for b1, b2 in zip(betas, betas[1:]))
                    for n in latents]
        au_falls = [all(mean("active_units", (fam, n, b1)) >= mean("active_units", (fam, n, b2))
                        for b1, b2 in zip(betas, betas[1:])) for n in latents]
        ok[f"{fam}/saturates"], ok[f"{fam}/kl_falls"], ok[f"{fam}/units_fall"] = all(sat), all(kl_falls), all(au_falls)
        rows.append([fam, f"{second} -> {big}", " / ".join(
            f"{mean('active_units', (fam, second, b)):.3g}->{mean('active_units', (fam, big, b)):.3g}" for b in betas),
            f"{sum(sat)}/{len(sat)}", f"{sum(kl_falls)}/{len(kl_falls)}", f"{sum(au_falls)}/{len(au_falls)}"])
    return rows, ok


def effective_dims(records: list[dict]) -> list[str]:
    """How many principal components each data set needs, for reading the saturation levels."""
    out, seen = [], set()
    for r in records:
        c = r["config"]
        if c["data.name"] in seen:
            continue
        seen.add(c["data.name"])
        x = np.asarray(load_data(c).x_train, np.float64)
        ev = np.linalg.eigvalsh(np.cov(x.T))[::-1].clip(0)
        frac = np.cumsum(ev) / ev.sum()
        dims = ", ".join(f"{int(np.searchsorted(frac, q) + 1)} for {q:.0%}" for q in (0.8, 0.9, 0.95))
        out.append(f"{c['data.name']}: data rank {r['metrics']['data_rank']}; principal components needed: {dims}"
                   + ("; intrinsic dimension 4" if c["data.name"] == "manifold" else ""))
    return out


def linear_section(table: dict, closed: dict, ds: data_lib.Dataset, writer, lines: list[str]) -> bool:
    """The linear VAE against its closed form; True when every member's active units equal it."""
    head = ["latent", "beta", "closed-form active (test)", "learned active", "closed-form KL (test)",
            "learned KL", "closed-form loss", "loss gap (learned - closed)", "top unit variances: closed form",
            "learned (seed 0)", "converged", "steps", "final train loss"]
    rows, ok = [], True
    for (latent, beta), cf in sorted(closed.items()):
        rs = table[("linear", latent, beta)]
        params = closed_form_params({"code": {"kernel": np.zeros((ds.x_train.shape[1], latent))}},
                                    np.asarray(ds.x_train), beta)
        cf_loss = expected_linear_loss(params, ds.x_train, beta)
        for r in rs:
            r["loss_gap"] = r["exact_loss"] - cf_loss
        ok &= all(r["active_units"] == cf["active_test"] for r in rs)
        top = lambda v: ", ".join(f"{x:.3g}" for x in v[:TOP_VARIANCES]) or "none"  # noqa: E731
        rows.append([str(latent), f"{beta:g}", str(cf["active_test"]), cell(rs, "active_units"),
                     f"{cf['kl_test']:.3g}", cell(rs, "kl"), f"{cf_loss:.4g}", cell(rs, "loss_gap", lambda v: f"{v:.2g}"),
                     top(cf["unit_var"]), top(rs[0]["units"]["var"]),
                     f"{sum(bool(r['converged']) for r in rs)}/{len(rs)}", str(rs[0]["config"]["train.steps"]),
                     cell(rs, "final_total", lambda v: f"{v:.4g}")])
    writer.table("linear_closed_form", head, rows)
    lines += ["## The linear VAE against its closed form (Lucas et al. 2019)", "",
              "Kept units: eigenvalues of the train covariance above sigma^2 = beta / 2, at most the latent size. "
              "`closed-form loss`: the library's loss (sum of squared errors + beta KL, per training example) of "
              "the closed-form solution, exactly (its expectation over q); the gap is each learned member's exact "
              "loss minus it (0 at the optimum; the closed form is the global optimum, so a negative gap beyond "
              "float error would be a bug). Unit variances: Cov_x(E_q[z_i]) on the test set, largest first.", "",
              common.md_table(head, rows), ""]
    return ok


def units_section(table: dict, writer, lines: list[str]) -> None:
    """The thresholded count beside what each unit carries, for every cell."""
    head = ["family", "latent", "beta", "active (> threshold)", f"informative (KL >= {KL_RELATIVE:g} x largest)",
            f"top {TOP_VARIANCES} unit variances (seed 0)", "KL (nats)"]
    rows = []
    for (fam, latent, beta), rs in sorted(table.items()):
        rows.append([fam, str(latent), f"{beta:g}", cell(rs, "active_units"), cell(rs, "informative"),
                     ", ".join(f"{v:.2g}" for v in rs[0]["units"]["var"][:TOP_VARIANCES]), cell(rs, "kl")])
    writer.table("units", head, rows)
    lines += ["## Active units against informative units", "",
              f"`active`: Burda et al.'s count (Cov_x E_q[z_i] above the threshold). `informative`: units whose "
              f"KL (test) is at least {KL_RELATIVE:g} x the largest unit's, a count relative to the code's own "
              f"scale (0 when the total KL is below {KL_FLOOR:g} nats). Histograms of both for one member per family: figures/vae_units.png.", "",
              common.md_table(head, rows), ""]


def analyse(workdir: Path, records: list[dict], name: str, writer, lines: list[str]) -> None:
    """Fills WORKDIR/analysis.md and the figures."""
    records = [r for r in records if r["config"]["vae.enabled"]]
    if not records:
        raise common.ConfigError(f"{workdir}/results.jsonl: no VAE members")
    table = cells(records)
    add_unit_stats(table, workdir)
    threshold = records[0]["config"]["vae.active_threshold"]
    closed, ds = {}, None
    if any(k[0] == "linear" for k in table):
        ds = load_data(next(v[0]["config"] for k, v in table.items() if k[0] == "linear"))
        closed = {(k[1], k[2]): linear_closed_form(ds, k[1], k[2], threshold) for k in table if k[0] == "linear"}
    figs = [common.save_figure(plot_against_beta(table, closed, "active_units", "active units", "active_test"),
                               workdir, "vae_active_units", writer),
            common.save_figure(plot_against_beta(table, closed, "kl", "KL (nats per test example)", "kl_test"),
                               workdir, "vae_kl", writer),
            common.save_figure(plot_units(table, threshold), workdir, "vae_units", writer)]
    samples = plot_samples(table, workdir)
    if samples is not None:
        figs.append(common.save_figure(samples, workdir, "vae_samples", writer))
    seeds = sorted({r["config"]["seed"] for r in records})
    lines += [f"# {name}: active units, KL and beta", "",
              f"{len(records)} VAEs, seeds {seeds}; every cell is the mean over seeds with the (min-max). "
              f"`active_units`: units with Cov_x E_q[z] > {threshold:g} on the test set; `kl`: nats per test "
              "example; `converged`: members whose loss had stopped falling (docs/regime.md).", ""]
    lines += [f"- {t}" for t in effective_dims(records)] + [""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in figs] + [""]
    for fam in FAMILIES:
        if not any(k[0] == fam for k in table):
            continue
        c = next(v[0]["config"] for k, v in table.items() if k[0] == fam)
        lines += [f"## {TITLE[fam]}", "",
                  f"Adam {c['train.learning_rate']:g} ({c['train.schedule']}), {c['train.steps']} steps of batch "
                  f"{c['train.batch_size']}, depth {c['model.depth']}, width {c['model.width']}, output "
                  f"{c['model.output']}.", ""]
        for key, label, fmt in (("active_units", "active units", lambda v: f"{v:.3g}"),
                                ("kl", "KL (nats)", lambda v: f"{v:.2f}"),
                                ("test_mse", "test MSE (mean path)", lambda v: f"{v:.4f}"),
                                ("final_total", "final train loss", lambda v: f"{v:.4g}"),
                                ("converged", "converged (fraction of seeds)", lambda v: f"{v:.2g}")):
            head, rows = grid(table, fam, key, fmt)
            writer.table(f"{fam}_{key}", head, rows)
            lines += [f"**{label}**", "", common.md_table(head, rows), ""]
    lin_ok = linear_section(table, closed, ds, writer, lines) if closed else True
    units_section(table, writer, lines)
    check_rows, ok = checks(table)
    lines += ["## The claim, per family (seed means)", "",
              f"Saturation: active units at the largest latent size at most {SATURATION_SLACK} above those at the "
              "next one, and below the latent size (listed per beta, smallest first). KL falls: strictly, "
              "beta by beta, at every latent size. Units fall: never rise with beta.", "",
              common.md_table(["family", "latents", "active units per beta", "saturates (betas)",
                               "KL falls (latents)", "units fall (latents)"], check_rows), ""]
    verdict = "reproduced" if all(ok.values()) and lin_ok else "partly reproduced"
    fails = [k for k, v in ok.items() if not v] + ([] if lin_ok else ["linear/closed_form"])
    linear_note = (f"; linear VAE active units equal the closed form for every member: **{lin_ok}**" if closed
                   else "; no linear VAE in this sweep (its closed-form check not made)")
    lines += ["## Verdict", "", f"**{verdict}**" + (f" (fails: {', '.join(fails)})" if fails else "")
              + linear_note + ".", ""]
    writer.summary({"verdict": verdict, "linear_matches_closed_form": lin_ok})


def main(argv: list[str]) -> Path:
    """Writes WORKDIR/analysis.md and its figures; returns the analysis path."""
    return common.analysis_command(argv, "experiments.vae.analyze", analyse)


if __name__ == "__main__":
    sys.exit(common.cli(main, sys.argv))
