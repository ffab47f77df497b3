"""What W&B costs a sweep: the same small sweep through `run_sweep` with offline live logging (every member's
run opened before its group trains, its curve logged per chunk, images and spectrum at the end) and with
`wandb.mode=disabled`, alternately in one fresh process."""

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.child import run_child


def wandb_job(job: dict) -> dict:
    """Child process: warm-up (compiles), then `repeats` x (offline, disabled) in alternating order."""
    from ae_jax import member_log, sweep as sweep_lib
    from benchmarks import common

    c = common.small_config(job["steps"], job["batch"])
    c.name = "bench_wandb"
    c.train.log_every = job["log_every"]
    seeds, lrs = common.sweep_settings(job["members"])
    grid = [{"seed": int(s), "train.learning_rate": float(lr)} for s, lr in zip(seeds, lrs)]
    spent = {"open": 0.0, "log": 0.0, "chunks": 0}

    def timed(fn, key):  # host seconds inside the W&B calls that happen while a group trains
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
                spent["chunks"] += key == "log"
        return wrapper

    member_log.open_run = timed(member_log.open_run, "open")
    member_log.log_chunk = timed(member_log.log_chunk, "log")

    def one(mode: str) -> dict:
        c.wandb.mode = mode
        spent.update(open=0.0, log=0.0, chunks=0)
        timings: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            sweep_lib.run_sweep(c, grid, tmp, sweep_name=c.name, report=False, timings=timings)
            wall = time.perf_counter() - t0
            runs = len(list((Path(tmp) / "wandb").glob("offline-run-*")))
        if mode == "offline" and (runs != len(grid) or spent["chunks"] == 0):
            raise RuntimeError(f"W&B offline wrote {runs} runs for {len(grid)} members, {spent['chunks']} "
                               "chunk logs: nothing to measure (is W&B working in this environment?)")
        # train_s counts from before the runs are opened to the end of training: without the opening, it is
        # training with its live logging
        return {"sweep_s": wall, "train_s": timings["train_s"] - spent["open"], "open_s": spent["open"],
                "log_chunk_s": spent["log"], "chunk_logs": spent["chunks"]}

    one("disabled")  # compiles the training and diagnostic programs both sides then reuse
    out = {"offline": [], "disabled": []}
    for r in range(job["repeats"]):
        for mode in (("offline", "disabled") if r % 2 == 0 else ("disabled", "offline")):
            out[mode].append(one(mode))
    return out


def run_wandb_cost(sizes) -> dict:
    """The W&B keys: live logging's cost to training and W&B's cost to the whole sweep, and their raw times."""
    import jax

    with tempfile.TemporaryDirectory() as home:
        # W&B's own files (settings, cache) in a throwaway folder; the user's WANDB_MODE must not turn it off
        env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
               **{k: str(Path(home) / k.lower()) for k in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR")},
               "AE_JAX_COMPILATION_CACHE": "", "JAX_COMPILATION_CACHE_DIR": ""}
        res = run_child({"kind": "wandb", "members": sizes.wandb_members, "steps": sizes.wandb_steps,
                         "log_every": sizes.wandb_log_every, "batch": sizes.batch, "repeats": sizes.repeats},
                        platform=jax.default_backend(), env=env)
    med = lambda mode, k: statistics.median(r[k] for r in res[mode])
    per_run = [r["open_s"] / sizes.wandb_members for r in res["offline"]]
    return {
        "live_logging_overhead": med("offline", "train_s") / med("disabled", "train_s"),
        "wandb_sweep_overhead": med("offline", "sweep_s") / med("disabled", "sweep_s"),
        "timings": {f"wandb_{k}_{mode}": [r[k] for r in res[mode]] for mode in res
                    for k in ("sweep_s", "train_s")} | {
            "wandb_open_per_run_s": per_run,
            "wandb_log_chunk_s": [r["log_chunk_s"] for r in res["offline"]],
            "wandb_chunk_logs": [r["chunk_logs"] for r in res["offline"]]},
        "settings": (f"{sizes.wandb_members} members of the small AE ({sizes.wandb_steps} steps, log_every "
                     f"{sizes.wandb_log_every}: {sizes.wandb_steps // sizes.wandb_log_every} points per curve) "
                     "through ae_jax.sweep.run_sweep (report off) in one fresh process, W&B offline vs "
                     f"disabled, {sizes.repeats} repeat(s) alternating after a disabled warm-up; "
                     "live_logging_overhead = training phase (run opening excluded) offline / disabled; "
                     "wandb_sweep_overhead = whole sweep (opening, curves, images, spectra, closing) offline / "
                     "disabled"),
    }
