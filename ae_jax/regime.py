"""The regime label of a trained map and the convergence test of its loss curve (docs/regime.md).

Each label has its own positive test on the metrics `diagnostics.evaluate` writes; a map must pass
exactly one, else it is `unresolved` (none passed, or several conflict). Every threshold is a
dimensionless ratio, fixed on the known maps of tests/test_calibration.py (docs/regime.md, calibration
table), never on a reported sweep:

  identity    span_ood_fidelity >= COPY and perturb_fidelity >= COPY: uniform points in the train box and
              range-weighted perturbations of test points, both seen through the data span, come back.
  structured  test_fvu <= (1 + PCA_SLACK) pca_kept_fvu + FVU_SLACK (as good as PCA keeping as many
              directions as the map does), gen_gap <= SMALL_GAP, perturb_gain <= CONTRACTION
              (off-data perturbations shrink), const_ratio >= CONSTANT (not constant), and no
              memorisation evidence (attractor_fraction, snap_fraction < SNAP).
  memorizing  attractor_fraction >= SNAP or snap_fraction >= SNAP (outputs land on training examples),
              or gen_gap >= LARGE_GAP.
  collapsed   const_ratio < CONSTANT, its outputs are not training examples (attractor_fraction,
              snap_fraction < SNAP) and it is no worse than the train mean (test_fvu < TRIVIAL_FVU).
  underfit    train_fvu >= TRIVIAL_FVU and test_fvu >= TRIVIAL_FVU: worse than the constant train mean
              on the data it was trained on and on held-out data.
A missing or non-finite metric fails every test it appears in.
"""

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

LABELS = ("identity", "structured", "memorizing", "collapsed", "underfit", "unresolved")

# Each threshold sits in the gap between the known maps that must pass and those that must fail
# (docs/regime.md gives the measured values on either side).
COPY = 0.9  # fidelity (1 - relative squared error of the copy) that counts as copying
PCA_SLACK = 0.1  # relative slack over the PCA control
FVU_SLACK = 1e-3  # absolute slack, in units of the held-out energy: PCA controls that are ~0
SMALL_GAP = 0.1  # test_fvu - train_fvu that still counts as generalising
LARGE_GAP = 0.3  # ... and that counts as memorising
CONTRACTION = 0.65  # perturb_gain at or below which off-data perturbations count as shrunk
CONSTANT = 0.05  # const_ratio below which the map counts as (near) constant
SNAP = 0.5  # fraction of attractor / snap end points on a training example that counts as memorising
TRIVIAL_FVU = 1.05  # FVU at or above which the map is no better than the constant train mean



@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The rule's thresholds as one value, so a sensitivity study can move each one (`sensitivity`)."""
    copy: float = COPY
    pca_slack: float = PCA_SLACK
    fvu_slack: float = FVU_SLACK
    small_gap: float = SMALL_GAP
    large_gap: float = LARGE_GAP
    contraction: float = CONTRACTION
    constant: float = CONSTANT
    snap: float = SNAP
    trivial_fvu: float = TRIVIAL_FVU

    def moved(self, name: str, factor: float) -> "Thresholds":
        """This rule with one threshold scaled by factor. The two bars defined against 1 scale their distance
        from it: `copy` its tolerance 1 - copy (a fidelity bar above 1 could never pass) and `trivial_fvu` its
        margin over the train mean's FVU of 1 (below 1 it would call maps that beat the mean underfit)."""
        value = getattr(self, name)
        if name in ("copy", "trivial_fvu"):
            new = 1.0 + (value - 1.0) * factor
        else:
            new = value * factor
        return dataclasses.replace(self, **{name: new})


RULE = Thresholds()

CONVERGED_WINDOW = 0.25  # the last quarter of the logged curve against the quarter before it
CONVERGED_TOL = 0.01  # ... may fall by at most 1% of the curve's whole fall so far


def _get(metrics: Mapping, key: str) -> float:
    v = metrics.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def evidence(metrics: Mapping, rule: Thresholds = RULE) -> dict[str, bool]:
    """{label: whether its positive test passed} for the five labels with a test."""
    g = lambda key: _get(metrics, key)
    t = rule
    # NaN compares False everywhere, so a missing metric fails every test that reads it
    snaps = g("attractor_fraction") >= t.snap or g("snap_fraction") >= t.snap
    no_snaps = g("attractor_fraction") < t.snap and g("snap_fraction") < t.snap
    return {
        "identity": g("span_ood_fidelity") >= t.copy and g("perturb_fidelity") >= t.copy,
        "structured": (g("test_fvu") <= (1 + t.pca_slack) * g("pca_kept_fvu") + t.fvu_slack
                       and g("gen_gap") <= t.small_gap and g("perturb_gain") <= t.contraction
                       and g("const_ratio") >= t.constant and no_snaps),
        "memorizing": snaps or g("gen_gap") >= t.large_gap,
        "collapsed": g("const_ratio") < t.constant and no_snaps and g("test_fvu") < t.trivial_fvu,
        "underfit": g("train_fvu") >= t.trivial_fvu and g("test_fvu") >= t.trivial_fvu,
    }


def classify(metrics: Mapping, rule: Thresholds = RULE) -> str:
    """The one label whose test passed, else `unresolved`."""
    passed = [label for label, ok in evidence(metrics, rule).items() if ok]
    return passed[0] if len(passed) == 1 else "unresolved"


def converged(curve: Sequence[float], window: float = CONVERGED_WINDOW, tol: float = CONVERGED_TOL) -> bool:
    """Whether a logged loss curve (oldest first) had stopped falling by the end.

    With w = max(1, floor(window * n)) points per window: the mean of the last w points may sit below the
    mean of the w before by at most tol x the whole fall (max(curve) - mean of the last w), or by at most
    twice the standard error of that difference (noise). Fewer than 4 points, or any non-finite value:
    False (not shown to have converged)."""
    c = np.asarray(curve, np.float64).reshape(-1)
    if c.size < 4 or not np.all(np.isfinite(c)):
        return False
    w = max(1, int(window * c.size))
    last, prev = c[-w:], c[-2 * w:-w]
    drop = prev.mean() - last.mean()
    fall = c.max() - last.mean()
    noise = 2.0 * math.sqrt((prev.var(ddof=1) + last.var(ddof=1)) / w) if w > 1 else 0.0
    return bool(drop <= max(tol * fall, noise))
