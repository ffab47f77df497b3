"""python -m ae_jax.sweep --config=experiments/overcomplete/config.py --workdir=runs/overcomplete && python -m experiments.overcomplete.analyze runs/overcomplete

The README's headline figure as a paper-style ablation: ReLU MLP autoencoders whose code grows from far
below the input dimension D to 8x it (digits, D = 64: code 2 .. 512; a 4-sphere in R^32 (`manifold`,
data rank 5): code 1 .. 256), depth 0 .. 4 hidden layers per side of width 128, three seeds each.
Adam 2e-3, batch 64, 1500 steps; depth 0 on digits (the claim's one-hidden-layer net) also at 6000 steps, the
training-budget control. The sweep's generic report draws the phase diagrams (regime, jac_rank / r,
ood_fidelity, test_mse / PCA-k, ...) split by dataset and steps; `analyze.py` adds the claim's table
and `figures/overcomplete_lines.png`.
`:smoke` is code 8 and 256 x depth 0, 1 at width 64 on digits for 300 steps (under a minute).
`:deep` is the depth control on digits: depth 0 .. 4, every code, three seeds, DEEP_STEPS steps (the
deeper nets had mostly not converged at 1500).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

CODES = {"digits": [2, 8, 32, 64, 128, 256, 512], "manifold": [1, 4, 16, 32, 64, 128, 256]}
DEPTHS = [1, 2, 3, 4]
WIDTH = 128
SEEDS = [0, 1, 2]
STEPS = {"digits": [1500, 6000], "manifold": [1500]}  # the claim's depth 0 also at 4x the budget
DEEP_STEPS = 16000
ARGS = ("smoke", "deep")


def get_config(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    c = config_lib.base_config()
    c.name = "overcomplete"
    c.data.manifold.kind = "sphere"  # set for every member (digits ignores it): figures split by data.name only
    c.data.manifold.intrinsic_dim = 4
    c.data.manifold.ambient_dim = 32
    c.model.activation = "relu"
    c.train.steps = 1500
    c.train.batch_size = 64
    c.train.learning_rate = 2e-3
    c.train.log_every = 100  # 15+ points per curve for the convergence test
    # Codes 32..256 share one masked program per depth and budget, at the price of computing every member
    # at its group's largest code.
    c.train.pack_ratio = 16.0
    if arg == "smoke":
        c.name = "overcomplete_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.train.pack_ratio = 256.0  # codes 8 and 256 in one program per depth
        c.diagnostics.attractor_iters = 20
        c.diagnostics.jac_points = 20
    if arg == "deep":
        c.name = "overcomplete_deep"
        c.train.steps = DEEP_STEPS
        c.train.log_every = 400  # 40 points per curve
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    if arg == "smoke":
        return product(sweep("data.name", ["digits"]), sweep("model.code_size", [8, 256]),
                       sweep("model.depth", [0, 1]), sweep("model.width", [64]))
    if arg == "deep":
        return product(sweep("data.name", ["digits"]), sweep("model.code_size", CODES["digits"]),
                       sweep("model.depth", [0] + DEPTHS), sweep("model.width", [WIDTH]), sweep("seed", SEEDS))
    members = []
    for data in ("digits", "manifold"):
        members += product(sweep("data.name", [data]), sweep("model.code_size", CODES[data]),
                           sweep("model.depth", [0]), sweep("model.width", [WIDTH]),
                           sweep("train.steps", STEPS[data]), sweep("seed", SEEDS))
        members += product(sweep("data.name", [data]), sweep("model.code_size", CODES[data]),
                           sweep("model.depth", DEPTHS), sweep("model.width", [WIDTH]),
                           sweep("train.steps", [1500]), sweep("seed", SEEDS))
    return members
