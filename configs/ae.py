"""python -m ae_jax.sweep --config=configs/ae.py[:smoke] --workdir=runs/ae

One plain autoencoder (64-32-64 ReLU on sklearn's digits) and its identity diagnostics; every key of
`ae_jax.config.base_config` can be overridden, e.g. `--config.model.code_size=8`.
"""

from ae_jax import config as config_lib


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "ae"
    if smoke:
        c.train.steps = 200
        c.train.log_every = 50
        c.diagnostics.attractor_iters = 20
    return c
