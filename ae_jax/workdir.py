"""The workdir: one sweep per directory, one lock layout per workdir, and `results.jsonl` lines written
whole or not at all, so a killed run, a full disk or a stray line never loses or duplicates a member.

`read_results(workdir)` is the one reader of `results.jsonl` (sweep resume, report, experiments).
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

from ae_jax.errors import ConfigError, WorkdirError

RESULTS = "results.jsonl"
TORN = "results.jsonl.torn"  # torn tails cut from results.jsonl, kept for inspection
IDENTITY = "sweep.json"
GUARD = ".lock"  # held only while a command takes its shard lock
SHARD_LOCK = re.compile(r"\.lock\.(\d+)-of-(\d+)$")


class WorkdirBusy(RuntimeError):
    """Another command holds this workdir's lock."""


# ----------------------------------------------------------------------------- writing whole


def storage_error(path: Path | str, e: OSError) -> WorkdirError:
    """One line for a write the file system refused (full disk, read-only, permissions)."""
    return WorkdirError(f"{path}: {e.strerror or e}; nothing was half-written: free space or fix "
                        f"permissions, then the same command resumes")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out: a write may be short (a signal, a nearly full disk)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def write_atomic(path: Path, data: bytes) -> None:
    """`path` holds `data` whole, or keeps what it held and no temporary file is left behind."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:  # also a Ctrl-C mid-write: no temporary file stays behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise storage_error(path, e) from None
        raise


# ----------------------------------------------------------------------------- results.jsonl


def is_record(obj: Any) -> bool:
    """A member's result line: an object with an integer `member`, a string `name` and `status`."""
    return (isinstance(obj, dict) and isinstance(obj.get("name"), str) and isinstance(obj.get("status"), str)
            and isinstance(obj.get("member"), int) and not isinstance(obj.get("member"), bool))


