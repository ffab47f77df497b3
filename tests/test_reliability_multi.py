"""Reliability across processes and devices: shards of one sweep in one workdir, two jax.distributed CPU
processes (also killed and resumed), and the CLI on 4 forced host devices against 1. Split from
test_reliability.py so the two test workers share the slow multi-process cases."""

import signal
import socket
import subprocess
import time

from sweep_setup import ROOT, assert_same_metrics, cli, env, results, run, tiny_config_file


def test_shards_of_one_sweep_fill_one_workdir_without_clashes(reliability_cfg, reliability_reference, xla_cache,
                                                               tmp_path):
    procs = [subprocess.Popen(cli(reliability_cfg, tmp_path, f"--shard={i}/3"), cwd=ROOT,
                              env=env(cache=xla_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(reliability_reference)
    # Shards train smaller groups than the reference; a member does not see its group mates: bit-identical.
    assert_same_metrics(results(tmp_path), reliability_reference)


def test_two_jax_distributed_cpu_processes_split_the_sweep(reliability_cfg, reliability_reference, xla_cache,
                                                            tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ["--distributed", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
    procs = [subprocess.Popen(cli(reliability_cfg, tmp_path, *flags, f"--process_id={i}"), cwd=ROOT,
                              env=env(cache=xla_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert_same_metrics(results(tmp_path), reliability_reference)


def test_jax_distributed_processes_resume_after_both_are_killed(tmp_path):
    """Each process checkpoints its own members on its own; after a SIGKILL of both, both resume and
    give the numbers of uninterrupted runs of their shards."""
    from ae_jax import sweep

    cfg = tiny_config_file(tmp_path / "kill.py", "distributed_kill", steps=1000)
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
        # A cache of their own: the killed processes compiled the training program, the resumed ones load it.
        return [subprocess.Popen(cli(cfg, workdir, *flags, f"--process_id={i}"), cwd=ROOT,
                                 env=env(cache=tmp_path / "xla-cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for i in range(2)]

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


def test_four_host_devices_give_the_one_device_numbers(reliability_cfg, reliability_reference, xla_cache, tmp_path):
    run(cli(reliability_cfg, tmp_path), devices=4, cache=xla_cache)
    # Bit-identical: each device maps its own members one at a time (docs/reliability.md).
    assert_same_metrics(results(tmp_path), reliability_reference)
