"""The groups of one sweep command, run one after another or spread over local worker processes.

On a CPU, XLA runs a small autoencoder's training program on one core, and compiling, the diagnostics
and the logistic probes are single-threaded too: one process uses one core. `run_parallel` starts N
worker processes (spawned, each its own JAX runtime on the machine's devices); each claims the next
unclaimed shape group, largest first among the architectures it has already run (their diagnostics are
compiled there), and trains, diagnoses and records it into the shared workdir
exactly as the command itself does (`groups.run_group`). A member runs the same one-member program
wherever it runs (`sharding.over_members`), so its numbers do not depend on the number of workers.
The command keeps the workdir's lock, shows the progress and writes the report at the end.

Workers die with the command (Linux's parent-death signal), so a killed command leaves nothing running
that could race its resume; Ctrl-C and SIGTERM reach every worker, which checkpoints its group first.
"""

import collections
import concurrent.futures
import ctypes
import os
import pickle
import queue
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import jax

from ae_jax import data as data_lib, groups as groups_lib, models, train, workdir as workdir_lib

POLL_SECONDS = 0.5  # how often the command looks at its workers (progress, failures)
STOP_SECONDS = 120.0  # how long a stopped worker may take to checkpoint its group


def use_compilation_cache(path: str) -> None:
    """Keeps this process's compiled programs in the persistent cache at `path` (shared by a command and its
    workers). Programs that compiled in under $AE_JAX_CACHE_MIN_COMPILE_S seconds (default 0.2) are not
    written: loading them would cost about as much. The tests set 0, so that whether a program is cached
    does not depend on the machine's load."""
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ.get("AE_JAX_CACHE_MIN_COMPILE_S", "0.2")))


def auto_workers(n_groups: int) -> int:
    """One worker per core this process may run on, on the CPU backend (at most one per group); elsewhere
    one: an accelerator is shared by a single process (JAX preallocates its memory)."""
    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), n_groups))


def largest_first(todo: Sequence[groups_lib.Group]) -> list[int]:
    """Group indices by estimated work (member-steps x examples per step x parameters), largest first, so
    the last groups to start are short ones and no worker is left running a long group alone."""
    def work(g: groups_lib.Group) -> float:
        like = jax.eval_shape(lambda: models.init_params(g.plan.spec, jax.random.key(0)))
        n_params = sum(leaf.size for leaf in jax.tree.leaves(like))
        return len(g.members) * g.plan.steps * g.plan.batch_size * n_params
    return sorted(range(len(todo)), key=lambda i: -work(todo[i]))


def claim_next(order: Sequence[int], claimed, affinity: Sequence[Any], seen: set) -> int | None:
    """The next group for a worker that has run groups of the `seen` affinities: the largest unclaimed
    group (in `order`) of one of those, else the largest unclaimed one; marks it in `claimed`.

    Groups of one architecture share their diagnostics programs (`groups.diagnostics_specs`), and two
    workers that start the same program at once both compile it (the persistent cache only helps the one
    that comes later): handing a worker the architectures it has compiled keeps each compile to one
    process, while falling back to the largest group keeps the work balanced."""
    free = [i for i in order if not claimed[i]]
    if not free:
        return None
    pick = next((i for i in free if affinity[i] in seen), free[0])
    claimed[pick] = 1
    seen.add(affinity[pick])
    return pick


def affinity_of(group: groups_lib.Group) -> tuple:
    """What decides which diagnostics programs a group needs: its data and its diagnostics spec."""
    return group.data, group.diag_spec or group.plan.spec


