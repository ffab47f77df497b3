"""Injected faults: damaged checkpoints, torn or junk result lines, full disks, read-only workdirs,
interrupts, clashing shard layouts and broken config files. Each ends in the right numbers or in one
line (exit 2), and nothing already written is lost or duplicated."""

import errno
import json
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from ae_jax import checkpoint, config as config_lib, sweep, train, workdir as workdir_lib
from ae_jax.errors import ConfigError, WorkdirError
from sweep_setup import tiny_config_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return tiny_config_file(tmp_path_factory.mktemp("cfg") / "faults.py", "faults", steps=40, batch=64)


def cli(cfg, workdir, capsys, *extra):
    code = sweep.main(["ae_jax.sweep", f"--config={cfg}", f"--workdir={workdir}", "--report=false", *extra])
    return code, capsys.readouterr().err


def lines(workdir):
    return (Path(workdir) / "results.jsonl").read_bytes().splitlines()


def metrics(workdir):
    return {r["name"]: r["metrics"] for r in workdir_lib.read_results(workdir)}


def assert_close(a, b):
    """Equal up to float32 rounding: a member retrained without its group mates is not bit-identical
    (docs/reliability.md); everything else in this file compares bit for bit."""
    assert sorted(a) == sorted(b)
    for name in a:
        for k, v in a[name].items():
            if isinstance(v, str):
                assert v == b[name][k], (name, k)
            else:
                np.testing.assert_allclose(v, b[name][k], rtol=1e-5, atol=1e-7, err_msg=f"{name} {k}")


def one_error_line(err, must_contain, prefix="error: "):
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith(prefix), err
    assert "Traceback" not in err and must_contain in err_lines[0], err
    return err_lines[0]


