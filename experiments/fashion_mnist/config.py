"""python -m ae_jax.sweep --config=experiments/fashion_mnist/config.py:PART --workdir=runs/fashion_mnist_PART && python -m experiments.fashion_mnist.analyze runs/fashion_mnist_PART

The headline results replicated on Fashion-MNIST (D = 784, pixels in [0, 1]), one PART per result, each
its own workdir (the analysis reads whichever parts a workdir holds):
  overcomplete  one-hidden-layer ReLU AEs (depth 0: code = ReLU(W x + b)), code 16 .. 3136 (4x D), and
                the linear AE at code 16 / 32 / 64 against the closed-form PCA-k test MSE;
  regularisers  at code 3136 (4x D): the plain AE against Gaussian (std 0.2) and masking (drop 0.5)
                denoising, L1 on the code (weight 0.01) and top-k (k 32); 400 steps on the CPU;
  tsne          32-d codes for the t-SNE use case: a plain and a Gaussian-denoising (std 0.2) AE with
                one hidden ReLU layer of 256 per side (depth 1); the `usecases` block is the evaluation
                of experiments/use_cases (t-SNE of raw pixels, PCA-32 and the codes on a subsample);
  vae           Bernoulli-decoder VAEs (sigmoid output, cross-entropy), one hidden ReLU layer of 256 per
                side, latent 2 / 8 / 32 / 128 at beta 1;
  vae_beta      the same VAE at latent 32 with beta 0.25 / 1 / 4 (Higgins et al.'s beta-VAE);
  linear        the overcomplete part's linear AEs trained longer (LINEAR_STEPS, the same cosine decay
                over all of them): at 1500 steps they were 1.4x to 1.7x the PCA-k test MSE, at 4000
                steps 1.05x to 1.11x;
  converged     the overcomplete part's codes 256, 784 and 3136 (4x D) at depth 0 trained CONVERGED_STEPS:
                at 1500 steps none of them had converged;
  vae_long      the `vae` members (latent 2 / 8 / 32 / 128 at beta 1) trained VAE_LONG_STEPS at the same
                constant Adam 1e-3 (a cosine decay to 0 would flatten every curve by construction): at
                1500 steps 4 of 12 had converged.
Every part has three seeds. On the 2-core CPU they train on a fixed, class-mixed subset of the official
training split (`data.n_train`: TFDS's fixed shuffle, see docs/fashion_mnist.md) for 1500 steps of batch 64
and are tested on all 10,000 test images. Adding `full` to the argument (`:overcomplete,full`, a GPU job)
trains on all 60,000 images for 5000 steps and, for `overcomplete`, adds depth 1 .. 3 (hidden width
1568 = 2x D) and codes 32, 128, 1568: the full claim.
`:smoke` is plain and denoising ReLU AEs at code 32 and 128 (depth 0), the linear AE at code 16 and a
latent-8 VAE, one seed, 500 training images, 100 steps, and a 300-point t-SNE: three programs.
Needs the dataset prepared once, offline: `python -m ae_jax.fashion_mnist` (docs/fashion_mnist.md).
"""

import ml_collections

from ae_jax import config as config_lib
from ae_jax.config import product, sweep

D = 28 * 28
PARTS = ("overcomplete", "regularisers", "tsne", "vae", "vae_beta", "linear", "converged", "vae_long")
SEEDS = [0, 1, 2]
N_TRAIN = 10000  # the CPU subset: a sixth of the training split
CODES = [16, 64, 256, D, 4 * D]
FULL_CODES = [16, 32, 64, 128, 256, D, 2 * D, 4 * D]
FULL_DEPTHS = [0, 1, 2, 3]
LINEAR_CODES = [16, 32, 64]
# The linear AE reaches PCA-k only when trained to convergence: Adam 1e-2 decayed to 0 (experiments/linear_pca).
LINEAR = {"model.activation": "linear", "model.depth": 0, "train.schedule": "cosine",
          "train.learning_rate": 1e-2, "train.batch_size": 256, "train.pack_ratio": 8.0}
