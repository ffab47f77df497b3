"""python -m ae_jax.sweep --config=configs/quickstart.py[:smoke] --workdir=runs/quickstart

The README's main job: code size (2 .. 4x the input) x depth (0 .. 3) on digits, three seeds.
Produces `runs/quickstart/report.md` with the phase diagram: where the autoencoder turns into the
identity (overcomplete, shallow), where it is PCA-like (small codes), and what depth does.
`:smoke` runs 2 code sizes x 2 depths x 1 seed for a few hundred steps (under a minute).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "quickstart"
    c.data.name = "digits"
    c.model.activation = "relu"
    c.model.width = 128  # 2x the input
    c.train.steps = 2000
    c.train.batch_size = 64
    c.train.learning_rate = 2e-3
    c.train.log_every = 50  # 40 points a curve: smooth in W&B, enough for the convergence test
    if smoke:
        c.name = "quickstart_smoke"
        c.train.steps = 300
        c.train.log_every = 50
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    if smoke:
        return product(sweep("model.code_size", [8, 128]), sweep("model.depth", [0, 1]))
    return product(
        sweep("model.code_size", [2, 4, 8, 16, 32, 64, 128, 256]),
        sweep("model.depth", [0, 1, 2, 3]),
        sweep("seed", [0, 1, 2]),
    )
