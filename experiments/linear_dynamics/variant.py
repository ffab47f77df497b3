"""The two things Saxe et al.'s setting needs that the library's configs do not offer, as plug-ins.

- dataset `digits_centred`: digits with the train mean subtracted from both splits (Saxe et al. analyse
  the input's second moment; centring makes it the covariance, so the mean is not learned first).
- code stage `small_init`: a plain code whose kernels start at `config.dynamics.init_scale` x the
  library's initialisation (biases start at 0 as usual), selected when that scale is not 1.

Importing this module registers both (config.py and analyze.py import it); nothing in `ae_jax` changes.
"""

import math

import jax
import ml_collections
import numpy as np

from ae_jax import code_stages, config as config_lib, data as data_lib
from ae_jax.errors import ConfigError

DATASET = "digits_centred"
STAGE = "small_init"


def _digits_centred(data_cfg: ml_collections.ConfigDict) -> data_lib.Raw:
    x_tr, x_te, y_tr, y_te, shape = data_lib.LOADERS["digits"](data_cfg)
    mu = x_tr.astype(np.float64).mean(0)  # fitted on train only, like data.scale
    return ((x_tr - mu).astype(np.float32), (x_te - mu).astype(np.float32), y_tr, y_te, shape)


def _scale(config) -> tuple:
    s = config.dynamics.init_scale
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s > 0):
        raise ConfigError(f"config.dynamics.init_scale: must be a positive finite number, got {s!r}")
    return (("init_scale", float(s)),)


def _shrink_kernels(spec, params, first_decoder: str):
    """Every kernel times the stage's init scale; biases untouched (they start at 0)."""
    s = spec.stage_arg("init_scale")
    return jax.tree_util.tree_map_with_path(lambda path, a: a * s if path[-1].key == "kernel" else a, params)


def _selected(config) -> bool:
    return "dynamics" in config and config.dynamics.init_scale != 1.0


data_lib.LOADERS[DATASET] = _digits_centred
config_lib.BLOCKS["dynamics"] = {"init_scale": 1.0}  # 1 = the library's own initialisation
code_stages.CODE_STAGES[STAGE] = code_stages.CodeStage(
    apply=code_stages.CODE_STAGES["plain"].apply, selected=_selected, static=_scale, init=_shrink_kernels,
    elementwise=code_stages.CODE_STAGES["plain"].elementwise)
