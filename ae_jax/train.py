"""The train step, the scan that fuses many steps, and the one vmapped program that trains a shape group.

Members of a group share `ModelSpec`, `Objective`, optimiser, batch size and step count; everything
else they differ in (seed, learning rate, noise level, penalty weights, beta) is a traced array in `hp`.
"""

import collections
import dataclasses
import functools
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ae_jax import models, objectives, sharding, stream
from ae_jax.models import ModelSpec
from ae_jax.objectives import Objective

OPTIMIZERS = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),
}

# Learning-rate multipliers as a function of training progress t in [0, 1].
SCHEDULES = {
    "constant": lambda t: 1.0,
    "cosine": lambda t: 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, 1.0))),
}

# How many times each group's chunk program has been traced; the tests' recompilation guard.
TRACE_COUNTS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class Plan:
    """The static part of a shape group: one compiled program per distinct Plan."""

    spec: ModelSpec
    obj: Objective
    optimizer: str
    schedule: str
    batch_size: int
    steps: int
    chunk: int  # steps fused per dispatch

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.steps / self.chunk)


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    stats: Any
    masks: Any  # this member's own units within the group's largest sizes (models.size_masks)
    step: jax.Array  # int32: steps taken (frozen once diverged)
    key: jax.Array  # typed key of the member
    diverged_at: jax.Array  # int32: step whose loss or gradient was not finite, -1 if none


class Data(NamedTuple):
    x_ND: jax.Array | None  # None when batches are streamed from the host (stream.py)
    lo_D: jax.Array  # per-dimension train min and max (salt-and-pepper values)
    hi_D: jax.Array


def plan_of(config, input_shape: tuple[int, ...], chunk: int | None = None) -> Plan:
    """The static plan of one member config on data whose examples have `input_shape`."""
    return Plan(
        spec=models.model_spec(config, input_shape),
        obj=objectives.objective_spec(config),
        optimizer=config.train.optimizer,
        schedule=config.train.schedule,
        batch_size=config.train.batch_size,
        steps=config.train.steps,
        chunk=chunk or min(config.train.log_every, config.train.steps),
    )


def traced_keys() -> tuple[str, ...]:
    """Config keys that are traced per-member arrays (`hp`): members differing only in these (and the
    seed) share one compiled program. The loss terms' weights come from `objectives.LOSS_TERMS`."""
    return ("train.learning_rate",) + objectives.traced_keys()


def hparams_of(configs) -> dict[str, np.ndarray]:
    """The traced hyperparameters of members (one config each), by config key, stacked along the member axis."""
    from ae_jax.config import get
    return {key: np.array([get(c, key) for c in configs], np.float32) for key in traced_keys()}


def make_optimizer(name: str) -> optax.GradientTransformation:
    # The learning rate is written into the state by each step, so it is a traced per-member value.
    return optax.inject_hyperparams(OPTIMIZERS[name])(learning_rate=0.0)


def _with_learning_rate(opt_state, learning_rate):
    hyper = {**opt_state.hyperparams, "learning_rate": jnp.asarray(learning_rate, jnp.float32)}
    return opt_state._replace(hyperparams=hyper)


def init_params(plan: Plan, seeds_M: np.ndarray, sizes_M: np.ndarray) -> Any:
    """Each member initialised at its own (code size, width), zero-padded on the host to the group's largest.

    Member by member outside jit: `models.init_params` then runs one cached program per leaf shape, so a
    sweep compiles each distinct layer shape once instead of an init program per (size, group)."""
    like = jax.eval_shape(functools.partial(models.init_params, plan.spec), jax.random.key(0))
    stacked = jax.tree.map(lambda a: np.zeros((len(seeds_M),) + a.shape, a.dtype), like)
    for i, (seed, (code_size, width)) in enumerate(zip(np.asarray(seeds_M).tolist(), np.asarray(sizes_M).tolist())):
        spec = dataclasses.replace(plan.spec, code_size=int(code_size), width=int(width))
        own = jax.device_get(models.init_params(spec, jax.random.fold_in(jax.random.key(np.uint32(seed)), 0)))
        for leaf_all, leaf_own in zip(jax.tree.leaves(stacked), jax.tree.leaves(own)):
            leaf_all[(i,) + tuple(slice(0, n) for n in leaf_own.shape)] = leaf_own
    return stacked


