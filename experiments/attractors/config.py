"""python -m ae_jax.sweep --config=experiments/attractors/config.py --workdir=runs/attractors && python -m experiments.attractors.analyze runs/attractors

Radhakrishnan, Belkin & Uhler (PNAS 2020), "Overparameterized neural networks implement associative
memory": a wide, deep fully connected autoencoder trained to (near) zero loss on a few images stores
them as attractors of the map f: the Jacobian of f at each training image has spectral radius below 1,
and iterating f from a corrupted image carries it back to the training image. The paper's regime is n
much smaller than D: here the first 1 or 10 training digits (8x8, D = 64) and the first 10 or 30
Fashion-MNIST images (28x28, D = 784), leaky-ReLU MLPs (every layer but the output) with hidden layers
as wide as the code, 512: depth 1 or 2 hidden layers per side plus the code layer on digits (4 or 6
weight layers), depth 2 on Fashion-MNIST (the paper's nets are wider and deeper, scaled down for a
CPU). Adam 1e-3 with cosine decay, 3000 steps of batch n_train (sampled with replacement), seeds 0, 1, 2. The sweep keeps every member's parameters;
`analyze.py` loads them back, measures the spectral radius at every training image, iterates f from
Gaussian-noised and pixel-masked training images (the `attractors` block below), and compares with the
library's recorded `attractor_fraction` and `regime`: `analysis.md`, `attractors.json`,
`figures/attractors_iterations.png`, `figures/attractors_summary.png`.
`:smoke` is n_train 1 and 10, depth 1, width 256, 1500 steps (about 25 s of CPU time, sweep and analysis).
"""

import ml_collections

from ae_jax import config as config_lib
from ae_jax.config import product, sweep, zipped

N_TRAIN = [1, 10]  # digits, D = 64
FASHION_N_TRAIN = [10, 30]  # Fashion-MNIST, D = 784: n << D
DEPTHS = [1, 2]
WIDTH = 512
SEEDS = [0, 1, 2]


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "attractors"
    c.data.name = "digits"
    c.model.activation = "leaky_relu"  # the code layer too (code_activation "" = same)
    c.train.optimizer = "adam"
    c.train.schedule = "cosine"
    c.train.learning_rate = 1e-3
    c.train.steps = 3000
    c.train.log_every = 250
    c.train.pack_ratio = 4.0
    c.diagnostics.jac_points = 20
    c.diagnostics.ood_samples = 500
    c.diagnostics.probe = False
    # What analyze.py iterates from: each of the first `points` training images corrupted `repeats` times
    # per level (the spectral radius is measured at every training image). The sweep does not read this
    # block; it travels in every member's recorded config, where the analysis finds it.
    c.attractors = ml_collections.ConfigDict()
    c.attractors.gaussian = (0.1, 0.2, 0.4)  # noise std per pixel (pixels are in [0, 1])
    c.attractors.mask = (0.25, 0.5)  # fraction of pixels set to 0
    c.attractors.repeats = 3
    c.attractors.points = 50
    c.attractors.iters = 300
    c.attractors.tolerance = 0.05  # recovered: |f^T(z) - x_i| <= tolerance * |x_i|, x_i the source image
    if arg == "smoke":
        c.name = "attractors_smoke"
        c.train.steps = 1500
        c.attractors.gaussian = (0.1, 0.4)
        c.attractors.mask = (0.25,)
        c.attractors.repeats = 3
        c.attractors.iters = 100
        c.diagnostics.attractor_points = 20
        c.diagnostics.attractor_iters = 50
        c.diagnostics.ood_samples = 200
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    if arg == "smoke":
        return product(zipped(sweep("data.n_train", [1, 10]), sweep("train.batch_size", [1, 10])),
                       sweep("model.depth", [1]), zipped(sweep("model.width", [256]), sweep("model.code_size", [256])))
    net = [{"model.width": WIDTH, "model.code_size": WIDTH}]
    digits = product(sweep("data.name", ["digits"]),
                     zipped(sweep("data.n_train", N_TRAIN), sweep("train.batch_size", N_TRAIN)),
                     sweep("model.depth", DEPTHS), net, sweep("seed", SEEDS))
    fashion = product(sweep("data.name", ["fashion_mnist"]),
                      zipped(sweep("data.n_train", FASHION_N_TRAIN), sweep("train.batch_size", FASHION_N_TRAIN)),
                      sweep("model.depth", [2]), net, sweep("seed", SEEDS))
    return fashion + digits  # the n << D block first: it is the one the paper describes
