"""python -m experiments.linear_decay.run --config=experiments/linear_decay/config.py --workdir=runs/linear_decay

Kunin, Bloom, Goeva & Seed (ICML 2019): an overcomplete linear autoencoder (depth 0, linear, code 128
on 64-d digits) with L2 weight decay lambda learns PCA with each principal direction kept at weight
(1 - lambda / eigenvalue)_+, where, for this library's loss (per-example sum of squares averaged over
the batch + lambda * (||W_enc||^2 + ||W_dec||^2), biases free), the eigenvalues are those of the
train covariance normalised by N (see the README for the derivation). `run.py` trains the four
lambdas as one vmapped program with `ae_jax.train.fit` (Adam 1e-2, cosine decay, 8000 steps of batch
256), then compares the singular values of W_enc W_dec with the closed form: `figures/linear_decay.png`
and `analysis.md`. `:smoke` runs two lambdas for 1500 steps (seconds).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

LAMBDAS = [0.01, 0.03, 0.1, 0.3]


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
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    lambdas = [0.05, 0.2] if arg == "smoke" else LAMBDAS
    return product(sweep("train.weight_decay", lambdas), sweep("seed", [0]))
