"""python -m ae_jax.sweep --config=experiments/identity_crisis/config.py --workdir=runs/identity_crisis && python -m experiments.identity_crisis.analyze runs/identity_crisis

Zhang, Bengio, Hardt, Mozer & Singer (ICLR 2020), "Identity Crisis": autoencoders trained on ONE
digit (and on 10 via `data.n_train`: FC at L = 1, 5, 11, CNN at L = 1, 5), fully connected (`mlp`,
width 256) against fully convolutional (`fullconv`: stride-1 3x3 SAME convolutions with 32 channels, no dense layer), with
L = 2 * depth + 1 = 1, 3, ..., 11 layers. The code layer is linear and as wide as the hidden layers,
so it and the next layer compose into one layer: L counts the weight layers of the map, with a ReLU
between consecutive ones (L = 1 is a linear map). Adam 1e-3 with cosine decay, 3000 steps of
batch n_train (sampled with replacement), seeds 0, 1, 2 (the initialisation; the training digits stay the
first n of the split).
The sweep keeps every member's parameters; `analyze.py` loads them back and measures, for unseen test
digits and uniform-noise images, the correlation of the output with the input (identity) and with the
nearest training example (memorisation), the Jacobian gain on the training example's direction and off
it, beside the library's recorded diagnostics and `regime`: `analysis.md`, `identity_crisis.json`,
`figures/identity_crisis_outputs.png`, `figures/identity_crisis_correlation.png`.
`:smoke` is one example, L = 1 and 5, FC and CNN, 800 steps (about 40 s of CPU time, sweep and analysis).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep, zipped

DEPTHS = [0, 1, 2, 3, 5]  # L = 1, 3, 5, 7, 11 layers
# n_train = 10: FC at L = 1, 5, 11, CNN at L = 1, 5 (the 11-layer CNN at batch 10 alone would cost more CPU
# than every other member together)
FEW_DEPTHS = {"mlp": [0, 2, 5], "fullconv": [0, 2]}
N_TRAIN = [10]
SEEDS = [0, 1, 2]
WIDTH = {"mlp": 256, "fullconv": 32}  # hidden units / channels; the code layer has as many


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "identity_crisis"
    c.data.name = "digits"
    c.data.n_train = 1
    c.model.activation = "relu"
    c.model.code_activation = "linear"
    c.model.kernel_size = 3
    c.train.optimizer = "adam"
    c.train.schedule = "cosine"
    c.train.learning_rate = 1e-3
    c.train.steps = 3000
    c.train.batch_size = 1  # full batch: each step sees every training example (sampled with replacement)
    c.train.log_every = 250
    c.train.pack_ratio = 0.0  # every member is its own shape group anyway
    c.diagnostics.jac_points = 20
    c.diagnostics.ood_samples = 500
    c.diagnostics.attractor_iters = 50
    c.diagnostics.probe = False
    if arg == "smoke":
        c.name = "identity_crisis_smoke"
        c.train.steps = 800
        c.diagnostics.attractor_points = 20
        c.diagnostics.ood_samples = 200
    return c


def _kinds(depths):
    """Both model kinds at `depths` (a list, or {kind: list})."""
    per_kind = depths if isinstance(depths, dict) else {kind: depths for kind in WIDTH}
    return [{**d, "model.kind": kind, "model.width": w, "model.code_size": w}
            for kind, w in WIDTH.items() for d in sweep("model.depth", per_kind[kind])]


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    if arg == "smoke":
        return product(sweep("data.n_train", [1]), _kinds([0, 2]))
    one = product(zipped(sweep("data.n_train", [1]), sweep("train.batch_size", [1])), _kinds(DEPTHS),
                  sweep("seed", SEEDS))
    few = product(zipped(sweep("data.n_train", N_TRAIN), sweep("train.batch_size", N_TRAIN)), _kinds(FEW_DEPTHS),
                  sweep("seed", SEEDS))
    return one + few
