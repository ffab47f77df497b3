"""Checkpoints of a running shape group (orbax): the stacked train state plus the curves so far.

One directory per group under `WORKDIR/checkpoints/`, named by a hash of the group's member names
and static plan, so a resumed sweep finds exactly its own group. Orbax writes each save to a temporary
directory and renames it when complete, so a kill mid-save leaves the previous checkpoint intact.
The directory is removed once the group's members are all in `results.jsonl`.
"""

import hashlib
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


def group_dir(workdir: Path, plan: Any, member_names: list[str]) -> Path:
    digest = hashlib.sha256(repr((plan, sorted(member_names))).encode()).hexdigest()[:16]
    return Path(workdir).absolute() / "checkpoints" / digest


def _to_host(state: Any) -> Any:
    """NumPy copies with the typed key as raw key data: orbax under jax.distributed refuses
    process-local device arrays, and raw data is what a key is on disk anyway."""
    return jax.device_get(state._replace(key=jax.random.key_data(state.key)))


class GroupCheckpoint:
    """Save and restore (state, curves, next chunk index) for one group; keeps only the latest."""

    def __init__(self, path: Path):
        self.path = path
        self._manager = None

    def _mngr(self) -> ocp.CheckpointManager:
        if self._manager is None:
            # Each process checkpoints only its own members: a manager of one process, no barriers.
            me = jax.process_index()
            options = ocp.CheckpointManagerOptions(
                max_to_keep=1, enable_async_checkpointing=False, create=False,
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"p{me}"))
            self.path.mkdir(parents=True, exist_ok=True)
            self._manager = ocp.CheckpointManager(self.path, options=options)
        return self._manager

    def save(self, next_chunk: int, state: Any, curves: dict[str, list[np.ndarray]]) -> None:
        meta = {"next_chunk": next_chunk,
                "curves": {k: [np.asarray(c).tolist() for c in v] for k, v in curves.items()}}
        # Host numpy copies: orbax refuses process-local device arrays under jax.distributed.
        self._mngr().save(next_chunk, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_to_host(state)), meta=ocp.args.JsonSave(meta)))
        self._mngr().wait_until_finished()

    def restore(self, template: Any) -> tuple[int, Any, dict[str, list[np.ndarray]]] | None:
        """The latest checkpoint shaped like `template`, or None when there is none."""
        if not self.path.exists():
            return None
        step = self._mngr().latest_step()
        if step is None:
            return None
        got = self._mngr().restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_to_host(template)), meta=ocp.args.JsonRestore()))
        curves = {k: [np.asarray(c, np.float32) for c in v] for k, v in got["meta"]["curves"].items()}
        state = got["state"]._replace(key=jax.random.wrap_key_data(jnp.asarray(got["state"].key)))
        return int(got["meta"]["next_chunk"]), state, curves

    def remove(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.path, ignore_errors=True)
