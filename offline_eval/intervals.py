"""Confidence intervals: vectorised percentile bootstrap and analytic normal intervals.

The bootstrap draws, per chunk of resamples, an index matrix (k, n), turns it into multinomial
counts with one ``bincount`` and gets every resample's sums for every estimator at once as
``counts @ vectors.T``. Ratio estimators are re-normalised inside each resample. All estimators of
one evaluation share the same resamples, so their intervals are comparable.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from offline_eval.estimators import RoundTerms

_CHUNK_ELEMENTS = 1 << 21  # 16 MB per (k, n) array: the draws, their counts, counts as float


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def normal_interval(terms: RoundTerms, alpha: float) -> tuple[Interval, float]:
    """Wald interval V +- z_{1-alpha/2} * se, se = std(psi, ddof=1) / sqrt(n) from the influence
    function (plain means: the per-event terms; ratios: the delta method). Returns (interval, se)."""
    psi = terms.influence()
    n = terms.n_events
    se = float(psi.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    value = terms.value()
    return Interval(value - z * se, value + z * se), se


def resample_counts(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(k, n) float64 counts of k bootstrap resamples of size n (each row sums to n)."""
    draws = rng.integers(0, n, size=(k, n), dtype=np.int64)
    draws += (np.arange(k, dtype=np.int64) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def bootstrap_replicates(
    terms: Sequence[RoundTerms], n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_bootstrap, len(terms)) bootstrap replicates of every estimate, sharing resamples."""
    n = terms[0].n_events
    columns: list[np.ndarray] = []
    column_of: dict[int, int] = {}

    def column(vector: np.ndarray | None) -> int:
        if vector is None:
            return -1
        if id(vector) not in column_of:
            column_of[id(vector)] = len(columns)
            columns.append(vector)
        return column_of[id(vector)]

    layout = [(column(t.base), column(t.numerator), column(t.denominator)) for t in terms]
    stacked = np.ascontiguousarray(np.stack(columns)) if columns else np.zeros((0, n))
    replicates = np.empty((n_bootstrap, len(terms)))
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, chunk):
        k = min(chunk, n_bootstrap - start)
        sums = resample_counts(rng, n, k) @ stacked.T  # (k, n_columns)
        for j, (base, numerator, denominator) in enumerate(layout):
            value = np.zeros(k) if base < 0 else sums[:, base] / n
            if numerator >= 0:
                den = np.full(k, float(n)) if denominator < 0 else sums[:, denominator]
                safe = np.where(den == 0.0, 1.0, den)
                value = value + np.where(den == 0.0, 0.0, sums[:, numerator] / safe)
            replicates[start : start + k, j] = value
    return replicates


def percentile_interval(replicates: np.ndarray, alpha: float) -> Interval:
    """Percentile bootstrap interval (numpy's linear interpolation, like OBP)."""
    low, high = np.percentile(replicates, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return Interval(float(low), float(high))
