"""A sweep's results as the report reads them: members normalised, the swept axes, per-setting summaries."""

import collections
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ae_jax import code_metrics, plots, workdir as workdir_lib
from ae_jax.errors import ConfigError
from ae_jax.plots import LABELS, Layout

log = logging.getLogger(__name__)

REPLICATE_KEYS = ("seed", "data.split_seed")  # averaged over, like seeds
# never a reason to split a figure: names, logging, and what changes how a sweep runs, not its numbers
IGNORED = ("name", "train.log_every", *workdir_lib.NOT_IDENTITY)
PRIORITY = ("model.code_size", "model.depth", "model.width")  # x, then y, when they are swept
NOT_SHOWN = ("input_dim", "data_rank", "steps", "regime")  # context, not a result to tabulate
# table columns when present: every registered code metric's keys
VARIANTS = tuple(k for metric in code_metrics.CODE_METRICS.values() for k in metric.keys if k != "code_mean")


# ----------------------------------------------------------------------------- loading

def load_results(workdir: str | Path) -> list[dict]:
    """The members of DIR/results.jsonl (workdir.read_results: the last line of a member wins, torn or
    junk lines skipped with a warning), normalised for the tables; unusable records skipped with a warning."""
    path = Path(workdir) / "results.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run ae_jax.sweep first)")
    records = []
    for rec in workdir_lib.read_results(path):
        try:
            records.append(normalise(rec))
        except (ValueError, TypeError, KeyError) as e:
            log.warning("%s: skipped member %s (%s)", path, rec.get("member"), e)
    if not records:
        raise ConfigError(f"{path}: no results in it (run ae_jax.sweep first)")
    return records


def normalise(rec: Any) -> dict:
    if not isinstance(rec, dict) or not isinstance(rec.get("metrics", {}), dict):
        raise ValueError("not a results object")
    config = {k: _hashable(v) for k, v in {**(rec.get("config") or {}), **(rec.get("overrides") or {})}.items()}
    raw = rec.get("metrics") or {}
    m = {k: float(v) if v is not None else math.nan for k, v in raw.items()
         if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
    nan = math.nan
    # PCA-k is exact once k reaches the data rank; a ratio to its round-off would swamp the colours.
    var = m.get("test_mse", nan) / m["test_fvu"] if m.get("test_fvu", 0) > 0 else 0.0
    exact = not m.get("pca_mse", 0) > 1e-9 * (var if math.isfinite(var) else 0.0)
    m["mse_over_pca"] = nan if exact else m.get("test_mse", nan) / m["pca_mse"]
    m["rank_frac"] = m.get("jac_rank", nan) / m["data_rank"] if m.get("data_rank", 0) > 0 else nan
    regime = raw.get("regime")
    converged = raw.get("converged", rec.get("converged"))
    return {"member": rec.get("member"), "name": str(rec.get("name", "")), "config": config,
            "status": str(rec.get("status", "ok")), "metrics": m,
            "regime": regime if isinstance(regime, str) else None,
            "converged": bool(converged) if isinstance(converged, (bool, int)) else None,
            "wandb_run_id": rec.get("wandb_run_id"), "wandb_dir": rec.get("wandb_dir")}


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def value_order(v: Any) -> tuple:
    """A sort key for values of mixed types: numbers (numerically) before the rest."""
    if isinstance(v, tuple):
        return (2, 0, tuple(value_order(x) for x in v))
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def swept_axes(records: list[dict]) -> dict[str, list]:
    """{config key: its sorted values} for every key whose value varies across members (seeds and
    settings that never change the numbers excluded), code size and depth first, then by value count."""
    keys = {k for r in records for k in r["config"]}
    keys = {k for k in keys if k not in REPLICATE_KEYS and not k.startswith(IGNORED)}
    values = {k: sorted({r["config"].get(k) for r in records}, key=value_order) for k in keys}
    axes = [k for k in keys if len(values[k]) > 1]
    axes.sort(key=lambda k: (PRIORITY.index(k) if k in PRIORITY else len(PRIORITY), -len(values[k]), k))
    return {k: values[k] for k in axes}


def group(records: list[dict], key) -> dict[tuple, list[dict]]:
    out = collections.defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return {k: out[k] for k in sorted(out, key=lambda t: tuple(value_order(v) for v in t))}


def summarise(records: list[dict], metrics: list[str]) -> dict:
    """Mean, sample std and count over the ok members, each ok member's (value, converged); the majority
    regime and its votes; how many ok members did not converge."""
    ok = [r for r in records if r["status"] == "ok"]
    out: dict[str, Any] = {"n_ok": len(ok), "n": len(records), "each": {},
                           "status": collections.Counter(r["status"] for r in records),
                           "n_unconverged": sum(r["converged"] is False for r in ok)}
    for k in metrics:
        each = [(r["metrics"][k], r["converged"]) for r in ok if math.isfinite(r["metrics"].get(k, math.nan))]
        vals = np.array([v for v, _ in each], dtype=float)
        out["each"][k] = each
        out[k] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals)) \
            if len(vals) else None
    votes = collections.Counter(r["regime"] for r in ok if r["regime"])
    top = votes.most_common()
    winners = [name for name, c in top if c == top[0][1]] if top else []
    out["regime"] = None if not winners else winners[0] if len(winners) == 1 else "mixed"
    out["votes"] = (top[0][1] if top else 0, sum(votes.values()))
    return out


def common(records: list[dict], key: str, default: Any = None) -> Any:
    values = collections.Counter(v for r in records if (v := _get(r, key)) is not None)
    return values.most_common(1)[0][0] if values else default


def _get(r: dict, key: str) -> Any:
    return r["metrics"].get(key) if key in ("input_dim", "data_rank") else r["config"].get(key)


def stored_identity(workdir: Path) -> dict:
    """DIR/sweep.json as the sweep runner wrote it (name, member count, sha256), or {}."""
    try:
        stored = json.loads((workdir / workdir_lib.IDENTITY).read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def dims(records: list[dict]) -> dict[str, int | None]:
    """The input dimension D and the data rank r, as most members report them."""
    out = {"D": common(records, "input_dim"), "r": common(records, "data_rank")}
    return {k: int(v) if isinstance(v, (int, float)) and math.isfinite(v) else None for k, v in out.items()}


@dataclasses.dataclass
class Sweep:
    """What the sections of the report share."""
    workdir: Path
    name: str
    records: list[dict]
    layout: Layout
    values: dict[str, list]
    metrics: list[str]
    cells: dict[tuple, dict]  # (x, y or None, *facets) -> summary

    def key(self, r: dict) -> tuple:
        lay = self.layout
        if lay.kind == "single":
            return (None, None)
        return (r["config"].get(lay.x), r["config"].get(lay.y) if lay.y else None,
                *(r["config"].get(a) for a in lay.facets))


def build(workdir: Path, records: list[dict]) -> Sweep:
    """The layout and the per-setting summaries of a sweep's records."""
    values = swept_axes(records)
    layout = plots.choose_layout(values)
    metrics = [k for k in (*LABELS, *VARIANTS) if any(k in r["metrics"] for r in records)]
    metrics += sorted({k for r in records for k in r["metrics"]} - set(metrics) - set(NOT_SHOWN))
    name = str(common(records, "name", "") or stored_identity(workdir).get("name") or workdir.resolve().name)
    sweep = Sweep(workdir, name, records, layout, values, metrics, {})
    sweep.cells = {k: summarise(rs, metrics) for k, rs in group(records, sweep.key).items()}
    return sweep
