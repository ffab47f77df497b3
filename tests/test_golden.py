"""Golden values: one small member per model family, trained on digits through the public sweep entry
point at fixed seeds, reproduces the numbers pinned below, so a refactor of the models, objectives,
training loop or sweep is seen to change no numbers. After an intended change:
`python tests/test_golden.py --regenerate`, and say why in the commit message.
"""

import json
import math
import re
import sys
from pathlib import Path

if __name__ == "__main__":
    # Regenerating must see what pytest sees: this checkout's ae_jax and the suite's environment (CPU,
    # one host device, no W&B, no compilation cache), set before JAX is imported.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import conftest  # noqa: F401

import jax  # noqa: E402
import pytest  # noqa: E402

from ae_jax import config as config_lib, sweep  # noqa: E402

# Two CPU runs agree bit for bit. Running every member alone (unpacked, its own program) instead of
# grouped moved the pinned floats by at most 1.0e-6 relative and 3e-5 absolute (final_l2 ~ 150), 2e-8 on
# the O(0.01) metrics: 1e-4 relative leaves ~100x room for such float reorderings and still catches any
# change to what is computed. The absolute floor only matters for values pinned at or near 0.
RTOL, ATOL = 1e-4, 1e-7

# What each member pins: the contract's metrics, the variants' code metrics and every final loss term
# (final_*) it reports. Keys added to the records later are ignored; a pinned key that disappears fails.
PINNED = ("status", "steps", "train_mse", "test_mse", "jac_rank", "jac_trace", "ood_fidelity",
          "span_ood_fidelity", "denoise_gain", "const_ratio", "attractor_fraction", "regime", "probe_acc",
          "l0", "dead_fraction", "kl", "active_units", "test_elbo")

# Members sharing static settings share one compiled program (that is the point of traced weights), so
# 13 members cost 8 compilations: the sweep's grouping and packing are pinned along with the numbers.
DEPTH1 = {"model.depth": 1, "diagnostics.probe": True}
GAUSS_L1 = {"noise.kind": "gaussian", "sparsity.kind": "l1"}  # weights 0 unless a member sets them
MASK_KL = {"noise.kind": "mask", "sparsity.kind": "kl", "model.code_activation": "sigmoid"}
MEMBERS = {
    # mlp depth 1: the plain AE and a code-8 sibling packed into its code-16 program, and a depth-1 CAE
    # (its nonzero weight turns the contractive term on group-wide; the others weight it 0 and, since the
    # variant registries, report only their own terms: no final_contractive for them)
    "mlp_depth1": DEPTH1,
    "mlp_depth1_code8_packed": {**DEPTH1, "model.code_size": 8},
    "cae_depth1": {**DEPTH1, "contractive.weight": 0.1},
    # 2x2 kernels: half the compile time of 3x3 (PatchConv slices k^2 patches), and SAME padding's
    # asymmetric case is pinned too
    "conv": {"model.kind": "conv", "model.channels": (4, 8), "model.kernel_size": 2, "model.code_size": 8,
             "model.code_activation": "linear"},
    "fullconv": {"model.kind": "fullconv", "model.depth": 1, "model.width": 4, "model.code_size": 2,
                 "model.kernel_size": 2},
    "dae_gaussian": {**GAUSS_L1, "noise.level": 0.2},
    "sparse_l1": {**GAUSS_L1, "sparsity.weight": 0.05},
    "cae_depth0": {**GAUSS_L1, "contractive.weight": 0.1},
    "dae_mask": {**MASK_KL, "noise.level": 0.3},
    "sparse_kl": {**MASK_KL, "sparsity.weight": 0.5},
    # k=2 of 16 with a short dead window: units die within 150 steps, so the aux loss is live at the end
    "topk_aux": {"sparsity.kind": "topk", "sparsity.k": 2, "sparsity.aux_k": 4, "sparsity.dead_steps": 10},
    "vae": {"vae.enabled": True, "model.code_size": 8, "model.depth": 1, "model.output": "sigmoid"},
    "map_contractive": {"penalty.map_contractive": 0.03},
}


def golden_config():
    """Digits, depth-0 ReLU, code 16, 150 steps, cheap diagnostics, no W&B; MEMBERS override it."""
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.model.depth, c.model.width, c.model.code_size = 0, 32, 16
    c.train.steps, c.train.batch_size, c.train.log_every = 150, 64, 50
    c.train.learning_rate = 3e-3
    c.train.checkpoint_seconds = 1e6  # no mid-run checkpoint writes: they cost time and change nothing
    d = c.diagnostics
    d.jac_points, d.ood_samples, d.attractor_points, d.attractor_iters, d.probe = 10, 100, 10, 5, False
    return c