@pytest.fixture(scope="module")
def reference(cfg, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ref")
    assert sweep.main(["ae_jax.sweep", f"--config={cfg}", f"--workdir={workdir}", "--report=false"]) == 0
    return metrics(workdir)


class Stop(BaseException):
    """A kill right after a checkpoint, in-process (a BaseException: nothing may catch it)."""


def raise_stop():
    raise Stop


def stop_after_saves(monkeypatch, n, then=raise_stop):
    """Make the n-th checkpoint save of this process end the run, by `then()`."""
    real, count = checkpoint.GroupCheckpoint.save, [0]

    def save(self, *args):
        real(self, *args)
        count[0] += 1
        if count[0] == n:
            then()

    monkeypatch.setattr(checkpoint.GroupCheckpoint, "save", save)


def ckpt_files(workdir):
    return sorted((Path(workdir) / "checkpoints").glob("*/*"))


def failing_writes(monkeypatch, match, after=0, err=errno.ENOSPC):
    """os.write to a file whose name contains `match` writes `after` bytes, then fails with `err`."""
    real = os.write

    def write(fd, data):
        if match in os.readlink(f"/proc/self/fd/{fd}"):
            if after and len(data) > after:
                return real(fd, bytes(data[:after]))
            raise OSError(err, os.strerror(err))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


# ----------------------------------------------------------------------------- checkpoints (items 1, 8)


def small_state(seed=0):
    rng = np.random.default_rng(seed)
    return train.TrainState(params={"w": rng.random((3, 4), np.float32)}, opt_state=(np.int32(seed),),
                            stats={}, masks=np.ones((3, 2), np.float32), step=np.full(3, 7, np.int32),
                            key=jax.random.key(seed), diverged_at=np.full(3, -1, np.int32))


def test_a_checkpoint_round_trips_and_damage_is_discarded_for_the_last_good_one(tmp_path, capsys):
    ck = checkpoint.GroupCheckpoint(tmp_path / "g")
    curves = {"loss/recon": [np.ones(3, np.float32), np.zeros(3, np.float32)]}
    ck.save(2, small_state(0), curves)
    kept = (tmp_path / "g" / "chunk-000002.ckpt").read_bytes()
    ck.save(4, small_state(1), curves)
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["chunk-000004.ckpt"]  # only the latest is kept
    got = ck.restore(small_state(9))
    assert got[0] == 4 and np.array_equal(got[1].params["w"], small_state(1).params["w"])
    assert np.array_equal(jax.random.key_data(got[1].key), jax.random.key_data(small_state(1).key))
    np.testing.assert_array_equal(got[2]["loss/recon"][1], curves["loss/recon"][1])

    (tmp_path / "g" / "chunk-000002.ckpt").write_bytes(kept)  # an older good one beside a damaged newest
    newest = tmp_path / "g" / "chunk-000004.ckpt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the data
    newest.write_bytes(bytes(data))
    capsys.readouterr()
    got = ck.restore(small_state(9))
    assert got[0] == 2 and np.array_equal(got[1].params["w"], small_state(0).params["w"])
    one_error_line(capsys.readouterr().err, "checksum", prefix="warning: ")
    assert not newest.exists()


@pytest.mark.parametrize("damage", ["truncated", "emptied", "deleted", "half-written", "other shapes"])
def test_a_broken_checkpoint_means_a_fresh_start_not_a_crash(tmp_path, capsys, damage):
    ck = checkpoint.GroupCheckpoint(tmp_path / "g")
    ck.save(3, small_state(), {})
    path = tmp_path / "g" / "chunk-000003.ckpt"
    template = small_state()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "emptied":
        path.write_bytes(b"")
    elif damage == "deleted":
        path.unlink()
    elif damage == "half-written":  # a kill mid-save: only the temporary file exists
        path.rename(tmp_path / "g" / ".tmp-999-chunk-000005.ckpt")
    else:
        template = template._replace(params={"w": np.zeros((3, 5), np.float32)})
    capsys.readouterr()
    assert ck.restore(template) is None
    err = capsys.readouterr().err
    if damage in ("deleted", "half-written"):
        assert err == ""
    else:
        one_error_line(err, str(path), prefix="warning: ")
    assert list((tmp_path / "g").iterdir()) == []  # nothing unusable is left to trip the next run


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint_and_no_temporary(tmp_path, monkeypatch):
    ck = checkpoint.GroupCheckpoint(tmp_path / "g")
    ck.save(1, small_state(0), {})
    failing_writes(monkeypatch, ".tmp-", after=100)
    with pytest.raises(WorkdirError, match="No space left"):
        ck.save(2, small_state(1), {})
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["chunk-000001.ckpt"]
    assert ck.restore(small_state(5))[0] == 1


def test_a_damaged_checkpoint_on_disk_is_not_used_by_the_resumed_sweep(cfg, reference, tmp_path, capsys,
                                                                      monkeypatch):
    stop_after_saves(monkeypatch, 2)
    with pytest.raises(Stop):
        cli(cfg, tmp_path, capsys)
    monkeypatch.undo()
    (path,) = ckpt_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01  # one bit of the saved state
    path.write_bytes(bytes(data))
    code, err = cli(cfg, tmp_path, capsys)
    assert code == 0, err
    one_error_line(err, "unusable", prefix="warning: ")
    assert metrics(tmp_path) == reference  # retrained from scratch: the uninterrupted numbers, bit for bit


# ----------------------------------------------------------------------------- results.jsonl (items 4, 8)


def record(i, **extra):
    return {"member": i, "name": f"m{i}", "status": "ok", "metrics": {"test_mse": 0.5 + i}, **extra}


def test_a_torn_tail_is_cut_before_the_next_record_and_kept_aside(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    whole = (json.dumps(record(0)) + "\n").encode()
    path.write_bytes(whole + json.dumps(record(1)).encode()[:-7])  # a kill mid-line
    results = workdir_lib.Results(path)
    assert results.finished_names() == {"m0"}
    assert "cut a torn last line" in capsys.readouterr().err
    assert results.append(record(1))
    assert [json.loads(x)["name"] for x in lines(tmp_path)] == ["m0", "m1"]
    assert (tmp_path / workdir_lib.TORN).exists()
    # A whole record that lost only its newline is kept and completed, not cut.
    path.write_bytes(path.read_bytes()[:-1])
    results = workdir_lib.Results(path)
    assert results.finished_names() == {"m0", "m1"} and path.read_bytes().endswith(b"}\n")


def test_short_writes_still_give_whole_lines(tmp_path, monkeypatch):
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))  # at most 7 bytes a call
    results = workdir_lib.Results(tmp_path / "results.jsonl")
    results.append(record(0))
    results.append(record(1))
    monkeypatch.undo()
    assert [json.loads(x) for x in lines(tmp_path)] == [record(0), record(1)]


def test_a_full_disk_mid_line_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    results = workdir_lib.Results(tmp_path / "results.jsonl")
    results.append(record(0))
    before = (tmp_path / "results.jsonl").read_bytes()
    failing_writes(monkeypatch, "results.jsonl", after=20)
    with pytest.raises(WorkdirError, match="No space left"):
        results.append(record(1))
    monkeypatch.undo()
    assert (tmp_path / "results.jsonl").read_bytes() == before
    assert results.append(record(1)) and len(lines(tmp_path)) == 2


