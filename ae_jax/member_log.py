"""What each member's W&B run shows: its config, training curves, final metrics and image panels."""

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from ae_jax import config as config_lib, diagnostics, models, objectives, writers

N_PANEL = 16
PANEL_PIXELS = 48  # each image of a panel at least this many pixels a side
N_SPECTRUM = 20  # test points whose span Jacobians are averaged into the logged spectrum
N_PAIRS = 4  # latent interpolation: rows of test-example pairs ...
N_INTERP = 8  # ... and points along each line, ends included


def variant_tags(c: ml_collections.ConfigDict) -> list[str]:
    """Tags that let W&B filter runs by dataset and by what kind of autoencoder they are."""
    return [*config_lib.variant_of(c)[:1], f"data:{c.data.name.split(':')[0]}", *config_lib.variant_of(c)[1:]]


def run_id(identity: dict[str, Any], member_name: str) -> str:
    """The member's W&B run id, fixed by the sweep's identity and the member: a resumed sweep continues
    the member's own run instead of starting a second one."""
    digest = hashlib.sha256(f"{identity.get('sha256', '')}/{member_name}".encode()).hexdigest()
    return f"ae-{digest[:16]}"


def open_run(c: ml_collections.ConfigDict, name: str, group: str, workdir: Path, identity: dict[str, Any]):
    """The member's W&B run (a NullWriter when `wandb.mode` is disabled), opened before training so its
    curves arrive while its group trains."""
    return writers.open_writer(c.wandb, workdir=str(workdir), name=f"{group}/{name}", group=group,
                               config=c.to_dict(), job_type="member", tags=variant_tags(c),
                               run_id=run_id(identity, name))


def log_chunk(writer: writers.Writer, plan, chunk: int, values: dict[str, float]) -> None:
    """One chunk's mean losses, at the step the chunk ends."""
    writer.scalars(min((chunk + 1) * plan.chunk, plan.steps), values)


def finish_run(writer: writers.Writer, name: str, c: ml_collections.ConfigDict, record: dict[str, Any], plan,
               params: Any, masks: Any, dataset, workdir: Path) -> None:
    """The member's images, Jacobian spectrum, final metrics and regime, then the run is closed.
    VAE samples also go to PNGs (with or without W&B)."""
    images = None
    if c.wandb.images and len(dataset.shape) in (2, 3) and (plan.spec.variational or c.wandb.mode != "disabled"):
        images = panels(c, plan.spec, params, masks, dataset)
        if plan.spec.variational:  # the generative panels are results in their own right: keep them as files
            save_generated(images, Path(workdir) / "samples" / _safe(name))
    try:
        if c.wandb.mode == "disabled":
            return
        if images is not None:
            writer.images(plan.steps, images)
        if record["status"] == "ok":
            log_spectrum(writer, plan.spec, params, masks, dataset)
        writer.summary({**record["metrics"], "status": record["status"]})
    finally:
        writer.close()


def log_spectrum(writer: writers.Writer, spec: models.ModelSpec, params: Any, masks: Any, dataset) -> np.ndarray:
    """The singular values of J_f on the data span (mean over test points, largest first) as a W&B
    table and figure: the identity is a flat line at 1, a rank-k map k values above the 0.5 gain line."""
    sv_PR = diagnostics.jacobian_spectrum(models.MeanPath(spec), (params, masks), dataset.x_train,
                                          dataset.x_test[:N_SPECTRUM])
    if sv_PR.shape[1] == 0:
        return sv_PR
    mean, lo, hi = sv_PR.mean(0), sv_PR.min(0), sv_PR.max(0)
    writer.table("jacobian_spectrum_values", ["index", "singular_value", "min", "max"],
                 [[i + 1, float(m), float(a), float(b)] for i, (m, a, b) in enumerate(zip(mean, lo, hi))])
    # the same values as a native W&B curve: its line chart overlays the spectra of all runs of a sweep
    writer.series("spectrum/singular_value", "spectrum/index", range(1, len(mean) + 1), mean.tolist())
    writer.figure("jacobian_spectrum", spectrum_figure(mean, lo, hi))
    return sv_PR


def spectrum_figure(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    idx = np.arange(1, len(mean) + 1)
    ax.fill_between(idx, lo, hi, alpha=0.25, label="min-max over test points")
    ax.plot(idx, mean, marker=".", label="mean")
    ax.axhline(1.0, color="black", lw=0.8, label="identity")
    ax.axhline(diagnostics.JAC_GAIN, color="black", ls=":", lw=0.8, label="jac_rank threshold")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("index on the data span (largest first)")
    ax.set_ylabel("singular value of P J_f P")
    ax.legend(fontsize=7)
    return fig


def panels(c: ml_collections.ConfigDict, spec: models.ModelSpec, params: Any, masks: Any,
           dataset) -> dict[str, np.ndarray]:
    """Inputs over reconstructions; noisy inputs over their denoised outputs; for a VAE, samples from
    the prior and latent interpolations (rows: pairs of test examples, columns: mean code path)."""
    x = dataset.x_test[:N_PANEL]
    shape = (-1,) + tuple(dataset.shape) if len(dataset.shape) == 3 else (-1,) + tuple(dataset.shape) + (1,)
    # Nearest-neighbour upscaling to at least PANEL_PIXELS per image side: 8x8 digits stay legible in W&B.
    up = max(1, PANEL_PIXELS // shape[1])
    as_images = lambda a: np.clip(np.asarray(a).reshape(shape), 0.0, 1.0).repeat(up, 1).repeat(up, 2)
    out = {"panels/reconstruction": writers.image_grid(
        np.concatenate([as_images(x), as_images(models.reconstruct(spec, params, x, masks))]), N_PANEL)}
    key = jax.random.key(c.seed)
    if c.noise.kind != "none":
        lo, hi = dataset.x_train.min(0), dataset.x_train.max(0)
        noisy = objectives.corrupt(c.noise.kind, key, x, c.noise.level, lo, hi)
        out["panels/denoising"] = writers.image_grid(
            np.concatenate([as_images(noisy), as_images(models.reconstruct(spec, params, noisy, masks))]), N_PANEL)
    if spec.variational:
        out["panels/prior_samples"] = writers.image_grid(
            as_images(models.sample_prior(spec, params, key, N_PANEL, masks)), N_INTERP)
        pairs = min(N_PAIRS, len(x) // 2)
        if pairs:
            rows = [models.interpolate(spec, params, x[2 * i], x[2 * i + 1], N_INTERP, masks)
                    for i in range(pairs)]
            out["panels/interpolation"] = writers.image_grid(as_images(np.concatenate(rows)), N_INTERP)
    return out


GENERATED = ("panels/prior_samples", "panels/interpolation")


def save_generated(images: dict[str, np.ndarray], folder: Path) -> None:
    """Write the generative panels as PNGs (whole files only: written aside, then renamed)."""
    import matplotlib.image

    folder.mkdir(parents=True, exist_ok=True)
    for key in GENERATED:
        if key in images:
            path = folder / f"{key.split('/')[-1]}.png"
            tmp = path.with_suffix(".tmp.png")
            img = np.clip(images[key], 0.0, 1.0)
            img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
            matplotlib.image.imsave(tmp, img, cmap="gray", vmin=0.0, vmax=1.0, format="png")
            os.replace(tmp, path)


def _safe(name: str) -> str:
    """A member name as one path component."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name) or "member"
