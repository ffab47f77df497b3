"""Measures the training engine side by side in one run: `python -m ae_jax.bench [--quick] [--scaling|--stream]`.

Prints one JSON object with the contract keys (CONTRACT.md, "Benchmark keys") and the raw timings
behind each ratio. The machine may be shared, so the two sides of every ratio are timed alternately
in the same process, `repeats` times, and medians are divided. `--scaling` instead prints (and writes
to benchmarks/scaling.md) member-steps/s against the number of members and of forced host devices.
`--stream` instead times the grain loader against the device loader on a train set of a few hundred MB.
PyTorch is optional (requirements-bench.txt): without it `over_pytorch` is null.
"""

import argparse
import dataclasses
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any
from pathlib import Path

# Threads pinned to the core count before torch (if present) starts its OpenMP pool (PITFALLS.md).
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from ae_jax import config as config_lib, data as data_lib, models, objectives, sharding, stream, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = ("vectorized_over_sequential", "over_pytorch", "peak_fraction", "device")


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


FULL = Sizes()
# On an accelerator a 2-step chunk of the peak run is launch-bound and a 2048 matmul too small to set the
# peak: longer chunks and a matmul the size accelerator vendors quote.
ACCELERATOR = Sizes(peak_steps=50, matmul_n=8192)
QUICK = Sizes(steps=40, chunk=20, repeats=1, peak_batch=1024, peak_width=256, peak_steps=2,
              peak_repeats=3, matmul_n=1024, memory_steps=10, scaling_members=(1, 4, 16),
              scaling_steps=40, device_members=8, stream_examples=10_000, stream_steps=40)


# ----------------------------------------------------------------------------- the small AE sweep

MATMUL_PRECISION = config_lib.base_config().model.matmul_precision  # --matmul_precision sets it


def small_config():
    """The contract's plain AE: 64-32-64 ReLU (depth 0, code 32) on digits, Adam."""
    c = config_lib.base_config()
    c.model.matmul_precision = MATMUL_PRECISION
    return c


def small_plan(sizes: Sizes, steps: int | None = None) -> train.Plan:
    c = small_config()
    steps = steps or sizes.steps
    return train.Plan(models.model_spec(c, (64,)), objectives.objective_spec(c, False), "adam", "constant",
                      sizes.batch, steps, min(sizes.chunk, steps))


def sweep_settings(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeds 0..m-1 and learning rates spread log-uniformly over [3e-4, 3e-3]."""
    return np.arange(m, dtype=np.uint32), np.geomspace(3e-4, 3e-3, m).astype(np.float32)


def hparams(learning_rates: np.ndarray) -> dict[str, np.ndarray]:
    """The engine's traced hyperparameters: base-config defaults, one learning rate per member."""
    c = small_config()
    hp = {name: np.full((len(learning_rates),), float(config_lib._get(c, key)), np.float32)
          for name, key in train.HPARAMS.items()}
    hp["learning_rate"] = np.asarray(learning_rates, np.float32)
    return hp


def hand_program(spec: models.ModelSpec, x_ND: np.ndarray, seed: int, lr: float, steps: int, batch: int):
    """(jitted run(params) -> ((params, opt_state), losses), initial params) of one member written by hand."""
    # The engine member's initialisation, batches and Adam update, so both sides do the same work and end
    # at the same params; `lr` and `seed` are Python numbers, so each member compiles its own program,
    # as a by-hand sweep does.
    key = jax.random.key(seed)
    params = models.init_params(spec, jax.random.fold_in(key, 0))
    opt = optax.adam(lr)
    k_member = jax.random.fold_in(key, 1)
    x = jnp.asarray(x_ND)

    def loss(p, x_BD):
        out = models.decode_logits(spec, p, models.encode(spec, p, x_BD)["code"])
        return jnp.square(out - x_BD).sum(-1).mean()

    def step(carry, i):
        p, o = carry
        k_batch, _ = jax.random.split(jax.random.fold_in(k_member, i))
        x_BD = x[jax.random.randint(k_batch, (batch,), 0, x.shape[0])]
        value, grads = jax.value_and_grad(loss)(p, x_BD)
        updates, o = opt.update(grads, o, p)
        return (optax.apply_updates(p, updates), o), value

    return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), jnp.arange(steps))), params