def init_state(params: Any, seed: jax.Array, hp: dict, size: jax.Array, *, plan: Plan) -> TrainState:
    opt_state = _with_learning_rate(make_optimizer(plan.optimizer).init(params), hp["train.learning_rate"])
    return TrainState(params, opt_state, objectives.initial_stats(plan.spec),
                      models.size_masks(plan.spec, size[0], size[1]), jnp.int32(0),
                      stream.member_key(seed), jnp.int32(-1))


def train_step(state: TrainState, hp: dict, data: Data, x_BD: jax.Array | None = None, *,
               plan: Plan) -> tuple[TrainState, dict]:
    """One optimiser step of one member; a non-finite loss freezes the member and records the step.

    The batch is drawn from `data.x_ND` here, or given as `x_BD` (streamed: the same indices, drawn
    on the host by `stream.MemberSampler`).
    """
    k_batch, k_loss = stream.step_keys(state.key, state.step)
    if x_BD is None:
        x_BD = data.x_ND[stream.batch_indices(k_batch, plan.batch_size, data.x_ND.shape[0])]
    grad_fn = jax.value_and_grad(objectives.loss_fn, has_aux=True)
    (loss, (terms, stats)), grads = grad_fn(state.params, state.stats, state.masks, x_BD, k_loss, hp,
                                            spec=plan.spec,
                                            obj=plan.obj, lo_D=data.lo_D, hi_D=data.hi_D)
    lr = hp["train.learning_rate"] * SCHEDULES[plan.schedule](state.step / plan.steps)
    opt_state = _with_learning_rate(state.opt_state, lr)
    updates, opt_state = make_optimizer(plan.optimizer).update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    grad_norm = optax.global_norm(grads)
    live = (state.step < plan.steps) & (state.diverged_at < 0)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    take = live & finite
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(take, n, o), new, old)
    new_state = TrainState(
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        stats=keep(stats, state.stats),
        masks=state.masks,
        step=state.step + take.astype(jnp.int32),
        key=state.key,
        diverged_at=jnp.where(live & ~finite, state.step, state.diverged_at),
    )
    return new_state, {**terms, "grad/norm": grad_norm, "_taken": take}


def train_chunk(state: TrainState, hp: dict, data: Data, *, plan: Plan) -> tuple[TrainState, dict]:
    """`plan.chunk` steps in one `lax.scan`; metrics are averaged over the steps actually taken."""
    TRACE_COUNTS[plan] += 1
    state, per_step = jax.lax.scan(lambda s, _: train_step(s, hp, data, plan=plan), state,
                                   length=plan.chunk)
    return state, chunk_means(per_step)


def chunk_means(per_step: dict) -> dict:
    """{name: (..., T)} per-step metrics and their '_taken' mask -> means over the steps taken."""
    per_step = dict(per_step)
    taken = per_step.pop("_taken").astype(jnp.float32)
    n = taken.sum(-1)
    return {k: jnp.where(n > 0, (v * taken).sum(-1) / jnp.maximum(n, 1.0), jnp.nan)
            for k, v in per_step.items()}


def train_streamed(state: TrainState, hp: dict, data: Data, x_SBD: jax.Array, *,
                   plan: Plan) -> tuple[TrainState, dict]:
    """The steps of one streamed transfer (x_SBD: S steps' batches); per-step metrics, unreduced."""
    TRACE_COUNTS[plan] += 1
    return jax.lax.scan(lambda s, x: train_step(s, hp, data, x, plan=plan), state, x_SBD)


@functools.lru_cache(maxsize=64)
def compile_plan(plan: Plan):
    """The group's two programs: vmapped init, and a chunk of steps over the members (the one `jit` of
    training; `sharding.over_members` says why members are mapped, not vmapped, on the CPU).

    The member axis is the leading axis of `state` and `hp`; data is shared (in_axes None). The state
    is donated: each chunk updates it in place.
    """
    init = jax.jit(jax.vmap(functools.partial(init_state, plan=plan)))
    chunk = jax.jit(sharding.over_members(functools.partial(train_chunk, plan=plan), (0, 0, None),
                                          sharding.member_mesh()), donate_argnums=0)
    return init, chunk


@functools.lru_cache(maxsize=64)
def compile_stream(plan: Plan):
    """The streamed group's programs: the steps of one transfer x_SMBD (members on axis 1, so the scan
    runs over axis 0 inside each member), and the means of a chunk's per-step metrics (M, T).

    The state is donated; the batch is not: no output has its shape, so XLA could not reuse it.
    """
    mesh = sharding.member_mesh()
    steps = jax.jit(sharding.over_members(functools.partial(train_streamed, plan=plan), (0, 0, None, 1), mesh),
                    donate_argnums=0)
    return steps, jax.jit(sharding.over_members(chunk_means, (0,), mesh))