def run_members(workdir) -> dict[str, dict]:
    """name -> {status, metrics...} of every member in MEMBERS, from one sweep."""
    names = list(MEMBERS)
    records = sweep.run_sweep(golden_config(), list(MEMBERS.values()), workdir, sweep_name="golden",
                              report=False)
    return {names[r["member"]]: {"status": r["status"], **r["metrics"]} for r in records}


def pinned(result: dict) -> dict:
    """The values of `result` that GOLDEN keeps."""
    return {k: v for k, v in sorted(result.items()) if k in PINNED or k.startswith("final_")}


def same(old, new) -> bool:
    if isinstance(old, float) and isinstance(new, (int, float)) and not isinstance(new, bool):
        if math.isnan(old) or math.isnan(new):
            return math.isnan(old) and math.isnan(new)
        return math.isclose(new, old, rel_tol=RTOL, abs_tol=ATOL)
    return type(new) is type(old) and new == old


def changes(name: str, expected: dict, got: dict | None) -> list[str]:
    """One line per pinned value of member `name` that moved or disappeared."""
    if got is None:
        return [f"{name}: no result record"]
    out = []
    for key, old in expected.items():
        if key not in got:
            out.append(f"{name} {key}: missing (was {old!r})")
        elif not same(old, got[key]):
            new = got[key]
            rel = ""
            if isinstance(old, float) and isinstance(new, (int, float)) and old:
                rel = f" (relative change {(new - old) / abs(old):+.2e})"
            out.append(f"{name} {key}: {old!r} -> {new!r}{rel}")
    return out


FIX = ("was this change intended? If so, regenerate with `python tests/test_golden.py --regenerate` "
       "and say why in the commit message")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if jax.default_backend() != "cpu":
        pytest.skip("the golden values are CPU float32 numbers")
    return run_members(tmp_path_factory.mktemp("golden"))


def test_every_member_has_golden_values():
    unpinned, stale = sorted(set(MEMBERS) - set(GOLDEN)), sorted(set(GOLDEN) - set(MEMBERS))
    assert not unpinned and not stale, (f"members without golden values: {unpinned}, golden values of no "
                                        f"member: {stale}; {FIX}")


@pytest.mark.parametrize("name", list(MEMBERS))
def test_member_reproduces_its_golden_values(results, name):
    moved = changes(name, GOLDEN.get(name, {}), results.get(name))
    assert not moved, "golden values moved (old -> new):\n  " + "\n  ".join(moved) + f"\n{FIX}"


def test_comparison_flags_moved_and_missing_values_and_ignores_new_keys():
    old = {"test_mse": 0.05, "steps": 150, "regime": "structured", "attractor_fraction": 0.0}
    assert changes("m", old, {**old, "test_mse": 0.05 * (1 + RTOL / 2), "new_metric": 1.0}) == []
    assert changes("m", old, {**old, "test_mse": 0.05 * (1 + 2 * RTOL)}) == [
        "m test_mse: 0.05 -> 0.05001 (relative change +2.00e-04)"]
    assert changes("m", old, {**old, "steps": 149, "regime": "identity", "attractor_fraction": 0.1}) == [
        "m steps: 150 -> 149", "m regime: 'structured' -> 'identity'", "m attractor_fraction: 0.0 -> 0.1"]
    assert changes("m", old, {k: v for k, v in old.items() if k != "steps"}) == ["m steps: missing (was 150)"]
    assert changes("m", old, None) == ["m: no result record"]


# ----------------------------------------------------------------------------- regenerating


def format_golden(values: dict[str, dict]) -> str:
    """`GOLDEN = {...}` as Python source, floats in their shortest exact repr, wrapped at 110 columns."""
    lines = [f"GOLDEN = {{  # written by --regenerate on {jax.default_backend()} with jax {jax.__version__}"]
    for name, metrics in values.items():
        lines.append(f"    {literal(name)}: {{")
        row = ""
        for key, value in metrics.items():
            item = f"{literal(key)}: {literal(value)},"
            if row and len(row) + 1 + len(item) > 110:
                lines.append(row)
                row = ""
            row = f"{row} {item}" if row else f"        {item}"
        lines.extend([row, "    },"])
    lines.append("}")
    return "\n".join(lines)


