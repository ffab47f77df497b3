"""The workdir: one sweep per directory, a lock against concurrent runs, and `results.jsonl` lines
written whole or not at all, so a killed run never leaves a half line or a duplicate member."""

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from ae_jax.errors import ConfigError

RESULTS = "results.jsonl"
IDENTITY = "sweep.json"


class WorkdirBusy(RuntimeError):
    """Another command holds this workdir's lock."""


class Results:
    """Append-only `results.jsonl`; each record is one `os.write` of a full line, then fsync."""

    def __init__(self, path: Path):
        self.path = path
        self._records = read_results(path)

    def finished_names(self, reload: bool = False) -> set[str]:
        """Members already recorded; `reload` re-reads the file (other shards append to it too)."""
        if reload:
            self._records = read_results(self.path)
        return {r["name"] for r in self._records}

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Shards of one sweep append to the same file: one writer at a time, one whole line each.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._records.append(record)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of a results file; a torn last line (a kill mid-write on another FS) is ignored."""
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{n}: not a whole JSON line, ignored")
    return records


# Keys that change how a sweep runs, never what it computes (the loaders give identical numbers).
NOT_IDENTITY = ("wandb.", "data.loader", "data.stream_above_mb", "data.read_threads", "data.prefetch",
                "data.transfer_mb")


def sweep_identity(sweep_name: str, members: Sequence[tuple[str, dict]]) -> dict[str, Any]:
    """What makes a workdir's sweep the same sweep: member names and their configs, less NOT_IDENTITY."""
    body = [(name, {k: v for k, v in cfg.items() if not k.startswith(NOT_IDENTITY)}) for name, cfg in members]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return {"name": sweep_name, "members": len(members), "sha256": digest}


@contextlib.contextmanager
def open_workdir(workdir: Path, identity: dict[str, Any], shard: tuple[int, int] = (0, 1)) -> Iterator[Results]:
    """Lock `workdir` (per shard), check it holds this sweep (or nothing), and hand out its results."""
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir: {workdir} exists and is not a directory")
    ident_path = workdir / IDENTITY
    if ident_path.exists():
        try:
            old = json.loads(ident_path.read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"--workdir: {ident_path} is corrupt; use a new workdir") from None
        if old.get("sha256") != identity["sha256"]:
            raise ConfigError(f"--workdir: {workdir} holds a different sweep ({old.get('name')!r}, "
                              f"{old.get('members')} members); use a new workdir or the same config")
    workdir.mkdir(parents=True, exist_ok=True)
    lock = open(workdir / (".lock" if shard == (0, 1) else f".lock.{shard[0]}-of-{shard[1]}"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise WorkdirBusy(f"--workdir: {workdir} is in use by another ae_jax command; wait for it "
                          f"or use another workdir") from None
    try:
        if not ident_path.exists():
            tmp = ident_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(identity, indent=1))
            os.replace(tmp, ident_path)
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
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
