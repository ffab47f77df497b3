"""What users wait for: the quickstart sweep end to end in a fresh process (cold compile cache, W&B disabled),
split into start-up, compile, training, diagnostics, writing and the report, against the same members
trained by the PyTorch peer one after another; both sides pinned to the same cores, one after the other."""

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.child import ROOT, run_child

QUICKSTART = ROOT / "configs" / "quickstart.py"
# A compile span (trace, lowering or XLA compile of one program) belongs to the phase whose module is on the
# stack when JAX reports it: training (train.fit), diagnostics (diagnostics, code metrics), or other.
PHASE_MODULES = {"train": ("ae_jax/train.py",), "diagnostics": ("ae_jax/diagnostics.py", "ae_jax/code_metrics.py")}


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) intervals: nested spans (a trace inside a trace) once."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def _phase_of_caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace(os.sep, "/")
        for phase, suffixes in PHASE_MODULES.items():
            if path.endswith(suffixes):
                return phase
        frame = frame.f_back
    return "other"


def load_quickstart(arg: str):
    """configs/quickstart.py's (config, sweep) through its documented `get_config(arg)`/`get_sweep(arg)`."""
    spec = importlib.util.spec_from_file_location("quickstart_config", QUICKSTART)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None), module.get_sweep(arg or None)


def quickstart_job(job: dict) -> dict:
    """Child process: the quickstart through `run_sweep` and `write_report`, timed by phase."""
    import jax
    from jax import monitoring

    from ae_jax import data as data_lib, report as report_lib, sweep as sweep_lib, workers as workers_lib

    started = time.time()  # what `python -m ae_jax.sweep` also pays before its first member: Python, JAX, ae_jax
    spans = {"train": [], "diagnostics": [], "other": []}

    def on_span(event: str, start: float, end: float, **_):
        if event.startswith("/jax/core/compile/"):
            spans[_phase_of_caller()].append((start, end))

    monitoring.register_event_time_span_listener(on_span)
    # Cold: this process has compiled nothing and the persistent cache starts empty, as on a user's first
    # run (the sweep command keeps it on by default; worker processes share it, so a program one of them
    # compiled is loaded by the others).
    assert not jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_dir
    config, grid = load_quickstart(job["arg"])
    config.wandb.mode = "disabled"
    if job["steps"]:
        config.train.steps = job["steps"]
        config.train.log_every = min(config.train.log_every, job["steps"])
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workers_lib.use_compilation_cache(str(Path(tmp) / "xla"))  # as the sweep command does
        workdir = Path(tmp) / "quickstart"
        t0 = time.time()
        records = sweep_lib.run_sweep(config, grid, workdir, sweep_name=config.name, only=job["only"],
                                      report=False, timings=timings, workers=job["workers"])
        t1 = time.time()
        report_lib.write_report(workdir)
        done = time.time()
    x_train = data_lib.load(config.data).x_train
    np.save(job["x"], x_train)
    return {
        "started": started, "done": done, "sweep_s": t1 - t0, "report_s": done - t1, "timings": timings,
        "compile_s": {phase: union_seconds(s) for phase, s in spans.items()},
        "members": [peer_member(r["config"], x_train.shape[1]) for r in records],
        "cores": len(os.sched_getaffinity(0)),
        "test_mse_mean": float(np.mean([r["metrics"]["test_mse"] for r in records])),
    }


def peer_member(flat: dict, input_dim: int) -> dict:
    """The PyTorch peer's description of one trained member (its flat config): MLP widths and training."""
    if flat["model.kind"] != "mlp" or flat["model.activation"] != "relu" or flat["model.code_activation"] not in (
            "", "relu") or flat["model.output"] != "linear":
        raise ValueError("the PyTorch peer trains ReLU MLPs with a linear output only")
    hidden = [flat["model.width"]] * flat["model.depth"]
    return {"dims": [input_dim, *hidden, flat["model.code_size"], *hidden, input_dim],
            "steps": flat["train.steps"], "batch": flat["train.batch_size"], "lr": flat["train.learning_rate"],
            "seed": flat["seed"]}


