"""A variant defined outside the library: a quantised code (straight-through rounding to a grid of
`quant.levels` steps per unit) with a commitment loss and a code metric. Used as a config file:

    python -m ae_jax.sweep --config=tests/quantised_variant.py --workdir=runs/quantised

Importing it registers the variant (a config block, a code stage, a loss term, a code metric); nothing
in ae_jax/ is edited. tests/test_plugin_variant.py trains it through the sweep.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import code_metrics, code_stages, config as config_lib, models, objectives
from ae_jax.config import sweep

# 1. Its config block: `--config.quant.enabled=True`, `--config.quant.weight=...` now exist.
config_lib.BLOCKS["quant"] = {"enabled": False, "levels": 4, "weight": 0.0}


# 2. The code stage: code = round(levels * a) / levels on the forward pass, gradient of a on the backward
# (straight-through), a = code_activation(pre).
def _quantised(spec, pre_BK, heads, masks):
    levels = spec.stage_arg("levels")
    a = code_stages.masked(models.ACTIVATIONS[spec.code_activation](pre_BK), masks, "code")
    return {"pre": pre_BK, "soft": a, "code": a + jax.lax.stop_gradient(jnp.round(a * levels) / levels - a)}


code_stages.CODE_STAGES["quantised"] = code_stages.CodeStage(
    apply=_quantised, selected=lambda c: bool(c.get("quant", {}).get("enabled", False)),
    static=lambda c: (("levels", int(c.quant.levels)),))


# 3. A loss term that sees the code stage's output: the commitment of the soft code to its grid point.
def _commitment(batch: objectives.Batch) -> jax.Array:
    return jnp.square(batch.enc["soft"] - jax.lax.stop_gradient(batch.enc["code"])).sum(-1).mean()


# No `active` switch: the term is on wherever a member weights it (a weight-0 member shares the program).
objectives.LOSS_TERMS["commitment"] = objectives.LossTerm(_commitment, "quant.weight")


# 4. A code metric: how many grid values the codes of the test set use, per unit, on average.
def _levels_used(spec, params, masks, code_size, x_test, config) -> dict:
    code = np.asarray(models.encode(spec, params, x_test, masks)["code"])[:, :code_size]
    return {"levels_used": float(np.mean([len(np.unique(code[:, k])) for k in range(code_size)]))}


code_metrics.CODE_METRICS["quantised"] = code_metrics.CodeMetric(
    _levels_used, lambda c: bool(c.get("quant", {}).get("enabled", False)), ("levels_used",))


def get_config(arg=None):
    """A 16-unit sigmoid code quantised to 4 levels on digits."""
    config_lib.check_arg(arg, ("smoke",), __file__)
    c = config_lib.base_config()
    c.name = "quantised"
    c.quant.enabled = True
    c.model.code_size = 16
    c.model.code_activation = "sigmoid"
    c.train.steps = 60 if arg == "smoke" else 2000
    c.train.log_every = 20 if arg == "smoke" else 100
    return c


def get_sweep(arg=None):
    config_lib.check_arg(arg, ("smoke",), __file__)
    return sweep("quant.weight", [0.0, 0.1])
