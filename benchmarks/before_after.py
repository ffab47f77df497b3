"""A sweep command end to end at two commits, side by side: `python -m benchmarks.before_after --before=REV`.

Checks REV out into a temporary git worktree and runs the same `python -m ae_jax.sweep` command (default:
the quickstart, W&B disabled, an empty persistent compilation cache, report written) there and in this checkout,
alternately, each in a fresh process pinned to the same cores; prints one JSON object with the wall times,
their ratio, the load average, and how far the two runs' metrics are apart (member by member).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_sweep(tree: Path, config: str, workdir: Path, cpus: list[int], extra: list[str]) -> float:
    """Seconds from starting Python to the report written, for `tree`'s code."""
    # cold: an empty persistent compilation cache, as on a user's first run
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "AE_JAX_COMPILATION_CACHE": str(workdir) + "-xla-cache",
           "WANDB_MODE": "disabled", "PYTHONPATH": str(tree)}
    env.pop("AE_JAX_WORKERS", None)  # each commit's own default
    cmd = [sys.executable, "-m", "ae_jax.sweep", f"--config={config}", f"--workdir={workdir}",
           "--config.wandb.mode=disabled", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return seconds


def metric_gaps(a_dir: Path, b_dir: Path) -> dict:
    """Member by member: whether labels and convergence agree, and the largest relative gap per float metric."""
    read = lambda d: {r["name"]: r["metrics"] for r in map(json.loads, (d / "results.jsonl").read_text().splitlines())}
    a, b = read(a_dir), read(b_dir)
    gaps: dict[str, float] = {}
    same_label = same_converged = 0
    for name in a.keys() & b.keys():
        same_label += a[name].get("regime") == b[name].get("regime")
        same_converged += a[name].get("converged") == b[name].get("converged")
        for k, v in a[name].items():
            w = b[name].get(k)
            if isinstance(v, float) and isinstance(w, float) and v == v and w == w:
                gaps[k] = max(gaps.get(k, 0.0), abs(v - w) / max(abs(v), 1e-12))
    top = dict(sorted(gaps.items(), key=lambda kv: -kv[1])[:8])
    return {"members": [len(a), len(b)], "same_regime": same_label, "same_converged": same_converged,
            "largest_relative_gaps": top}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare against (any git revision)")
    parser.add_argument("--config", default="configs/quickstart.py", help="the sweep config (a path in both trees)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternated (default 1)")
    parser.add_argument("--cores", type=int, default=0, help="cores both sides are pinned to (default: all)")
    parser.add_argument("extra", nargs="*", help="more sweep flags for both sides, after --")
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    cpus = cpus[-args.cores:] if args.cores else cpus
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=before, capture_output=True,
                                    text=True, check=True).stdout.strip()
            here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
            times = {"before_s": [], "after_s": []}
            load = [os.getloadavg()[0]]
            for r in range(args.repeats):
                for side, tree in (("before", before), ("after", ROOT)):
                    times[f"{side}_s"].append(timed_sweep(tree, args.config, Path(tmp) / f"{side}{r}", cpus, args.extra))
                    load.append(os.getloadavg()[0])
            gaps = metric_gaps(Path(tmp) / "before0", Path(tmp) / "after0")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    result = {"config": args.config, "before": commit, "after": here + (" (with uncommitted changes)" if subprocess.run(
                  ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                  text=True).stdout.strip() else ""),
              "cores": len(cpus), **times,
              "before_over_after": statistics.median(times["before_s"]) / statistics.median(times["after_s"]),
              "load_average": load, "metrics": gaps}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
