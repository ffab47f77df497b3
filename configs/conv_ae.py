"""python -m ae_jax.sweep --config=configs/conv_ae.py --workdir=runs/conv_ae

Convolutional vs fully connected autoencoders on digits (Zhang et al., ICLR 2020) at equal code sizes.
conv: two stride-2 3x3 convolutions (16, 32 channels; depth = len(model.channels)), a dense code layer,
a dense layer back to 2x2x32 and two stride-2 transposed convolutions; mlp: one hidden layer of 256 per
side. Both have ReLU hidden layers and a linear code (ReLU codes this small lose units to dying). Every
member also reports `pca_mse`, the closed-form PCA-k control of its code size; expect the conv AE's
`test_mse` below it at small codes (k = 8: about 0.017 vs 0.025 after 400 steps). Change the net with
`--config.model.channels='(8,16)'` or `--config.model.kernel_size=5`. `:smoke` trains both kinds at
code 8 for a few hundred steps (under a minute on a CPU).
"""

from ae_jax import config as config_lib
from ae_jax.config import product, sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "conv_ae"
    c.model.kind = "conv"
    c.model.channels = (16, 32)
    c.model.kernel_size = 3
    c.model.code_size = 8
    c.model.depth = 1  # the mlp members' hidden layers; conv depth is len(channels)
    c.model.width = 256
    c.model.activation = "relu"
    c.model.code_activation = "linear"
    c.train.steps = 4000
    c.train.log_every = 250
    if smoke:
        c.name = "conv_ae_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    codes = [8] if smoke else [4, 8, 16, 32]
    return product(sweep("model.kind", ["conv", "mlp"]), sweep("model.code_size", codes))
