"""Plans and traced hyperparameters for the tests that drive `train.fit` directly (train, stream)."""

import numpy as np

from ae_jax import config as config_lib, models, objectives, train


def make_plan(steps=60, chunk=20, noise="none", **model):
    """A digits-sized (D = 64) plan of the base config, batch 32; `model` overrides config.model keys."""
    c = config_lib.base_config()
    c.noise.kind = noise
    for k, v in model.items():
        c.model[k] = v
    return train.Plan(models.model_spec(c, (64,)), objectives.objective_spec(c, False),
                      "adam", "constant", 32, steps, chunk)


def hparams(m, **values):
    """The base config's traced hyperparameters for m members; `values` gives per-member overrides."""
    c = config_lib.base_config()
    hp = {name: np.full((m,), float(config_lib._get(c, key)), np.float32) for name, key in train.HPARAMS.items()}
    hp.update({k: np.asarray(v, np.float32) for k, v in values.items()})
    return hp