def train_groups(todo: Sequence[groups_lib.Group], datasets: dict, claim: Callable[[], int | None],
                 run_one: Callable, done: Callable[[int, list[dict]], None], ahead: bool) -> None:
    """Run the groups `claim()` hands out (None: no more), `done(i, records)` after each. With `ahead`,
    the next group's training program compiles in a thread while the current one trains and is diagnosed
    (XLA compiles without the GIL): worth it when a core would otherwise idle, i.e. one process per machine."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile-ahead") if ahead else None
    warming: dict[int, concurrent.futures.Future] = {}
    try:
        current = claim()
        while current is not None:
            following = claim() if ahead else None
            if following is not None:
                warming[following] = pool.submit(groups_lib.warm_group, todo[following], datasets[todo[following].data])
            if current in warming:
                _settle(warming.pop(current))
            done(current, run_one(todo[current], datasets[todo[current].data]))
            current = following if ahead else claim()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _settle(future: concurrent.futures.Future) -> None:
    """Wait for a group's compile-ahead; its failure is the group's own to report when it runs."""
    try:
        future.result()
    except Exception:  # noqa: BLE001 - the real run raises it again, with its context
        pass


# ----------------------------------------------------------------------------- the worker processes


def run_parallel(todo: Sequence[groups_lib.Group], n_workers: int, job: dict[str, Any], progress,
                 done: Callable[[int, list[dict]], None], timings: dict | None) -> None:
    """Run `todo` on `n_workers` spawned processes; `done(i, records)` as each group finishes (in this
    process). `job`: what `run_group` needs besides the group (workdir, sweep_name, identity, label,
    compilation_cache). A worker's failure stops the others and is raised here, as the sequential run would."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # JAX's runtime threads do not survive fork
    claimed, chunks, outbox = ctx.Array("b", len(todo)), ctx.Value("i", 0), ctx.Queue()
    order = largest_first(todo)
    procs = [ctx.Process(target=_work, args=(rank, os.getpid(), list(todo), order, job, claimed, chunks, outbox),
                         name=f"ae_jax-worker-{rank}") for rank in range(n_workers)]
    for p in procs:
        p.start()
    finished, failure, shown = set(), None, 0

    def receive(timeout: float) -> None:
        nonlocal failure
        try:
            kind, rank, *payload = outbox.get(timeout=timeout)
        except queue.Empty:
            # A worker says why it ends before it exits; one that has exited and whose last word has not
            # arrived within a second was killed (out of memory, a signal).
            dead = [r for r, p in enumerate(procs) if r not in finished and p.exitcode is not None]
            if not dead:
                return
            try:
                kind, rank, *payload = outbox.get(timeout=1.0)
            except queue.Empty:
                if failure is None:
                    failure = RuntimeError(f"sweep worker {dead[0]} exited with status {procs[dead[0]].exitcode}")
                    _stop(procs)
                finished.update(dead)
                return
        if kind == "group":
            done(*payload)
        elif kind == "error" and failure is None:
            failure = pickle.loads(payload[0])
            _stop(procs)
        elif kind == "finished":
            for key, value in payload[0].items():
                if timings is not None:
                    timings[key] = timings.get(key, 0.0) + value
            train.TRACE_COUNTS.update(payload[1])
        if kind in ("finished", "error", "interrupted"):
            finished.add(rank)

    try:
        while len(finished) < n_workers:
            receive(POLL_SECONDS)
            with chunks.get_lock():
                shown, new = chunks.value, chunks.value - shown
            if progress is not None and new:
                progress.advance(new)
    except KeyboardInterrupt:  # Ctrl-C reached the workers too; a SIGTERM only this process: pass it on
        _stop(procs)
        deadline = time.monotonic() + STOP_SECONDS
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            try:
                outbox.get(timeout=0.1)  # a worker with unsent messages would not exit
            except queue.Empty:
                pass
        raise
    finally:
        for p in procs:
            p.join(STOP_SECONDS)
            if p.is_alive():
                p.kill()
                p.join()
    if failure is not None:
        raise failure


def _stop(procs) -> None:
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when the command that spawned it dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _work(rank: int, parent: int, todo: list, order: list[int], job: dict, claimed, chunks, outbox) -> None:
    """One worker process: claim groups (`claim_next`) until none is left."""
    _die_with(parent)

    def stop(signum, frame):  # once: a second signal must not cut the checkpoint the first one saves
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if job.get("compilation_cache"):
        use_compilation_cache(job["compilation_cache"])
    traces = collections.Counter(train.TRACE_COUNTS)
    timings: dict[str, float] = {}
    datasets = _Datasets({g.data: g.members[0].config.data for g in todo})

    class Chunks:  # the command's progress bar, fed through a shared counter
        @staticmethod
        def chunk(i: int, n: int) -> None:
            with chunks.get_lock():
                chunks.value += 1

    affinity, seen = [affinity_of(g) for g in todo], set()

    def claim() -> int | None:
        with claimed.get_lock():
            return claim_next(order, claimed, affinity, seen)

    results = workdir_lib.Results(Path(job["workdir"]) / workdir_lib.RESULTS)
    run_one = lambda group, dataset: groups_lib.run_group(
        group, dataset, job["sweep_name"], Path(job["workdir"]), results, Chunks, timings,
        identity=job["identity"], label=job["label"])
    try:
        train_groups(todo, datasets, claim, run_one, lambda i, records: outbox.put(("group", rank, i, records)),
                     ahead=False)
    except KeyboardInterrupt:
        outbox.put(("interrupted", rank))
        sys.exit(130)
    except BaseException as e:  # noqa: BLE001 - handed to the command, which raises it
        try:
            payload = pickle.dumps(e)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: keep its text
            payload = pickle.dumps(RuntimeError(f"sweep worker {rank}: {traceback.format_exc()}"))
        outbox.put(("error", rank, payload))
        traceback.print_exc()
        sys.exit(1)
    outbox.put(("finished", rank, timings, train.TRACE_COUNTS - traces))


class _Datasets(dict):
    """The sweep's datasets by data key, each loaded when the worker's first group on it starts."""

    def __init__(self, configs: dict):
        super().__init__()
        self._configs = configs

    def __missing__(self, key: str) -> data_lib.Dataset:
        self[key] = data_lib.load(self._configs[key])
        return self[key]
