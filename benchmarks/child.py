"""Measurements that need a fresh process: peak memory, a forced device count, a cold quickstart, a pinned
PyTorch peer, W&B's cost. The parent runs `python -m benchmarks.bench --child JOB`; the child answers one JSON line."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(job: dict, devices: int = 1, timeout: float = 1800, platform: str = "cpu",
              cpus: list[int] | None = None, env: dict | None = None) -> dict:
    """Runs `job` in a fresh Python on `platform` (with `devices` forced host devices on the CPU, pinned to
    `cpus` if given); returns its JSON answer."""
    from benchmarks import common

    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    child_env = {**os.environ, "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"]),
                 "JAX_PLATFORMS": platform,
                 "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                 # An accelerator's peak is read from its allocator, which must not grab 75% of memory up front.
                 "XLA_PYTHON_CLIENT_PREALLOCATE": "false", **(env or {})}
    child_env.pop("JAX_NUM_CPU_DEVICES", None)
    if platform != "cpu":  # let JAX pick the accelerator ("gpu" would also probe ROCm)
        child_env.pop("JAX_PLATFORMS")
    if cpus:
        # Thread pools size themselves from these and from the affinity the child sets first thing.
        job = {**job, "cpus": cpus}
        child_env.update(OMP_NUM_THREADS=str(len(cpus)), MKL_NUM_THREADS=str(len(cpus)))
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--child", json.dumps(job),
                          "--matmul_precision", common.MATMUL_PRECISION], env=child_env,
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {job['kind']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(job: dict) -> dict:
    """The child's side: pin, then run the job's kind."""
    if job.get("cpus"):
        os.sched_setaffinity(0, job["cpus"])
    if job["kind"] == "torch_members":
        from benchmarks import torch_peer  # no JAX in this process

        return torch_peer.members_job(job)
    if job["kind"] == "quickstart":
        from benchmarks import quickstart

        return quickstart.quickstart_job(job)
    if job["kind"] == "wandb":
        from benchmarks import wandb_cost

        return wandb_cost.wandb_job(job)
    return _engine_job(job)


def _engine_job(job: dict) -> dict:
    import jax
    import jax.numpy as jnp

    from ae_jax import data as data_lib, train
    from benchmarks import common, sequential

    x = data_lib.load(common.small_config().data).x_train
    sizes = common.Sizes(batch=job["batch"], chunk=job["chunk"])
    plan = common.small_plan(sizes, steps=job["steps"])
    seeds, lrs = common.sweep_settings(job["members"])
    hp = common.hparams(lrs)
    if job["kind"] == "memory":
        jax.block_until_ready(jnp.ones(8) + 1)
        base = common.peak_rss_mib()
        t0 = time.perf_counter()
        state, curves = train.fit(plan, seeds, hp, x)
        jax.block_until_ready((state, curves))
        out = {"peak_rss_mib": common.peak_rss_mib(), "baseline_rss_mib": base, "fit_s": time.perf_counter() - t0}
        stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
        if stats and "peak_bytes_in_use" in stats:
            out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2 ** 20
        return out
    if job["kind"] != "devices":
        raise ValueError(f"bench child: unknown job kind {job['kind']!r}")
    cold, _ = sequential.fit_cold(plan, x, seeds, hp)
    fresh_state, run = sequential.engine_setup(plan, seeds, hp, x)
    run(fresh_state())
    steady = sequential.time_steady(fresh_state, run, job["repeats"])
    return {"devices": jax.local_device_count(), "fit_cold_s": cold, "steady_s": steady}


def measure_memory(sizes) -> dict:
    """Peak memory of a fresh process training the big group: host RSS, and the device's own peak on an
    accelerator (where the training state lives)."""
    import jax

    return run_child({"kind": "memory", "members": sizes.memory_members, "steps": sizes.memory_steps,
                      "batch": sizes.batch, "chunk": min(sizes.chunk, sizes.memory_steps)},
                     platform=jax.default_backend())
