"""python -m ae_jax.sweep --config=experiments/linear_dynamics/config.py --workdir=runs/linear_dynamics && python -m experiments.linear_dynamics.analyze runs/linear_dynamics

Saxe, McClelland & Ganguli (ICLR 2014): an overcomplete linear autoencoder (depth 0, linear, code 128
on 64-d digits centred by the train mean) started from a small initialisation (the library's init with
every kernel scaled by `dynamics.init_scale` = 1e-3) and trained by plain gradient descent (SGD, lr 0.05,
constant, batches of the whole training-set size, three seeds) learns the principal directions one at a
time, largest eigenvalue first: the direction with eigenvalue ev reaches half strength at a step
proportional to 1 / ev, so stopping early keeps only the top directions, like a bottleneck.

Snapshots over training time are members: `train.steps` is a sweep axis, and with a constant learning
rate a member trained t steps is the first t steps of the longest run with its seed (training is
deterministic per step). `analyze.py` reads each snapshot's map W_enc W_dec from the finished workdir
and writes `figures/linear_dynamics.png` and `analysis.md`. The centred data and the small init are
plug-ins registered by `variant.py`. `:smoke` runs one seed, 5 snapshots up to step 300, and follows
the top 4 directions (seconds of training; most of its time is one compilation per snapshot).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep
from experiments.linear_dynamics import variant

# About 20% apart: at least one snapshot inside each of the top ten directions' switch (the logistic's
# rise from 0.05 to 0.95 lasts 5.9 / (4 lr ev) steps: 41 for the first, 207 for the tenth).
SNAPSHOTS = [30, 50, 70, 85, 100, 120, 145, 175, 210, 250, 300, 360, 430, 520, 620, 750, 900, 1100, 1300, 1600,
             2000, 2500, 3000]
SMOKE_SNAPSHOTS = [95, 125, 160, 200, 300]  # brackets the top four switches; all four are done by 300


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "linear_dynamics"
    c.data.name = variant.DATASET
    c.model.activation = "linear"
    c.model.depth = 0
    c.model.code_size = 128  # 2x the input: no bottleneck but the one training time makes
    c.dynamics.init_scale = 1e-3
    c.train.optimizer = "sgd"
    c.train.schedule = "constant"  # so a shorter member is a prefix of a longer one
    c.train.learning_rate = 0.05
    c.train.batch_size = 1347  # the training-set size: close to full-batch gradient descent (README)
    c.train.steps = max(SNAPSHOTS)
    c.train.log_every = 5  # every snapshot is a multiple: no step is computed past a member's end
    c.train.pack_ratio = 0.0
    c.diagnostics.probe = False  # not part of this claim, and it would run at every snapshot
    c.dynamics.directions = 10  # top principal directions whose half times are reported
    if arg == "smoke":
        c.name = "linear_dynamics_smoke"
        c.train.steps = max(SMOKE_SNAPSHOTS)
        c.diagnostics.jac_points = 10
        c.diagnostics.attractor_iters = 10
        c.dynamics.directions = 4
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    steps = SMOKE_SNAPSHOTS if arg == "smoke" else SNAPSHOTS
    return product(sweep("train.steps", steps), sweep("seed", [0] if arg == "smoke" else [0, 1, 2]))
