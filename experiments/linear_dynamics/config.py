"""python -m experiments.linear_dynamics.run --config=experiments/linear_dynamics/config.py --workdir=runs/linear_dynamics

Saxe, McClelland & Ganguli (ICLR 2014): an overcomplete linear autoencoder (depth 0, linear, code 128
on 64-d digits, centred by the train mean) started from a small initialisation (the library's init
scaled by `dynamics.init_scale` = 1e-3) and trained by plain full-batch gradient descent (lr 0.05,
3000 steps, three seeds) learns the principal directions one at a time, largest eigenvalue first: the
direction with eigenvalue ev reaches half strength at a step proportional to 1 / ev, so stopping early
keeps only the top directions, like a bottleneck. `run.py` writes `figures/linear_dynamics.png` and
`analysis.md`. `:smoke` runs one seed for 800 steps (seconds).

`dynamics.*` is this experiment's own block: the library's trainer samples minibatches and has no
init scale, so `run.py` has its own gradient-descent loop built from ae_jax.models / objectives.
"""

import ml_collections

from ae_jax import config as config_lib
from ae_jax.config import sweep


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "linear_dynamics"
    c.model.activation = "linear"
    c.model.depth = 0
    c.model.code_size = 128  # 2x the input: no bottleneck but the one training time makes
    c.train.optimizer = "sgd"  # full batch: train.batch_size is not used
    c.train.schedule = "constant"
    c.train.learning_rate = 0.05
    c.train.steps = 3000
    c.train.pack_ratio = 0.0
    c.dynamics = ml_collections.ConfigDict()
    c.dynamics.init_scale = 1e-3  # multiplies every kernel of models.init_params (biases start at 0)
    c.dynamics.center = True  # subtract the train mean (Saxe et al.'s analysis is of the second moment)
    c.dynamics.record_every = 5  # steps between snapshots of the end-to-end map
    c.dynamics.directions = 10  # top principal directions whose half-times are reported
    if arg == "smoke":
        c.name = "linear_dynamics_smoke"
        c.train.steps = 800
        c.dynamics.directions = 4
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    return sweep("seed", [0] if arg == "smoke" else [0, 1, 2])
