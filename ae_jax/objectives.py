"""Input corruptions and loss terms: every variant of the seed is one of these, summed into one loss.

Both are registries: a corruption is one function in `NOISES` (`config.noise.kind` takes its name), a
loss term one `LossTerm` in `LOSS_TERMS`. Reduction, the same for every term so numbers compare across
variants: per example, summed over dimensions (data or code units), then averaged over the batch.
`loss/*` values are the unweighted terms; `loss/total` is the weighted sum that is optimised:
  total = recon + vae.beta * kl + sparsity.weight * sparsity + contractive.weight * contractive
          + sum over penalties of penalty.NAME * NAME + train.weight_decay * l2 + sparsity.aux_weight * aux
recon is the squared error, or the Bernoulli cross-entropy in nats for a sigmoid output; kl is in nats.
Two terms cannot be per example by nature: KL sparsity is a property of the batch's mean activation
(Ng's CS294A), so it is per batch, summed over units; l2 is per model, summed over weights.
"""

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ae_jax import models
from ae_jax.code_stages import CODE_STAGES, live_units, reparameterise  # noqa: F401 (reparameterise: public here too)
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


# ----------------------------------------------------------------------------- loss terms


class Batch(NamedTuple):
    """What a loss term sees of one member's training step."""

    spec: ModelSpec
    params: Any
    masks: Any  # the member's own units (packing); None when unpacked
    x: jax.Array  # clean inputs (B, D): the reconstruction target
    x_in: jax.Array  # what the encoder saw (corrupted for a denoising AE)
    enc: dict[str, jax.Array]  # the code stage's output on x_in ("pre", "code", ...)
    code: jax.Array  # the code the decoder read (a sample for a variational code)
    out: jax.Array  # decoder logits (B, D)
    hp: dict[str, jax.Array]  # the member's traced hyperparameters, by config key
    stats: Any  # running statistics before this step (code_stages.CodeStage.init_stats)
    key: jax.Array  # this term's own randomness
    args: tuple  # the term's static settings (LossTerm.static)


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One weighted term of the loss: `weight` (a traced config key) times `fn(batch)`."""

    fn: Callable[[Batch], jax.Array]
    weight: str  # config key of its weight, a traced hyperparameter
    # Static switch read from the config. None: the term is on in a shape group when any member of the
    # group weights it above 0 (a zero-weight member shares the program and adds exactly 0).
    active: Callable[[Any], bool] | None = None
    log: str = ""  # metric name; default loss/<registry name>
    traced: tuple[str, ...] = ()  # further traced config keys it reads from `hp`
    static: Callable[[Any], tuple] = lambda config: ()  # static settings -> Batch.args (part of the program)
    chooses: tuple[str, Any] | None = None  # the (config key, value) that turns it on, for validation
    tag: str | None = None  # how config.variant_of names it ('' = not a variant of its own); default: its name


def _kl_term(b: Batch) -> jax.Array:
    return gaussian_kl(b.enc["mean"], b.enc["logvar"]).mean()


def _l1_term(b: Batch) -> jax.Array:
    return jnp.abs(b.code).sum(-1).mean()


def _kl_sparsity_term(b: Batch) -> jax.Array:
    return kl_sparsity(b.code, b.hp["sparsity.target"], live_units(b.masks))


def _contractive_term(b: Batch) -> jax.Array:
    return encoder_jacobian_sq_norm(b.spec, b.params, b.x_in, b.masks).mean()


def _map_contractive_term(b: Batch) -> jax.Array:
    return map_jacobian_sq_norm(b.spec, b.params, b.masks, b.x_in, b.key)


def _aux_term(b: Batch) -> jax.Array:
    aux_k, dead_steps = b.args
    dead_K = b.stats["since_fired"] > dead_steps
    if b.masks is not None:
        dead_K &= b.masks["code"] > 0
    return _dead_unit_aux(b.spec, b.params, b.masks, b.enc["pre"], b.out, b.x, dead_K, aux_k)


def penalty(fn: Callable[[Batch], jax.Array]) -> LossTerm:
    """A plug-in regulariser: its weight is `config.penalty.NAME` (default 0 = off)."""
    return LossTerm(fn=fn, weight="")


# The loss adds the active terms in this order after the reconstruction term. A new term is one entry
# (`penalty(fn)` for a plug-in regulariser weighted by `penalty.NAME`); its weight and `traced` keys
# become traced hyperparameters, so its strengths sweep inside one compiled program.
LOSS_TERMS: dict[str, LossTerm] = {
    "kl": LossTerm(_kl_term, "vae.beta", active=lambda c: bool(c.vae.enabled), tag=""),  # the `vae` stage's
    "l1": LossTerm(_l1_term, "sparsity.weight", active=lambda c: c.sparsity.kind == "l1", log="loss/sparsity",
                   chooses=("sparsity.kind", "l1"), tag="sparse:l1"),
    # KL sparsity (Ng's CS294A) is a property of the batch's mean activation: per batch, summed over units
    "kl_sparsity": LossTerm(_kl_sparsity_term, "sparsity.weight", active=lambda c: c.sparsity.kind == "kl",
                            log="loss/sparsity", traced=("sparsity.target",), chooses=("sparsity.kind", "kl"),
                            tag="sparse:kl"),
    "contractive": LossTerm(_contractive_term, "contractive.weight"),
    # Alain & Bengio 2014's reconstruction-contractive penalty on the whole map
    "map_contractive": penalty(_map_contractive_term),
    "l2": LossTerm(lambda b: l2_of_kernels(b.params), "train.weight_decay", active=lambda c: True, tag=""),
    "aux": LossTerm(_aux_term, "sparsity.aux_weight",
                    active=lambda c: c.sparsity.kind == "topk" and c.sparsity.aux_k > 0,
                    static=lambda c: (c.sparsity.aux_k, c.sparsity.dead_steps), tag=""),
}


def weight_key(name: str) -> str:
    """The config key of a term's weight (`penalty.NAME` for plug-in penalties)."""
    return LOSS_TERMS[name].weight or f"penalty.{name}"


