"""Shape groups: members that share every static setting (a `train.Plan`) train as one compiled program.

`group_members` forms the groups of a sweep; `run_group` trains, diagnoses and records one group (its
members' results.jsonl lines, W&B runs and stored parameters); `warm_group` compiles a group's training
program ahead of its turn. `diagnostics_specs` lets groups that differ only in their packed sizes share
the diagnostics' programs.
"""

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from ae_jax import checkpoint, code_metrics, config as config_lib, data as data_lib, diagnostics, models, objectives
from ae_jax import member_log, regime, store, stream, train


@dataclasses.dataclass
class Member:
    """One sweep member: its index and name in the sweep, its overrides and its full config."""

    index: int
    name: str
    overrides: dict[str, Any]
    config: ml_collections.ConfigDict


# ----------------------------------------------------------------------------- grouping


def data_key(c: ml_collections.ConfigDict) -> str:
    return json.dumps(c.data.to_dict(), sort_keys=True)


@dataclasses.dataclass
class Group:
    plan: train.Plan
    data: str
    members: list[Member]
    # the spec the diagnostics run the members at (sizes padded further): see `diagnostics_specs`
    diag_spec: models.ModelSpec | None = None


def group_members(members: Sequence[Member], datasets: dict[str, data_lib.Dataset]) -> list[Group]:
    """Members with equal static settings share a group; a group computes the contractive penalty if
    any of its members weights it, so a zero-weight member still shares the program."""
    groups: dict[Any, Group] = {}
    for m in members:
        dk = data_key(m.config)
        # Terms switched on by their weight alone stay out of the key: a zero-weight member shares the
        # program of its weighted group mates (objectives.group_objective).
        plan = train.plan_of(m.config, datasets[dk].shape)
        plan = dataclasses.replace(plan, obj=objectives.objective_spec(m.config, weighted=False))
        ratio = m.config.train.pack_ratio
        if ratio:
            bucket = lambda n: math.ceil(math.log(n) / math.log(ratio) - 1e-9)
            packed = dataclasses.replace(plan.spec, code_size=0, width=0)
            plan = dataclasses.replace(plan, spec=packed)
            key_sizes = (bucket(m.config.model.code_size), bucket(m.config.model.width))
        else:
            key_sizes = ()
        diag = json.dumps(m.config.diagnostics.to_dict(), sort_keys=True)
        key = (plan, key_sizes, dk, diag, m.config.vae.active_threshold)
        groups.setdefault(key, Group(plan, dk, [])).members.append(m)
    out = []
    for g in groups.values():
        if g.plan.spec.code_size == 0:  # packed: the program is built for the largest member
            g.plan = dataclasses.replace(g.plan, spec=dataclasses.replace(
                g.plan.spec, code_size=max(m.config.model.code_size for m in g.members),
                width=max(m.config.model.width for m in g.members)))
        g.plan = dataclasses.replace(g.plan, obj=objectives.group_objective([m.config for m in g.members]))
        out.append(g)
    return out


def diagnostics_specs(groups: Sequence[Group]) -> list[models.ModelSpec]:
    """The spec each group's diagnostics run at: packed groups that differ only in their sizes (same data,
    architecture and diagnostics settings) share the largest code size and width among them.

    The diagnostics' programs (Jacobians on the span, attractor iterations, probes) are then compiled
    once per architecture instead of once per size bucket (~2 s of CPU each on digits); padded units are
    masked, so the numbers are those at the group's own sizes up to float rounding (tests/test_diagnostics.py).
    Groups that asked for no packing (`train.pack_ratio=0`) keep their own spec."""
    def key(g: Group):
        if not all(m.config.train.pack_ratio for m in g.members):
            return id(g)
        diag = json.dumps(g.members[0].config.diagnostics.to_dict(), sort_keys=True)
        return g.data, dataclasses.replace(g.plan.spec, code_size=0, width=0), diag
    largest: dict[Any, tuple[int, int]] = {}
    for g in groups:
        c, w = largest.get(key(g), (0, 0))
        largest[key(g)] = max(c, g.plan.spec.code_size), max(w, g.plan.spec.width)
    return [dataclasses.replace(g.plan.spec, code_size=largest[key(g)][0], width=largest[key(g)][1])
            for g in groups]


