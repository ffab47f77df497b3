"""Reliability across processes and devices: shards of one sweep in one workdir, two jax.distributed CPU
processes (also killed and resumed), and 4 forced host devices against 1. Split from test_reliability.py
so the two test workers share the slow multi-process cases."""

import signal
import socket
import subprocess
import time

from test_reliability import (ROOT, assert_bit_identical, assert_same_metrics, cfg, cli, env, reference,  # noqa: F401
                              results, run, train_member)


def test_shards_of_one_sweep_fill_one_workdir_without_clashes(cfg, reference, tmp_path):
    procs = [subprocess.Popen(cli(cfg, tmp_path, f"--shard={i}/3"), cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(reference)
    # Shards train smaller groups than the reference; a member does not see its group mates: bit-identical.
    assert_same_metrics(results(tmp_path), reference)


def test_two_jax_distributed_cpu_processes_split_the_sweep(cfg, reference, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--distributed", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
    procs = [subprocess.Popen(cli(cfg, tmp_path, *flags, f"--process_id={i}"), cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert_same_metrics(results(tmp_path), reference)


KILL_CFG = """
from ae_jax import config as config_lib
from ae_jax.config import sweep

def get_config(arg=None):
    c = config_lib.base_config()
    c.name = "distributed_kill"
    c.model.code_size, c.model.width = 8, 32
    c.train.steps, c.train.log_every, c.train.batch_size = 1000, 10, 32
    c.train.checkpoint_seconds = 0.0
    c.diagnostics.jac_points, c.diagnostics.attractor_iters, c.diagnostics.ood_samples = 5, 3, 50
    c.diagnostics.probe = False
    c.wandb.mode = "disabled"
    return c

def get_sweep(arg=None):
    return sweep("seed", [0, 1])
"""


def test_jax_distributed_processes_resume_after_both_are_killed(tmp_path):
    """Each process checkpoints its own members on its own; after a SIGKILL of both, both resume and
    give the numbers of uninterrupted runs of their shards."""
    from ae_jax import sweep

    cfg = tmp_path / "kill.py"
    cfg.write_text(KILL_CFG)
    base, grid, name = sweep.load_config_file(str(cfg))
    expected = {}
    for i in range(2):
        expected.update({r["name"]: r for r in sweep.run_sweep(base, grid, tmp_path / "ref", name, report=False,
                                                                shard=(i, 2))})
    workdir = tmp_path / "wd"

    def start():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        flags = ["--distributed", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
        return [subprocess.Popen(cli(cfg, workdir, *flags, f"--process_id={i}"), cwd=ROOT, env=env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]

    procs = start()
    deadline = time.time() + 300
    # A process has one running group (one checkpoint folder) at a time: two folders holding a saved
    # checkpoint are one per process.
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if sum(any(d.glob("chunk-*")) for d in (workdir / "checkpoints").glob("*")) >= 2:
            break
        time.sleep(0.02)
    assert all(p.poll() is None for p in procs), "a process ended before both had a checkpoint; lengthen it"
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    for p in start():
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        assert "unusable" not in err, err[-2000:]
    assert len((workdir / "results.jsonl").read_text().splitlines()) == 2
    assert_same_metrics(results(workdir), expected)


def test_four_host_devices_give_the_one_device_numbers_on_the_quickstart_smoke(tmp_path):
    args = ["--config.train.steps=100", "--config.wandb.mode=disabled"]
    run(cli(ROOT / "configs/quickstart.py:smoke", tmp_path / "one", *args), devices=1)
    run(cli(ROOT / "configs/quickstart.py:smoke", tmp_path / "four", *args), devices=4)
    # Bit-identical: each device maps its own members one at a time (docs/reliability.md).
    assert_same_metrics(results(tmp_path / "four"), results(tmp_path / "one"))


def test_a_member_trains_bit_identically_on_four_host_devices_and_on_one(tmp_path):
    """Thousands of steps: 5 members padded to 8 over 4 devices (2 per device) against the member alone."""
    alone = train_member(tmp_path, [0], [2e-3], devices=1)
    sharded = train_member(tmp_path, [3, 0, 9, 4, 6], [1e-2, 2e-3, 3e-4, 1e-3, 5e-3], devices=4)
    assert_bit_identical(sharded, alone)