def run_quickstart(sizes, use_torch: bool) -> dict:
    """The quickstart's keys: end to end, its split, and the PyTorch peer's sequential time over ours."""
    import jax

    from benchmarks.common import torch_device

    cpus = sorted(os.sched_getaffinity(0))[-sizes.quickstart_cores:]
    with tempfile.TemporaryDirectory() as tmp:
        x_path = str(Path(tmp) / "x_train.npy")
        spawned = time.time()
        workers = len(cpus) if jax.default_backend() == "cpu" else 1  # what `--workers=0` chooses on these cores
        ours = run_child({"kind": "quickstart", "arg": sizes.quickstart_arg, "steps": sizes.quickstart_steps,
                          "only": sizes.quickstart_only, "x": x_path, "workers": workers}, cpus=cpus,
                         platform=jax.default_backend(),
                         env={"AE_JAX_COMPILATION_CACHE": "", "JAX_COMPILATION_CACHE_DIR": "",
                              "WANDB_MODE": "disabled"})
        torch_side = (run_child({"kind": "torch_members", "x": x_path, "members": ours["members"],
                                 "threads": 0, "device": torch_device()}, cpus=cpus)
                      if use_torch else None)
    t, compile_s = ours["timings"], ours["compile_s"]
    workers = int(t.get("workers", 1))  # at most one per group
    end_to_end = ours["done"] - spawned
    # With W worker processes the groups' phases overlap: train_s, diagnostics_s and write_s are summed over
    # the groups (core-seconds, W of them per second of wall time), and the compile spans, which JAX reports
    # in the process that compiles, are only seen with one worker.
    alone = workers == 1
    split = {
        "startup_s": ours["started"] - spawned,  # the interpreter and the imports of JAX and ae_jax
        "compile_s": compile_s["train"] if alone else None,  # the training programs, inside train.fit
        "train_s": t["train_s"] - compile_s["train"] if alone else None,
        "train_with_compile_core_s": t["train_s"],
        "diagnostics_core_s": t["diagnostics_s"],  # their own compiles included (diagnostics_compile_s)
        "diagnostics_compile_s": compile_s["diagnostics"] if alone else None,
        # diagnostics.evaluate's parts, compiles included, summed over groups
        "diagnostics_parts_core_s": {k: v for k, v in t.items() if k.startswith("diagnostics_") and k != "diagnostics_s"},
        "write_core_s": t["write_s"],
        "report_s": ours["report_s"],
        "workers": workers,
    }
    # Config expansion, data loading, grouping, the workdir lock, starting the workers; and rounding.
    busy = (t["train_s"] + t["diagnostics_s"] + t["write_s"]) / workers
    split["other_s"] = end_to_end - split["startup_s"] - busy - split["report_s"]
    steps = sum(m["steps"] for m in ours["members"])
    out = {
        "quickstart_end_to_end_s": end_to_end,
        "quickstart_split": split,
        # the share of the cores' time (W cores for the whole run) that went to diagnostics
        "quickstart_diagnostics_fraction": t["diagnostics_s"] / (workers * end_to_end),
        "quickstart_over_pytorch": None,
        "quickstart_over_pytorch_end_to_end": None,
        "quickstart_over_pytorch_train_only": None,
        "quickstart": {
            "config": f"configs/quickstart.py{':' + sizes.quickstart_arg if sizes.quickstart_arg else ''}"
                      + (f", train.steps={sizes.quickstart_steps}" if sizes.quickstart_steps else "")
                      + (f", --only='{sizes.quickstart_only}'" if sizes.quickstart_only else ""),
            "members": len(ours["members"]), "member_steps": steps, "cores": ours["cores"], "workers": workers,
            "test_mse_mean": ours["test_mse_mean"], "other_compile_s": compile_s["other"],
        },
    }
    if torch_side is not None:
        torch_s = sum(torch_side["per_member_s"])
        # our training on W cores: its core-seconds, compile included, over W (the groups train side by side)
        out.update(quickstart_over_pytorch=torch_s / (t["train_s"] / workers),
                   quickstart_over_pytorch_end_to_end=torch_s / end_to_end,
                   quickstart_over_pytorch_train_only=torch_s / split["train_s"] if alone else None)
        out["quickstart"].update(torch_s=torch_s, torch_ms_per_step=1e3 * torch_s / steps,
                                 torch_threads=torch_side["threads"], torch_cores=torch_side["cores"],
                                 torch_thread_probe=torch_side.get("thread_probe"))
    return out
