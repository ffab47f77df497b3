"""The variants as plug-ins to the one model and loss: each corruption, penalty and code stage has its
defining property, they compose, sweep inside one program, pack exactly, and move the identity
diagnostics the way their papers say."""

import dataclasses
import importlib.util
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_jax import code_stages, config as config_lib, data as data_lib, diagnostics, layers, member_log, models, objectives, sweep, train

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "configs")
PRESETS = ("dae", "sae", "cae", "vae", "conv_ae")


@pytest.fixture(scope="module")
def digits():
    return data_lib.load(config_lib.base_config().data)


def make_config(**overrides):
    """A validated base config for tests: depth 0, cheap diagnostics, no W&B; flat keys override."""
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.model.depth = 0
    c.train.log_every = 250
    c.diagnostics.jac_points = 30
    c.diagnostics.attractor_points = 20
    c.diagnostics.attractor_iters = 10
    c.diagnostics.ood_samples = 200
    c.diagnostics.probe = False
    c = config_lib.apply_overrides(c, overrides)
    config_lib.validate(c)
    return c


def hparams(*configs):
    return train.hparams_of(configs)


def plan_of(c, dataset):
    return train.plan_of(c, dataset.shape)


def member(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def random_x(n=6, d=64, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, d)).astype(np.float32)


# ----------------------------------------------------------------------------- corruptions


def test_each_corruption_has_its_defining_property():
    x = np.random.default_rng(0).uniform(0.1, 0.9, (1000, 64)).astype(np.float32)
    lo, hi = np.zeros(64, np.float32), np.ones(64, np.float32)
    key = jax.random.key(0)
    corrupt = lambda kind, level: np.asarray(objectives.corrupt(kind, key, x, jnp.float32(level), lo, hi))

    np.testing.assert_array_equal(corrupt("none", 0.7), x)
    for kind in ("gaussian", "mask", "salt_pepper"):
        np.testing.assert_array_equal(corrupt(kind, 0.0), x, err_msg=f"{kind} at level 0 must be the identity")

    e = corrupt("gaussian", 0.2) - x
    assert abs(e.std() - 0.2) < 0.005 and abs(e.mean()) < 0.005

    masked = corrupt("mask", 0.3)
    dropped = masked == 0.0
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(masked[~dropped], x[~dropped])

    sp = corrupt("salt_pepper", 0.3)
    salt, pepper = sp == 1.0, sp == 0.0
    assert abs((salt | pepper).mean() - 0.3) < 0.01
    assert abs(salt.mean() - 0.15) < 0.01 and abs(pepper.mean() - 0.15) < 0.01
    np.testing.assert_array_equal(sp[~(salt | pepper)], x[~(salt | pepper)])


# ----------------------------------------------------------------------------- penalties against hand computations


@pytest.mark.parametrize("activation,vae", [("relu", False), ("tanh", False), ("sigmoid", False),
                                            ("relu", True)])
def test_closed_form_contractive_norm_equals_the_jacobian(activation, vae):
    c = make_config(**{"model.code_size": 16, "model.activation": activation, "vae.enabled": vae})
    spec = models.model_spec(c, (64,))
    params = models.init_params(spec, jax.random.key(1))
    params = {**params, "code": {**params["code"], "bias": 0.3 * jax.random.normal(jax.random.key(2), (16,))}}
    x = random_x()
    for masks in (None, models.size_masks(spec, 9, spec.width)):
        code_of = lambda x_D: models.encode(spec, params, x_D[None], masks)["code"][0]
        want = np.square(np.asarray(jax.vmap(jax.jacfwd(code_of))(x))).sum((1, 2))
        got = objectives.encoder_jacobian_sq_norm(spec, params, x, masks)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_deep_contractive_norm_equals_the_jacobian():
    c = make_config(**{"model.code_size": 8, "model.depth": 2, "model.width": 32, "model.activation": "tanh"})
    spec = models.model_spec(c, (64,))
    params = models.init_params(spec, jax.random.key(0))
    x = random_x()
    code_of = lambda x_D: models.encode(spec, params, x_D[None])["code"][0]
    want = np.square(np.asarray(jax.vmap(jax.jacrev(code_of))(x))).sum((1, 2))
    np.testing.assert_allclose(objectives.encoder_jacobian_sq_norm(spec, params, x), want, rtol=1e-5)


