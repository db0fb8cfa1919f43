"""Confidence intervals: vectorised percentile bootstrap and analytic normal intervals.

The bootstrap draws, per chunk of resamples, an index matrix (k, n), turns it into multinomial
counts with one ``bincount`` and gets every resample's sums for every estimator at once as
``counts @ vectors.T``. Ratio estimators are re-normalised inside each resample. All estimators of
one evaluation share the same resamples, so their intervals are comparable.

Every interval holds its point estimate. The point is computed as one more "resample" whose counts
are all 1, in the same matrix product as the first chunk of resamples, so point and resamples are
summed in the same order (summing the point with ``mean`` and the resamples with a BLAS product put a
``dm`` point 2e-17 outside its own interval on the Open Bandit Dataset); and every interval is then
widened, if it must be, to contain the point (`holding`), which also covers constant and
near-constant data, where all resamples agree to the last bit or the percentile of a skewed ratio
lands beside the point.
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


def holding(interval: Interval, value: float) -> Interval:
    """``interval`` widened (only if it must be) to contain ``value``."""
    return Interval(min(interval.low, value), max(interval.high, value))


def normal_interval(terms: RoundTerms, alpha: float, value: float | None = None) -> tuple[Interval, float]:
    """Wald interval V +- z_{1-alpha/2} * se, se = std(psi, ddof=1) / sqrt(n) from the influence
    function (plain means: the per-event terms; ratios: the delta method). Returns (interval, se).

    ``value``: the point to centre on (default ``terms.value()``). With one event the se is unknown
    (nan) and the interval is the whole line, which still holds the point."""
    psi = terms.influence()
    n = terms.n_events
    se = float(psi.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    value = terms.value() if value is None else float(value)
    if not np.isfinite(se):
        return Interval(-np.inf, np.inf), se
    return holding(Interval(value - z * se, value + z * se), value), se


def resample_counts(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(k, n) float64 counts of k bootstrap resamples of size n (each row sums to n)."""
    draws = rng.integers(0, n, size=(k, n), dtype=np.int64)
    draws += (np.arange(k, dtype=np.int64) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def bootstrap_replicates(
    terms: Sequence[RoundTerms], n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_bootstrap, len(terms)) bootstrap replicates of every estimate, sharing resamples."""
    return points_and_replicates(terms, n_bootstrap, rng)[1]


def points_and_replicates(
    terms: Sequence[RoundTerms], n_bootstrap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every estimate's point (len(terms),) and its (n_bootstrap, len(terms)) bootstrap replicates,
    the point summed in the same matrix product, in the same order, as the first resamples."""
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

    def estimates(counts: np.ndarray) -> np.ndarray:
        k = counts.shape[0]
        sums = counts @ stacked.T  # (k, n_columns)
        out = np.empty((k, len(layout)))
        for j, (base, numerator, denominator) in enumerate(layout):
            value = np.zeros(k) if base < 0 else sums[:, base] / n
            if numerator >= 0:
                den = np.full(k, float(n)) if denominator < 0 else sums[:, denominator]
                safe = np.where(den == 0.0, 1.0, den)
                value = value + np.where(den == 0.0, 0.0, sums[:, numerator] / safe)
            out[:, j] = value
        return out

    replicates = np.empty((n_bootstrap, len(terms)))
    ones = np.ones((1, n))
    points: np.ndarray | None = None
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_bootstrap, chunk):
        k = min(chunk, n_bootstrap - start)
        counts = resample_counts(rng, n, k)
        if points is None:
            both = estimates(np.vstack([ones, counts]))
            points, replicates[start:start + k] = both[0], both[1:]
        else:
            replicates[start:start + k] = estimates(counts)
    if points is None:
        points = estimates(ones)[0]
    return points, replicates


def percentile_interval(replicates: np.ndarray, alpha: float, value: float | None = None) -> Interval:
    """Percentile bootstrap interval (numpy's linear interpolation, like OBP), widened to hold
    ``value`` (the point estimate) when one is given."""
    low, high = np.percentile(replicates, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    interval = Interval(float(low), float(high))
    return interval if value is None else holding(interval, value)
