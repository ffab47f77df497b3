"""python -m ae_jax.sweep --config=experiments/depth/config.py --workdir=runs/depth && python -m experiments.depth.analyze runs/depth

docs/science.md's depth row: ReLU MLP autoencoders on digits with the code fixed at 64 = D (the code itself is
no bottleneck), depth 1, 2, 4, 6, 8 hidden layers per side and hidden width 16, 64, 256 (a quarter, once
and four times D; width D already suffices to represent the identity on digits' nonnegative pixels, since
relu(x + c) - c passes every x >= -c), two seeds each. Adam 1e-3,
2000 steps of batch 64, no weight decay. A second block trains the same grid on the first 10 training
images only (`data.n_train=10`), where memorisation is the expected outcome. `results.jsonl` records
`steps` and the final loss of every member (training length is a capacity knob); the generic report
draws the depth x width phase diagrams, `analyze.py` the claim's table and figure.
`:long` asks whether depth is only slow optimisation: depth 1, 4, 8 x width 16, 256 on all training images,
one seed, 8000 steps (`python -m ae_jax.sweep --config=experiments/depth/config.py:long --workdir=runs/depth_long`).
`:smoke` is depth 1 and 4 at width 16 and 128 (no n_train block), 400 steps of batch 32, one seed.
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

DEPTHS = [1, 2, 4, 6, 8]
WIDTHS = [16, 64, 256]
SEEDS = [0, 1]
N_TRAIN = [0, 10]  # 0 = all 1347 training images; 10 = the small-n column


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke", "long"), __file__)
    c = config_lib.base_config()
    c.name = "depth"
    c.model.activation = "relu"
    c.model.code_size = 64
    c.train.steps = 2000
    c.train.batch_size = 64
    c.train.learning_rate = 1e-3
    c.train.log_every = 250
    # Power-of-4 buckets keep widths 16, 64 and 256 in separate programs: packing 16 into 256 would cost
    # 16x its compute at depth 8, more than the compilation it saves.
    c.train.pack_ratio = 4.0
    if arg == "long":
        c.name = "depth_long"
        c.train.steps = 8000
        c.train.log_every = 1000
    if arg == "smoke":
        c.name = "depth_smoke"
        c.train.steps = 400
        c.train.log_every = 200
        c.train.batch_size = 32
        c.train.pack_ratio = 128.0  # widths 16 and 128 share one program per depth: half the compilations
        c.diagnostics.attractor_iters = 20
        c.diagnostics.jac_points = 20
        c.diagnostics.probe = False
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke", "long"), __file__)
    if arg == "smoke":
        return product(sweep("model.depth", [1, 4]), sweep("model.width", [16, 128]))
    if arg == "long":
        return product(sweep("model.depth", [1, 4, 8]), sweep("model.width", [16, 256]))
    return product(sweep("data.n_train", N_TRAIN), sweep("model.depth", DEPTHS), sweep("model.width", WIDTHS),
                   sweep("seed", SEEDS))
