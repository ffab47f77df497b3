"""Building blocks the model kinds share: activations by name, a tied dense layer and a convolution that vmaps well."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def _compiled(initializer: Callable) -> Callable:
    """`initializer(key, shape, dtype)` as one program per (shape, dtype), reused by every model of a process.

    Why: compiled inside a whole-model init program, every leaf's random normal is code generated again for
    each model spec (about 1 s per spec on a CPU, 32 specs in the quickstart); compiled alone, a leaf shape
    that many specs share (a 128x128 hidden layer) compiles once. Same values either way (threefry is exact)."""
    jitted = jax.jit(initializer, static_argnums=(1, 2))
    return lambda key, shape, dtype=jnp.float32: jitted(key, tuple(shape), jnp.dtype(dtype))


KERNEL_INIT = _compiled(nn.initializers.lecun_normal())  # Flax's default for Dense and Conv kernels
BIAS_INIT = _compiled(nn.initializers.zeros_init())


def dense(features: int, name: str) -> nn.Dense:
    """nn.Dense with Flax's default initialisation, through the compiled initializers above."""
    return nn.Dense(features, name=name, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT)


class TiedDense(nn.Module):
    """x W^T + b with W another layer's kernel (tied weights, Rifai et al. 2011): only the bias is its own,
    so the gradients of both uses of W add up in the one matrix."""

    features: int

    @nn.compact
    def __call__(self, x_BK: jax.Array, kernel_DK: jax.Array) -> jax.Array:
        bias = self.param("bias", BIAS_INIT, (self.features,))
        return x_BK @ kernel_DK.T + bias


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
        kernel = self.param("kernel", KERNEL_INIT, (k, k, x_BHWC.shape[-1], self.features))
        bias = self.param("bias", BIAS_INIT, (self.features,))
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