def _start(plan: Plan, seeds_M, hp_M, x_train, sizes_M, params_M=None):
    """(mesh, initial state, hp, data, padded seeds) of a group, members padded to the mesh and sharded over it;
    `params_M`, if given, are the members' `init_params` (computed once by a caller that needs them too)."""
    init, _ = compile_plan(plan)
    m = len(seeds_M)
    if sizes_M is None:
        sizes_M = np.tile([plan.spec.code_size, plan.spec.width], (m, 1))
    mesh = sharding.member_mesh()
    if params_M is None:
        params_M = init_params(plan, seeds_M, sizes_M)
    seeds_M, sizes_M, hp_M, params_M = sharding.pad_members(
        (np.asarray(seeds_M, np.uint32), np.asarray(sizes_M, np.int32),
         {k: np.asarray(v, np.float32) for k, v in hp_M.items()}, params_M), sharding.padded_size(m, mesh))
    if isinstance(x_train, stream.Streamed):
        data = sharding.replicate(Data(None, jnp.asarray(x_train.lo_D), jnp.asarray(x_train.hi_D)), mesh)
    else:
        x = jnp.asarray(x_train)
        data = sharding.replicate(Data(x, x.min(0), x.max(0)), mesh)
    hp = sharding.shard_members(hp_M, mesh)
    params = sharding.shard_members(params_M, mesh)
    return mesh, init(params, *sharding.shard_members((seeds_M, hp, sizes_M), mesh)), hp, data, seeds_M


def warm(plan: Plan, n_members: int, x_shape: tuple[int, int]) -> None:
    """Compile a group's training chunk ahead of its turn, from shapes alone: the sweep runs this in a
    thread while the previous group trains (XLA compiles without the GIL; executing programs from two
    threads at once deadlocked XLA:CPU here, so nothing is executed). `fit`'s own call then finds the
    program compiled; a mismatch (say, another sharding) only means it compiles again."""
    _, chunk = compile_plan(plan)
    mesh = sharding.member_mesh()
    m = sharding.padded_size(n_members, mesh)
    members = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(sharding.AXIS))
    whole = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    stacked = lambda a: jax.ShapeDtypeStruct((m,) + tuple(a.shape), a.dtype, sharding=members)
    like = jax.eval_shape(functools.partial(models.init_params, plan.spec), jax.random.key(0))
    hp = {k: jax.ShapeDtypeStruct((m,), jnp.float32, sharding=members) for k in traced_keys()}
    init, _ = compile_plan(plan)
    state = jax.eval_shape(init, jax.tree.map(stacked, like), jax.ShapeDtypeStruct((m,), jnp.uint32, sharding=members),
                           hp, jax.ShapeDtypeStruct((m, 2), jnp.int32, sharding=members))
    state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=members), state)
    vec = jax.ShapeDtypeStruct(x_shape[1:], jnp.float32, sharding=whole)
    data = Data(jax.ShapeDtypeStruct(tuple(x_shape), jnp.float32, sharding=whole), vec, vec)
    chunk.lower(state, hp, data).compile()


