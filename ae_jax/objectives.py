"""Input corruptions and loss terms: every variant of the seed is one of these, summed into one loss.

Reduction, the same for every term so numbers compare across variants: per example, summed over
dimensions (data or code units), then averaged over the batch. `loss/*` values are the unweighted
terms; `loss/total` is the weighted sum that is optimised:
  total = recon + sparsity.weight * sparsity + contractive.weight * contractive
          + vae.beta * kl + train.weight_decay * l2 + sparsity.aux_weight * aux
          + sum over PENALTIES of penalty.NAME * NAME
recon is the squared error, or the Bernoulli cross-entropy in nats for a sigmoid output; kl is in nats.
Two terms cannot be per example by nature: KL sparsity is a property of the batch's mean activation
(Ng's CS294A), so it is per batch, summed over units; l2 is per model, summed over weights.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ae_jax import models
from ae_jax.models import ModelSpec

# ----------------------------------------------------------------------------- corruptions


def _gaussian(key, x, level, lo, hi):
    return x + level * jax.random.normal(key, x.shape, x.dtype)


def _mask(key, x, level, lo, hi):
    return jnp.where(jax.random.uniform(key, x.shape) < level, 0.0, x)


def _salt_pepper(key, x, level, lo, hi):
    k_hit, k_salt = jax.random.split(key)
    hit = jax.random.uniform(k_hit, x.shape) < level
    salt = jax.random.bernoulli(k_salt, 0.5, x.shape)
    return jnp.where(hit, jnp.where(salt, hi, lo), x)


NOISES: dict[str, Callable | None] = {
    "none": None,
    "gaussian": _gaussian,  # level = std
    "mask": _mask,  # level = fraction of inputs set to 0 (Vincent et al. 2008)
    "salt_pepper": _salt_pepper,  # level = fraction set to the train min or max of their dimension
}


def corrupt(kind: str, key: jax.Array, x_BD: jax.Array, level: jax.Array, lo_D, hi_D) -> jax.Array:
    """The noisy input the encoder sees; the loss still compares the output with the clean x."""
    fn = NOISES[kind]
    return x_BD if fn is None else fn(key, x_BD, level, lo_D, hi_D)


# ----------------------------------------------------------------------------- pluggable penalties


def map_jacobian_sq_norm(spec: ModelSpec, params: Any, masks: Any, x_BD: jax.Array, key: jax.Array) -> jax.Array:
    """||d f(x) / d x||_F^2 of the whole map, per example, averaged over the batch (Alain & Bengio 2014's
    reconstruction-contractive penalty). Unbiased with one Gaussian probe per example (Hutchinson:
    E ||J v||^2 = ||J||_F^2 for v ~ N(0, I)), so it costs one forward-mode pass, whatever D is; unlike
    the encoder-only contractive term it cannot be gamed by shrinking the code and growing the decoder."""
    v_BD = jax.random.normal(key, x_BD.shape, x_BD.dtype)
    _, jv_BD = jax.jvp(lambda x: models.reconstruct(spec, params, x, masks), (x_BD,), (v_BD,))
    return jnp.square(jv_BD).sum(-1).mean()


# A regulariser is one function (spec, params, masks, x_in_BD, key) -> scalar and one line here: the
# config gets `penalty.NAME` (default 0 = off), the loss adds `penalty.NAME * term` and logs
# `loss/NAME`, and the weight is a traced hyperparameter, so its strengths sweep in one program.
PENALTIES: dict[str, Callable[..., jax.Array]] = {
    "map_contractive": map_jacobian_sq_norm,
}


# ----------------------------------------------------------------------------- the objective


@dataclasses.dataclass(frozen=True)
class Objective:
    """The static choices of the loss: which terms exist (their weights are traced hyperparameters)."""

    noise: str
    sparsity: str
    contractive: bool
    aux_k: int
    dead_steps: int
    penalties: tuple[str, ...] = ()  # names in PENALTIES with a nonzero weight


def objective_spec(config: ml_collections.ConfigDict, contractive: bool | None = None) -> Objective:
    """`contractive` is decided per shape group: on if any member of the group has a nonzero weight
    (default: this member's own weight)."""
    if contractive is None:
        contractive = config.contractive.weight > 0
    aux_k = config.sparsity.aux_k if config.sparsity.kind == "topk" else 0
    return Objective(
        noise=config.noise.kind,
        sparsity=config.sparsity.kind,
        contractive=contractive,
        aux_k=aux_k,
        # Irrelevant without the auxiliary loss; a constant keeps it from splitting shape groups.
        dead_steps=config.sparsity.dead_steps if aux_k else 0,
        penalties=tuple(name for name in PENALTIES if config.penalty[name] > 0),
    )


def reconstruction_loss(spec: ModelSpec, out_BD: jax.Array, x_BD: jax.Array) -> jax.Array:
    """Per-example loss summed over dimensions: squared error, or Bernoulli cross-entropy on logits."""
    if spec.output == "sigmoid":
        return optax.sigmoid_binary_cross_entropy(out_BD, x_BD).sum(-1)
    return jnp.square(out_BD - x_BD).sum(-1)


def gaussian_kl(mean_BK: jax.Array, logvar_BK: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, in nats."""
    return 0.5 * (jnp.square(mean_BK) + jnp.exp(logvar_BK) - 1.0 - logvar_BK).sum(-1)


def reparameterise(key: jax.Array, mean_BK: jax.Array, logvar_BK: jax.Array, live_K=None) -> jax.Array:
    """A sample z = mean + exp(logvar / 2) * eps of N(mean, exp(logvar)); padding units get no noise."""
    eps = models.code_noise(key, *mean_BK.shape)
    return mean_BK + jnp.exp(0.5 * logvar_BK) * (eps if live_K is None else eps * live_K)


def kl_sparsity(code_BK: jax.Array, target: jax.Array, live_K: jax.Array | None = None) -> jax.Array:
    """Sum over (live) units of KL(Bernoulli(target) || Bernoulli(mean activation over the batch))."""
    rho_hat = jnp.clip(code_BK.mean(0), 1e-6, 1 - 1e-6)
    kl_K = (target * jnp.log(target / rho_hat) + (1 - target) * jnp.log((1 - target) / (1 - rho_hat)))
    # Padding units of a packed member sit at 0 and would add a constant the solo model does not have.
    return kl_K.sum() if live_K is None else (kl_K * live_K).sum()


def encoder_jacobian_sq_norm(spec: ModelSpec, params: Any, x_BD: jax.Array, masks=None) -> jax.Array:
    """||d code / d x||_F^2 per example, exactly.

    For a depth-0 MLP with an elementwise code activation, J = diag(a'(pre)) W^T, so the norm is
    sum_k a'(pre_k)^2 ||W_:k||^2 (Rifai et al. 2011): one forward pass. Other nets use jacfwd/jacrev,
    whichever side (input or code) is smaller.
    """
    if spec.kind == "mlp" and spec.depth == 0 and not spec.topk:
        pre = models.encode(spec, params, x_BD, masks)["pre"]
        act = models.ACTIVATIONS["linear" if spec.variational else spec.code_activation]
        slope = jax.vmap(jax.vmap(jax.grad(act)))(pre)
        col_norms = jnp.square(params["code"]["kernel"]).sum(0)
        if masks is not None:  # padding units output 0 whatever their (zero) weights say
            col_norms = col_norms * masks["code"]
        return (jnp.square(slope) * col_norms).sum(-1)

    def code_of(x_D):
        return models.encode(spec, params, x_D[None], masks)["code"][0]

    jac = jax.jacfwd(code_of) if spec.input_dim <= spec.code_size else jax.jacrev(code_of)
    return jnp.square(jax.vmap(jac)(x_BD)).sum((-2, -1))


def l2_of_kernels(params: Any) -> jax.Array:
    """sum ||W||^2 over weight matrices and filters, not biases."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(jnp.square(v).sum() for path, v in leaves if path[-1].key == "kernel")


def loss_fn(params, stats, masks, x_BD, key, hp, *, spec: ModelSpec, obj: Objective, lo_D, hi_D):
    """(total, (terms, new_stats)) for one member on one batch; `hp` holds its traced weights."""
    k_noise, k_sample = jax.random.split(key)
    x_in = corrupt(obj.noise, k_noise, x_BD, hp["noise_level"], lo_D, hi_D)
    enc = models.encode(spec, params, x_in, masks)
    code = enc["code"]
    terms = {}
    total = 0.0
    if spec.variational:
        code = reparameterise(k_sample, enc["mean"], enc["logvar"], None if masks is None else masks["code"])
        terms["loss/kl"] = gaussian_kl(enc["mean"], enc["logvar"]).mean()
        total += hp["beta"] * terms["loss/kl"]
    out = models.decode_logits(spec, params, code, masks)
    terms["loss/recon"] = reconstruction_loss(spec, out, x_BD).mean()
    total += terms["loss/recon"]

    if obj.sparsity == "l1":
        terms["loss/sparsity"] = jnp.abs(code).sum(-1).mean()
    elif obj.sparsity == "kl":
        terms["loss/sparsity"] = kl_sparsity(code, hp["sparsity_target"],
                                             None if masks is None else masks["code"])
    if "loss/sparsity" in terms:
        total += hp["sparsity_weight"] * terms["loss/sparsity"]

    if obj.contractive:
        terms["loss/contractive"] = encoder_jacobian_sq_norm(spec, params, x_in, masks).mean()
        total += hp["contractive_weight"] * terms["loss/contractive"]

    for i, name in enumerate(obj.penalties):
        k_penalty = jax.random.fold_in(key, 1 + i)  # fold_in leaves the noise/sample keys as they were
        terms[f"loss/{name}"] = PENALTIES[name](spec, params, masks, x_in, k_penalty)
        total += hp[f"penalty_{name}"] * terms[f"loss/{name}"]

    terms["loss/l2"] = l2_of_kernels(params)
    total += hp["weight_decay"] * terms["loss/l2"]

    new_stats = stats
    if spec.topk:
        fired_K = (code != 0).any(0)
        since = jnp.where(fired_K, 0, stats["since_fired"] + 1)
        new_stats = {"since_fired": since}
        if obj.aux_k:
            dead_K = stats["since_fired"] > obj.dead_steps
            if masks is not None:
                dead_K &= masks["code"] > 0
            terms["loss/aux"] = _dead_unit_aux(spec, params, masks, enc["pre"], out, x_BD, dead_K, obj.aux_k)
            total += hp["aux_weight"] * terms["loss/aux"]
    terms["loss/total"] = total
    return total, (terms, new_stats)


def _dead_unit_aux(spec, params, masks, pre_BK, out_BD, x_BD, dead_K, aux_k):
    """Gao et al. 2024: the top aux_k dead units reconstruct the residual, so gradients reach them."""
    masked = jnp.where(dead_K, jax.nn.relu(pre_BK), -jnp.inf)
    vals, idx = jax.lax.top_k(masked, aux_k)
    vals = jnp.where(jnp.isfinite(vals), vals, 0.0)
    aux_code = jnp.zeros_like(pre_BK).at[jnp.arange(pre_BK.shape[0])[:, None], idx].set(vals)
    dec = lambda c: models.decode_logits(spec, params, c, masks)
    residual = jax.lax.stop_gradient(x_BD - out_BD)
    aux_out = dec(aux_code) - dec(jnp.zeros_like(aux_code))
    any_dead = dead_K.any()
    return jnp.where(any_dead, jnp.square(residual - aux_out).sum(-1).mean(), 0.0)


def initial_stats(spec: ModelSpec) -> dict[str, jax.Array]:
    """Per-member running statistics the loss maintains (top-k dead-unit counters)."""
    return {"since_fired": jnp.zeros((spec.code_size,), jnp.int32)} if spec.topk else {}
