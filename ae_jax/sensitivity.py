"""How many regime labels of finished sweeps move when one threshold of the rule moves.

    python -m ae_jax.sensitivity DIR [DIR ...]

prints a markdown table: per threshold of `regime.Thresholds`, the number of labelled members whose label
changes when only that threshold is scaled by 0.8, 0.9, 1.1 and 1.2 (`Thresholds.moved`: `copy` and
`trivial_fvu` scale their distance from 1), how many of the members that moved had converged, and the
commonest moves. Labels are recomputed from the metrics in results.jsonl, so no member is retrained;
members the sweep did not label (diverged, error) are left out.
"""

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ae_jax import regime, workdir as workdir_lib

FACTORS = (0.8, 0.9, 1.1, 1.2)


def sensitivity(metrics: Iterable[Mapping], factors: Sequence[float] = FACTORS) -> list[dict]:
    """Per threshold: {factor: Counter of 'old -> new' label moves} when only that threshold moves, and how
    many distinct members moved at any factor that had converged (`converged` true)."""
    metrics = list(metrics)
    base = [regime.classify(m) for m in metrics]
    rows = []
    for field in dataclasses.fields(regime.Thresholds):
        moves, moved = {}, set()
        for factor in factors:
            rule = regime.RULE.moved(field.name, factor)
            new = [regime.classify(m, rule) for m in metrics]
            moves[factor] = Counter(f"{a} -> {b}" for a, b in zip(base, new) if a != b)
            moved |= {i for i, (a, b) in enumerate(zip(base, new)) if a != b}
        rows.append({"threshold": field.name, "value": getattr(regime.RULE, field.name), "moves": moves,
                     "converged_moved": sum(bool(metrics[i].get("converged")) for i in moved)})
    return rows


def table(name: str, metrics: list[Mapping], factors: Sequence[float] = FACTORS) -> str:
    """The markdown table of one sweep."""
    labels = Counter(regime.classify(m) for m in metrics)
    head = (f"**{name}**: {len(metrics)} labelled members ("
            + ", ".join(f"{n} {label}" for label, n in labels.most_common()) + ")\n\n"
            + "| threshold | value | " + " | ".join(f"x{f:g}" for f in factors)
            + " | converged members moved | largest moves |\n"
            + "|---|---|" + "---|" * len(factors) + "---|---|\n")
    lines = []
    for row in sensitivity(metrics, factors):
        total = sum(row["moves"].values(), Counter())
        common = ", ".join(f"{move} ({n})" for move, n in total.most_common(2)) or "-"
        counts = " | ".join(str(sum(row["moves"][f].values())) for f in factors)
        lines.append(f"| `{row['threshold']}` | {row['value']:g} | {counts} | {row['converged_moved']} | {common} |")
    return head + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 and one line on stderr for a workdir without results)."""
    parser = argparse.ArgumentParser(prog="python -m ae_jax.sensitivity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+", help="finished sweeps' workdirs holding results.jsonl")
    args = parser.parse_args(argv)
    for d in args.workdirs:
        records = [r for r in workdir_lib.read_results(d) if (r.get("metrics") or {}).get("regime")]
        if not records:
            print(f"error: {Path(d) / workdir_lib.RESULTS}: no labelled members", file=sys.stderr)
            return 2
        stale = sum(r["metrics"]["regime"] != regime.classify(r["metrics"]) for r in records)
        print(table(d, [r["metrics"] for r in records]))
        if stale:
            print(f"{stale} of {len(records)} recorded labels differ from the current rule's (recorded under "
                  f"another rule); the table uses the current rule\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
