"""The threshold-sensitivity table: moving one threshold past a member's metric moves exactly that label."""

import json

import pytest

from ae_jax import regime, sensitivity

# a map that passes only the identity test, with both copy fidelities just above the bar of 0.9
IDENTITY = {"span_ood_fidelity": 0.915, "perturb_fidelity": 0.95, "perturb_gain": 1.0, "test_fvu": 0.0,
            "train_fvu": 0.0, "pca_kept_fvu": 0.0, "gen_gap": 0.0, "const_ratio": 1.0,
            "attractor_fraction": 0.0, "snap_fraction": 0.0}
# a map that passes only the structured test, its perturbation gain 0.6 just under the bar of 0.65
STRUCTURED = {**IDENTITY, "span_ood_fidelity": 0.2, "perturb_fidelity": 0.3, "perturb_gain": 0.6,
              "test_fvu": 0.1, "train_fvu": 0.09, "gen_gap": 0.01, "pca_kept_fvu": 0.1}


def test_moved_scales_the_distance_from_one_for_the_bars_defined_against_one():
    assert regime.RULE.moved("copy", 1.2).copy == pytest.approx(0.88)
    assert regime.RULE.moved("copy", 0.8).copy == pytest.approx(0.92)
    assert regime.RULE.moved("trivial_fvu", 0.8).trivial_fvu == pytest.approx(1.04)
    assert regime.RULE.moved("snap", 1.2).snap == pytest.approx(0.6)
    assert regime.RULE.moved("snap", 1.2).copy == regime.RULE.copy  # one threshold at a time


def test_only_the_threshold_a_member_sits_near_moves_its_label():
    assert [regime.classify(m) for m in (IDENTITY, STRUCTURED)] == ["identity", "structured"]
    rows = {r["threshold"]: r["moves"] for r in sensitivity.sensitivity([IDENTITY, STRUCTURED])}
    # copy bar 0.92 > 0.915: the identity member passes no test; at 0.91 and below it still copies
    assert rows["copy"][0.8] == {"identity -> unresolved": 1}
    assert not rows["copy"][0.9] and not rows["copy"][1.2]
    # contraction bar 0.65 x 0.9 = 0.585 < 0.6: the structured member loses its only positive test
    assert rows["contraction"][0.9] == {"structured -> unresolved": 1}
    assert not rows["contraction"][1.2]
    converged = {r["threshold"]: r["converged_moved"]
                 for r in sensitivity.sensitivity([{**IDENTITY, "converged": True}, STRUCTURED])}
    assert converged["copy"] == 1 and converged["contraction"] == 0
    untouched = set(rows) - {"copy", "contraction"}
    assert all(not moves for name in untouched for moves in rows[name].values())


def test_cli_prints_the_table_and_refuses_a_workdir_without_labels(tmp_path, capsys):
    lines = [{"member": i, "name": f"m{i}", "overrides": {}, "status": "ok",
              "metrics": {**m, "regime": regime.classify(m)}} for i, m in enumerate([IDENTITY, STRUCTURED])]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert sensitivity.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 labelled members" in out and "| `copy` | 0.9 | 1 | 0 | 0 | 0 | 0 |" in out
    assert sensitivity.main([str(tmp_path / "missing")]) == 2
    assert "no labelled members" in capsys.readouterr().err
