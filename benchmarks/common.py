"""What every benchmark shares: the sizes, the small AE's config and plan, FLOP counts and timers."""

import dataclasses
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ae_jax import config as config_lib, train

# --matmul_precision sets it (benchmarks.bench.main); small_config() reads it, here and in child processes.
MATMUL_PRECISION = config_lib.base_config().model.matmul_precision


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything that sets how long the benchmark runs."""

    members: int = 16  # the sweep of same-shape small AEs (contract: at least 16)
    steps: int = 300
    batch: int = 128
    chunk: int = 100  # steps per dispatch, as a sweep with log_every=100 runs them
    repeats: int = 3
    peak_batch: int = 4096
    peak_width: int = 1024
    peak_steps: int = 2  # steps per timed chunk of the compute-bound run
    peak_repeats: int = 5
    matmul_n: int = 2048
    memory_members: int = 256
    memory_steps: int = 300
    scaling_members: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    scaling_steps: int = 200
    device_counts: tuple[int, ...] = (1, 2, 4)
    device_members: int = 64
    stream_examples: int = 100_000  # x 784 float32 = 314 MB
    stream_dim: int = 784
    stream_steps: int = 300
    # The quickstart end to end (benchmarks/quickstart.py): configs/quickstart.py[:ARG], optionally cut down.
    quickstart_arg: str = ""
    quickstart_steps: int = 0  # 0: the config's own
    quickstart_only: str = ""  # a member-name glob, as `--only` takes
    quickstart_cores: int = 0  # each side runs pinned to this many cores (0: all this process may use)
    # The Fashion-MNIST-sized case (benchmarks/fashion.py): 784-d input, compute-bound widths.
    fashion_members: int = 16
    fashion_width: int = 512
    fashion_code: int = 128
    fashion_batch: int = 128
    fashion_steps: int = 100
    fashion_chunk: int = 50
    fashion_examples: int = 10_000
    # W&B's cost (benchmarks/wandb_cost.py): the small AE sweep with offline live logging vs disabled.
    wandb_members: int = 16
    wandb_steps: int = 2000
    wandb_log_every: int = 20  # 100 points per curve: five times the config's default resolution


FULL = Sizes()
# On an accelerator a 2-step chunk of the peak run is launch-bound and a 2048 matmul too small to set the
# peak: longer chunks and a matmul the size accelerator vendors quote.
ACCELERATOR = Sizes(peak_steps=50, matmul_n=8192)
QUICK = Sizes(members=4, steps=40, chunk=20, repeats=1, peak_batch=1024, peak_width=256, peak_steps=2,
              peak_repeats=3, matmul_n=1024, memory_steps=10, scaling_members=(1, 4, 16),
              scaling_steps=40, device_members=8, stream_examples=10_000, stream_steps=40,
              quickstart_arg="smoke", quickstart_steps=100, quickstart_only="code_size=8,depth=0",
              fashion_members=4, fashion_width=256, fashion_code=64, fashion_batch=64, fashion_steps=20,
              fashion_chunk=10, fashion_examples=1_000, wandb_members=2, wandb_steps=200, wandb_log_every=10)


# ----------------------------------------------------------------------------- the small AE sweep

def small_config(steps: int = 300, batch: int = 128) -> ml_collections.ConfigDict:
    """The contract's plain AE: 64-32-64 ReLU (depth 0, code 32) on digits, Adam."""
    c = config_lib.base_config()
    c.model.matmul_precision = MATMUL_PRECISION
    c.train.steps, c.train.batch_size = steps, batch
    return c


def small_plan(sizes: Sizes, steps: int | None = None) -> train.Plan:
    steps = steps or sizes.steps
    return train.plan_of(small_config(steps, sizes.batch), (64,), chunk=min(sizes.chunk, steps))


def sweep_settings(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeds 0..m-1 and learning rates spread log-uniformly over [3e-4, 3e-3]."""
    return np.arange(m, dtype=np.uint32), np.geomspace(3e-4, 3e-3, m).astype(np.float32)


def hparams(learning_rates: np.ndarray, config: ml_collections.ConfigDict | None = None) -> dict[str, np.ndarray]:
    """The engine's traced hyperparameters: `config`'s (default: the small AE's), one learning rate per member."""
    members = []
    for lr in learning_rates:
        c = ml_collections.ConfigDict((config or small_config()).to_dict())
        c.train.learning_rate = float(lr)
        members.append(c)
    return train.hparams_of(members)


def mlp_dims(spec) -> list[int]:
    """Layer widths of a plan's MLP, input first (`plan.spec` of `train.plan_of`)."""
    return [spec.input_dim] + [spec.width] * spec.depth + [spec.code_size] + [spec.width] * spec.depth + [
        spec.input_dim]


def dense_train_flops(batch: int, dims: list[int]) -> int:
    """Matmul FLOPs of one training step of an MLP with layer widths `dims` (input first)."""
    # Forward: 2*B*in*out per dense layer. Backward: the weight gradient costs the same again for every
    # layer, the input gradient too for every layer but the first (nothing needs d loss / d x), so a step
    # is 3x forward minus 2*B*in*out of the first layer (the usual "backward = 2x forward" overcounts by
    # that). Biases, activations and Adam are O(params + B*width), under 1% at the benchmark sizes and not
    # counted; XLA's cost analysis, which counts them, cross-checks this (benchmarks.peak, tests).
    macs = [d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:])]
    return 2 * batch * (3 * sum(macs) - macs[0])


# ----------------------------------------------------------------------------- timers

def seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def time_matmul(n: int, precision: str, calls: int = 3) -> float:
    """Median seconds of a jitted float32 (n, n) @ (n, n) at `precision`, steady state."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: jnp.matmul(a, b, precision=precision))
    jax.block_until_ready(mm(a, a))
    return statistics.median(seconds(mm, a, a) for _ in range(calls))


def ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(num) / statistics.median(den)


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB."""
    # VmHWM, not getrusage: after fork+exec, Linux starts ru_maxrss at the parent's RSS.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def torch_device() -> str:
    """Where the PyTorch peer runs: on the GPU when JAX runs on one and torch can reach it, else the CPU."""
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def device_info() -> dict:
    d = jax.devices()[0]
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {"device_kind": d.device_kind, "platform": d.platform, "device_count": jax.device_count(),
            "cpu_model": cpu, "cpu_cores": len(os.sched_getaffinity(0)), "jax": jax.__version__,
            "torch": torch_version(), "python": platform.python_version()}