LINEAR_STEPS = 16000  # 4000 left 5-11% above PCA-k (cosine: the rate, not the loss, reached 0)
CONVERGED_CODES, CONVERGED_STEPS = [256, D, 4 * D], 12000  # 77 epochs of the 10,000 images
# Programs shared by code sizes (train.pack_ratio's buckets, ae_jax/sweep.py): on a loaded 2-core CPU each
# compiled group costs minutes of evaluation, while packing 256 into a 784 program costs little and
# packing 784 into a 3136 one would cost 4x its training.
PACK = {16: 8.0, 64: 8.0, 256: 6.0, D: 6.0}
# Each regulariser at the strength experiments/regularisers found to move digits off the identity.
REGULARISERS = {
    "plain": {"noise.kind": "gaussian", "noise.level": 0.0},  # level 0: plain, in the Gaussian DAE's program
    "gaussian": {"noise.kind": "gaussian", "noise.level": 0.2},
    "mask": {"noise.kind": "mask", "noise.level": 0.5},
    "l1": {"sparsity.kind": "l1", "sparsity.weight": 0.01},
    "topk": {"sparsity.kind": "topk", "sparsity.k": 32, "sparsity.aux_k": 256},
}
REG_STEPS = 400  # CPU: 15 members at code 3136 cost as much as the whole code sweep at 1500 steps
TSNE_CODE = 32
TSNE_WIDTH = 256
TRAIN_NOISE = 0.2
LATENTS = [2, 8, 32, 128]
BETAS, BETA_LATENT = [0.25, 1.0, 4.0], 32
VAE_LONG_STEPS = 6000  # 4x `vae`'s 1500 (38 epochs): what the shared 2-core CPU fits beside the linear part
VAE = {"vae.enabled": True, "model.output": "sigmoid", "model.depth": 1, "model.width": 256,
       "train.pack_ratio": 128.0}  # every latent in one program: the 256-wide layers cost more than the code


def parts(arg) -> tuple[list[str], bool, bool]:
    """(the parts named in `:ARG`, smoke, full); no part named means every part."""
    args = config_lib.check_arg(arg, ("smoke", "full") + PARTS, __file__)
    named = [p for p in PARTS if p in args]
    return named or list(PARTS), "smoke" in args, "full" in args


def get_config(arg=None):
    named, smoke, full = parts(arg)
    c = config_lib.base_config()
    c.name = "fashion_mnist_" + "_".join(named if len(named) < len(PARTS) else ["all"])
    c.data.name = "fashion_mnist"
    c.data.n_train = 0 if full else N_TRAIN
    c.model.depth = 0
    c.model.width = 2 * D  # only depth >= 1 has hidden layers: 2x D represents the identity exactly
    c.model.activation = "relu"
    c.train.steps = 5000 if full else 1500
    c.train.batch_size = 128 if full else 64  # 64: what the shared 2-core CPU affords at code 3136
    c.train.learning_rate = 1e-3
    c.train.log_every = 100  # 15+ points of the loss curve: enough for the convergence test
    c.train.pack_ratio = 0.0  # off unless a member sets it (PACK)
    c.sparsity.dead_steps = 200
    c.vae.active_threshold = 0.01  # Burda et al.'s threshold, fixed (experiments/vae)
    # Evaluation, not training, dominates a group's time at D = 784 on the CPU: fewer probe points, and
    # no logistic probe (no claim here reads probe_acc; the t-SNE part measures kNN accuracy itself).
    c.diagnostics.jac_points = 8
    c.diagnostics.attractor_points = 50
    c.diagnostics.attractor_iters = 10
    c.diagnostics.ood_samples = 500
    c.diagnostics.probe = False
    if "tsne" in named or smoke:
        c.usecases = usecases(smoke)
    if smoke:
        c.name = "fashion_mnist_smoke"
        c.data.n_train = 500
        c.train.steps = 100
        c.train.batch_size = 64
        c.train.log_every = 10
        c.diagnostics.jac_points = 2
        c.diagnostics.attractor_points = 10
        c.diagnostics.attractor_iters = 5
        c.diagnostics.ood_samples = 100
    return c


