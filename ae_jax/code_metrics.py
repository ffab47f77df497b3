"""Metrics of the code itself, for the variants that shape it: sparse codes and variational codes."""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import models, objectives
from ae_jax.models import ModelSpec


def sparse_metrics(code_NK: np.ndarray) -> dict[str, float]:
    """`l0`: mean active (nonzero) units per example; `dead_fraction`: units never active on the set."""
    active = np.abs(code_NK) > 1e-6
    return {"l0": float(active.sum(1).mean()), "dead_fraction": float((~active.any(0)).mean()),
            "code_mean": float(code_NK.mean())}


def vae_metrics(spec: ModelSpec, params: Any, masks: Any, x_ND: np.ndarray, key: jax.Array,
                active_threshold: float) -> dict[str, float]:
    """`kl` (nats per example), `active_units` (Burda et al.: Cov_x E_q[z] > threshold), `test_elbo`.

    The ELBO uses one posterior sample per example and the same likelihood as the training loss
    (squared error for a linear output, i.e. a Gaussian decoder with variance 1/2 up to a constant,
    or Bernoulli for a sigmoid output), so it is -(loss/recon + loss/kl) at beta = 1.
    """
    enc = models.encode(spec, params, x_ND, masks)
    kl = objectives.gaussian_kl(enc["mean"], enc["logvar"])
    z = enc["mean"] + jnp.exp(0.5 * enc["logvar"]) * jax.random.normal(key, enc["mean"].shape) * masks["code"]
    out = models.decode_logits(spec, params, z, masks)
    recon = objectives.reconstruction_loss(spec, out, x_ND)
    mean_var = np.asarray(jnp.var(enc["mean"], axis=0))
    return {"kl": float(kl.mean()), "active_units": int((mean_var > active_threshold).sum()),
            "test_elbo": float(-(recon + kl).mean())}


def member_code_metrics(spec: ModelSpec, params: Any, masks: Any, code_size: int, x_test: np.ndarray,
                        seed: int, active_threshold: float, sparse: bool) -> dict[str, float]:
    """The code metrics this member's variant calls for (none for a plain AE)."""
    out: dict[str, float] = {}
    if sparse:
        code = np.asarray(models.encode(spec, params, x_test, masks)["code"])[:, :code_size]
        out.update(sparse_metrics(code))
    if spec.variational:
        out.update(vae_metrics(spec, params, masks, x_test, jax.random.key(seed), active_threshold))
    return out
