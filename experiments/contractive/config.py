"""python -m ae_jax.sweep --config=experiments/contractive/config.py --workdir=runs/contractive && python -m experiments.contractive.analyze runs/contractive

Contractive autoencoders as Rifai et al. 2011 built them, beside the untied ReLU CAE of `configs/cae.py`
and the whole-map penalty (Alain & Bengio 2014), at code 4x on digits (64-256-64, depth 0):
  tied_sigmoid    sigmoid encoder, decoder weight = encoder weight transposed (`model.tied`), penalty
                  ||J_encoder||_F^2 weighted by `contractive.weight` (Rifai et al.'s setup);
  untied_relu     ReLU encoder, free decoder, the same penalty (what `configs/cae.py` trained before);
  map             ReLU encoder, free decoder, ||J_f||_F^2 of the whole map, weighted by `penalty.map_contractive`.
Each at weights 0 (the plain AE of that architecture), 0.01, 0.1, 1, seeds 0-2. Adam 3e-3 with a cosine
decay, 6000 steps of batch 128, linear output (squared error) for every arm, so the losses compare.
`analyze.py` adds what `results.jsonl` lacks: encoder and decoder weight norms and the whole map's
Jacobian singular values on the data span. `:smoke` runs the three arms at weight 0.1 and the two weight-0
baselines, one seed, 800 steps. `:converged` is the convergence run: the same 33 members at a constant Adam
3e-3 for CONVERGED_STEPS (a cosine decay to 0 flattens every curve by construction, docs/regime.md);
`:converged,tied` is its tied sigmoid arm alone (for a longer run, `--config.train.steps`).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

WEIGHTS = [0.0, 0.01, 0.1, 1.0]
SEEDS = [0, 1, 2]
CONVERGED_STEPS = 24000
ARGS = ("smoke", "converged", "tied")
ARMS = {
    "tied_sigmoid": ({"model.tied": True, "model.activation": "sigmoid"}, "contractive.weight"),
    "untied_relu": ({"model.tied": False, "model.activation": "relu"}, "contractive.weight"),
    "map": ({"model.tied": False, "model.activation": "relu"}, "penalty.map_contractive"),
}


def arm_of(c: dict) -> str:
    """Which arm a member's flat config belongs to (weight-0 members: by architecture)."""
    if c.get("penalty.map_contractive", 0.0) > 0:
        return "map"
    return "tied_sigmoid" if c["model.tied"] else "untied_relu"


def weight_of(c: dict) -> float:
    return c.get("penalty.map_contractive", 0.0) or c["contractive.weight"]


def get_config(arg=None):
    parts = config_lib.check_arg(arg, ARGS, __file__)
    smoke = "smoke" in parts
    c = config_lib.base_config()
    c.name = "contractive"
    c.data.name = "digits"
    c.model.code_size = 256  # 4x the 64 input pixels
    c.model.depth = 0
    c.model.output = "linear"
    c.train.steps = 6000
    c.train.batch_size = 128
    c.train.learning_rate = 3e-3
    c.train.schedule = "cosine"
    c.train.log_every = 200
    c.diagnostics.probe = False  # the question is the map's Jacobian, not the code's linear separability
    if "converged" in parts:
        c.name = "contractive_converged"
        c.train.steps = CONVERGED_STEPS
        c.train.schedule = "constant"
        c.train.log_every = 500
    if smoke:
        c.name = "contractive_smoke"
        c.train.steps = 800
        c.train.log_every = 100
        c.diagnostics.jac_points = 20
        c.diagnostics.attractor_points = 20
        c.diagnostics.attractor_iters = 10
        c.diagnostics.ood_samples = 200
    return c


def get_sweep(arg=None):
    parts = config_lib.check_arg(arg, ARGS, __file__)
    smoke = "smoke" in parts
    weights, seeds = ([0.0, 0.1], [0]) if smoke else (WEIGHTS, SEEDS)
    members = []
    for name, (arch, key) in ARMS.items():
        if "tied" in parts and name != "tied_sigmoid":
            continue
        # the map arm's weight 0 is the untied ReLU arm's: train it once
        ws = [w for w in weights if w > 0] if name == "map" else weights
        members += product([arch], sweep(key, ws), sweep("seed", seeds))
    return members
