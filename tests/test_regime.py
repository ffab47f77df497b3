"""The regime rule (ae_jax/regime.py) on metric dicts, and the convergence criterion on synthetic curves.

The rule on real maps (closed forms, untrained and trained networks, three datasets) is tests/test_calibration.py.
"""

import math

import numpy as np
import pytest

from ae_jax import regime

# One metrics dict per label, each the pattern its test looks for and nothing else (numbers in the
# ranges tests/test_calibration.py measured for the known maps).
IDENTITY = dict(span_ood_fidelity=1.0, perturb_fidelity=1.0, perturb_gain=1.0, test_fvu=0.0, train_fvu=0.0,
                gen_gap=0.0, pca_kept_fvu=0.01, const_ratio=1.0, attractor_fraction=0.0, snap_fraction=0.0)
STRUCTURED = dict(IDENTITY, span_ood_fidelity=0.03, perturb_fidelity=0.04, perturb_gain=0.04, test_fvu=0.74,
                  train_fvu=0.71, gen_gap=0.03, pca_kept_fvu=0.74, const_ratio=0.26)
MEMORIZING = dict(IDENTITY, span_ood_fidelity=-0.09, perturb_fidelity=-0.9, perturb_gain=1.2, test_fvu=0.64,
                  gen_gap=0.64, pca_kept_fvu=1.0, const_ratio=0.97, attractor_fraction=1.0, snap_fraction=1.0)
COLLAPSED = dict(IDENTITY, span_ood_fidelity=0.0, perturb_fidelity=0.0, perturb_gain=0.0, test_fvu=1.0,
                 train_fvu=1.0, gen_gap=0.0, pca_kept_fvu=1.0, const_ratio=0.0)
UNDERFIT = dict(IDENTITY, span_ood_fidelity=-2.0, perturb_fidelity=-0.1, perturb_gain=0.1, test_fvu=4.0,
                train_fvu=4.1, gen_gap=-0.03, pca_kept_fvu=0.5, const_ratio=0.07)
PATTERNS = {"identity": IDENTITY, "structured": STRUCTURED, "memorizing": MEMORIZING, "collapsed": COLLAPSED,
            "underfit": UNDERFIT}


@pytest.mark.parametrize("label", sorted(PATTERNS))
def test_each_pattern_passes_its_own_test_only(label):
    ev = regime.evidence(PATTERNS[label])
    assert ev == {k: k == label for k in ev}, ev
    assert regime.classify(PATTERNS[label]) == label


def test_labels_are_the_contracts():
    assert set(regime.LABELS) == set(PATTERNS) | {"unresolved"}
    assert set(regime.evidence({})) == set(PATTERNS)


def test_no_test_passed_is_unresolved():
    assert regime.classify({}) == "unresolved"
    # mu + 0.5 (x - mu): copies half of everything, contracts nothing onto the data, far worse than PCA
    half = dict(IDENTITY, span_ood_fidelity=0.75, perturb_fidelity=0.75, perturb_gain=0.25, test_fvu=0.25,
                train_fvu=0.25, const_ratio=0.25, pca_kept_fvu=0.0114)
    assert not any(regime.evidence(half).values()) and regime.classify(half) == "unresolved"


def test_conflicting_tests_are_unresolved():
    # copies (fidelity >= COPY) yet contracts (gain <= CONTRACTION) and matches PCA: identity and structured
    both = dict(IDENTITY, span_ood_fidelity=0.95, perturb_fidelity=0.95, perturb_gain=0.6, test_fvu=0.014,
                pca_kept_fvu=0.04, const_ratio=0.84)
    ev = regime.evidence(both)
    assert ev["identity"] and ev["structured"] and regime.classify(both) == "unresolved"
    # an identity map that also left a large train/test gap
    assert regime.classify(dict(IDENTITY, gen_gap=0.3)) == "unresolved"


# The metrics each AND-test reads: any one missing fails it. `memorizing` is an OR of three.
READS = {
    "identity": ("span_ood_fidelity", "perturb_fidelity"),
    "structured": ("test_fvu", "pca_kept_fvu", "gen_gap", "perturb_gain", "const_ratio", "attractor_fraction",
                   "snap_fraction"),
    "collapsed": ("const_ratio", "attractor_fraction", "snap_fraction", "test_fvu"),
    "underfit": ("train_fvu", "test_fvu"),
}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "x"])
def test_missing_or_non_finite_metrics_fail_the_tests_that_read_them(bad):
    for label, keys in READS.items():
        for key in keys:
            m = dict(PATTERNS[label], **{key: bad})
            assert not regime.evidence(m)[label], (label, key)
            assert regime.classify(m) != label, (label, key)
        assert not regime.evidence({k: v for k, v in PATTERNS[label].items() if k not in keys})[label]
    memo = ("attractor_fraction", "snap_fraction", "gen_gap")
    assert not regime.evidence(dict(MEMORIZING, **{k: bad for k in memo}))["memorizing"]
    for k in memo:  # any one of the three suffices
        assert regime.evidence({**{j: bad for j in memo}, k: MEMORIZING[k]})["memorizing"], k


