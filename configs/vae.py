"""python -m ae_jax.sweep --config=configs/vae.py --workdir=runs/vae

Variational autoencoders / beta-VAEs (Kingma & Welling 2013; Higgins et al. 2017) on digits: a Gaussian
encoder (one hidden layer of 256 ReLU units, 16 latent dimensions), reparameterised samples, a Bernoulli
decoder (sigmoid output, cross-entropy; digits lie in [0, 1]), swept over beta. Expect a positive `kl`,
`active_units` (Burda et al.: Cov_x E_q[z] > vae.active_threshold) falling as beta grows and a finite
`test_elbo` (nats). Diagnostics use the mean path decoder(mean code). With wandb.images each member also
writes prior samples and latent interpolations to `WORKDIR/samples/<member>/` (and its W&B run).
`--config.model.output=linear` gives the Gaussian decoder N(f(z), I/2) (squared error), for which beta
and the decoder variance are one knob (beta = 2 sigma^2). `:smoke` runs beta 0.5 and 4 in seconds.
"""

from ae_jax import config as config_lib
from ae_jax.config import sweep


def get_config(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "vae"
    c.vae.enabled = True
    c.vae.beta = 1.0
    c.model.code_size = 16
    c.model.depth = 1
    c.model.width = 256
    c.model.activation = "relu"
    c.model.output = "sigmoid"
    c.train.steps = 4000
    c.train.log_every = 250
    if smoke:
        c.name = "vae_smoke"
        c.train.steps = 300
        c.train.log_every = 100
        c.diagnostics.attractor_iters = 20
    return c


def get_sweep(arg=None):
    smoke = "smoke" in config_lib.check_arg(arg, ("smoke",), __file__)
    betas = [0.5, 4.0] if smoke else [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    return sweep("vae.beta", betas)
