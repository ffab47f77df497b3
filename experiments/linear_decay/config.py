"""python -m ae_jax.sweep --config=experiments/linear_decay/config.py --workdir=runs/linear_decay && python -m experiments.linear_decay.analyze runs/linear_decay

Kunin, Bloom, Goeva & Seed (ICML 2019): an overcomplete linear autoencoder (depth 0, linear, code 128
on 64-d digits) with L2 weight decay lambda learns PCA with each principal direction kept at weight
(1 - lambda / eigenvalue)_+, where, for this library's loss (per-example sum of squares averaged over
the batch + lambda * (||W_enc||^2 + ||W_dec||^2), biases free), the eigenvalues are those of the
train covariance normalised by N (see the README for the derivation). The sweep trains the four
lambdas x seeds 0, 1, 2 as one vmapped program (Adam 1e-2, cosine decay, 8000 steps of batch 256); `analyze.py`
compares the singular values of W_enc W_dec with the closed form: `figures/linear_decay.png` and
`analysis.md`. `:smoke` runs two lambdas for 1500 steps with lighter diagnostics (seconds).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

LAMBDAS = [0.01, 0.03, 0.1, 0.3]
SMOKE_LAMBDAS = [0.05, 0.2]
SEEDS = [0, 1, 2]


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "linear_decay"
    c.model.activation = "linear"
    c.model.depth = 0
    c.model.code_size = 128  # 2x the input: the code does not bottleneck, only the decay does
    c.train.optimizer = "adam"
    c.train.schedule = "cosine"
    c.train.learning_rate = 1e-2
    c.train.batch_size = 256
    c.train.steps = 8000
    c.train.log_every = 500
    if arg == "smoke":
        c.name = "linear_decay_smoke"
        c.train.steps = 1500
        c.diagnostics.jac_points = 10
        c.diagnostics.attractor_iters = 10
        c.diagnostics.probe = False
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    lambdas = SMOKE_LAMBDAS if arg == "smoke" else LAMBDAS
    return product(sweep("train.weight_decay", lambdas), sweep("seed", [0] if arg == "smoke" else SEEDS))
