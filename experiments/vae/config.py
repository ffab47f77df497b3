"""python -m ae_jax.sweep --config=experiments/vae/config.py --workdir=runs/vae && python -m experiments.vae.analyze runs/vae

Active units of (beta-)VAEs against latent size and beta (Kingma & Welling 2013; Burda, Grosse &
Salakhutdinov 2015; Lucas et al. 2019), seeds 0-2 for every cell. Three families, one sweep:
  digits    Bernoulli decoder (sigmoid output, cross-entropy), one hidden ReLU layer of 256 per side,
            latent 8, 32, 128 x beta 0.25, 1, 4; Adam 1e-3 with a cosine decay, 6000 steps of batch 128;
  manifold  a 4-sphere in R^32 (standardised, data rank 5, intrinsic dimension 4), Gaussian decoder
            N(f(z), I/2) (squared error), one hidden ReLU layer of 128, latent 8, 32 x beta 0.25, 1, 4,
            the same optimiser;
  linear    the linear VAE of Lucas et al. on digits (depth 0, linear encoder and decoder, Gaussian
            decoder N(f(z), I/2)), latent 16, 64 x beta 0.06, 0.25, 1, 4, trained to convergence: Adam 3e-3
            with a cosine decay, full batch (all 1347 training examples), 12000 steps. Its optimum has a
            closed form (probabilistic PCA with noise variance beta / 2; README, `analyze.py`), and Adam
            3e-2 with minibatches left dozens of collapsed units jittering above the active threshold.
`active_units` counts units with Cov_x E_q[z] > vae.active_threshold = 0.01 on the test set; `analyze.py`
shows each unit's variance and KL beside the count. `:smoke` is the linear VAE at latent 16 x beta
0.25, 1, 4 (full batch, 2000 steps) and the digits VAE (width 64) at latent 16 x beta 0.5, 4 (400 steps).
`:converged` is the digits family at beta 0.25 and 1 (where it had not converged at 6000 cosine steps), seeds
0-2, at a constant Adam 1e-3 for CONVERGED_STEPS (a cosine decay to 0 flattens every curve by construction).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

LATENTS = [8, 32, 128]
MANIFOLD_LATENTS = [8, 32]
BETAS = [0.25, 1.0, 4.0]
LINEAR_LATENTS = [16, 64]
LINEAR_BETAS = [0.06, 0.25, 1.0, 4.0]
SEEDS = [0, 1, 2]
CONVERGED_BETAS = [0.25, 1.0]
CONVERGED_STEPS = 96000  # constant 1e-3 passes regime.converged from ~65k steps (latent 128, beta 0.25 and 1)
ARGS = ("smoke", "converged")
N_TRAIN = 1347  # digits' training examples (test_fraction 0.25): the linear VAE's full batch

DIGITS = {"data.name": "digits", "model.depth": 1, "model.width": 256, "model.output": "sigmoid"}
MANIFOLD = {"data.name": "manifold", "data.scale": "standardize", "model.depth": 1, "model.width": 128,
            "model.output": "linear"}
LINEAR = {"data.name": "digits", "model.depth": 0, "model.activation": "linear", "model.output": "linear",
          "train.learning_rate": 3e-3, "train.steps": 12000, "train.batch_size": N_TRAIN}


def get_config(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    c = config_lib.base_config()
    c.name = "vae"
    c.vae.enabled = True
    c.vae.active_threshold = 0.01  # Burda et al.'s threshold, fixed here (docs/science.md protocol)
    c.data.manifold.kind = "sphere"  # set for every member (digits ignores it)
    c.data.manifold.intrinsic_dim = 4
    c.data.manifold.ambient_dim = 32
    c.model.activation = "relu"
    c.train.steps = 6000
    c.train.batch_size = 128
    c.train.learning_rate = 1e-3
    c.train.schedule = "cosine"
    c.train.log_every = 250
    # One program per latent size: packing latent 2 into a latent-128 program costs 4x its own compute,
    # and on a shared CPU the compute, not the compile, is what takes the time.
    c.train.pack_ratio = 0.0
    c.diagnostics.probe = False  # a linear probe says nothing about active units
    if arg == "converged":
        c.name = "vae_converged"
        c.train.steps = CONVERGED_STEPS
        c.train.schedule = "constant"
        c.train.log_every = 500
    if arg == "smoke":
        c.name = "vae_smoke"
        c.train.steps = 400
        c.train.log_every = 200
        c.diagnostics.jac_points = 20
        c.diagnostics.attractor_points = 20
        c.diagnostics.attractor_iters = 10
        c.diagnostics.ood_samples = 200
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    if arg == "converged":
        return product([DIGITS], sweep("model.code_size", LATENTS), sweep("vae.beta", CONVERGED_BETAS),
                       sweep("seed", SEEDS))
    if arg == "smoke":
        linear = dict(LINEAR, **{"train.steps": 2000, "train.log_every": 100})
        return (product([linear], sweep("model.code_size", [16]), sweep("vae.beta", [0.25, 1.0, 4.0]))
                + product([dict(DIGITS, **{"model.width": 64})], sweep("model.code_size", [16]),
                          sweep("vae.beta", [0.5, 4.0])))
    seeds = sweep("seed", SEEDS)
    return (product([LINEAR], sweep("model.code_size", LINEAR_LATENTS), sweep("vae.beta", LINEAR_BETAS), seeds)
            + product([DIGITS], sweep("model.code_size", LATENTS), sweep("vae.beta", BETAS), seeds)
            + product([MANIFOLD], sweep("model.code_size", MANIFOLD_LATENTS), sweep("vae.beta", BETAS), seeds))
