"""One autoencoder, fully connected or convolutional, whose code stage is where variants plug in.

Kinds: `mlp` (dense layers), `conv` (stride-2 convolutions down to a dense code, transposed
convolutions back up) and `fullconv` (Zhang et al. 2020's fully convolutional net: every layer a stride-1
SAME convolution that keeps the image size, no dense layer; `width` channels per hidden layer, and the
code is a `code_size`-channel feature map of the input's height and width).

The code stage turns the encoder's last hidden layer into the code the decoder reads:
  plain      code = code_activation(W h + b)                   (contract: depth 0 -> one layer each way)
  top-k      code = keep the k largest of code_activation(W h + b), zero the rest
  variational mean, logvar = W_mu h + b_mu, W_lv h + b_lv; training decodes mean + exp(logvar / 2) * eps,
             the mean path (diagnostics) decodes the mean
Everything else (noise, penalties) lives in `objectives`; the model never sees a clean/noisy switch.

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

from ae_jax.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "linear": lambda x: x,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "softplus": nn.softplus,
    "leaky_relu": nn.leaky_relu,
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes the parameter shapes and the code path: members sharing it share a program."""

    kind: str
    input_shape: tuple[int, ...]
    code_size: int
    depth: int
    width: int
    activation: str
    code_activation: str
    output: str
    channels: tuple[int, ...]
    kernel_size: int
    topk: int  # 0 = off
    variational: bool
    matmul_precision: str = "highest"  # config.MATMUL_PRECISIONS

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)


def model_spec(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> ModelSpec:
    """The static model description of a config on data whose examples have `input_shape`."""
    m = config.model
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
        topk=config.sparsity.k if config.sparsity.kind == "topk" else 0,
        variational=config.vae.enabled,
        matmul_precision=config.model.matmul_precision,
    )
    if spec.kind in ("conv", "fullconv") and len(spec.input_shape) != 3:
        raise ConfigError(f"config.model.kind: {spec.kind!r} needs image data (H, W, C), got examples of shape "
                          f"{spec.input_shape}")
    if spec.kind == "fullconv" and (config.sparsity.kind != "none" or config.vae.enabled):
        # Its code is a feature map, not a vector of code_size units: the code metrics assume the latter.
        raise ConfigError("config.model.kind: 'fullconv' supports neither sparsity.kind nor vae.enabled")
    if spec.kind == "conv":
        stride = 2 ** len(spec.channels)
        if spec.input_shape[0] % stride or spec.input_shape[1] % stride:
            raise ConfigError(f"config.model.channels: {len(spec.channels)} stride-2 layers need image sides "
                              f"divisible by {stride}, got {spec.input_shape[:2]}")
    return spec


def _masked(a: jax.Array, masks, name: str) -> jax.Array:
    return a if masks is None else a * masks[name]


def size_masks(spec: ModelSpec, code_size: int, width: int) -> dict[str, jax.Array]:
    """1 for a member's own units, 0 for the padding up to the group's largest sizes.

    `fullconv` masks channels: its hidden mask broadcasts over (H, W, width) maps, and its code mask
    covers the flat (H, W, code_size) code, so every position keeps the member's own channels.
    """
    by_width = spec.kind in ("mlp", "fullconv")  # `conv` has no width: its hidden mask is a constant 1
    hidden = (jnp.arange(spec.width if by_width else 1) < (width if by_width else 1)).astype(jnp.float32)
    code = (jnp.arange(spec.code_size) < code_size).astype(jnp.float32)
    if spec.kind == "fullconv":
        code = jnp.tile(code, spec.input_shape[0] * spec.input_shape[1])
    return {"code": code, "hidden": hidden}


def pad_params(params: Any, like: Any) -> Any:
    """Zero-pad each leaf of a smaller model's params to the shape of the group's largest model."""
    return jax.tree.map(lambda p, big: jnp.pad(p, [(0, b - s) for s, b in zip(p.shape, big.shape)]),
                        params, like)


