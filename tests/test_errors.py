"""Bad input: every case ends before training with a one-line `error:` naming the key or path, exit 2,
and leaves the workdir exactly as it was."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ae_jax import sweep

CFG = "--config=configs/ae.py:smoke"


def npz(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def good_arrays():
    rng = np.random.default_rng(0)
    return {"x_train": rng.random((20, 4)), "x_test": rng.random((5, 4))}


# (id, extra argv, text the message must contain); `{tmp}` is the test's tmp dir.
CASES = [
    ("no config", [], "--config"),
    ("missing config file", ["--config=configs/nope.py"], "configs/nope.py"),
    ("unknown key", [CFG, "--config.model.depht=1"], "depht"),
    ("unknown block", [CFG, "--config.optim.lr=1"], "optim"),
    ("not an int", [CFG, "--config.model.code_size=abc"], "code_size"),
    ("code size 0", [CFG, "--config.model.code_size=0"], "config.model.code_size"),
    ("negative depth", [CFG, "--config.model.depth=-1"], "config.model.depth"),
    ("unknown activation", [CFG, "--config.model.activation=swish"], "config.model.activation"),
    ("unknown model kind", [CFG, "--config.model.kind=rnn"], "config.model.kind"),
    ("zero steps", [CFG, "--config.train.steps=0"], "config.train.steps"),
    ("negative batch", [CFG, "--config.train.batch_size=-4"], "config.train.batch_size"),
    ("zero learning rate", [CFG, "--config.train.learning_rate=0"], "config.train.learning_rate"),
    ("nan learning rate", [CFG, "--config.train.learning_rate=nan"], "config.train.learning_rate"),
    ("unknown optimizer", [CFG, "--config.train.optimizer=lion"], "config.train.optimizer"),
    ("unknown schedule", [CFG, "--config.train.schedule=step"], "config.train.schedule"),
    ("unknown noise", [CFG, "--config.noise.kind=blur"], "config.noise.kind"),
    ("mask level above 1", [CFG, "--config.noise.kind=mask", "--config.noise.level=1.5"], "config.noise.level"),
    ("negative noise", [CFG, "--config.noise.kind=gaussian", "--config.noise.level=-0.1"], "config.noise.level"),
    ("unknown sparsity", [CFG, "--config.sparsity.kind=l0"], "config.sparsity.kind"),
    ("top-k of 0", [CFG, "--config.sparsity.kind=topk", "--config.sparsity.k=0"], "config.sparsity.k"),
    ("top-k above code", [CFG, "--config.sparsity.kind=topk", "--config.sparsity.k=100"], "config.sparsity.k"),
    ("kl with relu codes", [CFG, "--config.sparsity.kind=kl"], "sigmoid"),
    ("kl target 1", [CFG, "--config.sparsity.target=1.0"], "config.sparsity.target"),
    ("negative beta", [CFG, "--config.vae.beta=-1"], "config.vae.beta"),
    ("negative contractive", [CFG, "--config.contractive.weight=-1"], "config.contractive.weight"),
    ("unknown wandb mode", [CFG, "--config.wandb.mode=cloud"], "config.wandb.mode"),
    ("test fraction above 1", [CFG, "--config.data.test_fraction=1.5"], "config.data.test_fraction"),
    ("too many train examples", [CFG, "--config.data.n_train=100000"], "config.data.n_train"),
    ("unknown scale", [CFG, "--config.data.scale=zscore"], "config.data.scale"),
    ("unprepared tfds", [CFG, "--config.data.name=no_such_dataset_xyz", "--config.data.tfds_dir={tmp}/tfds"],
     "no_such_dataset_xyz"),
    ("missing npz", [CFG, "--config.data.name=npz:{tmp}/absent.npz"], "absent.npz"),
    ("conv on flat data", [CFG, "--config.data.name=manifold", "--config.model.kind=conv"], "config.model.kind"),
    ("conv channels too deep", [CFG, "--config.model.kind=conv", "--config.model.channels=(4,4,4,4)"],
     "config.model.channels"),
    ("zero channels", [CFG, "--config.model.channels=(0,)"], "config.model.channels"),
    ("negative seed", [CFG, "--config.seed=-5"], "config.seed"),
    ("only matches nothing", [CFG, "--only=nobody*"], "--only"),
    ("bad manifold", [CFG, "--config.data.name=manifold", "--config.data.manifold.kind=torus"],
     "config.data.manifold.kind"),
]

NPZ_CASES = [
    ("npz with nan", lambda a: {**a, "x_test": np.full((5, 4), np.nan)}, "NaN"),
    ("npz without x_test", lambda a: {"x_train": a["x_train"]}, "x_test"),
    ("npz shape mismatch", lambda a: {**a, "x_test": np.zeros((5, 3))}, "shape"),
    ("npz label count", lambda a: {**a, "y_train": np.zeros(3, int), "y_test": np.zeros(5, int)}, "y_train"),
    ("npz only one label set", lambda a: {**a, "y_train": np.zeros(20, int)}, "y_test"),
    ("npz float labels", lambda a: {**a, "y_train": np.zeros(20), "y_test": np.zeros(5)}, "y_train"),
]


def run_cli(argv, capsys):
    code = sweep.main(["ae_jax.sweep", *argv])
    return code, capsys.readouterr().err


def assert_clean_failure(code, err, must_contain):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert must_contain in lines[0], lines[0]


def snapshot(workdir):
    return {p.relative_to(workdir): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}


@pytest.fixture
def workdir(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "results.jsonl").write_text(json.dumps({"member": 0, "name": "x"}) + "\n")
    return wd


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_and_touches_nothing(case, tmp_path, workdir, capsys):
    _, argv, must = case
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = snapshot(workdir)
    code, err = run_cli(argv + [f"--workdir={workdir / 'new'}"], capsys)
    assert_clean_failure(code, err, must)
    assert not (workdir / "new").exists()
    assert snapshot(workdir) == before


@pytest.mark.parametrize("case", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_bad_npz_fails_in_one_line_naming_the_path(case, tmp_path, capsys):
    _, make, must = case
    path = npz(tmp_path, **make(good_arrays()))
    code, err = run_cli([CFG, f"--config.data.name=npz:{path}", f"--workdir={tmp_path / 'wd'}"], capsys)
    assert_clean_failure(code, err, must)
    assert path in err
    assert not (tmp_path / "wd").exists()


def test_missing_workdir_flag_and_a_file_as_workdir(tmp_path, capsys):
    assert_clean_failure(*run_cli([CFG], capsys), "--workdir")
    f = tmp_path / "file"
    f.write_text("keep")
    assert_clean_failure(*run_cli([CFG, f"--workdir={f}"], capsys), str(f))
    assert f.read_text() == "keep"


def test_a_broken_config_file_is_reported_by_path(tmp_path, capsys):
    bad = tmp_path / "bad_cfg.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert_clean_failure(*run_cli([f"--config={bad}", f"--workdir={tmp_path / 'wd'}"], capsys), str(bad))
    empty = tmp_path / "empty_cfg.py"
    empty.write_text("x = 1\n")
    assert_clean_failure(*run_cli([f"--config={empty}", f"--workdir={tmp_path / 'wd'}"], capsys), "get_config")


KEYS = ["model.code_size", "model.depth", "model.width", "train.steps", "train.batch_size",
        "train.learning_rate", "noise.level", "sparsity.k", "vae.beta", "data.n_train", "seed",
        "contractive.weight", "sparsity.target", "diagnostics.noise_std"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(key="model.code_size", value="\n")  # ml_collections' message quoted it raw: two lines
@given(key=st.sampled_from(KEYS),
       value=st.one_of(st.integers(-10**6, -1), st.just(0), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=5)))
def test_fuzzed_values_never_raise_a_traceback(key, value, tmp_path_factory, capsys):
    """Any value for a numeric key either validates or fails as a one-line ConfigError (exit 2)."""
    from ae_jax import config as config_lib
    from ae_jax.errors import ConfigError
    c = config_lib.base_config()
    try:
        config_lib.validate(config_lib.apply_overrides(c, {key: value}))
    except ConfigError as e:
        assert "\n" not in str(e) and ("config." + key in str(e) or key in str(e))
