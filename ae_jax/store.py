"""A finished sweep, read back: each member's config, metrics and trained map, from its workdir alone.

The sweep writes `WORKDIR/members/member_<index>.msgpack` (the member's final parameters and packing
masks, and the model spec they belong to) before the member's line in `results.jsonl`, so every
recorded member can be loaded. Analyses (the experiments, notebooks) start from `load(WORKDIR)`:

    for m in store.load("runs/quickstart"):
        m.config.model.code_size, m.metrics["test_mse"], m.f(x_ND), m.encode(x_ND)

`f` and `encode` run the member's mean path through one jitted program per model spec.
"""

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ae_jax import models, workdir as workdir_lib
from ae_jax.errors import ConfigError

MEMBERS = "members"
ROWS = 2048  # rows per call of f / encode: bounded device memory on large inputs


def member_path(workdir: str | Path, index: int) -> Path:
    return Path(workdir) / MEMBERS / f"member_{index:05d}.msgpack"


def save_member(workdir: str | Path, index: int, spec: models.ModelSpec, params: Any, masks: Any) -> Path:
    """Write one member's parameters (written aside, then renamed: a file is whole or absent)."""
    path = member_path(workdir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = flax.serialization.msgpack_serialize({
        "spec": json.dumps(dataclasses.asdict(spec)),
        "params": jax.tree.map(np.asarray, params),
        "masks": jax.tree.map(np.asarray, masks),
    })
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def spec_from_json(text: str) -> models.ModelSpec:
    return models.ModelSpec(**{k: _tuples(v) for k, v in json.loads(text).items()})


def config_from_flat(flat: dict[str, Any]) -> ml_collections.ConfigDict:
    """The member's config from its flat `results.jsonl` form (lists back to tuples)."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _tuples(value)
    return ml_collections.ConfigDict(nested)


@functools.lru_cache(maxsize=16)
def _program(fn):
    """One jitted program per (hashable) mean-path or code-path function, i.e. per model spec."""
    return jax.jit(fn)


@functools.lru_cache(maxsize=4)
def _dataset(data_json: str):
    from ae_jax import data as data_lib

    return data_lib.load(ml_collections.ConfigDict(json.loads(data_json)))


@dataclasses.dataclass
class Member:
    """One recorded member of a finished sweep."""

    index: int
    name: str
    status: str
    config: ml_collections.ConfigDict
    metrics: dict[str, Any]
    record: dict[str, Any]  # the whole results.jsonl line
    workdir: Path

    @functools.cached_property
    def _net(self) -> tuple[models.ModelSpec, Any, Any]:
        path = member_path(self.workdir, self.index)
        if not path.is_file():
            raise ConfigError(f"{path}: no saved parameters for member {self.name!r} (the sweep ran with "
                              f"train.save_params=False, or before parameters were kept)")
        saved = flax.serialization.msgpack_restore(path.read_bytes())
        return spec_from_json(saved["spec"]), saved["params"], saved["masks"]

    @property
    def spec(self) -> models.ModelSpec:
        return self._net[0]

    @property
    def params(self) -> Any:
        return self._net[1]

    @property
    def masks(self) -> Any:
        return self._net[2]

    @property
    def dataset(self):
        """The member's dataset (`data.load` of its `data` block; members with equal blocks share one)."""
        return _dataset(json.dumps(self.config.data.to_dict(), sort_keys=True))

    @property
    def mean_path(self) -> tuple[models.MeanPath, tuple[Any, Any]]:
        """(fn, net) with fn(net, x_BD) = f(x): the traceable map, for jax.jacfwd / jit / iteration in an
        analysis; fn is hashable per spec, so programs keyed on it compile once per spec."""
        return models.MeanPath(self.spec), (self.params, self.masks)

    def _run(self, path_fn, x_ND: np.ndarray) -> np.ndarray:
        spec, params, masks = self._net
        program = _program(path_fn)
        x_ND = np.asarray(x_ND, np.float32).reshape(len(x_ND), -1)
        with models.matmul_precision(spec):
            return np.concatenate([np.asarray(program((params, masks), jnp.asarray(x_ND[i:i + ROWS])))
                                   for i in range(0, max(len(x_ND), 1), ROWS)])

    def f(self, x_ND: np.ndarray) -> np.ndarray:
        """The member's mean-path reconstruction of (N, D) inputs."""
        return self._run(models.MeanPath(self.spec), x_ND)

    def encode(self, x_ND: np.ndarray) -> np.ndarray:
        """The code the decoder reads on the mean path, (N, K) (K = the group's largest code size;
        units beyond the member's own `model.code_size` are 0)."""
        return self._run(models.CodePath(self.spec), x_ND)


def load(workdir: str | Path, status: str | None = "ok") -> list[Member]:
    """The recorded members of WORKDIR (the last line of a member winning), in member order;
    `status=None` keeps every status."""
    workdir = Path(workdir)
    path = workdir / workdir_lib.RESULTS
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run the sweep first)")
    latest: dict[int, dict] = {}
    for record in workdir_lib.read_results(path):
        if isinstance(record, dict) and "member" in record:
            latest[record["member"]] = record
    return [Member(r["member"], r["name"], r["status"], config_from_flat(r.get("config", {})), r["metrics"], r,
                   workdir) for _, r in sorted(latest.items()) if status is None or r["status"] == status]
