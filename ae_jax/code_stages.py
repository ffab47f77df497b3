"""Code stages: how the encoder's last hidden layer becomes the code the decoder reads.

  plain        code = code_activation(W h + b)                  (contract: depth 0 -> one layer each way)
  topk         keep the k largest of code_activation(W h + b), zero the rest (Makhzani & Frey 2014)
  variational  mean, logvar = W_mu h + b_mu, W_lv h + b_lv; training decodes mean + exp(logvar / 2) eps,
               the mean path (diagnostics) decodes the mean (Kingma & Welling 2013)

A stage is one `CodeStage` and one line in `CODE_STAGES`; a config selects it with `selected(config)`
(at most one stage may be selected) and its static settings reach the model as `ModelSpec.stage_args`.
Every stage sees `pre` = W h + b, already masked to the member's own units (packing), plus the outputs
of the extra `heads` it asks for (more Dense layers on the same hidden layer).
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ae_jax.layers import ACTIVATIONS

Arrays = dict[str, jax.Array]


def masked(a: jax.Array, masks, name: str) -> jax.Array:
    """`a` with the padding units of a packed member (masks[name] == 0) set to exactly 0."""
    return a if masks is None else a * masks[name]


def live_units(masks) -> jax.Array | None:
    return None if masks is None else masks["code"]


def code_noise(key: jax.Array, batch: int, code_size: int) -> jax.Array:
    """Standard normal (batch, code_size) whose column k depends only on (key, k), not on code_size.

    So a member packed into a wider group draws the same reparameterisation noise for its own units
    as the solo model of its real size (a plain `normal(key, shape)` changes with the shape).
    """
    draw = lambda k: jax.random.normal(jax.random.fold_in(key, k), (batch,))
    return jax.vmap(draw, out_axes=1)(jnp.arange(code_size))


def reparameterise(key: jax.Array, mean_BK: jax.Array, logvar_BK: jax.Array, live_K=None) -> jax.Array:
    """A sample z = mean + exp(logvar / 2) * eps of N(mean, exp(logvar)); padding units get no noise."""
    eps = code_noise(key, *mean_BK.shape)
    return mean_BK + jnp.exp(0.5 * logvar_BK) * (eps if live_K is None else eps * live_K)


def top_k(code_BK: jax.Array, k: int) -> jax.Array:
    """Zero all but the k largest entries of each row (ties broken by position, so exactly k survive)."""
    _, idx = jax.lax.top_k(code_BK, k)
    keep = jnp.zeros(code_BK.shape, bool).at[jnp.arange(code_BK.shape[0])[:, None], idx].set(True)
    # A select, not a product with a 0/1 mask: -inf entries (masked units) would turn into NaN.
    return jnp.where(keep, code_BK, 0.0)


@dataclasses.dataclass(frozen=True)
class CodeStage:
    """One way of turning `pre` into the code; hooks left None do nothing."""

    apply: Callable[..., Arrays]  # (spec, pre_BK, heads {name: BK}, masks) -> {"pre", "code", ...}
    selected: Callable[[Any], bool] = lambda config: False  # does this config choose the stage?
    static: Callable[[Any], tuple] = lambda config: ()  # ((name, value), ...) -> ModelSpec.stage_args
    heads: tuple[str, ...] = ()  # extra Dense(code_size) layers on the encoder's last hidden layer
    sample: Callable | None = None  # (key, enc, live_K) -> the code the decoder reads in training
    init: Callable | None = None  # (spec, params, first_decoder_name) -> params after Flax's init
    init_stats: Callable | None = None  # spec -> running statistics the training loss keeps per member
    update_stats: Callable | None = None  # (stats, code_BK) -> new stats, once per training step
    # The elementwise nonlinearity between `pre` and the code, when there is one: contractive's closed
    # form (objectives.encoder_jacobian_sq_norm) needs it; None sends the penalty to autodiff.
    elementwise: Callable[[Any], str | None] = lambda spec: None
    # Config choices this stage answers to, (key, value), for validation's allowed names.
    chooses: tuple[str, Any] | None = None
    tag: str | None = None  # how config.variant_of names it; default: its registry name


def _plain(spec, pre_BK, heads, masks) -> Arrays:
    return {"pre": pre_BK, "code": masked(ACTIVATIONS[spec.code_activation](pre_BK), masks, "code")}


def _topk(spec, pre_BK, heads, masks) -> Arrays:
    code = _plain(spec, pre_BK, heads, masks)["code"]
    # Masked units must never win a slot (tanh codes can be negative), so rank them last.
    live = jnp.ones_like(code) if masks is None else masks["code"]
    code = jnp.where(live > 0, top_k(jnp.where(live > 0, code, -jnp.inf), spec.topk), 0.0)
    return {"pre": pre_BK, "code": code}


def _tie_decoder(spec, params, first_decoder: str):
    """Gao et al. 2024: W_dec = W_enc^T at init keeps early top-k codes from dying."""
    enc_kernel = params["code"]["kernel"]
    if "kernel" in params[first_decoder] and params[first_decoder]["kernel"].shape == enc_kernel.T.shape:
        params = {**params, first_decoder: {**params[first_decoder], "kernel": enc_kernel.T}}
    return params


def _count_silence(stats, code_BK):
    fired_K = (code_BK != 0).any(0)
    return {"since_fired": jnp.where(fired_K, 0, stats["since_fired"] + 1)}


def _variational(spec, pre_BK, heads, masks) -> Arrays:
    logvar = masked(heads["code_logvar"], masks, "code")
    return {"pre": pre_BK, "code": pre_BK, "mean": pre_BK, "logvar": logvar}


CODE_STAGES: dict[str, CodeStage] = {
    "plain": CodeStage(apply=_plain, elementwise=lambda spec: spec.code_activation),
    "topk": CodeStage(
        apply=_topk,
        selected=lambda c: c.sparsity.kind == "topk",
        static=lambda c: (("k", c.sparsity.k),),
        init=_tie_decoder,
        init_stats=lambda spec: {"since_fired": jnp.zeros((spec.code_size,), jnp.int32)},
        update_stats=_count_silence,
        chooses=("sparsity.kind", "topk"),
        tag="sparse:topk",
    ),
    "variational": CodeStage(
        apply=_variational,
        selected=lambda c: bool(c.vae.enabled),
        heads=("code_logvar",),
        sample=lambda key, enc, live: reparameterise(key, enc["mean"], enc["logvar"], live),
        elementwise=lambda spec: "linear",
        tag="vae",
    ),
}
