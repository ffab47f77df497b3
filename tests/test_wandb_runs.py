"""Members' W&B runs as a researcher watches them: curves arrive while the group trains, run ids are fixed
by the sweep and the member (a resume continues the same run), results lines name their run, online
without credentials falls back to offline runs; and a finite blow-up is `diverged`, not a regime."""

import json
import time

import pytest

from ae_jax import config as config_lib, diagnostics, groups, member_log, sweep


def small(**overrides):
    c = config_lib.base_config()
    c.train.steps, c.train.log_every, c.train.batch_size = 60, 20, 32
    c.model.code_size, c.model.width = 8, 16
    c.diagnostics.probe = False
    c.diagnostics.jac_points, c.diagnostics.attractor_iters = 5, 5
    return config_lib.apply_overrides(c, {"wandb.mode": "disabled", **overrides})


def test_curves_reach_the_run_while_the_group_trains(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(member_log, "log_chunk", lambda run, plan, chunk, values: events.append(("chunk", chunk, values)))
    evaluate = diagnostics.evaluate
    monkeypatch.setattr(diagnostics, "evaluate", lambda *a, **k: (events.append(("diagnostics",)), evaluate(*a, **k))[1])
    sweep.run_sweep(small(), [{"seed": 0}, {"seed": 1}], tmp_path, report=False)
    chunks = [e for e in events if e[0] == "chunk"]
    assert [e[1] for e in chunks] == [0, 0, 1, 1, 2, 2]  # two members, three chunks, in training order
    assert events.index(("diagnostics",)) == len(chunks), "every chunk was logged before the diagnostics ran"
    assert {"loss/recon", "loss/total"} <= set(chunks[0][2])


def test_run_ids_are_fixed_by_sweep_and_member():
    ident = {"sha256": "abc"}
    assert member_log.run_id(ident, "seed=0") == member_log.run_id(dict(ident), "seed=0")
    assert member_log.run_id(ident, "seed=0") != member_log.run_id(ident, "seed=1")
    assert member_log.run_id(ident, "seed=0") != member_log.run_id({"sha256": "abd"}, "seed=0")


def test_results_lines_name_their_offline_run_and_online_without_a_key_falls_back(tmp_path, fresh):
    fresh.delenv("WANDB_API_KEY", raising=False)
    c = small(**{"wandb.mode": "online", "wandb.images": False})
    t0 = time.time()
    sweep.run_sweep(c, [{}], tmp_path, report=False)
    assert time.time() - t0 < 120
    line = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert line["wandb_run_id"].startswith("ae-")
    assert (tmp_path / line["wandb_dir"]).is_dir() and line["wandb_dir"].startswith("wandb/offline-run-")
    assert line["wandb_dir"].endswith(line["wandb_run_id"])


@pytest.mark.parametrize("lr", [10.0])
def test_a_finite_adam_blow_up_is_diverged_without_a_regime(tmp_path, lr):
    """Adam at a huge rate keeps the loss finite while the map is garbage (test_mse ~1e6 on digits)."""
    records = sweep.run_sweep(small(**{"train.learning_rate": lr}), [{}], tmp_path, report=False)
    r = records[0]
    assert r["status"] == "diverged" and r["metrics"]["regime"] is None
    assert r["metrics"]["final_recon"] > groups.DIVERGED_ABOVE_TRIVIAL * r["metrics"]["trivial_loss"]


def test_a_killed_and_resumed_sweep_leaves_one_offline_run_per_member(tmp_path, fresh):
    """Interrupted in chunk 1 of 3 (checkpointing every chunk), then resumed from the checkpoint: one folder
    per run id, whose curve holds the chunks the resumed group did not retrain (from the checkpoint) and the rest."""
    from ae_jax import writers

    c = small(**{"wandb.mode": "offline", "wandb.images": False, "train.checkpoint_seconds": 0.0})
    grid = [{"seed": 0}, {"seed": 1}]
    log_chunk, stopped = member_log.log_chunk, []

    def stop_at_chunk_1(run, plan, chunk, values):
        if chunk == 1 and not stopped:
            stopped.append(chunk)
            raise KeyboardInterrupt
        log_chunk(run, plan, chunk, values)

    fresh.setattr(member_log, "log_chunk", stop_at_chunk_1)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(c, grid, tmp_path, report=False)
    fresh.setattr(member_log, "log_chunk", log_chunk)
    partial = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(partial) == 2
    before = {p.name.rsplit("-", 2)[-1]: {r[writers.STEP]: r for r in writers.read_history(p)} for p in partial}
    assert all(20 in rows and 60 not in rows for rows in before.values()), before

    assert list((tmp_path / "checkpoints").rglob("chunk-*.ckpt")), "the resume must start past chunk 0"
    records = sweep.run_sweep(c, grid, tmp_path, report=False)
    assert len(records) == 2
    for r in records:
        (folder,) = writers.local_runs(tmp_path, r["wandb_run_id"])
        assert r["wandb_dir"] == f"wandb/{folder.name}"
        rows = [row for row in writers.read_history(folder) if writers.STEP in row and "loss/recon" in row]
        assert [row[writers.STEP] for row in rows] == [20, 40, 60]
        old = before[r["wandb_run_id"].rsplit("-", 1)[-1]][20]
        assert rows[0]["loss/recon"] == old["loss/recon"]  # not retrained: replayed from the checkpoint
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2
