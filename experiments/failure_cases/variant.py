"""A residual MLP autoencoder as plug-in model kinds, so depth is compared without the plain stack's
harder optimisation. Importing this module registers them (config.py and analyze.py import it); nothing
in `ae_jax` changes.

- `resmlp`: x -> enc_in (Dense to `width`, no activation) -> `depth` residual blocks h + Dense(act(h)) ->
  code layer (the code stage: code = code_activation(W h + b)); code -> dec_in (Dense to `width`) ->
  `depth` blocks -> out (Dense to D).
- `resmlp_ln`: the same with a layer norm before each block's activation and before the code / output
  layer (pre-norm, as in transformer MLP blocks).

Each block is one Dense layer, so a depth-d residual net has d + 1 width-`width` layers per side against
the plain `mlp`'s d. The layer norm counts only a member's own hidden units, so packed members of
different widths train like their solo nets (padding stays exactly 0).
"""

import flax.linen as nn
import jax.numpy as jnp

from ae_jax import config as config_lib, models
from ae_jax.code_stages import masked

KINDS = ("resmlp", "resmlp_ln")
config_lib.BLOCKS["failure"] = {"part": ""}  # which of the seed's claims a member belongs to (analyze.py)


class MaskedLayerNorm(nn.Module):
    """Layer norm over the live hidden units only (masks['hidden'] == 1); padding units stay 0."""

    eps: float = 1e-6

    @nn.compact
    def __call__(self, h_BW, masks):
        live = jnp.ones(h_BW.shape[-1:], h_BW.dtype) if masks is None else masks["hidden"]
        n = live.sum()
        mean = (h_BW * live).sum(-1, keepdims=True) / n
        var = (jnp.square(h_BW - mean) * live).sum(-1, keepdims=True) / n
        scale = self.param("scale", nn.initializers.ones_init(), h_BW.shape[-1:])
        bias = self.param("bias", nn.initializers.zeros_init(), h_BW.shape[-1:])
        return ((h_BW - mean) * jnp.reciprocal(jnp.sqrt(var + self.eps)) * scale + bias) * live


def _setup(layer_norm: bool):
    def setup(m):
        s = m.spec
        m.enc_in = nn.Dense(s.width, name="enc_in")
        m.dec_in = nn.Dense(s.width, name="dec_in")
        m.enc_hidden = [nn.Dense(s.width, name=f"enc_{i}") for i in range(s.depth)]
        m.dec_hidden = [nn.Dense(s.width, name=f"dec_{i}") for i in range(s.depth)]
        norms = lambda side: [MaskedLayerNorm(name=f"{side}_ln{i}") for i in range(s.depth + 1)]  # noqa: E731
        m.enc_norms, m.dec_norms = (norms("enc"), norms("dec")) if layer_norm else ([], [])
        m.code = nn.Dense(s.code_size, name="code")
        m.out = nn.Dense(s.input_dim, name="out")
    return setup


def _stack(m, h, layers, norms, masks):
    """Residual blocks h + W act(norm(h)), then the final norm; the hidden mask keeps padding at 0."""
    h = masked(h, masks, "hidden")
    for i, layer in enumerate(layers):
        a = norms[i](h, masks) if norms else h
        h = h + masked(layer(m.act(a)), masks, "hidden")
    return norms[-1](h, masks) if norms else h


def _hidden(m, x_BD, masks):
    return _stack(m, m.enc_in(x_BD), m.enc_hidden, m.enc_norms, masks)


def _decode(m, code_BK, masks):
    return m.out(_stack(m, m.dec_in(code_BK), m.dec_hidden, m.dec_norms, masks))


for _name, _ln in zip(KINDS, (False, True)):
    models.MODEL_KINDS[_name] = models.ModelKind(
        setup=_setup(_ln), hidden=_hidden, pre_code=lambda m, h: m.code(h), decode=_decode,
        first_decoder=lambda spec: "dec_in")
