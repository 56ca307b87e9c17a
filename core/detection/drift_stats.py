"""Drift statistics: population stability index, Kolmogorov-Smirnov tests, and the drift states they lead to.

Pure: arrays in, numbers and states out.  :mod:`core.workflows.drift` chooses the clips and writes the report.
"""

from __future__ import annotations

import numpy as np

from core.errors import BadInputError, Reason
from core.vocabulary import DriftState

# PSI, by the usual reading: < 0.1 stable, 0.1-0.25 a moderate shift (watch), > 0.25 a major shift.
MODERATE_PSI = 0.1
MAJOR_PSI = 0.25
# A major PSI suggests retraining only when the same comparison's KS test is significant at this level:
# on a few dozen clips PSI is noisy (and the level PSI is the worst of 64 bands), the KS test is not fooled.
KS_ALPHA = 0.01
WATCH_ALPHA = 0.05
# Fewest recent clips, and fewest reference clips, that a comparison needs.
MIN_CLIPS = 10
PSI_BINS = 10  # quantile bins of the reference, fewer on small samples (see psi_bins)
MIN_PER_BIN = 10  # values per bin the smaller sample should have on average (PSI is noisy below that)
PSI_EPSILON = 1e-4  # share given to an empty bin, so that its log stays finite
WORST_BANDS = 3

STABLE, WATCH, RETRAIN, NOT_ENOUGH_DATA = (
    DriftState.STABLE,
    DriftState.WATCH,
    DriftState.RETRAIN,
    DriftState.NOT_ENOUGH_DATA,
)
STATES = tuple(DriftState)


def _sample_1d(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise BadInputError(Reason.INVALID_PARAMETER, f"{name} must be a non-empty sample of finite numbers")
    return x


def population_stability_index(expected, actual, bins: int = PSI_BINS) -> float:
    """PSI of ``actual`` against ``expected`` (1-D samples of any lengths), >= 0.

    Bins are quantiles of ``expected`` (``bins`` of equal share; tied quantiles merge), open at both
    ends so every value counts; an empty bin gets the share ``PSI_EPSILON``.  PSI is
    ``sum((a - e) * ln(a / e))`` over the bins' shares ``e`` and ``a``.  Usual reading: < 0.1 stable,
    0.1-0.25 a moderate shift, > 0.25 a major shift.  Few values per bin inflate it.
    """
    e, a = _sample_1d(expected, "expected"), _sample_1d(actual, "actual")
    if int(bins) != bins or bins < 1:
        raise BadInputError(Reason.INVALID_PARAMETER, f"bins must be a positive integer, got {bins!r}")
    edges = np.unique(np.quantile(e, np.linspace(0.0, 1.0, int(bins) + 1)[1:-1]))
    shares = [np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1) / x.size for x in (e, a)]
    e_share, a_share = (np.maximum(s, PSI_EPSILON) for s in shares)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def psi_bins(n_expected: int, n_actual: int) -> int:
    """Bins for a PSI of samples this large: ``PSI_BINS``, fewer so that the smaller sample has about
    ``MIN_PER_BIN`` values a bin, at least 2."""
    return int(min(PSI_BINS, max(2, min(n_expected, n_actual) // MIN_PER_BIN)))


def band_psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """PSI of each column of ``recent`` ``(n_recent, n_bands)`` against ``reference`` ``(n_ref, n_bands)``.

    Returns float64 ``(n_bands,)``.
    """
    reference, recent = np.asarray(reference, dtype=np.float64), np.asarray(recent, dtype=np.float64)
    if reference.ndim != 2 or recent.ndim != 2 or reference.shape[1] != recent.shape[1]:
        raise BadInputError(
            Reason.INVALID_PARAMETER, f"need two (n, n_bands) arrays with equal n_bands, got {reference.shape} "
            f"and {recent.shape}",
        )  # fmt: skip
    return np.array([population_stability_index(reference[:, b], recent[:, b], bins) for b in range(recent.shape[1])])


def ks_test(expected, actual) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, two-sided): ``(statistic, p-value)``."""
    from scipy.stats import ks_2samp  # scipy.stats takes a while to import: only when a test runs

    result = ks_2samp(_sample_1d(expected, "expected"), _sample_1d(actual, "actual"))
    return float(result.statistic), float(result.pvalue)


def classify(
    score_psi: float | None, score_pvalue: float | None, level_psi: float | None, level_pvalue: float | None
) -> DriftState:
    """The drift state of comparisons that had enough data (``None``: not compared).

    ``retrain suggested`` when the score PSI or the level PSI exceeds ``MAJOR_PSI`` and that
    comparison's KS p-value is below ``KS_ALPHA``; ``watch`` when a PSI exceeds ``MODERATE_PSI`` and
    its KS p-value is below ``WATCH_ALPHA`` (PSI alone is noisy on the few dozen clips a machine
    records in a day: unchanged data averages ~0.2 with 50 clips); else ``stable``.
    (``not enough data`` is decided before: fewer than ``MIN_CLIPS`` recent or reference clips,
    or no active model.)
    """
    pairs = [(psi, p) for psi, p in ((score_psi, score_pvalue), (level_psi, level_pvalue)) if psi is not None]
    if any(psi > MAJOR_PSI and p is not None and p < KS_ALPHA for psi, p in pairs):
        return RETRAIN
    if any(psi > MODERATE_PSI and p is not None and p < WATCH_ALPHA for psi, p in pairs):
        return WATCH
    return STABLE


def stable_reason(
    score_psi: float | None, score_pvalue: float | None, level_psi: float | None, level_pvalue: float | None
) -> str:
    """Why :func:`classify` found no shift, true to its rule: each compared PSI is at most ``MODERATE_PSI``,
    or above it with a KS p-value of at least ``WATCH_ALPHA`` (not significant), e.g. ``no significant
    shift: score PSI 0.23, KS p 0.41 >= 0.05; level PSI 0.04 <= 0.1``."""
    parts = []
    for name, psi, p in (("score", score_psi, score_pvalue), ("level", level_psi, level_pvalue)):
        if psi is None:
            continue
        if psi <= MODERATE_PSI:
            parts.append(f"{name} PSI {psi:.2f} <= {MODERATE_PSI}")
        elif p is None:
            parts.append(f"{name} PSI {psi:.2f} without a KS test")
        else:
            parts.append(f"{name} PSI {psi:.2f}, KS p {p:.2g} >= {WATCH_ALPHA}")
    return "no significant shift: " + "; ".join(parts)


def clip_levels(features: np.ndarray) -> np.ndarray:
    """Mean log-mel level per band (dB re the clip's peak) of one clip's ``LEVEL_PARAMS`` features
    ``(n_columns, n_mels)``: float64 ``(n_mels,)``."""
    return np.asarray(features, dtype=np.float64).mean(axis=0)
