"""Config files and `python -m ae_jax.sweep` subprocesses for the tests of faults, kills and split jobs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# One member per seed of one small MLP, cheap diagnostics: the tests that only need a sweep to resume,
# fail or split (tests/test_faults.py, tests/test_reliability_multi.py).
TINY_CFG = """
from ae_jax import config as config_lib
from ae_jax.config import sweep

def get_config(arg=None):
    c = config_lib.base_config()
    c.name = {name!r}
    c.model.code_size, c.model.width = 8, 32
    c.train.steps, c.train.log_every, c.train.batch_size = {steps}, 10, {batch}
    c.train.checkpoint_seconds = 0.0
    c.diagnostics.jac_points, c.diagnostics.attractor_iters, c.diagnostics.ood_samples = 5, 3, 50
    c.diagnostics.probe = False
    c.wandb.mode = "disabled"
    return c

def get_sweep(arg=None):
    return sweep("seed", [0, 1])
"""

# Two shape groups of three seeds: the sweep the reliability tests kill, split, repeat and spread over
# devices. Shards and processes train groups of other sizes than its 3; every member must keep its numbers.
RELIABILITY_CFG = """
from ae_jax import config as config_lib
from ae_jax.config import product, sweep

def get_config(arg=None):
    c = config_lib.base_config()
    c.name = "reliability"
    c.train.steps, c.train.log_every, c.train.batch_size = 300, 10, 32
    c.train.checkpoint_seconds = 0.0
    c.diagnostics.jac_points, c.diagnostics.attractor_iters = 10, 5
    c.wandb.mode = "disabled"
    return c

def get_sweep(arg=None):
    return product(sweep("model.depth", [0, 1]), sweep("seed", [0, 1, 2]))
"""


def tiny_config_file(path, name, steps, batch=32):
    """Write TINY_CFG (`steps` steps of batch `batch`) to `path` and return it."""
    path = Path(path)
    path.write_text(TINY_CFG.format(name=name, steps=steps, batch=batch))
    return path


def env(devices=1, cache=""):
    """A sweep subprocess's environment: CPU, `devices` host devices, no W&B, compilation cache `cache`
    ('' is off)."""
    return {**os.environ, "WANDB_MODE": "disabled", "JAX_PLATFORMS": "cpu", "AE_JAX_COMPILATION_CACHE": str(cache),
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def cli(cfg, workdir, *extra):
    return [sys.executable, "-m", "ae_jax.sweep", f"--config={cfg}", f"--workdir={workdir}", "--report=false",
            *extra]


def run(cmd, devices=1, cache="", timeout=600):
    out = subprocess.run(cmd, cwd=ROOT, env=env(devices, cache), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def results(workdir):
    return {r["name"]: r for r in map(json.loads, (Path(workdir) / "results.jsonl").read_text().splitlines())}


def assert_same_metrics(a, b):
    """Same members, same metric keys, every value bit for bit."""
    assert sorted(a) == sorted(b)
    for name in a:
        ma, mb = a[name]["metrics"], b[name]["metrics"]
        assert sorted(ma) == sorted(mb)
        for k in ma:
            if isinstance(ma[k], str):
                assert ma[k] == mb[k], (name, k)
            else:
                np.testing.assert_array_equal(ma[k], mb[k], err_msg=f"{name} {k}")
