"""python -m ae_jax.sweep --config=experiments/failure_cases/config.py --workdir=runs/failure_cases && python -m experiments.failure_cases.analyze runs/failure_cases

Goodfellow et al. (Deep Learning, ch. 14.1), each of the seed's failure cases as its own number on digits
(D = 64, data rank r = 61), three seeds everywhere, no weight decay, constant learning rate (so a member
trained t steps is the first t steps of the longer member with its seed: `train.steps` is a snapshot axis).
Every member carries `failure.part`, which `analyze.py` splits on:

- `linear`: "even a linear autoencoder with code = D or code > D copies": linear depth-0 AEs, code 64 and
  128, Adam at three learning rates, snapshots at 1k, 4k and 16k steps.
- `length`: "code = D copies", ReLU: depth-0 ReLU AE with code 64 (the overcomplete experiment's net,
  Adam 2e-3, batch 64) trained 1.5k to 24k steps, and at Adam 5e-4 and 1e-2 for 6k and 24k steps.
- `depth`: "too much encoder/decoder capacity copies": ReLU MLPs (`mlp`) and residual MLPs (`resmlp_ln`,
  registered by `variant.py`: skip connections and layer norm) of depth 1, 2, 4, 8 at width 128, code 64,
  snapshots at 200, 500, 1200, 3000 and 6000 steps, and (`:early`) 50 and 100 steps, since shallow nets
  pass the matched loss before 200 steps; `analyze.py` compares depths at matched train loss (per net
  and seed the snapshot closest to a common target).

`:linear`, `:length`, `:depth`, `:early` run one part each (the same members as the full sweep, each in
its own workdir; `analyze.py` takes several); `:smoke` runs 4 small groups, one or two per part (about
a minute on two idle cores).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep
from experiments.failure_cases import variant

PARTS = ("linear", "length", "depth", "early")
SEEDS = [0, 1, 2]

LINEAR_CODES = [64, 128]
LINEAR_LRS = [1e-3, 3e-3, 1e-2]
LINEAR_STEPS = [1000, 4000, 16000]
LENGTH_STEPS = [1500, 3000, 6000, 12000, 24000]
LENGTH_LRS = [5e-4, 1e-2]  # the learning-rate check, at two of the lengths
LENGTH_LR_STEPS = [6000, 24000]
DEPTHS = [1, 2, 4, 8]
DEPTH_KINDS = ["mlp", variant.KINDS[1]]
DEPTH_WIDTH = 128
DEPTH_STEPS = [200, 500, 1200, 3000, 6000]
DEPTH_EARLY = [50, 100]  # `:early`: shallow nets pass the matched loss before 200 steps


def get_config(arg=None):
    parts = config_lib.check_arg(arg, PARTS + ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "failure_cases"
    c.model.code_size = 64
    c.model.depth = 0
    c.model.width = 128
    c.model.activation = "relu"
    c.train.optimizer = "adam"
    c.train.schedule = "constant"  # snapshots: a shorter member is the start of a longer one
    c.train.batch_size = 64
    c.train.learning_rate = 2e-3
    c.train.weight_decay = 0.0
    c.train.log_every = 50
    c.train.pack_ratio = 0.0  # codes 64 and 128 would share a program, but each steps value is a group anyway
    c.diagnostics.probe = False  # no claim here is about the codes' linear separability
    if "smoke" in parts:
        c.name = "failure_cases_smoke"
        c.diagnostics.jac_points = 20
        c.diagnostics.attractor_iters = 20
        c.diagnostics.ood_samples = 200
    return c


def _part(name, *axes):
    return product(sweep("failure.part", [name]), *axes, sweep("seed", SEEDS))


def linear(smoke=False):
    if smoke:
        return _part("linear", sweep("model.activation", ["linear"]), sweep("model.code_size", [64]),
                     sweep("train.learning_rate", [1e-2]), sweep("train.steps", [400]))
    return _part("linear", sweep("model.activation", ["linear"]), sweep("model.code_size", LINEAR_CODES),
                 sweep("train.learning_rate", LINEAR_LRS), sweep("train.steps", LINEAR_STEPS))


def length(smoke=False):
    if smoke:
        return _part("length", sweep("train.steps", [300]))
    return (_part("length", sweep("train.learning_rate", [2e-3]), sweep("train.steps", LENGTH_STEPS))
            + _part("length", sweep("train.learning_rate", LENGTH_LRS), sweep("train.steps", LENGTH_LR_STEPS)))


def early(smoke=False):
    """More `depth` members: the same nets' first 50 and 100 steps."""
    return _part("depth", sweep("model.kind", DEPTH_KINDS), sweep("model.depth", DEPTHS),
                 sweep("model.width", [DEPTH_WIDTH]), sweep("train.steps", DEPTH_EARLY))


def depth(smoke=False):
    if smoke:
        return _part("depth", sweep("model.kind", DEPTH_KINDS), sweep("model.depth", [2]),
                     sweep("model.width", [32]), sweep("train.steps", [200]))
    return _part("depth", sweep("model.kind", DEPTH_KINDS), sweep("model.depth", DEPTHS),
                 sweep("model.width", [DEPTH_WIDTH]), sweep("train.steps", DEPTH_STEPS))


def get_sweep(arg=None):
    parts = config_lib.check_arg(arg, PARTS + ("smoke",), __file__)
    smoke = "smoke" in parts
    chosen = [p for p in parts if p != "smoke"] or [p for p in PARTS if not (smoke and p == "early")]
    parts_of = {"linear": linear, "length": length, "depth": depth, "early": early}
    return [m for p in chosen for m in parts_of[p](smoke)]