def _top_k(code_BK: jax.Array, k: int) -> jax.Array:
    """Zero all but the k largest entries of each row (ties broken by position, so exactly k survive)."""
    _, idx = jax.lax.top_k(code_BK, k)
    keep = jnp.zeros(code_BK.shape, bool).at[jnp.arange(code_BK.shape[0])[:, None], idx].set(True)
    # A select, not a product with a 0/1 mask: -inf entries (masked units) would turn into NaN.
    return jnp.where(keep, code_BK, 0.0)


def code_noise(key: jax.Array, batch: int, code_size: int) -> jax.Array:
    """Standard normal (batch, code_size) whose column k depends only on (key, k), not on code_size.

    So a member packed into a wider group draws the same reparameterisation noise for its own units
    as the solo model of its real size (a plain `normal(key, shape)` changes with the shape).
    """
    draw = lambda k: jax.random.normal(jax.random.fold_in(key, k), (batch,))
    return jax.vmap(draw, out_axes=1)(jnp.arange(code_size))


def _same_padding(n: int, k: int, stride: int) -> tuple[int, int]:
    """XLA's SAME padding of one side of length n: the output has ceil(n / stride) positions."""
    total = max((-(-n // stride) - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def _transpose_padding(k: int, up: int) -> tuple[int, int]:
    """lax.conv_transpose's SAME padding of the zero-dilated input: the output is `up` times larger."""
    total = k + up - 2
    lo = k - 1 if up > k - 1 else -(-total // 2)
    return lo, total - lo


class PatchConv(nn.Module):
    """SAME 2-D convolution (stride `stride`), or transposed convolution (`up` > 1), as one patch matmul.

    Same parameters, initialisation and outputs as nn.Conv / nn.ConvTranspose. Why not those: XLA:CPU
    ran native convolutions inside the trainer's lax.scan about 5x slower than outside it, and vmapped
    over members they become grouped convolutions, slower still; slices and a batched matmul do not.
    """

    features: int
    kernel_size: int
    stride: int = 1
    up: int = 1

    @nn.compact
    def __call__(self, x_BHWC: jax.Array) -> jax.Array:
        k, stride = self.kernel_size, self.stride
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x_BHWC.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x = x_BHWC
        if self.up > 1:  # a transposed convolution is a convolution of the input with zeros between pixels
            gap = (0, 0, self.up - 1)
            x = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), gap, gap, (0, 0, 0)])
            pads = [_transpose_padding(k, self.up)] * 2
        else:
            pads = [_same_padding(n, k, stride) for n in x.shape[1:3]]
        x = jnp.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
        h, w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
        patches = jnp.concatenate([x[:, i:i + (h - 1) * stride + 1:stride, j:j + (w - 1) * stride + 1:stride]
                                   for i in range(k) for j in range(k)], axis=-1)
        return patches @ kernel.reshape(-1, self.features) + bias


class Autoencoder(nn.Module):
    """encode -> code stage -> decode; inputs and outputs are flat (B, D) whatever the kind."""

    spec: ModelSpec

    def setup(self):
        s = self.spec
        act = ACTIVATIONS[s.activation]
        if s.kind == "mlp":
            self.enc_hidden = [nn.Dense(s.width, name=f"enc_{i}") for i in range(s.depth)]
            self.dec_hidden = [nn.Dense(s.width, name=f"dec_{i}") for i in range(s.depth)]
        elif s.kind == "fullconv":
            self.enc_hidden = [PatchConv(s.width, s.kernel_size, name=f"enc_{i}") for i in range(s.depth)]
            self.dec_hidden = [PatchConv(s.width, s.kernel_size, name=f"dec_{i}") for i in range(s.depth)]
        else:
            self.enc_hidden = [PatchConv(ch, s.kernel_size, stride=2, name=f"enc_{i}")
                               for i, ch in enumerate(s.channels)]
            self.dec_hidden = [PatchConv(ch, s.kernel_size, up=2, name=f"dec_{i}")
                               for i, ch in enumerate(reversed(s.channels))]
            h, w, _ = s.input_shape
            self._bottom = (h // 2 ** len(s.channels), w // 2 ** len(s.channels), s.channels[-1])
            self.dec_in = nn.Dense(math.prod(self._bottom), name="dec_in")
        if s.kind == "fullconv":
            self.code = PatchConv(s.code_size, s.kernel_size, name="code")
        else:
            self.code = nn.Dense(s.code_size, name="code")
        if s.variational:
            self.code_logvar = nn.Dense(s.code_size, name="code_logvar")
        out_features = s.input_dim if s.kind == "mlp" else s.input_shape[-1]
        self.out = (nn.Dense(out_features, name="out") if s.kind == "mlp"
                    else PatchConv(out_features, s.kernel_size, name="out"))
        self._act = act

    def hidden(self, x_BD: jax.Array, masks=None) -> jax.Array:
        """The encoder's last hidden representation (the input itself at depth 0)."""
        h = x_BD
        if self.spec.kind != "mlp":
            h = h.reshape((h.shape[0],) + self.spec.input_shape)
        for layer in self.enc_hidden:
            h = _masked(self._act(layer(h)), masks, "hidden")
        return h.reshape((h.shape[0], -1))

    def encode(self, x_BD: jax.Array, masks=None) -> dict[str, jax.Array]:
        """The code stage: `code` is what the decoder reads on the mean path; `pre` feeds penalties."""
        s = self.spec
        h = self.hidden(x_BD, masks)
        if s.kind == "fullconv":  # the code layer convolves the last hidden map (flattened by `hidden`)
            pre = self.code(h.reshape((h.shape[0],) + s.input_shape[:2] + (-1,))).reshape((h.shape[0], -1))
        else:
            pre = self.code(h)
        pre = _masked(pre, masks, "code")
        if s.variational:
            logvar = _masked(self.code_logvar(h), masks, "code")
            return {"pre": pre, "code": pre, "mean": pre, "logvar": logvar}
        code = _masked(ACTIVATIONS[s.code_activation](pre), masks, "code")
        if s.topk:
            # Masked units must never win a slot (tanh codes can be negative), so rank them last.
            live = jnp.ones_like(code) if masks is None else masks["code"]
            code = jnp.where(live > 0, _top_k(jnp.where(live > 0, code, -jnp.inf), s.topk), 0.0)
        return {"pre": pre, "code": code}

    def decode(self, code_BK: jax.Array, masks=None) -> jax.Array:
        """Decoder output before the output nonlinearity (logits for a sigmoid output)."""
        s = self.spec
        if s.kind == "mlp":
            h = code_BK
            for layer in self.dec_hidden:
                h = _masked(self._act(layer(h)), masks, "hidden")
            return self.out(h)
        if s.kind == "fullconv":
            h = code_BK.reshape((code_BK.shape[0],) + s.input_shape[:2] + (s.code_size,))
            for layer in self.dec_hidden:
                h = _masked(self._act(layer(h)), masks, "hidden")
            return self.out(h).reshape((code_BK.shape[0], -1))
        h = self._act(self.dec_in(code_BK)).reshape((code_BK.shape[0],) + self._bottom)
        for layer in self.dec_hidden:
            h = self._act(layer(h))
        return self.out(h).reshape((code_BK.shape[0], -1))

    def __call__(self, x_BD: jax.Array, masks=None) -> jax.Array:
        """The deterministic mean-path reconstruction f(x) in data space."""
        return self.output_mean(self.decode(self.encode(x_BD, masks)["code"], masks))

    def output_mean(self, out_BD: jax.Array) -> jax.Array:
        return nn.sigmoid(out_BD) if self.spec.output == "sigmoid" else out_BD


def init_params(spec: ModelSpec, key: jax.Array) -> Any:
    """Fresh parameters; top-k codes start with the decoder's code layer tied to the encoder's transpose."""
    model = Autoencoder(spec)
    params = model.init(key, jnp.zeros((1, spec.input_dim)))["params"]
    if spec.topk:
        # Gao et al. 2024: W_dec = W_enc^T at init keeps early top-k codes from dying.
        first_dec = "out" if (spec.kind == "mlp" and spec.depth == 0) else (
            "dec_0" if spec.kind == "mlp" else "dec_in")
        enc_kernel = params["code"]["kernel"]
        if params[first_dec]["kernel"].shape == enc_kernel.T.shape:
            params = {**params, first_dec: {**params[first_dec], "kernel": enc_kernel.T}}
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
