"""The whole `python -m ae_jax.bench` run: every contract key and the raw timings behind each ratio."""

import os
import statistics

from ae_jax import data as data_lib
from benchmarks import child, fashion, peak, quickstart, torch_peer, wandb_cost
from benchmarks.common import (Sizes, device_info, hparams, mlp_dims, ratio, small_config, small_plan,
                               sweep_settings, torch_device, torch_version)
from benchmarks.sequential import engine_setup, fit_cold, run_sequential, time_steady, warm_up

CONTRACT_KEYS = ("vectorized_over_sequential", "over_pytorch", "peak_fraction", "device")
PARTS = ("engine", "peak", "memory", "fashion", "quickstart", "wandb")  # in the order they run


def run(sizes: Sizes, with_torch: bool = True, parts: tuple[str, ...] = PARTS) -> dict:
    """Every key of `parts` (all: every contract key) and the raw timings behind them."""
    load_before = os.getloadavg()
    use_torch = with_torch and torch_version() is not None
    device = torch_device() if use_torch else None
    out, timings, flops, settings = {}, {}, {}, {}
    if "engine" in parts:
        engine = run_engine(sizes, use_torch, device)
        out.update(engine["keys"])
        timings.update(engine["timings"])
        settings.update(engine["settings"])
    if not use_torch:
        out["note"] = ("PyTorch peer skipped (--no-torch), so the *over_pytorch* keys are null" if not with_torch
                       else "PyTorch is not installed, so the *over_pytorch* keys are null: "
                            "pip install -r requirements-bench.txt to measure them")
    if "peak" in parts:
        pk = peak.run_peak(sizes)
        out["peak_fraction"] = pk["peak_fraction"]
        timings.update(pk["timings"])
        flops.update(pk["flops"])
    if "memory" in parts:
        mem = child.measure_memory(sizes)
        out[f"memory_{sizes.memory_members}_members_mib"] = mem["peak_rss_mib"]
        if "device_peak_mib" in mem:
            out[f"memory_{sizes.memory_members}_members_device_mib"] = mem["device_peak_mib"]
        timings.update(memory_baseline_rss_mib=mem["baseline_rss_mib"], memory_fit_s=mem["fit_s"])
        settings["memory_run"] = (f"{sizes.memory_members} members, {sizes.memory_steps} steps, one train.fit "
                                  "group, peak RSS (VmHWM) of a fresh process")
    if "fashion" in parts:
        fa = fashion.run_fashion(sizes, use_torch)
        out.update({k: v for k, v in fa.items() if k.startswith("fashion_")})
        timings.update(fa["timings"])
        flops.update(fa["flops"])
        settings["fashion"] = fa["settings"]
    if "quickstart" in parts:
        qs = quickstart.run_quickstart(sizes, use_torch)
        out.update({k: v for k, v in qs.items() if k.startswith("quickstart_")})
        out["quickstart"] = qs["quickstart"]
        settings["quickstart"] = (
            "a fresh process runs ae_jax.sweep.run_sweep (one worker process per core) + report.write_report "
            "(persistent compile cache off, W&B disabled); then a fresh process trains the same members with the "
            f"PyTorch peer one after another; both pinned to the same {sizes.quickstart_cores} core(s)")
    if "wandb" in parts:
        wb = wandb_cost.run_wandb_cost(sizes)
        out.update(live_logging_overhead=wb["live_logging_overhead"], wandb_sweep_overhead=wb["wandb_sweep_overhead"])
        timings.update(wb["timings"])
        settings["wandb"] = wb["settings"]
    out["device"] = {**device_info(), "torch_device": device,
                     "matmul_precision": small_config().model.matmul_precision,
                     "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0]}
    out.update(timings_s=timings, flops=flops, settings={"parts": ",".join(parts), **settings})
    return out


def run_engine(sizes: Sizes, use_torch: bool, device: str | None) -> dict:
    """The small-AE sweep: vectorised vs member by member vs PyTorch, both sides of each ratio interleaved."""
    x = data_lib.load(small_config().data).x_train
    plan = small_plan(sizes)
    seeds, lrs = sweep_settings(sizes.members)
    hp_all, hp_one = hparams(lrs), hparams(lrs[:1])
    dims = mlp_dims(plan.spec)
    warm_up(x)
    t = {k: [] for k in ("seq_total_s", "seq_init_s", "seq_compile_s", "seq_first_run_s", "seq_warm_run_s",
                         "fit_cold_s", "engine_run_s", "fit_cold_1_s", "engine_run_1_s")}
    torch_t = {"torch_sweep_s": [], "torch_model_s": [], "torch_threads": [], "torch_thread_probe": []}
    for _ in range(sizes.repeats):
        seq, _ = run_sequential(plan, x, seeds, lrs)
        for k, name in (("total", "total"), ("init", "init"), ("compile", "compile"), ("run", "first_run"),
                        ("warm_run", "warm_run")):
            t[f"seq_{name}_s"].append(seq[f"{k}_s"])
        t["fit_cold_s"].append(fit_cold(plan, x, seeds, hp_all)[0])
        t["engine_run_s"].append(time_steady(*engine_setup(plan, seeds, hp_all, x)))
        t["fit_cold_1_s"].append(fit_cold(plan, x, seeds[:1], hp_one)[0])
        t["engine_run_1_s"].append(time_steady(*engine_setup(plan, seeds[:1], hp_one, x)))
        if use_torch:
            n, probe = torch_peer.torch_threads(x, dims, plan.steps, plan.batch_size, device)
            per_model = [torch_peer.torch_train(x, dims, plan.steps, plan.batch_size, float(lr), int(s), n, device)
                         for s, lr in zip(seeds, lrs)]
            torch_t["torch_threads"].append(n)
            torch_t["torch_thread_probe"].append({f"{k}_threads_s": v for k, v in probe.items()})
            torch_t["torch_sweep_s"].append(sum(per_model))
            torch_t["torch_model_s"].append(statistics.median(per_model))
    keys = {
        "vectorized_over_sequential": ratio(t["seq_total_s"], t["fit_cold_s"]),
        "vectorized_over_sequential_steady": ratio(t["seq_warm_run_s"], t["engine_run_s"]),
        # without PyTorch every peer ratio is reported, as null
        "over_pytorch": None,
        "over_pytorch_steady": None,
        "over_pytorch_sweep": None,
        "over_pytorch_sweep_steady": None,
    }
    if use_torch:
        keys.update({
            "over_pytorch": ratio(torch_t["torch_model_s"], t["fit_cold_1_s"]),
            "over_pytorch_steady": ratio(torch_t["torch_model_s"], t["engine_run_1_s"]),
            "over_pytorch_sweep": ratio(torch_t["torch_sweep_s"], t["fit_cold_s"]),
            "over_pytorch_sweep_steady": ratio(torch_t["torch_sweep_s"], t["engine_run_s"]),
        })
    settings = {
        "sweep": f"{sizes.members} members, {'-'.join(map(str, dims))} ReLU on digits "
                 f"({x.shape[0]}x{x.shape[1]}), batch {plan.batch_size}, {plan.steps} Adam steps, "
                 f"{plan.chunk} steps per engine dispatch, learning rates {lrs[0]:.1e}..{lrs[-1]:.1e}",
        "repeats": sizes.repeats,
        "sequential": "each member its own jax.jit(lax.scan) of optax.adam(lr): total = eager init + "
                      "compile + first run; warm_run = the same compiled programs run again",
        "engine": "fit_cold = train.fit with empty caches; engine_run = the same programs' chunks only",
        "pytorch": "eager nn.Sequential + Adam, one model after another, faster of 1 and all threads",
        "ratios": "median of the repeats of each side; *_steady: training runs only, nothing compiled",
    }
    return {"keys": keys, "timings": {**t, **torch_t}, "settings": settings}