def penalty_names() -> list[str]:
    """Terms weighted by `penalty.NAME`: the config's `penalty` block has one entry each."""
    return [name for name, term in LOSS_TERMS.items() if not term.weight]


def traced_keys() -> tuple[str, ...]:
    """Config keys of every loss weight and other traced setting of the registered terms."""
    keys = ["noise.level"]
    for name, term in LOSS_TERMS.items():
        keys += [weight_key(name), *term.traced]
    return tuple(dict.fromkeys(keys))


@dataclasses.dataclass(frozen=True)
class Objective:
    """The static choices of the loss: the corruption and the terms that exist (weights are traced)."""

    noise: str
    terms: tuple[tuple[str, tuple], ...] = ()  # (name in LOSS_TERMS, its static settings), in registry order

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)


def _on(name: str, config, weighted: bool) -> bool:
    term = LOSS_TERMS[name]
    if term.active is not None:
        return bool(term.active(config))
    try:
        weight = float(get_key(config, weight_key(name)))
    except (KeyError, AttributeError):  # a config made before a plug-in registered its block: weight 0
        return False
    return weighted and weight > 0


def objective_spec(config: ml_collections.ConfigDict, weighted: bool = True) -> Objective:
    """A member's objective. `weighted=False` leaves out the terms switched on by their weight alone:
    the shape-group key, before `group_objective` adds those the group needs."""
    return Objective(noise=config.noise.kind,
                     terms=tuple((name, tuple(LOSS_TERMS[name].static(config))) for name in LOSS_TERMS
                                 if _on(name, config, weighted)))


def group_objective(configs) -> Objective:
    """The objective of a shape group: its static terms plus every weighted term any member uses."""
    objs = [objective_spec(c) for c in configs]
    on = dict(t for o in objs for t in o.terms)
    return Objective(noise=objs[0].noise, terms=tuple((name, on[name]) for name in LOSS_TERMS if name in on))


def get_key(config, key: str) -> Any:
    from ae_jax.config import get  # config imports this module
    return get(config, key)


# ----------------------------------------------------------------------------- the terms' functions


def map_jacobian_sq_norm(spec: ModelSpec, params: Any, masks: Any, x_BD: jax.Array, key: jax.Array) -> jax.Array:
    """||d f(x) / d x||_F^2 of the whole map, per example, averaged over the batch (Alain & Bengio 2014's
    reconstruction-contractive penalty). Unbiased with one Gaussian probe per example (Hutchinson:
    E ||J v||^2 = ||J||_F^2 for v ~ N(0, I)), so it costs one forward-mode pass, whatever D is; unlike
    the encoder-only contractive term it cannot be gamed by shrinking the code and growing the decoder."""
    v_BD = jax.random.normal(key, x_BD.shape, x_BD.dtype)
    _, jv_BD = jax.jvp(lambda x: models.reconstruct(spec, params, x, masks), (x_BD,), (v_BD,))
    return jnp.square(jv_BD).sum(-1).mean()


def reconstruction_loss(spec: ModelSpec, out_BD: jax.Array, x_BD: jax.Array) -> jax.Array:
    """Per-example loss summed over dimensions: squared error, or Bernoulli cross-entropy on logits."""
    if spec.output == "sigmoid":
        return optax.sigmoid_binary_cross_entropy(out_BD, x_BD).sum(-1)
    return jnp.square(out_BD - x_BD).sum(-1)


def gaussian_kl(mean_BK: jax.Array, logvar_BK: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, in nats."""
    return 0.5 * (jnp.square(mean_BK) + jnp.exp(logvar_BK) - 1.0 - logvar_BK).sum(-1)


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
    elementwise = CODE_STAGES[spec.code_stage].elementwise(spec)
    if spec.kind == "mlp" and spec.depth == 0 and elementwise is not None:
        pre = models.encode(spec, params, x_BD, masks)["pre"]
        act = models.ACTIVATIONS[elementwise]
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
    """(total, (terms, new_stats)) for one member on one batch; `hp` holds its traced weights by config key."""
    k_noise, k_sample = jax.random.split(key)
    x_in = corrupt(obj.noise, k_noise, x_BD, hp["noise.level"], lo_D, hi_D)
    enc = models.encode(spec, params, x_in, masks)
    stage = CODE_STAGES[spec.code_stage]
    code = enc["code"] if stage.sample is None else stage.sample(k_sample, enc, live_units(masks))
    out = models.decode_logits(spec, params, code, masks)
    terms = {"loss/recon": reconstruction_loss(spec, out, x_BD).mean()}
    total = terms["loss/recon"]
    for i, (name, args) in enumerate(obj.terms):
        # fold_in leaves the noise/sample keys as they were; each term draws from its own stream
        batch = Batch(spec, params, masks, x_BD, x_in, enc, code, out, hp, stats, jax.random.fold_in(key, 1 + i),
                      args)
        log = LOSS_TERMS[name].log or f"loss/{name}"
        terms[log] = LOSS_TERMS[name].fn(batch)
        total += hp[weight_key(name)] * terms[log]
    new_stats = stats if stage.update_stats is None else stage.update_stats(stats, code)
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
    """Per-member running statistics the loss maintains (the code stage's, e.g. top-k's dead-unit counters)."""
    init = CODE_STAGES[spec.code_stage].init_stats
    return {} if init is None else init(spec)
