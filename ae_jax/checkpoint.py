"""Checkpoints of a running shape group: the stacked train state plus the curves so far.

One directory per group under `WORKDIR/checkpoints/`, named by a hash of the group's member names
and static plan, so a resumed sweep finds exactly its own group; every process of a `--distributed`
job trains other members, so each writes and reads only its own directory, with no coordination.
A save is one file, `chunk-NNNNNN.ckpt`: an `.npz` of the state's leaves and the curves, followed by
the SHA-256 of those bytes. It is written to a temporary file and renamed once complete, so a kill
or a full disk leaves the previous checkpoint. On restore a file whose checksum, leaves or shapes
do not match is discarded with one line and the next older one (or a fresh start) is used instead.
The directory is removed once the group's members are all in `results.jsonl`.
"""

import hashlib
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ae_jax import workdir as workdir_lib

DIGEST = 32  # bytes of SHA-256 at the end of a checkpoint file


def group_dir(workdir: Path, plan: Any, member_names: list[str]) -> Path:
    digest = hashlib.sha256(repr((plan, sorted(member_names))).encode()).hexdigest()[:16]
    return Path(workdir).absolute() / "checkpoints" / digest


def _with_key_data(state: Any) -> Any:
    """The typed key as raw key data: that is what a key is on disk."""
    return state._replace(key=jax.random.key_data(state.key))


def _encode(next_chunk: int, leaves: list[np.ndarray], curves: dict[str, list[np.ndarray]]) -> bytes:
    arrays = {f"leaf{i}": leaf for i, leaf in enumerate(leaves)}
    arrays.update({f"curve/{k}": np.stack(v) for k, v in curves.items() if v})
    meta = {"next_chunk": next_chunk, "leaves": len(leaves), "curves": sorted(k for k, v in curves.items() if v)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    return payload + hashlib.sha256(payload).digest()


def _decode(data: bytes, template: list[Any]) -> tuple[int, list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The saved chunk index, leaves and curves; ValueError naming what does not match."""
    payload, digest = data[:-DIGEST], data[-DIGEST:]
    if len(data) <= DIGEST or hashlib.sha256(payload).digest() != digest:
        raise ValueError("checksum mismatch (damaged or cut short)")
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes())
        leaves = [npz[f"leaf{i}"] for i in range(meta["leaves"])]
        curves = {k: list(npz[f"curve/{k}"].astype(np.float32)) for k in meta["curves"]}
    if len(leaves) != len(template):
        raise ValueError(f"{len(leaves)} arrays where this group has {len(template)}")
    for i, (got, want) in enumerate(zip(leaves, template)):
        if got.shape != tuple(want.shape) or got.dtype != want.dtype:
            raise ValueError(f"array {i} is {got.dtype}{list(got.shape)}, this group's is "
                             f"{want.dtype}{list(want.shape)}")
    return int(meta["next_chunk"]), leaves, curves


class GroupCheckpoint:
    """Save and restore (state, curves, next chunk index) for one group; keeps only the latest."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _files(self) -> list[Path]:
        """Saved checkpoints, newest first."""
        return sorted(self.path.glob("chunk-*.ckpt"), reverse=True)

    def save(self, next_chunk: int, state: Any, curves: dict[str, list[np.ndarray]]) -> None:
        """Write the checkpoint whole (or raise WorkdirError, leaving the previous one), then drop older ones."""
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(_with_key_data(state)))]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise workdir_lib.storage_error(self.path, e) from None
        target = self.path / f"chunk-{next_chunk:06d}.ckpt"
        workdir_lib.write_atomic(target, _encode(next_chunk, leaves, curves))
        for old in self._files():
            if old != target:
                old.unlink(missing_ok=True)

    def restore(self, template: Any) -> tuple[int, Any, dict[str, list[np.ndarray]]] | None:
        """The newest intact checkpoint shaped like `template`, or None (train from the start)."""
        if not self.path.is_dir():
            return None
        for tmp in self.path.glob(".tmp-*"):  # a save cut short by a kill: never complete, never used
            tmp.unlink(missing_ok=True)
        host = _with_key_data(template)
        want = jax.tree.leaves(host)
        for path in self._files():
            try:
                next_chunk, leaves, curves = _decode(path.read_bytes(), want)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                print(f"warning: checkpoint {path} is unusable ({e}); discarded", file=sys.stderr, flush=True)
                path.unlink(missing_ok=True)
                continue
            state = jax.tree.unflatten(jax.tree.structure(host), leaves)
            return next_chunk, state._replace(key=jax.random.wrap_key_data(jnp.asarray(state.key))), curves
        return None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