def run_sequential(plan: train.Plan, x_ND, seeds, lrs) -> tuple[dict, list]:
    """Member after member, each its own program; returns (seconds by phase, final params)."""
    # total_s is what a by-hand sweep pays (eager init, compile, first run); warm_run_s runs each compiled
    # program again (median of 3), so that a first run's allocations do not count as training.
    t = {"init_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "warm_run_s": 0.0}
    finals = []
    for seed, lr in zip(seeds, lrs):
        t0 = time.perf_counter()
        run, params = hand_program(plan.spec, x_ND, int(seed), float(lr), plan.steps, plan.batch_size)
        jax.block_until_ready(params)
        t1 = time.perf_counter()
        compiled = run.lower(params).compile()
        t2 = time.perf_counter()
        (final, _), losses = compiled(params)
        jax.block_until_ready((final, losses))
        t3 = time.perf_counter()
        t["warm_run_s"] += statistics.median(_seconds(compiled, params) for _ in range(3))
        t["init_s"] += t1 - t0
        t["compile_s"] += t2 - t1
        t["run_s"] += t3 - t2
        finals.append(final)
    t["total_s"] = t["init_s"] + t["compile_s"] + t["run_s"]
    return t, finals


def fit_cold(plan: train.Plan, x_ND, seeds, lrs) -> tuple[float, train.TrainState]:
    """Wall time of `train.fit` with nothing compiled yet (its compile counted once)."""
    train.compile_plan.cache_clear()
    jax.clear_caches()
    t0 = time.perf_counter()
    state, curves = train.fit(plan, seeds, hparams(lrs), x_ND)
    jax.block_until_ready((state, curves))
    return time.perf_counter() - t0, state


def engine_setup(plan: train.Plan, seeds, lrs, x_ND):
    """(fresh_state(), run(state)): `train.fit`'s set-up done once, so that its training alone can be timed."""
    # Mirrors fit (mesh, padding, sharding, the plan's two compiled programs); keep the two in step.
    init, chunk = train.compile_plan(plan)
    mesh = sharding.member_mesh()
    m = len(seeds)
    sizes_M = np.tile([plan.spec.code_size, plan.spec.width], (m, 1)).astype(np.int32)
    seeds_M, sizes_M, hp_M = sharding.pad_members((np.asarray(seeds, np.uint32), sizes_M, hparams(lrs)),
                                                  sharding.padded_size(m, mesh))
    x = jnp.asarray(x_ND)
    data = sharding.replicate(train.Data(x, x.min(0), x.max(0)), mesh)
    hp = sharding.shard_members(hp_M, mesh)
    params = sharding.shard_members(train.init_params(plan, seeds_M, sizes_M), mesh)
    args = sharding.shard_members((seeds_M, hp, sizes_M), mesh)

    def fresh_state():
        return jax.block_until_ready(init(params, *args))

    def run(state):
        for _ in range(plan.n_chunks):
            state, metrics = chunk(state, hp, data)
        return jax.block_until_ready((state, metrics))[0]

    return fresh_state, run


def _seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def time_steady(fresh_state, run, calls: int = 3) -> float:
    """Seconds of one full training run on already-compiled programs (median of `calls`)."""
    return statistics.median(_seconds(run, fresh_state()) for _ in range(calls))


# ----------------------------------------------------------------------------- PyTorch peer

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


def torch_train(x_ND: np.ndarray, dims: list[int], steps: int, batch: int, lr: float, seed: int,
                threads: int) -> float:
    """Seconds to train one AE as PyTorch AE libraries do: eager nn.Sequential, backward, Adam step."""
    # Random batches drawn from an in-memory tensor with replacement, as the engine draws them.
    import torch

    torch.set_num_threads(threads)
    device = torch_device()
    x = torch.from_numpy(np.array(x_ND)).to(device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    layers = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    for _ in range(steps):
        x_BD = x[torch.randint(0, x.shape[0], (batch,), generator=gen, device=device)]
        loss = ((model(x_BD) - x_BD) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- compute-bound run

def dense_train_flops(batch: int, dims: list[int]) -> int:
    """Matmul FLOPs of one training step of an MLP with layer widths `dims` (input first)."""
    # Forward: 2*B*in*out per dense layer. Backward: the weight gradient costs the same again for every
    # layer, the input gradient too for every layer but the first (nothing needs d loss / d x), so a step
    # is 3x forward minus 2*B*in*out of the first layer (the usual "backward = 2x forward" overcounts by
    # that). Biases, activations and Adam are O(params + B*width), under 1% at the benchmark sizes and not
    # counted; XLA's cost analysis, which counts them, cross-checks this (run_peak, tests).
    macs = [d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:])]
    return 2 * batch * (3 * sum(macs) - macs[0])


def mlp_dims(spec: models.ModelSpec) -> list[int]:
    return [spec.input_dim] + [spec.width] * spec.depth + [spec.code_size] + [spec.width] * spec.depth + [
        spec.input_dim]


def xla_step_flops(plan: train.Plan, x_ND: np.ndarray) -> float:
    """XLA's cost-analysis FLOPs of one engine step of one member (all ops, not just matmuls)."""
    seeds, lrs = sweep_settings(1)
    init, _ = train.compile_plan(plan)
    sizes = np.array([[plan.spec.code_size, plan.spec.width]], np.int32)
    hp = hparams(lrs)
    like = jax.eval_shape(functools.partial(models.init_params, plan.spec), jax.random.key(0))
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1,) + a.shape, a.dtype), like)
    state = jax.eval_shape(init, params, seeds, hp, sizes)
    x = jnp.asarray(x_ND)
    step = jax.jit(jax.vmap(functools.partial(train.train_step, plan=plan), in_axes=(0, 0, None)))
    lowered = step.lower(state, hp, train.Data(x, x.min(0), x.max(0)))
    # Some backends (the GPU in jax 0.11) answer only for the compiled program, some as a list per module.
    cost = lowered.cost_analysis() or lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return float(cost["flops"]) if cost and "flops" in cost else float("nan")


