"""python -m ae_jax.sweep --config=configs/cae.py --workdir=runs/cae

Contractive autoencoders (Rifai et al. 2011): a 4x overcomplete ReLU AE (64-256-64) on digits with the
squared Frobenius norm of the encoder Jacobian as a penalty (exact, one forward pass at depth 0), swept over
its weight; weight 0 is the plain AE. Expect `jac_trace` of the whole map to fall from about 0.9 to about
0.4 at weight 0.1 (the penalty is on the encoder only; the diagnostics measure the whole map, so a decoder
undoing the contraction would show). `:smoke` trains the plain AE and one CAE in seconds.
"""

from ae_jax import config as config_lib
from ae_jax.config import sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "cae"
    c.model.code_size = 256
    c.model.depth = 0
    c.model.activation = "relu"
    c.contractive.weight = 0.1
    c.train.steps = 4000
    c.train.log_every = 250
    if smoke:
        c.name = "cae_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    weights = [0.0, 0.1] if smoke else [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
    return sweep("contractive.weight", weights)
