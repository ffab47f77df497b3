"""Metrics of the code itself, for the variants that shape it: sparse codes and variational codes."""

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import models, objectives
from ae_jax.models import ModelSpec

# A unit is active when its activation exceeds this. Codes that reach exact zeros (relu, top-k, L1)
# count nonzeros; sigmoid codes never reach 0, so "active" is Ng's "close to 1": above one half.
ACTIVE_THRESHOLD = {"sigmoid": 0.5}
NONZERO = 1e-6


def sparse_metrics(code_NK: np.ndarray, threshold: float = NONZERO) -> dict[str, float]:
    """`l0`: mean active units per example; `dead_fraction`: units never active on the set;
    `code_mean`: the mean activation (KL sparsity's target rate applies to it)."""
    active = np.abs(code_NK) > threshold
    return {"l0": float(active.sum(1).mean()), "dead_fraction": float((~active.any(0)).mean()),
            "code_mean": float(code_NK.mean())}


def vae_metrics(spec: ModelSpec, params: Any, masks: Any, x_ND: np.ndarray, key: jax.Array,
                active_threshold: float) -> dict[str, float]:
    """`kl` (nats per example), `active_units` (Burda et al.: Cov_x E_q[z] > threshold), `test_elbo`.

    The ELBO (nats per example, one posterior sample each) uses the decoder the training loss implies:
    Bernoulli for a sigmoid output; for a linear output the Gaussian N(f(z), I/2), whose negative
    log-likelihood is the squared error plus D/2 log(pi). So at beta = 1 the training loss is
    -ELBO up to that constant.
    """
    enc = models.encode(spec, params, x_ND, masks)
    kl = objectives.gaussian_kl(enc["mean"], enc["logvar"])
    z = objectives.reparameterise(key, enc["mean"], enc["logvar"], None if masks is None else masks["code"])
    out = models.decode_logits(spec, params, z, masks)
    nll = objectives.reconstruction_loss(spec, out, x_ND)
    if spec.output != "sigmoid":
        nll = nll + 0.5 * x_ND.shape[-1] * math.log(math.pi)
    mean_var = np.asarray(jnp.var(enc["mean"], axis=0))
    return {"kl": float(kl.mean()), "active_units": int((mean_var > active_threshold).sum()),
            "test_elbo": float(-(nll + kl).mean())}


def _sparse(spec: ModelSpec, params: Any, masks: Any, code_size: int, x_test: np.ndarray, config) -> dict:
    code = np.asarray(models.encode(spec, params, x_test, masks)["code"])[:, :code_size]
    act = "linear" if spec.variational else spec.code_activation
    return sparse_metrics(code, ACTIVE_THRESHOLD.get(act, NONZERO))


def _vae(spec: ModelSpec, params: Any, masks: Any, code_size: int, x_test: np.ndarray, config) -> dict:
    return vae_metrics(spec, params, masks, x_test, jax.random.key(config.seed), config.vae.active_threshold)


@dataclasses.dataclass(frozen=True)
class CodeMetric:
    """Metrics of a member's code, computed when `applies(config)` holds; `keys` name what it returns."""

    fn: Callable[..., dict]  # (spec, params, masks, code_size, x_test, config) -> {key: number}
    applies: Callable[[Any], bool]
    keys: tuple[str, ...]


# A code metric is one entry: every member it applies to reports its keys in results.jsonl, W&B and
# the report's tables.
CODE_METRICS: dict[str, CodeMetric] = {
    "sparse": CodeMetric(_sparse, lambda c: c.sparsity.kind != "none", ("l0", "dead_fraction", "code_mean")),
    "vae": CodeMetric(_vae, lambda c: bool(c.vae.enabled), ("kl", "active_units", "test_elbo")),
}


def member_code_metrics(spec: ModelSpec, params: Any, masks: Any, code_size: int, x_test: np.ndarray,
                        config) -> dict[str, float]:
    """The code metrics that apply to this member's config (none for a plain AE)."""
    out: dict[str, float] = {}
    for metric in CODE_METRICS.values():
        if metric.applies(config):
            out.update(metric.fn(spec, params, masks, code_size, x_test, config))
    return out