def usecases(smoke: bool) -> ml_collections.ConfigDict:
    """experiments/use_cases' evaluation block, sized for 784-d images on a shared CPU."""
    u = ml_collections.ConfigDict()
    u.eval_noise = (0.1, 0.2, 0.3)  # Gaussian std of the held-out noise
    u.noise_draws = 2
    u.eval_seed = 20240
    u.figure_noise = 0.3
    # sklearn's Barnes-Hut t-SNE (openTSNE is not a dependency): a few thousand points, not all 20,000
    u.tsne_points = 300 if smoke else 2000
    u.tsne_seeds = (0,) if smoke else (0, 1, 2)
    u.tsne_init = "random"
    u.tsne_iter = 250 if smoke else 750
    u.perplexity = 30.0
    u.trust_neighbors = 10
    u.knn = 5
    u.cv_folds = 5 if smoke else 10
    return u


def overcomplete(full: bool) -> list[dict]:
    if full:
        relu = product(sweep("model.code_size", FULL_CODES), sweep("model.depth", FULL_DEPTHS), sweep("seed", SEEDS))
    else:
        relu = [dict(m, **{"train.pack_ratio": PACK.get(m["model.code_size"], 0.0)})
                for m in product(sweep("model.code_size", CODES), sweep("seed", SEEDS))]
    return relu + product([LINEAR], sweep("model.code_size", LINEAR_CODES), sweep("seed", SEEDS))


def regularisers(full: bool) -> list[dict]:
    steps = {} if full else {"train.steps": REG_STEPS}
    return [dict(switch, **{"model.code_size": 4 * D}, **steps) | s
            for switch in REGULARISERS.values() for s in sweep("seed", SEEDS)]


def tsne() -> list[dict]:
    base = {"model.code_size": TSNE_CODE, "model.depth": 1, "model.width": TSNE_WIDTH, "noise.kind": "gaussian"}
    return product([base], sweep("noise.level", [0.0, TRAIN_NOISE]), sweep("seed", SEEDS))


def vae() -> list[dict]:
    return product([VAE], sweep("model.code_size", LATENTS), sweep("seed", SEEDS))


def vae_beta() -> list[dict]:
    return product([dict(VAE, **{"model.code_size": BETA_LATENT})], sweep("vae.beta", BETAS), sweep("seed", SEEDS))


def get_sweep(arg=None):
    named, smoke, full = parts(arg)
    if smoke:
        # three programs: plain and denoising codes 32 and 128 (Gaussian noise at level 0 and 0.2), the
        # linear AE, the VAE
        relu = {"noise.kind": "gaussian", "train.pack_ratio": 16.0}
        return (product([relu], sweep("model.code_size", [TSNE_CODE, 128]), sweep("noise.level", [0.0, TRAIN_NOISE]))
                + [dict(LINEAR, **{"model.code_size": 16}), dict(VAE, **{"model.code_size": 8, "model.width": 64})])
    build = {"overcomplete": lambda: overcomplete(full), "regularisers": lambda: regularisers(full), "tsne": tsne,
             "vae": vae, "vae_beta": vae_beta}
    build["linear"] = lambda: product([dict(LINEAR, **{"train.steps": LINEAR_STEPS})],
                                      sweep("model.code_size", LINEAR_CODES), sweep("seed", SEEDS))
    build["converged"] = lambda: [
        dict(m, **{"train.steps": CONVERGED_STEPS, "train.log_every": 300, "train.pack_ratio": PACK.get(m["model.code_size"], 0.0)})
        for m in product(sweep("model.code_size", CONVERGED_CODES), sweep("seed", SEEDS))]
    build["vae_long"] = lambda: [dict(m, **{"train.steps": VAE_LONG_STEPS}) for m in vae()]
    return [m for p in named for m in build[p]()]
