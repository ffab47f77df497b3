"""A sweep command spread over worker processes: the same numbers as one process, and no worker outlives it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ae_jax import config as config_lib, data as data_lib, sweep, workers
from ae_jax.config import product, sweep as axis

ROOT = Path(__file__).resolve().parents[1]
def command(cfg, workdir, n_workers):
    return [sys.executable, "-m", "ae_jax.sweep", f"--config={cfg}", f"--workdir={workdir}", "--report=false",
            f"--workers={n_workers}"]


def environment():
    return {**os.environ, "JAX_PLATFORMS": "cpu", "WANDB_MODE": "disabled", "AE_JAX_COMPILATION_CACHE": ""}


def results(workdir):
    lines = (Path(workdir) / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_and_stop(cmd, workdir, sig) -> tuple[int, list[int]]:
    """Start `cmd`, wait until both workers are up and a group has checkpointed, send `sig` to the command
    alone; returns its exit status and its workers' pids."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline, kids = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None:
        kids = [k for k in children(proc.pid) if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
        if len(kids) == 2 and any((Path(workdir) / "checkpoints").glob("*/*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.stderr.read()[-2000:]}"
    proc.send_signal(sig)
    proc.wait(timeout=300)
    return proc.returncode, kids


def test_workers_die_with_their_command_and_the_resumed_sweep_gives_the_one_process_numbers(
        tmp_path, reliability_cfg, reliability_reference):
    # the reliability sweep (two shape groups of three seeds) against its one-process reference run
    cfg, workdir = reliability_cfg, tmp_path / "two"
    # SIGTERM (a scheduler's stop) reaches the command only: it stops its workers, which checkpoint.
    status, kids = start_and_stop(command(cfg, workdir, 2), workdir, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM
    assert kids and not any(alive(k) for k in kids)
    # SIGKILL cannot be handled: the kernel takes the workers down with the command.
    status, kids = start_and_stop(command(cfg, workdir, 2), workdir, signal.SIGKILL)
    deadline = time.time() + 10
    while any(alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.05)
    assert kids and not any(alive(k) for k in kids), "a worker outlived its killed command"

    done = subprocess.run(command(cfg, workdir, 2), cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 2 worker processes" in done.stdout
    a = {name: r["metrics"] for name, r in reliability_reference.items()}
    b = {r["name"]: r["metrics"] for r in results(workdir)}
    assert len(results(workdir)) == len(b) == len(a) == 6, "a member was written twice or lost"
    for name in a:
        assert sorted(a[name]) == sorted(b[name])
        for k, v in a[name].items():
            if isinstance(v, float):
                np.testing.assert_array_equal(v, b[name][k], err_msg=f"{name} {k}")
            else:
                assert v == b[name][k], (name, k)


def test_groups_are_handed_out_largest_first_and_one_worker_per_core_and_group():
    c = config_lib.base_config()
    c.train.steps = 10
    members = sweep.expand(c, product(axis("model.depth", [0, 2]), axis("model.code_size", [4, 64])))
    groups = sweep.group_members(members, {sweep.data_key(c): data_lib.load(c.data)})
    order = workers.largest_first(groups)
    specs = [(groups[i].plan.spec.depth, groups[i].plan.spec.code_size) for i in order]
    assert specs[0] == (2, 64) and specs[-1] == (0, 4), specs
    cores = len(os.sched_getaffinity(0))
    assert workers.auto_workers(1) == 1
    assert workers.auto_workers(100) == cores


def test_a_worker_keeps_to_the_architectures_it_has_compiled_then_takes_the_largest_left():
    # order: groups by size; affinity: which diagnostics programs each needs (two architectures here)
    order, affinity = [0, 1, 2, 3, 4], ["deep", "shallow", "deep", "shallow", "deep"]
    claimed, a, b = [0] * 5, set(), set()
    assert [workers.claim_next(order, claimed, affinity, s) for s in (a, b, b, a, b, a, b)] == \
        [0, 1, 3, 2, 4, None, None]
    assert claimed == [1] * 5 and a == {"deep"} and b == {"shallow", "deep"}


def test_a_bad_worker_count_is_a_one_line_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ae_jax.sweep", "--config=configs/ae.py:smoke",
                          f"--workdir={tmp_path}", "--workers=-1"], cwd=ROOT, env=environment(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip() == "error: --workers: must be 0 (one per core) or more, got -1"
    assert not (tmp_path / "results.jsonl").exists()
