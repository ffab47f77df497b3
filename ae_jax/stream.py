"""Where each training step's examples come from: the sampler both loaders share, and the grain
pipeline that streams batches from the host when the train set should not live on the device.

The sampler. Member m at step t trains on B indices drawn uniformly, with replacement, from [0, N):
`batch_indices(k_batch)` with `(k_batch, k_loss) = step_keys(member_key(seed_m), t)`. Each member
draws its own batches (seeds differ in data order as well as in initialisation, as in a solo run).

The two loaders (`config.data.loader`):
- `device`: the train set is put on the device once; the scanned chunk draws the indices and gathers.
- `grain`: `grain.MapDataset.range(steps).map(read_step)` draws the same indices on the host (JAX's
  CPU backend; threefry and randint are integer arithmetic, so every backend draws the same bits,
  checked against the device loader in tests/test_stream.py on CPU), gathers those rows from a random-access source
  (an in-memory/memory-mapped array, or a TFDS `array_record` data source) in `read_threads` threads,
  batches S steps into one (S, M, B, D) array (S: the most steps of a `train.log_every` chunk whose
  batches fit in `data.transfer_mb`), keeps `prefetch` of them ready, and `fit` puts transfer i+1 on
  the device while transfer i trains.
Same indices, same rows, same step function: both loaders give the same trajectory, so the loader is a
memory and speed choice that never changes a number, and `auto` may pick either by size. grain's own
`IndexSampler` (an epoch-wise shuffle shared by all members) was not used for that reason: it would
make the results depend on which loader ran. Chunk c depends only on (seeds, c), so a resumed run
restarts the stream at its checkpoint's chunk and stays exact.
"""

import dataclasses
import functools
from typing import Any, Iterator

import jax
import numpy as np

from ae_jax.config import DATA_LOADERS
from ae_jax.errors import ConfigError


# ----------------------------------------------------------------------------- the sampler (both loaders)

def member_key(seed: jax.Array) -> jax.Array:
    """The member's typed key; the key that `TrainState.key` holds."""
    return jax.random.fold_in(jax.random.key(seed), 1)


def step_keys(key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(k_batch, k_loss) of one member at one step."""
    return tuple(jax.random.split(jax.random.fold_in(key, step)))


def batch_indices(k_batch: jax.Array, batch: int, n: int | jax.Array) -> jax.Array:
    """The B example indices of one member's step, uniform with replacement over [0, n)."""
    return jax.random.randint(k_batch, (batch,), 0, n)


@functools.partial(jax.jit, static_argnames="batch")
def _step_indices(seeds_M: jax.Array, step: jax.Array, n: jax.Array, *, batch: int) -> jax.Array:
    return jax.vmap(lambda s: batch_indices(step_keys(member_key(s), step)[0], batch, n))(seeds_M)


class MemberSampler:
    """Every member's indices at a global step, computed on the host CPU (M, B) int32."""

    def __init__(self, seeds_M: np.ndarray, batch: int, n: int):
        try:
            self._cpu = jax.devices("cpu")[0]
        except RuntimeError:  # JAX_PLATFORMS without cpu: draw on the default device instead
            self._cpu = jax.devices()[0]
        self._seeds = jax.device_put(np.asarray(seeds_M, np.uint32), self._cpu)
        self._n = jax.device_put(np.int32(n), self._cpu)
        self.batch = batch

    def __call__(self, step: int) -> np.ndarray:
        step = jax.device_put(np.int32(step), self._cpu)
        return np.asarray(_step_indices(self._seeds, step, self._n, batch=self.batch))


# ----------------------------------------------------------------------------- sources and the pipeline

class ArraySource:
    """Rows of an (N, D) host array (in memory or `np.load(..., mmap_mode='r')`)."""

    def __init__(self, x_ND: np.ndarray):
        self.x_ND = x_ND

    def __len__(self) -> int:
        return len(self.x_ND)

    def rows(self, idx_K: np.ndarray) -> np.ndarray:
        return np.take(self.x_ND, idx_K, axis=0)


@dataclasses.dataclass(frozen=True)
class Streamed:
    """A train set for `train.fit` to stream: a source with `len()` and `rows(idx_K) -> (K, D) float32`,
    the per-dimension train range (salt-and-pepper values), and grain's read options."""

    source: Any
    lo_D: np.ndarray
    hi_D: np.ndarray
    read_threads: int = 2
    prefetch: int = 2  # transfers read ahead on the host
    transfer_mb: float = 16.0  # at most this much batch data per host-to-device transfer


def steps_per_transfer(chunk: int, step_bytes: int, transfer_mb: float) -> int:
    """The most steps of a `chunk` (a divisor of it, so every transfer has one shape) whose batches fit
    in `transfer_mb`; at least 1."""
    fit = max(1, int(transfer_mb * 2**20 // max(step_bytes, 1)))
    return max(d for d in range(1, min(chunk, fit) + 1) if chunk % d == 0)


def host_chunks(streamed: Streamed, seeds_M: np.ndarray, batch: int, chunk: int, n_chunks: int,
                start_chunk: int = 0) -> Iterator[np.ndarray]:
    """(T, M, B, D) float32 host batches of steps [c T, (c + 1) T) for c = start_chunk .. n_chunks-1,
    in order, via grain (T = `chunk`)."""
    import grain  # imported on this path only: 1.7 s

    sampler = MemberSampler(seeds_M, batch, len(streamed.source))

    def read_step(step: int) -> np.ndarray:
        idx_MB = sampler(step)
        return streamed.source.rows(idx_MB.reshape(-1)).reshape(idx_MB.shape + (-1,))

    options = grain.ReadOptions(num_threads=streamed.read_threads,
                                prefetch_buffer_size=streamed.prefetch * chunk)
    steps = grain.MapDataset.range(start_chunk * chunk, n_chunks * chunk).map(read_step)
    return iter(steps.to_iter_dataset(options).batch(chunk, drop_remainder=False))


# ----------------------------------------------------------------------------- choosing the loader

def choose_loader(data_cfg, train_bytes: int) -> str:
    """`device` or `grain` for `config.data`; `auto` streams train sets above `data.stream_above_mb`."""
    loader = data_cfg.loader
    if loader not in DATA_LOADERS:
        raise ConfigError(f"config.data.loader: must be one of {', '.join(map(repr, DATA_LOADERS))}, "
                          f"got {loader!r}")
    if loader == "auto":
        return "grain" if train_bytes > data_cfg.stream_above_mb * 2**20 else "device"
    return loader


def training_input(data_cfg, dataset) -> tuple[str, "np.ndarray | Streamed"]:
    """(loader, what `train.fit` takes as x_train) for a `data.Dataset` under `config.data`."""
    loader = choose_loader(data_cfg, dataset.x_train.nbytes)
    if loader == "device":
        return loader, dataset.x_train
    source = dataset.train_source if dataset.train_source is not None else ArraySource(dataset.x_train)
    return loader, Streamed(source, dataset.x_train.min(0), dataset.x_train.max(0),
                            int(data_cfg.read_threads), int(data_cfg.prefetch), float(data_cfg.transfer_mb))
