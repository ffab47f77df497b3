"""One autoencoder, fully connected or convolutional, whose code stage is where variants plug in.

Kinds: `mlp` (dense layers), `conv` (stride-2 convolutions down to a dense code, transposed
convolutions back up) and `fullconv` (Zhang et al. 2020's fully convolutional net: every layer a stride-1
SAME convolution that keeps the image size, no dense layer; `width` channels per hidden layer, and the
code is a `code_size`-channel feature map of the input's height and width).

Both are registries: a kind is an entry of `MODEL_KINDS` (its layers and data flow), and the code
stage that turns the encoder's last hidden layer into the code is an entry of
`code_stages.CODE_STAGES` (plain, top-k, variational). Everything else (noise, penalties) lives in `objectives`; the model never sees a clean/noisy switch.

Packing: a `ModelSpec` gives the largest code size and width of a group; `masks` (per member, see
`size_masks`) switch off the units beyond a member's own sizes. Masked units output exactly 0, get
exactly zero gradient and stay at their zero initialisation, so a packed member trains like the
unpacked model of its own size while sharing one compiled program with differently sized members.
"""

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ae_jax.code_stages import CODE_STAGES, code_noise, masked
from ae_jax.errors import ConfigError
from ae_jax.layers import ACTIVATIONS, PatchConv, TiedDense, dense

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes the parameter shapes and the code path: members sharing it share a program."""

    kind: str  # a key of MODEL_KINDS
    input_shape: tuple[int, ...]
    code_size: int
    depth: int
    width: int
    activation: str
    code_activation: str
    output: str
    channels: tuple[int, ...]
    kernel_size: int
    code_stage: str = "plain"  # a key of CODE_STAGES
    stage_args: tuple = ()  # the stage's static settings, ((name, value), ...), from its `static(config)`
    matmul_precision: str = "highest"  # config.MATMUL_PRECISIONS
    tied: bool = False  # decoder weight = the code layer's kernel transposed (mlp, depth 0)

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    def stage_arg(self, name: str, default: Any = None) -> Any:
        return dict(self.stage_args).get(name, default)

    @property
    def topk(self) -> int:
        """k of a top-k code, 0 for every other stage."""
        return self.stage_arg("k", 0) if self.code_stage == "topk" else 0

    @property
    def variational(self) -> bool:
        return self.code_stage == "variational"


def model_spec(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> ModelSpec:
    """The static model description of a config on data whose examples have `input_shape`."""
    m = config.model
    stage = code_stage_of(config)
    spec = ModelSpec(
        kind=m.kind,
        input_shape=tuple(input_shape),
        code_size=m.code_size,
        depth=m.depth,
        width=m.width,
        activation=m.activation,
        code_activation=m.code_activation or m.activation,
        output=m.output,
        channels=tuple(m.channels),
        kernel_size=m.kernel_size,
        code_stage=stage,
        stage_args=tuple(CODE_STAGES[stage].static(config)),
        matmul_precision=config.model.matmul_precision,
        tied=bool(config.model.tied),
    )
    MODEL_KINDS[spec.kind].check(spec, config)
    return spec


def code_stage_of(config: ml_collections.ConfigDict) -> str:
    """The code stage a config selects: the one registered stage whose `selected(config)` holds, else plain."""
    chosen = [name for name, stage in CODE_STAGES.items() if name != "plain" and stage.selected(config)]
    if len(chosen) > 1:
        raise ConfigError(f"config: code stages {chosen} cannot be combined (each replaces the code)")
    return chosen[0] if chosen else "plain"


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One architecture: which layers exist (`setup`) and how data flows through them.

    Each function receives the `Autoencoder` module `m`; `setup` creates `m.enc_hidden`, `m.dec_hidden`
    (lists of layers), `m.code` (the layer producing `pre`) and `m.out`, plus anything else it needs.
    """

    setup: Callable[[Any], None]
    hidden: Callable  # (m, x_BD, masks) -> the encoder's last hidden representation, flat (B, H)
    pre_code: Callable  # (m, h_BH) -> pre_BK (flat)
    decode: Callable  # (m, code_BK, masks) -> decoder logits (B, D)
    check: Callable[[ModelSpec, Any], None] = lambda spec, config: None  # ConfigError on a bad pairing
    width_masked: bool = True  # packing masks `width` hidden units (False: no hidden width to pack)
    code_positions: Callable[[ModelSpec], int] = lambda spec: 1  # the code mask repeats this many times
    first_decoder: Callable[[ModelSpec], str] = lambda spec: "dec_0" if spec.depth else "out"