def peak_plan(sizes: Sizes, steps: int) -> train.Plan:
    c = small_config()
    c.model.depth, c.model.width, c.model.code_size = 1, sizes.peak_width, sizes.peak_width
    return train.Plan(models.model_spec(c, (784,)), objectives.objective_spec(c, False), "adam", "constant",
                      sizes.peak_batch, steps, sizes.peak_steps)


def time_matmul(n: int, precision: str, calls: int = 3) -> float:
    """Median seconds of a jitted float32 (n, n) @ (n, n) at `precision`, steady state."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: jnp.matmul(a, b, precision=precision))
    jax.block_until_ready(mm(a, a))
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a, a))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def run_peak(sizes: Sizes) -> dict:
    """Achieved FLOP/s of the engine on a compute-bound AE over measured matmul FLOP/s, interleaved."""
    plan = peak_plan(sizes, steps=10 * sizes.peak_steps * (sizes.peak_repeats + 1))
    x = np.random.default_rng(0).uniform(size=(2 * sizes.peak_batch, 784)).astype(np.float32)
    flops_step = dense_train_flops(plan.batch_size, mlp_dims(plan.spec))
    xla_flops = xla_step_flops(plan, x)
    seeds, lrs = sweep_settings(1)
    init, chunk = train.compile_plan(plan)
    sizes_1 = np.array([[plan.spec.code_size, plan.spec.width]], np.int32)
    hp = hparams(lrs)
    state = init(train.init_params(plan, seeds, sizes_1), seeds, hp, sizes_1)
    xj = jnp.asarray(x)
    data = train.Data(xj, xj.min(0), xj.max(0))
    t0 = time.perf_counter()
    state = jax.block_until_ready(chunk(state, hp, data))[0]
    first = time.perf_counter() - t0
    mm_flops = 2 * sizes.matmul_n ** 3
    chunk_s, mm_s, fractions = [], [], []
    for _ in range(sizes.peak_repeats):
        # Like with like: the matmul at the precision the engine's matmuls run at (model.matmul_precision).
        before = time_matmul(sizes.matmul_n, plan.spec.matmul_precision)
        t0 = time.perf_counter()
        state = jax.block_until_ready(chunk(state, hp, data))[0]
        chunk_s.append(time.perf_counter() - t0)
        mm_s.append((before + time_matmul(sizes.matmul_n, plan.spec.matmul_precision)) / 2)
        fractions.append((plan.chunk * flops_step / chunk_s[-1]) / (mm_flops / mm_s[-1]))
    return {
        "peak_fraction": statistics.median(fractions),
        "timings": {"peak_compile_and_first_chunk_s": first, "peak_chunk_s": chunk_s, "matmul_s": mm_s},
        "flops": {
            "model": f"{'-'.join(map(str, mlp_dims(plan.spec)))} ReLU, batch {plan.batch_size}, float32",
            "per_step_analytic": flops_step,
            "per_step_xla_cost_analysis": xla_flops,
            "steps_per_timed_chunk": plan.chunk,
            "achieved_gflops_median": statistics.median(plan.chunk * flops_step / t for t in chunk_s) / 1e9,
            "matmul": f"{sizes.matmul_n}x{sizes.matmul_n} float32, precision {plan.spec.matmul_precision}",
            "matmul_gflops_median": statistics.median(mm_flops / t for t in mm_s) / 1e9,
        },
    }


# ----------------------------------------------------------------------------- subprocess measurements

def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB."""
    # VmHWM, not getrusage: after fork+exec, Linux starts ru_maxrss at the parent's RSS.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(job: dict, devices: int = 1, timeout: float = 900, platform: str = "cpu") -> dict:
    """Runs `job` in a fresh Python on `platform` (with `devices` forced host devices on the CPU);
    returns its JSON answer."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env = {**os.environ, "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"]),
           "JAX_PLATFORMS": platform, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           # An accelerator's peak is read from its allocator, which must not grab 75% of memory up front.
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    env.pop("JAX_NUM_CPU_DEVICES", None)
    if platform != "cpu":  # let JAX pick the accelerator ("gpu" would also probe ROCm)
        env.pop("JAX_PLATFORMS")
    out = subprocess.run([sys.executable, "-m", "ae_jax.bench", "--child", json.dumps(job),
                          "--matmul_precision", MATMUL_PRECISION], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {job} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(job: dict) -> dict:
    """The measurements that need their own process: peak memory, or a forced device count."""
    x = data_lib.load(small_config().data).x_train
    sizes = Sizes(batch=job["batch"], chunk=job["chunk"])
    plan = small_plan(sizes, steps=job["steps"])
    seeds, lrs = sweep_settings(job["members"])
    if job["kind"] == "memory":
        jax.block_until_ready(jnp.ones(8) + 1)
        base = peak_rss_mib()
        t0 = time.perf_counter()
        state, curves = train.fit(plan, seeds, hparams(lrs), x)
        jax.block_until_ready((state, curves))
        out = {"peak_rss_mib": peak_rss_mib(), "baseline_rss_mib": base, "fit_s": time.perf_counter() - t0}
        stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
        if stats and "peak_bytes_in_use" in stats:
            out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
        return out
    cold, _ = fit_cold(plan, x, seeds, lrs)
    fresh_state, run = engine_setup(plan, seeds, lrs, x)
    run(fresh_state())
    steady = time_steady(fresh_state, run, job["repeats"])
    return {"devices": jax.local_device_count(), "fit_cold_s": cold, "steady_s": steady}


def measure_memory(sizes: Sizes) -> dict:
    """Peak memory of a fresh process training the big group: host RSS, and the device's own peak on an
    accelerator (where the training state lives)."""
    return run_child({"kind": "memory", "members": sizes.memory_members, "steps": sizes.memory_steps,
                      "batch": sizes.batch, "chunk": min(sizes.chunk, sizes.memory_steps)},
                     platform=jax.default_backend())


# ----------------------------------------------------------------------------- the whole run

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


def ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(num) / statistics.median(den)


def warm_up(x_ND) -> None:
    """Pays the process's one-off costs (first compile, first traces) on both sides before any timing."""
    plan = small_plan(Sizes(steps=2, chunk=2))
    run_hand, params = hand_program(plan.spec, x_ND, 0, 1e-3, plan.steps, plan.batch_size)
    jax.block_until_ready(run_hand(params))
    fit_cold(plan, x_ND, *sweep_settings(1))


