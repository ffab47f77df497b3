"""Test-wide settings; device counts must be fixed before the first JAX operation."""

import os

# Forced CPU host devices: 1 unless AE_JAX_TEST_DEVICES says otherwise. scripts/test.sh runs the modules
# that test the engine's sharding (SHARDED there) with 4, the rest with 1: on 2 cores every program
# sharded over 4 host devices cost ~35% more CPU time (tests/test_variants.py: 192 s against 136 s).
os.environ.setdefault("XLA_FLAGS",
                      f"--xla_force_host_platform_device_count={os.environ.get('AE_JAX_TEST_DEVICES', '1')}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WANDB_MODE"] = "disabled"
os.environ["WANDB_SILENT"] = "true"
os.environ["WANDB_ERROR_REPORTING"] = "false"
os.environ.setdefault("MPLBACKEND", "Agg")
# In-process CLI calls (tests/test_errors.py) must not switch on the user's persistent compilation cache
# for the rest of the session: a cache shared with other processes is not what tests should read.
os.environ["AE_JAX_COMPILATION_CACHE"] = ""


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled executables after each test module. Each XLA:CPU executable holds dozens of
    memory mappings; the whole suite compiles thousands of programs, and one pytest process reached the
    kernel's vm.max_map_count (65530) and segfaulted inside an XLA compile. Clearing per module keeps the
    count in the low thousands."""
    yield
    import jax

    jax.clear_caches()
    gc.collect()


# The slowest modules first: scripts/test.sh hands whole modules to 2 workers (--dist loadfile, and
# --no-loadscope-reorder, else xdist reorders modules by their number of tests) in this order, so the long
# ones start at once and the short ones fill in, and both workers finish together. Each worker holds two
# modules at a time, the 1st and 3rd going to one and the 2nd and 4th to the other: test_reliability_multi.py
# comes 4th so it finds the reliability reference done (or in progress) on the other worker rather than
# waiting for it from the start. A stable sort: the rest keep their order, and a module's tests stay together.
HEAVY_FIRST = ("test_reliability.py", "test_variants.py", "test_sweep.py", "test_reliability_multi.py",
               "test_experiments_memorisation.py", "test_calibration.py", "test_experiments_regularisers_vae.py",
               "test_workers.py", "test_bench.py", "test_golden.py", "test_experiments_linear.py", "test_faults.py",
               "test_fashion_mnist.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


WANDB_DIRS = ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR")


@pytest.fixture
def fresh(monkeypatch):
    """W&B not failed yet, WANDB_MODE unset, and W&B's directory variables restored afterwards."""
    from ae_jax import writers

    monkeypatch.setattr(writers, "_off_reason", None)
    monkeypatch.setattr(writers, "_online_failed", False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key in WANDB_DIRS:
        monkeypatch.setenv(key, "")  # records the original value for restoring
        monkeypatch.delenv(key)
    return monkeypatch


def shared_dir(tmp_path_factory, name):
    """A folder of this test session that both xdist workers see (a worker's own under -p no:xdist)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, above each worker's popen-gwN/
    path = root / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """A compilation cache for the sweep subprocesses of one session, as users have one by default: the
    first command compiles, repeats, resumes and shards load (tests/test_reliability*.py)."""
    return shared_dir(tmp_path_factory, "xla-cache")


@pytest.fixture(scope="session")
def reliability_cfg(tmp_path_factory):
    from sweep_setup import RELIABILITY_CFG

    path = shared_dir(tmp_path_factory, "cfg") / "reliability.py"
    if not path.exists():
        path.write_text(RELIABILITY_CFG)
    return path


@pytest.fixture(scope="session")
def reliability_reference(reliability_cfg, xla_cache, tmp_path_factory):
    """The uninterrupted results of the reliability sweep, run once per session by whichever worker asks
    first; it compiles every program afresh and fills `xla_cache`."""
    import fcntl

    from sweep_setup import cli, results, run

    workdir = shared_dir(tmp_path_factory, "reference")
    with open(str(workdir) + ".lock", "a") as lock:  # the other pytest worker waits here
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "done").exists():
            assert not any(xla_cache.iterdir()), "the reference must compile afresh"
            run(cli(reliability_cfg, workdir, "--workers=1"), cache=xla_cache)  # one process: tests/test_workers.py
            (workdir / "done").touch()
    return results(workdir)