def _hidden_stack(m, h, masks):
    for layer in m.enc_hidden:
        h = masked(m.act(layer(h)), masks, "hidden")
    return h


def _mlp_setup(m):
    s = m.spec
    m.enc_hidden = [dense(s.width, f"enc_{i}") for i in range(s.depth)]
    m.dec_hidden = [dense(s.width, f"dec_{i}") for i in range(s.depth)]
    m.code = dense(s.code_size, "code")
    m.out = TiedDense(s.input_dim, name="out") if s.tied else dense(s.input_dim, "out")


def _mlp_decode(m, code_BK, masks):
    h = code_BK
    for layer in m.dec_hidden:
        h = masked(m.act(layer(h)), masks, "hidden")
    if m.spec.tied:  # the decoder reads the code layer's kernel: one matrix, both gradients
        return m.out(h, m.code.variables["params"]["kernel"])
    return m.out(h)


def _mlp_check(spec, config):
    if spec.tied and spec.depth != 0:
        raise ConfigError(f"config.model.tied: tied weights need model.depth=0 (one layer each way), "
                          f"got depth {spec.depth}")


def _untied_only(spec, config):
    if spec.tied:
        raise ConfigError(f"config.model.tied: only model.kind='mlp' (depth 0) has tied weights, got {spec.kind!r}")


def _image(m, x_BD):
    return x_BD.reshape((x_BD.shape[0],) + m.spec.input_shape)


def _needs_image(spec, config):
    if len(spec.input_shape) != 3:
        raise ConfigError(f"config.model.kind: {spec.kind!r} needs image data (H, W, C), got examples of shape "
                          f"{spec.input_shape}")