def test_junk_lines_are_skipped_with_one_warning_and_a_member_is_never_written_twice(tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join([json.dumps(record(0)).encode(), b"{}", b"null", b"[1,2]", b"\xff\xfe",
                                 b"[" * 100000, json.dumps(record(1, status="diverged")).encode(), b""]))
    results = workdir_lib.Results(path)
    assert results.finished_names() == {"m0", "m1"}
    one_error_line(capsys.readouterr().err, "skipped 5 line(s)", prefix="warning: ")
    assert not results.append(record(0))  # already there (say, written by another shard)
    assert sum(b'"m0"' in x for x in lines(tmp_path)) == 1


def test_read_results_is_the_one_tolerant_reader(tmp_path, capsys):
    assert workdir_lib.read_results(tmp_path) == []
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"\n".join([json.dumps(record(2)).encode(), b"null", json.dumps(record(0)).encode(),
                                 json.dumps(record(1, status="diverged")).encode(),
                                 json.dumps(record(0, status="error")).encode(), b'{"member": 3, "na']))
    got = workdir_lib.read_results(tmp_path)
    assert [(r["member"], r["status"]) for r in got] == [(0, "error"), (1, "diverged"), (2, "ok")]  # last wins
    assert "skipped 2 line(s)" in capsys.readouterr().err
    assert [r["member"] for r in workdir_lib.read_results(path, status="ok")] == [2]
    assert [r["member"] for r in workdir_lib.read_results(tmp_path, status=("ok", "diverged"))] == [1, 2]


def test_a_cut_results_file_reruns_its_member_and_loses_nothing(cfg, reference, tmp_path, capsys):
    assert cli(cfg, tmp_path, capsys)[0] == 0
    path = tmp_path / "results.jsonl"
    path.write_bytes(path.read_bytes()[:-500])  # `truncate -s -500`: the last line is torn
    with path.open("ab") as f:
        f.write(b"{}\nnull\n\xff\xfe\n")
    code, err = cli(cfg, tmp_path, capsys)
    assert code == 0, err
    assert "skipped" in err
    assert len(workdir_lib.read_results(tmp_path)) == 2
    assert_close(metrics(tmp_path), reference)  # seed=1 retrained alone, see assert_close


def test_a_full_disk_at_a_result_stops_the_sweep_in_one_line(cfg, reference, tmp_path, capsys, monkeypatch):
    failing_writes(monkeypatch, "results.jsonl", after=50)
    code, err = cli(cfg, tmp_path, capsys)
    monkeypatch.undo()
    assert code == 2
    one_error_line(err, "No space left on device")
    assert not (tmp_path / "results.jsonl").exists() or (tmp_path / "results.jsonl").read_bytes() == b""
    assert cli(cfg, tmp_path, capsys)[0] == 0 and metrics(tmp_path) == reference


# ----------------------------------------------------------------------------- the CLI in one line (item 8)


def test_a_full_disk_while_checkpointing_stops_the_sweep_in_one_line(cfg, tmp_path, capsys, monkeypatch):
    failing_writes(monkeypatch, ".tmp-")
    code, err = cli(cfg, tmp_path, capsys)
    monkeypatch.undo()
    assert code == 2
    one_error_line(err, "No space left on device")
    assert not list((tmp_path / "checkpoints").rglob(".tmp-*"))