def pad_net(params_M: Any, sizes_M: np.ndarray, spec: models.ModelSpec) -> tuple[Any, Any]:
    """Member-stacked params zero-padded on the host to `spec`'s sizes, with each member's masks for it."""
    like = jax.eval_shape(lambda: models.init_params(spec, jax.random.key(0)))
    padded = models.pad_params(params_M, like)
    masks = [jax.device_get(models.size_masks(spec, int(c), int(w))) for c, w in np.asarray(sizes_M).tolist()]
    return padded, jax.tree.map(lambda *m: np.stack(m), *masks)


# ----------------------------------------------------------------------------- running a group


# A finite loss this many times the trivial predictors' has diverged all the same (Adam at a huge learning
# rate stays finite while the map is garbage); an untrained net sits near 1-10x of it.
DIVERGED_ABOVE_TRIVIAL = 100.0


def trivial_recon_loss(spec: models.ModelSpec, x_train: np.ndarray) -> float:
    """The training loss (per example, as loss/recon) of the worse of two trivial maps: the train mean for
    every input, and the blank output (0, or 1/2 for a sigmoid output). The second keeps the yardstick
    positive when the mean is exact (one training example)."""
    x = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    mu = x.mean(0)
    if spec.output == "sigmoid":
        bce = lambda p: float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())
        return max(bce(np.clip(mu, 1e-7, 1 - 1e-7)), bce(np.full_like(mu, 0.5)))
    return max(float(((x - mu) ** 2).sum(1).mean()), float((x ** 2).sum(1).mean()))


def run_group(group: Group, dataset: data_lib.Dataset, sweep_name: str, workdir: Path, results,
              progress=None, timings: dict | None = None, identity: dict | None = None,
              label: str | None = None) -> list[dict]:
    """Train, diagnose and record every member of one group; returns their result records.

    `timings`, if given, accumulates wall seconds under `train_s` (compile included), `diagnostics_s`
    (and its parts, `diagnostics.evaluate`) and `write_s` (results.jsonl, W&B, checkpoint clean-up). `identity` (the workdir's sweep identity)
    fixes the members' W&B run ids; `label` (default the sweep name) names their W&B group."""
    with models.matmul_precision(group.plan.spec):  # diagnostics' own matmuls too, not just the model's
        return _run_group(group, dataset, workdir, results, progress, timings if timings is not None else {},
                          identity or {}, label or sweep_name)


def _group_inputs(group: Group, dataset: data_lib.Dataset):
    """(seeds, traced hyperparameters, own sizes, loader name, training input) of a group's members."""
    members = group.members
    seeds = np.array([m.config.seed for m in members], np.uint32)
    hp = train.hparams_of([m.config for m in members])
    sizes = np.array([[m.config.model.code_size, m.config.model.width] for m in members], np.int32)
    loader, x_train = stream.training_input(members[0].config.data, dataset)  # data.* is the same group-wide
    return seeds, hp, sizes, loader, x_train


def warm_group(group: Group, dataset: data_lib.Dataset) -> None:
    """Compile a group's training program before its turn (run in a thread while the previous group
    trains and is diagnosed): on a CPU a small training program keeps one core busy, and compiling is
    most of a sweep's wall time. A streamed group is left alone (its batches come from the host)."""
    _, x_train = stream.training_input(group.members[0].config.data, dataset)
    if not isinstance(x_train, stream.Streamed):
        with models.matmul_precision(group.plan.spec):
            train.warm(group.plan, len(group.members), np.shape(x_train))


def _own_terms(c: ml_collections.ConfigDict) -> set[str]:
    """The member's own loss curves: a group mate's weighted term is computed for it too, at weight 0."""
    return {"loss/recon", "loss/total", "grad/norm"} | {
        objectives.LOSS_TERMS[n].log or f"loss/{n}" for n, _ in objectives.objective_spec(c).terms}


