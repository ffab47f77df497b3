"""python -m ae_jax.sweep --config=configs/fashion_mnist.py[:smoke] --workdir=runs/fashion_mnist

The quickstart's phase diagram on real 784-d images: code size 16 .. 4x the input (3136) x depth 0 .. 3
on Fashion-MNIST's official 60,000 / 10,000 split, three seeds, ReLU MLPs of hidden width 2x the input
(1568, enough to represent the identity exactly). Produces `runs/fashion_mnist/report.md` with the regime
per code size and depth, next to the closed-form PCA control. 96 members of 5000 steps: a GPU job.
`:smoke` trains 2 code sizes x 2 depths on 1000 training images for 200 steps (about a minute of CPU).
Needs the dataset prepared once, offline: `python -m ae_jax.fashion_mnist` (docs/fashion_mnist.md).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep
from ae_jax.errors import ConfigError

D = 28 * 28


def _smoke(arg):
    return "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)


def get_config(arg=None):
    c = config_lib.base_config()
    c.name = "fashion_mnist"
    c.data.name = "fashion_mnist"  # pixels in [0, 1], as TFDS stores them divided by 255
    c.model.activation = "relu"
    c.model.width = 2 * D
    c.train.steps = 5000
    c.train.batch_size = 128
    c.train.learning_rate = 1e-3
    c.train.log_every = 250
    if _smoke(arg):
        c.name = "fashion_mnist_smoke"
        c.data.n_train = 1000
        c.model.width = 256
        c.train.steps = 200
        c.train.batch_size = 64
        c.train.log_every = 100
        c.train.pack_ratio = 2048.0  # codes 32 and 1568 in one program per depth: 2 compilations, not 4
        c.diagnostics.attractor_iters = 20
        c.diagnostics.jac_points = 10
    return c


def get_sweep(arg=None):
    if _smoke(arg):
        return product(sweep("model.code_size", [32, 2 * D]), sweep("model.depth", [0, 1]))
    return product(
        sweep("model.code_size", [16, 32, 64, 128, 256, D, 2 * D, 4 * D]),
        sweep("model.depth", [0, 1, 2, 3]),
        sweep("seed", [0, 1, 2]),
    )
