"""experiments/regularisers/analyze.py: every setting read at the longest budget it was trained for."""

import importlib


def _record(name, strength, seed, **metrics):
    """A results.jsonl record of the regularisers sweep with the given metrics (the rest neutral)."""
    config = {"data.name": "digits", "seed": seed, "model.code_size": 256, "sparsity.kind": "none",
              "noise.kind": "none", "noise.level": 0.0, "contractive.weight": 0.0}
    if name in ("gaussian", "mask"):
        config.update({"noise.kind": name, "noise.level": strength})
    base = dict(jac_rank=60.0, kept_dims=30.0, jac_trace=1.0, noise_gain=1.0, denoise_gain=1.0, perturb_gain=1.0,
                span_ood_fidelity=1.0, test_mse=1e-4, train_mse=1e-4, final_total=1e-3, steps=100,
                regime="identity", converged=True, data_rank=61, input_dim=64, noise_std=0.1)
    return {"config": config, "metrics": {**base, **metrics}}


def test_settled_rows_take_the_longer_sweep_where_it_has_the_setting():
    """A setting of the longer sweep replaces this sweep's cell (steps, convergence, numbers); the others
    keep theirs; each is read against the plain AE beyond the seed spread."""
    analyze = importlib.import_module("experiments.regularisers.analyze")
    plain = [_record("plain", 0.0, s, jac_rank=60.0 + 0.2 * s, noise_gain=0.95 + 0.01 * s) for s in range(3)]
    short = [_record("gaussian", 0.2, s, jac_rank=12.0 + s, noise_gain=0.15, converged=False) for s in range(3)]
    mask = [_record("mask", 0.5, s, jac_rank=59.8 if s else 40.0, noise_gain=3.0 + s) for s in range(3)]
    overlap = [_record("gaussian", 0.05, s, jac_rank=50.0, noise_gain=0.9 + 0.05 * s) for s in range(3)]
    longer = [_record("gaussian", 0.2, s, jac_rank=9.0 + 0.1 * s, noise_gain=0.12, steps=400) for s in range(3)]
    rows = analyze.settled_rows(analyze.cells(plain + short + mask + overlap), analyze.cells(longer), "digits")
    by = {(r[0], r[1]): r for r in rows}
    assert list(by) == [("plain", "0"), ("Gaussian DAE", "0.05"), ("Gaussian DAE", "0.2"), ("masking DAE", "0.5")]
    assert by[("plain", "0")][-2:] == ["—", "—"]
    g = by[("Gaussian DAE", "0.2")]
    assert g[2:4] == ["400", "3/3"] and g[6].startswith("9.1 ") and g[-2:] == ["falls", "lower"]
    assert by[("Gaussian DAE", "0.05")][2] == "100" and by[("Gaussian DAE", "0.05")][-1] == "overlaps"
    assert by[("masking DAE", "0.5")][-2:] == ["**no**", "**higher**"]  # one seed within RANK_DROP of plain
