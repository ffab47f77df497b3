"""Run every member of a sweep: `python -m ae_jax.sweep --config=FILE.py[:ARG] --workdir=DIR`.

A config file defines `get_config(arg)` and, optionally, `get_sweep(arg)` returning a list of flat
override dicts built with `ae_jax.config.sweep/product/zipped`. Members that share every static
setting (the `train.Plan`) form a shape group and train as ONE compiled, vmapped program; traced
hyperparameters (`train.traced_keys()`, the seed) vary inside it. Results land in `DIR/results.jsonl` a
member at a time as each group finishes; running the same command again skips finished members.
"""

import dataclasses
import fnmatch
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections

from ae_jax import config as config_lib, data as data_lib, stream, train, workdir as workdir_lib
from ae_jax.errors import ConfigError
from ae_jax import workers as workers_lib
from ae_jax.groups import Member, data_key, diagnostics_specs, group_members, run_group


# ----------------------------------------------------------------------------- expansion


def load_config_file(spec: str) -> tuple[ml_collections.ConfigDict, list[dict], str]:
    """`FILE.py[:ARG]` -> (config, sweep overrides, sweep name); errors name the path."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ConfigError(f"--config: {path}: no such file")
    mod_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - a user's file; report it in one line
        raise ConfigError(f"--config: {path} failed to import: {type(e).__name__}: {e}") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"--config: {path} defines no get_config(arg)")

    def call(fn):
        try:
            return fn(arg or None)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - a user's function; report it in one line
            first = (str(e).splitlines() or [""])[0]
            raise ConfigError(f"--config: {path}: {fn.__name__}({arg or None!r}) raised "
                              f"{type(e).__name__}: {first}") from None

    config = call(module.get_config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"--config: {path}: get_config returned {type(config).__name__}, not a ConfigDict "
                          f"(start from ae_jax.config.base_config())")
    overrides = call(module.get_sweep) if hasattr(module, "get_sweep") else [{}]
    if not isinstance(overrides, (list, tuple)):
        raise ConfigError(f"--config: {path}: get_sweep must return a list of override dicts "
                          f"(ae_jax.config.sweep/product/zipped), got {type(overrides).__name__}")
    bad = [i for i, o in enumerate(overrides) if not (isinstance(o, dict) and all(isinstance(k, str) for k in o))]
    if bad:
        raise ConfigError(f"--config: {path}: get_sweep must return a list of override dicts "
                          f"(ae_jax.config.sweep/product/zipped); item {bad[0]} is {overrides[bad[0]]!r:.60}")
    return config, list(overrides) or [{}], config.get("name") or Path(path).stem


def member_name(overrides: dict[str, Any]) -> str:
    """`code_size=8,depth=1,seed=0`: the leaf keys, or the full key where leaves would clash."""
    if not overrides:
        return "member"
    leaves = [k.rsplit(".", 1)[-1] for k in overrides]
    parts = []
    for key, leaf in zip(overrides, leaves):
        label = leaf if leaves.count(leaf) == 1 else key
        parts.append(f"{label}={_fmt(overrides[key])}")
    return ",".join(parts)


def _fmt(v: Any) -> str:
    """Short numbers (`0.001`, `1e-05`), but never two values under one name: `:g` keeps 6 digits, so
    1e-3 and 1.0000001e-3 fall back to the exact repr."""
    if isinstance(v, float):
        short = f"{v:g}"
        return short if float(short) == v else repr(v)
    return str(v)


def expand(config: ml_collections.ConfigDict, sweep: Sequence[dict]) -> list[Member]:
    """One validated Member per override dict; the first bad member stops everything."""
    members = []
    for i, overrides in enumerate(sweep):
        c = config_lib.apply_overrides(config, overrides)
        config_lib.validate(c)
        members.append(Member(i, member_name(overrides), dict(overrides), c))
    names = [m.name for m in members]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"sweep: members {dupes[:3]} appear more than once; make the axes distinct")
    return members


# ----------------------------------------------------------------------------- the command


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` -> (i, n): this job runs the members whose index is i modulo n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard: expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard: need 0 <= i < n, got {text!r}")
    return i, n


def run_sweep(config: ml_collections.ConfigDict, sweep: Sequence[dict], workdir: str | Path,
              sweep_name: str = "sweep", only: str = "", dry_run: bool = False,
              report: bool = True, shard: tuple[int, int] = (0, 1), timings: dict | None = None,
              label: str | None = None, workers: int = 1) -> list[dict]:
    """Everything the CLI does, callable from tests and notebooks; returns the new result records.

    `timings`, if given, accumulates the groups' wall seconds (see `run_group`; summed over the groups, so
    with several workers they add up to more than the wall time) and gets `workers`. `label` names the W&B
    group of the members' runs (default: the sweep name; the CLI adds the `--config.KEY=VALUE` flags).

    `shard=(i, n)` runs only members with index = i mod n, so n independent jobs (a Slurm array, or
    the processes of `jax.distributed`) split one sweep into one workdir without clashes.

    `workers` > 1 spreads the groups over that many local processes (`ae_jax.workers`; 0: one per core on
    a CPU, one on an accelerator); a member's numbers are the same either way.
    """
    everyone = expand(config, sweep)
    members = [m for m in everyone if m.index % shard[1] == shard[0]]
    if only:
        members = [m for m in members if fnmatch.fnmatch(m.name, only)]
        if not members:
            raise ConfigError(f"--only={only!r} matches no member")
    datasets = {}
    for m in members:
        dk = data_key(m.config)
        if dk not in datasets:
            datasets[dk] = data_lib.load(m.config.data)
    # Groups (their padded sizes and objective) are formed from the whole sweep on these datasets and
    # only then cut to this run's members, so a member trains the same program in a shard, an --only run
    # or the full sweep (model_spec checks, e.g. conv shapes, happen here).
    chosen = {m.index for m in members}
    whole = group_members([m for m in everyone if data_key(m.config) in datasets], datasets)
    groups = [dataclasses.replace(g, members=[m for m in g.members if m.index in chosen], diag_spec=d)
              for g, d in zip(whole, diagnostics_specs(whole))]
    groups = [g for g in groups if g.members]
    if dry_run:
        print(f"sweep {sweep_name}: {len(members)} members in {len(groups)} compiled groups")
        for g in groups:
            s = g.plan.spec
            loader = stream.choose_loader(g.members[0].config.data, datasets[g.data].x_train.nbytes)
            print(f"group {s.kind} depth={s.depth} code<={s.code_size} width<={s.width} "
                  f"{g.plan.obj} steps={g.plan.steps} batch={g.plan.batch_size} loader={loader}: "
                  f"{len(g.members)} members")
            for m in g.members:
                print(f"  [{m.index}] {m.name}")
        return []

    workdir = Path(workdir)
    identity = workdir_lib.sweep_identity(
        sweep_name, [(m.name, config_lib.flatten(m.config.to_dict())) for m in everyone])
    with workdir_lib.open_workdir(workdir, identity, shard) as results:
        recorded = results.finished_names()
        todo = [g for g in ([dataclasses.replace(g, members=[m for m in g.members if m.name not in recorded])
                             for g in groups]) if g.members]
        skipped = len(members) - sum(len(g.members) for g in todo)
        print(f"sweep {sweep_name}: {len(members)} members in {len(groups)} compiled groups; "
              f"{skipped} already finished; workdir {workdir}", flush=True)
        progress = workdir_lib.Progress(sum(g.plan.n_chunks for g in todo))
        records, t0, n_todo = [], time.time(), sum(len(g.members) for g in todo)
        n_workers = min(workers or workers_lib.auto_workers(len(todo)), len(todo))
        if timings is not None:
            timings["workers"] = max(n_workers, 1)

        groups_done = []

        def done(k: int, group_records: list[dict]) -> None:
            records.extend(group_records)
            groups_done.append(k)
            left = (time.time() - t0) / len(records) * (n_todo - len(records)) if records else 0.0
            print(f"group {len(groups_done)} of {len(todo)} done: {len(records)} of {n_todo} members trained this "
                  f"run, {time.time() - t0:.0f}s so far, about {left:.0f}s left", flush=True)

        if n_workers > 1:
            print(f"sweep {sweep_name}: {len(todo)} groups on {n_workers} worker processes", flush=True)
            job = dict(workdir=str(workdir), sweep_name=sweep_name, identity=identity, label=label or sweep_name,
                       compilation_cache=jax.config.jax_compilation_cache_dir)
            workers_lib.run_parallel(todo, n_workers, job, progress, done, timings)
        else:
            order = iter(range(len(todo)))
            run_one = lambda g, dataset: run_group(g, dataset, sweep_name, workdir, results, progress, timings,
                                                   identity=identity, label=label or sweep_name)
            workers_lib.train_groups(todo, datasets, lambda: next(order, None), run_one, done, ahead=True)
        progress.close()
        finished = results.finished_names(reload=True)
        complete = {m.name for m in everyone} <= finished
        if not complete:  # an --only or --shard run, or members left to a rerun
            print(f"sweep {sweep_name}: {len(finished & {m.name for m in everyone})} of {len(everyone)} members "
                  f"finished in {workdir}" + (f"; report not written (it is once all are; `python -m "
                                              f"ae_jax.report {workdir}` writes a partial one now)" if report else ""),
                  flush=True)
    # With shards, the last one to finish writes the report; a finished sweep whose report was lost (a
    # crash after the last result) gets it on the next run.
    if report and complete and (records or not (workdir / "report.md").exists()):
        from ae_jax import report as report_lib
        path = report_lib.write_report(workdir)
        print(f"report: {path}", flush=True)
    return records


def run_label(sweep_name: str, file_config: ml_collections.ConfigDict, config: ml_collections.ConfigDict) -> str:
    """The sweep name plus the `--config.KEY=VALUE` flags that changed the file's base config, so runs of
    one file with different flags are told apart in W&B: `ae[code_size=8]`."""
    before, after = config_lib.flatten(file_config.to_dict()), config_lib.flatten(config.to_dict())
    changed = {k: v for k, v in after.items() if before.get(k) != v and not k.startswith("wandb.")}
    return f"{sweep_name}[{member_name(changed)}]" if changed else sweep_name


def distributed_shard(coordinator: str | None, num_processes: int | None,
                      process_id: int | None) -> tuple[int, int]:
    """Join a multi-process JAX job; members are independent, so each process takes its own shard
    and trains it on its local devices (no cross-host traffic during training)."""
    # CPU processes need a collectives backend (a CPU process has none by default); it only affects CPU devices. Asking for
    # the platform first would start the backend, which must come after initialize().
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    return jax.process_index(), jax.process_count()


def default_compilation_cache() -> str:
    """$AE_JAX_COMPILATION_CACHE if set ('' turns the cache off, as the test suite does), else a per-user
    folder. The setting is process-wide in JAX, so an in-process caller must be able to opt out."""
    return os.environ.get("AE_JAX_COMPILATION_CACHE", str(Path.home() / ".cache" / "ae_jax" / "xla"))


def default_workers() -> int:
    """$AE_JAX_WORKERS if set, else 0 (one worker per core on a CPU)."""
    text = os.environ.get("AE_JAX_WORKERS", "0")
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"$AE_JAX_WORKERS: expected an integer, got {text!r}") from None


def usage(fv, config_path: str | None) -> str:
    """--help: the flags, the config files in configs/ and experiments/, and the sweep axes of --config."""
    lines = [__doc__, "flags:"]
    for flag in sorted(fv.get_key_flags_for_module(sys.modules[__name__]) or fv._flags().values(),
                       key=lambda f: f.name):
        if flag.name in ("config",) or len(flag.name) > 1:
            lines.append(f"  --{flag.name}: {flag.help}")
    lines.append("  --config.KEY=VALUE: any key of ae_jax/config.py:base_config (locked: typos are errors)")
    lines.append("\nconfig files:")
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.glob("configs/*.py")) + sorted(root.glob("experiments/*/config.py")):
        doc = (path.read_text().split('"""')[1].strip().splitlines() or [""])[0] if '"""' in path.read_text() else ""
        lines.append(f"  {path.relative_to(root)}: {doc}")
    if config_path:
        try:
            _, grid, name = load_config_file(config_path)
        except ConfigError as e:
            lines.append(f"\n{e}")
        else:
            axes: dict[str, list] = {}
            for overrides in grid:
                for k, v in overrides.items():
                    axes.setdefault(k, [])
                    if v not in axes[k]:
                        axes[k].append(v)
            lines.append(f"\nsweep {name!r} ({config_path}): {len(grid)} members")
            lines += [f"  {k}: {v}" for k, v in axes.items()] or ["  (a single member)"]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    import errno
    import signal
    import threading

    from absl import flags
    from ml_collections import config_flags

    from ae_jax.errors import WorkdirError

    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file FILE.py[:ARG]", flag_values=fv,
                                    lock_config=True, sys_argv=list(argv))
    flags.DEFINE_string("workdir", None, "where results.jsonl, wandb/ and the report go", flag_values=fv)
    flags.DEFINE_string("only", "", "run only members whose name matches this glob", flag_values=fv)
    flags.DEFINE_bool("dry_run", False, "print members and shape groups, train nothing", flag_values=fv)
    flags.DEFINE_bool("report", True, "write the report when the sweep ends", flag_values=fv)
    flags.DEFINE_string("shard", "", "i/n: run members whose index is i mod n (one job of n)", flag_values=fv)
    flags.DEFINE_bool("distributed", False, "jax.distributed.initialize() (Slurm/TPU auto-detect, or the "
                      "three flags below); each process then runs shard process_index/process_count",
                      flag_values=fv)
    flags.DEFINE_string("coordinator", None, "host:port of process 0 (jax.distributed)", flag_values=fv)
    flags.DEFINE_integer("num_processes", None, "number of processes (jax.distributed)", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "this process (jax.distributed)", flag_values=fv)
    flags.DEFINE_integer("workers", None,
                         "local worker processes the shape groups are spread over (0: one per core on a CPU, "
                         "one on an accelerator; default from $AE_JAX_WORKERS); results do not depend on it",
                         flag_values=fv)
    flags.DEFINE_string("compilation_cache", default_compilation_cache(),
                        "JAX's persistent compilation cache (per user; '' disables; default from "
                        "$AE_JAX_COMPILATION_CACHE): a repeated or resumed sweep does not recompile",
                        flag_values=fv)
    # SIGTERM (a scheduler's stop; jax.distributed would otherwise swallow it) stops like Ctrl-C.
    stopped_by = [signal.SIGINT]

    def stop(signum, frame):
        stopped_by[0] = signum
        raise KeyboardInterrupt

    in_main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        config_path = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
        if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
            print(usage(fv, config_path))
            return 0
        if not config_path:
            raise ConfigError("--config: required, e.g. --config=configs/quickstart.py:smoke")
        base, sweep, name = load_config_file(config_path)
        config_lib.check_flag_keys(base, argv[1:])
        try:
            fv(list(argv))
        except Exception as e:  # noqa: BLE001 - absl/ml_collections raise several kinds; all are user input
            raise ConfigError(str(e).splitlines()[0]) from None
        if not fv.workdir and not fv.dry_run:
            raise ConfigError("--workdir: required")
        shard = parse_shard(fv.shard) if fv.shard else (0, 1)
        workers = default_workers() if fv.workers is None else fv.workers
        if workers < 0:
            raise ConfigError(f"--workers: must be 0 (one per core) or more, got {workers}")
        if fv.distributed:
            shard = distributed_shard(fv.coordinator, fv.num_processes, fv.process_id)
        if in_main_thread:  # after jax.distributed, which installs its own SIGTERM handler
            signal.signal(signal.SIGTERM, stop)
        if fv.compilation_cache:
            workers_lib.use_compilation_cache(fv.compilation_cache)
        traces = sum(train.TRACE_COUNTS.values())
        run_sweep(fv.config, sweep, fv.workdir, sweep_name=name, only=fv.only, dry_run=fv.dry_run,
                  report=fv.report, shard=shard, label=run_label(name, base, fv.config),
                  workers=1 if fv.distributed else workers)
        if not fv.dry_run:
            print(f"training programs traced: {sum(train.TRACE_COUNTS.values()) - traces} "
                  f"(compiled or loaded from {fv.compilation_cache or 'nowhere: cache off'})", flush=True)
    except (ConfigError, workdir_lib.WorkdirBusy, WorkdirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        print(f"error: {e.filename or fv['workdir'].value}: {e.strerror}; finished members are kept: free "
              f"space or fix permissions, then the same command resumes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted ({signal.Signals(stopped_by[0]).name}): finished members are kept; the same "
              f"command resumes the rest from their last checkpoint", file=sys.stderr, flush=True)
        return 128 + stopped_by[0]
    finally:
        if in_main_thread and old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