def test_thresholds_at_their_edges():
    at = lambda **kw: regime.evidence(dict(IDENTITY, **kw))
    assert at(span_ood_fidelity=regime.COPY)["identity"]
    assert not at(span_ood_fidelity=regime.COPY - 1e-9)["identity"]
    assert not at(perturb_fidelity=regime.COPY - 1e-9)["identity"]
    s = lambda **kw: regime.evidence(dict(STRUCTURED, **kw))["structured"]
    assert s(test_fvu=(1 + regime.PCA_SLACK) * 0.74 + regime.FVU_SLACK)
    assert not s(test_fvu=(1 + regime.PCA_SLACK) * 0.74 + regime.FVU_SLACK + 1e-6)
    assert s(gen_gap=regime.SMALL_GAP) and not s(gen_gap=regime.SMALL_GAP + 1e-9)
    assert s(perturb_gain=regime.CONTRACTION) and not s(perturb_gain=regime.CONTRACTION + 1e-9)
    assert not s(const_ratio=regime.CONSTANT - 1e-9)
    assert not s(attractor_fraction=regime.SNAP) and not s(snap_fraction=regime.SNAP)
    m = lambda **kw: regime.evidence(dict(STRUCTURED, **kw))["memorizing"]
    assert m(gen_gap=regime.LARGE_GAP) and not m(gen_gap=regime.LARGE_GAP - 1e-9)
    assert m(snap_fraction=regime.SNAP) and m(attractor_fraction=regime.SNAP)
    c = lambda **kw: regime.evidence(dict(COLLAPSED, **kw))["collapsed"]
    assert not c(const_ratio=regime.CONSTANT)
    assert not c(snap_fraction=1.0)  # a constant that is a training example memorised it
    assert not c(test_fvu=regime.TRIVIAL_FVU)  # a constant worse than the mean did not learn the mean
    u = lambda **kw: regime.evidence(dict(UNDERFIT, **kw))["underfit"]
    assert u(test_fvu=regime.TRIVIAL_FVU, train_fvu=regime.TRIVIAL_FVU)
    assert not u(train_fvu=0.0)  # fits its training set: a memoriser of one example is not underfit


def test_identity_and_structured_exclusive_for_projections():
    """For a projection the perturbation gain equals its fidelity, so CONTRACTION < COPY leaves no
    projection that is both (the gap between them is unresolved)."""
    assert regime.CONTRACTION < regime.COPY


# ----------------------------------------------------------------------------- convergence


def test_converged_on_synthetic_curves():
    t = np.linspace(0.0, 1.0, 40)
    rng = np.random.default_rng(0)
    assert not regime.converged(1.0 - 0.5 * t)  # still falling linearly
    assert not regime.converged(np.exp(-2.0 * t))  # still falling: the last quarter drops ~15% of the fall
    assert regime.converged(np.exp(-20.0 * t))  # fell and flattened
    assert regime.converged(np.full(40, 0.3))  # flat from the start
    assert regime.converged(0.3 + 0.01 * rng.normal(size=40))  # flat with noise
    assert regime.converged(np.exp(-20.0 * t) + 0.01 * rng.normal(size=40))  # flattened, noisy
    assert not regime.converged(np.exp(-2.0 * t) + 0.001 * rng.normal(size=40))  # falling, slightly noisy
    assert regime.converged(0.1 + np.exp(-20.0 * t) - 0.0 * t)  # to a non-zero floor
    assert regime.converged(np.r_[np.exp(-20.0 * t), 0.05 * t[:10]])  # rising at the end: not falling


def test_converged_scale_free():
    t = np.linspace(0.0, 1.0, 40)
    for scale in (1e-6, 1.0, 1e6):
        assert regime.converged(scale * np.exp(-20.0 * t)) and not regime.converged(scale * (1.0 - 0.5 * t))


def test_converged_refuses_what_it_cannot_judge():
    assert not regime.converged([])
    assert not regime.converged([1.0, 0.5, 0.5])  # fewer than 4 points
    assert not regime.converged([1.0, 0.5, float("nan"), 0.5, 0.5])
    assert not regime.converged([1.0, 0.5, math.inf, 0.5, 0.5])
    assert regime.converged([1.0, 0.5, 0.5, 0.5])
    assert not regime.converged([1.0, 0.8, 0.6, 0.4])