def fit(plan: Plan, seeds_M: np.ndarray, hp_M: dict[str, np.ndarray], x_train: np.ndarray | stream.Streamed,
        sizes_M: np.ndarray | None = None, on_chunk=None, on_metrics=None, checkpoint=None,
        checkpoint_seconds: float = 60.0, params_M: Any = None) -> tuple[TrainState, dict[str, np.ndarray]]:
    """Train all members of a group; returns the final states and curves {name: (M, n_chunks)}.

    `x_train` is an (N, D) array, put on the device whole, or a `stream.Streamed` source whose batches
    grain gathers on the host, a chunk at a time; both draw the same indices (stream.py), so both
    give the same states.

    `sizes_M` (M, 2) holds each member's own (code size, width), at most the plan's; default: the plan's.
    `on_metrics(i, {name: (M,)})` receives chunk i's means on the host as soon as they are there (live
    curves). `on_chunk(i, n)` is called after each chunk is dispatched (progress); metrics of chunk i are
    brought to the host only after chunk i+1 is dispatched, so the device never waits on the host.
    `checkpoint` (a `checkpoint.GroupCheckpoint`) resumes from its latest save and is saved at most
    every `checkpoint_seconds` (0: after every chunk); chunks are deterministic, so a resumed group
    ends bit-identical to an uninterrupted one. `params_M`: the members' `init_params`, if already made.
    """
    init, chunk = compile_plan(plan)
    m = len(seeds_M)
    mesh, state, hp, data, seeds_M = _start(plan, seeds_M, hp_M, x_train, sizes_M, params_M)
    streamed = isinstance(x_train, stream.Streamed)
    start, curves = 0, collections.defaultdict(list)
    restored = checkpoint.restore(state) if checkpoint is not None else None
    if restored is not None:
        start, state, saved = restored
        state = sharding.shard_members(state, mesh)
        curves.update(saved)
        for i in range(start if on_metrics is not None else 0):  # live curves: the chunks not retrained too
            on_metrics(i, {k: v[i][:m] for k, v in saved.items()})
    if streamed:
        per = stream.steps_per_transfer(plan.chunk, len(seeds_M) * plan.batch_size * x_train.lo_D.size * 4,
                                        x_train.transfer_mb)
        batches = _device_chunks(x_train, seeds_M, plan, per, start, mesh)
        steps, means = compile_stream(plan)

        def run(s):
            parts = []
            for _ in range(plan.chunk // per):
                s, per_step = steps(s, hp, data, next(batches))
                parts.append(per_step)
            return s, means({k: jnp.concatenate([p[k] for p in parts], axis=1) for k in parts[0]})
    else:
        batches = None
        run = lambda s: chunk(s, hp, data)
    def record(pending):
        """Chunk `pending = (i, device metrics)` to the host curves, and to `on_metrics`."""
        i, metrics = pending
        host = _append_host(curves, metrics)
        if on_metrics is not None:
            on_metrics(i, {k: v[:m] for k, v in host.items()})

    last_save, pending, done = time.monotonic(), None, start
    try:
        for i in range(start, plan.n_chunks):
            # Dispatch is asynchronous: a streamed transfer i+1 is read and sent while transfer i trains.
            state, metrics = run(state)
            if pending is not None:
                record(pending)
            pending, done = (i, metrics), i + 1
            if on_chunk:
                on_chunk(i, plan.n_chunks)
            if checkpoint is not None and i + 1 < plan.n_chunks and (
                    time.monotonic() - last_save >= checkpoint_seconds):
                record(pending)
                pending = None
                # Synchronous: the next chunk donates (overwrites) these buffers.
                checkpoint.save(i + 1, state, curves)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        # Ctrl-C / SIGTERM: keep the chunks already trained. If the interrupt landed between a chunk's
        # dispatch and its result, `state` is the donated (deleted) input and there is nothing to save.
        if checkpoint is not None and done > start:
            try:
                if pending is not None:
                    record(pending)
                checkpoint.save(done, state, curves)
            except Exception:  # noqa: BLE001 - best effort on the way out; the last periodic save stays
                pass
        raise
    finally:
        if batches is not None:
            batches.close()  # stops grain's reader threads, also when training raised
    if pending is not None:
        record(pending)
    return _unpad(state, m), {k: np.stack(v, axis=1)[:m] for k, v in curves.items()}


def _device_chunks(streamed: "stream.Streamed", seeds_M: np.ndarray, plan: Plan, per: int, start: int,
                   mesh):
    """Streamed (S, M, B, D) batches of `per` steps on the device from chunk `start` on, members sharded
    like the state; one transfer ahead."""
    parts = plan.chunk // per
    n = plan.n_chunks * parts
    host = stream.host_chunks(streamed, seeds_M, plan.batch_size, per, n, start * parts)
    spec = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
        None, sharding.AXIS))
    put = lambda x: jax.device_put(x, spec) if spec is not None else jax.device_put(x)
    try:
        ahead = put(next(host))
        for _ in range(start * parts + 1, n):
            current, ahead = ahead, put(next(host))
            yield current
        yield ahead
    finally:
        host.close()


def _unpad(state: TrainState, m: int) -> TrainState:
    """The first m members as host arrays: later work (diagnostics, logging) is per member, and
    running it on member-sharded arrays would only add cross-device traffic (which on forced CPU host
    devices can stall)."""
    key_data = np.asarray(jax.device_get(jax.random.key_data(state.key)))[:m]
    host = jax.tree.map(lambda a: np.asarray(a)[:m], jax.device_get(state._replace(key=key_data)))
    return host._replace(key=jax.random.wrap_key_data(jnp.asarray(host.key)))


def _append_host(curves, metrics) -> dict[str, np.ndarray]:
    host = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    for k, v in host.items():
        curves[k].append(v)
    return host
