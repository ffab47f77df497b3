"""Shape groups: diagnostics shared across the size buckets of one architecture give each member its own numbers."""

import numpy as np

from ae_jax import config as config_lib, data as data_lib, diagnostics, groups, sweep
from ae_jax.config import product, sweep as axis


def tiny(pack_ratio):
    c = config_lib.base_config()
    c.wandb.mode = "disabled"
    c.train.steps, c.train.log_every, c.train.batch_size, c.train.pack_ratio = 60, 20, 64, pack_ratio
    c.diagnostics.attractor_iters, c.diagnostics.jac_points = 5, 10
    return c


def test_buckets_of_one_architecture_share_their_diagnostics_at_the_largest_sizes():
    c = tiny(4.0)
    grid = product(axis("model.depth", [0, 1]), axis("model.code_size", [4, 64]))
    whole = sweep.group_members(sweep.expand(c, grid), {sweep.data_key(c): data_lib.load(c.data)})
    specs = groups.diagnostics_specs(whole)
    assert len(whole) == 4 and len(set(specs)) == 2
    assert {(s.depth, s.code_size) for s in specs} == {(0, 64), (1, 64)}
    c.train.pack_ratio = 0.0  # no packing asked for: every group keeps its own sizes
    whole = sweep.group_members(sweep.expand(c, grid), {sweep.data_key(c): data_lib.load(c.data)})
    assert [g.plan.spec for g in whole] == groups.diagnostics_specs(whole)


def test_shared_diagnostics_give_each_member_its_own_numbers(tmp_path):
    # Code 4 and 64 fall in different power-of-4 buckets, so both runs train the very same two programs;
    # packed, the diagnostics run both members at code 64 (one program), unpacked each at its own size.
    grid = axis("model.code_size", [4, 64])
    before = diagnostics._one_member_stats._cache_size()
    own = {r["name"]: r["metrics"] for r in sweep.run_sweep(tiny(0.0), grid, tmp_path / "b", report=False)}
    programs_own = diagnostics._one_member_stats._cache_size() - before
    shared = {r["name"]: r["metrics"] for r in sweep.run_sweep(tiny(4.0), grid, tmp_path / "a", report=False)}
    # one program, the code-64 one the unpacked run compiled already
    assert (programs_own, diagnostics._one_member_stats._cache_size() - before) == (2, 2)
    for name, m in own.items():
        assert shared[name]["regime"] == m["regime"], name
        for k, v in m.items():
            if isinstance(v, float):
                np.testing.assert_allclose(shared[name][k], v, rtol=1e-5, atol=1e-7, err_msg=f"{name} {k}")
            else:
                assert shared[name][k] == v, (name, k)
