"""python -m ae_jax.sweep --config=experiments/linear_pca/config.py --workdir=runs/linear_pca && python -m experiments.linear_pca.analyze runs/linear_pca

Baldi & Hornik (1989): a linear autoencoder (depth 0, linear activation) with code size k below the
input dimension, trained to convergence, reaches the PCA-k error. Code sizes 2..48 on digits (D = 64)
and 1..16 on a noisy 8-dimensional linear subspace of R^32 (`manifold`, kind linear), three seeds,
Adam 1e-2 with a cosine decay to 0 over 8000 steps of batch 256. `analyze.py` writes the table
k / test_mse / pca_mse (and docs/science.md's digits numbers) and `figures/linear_pca.png`.
`:smoke` trains 2 code sizes per dataset for 1500 steps, one seed (about 20 s on 2 cores).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

CODES = {"digits": [2, 4, 8, 16, 32, 48], "manifold": [1, 2, 4, 6, 8, 12, 16]}
SMOKE_CODES = {"digits": [8, 16], "manifold": [2, 4]}  # one packed program per dataset


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "linear_pca"
    # Set for every member (digits ignores it), so only data.name splits the generic report's figures.
    c.data.manifold.kind = "linear"
    c.data.manifold.intrinsic_dim = 8
    c.data.manifold.ambient_dim = 32
    c.data.manifold.noise = 0.05
    c.model.activation = "linear"
    c.model.depth = 0
    c.train.optimizer = "adam"
    c.train.schedule = "cosine"
    c.train.learning_rate = 1e-2
    c.train.batch_size = 256
    c.train.steps = 8000
    c.train.log_every = 500
    if arg == "smoke":
        c.name = "linear_pca_smoke"
        c.train.steps = 1500
        c.train.log_every = 500
        c.diagnostics.attractor_iters = 10
        c.diagnostics.jac_points = 10
        c.diagnostics.probe = False
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    codes = SMOKE_CODES if arg == "smoke" else CODES
    seeds = [0] if arg == "smoke" else [0, 1, 2]
    members = []
    for data in ("digits", "manifold"):
        members += product(sweep("data.name", [data]), sweep("model.code_size", codes[data]), sweep("seed", seeds))
    return members
