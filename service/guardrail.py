"""The rollback guardrail's test: is a newly promoted champion's value below the previous champion's by
more than ``margin``, on the same traffic? Checked after every final reward, so it must stay valid at every
look (a fixed-n test re-run every minute raises false alarms far above its nominal rate).

**The paired per-decision difference.** For a decision ``i`` the new champion served (context ``x``, the
served pmf ``p`` with the chosen arm ``a`` drawn from it, reward ``r`` in ``[low, high]``), with
``π_new`` the new champion's policy component as logged (before the novelty mixture) and ``π_prev`` the
previous champion's pmf on the same logged context and eligible arms:

    D_i = (r - low) · (π_new(a|x) - π_prev(a|x)) / p(a|x)

Given everything before decision ``i`` (and ``x``), ``E[D_i] = V_new(x) - V_prev(x)`` — importance
weighting, unbiased because ``p(a|x) > 0`` wherever ``π_prev(a|x) > 0``: VW's exploration gives every
eligible arm a floor (ε-greedy ``ε/K``, SquareCB ``1/(K + γΔ)``) and the mixture keeps ``(1 - β)`` of it.
Comparing policy components (not the served mixture against ``π_prev``) leaves the novelty exploration,
which both champions would carry, out of the difference; with ``β = 0`` it is ``r - r·π_prev/p``.

**The bound.** ``p = (1 - β)·π_new + β·q_novel ≥ (1 - β)·π_new``, so with ``H = high - low``

    D_i ≤ (r - low) · π_new(a|x) / p(a|x) ≤ H / (1 - β) =: U        (β the campaign's novelty weight)

and below ``D_i ≥ -H·π_prev/p ≥ -H / p_min`` (``p_min ≥ (1 - β)·ε/K`` under ε-greedy), which is large and
is never used: the test needs only the upper bound.

**The test** (testing by betting; Waudby-Smith and Ramdas, "Estimating means of bounded random variables
by betting", JRSS-B 2023). Null: every decision's conditional mean is at least ``-margin`` (the new
champion is no worse than the previous one minus the margin). With ``x_i = (D_i + margin)/(U + margin) ≤ 1``
and a fixed grid of bets ``λ_j ∈ (0, 1)``, each ``W_t(λ) = Π_{i≤t} (1 - λ·x_i)`` is positive and, under the
null, a supermartingale; so is their average ``E_t`` (the e-value). Ville's inequality:
``P(∃ t: E_t ≥ 1/α) ≤ α`` — the guardrail trips when ``E_t ≥ 1/α`` (and at least ``min_rewards`` rewards are
in), so a champion no worse than ``previous - margin`` is rolled back with probability at most ``α`` however
often it is checked. Inverting the test over the margin gives the reported upper confidence bound on the
mean difference (:meth:`PairedTest.upper_bound`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

__all__ = ["BETS", "GuardrailConfig", "PairedTest", "Verdict", "difference"]

#: The grid of bets the e-value averages over (small ones win on small, long effects; large on big ones).
BETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7)
_BETS = np.asarray(BETS)
#: How far above ``U`` a difference may come from float32 storage of the policy's probability (then taken as ``U``).
_ROUNDING = 1e-6


@dataclass(frozen=True)
class GuardrailConfig:
    """``[guardrail]``: roll a promoted champion back when it is, with confidence ``1 - alpha``, worse than
    the champion it replaced by more than ``margin`` (in reward units), once ``min_rewards`` final rewards
    of it are in; checked every ``check_every_seconds`` by the process that publishes."""

    enabled: bool = False
    margin: float = 0.02
    alpha: float = 0.05
    min_rewards: int = 200
    check_every_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidInput(f"guardrail.enabled must be true or false, got {self.enabled!r}", field="guardrail.enabled")
        check_scalar(self.margin, "guardrail.margin", low=0.0)
        check_scalar(self.alpha, "guardrail.alpha", low=0.0, high=1.0, low_open=True, high_open=True)
        check_scalar(self.min_rewards, "guardrail.min_rewards", int, low=1)
        check_scalar(self.check_every_seconds, "guardrail.check_every_seconds", low=0.0, low_open=True)


def _log_mean_exp(paths: np.ndarray) -> np.ndarray:
    """``log(mean_j exp(paths[:, j]))`` per row, without overflow."""
    top = paths.max(axis=1)
    return top + np.log(np.mean(np.exp(paths - top[:, np.newaxis]), axis=1))


def difference(reward: float, low: float, new_probability: float, previous_probability: float,
               served_probability: float) -> float:
    """``D = (r - low)·(π_new(a) - π_prev(a)) / p(a)`` for one decision (see the module docstring)."""
    return (reward - low) * (new_probability - previous_probability) / served_probability


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a judgement stands: ``rewards`` paired differences in, their mean (the IPW estimate of
    ``V_new - V_prev``), the upper confidence bound on it, the e-value against ``-margin`` and whether it tripped."""

    rewards: int
    estimate: float
    upper_bound: float
    e_value: float
    threshold: float
    tripped: bool

    def as_metrics(self) -> dict[str, float]:
        return {"guardrail_rewards": float(self.rewards), "guardrail_estimate": self.estimate,
                "guardrail_upper_bound": self.upper_bound, "guardrail_e_value": self.e_value,
                "guardrail_threshold": self.threshold}


