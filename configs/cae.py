"""python -m ae_jax.sweep --config=configs/cae.py --workdir=runs/cae

Contractive autoencoders as Rifai et al. 2011 built them: a 4x overcomplete AE (64-256-64) on digits with
a sigmoid encoder and tied weights (decoder weight = encoder weight transposed, `model.tied`), trained
with the squared Frobenius norm of the encoder Jacobian as a penalty (exact, one forward pass at depth 0),
swept over its weight; weight 0 is the plain tied AE. Tied is the default because an untied decoder lets
the penalty be met by scale: with a free decoder the encoder shrinks and the decoder grows, the penalty
falls about 190x at weight 0.1 while the whole map's Jacobian barely moves (experiments/contractive).
Tied, the two norms are one. Expect (experiments/contractive, 3 seeds, same training) the whole map's
`jac_rank` to fall from 61 at weight 0 to about 50 at 0.01, 28.5 at 0.1 and 6.5 at 1, and `jac_trace`
from 0.97 to 0.44 at 0.1. `--config.model.tied=False --config.model.activation=relu` is the untied
ReLU CAE. `:smoke` trains the plain AE and one CAE in seconds.
"""

from ae_jax import config as config_lib
from ae_jax.config import sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "cae"
    c.model.code_size = 256
    c.model.depth = 0
    c.model.activation = "sigmoid"
    c.model.tied = True
    c.contractive.weight = 0.1
    c.train.steps = 6000
    c.train.learning_rate = 3e-3
    c.train.schedule = "cosine"
    c.train.log_every = 200
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