def test_kl_sparsity_matches_the_bernoulli_kl_by_hand():
    code = np.random.default_rng(0).uniform(0.01, 0.6, (50, 7)).astype(np.float32)
    rho, r = 0.05, code.astype(np.float64).mean(0)
    by_hand = rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r))
    np.testing.assert_allclose(objectives.kl_sparsity(code, jnp.float32(rho)), by_hand.sum(), rtol=1e-5)
    live = np.array([1, 1, 0, 1, 0, 0, 1], np.float32)
    np.testing.assert_allclose(objectives.kl_sparsity(code, jnp.float32(rho), live), (by_hand * live).sum(),
                               rtol=1e-5)
    at_target = np.full((4, 3), rho, np.float32)
    assert abs(float(objectives.kl_sparsity(at_target, jnp.float32(rho)))) < 1e-6


def test_gaussian_kl_matches_the_closed_form_by_hand():
    mean = np.array([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0]], np.float32)
    logvar = np.array([[0.0, 0.0, np.log(4.0)], [-1.0, 1.0, 0.0]], np.float32)
    var = np.exp(logvar.astype(np.float64))
    by_hand = 0.5 * (mean ** 2 + var - 1.0 - np.log(var)).sum(-1)  # KL(N(m, v) || N(0, 1)) per unit, summed
    np.testing.assert_allclose(objectives.gaussian_kl(mean, logvar), by_hand, rtol=1e-6)
    assert float(objectives.gaussian_kl(np.zeros((1, 5)), np.zeros((1, 5)))[0]) == 0.0


def test_reparameterised_samples_have_the_posterior_mean_and_variance():
    n = 20000
    mean = np.tile(np.array([0.0, 1.5, -2.0, 0.3], np.float32), (n, 1))
    logvar = np.tile(np.array([0.0, np.log(0.25), np.log(4.0), -3.0], np.float32), (n, 1))
    live = np.array([1.0, 1.0, 1.0, 0.0], np.float32)
    z = np.asarray(objectives.reparameterise(jax.random.key(0), mean, logvar, live))
    np.testing.assert_allclose(z[:, :3].mean(0), mean[0, :3], atol=0.05)
    np.testing.assert_allclose(z[:, :3].var(0), np.exp(logvar[0, :3]), rtol=0.05)
    np.testing.assert_array_equal(z[:, 3], mean[:, 3])  # a padding unit gets no noise
    # Unit k's noise does not depend on how many units there are, so packed members sample like solo ones.
    np.testing.assert_array_equal(code_stages.code_noise(jax.random.key(3), 5, 16)[:, :8],
                                  code_stages.code_noise(jax.random.key(3), 5, 8))


# ----------------------------------------------------------------------------- code stages


def _tied_to_constant(spec, value):
    """Params whose code pre-activation is `value` for every unit and input (zero kernel, constant bias)."""
    params = models.init_params(spec, jax.random.key(0))
    code = {"kernel": jnp.zeros_like(params["code"]["kernel"]), "bias": jnp.asarray(value, jnp.float32)}
    return {**params, "code": code}


