"""The rollback guardrail's test: is a newly promoted champion's live reward below the previous champion's
by more than a margin? Checked continuously, so it needs a test that stays valid at every look.

A fixed-n test re-run every minute raises false alarms far above its nominal rate (each look is another
chance). Here each champion's mean reward carries a *confidence sequence* (Robbins' normal mixture, as in
Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
2021): rewards lie in ``[low, high]``, so each is sub-Gaussian with ``σ = (high - low) / 2``, and with
``V = n·σ²``

    |mean_n - μ| ≤ sqrt(2 (V + ρ) · log(sqrt((V + ρ) / ρ) / (α / 2))) / n      for every n at once,

with probability at least 1 - α (``ρ > 0`` only tunes where the bound is tightest: ``ρ = σ²·n_tight``).
The guardrail rolls back when the new champion's upper bound lies below the previous champion's lower bound
minus ``margin``; each sequence at ``α / 2``, so a champion no worse than ``previous - margin`` is rolled
back with probability at most ``α`` however often it is checked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from offerbandit.checks import check_range, check_scalar

__all__ = ["ConfidenceSequence", "RunningReward", "guardrail_trips"]


@dataclass(frozen=True)
class ConfidenceSequence:
    """The time-uniform bound for means of rewards in ``reward_range`` (see the module docstring)."""

    reward_range: tuple[float, float] = (0.0, 1.0)
    alpha: float = 0.05
    n_tight: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward_range", check_range(self.reward_range, "reward_range"))
        check_scalar(self.alpha, "guardrail alpha", low=0.0, high=1.0, low_open=True, high_open=True)
        check_scalar(self.n_tight, "n_tight", int, low=1)

    def radius(self, n: int) -> float:
        """Half-width of the sequence's interval for the mean after ``n`` rewards (inf for none)."""
        if n <= 0:
            return math.inf
        low, high = self.reward_range
        sigma2 = ((high - low) / 2.0) ** 2
        rho = sigma2 * self.n_tight
        v = n * sigma2
        return math.sqrt(2.0 * (v + rho) * math.log(math.sqrt((v + rho) / rho) / (self.alpha / 2.0))) / n


@dataclass
class RunningReward:
    """A champion's live rewards so far: count and sum (rewards clipped to the range by the caller)."""

    n: int = 0
    total: float = 0.0

    def add(self, reward: float) -> None:
        self.n += 1
        self.total += reward

    @property
    def mean(self) -> float | None:
        return None if self.n == 0 else self.total / self.n

    def bounds(self, sequence: ConfidenceSequence) -> tuple[float, float]:
        if self.n == 0:
            return (-math.inf, math.inf)
        radius = sequence.radius(self.n)
        return (self.total / self.n - radius, self.total / self.n + radius)


def guardrail_trips(new: RunningReward, previous: RunningReward, margin: float,
                    sequence: ConfidenceSequence) -> bool:
    """True when the new champion is, with confidence, worse than the previous one by more than ``margin``:
    its upper bound below the previous champion's lower bound minus ``margin``."""
    check_scalar(margin, "guardrail margin", low=0.0)
    new_high = new.bounds(sequence)[1]
    previous_low = previous.bounds(sequence)[0]
    return new_high < previous_low - margin
