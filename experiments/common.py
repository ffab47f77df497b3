"""What the experiments' `run.py` / `analyze.py` share: loading a config file, figures, W&B, markdown.

Experiment folders have hyphens in their names (`experiments/linear_pca/`), so their scripts are not
packages: `load_module` imports one by path (the tests use it). A script run as
`python experiments/NAME/run.py ...` puts the repo root on `sys.path` itself before importing this.
"""

import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np

from ae_jax import config as config_lib, store, sweep as sweep_lib, writers
from ae_jax.errors import ConfigError


def parse_run_flags(argv: Sequence[str], doc: str) -> tuple[ml_collections.ConfigDict, list[dict], str, Path]:
    """`--config=FILE.py[:ARG] [--config.KEY=VALUE ...] --workdir=DIR` as `ae_jax.sweep` reads them.

    Returns (base config with the flags applied, the file's sweep overrides, sweep name, workdir).
    """
    from absl import flags
    from ml_collections import config_flags

    if any(a in ("--help", "-h") for a in argv[1:]):
        print(doc)
        raise SystemExit(0)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file FILE.py[:ARG]", flag_values=fv,
                                    lock_config=True, sys_argv=list(argv))
    flags.DEFINE_string("workdir", None, "where figures/, analysis.md and wandb/ go", flag_values=fv)
    path = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
    if not path:
        raise ConfigError("--config: required, e.g. --config=experiments/linear_decay/config.py:smoke")
    base, overrides, name = sweep_lib.load_config_file(path)
    config_lib.check_flag_keys(base, argv[1:])
    try:
        fv(list(argv))
    except Exception as e:  # noqa: BLE001 - absl/ml_collections raise several kinds; all are user input
        raise ConfigError(str(e).splitlines()[0]) from None
    if not fv.workdir:
        raise ConfigError("--workdir: required")
    return fv.config, overrides, name, Path(fv.workdir)