def _decode(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _parse(data: bytes, first_line: int) -> tuple[list[dict], list[int]]:
    """The member records in `data` (whole lines) and the numbers of the lines that are not one."""
    records, bad = [], []
    for n, line in enumerate(data.split(b"\n"), first_line):
        if not line.strip():
            continue
        obj = _decode(line)
        if is_record(obj):
            records.append(obj)
        else:
            bad.append(n)
    return records, bad


def _warn_skipped(path: Path, bad: Sequence[int]) -> None:
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        print(f"warning: {path}: skipped {len(bad)} line(s) that are not member records (line {shown}); "
              f"left in place", file=sys.stderr, flush=True)


def _results_path(workdir: str | Path) -> Path:
    path = Path(workdir)
    return path if path.name == RESULTS else path / RESULTS


def read_results(workdir: str | Path, status: str | Collection[str] | None = None) -> list[dict[str, Any]]:
    """WORKDIR/results.jsonl (or that file itself) as one record per member, in member order.

    The last line of a member wins; lines that are not member records (torn, undecodable, `{}`, `null`)
    are skipped with one warning line; `status` keeps only members with that status (or one of them).
    A missing file gives []."""
    path = _results_path(workdir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records, bad = _parse(data, 1)
    _warn_skipped(path, bad)
    by_name = {r["name"]: r for r in records}
    wanted = {status} if isinstance(status, str) else status
    return sorted((r for r in by_name.values() if wanted is None or r["status"] in wanted),
                  key=lambda r: r["member"])


def _last_line_start(fd: int, size: int) -> int:
    """Offset just past the last newline before `size` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _repair_tail(fd: int, path: Path) -> None:
    """A last line without its newline: completed when it is a whole record, else cut and kept in TORN,
    so the next record starts on a line of its own. Call with the file's lock held."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _last_line_start(fd, size)
    tail = os.pread(fd, size - start, start)
    if is_record(_decode(tail)):
        write_all(fd, b"\n")
        return
    with open(path.with_name(TORN), "ab") as torn:
        torn.write(tail + b"\n")
    os.ftruncate(fd, start)
    os.fsync(fd)
    print(f"warning: {path}: cut a torn last line ({len(tail)} bytes, kept in {TORN}); its member reruns",
          file=sys.stderr, flush=True)


class Results:
    """Append-only `results.jsonl` shared by the shards of a sweep: under the file's lock each record is
    written whole (or the file is put back as it was), and a member already in the file is never
    written again."""

    def __init__(self, path: Path):
        self.path = path
        self._names: set[str] = set()
        self._offset, self._line = 0, 1  # whole lines read so far
        if path.exists():
            with self._locked() as fd:
                _repair_tail(fd, path)
                self._read_new(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(self.path, e) from None
        try:
            # Shards of one sweep append to the same file: one writer at a time.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        except OSError as e:
            raise storage_error(self.path, e) from None
        finally:
            os.close(fd)

    def _read_new(self, fd: int) -> None:
        """Take in the whole lines other shards (or this one) appended since the last read."""
        size = os.fstat(fd).st_size
        if size < self._offset:  # cut by hand since: read it all again
            self._names, self._offset, self._line = set(), 0, 1
        data = os.pread(fd, size - self._offset, self._offset) if size > self._offset else b""
        data = data[:data.rfind(b"\n") + 1]
        records, bad = _parse(data, self._line)
        _warn_skipped(self.path, bad)
        self._names.update(r["name"] for r in records)
        self._offset += len(data)
        self._line += data.count(b"\n")

    def finished_names(self, reload: bool = False) -> set[str]:
        """Members already recorded; `reload` reads what other shards appended since."""
        if reload and self.path.exists():
            with self._locked() as fd:
                self._read_new(fd)
        return set(self._names)

    def append(self, record: dict[str, Any]) -> bool:
        """Write one member's line; False (and nothing written) when the member is already in the file."""
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        with self._locked() as fd:
            _repair_tail(fd, self.path)
            self._read_new(fd)
            if record["name"] in self._names:
                print(f"warning: {self.path}: {record['name']} is already recorded; not written twice",
                      file=sys.stderr, flush=True)
                return False
            size = os.fstat(fd).st_size
            try:
                write_all(fd, line)
                os.fsync(fd)
            except BaseException:  # a full disk or a Ctrl-C between two short writes
                os.ftruncate(fd, size)  # a partial line must not stay: the next record would join it
                raise
            self._names.add(record["name"])
            self._offset, self._line = size + len(line), self._line + 1
        return True


# ----------------------------------------------------------------------------- identity and locks


# Keys that change how a sweep runs, never what it computes (the loaders give identical numbers).
NOT_IDENTITY = ("wandb.", "data.loader", "data.stream_above_mb", "data.read_threads", "data.prefetch",
                "data.transfer_mb", "train.checkpoint_seconds")


def sweep_identity(sweep_name: str, members: Sequence[tuple[str, dict]]) -> dict[str, Any]:
    """What makes a workdir's sweep the same sweep: member names and their configs, less NOT_IDENTITY."""
    body = [(name, {k: v for k, v in cfg.items() if not k.startswith(NOT_IDENTITY)}) for name, cfg in members]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {"name": sweep_name, "members": len(members), "sha256": digest}


def _check_identity(workdir: Path, identity: dict[str, Any]) -> None:
    ident_path = workdir / IDENTITY
    if not ident_path.exists():
        return
    try:
        old = json.loads(ident_path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"--workdir: {ident_path} is corrupt; use a new workdir") from None
    if not isinstance(old, dict) or old.get("sha256") != identity["sha256"]:
        old = old if isinstance(old, dict) else {}
        raise ConfigError(f"--workdir: {workdir} holds a different sweep ({old.get('name')!r}, "
                          f"{old.get('members')} members); use a new workdir or the same config")


def _held(path: Path) -> bool:
    """Whether another command holds the flock on `path`."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _lock_shard(workdir: Path, shard: tuple[int, int]):
    """This command's lock: `.lock.I-of-N`. Shards of the same count N run side by side (their members
    are disjoint); a command with another count (an unsharded run is 0-of-1) is refused while any holds
    its lock, as their members overlap. The guard `.lock` makes the check and the taking one step."""
    i, n = shard
    busy = f"--workdir: {workdir} is in use by another ae_jax command"
    with open(workdir / GUARD, "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # others hold it only while taking their own lock
        for other in sorted(workdir.glob(".lock.*-of-*")):
            match = SHARD_LOCK.search(other.name)
            if match and int(match[2]) != n and _held(other):
                running = "unsharded" if match[2] == "1" else f"as {match[2]} shards"
                raise WorkdirBusy(f"{busy} (running it {running}); wait for it, or use --shard=I/{match[2]}")
        mine = open(workdir / f".lock.{i}-of-{n}", "a")
        try:
            fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            mine.close()
            what = "" if n == 1 else f" (shard {i}/{n})"
            raise WorkdirBusy(f"{busy}{what}; wait for it or use another workdir") from None
        return mine


@contextlib.contextmanager
def open_workdir(workdir: Path, identity: dict[str, Any], shard: tuple[int, int] = (0, 1)) -> Iterator[Results]:
    """Lock `workdir` for this shard, check it holds this sweep (or nothing), and hand out its results."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir: {workdir} exists and is not a directory")
    _check_identity(workdir, identity)  # before anything is created
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        lock = _lock_shard(workdir, shard)
    except OSError as e:
        raise storage_error(workdir, e) from None
    try:
        _check_identity(workdir, identity)  # another sweep may have started meanwhile
        if not (workdir / IDENTITY).exists():
            write_atomic(workdir / IDENTITY, json.dumps(identity, indent=1).encode())
        yield Results(workdir / RESULTS)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


class Progress:
    """A tqdm bar over all chunks of the sweep on a terminal; silent when output is not a terminal."""

    def __init__(self, total: int):
        self._bar = None
        if sys.stderr.isatty() and total > 1:
            from tqdm import tqdm
            self._bar = tqdm(total=total, unit="chunk", dynamic_ncols=True, leave=False)

    def chunk(self, i: int, n: int) -> None:
        self.advance(1)

    def advance(self, chunks: int) -> None:
        if self._bar is not None:
            self._bar.update(chunks)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
