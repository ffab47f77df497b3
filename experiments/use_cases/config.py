"""python -m ae_jax.sweep --config=experiments/use_cases/config.py --workdir=runs/use_cases
then python -m experiments.use_cases.analyze runs/use_cases

Two things autoencoders are used for, on sklearn's digits (D = 64, 1347 train / 450 test):
1. Denoising (Vincent et al. 2008/2010): ReLU autoencoders, code 256 at depth 0 (the `configs/dae.py`
   setting) and code 32 at depth 0 and 1 (hidden width 256), three seeds each, each trained plain (noise
   level 0) and denoising (Gaussian s = 0.2), constant Adam 1e-3, STEPS steps of batch 128 (the
   code-256 DAE passes the convergence test only after 24000: experiments/regularisers). The
   analysis measures the denoise gain E||f(x+e)-x||^2 / E||e||^2 on HELD-OUT noise (test images, fresh
   draws from a NumPy generator the trainer never used) at s = 0.05 .. 0.5 (only 0.2 was seen in
   training) and compares it with the identity (gain 1) and the Wiener filter mu + C (C + s^2 I)^-1 (y - mu),
   the optimal linear denoiser (C the train covariance, closed form).
2. Dimensionality reduction (Hinton & Salakhutdinov 2006; van der Maaten & Hinton 2008): t-SNE to 2-D
   of the raw 64-d inputs, of PCA-32 codes and of the code-32 AEs' codes (all 1797 images; the codes
   come from nets trained on the train split only), random init, three t-SNE seeds (net seed i is
   paired with t-SNE seed i). For each: sklearn's trustworthiness of the 2-D map with respect to the raw
   inputs and to its own input space, and 5-NN accuracy in 2-D (held-out split and 10-fold CV).
`:smoke` trains the four depth-0 nets (one seed) for 400 steps; its analysis runs one short t-SNE per
input on 400 images (seconds).

`usecases.*` is this experiment's own block: evaluation only (training uses the library's keys), recorded
with every member and read by `experiments/use_cases/analyze.py`, which checks it before measuring.
"""

import ml_collections

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

TRAIN_NOISE = 0.2
SEEDS = [0, 1, 2]
STEPS = 96000  # a constant rate: a decay to 0 would flatten every loss curve by construction (docs/regime.md)


def get_config(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "use_cases"
    c.model.depth = 0
    c.model.activation = "relu"
    c.model.code_size = 256
    # Level 0 of the same Gaussian corruption is the plain AE: x + 0 * e = x, and it shares the program.
    c.noise.kind = "gaussian"
    c.noise.level = TRAIN_NOISE
    c.train.steps = STEPS
    c.train.batch_size = 128
    c.train.learning_rate = 1e-3
    c.train.log_every = 500
    c.usecases = ml_collections.ConfigDict()
    c.usecases.eval_noise = (0.05, 0.1, 0.2, 0.3, 0.5)  # Gaussian std of the held-out noise
    c.usecases.noise_draws = 20  # fresh noise draws per test image and level
    c.usecases.eval_seed = 20240  # NumPy generator of the held-out noise (training uses JAX keys)
    c.usecases.figure_noise = 0.3  # the level of the before/after figure (not seen in training)
    c.usecases.tsne_points = 0  # 0 = every image (train + test); k > 0: the first k of a fixed shuffle
    c.usecases.tsne_seeds = (0, 1, 2)
    # sklearn's t-SNE from a PCA init is deterministic here (seed spread 0.000 in a first run), so the
    # seeds only measure run-to-run noise from a random init.
    c.usecases.tsne_init = "random"
    c.usecases.tsne_iter = 1000
    c.usecases.perplexity = 30.0
    c.usecases.trust_neighbors = 10  # k of sklearn.manifold.trustworthiness
    c.usecases.knn = 5  # k of the k-NN classifier on the 2-D maps
    c.usecases.cv_folds = 10
    if arg == "smoke":
        c.name = "use_cases_smoke"
        c.train.steps = 400
        c.train.log_every = 100
        c.train.pack_ratio = 16.0  # codes 32 and 256 in one program: one compilation
        c.diagnostics.jac_points = 30  # the library's metrics are not what this experiment measures
        c.diagnostics.attractor_points = 30
        c.diagnostics.ood_samples = 200
        c.usecases.eval_noise = (0.1, 0.2, 0.4)
        c.usecases.noise_draws = 4
        c.usecases.tsne_points = 400
        c.usecases.tsne_seeds = (0,)
        c.usecases.tsne_iter = 500
        c.usecases.cv_folds = 5
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    levels = sweep("noise.level", [0.0, TRAIN_NOISE])
    # Three seeds of every net (the seed is traced: one program per code size and depth).
    if arg == "smoke":
        return product(sweep("model.code_size", [256, 32]), sweep("model.depth", [0]), levels, sweep("seed", [0]))
    return (product(sweep("model.code_size", [256]), sweep("model.depth", [0]), levels, sweep("seed", SEEDS))
            + product(sweep("model.code_size", [32]), sweep("model.depth", [0, 1]), levels, sweep("seed", SEEDS)))
