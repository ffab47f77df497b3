"""Steady member-steps/s against the number of members in one group, and against forced host devices:
`python -m ae_jax.bench --scaling`, which also writes benchmarks/scaling.md (not with --quick)."""

import os

from ae_jax import data as data_lib
from benchmarks.child import run_child
from benchmarks.common import Sizes, device_info, hparams, mlp_dims, small_config, small_plan, sweep_settings
from benchmarks.sequential import engine_setup, fit_cold, time_steady, warm_up


def run_scaling(sizes: Sizes) -> str:
    """Markdown: steady member-steps/s vs members in one group, and vs forced host devices."""
    x = data_lib.load(small_config().data).x_train
    plan = small_plan(sizes, steps=sizes.scaling_steps)
    warm_up(x)
    rows = ["| members | fit incl. compile (s) | training only (s) | member-steps/s (training only) "
            "| member-steps/s (incl. compile) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for m in sizes.scaling_members:
        seeds, lrs = sweep_settings(m)
        hp = hparams(lrs)
        cold, _ = fit_cold(plan, x, seeds, hp)
        fresh_state, go = engine_setup(plan, seeds, hp, x)
        steady = time_steady(fresh_state, go, sizes.repeats)
        work = m * plan.steps
        rows.append(f"| {m} | {cold:.2f} | {steady:.3f} | {work / steady:,.0f} | {work / cold:,.0f} |")
    dev_rows = ["| forced host devices | members | fit incl. compile (s) | training only (s) "
                "| member-steps/s (training only) |", "| ---: | ---: | ---: | ---: | ---: |"]
    for n in sizes.device_counts:
        r = run_child({"kind": "devices", "members": sizes.device_members, "steps": plan.steps,
                       "batch": plan.batch_size, "chunk": plan.chunk, "repeats": sizes.repeats}, devices=n)
        work = sizes.device_members * plan.steps
        dev_rows.append(f"| {r['devices']} | {sizes.device_members} | {r['fit_cold_s']:.2f} | "
                        f"{r['steady_s']:.3f} | {work / r['steady_s']:,.0f} |")
    info = device_info()
    return "\n".join([
        "# Scaling of the vectorised engine",
        "",
        f"Written by `python -m ae_jax.bench --scaling` on {info['cpu_model']} ({info['cpu_cores']} cores), "
        f"jax {info['jax']}, load average {os.getloadavg()[0]:.1f} at the end.",
        f"Model: {'-'.join(map(str, mlp_dims(plan.spec)))} ReLU on digits, batch {plan.batch_size}, "
        f"{plan.steps} Adam steps, {plan.chunk} steps per dispatch; one `train.fit` group. "
        f"Training-only times are medians of {sizes.repeats}.",
        "",
        "## Members in one group (1 device)",
        "",
        *rows,
        "",
        f"## Forced host devices ({sizes.device_members} members sharded over the member axis)",
        "",
        "`XLA_FLAGS=--xla_force_host_platform_device_count=N`, one subprocess each. The host devices "
        f"share the same {info['cpu_cores']} physical cores, so more devices cannot add compute here; "
        "any difference comes from how XLA runs the smaller per-device programs (and from the load), "
        "not from added hardware.",
        "",
        *dev_rows,
        "",
    ])