def _run_group(group: Group, dataset: data_lib.Dataset, workdir: Path, results, progress, timings: dict,
               identity: dict, label: str) -> list[dict]:
    plan, members = group.plan, group.members
    first = members[0].config
    seeds, hp, sizes, loader, x_train = _group_inputs(group, dataset)
    t0 = time.time()
    ckpt = checkpoint.GroupCheckpoint(checkpoint.group_dir(workdir, plan, [m.name for m in members]))
    own = [_own_terms(m.config) for m in members]
    runs = [member_log.open_run(m.config, m.name, label, workdir, identity) for m in members]

    def live(chunk: int, values: dict[str, np.ndarray]) -> None:  # each member's curve while it trains
        for j, run in enumerate(runs):
            member_log.log_chunk(run, plan, chunk, {k: float(v[j]) for k, v in values.items() if k in own[j]})

    # the members' initial parameters: where training starts, and probe_acc_init's reference
    initial = train.init_params(plan, seeds, sizes)
    try:
        state, curves = train.fit(plan, seeds, hp, x_train, sizes, on_chunk=progress.chunk if progress else None,
                                  on_metrics=live, checkpoint=ckpt,
                                  checkpoint_seconds=members[0].config.train.checkpoint_seconds, params_M=initial)
        jax.block_until_ready(state.params)
    except BaseException:
        for run in runs:  # unfinished: a rerun continues the same runs (their ids are fixed)
            run.close()
        raise
    train_s = time.time() - t0
    trivial = trivial_recon_loss(plan.spec, dataset.x_train)

    spec = plan.spec
    dspec = group.diag_spec or spec
    if dspec == spec:
        net, init_net = (state.params, state.masks), (initial, state.masks)
    else:
        net, init_net = pad_net(state.params, sizes, dspec), pad_net(initial, sizes, dspec)
    metrics = diagnostics.evaluate(
        models.MeanPath(dspec), models.CodePath(dspec), net, dataset.x_train, dataset.x_test, dataset.y_train,
        dataset.y_test, sizes[:, 0].tolist(), first.diagnostics, seed=first.diagnostics.seed, init_params_M=init_net,
        timings=timings)
    diverged_at = np.asarray(state.diverged_at)
    records, write_s = [], 0.0
    for i, m in enumerate(members):
        params_i, masks_i = jax.tree.map(lambda a: a[i], (state.params, state.masks))
        extra = code_metrics.member_code_metrics(spec, params_i, masks_i, int(sizes[i, 0]), dataset.x_test,
                                                 m.config)
        final = {k.replace("loss/", "final_"): float(v[i, -1]) for k, v in curves.items()
                 if k in own[i] and k.startswith("loss/")}
        status = "diverged" if diverged_at[i] >= 0 else "ok"
        if status == "ok" and not final["final_recon"] <= DIVERGED_ABOVE_TRIVIAL * trivial:
            status = "diverged"  # finite, but the map is garbage: no regime, not in the phase diagram
        # whether the loss had stopped falling by the end (regime.converged: the documented criterion)
        metrics[i]["converged"] = regime.converged(curves["loss/total"][i])
        record = {
            "member": m.index,
            "name": m.name,
            "overrides": m.overrides,
            "status": status,
            "metrics": {**metrics[i], **extra, **final, "steps": int(np.asarray(state.step)[i])},
            "config": config_lib.flatten(m.config.to_dict()),
        }
        if status == "diverged":
            record["diverged_at"] = int(diverged_at[i]) if diverged_at[i] >= 0 else None
            record["metrics"]["regime"] = None
            record["metrics"]["trivial_loss"] = trivial
        t_write = time.time()
        if m.config.train.save_params:  # before its result line: a recorded member can always be loaded
            store.save_member(workdir, m.index, spec, params_i, masks_i)
        # W&B first: a member without its results line is retrained and re-logged into the same run
        member_log.finish_run(runs[i], m.name, m.config, record, plan, params_i, masks_i, dataset, workdir)
        if runs[i].run_id:
            record["wandb_run_id"], record["wandb_dir"] = runs[i].run_id, runs[i].folder
        results.append(record)
        records.append(record)
        write_s += time.time() - t_write
    t_write = time.time()
    ckpt.remove()
    write_s += time.time() - t_write
    eval_s = time.time() - t0 - train_s - write_s
    for key, value in (("train_s", train_s), ("diagnostics_s", eval_s), ("write_s", write_s)):
        timings[key] = timings.get(key, 0.0) + value
    ok = [r["metrics"]["test_mse"] for r in records if r["status"] == "ok"]
    print(f"  {plan.spec.kind} depth={spec.depth} code<={spec.code_size} width<={spec.width}: {len(members)} "
          f"members x {plan.steps} steps, train {train_s:.1f}s ({loader} loader), diagnostics {eval_s:.1f}s, "
          f"mean test_mse {np.mean(ok) if ok else float('nan'):.4g} over {len(ok)} ok", flush=True)
    return records
