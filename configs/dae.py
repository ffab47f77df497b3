"""python -m ae_jax.sweep --config=configs/dae.py --workdir=runs/dae

Denoising autoencoders (Vincent et al. 2008): a 4x overcomplete ReLU AE (64-256-64) on digits, trained
on corrupted inputs against the clean ones, swept over the noise level; level 0 is the plain AE the others
are read against. Expect `jac_rank` to fall from about 55 (identity-like) to about 15 of 61 at s = 0.2 and
`denoise_gain` to drop below the plain AE's. Other corruptions: `--config.noise.kind=mask` (drop fraction)
or `salt_pepper` (fraction set to the train min/max of their pixel). Variants compose: add
`--config.sparsity.kind=l1` for a denoising sparse AE (weight `sparsity.weight`, preset here to 0.01).
`:smoke` trains the plain AE and one DAE for a few hundred steps (seconds).
"""

from ae_jax import config as config_lib
from ae_jax.config import sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "dae"
    c.model.code_size = 256
    c.model.depth = 0
    c.model.activation = "relu"
    c.noise.kind = "gaussian"
    c.noise.level = 0.2
    c.sparsity.weight = 0.01  # acts only with --config.sparsity.kind=l1 (a denoising sparse AE)
    c.train.steps = 4000
    c.train.log_every = 250
    if smoke:
        c.name = "dae_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    levels = [0.0, 0.2] if smoke else [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    return sweep("noise.level", levels)