def _conv_setup(m):
    s = m.spec
    m.enc_hidden = [PatchConv(ch, s.kernel_size, stride=2, name=f"enc_{i}") for i, ch in enumerate(s.channels)]
    m.dec_hidden = [PatchConv(ch, s.kernel_size, up=2, name=f"dec_{i}")
                    for i, ch in enumerate(reversed(s.channels))]
    h, w, _ = s.input_shape
    m.bottom = (h // 2 ** len(s.channels), w // 2 ** len(s.channels), s.channels[-1])
    m.dec_in = dense(math.prod(m.bottom), "dec_in")
    m.code = dense(s.code_size, "code")
    m.out = PatchConv(s.input_shape[-1], s.kernel_size, name="out")


def _conv_decode(m, code_BK, masks):
    h = m.act(m.dec_in(code_BK)).reshape((code_BK.shape[0],) + m.bottom)
    for layer in m.dec_hidden:
        h = m.act(layer(h))
    return m.out(h).reshape((code_BK.shape[0], -1))


def _conv_check(spec, config):
    _untied_only(spec, config)
    _needs_image(spec, config)
    stride = 2 ** len(spec.channels)
    if spec.input_shape[0] % stride or spec.input_shape[1] % stride:
        raise ConfigError(f"config.model.channels: {len(spec.channels)} stride-2 layers need image sides "
                          f"divisible by {stride}, got {spec.input_shape[:2]}")


def _fullconv_setup(m):
    s = m.spec
    m.enc_hidden = [PatchConv(s.width, s.kernel_size, name=f"enc_{i}") for i in range(s.depth)]
    m.dec_hidden = [PatchConv(s.width, s.kernel_size, name=f"dec_{i}") for i in range(s.depth)]
    m.code = PatchConv(s.code_size, s.kernel_size, name="code")
    m.out = PatchConv(s.input_shape[-1], s.kernel_size, name="out")


def _fullconv_pre_code(m, h_BH):
    """The code layer convolves the last hidden map (flattened by `hidden`)."""
    s = m.spec
    return m.code(h_BH.reshape((h_BH.shape[0],) + s.input_shape[:2] + (-1,))).reshape((h_BH.shape[0], -1))


def _fullconv_decode(m, code_BK, masks):
    s = m.spec
    h = code_BK.reshape((code_BK.shape[0],) + s.input_shape[:2] + (s.code_size,))
    for layer in m.dec_hidden:
        h = masked(m.act(layer(h)), masks, "hidden")
    return m.out(h).reshape((code_BK.shape[0], -1))


def _fullconv_check(spec, config):
    _untied_only(spec, config)
    _needs_image(spec, config)
    if spec.code_stage != "plain" or config.sparsity.kind != "none":
        # Its code is a feature map, not a vector of code_size units: the code metrics assume the latter.
        raise ConfigError("config.model.kind: 'fullconv' supports neither sparsity.kind nor vae.enabled")


# A model kind is one `ModelKind` and one line here; `config.model.kind` takes its name.
MODEL_KINDS: dict[str, ModelKind] = {
    "mlp": ModelKind(setup=_mlp_setup, hidden=lambda m, x, masks: _hidden_stack(m, x, masks),
                     pre_code=lambda m, h: m.code(h), decode=_mlp_decode, check=_mlp_check),
    # stride-2 convolutions down to a dense code, transposed convolutions back up; no `width`
    "conv": ModelKind(setup=_conv_setup,
                      hidden=lambda m, x, masks: _hidden_stack(m, _image(m, x), masks).reshape((x.shape[0], -1)),
                      pre_code=lambda m, h: m.code(h), decode=_conv_decode, check=_conv_check,
                      width_masked=False, first_decoder=lambda spec: "dec_in"),
    # Zhang et al. 2020: every layer a stride-1 SAME convolution that keeps the image size, no dense
    # layer; `width` channels per hidden layer, the code a `code_size`-channel map of the input's size
    "fullconv": ModelKind(setup=_fullconv_setup,
                          hidden=lambda m, x, masks: _hidden_stack(m, _image(m, x), masks).reshape((x.shape[0], -1)),
                          pre_code=_fullconv_pre_code, decode=_fullconv_decode, check=_fullconv_check,
                          code_positions=lambda spec: spec.input_shape[0] * spec.input_shape[1]),
}


def size_masks(spec: ModelSpec, code_size: int, width: int) -> dict[str, jax.Array]:
    """1 for a member's own units, 0 for the padding up to the group's largest sizes.

    A kind without a packable width gets a constant hidden mask of 1; a convolutional code mask repeats
    per position (`ModelKind.code_positions`), so every position keeps the member's own channels.
    """
    kind = MODEL_KINDS[spec.kind]
    n, own = (spec.width, width) if kind.width_masked else (1, 1)
    hidden = (jnp.arange(n) < own).astype(jnp.float32)
    code = (jnp.arange(spec.code_size) < code_size).astype(jnp.float32)
    return {"code": jnp.tile(code, kind.code_positions(spec)), "hidden": hidden}


def pad_params(params: Any, like: Any) -> Any:
    """Zero-pad each leaf of a smaller model's params (on the host; leading member axes kept) to the
    trailing shape of `like`'s leaf, the larger model's."""
    def pad(p, big):
        p = np.asarray(p)
        lead = p.ndim - len(big.shape)
        return np.pad(p, [(0, 0)] * lead + [(0, b - n) for n, b in zip(p.shape[lead:], big.shape)])
    return jax.tree.map(pad, params, like)


class Autoencoder(nn.Module):
    """encode -> code stage -> decode; inputs and outputs are flat (B, D) whatever the kind."""

    spec: ModelSpec

    def setup(self):
        s = self.spec
        self.act = ACTIVATIONS[s.activation]
        MODEL_KINDS[s.kind].setup(self)
        self.heads = {name: dense(s.code_size, name) for name in CODE_STAGES[s.code_stage].heads}

    def hidden(self, x_BD: jax.Array, masks=None) -> jax.Array:
        """The encoder's last hidden representation (the input itself at depth 0), flat."""
        return MODEL_KINDS[self.spec.kind].hidden(self, x_BD, masks)

    def encode(self, x_BD: jax.Array, masks=None) -> dict[str, jax.Array]:
        """The code stage's output: `code` is what the decoder reads on the mean path; `pre` feeds penalties."""
        h = self.hidden(x_BD, masks)
        pre = masked(MODEL_KINDS[self.spec.kind].pre_code(self, h), masks, "code")
        heads = {name: layer(h) for name, layer in self.heads.items()}
        return CODE_STAGES[self.spec.code_stage].apply(self.spec, pre, heads, masks)

    def decode(self, code_BK: jax.Array, masks=None) -> jax.Array:
        """Decoder output before the output nonlinearity (logits for a sigmoid output)."""
        return MODEL_KINDS[self.spec.kind].decode(self, code_BK, masks)

    def __call__(self, x_BD: jax.Array, masks=None) -> jax.Array:
        """The deterministic mean-path reconstruction f(x) in data space."""
        return self.output_mean(self.decode(self.encode(x_BD, masks)["code"], masks))

    def output_mean(self, out_BD: jax.Array) -> jax.Array:
        return nn.sigmoid(out_BD) if self.spec.output == "sigmoid" else out_BD


@dataclasses.dataclass(frozen=True)
class MeanPath:
    """f(net, x_BD) on the mean path for members of one spec, net = (params, masks). Equal specs give
    equal (hashable) objects, so jitted diagnostics keyed on it compile once per spec, not per call."""

    spec: ModelSpec

    def __call__(self, net, x_BD: jax.Array) -> jax.Array:
        return reconstruct(self.spec, net[0], x_BD, net[1])


@dataclasses.dataclass(frozen=True)
class CodePath:
    """The code the decoder reads on the mean path, code(net, x_BD); hashable like `MeanPath`."""

    spec: ModelSpec

    def __call__(self, net, x_BD: jax.Array) -> jax.Array:
        return encode(self.spec, net[0], x_BD, net[1])["code"]


def init_params(spec: ModelSpec, key: jax.Array) -> Any:
    """Fresh parameters, then the code stage's own initialisation (e.g. top-k's tied decoder)."""
    # lazy_init runs only what the parameters need (not the forward pass), so called outside jit it costs
    # one cached program per leaf shape (layers.KERNEL_INIT) instead of a compile per spec.
    params = Autoencoder(spec).lazy_init(key, jax.ShapeDtypeStruct((1, spec.input_dim), jnp.float32))["params"]
    stage = CODE_STAGES[spec.code_stage]
    if stage.init is not None:
        params = stage.init(spec, params, MODEL_KINDS[spec.kind].first_decoder(spec))
    return params


def matmul_precision(spec: ModelSpec):
    """Context for tracing the spec's programs: every matmul in it (and its gradient, which keeps the
    forward's precision) runs at `spec.matmul_precision`. No-op on the CPU, which computes float32."""
    return jax.default_matmul_precision(spec.matmul_precision)


def reconstruct(spec: ModelSpec, params: Any, x_BD: jax.Array, masks=None) -> jax.Array:
    """f(x) on the mean path."""
    with matmul_precision(spec):
        return Autoencoder(spec).apply({"params": params}, x_BD, masks)


def encode(spec: ModelSpec, params: Any, x_BD: jax.Array, masks=None) -> dict[str, jax.Array]:
    with matmul_precision(spec):
        return Autoencoder(spec).apply({"params": params}, x_BD, masks, method=Autoencoder.encode)


def decode_logits(spec: ModelSpec, params: Any, code_BK: jax.Array, masks=None) -> jax.Array:
    """Decoder output before the output nonlinearity."""
    with matmul_precision(spec):
        return Autoencoder(spec).apply({"params": params}, code_BK, masks, method=Autoencoder.decode)


def decode(spec: ModelSpec, params: Any, code_BK: jax.Array, masks=None) -> jax.Array:
    """Data-space output (after the output nonlinearity) for given codes."""
    out = decode_logits(spec, params, code_BK, masks)
    return Autoencoder(spec).apply({"params": params}, out, method=Autoencoder.output_mean)


def sample_prior(spec: ModelSpec, params: Any, key: jax.Array, n: int, masks=None) -> jax.Array:
    """n data-space samples decoded from the VAE prior N(0, I) over the member's own code units."""
    z = code_noise(key, n, spec.code_size)
    return decode(spec, params, z if masks is None else z * masks["code"], masks)


def interpolate(spec: ModelSpec, params: Any, x_a_D: jax.Array, x_b_D: jax.Array, steps: int,
                masks=None) -> jax.Array:
    """Decoded points on the straight line between the mean codes of x_a and x_b, ends included."""
    code = encode(spec, params, jnp.stack([x_a_D, x_b_D]), masks)["code"]
    t = jnp.linspace(0.0, 1.0, steps)[:, None]
    return decode(spec, params, (1.0 - t) * code[0] + t * code[1], masks)