def torch_threads(x_ND, dims, steps: int, batch: int) -> tuple[int, dict[int, float]]:
    """The faster torch thread count for this model, and the seconds of the short run that chose it."""
    # OpenMP's 2 threads lost up to 100x to 1 on this shared 2-core machine; the peer should not pay for that.
    probe = {n: torch_train(x_ND, dims, min(steps, 10), batch, 1e-3, 0, n)
             for n in sorted({len(os.sched_getaffinity(0)), 1}, reverse=True)}
    return min(probe, key=probe.get), probe


def run(sizes: Sizes, with_torch: bool = True) -> dict:
    """Every contract key and the raw timings behind it, both sides of each ratio interleaved."""
    load_before = os.getloadavg()
    x = data_lib.load(small_config().data).x_train
    plan = small_plan(sizes)
    seeds, lrs = sweep_settings(sizes.members)
    use_torch = with_torch and torch_version() is not None
    dims = mlp_dims(plan.spec)
    warm_up(x)

    t = {k: [] for k in ("seq_total_s", "seq_init_s", "seq_compile_s", "seq_first_run_s", "seq_warm_run_s",
                         "fit_cold_s", "engine_run_s", "fit_cold_1_s", "engine_run_1_s")}
    torch_t = {"torch_sweep_s": [], "torch_model_s": [], "torch_threads": [], "torch_thread_probe": []}
    for _ in range(sizes.repeats):
        seq, _ = run_sequential(plan, x, seeds, lrs)
        for k, name in (("total", "total"), ("init", "init"), ("compile", "compile"), ("run", "first_run"),
                        ("warm_run", "warm_run")):
            t[f"seq_{name}_s"].append(seq[f"{k}_s"])
        t["fit_cold_s"].append(fit_cold(plan, x, seeds, lrs)[0])
        t["engine_run_s"].append(time_steady(*engine_setup(plan, seeds, lrs, x)))
        t["fit_cold_1_s"].append(fit_cold(plan, x, seeds[:1], lrs[:1])[0])
        t["engine_run_1_s"].append(time_steady(*engine_setup(plan, seeds[:1], lrs[:1], x)))
        if use_torch:
            n, probe = torch_threads(x, dims, plan.steps, plan.batch_size)
            per_model = [torch_train(x, dims, plan.steps, plan.batch_size, float(lr), int(s), n)
                         for s, lr in zip(seeds, lrs)]
            torch_t["torch_threads"].append(n)
            torch_t["torch_thread_probe"].append({f"{k}_threads_s": v for k, v in probe.items()})
            torch_t["torch_sweep_s"].append(sum(per_model))
            torch_t["torch_model_s"].append(statistics.median(per_model))

    out = {
        "vectorized_over_sequential": ratio(t["seq_total_s"], t["fit_cold_s"]),
        "vectorized_over_sequential_steady": ratio(t["seq_warm_run_s"], t["engine_run_s"]),
        "over_pytorch": None,
    }
    if use_torch:
        out.update({
            "over_pytorch": ratio(torch_t["torch_model_s"], t["fit_cold_1_s"]),
            "over_pytorch_steady": ratio(torch_t["torch_model_s"], t["engine_run_1_s"]),
            "over_pytorch_sweep": ratio(torch_t["torch_sweep_s"], t["fit_cold_s"]),
            "over_pytorch_sweep_steady": ratio(torch_t["torch_sweep_s"], t["engine_run_s"]),
        })
    elif not with_torch:
        out["note"] = "PyTorch peer skipped (--no-torch), so over_pytorch is null"
    else:
        out["note"] = ("PyTorch is not installed, so over_pytorch is null: "
                       "pip install -r requirements-bench.txt to measure it")
    peak = run_peak(sizes)
    out["peak_fraction"] = peak["peak_fraction"]
    mem = measure_memory(sizes)
    out[f"memory_{sizes.memory_members}_members_mib"] = mem["peak_rss_mib"]
    if "device_peak_mib" in mem:
        out[f"memory_{sizes.memory_members}_members_device_mib"] = mem["device_peak_mib"]
    out["device"] = {**device_info(), "torch_device": torch_device() if use_torch else None,
                     "matmul_precision": small_config().model.matmul_precision,
                     "load_average_before": load_before[0],
                     "load_average_after": os.getloadavg()[0]}
    out["timings_s"] = {**t, **torch_t, **peak["timings"], "memory_baseline_rss_mib": mem["baseline_rss_mib"],
                        "memory_fit_s": mem["fit_s"]}
    out["flops"] = peak["flops"]
    out["settings"] = {
        "sweep": f"{sizes.members} members, {'-'.join(map(str, dims))} ReLU on digits "
                 f"({x.shape[0]}x{x.shape[1]}), batch {plan.batch_size}, {plan.steps} Adam steps, "
                 f"{plan.chunk} steps per engine dispatch, learning rates {lrs[0]:.1e}..{lrs[-1]:.1e}",
        "repeats": sizes.repeats,
        "sequential": "each member its own jax.jit(lax.scan) of optax.adam(lr): total = eager init + "
                      "compile + first run; warm_run = the same compiled programs run again",
        "engine": "fit_cold = train.fit with empty caches; engine_run = the same programs' chunks only",
        "pytorch": "eager nn.Sequential + Adam, one model after another, faster of 1 and all threads",
        "ratios": "median of the repeats of each side; *_steady: training runs only, nothing compiled",
        "memory_run": f"{sizes.memory_members} members, {sizes.memory_steps} steps, one train.fit group, "
                      "peak RSS (VmHWM) of a fresh process",
    }
    return out