def cli(main_fn, argv: Sequence[str]) -> int:
    """Runs `main_fn(argv)`; a bad config or path is one line on stderr and exit status 2."""
    try:
        main_fn(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def analysis_writer(wandb_cfg: Any, workdir: Path, name: str, config: Any) -> writers.Writer:
    """The W&B run (job_type "analysis") an experiment logs its figures and tables to."""
    return writers.open_writer(wandb_cfg, workdir=str(workdir), name=f"{name}/analysis", group=name,
                               job_type="analysis", config=config, tags=("analysis",))


@contextlib.contextmanager
def analysis(wandb_cfg: Any, workdir: Path, name: str, config: Any):
    """Yields (analysis W&B run, markdown lines); the run is closed however the block ends, and on a clean
    exit the lines become WORKDIR/analysis.md (a failed analysis leaves the previous one in place)."""
    writer = analysis_writer(wandb_cfg, workdir, name, config)
    doc: list[str] = []
    try:
        yield writer, doc
    finally:
        writer.close()
    out = Path(workdir) / "analysis.md"
    out.write_text("\n".join(doc).rstrip("\n") + "\n")
    print(f"analysis: {out}; figures: {Path(workdir) / 'figures'}")


def analysis_command(argv: Sequence[str], module: str, analyse) -> Path:
    """The body of every `python -m experiments.NAME.analyze WORKDIR`: reads WORKDIR's finished members,
    opens the analysis W&B run and calls `analyse(workdir, records, name, writer, lines)`, whose markdown
    lines become WORKDIR/analysis.md; returns that path."""
    workdir, records, name = sweep_results(argv, module)
    with analysis(wandb_of_results(records), workdir, name, {"sweep": name, "members": len(records)}) as (
            writer, lines):
        analyse(workdir, records, name, writer, lines)
    return workdir / "analysis.md"


def sweep_results(argv: Sequence[str], module: str) -> tuple[Path, list[dict], str]:
    """`python -m experiments.NAME.analyze WORKDIR`: the workdir, its ok results and the sweep's name."""
    if len(argv) != 2:
        raise ConfigError(f"usage: python -m {module} WORKDIR")
    workdir = Path(argv[1])
    records = read_results(workdir)
    if not records:
        raise ConfigError(f"{workdir / 'results.jsonl'}: no finished (ok) member to analyse")
    return workdir, records, records[0]["config"].get("name") or module.split(".")[-2]


def wandb_of_results(records: list[dict]) -> dict:
    """The W&B settings a sweep's members were run with (for an analysis of its results.jsonl)."""
    c = records[0]["config"]
    return {"mode": c.get("wandb.mode", "offline"), "project": c.get("wandb.project", "ae_jax"),
            "entity": c.get("wandb.entity", "")}


def read_results(workdir: Path) -> list[dict]:
    """The ok members of DIR/results.jsonl, the last line of a member winning (as after a resume)."""
    return [m.record for m in store.load(workdir)]


def save_figure(fig, workdir: Path, stem: str, writer: writers.Writer) -> Path:
    """WORKDIR/figures/STEM.png, and the same figure in the W&B run."""
    path = Path(workdir) / "figures" / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    writer.figure(stem, fig)
    return path


def md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def fmt(v: float, digits: int = 4) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


class Clock:
    """Wall time since construction, for the READMEs' 'how long it took'."""

    def __init__(self):
        self.t0 = time.time()

    def __str__(self) -> str:
        return f"{time.time() - self.t0:.0f} s"


def load_datasets(members: Sequence[sweep_lib.Member]) -> dict:
    """{data key: Dataset} for the members, each dataset loaded once."""
    from ae_jax import data as data_lib

    datasets = {}
    for m in members:
        key = sweep_lib.data_key(m.config)
        if key not in datasets:
            datasets[key] = data_lib.load(m.config.data)
    return datasets


def fit_members(members: Sequence[sweep_lib.Member], datasets: dict) -> list[dict]:
    """Trains the members as `ae_jax.sweep` would (one vmapped program per shape group), but hands back
    what the runner throws away: each member's final params (its group's sizes, padding units zero),
    masks and training curves. One dict per member, in member order."""
    from ae_jax import stream, train

    out = {}
    for g in sweep_lib.group_members(members, datasets):
        seeds = np.array([m.config.seed for m in g.members], np.uint32)
        hp = {name: np.array([get_key(m.config, key) for m in g.members], np.float32)
              for name, key in train.HPARAMS.items()}
        sizes = np.array([[m.config.model.code_size, m.config.model.width] for m in g.members], np.int32)
        _, x_train = stream.training_input(g.members[0].config.data, datasets[g.data])  # device or grain
        state, curves = train.fit(g.plan, seeds, hp, x_train, sizes)
        for i, m in enumerate(g.members):
            out[m.index] = dict(member=m, plan=g.plan, dataset=datasets[g.data],
                                params=_take(state.params, i), masks=_take(state.masks, i),
                                curves={k: v[i] for k, v in curves.items()},
                                steps=int(np.asarray(state.step)[i]), diverged_at=int(np.asarray(state.diverged_at)[i]))
    return [out[m.index] for m in members]


def library_metrics(fit: dict, diag_cfg: ml_collections.ConfigDict) -> dict:
    """The library's diagnostics and regime for one `fit_members` result (evaluated as a group of one)."""
    import jax

    from ae_jax import diagnostics, models

    spec, data = fit["plan"].spec, fit["dataset"]
    net = jax.tree.map(lambda a: np.asarray(a)[None], (fit["params"], fit["masks"]))
    with models.matmul_precision(spec):
        return diagnostics.evaluate(
            lambda n, x: models.reconstruct(spec, n[0], x, n[1]),
            lambda n, x: models.encode(spec, n[0], x, n[1])["code"],
            net, data.x_train, data.x_test, None, None, [fit["member"].config.model.code_size], diag_cfg,
            seed=diag_cfg.seed)[0]


def _take(tree: Any, i: int) -> Any:
    import jax
    return jax.tree.map(lambda a: np.asarray(a)[i], tree)


get_key = config_lib.get
