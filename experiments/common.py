"""What the experiments' `run.py` / `analyze.py` share: loading a config file, figures, W&B, markdown.

Experiment folders have hyphens in their names (`experiments/linear_pca/`), so their scripts are not
packages: `load_module` imports one by path (the tests use it). A script run as
`python experiments/NAME/run.py ...` puts the repo root on `sys.path` itself before importing this.
"""

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ae_jax import store, writers
from ae_jax.errors import ConfigError


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
