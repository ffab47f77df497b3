"""The engine's vectorised sweep against the same members trained one after another, each its own program."""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ae_jax import models, sharding, stream, train
from benchmarks.common import Sizes, hparams, seconds, small_plan, sweep_settings


def hand_program(plan: train.Plan, x_ND: np.ndarray, seed: int, lr: float):
    """(jitted run(params) -> ((params, opt_state), losses), initial params) of one member written by hand."""
    # The engine member's initialisation, batches and Adam update, so both sides do the same work and end
    # at the same params; `lr` and `seed` are Python numbers, so each member compiles its own program,
    # as a by-hand sweep does.
    # Eager flax init, as a by-hand sweep does it (the engine's init_params is a compiled, cached program).
    params = models.init_params(plan.spec, jax.random.fold_in(jax.random.key(seed), 0))
    opt = optax.adam(lr)
    key = stream.member_key(seed)
    x = jnp.asarray(x_ND)

    def loss(p, x_BD):
        return jnp.square(models.reconstruct(plan.spec, p, x_BD) - x_BD).sum(-1).mean()

    def step(carry, i):
        p, o = carry
        k_batch, _ = stream.step_keys(key, i)
        x_BD = x[stream.batch_indices(k_batch, plan.batch_size, x.shape[0])]
        value, grads = jax.value_and_grad(loss)(p, x_BD)
        updates, o = opt.update(grads, o, p)
        return (optax.apply_updates(p, updates), o), value

    return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), jnp.arange(plan.steps))), params


def run_sequential(plan: train.Plan, x_ND, seeds, lrs) -> tuple[dict, list]:
    """Member after member, each its own program; returns (seconds by phase, final params)."""
    # total_s is what a by-hand sweep pays (init, compile, first run); warm_run_s runs each compiled
    # program again (median of 3), so that a first run's allocations do not count as training.
    t = {"init_s": 0.0, "compile_s": 0.0, "run_s": 0.0, "warm_run_s": 0.0}
    finals = []
    for seed, lr in zip(seeds, lrs):
        t0 = time.perf_counter()
        run, params = hand_program(plan, x_ND, int(seed), float(lr))
        jax.block_until_ready(params)
        t1 = time.perf_counter()
        compiled = run.lower(params).compile()
        t2 = time.perf_counter()
        (final, _), losses = compiled(params)
        jax.block_until_ready((final, losses))
        t3 = time.perf_counter()
        t["warm_run_s"] += statistics.median(seconds(compiled, params) for _ in range(3))
        t["init_s"] += t1 - t0
        t["compile_s"] += t2 - t1
        t["run_s"] += t3 - t2
        finals.append(final)
    t["total_s"] = t["init_s"] + t["compile_s"] + t["run_s"]
    return t, finals


def fit_cold(plan: train.Plan, x_ND, seeds, hp: dict) -> tuple[float, train.TrainState]:
    """Wall time of `train.fit` with nothing compiled yet (its compile counted once)."""
    train.compile_plan.cache_clear()
    jax.clear_caches()
    t0 = time.perf_counter()
    state, curves = train.fit(plan, seeds, hp, x_ND)
    jax.block_until_ready((state, curves))
    return time.perf_counter() - t0, state


def engine_setup(plan: train.Plan, seeds, hp: dict, x_ND):
    """(fresh_state(), run(state)): `train.fit`'s set-up done once, so that its training alone can be timed."""
    # Mirrors fit (mesh, padding, sharding, the plan's two compiled programs); keep the two in step.
    init, chunk = train.compile_plan(plan)
    mesh = sharding.member_mesh()
    m = len(seeds)
    sizes_M = np.tile([plan.spec.code_size, plan.spec.width], (m, 1)).astype(np.int32)
    seeds_M, sizes_M, hp_M = sharding.pad_members((np.asarray(seeds, np.uint32), sizes_M, hp),
                                                  sharding.padded_size(m, mesh))
    x = jnp.asarray(x_ND)
    data = sharding.replicate(train.Data(x, x.min(0), x.max(0)), mesh)
    hp = sharding.shard_members(hp_M, mesh)
    params = sharding.shard_members(train.init_params(plan, seeds_M, sizes_M), mesh)
    args = sharding.shard_members((seeds_M, hp, sizes_M), mesh)

    def fresh_state():
        return jax.block_until_ready(init(params, *args))

    def run(state):
        for _ in range(plan.n_chunks):
            state, metrics = chunk(state, hp, data)
        return jax.block_until_ready((state, metrics))[0]

    return fresh_state, run


def time_steady(fresh_state, run, calls: int = 3) -> float:
    """Seconds of one full training run on already-compiled programs (median of `calls`)."""
    return statistics.median(seconds(run, fresh_state()) for _ in range(calls))


def warm_up(x_ND) -> None:
    """Pays the process's one-off costs (first compile, first traces) on both sides before any timing."""
    plan = small_plan(Sizes(steps=2, chunk=2))
    run_hand, params = hand_program(plan, x_ND, 0, 1e-3)
    jax.block_until_ready(run_hand(params))
    seeds, lrs = sweep_settings(1)
    fit_cold(plan, x_ND, seeds, hparams(lrs))