def test_a_read_only_workdir_is_one_line(cfg, tmp_path, capsys, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(workdir_lib, "open", read_only, raising=False)
    code, err = cli(cfg, tmp_path, capsys)
    assert code == 2
    one_error_line(err, "Read-only file system")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_is_one_line_and_the_rerun_finishes(cfg, reference, tmp_path, capsys, monkeypatch, sig):
    # A fresh command starts with Python's Ctrl-C handler; this process ran other tests first (once, in a
    # suite run, the SIGINT here did not interrupt the sweep), so the test installs it again.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stop_after_saves(monkeypatch, 2, then=lambda: os.kill(os.getpid(), sig))
        code, err = cli(cfg, tmp_path, capsys)
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 128 + sig, f"SIGINT handler this test found: {previous!r}"
    one_error_line(err, "resumes", prefix="interrupted")
    assert ckpt_files(tmp_path)  # the group's state is kept for the rerun
    assert cli(cfg, tmp_path, capsys)[0] == 0 and metrics(tmp_path) == reference


GOOD_CONFIG = "from ae_jax import config as config_lib\ndef get_config(arg=None):\n    return config_lib.base_config()\n"
BROKEN = {
    "get_config raises": ("def get_config(arg=None):\n    raise KeyError('boom')\n",
                          "get_config(None) raised KeyError"),
    "get_config returns None": ("def get_config(arg=None):\n    return None\n", "not a ConfigDict"),
    **{f"get_sweep returns {ret}": (GOOD_CONFIG + f"def get_sweep(arg=None):\n    return {ret}\n", must)
       for ret, must in [("None", "got NoneType"), ("3", "got int"), ("'seed'", "got str"),
                         ("[{}, 5]", "item 1 is 5"), ("[{1: 2}]", "item 0"), ("1 / 0", "ZeroDivisionError")]},
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_config_function_is_one_line(case, tmp_path, capsys):
    body, must = BROKEN[case]
    path = tmp_path / "broken.py"
    path.write_text(body)
    code, err = cli(path, tmp_path / "wd", capsys)
    assert code == 2
    assert str(path) in one_error_line(err, must)
    assert not (tmp_path / "wd").exists()


# ----------------------------------------------------------------------------- config arguments (item 7)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.py")), ids=lambda p: p.name)
def test_config_files_refuse_an_unknown_argument(path, capsys):
    spec = sweep.load_config_file(f"{path}:smoke")  # the documented argument works
    assert spec[0].train.steps <= 300
    code, err = cli(f"{path}:smok", "/nonexistent/wd", capsys, "--dry_run")
    assert code == 2
    line = one_error_line(err, f"{path.name}:smok")
    assert "smoke" in line.split("allowed:")[1]


# ----------------------------------------------------------------------------- locks and identity (items 9, 10)


IDENT = {"name": "s", "members": 4, "sha256": "0" * 64}


def test_shards_of_one_count_share_a_workdir_but_other_layouts_are_refused(tmp_path):
    with workdir_lib.open_workdir(tmp_path, IDENT, (0, 2)), workdir_lib.open_workdir(tmp_path, IDENT, (1, 2)):
        for other in [(0, 1), (0, 3), (2, 3)]:
            with pytest.raises(workdir_lib.WorkdirBusy, match="running it as 2 shards"):
                with workdir_lib.open_workdir(tmp_path, IDENT, other):
                    pass
        with pytest.raises(workdir_lib.WorkdirBusy, match="shard 1/2"):
            with workdir_lib.open_workdir(tmp_path, IDENT, (1, 2)):
                pass
    with workdir_lib.open_workdir(tmp_path, IDENT, (0, 1)):  # all shards done: any layout may run
        with pytest.raises(workdir_lib.WorkdirBusy, match="unsharded"):
            with workdir_lib.open_workdir(tmp_path, IDENT, (1, 2)):
                pass


def test_a_sharded_run_refuses_a_workdir_an_unsharded_run_holds(cfg, tmp_path, capsys):
    lock = workdir_lib._lock_shard(tmp_path, (0, 1))  # an unsharded run of this sweep, mid-way
    try:
        code, err = cli(cfg, tmp_path, capsys, "--shard=0/2")
    finally:
        lock.close()
    assert code == 2
    one_error_line(err, "in use by another ae_jax command (running it unsharded)")
    assert not (tmp_path / "results.jsonl").exists()


def test_settings_that_cannot_change_results_are_not_the_sweep_identity():
    base = config_lib.flatten(config_lib.base_config().to_dict())
    ident = lambda cfg: workdir_lib.sweep_identity("s", [("m", cfg)])  # noqa: E731
    for key, value in [("train.checkpoint_seconds", 5.0), ("wandb.mode", "online"), ("data.loader", "grain"),
                       ("data.read_threads", 0), ("data.prefetch", 7)]:
        assert ident({**base, key: value}) == ident(base), key
    for key, value in [("train.steps", 7), ("diagnostics.noise_std", 0.3), ("model.matmul_precision", "high")]:
        assert ident({**base, key: value}) != ident(base), key


def test_check_arg_is_reusable_by_any_config_file():
    assert config_lib.check_arg("topk,smoke", ("topk", "smoke"), "experiments/x/config.py") == ["topk", "smoke"]
    assert config_lib.check_arg(None, ("smoke",), "c.py") == []
    with pytest.raises(ConfigError, match=r"x/config.py:long: unknown argument 'long'; allowed: smoke"):
        config_lib.check_arg("long", ("smoke",), "x/config.py")