def run_scaling(sizes: Sizes) -> str:
    """Markdown: steady member-steps/s vs members in one group, and vs forced host devices."""
    x = data_lib.load(small_config().data).x_train
    plan = small_plan(sizes, steps=sizes.scaling_steps)
    warm_up(x)
    rows = ["| members | fit incl. compile (s) | training only (s) | member-steps/s (training only) "
            "| member-steps/s (incl. compile) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for m in sizes.scaling_members:
        seeds, lrs = sweep_settings(m)
        cold, _ = fit_cold(plan, x, seeds, lrs)
        fresh_state, go = engine_setup(plan, seeds, lrs, x)
        steady = time_steady(fresh_state, go, sizes.repeats)
        work = m * plan.steps
        rows.append(f"| {m} | {cold:.2f} | {steady:.3f} | {work / steady:,.0f} | {work / cold:,.0f} |")
    dev_rows = ["| forced host devices | members | fit incl. compile (s) | training only (s) "
                "| member-steps/s (training only) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for n in sizes.device_counts:
        r = run_child({"kind": "devices", "members": sizes.device_members, "steps": plan.steps,
                       "batch": plan.batch_size, "chunk": plan.chunk, "repeats": sizes.repeats}, devices=n)
        work = sizes.device_members * plan.steps
        dev_rows.append(f"| {r['devices']} | {sizes.device_members} | {r['fit_cold_s']:.2f} | "
                        f"{r['steady_s']:.3f} | {work / r['steady_s']:,.0f} |")
    info = device_info()
    return "\n".join([
        "# Scaling of the vectorised engine",
        "",
        f"Written by `python -m ae_jax.bench --scaling` on {info['cpu_model']} ({info['cpu_cores']} cores), "
        f"jax {info['jax']}, load average {os.getloadavg()[0]:.1f} at the end.",
        f"Model: {'-'.join(map(str, mlp_dims(plan.spec)))} ReLU on digits, batch {plan.batch_size}, "
        f"{plan.steps} Adam steps, {plan.chunk} steps per dispatch; one `train.fit` group. "
        f"Training-only times are medians of {sizes.repeats}.",
        "",
        "## Members in one group (1 device)",
        "",
        *rows,
        "",
        f"## Forced host devices ({sizes.device_members} members sharded over the member axis)",
        "",
        "`XLA_FLAGS=--xla_force_host_platform_device_count=N`, one subprocess each. The host devices "
        f"share the same {info['cpu_cores']} physical cores, so more devices cannot add compute here; "
        "any difference comes from how XLA runs the smaller per-device programs (and from the load), "
        "not from added hardware.",
        "",
        *dev_rows,
        "",
    ])


# ----------------------------------------------------------------------------- grain vs device loader

def run_stream(sizes: Sizes) -> dict:
    """steps/s of the same 16-member sweep fed by the grain loader and by the device loader, alternated;
    the grain loader at its default transfer size and at a smaller and a larger one."""
    load_before = os.getloadavg()
    x = np.random.default_rng(0).random((sizes.stream_examples, sizes.stream_dim), dtype=np.float32)
    c = small_config()
    plan = train.Plan(models.model_spec(c, (sizes.stream_dim,)), objectives.objective_spec(c, False), "adam",
                      "constant", sizes.batch, sizes.stream_steps, min(sizes.chunk, sizes.stream_steps))
    seeds, lrs = sweep_settings(sizes.members)
    default = float(c.data.transfer_mb)
    variants = {mb: stream.Streamed(stream.ArraySource(x), x.min(0), x.max(0), c.data.read_threads,
                                    c.data.prefetch, mb) for mb in (default / 4, default, default * 4)}
    step_bytes = sizes.members * plan.batch_size * x.shape[1] * 4
    per = {mb: stream.steps_per_transfer(plan.chunk, step_bytes, mb) for mb in variants}
    steps = plan.n_chunks * plan.chunk

    def timed_fit(x_train) -> tuple[float, Any]:
        t0 = time.perf_counter()
        state, _ = train.fit(plan, seeds, hparams(lrs), x_train)
        jax.block_until_ready(state.params)
        return time.perf_counter() - t0, state.params

    def timed_read(streamed) -> float:
        t0 = time.perf_counter()
        s = per[streamed.transfer_mb]
        for _ in stream.host_chunks(streamed, seeds, plan.batch_size, s, steps // s):
            pass
        return time.perf_counter() - t0

    for x_train in (x, *variants.values()):  # compiles every program before any timing
        timed_fit(x_train)
    t = {"device_fit_s": [], **{f"grain_{mb:g}mb_fit_s": [] for mb in variants}, "grain_reader_only_s": []}
    for _ in range(sizes.repeats):
        dt, p_device = timed_fit(x)
        t["device_fit_s"].append(dt)
        for mb, streamed in variants.items():
            dt, p_grain = timed_fit(streamed)
            t[f"grain_{mb:g}mb_fit_s"].append(dt)
            diff = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), p_device, p_grain)))
        t["grain_reader_only_s"].append(timed_read(variants[default]))
    rate = lambda key: steps / statistics.median(t[key])
    return {
        "grain_over_device_steps_per_s": rate(f"grain_{default:g}mb_fit_s") / rate("device_fit_s"),
        "device_steps_per_s": rate("device_fit_s"),
        "grain_steps_per_s": rate(f"grain_{default:g}mb_fit_s"),
        "grain_steps_per_s_by_transfer_mb": {f"{mb:g}": rate(f"grain_{mb:g}mb_fit_s") for mb in variants},
        "grain_reader_only_steps_per_s": rate("grain_reader_only_s"),
        "max_abs_param_difference_last_grain_run": diff,
        "train_set_mb": x.nbytes / 2**20,
        "device": {**device_info(), "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0]},
        "timings_s": t,
        "settings": {
            "data": f"{x.shape[0]}x{x.shape[1]} float32 uniform in [0, 1], host memory",
            "sweep": f"{sizes.members} members, {'-'.join(map(str, mlp_dims(plan.spec)))} ReLU, batch "
                     f"{plan.batch_size}, {steps} Adam steps, {plan.chunk} steps per chunk",
            "grain": f"read_threads={c.data.read_threads}, prefetch={c.data.prefetch}; transfers of (S, M, B, D) = "
                     f"(S, {sizes.members}, {plan.batch_size}, {x.shape[1]}) float32 with S = "
                     + ", ".join(f"{per[mb]} at transfer_mb={mb:g} ({per[mb] * step_bytes / 2**20:.0f} MB)"
                                 for mb in variants),
            "timing": "whole train.fit calls (every program compiled beforehand), device and grain alternated, "
                      f"{sizes.repeats} repeats, medians; reader_only: the grain pipeline alone at the default",
        },
    }


def main(argv=None) -> int:
    global MATMUL_PRECISION  # small_config() reads it, here and in the --child processes
    parser = argparse.ArgumentParser(prog="python -m ae_jax.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    parser.add_argument("--scaling", action="store_true",
                        help="print the scaling tables and write them to benchmarks/scaling.md")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--stream", action="store_true",
                        help="time the grain loader against the device loader on a few hundred MB")
    parser.add_argument("--matmul_precision", choices=config_lib.MATMUL_PRECISIONS, default=MATMUL_PRECISION,
                        help="the engine's model.matmul_precision (and the peak matmul's); `default` lets a "
                             "GPU use TF32")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    MATMUL_PRECISION = args.matmul_precision
    if args.child:
        print(json.dumps(child_main(json.loads(args.child))))
        return 0
    sizes = QUICK if args.quick else FULL if jax.default_backend() == "cpu" else ACCELERATOR
    if args.stream:
        print(json.dumps(run_stream(sizes), indent=1))
        return 0
    if args.scaling:
        table = run_scaling(sizes)
        print(table)
        if not args.quick:
            out = ROOT / "benchmarks" / "scaling.md"
            out.parent.mkdir(exist_ok=True)
            out.write_text(table)
            print(f"written: {out}", file=sys.stderr)
        return 0
    print(json.dumps(run(sizes, with_torch=not args.no_torch), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
