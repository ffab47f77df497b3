"""python -m ae_jax.sweep --config=experiments/regularisers/config.py --workdir=runs/regularisers && python -m experiments.regularisers.analyze runs/regularisers

Each regulariser pulls a 4x overcomplete autoencoder off the identity (Vincent et al. 2008/2010;
Rifai et al. 2011; Ng CS294A; Makhzani & Frey 2014; Gao et al. 2024). One-hidden-layer ReLU AEs
(depth 0: code = ReLU(W x + b)) with code 4x the input. The default sweep is digits (D = 64, code 256):
the plain AE and each regulariser at three or four strengths, three seeds for every member: Gaussian
noise (std; four, for the Wiener comparison), masking noise (drop fraction), L1 on the code, Ng's KL
sparsity on sigmoid codes (with its own weight-0 sigmoid AE as the reference), top-k (k) and the
contractive penalty. Adam 1e-3, batch 128, 6000 steps. `:manifold` is the same on `manifold` (a
4-sphere in R^32, data rank 5, code 128) with stronger L1, KL and contractive weights
(MANIFOLD_STRENGTHS). `analyze.py` writes the per-regulariser tables and the Wiener-filter reference.
`:long` is the training-budget control: the strongest setting of each regulariser (top-k: the smallest k)
and the Gaussian DAE at s = 0.2 on digits, three seeds, twice as long (12000 steps).
`:converged` is the convergence run: the plain AE, the KL reference and one strength per regulariser
(CONVERGED_STRENGTHS) on digits, three seeds, CONVERGED_STEPS at the same constant Adam 1e-3 (a cosine
decay to 0 would flatten every curve by construction, docs/regime.md); `:manifold,converged` is the whole
`:manifold` series (every strength) for CONVERGED_STEPS.
`:smoke` is plain, Gaussian 0.2 and top-k 8 on digits for 400 steps, one seed (seconds).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

CODE = {"digits": 256, "manifold": 128}  # 4x the input dimension (64 and 32)
# (config key, strengths); the plain AE is strength 0 of all but kl and topk. Three strengths each (four
# for Gaussian noise, read against the Wiener filter at each s) keep three seeds of every member in ~30 min.
STRENGTHS = {
    "gaussian": ("noise.level", [0.05, 0.1, 0.2, 0.4]),
    "mask": ("noise.level", [0.1, 0.25, 0.5]),
    "l1": ("sparsity.weight", [0.003, 0.03, 0.1]),
    "kl": ("sparsity.weight", [0.0, 0.3, 3.0]),  # weight 0: the sigmoid-code AE kl is read against
    "topk": ("sparsity.k", [4, 16, 32]),
    "contractive": ("contractive.weight", [0.01, 0.1, 0.3]),
}
# On the sphere (data norm 1, data rank 5) these penalties at digits' weights leave the map the identity
# on its span (jac_rank 5.0 of 5): the manifold runs them up to where the map changes.
MANIFOLD_STRENGTHS = {
    "l1": ("sparsity.weight", [0.1, 0.3, 1.0]),
    "kl": ("sparsity.weight", [0.0, 3.0, 30.0]),
    "contractive": ("contractive.weight", [0.1, 1.0, 10.0]),
}
# What switches each regulariser on (the plain AE has every block off).
SWITCH = {
    "plain": {},
    "gaussian": {"noise.kind": "gaussian"},
    "mask": {"noise.kind": "mask"},
    "l1": {"sparsity.kind": "l1"},
    "kl": {"sparsity.kind": "kl", "model.code_activation": "sigmoid", "sparsity.target": 0.05},
    "topk": {"sparsity.kind": "topk", "sparsity.aux_k": 32},
    "contractive": {},
}
SEEDS = [0, 1, 2]
ARGS = ("smoke", "manifold", "long", "converged")
LONG_STEPS = 12000
# One strength per regulariser: Gaussian s = 0.2 (the Wiener comparison), the middle strength of the others
# (their strongest did not converge by 12000 steps) and KL 3 (its reference is KL 0).
CONVERGED_STRENGTHS = {"gaussian": 0.2, "mask": 0.25, "l1": 0.03, "kl": 3.0, "topk": 16, "contractive": 0.1}
CONVERGED_STEPS = 24000


def get_config(arg=None):
    parts = config_lib.check_arg(arg, ARGS, __file__)
    c = config_lib.base_config()
    c.name = "_".join(["regularisers"] + [p for p in parts if p != "smoke"])
    c.data.manifold.kind = "sphere"  # set for every member (digits ignores it)
    c.data.manifold.intrinsic_dim = 4
    c.data.manifold.ambient_dim = 32
    c.model.depth = 0
    c.model.activation = "relu"
    c.train.steps = 6000
    c.train.batch_size = 128
    c.train.learning_rate = 1e-3
    c.train.log_every = 500
    c.train.pack_ratio = 0.0  # every member has the code size of its data set: nothing to pack
    c.sparsity.dead_steps = 200
    if "long" in parts:
        c.train.steps = LONG_STEPS
    if "converged" in parts:
        c.train.steps = CONVERGED_STEPS
    if "smoke" in parts:
        c.name = "regularisers_smoke"
        c.train.steps = 400
        c.train.log_every = 100
        c.diagnostics.jac_points = 30
        c.diagnostics.attractor_points = 30
        c.diagnostics.attractor_iters = 20
        c.diagnostics.ood_samples = 300
    return c


def family(name: str, key: str, values: list, data: str) -> list[dict]:
    """The members of one regulariser on one data set (its switch, then one member per strength)."""
    base = {"data.name": data, "model.code_size": CODE[data], **SWITCH[name]}
    return [dict(base, **m) for m in sweep(key, values)]


def get_sweep(arg=None):
    parts = config_lib.check_arg(arg, ARGS, __file__)
    data = "manifold" if "manifold" in parts else "digits"
    base = {"data.name": data, "model.code_size": CODE[data]}
    if "smoke" in parts:
        return [dict(base), dict(base, **{"noise.kind": "gaussian", "noise.level": 0.2}),
                dict(base, **{"sparsity.kind": "topk", "sparsity.k": 8, "sparsity.aux_k": 32})]
    if "converged" in parts and data == "digits":
        members = [dict(base)] + family("kl", "sparsity.weight", [0.0], data)
        for name, value in CONVERGED_STRENGTHS.items():
            members += family(name, STRENGTHS[name][0], [value], data)
        return product(members, sweep("seed", SEEDS))
    members = [] if "long" in parts else [dict(base)]
    for name in STRENGTHS:
        key, values = (MANIFOLD_STRENGTHS if data == "manifold" else {}).get(name, STRENGTHS[name])
        if "long" in parts:
            values = [min(values)] if name == "topk" else [0.2] if name == "gaussian" else [max(values)]
        members += family(name, key, values, data)
    return product(members, sweep("seed", SEEDS))