def literal(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


def regenerate() -> None:
    """Rerun every member and rewrite GOLDEN in this file; print what moved."""
    import tempfile

    if jax.default_backend() != "cpu":
        sys.exit(f"golden values are CPU numbers; this JAX runs on {jax.default_backend()} "
                 "(set JAX_PLATFORMS=cpu)")

    with tempfile.TemporaryDirectory() as workdir:
        fresh = {name: pinned(result) for name, result in sorted(run_members(workdir).items(),
                                                                 key=lambda kv: list(MEMBERS).index(kv[0]))}
    for name in MEMBERS:
        for line in changes(name, GOLDEN.get(name, {}), fresh.get(name)):
            print("moved:", line)
    path = Path(__file__)
    source = path.read_text()
    block = re.compile(r"^GOLDEN = \{.*?^\}$", re.S | re.M)
    if len(block.findall(source)) != 1:
        sys.exit(f"{path}: cannot find the one `GOLDEN = {{ ... }}` block to rewrite")
    path.write_text(block.sub(lambda _: format_golden(fresh), source))
    print(f"rewrote GOLDEN in {path} ({len(fresh)} members)")


# Edit MEMBERS, never this by hand: `python tests/test_golden.py --regenerate` writes it.
GOLDEN = {  # written by --regenerate on cpu with jax 0.10.2
    "mlp_depth1": {
        "attractor_fraction": 0.0, "const_ratio": 0.4708814998389472, "denoise_gain": 3.872468761719626,
        "final_l2": 149.3979949951172, "final_recon": 2.504287004470825, "final_total": 2.504287004470825,
        "jac_rank": 6.8, "jac_trace": 0.09329645164677354, "ood_fidelity": 0.017605170465246123,
        "probe_acc": 0.8488888888888889, "regime": "structured", "span_ood_fidelity": 0.017605170465246123,
        "status": "ok", "steps": 150, "test_mse": 0.03707788799371984, "train_mse": 0.03498575446260201,
    },
    "mlp_depth1_code8_packed": {
        "attractor_fraction": 0.0, "const_ratio": 0.315797024340156, "denoise_gain": 4.912584515826827,
        "final_l2": 140.107177734375, "final_recon": 3.263371229171753, "final_total": 3.263371229171753,
        "jac_rank": 4.2, "jac_trace": 0.060698653830856576, "ood_fidelity": -0.00901279196971716,
        "probe_acc": 0.74, "regime": "structured", "span_ood_fidelity": -0.00901279196971716, "status": "ok",
        "steps": 150, "test_mse": 0.04778328638316857, "train_mse": 0.04553803398447428,
    },
    "cae_depth1": {
        "attractor_fraction": 0.0, "const_ratio": 0.4371584820027191, "denoise_gain": 3.754708639797089,
        "final_contractive": 1.4388803243637085, "final_l2": 140.26759338378906,
        "final_recon": 2.4628589153289795, "final_total": 2.6067469120025635, "jac_rank": 6.5,
        "jac_trace": 0.08408136914988033, "ood_fidelity": 0.06483766610046537,
        "probe_acc": 0.8733333333333333, "regime": "structured", "span_ood_fidelity": 0.06483766610046537,
        "status": "ok", "steps": 150, "test_mse": 0.03674781594011519, "train_mse": 0.03474022505864357,
    },
    "conv": {
        "attractor_fraction": 0.0, "const_ratio": 0.22801706681619172, "denoise_gain": 5.2511242349127825,
        "final_l2": 80.04749298095703, "final_recon": 3.577800989151001, "final_total": 3.577800989151001,
        "jac_rank": 4.4, "jac_trace": 0.045749191768833845, "ood_fidelity": -0.0663665545422143,
        "regime": "structured", "span_ood_fidelity": -0.0663665545422143, "status": "ok", "steps": 150,
        "test_mse": 0.051830290800167454, "train_mse": 0.050472587077382676,
    },
    "fullconv": {
        "attractor_fraction": 0.0, "const_ratio": 0.28937931698943414, "denoise_gain": 6.184916365576841,
        "final_l2": 10.891812324523926, "final_recon": 5.364968299865723, "final_total": 5.364968299865723,
        "jac_rank": 19.3, "jac_trace": 0.14151316236277095, "ood_fidelity": 0.39775541953128346,
        "regime": "unresolved", "span_ood_fidelity": 0.39775541953128346, "status": "ok", "steps": 150,
        "test_mse": 0.05618787430226803, "train_mse": 0.055878703636632374,
    },
    "dae_gaussian": {
        "attractor_fraction": 0.0, "const_ratio": 0.16178744974678544, "dead_fraction": 0.4375,
        "denoise_gain": 6.055804332350974, "final_l2": 68.38996124267578, "final_recon": 4.254427909851074,
        "final_sparsity": 2.4780783653259277, "final_total": 4.254427909851074, "jac_rank": 5.0,
        "jac_trace": 0.04687475962717025, "l0": 4.973333333333334, "ood_fidelity": -0.011979291027601091,
        "regime": "unresolved", "span_ood_fidelity": -0.011979291027601091, "status": "ok", "steps": 150,
        "test_mse": 0.06003884187175168, "train_mse": 0.058789014989135434,
    },
    "sparse_l1": {
        "attractor_fraction": 0.0, "const_ratio": 0.23007379647467227, "dead_fraction": 0.4375,
        "denoise_gain": 6.074215861592466, "final_l2": 74.33294677734375, "final_recon": 3.9964427947998047,
        "final_sparsity": 2.6410043239593506, "final_total": 4.128493309020996, "jac_rank": 5.9,
        "jac_trace": 0.06610295616212439, "l0": 5.791111111111111, "ood_fidelity": -0.06227480584115885,
        "regime": "unresolved", "span_ood_fidelity": -0.06227480584115885, "status": "ok", "steps": 150,
        "test_mse": 0.05850923947989941, "train_mse": 0.057339252796198316,
    },
    "cae_depth0": {
        "attractor_fraction": 0.0, "const_ratio": 0.2205133595993163, "dead_fraction": 0.4375,
        "denoise_gain": 5.885018190791651, "final_contractive": 2.3093082904815674,
        "final_l2": 69.6360092163086, "final_recon": 3.939619541168213, "final_sparsity": 2.852426528930664,
        "final_total": 4.170551300048828, "jac_rank": 6.5, "jac_trace": 0.057033617379235436,
        "l0": 6.4688888888888885, "ood_fidelity": -0.00802194708520898, "regime": "unresolved",
        "span_ood_fidelity": -0.00802194708520898, "status": "ok", "steps": 150,
        "test_mse": 0.05788489737858375, "train_mse": 0.056579995272596766,
    },
    "dae_mask": {
        "attractor_fraction": 0.0, "const_ratio": 0.0834591761542155, "dead_fraction": 0.4375,
        "denoise_gain": 6.654367165747398, "final_l2": 80.0365982055664, "final_recon": 4.425346851348877,
        "final_sparsity": 5.569800853729248, "final_total": 4.425346851348877, "jac_rank": 3.9,
        "jac_trace": 0.02575879898227629, "l0": 4.342222222222222, "ood_fidelity": -0.00929475082523612,
        "regime": "unresolved", "span_ood_fidelity": -0.00929475082523612, "status": "ok", "steps": 150,
        "test_mse": 0.06621275210546122, "train_mse": 0.06553589443952045,
    },
    "sparse_kl": {
        "attractor_fraction": 0.0, "const_ratio": 0.04574854313989214, "dead_fraction": 0.8125,
        "denoise_gain": 7.1658643706668625, "final_l2": 88.46701049804688, "final_recon": 4.754769802093506,
        "final_sparsity": 1.4683831930160522, "final_total": 5.488961219787598, "jac_rank": 2.6,
        "jac_trace": 0.007687421558333225, "l0": 0.017777777777777778, "ood_fidelity": -0.04495472219849739,
        "regime": "collapsed", "span_ood_fidelity": -0.04495472219849739, "status": "ok", "steps": 150,
        "test_mse": 0.07140874365965526, "train_mse": 0.07105085096904855,
    },
    "topk_aux": {
        "attractor_fraction": 0.0, "const_ratio": 0.4014915089095967, "dead_fraction": 0.3125,
        "denoise_gain": 4.735242388859233, "final_aux": 2.802435874938965, "final_l2": 36.8759651184082,
        "final_recon": 3.293170690536499, "final_total": 3.380746841430664, "jac_rank": 2.0,
        "jac_trace": 0.026456848910597502, "l0": 2.0, "ood_fidelity": -0.04806612179423886,
        "regime": "structured", "span_ood_fidelity": -0.04806612179423886, "status": "ok", "steps": 150,
        "test_mse": 0.04614856633875105, "train_mse": 0.044401494902299346,
    },
    "vae": {
        "active_units": 8, "attractor_fraction": 0.0, "const_ratio": 0.06740854064309351,
        "denoise_gain": 6.8847157935855146, "final_kl": 0.6374103426933289, "final_l2": 164.13999938964844,
        "final_recon": 27.273170471191406, "final_total": 27.910581588745117, "jac_rank": 1.0,
        "jac_trace": 0.013756860572783674, "kl": 0.6279523968696594, "ood_fidelity": 0.2599693479529789,
        "regime": "unresolved", "span_ood_fidelity": 0.2599693479529789, "status": "ok", "steps": 150,
        "test_elbo": -27.646472930908203, "test_mse": 0.06884261325001717, "train_mse": 0.06767714932096297,
    },
    "map_contractive": {
        "attractor_fraction": 0.0, "const_ratio": 0.22500341829684356, "denoise_gain": 5.720459000053105,
        "final_l2": 65.59956359863281, "final_map_contractive": 7.5727009773254395,
        "final_recon": 3.8531601428985596, "final_total": 4.080341339111328, "jac_rank": 6.6,
        "jac_trace": 0.055406419957270386, "ood_fidelity": -0.0034812217760651354, "regime": "unresolved",
        "span_ood_fidelity": -0.0034812217760651354, "status": "ok", "steps": 150,
        "test_mse": 0.0562938743746943, "train_mse": 0.05484794130591702,
    },
}


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python tests/test_golden.py --regenerate")
    regenerate()