@pytest.mark.parametrize("activation,bias", [("linear", 1.0), ("tanh", -0.5), ("relu", 2.0)])
def test_topk_keeps_exactly_k_units_even_with_ties_and_negative_codes(activation, bias):
    c = make_config(**{"model.code_size": 16, "model.code_activation": activation,
                       "sparsity.kind": "topk", "sparsity.k": 5})
    spec = models.model_spec(c, (64,))
    params = _tied_to_constant(spec, np.full(16, bias))  # all 16 units tie
    code = np.asarray(models.encode(spec, params, random_x())["code"])
    assert ((code != 0).sum(1) == 5).all()

    # Packed: 9 live units of 16; the padding units' code is 0, above every negative tanh code, yet
    # they must never take a slot.
    masks = models.size_masks(spec, 9, spec.width)
    code = np.asarray(models.encode(spec, params, random_x(), masks)["code"])
    assert ((code != 0).sum(1) == 5).all() and (code[:, 9:] == 0).all()


def test_topk_keeps_the_k_largest_values_and_has_finite_gradients_under_masks():
    c = make_config(**{"model.code_size": 16, "model.code_activation": "tanh", "sparsity.kind": "topk",
                       "sparsity.k": 3})
    spec = models.model_spec(c, (64,))
    params = models.init_params(spec, jax.random.key(0))
    x = random_x()
    masks = models.size_masks(spec, 10, spec.width)
    dense = np.tanh(x @ np.asarray(params["code"]["kernel"])[:, :10] + np.asarray(params["code"]["bias"])[:10])
    code = np.asarray(models.encode(spec, params, x, masks)["code"])
    for row_dense, row in zip(dense, code):
        top = np.argsort(-row_dense)[:3]
        np.testing.assert_allclose(row[top], row_dense[top], rtol=1e-5)
        assert (np.delete(row, top) == 0).all()
    grads = jax.grad(lambda p: models.reconstruct(spec, p, x, masks).sum())(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("kind,depth", [("mlp", 0), ("mlp", 2), ("conv", 0)])
def test_topk_starts_with_the_decoder_tied_to_the_encoder_transpose(kind, depth):
    c = make_config(**{"model.kind": kind, "model.depth": depth, "model.width": 32, "model.code_size": 12,
                       "model.channels": (2,), "model.kernel_size": 2, "sparsity.kind": "topk", "sparsity.k": 4})
    spec = models.model_spec(c, (8, 8, 1))
    first_dec = {("mlp", 0): "out", ("mlp", 2): "dec_0", ("conv", 0): "dec_in"}[(kind, depth)]
    init = jax.jit(models.init_params, static_argnums=0)  # one compile, not one per eager op
    params = init(spec, jax.random.key(0))
    np.testing.assert_array_equal(params[first_dec]["kernel"], params["code"]["kernel"].T)
    plain = init(dataclasses.replace(spec, code_stage="plain", stage_args=()), jax.random.key(0))
    assert not np.allclose(plain[first_dec]["kernel"], plain["code"]["kernel"].T)


# ----------------------------------------------------------------------------- tied weights


def test_tied_decoder_is_the_encoder_transpose_after_training_and_one_matrix_gets_both_gradients(digits):
    """Rifai et al.'s tied CAE: no decoder kernel exists, the trained decoder's weight is the trained encoder's
    transpose, and the gradient on the one matrix is the sum of an untied twin's encoder and decoder
    gradients (decoder transposed) at the same weights."""
    c = make_config(**{"model.tied": True, "model.activation": "sigmoid", "model.code_size": 24,
                       "contractive.weight": 0.1, "train.steps": 40, "train.batch_size": 64})
    plan = plan_of(c, digits)
    state, _ = train.fit(plan, np.array([3]), hparams(c), digits.x_train)
    params = member(state.params, 0)
    assert set(params["out"]) == {"bias"}
    w = np.asarray(params["code"]["kernel"])
    assert np.abs(w - np.asarray(member(train.init_params(plan, np.array([3]), np.array([[24, 256]])), 0)
                                 ["code"]["kernel"])).max() > 1e-3  # training moved it
    unit = models.decode_logits(plan.spec, params, jnp.eye(24)) - models.decode_logits(plan.spec, params,
                                                                                       jnp.zeros((1, 24)))
    np.testing.assert_allclose(unit, w.T, atol=1e-6)

    untied_spec = dataclasses.replace(plan.spec, tied=False)
    untied = {**params, "out": {"kernel": jnp.asarray(w.T), "bias": params["out"]["bias"]}}
    x = jnp.asarray(digits.x_train[:64])
    hp = {k: jnp.float32(v[0]) for k, v in hparams(c).items()}

    def grads(spec, p):
        loss = lambda q: objectives.loss_fn(q, {}, None, x, jax.random.key(0), hp, spec=spec, obj=plan.obj,
                                            lo_D=x.min(0), hi_D=x.max(0))[0]
        return jax.grad(loss)(p)

    g_tied, g_untied = grads(plan.spec, params), grads(untied_spec, untied)
    np.testing.assert_allclose(g_tied["code"]["kernel"],
                               g_untied["code"]["kernel"] + g_untied["out"]["kernel"].T, rtol=1e-4, atol=1e-6)
    assert np.abs(g_untied["out"]["kernel"]).max() > 1e-3  # the decoder's share is not negligible


@pytest.mark.parametrize("over", [{"model.depth": 1}, {"model.kind": "conv"}, {"model.kind": "fullconv"}])
def test_tied_weights_are_refused_where_they_cannot_apply(over):
    with pytest.raises(config_lib.ConfigError, match=r"^config\.model\.tied: "):
        make_config(**{"model.tied": True, **over})


def test_vae_diagnostics_use_the_mean_path():
    c = make_config(**{"model.code_size": 6, "model.depth": 1, "model.width": 16, "vae.enabled": True,
                       "model.output": "sigmoid"})
    spec = models.model_spec(c, (64,))
    params = models.init_params(spec, jax.random.key(0))
    x = random_x()
    enc = models.encode(spec, params, x)
    assert set(enc) >= {"mean", "logvar", "code"}
    np.testing.assert_array_equal(enc["code"], enc["mean"])
    np.testing.assert_allclose(models.reconstruct(spec, params, x), models.decode(spec, params, enc["mean"]),
                               rtol=1e-6)
    out = np.asarray(models.reconstruct(spec, params, x))
    assert (out > 0).all() and (out < 1).all()  # Bernoulli means


def test_vae_generates_prior_samples_and_interpolations_as_images(digits, tmp_path):
    c = make_config(**{"model.code_size": 16, "model.depth": 1, "model.width": 16, "vae.enabled": True,
                       "model.output": "sigmoid"})
    spec = models.model_spec(c, digits.shape)
    params, masks = models.init_params(spec, jax.random.key(0)), models.size_masks(spec, 16, 16)
    line = np.asarray(models.interpolate(spec, params, digits.x_test[0], digits.x_test[1], 5, masks))
    ends = models.decode(spec, params, models.encode(spec, params, digits.x_test[:2], masks)["mean"], masks)
    np.testing.assert_allclose(line[[0, -1]], ends, rtol=1e-5, atol=1e-6)
    assert models.sample_prior(spec, params, jax.random.key(1), 7, masks).shape == (7, 64)

    images = member_log.panels(c, spec, params, masks, digits)
    side = 8 * (member_log.PANEL_PIXELS // 8)  # 8x8 images upscaled to at least PANEL_PIXELS a side
    h, w = 4 * (side + 1) - 1, 8 * (side + 1) - 1  # 4 pairs x 8 steps, 1 pixel apart
    assert images["panels/interpolation"].shape[:2] == (h, w)
    assert images["panels/prior_samples"].shape[:2] == (2 * (side + 1) - 1, w)
    member_log.save_generated(images, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["interpolation.png", "prior_samples.png"]


def test_sigmoid_output_is_a_bernoulli_cross_entropy_on_logits():
    c = make_config(**{"model.output": "sigmoid"})
    spec = models.model_spec(c, (64,))
    logits, x = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32), random_x(3)
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    by_hand = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)
    np.testing.assert_allclose(objectives.reconstruction_loss(spec, logits, x), by_hand, rtol=1e-5)
    linear = models.model_spec(make_config(), (64,))
    np.testing.assert_allclose(objectives.reconstruction_loss(linear, logits, x), ((logits - x) ** 2).sum(-1),
                               rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_patch_convolutions_equal_flax_convolutions(k):
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    pairs = [(layers.PatchConv(4, k, stride=2), nn.Conv(4, (k, k), strides=(2, 2), padding="SAME")),
             (layers.PatchConv(4, k), nn.Conv(4, (k, k), padding="SAME")),
             (layers.PatchConv(4, k, up=2), nn.ConvTranspose(4, (k, k), strides=(2, 2), padding="SAME"))]
    for mine, theirs in pairs:
        params = mine.init(jax.random.key(1), x)
        jax.tree.map(np.testing.assert_array_equal, params, theirs.init(jax.random.key(1), x))
        np.testing.assert_allclose(mine.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- packing, loss terms, one program

# Each case composes variants, so every corruption, penalty and code stage is packed at least once
# (mlp depth 1 packs widths too; depth 0 takes the closed-form contractive path).
PACK_CASES = {
    "mask+l1+contractive(deep)": {"noise.kind": "mask", "noise.level": 0.2, "sparsity.kind": "l1",
                                  "sparsity.weight": 0.01, "contractive.weight": 0.05, "model.depth": 1},
    "salt_pepper+kl": {"noise.kind": "salt_pepper", "noise.level": 0.1, "sparsity.kind": "kl",
                       "sparsity.weight": 0.1, "model.code_activation": "sigmoid"},
    "gaussian+vae+contractive": {"noise.kind": "gaussian", "noise.level": 0.1, "vae.enabled": True,
                                 "vae.beta": 0.5, "model.output": "sigmoid", "contractive.weight": 0.1},
    "tied+contractive": {"model.tied": True, "model.activation": "sigmoid", "contractive.weight": 0.1},
    "conv+topk+aux": {"model.kind": "conv", "model.channels": (4,), "model.kernel_size": 2,
                      "sparsity.kind": "topk", "sparsity.k": 3,
                      "sparsity.aux_k": 4, "sparsity.dead_steps": 3, "model.activation": "tanh"},
}
TERMS = {
    "mask+l1+contractive(deep)": {"loss/sparsity", "loss/contractive"},
    "salt_pepper+kl": {"loss/sparsity"},
    "gaussian+vae+contractive": {"loss/kl", "loss/contractive"},
    "tied+contractive": {"loss/contractive"},
    "conv+topk+aux": {"loss/aux"},
}
# How each term enters loss/total: its traced weight.
WEIGHTS = {"loss/recon": None, "loss/l2": "train.weight_decay", "loss/sparsity": "sparsity.weight",
           "loss/contractive": "contractive.weight", "loss/kl": "vae.beta", "loss/aux": "sparsity.aux_weight"}
# Other values of every traced hyperparameter: the group runs them again without a new trace.
OTHER_VALUES = {"noise.level": 0.3, "sparsity.weight": 0.02, "sparsity.target": 0.1, "contractive.weight": 0.3,
                "vae.beta": 2.0, "sparsity.aux_weight": 0.1, "train.weight_decay": 1e-4, "train.learning_rate": 3e-3}


@pytest.mark.parametrize("case", list(PACK_CASES))
def test_packed_member_equals_the_solo_run_of_its_size(case, digits):
    """Member 0 (code 8, width 24) packed with a (16, 32) member trains exactly like its solo model;
    every term of the variant is reported and weighted into loss/total; other noise levels, weights
    and beta run in the same compiled program."""
    over = {"model.code_size": 16, "model.width": 32, "train.steps": 30, "train.batch_size": 32,
            "train.log_every": 15, "train.weight_decay": 1e-5, **PACK_CASES[case]}
    big = make_config(**over)
    small = make_config(**{**over, "model.code_size": 8, "model.width": 24})
    packed_plan, solo_plan = plan_of(big, digits), plan_of(small, digits)
    seeds = np.array([4, 5])
    packed, curves = train.fit(packed_plan, seeds, hparams(small, big), digits.x_train,
                               sizes_M=np.array([[8, 24], [16, 32]]))
    solo, solo_curves = train.fit(solo_plan, seeds[:1], hparams(small), digits.x_train)

    assert (np.asarray(packed.diverged_at) < 0).all() and int(solo.diverged_at[0]) < 0
    for path, p, s in zip(jax.tree_util.tree_leaves_with_path(packed.params), jax.tree.leaves(packed.params),
                          jax.tree.leaves(solo.params)):
        own = tuple(slice(0, n) for n in s.shape[1:])
        np.testing.assert_allclose(p[0][own], s[0], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{case}: {jax.tree_util.keystr(path[0])}")
        padding = np.asarray(p[0]).copy()
        padding[own] = 0.0
        assert not padding.any(), f"{case}: padding of {jax.tree_util.keystr(path[0])} moved"

    expected = {"loss/recon", "loss/l2", "loss/total"} | TERMS[case]
    assert {k for k in curves if k.startswith("loss/")} == expected
    assert all((curves[k][0] > 0).any() for k in expected), f"{case}: a term never switched on"
    for k in expected:
        np.testing.assert_allclose(curves[k][0], solo_curves[k][0], rtol=1e-5, atol=1e-6, err_msg=f"{case}: {k}")
    hp = hparams(small)
    total = sum(curves[k][0] * (1.0 if WEIGHTS[k] is None else hp[WEIGHTS[k]][0])
                for k in expected - {"loss/total"})
    np.testing.assert_allclose(curves["loss/total"][0], total, rtol=1e-4, err_msg=case)

    traces = train.TRACE_COUNTS[packed_plan]
    other = {k: np.full_like(v, OTHER_VALUES.get(k, v[0])) for k, v in hparams(small, big).items()}
    _, again = train.fit(packed_plan, seeds + 1, other, digits.x_train, sizes_M=np.array([[8, 24], [16, 32]]))
    assert train.TRACE_COUNTS[packed_plan] == traces, f"{case}: new traced values recompiled the group"
    assert np.isfinite(again["loss/total"]).all()


# ----------------------------------------------------------------------------- what each variant does to the map

STEPS = 600
# One sweep, four programs: variants that differ only in traced values (noise level, penalty weights,
# beta) share one, and so do top-k codes of different sizes (packed).
SCIENCE = {
    "plain": {},
    "dae_gaussian": {"noise.level": 0.2},
    "cae": {"contractive.weight": 0.1},
    "map_contractive": {"penalty.map_contractive": 0.03},  # a plug-in penalty: shares the plain program
    "l1": {"sparsity.weight": 0.05},
    "dae+l1": {"noise.level": 0.2, "sparsity.weight": 0.05},  # variants compose: a denoising sparse AE
    "kl": {"noise.kind": "none", "sparsity.kind": "kl", "sparsity.weight": 1.0, "train.learning_rate": 3e-3,
           "model.code_activation": "sigmoid"},
    "topk_code32": {"noise.kind": "none", "sparsity.kind": "topk", "sparsity.k": 8, "sparsity.aux_k": 16,
                    "model.code_size": 32, "train.pack_ratio": 16.0},
    "topk_code256": {"noise.kind": "none", "sparsity.kind": "topk", "sparsity.k": 8, "sparsity.aux_k": 16,
                     "train.pack_ratio": 16.0},
    **{f"vae_beta{b:g}": {"noise.kind": "none", "sparsity.kind": "none", "vae.enabled": True, "vae.beta": b,
                          "model.code_size": 16, "model.depth": 1, "model.width": 128, "model.output": "sigmoid"}
       for b in (0.5, 1.0, 4.0)},
}


@pytest.fixture(scope="module")
def science(tmp_path_factory):
    """name -> metrics of the SCIENCE members; code 256, depth 0 ReLU on digits unless overridden."""
    records = sweep.run_sweep(science_base(), list(SCIENCE.values()), tmp_path_factory.mktemp("science"),
                              report=False)
    assert len(records) == len(SCIENCE) and all(r["status"] == "ok" for r in records)
    names = list(SCIENCE)
    return {names[r["member"]]: r["metrics"] for r in records}


def science_base():
    return make_config(**{"model.code_size": 256, "train.steps": STEPS, "noise.kind": "gaussian",
                          "sparsity.kind": "l1"})


def test_variants_differing_only_in_strength_share_one_program(digits):
    members = sweep.expand(science_base(), list(SCIENCE.values()))
    groups = sweep.group_members(members, {sweep.data_key(science_base()): digits})
    names = list(SCIENCE)
    together = [{names[m.index] for m in g.members} for g in groups]
    # Noise level, penalty weights and beta are traced values: the plain AE, the Gaussian DAE, the CAE,
    # the plug-in penalty and the L1 AE are one program (all terms on, weights 0 where off), and so are
    # the three betas.
    assert {"plain", "dae_gaussian", "cae", "map_contractive", "l1", "dae+l1"} in together
    assert {"vae_beta0.5", "vae_beta1", "vae_beta4"} in together


def test_denoising_lowers_denoise_gain_and_jacobian_rank(science):
    plain, dae = science["plain"], science["dae_gaussian"]
    assert dae["denoise_gain"] < plain["denoise_gain"] - 0.1
    assert dae["jac_rank"] < 0.5 * plain["jac_rank"]


def test_contractive_penalty_lowers_the_jacobian_trace(science):
    assert science["cae"]["jac_trace"] < 0.7 * science["plain"]["jac_trace"]


def test_whole_map_contractive_penalty_pulls_the_map_off_the_identity(science):
    """Alain & Bengio's penalty on ||J_f||_F^2 shrinks the whole map's Jacobian on the data span (trace
    and rank), so uniform span noise is no longer copied, at a small reconstruction cost."""
    plain, pen = science["plain"], science["map_contractive"]
    assert pen["jac_trace"] < 0.7 * plain["jac_trace"] and pen["jac_rank"] < 0.8 * plain["jac_rank"]
    assert pen["span_ood_fidelity"] < plain["span_ood_fidelity"] - 0.1
    assert pen["regime"] == "structured"
    assert pen["final_map_contractive"] > 0 and pen["test_mse"] < 0.01


def test_map_contractive_term_is_an_unbiased_frobenius_norm():
    """Hutchinson with one probe: the mean over keys equals ||W_enc W_dec||_F^2 of a linear AE exactly in
    expectation (checked to 3% over 4000 probes), and the term feeds loss/total with its traced weight."""
    c = make_config(**{"model.activation": "linear", "model.code_size": 5, "penalty.map_contractive": 0.5})
    spec = models.model_spec(c, (7,))
    params = models.init_params(spec, jax.random.key(1))
    x = jnp.asarray(random_x(3, 7))
    keys = jax.random.split(jax.random.key(2), 4000)
    est = jax.vmap(lambda k: objectives.map_jacobian_sq_norm(spec, params, None, x, k))(keys)
    jac = params["code"]["kernel"] @ params["out"]["kernel"]
    assert float(est.mean()) == pytest.approx(float(jnp.square(jac).sum()), rel=0.03)
    obj = objectives.objective_spec(c)
    assert obj.names == ("map_contractive", "l2")
    hp = {k: jnp.float32(v[0]) for k, v in hparams(c).items()}
    lo, hi = x.min(0), x.max(0)
    total, (terms, _) = objectives.loss_fn(params, {}, None, x, jax.random.key(3), hp, spec=spec, obj=obj,
                                           lo_D=lo, hi_D=hi)
    expected = terms["loss/recon"] + 0.5 * terms["loss/map_contractive"] + hp["train.weight_decay"] * terms["loss/l2"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_topk_bounds_l0_and_jacobian_rank_by_k_whatever_the_code_size(science):
    for name in ("topk_code32", "topk_code256"):
        m = science[name]
        assert m["l0"] <= 8 + 1e-6 and m["jac_rank"] <= 8 + 1e-6, name
        assert m["test_mse"] < 0.03, name  # it still reconstructs (PCA-8 gives 0.025)


def test_l1_and_kl_give_sparse_codes(science):
    l1, plain, kl = science["l1"], science["plain"], science["kl"]
    assert l1["l0"] < 0.25 * 256 and l1["l0"] < 0.5 * plain["l0"]
    assert kl["l0"] < 0.25 * 256  # units above 1/2: sigmoid codes are never exactly 0
    assert abs(kl["code_mean"] - 0.05) < 0.02  # the mean activation sits near the target rate rho


def test_vae_code_metrics_and_beta(science):
    for beta in (0.5, 1, 4):
        m = science[f"vae_beta{beta:g}"]
        assert m["kl"] > 0 and math.isfinite(m["test_elbo"]) and 0 <= m["active_units"] <= 16
    assert science["vae_beta1"]["active_units"] >= 1
    units = [science[f"vae_beta{b:g}"]["active_units"] for b in (0.5, 1, 4)]
    assert units[0] >= units[1] >= units[2] and units[2] < units[0], units
    kls = [science[f"vae_beta{b:g}"]["kl"] for b in (0.5, 1, 4)]
    assert kls[0] > kls[1] > kls[2], kls


def test_conv_autoencoder_beats_pca_of_its_code_size(digits):
    """Four seeds of a (16, 32)-channel conv AE with a linear code of 8 units, each below PCA-8."""
    c = make_config(**{"model.kind": "conv", "model.code_size": 8, "model.code_activation": "linear",
                       "train.steps": 400, "train.batch_size": 64, "train.learning_rate": 3e-3,
                       "train.log_every": 200})
    plan = plan_of(c, digits)
    state, _ = train.fit(plan, np.arange(4), hparams(*[c] * 4), digits.x_train)
    pca = diagnostics.pca_mse(digits.x_train, digits.x_test, 8)  # the linear AE optimum at code 8
    for i in range(4):
        out = models.reconstruct(plan.spec, member(state.params, i), digits.x_test, member(state.masks, i))
        test_mse = float(np.mean((np.asarray(out) - digits.x_test) ** 2))
        assert test_mse < 0.85 * pca, (i, test_mse, pca)


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", PRESETS)
def test_presets_expand_and_document_their_command(name):
    for arg in ("", ":smoke"):
        config, overrides, _ = sweep.load_config_file(os.path.join(CONFIGS, f"{name}.py{arg}"))
        members = sweep.expand(config, overrides)
        assert members and config.train.steps <= (300 if arg else 10_000)
    spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIGS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__.startswith(f"python -m ae_jax.sweep --config=configs/{name}.py")


def test_a_denoising_sparse_autoencoder_is_a_config(science):
    """configs/dae.py --config.sparsity.kind=l1 is a denoising sparse AE; the science sweep trains one."""
    config, overrides, _ = sweep.load_config_file(os.path.join(CONFIGS, "dae.py:smoke"))
    config = config_lib.apply_overrides(config, {"sparsity.kind": "l1"})
    dsae = [m.config for m in sweep.expand(config, overrides) if m.config.noise.level > 0]
    assert dsae and all(c.noise.kind == "gaussian" and c.sparsity.weight > 0 for c in dsae)

    both, plain = science["dae+l1"], science["plain"]
    assert both["final_recon"] > 0 and both["final_sparsity"] > 0
    assert both["l0"] < 0.5 * plain["l0"] and both["jac_rank"] < 0.5 * plain["jac_rank"]
