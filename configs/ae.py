"""One plain autoencoder; every key of `ae_jax.config.base_config` can be overridden.

    python -m ae_jax.sweep --config=configs/ae.py --workdir=runs/ae
    python -m ae_jax.sweep --config=configs/ae.py:smoke --config.model.code_size=8 --workdir=runs/ae_smoke

Trains a 64-32-64 ReLU autoencoder on sklearn's digits and writes its identity diagnostics.
"""

from ae_jax import config as config_lib


def get_config(arg=None):
    c = config_lib.base_config()
    c.name = "ae"
    if arg == "smoke":
        c.train.steps = 200
        c.train.log_every = 50
        c.diagnostics.attractor_iters = 20
    return c
