"""python -m ae_jax.sweep --config=configs/sae.py[:l1|kl|topk][,smoke] --workdir=runs/sae

Sparse autoencoders on digits, 4x overcomplete (64-256-64), one sparsity kind per run:
  l1    (default) weight x sum |code| on ReLU codes, swept over the weight (0 = the plain AE);
  kl    Ng's CS294A penalty: KL(rho || mean activation) per unit on sigmoid codes, rho = sparsity.target
        (0.05), swept over the weight;
  topk  Makhzani & Frey 2014 with Gao et al. 2024's dead-unit auxiliary loss (sparsity.aux_k) and
        tied (encoder = decoder transpose) initialisation, swept over k (each k is its own program).
Expect `l0` (active units per example; for sigmoid codes, units above 1/2) far below 256 and falling with
the weight, `code_mean` near rho for kl, `l0` <= k and `jac_rank` <= k for topk. `smoke` (e.g.
`:topk,smoke`) trains two members for a few hundred steps (seconds).
"""

from ae_jax import config as config_lib
from ae_jax.config import sweep

KINDS = ("l1", "kl", "topk")


def _parse(arg):
    parts = config_lib.check_arg(arg, KINDS + ("smoke",), __file__)
    kinds = [p for p in parts if p in KINDS]
    return (kinds[-1] if kinds else "l1"), "smoke" in parts


def get_config(arg=None):
    kind, smoke = _parse(arg)
    c = config_lib.base_config()
    c.name = f"sae_{kind}"
    c.model.code_size = 256
    c.model.depth = 0
    c.model.activation = "relu"
    c.sparsity.kind = kind
    if kind == "l1":
        c.sparsity.weight = 0.03
    elif kind == "kl":
        c.model.code_activation = "sigmoid"
        c.sparsity.weight = 1.0
        c.sparsity.target = 0.05
    else:
        c.sparsity.k = 16
        c.sparsity.aux_k = 32
        c.sparsity.dead_steps = 200
    c.train.steps = 4000
    c.train.log_every = 250
    if smoke:
        c.name += "_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    kind, smoke = _parse(arg)
    if kind == "topk":
        return sweep("sparsity.k", [8, 32] if smoke else [4, 8, 16, 32, 64])
    if kind == "kl":
        return sweep("sparsity.weight", [0.0, 1.0] if smoke else [0.0, 0.1, 0.3, 1.0, 3.0])
    return sweep("sparsity.weight", [0.0, 0.03] if smoke else [0.0, 0.003, 0.01, 0.03, 0.1])
