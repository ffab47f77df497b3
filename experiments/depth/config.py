"""python -m ae_jax.sweep --config=experiments/depth/config.py --workdir=runs/depth && python -m experiments.depth.analyze runs/depth

docs/science.md's depth row: ReLU MLP autoencoders on digits with the code fixed at 64 = D (the code itself is
no bottleneck), depth 1, 2, 4, 8 hidden layers per side and hidden width 16, 64, 256 (a quarter, once
and four times D), three seeds each. Adam 1e-3, 2000 steps of batch 64, no weight decay. A second block
trains the same grid on the first 10 training images only (`data.n_train=10`), where memorisation is the
expected outcome. `results.jsonl` records `steps`, the final loss and `converged` of every member (training
length is a capacity knob; depth at matched train loss is experiments/failure_cases/); the generic report
draws the depth x width phase diagrams, `analyze.py` the claim's table and figure.
`:smoke` is depth 1 and 4 at width 16 and 128 (no n_train block), 400 steps of batch 32, one seed.
`:converged` is the all-images block (where 4 of 36 nets had converged at 2000 steps, 13 of 24 at 8000) at the
extreme widths 16 and 256, CONVERGED_STEPS at the same constant Adam 1e-3.
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

DEPTHS = [1, 2, 4, 8]
WIDTHS = [16, 64, 256]
SEEDS = [0, 1, 2]
N_TRAIN = [0, 10]  # 0 = all 1347 training images; 10 = the small-n column
CONVERGED_STEPS = 48000  # probes: depth 4 passes regime.converged from ~35k steps; depth 8 width 16 still falls at 48k
ARGS = ("smoke", "converged")


def get_config(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
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
    if arg == "converged":
        c.name = "depth_converged"
        c.train.steps = CONVERGED_STEPS
        c.train.log_every = 500
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
    config_lib.check_arg(arg, ARGS, __file__)
    if arg == "smoke":
        return product(sweep("model.depth", [1, 4]), sweep("model.width", [16, 128]))
    if arg == "converged":
        return product(sweep("model.depth", DEPTHS), sweep("model.width", [WIDTHS[0], WIDTHS[-1]]),
                       sweep("seed", SEEDS))
    return product(sweep("data.n_train", N_TRAIN), sweep("model.depth", DEPTHS), sweep("model.width", WIDTHS),
                   sweep("seed", SEEDS))
