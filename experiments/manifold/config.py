"""python -m ae_jax.sweep --config=experiments/manifold/config.py --workdir=runs/manifold
then python -m experiments.manifold.analyze runs/manifold

Synthetic data of known intrinsic dimension d in R^32 (`data.name="manifold"`, noise std 0.02 on every
coordinate, so the data span is full but the manifold is clear): a d-sphere (data rank d+1) and a d-dim
linear subspace, d = 2, 4, 8. ReLU MLP autoencoders, depth 1, width 128, code 1, d/2, d, d+1 (sphere: the
d-sphere does not embed in R^d), 2d and 128; plain (Gaussian corruption of level 0) and denoising
(Gaussian, s = 0.1). Adam 2e-3, 3000 steps of batch 64, seeds 0, 1, 2. The sweep keeps every member's parameters; the
analysis adds the pull onto the manifold to the library's metrics and writes analysis.md and figures.
`:smoke` is the d=2 sphere, codes 1 and 32, plain and denoising, 600 steps (seconds). `:converged` trains the
cells the verdicts rest on (`converged_cells`) for CONVERGED_STEPS at the same constant Adam 2e-3. `:long` trains
the cells of those with members still unconverged at CONVERGED_STEPS that carry a verdict (`long_cells`: the DAEs,
the plain code 128, the plain code d on the planes) for LONG_STEPS; `:floor` the plain code d/2 below d (the
error floor's nets) for LONG_STEPS.
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

DIMS = [2, 4, 8]
KINDS = ["sphere", "linear"]
DATA_NOISE = 0.02
DAE_NOISE = 0.1
SEEDS = [0, 1, 2]
CONVERGED_STEPS = 8000
LONG_STEPS = 32000  # probes: the DAE at 2d and the plane DAE at 128 pass regime.converged from ~30k steps
ARGS = ("smoke", "converged", "long", "floor")


def codes(kind: str, d: int) -> list[int]:
    """Code sizes around d: below it, at it (and d+1 for the sphere), above it, and overcomplete."""
    extra = [d + 1] if kind == "sphere" else []
    return sorted({1, max(d // 2, 1), d, *extra, 2 * d, 128})


def converged_cells(kind: str, d: int) -> list[dict]:
    """Plain AEs below, at and above d and at 128 (the rank, the floor, the drift to the identity), the DAE
    at 2d and 128 (rank d at any spare code); code 1 only where it is below d by half (d = 2)."""
    plain = sorted({max(d // 2, 1), d, *([d + 1] if kind == "sphere" else []), 2 * d, 128})
    return ([{"model.code_size": k, "noise.level": 0.0} for k in plain]
            + [{"model.code_size": k, "noise.level": DAE_NOISE} for k in (2 * d, 128)])


def long_cells(kind: str, d: int) -> list[dict]:
    """The verdict cells whose losses still fell at CONVERGED_STEPS: the DAE at 2d and 128 (rank d), the plain
    code 128 (the drift to the identity) and, on the planes, the plain code d (a ReLU code of exactly d)."""
    plain = [128] + ([d] if kind == "linear" else [])
    return ([{"model.code_size": k, "noise.level": 0.0} for k in plain]
            + [{"model.code_size": k, "noise.level": DAE_NOISE} for k in (2 * d, 128)])


def get_config(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    c = config_lib.base_config()
    c.name = "manifold"
    c.data.name = "manifold"
    c.data.manifold.kind = "sphere"
    c.data.manifold.intrinsic_dim = 2
    c.data.manifold.ambient_dim = 32
    c.data.manifold.noise = DATA_NOISE
    c.model.activation = "relu"
    c.model.depth = 1
    c.model.width = 128
    # Plain members are Gaussian corruption at level 0: one objective, so plain and denoising share a program.
    c.noise.kind = "gaussian"
    c.noise.level = 0.0
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.learning_rate = 2e-3
    c.train.log_every = 500
    c.train.pack_ratio = 256.0  # codes 2..128 share one masked program per dataset (code 1 its own)
    c.diagnostics.attractor_iters = 30
    c.diagnostics.probe = False  # no labels on synthetic data
    if arg == "converged":
        c.name = "manifold_converged"
        c.train.steps = CONVERGED_STEPS
    if arg in ("long", "floor"):
        c.name = f"manifold_{arg}"
        c.train.steps = LONG_STEPS
    if arg == "smoke":
        c.name = "manifold_smoke"
        c.train.steps = 600  # at 400 the DAE's rank is 3.00, on the edge of the test's "within 1 of d"
        c.train.log_every = 200
        c.diagnostics.jac_points = 30
        c.diagnostics.attractor_points = 30
        c.diagnostics.attractor_iters = 10
        c.diagnostics.ood_samples = 200
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ARGS, __file__)
    noise = sweep("noise.level", [0.0, DAE_NOISE])
    if arg == "smoke":
        return product(sweep("data.manifold.kind", ["sphere"]), sweep("data.manifold.intrinsic_dim", [2]),
                       sweep("model.code_size", [1, 32]), noise)
    members = []
    for kind in KINDS:
        for d in DIMS:
            if arg in ("converged", "long", "floor"):
                chosen = {"converged": converged_cells(kind, d), "long": long_cells(kind, d),
                          "floor": [{"model.code_size": max(d // 2, 1), "noise.level": 0.0}]}[arg]
                members += product(sweep("data.manifold.kind", [kind]), sweep("data.manifold.intrinsic_dim", [d]),
                                   chosen, sweep("seed", SEEDS))
                continue
            members += product(sweep("data.manifold.kind", [kind]), sweep("data.manifold.intrinsic_dim", [d]),
                               sweep("model.code_size", codes(kind, d)), noise, sweep("seed", SEEDS))
    return members
