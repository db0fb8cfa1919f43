"""Learning modes: how the served pmf is shaped around the caller's baseline.

- ``online`` (the default, as spelled in a campaign's config): serve the learned policy's pmf as is.
- ``logging_only``: serve the caller's baseline arm (or, without one, a fixed pmf, uniform by
  default) with an exploration slice ``epsilon`` spread uniformly over all eligible arms, so the log
  supports offline evaluation of other policies. The pmf is exact:
  ``p = (1 - epsilon) * onehot(baseline) + epsilon / n``.
- ``apprentice``: like ``logging_only`` until :class:`ApprenticeGate` judges, from the logged events,
  that the learned policy beats the baseline by ``margin``; from then on serve the learned pmf.

The gate compares both policies on the same logged events with importance weights (the logged
probability of each event's chosen arm): per event ``d = r * (pi_learned(a) - 1[a == baseline]) / p``.
It opens when at least ``min_events`` events were seen and ``mean(d) - z * stderr(d) > margin``; once
open it stays open (call :meth:`ApprenticeGate.reset` to start over).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import LearningEvent

__all__ = [
    "ApprenticeGate",
    "MODES",
    "ModeConfig",
    "logging_only_pmf",
    "served_pmf",
]

#: The learning modes, spelled as a campaign's ``mode`` in the service config.
MODES = ("online", "apprentice", "logging_only")


@dataclass(frozen=True, slots=True)
class ModeConfig:
    """A campaign's learning mode and its parameters (``epsilon``: the exploration slice of
    ``logging_only`` and of ``apprentice`` before its gate opens; the rest configure the gate)."""

    mode: str = "online"
    epsilon: float = 0.05
    margin: float = 0.0
    min_events: int = 500
    confidence_z: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}", field="mode")
        check_scalar(self.epsilon, "epsilon", low=0.0, high=1.0)
        check_scalar(self.margin, "margin")
        check_scalar(self.confidence_z, "confidence_z", low=0.0)
        check_scalar(self.min_events, "min_events", int, low=1)


def logging_only_pmf(n_arms: int, *, epsilon: float, baseline_index: int | None = None,
                     fixed_pmf: np.ndarray | None = None) -> np.ndarray:
    """The baseline arm (or ``fixed_pmf``, else uniform) mixed with ``epsilon`` uniform exploration."""
    check_scalar(n_arms, "n_arms", int, low=1)
    check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
    uniform = np.full(n_arms, 1.0 / n_arms)
    if baseline_index is not None:
        if not 0 <= baseline_index < n_arms:
            raise InvalidInput(f"baseline_index must index one of {n_arms} arms", field="baseline_index")
        target = np.zeros(n_arms)
        target[baseline_index] = 1.0
    elif fixed_pmf is not None:
        target = np.asarray(fixed_pmf, dtype=np.float64)
        if target.shape != (n_arms,) or (target < 0).any() or not math.isclose(target.sum(), 1.0, abs_tol=1e-9):
            raise InvalidInput("fixed_pmf must be a pmf over the arms", field="fixed_pmf")
    else:
        target = uniform
    pmf = (1.0 - epsilon) * target + epsilon * uniform
    return pmf / pmf.sum()


class ApprenticeGate:
    """Tracks whether the learned policy beats the caller's baseline on logged events."""

    def __init__(self, config: ModeConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._sum_squares = 0.0
        self._open = False

    def update(self, event: LearningEvent, baseline_index: int, learned_pmf: np.ndarray) -> None:
        """Add one logged event: the baseline's arm index for it and the learned policy's pmf for its
        context over the same arms (``learned_pmf[event.chosen]`` is what the learned policy would
        have given the logged arm)."""
        n_arms = len(event.arm_set.arms)
        if not 0 <= baseline_index < n_arms:
            raise InvalidInput(f"baseline_index must index one of {n_arms} arms", field="baseline_index")
        learned = np.asarray(learned_pmf, dtype=np.float64)
        if learned.shape != (n_arms,):
            raise InvalidInput("learned_pmf must have one entry per arm", field="learned_pmf")
        if not 0.0 < event.probability <= 1.0:
            raise InvalidInput("event.probability must be in (0, 1]", field="event.probability")
        chosen = event.chosen
        difference = event.reward * (learned[chosen] - float(chosen == baseline_index)) / event.probability
        self._count += 1
        self._sum += difference
        self._sum_squares += difference * difference
        if not self._open and self._count >= self.config.min_events:
            self._open = self.lower_bound() > self.config.margin

    @property
    def events_seen(self) -> int:
        return self._count

    def estimated_gain(self) -> float:
        """IPW estimate of value(learned) - value(baseline) on the events seen (0 before any)."""
        return self._sum / self._count if self._count else 0.0

    def lower_bound(self) -> float:
        if self._count < 2:
            return -math.inf
        mean = self._sum / self._count
        variance = max(self._sum_squares / self._count - mean * mean, 0.0) * self._count / (self._count - 1)
        return mean - self.config.confidence_z * math.sqrt(variance / self._count)

    def learned_is_better(self) -> bool:
        return self._open


def served_pmf(config: ModeConfig, learned_pmf: np.ndarray, *, baseline_index: int | None,
               gate: ApprenticeGate | None = None) -> np.ndarray:
    """The pmf to serve under ``config.mode`` (``learned_pmf`` is the learned policy's pmf)."""
    learned = np.asarray(learned_pmf, dtype=np.float64)
    if config.mode == "online":
        return learned
    if config.mode == "apprentice" and gate is not None and gate.learned_is_better():
        return learned
    return logging_only_pmf(len(learned), epsilon=config.epsilon, baseline_index=baseline_index)
