"""Plans and traced hyperparameters for the tests that drive `train.fit` directly (train, stream)."""

import numpy as np

from ae_jax import config as config_lib, models, objectives, train


def make_plan(steps=60, chunk=20, noise="none", **model):
    """A digits-sized (D = 64) plan of the base config, batch 32; `model` overrides config.model keys."""
    c = config_lib.base_config()
    c.noise.kind = noise
    for k, v in model.items():
        c.model[k] = v
    return train.Plan(models.model_spec(c, (64,)), objectives.objective_spec(c),
                      "adam", "constant", 32, steps, chunk)


SHORT = {"learning_rate": "train.learning_rate", "weight_decay": "train.weight_decay", "noise_level": "noise.level"}


def hparams(m, **values):
    """The base config's traced hyperparameters for m members; `values` gives per-member overrides
    (by the short names in SHORT)."""
    hp = train.hparams_of([config_lib.base_config()] * m)
    hp.update({SHORT[k]: np.asarray(v, np.float32) for k, v in values.items()})
    return hp