class PairedTest:
    """The running test of one judged champion: add each decision's ``D`` in the order they settle.

    ``upper`` is ``U`` (``D ≤ U`` always; a larger ``D`` is refused). Keeps the differences (8 bytes each)
    to invert the test for the reported bound.
    """

    def __init__(self, *, margin: float, alpha: float, upper: float, min_rewards: int = 1) -> None:
        self.margin = float(check_scalar(margin, "margin", low=0.0))
        self.alpha = float(check_scalar(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True))
        self.upper = float(check_scalar(upper, "upper", low=0.0, low_open=True))
        self.min_rewards = int(check_scalar(min_rewards, "min_rewards", int, low=1))
        self._log_wealth = np.zeros(len(_BETS))
        self._values: list[float] = []
        self.tripped_at: int | None = None

    @property
    def n(self) -> int:
        return len(self._values)

    @property
    def threshold(self) -> float:
        return 1.0 / self.alpha

    def add(self, d: float) -> bool:
        """One more paired difference; True when the test has tripped (it stays tripped)."""
        return self.add_many([d])

    def add_many(self, ds: Sequence[float]) -> bool:
        """More paired differences, in order, checked after each one exactly as :meth:`add` would; once the
        test trips the rest are not taken in. True when the test has tripped."""
        if self.tripped_at is not None:
            return True
        values = np.asarray(ds, dtype=np.float64).reshape(-1)
        if values.size == 0:
            return False
        if not np.all(np.isfinite(values)) or values.max() > self.upper * (1 + _ROUNDING):
            raise ValueError(f"paired differences must be finite and at most {self.upper}")
        values = np.minimum(values, self.upper)  # the log keeps non-chosen probabilities in float32
        x = np.minimum((values + self.margin) / (self.upper + self.margin), 1.0)
        paths = self._log_wealth + np.cumsum(np.log1p(-np.outer(x, _BETS)), axis=0)
        log_e = _log_mean_exp(paths)
        first = max(self.min_rewards - self.n - 1, 0)  # index of the first reward that may trip
        crossed = np.flatnonzero(log_e[first:] >= -math.log(self.alpha))
        keep = values.size if crossed.size == 0 else first + int(crossed[0]) + 1
        self._values.extend(values[:keep].tolist())
        self._log_wealth = paths[keep - 1].copy()
        if crossed.size:
            self.tripped_at = self.n
        return self.tripped_at is not None

    def log_e_value(self) -> float:
        """The log of the average wealth over the bets (0 before any reward)."""
        return float(_log_mean_exp(self._log_wealth[np.newaxis, :])[0])

    def e_value(self) -> float:
        """The average wealth over the bets (1 before any reward; capped at 1e300 for display)."""
        return math.exp(min(self.log_e_value(), 690.0))

    def upper_bound(self) -> float:
        """The smallest ``c`` such that "mean difference ≥ c" is rejected at level ``alpha`` now (the
        sequence's current upper bound on ``V_new - V_prev``); ``U`` before enough evidence."""
        if not self._values:
            return self.upper
        values = np.asarray(self._values)
        level = -math.log(self.alpha)

        def rejected(c: float) -> bool:
            x = np.minimum((values - c) / (self.upper - c), 1.0)
            return bool(_log_mean_exp(np.log1p(-np.outer(x, _BETS)).sum(axis=0)[np.newaxis, :])[0] >= level)

        low, high = float(values.min()) - 1.0, self.upper * (1 - 1e-9)
        if not rejected(high):
            return self.upper
        if rejected(low):
            return low
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (low, mid) if rejected(mid) else (mid, high)
        return high

    def verdict_values(self) -> tuple[float, ...]:
        """The paired differences taken in, in order."""
        return tuple(self._values)

    def verdict(self) -> Verdict:
        estimate = float(np.mean(self._values)) if self._values else 0.0
        return Verdict(self.n, estimate, self.upper_bound(), self.e_value(), self.threshold,
                       self.tripped_at is not None)
